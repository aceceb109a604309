// A path that dies silently (the relay stops moving bytes, nothing is closed): only heartbeats
// and TCP progress can tell. The client must declare it dead, and once the network returns the
// session resumes with every byte exact. Also: SIGTERM ends both daemons within 2 s.
#include <gtest/gtest.h>

#include <iostream>

#include "itest_util.hpp"

namespace roam::itest {
namespace {

TEST(SilentDeath, FrozenPathIsDetectedAndTheSessionResumesExactly) {
  DumpOnFailure dump;
  constexpr std::uint64_t kBytes = 16 * kMiB, kBefore = 4 * kMiB;
  constexpr std::uint64_t kUpSeed = 0xf1, kDownSeed = 0xf2;
  GatedStreams streams(kBytes, kBefore, kUpSeed, kDownSeed, seconds(60));
  ProgressWatch& watch = streams.watch;
  Service service(streams.service);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  RelayThread relay(server_port);
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);

  ClientApp app_conn(local_port, streams.app);
  ASSERT_TRUE(watch.wait_both(kBefore, seconds(15))) << watch.text();

  // The network goes silent with data in flight both ways.
  relay.freeze(true);
  const auto frozen_at = Clock::now();
  streams.allow(kBytes);
  ASSERT_TRUE(client->wait_for("path lost", seconds(10))) << "the client never noticed the silence";
  const double detect_s = std::chrono::duration<double>(Clock::now() - frozen_at).count();
  relay.freeze(false);
  const auto thawed_at = Clock::now();

  const DuplexResult up = app_conn.result();
  const DuplexResult down = service.result();
  const double resume_s = std::chrono::duration<double>(Clock::now() - thawed_at).count();
  std::cout << "[ figures  ] silent death detected by the client after " << detect_s
            << " s (heartbeat 200ms); rest of the transfer took " << resume_s << " s after the "
            << "network returned; app " << up.summary() << "; service " << down.summary() << "\n";
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(kUpSeed, kBytes)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(kDownSeed, kBytes)));
  EXPECT_TRUE(up.got_eof && down.got_eof);
  EXPECT_FALSE(up.got_reset || down.got_reset);
  EXPECT_TRUE(client->wait_for("migrated", milliseconds(0)));

  // SIGTERM: both daemons exit cleanly within 2 s.
  for (auto* p : {server.get(), client.get()}) {
    const auto t = Clock::now();
    const int status = p->terminate(milliseconds(2000));
    EXPECT_EQ(status, 0) << p->describe();
    std::cout << "[ figures  ] SIGTERM → exit " << status << " after "
              << std::chrono::duration<double>(Clock::now() - t).count() << " s\n";
  }
}

}  // namespace
}  // namespace roam::itest
