// Simulated sessions over links that break: exactly-once delivery across cuts, heartbeat detection
// of black holes, the migrate wait, competing attempts, handover latency and bounded buffers.
//
// Every test is seeded; a failure names its seed (ROAM_SIM_SEED=<seed> replays only that one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "sim/simulator.hpp"

namespace roam::sim {
namespace {

using core::Errc;
using core::State;

std::string trace_of(std::uint64_t seed) {
  return "replay with ROAM_SIM_SEED=" + std::to_string(seed);
}

[[maybe_unused]] double ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

bool replaying() { return seeds(0, 2).size() == 1; }

// Every byte of both streams arrived exactly once and in order (the readers checked each one
// against its position), both ends of stream were seen, and both sides closed cleanly.
void expect_exact_and_clean(const Simulator& sim) {
  const Options& o = sim.options();
  const SideStats& c = sim.stats(Side::kClient);
  const SideStats& s = sim.stats(Side::kServer);
  EXPECT_EQ(c.written, o.c2s.bytes) << sim.summary();
  EXPECT_EQ(s.written, o.s2c.bytes) << sim.summary();
  EXPECT_EQ(s.read, o.c2s.bytes) << sim.summary();
  EXPECT_EQ(c.read, o.s2c.bytes) << sim.summary();
  EXPECT_TRUE(c.eof && s.eof) << sim.summary();
  EXPECT_TRUE(c.closed && c.clean) << sim.summary();
  EXPECT_TRUE(s.closed && s.clean) << sim.summary();
}

std::uint64_t bytes_read(const Simulator& sim) {
  return sim.stats(Side::kClient).read + sim.stats(Side::kServer).read;
}

// Runs until the applications have read `fraction` of both streams together.
bool run_to_progress(Simulator& sim, double fraction) {
  const Options& o = sim.options();
  const auto target = static_cast<std::uint64_t>(fraction * static_cast<double>(o.c2s.bytes + o.s2c.bytes));
  return sim.run_until(
      [&] { return sim.client().established_once() && bytes_read(sim) >= target; }, Time::never());
}

// A varied world for one seed: path delay, rate, caps, kernel buffers and stream lengths.
Options random_options(std::uint64_t seed) {
  std::mt19937_64 r(seed ^ 0xA5A5A5A5ull);
  auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(r);
  };
  Options o;
  o.seed = seed;
  o.link.delay = std::chrono::milliseconds(pick(1, 40));
  const std::uint64_t rates[] = {5'000'000, 20'000'000, 100'000'000, 1'000'000'000};
  o.link.bytes_per_sec = rates[pick(0, 3)];
  o.link.sndbuf = pick(8, 256) * 1024;
  o.link.rcvbuf = pick(8, 256) * 1024;
  o.link.mss = pick(1, 16) * 1024;
  const std::uint64_t caps[] = {16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024, 8u << 20};
  o.client.handshake.buffer_cap = caps[pick(0, 4)];
  o.server.handshake.buffer_cap = caps[pick(0, 4)];
  auto length = [&] { return pick(0, 19) == 0 ? pick(0, 100) : pick(16 * 1024, 768 * 1024); };
  o.c2s.bytes = length();
  o.s2c.bytes = length();
  o.c2s.stall_max = o.s2c.stall_max = std::chrono::milliseconds(pick(10, 2500));
  return o;
}

// --- 1. the headline ------------------------------------------------------------------------

TEST(SimCuts, EveryByteExactlyOnceInOrderAcrossAThousandCuts) {
  constexpr int kCutsPerRun = 4;
  std::uint64_t cuts = 0;
  std::uint64_t bytes = 0;
  std::uint64_t runs = 0;
  std::uint64_t migrations = 0;
  std::uint64_t refused = 0;
  for (std::uint64_t seed : seeds(1000, 260)) {
    SCOPED_TRACE(trace_of(seed));
    Simulator sim(random_options(seed));
    const Duration delay = sim.options().link.delay;
    std::vector<double> points;
    for (int i = 0; i < kCutsPerRun; ++i)
      points.push_back(std::uniform_real_distribution<double>(0.0, 1.0)(sim.rng()));
    std::sort(points.begin(), points.end());
    for (double f : points) {
      if (!run_to_progress(sim, f) || sim.done()) break;
      sim.run_until(sim.now() + sim.uniform(Duration{0}, 2 * delay));  // any instant
      if (sim.done() || sim.failed()) break;
      std::optional<LinkId> target = sim.cut_target();
      const auto open = sim.open_links();
      if (!open.empty() && sim.chance(0.3)) target = open[sim.uniform(0, open.size() - 1)];
      if (!target) continue;
      sim.cut(*target, sim.random_cut_spec(0.7, 4 * delay));
      ++cuts;
    }
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    if (::testing::Test::HasFailure()) return;
    bytes += sim.options().c2s.bytes + sim.options().s2c.bytes;
    migrations += sim.client().migrations();
    refused += sim.refused_replies();
    ++runs;
  }
  std::printf("[sim] %llu runs, %llu cuts, %llu migrations, %llu refused, %llu bytes checked\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(cuts),
              static_cast<unsigned long long>(migrations), static_cast<unsigned long long>(refused),
              static_cast<unsigned long long>(bytes));
  if (!replaying()) {
    EXPECT_GE(cuts, 1000u);
  }
}

}  // namespace
}  // namespace roam::sim
