// Slow and half-finished handshakes are closed at the 5 s deadline (SPEC 13): a connection that
// sends nothing, half a frame, a byte every 400 ms, or a whole HELLO and never the FINISH. No
// sleeps: each attacker connection is polled until the server closes it, with a deadline.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>

#include "attack_util.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

constexpr double kDeadline = 5.0;  // seconds: server.cpp / proxy.cpp / SessionConfig
constexpr auto kTrickleEvery = milliseconds(400);

struct Slow {
  std::string what;
  int fd = -1;
  ByteVec send;        // sent at once
  ByteVec trickle;     // then one byte per kTrickleEvery (until closed)
  std::size_t trickled = 0;
  double closed_after = -1;  // seconds; -1 while open
};

// Polls every connection until the server closes it (EOF or reset) or `limit` passes; trickles
// meanwhile. Replies are read and ignored (HELLO_REPLY, SOCKS method choice).
void run(std::vector<Slow>& conns, std::chrono::seconds limit) {
  const auto start = Clock::now();
  auto next_trickle = start + kTrickleEvery;
  for (auto& c : conns) send_all(c.fd, c.send.data(), c.send.size(), seconds(2));
  for (;;) {
    std::vector<pollfd> pfds;
    for (auto& c : conns)
      if (c.closed_after < 0) pfds.push_back(pollfd{c.fd, POLLIN, 0});
    if (pfds.empty() || Clock::now() - start > limit) return;
    const auto wait = std::chrono::duration_cast<milliseconds>(next_trickle - Clock::now()).count();
    ::poll(pfds.data(), pfds.size(), static_cast<int>(std::max<long>(wait, 0)));
    const double now = std::chrono::duration<double>(Clock::now() - start).count();
    for (auto& c : conns) {
      if (c.closed_after >= 0) continue;
      std::uint8_t buf[512];
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) c.closed_after = now;
    }
    if (Clock::now() >= next_trickle) {
      next_trickle += kTrickleEvery;
      for (auto& c : conns)
        if (c.closed_after < 0 && c.trickled < c.trickle.size())
          (void)!::send(c.fd, &c.trickle[c.trickled++], 1, MSG_NOSIGNAL);
    }
  }
}

void check(std::vector<Slow>& conns, const char* daemon) {
  run(conns, seconds(12));
  for (auto& c : conns) {
    std::cout << "[ deadline ] " << daemon << ": " << c.what << " → closed after "
              << c.closed_after << " s" << (c.trickle.empty() ? "" : " (" + std::to_string(c.trickled) + " bytes trickled)")
              << "\n";
    EXPECT_GE(c.closed_after, kDeadline - 0.5) << c.what << ": closed before the deadline";
    EXPECT_LE(c.closed_after, kDeadline + 2.0) << c.what << ": not closed at the deadline";
    ::close(c.fd);
  }
}

ByteVec cat(ByteVec a, const ByteVec& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Deadline, ServerClosesSilentSlowAndHalfFinishedHandshakesAtFiveSeconds) {
  DumpOnFailure dump;
  std::uint16_t port = 0;
  DeadPort target;  // never reached: no handshake completes
  auto server = start_server(target.port(), {}, port);
  dump.add(server);
  ASSERT_NE(port, 0);
  const ByteVec hello = hello_frame();
  std::vector<Slow> conns(4);
  conns[0].what = "silent connection";
  conns[1].what = "half a HELLO";
  conns[1].send.assign(hello.begin(), hello.begin() + static_cast<std::ptrdiff_t>(hello.size() / 2));
  conns[2].what = "a HELLO trickled a byte per 400 ms";
  conns[2].trickle = hello;
  conns[3].what = "a whole HELLO, never a FINISH";
  conns[3].send = hello;
  for (auto& c : conns) ASSERT_GE(c.fd = connect_loopback(port), 0);
  check(conns, "roam server");
  EXPECT_TRUE(server->running());
}

TEST(Deadline, ProxyClosesSilentSlowAndHalfFinishedHandshakesAtFiveSeconds) {
  DumpOnFailure dump;
  auto proxy = std::make_shared<Process>(
      std::vector<std::string>{roam_bin(), "proxy", "--listen", "127.0.0.1:0"});
  dump.add(proxy);
  const std::uint16_t port = proxy->wait_listening();
  ASSERT_NE(port, 0);
  const ByteVec roam_method = {0x05, 0x01, 0x80};
  std::vector<Slow> conns(5);
  conns[0].what = "silent connection";
  conns[1].what = "half a SOCKS greeting";
  conns[1].send = {0x05, 0x02, 0x00};
  conns[2].what = "greeting, never a request";
  conns[2].send = {0x05, 0x01, 0x00};
  conns[3].what = "a request trickled a byte per 400 ms";
  conns[3].send = {0x05, 0x01, 0x00};
  conns[3].trickle = {0x05, 0x01, 0x00, 0x03, 60};  // a 60-byte name: 13+ s at this pace
  conns[3].trickle.resize(5 + 60, 'a');
  conns[4].what = "roam method + HELLO, never a FINISH";
  conns[4].send = cat(roam_method, hello_frame());
  for (auto& c : conns) ASSERT_GE(c.fd = connect_loopback(port), 0);
  check(conns, "roam proxy");
  EXPECT_TRUE(proxy->running());
}

}  // namespace
}  // namespace roam::itest
