// Bad input against a running `roam server` that carries a live session with data flowing:
// garbage, a truncated handshake, an absurd frame length, a low-order public key, a MIGRATE
// with an unknown token and replays of real MIGRATE requests captured on the wire. Each must end
// only its own connection; the live session's data stays exact and the server keeps running.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <set>

#include "core/wire/frames.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

namespace wire = core::wire;

constexpr std::uint64_t kBytes = 8 * kMiB;  // each way, released step by step
constexpr std::uint64_t kStep = 512 * 1024;
constexpr std::chrono::milliseconds kReplyTimeout{8000};

std::vector<std::uint8_t> preamble() {
  std::vector<std::uint8_t> v;
  wire::encode_preamble(v);
  return v;
}

struct Parsed {
  bool preamble_ok = false;
  std::vector<std::uint8_t> types;  // frame types in order
  std::vector<std::vector<std::uint8_t>> payloads;
};

// Splits a server's reply into frames (as far as they are complete).
Parsed parse_reply(const std::vector<std::uint8_t>& in) {
  Parsed r;
  if (in.size() < wire::kPreambleSize || !wire::check_preamble(core::Bytes(in.data(), in.size())))
    return r;
  r.preamble_ok = true;
  std::size_t off = wire::kPreambleSize;
  while (off < in.size()) {
    auto h = wire::decode_header(core::Bytes(in.data() + off, in.size() - off));
    if (!h) break;
    const std::size_t end = off + wire::kFrameHeaderSize + h->length;
    if (end > in.size()) break;
    r.types.push_back(h->type);
    r.payloads.emplace_back(in.begin() + static_cast<std::ptrdiff_t>(off + wire::kFrameHeaderSize),
                            in.begin() + static_cast<std::ptrdiff_t>(end));
    off = end;
  }
  return r;
}

std::string type_names(const Parsed& p) {
  std::string s;
  for (auto t : p.types) s += std::string(s.empty() ? "" : ",") + wire::frame_type_name(t);
  return s.empty() ? "<no frames>" : s;
}

bool has_type(const Parsed& p, wire::FrameType t) {
  for (auto x : p.types)
    if (x == static_cast<std::uint8_t>(t)) return true;
  return false;
}

// Sends `bytes` on a fresh connection to the server (optionally half-closing), then reads until
// the server closes.
std::vector<std::uint8_t> poke(std::uint16_t port, const std::vector<std::uint8_t>& bytes,
                               bool half_close, ReadEnd& how) {
  const int fd = connect_loopback(port);
  if (fd < 0) {
    how = ReadEnd::kError;
    return {};
  }
  send_all(fd, bytes.data(), bytes.size(), seconds(5));
  if (half_close) ::shutdown(fd, SHUT_WR);
  auto got = read_until_close(fd, kReplyTimeout, how);
  ::close(fd);
  return got;
}

struct ReplayOutcome {
  Parsed reply;
  ReadEnd how = ReadEnd::kTimeout;
  bool answered_challenge = false;
};

// Replays a captured MIGRATE as an attacker who has only the wire bytes: answers a CHALLENGE
// with a RESPONSE it cannot MAC, and reads until the server closes.
ReplayOutcome replay(std::uint16_t port, const std::vector<std::uint8_t>& migrate) {
  ReplayOutcome out;
  const int fd = connect_loopback(port);
  if (fd < 0) {
    out.how = ReadEnd::kError;
    return out;
  }
  send_all(fd, migrate.data(), migrate.size(), seconds(5));
  std::vector<std::uint8_t> got;
  const auto deadline = Clock::now() + kReplyTimeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      out.how = ReadEnd::kTimeout;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    std::uint8_t buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      out.how = ReadEnd::kEof;
      break;
    }
    if (n < 0) {
      out.how = errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
      break;
    }
    got.insert(got.end(), buf, buf + n);
    out.reply = parse_reply(got);
    if (!out.answered_challenge && has_type(out.reply, wire::FrameType::kChallenge)) {
      std::size_t i = 0;
      while (out.reply.types[i] != static_cast<std::uint8_t>(wire::FrameType::kChallenge)) ++i;
      auto ch = wire::parse_challenge(core::Bytes(out.reply.payloads[i].data(), out.reply.payloads[i].size()));
      wire::Response resp;
      resp.request = ch ? ch->request : 0;
      resp.received = 0;
      resp.mac.fill(0x42);  // the attacker has no key
      std::vector<std::uint8_t> bytes;
      wire::encode(resp, bytes);
      send_all(fd, bytes.data(), bytes.size(), seconds(5));
      out.answered_challenge = true;
    }
  }
  out.reply = parse_reply(got);
  ::close(fd);
  return out;
}

