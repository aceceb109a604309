// IPv6 on loopback ([::1]): every daemon listens on it, `roam connect` reaches it in both forms
// (`[::1]:PORT` and `::1 PORT`), --local binds it, a session migrates over it, `[::]:PORT` takes
// both families, and the proxy and the socks agent carry IPv6 destinations (SOCKS5 address type
// 4) under the IPv6 rules of the access policy. The address printers and parsers round-trip IPv6
// with brackets and scope ids. Every test that needs ::1 skips with a reason when the host has
// no IPv6 loopback.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "io/net.hpp"
#include "io/netmon.hpp"
#include "io/relay.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

// Why ::1 cannot be used here, or empty when it can.
std::string ipv6_loopback_missing() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("no IPv6 sockets: ") + std::strerror(errno);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  const int err = errno;
  ::close(fd);
  return ok ? std::string() : std::string("cannot bind [::1]: ") + std::strerror(err);
}

#define REQUIRE_IPV6_LOOPBACK()                                          \
  do {                                                                   \
    if (const std::string why = ipv6_loopback_missing(); !why.empty())   \
      GTEST_SKIP() << why;                                               \
  } while (0)

// The port in "listening on <prefix>PORT" (prefix e.g. "[::1]:"), waiting for the line.
std::uint16_t wait_listening_on(Process& p, const std::string& prefix) {
  const std::string key = "listening on " + prefix;
  if (!p.wait_for(key)) return 0;
  const std::string log = p.log();
  std::size_t i = log.find(key) + key.size();
  unsigned port = 0;
  for (; i < log.size() && log[i] >= '0' && log[i] <= '9'; ++i) port = port * 10 + (log[i] - '0');
  return port > 0 && port <= 65535 ? static_cast<std::uint16_t>(port) : 0;
}

sockaddr_in6 v6_loopback(std::uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(port);
  return a;
}

