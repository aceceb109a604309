#include "core/session/session.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "support/session_pair.hpp"

namespace roam::core {
namespace {

using namespace std::chrono_literals;
using test::ByteVec;
using test::pattern;
using test::SessionPair;
using Link = SessionPair::Link;

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
};

SessionConfig config_with_cap(std::uint64_t cap) {
  SessionConfig c;
  c.handshake.buffer_cap = cap;
  return c;
}

// Writes all of `data` through the application API, pumping while the retention buffer is full.
void send_all(SessionPair& p, Session& s, const ByteVec& data) {
  std::size_t off = 0;
  for (int guard = 0; off < data.size() && guard < 100000; ++guard) {
    off += s.write(Bytes(data).subspan(off));
    p.pump();
  }
  ASSERT_EQ(off, data.size()) << "the session stopped taking bytes";
}

// The client was told its path died: it asks to reconnect, and the new path is adopted.
Link& reconnect(SessionPair& p) {
  EXPECT_TRUE(p.client->take_connect_request());
  Link& l = p.open_link();
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClientEstablished);
  if (p.server) {
    EXPECT_EQ(p.server->state(), State::kServerEstablished);
  }
  EXPECT_EQ(p.client->active_path(), l.id);
  return l;
}

int count(const std::vector<Event>& events, EventType t) {
  int n = 0;
  for (const auto& e : events) n += e.type == t;
  return n;
}

const Event* last_of(const std::vector<Event>& events, EventType t) {
  const Event* found = nullptr;
  for (const auto& e : events)
    if (e.type == t) found = &e;
  return found;
}

ByteVec concat(const ByteVec& a, const ByteVec& b) {
  ByteVec out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// A MIGRATE connection's first bytes, MACed with the session's real key.
ByteVec migrate_bytes(const Session& client, std::uint64_t request, std::uint64_t received) {
  wire::Migrate m;
  m.token = client.token();
  m.request = request;
  m.received = received;
  m.mac = crypto::mac(client.negotiated().keys.mac_c2s,
                      {mac_label(wire::FrameType::kMigrate), m.token, crypto::be64(m.request),
                       crypto::be64(m.received)});
  ByteVec out;
  wire::encode_preamble(out);
  wire::encode(m, out);
  return out;
}

ByteVec refused_bytes(std::uint64_t request) {
  ByteVec out;
  wire::encode_preamble(out);
  wire::encode(wire::Refused{request}, out);
  return out;
}

// Sends `first` on a fresh connection that does not come from the client session; returns what
// the server answered.
ByteVec raw_exchange(SessionPair& p, const ByteVec& first) {
  Link& l = p.open_raw_link();
  l.c2s = first;
  p.pump();
  return l.replies;
}

// Parses a server reply "preamble, STALE" and checks its MAC with the session's key.
void expect_authenticated_stale(const Session& client, const ByteVec& reply, std::uint64_t request,
                                std::uint64_t newest) {
  ASSERT_EQ(reply.size(), wire::kPreambleSize + wire::kFrameHeaderSize + wire::kStaleSize);
  ASSERT_TRUE(wire::check_preamble(reply));
  const Bytes frame = Bytes(reply).subspan(wire::kPreambleSize);
  auto h = wire::decode_header(frame);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->type, static_cast<std::uint8_t>(wire::FrameType::kStale));
  auto s = wire::parse_stale(frame.subspan(wire::kFrameHeaderSize));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->request, request);
  EXPECT_EQ(s->newest, newest);
  EXPECT_TRUE(crypto::mac_verify(client.negotiated().keys.mac_s2c,
                                 {mac_label(wire::FrameType::kStale), client.token(),
                                  crypto::be64(s->request), crypto::be64(s->newest)},
                                 s->mac));
}

// --- handshake and data ----------------------------------------------------------------------

TEST_F(SessionTest, HandshakeCompletesAndDataFlowsBothWays) {
  for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{1000}, std::size_t{7}}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    SessionPair p;
    p.max_chunk = chunk;
    ASSERT_TRUE(p.establish());
    EXPECT_EQ(count(p.client_events, EventType::kEstablished), 1);
    EXPECT_EQ(count(p.server_events, EventType::kEstablished), 1);
    EXPECT_EQ(p.client->token(), p.server->token());
    const ByteVec up = pattern(chunk < 100 ? 20000 : 300000, 1);
    const ByteVec down = pattern(chunk < 100 ? 10000 : 200000, 2);
    p.client->write(up);
    p.server->write(down);
    p.pump();
    EXPECT_EQ(p.server_got, up);
    EXPECT_EQ(p.client_got, down);
    EXPECT_EQ(p.client->bytes_sent(), up.size());
    EXPECT_EQ(p.server->bytes_received(), up.size());
  }
}

