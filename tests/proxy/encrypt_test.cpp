// --encrypt, --key and --known-hosts on `roam socks` → `roam proxy`, with real processes on
// loopback: an encrypted session carries several MiB each way through cuts of the mobile leg,
// exactly; a tap on that leg sees only SEALED frames and none of the application's bytes (and,
// as a control, does see them when nothing is encrypted); the agent pins the proxy's key on first
// use and refuses a proxy that presents another key or none; a proxy that requires encryption
// refuses a plain agent, with the reason logged on both sides.
//
// The application is a small SOCKS5 client written here (greeting, CONNECT 127.0.0.1:PORT, then
// the harness's duplex pump), the target a harness Service. The mobile leg is
//   roam socks → RelayThread (cuts) → TapProxy (records both directions) → roam proxy.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "core/socks5/socks5.hpp"
#include "core/wire/frames.hpp"
#include "itest_util.hpp"
#include "key_file.hpp"
#include "proxy_util.hpp"

namespace roam::ptest {
namespace {

using namespace roam::itest;
namespace fs = std::filesystem;
using V = std::vector<std::uint8_t>;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Frames seen on one side of the mobile leg: SOCKS method bytes, the roam preamble, then frames
// (docs/PROTOCOL.md §MSOCKS "On the wire"). A recording that ends inside a frame (a cut) is fine.
struct WireTally {
  std::map<int, std::size_t> types;  // frame type → count
  std::vector<std::string> errors;
};

void tally(const V& b, bool up, WireTally& t) {
  if (b.empty()) return;  // a connection the cut ended before it said anything
  const std::size_t socks_len = up ? 3 : 2;
  const bool socks_ok = up ? b.size() >= 3 && b[0] == 0x05 && b[2] == core::socks5::kMethodRoam
                           : b.size() >= 2 && b[0] == 0x05 && b[1] == core::socks5::kMethodRoam;
  if (!socks_ok) {
    if (b.size() >= socks_len) t.errors.push_back("no SOCKS5 method selection of roam's method");
    return;
  }
  std::size_t off = socks_len;
  if (b.size() < off + core::wire::kPreambleSize) return;
  if (std::memcmp(b.data() + off, "ROAM", 4) != 0) {
    t.errors.push_back("no roam preamble after the method selection");
    return;
  }
  off += core::wire::kPreambleSize;
  while (off + core::wire::kFrameHeaderSize <= b.size()) {
    const std::size_t len =
        (std::size_t{b[off + 1]} << 16) | (std::size_t{b[off + 2]} << 8) | b[off + 3];
    if (off + core::wire::kFrameHeaderSize + len > b.size()) break;
    ++t.types[b[off]];
    off += core::wire::kFrameHeaderSize + len;
  }
}

// Finds stretches of seeded pattern streams (harness PatternStream) in recorded bytes. Each
// stream's 64-byte blocks are indexed by their first 8 bytes, so any run of 127 or more bytes of
// a stream is found wherever it lies (it contains a whole block).
class PlaintextFinder {
 public:
  static constexpr std::size_t kBlock = 64;

  void add(std::uint64_t seed, std::size_t n) {
    V s(n);
    PatternStream(seed).fill(s.data(), n);
    streams_.push_back(std::move(s));
    const V& st = streams_.back();
    for (std::size_t off = 0; off + kBlock <= n; off += kBlock)
      index_.emplace(word(st.data() + off), std::make_pair(streams_.size() - 1, off));
  }
  // Where in `rec` a block of a stream lies, as text ("" when none does).
  std::string find(const V& rec) const {
    for (std::size_t i = 0; i + kBlock <= rec.size(); ++i) {
      auto [lo, hi] = index_.equal_range(word(rec.data() + i));
      for (auto it = lo; it != hi; ++it) {
        const auto& [s, off] = it->second;
        if (std::memcmp(rec.data() + i, streams_[s].data() + off, kBlock) == 0)
          return "bytes " + std::to_string(off) + ".. of stream " + std::to_string(s) +
                 " at offset " + std::to_string(i);
      }
    }
    return "";
  }

