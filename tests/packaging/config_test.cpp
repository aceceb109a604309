// `--config FILE` and SIGHUP reloads, with real `roam` processes on loopback.
//
// The configuration file mirrors the command line (src/apps/config.hpp): these tests check what
// an administrator relies on: a daemon runs from the file alone, the command line wins over it,
// every kind of mistake is refused with FILE:LINE:COL and exit status 2, and `roam proxy` swaps
// its access rules on SIGHUP for new connections while established sessions keep going (and
// keeps the old rules when the new file is bad).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace roam::itest {
namespace {

namespace fs = std::filesystem;

struct TmpDir {
  fs::path path;
  TmpDir() {
    char tmpl[] = "/tmp/roam-config-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TmpDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return path / name;
  }
};

// Runs roam with `args` to its end (10 s); returns the exit status and stderr.
std::pair<int, std::string> run_roam(std::vector<std::string> args) {
  args.insert(args.begin(), roam_bin());
  Process p(args);
  const auto status = p.wait_exit(seconds(10));
  return {status.value_or(-1), p.log()};
}

TEST(ConfigFile, ServerRunsFromTheFileAloneBeforeOrAfterTheSubcommand) {
  TmpDir tmp;
  const auto file = tmp.write("server.toml",
                              "log-level = \"info\"\n"
                              "[server]\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:1\"\n"
                              "wait = \"2h\"\n");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {roam_bin(), "server", "--config", file.string()},
           {roam_bin(), "--config", file.string(), "server"}}) {
    Process p(argv);
    EXPECT_NE(p.wait_listening(), 0) << p.describe() << "\n" << p.log();
    EXPECT_EQ(p.terminate(), 0);
  }
}

TEST(ConfigFile, CommandLineWinsOverTheFile) {
  TmpDir tmp;
  // The file's address could not be bound: the server starts only if the command line wins.
  const auto file = tmp.write("server.toml",
                              "[server]\nlisten = \"256.1.1.1:7000\"\nforward = \"127.0.0.1:1\"\n"
                              "wait = \"forever\"\n");
  Process p({roam_bin(), "server", "--listen", "127.0.0.1:0", "--config", file.string(), "--wait", "1m"});
  EXPECT_NE(p.wait_listening(), 0) << p.log();
  EXPECT_EQ(p.terminate(), 0);
}

TEST(ConfigFile, MistakesAreRefusedWithLineColumnAndStatus2) {
  TmpDir tmp;
  const std::string ok = "[server]\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:1\"\n";
  struct Case {
    const char* what;
    std::string text;
    std::string expect;  // after "FILE:"
  };
  const std::vector<Case> cases = {
      {"syntax error", ok + "wait = \"10m\n", ":4:"},
      {"unknown table", "[serve]\nlisten = \"127.0.0.1:0\"\n", ":1:2: [serve]: no such subcommand"},
      {"unknown key in the table", ok + "\nforwrd = \"127.0.0.1:2\"\n", ":5:1: unknown key 'forwrd'"},
      {"unknown top-level key", "colour = \"blue\"\n" + ok, ":1:1: unknown key 'colour'"},
      {"another subcommand's key", ok + "allow-client = [\"10.0.0.0/8\"]\n", ":4:1: unknown key 'allow-client'"},
      {"unknown key in another table", ok + "[proxy]\nlisten = \"127.0.0.1:0\"\nallow-clients = []\n",
       ":6:1: unknown key 'allow-clients'"},
      {"list for a single option", "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:1\"]\nforward = \"127.0.0.1:1\"\n",
       ":2:10: listen: takes one value, not a list"},
      {"bad duration", ok + "wait = \"10 parsecs\"\n", ":4:8: --wait: expected a duration"},
      {"bad size", ok + "buffer = \"lots\"\n", ":4:10: --buffer: expected a size"},
      {"bad log level", "log-level = \"loud\"\n" + ok, ":1:13: log-level:"},
      {"not a flag value", "[proxy]\nlisten = \"127.0.0.1:0\"\nno-roam = \"yes\"\n", ":3:11: no-roam: expected true or false"},
  };
  for (const Case& c : cases) {
    const auto file = tmp.write("bad.toml", c.text);
    const bool proxy = c.text.rfind("[proxy]", 0) == 0;
    auto [status, log] = run_roam({proxy ? "proxy" : "server", "--config", file.string()});
    EXPECT_EQ(status, 2) << c.what << ": " << log;
    EXPECT_NE(log.find(file.string() + c.expect), std::string::npos)
        << c.what << ": expected \"" << file.string() << c.expect << "\" in: " << log;
  }
  auto [status, log] = run_roam({"server", "--config", (tmp.path / "missing.toml").string()});
  EXPECT_EQ(status, 2) << log;
}

// --- SIGHUP on roam proxy ------------------------------------------------------------------------

