#include "core/session/stream.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace roam::core {
namespace {

std::vector<std::uint8_t> numbered(std::uint64_t from, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((from + i) * 131 % 251);
  return v;
}

// Pushes bytes numbered by stream offset into the ring.
void push_numbered(ByteRing& r, std::size_t n) {
  while (n > 0) {
    MutBytes s = r.free_span();
    ASSERT_FALSE(s.empty());
    const std::size_t k = std::min(n, s.size());
    auto v = numbered(r.end(), k);
    std::memcpy(s.data(), v.data(), k);
    r.push(k);
    n -= k;
  }
}

// Reads [from, end) through data_at, which hands out contiguous pieces.
std::vector<std::uint8_t> read_all(const ByteRing& r, std::uint64_t from) {
  std::vector<std::uint8_t> out;
  while (from < r.end()) {
    Bytes b = r.data_at(from);
    if (b.empty()) break;
    out.insert(out.end(), b.begin(), b.end());
    from += b.size();
  }
  return out;
}

TEST(ByteRing, IdleRingHoldsNoMemory) {
  ByteRing r(1 << 20);
  EXPECT_EQ(r.allocated(), 0u);
  push_numbered(r, 10);
  EXPECT_GT(r.allocated(), 0u);
  r.pop_to(10);
  r.shrink_if_empty();
  EXPECT_EQ(r.allocated(), 0u);
  EXPECT_EQ(r.begin(), 10u);
}

TEST(ByteRing, GrowthAcrossWrapAroundKeepsBytes) {
  ByteRing r(1 << 20);
  push_numbered(r, 60 * 1024);
  const std::size_t first_alloc = r.allocated();
  EXPECT_EQ(first_alloc, 64u * 1024);
  r.pop_to(50 * 1024);
  push_numbered(r, 40 * 1024);  // wraps around the 64 KiB buffer
  EXPECT_EQ(r.allocated(), first_alloc);
  EXPECT_EQ(r.size(), 50u * 1024);
  push_numbered(r, 100 * 1024);  // must grow while the live bytes wrap
  EXPECT_GT(r.allocated(), first_alloc);
  EXPECT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size()));
}

TEST(ByteRing, SeededChurnKeepsEveryByte) {
  const std::uint64_t seed = 0x5eed;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  ByteRing r(300 * 1024);
  for (int i = 0; i < 2000; ++i) {
    const std::size_t room = r.cap() - r.size();
    push_numbered(r, std::uniform_int_distribution<std::size_t>(0, room)(rng) / 4);
    r.pop_to(r.begin() + std::uniform_int_distribution<std::size_t>(0, r.size())(rng));
    ASSERT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size())) << "step " << i;
    ASSERT_LE(r.allocated(), r.cap());
  }
}

TEST(ByteRing, FullAtCapEvenWhenCapIsNotAPowerOfTwo) {
  ByteRing r(100 * 1024 + 3);
  push_numbered(r, r.cap());
  EXPECT_TRUE(r.free_span().empty());
  EXPECT_EQ(r.allocated(), r.cap());
  r.pop_to(r.begin() + 5);
  EXPECT_EQ(r.free_span().size(), 5u);
  push_numbered(r, 5);
  EXPECT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size()));
}

TEST(ByteRing, ResetAtStartsElsewhere) {
  ByteRing r(100);
  r.reset_at(1000);
  push_numbered(r, 30);
  EXPECT_EQ(r.begin(), 1000u);
  EXPECT_EQ(read_all(r, 1010), numbered(1010, 20));
  EXPECT_TRUE(r.data_at(1030).empty());
}

// --- ByteRing: storage follows the working set (trim) ----------------------------------------

// One heartbeat of a stream whose working set is `fill` bytes: the ring is topped up to `fill`
// and everything but the newest `fill` bytes is acknowledged, then the session's periodic trim().
void tick(ByteRing& r, std::size_t fill) {
  if (r.size() < fill) push_numbered(r, fill - r.size());
  r.pop_to(r.end() - std::min<std::size_t>(fill, r.size()));
  r.trim();
}

