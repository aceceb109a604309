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

// A cut is in the final-ACK window when some side X has received its peer's FIN and the peer's
// application has consumed X's FIN: X may then finish, send its last ACK over the doomed path and
// close, while its peer never learns that the ACK was sent (see the test below).
bool in_final_ack_window(Simulator& sim) {
  const Options& o = sim.options();
  core::Session* server = sim.server();
  if (!server) return false;
  const bool client_has_fin = sim.client().bytes_received() == o.s2c.bytes + 1;
  const bool server_has_fin = server->bytes_received() == o.c2s.bytes + 1;
  return (client_has_fin && sim.stats(Side::kServer).eof) ||
         (server_has_fin && sim.stats(Side::kClient).eof);
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

// A one-way delay of 5–30 ms picked by the seed (without consuming the simulation's generator).
std::uint64_t sim_delay_ms(std::uint64_t seed) { return 5 + seed % 26; }

// --- 1. the headline ------------------------------------------------------------------------

TEST(SimCuts, EveryByteExactlyOnceInOrderAcrossAThousandCuts) {
  constexpr int kCutsPerRun = 4;
  std::uint64_t cuts = 0;
  std::uint64_t bytes = 0;
  std::uint64_t runs = 0;
  std::uint64_t migrations = 0;
  std::uint64_t refused = 0;
  std::uint64_t skipped = 0;
  int failed_runs = 0;
  for (std::uint64_t seed : seeds(1000, 360)) {
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
      if (in_final_ack_window(sim)) ++skipped;  // counted: the linger makes these end cleanly too
      sim.cut(*target, sim.random_cut_spec(0.7, 4 * delay));
      ++cuts;
    }
    EXPECT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    if (::testing::Test::HasFailure() && ++failed_runs >= 5) return;
    bytes += sim.options().c2s.bytes + sim.options().s2c.bytes;
    migrations += sim.client().migrations();
    refused += sim.refused_replies();
    ++runs;
  }
  std::printf("[sim] %llu runs, %llu cuts (%llu of them in the final-ACK window), %llu migrations, "
              "%llu refused, %llu bytes checked\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(cuts),
              static_cast<unsigned long long>(skipped),
              static_cast<unsigned long long>(migrations), static_cast<unsigned long long>(refused),
              static_cast<unsigned long long>(bytes));
  if (!replaying()) {
    EXPECT_GE(cuts, 1000u);
  }
}

// The final-ACK window: whichever side finishes first sends its last ACK; if that ACK is lost with
// the path, its peer must still end cleanly. The client, once complete, waits for the server's EOF
// (and migrates if the path dies instead); a server that ended cleanly lingers, still answering
// migrate requests (like TCP's TIME_WAIT), so the client can come back for the lost ACK.
TEST(SimCuts, CutInTheFinalAckWindowStillClosesCleanly) {
  std::uint64_t hits = 0;
  for (std::uint64_t seed : seeds(1000, 360)) {
    SCOPED_TRACE(trace_of(seed));
    Simulator sim(random_options(seed));
    if (!sim.run_until([&] { return in_final_ack_window(sim); }, Time::never()) || sim.done())
      continue;
    if (auto target = sim.cut_target()) sim.cut(*target, CutSpec{});
    ++hits;
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    if (::testing::Test::HasFailure()) return;
  }
  std::printf("[sim] %llu cuts in the final-ACK window\n", static_cast<unsigned long long>(hits));
}

// --- 2. silent black hole -----------------------------------------------------------------

Options steady_options(std::uint64_t seed) {
  Options o;
  o.seed = seed;
  o.link.delay = 10ms;
  o.link.bytes_per_sec = 50'000'000;
  o.link.sndbuf = o.link.rcvbuf = 128 * 1024;
  o.client.handshake.buffer_cap = o.server.handshake.buffer_cap = 256 * 1024;
  o.c2s.bytes = o.s2c.bytes = 1 << 20;
  return o;
}

