// `--workers 2` on `roam server` and `roam proxy` (io/workers.hpp): many sessions cut several
// times, so that their migrate requests land on the worker that does not hold them and are handed
// over; every byte exact both ways; an unknown token answered exactly as by one process, the
// refusal limiter charged once per attempt; SIGTERM ends every worker; a killed worker makes the
// daemon exit 1 saying which worker died and how.
#include <gtest/gtest.h>
#include <signal.h>
#include <sodium.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/crypto/crypto.hpp"
#include "core/wire/frames.hpp"
#include "io/control.hpp"
#include "proxy_util.hpp"

namespace roam::itest {
namespace {

using V = std::vector<std::uint8_t>;

constexpr std::size_t kSessions = 40;
constexpr int kCuts = 4;                      // each session migrates this often
constexpr std::size_t kChunk = 48 * 1024;     // bytes each session sends (and gets echoed) per round

// Echoes every connection it accepts until EOF, then half-closes it; remembers, per connection,
// how many bytes it received and their SHA-256.
class EchoService {
 public:
  EchoService() { fd_ = listen_loopback(port_); acceptor_ = std::thread([this] { accept_loop(); }); }
  ~EchoService() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : threads_) t.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  // Waits until `n` connections ended; returns (bytes, digest) of each.
  std::vector<std::pair<std::uint64_t, Digest>> wait_done(std::size_t n, std::chrono::milliseconds t) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, t, [&] { return done_.size() >= n; });
    return done_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      const int c = accept_with_timeout(fd_, milliseconds(200));
      if (c < 0) continue;
      threads_.emplace_back([this, c] { echo(c); });
    }
  }
  void echo(int c) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    std::uint64_t total = 0;
    std::vector<std::uint8_t> buf(64 * 1024);
    for (;;) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) {
        if (stop_) break;
        continue;
      }
      const ssize_t r = ::recv(c, buf.data(), buf.size(), 0);
      if (r <= 0) break;
      crypto_hash_sha256_update(&st, buf.data(), static_cast<unsigned long long>(r));
      total += static_cast<std::uint64_t>(r);
      if (!send_all(c, buf.data(), static_cast<std::size_t>(r), seconds(30))) break;
    }
    ::shutdown(c, SHUT_WR);
    Digest d;
    crypto_hash_sha256_final(&st, d.data());
    ::close(c);
    std::lock_guard<std::mutex> lk(mu_);
    done_.emplace_back(total, d);
    cv_.notify_all();
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::uint64_t, Digest>> done_;
};

// Lock-step rounds: every session sends a chunk and reads its echo, then waits while the test cuts
// every connection of the relay.
class Rounds {
 public:
  // A session finished round `r`.
  void arrive(int r) {
    std::lock_guard<std::mutex> lk(mu_);
    ++arrived_[r];
    cv_.notify_all();
  }
  bool wait_arrived(int r, std::size_t n, std::chrono::milliseconds t) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, t, [&] { return arrived_[r] >= n; });
  }
  void release(int r) {
    std::lock_guard<std::mutex> lk(mu_);
    released_ = r;
    cv_.notify_all();
  }
  bool wait_released(int r, std::chrono::milliseconds t) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, t, [&] { return released_ >= r; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::size_t> arrived_;
  int released_ = -1;
};

// One application connection (already through the agent): kCuts + 1 rounds of kChunk bytes of the
// seeded stream, each echoed back and compared, then a half-close and a clean EOF.
std::string run_session(int fd, std::uint64_t seed, Rounds& rounds) {
  PatternStream stream(seed);
  V out(kChunk), back(kChunk);
  for (int r = 0; r <= kCuts; ++r) {
    stream.fill(out.data(), out.size());
    if (!send_all(fd, out.data(), out.size(), seconds(60))) return "send failed in round " + std::to_string(r);
    ReadEnd how;
    if (!ptest::recv_exact(fd, back.data(), back.size(), how))
      return std::string("echo ended in round ") + std::to_string(r) + ": " + read_end_name(how);
    if (back != out) return "echo differs in round " + std::to_string(r);
    rounds.arrive(r);
    if (r < kCuts && !rounds.wait_released(r, seconds(60))) return "never released";
  }
  ::shutdown(fd, SHUT_WR);
  ReadEnd how;
  auto rest = read_until_close(fd, seconds(20), how);
  if (!rest.empty() || how != ReadEnd::kEof)
    return std::string("end: ") + std::to_string(rest.size()) + " extra bytes, " + read_end_name(how);
  return {};
}

