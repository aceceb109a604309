// The headline: 64 MiB each way through `roam connect --local` → CutRelay → `roam server`,
// while the relay resets every connection at least 20 times; beside it a plain TCP stream
// through a second CutRelay dies at its first cut.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <mutex>

#include "itest_util.hpp"

namespace roam::itest {
namespace {

constexpr std::uint64_t kBytes = 64 * kMiB;
// Cut whenever this much more has arrived (both directions counted together): ~40 cuts, spread
// over the whole transfer because they are triggered by progress, not by time.
constexpr std::uint64_t kCutEvery = 3 * kMiB;
constexpr int kMinCuts = 20;

// Cuts `relay` each time the combined progress of two pumps passes another `every` bytes.
class CutOnProgress {
 public:
  CutOnProgress(RelayThread& relay, std::uint64_t every, std::uint64_t stop_at)
      : relay_(relay), every_(every), next_(every), stop_at_(stop_at) {}
  void note(int side, std::uint64_t total) {
    got_[side].store(total);
    const std::uint64_t sum = got_[0].load() + got_[1].load();
    std::lock_guard<std::mutex> lk(mu_);
    if (sum < next_ || sum >= stop_at_) return;
    next_ = sum + every_;
    if (relay_.cut() > 0) {
      ++cuts_;
      cut_at_.push_back(sum);
    } else {
      ++idle_;  // nothing to cut (the session was reconnecting): not counted
    }
  }
  int cuts() {
    std::lock_guard<std::mutex> lk(mu_);
    return cuts_;
  }
  int idle() {
    std::lock_guard<std::mutex> lk(mu_);
    return idle_;
  }
  std::vector<std::uint64_t> cut_at() {
    std::lock_guard<std::mutex> lk(mu_);
    return cut_at_;
  }

 private:
  RelayThread& relay_;
  std::uint64_t every_;
  std::mutex mu_;
  std::uint64_t next_;
  std::uint64_t stop_at_;
  std::atomic<std::uint64_t> got_[2] = {0, 0};
  int cuts_ = 0;
  int idle_ = 0;
  std::vector<std::uint64_t> cut_at_;
};

TEST(BulkThroughCuts, SixtyFourMiBEachWaySurviveTwentyCutsWhilePlainTcpDies) {
  DumpOnFailure dump;
  constexpr std::uint64_t kUpSeed = 0x5eed0001, kDownSeed = 0x5eed0002;
  const auto t0 = Clock::now();

  // roam chain: app → roam connect --local → relay → roam server → service.
  DuplexOptions svc_opts;
  svc_opts.send_bytes = kBytes;
  svc_opts.seed = kDownSeed;
  svc_opts.timeout = seconds(100);
  std::unique_ptr<CutOnProgress> cutter;
  svc_opts.on_progress = [&](std::uint64_t n) {
    if (cutter) cutter->note(1, n);
  };
  Service service(svc_opts);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0) << "roam server never said it was listening";
  RelayThread relay(server_port);
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0) << "roam connect --local never said it was listening";
  cutter = std::make_unique<CutOnProgress>(relay, kCutEvery, 2 * kBytes - kCutEvery);

  // Plain TCP beside it: app → relay → service, cut once after 3 MiB arrived.
  DuplexOptions plain_svc_opts;
  plain_svc_opts.send_bytes = kBytes;
  plain_svc_opts.seed = kDownSeed;
  plain_svc_opts.timeout = seconds(100);
  Service plain_service(plain_svc_opts);
  RelayThread plain_relay(plain_service.port());
  std::atomic<bool> plain_cut{false};
  std::atomic<std::uint64_t> plain_cut_at{0};

  DuplexOptions app_opts;
  app_opts.send_bytes = kBytes;
  app_opts.seed = kUpSeed;
  app_opts.timeout = seconds(100);
  app_opts.on_progress = [&](std::uint64_t n) {
    if (cutter) cutter->note(0, n);
  };
  DuplexOptions plain_app_opts = app_opts;
  plain_app_opts.on_progress = [&](std::uint64_t n) {
    if (n >= 3 * kMiB && !plain_cut.exchange(true)) {
      plain_cut_at = n;
      plain_relay.cut();
    }
  };

  const auto start = Clock::now();
  ClientApp app(local_port, app_opts);
  ClientApp plain_app(plain_relay.port(), plain_app_opts);

  const DuplexResult up = app.result();        // what the app sent / received
  const DuplexResult down = service.result();  // what the service sent / received
  const double transfer_s = std::chrono::duration<double>(Clock::now() - start).count();
  const DuplexResult plain_up = plain_app.result();
  const DuplexResult plain_down = plain_service.result();

  const Digest up_expected = pattern_digest(kUpSeed, kBytes);
  const Digest down_expected = pattern_digest(kDownSeed, kBytes);

  std::cout << "[ figures  ] roam: " << cutter->cuts() << " cuts (" << cutter->idle()
            << " found nothing to cut), " << (up.sent + down.sent) << " bytes sent, "
            << (up.received + down.received) << " received, in " << transfer_s << " s; relay "
            << "accepted " << relay.accepted() << " connections\n"
            << "[ figures  ] app:     " << up.summary() << "\n"
            << "[ figures  ] service: " << down.summary() << "\n"
            << "[ figures  ] plain TCP cut after " << plain_cut_at.load()
            << " bytes: app " << plain_up.summary() << "; service " << plain_down.summary()
            << "\n";
  ::testing::Test::RecordProperty("cuts", cutter->cuts());
  ::testing::Test::RecordProperty("bytes_each_way", std::to_string(kBytes));

  // roam: everything arrived, exactly, with a clean end on both sides and no reset.
  EXPECT_GE(cutter->cuts(), kMinCuts);
  EXPECT_EQ(up.sent, kBytes);
  EXPECT_EQ(down.sent, kBytes);
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(up.sent_digest), hex(up_expected));
  EXPECT_EQ(hex(down.received_digest), hex(up_expected)) << "client→server stream corrupted";
  EXPECT_EQ(hex(down.sent_digest), hex(down_expected));
  EXPECT_EQ(hex(up.received_digest), hex(down_expected)) << "server→client stream corrupted";
  EXPECT_TRUE(up.got_eof) << up.summary();
  EXPECT_TRUE(down.got_eof) << down.summary();
  EXPECT_FALSE(up.got_reset) << "the client application saw a reset";
  EXPECT_FALSE(down.got_reset) << "the service saw a reset";
  EXPECT_FALSE(up.timed_out || down.timed_out);
  EXPECT_TRUE(up.error.empty()) << up.error;
  EXPECT_TRUE(down.error.empty()) << down.error;

  // Plain TCP: broken at its first cut.
  EXPECT_TRUE(plain_cut.load());
  EXPECT_TRUE(plain_up.got_reset || plain_up.received < kBytes) << plain_up.summary();
  EXPECT_TRUE(plain_down.got_reset || plain_down.received < kBytes) << plain_down.summary();
  EXPECT_FALSE(plain_up.received == kBytes && plain_down.received == kBytes &&
               plain_up.got_eof && plain_down.got_eof);

  // Both daemons are still up (the local forwarder and the server outlive their sessions).
  EXPECT_TRUE(server->running());
  EXPECT_TRUE(client->running());
  std::cout << "[ figures  ] whole test " << std::chrono::duration<double>(Clock::now() - t0).count()
            << " s\n";
}

}  // namespace
}  // namespace roam::itest