TEST(SimBlackHole, HeartbeatsFindASilentCutAndTheSessionResumes) {
  Duration worst{0};
  for (std::uint64_t seed : seeds(2000, 40)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    Simulator sim(o);
    const double f = std::uniform_real_distribution<double>(0.05, 0.9)(sim.rng());
    ASSERT_TRUE(run_to_progress(sim, f)) << sim.summary();
    sim.run_until(sim.now() + sim.uniform(Duration{0}, 20ms));
    ASSERT_FALSE(sim.done());
    const Time cut_at = sim.now();
    ASSERT_TRUE(sim.stats(Side::kClient).path_lost_at.empty()) << sim.summary();
    ASSERT_TRUE(sim.stats(Side::kServer).path_lost_at.empty()) << sim.summary();
    sim.cut(*sim.cut_target(), CutSpec{});  // no error to anyone: only silence
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    const Duration bound = o.client.heartbeat * o.client.dead_after_beats;
    // Each side leaves the dead path within the bound: by declaring it lost, or (the client
    // probes once the path has been silent for a heartbeat and a half) by migrating away first.
    for (Side side : {Side::kClient, Side::kServer}) {
      const auto& lost = sim.stats(side).path_lost_at;
      const auto& moved = sim.stats(side).migrated_at;
      ASSERT_FALSE(lost.empty() && moved.empty()) << side_name(side) << " never noticed\n"
                                                  << sim.summary();
      Time noticed = Time::never();
      if (!lost.empty()) noticed = std::min(noticed, lost.front());
      if (!moved.empty()) noticed = std::min(noticed, moved.front());
      EXPECT_GE(noticed, cut_at);
      EXPECT_LE(noticed - cut_at, bound) << side_name(side) << "\n" << sim.summary();
      worst = std::max(worst, noticed - cut_at);
    }
    EXPECT_GE(sim.client().migrations(), 1u);
    if (::testing::Test::HasFailure()) return;
  }
  std::printf("[sim] black hole found after at most %.1f ms (bound %.0f ms)\n", ms(worst),
              ms(core::SessionConfig{}.heartbeat * core::SessionConfig{}.dead_after_beats));
}

// --- 3. an outage longer than the wait ----------------------------------------------------

TEST(SimOutage, BothSidesCloseWithTimeoutExactlyAtLastHeardPlusWait) {
  for (std::uint64_t seed : seeds(3000, 10)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    o.partial_io = false;  // whole frames per read, so the last read is the last frame heard
    o.c2s.bytes = o.s2c.bytes = 200 * 1024;
    o.c2s.shutdown = o.s2c.shutdown = false;  // the session stays open, idle after the transfer
    o.client.handshake.wait = 30s;
    o.server.handshake.wait = 20s;  // the smaller wait applies on both sides
    Simulator sim(o);
    ASSERT_TRUE(run_to_progress(sim, 1.0)) << sim.summary();
    sim.run_until(sim.now() + sim.uniform(Duration{0}, 5s));  // idle: heartbeats only
    ASSERT_FALSE(sim.done()) << sim.summary();
    sim.set_partition(true);
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    for (Side side : {Side::kClient, Side::kServer}) {
      const SideStats& st = sim.stats(side);
      EXPECT_TRUE(st.closed) << side_name(side);
      EXPECT_FALSE(st.clean) << side_name(side);
      EXPECT_EQ(st.close_code, Errc::kTimeout) << side_name(side) << " " << st.close_detail;
      EXPECT_EQ(st.closed_at, st.last_rx + 20s)
          << side_name(side) << ": closed at " << ms(st.closed_at.since_epoch)
          << " ms, last heard " << ms(st.last_rx.since_epoch) << " ms\n"
          << sim.summary();
    }
    EXPECT_EQ(sim.stats(Side::kServer).read, o.c2s.bytes);
    EXPECT_EQ(sim.stats(Side::kClient).read, o.s2c.bytes);
    if (::testing::Test::HasFailure()) return;
  }
}

// --- 4. competing attempts ----------------------------------------------------------------