TEST_F(SessionTest, NegotiatesTheSmallerCapAndWait) {
  SessionConfig c = config_with_cap(1 << 20);
  c.handshake.wait = 10s;
  SessionConfig s = config_with_cap(64 << 10);
  s.handshake.wait = 2h;
  SessionPair p(c, s, 3);
  ASSERT_TRUE(p.establish());
  EXPECT_EQ(p.client->negotiated().buffer_cap, 64u << 10);
  EXPECT_EQ(p.server->negotiated().buffer_cap, 64u << 10);
  EXPECT_EQ(p.client->negotiated().wait, 10s);
  EXPECT_EQ(p.server->negotiated().wait, 10s);
}

// A sender never has more than the cap beyond what the peer's application consumed: with a
// reader that stops, the writer's space runs out exactly at the cap and nothing is lost.
TEST_F(SessionTest, StoppedReaderBackpressuresTheWriter) {
  SessionPair p(config_with_cap(4096), config_with_cap(4096), 4);
  ASSERT_TRUE(p.establish());
  p.server_reads = false;
  const ByteVec data = pattern(10000, 4);
  std::size_t taken = p.client->write(data);
  p.pump();
  taken += p.client->write(Bytes(data).subspan(taken));
  p.pump();
  EXPECT_EQ(taken, 4096u);
  EXPECT_TRUE(p.client->write_space().empty());
  p.server_reads = true;
  p.pump();
  send_all(p, *p.client, ByteVec(data.begin() + static_cast<std::ptrdiff_t>(taken), data.end()));
  EXPECT_EQ(p.server_got, data);
}

// --- migrate requests: forgeries, replays, unknown sessions --------------------------------

TEST_F(SessionTest, UnknownTokenAndForgedMacGetByteIdenticalRefusals) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const PathId active = *p.server->active_path();

  ByteVec forged = migrate_bytes(*p.client, 5, 0);
  forged.back() ^= 0x01;  // last MAC byte
  ByteVec unknown = migrate_bytes(*p.client, 5, 0);
  unknown[wire::kPreambleSize + wire::kFrameHeaderSize] ^= 0x01;  // first token byte

  const ByteVec forged_reply = raw_exchange(p, forged);
  const ByteVec unknown_reply = raw_exchange(p, unknown);
  EXPECT_EQ(forged_reply, refused_bytes(5));
  EXPECT_EQ(unknown_reply, refused_bytes(5));
  EXPECT_EQ(forged_reply.size(), unknown_reply.size());

  // A malformed request (a MIGRATE header with a short payload) is refused the same way.
  ByteVec shortened;
  wire::encode_preamble(shortened);
  shortened.insert(shortened.end(), {0x10, 0x00, 0x00, 0x01, 0x00});
  const ByteVec short_reply = raw_exchange(p, shortened);
  EXPECT_EQ(short_reply.size(), refused_bytes(0).size());

  // None of it touched the live session.
  EXPECT_EQ(p.server->state(), State::kServerEstablished);
  EXPECT_EQ(p.server->active_path(), active);
  EXPECT_EQ(p.server->migrations(), 0u);
  send_all(p, *p.client, pattern(1000, 5));
  EXPECT_EQ(p.server_got, pattern(1000, 5));
}

TEST_F(SessionTest, WellMacedStaleRequestGetsAuthenticatedStale) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  // Request 0 was never newer than anything: stale, but genuine, so not REFUSED.
  expect_authenticated_stale(*p.client, raw_exchange(p, migrate_bytes(*p.client, 0, 0)), 0, 0);
  EXPECT_EQ(p.server->state(), State::kServerEstablished);
}

TEST_F(SessionTest, ReplayedMigrateWithEqualOrLowerRequestIsStale) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  p.cut(first, true, false);
  Link& l1 = reconnect(p);
  const ByteVec req1(l1.requests.begin(),
                     l1.requests.begin() + wire::kPreambleSize + wire::kFrameHeaderSize + wire::kMigrateSize);

  // Equal: the request that was just adopted, replayed byte for byte.
  expect_authenticated_stale(*p.client, raw_exchange(p, req1), 1, 1);

  p.cut(l1, true, false);
  Link& l2 = reconnect(p);
  const PathId active = *p.server->active_path();
  EXPECT_EQ(active, l2.id);
  // Lower: request 1 replayed after request 2 was adopted.
  expect_authenticated_stale(*p.client, raw_exchange(p, req1), 1, 2);

  EXPECT_EQ(p.server->active_path(), active);
  EXPECT_EQ(p.server->migrations(), 2u);
  send_all(p, *p.client, pattern(1000, 6));
  EXPECT_EQ(p.server_got, pattern(1000, 6));
}

