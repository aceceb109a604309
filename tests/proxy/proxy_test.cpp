// `roam proxy` and `roam socks` on loopback, with clients nobody here wrote (curl, ssh through
// netcat-openbsd, proxychains4) and with hostile input.
//
// Every daemon is a real child process; readiness is its "listening on" line; ports come from the
// kernel; only 127.0.0.1 is used (and, as denied destinations, addresses that are never reached).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/crypto/crypto.hpp"
#include "core/socks5/socks5.hpp"
#include "core/wire/frames.hpp"
#include "http_server.hpp"
#include "itest_util.hpp"
#include "proxy_util.hpp"

namespace roam::ptest {
namespace {

using namespace roam::itest;
namespace fs = std::filesystem;
using V = std::vector<std::uint8_t>;

constexpr std::uint64_t kSeed = 4242;

std::optional<int> run(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                       std::string* log = nullptr) {
  Process p(std::move(argv));
  auto st = p.wait_exit(timeout);
  if (log) *log = p.log();
  return st;
}

bool have(const char* path) { return ::access(path, X_OK) == 0; }

Digest file_digest(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(buf.data()),
                              static_cast<unsigned long long>(in.gcount()));
  }
  Digest d;
  crypto_hash_sha256_final(&st, d.data());
  return d;
}

std::vector<std::string> curl_argv(std::uint16_t socks_port, const std::string& url, const fs::path& out,
                                   const char* mode = "--socks5-hostname") {
  return {"/usr/bin/curl", "-s", "-S", "-f", "--max-time", "120", mode,
          loopback_ep(socks_port), url, "-o", out.string()};
}

// --- a raw SOCKS5 client ------------------------------------------------------------------------

struct Answer {
  V bytes;
  bool closed = false;  // EOF or reset after the bytes
};

// Sends `out` on `fd` (optionally half-closing), then reads until `want` bytes arrived or the
// connection ended (deadline 10 s).
Answer exchange(int fd, const V& out, std::size_t want, bool half_close = false) {
  Answer a;
  if (!out.empty() && !send_all(fd, out.data(), out.size(), seconds(10))) {
    a.closed = true;
    return a;
  }
  if (half_close) ::shutdown(fd, SHUT_WR);
  const auto deadline = Clock::now() + seconds(10);
  while (a.bytes.size() < want) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    std::uint8_t buf[4096];
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - a.bytes.size()), 0);
    if (n <= 0) {
      a.closed = true;
      break;
    }
    a.bytes.insert(a.bytes.end(), buf, buf + n);
  }
  return a;
}

// True when the peer closes `fd` (EOF or reset) within 10 s without sending anything more.
bool closes_quietly(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) <= 0) return false;
  std::uint8_t b;
  return ::recv(fd, &b, 1, 0) <= 0;
}

V request(std::uint8_t cmd, const core::socks5::Address& a) {
  V out;
  EXPECT_TRUE(core::socks5::encode_request(cmd, a, out));
  return out;
}

// Greeting (no auth) + request on a new connection; returns the reply code (or -1 when the
// connection closed without a complete reply), and whether it was closed afterwards.
int reply_code(std::uint16_t port, const V& req, bool* closed_after = nullptr) {
  const int fd = connect_loopback(port);
  if (fd < 0) return -2;
  V out = {0x05, 0x01, 0x00};
  out.insert(out.end(), req.begin(), req.end());
  Answer a = exchange(fd, out, 2 + 10);
  int code = -1;
  if (a.bytes.size() >= 2 + 4 && a.bytes[0] == 0x05 && a.bytes[1] == 0x00 && a.bytes[2] == 0x05)
    code = a.bytes[3];
  if (closed_after) *closed_after = a.closed || closes_quietly(fd);
  ::close(fd);
  return code;
}

core::socks5::Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  return core::socks5::Address::ipv4({a, b, c, d}, port);
}

core::socks5::Address v6(std::initializer_list<std::uint8_t> tail, std::uint16_t port) {
  std::array<std::uint8_t, 16> ip{};
  std::size_t i = 16 - tail.size();
  for (auto b : tail) ip[i++] = b;
  return core::socks5::Address::ipv6(ip, port);
}

