// The pure parts of `--workers N`: where a migrate request goes next, the message that travels
// with its descriptor, and which table "holds" a session.
#include "core/session/handoff.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "core/session/dispatcher.hpp"
#include "core/session/handshake.hpp"
#include "support/session_pair.hpp"

namespace roam::core {
namespace {

using test::ByteVec;

// Walks a request accepted by `origin` round a ring of `n` workers, the session held by `holder`
// (none: nullopt). Returns the worker that answers it and the hops it took.
std::pair<unsigned, unsigned> walk(unsigned n, unsigned origin, std::optional<unsigned> holder) {
  Hop hop;
  unsigned at = origin;
  for (unsigned steps = 0; steps <= 2 * n + 2; ++steps) {
    if (hop_action(hop, at, n, holder == at) == HopAction::kAnswerHere) return {at, hop.hops};
    hop = next_hop(hop, at);
    at = next_worker(at, n);
    // What the receiving worker decodes is exactly what was sent, and it accepts it.
    auto d = decode_handoff(encode_handoff(hop, ByteVec{1, 2, 3}), at, n);
    EXPECT_TRUE(d) << d.error().detail;
  }
  ADD_FAILURE() << "request never answered: n=" << n << " origin=" << origin;
  return {~0u, ~0u};
}

TEST(Handoff, OneProcessAlwaysAnswersItself) {
  EXPECT_EQ(hop_action(Hop{}, 0, 1, false), HopAction::kAnswerHere);
  EXPECT_EQ(hop_action(Hop{}, 0, 0, false), HopAction::kAnswerHere);
}

TEST(Handoff, HolderAnswersAndNobodyMeansBackToOriginAfterNHops) {
  for (unsigned n = 2; n <= 8; ++n) {
    for (unsigned origin = 0; origin < n; ++origin) {
      SCOPED_TRACE("n=" + std::to_string(n) + " origin=" + std::to_string(origin));
      // Nobody holds it: it comes back to the accepting worker after exactly n hops.
      EXPECT_EQ(walk(n, origin, std::nullopt), std::make_pair(origin, n));
      for (unsigned holder = 0; holder < n; ++holder) {
        const unsigned dist = (holder + n - origin) % n;
        EXPECT_EQ(walk(n, origin, holder), std::make_pair(holder, dist));
      }
    }
  }
}

TEST(Handoff, MessageRoundTripsAndGoldenBytes) {
  const ByteVec payload = {0xaa, 0xbb};
  const ByteVec msg = encode_handoff(Hop{1, 2}, payload);
  EXPECT_EQ(msg, (ByteVec{'R', 'W', 1, 1, 2, 0, 0, 2, 0xaa, 0xbb}));
  auto d = decode_handoff(msg, 0, 3);  // origin 1 + 2 hops = worker 0 of 3
  ASSERT_TRUE(d) << d.error().detail;
  EXPECT_EQ(d->hop, (Hop{1, 2}));
  EXPECT_EQ(d->bytes, payload);
}

TEST(Handoff, DecoderRefusesWhatCannotHaveArrivedHere) {
  const ByteVec payload(100, 7);
  const ByteVec good = encode_handoff(Hop{0, 1}, payload);
  ASSERT_TRUE(decode_handoff(good, 1, 2));
  EXPECT_FALSE(decode_handoff(good, 0, 2)) << "origin 0 + 1 hop is worker 1, not 0";
  EXPECT_FALSE(decode_handoff(good, 1, 1)) << "one process never receives";
  EXPECT_FALSE(decode_handoff(encode_handoff(Hop{0, 0}, payload), 0, 2)) << "hop 0 never travels";
  EXPECT_FALSE(decode_handoff(encode_handoff(Hop{0, 3}, payload), 1, 2)) << "more hops than workers";
  EXPECT_FALSE(decode_handoff(encode_handoff(Hop{2, 1}, payload), 1, 2)) << "origin out of range";
  for (std::size_t cut = 0; cut < good.size(); ++cut)
    EXPECT_FALSE(decode_handoff(ByteVec(good.begin(), good.begin() + cut), 1, 2)) << cut;
  ByteVec longer = good;
  longer.push_back(0);
  EXPECT_FALSE(decode_handoff(longer, 1, 2));
  for (std::size_t i : {0, 1, 2, 5}) {
    ByteVec bad = good;
    bad[i] ^= 0x40;
    EXPECT_FALSE(decode_handoff(bad, 1, 2)) << "byte " << i;
  }
}

TEST(Handoff, TableHoldsOnlyItsOwnTokensAndWithCheckOnlyGoodMacs) {
  ASSERT_TRUE(crypto::init());
  test::SessionPair pair;
  ASSERT_TRUE(pair.establish());
  const SessionTable& t = pair.table();
  wire::Migrate m;
  m.token = pair.client->token();
  m.request = 5;
  m.received = 0;
  m.mac = crypto::mac(pair.client->negotiated().keys.mac_c2s,
                      {mac_label(wire::FrameType::kMigrate), m.token, crypto::be64(m.request),
                       crypto::be64(m.received)});
  ByteVec good;
  wire::encode_preamble(good);
  wire::encode(m, good);
  EXPECT_EQ(t.holder(good, false), pair.server.get());
  EXPECT_EQ(t.holder(good, true), pair.server.get());
  wire::Migrate forged = m;
  forged.mac[0] ^= 1;
  ByteVec bad;
  wire::encode_preamble(bad);
  wire::encode(forged, bad);
  EXPECT_EQ(t.holder(bad, false), pair.server.get()) << "the token alone: this worker holds it";
  EXPECT_EQ(t.holder(bad, true), nullptr) << "a forged MAC is passed on, to be refused by its origin";
  wire::Migrate other = m;
  other.token[0] ^= 1;
  ByteVec unknown;
  wire::encode_preamble(unknown);
  wire::encode(other, unknown);
  EXPECT_EQ(t.holder(unknown, false), nullptr);
  EXPECT_EQ(t.holder(unknown, true), nullptr);
  EXPECT_EQ(t.holder(ByteVec(5, 0), true), nullptr) << "truncated";
}

}  // namespace
}  // namespace roam::core