// A copy of a genuine, fresh request wins nothing: the attacker cannot answer the challenge, and
// the server keeps the old path meanwhile.
TEST_F(SessionTest, CopiedFreshRequestStaysOnProbation) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const PathId active = *p.server->active_path();
  ByteVec reply = raw_exchange(p, migrate_bytes(*p.client, 9, 0));
  ASSERT_EQ(reply.size(), wire::kPreambleSize + wire::kFrameHeaderSize + wire::kChallengeSize);
  EXPECT_EQ(reply[wire::kPreambleSize], static_cast<std::uint8_t>(wire::FrameType::kChallenge));
  EXPECT_EQ(p.server->active_path(), active);
  EXPECT_EQ(p.server->state(), State::kServerEstablished);

  // A RESPONSE with a made-up MAC ends only that path.
  Link& attacker = p.last_link();
  wire::Response r{9, 0, {}};
  wire::encode(r, attacker.c2s);
  p.pump();
  EXPECT_TRUE(p.server->path_done(attacker.id));
  EXPECT_EQ(p.server->active_path(), active);
  send_all(p, *p.client, pattern(100, 7));
  EXPECT_EQ(p.server_got, pattern(100, 7));
}

// Unauthenticated work is bounded: copies of fresh requests occupy at most max_probation_paths
// connections; the oldest is dropped for a newcomer, and the live path is never touched.
TEST_F(SessionTest, ProbationPathsAreBounded) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const PathId active = *p.server->active_path();
  std::vector<PathId> ids;
  for (std::uint64_t request = 1; request <= 5; ++request) {
    Link& l = p.open_raw_link();
    l.c2s = migrate_bytes(*p.client, request, 0);
    p.pump();
    ids.push_back(l.id);
  }
  EXPECT_TRUE(p.server->path_done(ids[0]));
  for (std::size_t i = 1; i < ids.size(); ++i) EXPECT_FALSE(p.server->path_done(ids[i])) << i;
  EXPECT_EQ(p.server->active_path(), active);
  // They expire with the handshake deadline (heartbeats keep the live path alive meanwhile).
  const Time deadline = p.now + SessionConfig{}.handshake_timeout;
  while (p.now < deadline) {
    p.advance_to(std::min(deadline, p.now + 1s));
    p.pump();
  }
  for (PathId id : ids) EXPECT_TRUE(p.server->path_done(id)) << id;
  EXPECT_EQ(p.server->active_path(), active);
}

TEST_F(SessionTest, WantsWriteFollowsPendingBytesAndCredit) {
  SessionPair p(config_with_cap(4096), config_with_cap(4096), 8);
  ASSERT_TRUE(p.establish());
  const PathId id = *p.client->active_path();
  EXPECT_FALSE(p.client->wants_write(id));
  p.client->write(pattern(10, 8));
  EXPECT_TRUE(p.client->wants_write(id));
  p.last_link().hold_c2s = true;
  p.pump();
  EXPECT_FALSE(p.client->wants_write(id));
  p.client->shutdown_write();
  EXPECT_TRUE(p.client->wants_write(id));
  p.pump();
  EXPECT_FALSE(p.client->wants_write(id));
}

TEST_F(SessionTest, RefusedTwiceEndsTheSession) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  p.cut(p.last_link(), true, true);
  // The server restarted and no longer knows the token: each attempt is answered REFUSED.
  for (std::uint64_t request = 1; request <= 2; ++request) {
    ASSERT_NE(p.client->state(), State::kClosed);
    ASSERT_TRUE(p.client->take_connect_request());
    Link& l = p.open_link();
    l.server = SessionPair::ServerSide::kRefused;  // its dispatcher answers, not our session
    l.s2c = refused_bytes(request);
    p.pump();
  }
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.client->close_error().code, Errc::kRefused);
  const Event* closed = last_of(p.client_events, EventType::kClosed);
  ASSERT_NE(closed, nullptr);
  EXPECT_FALSE(closed->clean);
}

// --- resume: exactly once, in order -----------------------------------------------------------

