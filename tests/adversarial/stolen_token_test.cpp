// An eavesdropper on the client's path learns the session token and the MIGRATE requests (they
// travel in clear) and uses them from other addresses (127.0.0.2, 127.0.0.3) while the session
// runs: replays of old requests, replays after the real client moved again, and fresh requests
// with the stolen token and a MAC it had to guess. None is adopted; the live session's bytes
// stay exact and it never notices.
#include <gtest/gtest.h>

#include <iostream>

#include "attack_util.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

namespace wire = core::wire;

constexpr std::uint64_t kBytes = 4 * kMiB;  // each way, released step by step
constexpr std::uint64_t kStep = 512 * 1024;

wire::Migrate parse(const ByteVec& m) {
  auto p = wire::parse_migrate(
      core::Bytes(m.data() + wire::kPreambleSize + wire::kFrameHeaderSize, wire::kMigrateSize));
  EXPECT_TRUE(p.has_value());
  return p ? *p : wire::Migrate{};
}

TEST(StolenToken, ReplaysAndForgeriesFromOtherAddressesWinNothing) {
  DumpOnFailure dump;
  constexpr std::uint64_t kUpSeed = 0x570a1, kDownSeed = 0x570a2;
  GatedStreams streams(kBytes, kStep, kUpSeed, kDownSeed, seconds(90));
  ProgressWatch& watch = streams.watch;
  Service service(streams.service);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  // client → CutRelay → tap (the eavesdropper's copy of every client→server byte) → server.
  TapProxy tap(server_port);
  RelayThread relay(tap.port());
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);
  ClientApp app_conn(local_port, streams.app);

  std::uint64_t mark = kStep;
  auto flows = [&](const char* after) {
    ASSERT_TRUE(watch.wait_both(mark, seconds(15)))
        << "the live session stalled after " << after << ": " << watch.text();
    mark += kStep;
    streams.allow(mark);
  };
  flows("start");
  ASSERT_GE(relay.cut(), 1u);
  flows("the first migration");
  auto first = recorded_migrates(tap, 1);
  ASSERT_EQ(first.size(), 1u) << "the eavesdropper saw no MIGRATE";
  const wire::Migrate m1 = parse(first[0]);

  // 1. The captured request, replayed now from another address: authentic but not fresh.
  const Exchange replay = exchange_from("127.0.0.2", server_port, first[0]);
  std::cout << "[ attacker ] replay of MIGRATE " << m1.request << " from 127.0.0.2 → "
            << frame_names(replay.reply) << ", " << read_end_name(replay.how) << "\n";
  EXPECT_TRUE(has_frame(replay.reply, wire::FrameType::kStale)) << frame_names(replay.reply);
  EXPECT_FALSE(has_frame(replay.reply, wire::FrameType::kAccept));
  EXPECT_FALSE(has_frame(replay.reply, wire::FrameType::kData));
  EXPECT_TRUE(replay.closed()) << read_end_name(replay.how);
  flows("a replayed MIGRATE");

  // 2. The stolen token with a fresh request number and a MAC it cannot compute, and a token no
  //    session has: the same REFUSED, byte for byte.
  wire::Mac guess{};
  guess.fill(0xa5);
  const Exchange forged = exchange_from("127.0.0.3", server_port,
                                        migrate_frame(m1.token, m1.request + 100, m1.received, guess));
  wire::Token unknown{};
  unknown.fill(0x3c);
  const Exchange stranger = exchange_from("127.0.0.3", server_port,
                                          migrate_frame(unknown, m1.request + 100, m1.received, guess));
  std::cout << "[ attacker ] stolen token + guessed MAC from 127.0.0.3 → " << frame_names(forged.reply)
            << "; unknown token → " << frame_names(stranger.reply) << "\n";
  EXPECT_EQ(frame_types(forged.reply), std::vector<wire::FrameType>{wire::FrameType::kRefused});
  EXPECT_EQ(forged.reply, stranger.reply) << "a forged MAC is told apart from an unknown token";
  EXPECT_TRUE(forged.closed() && stranger.closed());
  // The stolen token and the real MAC, but the eavesdropper's own stream position: the MAC covers
  // it, so this is a forgery too.
  const Exchange shifted = exchange_from("127.0.0.3", server_port,
                                         migrate_frame(m1.token, m1.request + 1, m1.received + 1, m1.mac));
  const Exchange stranger2 = exchange_from("127.0.0.3", server_port,
                                           migrate_frame(unknown, m1.request + 1, m1.received + 1, m1.mac));
  EXPECT_EQ(shifted.reply, stranger2.reply) << frame_names(shifted.reply);
  flows("forged MACs");

  // 3. The real client moves again; both captured requests replayed after it: STALE, never adopted.
  const std::size_t seen = tap.connections();
  ASSERT_GE(relay.cut(), 1u);
  flows("the second migration");
  auto second = recorded_migrates(tap, seen);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(parse(second[0]).request, m1.request);
  for (const ByteVec& m : {first[0], second[0]}) {
    const Exchange r = exchange_from("127.0.0.2", server_port, m);
    std::cout << "[ attacker ] replay of MIGRATE " << parse(m).request
              << " after the client moved again → " << frame_names(r.reply) << "\n";
    EXPECT_TRUE(has_frame(r.reply, wire::FrameType::kStale)) << frame_names(r.reply);
    EXPECT_FALSE(has_frame(r.reply, wire::FrameType::kAccept));
    EXPECT_FALSE(has_frame(r.reply, wire::FrameType::kData));
    flows("a replay after the second migration");
  }

  // The live session ends with every byte exact and was never disturbed.
  streams.allow(kBytes);
  const DuplexResult up = app_conn.result();
  const DuplexResult down = service.result();
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(kUpSeed, kBytes)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(kDownSeed, kBytes)));
  EXPECT_TRUE(up.got_eof && down.got_eof);
  EXPECT_FALSE(up.got_reset || down.got_reset);
  const std::string log = server->log();
  EXPECT_EQ(log.find("<-> 127.0.0.2"), std::string::npos) << "a path from the attacker was adopted";
  EXPECT_EQ(log.find("<-> 127.0.0.3"), std::string::npos) << "a path from the attacker was adopted";
  EXPECT_TRUE(server->wait_for("session ended cleanly", seconds(10)));
}

}  // namespace
}  // namespace roam::itest