 private:
  static std::uint64_t word(const std::uint8_t* p) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
  }
  std::vector<V> streams_;
  std::unordered_multimap<std::uint64_t, std::pair<std::size_t, std::size_t>> index_;
};

struct TapRun {
  DuplexResult app, service;
  int cuts = 0;
  std::size_t connections = 0;
  WireTally up, down;
  std::string plaintext;      // where the tap saw the application's bytes ("" if nowhere)
  bool request_seen = false;  // the SOCKS request (it rides inside the session) seen in clear
};

// `bytes` each way between the SOCKS application and a Service, through
// roam socks → relay → tap → roam proxy, with a cut of the relay after every `cut_every`
// bytes the service received (0: no cuts); then everything the tap recorded is analysed.
TapRun run_through_tap(std::vector<std::string> proxy_flags, std::vector<std::string> socks_flags,
                       std::uint64_t bytes, std::uint64_t cut_every, DumpOnFailure& dump) {
  constexpr std::uint64_t kUpSeed = 0xe2e001, kDownSeed = 0xe2e002;
  TapRun run;
  RelayThread* relay_ptr = nullptr;
  std::atomic<std::uint64_t> next_cut{cut_every};
  std::atomic<int> cuts{0};
  DuplexOptions svc_opts;
  svc_opts.send_bytes = bytes;
  svc_opts.seed = kDownSeed;
  svc_opts.timeout = seconds(90);
  svc_opts.on_progress = [&](std::uint64_t n) {
    std::uint64_t at = next_cut.load();
    if (cut_every == 0 || n < at || n + cut_every > bytes ||
        !next_cut.compare_exchange_strong(at, at + cut_every))
      return;
    if (relay_ptr && relay_ptr->cut() > 0) ++cuts;
  };
  Service service(svc_opts, seconds(30));
  std::uint16_t pport = 0;
  proxy_flags.insert(proxy_flags.end(),
                     {"--allow-dest", "127.0.0.0/8", "--heartbeat", "200ms", "--buffer", "1M"});
  auto proxy = start_proxy(proxy_flags, pport);
  dump.add(proxy);
  if (pport == 0) {
    ADD_FAILURE() << "roam proxy did not start";
    return run;
  }
  TapProxy tap(pport, std::size_t{4} * bytes + (4u << 20));
  RelayThread relay(tap.port());
  relay_ptr = &relay;
  std::uint16_t sport = 0;
  socks_flags.insert(socks_flags.end(), {"--heartbeat", "200ms", "--buffer", "1M"});
  auto socks = start_socks(relay.port(), socks_flags, sport);
  dump.add(socks);
  if (sport == 0) {
    ADD_FAILURE() << "roam socks did not start";
    return run;
  }
  int fd = -1;
  ReadEnd how;
  const int code = socks_connect(sport, service.port(), fd, how);
  EXPECT_EQ(code, 0) << "SOCKS reply (" << read_end_name(how) << ")";
  if (code == 0) {
    DuplexOptions app_opts;
    app_opts.send_bytes = bytes;
    app_opts.seed = kUpSeed;
    app_opts.timeout = seconds(90);
    run.app = run_duplex(fd, fd, app_opts);
    ::close(fd);
  }
  run.service = service.result();
  relay_ptr = nullptr;
  run.cuts = cuts.load();

  PlaintextFinder finder;
  finder.add(kUpSeed, bytes);
  finder.add(kDownSeed, bytes);
  const V req = connect_request(service.port());
  run.connections = tap.connections();
  for (std::size_t i = 0; i < run.connections; ++i) {
    const V up = tap.recorded(i), down = tap.recorded_down(i);
    tally(up, true, run.up);
    tally(down, false, run.down);
    for (const V* rec : {&up, &down})
      if (run.plaintext.empty()) {
        const std::string where = finder.find(*rec);
        if (!where.empty())
          run.plaintext =
              "connection " + std::to_string(i) + (rec == &up ? " up: " : " down: ") + where;
      }
    run.request_seen = run.request_seen ||
                       std::search(up.begin(), up.end(), req.begin(), req.end()) != up.end();
  }
  EXPECT_EQ(run.app.received, bytes) << run.app.summary();
  EXPECT_EQ(run.service.received, bytes) << run.service.summary();
  EXPECT_EQ(hex(run.service.received_digest), hex(pattern_digest(kUpSeed, bytes)));
  EXPECT_EQ(hex(run.app.received_digest), hex(pattern_digest(kDownSeed, bytes)));
  EXPECT_TRUE(run.app.got_eof && run.service.got_eof);
  EXPECT_FALSE(run.app.got_reset || run.service.got_reset);
  return run;
}

std::size_t count(const WireTally& t, core::wire::FrameType type) {
  auto it = t.types.find(static_cast<int>(type));
  return it == t.types.end() ? 0 : it->second;
}

// Frames that must never cross an encrypted path in clear.
std::size_t clear_session_frames(const WireTally& t) {
  using core::wire::FrameType;
  return count(t, FrameType::kData) + count(t, FrameType::kAck) + count(t, FrameType::kFin) +
         count(t, FrameType::kClose);
}

TEST(ProxyEncrypt, SealedSessionSurvivesCutsExactlyAndNoPlaintextCrossesTheMobileLeg) {
  DumpOnFailure dump;
  TmpDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string key = (tmp.path / "proxy_key").string();
  write_server_key(key);
  constexpr std::uint64_t kBytes = 12 * kMiB;
  const std::string known = (tmp.path / "known_hosts").string();
  const TapRun r = run_through_tap({"--encrypt", "--key", key},
                                   {"--encrypt", "--known-hosts", known}, kBytes, kMiB, dump);
  using core::wire::FrameType;
  std::cout << "[ figures  ] encrypted MSOCKS: " << r.cuts << " cuts, " << r.connections
            << " connections on the mobile leg, " << count(r.up, FrameType::kSealed)
            << " SEALED up, "
            << count(r.down, FrameType::kSealed) << " SEALED down; app " << r.app.summary()
            << "; service " << r.service.summary() << "\n";
  EXPECT_GE(r.cuts, 5);
  EXPECT_GE(r.connections, static_cast<std::size_t>(r.cuts) + 1);
  EXPECT_TRUE(r.up.errors.empty() && r.down.errors.empty())
      << (r.up.errors.empty() ? "" : r.up.errors.front())
      << (r.down.errors.empty() ? "" : r.down.errors.front());
  // Every session frame crossed SEALED; handshake and migrate frames in clear, as specified.
  EXPECT_EQ(clear_session_frames(r.up), 0u);
  EXPECT_EQ(clear_session_frames(r.down), 0u);
  EXPECT_GT(count(r.up, FrameType::kSealed), 0u);
  EXPECT_GT(count(r.down, FrameType::kSealed), 0u);
  EXPECT_EQ(count(r.up, FrameType::kHello), 1u);
  EXPECT_EQ(count(r.down, FrameType::kServerKey), 1u);
  // Re-attachments were sealed too (a cut may also end an attempt before its ACCEPT).
  EXPECT_GE(count(r.down, FrameType::kAccept), 1u);
  EXPECT_GE(count(r.up, FrameType::kMigrate), count(r.down, FrameType::kAccept));
  // None of the application's bytes, and not the SOCKS request either, in clear.
  EXPECT_EQ(r.plaintext, "");
  EXPECT_FALSE(r.request_seen);
}

// The control for the test above: the same tap and finder do see the bytes of a session that is
// not encrypted (so "nothing found" there means something).
TEST(ProxyEncrypt, TapSeesTheBytesOfAnUnencryptedSession) {
  DumpOnFailure dump;
  const TapRun r = run_through_tap({}, {}, 2 * kMiB, 0, dump);
  using core::wire::FrameType;
  EXPECT_NE(r.plaintext, "");
  EXPECT_TRUE(r.request_seen);
  EXPECT_GT(count(r.up, FrameType::kData), 0u);
  EXPECT_EQ(count(r.up, FrameType::kSealed) + count(r.down, FrameType::kSealed), 0u);
}

// A proxy without --encrypt encrypts whenever the agent asks (docs/PROTOCOL.md §Negotiation): an
// agent with --encrypt gets a sealed session from any proxy of this version, never a clear one.
TEST(ProxyEncrypt, EncryptingAgentGetsASealedSessionFromAProxyWithoutEncrypt) {
  DumpOnFailure dump;
  TmpDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const TapRun r = run_through_tap(
      {}, {"--encrypt", "--known-hosts", (tmp.path / "known_hosts").string()}, 2 * kMiB, kMiB / 2,
      dump);
  using core::wire::FrameType;
  EXPECT_GE(r.cuts, 1);
  EXPECT_EQ(clear_session_frames(r.up) + clear_session_frames(r.down), 0u);
  EXPECT_GT(count(r.down, FrameType::kSealed), 0u);
  EXPECT_EQ(r.plaintext, "");
  EXPECT_FALSE(r.request_seen);
  // No --key on the proxy: nothing to pin.
  EXPECT_FALSE(fs::exists(tmp.path / "known_hosts"));
}

// One SOCKS application through `socks_port` to a Service that answers a half-closed request with
// 100 bytes; returns the reply code (-1 when the connection ended without one) and what ended it.
int one_request(std::uint16_t socks_port, std::uint16_t target_port, ReadEnd& how) {
  int fd = -1;
  const int code = socks_connect(socks_port, target_port, fd, how);
  if (code != 0) return code;
  const char msg[] = "hello";
  EXPECT_TRUE(send_all(fd, msg, 5, seconds(5)));
  ::shutdown(fd, SHUT_WR);
  (void)read_until_close(fd, seconds(10), how);
  ::close(fd);
  return code;
}

TEST(ProxyEncrypt, AgentPinsTheProxyKeyOnFirstUseAndRefusesAnotherKeyOrNone) {
  DumpOnFailure dump;
  TmpDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string k1 = (tmp.path / "k1").string(), k2 = (tmp.path / "k2").string();
  const std::string pub1 = write_server_key(k1), pub2 = write_server_key(k2);
  const fs::path known = tmp.path / "cfg" / "known_hosts";
  DuplexOptions svc_opts;
  svc_opts.send_after_eof = true;
  svc_opts.send_bytes = 100;
  svc_opts.timeout = seconds(10);

  // A known_hosts file the user started, whose last line has no newline.
  fs::create_directories(known.parent_path());
  std::ofstream(known) << "# my roam servers";

  Service service(svc_opts, seconds(30));
  std::uint16_t pport = 0;
  auto first = start_proxy({"--allow-dest", "127.0.0.0/8", "--encrypt", "--key", k1}, pport);
  dump.add(first);
  ASSERT_NE(pport, 0);
  std::uint16_t sport = 0;
  auto socks = start_socks(pport, {"--encrypt", "--known-hosts", known.string()}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  const std::string proxy_name = loopback_ep(pport);

  ReadEnd how;
  EXPECT_EQ(one_request(sport, service.port(), how), 0);
  EXPECT_EQ(how, ReadEnd::kEof);
  EXPECT_EQ(service.result().received, 5u);
  EXPECT_TRUE(socks->wait_for("pinned the key of " + proxy_name + " (" + pub1 + ") in " +
                              known.string() + ":2"))
      << socks->log();
  const std::string pinned = "# my roam servers\n" + proxy_name + " " + pub1 + "\n";
  EXPECT_EQ(slurp(known), pinned);

  // The same address, another key: refused before the proxy connects anywhere, with ssh's
  // warning (naming the file and line) in the agent's log; the application sees an abort.
  first->terminate();
  Service service2(svc_opts, seconds(2));
  auto second = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "proxy", "--listen", proxy_name, "--allow-dest", "127.0.0.0/8", "--encrypt",
      "--key", k2});
  dump.add(second);
  ASSERT_EQ(second->wait_listening(), pport);
  EXPECT_EQ(one_request(sport, service2.port(), how), -1);
  EXPECT_EQ(how, ReadEnd::kReset);
  EXPECT_TRUE(socks->wait_for("HAS CHANGED")) << socks->log();
  const std::string log = socks->log();
  EXPECT_NE(log.find("ROAM SERVER " + proxy_name + " HAS CHANGED"), std::string::npos) << log;
  EXPECT_NE(log.find("it presents " + pub2), std::string::npos) << log;
  EXPECT_NE(log.find("The pinned key is in " + known.string() + ":2;"), std::string::npos) << log;
  EXPECT_TRUE(second->wait_for("server key changed")) << second->log();
  EXPECT_EQ(second->log().find("connected to"), std::string::npos) << second->log();
  EXPECT_EQ(service2.result().received, 0u);  // never connected
  EXPECT_EQ(slurp(known), pinned);
  EXPECT_TRUE(socks->running());