TEST_F(SessionTest, ResumeWithNothingOutstanding) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const ByteVec up1 = pattern(5000, 10), down1 = pattern(7000, 11);
  send_all(p, *p.client, up1);
  send_all(p, *p.server, down1);
  p.advance_to(p.now + 1s);  // heartbeats carry the acknowledgements
  p.pump();
  ASSERT_EQ(p.client->retained(), 0u);
  ASSERT_EQ(p.server->retained(), 0u);

  p.cut(p.last_link(), true, true);
  EXPECT_EQ(p.client->state(), State::kClientWait);
  EXPECT_EQ(p.server->state(), State::kServerWait);
  reconnect(p);
  const ByteVec up2 = pattern(3000, 12), down2 = pattern(4000, 13);
  send_all(p, *p.client, up2);
  send_all(p, *p.server, down2);
  EXPECT_EQ(p.server_got, concat(up1, up2));
  EXPECT_EQ(p.client_got, concat(down1, down2));
  EXPECT_EQ(count(p.client_events, EventType::kMigrated), 1);
  EXPECT_EQ(count(p.server_events, EventType::kMigrated), 1);
  EXPECT_EQ(count(p.server_events, EventType::kPathLost), 1);
}

// Everything written went into the old connection's kernel buffers and died with it.
TEST_F(SessionTest, ResumeWithEverythingOutstanding) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  first.hold_c2s = true;
  first.hold_s2c = true;
  const ByteVec up = pattern(50000, 20), down = pattern(60000, 21);
  p.client->write(up);
  p.server->write(down);
  p.pump();
  ASSERT_TRUE(p.server_got.empty());
  ASSERT_TRUE(p.client_got.empty());
  ASSERT_EQ(p.client->retained(), up.size());
  p.cut(first, true, false);  // the server notices nothing
  reconnect(p);
  EXPECT_EQ(p.server_got, up);
  EXPECT_EQ(p.client_got, down);
}

// The retention buffer is exactly full when the path dies; the resume must still serve it.
TEST_F(SessionTest, ResumeWithDataExactlyAtBufferCap) {
  constexpr std::size_t kCap = 4096;
  SessionPair p(config_with_cap(kCap), config_with_cap(kCap), 22);
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  first.hold_c2s = true;
  const ByteVec up = pattern(3 * kCap, 22);
  EXPECT_EQ(p.client->write(up), kCap);
  EXPECT_TRUE(p.client->write_space().empty());
  p.pump();
  EXPECT_EQ(p.client->retained(), kCap);
  p.cut(first, true, true);
  reconnect(p);
  EXPECT_EQ(p.server_got, ByteVec(up.begin(), up.begin() + kCap));
  send_all(p, *p.client, ByteVec(up.begin() + kCap, up.end()));
  EXPECT_EQ(p.server_got, up);
}

// The server session holds bytes its application has not read yet, and more bytes sit unread in
// its kernel when the path dies. The first must not be sent again, the second must.
TEST_F(SessionTest, ResumeWithBytesReceivedButNotConsumed) {
  SessionPair p(config_with_cap(8192), config_with_cap(8192), 23);
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  p.server_reads = false;
  const ByteVec part1 = pattern(3000, 23), part2 = pattern(2000, 24, 3000);
  send_all(p, *p.client, part1);
  ASSERT_EQ(p.server->bytes_received(), part1.size());
  first.hold_c2s = true;  // part2 reaches the server's kernel only
  p.client->write(part2);
  p.pump();
  ASSERT_EQ(p.server->bytes_received(), part1.size());
  p.cut(first, true, true);
  reconnect(p);
  EXPECT_TRUE(p.server_got.empty());
  EXPECT_EQ(p.server->bytes_received(), part1.size() + part2.size());
  p.server_reads = true;
  p.pump();
  EXPECT_EQ(p.server_got, concat(part1, part2));
}

// The server's last ACK dies with the old path while the client's retention buffer is full. The
// move itself must carry the acknowledgement: the writer may not wait for a heartbeat.
TEST_F(SessionTest, ResumeRepeatsAnAckLostWithTheOldPath) {
  constexpr std::size_t kCap = 4096;
  SessionPair p(config_with_cap(kCap), config_with_cap(kCap), 24);
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  first.hold_s2c = true;  // the server's ACK never leaves its kernel
  EXPECT_EQ(p.client->write(pattern(kCap, 24)), kCap);
  p.pump();
  ASSERT_EQ(p.server_got.size(), kCap);
  ASSERT_TRUE(p.client->write_space().empty());
  p.cut(first, true, false);
  reconnect(p);  // same virtual instant: no heartbeat can help
  EXPECT_EQ(p.client->retained(), 0u);
  EXPECT_EQ(p.client->write_space().size(), kCap);
}