TEST(ByteRing, ShrinksBackAfterABurstIsAcknowledged) {
  ByteRing r(8 << 20);
  push_numbered(r, 1 << 20);  // an outage's backlog
  ASSERT_EQ(r.allocated(), 1u << 20);
  r.pop_to(r.end() - 10000);  // acknowledged, but for the newest 10,000 bytes
  r.trim();  // the period that saw the burst is a busy one
  EXPECT_EQ(r.allocated(), 1u << 20);
  // The stream goes on with a working set of 10,000 bytes: quiet for kQuietTrimsToShrink trims.
  for (int i = 1; i < kQuietTrimsToShrink; ++i) {
    tick(r, 10000);
    EXPECT_EQ(r.allocated(), 1u << 20) << "shrank after only " << i << " quiet trims";
  }
  tick(r, 10000);
  // Twice the working set, rounded up to the initial size doubled: 20,000 -> 32 KiB.
  EXPECT_EQ(r.allocated(), 32u * 1024);
  EXPECT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size()));
  // Settled: the working set is now more than a quarter of the storage, so it stays.
  for (int i = 0; i < 10; ++i) tick(r, 10000);
  EXPECT_EQ(r.allocated(), 32u * 1024);
}

TEST(ByteRing, DoesNotShrinkWhileFull) {
  ByteRing r(256 * 1024);
  push_numbered(r, r.cap());
  for (int i = 0; i < 10; ++i) {
    r.trim();
    EXPECT_EQ(r.allocated(), r.cap());
  }
  // A ring that drains and refills between trims is busy too: the peak counts, not the moment.
  for (int i = 0; i < 10; ++i) {
    r.pop_to(r.end());
    push_numbered(r, r.cap() / 2);
    r.pop_to(r.end() - 100);
    r.trim();  // nearly empty now, but half full since the last trim
    EXPECT_EQ(r.allocated(), r.cap());
    push_numbered(r, r.cap() - r.size());
  }
  EXPECT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size()));
}

TEST(ByteRing, OneBusyTrimRestartsTheCount) {
  ByteRing r(1 << 20);
  push_numbered(r, 1 << 20);
  r.pop_to(r.end());
  r.trim();  // the burst's own period: busy
  const std::size_t big = r.allocated();
  for (int round = 0; round < 5; ++round) {
    for (int i = 1; i < kQuietTrimsToShrink; ++i) tick(r, 1000);
    tick(r, big / 2);  // a burst again, above a quarter
    EXPECT_EQ(r.allocated(), big) << "round " << round;
  }
  // The period after a burst starts with the burst's bytes still in the ring: busy as well.
  for (int i = 0; i <= kQuietTrimsToShrink; ++i) tick(r, 1000);
  EXPECT_EQ(r.allocated(), kInitialRing);  // 2 x 1000 fits the initial 4 KiB
}

TEST(ByteRing, EmptyRingIsFreedOnceATrimPassesWithoutBytes) {
  ByteRing r(1 << 20);
  push_numbered(r, 10);
  r.pop_to(10);
  r.trim();  // empty, but bytes passed since the last trim: kept (an interactive stream)
  EXPECT_EQ(r.allocated(), kInitialRing);
  r.trim();  // a whole period without a byte: freed
  EXPECT_EQ(r.allocated(), 0u);
  EXPECT_EQ(r.begin(), 10u);
  push_numbered(r, 5);  // and allocated again on demand, at the same offsets
  EXPECT_EQ(read_all(r, 10), numbered(10, 5));
}

TEST(ByteRing, ShrinkingKeepsWrappedBytesExact) {
  ByteRing r(1 << 20);
  push_numbered(r, 256 * 1024);
  r.pop_to(r.end() - 1000);
  push_numbered(r, 6000);  // the live 7,000 bytes now wrap around the end of the storage
  const std::uint64_t begin = r.begin();
  ASSERT_GT((begin % r.allocated()) + r.size(), r.allocated());
  for (int i = 0; i <= kQuietTrimsToShrink; ++i) r.trim();  // the first sees the 256 KiB
  EXPECT_EQ(r.allocated(), 16u * 1024);
  EXPECT_EQ(r.begin(), begin);
  EXPECT_EQ(read_all(r, begin), numbered(begin, 7000));
}

TEST(ByteRing, SeededChurnWithTrimsKeepsEveryByte) {
  for (const std::uint64_t seed : {1u, 2u, 0x5eedu}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    ByteRing r(300 * 1024 + 7);  // not a power of two: the modulo positions move on every resize
    auto pick = [&](std::size_t hi) { return std::uniform_int_distribution<std::size_t>(0, hi)(rng); };
    for (int i = 0; i < 3000; ++i) {
      // Phases of bursts and of trickles, so the ring grows, shrinks and grows again.
      const bool burst = (i / 200) % 2 == 0;
      push_numbered(r, pick(burst ? r.cap() - r.size() : std::min<std::size_t>(2000, r.cap() - r.size())));
      r.pop_to(r.begin() + pick(r.size()));
      if (pick(3) == 0) r.trim();
      ASSERT_EQ(read_all(r, r.begin()), numbered(r.begin(), r.size())) << "step " << i;
      ASSERT_LE(r.allocated(), r.cap());
      ASSERT_TRUE(r.allocated() >= r.size());
    }
  }
}

