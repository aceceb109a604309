// Session memory under a long-lived, slow, busy stream (the soak's load, bench/soak): consumed
// bytes are acknowledged with every heartbeat also while data flows, and the rings give back what
// a burst made them grow once it is acknowledged. At exact virtual times, no sockets.
#include <gtest/gtest.h>

#include "core/session/session.hpp"
#include "support/session_pair.hpp"

namespace roam::core {
namespace {

using namespace std::chrono_literals;
using test::ByteVec;
using test::pattern;
using test::SessionPair;

constexpr std::uint64_t kSeed = 77;
constexpr std::size_t kStep = 800;  // bytes per 50 ms: 16,000 bytes/s, the soak's rate
constexpr auto kTick = 50ms;

class SessionMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    ASSERT_TRUE(p.establish());
  }
  // Writes the next `n` bytes of the client's stream (all of them: the tests stay below the
  // unsent limit), then lets the network move them.
  void client_writes(std::size_t n) {
    const ByteVec b = pattern(n, kSeed, written);
    ASSERT_EQ(p.client->write(b), n);
    written += n;
    p.pump();
  }
  // The slow stream in both directions (so neither side is ever idle for a heartbeat) for `d` of
  // virtual time; returns the most either side retained meanwhile.
  std::size_t trickle(Duration d) {
    std::size_t most = 0;
    const Time until = p.now + d;
    while (p.now < until) {
      client_writes(kStep);
      const ByteVec b = pattern(kStep, kSeed + 1, written_back);
      EXPECT_EQ(p.server->write(b), kStep);
      written_back += kStep;
      p.advance_to(p.now + kTick);
      p.pump();
      most = std::max({most, p.client->retained(), p.server->retained()});
    }
    return most;
  }
  void expect_exact() {
    EXPECT_EQ(p.server_got, pattern(written, kSeed));
    EXPECT_EQ(p.client_got, pattern(written_back, kSeed + 1));
  }

  SessionPair p;
  std::size_t written = 0;       // client -> server
  std::size_t written_back = 0;  // server -> client
};

TEST_F(SessionMemoryTest, ABusySlowStreamIsAcknowledgedEveryHeartbeat) {
  trickle(2s);
  // The ACK threshold is 256 KiB (16 s of this stream); the heartbeat ACK bounds retention to
  // about one heartbeat of it instead.
  const std::size_t most = trickle(10s);
  EXPECT_LE(most, 16000u + 2 * kStep) << "retention is not trimmed while data flows";
  expect_exact();
}

TEST_F(SessionMemoryTest, RingsShrinkBackOnceABurstIsAcknowledged) {
  trickle(3s);
  // A burst the receiving application does not read at once (a backlog, as after an outage).
  p.server_reads = false;
  client_writes(300 * 1024);
  p.advance_to(p.now + kTick);
  p.pump();
  EXPECT_GE(p.client->ring_memory(), 300u * 1024);  // the burst is retained
  EXPECT_GE(p.server->ring_memory(), 300u * 1024);  // and buffered
  p.server_reads = true;
  p.pump();
  EXPECT_EQ(p.server_got.size(), written);
  // Once it is acknowledged and the stream is back to its trickle, the rings shrink to twice its
  // working set within a few heartbeats: retention 64 KiB (a heartbeat of the stream, ~17,000
  // bytes, doubled and rounded up), receive ring a few KiB (the application reads at once).
  trickle(6s);
  EXPECT_LE(p.client->ring_memory(), 64u * 1024 + 16u * 1024);
  EXPECT_LE(p.server->ring_memory(), 64u * 1024 + 16u * 1024);
  // And stay there: no shrinking and regrowing from one heartbeat to the next.
  const std::size_t client_after = p.client->ring_memory();
  const std::size_t server_after = p.server->ring_memory();
  trickle(10s);
  EXPECT_EQ(p.client->ring_memory(), client_after);
  EXPECT_EQ(p.server->ring_memory(), server_after);
  expect_exact();
}

TEST_F(SessionMemoryTest, IdleSessionHoldsNoRing) {
  trickle(1s);
  // Silence: the rings are freed after a heartbeat without a byte.
  p.advance_to(p.now + 1s);
  p.pump();
  p.advance_to(p.now + 1s);
  p.pump();
  EXPECT_EQ(p.client->ring_memory(), 0u);
  EXPECT_EQ(p.server->ring_memory(), 0u);
  expect_exact();
}

}  // namespace
}  // namespace roam::core