// The same in the other direction, with the client not reading, and a make-before-break move
// (the old path is still up when the new one is attached).
TEST_F(SessionTest, MakeBeforeBreakKeepsEveryByte) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  p.client_reads = false;
  const ByteVec down1 = pattern(20000, 25), down2 = pattern(30000, 26, 20000);
  send_all(p, *p.server, down1);
  first.hold_s2c = true;
  p.server->write(down2);
  p.pump();
  p.client->request_migration(p.now);
  reconnect(p);
  EXPECT_FALSE(first.client_open);  // the old socket was closed after the move
  p.client_reads = true;
  p.pump();
  EXPECT_EQ(p.client_got, concat(down1, down2));
  EXPECT_EQ(count(p.client_events, EventType::kPathLost), 0);
}

// Seeded chaos: random writes both ways, random read sizes, paths cut at random moments with
// random amounts stuck in the kernels. Every byte arrives exactly once, in order.
TEST_F(SessionTest, RandomCutsDeliverEveryByteExactlyOnce) {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
      return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    };
    const std::uint64_t cap = pick(0, 1) ? 4096 : 256 * 1024;
    SessionPair p(config_with_cap(cap), config_with_cap(cap), seed);
    p.max_chunk = pick(0, 2) == 0 ? pick(1, 64) : pick(1000, 100000);
    ASSERT_TRUE(p.establish());
    ByteVec up, down;
    std::size_t up_written = 0, down_written = 0;
    const std::size_t total = static_cast<std::size_t>(pick(10000, 200000));
    const ByteVec up_all = pattern(total, seed), down_all = pattern(total, seed + 1000);
    for (int round = 0; round < 12; ++round) {
      up_written += p.client->write(Bytes(up_all).subspan(up_written, pick(0, total - up_written)));
      down_written += p.server->write(Bytes(down_all).subspan(down_written, pick(0, total - down_written)));
      Link& l = p.last_link();
      l.hold_c2s = pick(0, 2) == 0;
      l.hold_s2c = pick(0, 2) == 0;
      p.client_reads = pick(0, 3) != 0;
      p.server_reads = pick(0, 3) != 0;
      p.pump();
      if (pick(0, 1)) {
        p.cut(l, true, pick(0, 1) == 1);
        p.client_reads = p.server_reads = true;
        reconnect(p);
      } else {
        l.hold_c2s = l.hold_s2c = false;
      }
      p.client_reads = p.server_reads = true;
      p.pump();
      ASSERT_EQ(p.client->state(), State::kClientEstablished) << "round " << round;
      ASSERT_EQ(p.server->state(), State::kServerEstablished) << "round " << round;
    }
    send_all(p, *p.client, ByteVec(up_all.begin() + static_cast<std::ptrdiff_t>(up_written), up_all.end()));
    send_all(p, *p.server,
             ByteVec(down_all.begin() + static_cast<std::ptrdiff_t>(down_written), down_all.end()));
    ASSERT_EQ(p.server_got.size(), up_all.size());
    ASSERT_EQ(p.client_got.size(), down_all.size());
    EXPECT_EQ(p.server_got, up_all);
    EXPECT_EQ(p.client_got, down_all);
  }
}

// --- the migrate wait ---------------------------------------------------------------------------

TEST_F(SessionTest, ServerWaitExpiresExactlyAtLastHeardPlusWait) {
  SessionConfig c;
  c.handshake.wait = 10s;
  SessionConfig s;
  s.handshake.wait = 20s;  // the smaller wait applies
  SessionPair p(c, s, 30);
  ASSERT_TRUE(p.establish());
  p.now = p.now + 500ms;
  const Time last_heard = p.now;
  send_all(p, *p.client, pattern(10, 30));  // the last byte the server hears
  p.now = p.now + 200ms;
  p.cut(p.last_link(), false, true);
  ASSERT_EQ(p.server->state(), State::kServerWait);
  EXPECT_EQ(p.server->next_deadline(), last_heard + 10s);

  p.server->on_timeout(last_heard + 10s - 1ns);
  EXPECT_EQ(p.server->state(), State::kServerWait);
  p.server->on_timeout(last_heard + 10s);
  EXPECT_EQ(p.server->state(), State::kClosed);
  EXPECT_EQ(p.server->close_error().code, Errc::kTimeout);
  EXPECT_FALSE(p.server->closed_clean());
  EXPECT_EQ(p.server->next_deadline(), Time::never());
  std::vector<EventType> types;
  while (auto e = p.server->poll_event()) {
    types.push_back(e->type);
    if (e->type == EventType::kClosed) {
      EXPECT_FALSE(e->clean);
      EXPECT_EQ(e->error.code, Errc::kTimeout);
    }
  }
  ASSERT_GE(types.size(), 2u);
  EXPECT_EQ(types[types.size() - 2], EventType::kPathLost);
  EXPECT_EQ(types.back(), EventType::kClosed);
}