  // A proxy that presents no key at all is refused too (stripping the key is no way around it).
  second->terminate();
  Service service3(svc_opts, seconds(2));
  auto third = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "proxy", "--listen", proxy_name, "--allow-dest", "127.0.0.0/8"});
  dump.add(third);
  ASSERT_EQ(third->wait_listening(), pport);
  EXPECT_EQ(one_request(sport, service3.port(), how), -1);
  EXPECT_TRUE(socks->wait_for("presented no key")) << socks->log();
  EXPECT_EQ(service3.result().received, 0u);
  EXPECT_EQ(slurp(known), pinned);
  EXPECT_TRUE(socks->running());
}

TEST(ProxyEncrypt, ProxyRequiringEncryptionRefusesAPlainAgentWithTheReasonOnBothSides) {
  DumpOnFailure dump;
  DuplexOptions svc_opts;
  svc_opts.timeout = seconds(5);
  Service service(svc_opts, seconds(2));
  std::uint16_t pport = 0;
  auto proxy = start_proxy({"--allow-dest", "127.0.0.0/8", "--encrypt"}, pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  std::uint16_t sport = 0;
  auto socks = start_socks(pport, {}, sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  ReadEnd how;
  EXPECT_EQ(one_request(sport, service.port(), how), -1);
  EXPECT_EQ(how, ReadEnd::kReset);
  EXPECT_TRUE(socks->wait_for("this server requires encryption (run the client with --encrypt)"))
      << socks->log();
  EXPECT_TRUE(proxy->wait_for("this server requires encryption")) << proxy->log();
  EXPECT_EQ(proxy->log().find("connected to"), std::string::npos) << proxy->log();
  EXPECT_EQ(service.result().received, 0u);
  EXPECT_TRUE(proxy->running() && socks->running());
}

}  // namespace
}  // namespace roam::ptest