TEST(SimCompetingAttempts, NewerAttemptsNeverKillTheSession) {
  std::uint64_t competing = 0;
  std::uint64_t refused = 0;
  for (std::uint64_t seed : seeds(4000, 40)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    o.link.delay = 5ms;
    o.link_delay_max = 1500ms;  // later links: some answer long after attempt_timeout
    o.c2s.bytes = o.s2c.bytes = 512 * 1024;
    Simulator sim(o);
    // Address events at random moments start make-before-break attempts on top of cuts.
    std::function<void()> poke = [&] {
      if (sim.done()) return;
      // A make-before-break switch abandons the old path like a cut does (the client stops
      // reading it at CHALLENGE), so it too stays out of the final-ACK window.
      // Stop once a FIN has arrived anywhere, so that no attempt still in flight crosses it.
      const bool fin_seen =
          sim.client().bytes_received() > sim.options().s2c.bytes ||
          (sim.server() && sim.server()->bytes_received() > sim.options().c2s.bytes);
      if (fin_seen) return;
      sim.client().request_migration(sim.now());
      sim.at(sim.now() + sim.uniform(Duration{50ms}, Duration{1500ms}), poke);
    };
    sim.at(Time{} + 300ms, poke);
    for (int i = 0; i < 3; ++i) {
      const double f = std::uniform_real_distribution<double>(0.0, 0.95)(sim.rng());
      if (!run_to_progress(sim, f) || sim.done()) break;
      if (auto target = sim.cut_target()) sim.cut(*target, sim.random_cut_spec(0.5, 50ms));
    }
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    competing += sim.competing_attaches();
    refused += sim.refused_replies();
    if (::testing::Test::HasFailure()) return;
  }
  std::printf("[sim] %llu attempts started while an older one was in flight, %llu refused\n",
              static_cast<unsigned long long>(competing), static_cast<unsigned long long>(refused));
  if (!replaying()) {
    EXPECT_GT(competing, 0u);
  }
}

// --- 5. handover latency --------------------------------------------------------------------

TEST(SimHandover, FirstByteWithinThreeRoundTripsOfTheNewLink) {
  const Duration delay = 10ms;
  const Duration rtt = 2 * delay;
  const Duration bound = 3 * rtt + 2ms;
  std::vector<Duration> s2c;
  std::vector<Duration> c2s;
  for (std::uint64_t seed : seeds(5000, 20)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    o.link.delay = delay;
    o.link.bytes_per_sec = 1'000'000'000;
    o.client.handshake.buffer_cap = o.server.handshake.buffer_cap = 8u << 20;
    o.c2s.bytes = o.s2c.bytes = 1u << 20;
    o.io_pause_prob = 0;
    o.c2s.stall_prob = o.s2c.stall_prob = 0;
    o.c2s.read_gap_prob = o.s2c.read_gap_prob = 0;
    o.c2s.write_gap_prob = o.s2c.write_gap_prob = 0;
    Simulator sim(o);
    const double f = std::uniform_real_distribution<double>(0.1, 0.6)(sim.rng());
    ASSERT_TRUE(run_to_progress(sim, f)) << sim.summary();
    sim.cut(*sim.cut_target(), CutSpec{Duration{0}, Duration{0}});  // both sides told at once
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    ASSERT_EQ(sim.handovers().size(), 1u) << sim.summary();
    const Handover& h = sim.handovers().front();
    ASSERT_TRUE(h.client_first && h.server_first) << sim.summary();
    s2c.push_back(*h.client_first - h.attached);
    c2s.push_back(*h.server_first - h.attached);
    EXPECT_LE(s2c.back(), bound);
    EXPECT_LE(c2s.back(), bound);
    if (::testing::Test::HasFailure()) return;
  }
  std::sort(s2c.begin(), s2c.end());
  std::sort(c2s.begin(), c2s.end());
  const double r = ms(rtt);
  std::printf(
      "[sim] handover, RTT %.0f ms, from the new link being usable to the first byte on it: "
      "server->client median %.2f ms (%.2f RTT), max %.2f ms; client->server median %.2f ms "
      "(%.2f RTT), max %.2f ms; bound 3 RTT + 2 ms = %.0f ms\n",
      r, ms(s2c[s2c.size() / 2]), ms(s2c[s2c.size() / 2]) / r, ms(s2c.back()),
      ms(c2s[c2s.size() / 2]), ms(c2s[c2s.size() / 2]) / r, ms(c2s.back()), ms(bound));
}