TEST(RingStorage, LargeBlocksAreMappedSmallOnesAreNot) {
  RingStorage small(kMappedRingMin / 2);
  EXPECT_FALSE(small.mapped());
  RingStorage large(kMappedRingMin);
  EXPECT_EQ(large.mapped(), kRingsMapped);  // AddressSanitizer builds keep rings on the heap
  ASSERT_EQ(large.size(), kMappedRingMin);
  large.data()[0] = 1;
  large.data()[kMappedRingMin - 1] = 2;  // the whole block is usable
  RingStorage moved(std::move(large));
  EXPECT_EQ(moved.mapped(), kRingsMapped);
  EXPECT_TRUE(large.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(moved.data()[kMappedRingMin - 1], 2);
}

// --- SendStream ----------------------------------------------------------------------------

constexpr std::size_t kCap = 100;

TEST(SendStream, WriteSpaceIsEmptyExactlyAtCap) {
  SendStream s(kCap);
  EXPECT_EQ(s.write(numbered(0, kCap - 1)), kCap - 1);
  EXPECT_EQ(s.write_space().size(), 1u);
  EXPECT_EQ(s.write(numbered(kCap - 1, 10)), 1u);
  EXPECT_TRUE(s.write_space().empty());
  EXPECT_EQ(s.write(numbered(kCap, 1)), 0u);
  EXPECT_EQ(s.retained(), kCap);
}

TEST(SendStream, AckTrimsRetentionAndReopensSpace) {
  SendStream s(kCap);
  s.write(numbered(0, kCap));
  s.mark_sent(kCap);
  ASSERT_TRUE(s.on_ack(40));
  EXPECT_EQ(s.acked(), 40u);
  EXPECT_EQ(s.retained(), 60u);
  EXPECT_EQ(s.write(numbered(kCap, 50)), 40u);
  // Going backwards (a reordered heartbeat) changes nothing.
  ASSERT_TRUE(s.on_ack(10));
  EXPECT_EQ(s.acked(), 40u);
  EXPECT_EQ(s.retained(), kCap);
}

TEST(SendStream, AckOfUnsentBytesIsProtocolError) {
  SendStream s(kCap);
  s.write(numbered(0, 50));
  s.mark_sent(20);
  auto r = s.on_ack(21);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  EXPECT_TRUE(s.on_ack(20));
}

TEST(SendStream, UnsentAndDataAtFollowSentOffset) {
  SendStream s(kCap);
  s.write(numbered(0, 30));
  Bytes u = s.unsent(10);
  EXPECT_EQ(std::vector<std::uint8_t>(u.begin(), u.end()), numbered(0, 10));
  s.mark_sent(10);
  u = s.unsent(1000);
  EXPECT_EQ(std::vector<std::uint8_t>(u.begin(), u.end()), numbered(10, 20));
  Bytes d = s.data_at(5, 3);
  EXPECT_EQ(std::vector<std::uint8_t>(d.begin(), d.end()), numbered(5, 3));
}

TEST(SendStream, RewindWithNothingOutstanding) {
  SendStream s(kCap);
  s.write(numbered(0, 30));
  s.mark_sent(30);
  ASSERT_TRUE(s.on_ack(30));
  ASSERT_TRUE(s.rewind_to(30));
  EXPECT_EQ(s.sent(), 30u);
  EXPECT_TRUE(s.unsent(100).empty());
}

TEST(SendStream, RewindWithEverythingOutstanding) {
  SendStream s(kCap);
  s.write(numbered(0, 30));
  s.mark_sent(30);
  ASSERT_TRUE(s.rewind_to(0));
  EXPECT_EQ(s.sent(), 0u);
  Bytes u = s.unsent(100);
  EXPECT_EQ(std::vector<std::uint8_t>(u.begin(), u.end()), numbered(0, 30));
}

TEST(SendStream, RewindExactlyAtBufferCap) {
  SendStream s(kCap);
  s.write(numbered(0, kCap));
  s.mark_sent(kCap);
  ASSERT_TRUE(s.on_ack(0));
  ASSERT_TRUE(s.rewind_to(0));  // the oldest retained byte
  Bytes u = s.unsent(1000);
  EXPECT_EQ(std::vector<std::uint8_t>(u.begin(), u.end()), numbered(0, kCap));
  ASSERT_TRUE(s.rewind_to(kCap));  // the newest position
  EXPECT_TRUE(s.unsent(1000).empty());
}

TEST(SendStream, RewindBelowAckedIsRetentionLost) {
  SendStream s(kCap);
  s.write(numbered(0, 50));
  s.mark_sent(50);
  ASSERT_TRUE(s.on_ack(20));
  auto r = s.rewind_to(19);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRetentionLost);
  EXPECT_TRUE(s.rewind_to(20));
}