TEST_F(SessionTest, ClientWaitExpiresExactlyAtLastHeardPlusWait) {
  SessionConfig c;
  c.handshake.wait = 3h;  // hours must work
  SessionPair p(c, c, 31);
  ASSERT_TRUE(p.establish());
  p.now = p.now + 100ms;
  const Time last_heard = p.now;
  send_all(p, *p.server, pattern(10, 31));
  p.now = p.now + 1s;
  p.cut(p.last_link(), true, false);
  ASSERT_EQ(p.client->state(), State::kClientWait);
  // The client keeps probing (connect requests) until the wait is over; nobody answers.
  const Time end = last_heard + 3h;
  for (int guard = 0; guard < 100000; ++guard) {
    const Time t = p.client->next_deadline();
    if (t >= end) break;
    p.client->on_timeout(t);
    ASSERT_NE(p.client->state(), State::kClosed);
    (void)p.client->take_connect_request();
  }
  EXPECT_EQ(p.client->next_deadline(), end);
  p.client->on_timeout(end - 1ns);
  EXPECT_NE(p.client->state(), State::kClosed);
  p.client->on_timeout(last_heard + 3h);
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.client->close_error().code, Errc::kTimeout);
}

TEST_F(SessionTest, ProbesAreFastThenBackOff) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  p.cut(p.last_link(), true, false);
  ASSERT_TRUE(p.client->take_connect_request());
  const Time lost = p.now;
  int requests = 0;
  Time t = p.now;
  while (t < lost + 30s) {
    t = p.client->next_deadline();
    p.client->on_timeout(t);
    requests += p.client->take_connect_request();
  }
  // One probe per 100 ms for the first 30 s.
  EXPECT_GE(requests, 299);
  EXPECT_LE(requests, 301);
  const Time before = p.client->next_deadline();
  p.client->on_timeout(before);
  EXPECT_GT(p.client->next_deadline() - before, 100ms);
}

// --- close semantics ----------------------------------------------------------------------------

TEST_F(SessionTest, HalfCloseSurvivesMigration) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  Link& first = p.last_link();
  first.hold_c2s = true;  // data and FIN die in the old kernel
  const ByteVec up = pattern(5000, 40);
  p.client->write(up);
  p.client->shutdown_write();
  p.pump();
  EXPECT_FALSE(p.server_saw_eof);
  p.cut(first, true, true);
  reconnect(p);
  EXPECT_EQ(p.server_got, up);
  EXPECT_TRUE(p.server_saw_eof);
  EXPECT_NE(p.client->state(), State::kClosed);  // the other direction still works

  const ByteVec down = pattern(7000, 41);
  send_all(p, *p.server, down);
  p.server->shutdown_write();
  p.pump();
  EXPECT_EQ(p.client_got, down);
  EXPECT_TRUE(p.client_saw_eof);
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.server->state(), State::kClosed);
  EXPECT_TRUE(p.client->closed_clean());
  EXPECT_TRUE(p.server->closed_clean());
  const Event* c = last_of(p.client_events, EventType::kClosed);
  const Event* s = last_of(p.server_events, EventType::kClosed);
  ASSERT_TRUE(c && s);
  EXPECT_TRUE(c->clean);
  EXPECT_TRUE(s->clean);
}

TEST_F(SessionTest, AbortPropagatesAsClose) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  send_all(p, *p.client, pattern(100, 50));
  p.client->abort("user pressed ^C", p.now);
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_TRUE(p.client->write_space().empty());
  p.pump();
  EXPECT_EQ(p.server->state(), State::kClosed);
  EXPECT_FALSE(p.server->closed_clean());
  EXPECT_EQ(p.server->close_error().code, Errc::kAborted);
  EXPECT_NE(p.server->close_error().detail.find("user pressed ^C"), std::string::npos);
  const Event* s = last_of(p.server_events, EventType::kClosed);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->clean);
  const Event* c = last_of(p.client_events, EventType::kClosed);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->clean);
  // Both sockets are closed once the CLOSE was written.
  EXPECT_FALSE(p.last_link().client_open);
  EXPECT_FALSE(p.last_link().server_open);
}