// Make-before-break: while the old link still works the client opens a second one and moves
// (request_migration, as on a preferred interface appearing). Both applications write a 64-byte
// record every millisecond; no record may be delayed by more than one round trip + 2 ms beyond
// the link's own delay (the fastest record of the run), in either direction.
TEST(SimHandover, MakeBeforeBreakDelaysNoRecordByMoreThanOneRoundTrip) {
  const Duration delay = 10ms;
  const Duration rtt = 2 * delay;
  const Duration bound = rtt + 2ms;
  std::vector<Duration> extra_s2c;
  std::vector<Duration> extra_c2s;
  for (std::uint64_t seed : seeds(6000, 12)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    o.link.delay = delay;
    o.link.bytes_per_sec = 1'000'000'000;
    o.client.handshake.buffer_cap = o.server.handshake.buffer_cap = 1u << 20;
    o.io_pause_prob = 0;
    for (AppParams* a : {&o.c2s, &o.s2c}) {
      a->pace = 1ms;
      a->record = 64;
      a->bytes = 64 * 1500;  // 1.5 s of records
      a->read_gap_prob = a->stall_prob = 0;
    }
    Simulator sim(o);
    const Time start = sim.now();
    const Time switch_at = start + 500ms + sim.uniform(Duration{0}, 10ms);
    ASSERT_TRUE(sim.run_until([&] { return sim.now() >= switch_at; }, switch_at)) << sim.summary();
    ASSERT_TRUE(sim.client().established_once()) << sim.summary();
    sim.client().request_migration(sim.now());
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    ASSERT_EQ(sim.stats(Side::kClient).migrated_at.size(), 1u) << sim.summary();
    for (Side reader : {Side::kClient, Side::kServer}) {
      const auto& d = sim.stats(reader).record_delays;
      ASSERT_EQ(d.size(), 1500u) << side_name(reader);
      // Records queued during the handshake wait for it; the handover is what is measured.
      Duration fastest = d.back().delay;
      Duration slowest{0};
      for (const auto& r : d) {
        fastest = std::min(fastest, r.delay);
        if (r.read >= switch_at - 100ms) slowest = std::max(slowest, r.delay);
      }
      const Duration extra = slowest - fastest;
      EXPECT_LE(extra, bound) << side_name(reader) << " reader: a record waited " << ms(extra)
                              << " ms longer than the fastest one";
      // The client reads the old path until ACCEPT, so nothing the server sent is held up there.
      if (reader == Side::kClient) {
        EXPECT_LE(extra, 2ms) << "server->client: a record waited " << ms(extra) << " ms longer";
      }
      (reader == Side::kClient ? extra_s2c : extra_c2s).push_back(extra);
    }
    if (::testing::Test::HasFailure()) return;
  }
  std::sort(extra_s2c.begin(), extra_s2c.end());
  std::sort(extra_c2s.begin(), extra_c2s.end());
  const double r = ms(rtt);
  std::printf(
      "[sim] make-before-break, RTT %.0f ms, records every 1 ms: longest extra delay of a record "
      "server->client median %.2f ms (%.2f RTT), max %.2f ms; client->server median %.2f ms (%.2f "
      "RTT), max %.2f ms; bound 1 RTT + 2 ms = %.0f ms\n",
      r, ms(extra_s2c[extra_s2c.size() / 2]), ms(extra_s2c[extra_s2c.size() / 2]) / r,
      ms(extra_s2c.back()), ms(extra_c2s[extra_c2s.size() / 2]),
      ms(extra_c2s[extra_c2s.size() / 2]) / r, ms(extra_c2s.back()), ms(bound));
}

// Make-before-break at random moments of bulk transfers in both directions (the old path keeps
// delivering while the client drains it, so the server's resend overlaps what already arrived,
// sometimes up to and including the end of stream): every byte exactly once, clean ends.
TEST(SimHandover, MakeBeforeBreakAtRandomMomentsIsExact) {
  std::uint64_t moves = 0;
  for (std::uint64_t seed : seeds(7000, 120)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = random_options(seed);
    o.c2s.stall_prob = o.s2c.stall_prob = 0;
    Simulator sim(o);
    const std::uint64_t n = sim.uniform(1, 4);
    for (std::uint64_t i = 0; i < n && !sim.done(); ++i) {
      const double f = std::uniform_real_distribution<double>(0.0, 1.0)(sim.rng());
      if (!run_to_progress(sim, f * 0.98)) break;
      sim.run_until(sim.now() + sim.uniform(Duration{0}, 2 * o.link.delay));
      if (sim.done()) break;
      sim.client().request_migration(sim.now());
      ++moves;
    }
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    if (::testing::Test::HasFailure()) return;
  }
  std::printf("[sim] %llu make-before-break moves during bulk transfers, all exact\n",
              static_cast<unsigned long long>(moves));
}