TEST(SendStream, RewindBeyondWrittenIsProtocolError) {
  SendStream s(kCap);
  s.write(numbered(0, 50));
  auto r = s.rewind_to(51);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocol);
}

TEST(SendStream, FinOccupiesOnePosition) {
  SendStream s(kCap);
  s.write(numbered(0, 10));
  s.shutdown();
  EXPECT_TRUE(s.is_shutdown());
  EXPECT_TRUE(s.write_space().empty());
  EXPECT_EQ(s.write(numbered(10, 1)), 0u);
  ASSERT_EQ(s.fin_offset(), 10u);
  EXPECT_FALSE(s.fin_pending());
  s.mark_sent(10);
  EXPECT_TRUE(s.fin_pending());
  s.mark_fin_sent();
  EXPECT_EQ(s.sent(), 11u);
  ASSERT_TRUE(s.on_ack(10));
  EXPECT_FALSE(s.all_acked());
  ASSERT_TRUE(s.on_ack(11));
  EXPECT_TRUE(s.all_acked());
  EXPECT_FALSE(s.on_ack(12));
  // A resume that lost the FIN resends it; one that kept it does not.
  ASSERT_TRUE(s.rewind_to(11));
  EXPECT_FALSE(s.fin_pending());
}

TEST(SendStream, FinIsResentAfterRewind) {
  SendStream s(kCap);
  s.write(numbered(0, 10));
  s.shutdown();
  s.mark_sent(10);
  s.mark_fin_sent();
  ASSERT_TRUE(s.rewind_to(10));
  EXPECT_TRUE(s.fin_pending());
  ASSERT_TRUE(s.rewind_to(4));
  EXPECT_FALSE(s.fin_pending());
  EXPECT_EQ(s.unsent(100).size(), 6u);
}

TEST(SendStream, ShutdownTwiceKeepsFirstOffset) {
  SendStream s(kCap);
  s.write(numbered(0, 3));
  s.shutdown();
  s.shutdown();
  EXPECT_EQ(s.fin_offset(), 3u);
}

// --- RecvStream ----------------------------------------------------------------------------

TEST(RecvStream, AppendBeyondCapIsProtocolError) {
  RecvStream r(kCap);
  ASSERT_TRUE(r.append(numbered(0, kCap)));
  auto e = r.append(numbered(kCap, 1));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kProtocol);
  r.consume(1);
  EXPECT_TRUE(r.append(numbered(kCap, 1)));
  EXPECT_EQ(r.received(), kCap + 1);
}

TEST(RecvStream, SpaceThenCommitIsTheDirectReadPath) {
  RecvStream r(kCap);
  MutBytes s = r.space(7);
  ASSERT_EQ(s.size(), 7u);
  auto v = numbered(0, 7);
  std::memcpy(s.data(), v.data(), 7);
  r.commit(7);
  Bytes got = r.readable();
  EXPECT_EQ(std::vector<std::uint8_t>(got.begin(), got.end()), v);
}

TEST(RecvStream, FinCountsOnePosition) {
  RecvStream r(kCap);
  ASSERT_TRUE(r.append(numbered(0, 5)));
  auto wrong = r.on_fin(4);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::kProtocol);
  ASSERT_TRUE(r.on_fin(5));
  EXPECT_EQ(r.received(), 6u);
  EXPECT_TRUE(r.on_fin(5));  // resent after a migration
  EXPECT_FALSE(r.at_eof());  // bytes still unread
  r.consume_eof();
  EXPECT_FALSE(r.eof_consumed());
  r.consume(5);
  EXPECT_TRUE(r.at_eof());
  EXPECT_EQ(r.consumed(), 5u);
  r.consume_eof();
  EXPECT_TRUE(r.eof_consumed());
  EXPECT_EQ(r.consumed(), 6u);
}

}  // namespace
}  // namespace roam::core