TEST_F(SessionTest, ServerAbortReachesTheClient) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  p.server->abort("target refused", p.now);
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.client->close_error().code, Errc::kAborted);
  EXPECT_FALSE(p.client->closed_clean());
}

// --- timers -------------------------------------------------------------------------------------

TEST_F(SessionTest, HeartbeatAckAfterTheInterval) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const Time t0 = p.now;
  EXPECT_EQ(p.client->next_deadline(), t0 + 1s);
  const PathId id = *p.client->active_path();
  p.client->on_timeout(t0 + 1s - 1ns);
  EXPECT_EQ(p.client->poll_transmit(id, t0 + 1s - 1ns).total(), 0u);
  p.client->on_timeout(t0 + 1s);
  ByteVec out;
  test::append_slices(p.client->poll_transmit(id, t0 + 1s), out);
  const ByteVec ack = {0x21, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(out, ack);
  p.client->on_transmitted(id, out.size(), t0 + 1s);
  // Next: at a heartbeat and a half of silence the client starts probing for another path.
  EXPECT_EQ(p.client->next_deadline(), t0 + 1500ms);
}

// A path silent for a heartbeat and a half is suspect: the client probes for another path every
// probe interval while it keeps the old one, so an outage that ends is noticed within one probe
// interval rather than after the dead-path timeout.
TEST_F(SessionTest, SuspectPathIsProbedBeforeItIsDeclaredDead) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const Time t0 = p.now;
  Link& l = p.last_link();
  l.hold_s2c = true;
  l.hold_c2s = true;
  p.client->on_timeout(t0 + 1500ms - 1ns);
  EXPECT_FALSE(p.client->take_connect_request());
  p.client->on_timeout(t0 + 1500ms);
  EXPECT_EQ(p.client->state(), State::kClientEstablished);  // the old path is kept
  EXPECT_TRUE(p.client->probing_while_active());
  EXPECT_TRUE(p.client->take_connect_request());
  EXPECT_EQ(p.client->next_deadline(), t0 + 1600ms);  // the next probe, 100 ms later
  p.client->on_timeout(t0 + 1600ms);
  EXPECT_TRUE(p.client->take_connect_request());
  // Hearing from the server again ends the suspicion.
  l.hold_s2c = false;
  p.advance_to(t0 + 1700ms);
  p.server->on_timeout(t0 + 1700ms);  // its heartbeat
  p.pump();
  EXPECT_FALSE(p.client->probing_while_active());
}

TEST_F(SessionTest, SilentPathIsDeclaredLostAfterDeadBeats) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const Time t0 = p.now;
  Link& l = p.last_link();
  l.hold_s2c = true;  // the client hears nothing any more
  l.hold_c2s = true;
  for (int i = 1; i <= 3; ++i) {
    p.advance_to(t0 + std::chrono::seconds(i) - 1ns);
    p.pump();
    EXPECT_EQ(p.client->state(), State::kClientEstablished) << i;
    p.advance_to(t0 + std::chrono::seconds(i));
    p.pump();
  }
  EXPECT_EQ(p.client->state(), State::kClientWait);
  EXPECT_EQ(count(p.client_events, EventType::kPathLost), 1);
  EXPECT_TRUE(p.client->take_connect_request());
}

TEST_F(SessionTest, TransportProgressKeepsABusyPathAlive) {
  SessionPair p;
  ASSERT_TRUE(p.establish());
  const Time t0 = p.now;
  Link& l = p.last_link();
  l.hold_s2c = true;
  const PathId id = *p.client->active_path();
  for (int i = 1; i <= 10; ++i) {
    p.advance_to(t0 + std::chrono::seconds(i));
    p.client->note_transport_progress(id, p.now);
    p.pump();
  }
  EXPECT_EQ(p.client->state(), State::kClientEstablished);
}

TEST_F(SessionTest, HandshakeMustFinishInTime) {
  SessionPair p;
  Link& l = p.open_link();
  l.hold_c2s = true;
  p.pump();
  const Time t0 = p.now;
  EXPECT_EQ(p.client->next_deadline(), t0 + 5s);
  p.client->on_timeout(t0 + 5s - 1ns);
  EXPECT_EQ(p.client->state(), State::kClientHandshake);
  p.client->on_timeout(t0 + 5s);
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.client->close_error().code, Errc::kTimeout);
}

// --- hostile input ------------------------------------------------------------------------------