// A second move right after a make-before-break move is accepted, on a slow link, so the first
// resend has not caught up: either a second CHALLENGE arrives (the path still dropping the overlap
// becomes the one that drains) or that path is cut (break-before-make).
TEST(SimHandover, MakeBeforeBreakAgainWhileTheResendCatchesUpIsExact) {
  std::uint64_t overlapping = 0;
  for (std::uint64_t seed : seeds(8000, 60)) {
    SCOPED_TRACE(trace_of(seed));
    Options o = steady_options(seed);
    o.link.bytes_per_sec = 2'000'000;
    o.link.delay = std::chrono::milliseconds(sim_delay_ms(seed));
    o.client.handshake.buffer_cap = o.server.handshake.buffer_cap = 1u << 20;
    o.c2s.bytes = o.s2c.bytes = 600 * 1024;
    o.c2s.stall_prob = o.s2c.stall_prob = 0;
    Simulator sim(o);
    const double f = std::uniform_real_distribution<double>(0.1, 0.6)(sim.rng());
    ASSERT_TRUE(run_to_progress(sim, f)) << sim.summary();
    sim.client().request_migration(sim.now());
    ASSERT_TRUE(sim.run_until([&] { return sim.stats(Side::kClient).migrated_at.size() == 1; },
                              Time::never()))
        << sim.summary();
    if (!sim.done()) {
      // Half the seeds move make-before-break again; the others lose the new path outright
      // (break-before-make while the resend is still in flight on it).
      if (seed % 2 == 0)
        sim.client().request_migration(sim.now());
      else
        sim.cut(*sim.cut_target(), CutSpec{Duration{0}, Duration{0}});
      ++overlapping;
    }
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(overlapping, 0u);
}

// --- 6. small cap, slow reader -------------------------------------------------------------

Options small_cap_options(std::uint64_t seed) {
  Options o = steady_options(seed);
  o.client.handshake.buffer_cap = o.server.handshake.buffer_cap = 4096;
  o.c2s.bytes = o.s2c.bytes = 192 * 1024;
  for (AppParams* a : {&o.c2s, &o.s2c}) {
    a->max_chunk = 700;
    a->read_gap_prob = 0.8;
    a->read_gap_max = 5ms;
    a->stall_prob = 0.01;
    a->stall_max = 4s;  // longer than heartbeat * dead_after_beats: not a dead path
  }
  return o;
}

void expect_bounded(const Simulator& sim, std::size_t cap) {
  for (Side side : {Side::kClient, Side::kServer}) {
    EXPECT_LE(sim.stats(side).max_retained, cap) << side_name(side);
    EXPECT_LE(sim.stats(side).max_readable, cap) << side_name(side);
  }
}

TEST(SimBackpressure, SmallCapSlowReaderStaysBoundedAndExact) {
  for (std::uint64_t seed : seeds(6000, 8)) {
    SCOPED_TRACE(trace_of(seed));
    Simulator sim(small_cap_options(seed));
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    expect_bounded(sim, 4096);
    // A reader that stops is not a dead path.
    EXPECT_TRUE(sim.stats(Side::kClient).path_lost_at.empty()) << sim.summary();
    EXPECT_TRUE(sim.stats(Side::kServer).path_lost_at.empty()) << sim.summary();
    EXPECT_EQ(sim.client().migrations(), 0u);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(SimBackpressure, SmallCapSlowReaderWithCuts) {
  for (std::uint64_t seed : seeds(6100, 12)) {
    SCOPED_TRACE(trace_of(seed));
    Simulator sim(small_cap_options(seed));
    for (int i = 0; i < 3; ++i) {
      const double f = std::uniform_real_distribution<double>(0.0, 0.95)(sim.rng());
      if (!run_to_progress(sim, f) || sim.done()) break;
      if (auto target = sim.cut_target()) sim.cut(*target, sim.random_cut_spec(0.6, 40ms));
    }
    ASSERT_TRUE(sim.run_to_end()) << sim.summary();
    expect_exact_and_clean(sim);
    expect_bounded(sim, 4096);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace roam::sim