// Blocking connect to [::1]:port; -1 on failure.
int connect_v6(std::uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in6 a = v6_loopback(port);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// A service on [::1]:0 that accepts `connections` connections one after the other and runs the
// duplex pump on each; result() hands out their results in order.
class V6Service {
 public:
  explicit V6Service(DuplexOptions opts, int connections = 1) {
    listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a = v6_loopback(0);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen on [::1]");
    port_ = ntohs(a.sin6_port);
    for (int i = 0; i < connections; ++i) {
      auto p = std::make_shared<std::promise<DuplexResult>>();
      results_.push_back(p->get_future());
      promises_.push_back(p);
    }
    thread_ = std::thread([this, opts] {
      for (auto& p : promises_) {
        DuplexResult r;
        const int fd = accept_with_timeout(listen_fd_, seconds(30));
        if (fd < 0) {
          r.error = "no connection";
        } else {
          r = run_duplex(fd, fd, opts);
          ::close(fd);
        }
        p->set_value(r);
      }
    });
  }
  ~V6Service() {
    thread_.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }
  DuplexResult result() { return results_.at(next_++).get(); }

 private:
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::shared_ptr<std::promise<DuplexResult>>> promises_;
  std::vector<std::future<DuplexResult>> results_;
  std::size_t next_ = 0;
  std::thread thread_;
};

// io::CutRelay on [::1] (the harness's RelayThread is IPv4) on its own loop thread: cut() resets
// every connection through it, which makes the roam client migrate.
class V6Relay {
 public:
  explicit V6Relay(std::uint16_t target_port) {
    relay_ = std::make_unique<io::CutRelay>(loop_, io::Endpoint{"::1", 0},
                                            io::Endpoint{"::1", target_port});
    if (auto ok = relay_->start(); !ok) throw std::runtime_error("CutRelay: " + ok.error().detail);
    const std::string bound = relay_->bound();  // "[::1]:PORT"
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~V6Relay() {
    loop_.post([this] {
      relay_.reset();
      loop_.stop();
    });
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::size_t cut() {
    std::promise<std::size_t> pr;
    auto fut = pr.get_future();
    loop_.post([&] { pr.set_value(relay_->cut()); });
    return fut.wait_for(seconds(10)) == std::future_status::ready ? fut.get() : 0;
  }

 private:
  io::Loop loop_;
  std::unique_ptr<io::CutRelay> relay_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

DuplexOptions pump(std::uint64_t bytes, std::uint64_t seed) {
  DuplexOptions o;
  o.send_bytes = bytes;
  o.seed = seed;
  o.timeout = seconds(30);
  return o;
}

// Both directions complete and exact.
void expect_exact(const DuplexResult& app, const DuplexResult& svc, std::uint64_t up,
                  std::uint64_t up_seed, std::uint64_t down, std::uint64_t down_seed) {
  EXPECT_EQ(svc.received, up) << svc.summary();
  EXPECT_EQ(hex(svc.received_digest), hex(pattern_digest(up_seed, up)));
  EXPECT_EQ(app.received, down) << app.summary();
  EXPECT_EQ(hex(app.received_digest), hex(pattern_digest(down_seed, down)));
  EXPECT_TRUE(app.got_eof);
  EXPECT_TRUE(svc.got_eof);
}

// --- parsers and printers ------------------------------------------------------------------

TEST(Ipv6Addresses, EndpointsParseAndPrintWithBrackets) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
  };
  for (const Case& c : {Case{"[::1]:7000", "::1", 7000}, Case{"[2001:db8::5]:1", "2001:db8::5", 1},
                        Case{"[fe80::1%lo]:80", "fe80::1%lo", 80},
                        Case{"[::ffff:192.0.2.1]:443", "::ffff:192.0.2.1", 443},
                        Case{"198.18.0.1:22", "198.18.0.1", 22}, Case{"example.org:80", "example.org", 80}}) {
    auto ep = io::parse_endpoint(c.text);
    ASSERT_TRUE(ep) << c.text << ": " << ep.error().detail;
    EXPECT_EQ(ep->host, c.host);
    EXPECT_EQ(ep->port, c.port);
    EXPECT_EQ(ep->str(), c.text) << "does not print back as it was written";
  }
  // Listener forms: a bare port takes the default host, port 0 lets the kernel choose.
  auto local = io::parse_endpoint("[::1]:0", "127.0.0.1", true);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->str(), "[::1]:0");
  // Ambiguous or broken IPv6 spellings are refused with a hint, never guessed.
  for (const char* bad : {"::1:7000", "2001:db8::1:80", "[::1]", "[::1]7000", "[]:80", "[::1:80"}) {
    auto ep = io::parse_endpoint(bad);
    ASSERT_FALSE(ep) << bad << " was accepted as " << ep->str();
    EXPECT_NE(ep.error().detail.find("[v6]:PORT"), std::string::npos) << ep.error().detail;
  }
}

TEST(Ipv6Addresses, ResolvedAddressesPrintAsTheyParse) {
  // Literals of both families, with a scope id, and the IPv4-mapped form of a dual-stack peer.
  const unsigned lo = if_nametoindex("lo");
  struct Case {
    const char* text;
    const char* printed;
  };
  std::vector<Case> cases = {{"[::1]:7000", "[::1]:7000"},
                             {"[2001:2::7]:9", "[2001:2::7]:9"},
                             {"127.0.0.1:80", "127.0.0.1:80"},
                             {"[::ffff:127.0.0.1]:80", "127.0.0.1:80"}};
  if (lo != 0) cases.push_back({"[fe80::1%lo]:80", "[fe80::1%lo]:80"});
  for (const Case& c : cases) {
    auto ep = io::parse_endpoint(c.text);
    ASSERT_TRUE(ep) << c.text;
    auto addrs = io::resolve(*ep, false);
    ASSERT_TRUE(addrs) << c.text << ": " << addrs.error().detail;
    ASSERT_EQ(addrs->size(), 1u) << c.text;
    const std::string printed = addrs->front().str();
    EXPECT_EQ(printed, c.printed);
    // What a log shows parses back to the same address.
    auto again = io::parse_endpoint(printed);
    ASSERT_TRUE(again) << printed;
    auto addrs2 = io::resolve(*again, false);
    ASSERT_TRUE(addrs2);
    EXPECT_EQ(addrs2->front().str(), printed);
    EXPECT_EQ(io::ip_of(printed), again->host);
  }
  if (lo != 0) {
    auto addrs = io::resolve(*io::parse_endpoint("[fe80::1%lo]:80"), false);
    ASSERT_TRUE(addrs);
    EXPECT_EQ(reinterpret_cast<const sockaddr_in6*>(&addrs->front().ss)->sin6_scope_id, lo);
  }
}

// --- roam server / connect over [::1] ------------------------------------------------------

// `roam server --listen [::1]:0`, `roam connect [::1]:PORT --local [::1]:0`, an application on
// [::1]: both directions exact, and after a cut in the middle the session migrates over IPv6.
TEST(Ipv6Loopback, ServerConnectLocalAndMigration) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  constexpr std::uint64_t kUp = 24 * kMiB, kDown = 24 * kMiB;
  V6Service service(pump(kDown, 61));
  auto server = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "--log-level", "debug", "server", "--listen", "[::1]:0", "--forward",
      "[::1]:" + std::to_string(service.port())});
  dump.add(server);
  const std::uint16_t server_port = wait_listening_on(*server, "[::1]:");
  ASSERT_NE(server_port, 0) << "no 'listening on [::1]:PORT'";
  V6Relay relay(server_port);
  auto client = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "--log-level", "debug", "connect", "[::1]:" + std::to_string(relay.port()),
      "--local", "[::1]:0"});
  dump.add(client);
  const std::uint16_t local_port = wait_listening_on(*client, "[::1]:");
  ASSERT_NE(local_port, 0) << "--local [::1]:0 did not listen on [::1]";
  EXPECT_TRUE(client->wait_for("sessions to [::1]:" + std::to_string(relay.port())));

  const int fd = connect_v6(local_port);
  ASSERT_GE(fd, 0);
  DuplexOptions app = pump(kUp, 62);
  std::size_t cut = 0;
  app.on_progress = [&](std::uint64_t n) {
    if (cut == 0 && n >= kDown / 8) cut = relay.cut();
  };
  const DuplexResult up = run_duplex(fd, fd, app);
  ::close(fd);
  const DuplexResult down = service.result();
  expect_exact(up, down, kUp, 62, kDown, 61);
  EXPECT_EQ(cut, 1u);
  EXPECT_TRUE(client->wait_for("session established ([::1]:")) << "no IPv6 path in the log";
  EXPECT_TRUE(client->wait_for("] migrated to [::1]:")) << "no migration over IPv6";
  EXPECT_TRUE(server->wait_for("session ended cleanly"));
}

