// ProbeGate: reconnect probes shared per (local address, server), on virtual time.
#include "core/session/probe_gate.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace roam::core {
namespace {

using namespace std::chrono_literals;

Time at(Duration d) { return Time{d}; }

TEST(ProbeGate, ManySessionsShareOneProbePerSpacing) {
  ProbeGate g(100ms, 1s, 32);
  const std::string k = "198.18.1.2|198.18.3.2:7000";
  int woken = 0;
  // 1,000 sessions ask at the same instant: one probe goes, the rest wait.
  int admitted = 0;
  for (ProbeGate::Waiter w = 1; w <= 1000; ++w) admitted += g.admit(k, w, [&] { ++woken; }, at(0ms));
  EXPECT_EQ(admitted, 1);
  EXPECT_EQ(g.waiting(k), 999u);
  // Each asks again every 100 ms for 3 s of outage: one probe per 100 ms for the whole process.
  for (int tick = 1; tick <= 30; ++tick) {
    int now_admitted = 0;
    for (ProbeGate::Waiter w = 1; w <= 1000; ++w)
      now_admitted += g.admit(k, w, [&] { ++woken; }, at(tick * 100ms));
    EXPECT_EQ(now_admitted, 1) << "tick " << tick;
    g.done(k, false, at(tick * 100ms + 50ms));  // black hole: the probe fails
  }
  EXPECT_EQ(woken, 0);
}

TEST(ProbeGate, AConnectedProbeWakesEveryWaiterAndOpensTheKey) {
  ProbeGate g(100ms, 1s, 32);
  const std::string k = "src|srv";
  std::vector<int> woken(11, 0);
  ASSERT_TRUE(g.admit(k, 1, [&] { ++woken[1]; }, at(0ms)));
  for (ProbeGate::Waiter w = 2; w <= 10; ++w)
    EXPECT_FALSE(g.admit(k, w, [&, w] { ++woken[w]; }, at(10ms)));
  g.done(k, true, at(20ms));
  for (int w = 2; w <= 10; ++w) EXPECT_EQ(woken[w], 1) << w;
  EXPECT_EQ(woken[1], 0);  // the prober itself is not waiting
  // Reachable now: everyone is admitted at once, not one per 100 ms.
  for (ProbeGate::Waiter w = 2; w <= 10; ++w) EXPECT_TRUE(g.admit(k, w, nullptr, at(21ms)));
  EXPECT_EQ(g.in_flight(k), 9u);
  // ... until the reachable window closes.
  for (int i = 0; i < 9; ++i) g.done(k, false, at(500ms));
  EXPECT_TRUE(g.admit(k, 20, nullptr, at(1100ms)));
  EXPECT_FALSE(g.admit(k, 21, nullptr, at(1150ms)));
}

TEST(ProbeGate, KeysAreIndependentAndBoundedInFlight) {
  ProbeGate g(100ms, 1s, 2);
  EXPECT_TRUE(g.admit("wifi|srv", 1, nullptr, at(0ms)));
  EXPECT_TRUE(g.admit("cell|srv", 1, nullptr, at(0ms)));  // another source: its own probe
  EXPECT_TRUE(g.admit("wifi|srv", 2, nullptr, at(100ms)));
  // Two probes of wifi|srv hang in a black hole: a third waits even though 100 ms passed.
  EXPECT_FALSE(g.admit("wifi|srv", 3, nullptr, at(200ms)));
  g.done("wifi|srv", false, at(2500ms));
  EXPECT_TRUE(g.admit("wifi|srv", 3, nullptr, at(2500ms)));
}

TEST(ProbeGate, ForgottenWaitersAreNotWokenAndIdleKeysAreDropped) {
  ProbeGate g(100ms, 1s, 32);
  int woken = 0;
  ASSERT_TRUE(g.admit("k", 1, nullptr, at(0ms)));
  EXPECT_FALSE(g.admit("k", 2, [&] { ++woken; }, at(1ms)));
  g.forget(2);
  g.done("k", true, at(2ms));
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(g.keys(), 1u);  // still reachable
  ASSERT_TRUE(g.admit("k", 3, nullptr, at(3ms)));
  g.done("k", false, at(2s));  // after the window, nothing in flight, nobody waiting
  EXPECT_EQ(g.keys(), 0u);
}

}  // namespace
}  // namespace roam::core
