// Token guessing: a source that keeps sending MIGRATE requests with tokens no session has gets
// REFUSED for its first `burst` (20) attempts, then its connections are closed without a reply and
// without HMAC work (logged once per 10 s). Another source is unaffected, a genuine client behind
// the same address (NAT) still migrates, and new handshakes from it still work.
#include <gtest/gtest.h>

#include <iostream>

#include "attack_util.hpp"
#include "core/crypto/crypto.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

namespace wire = core::wire;

constexpr int kBurst = 20;            // RefusalLimits::burst
constexpr double kRefillPerSecond = 2;  // RefusalLimits::refill_per_second

struct Tally {
  int refused = 0;  // a REFUSED frame, then closed
  int dropped = 0;  // closed without a byte
  int other = 0;
  double seconds = 0;
};

// `n` MIGRATE requests with random tokens from `source`; `prefix` goes first (the proxy's SOCKS
// greeting) and the first `skip` reply bytes are its answer.
Tally guess(const char* source, std::uint16_t port, int n, const ByteVec& prefix = {},
            std::size_t skip = 0) {
  Tally t;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    wire::Token tok{};
    wire::Mac mac{};
    core::crypto::system_rng().fill(tok);
    core::crypto::system_rng().fill(mac);
    ByteVec bytes = prefix;
    const ByteVec m = migrate_frame(tok, 1 + static_cast<std::uint64_t>(i), 0, mac);
    bytes.insert(bytes.end(), m.begin(), m.end());
    Exchange ex = exchange_from(source, port, bytes);
    ByteVec reply(ex.reply.begin() + static_cast<std::ptrdiff_t>(std::min(skip, ex.reply.size())),
                  ex.reply.end());
    if (!ex.closed())
      ++t.other;
    else if (frame_types(reply) == std::vector<wire::FrameType>{wire::FrameType::kRefused})
      ++t.refused;
    else if (reply.empty())
      ++t.dropped;
    else
      ++t.other;
  }
  t.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return t;
}

std::size_t count_of(const std::string& log, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t pos = log.find(what); pos != std::string::npos; pos = log.find(what, pos + 1)) ++n;
  return n;
}

void expect_limited(const Tally& t, int n, const char* who) {
  std::cout << "[ guessing ] " << who << ": " << n << " guesses in " << t.seconds << " s → "
            << t.refused << " REFUSED, " << t.dropped << " closed unchecked, " << t.other
            << " other\n";
  EXPECT_GE(t.refused, kBurst);
  EXPECT_LE(t.refused, kBurst + static_cast<int>(t.seconds * kRefillPerSecond) + 1);
  EXPECT_EQ(t.refused + t.dropped, n);
  EXPECT_EQ(t.other, 0);
}

TEST(Guessing, RefusalsArePerSourceLimitedAndANattedClientStillMigrates) {
  DumpOnFailure dump;
  constexpr std::uint64_t kTotal = 2 * kMiB, kHalf = kTotal / 2;
  GatedStreams streams(kTotal, kHalf, 0x9e56, 0x9e55, seconds(60));
  ProgressWatch& watch = streams.watch;
  Service service(streams.service);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  // The genuine client's connections reach the server from 127.0.0.1 (the relay), the address the
  // guesser uses too: one NAT, two hosts behind it.
  RelayThread relay(server_port);
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(), {"--heartbeat", "200ms"}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);
  ClientApp app_conn(local_port, streams.app);
  ASSERT_TRUE(watch.wait_both(kHalf, seconds(15))) << watch.text();

  constexpr int kGuesses = 60;
  const Tally nat = guess("127.0.0.1", server_port, kGuesses);
  expect_limited(nat, kGuesses, "127.0.0.1");
  // Another source has its own budget.
  const Tally other = guess("127.0.0.2", server_port, 5);
  std::cout << "[ guessing ] 127.0.0.2 meanwhile: " << other.refused << " of 5 REFUSED\n";
  EXPECT_EQ(other.refused, 5);
  // The genuine client's path dies; it migrates from the limited address and the data completes.
  ASSERT_GE(relay.cut(), 1u);
  streams.allow(kTotal);
  const DuplexResult up = app_conn.result();
  const DuplexResult down = service.result();
  EXPECT_EQ(up.received, kTotal);
  EXPECT_EQ(down.received, kTotal);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(0x9e56, kTotal)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(0x9e55, kTotal)));
  EXPECT_TRUE(server->wait_for("migrated to", seconds(5))) << "the NATed client did not migrate";
  // A new handshake from the limited address is served (SPEC 13: no lock-out of NAT users).
  const Exchange hello = exchange_from("127.0.0.1", server_port, hello_frame(), seconds(2));
  EXPECT_TRUE(has_frame(hello.reply, wire::FrameType::kHelloReply)) << frame_names(hello.reply);
  // Logged once for the interval, however many were dropped.
  const std::string log = server->log();
  EXPECT_EQ(count_of(log, "over its limit of refused migrate requests"), 1u) << log;
}

TEST(Guessing, TheProxyLimitsReattachGuessesToo) {
  DumpOnFailure dump;
  std::uint16_t port = 0;
  auto proxy = std::make_shared<Process>(
      std::vector<std::string>{roam_bin(), "proxy", "--listen", "127.0.0.1:0"});
  port = proxy->wait_listening();
  dump.add(proxy);
  ASSERT_NE(port, 0);
  const ByteVec greeting = {0x05, 0x01, 0x80};  // roam's method
  constexpr int kGuesses = 40;
  const Tally t = guess("127.0.0.4", port, kGuesses, greeting, 2);
  expect_limited(t, kGuesses, "127.0.0.4 via the proxy");
  const Tally other = guess("127.0.0.5", port, 3, greeting, 2);
  EXPECT_EQ(other.refused, 3);
  EXPECT_EQ(count_of(proxy->log(), "over its limit of refused re-attach requests"), 1u);
  EXPECT_TRUE(proxy->running());
}

}  // namespace
}  // namespace roam::itest
