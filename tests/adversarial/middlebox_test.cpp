// An active middlebox on the client's new path answers the client's MIGRATE itself, with a
// CHALLENGE, an ACCEPT or a STALE it had to forge (it has no key). The client never treats the
// path as adopted and never ends or rewinds the session for it; the genuine server, reached on a
// later path, still takes the session over with every byte (virtual time, core only).
#include <gtest/gtest.h>

#include "core/session/session.hpp"
#include "core/wire/frames.hpp"
#include "session_pair.hpp"

namespace roam::core {
namespace {

using test::ByteVec;

ByteVec forged_reply(wire::FrameType type, std::uint64_t request) {
  ByteVec out;
  wire::encode_preamble(out);
  switch (type) {
    case wire::FrameType::kChallenge: {
      wire::Challenge c;
      c.request = request;
      c.nonce.fill(0x11);
      c.mac.fill(0x22);
      wire::encode(c, out);
      break;
    }
    case wire::FrameType::kAccept: {
      wire::Accept a;
      a.request = request;
      a.received = 0;  // "resend everything": would duplicate bytes if believed
      a.mac.fill(0x33);
      wire::encode(a, out);
      break;
    }
    default: {
      wire::Stale s;
      s.request = request;
      s.newest = request + 1000;
      s.mac.fill(0x44);
      wire::encode(s, out);
      break;
    }
  }
  return out;
}

TEST(Middlebox, ForgedChallengeAcceptAndStaleWinNothing) {
  test::SessionPair pair;
  ASSERT_TRUE(pair.establish());
  const ByteVec up = test::pattern(3000, 1), down = test::pattern(2000, 2);
  pair.client->write(up);
  pair.server->write(down);
  pair.pump();
  const std::uint64_t migrations_before = pair.client->migrations();
  for (auto type : {wire::FrameType::kChallenge, wire::FrameType::kAccept, wire::FrameType::kStale}) {
    pair.cut(pair.last_link(), true, true);
    test::SessionPair::Link& l = pair.open_link();
    // The middlebox swallows the MIGRATE and answers it.
    ByteVec migrate;
    test::drain(*pair.client, l.id, pair.now, migrate);
    auto m = wire::parse_migrate(Bytes(migrate).subspan(wire::kPreambleSize + wire::kFrameHeaderSize,
                                                        wire::kMigrateSize));
    ASSERT_TRUE(m.has_value());
    const ByteVec forged = forged_reply(type, m->request);
    test::deliver(*pair.client, l.id, forged, pair.now);
    ByteVec after;
    test::drain(*pair.client, l.id, pair.now, after);
    EXPECT_TRUE(pair.client->state() != State::kClientEstablished)
        << wire::frame_type_name(static_cast<std::uint8_t>(type)) << ": the client believes it moved";
    EXPECT_NE(pair.client->state(), State::kClosed)
        << wire::frame_type_name(static_cast<std::uint8_t>(type)) << " ended the session";
    EXPECT_EQ(pair.client->migrations(), migrations_before);
    // Whatever the client sent after the forgery carries no DATA.
    for (std::size_t off = 0; off + wire::kFrameHeaderSize <= after.size();) {
      auto h = wire::decode_header(Bytes(after).subspan(off));
      if (!h) break;
      EXPECT_NE(h->type, static_cast<std::uint8_t>(wire::FrameType::kData));
      off += wire::kFrameHeaderSize + h->length;
    }
    pair.cut(l, true, false);
  }
  // The genuine server on a clean path: the session moves and every byte arrives once.
  pair.open_link();
  pair.pump();
  EXPECT_EQ(pair.client->state(), State::kClientEstablished);
  EXPECT_EQ(pair.client->migrations(), migrations_before + 1);
  EXPECT_EQ(pair.server_got, up);
  EXPECT_EQ(pair.client_got, down);
}

}  // namespace
}  // namespace roam::core