// `roam connect ::1 PORT` (ssh's %h form) and `roam connect [::1]:PORT` in stdio mode.
TEST(Ipv6Loopback, StdioConnectBothForms) {
  REQUIRE_IPV6_LOOPBACK();
  for (const bool two_args : {true, false}) {
    SCOPED_TRACE(two_args ? "roam connect ::1 PORT" : "roam connect [::1]:PORT");
    DumpOnFailure dump;
    constexpr std::uint64_t kUp = 2 * kMiB, kDown = 3 * kMiB;
    DuplexOptions svc = pump(kDown, 71);
    svc.send_after_eof = true;
    V6Service service(svc);
    auto server = std::make_shared<Process>(std::vector<std::string>{
        roam_bin(), "server", "--listen", "[::1]:0", "--forward",
        "[::1]:" + std::to_string(service.port())});
    dump.add(server);
    const std::uint16_t port = wait_listening_on(*server, "[::1]:");
    ASSERT_NE(port, 0);
    std::vector<std::string> argv = {roam_bin(), "connect"};
    if (two_args) {
      argv.push_back("::1");
      argv.push_back(std::to_string(port));
    } else {
      argv.push_back("[::1]:" + std::to_string(port));
    }
    SpawnOptions so;
    so.pipe_stdin = true;
    so.pipe_stdout = true;
    auto client = std::make_shared<Process>(argv, so);
    dump.add(client);
    const int in_fd = client->take_stdin();
    const int out_fd = client->take_stdout();
    const DuplexResult up = run_duplex(out_fd, in_fd, pump(kUp, 72));
    ::close(out_fd);
    const auto status = client->wait_exit(seconds(10));
    const DuplexResult down = service.result();
    expect_exact(up, down, kUp, 72, kDown, 71);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(*status, 0);
  }
}

