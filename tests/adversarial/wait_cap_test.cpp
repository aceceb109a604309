// Wait-state exhaustion: clients that establish a session and vanish leave the server holding
// them in the wait state (10 minutes by default). With --max-waiting 2, a third vanished client
// ends the session that has waited longest: its forwarded connection sees the abort (a reset),
// the server logs it, and the two newer waiting sessions stay.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "attack_util.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

// Waits until `p`'s log has one line holding both `a` and `b`.
bool wait_line(Process& p, const std::string& a, const std::string& b, std::chrono::milliseconds timeout) {
  return p.wait_until(
      [&](const std::string& log) {
        for (std::size_t pos = log.find(a); pos != std::string::npos; pos = log.find(a, pos + 1)) {
          const std::size_t eol = log.find('\n', pos);
          if (log.substr(pos, eol - pos).find(b) != std::string::npos) return true;
        }
        return false;
      },
      timeout);
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void wait_cap(const char* daemon) {
  DumpOnFailure dump;
  std::uint16_t target_port = 0;
  const int target = listen_loopback(target_port);
  ASSERT_GE(target, 0);
  std::uint16_t port = 0;
  std::shared_ptr<Process> server;
  if (std::string(daemon) == "server") {
    server = start_server(target_port, {"--max-waiting", "2"}, port);
  } else {
    server = std::make_shared<Process>(std::vector<std::string>{
        roam_bin(), "proxy", "--listen", "127.0.0.1:0", "--allow-dest", "127.0.0.0/8",
        "--max-waiting", "2"});
    port = server->wait_listening();
  }
  dump.add(server);
  ASSERT_NE(port, 0);
  // Three clients, each with a session whose forwarded connection the test holds.
  std::vector<std::shared_ptr<Process>> clients;
  std::vector<int> forwarded;
  std::vector<int> app_socks;  // roam socks' applications (proxy case), held open
  for (int i = 0; i < 3; ++i) {
    SpawnOptions o;
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    std::shared_ptr<Process> c;
    std::uint16_t local = 0;
    if (std::string(daemon) == "server") {
      c = std::make_shared<Process>(
          std::vector<std::string>{roam_bin(), "connect", loopback_ep(port)}, o);
    } else {
      c = std::make_shared<Process>(std::vector<std::string>{
          roam_bin(), "socks", "--proxy", loopback_ep(port), "--listen", "127.0.0.1:0"});
      local = c->wait_listening();
      ASSERT_NE(local, 0);
      // A SOCKS5 CONNECT through the agent to the target.
      const int s = connect_loopback(local);
      ASSERT_GE(s, 0);
      const ByteVec req = {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1,
                           static_cast<std::uint8_t>(target_port >> 8),
                           static_cast<std::uint8_t>(target_port & 0xff)};
      ASSERT_TRUE(send_all(s, req.data(), req.size(), seconds(5)));
      app_socks.push_back(s);
    }
    dump.add(c);
    clients.push_back(c);
    const int fd = accept_with_timeout(target, seconds(10));
    ASSERT_GE(fd, 0) << "session " << i + 1 << " never reached the target";
    forwarded.push_back(fd);
  }
  // The clients vanish one after the other (SIGKILL: no goodbye); each session waits.
  for (int i = 0; i < 3; ++i) {
    ::kill(clients[static_cast<std::size_t>(i)]->pid(), SIGKILL);
    const std::string name = (std::string(daemon) == "server" ? "[s" : "[m") + std::to_string(i + 1) + " ";
    ASSERT_TRUE(wait_line(*server, name, "path lost", seconds(10))) << name << " never waited";
  }
  // The first one (waited longest) ends: logged, and its forwarded connection is reset.
  ASSERT_TRUE(server->wait_for("--max-waiting 2): ending the one that has waited longest", seconds(5)));
  ReadEnd how{};
  read_until_close(forwarded[0], seconds(5), how);
  std::cout << "[ wait cap ] " << daemon << ": the longest-waiting session's target saw "
            << read_end_name(how) << "\n";
  EXPECT_EQ(how, ReadEnd::kReset) << "the application should see an abort";
  EXPECT_TRUE(wait_line(*server, std::string(daemon) == "server" ? "[s1 " : "[m1 ", "too many sessions waiting",
                        seconds(2)));
  EXPECT_FALSE(readable_now(forwarded[1])) << "a newer waiting session was ended";
  EXPECT_FALSE(readable_now(forwarded[2])) << "a newer waiting session was ended";
  EXPECT_TRUE(server->running());
  for (int fd : forwarded) ::close(fd);
  for (int fd : app_socks) ::close(fd);
  ::close(target);
}

TEST(WaitCap, ServerEndsTheLongestWaitingSession) { wait_cap("server"); }
TEST(WaitCap, ProxyEndsTheLongestWaitingSession) { wait_cap("proxy"); }

}  // namespace
}  // namespace roam::itest