// The daemons of `dir` (the workers of the one under test).
std::vector<io::DaemonSnapshot> workers_of(const std::string& dir) {
  std::vector<io::DaemonSnapshot> out;
  for (const auto& a : io::query_control_dir(dir, seconds(3)))
    if (a.ok) out.push_back(a.snapshot);
  return out;
}

// Runs kSessions sessions through `connect_app` (which returns a connected application socket for
// session i) while `relay` cuts every path kCuts times; checks every byte and that both workers
// carried sessions and handed migrate requests over.
void many_sessions_through_cuts(const std::function<int(std::size_t)>& connect_app, RelayThread& relay,
                                EchoService& echo, const std::string& control_dir, const char* kind) {
  Rounds rounds;
  std::vector<std::string> errors(kSessions);
  std::vector<std::thread> apps;
  for (std::size_t i = 0; i < kSessions; ++i) {
    const int fd = connect_app(i);
    ASSERT_GE(fd, 0) << "session " << i << " could not connect";
    apps.emplace_back([&, i, fd] {
      errors[i] = run_session(fd, 0x3000 + i, rounds);
      ::close(fd);
    });
  }
  std::size_t cut_total = 0;
  for (int r = 0; r < kCuts; ++r) {
    const bool all = rounds.wait_arrived(r, kSessions, seconds(60));
    EXPECT_TRUE(all) << "round " << r << " did not complete";
    if (!all) break;
    const std::size_t cut = relay.cut();
    EXPECT_GE(cut, kSessions) << "round " << r << ": every session's path is cut";
    cut_total += cut;
    rounds.release(r);
  }
  rounds.release(kCuts);
  for (auto& t : apps) t.join();
  for (std::size_t i = 0; i < kSessions; ++i) EXPECT_EQ(errors[i], "") << "session " << i;

  // The service got each session's whole stream, exactly.
  const std::uint64_t each = kChunk * (kCuts + 1);
  auto done = echo.wait_done(kSessions, seconds(20));
  ASSERT_EQ(done.size(), kSessions);
  std::multiset<std::string> got, want;
  for (const auto& [n, d] : done) {
    EXPECT_EQ(n, each);
    got.insert(hex(d));
  }
  for (std::size_t i = 0; i < kSessions; ++i) want.insert(hex(pattern_digest(0x3000 + i, each)));
  EXPECT_EQ(got, want) << "a stream arrived corrupted at the service";

  // Both workers carried sessions, and migrate requests went from one to the other.
  const auto ws = workers_of(control_dir);
  ASSERT_EQ(ws.size(), 2u) << "roam status should list two workers";
  std::uint64_t passed = 0, received = 0, migrations = 0;
  std::set<unsigned> seen;
  for (const auto& w : ws) {
    EXPECT_EQ(w.kind, kind);
    EXPECT_EQ(w.workers, 2u);
    seen.insert(w.worker);
    EXPECT_GT(w.handshakes_ok, 0u) << "worker " << w.worker << " carried no session";
    passed += w.handoffs_passed;
    received += w.handoffs_received;
    migrations += w.migrations;
    std::cout << "[ figures  ] " << kind << " worker " << w.worker << "/2: " << w.handshakes_ok
              << " sessions, " << w.migrations << " migrations, " << w.handoffs_passed
              << " migrate requests passed on, " << w.handoffs_received << " taken over\n";
  }
  EXPECT_EQ(seen, (std::set<unsigned>{1, 2}));
  EXPECT_GE(passed, 1u) << "no migrate request was handed to the other worker";
  EXPECT_EQ(passed, received);
  EXPECT_GE(migrations, kSessions * kCuts) << "cuts " << cut_total;
}