// `--listen [::]:PORT` is dual-stack: an IPv4 and an IPv6 client both get their session on the
// same listener, and the server logs the IPv4 one as plain IPv4 (not ::ffff:127.0.0.1).
TEST(Ipv6Loopback, UnspecifiedListenerTakesBothFamilies) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  constexpr std::uint64_t kBytes = 1 * kMiB;
  V6Service service(pump(kBytes, 81), 2);
  auto server = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "--log-level", "debug", "server", "--listen", "[::]:0", "--forward",
      "[::1]:" + std::to_string(service.port())});
  dump.add(server);
  const std::uint16_t port = wait_listening_on(*server, "[::]:");
  ASSERT_NE(port, 0) << "no 'listening on [::]:PORT'";
  std::uint64_t seed = 82;
  for (const std::string target : {"127.0.0.1", "[::1]"}) {
    SCOPED_TRACE(target);
    auto client = std::make_shared<Process>(std::vector<std::string>{
        roam_bin(), "connect", target + ":" + std::to_string(port), "--local", "127.0.0.1:0"});
    dump.add(client);
    const std::uint16_t local = client->wait_listening();
    ASSERT_NE(local, 0);
    ClientApp app(local, pump(kBytes, seed));
    const DuplexResult up = app.result();
    const DuplexResult down = service.result();
    expect_exact(up, down, kBytes, seed, kBytes, 81);
    ++seed;
  }
  EXPECT_TRUE(server->wait_for("<-> 127.0.0.1:")) << "IPv4 peer not logged as IPv4";
  EXPECT_TRUE(server->wait_for("<-> [::1]:")) << "IPv6 peer not logged in brackets";
  EXPECT_EQ(server->log().find("::ffff:"), std::string::npos);
}

// --- roam proxy and roam socks with IPv6 ---------------------------------------------------

// SOCKS5 CONNECT with address type 4 (an IPv6 address) on `fd`; returns the reply code or -1.
int socks5_connect_v6(int fd, const in6_addr& addr, std::uint16_t port) {
  const std::uint8_t hello[] = {0x05, 0x01, 0x00};
  if (!send_all(fd, hello, sizeof hello, seconds(5))) return -1;
  std::uint8_t choice[2];
  if (::recv(fd, choice, 2, MSG_WAITALL) != 2 || choice[1] != 0x00) return -1;
  std::vector<std::uint8_t> rq = {0x05, 0x01, 0x00, 0x04};
  rq.insert(rq.end(), addr.s6_addr, addr.s6_addr + 16);
  rq.push_back(static_cast<std::uint8_t>(port >> 8));
  rq.push_back(static_cast<std::uint8_t>(port & 0xff));
  if (!send_all(fd, rq.data(), rq.size(), seconds(5))) return -1;
  std::uint8_t head[4];
  if (::recv(fd, head, 4, MSG_WAITALL) != 4) return -1;
  const std::size_t rest = head[3] == 0x04 ? 18 : head[3] == 0x01 ? 6 : 0;
  std::uint8_t tail[18];
  if (rest == 0 || ::recv(fd, tail, rest, MSG_WAITALL) != static_cast<ssize_t>(rest)) return -1;
  return head[1];
}

in6_addr v6(const char* text) {
  in6_addr a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, &a), 1) << text;
  return a;
}

