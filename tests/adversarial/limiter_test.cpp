// core::RefusalLimiter and SessionTable::admit_migrate on virtual time: the per-source limit of
// refused migrate requests (token guessing), its refill, its bounded memory, and that a live token
// with a good MAC still gets through from a limited source (NAT users are not locked out).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/session/dispatcher.hpp"
#include "core/session/limiter.hpp"
#include "core/wire/frames.hpp"
#include "session_pair.hpp"

namespace roam::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Time at(Duration d) { return Time{d}; }

SourceKey v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return SourceKey::ipv4({a, b, c, d});
}

SourceKey v6(const char* text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(::inet_pton(AF_INET6, text, a.data()), 1) << text;
  return SourceKey::ipv6(a);
}

TEST(RefusalLimiter, KeysAreSlash32ForV4AndSlash64ForV6) {
  EXPECT_EQ(v4(192, 0, 2, 7), v6("::ffff:192.0.2.7"));  // mapped = the IPv4 host
  EXPECT_NE(v4(192, 0, 2, 7), v4(192, 0, 2, 8));
  EXPECT_EQ(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  EXPECT_NE(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
  EXPECT_EQ(v4(192, 0, 2, 7).str(), "192.0.2.7");
  EXPECT_EQ(v6("2001:db8:1:2::99").str(), "2001:db8:1:2::/64");
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(0x7f000002);
  EXPECT_EQ(SourceKey::of(reinterpret_cast<const sockaddr*>(&in), sizeof in), v4(127, 0, 0, 2));
  EXPECT_EQ(SourceKey::of(reinterpret_cast<const sockaddr*>(&in), 2), SourceKey{});  // too short
}

TEST(RefusalLimiter, BurstThenRefillAtTheConfiguredRate) {
  RefusalLimits l;
  l.burst = 20;
  l.refill_per_second = 2;
  RefusalLimiter lim(l);
  const SourceKey a = v4(10, 0, 0, 1);
  const Time t0 = at(seconds(100));
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    if (lim.limited(a, t0)) continue;
    lim.note_refused(a, t0);
    ++refused;
  }
  EXPECT_EQ(refused, 20);
  EXPECT_TRUE(lim.limited(a, t0));
  EXPECT_TRUE(lim.limited(a, t0 + milliseconds(499)));  // 0.998 of a refusal earned back
  EXPECT_FALSE(lim.limited(a, t0 + milliseconds(500)));
  lim.note_refused(a, t0 + milliseconds(500));
  EXPECT_TRUE(lim.limited(a, t0 + milliseconds(500)));
  // A long quiet spell refills to the burst, never beyond it.
  const Time later = t0 + seconds(3600);
  refused = 0;
  while (!lim.limited(a, later)) {
    lim.note_refused(a, later);
    ++refused;
  }
  EXPECT_EQ(refused, 20);
}

TEST(RefusalLimiter, OtherSourcesAreUnaffected) {
  RefusalLimiter lim;
  const Time t = at(seconds(1));
  for (int i = 0; i < 50; ++i) lim.note_refused(v4(10, 0, 0, 1), t);
  EXPECT_TRUE(lim.limited(v4(10, 0, 0, 1), t));
  EXPECT_FALSE(lim.limited(v4(10, 0, 0, 2), t));
  for (int i = 0; i < 50; ++i) lim.note_refused(v6("2001:db8:0:1::5"), t);
  EXPECT_TRUE(lim.limited(v6("2001:db8:0:1::77"), t));  // same /64
  EXPECT_FALSE(lim.limited(v6("2001:db8:0:2::5"), t));
}

TEST(RefusalLimiter, MemoryIsBoundedWithLeastRecentlyUsedEviction) {
  RefusalLimits l;
  l.max_sources = 100;
  RefusalLimiter lim(l);
  const Time t = at(seconds(1));
  for (int i = 0; i < 30; ++i) lim.note_refused(v4(10, 0, 0, 1), t);  // the guesser
  for (std::uint32_t i = 0; i < 10'000; ++i) {
    lim.note_refused(v4(10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)), t);
    if (i % 50 == 0) {
      EXPECT_TRUE(lim.limited(v4(10, 0, 0, 1), t));  // recently used: kept
    }
    ASSERT_LE(lim.size(), 100u);
  }
  EXPECT_EQ(lim.size(), 100u);
  // An entry evicted for being least recently used starts again with a full bucket.
  EXPECT_FALSE(lim.limited(v4(10, 1, 0, 0), t));
}