// Echoes every connection accepted on `ip`:0 until destroyed; one poll loop on its own thread.
class EchoServer {
 public:
  explicit EchoServer(const char* ip) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error(std::string("echo server: cannot listen on ") + ip);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(stop_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    thread_ = std::thread([this] { run(); });
  }
  ~EchoServer() {
    (void)!::write(stop_[1], "x", 1);
    thread_.join();
    for (int c : conns_) ::close(c);
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::uint16_t port() const { return port_; }

 private:
  void run() {
    for (;;) {
      std::vector<pollfd> p = {{stop_[0], POLLIN, 0}, {fd_, POLLIN, 0}};
      for (int c : conns_) p.push_back({c, POLLIN, 0});
      if (::poll(p.data(), p.size(), -1) < 0) continue;
      if (p[0].revents) return;
      if (p[1].revents) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) conns_.push_back(c);
      }
      for (std::size_t i = 2; i < p.size(); ++i) {
        if (!p[i].revents) continue;
        char buf[4096];
        const ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n > 0) {
          (void)send_all(p[i].fd, buf, static_cast<std::size_t>(n), seconds(5));
        } else {
          ::close(p[i].fd);
          conns_.erase(std::find(conns_.begin(), conns_.end(), p[i].fd));
        }
      }
    }
  }
  int fd_ = -1;
  int stop_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::vector<int> conns_;  // only touched by the thread (and the destructor after join)
  std::thread thread_;
};

// Opens a SOCKS5 CONNECT to 127.0.0.`last`:port through the agent on `socks_port`. Returns the
// socket and sets `reply` to the SOCKS reply code (-1: no complete reply).
int socks_connect(std::uint16_t socks_port, std::uint8_t last, std::uint16_t port, int& reply) {
  reply = -1;
  const int fd = connect_loopback(socks_port);
  if (fd < 0) return -1;
  const std::uint8_t req[] = {0x05, 0x01, 0x00,                       // greeting: no auth
                              0x05, 0x01, 0x00, 0x01, 127, 0, 0, last,  // CONNECT IPv4
                              static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port)};
  if (!send_all(fd, req, sizeof req, seconds(5))) return fd;
  std::uint8_t ans[12];
  std::size_t got = 0;
  while (got < sizeof ans) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    const ssize_t n = ::recv(fd, ans + got, sizeof ans - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got >= 4 && ans[0] == 0x05 && ans[1] == 0x00 && ans[2] == 0x05) reply = ans[3];
  return fd;
}

// True when `text` sent on fd comes back (through the echo server) within 10 s.
bool echoes(int fd, const std::string& text) {
  if (!send_all(fd, text.data(), text.size(), seconds(5))) return false;
  std::string back;
  while (back.size() < text.size()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    back.append(buf, static_cast<std::size_t>(n));
  }
  return back == text;
}

TEST(ProxyReload, SighupSwapsRulesForNewConnectionsAndKeepsSessions) {
  TmpDir tmp;
  EchoServer open_service("127.0.0.1"), guarded("127.0.0.2");
  const std::string head = "[proxy]\nlisten = \"127.0.0.1:0\"\nallow-dest = [\"127.0.0.0/8\"]\n";
  const auto file = tmp.write("proxy.toml", head + "deny-dest = [\"127.0.0.2/32\"]\n");
  Process proxy({roam_bin(), "proxy", "--config", file.string()});
  const std::uint16_t pport = proxy.wait_listening();
  ASSERT_NE(pport, 0) << proxy.log();
  Process agent({roam_bin(), "socks", "--proxy", "127.0.0.1:" + std::to_string(pport), "--listen", "127.0.0.1:0"});
  const std::uint16_t sport = agent.wait_listening();
  ASSERT_NE(sport, 0) << agent.log();

  // A roam session to the open service; the guarded one is refused (0x02: not allowed).
  int reply = -1;
  const int session = socks_connect(sport, 1, open_service.port(), reply);
  ASSERT_EQ(reply, 0x00) << proxy.log();
  ASSERT_TRUE(echoes(session, "before the reload"));
  int refused = socks_connect(sport, 2, guarded.port(), reply);
  EXPECT_EQ(reply, 0x02) << proxy.log();
  ::close(refused);

  // Reload with the denial removed: the session goes on, the guarded service is now reachable.
  tmp.write("proxy.toml", head);
  ASSERT_EQ(::kill(proxy.pid(), SIGHUP), 0);
  ASSERT_TRUE(proxy.wait_for("access rules reloaded")) << proxy.log();
  EXPECT_TRUE(echoes(session, "across the reload")) << proxy.log();
  const int fresh = socks_connect(sport, 2, guarded.port(), reply);
  EXPECT_EQ(reply, 0x00) << proxy.log();
  EXPECT_TRUE(echoes(fresh, "newly allowed"));

  // A broken file: logged with its line and column; the previous rules (allowing) stay.
  tmp.write("proxy.toml", head + "deny-dest = [\"127.0.0.2/33\"]\n");
  ASSERT_EQ(::kill(proxy.pid(), SIGHUP), 0);
  ASSERT_TRUE(proxy.wait_for("keeping the old rules")) << proxy.log();
  EXPECT_NE(proxy.log().find(file.string() + ":4:13: --deny-dest"), std::string::npos) << proxy.log();
  tmp.write("proxy.toml", head + "deny-dest = [\"127.0.0.2/32\"\n");
  ASSERT_EQ(::kill(proxy.pid(), SIGHUP), 0);
  ASSERT_TRUE(proxy.wait_for(file.string() + ":4:29: Error while parsing array")) << proxy.log();
  const int again = socks_connect(sport, 2, guarded.port(), reply);
  EXPECT_EQ(reply, 0x00) << proxy.log();
  EXPECT_TRUE(echoes(again, "old rules kept"));
  EXPECT_TRUE(echoes(session, "still the same session"));
  ::close(again);
  ::close(fresh);
  ::close(session);
  EXPECT_TRUE(proxy.running());
}

}  // namespace
}  // namespace roam::itest