std::shared_ptr<Process> start_proxy_v6(std::vector<std::string> extra, std::uint16_t& port) {
  std::vector<std::string> argv = {roam_bin(), "--log-level", "debug", "proxy", "--listen",
                                   "[::1]:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_shared<Process>(argv);
  port = wait_listening_on(*p, "[::1]:");
  return p;
}

// A plain SOCKS5 client on [::1] asks `roam proxy` for [::1]:PORT (type 4): allowed once
// --allow-dest names it, the bytes arrive exact.
TEST(Ipv6Loopback, ProxyConnectsToIpv6Destination) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  constexpr std::uint64_t kBytes = 4 * kMiB;
  V6Service service(pump(kBytes, 91));
  std::uint16_t proxy_port = 0;
  auto proxy = start_proxy_v6({"--allow-dest", "::1/128"}, proxy_port);
  dump.add(proxy);
  ASSERT_NE(proxy_port, 0);
  const int fd = connect_v6(proxy_port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(socks5_connect_v6(fd, in6addr_loopback, service.port()), 0x00);
  const DuplexResult up = run_duplex(fd, fd, pump(kBytes, 92));
  ::close(fd);
  expect_exact(up, service.result(), kBytes, 92, kBytes, 91);
}

// The default policy's IPv6 denials: loopback, unspecified, link-local, multicast and an
// IPv4-mapped loopback are refused with "not allowed by ruleset" (0x02), each logged.
TEST(Ipv6Loopback, ProxyDeniesIpv6SpecialDestinations) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  DeadPort dead;
  std::uint16_t proxy_port = 0;
  auto proxy = start_proxy_v6({}, proxy_port);
  dump.add(proxy);
  ASSERT_NE(proxy_port, 0);
  for (const char* dest : {"::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1"}) {
    SCOPED_TRACE(dest);
    const int fd = connect_v6(proxy_port);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(socks5_connect_v6(fd, v6(dest), dead.port()), 0x02);
    ::close(fd);
  }
  EXPECT_TRUE(proxy->wait_for("refused")) << "refusals are not logged";
}

// The client ACL applies to IPv6 clients: ::1 is a default client, and refused when
// --allow-client names only fc00::/7.
TEST(Ipv6Loopback, ProxyClientAclCoversIpv6) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  std::uint16_t proxy_port = 0;
  auto proxy = start_proxy_v6({"--allow-client", "fc00::/7"}, proxy_port);
  dump.add(proxy);
  ASSERT_NE(proxy_port, 0);
  const int fd = connect_v6(proxy_port);
  ASSERT_GE(fd, 0);
  const std::uint8_t hello[] = {0x05, 0x01, 0x00};
  send_all(fd, hello, sizeof hello, seconds(5));
  ReadEnd how{};
  const auto got = read_until_close(fd, seconds(5), how);
  ::close(fd);
  EXPECT_TRUE(got.empty()) << "a client outside --allow-client got an answer";
  EXPECT_NE(how, ReadEnd::kTimeout);
  EXPECT_TRUE(proxy->wait_for("refused [::1]:")) << "refusal not logged with the IPv6 client";
}

// An application asks `roam socks` (listening on [::1]) for an IPv6 destination; the agent's
// session to `roam proxy` runs over [::1] and survives a cut of its path.
TEST(Ipv6Loopback, SocksAgentToProxyOverIpv6) {
  REQUIRE_IPV6_LOOPBACK();
  DumpOnFailure dump;
  constexpr std::uint64_t kBytes = 16 * kMiB;
  V6Service service(pump(kBytes, 101));
  std::uint16_t proxy_port = 0;
  auto proxy = start_proxy_v6({"--allow-dest", "::1/128"}, proxy_port);
  dump.add(proxy);
  ASSERT_NE(proxy_port, 0);
  V6Relay relay(proxy_port);
  auto agent = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "--log-level", "debug", "socks", "--proxy",
      "[::1]:" + std::to_string(relay.port()), "--listen", "[::1]:0"});
  dump.add(agent);
  const std::uint16_t agent_port = wait_listening_on(*agent, "[::1]:");
  ASSERT_NE(agent_port, 0);
  const int fd = connect_v6(agent_port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(socks5_connect_v6(fd, in6addr_loopback, service.port()), 0x00);
  DuplexOptions app = pump(kBytes, 102);
  std::size_t cut = 0;
  app.on_progress = [&](std::uint64_t n) {
    if (cut == 0 && n >= kBytes / 8) cut = relay.cut();
  };
  const DuplexResult up = run_duplex(fd, fd, app);
  ::close(fd);
  expect_exact(up, service.result(), kBytes, 102, kBytes, 101);
  EXPECT_EQ(cut, 1u);
  EXPECT_TRUE(agent->wait_for("migrated to [::1]:")) << "no migration over IPv6";
}

}  // namespace
}  // namespace roam::itest