TEST(RefusalLimiter, DropsAreLoggedOncePerInterval) {
  RefusalLimits l;
  l.burst = 1;
  l.refill_per_second = 0;
  l.log_interval = seconds(10);
  RefusalLimiter lim(l);
  const SourceKey a = v4(10, 0, 0, 1);
  const Time t0 = at(seconds(5));
  lim.note_refused(a, t0);
  ASSERT_TRUE(lim.limited(a, t0));
  EXPECT_EQ(lim.note_dropped(a, t0), std::optional<std::uint64_t>(1));
  for (int i = 0; i < 99; ++i) EXPECT_FALSE(lim.note_dropped(a, t0 + seconds(9)).has_value());
  EXPECT_EQ(lim.note_dropped(a, t0 + seconds(10)), std::optional<std::uint64_t>(100));
  EXPECT_FALSE(lim.note_dropped(v4(10, 0, 0, 9), t0).has_value());  // never refused: no entry
}

// --- SessionTable::admit_migrate ----------------------------------------------------------------

std::vector<std::uint8_t> migrate_bytes(const wire::Token& tok, std::uint64_t request,
                                        const wire::Key* key) {
  std::vector<std::uint8_t> out;
  wire::encode_preamble(out);
  wire::Migrate m;
  m.token = tok;
  m.request = request;
  m.received = 0;
  if (key)
    m.mac = crypto::mac(*key, {mac_label(wire::FrameType::kMigrate), m.token, crypto::be64(m.request),
                               crypto::be64(m.received)});
  else
    m.mac.fill(0x42);
  wire::encode(m, out);
  return out;
}

TEST(AdmitMigrate, RefusalsAreIdenticalAndCountedThenUncheckedDropsButALiveMacGetsThrough) {
  test::SessionPair pair;
  ASSERT_TRUE(pair.establish());
  crypto::SeededRng rng(7);
  RefusalLimits l;
  l.burst = 3;
  l.refill_per_second = 1;
  SessionTable table(rng, l);
  table.add(pair.server.get());
  const wire::Token tok = pair.server->token();
  const wire::Key key = pair.server->negotiated().keys.mac_c2s;
  const SourceKey nat = v4(198, 51, 100, 7);
  const Time t = at(seconds(2));

  // Unknown token and forged MAC on a live token: the same bytes, and each is a refusal.
  wire::Token unknown{};
  unknown.fill(0x77);
  std::vector<std::uint8_t> r1, r2;
  MigrateVerdict v = table.admit_migrate(migrate_bytes(unknown, 9, nullptr), nat, t, r1);
  EXPECT_FALSE(v.session);
  EXPECT_FALSE(v.dropped);
  v = table.admit_migrate(migrate_bytes(tok, 9, nullptr), nat, t, r2);
  EXPECT_FALSE(v.session);
  EXPECT_FALSE(v.dropped);
  EXPECT_EQ(r1, r2);
  EXPECT_FALSE(r1.empty());

  std::vector<std::uint8_t> r3;
  v = table.admit_migrate(migrate_bytes(unknown, 10, nullptr), nat, t, r3);
  EXPECT_FALSE(v.dropped);  // the third refusal uses up the burst
  std::vector<std::uint8_t> r4;
  v = table.admit_migrate(migrate_bytes(unknown, 11, nullptr), nat, t, r4);
  EXPECT_TRUE(v.dropped);
  EXPECT_TRUE(r4.empty()) << "a limited source gets no reply";
  EXPECT_EQ(v.log_dropped, std::optional<std::uint64_t>(1));
  v = table.admit_migrate(migrate_bytes(tok, 12, nullptr), nat, t, r4);
  EXPECT_TRUE(v.dropped) << "a forged MAC on a live token is dropped unanswered too";
  EXPECT_FALSE(v.log_dropped.has_value());

  // The genuine client behind the same NAT: its MAC verifies, it reaches its session.
  v = table.admit_migrate(migrate_bytes(tok, 13, &key), nat, t, r4);
  EXPECT_EQ(v.session, pair.server.get());
  // Another source is unaffected.
  std::vector<std::uint8_t> r5;
  v = table.admit_migrate(migrate_bytes(unknown, 14, nullptr), v4(198, 51, 100, 8), t, r5);
  EXPECT_FALSE(v.dropped);
  EXPECT_FALSE(r5.empty());
  // A second later the NAT has earned one refusal back.
  std::vector<std::uint8_t> r6;
  v = table.admit_migrate(migrate_bytes(unknown, 15, nullptr), nat, t + seconds(1), r6);
  EXPECT_FALSE(v.dropped);
  EXPECT_FALSE(r6.empty());
}

}  // namespace
}  // namespace roam::core