// --- curl against roam proxy directly -----------------------------------------------------------

TEST(ProxyCurl, PlainSocks5DownloadIsIntact) {
  if (!have("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed";
  DumpOnFailure dump;
  TmpDir tmp;
  constexpr std::uint64_t kSize = 32 * kMiB;
  HttpServer http(kSize, kSeed);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  const Digest want = pattern_digest(kSeed, kSize);
  int n = 0;
  for (const auto& [host, mode] : std::vector<std::pair<std::string, const char*>>{
           {"127.0.0.1", "--socks5-hostname"}, {"localhost", "--socks5-hostname"},
           {"127.0.0.1", "--socks5"}}) {
    const fs::path out = tmp.path / ("out" + std::to_string(n++));
    std::string log;
    auto st = run(curl_argv(pport, "http://" + host + ":" + std::to_string(http.port()) + "/file", out, mode),
                  seconds(120), &log);
    ASSERT_TRUE(st.has_value()) << "curl did not finish";
    EXPECT_EQ(*st, 0) << host << " " << mode << ": " << log;
    EXPECT_EQ(hex(file_digest(out)), hex(want)) << host << " " << mode;
  }
  EXPECT_EQ(http.connections(), 3u);
  EXPECT_EQ(http.resets(), 0u);
  EXPECT_TRUE(proxy->running());
}

// --- curl through roam socks → (cut relay) → roam proxy -----------------------------------------

TEST(ProxyRoam, DownloadThroughRoamSocksSurvivesCuts) {
  if (!have("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed";
  DumpOnFailure dump;
  TmpDir tmp;
  constexpr std::uint64_t kSize = 64 * kMiB;
  constexpr int kCuts = 6;
  const std::uint64_t step = kSize / (kCuts + 1);
  HttpServer http(kSize, kSeed + 1, step / 2);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8", "--heartbeat", "200ms", "--buffer", "1M"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  RelayThread relay(pport);
  std::uint16_t sport = 0;
  auto socks = start_socks(relay.port(), {"--heartbeat", "200ms", "--buffer", "1M"}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);

  const fs::path out = tmp.path / "out";
  auto curl = std::make_shared<Process>(
      curl_argv(sport, "http://127.0.0.1:" + std::to_string(http.port()) + "/file", out));
  dump.add(curl);
  int cuts = 0;
  for (int k = 1; k <= kCuts; ++k) {
    ASSERT_TRUE(http.wait_sent(step * static_cast<std::uint64_t>(k) - step / 2, seconds(30)))
        << "download stalled before cut " << k;
    // Bytes are in flight on the mobile leg (the server is paced): cut it.
    const auto deadline = Clock::now() + seconds(10);
    std::size_t n = 0;
    while ((n = relay.cut()) == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(5));  // the session is re-attaching; try again
    // Usually the one live path; a second one when the agent was probing beside it (a heartbeat
    // late on a loaded machine makes it look for another path, make-before-break).
    EXPECT_GE(n, 1u) << "cut " << k << " found no mobile-leg connection";
    if (n) ++cuts;
    http.allow(step * static_cast<std::uint64_t>(k) + step / 2);
  }
  http.allow(kSize);
  auto st = curl->wait_exit(seconds(120));
  ASSERT_TRUE(st.has_value()) << "curl did not finish";
  EXPECT_EQ(*st, 0);
  EXPECT_EQ(hex(file_digest(out)), hex(pattern_digest(kSeed + 1, kSize)));
  EXPECT_EQ(cuts, kCuts);
  // The server saw one connection, never reset, that completed.
  EXPECT_EQ(http.connections(), 1u);
  EXPECT_EQ(http.resets(), 0u);
  EXPECT_EQ(http.completed(), 1u);
  EXPECT_GE(relay.accepted(), static_cast<std::uint64_t>(kCuts + 1));
  EXPECT_TRUE(proxy->wait_for("migrated to", seconds(5)));
  std::cout << "[ figures  ] 64 MiB through roam socks -> roam proxy, " << cuts << " cuts, relay accepted "
            << relay.accepted() << " connections; server saw " << http.connections() << " connection, "
            << http.resets() << " resets\n";
}

// --- ssh through netcat-openbsd's SOCKS5 client -------------------------------------------------

std::uint16_t free_port() {
  std::uint16_t port = 0;
  const int fd = listen_loopback(port);
  ::close(fd);
  return port;
}

struct Sshd {
  std::shared_ptr<Process> daemon;
  std::uint16_t port = 0;
  fs::path key;
};

std::optional<Sshd> start_sshd(const fs::path& dir, std::string& why) {
  const char* keygen = "/usr/bin/ssh-keygen";
  std::string log;
  auto a = run({keygen, "-q", "-t", "ed25519", "-N", "", "-f", (dir / "host_key").string()}, seconds(20), &log);
  auto b = run({keygen, "-q", "-t", "ed25519", "-N", "", "-f", (dir / "client_key").string()}, seconds(20), &log);
  if (!a || *a != 0 || !b || *b != 0) {
    why = "ssh-keygen failed: " + log;
    return std::nullopt;
  }
  fs::copy_file(dir / "client_key.pub", dir / "authorized_keys");
  ::mkdir("/run/sshd", 0755);
  Sshd s;
  s.port = free_port();
  s.key = dir / "client_key";
  {
    std::ofstream cfg(dir / "sshd_config");
    cfg << "ListenAddress 127.0.0.1\nPort " << s.port << "\nHostKey " << (dir / "host_key").string()
        << "\nAuthorizedKeysFile " << (dir / "authorized_keys").string() << "\nPidFile "
        << (dir / "sshd.pid").string()
        << "\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        << "PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\n";
  }
  s.daemon = std::make_shared<Process>(
      std::vector<std::string>{"/usr/sbin/sshd", "-D", "-e", "-f", (dir / "sshd_config").string()});
  if (!s.daemon->wait_for("Server listening on 127.0.0.1 port " + std::to_string(s.port))) {
    why = "sshd did not start: " + s.daemon->log();
    return std::nullopt;
  }
  return s;
}

// Runs `remote` over ssh whose ProxyCommand is nc through the SOCKS5 server on `socks_port`;
// returns ssh's exit status and stdout.
std::pair<std::optional<int>, std::string> ssh_via_nc(const Sshd& s, std::uint16_t socks_port,
                                                      const std::string& remote) {
  SpawnOptions so;
  so.pipe_stdout = true;
  Process p({"/usr/bin/ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i",
             s.key.string(), "-o",
             "ProxyCommand=nc -X 5 -x 127.0.0.1:" + std::to_string(socks_port) + " %h %p", "-p",
             std::to_string(s.port), "root@127.0.0.1", remote},
            so);
  const int fd = p.take_stdout();
  std::string bytes;
  const auto deadline = Clock::now() + seconds(60);
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd pf{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&pf, 1, static_cast<int>(left)) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);  // a pipe
    if (n <= 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto st = p.wait_exit(seconds(30));
  return {st, bytes};
}

TEST(ProxySsh, NetcatProxyCommandDirectAndThroughRoamSocks) {
  for (const char* tool : {"/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/nc"})
    if (!have(tool)) GTEST_SKIP() << tool << " is not installed (openssh-server, netcat-openbsd)";
  if (::geteuid() != 0) GTEST_SKIP() << "not root: sshd cannot log in as another user here";
  {
    std::string log;
    run({"/usr/bin/nc", "-h"}, seconds(5), &log);
    if (log.find("-X") == std::string::npos) GTEST_SKIP() << "nc is not netcat-openbsd (no -X)";
  }
  DumpOnFailure dump;
  TmpDir tmp;
  std::string why;
  auto sshd = start_sshd(tmp.path, why);
  ASSERT_TRUE(sshd) << why;
  dump.add(sshd->daemon);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8", "--heartbeat", "200ms"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  const std::string remote = "head -c 3000000 /dev/zero | sha256sum | cut -c1-64";
  // SHA-256 of 3,000,000 zero bytes.
  Digest zero{};
  {
    std::vector<std::uint8_t> z(3000000, 0);
    crypto_hash_sha256(zero.data(), z.data(), z.size());
  }
  auto [st, out] = ssh_via_nc(*sshd, pport, remote);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 0) << out;
  EXPECT_EQ(out, hex(zero) + "\n");

  // The same through roam socks → relay → roam proxy.
  RelayThread relay(pport);
  std::uint16_t sport = 0;
  auto socks = start_socks(relay.port(), {"--heartbeat", "200ms"}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  auto [st2, out2] = ssh_via_nc(*sshd, sport, remote);
  ASSERT_TRUE(st2.has_value());
  EXPECT_EQ(*st2, 0) << out2;
  EXPECT_EQ(out2, hex(zero) + "\n");
  EXPECT_TRUE(socks->wait_for("session ended cleanly", seconds(10)));
}

// --- proxychains4 wrapping curl -----------------------------------------------------------------

TEST(ProxyChains, WrapsCurl) {
  if (!have("/usr/bin/proxychains4")) GTEST_SKIP() << "proxychains4 is not installed";
  if (!have("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed";
  DumpOnFailure dump;
  TmpDir tmp;
  constexpr std::uint64_t kSize = 8 * kMiB;
  HttpServer http(kSize, kSeed + 2);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  const fs::path conf = tmp.path / "proxychains.conf";
  {
    std::ofstream c(conf);
    c << "strict_chain\nquiet_mode\nproxy_dns\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n"
      << "[ProxyList]\nsocks5 127.0.0.1 " << pport << "\n";
  }
  const fs::path out = tmp.path / "out";
  std::string log;
  auto st = run({"/usr/bin/proxychains4", "-q", "-f", conf.string(), "/usr/bin/curl", "-s", "-S", "-f",
                 "http://127.0.0.1:" + std::to_string(http.port()) + "/file", "-o", out.string()},
                seconds(60), &log);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 0) << log;
  EXPECT_EQ(hex(file_digest(out)), hex(pattern_digest(kSeed + 2, kSize)));
  EXPECT_EQ(http.connections(), 1u);
}

// --- hostile input ------------------------------------------------------------------------------

TEST(ProxyBadInput, MalformedAndUnsupportedWhileServingAnother) {
  if (!have("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed";
  DumpOnFailure dump;
  TmpDir tmp;
  constexpr std::uint64_t kSize = 16 * kMiB;
  HttpServer http(kSize, kSeed + 3, kMiB);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.1/32"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  // A download in progress through the same proxy, paused by the server.
  const fs::path out = tmp.path / "out";
  auto curl = std::make_shared<Process>(
      curl_argv(pport, "http://127.0.0.1:" + std::to_string(http.port()) + "/file", out));
  dump.add(curl);
  ASSERT_TRUE(http.wait_sent(kMiB, seconds(20)));

  // Not SOCKS5 at all: closed without a byte.
  for (const V& junk : {V{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n', '\r', '\n'},
                        V{0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00},  // SOCKS4
                        V{0x05, 0x00}}) {                                 // no methods
    const int fd = connect_loopback(pport);
    Answer a = exchange(fd, junk, 1);
    EXPECT_TRUE(a.bytes.empty());
    EXPECT_TRUE(a.closed || closes_quietly(fd));
    ::close(fd);
  }
  // Absurd lengths: a greeting announcing 255 methods, then EOF; a user name of 255 bytes cut off.
  {
    const int fd = connect_loopback(pport);
    Answer a = exchange(fd, V{0x05, 0xff, 0x00, 0x01, 0x02}, 1, /*half_close=*/true);
    EXPECT_TRUE(a.bytes.empty());
    EXPECT_TRUE(a.closed);
    ::close(fd);
  }
  {
    // 64 KiB of 0xff where the request should be: a general-failure reply, then closed.
    const int fd = connect_loopback(pport);
    V g = {0x05, 0x01, 0x00};
    g.insert(g.end(), 64 * 1024, 0xff);
    Answer a = exchange(fd, g, 2 + 10);
    ASSERT_GE(a.bytes.size(), 4u);
    EXPECT_EQ(a.bytes[3], 0x01);
    ::close(fd);
  }
  // An empty domain name: general failure.
  EXPECT_EQ(reply_code(pport, V{0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50}), 0x01);
  // Commands: BIND, UDP ASSOCIATE, unknown → command not supported, and closed.
  for (std::uint8_t cmd : {std::uint8_t{0x02}, std::uint8_t{0x03}, std::uint8_t{0x7f}}) {
    bool closed = false;
    EXPECT_EQ(reply_code(pport, request(cmd, v4(127, 0, 0, 1, http.port())), &closed), 0x07)
        << "command " << int(cmd);
    EXPECT_TRUE(closed);
  }
  // Unknown address type.
  EXPECT_EQ(reply_code(pport, V{0x05, 0x01, 0x00, 0x09, 127, 0, 0, 1, 0x00, 0x50}), 0x08);
  // Outside --allow-dest.
  EXPECT_EQ(reply_code(pport, request(1, v4(169, 254, 1, 1, 80))), 0x02);
  // A port nobody listens on: connection refused, from the real error.
  DeadPort dead;
  EXPECT_EQ(reply_code(pport, request(1, v4(127, 0, 0, 1, dead.port()))), 0x05);

  // The download carries on, intact.
  http.allow(kSize);
  auto st = curl->wait_exit(seconds(60));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 0);
  EXPECT_EQ(hex(file_digest(out)), hex(pattern_digest(kSeed + 3, kSize)));
  EXPECT_TRUE(proxy->running());
  EXPECT_TRUE(proxy->wait_for("not supported", seconds(1)));
  EXPECT_TRUE(proxy->wait_for("address type", seconds(1)));
}

TEST(ProxyBadInput, DefaultRulesDenyLocalDestinations) {
  DumpOnFailure dump;
  HttpServer http(1024, kSeed);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  const std::uint16_t hp = http.port();
  struct Case {
    const char* what;
    V req;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1", request(1, v4(127, 0, 0, 1, hp))},
      {"::1", request(1, v6({1}, hp))},
      {"169.254.1.1", request(1, v4(169, 254, 1, 1, hp))},
      {"::ffff:127.0.0.1", request(1, v6({0xff, 0xff, 127, 0, 0, 1}, hp))},
      {"0.0.0.0", request(1, v4(0, 0, 0, 0, hp))},
      {"224.0.0.1", request(1, v4(224, 0, 0, 1, hp))},
      {"localhost", request(1, core::socks5::Address::name("localhost", hp))},
      {"127.0.0.1 as a name", request(1, core::socks5::Address::name("127.0.0.1", hp))},
  };
  for (const Case& c : cases) {
    bool closed = false;
    EXPECT_EQ(reply_code(pport, c.req, &closed), 0x02) << c.what;
    EXPECT_TRUE(closed) << c.what;
  }
  EXPECT_EQ(http.connections(), 0u) << "a denied destination was connected to";
  EXPECT_TRUE(proxy->running());
  EXPECT_TRUE(proxy->wait_for("refused", seconds(1)));
  EXPECT_TRUE(proxy->wait_for("loopback", seconds(1)));
  // The same through the roam method (request inside the session): denied too.
  std::uint16_t sport = 0;
  auto socks = start_socks(pport, {}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  EXPECT_EQ(reply_code(sport, request(1, v4(127, 0, 0, 1, hp))), 0x02);
  EXPECT_EQ(reply_code(sport, request(1, core::socks5::Address::name("localhost", hp))), 0x02);
  EXPECT_EQ(http.connections(), 0u);
}

TEST(ProxyBadInput, UsersFileAndWrongPasswords) {
  DumpOnFailure dump;
  TmpDir tmp;
  const fs::path users = tmp.path / "users";
  {
    std::ofstream u(users);
    u << "# test users\nalice:s3cret\n";
  }
  HttpServer http(4096, kSeed + 4);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.1/32", "--users", users.string()}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  // No acceptable method without username/password.
  {
    const int fd = connect_loopback(pport);
    Answer a = exchange(fd, V{0x05, 0x01, 0x00}, 2);
    EXPECT_EQ(a.bytes, (V{0x05, 0xff}));
    EXPECT_TRUE(a.closed || closes_quietly(fd));
    ::close(fd);
  }
  // Wrong passwords and unknown users: status 1, closed.
  for (const auto& [user, pass] : std::vector<std::pair<std::string, std::string>>{
           {"alice", "wrong"}, {"alice", "s3cre"}, {"bob", "s3cret"}, {"alice", "s3cret0"}}) {
    const int fd = connect_loopback(pport);
    V out = {0x05, 0x01, 0x02};
    ASSERT_TRUE(core::socks5::encode_userpass({user, pass}, out));
    Answer a = exchange(fd, out, 4);
    EXPECT_EQ(a.bytes, (V{0x05, 0x02, 0x01, 0x01})) << user << ":" << pass;
    EXPECT_TRUE(a.closed || closes_quietly(fd));
    ::close(fd);
  }
  // The right one, pipelined with the request.
  {
    const int fd = connect_loopback(pport);
    V out = {0x05, 0x01, 0x02};
    ASSERT_TRUE(core::socks5::encode_userpass({"alice", "s3cret"}, out));
    const V rq = request(1, v4(127, 0, 0, 1, http.port()));
    out.insert(out.end(), rq.begin(), rq.end());
    Answer a = exchange(fd, out, 4 + 10);
    ASSERT_EQ(a.bytes.size(), 14u);
    EXPECT_EQ(a.bytes[3], 0x00);  // auth ok
    EXPECT_EQ(a.bytes[5], 0x00);  // connected
    ::close(fd);
  }
  EXPECT_TRUE(proxy->wait_for("wrong user name or password", seconds(1)));
  // roam socks with and without credentials.
  std::uint16_t good = 0, bad = 0;
  auto s1 = start_socks(pport, {"--user", "alice:s3cret"}, good);
  auto s2 = start_socks(pport, {"--user", "alice:nope"}, bad);
  dump.add(s1);
  dump.add(s2);
  ASSERT_NE(good, 0);
  ASSERT_NE(bad, 0);
  EXPECT_EQ(reply_code(good, request(1, v4(127, 0, 0, 1, http.port()))), 0x00);
  EXPECT_EQ(reply_code(bad, request(1, v4(127, 0, 0, 1, http.port()))), 0x02);
}

TEST(ProxyBadInput, ForgedReattachIsRefused) {
  ASSERT_TRUE(core::crypto::init());
  DumpOnFailure dump;
  std::uint16_t pport = 0;
  auto proxy = start_proxy({}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  // Method 0x80, then a MIGRATE naming a session that does not exist (random token and MAC).
  core::wire::Migrate m;
  core::crypto::system_rng().fill(m.token);
  core::crypto::system_rng().fill(m.mac);
  m.request = 1;
  V out = {0x05, 0x01, 0x80};
  core::wire::encode_preamble(out);
  core::wire::encode(m, out);
  const int fd = connect_loopback(pport);
  ReadEnd how;
  ASSERT_TRUE(send_all(fd, out.data(), out.size(), seconds(10)));
  auto got = read_until_close(fd, seconds(10), how);
  ::close(fd);
  ASSERT_GE(got.size(), 2 + core::wire::kPreambleSize + core::wire::kFrameHeaderSize);
  EXPECT_EQ(got[0], 0x05);
  EXPECT_EQ(got[1], 0x80);
  EXPECT_EQ(got[2 + core::wire::kPreambleSize], static_cast<std::uint8_t>(core::wire::FrameType::kRefused));
  // Garbage after the method choice: closed, never forwarded anywhere.
  const int fd2 = connect_loopback(pport);
  Answer a = exchange(fd2, V{0x05, 0x01, 0x80, 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '0', '\r', '\n', '\r', '\n'}, 4096);
  EXPECT_TRUE(a.closed);
  ASSERT_GE(a.bytes.size(), 2u);
  EXPECT_EQ(a.bytes[1], 0x80);
  ::close(fd2);
  EXPECT_TRUE(proxy->wait_for("refused migrate request", seconds(1)));
  EXPECT_TRUE(proxy->running());
}

TEST(ProxyBadInput, ReplayedReattachWinsNothing) {
  if (!have("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed";
  DumpOnFailure dump;
  TmpDir tmp;
  constexpr std::uint64_t kSize = 16 * kMiB;
  HttpServer http(kSize, kSeed + 5, 2 * kMiB);
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8", "--heartbeat", "200ms", "--buffer", "1M"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  // roam socks → relay (cut) → tap (records what the mobile host sends) → roam proxy.
  TapProxy tap(pport);
  RelayThread relay(tap.port());
  std::uint16_t sport = 0;
  auto socks = start_socks(relay.port(), {"--heartbeat", "200ms", "--buffer", "1M"}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  const fs::path out = tmp.path / "out";
  auto curl = std::make_shared<Process>(
      curl_argv(sport, "http://127.0.0.1:" + std::to_string(http.port()) + "/file", out));
  dump.add(curl);
  ASSERT_TRUE(http.wait_sent(2 * kMiB, seconds(20)));
  ASSERT_EQ(relay.cut(), 1u);
  // The re-attachment: greeting, preamble, MIGRATE (3 + 8 + 4 + 64 bytes), as sent in clear.
  constexpr std::size_t kReattach = 3 + core::wire::kPreambleSize + core::wire::kFrameHeaderSize + 64;
  auto idx = tap.wait_recorded(1, kReattach, seconds(20));
  ASSERT_TRUE(idx.has_value()) << "no re-attachment seen";
  V copy = tap.recorded(*idx);
  copy.resize(kReattach);
  ASSERT_EQ(copy[0], 0x05);
  ASSERT_EQ(copy[2], 0x80);
  ASSERT_EQ(copy[3 + core::wire::kPreambleSize], static_cast<std::uint8_t>(core::wire::FrameType::kMigrate));
  // Replayed by someone else, straight to the proxy: it gets at most a challenge it cannot answer
  // (or STALE), never an ACCEPT, never data.
  for (int i = 0; i < 2; ++i) {
    const int fd = connect_loopback(pport);
    ASSERT_TRUE(send_all(fd, copy.data(), copy.size(), seconds(5)));
    ReadEnd how;
    auto got = read_until_close(fd, seconds(8), how, 4096);
    ::close(fd);
    ASSERT_GE(got.size(), 2 + core::wire::kPreambleSize + core::wire::kFrameHeaderSize);
    const std::uint8_t type = got[2 + core::wire::kPreambleSize];
    EXPECT_TRUE(type == static_cast<std::uint8_t>(core::wire::FrameType::kChallenge) ||
                type == static_cast<std::uint8_t>(core::wire::FrameType::kStale) ||
                type == static_cast<std::uint8_t>(core::wire::FrameType::kRefused))
        << "replay answered with frame type " << int(type);
    auto h = core::wire::decode_header(core::Bytes(got).subspan(2 + core::wire::kPreambleSize));
    ASSERT_TRUE(h);
    EXPECT_EQ(got.size(), 2 + core::wire::kPreambleSize + core::wire::kFrameHeaderSize + h->length)
        << "bytes beyond the one answer went to the replayer";
  }
  // The genuine session carries on, intact; the server saw one connection, never reset.
  http.allow(kSize);
  auto st = curl->wait_exit(seconds(60));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, 0);
  EXPECT_EQ(hex(file_digest(out)), hex(pattern_digest(kSeed + 5, kSize)));
  EXPECT_EQ(http.connections(), 1u);
  EXPECT_EQ(http.resets(), 0u);
}

}  // namespace
}  // namespace roam::ptest