TEST(BadInput, ServerSurvivesHostileConnectionsWhileALiveSessionFlows) {
  DumpOnFailure dump;
  constexpr std::uint64_t kUpSeed = 0xbad1, kDownSeed = 0xbad2;
  GatedStreams streams(kBytes, kStep, kUpSeed, kDownSeed, seconds(90));
  ProgressWatch& watch = streams.watch;
  Service service(streams.service);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  // client → CutRelay → tap (records client→server bytes) → server.
  TapProxy tap(server_port);
  RelayThread relay(tap.port());
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);

  ClientApp app_conn(local_port, streams.app);

  std::uint64_t mark = kStep;
  auto flows = [&](const char* after) {
    ASSERT_TRUE(watch.wait_both(mark, seconds(15)))
        << "the live session stalled after " << after << ": " << watch.text();
    ASSERT_TRUE(server->running()) << "roam server died after " << after;
    mark += kStep;
    streams.allow(mark);
  };
  flows("start");

  // 1. Not roam at all: a clear text reply and a close.
  {
    const std::string get = "GET / HTTP/1.0\r\n\r\n";
    ReadEnd how{};
    auto got = poke(server_port, std::vector<std::uint8_t>(get.begin(), get.end()), false, how);
    const std::string text(got.begin(), got.end());
    EXPECT_EQ(text.rfind("roam:", 0), 0u) << "reply: " << text;
    EXPECT_TRUE(how == ReadEnd::kEof || how == ReadEnd::kReset) << read_end_name(how);
    std::cout << "[ bad input] HTTP request → " << text.substr(0, text.find('\r')) << " ("
              << read_end_name(how) << ")\n";
  }
  flows("an HTTP request");

  // 2. A truncated handshake: preamble and half a HELLO, then the client closes.
  {
    std::vector<std::uint8_t> hello_bytes = preamble();
    wire::Hello h;
    h.features = wire::kFeatureResume;
    h.buffer_cap = 8 * kMiB;
    h.wait_ms = 600000;
    h.random.fill(7);
    h.public_key.fill(9);
    wire::encode(h, hello_bytes);
    hello_bytes.resize(wire::kPreambleSize + (wire::kFrameHeaderSize + wire::kHelloSize) / 2);
    ReadEnd how{};
    auto got = poke(server_port, hello_bytes, true, how);
    EXPECT_TRUE(got.empty()) << got.size() << " bytes came back";
    EXPECT_TRUE(how == ReadEnd::kEof || how == ReadEnd::kReset) << read_end_name(how);
    std::cout << "[ bad input] truncated HELLO → " << got.size() << " bytes, " << read_end_name(how)
              << "\n";
  }
  flows("a truncated handshake");

  // 3. A frame header with an absurd length.
  {
    std::vector<std::uint8_t> bytes = preamble();
    bytes.insert(bytes.end(), {0x01, 0xff, 0xff, 0xff});
    ReadEnd how{};
    auto got = poke(server_port, bytes, false, how);
    const Parsed p = parse_reply(got);
    EXPECT_TRUE(how == ReadEnd::kEof || how == ReadEnd::kReset) << read_end_name(how);
    EXPECT_FALSE(has_type(p, wire::FrameType::kHelloReply));
    std::cout << "[ bad input] HELLO of length 0xFFFFFF → " << type_names(p) << ", "
              << read_end_name(how) << "\n";
  }
  flows("an absurd frame length");

  // 4. A HELLO whose public key is all zeros (a low-order point: no shared secret).
  {
    std::vector<std::uint8_t> bytes = preamble();
    wire::Hello h;
    h.features = wire::kFeatureResume;
    h.buffer_cap = 8 * kMiB;
    h.wait_ms = 600000;
    h.random.fill(0x33);
    h.public_key.fill(0);
    wire::encode(h, bytes);
    ReadEnd how{};
    auto got = poke(server_port, bytes, false, how);
    const Parsed p = parse_reply(got);
    EXPECT_TRUE(how == ReadEnd::kEof || how == ReadEnd::kReset) << read_end_name(how);
    EXPECT_FALSE(has_type(p, wire::FrameType::kHelloReply)) << "a handshake with a zero key went on";
    EXPECT_FALSE(has_type(p, wire::FrameType::kData));
    std::cout << "[ bad input] HELLO with a zero key → " << type_names(p) << ", "
              << read_end_name(how) << "\n";
  }
  flows("a low-order public key");

  // 5. A MIGRATE naming a token no session has: one REFUSED echoing the request number.
  {
    std::vector<std::uint8_t> bytes = preamble();
    wire::Migrate m;
    m.token.fill(0x5a);
    m.request = 77;
    m.received = 0;
    m.mac.fill(0x11);
    wire::encode(m, bytes);
    ReadEnd how{};
    auto got = poke(server_port, bytes, false, how);
    const Parsed p = parse_reply(got);
    EXPECT_TRUE(p.preamble_ok);
    ASSERT_EQ(p.types.size(), 1u) << type_names(p);
    EXPECT_EQ(p.types[0], static_cast<std::uint8_t>(wire::FrameType::kRefused));
    auto r = wire::parse_refused(core::Bytes(p.payloads[0].data(), p.payloads[0].size()));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->request, 77u);
    EXPECT_TRUE(how == ReadEnd::kEof || how == ReadEnd::kReset) << read_end_name(how);
    std::cout << "[ bad input] MIGRATE with an unknown token → " << type_names(p) << ", "
              << read_end_name(how) << "\n";
  }
  flows("a MIGRATE with an unknown token");

  // 6. Replays: force two real migrations (cuts), capture each MIGRATE as sent on the wire and
  //    replay it from a new connection. No ACCEPT, no session data for the attacker.
  for (int c = 0; c < 2; ++c) {
    ASSERT_GE(relay.cut(), 1u) << "nothing to cut";
    flows("a cut");
  }
  std::set<std::vector<std::uint8_t>> migrates;
  const std::size_t frame_len = wire::kPreambleSize + wire::kFrameHeaderSize + wire::kMigrateSize;
  for (std::size_t i = 1; i < tap.connections(); ++i) {
    auto rec = tap.recorded(i);
    if (rec.size() >= frame_len && rec[wire::kPreambleSize] == static_cast<std::uint8_t>(wire::FrameType::kMigrate))
      migrates.insert(std::vector<std::uint8_t>(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(frame_len)));
  }
  ASSERT_GE(migrates.size(), 2u) << "expected the MIGRATE requests of two migrations on the tap ("
                                 << tap.connections() << " connections seen)";
  for (const auto& m : migrates) {
    const auto mig = wire::parse_migrate(core::Bytes(m.data() + wire::kPreambleSize + wire::kFrameHeaderSize,
                                                     wire::kMigrateSize));
    ASSERT_TRUE(mig.has_value());
    const ReplayOutcome r = replay(server_port, m);
    std::cout << "[ bad input] replayed MIGRATE request " << mig->request << " → "
              << type_names(r.reply) << (r.answered_challenge ? " (answered with a forged RESPONSE)" : "")
              << ", " << read_end_name(r.how) << "\n";
    EXPECT_FALSE(has_type(r.reply, wire::FrameType::kAccept)) << "a replay was accepted";
    EXPECT_FALSE(has_type(r.reply, wire::FrameType::kData)) << "a replay received session data";
    EXPECT_TRUE(has_type(r.reply, wire::FrameType::kStale) ||
                has_type(r.reply, wire::FrameType::kRefused) ||
                has_type(r.reply, wire::FrameType::kChallenge))
        << type_names(r.reply);
    flows("a replayed MIGRATE");
  }

  // The live session finishes with every byte exact.
  streams.allow(kBytes);
  const DuplexResult up = app_conn.result();
  const DuplexResult down = service.result();
  std::cout << "[ figures  ] live session: app " << up.summary() << "; service " << down.summary()
            << "; tap saw " << tap.connections() << " connections\n";
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(kUpSeed, kBytes)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(kDownSeed, kBytes)));
  EXPECT_TRUE(up.got_eof && down.got_eof);
  EXPECT_FALSE(up.got_reset || down.got_reset);
  EXPECT_TRUE(server->running()) << "roam server died";
  // The live session is the server's first one, "s1"; the attackers' handshakes are s2….
  const std::string log = server->log();
  EXPECT_NE(log.find("[s1 "), std::string::npos);
  std::size_t pos = 0;
  bool s1_clean = false;
  while ((pos = log.find("[s1 ", pos)) != std::string::npos) {
    const std::string line = log.substr(pos, log.find('\n', pos) - pos);
    EXPECT_EQ(line.find("aborted"), std::string::npos) << line;
    if (line.find("session ended cleanly") != std::string::npos) s1_clean = true;
    ++pos;
  }
  EXPECT_TRUE(s1_clean) << "the live session did not end cleanly";
}

}  // namespace
}  // namespace roam::itest