TEST(Workers, ServerFortySessionsMigrateAcrossWorkersExactly) {
  ASSERT_TRUE(core::crypto::init());
  DumpOnFailure dump;
  ptest::TmpDir ctl;
  EchoService echo;
  std::uint16_t sport = 0;
  auto server = start_server(echo.port(),
                             {"--workers", "2", "--heartbeat", "200ms", "--control-dir", ctl.path.string()},
                             sport);
  dump.add(server);
  ASSERT_NE(sport, 0);
  RelayThread relay(sport);
  std::uint16_t lport = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, lport);
  dump.add(client);
  ASSERT_NE(lport, 0);
  many_sessions_through_cuts([&](std::size_t) { return connect_loopback(lport); }, relay, echo,
                             ctl.path.string(), "server");
}

TEST(Workers, ProxyFortySessionsReattachAcrossWorkersExactly) {
  ASSERT_TRUE(core::crypto::init());
  DumpOnFailure dump;
  ptest::TmpDir ctl;
  EchoService echo;
  std::uint16_t pport = 0;
  auto proxy = ptest::start_proxy({"--workers", "2", "--allow-dest", "127.0.0.0/8", "--heartbeat",
                                   "200ms", "--control-dir", ctl.path.string()},
                                  pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  RelayThread relay(pport);
  std::uint16_t sport = 0;
  auto socks = ptest::start_socks(relay.port(), {"--heartbeat", "200ms"}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  many_sessions_through_cuts(
      [&](std::size_t) {
        int fd = -1;
        ReadEnd how;
        return ptest::socks_connect(sport, echo.port(), fd, how) == 0 ? fd : -1;
      },
      relay, echo, ctl.path.string(), "proxy");
  // SIGHUP reaches every worker: each reloads its rules.
  ASSERT_EQ(::kill(proxy->pid(), SIGHUP), 0);
  EXPECT_TRUE(proxy->wait_until(
      [](const std::string& log) {
        std::size_t n = 0;
        for (auto at = log.find("access rules reloaded"); at != std::string::npos;
             at = log.find("access rules reloaded", at + 1))
          ++n;
        return n >= 2;
      },
      seconds(10)))
      << "both workers should reload on SIGHUP";
}

// Sends `bytes` on a new connection to `port`; returns everything the daemon answered.
V answer(std::uint16_t port, const V& bytes) {
  const int fd = connect_loopback(port);
  if (fd < 0) return {};
  ReadEnd how;
  EXPECT_TRUE(send_all(fd, bytes.data(), bytes.size(), seconds(5)));
  V got = read_until_close(fd, seconds(10), how, 4096);
  ::close(fd);
  return got;
}

TEST(Workers, UnknownTokenRefusedAsByOneProcessAndChargedOnce) {
  ASSERT_TRUE(core::crypto::init());
  DumpOnFailure dump;
  ptest::TmpDir ctl1, ctl2;
  DeadPort target;
  std::uint16_t one = 0, two = 0;
  auto s1 = start_server(target.port(), {"--control-dir", ctl1.path.string()}, one);
  auto s2 = start_server(target.port(), {"--workers", "2", "--control-dir", ctl2.path.string()}, two);
  dump.add(s1);
  dump.add(s2);
  ASSERT_NE(one, 0);
  ASSERT_NE(two, 0);
  core::wire::Migrate m;
  core::crypto::system_rng().fill(m.token);
  core::crypto::system_rng().fill(m.mac);
  m.request = 7;
  V req;
  core::wire::encode_preamble(req);
  core::wire::encode(m, req);
  const V reference = answer(one, req);
  ASSERT_GT(reference.size(), core::wire::kPreambleSize + core::wire::kFrameHeaderSize);
  EXPECT_EQ(reference[core::wire::kPreambleSize], static_cast<std::uint8_t>(core::wire::FrameType::kRefused));
  auto h = core::wire::decode_header(core::Bytes(reference).subspan(core::wire::kPreambleSize));
  ASSERT_TRUE(h);
  EXPECT_EQ(reference.size(), core::wire::kPreambleSize + core::wire::kFrameHeaderSize + h->length)
      << "one REFUSED frame, nothing else";

  // Well past one worker's burst of 20 refusals: each worker's limiter ends up dropping the rest.
  constexpr int kAttempts = 60;
  int refused = 0, dropped = 0;
  for (int i = 0; i < kAttempts; ++i) {
    const V got = answer(two, req);
    if (got.empty()) {
      ++dropped;
      continue;
    }
    ++refused;
    EXPECT_EQ(got, reference) << "attempt " << i << ": the answer differs from one process's";
  }
  std::cout << "[ figures  ] 2 workers, " << kAttempts << " MIGRATEs with an unknown token: "
            << refused << " REFUSED (byte-identical to one process's), " << dropped
            << " dropped by the limiter\n";
  EXPECT_GE(refused, 20);
  EXPECT_GE(dropped, 1) << "the per-source limiter no longer holds";
  // Each attempt was answered (or dropped) by exactly one worker — the one that accepted it —
  // after going round the ring once: two hand-overs each, one refusal counted each.
  std::uint64_t unknown = 0, limited = 0, passed = 0;
  for (const auto& w : workers_of(ctl2.path.string())) {
    auto it = w.refusals.find("unknown_session");
    unknown += it == w.refusals.end() ? 0 : it->second;
    it = w.refusals.find("rate_limited");
    limited += it == w.refusals.end() ? 0 : it->second;
    passed += w.handoffs_passed;
  }
  EXPECT_EQ(unknown, static_cast<std::uint64_t>(refused));
  EXPECT_EQ(limited, static_cast<std::uint64_t>(dropped));
  EXPECT_EQ(passed, 2u * kAttempts);
}

// The workers' pids, from their control sockets.
std::vector<pid_t> worker_pids(const std::string& dir) {
  std::vector<pid_t> out;
  for (const auto& w : workers_of(dir)) out.push_back(static_cast<pid_t>(w.pid));
  return out;
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Waits until both workers logged their control socket, then reads their pids from it.
std::vector<pid_t> wait_worker_pids(Process& daemon, const std::string& dir) {
  const bool both = daemon.wait_until(
      [](const std::string& log) {
        const auto first = log.find("control socket ");
        return first != std::string::npos && log.find("control socket ", first + 1) != std::string::npos;
      },
      seconds(10));
  EXPECT_TRUE(both) << "two workers should open their control sockets";
  return worker_pids(dir);
}

TEST(Workers, SigtermEndsEveryWorker) {
  DumpOnFailure dump;
  ptest::TmpDir ctl;
  DeadPort target;
  std::uint16_t port = 0;
  auto server = start_server(target.port(), {"--workers", "2", "--control-dir", ctl.path.string()}, port);
  dump.add(server);
  ASSERT_NE(port, 0);
  const std::vector<pid_t> pids = wait_worker_pids(*server, ctl.path.string());
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(server->pid(), SIGTERM), 0);
  const auto st = server->wait_exit(seconds(3));
  ASSERT_TRUE(st.has_value()) << "not ended within 3 s of SIGTERM";
  EXPECT_EQ(*st, 0);
  for (const pid_t p : pids) EXPECT_TRUE(gone(p)) << "worker " << p << " outlived the daemon";
}

TEST(Workers, KilledWorkerEndsTheDaemonWithStatusOne) {
  DumpOnFailure dump;
  ptest::TmpDir ctl;
  DeadPort target;
  std::uint16_t port = 0;
  auto proxy = ptest::start_proxy({"--workers", "2", "--control-dir", ctl.path.string()}, port);
  dump.add(proxy);
  ASSERT_NE(port, 0);
  const std::vector<pid_t> pids = wait_worker_pids(*proxy, ctl.path.string());
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  const auto st = proxy->wait_exit(seconds(5));
  ASSERT_TRUE(st.has_value()) << "the daemon went on without a worker";
  EXPECT_EQ(*st, 1);
  const std::string log = proxy->log();
  EXPECT_NE(log.find("(pid " + std::to_string(pids[1]) + ") was killed by signal 9 (SIGKILL) unexpectedly"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("exiting with status 1"), std::string::npos);
  for (const pid_t p : pids) EXPECT_TRUE(gone(p)) << "worker " << p << " outlived the daemon";
}

}  // namespace
}  // namespace roam::itest