TEST_F(SessionTest, GarbageOnTheActivePathClosesWithAnError) {
  for (bool to_server : {true, false}) {
    SCOPED_TRACE(to_server ? "to server" : "to client");
    SessionPair p;
    ASSERT_TRUE(p.establish());
    const ByteVec garbage = {0xff, 0xff, 0xff, 0xff, 0x00, 0x01};
    Link& l = p.last_link();
    (to_server ? l.c2s : l.s2c) = garbage;
    p.pump();
    Session& victim = to_server ? *p.server : *p.client;
    Session& peer = to_server ? *p.client : *p.server;
    EXPECT_EQ(victim.state(), State::kClosed);
    EXPECT_EQ(victim.close_error().code, Errc::kMalformed);
    EXPECT_FALSE(victim.closed_clean());
    // The victim told its peer why, in a CLOSE.
    EXPECT_EQ(peer.state(), State::kClosed);
    EXPECT_EQ(peer.close_error().code, Errc::kAborted);
  }
}

TEST_F(SessionTest, ProtocolViolationsOnTheActivePathCloseWithAnError) {
  struct Case {
    const char* name;
    ByteVec frame;
    Errc want;
  };
  std::vector<Case> cases;
  ByteVec f;
  wire::encode(wire::Ack{1u << 30}, f);
  cases.push_back({"ACK of bytes never sent", f, Errc::kProtocol});
  f.clear();
  wire::encode(wire::Fin{12345}, f);
  cases.push_back({"FIN at the wrong offset", f, Errc::kProtocol});
  f.clear();
  wire::encode(wire::Finish{}, f);
  cases.push_back({"FINISH after the handshake", f, Errc::kProtocol});
  f = {0x21, 0, 0, 0};
  cases.push_back({"ACK with an empty payload", f, Errc::kMalformed});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    SessionPair p;
    ASSERT_TRUE(p.establish());
    p.last_link().c2s = c.frame;
    p.pump();
    EXPECT_EQ(p.server->state(), State::kClosed);
    EXPECT_EQ(p.server->close_error().code, c.want);
  }
}

TEST_F(SessionTest, DataBeyondCreditClosesWithAnError) {
  SessionPair p(config_with_cap(4096), config_with_cap(4096), 60);
  ASSERT_TRUE(p.establish());
  p.server_reads = false;
  ByteVec f(4 + 5000, 0x61);
  wire::encode_header(wire::FrameType::kData, 5000, f.data());
  p.last_link().c2s = f;
  p.pump();
  EXPECT_EQ(p.server->state(), State::kClosed);
  EXPECT_EQ(p.server->close_error().code, Errc::kProtocol);
}

TEST_F(SessionTest, SeededGarbageNeverCrashes) {
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    SessionPair p(SessionConfig{}, SessionConfig{}, seed);
    ASSERT_TRUE(p.establish());
    ByteVec garbage(static_cast<std::size_t>(rng() % 64 + 1));
    for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
    // Sometimes a plausible frame type, so that parsers beyond the header run.
    const std::uint8_t types[] = {0x01, 0x03, 0x10, 0x12, 0x20, 0x21, 0x22, 0x24};
    if (rng() % 2) garbage[0] = types[rng() % sizeof types];
    Link& l = p.last_link();
    (seed % 2 ? l.c2s : l.s2c) = garbage;
    p.pump();
    p.advance_to(p.now + 10s);
    p.pump();
    if (p.server->state() == State::kClosed) {
      EXPECT_FALSE(p.server->closed_clean());
    }
    if (p.client->state() == State::kClosed) {
      EXPECT_FALSE(p.client->closed_clean());
    }
  }
}

TEST_F(SessionTest, BadHelloClosesTheServerSessionAtOnce) {
  crypto::SeededRng rng(70);
  ByteVec in;
  wire::encode_preamble(in);
  wire::Hello h;
  h.features = wire::kFeatureResume;
  h.buffer_cap = 1;
  h.wait_ms = 1;  // public key all zero: a low-order point
  wire::encode(h, in);
  auto s = Session::accept(SessionConfig{}, rng, 1, in, Time{});
  EXPECT_EQ(s->state(), State::kClosed);
  EXPECT_EQ(s->close_error().code, Errc::kCrypto);
  auto e = s->poll_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, EventType::kClosed);
}

TEST_F(SessionTest, StateNamesComeFromOneTable) {
  EXPECT_STREQ(state_name(State::kClientWait), "client-migrate-wait");
  EXPECT_STREQ(state_name(State::kServerEstablished), "server-established");
  EXPECT_STREQ(state_name(State::kClosed), "closed");
}

}  // namespace
}  // namespace roam::core