namespace roam::itest {
namespace {

// The harder replay: an attacker on the client's new path copies its MIGRATE while the network
// beyond is silent and replays it to the server before the genuine one arrives. The request is
// fresh, so the server challenges the copy; the attacker cannot answer, gets no ACCEPT and no
// data, and when the network returns the genuine client still migrates and every byte arrives.
TEST(BadInput, ReplayOfAPendingMigrateWinsNothing) {
  DumpOnFailure dump;
  constexpr std::uint64_t kTotal = 4 * kMiB, kStep1 = 1 * kMiB;
  constexpr std::uint64_t kUpSeed = 0xcafe1, kDownSeed = 0xcafe2;
  GatedStreams streams(kTotal, kStep1, kUpSeed, kDownSeed, seconds(60));
  ProgressWatch& watch = streams.watch;
  Service service(streams.service);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  // client → tap (records what the client sends) → relay (freezable) → server.
  RelayThread relay(server_port);
  TapProxy tap(relay.port());
  std::uint16_t local_port = 0;
  auto client = start_local_client(tap.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);
  ClientApp app_conn(local_port, streams.app);
  ASSERT_TRUE(watch.wait_both(kStep1, seconds(15))) << watch.text();

  const std::size_t before = tap.connections();
  relay.freeze(true);
  streams.allow(kTotal);
  ASSERT_TRUE(client->wait_for("path lost", seconds(10)));
  const std::size_t frame_len = wire::kPreambleSize + wire::kFrameHeaderSize + wire::kMigrateSize;
  const auto idx = tap.wait_recorded(before, frame_len, seconds(10));
  ASSERT_TRUE(idx.has_value()) << "the client's MIGRATE never reached the tap";
  auto rec = tap.recorded(*idx);
  ASSERT_EQ(rec[wire::kPreambleSize], static_cast<std::uint8_t>(wire::FrameType::kMigrate));
  rec.resize(frame_len);
  const auto mig = wire::parse_migrate(
      core::Bytes(rec.data() + wire::kPreambleSize + wire::kFrameHeaderSize, wire::kMigrateSize));
  ASSERT_TRUE(mig.has_value());

  const ReplayOutcome r = replay(server_port, rec);
  std::cout << "[ bad input] pre-emptive replay of MIGRATE request " << mig->request << " → "
            << type_names(r.reply) << (r.answered_challenge ? " (answered with a forged RESPONSE)" : "")
            << ", " << read_end_name(r.how) << "\n";
  EXPECT_FALSE(has_type(r.reply, wire::FrameType::kAccept)) << "the replay was accepted";
  EXPECT_FALSE(has_type(r.reply, wire::FrameType::kData)) << "the replay received session data";
  EXPECT_TRUE(has_type(r.reply, wire::FrameType::kChallenge) ||
              has_type(r.reply, wire::FrameType::kStale))
      << type_names(r.reply);

  relay.freeze(false);
  const DuplexResult up = app_conn.result();
  const DuplexResult down = service.result();
  std::cout << "[ figures  ] after the replay: app " << up.summary() << "; service "
            << down.summary() << "\n";
  EXPECT_EQ(up.received, kTotal);
  EXPECT_EQ(down.received, kTotal);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(kUpSeed, kTotal)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(kDownSeed, kTotal)));
  EXPECT_TRUE(up.got_eof && down.got_eof);
  EXPECT_FALSE(up.got_reset || down.got_reset);
  EXPECT_TRUE(server->running());
}

}  // namespace
}  // namespace roam::itest
