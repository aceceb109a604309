#include "core/session/handshake.hpp"

#include <gtest/gtest.h>

#include <string>

namespace roam::core {
namespace {

using Frame = std::vector<std::uint8_t>;

class Handshake : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
};

HandshakeParams params(std::uint64_t cap, Duration wait, std::uint32_t features = wire::kFeatureResume) {
  HandshakeParams p;
  p.features = features;
  p.buffer_cap = cap;
  p.wait = wait;
  return p;
}

void expect_same(const Negotiated& a, const Negotiated& b) {
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.buffer_cap, b.buffer_cap);
  EXPECT_EQ(a.wait, b.wait);
  EXPECT_EQ(a.keys.mac_c2s, b.keys.mac_c2s);
  EXPECT_EQ(a.keys.mac_s2c, b.keys.mac_s2c);
  EXPECT_EQ(a.keys.aead_c2s, b.keys.aead_c2s);
  EXPECT_EQ(a.keys.aead_s2c, b.keys.aead_s2c);
  EXPECT_EQ(a.token, b.token);
}

TEST_F(Handshake, BothSidesNegotiateTheSameKeysTokenAndMinima) {
  for (std::uint64_t seed : {1u, 2u, 3u, 1000u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    crypto::SeededRng crng(seed), srng(seed + 0x100000);
    ClientHandshake c(params(1 << 20, std::chrono::minutes(10), wire::kFeatureResume | wire::kFeatureEncrypt),
                      crng);
    ServerHandshake s(params(4 << 20, std::chrono::minutes(2)), srng);
    Frame hello, reply, finish;
    c.write_hello(hello);
    ASSERT_TRUE(s.on_hello(hello, reply));
    auto cn = c.on_hello_reply(reply, finish);
    ASSERT_TRUE(cn) << cn.error().detail;
    auto sn = s.on_finish(finish);
    ASSERT_TRUE(sn) << sn.error().detail;
    expect_same(*cn, *sn);
    EXPECT_EQ(cn->buffer_cap, 1u << 20);
    EXPECT_EQ(cn->wait, std::chrono::minutes(2));
    EXPECT_EQ(cn->features, wire::kFeatureResume);  // the server did not offer encryption
    EXPECT_NE(cn->keys.mac_c2s, cn->keys.mac_s2c);
    EXPECT_EQ(finish.size(), wire::kFrameHeaderSize + wire::kFinishSize);
  }
}

TEST_F(Handshake, HoursLongWaitsAreCarriedInMilliseconds) {
  crypto::SeededRng crng(5), srng(6);
  ClientHandshake c(params(1 << 20, std::chrono::hours(72)), crng);
  ServerHandshake s(params(1 << 20, std::chrono::hours(48)), srng);
  Frame hello, reply, finish;
  c.write_hello(hello);
  ASSERT_TRUE(s.on_hello(hello, reply));
  auto cn = c.on_hello_reply(reply, finish);
  ASSERT_TRUE(cn);
  EXPECT_EQ(cn->wait, std::chrono::hours(48));
}

TEST_F(Handshake, DistinctSessionsGetDistinctTokens) {
  crypto::SeededRng rng(9);
  wire::Token first{};
  for (int i = 0; i < 2; ++i) {
    ClientHandshake c(HandshakeParams{}, rng);
    ServerHandshake s(HandshakeParams{}, rng);
    Frame hello, reply, finish;
    c.write_hello(hello);
    ASSERT_TRUE(s.on_hello(hello, reply));
    auto cn = c.on_hello_reply(reply, finish);
    ASSERT_TRUE(cn);
    if (i == 0) first = cn->token;
    else EXPECT_NE(first, cn->token);
  }
}

// A middlebox strips the encryption bit from HELLO: the server agrees to the weaker offer, but
// the client's transcript holds what it really sent, so the HELLO_REPLY MAC fails.
TEST_F(Handshake, FeatureBitStrippedInTransitIsDetected) {
  crypto::SeededRng crng(11), srng(12);
  const auto both = wire::kFeatureResume | wire::kFeatureEncrypt;
  ClientHandshake c(params(1 << 20, std::chrono::minutes(1), both), crng);
  ServerHandshake s(params(1 << 20, std::chrono::minutes(1), both), srng);
  Frame hello, reply, finish;
  c.write_hello(hello);
  ASSERT_EQ(hello[wire::kFrameHeaderSize + 3] & both, both);  // features, big-endian u32
  hello[wire::kFrameHeaderSize + 3] &= static_cast<std::uint8_t>(~wire::kFeatureEncrypt);
  ASSERT_TRUE(s.on_hello(hello, reply));
  auto cn = c.on_hello_reply(reply, finish);
  ASSERT_FALSE(cn);
  EXPECT_EQ(cn.error().code, Errc::kBadMac);
  EXPECT_TRUE(finish.empty());
}

// The same, but in the reply: the server's MAC no longer matches what the client sees.
TEST_F(Handshake, TamperedHelloReplyIsDetected) {
  crypto::SeededRng crng(13), srng(14);
  ClientHandshake c(HandshakeParams{}, crng);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame hello, reply, finish;
  c.write_hello(hello);
  ASSERT_TRUE(s.on_hello(hello, reply));
  reply[wire::kFrameHeaderSize + 4 + 7] ^= 0x01;  // buffer cap, lowest byte
  auto cn = c.on_hello_reply(reply, finish);
  ASSERT_FALSE(cn);
  EXPECT_EQ(cn.error().code, Errc::kBadMac);
}

TEST_F(Handshake, ServerSelectingAFeatureNotOfferedIsRefused) {
  crypto::SeededRng crng(15), srng(16);
  ClientHandshake c(HandshakeParams{}, crng);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame hello, reply, finish;
  c.write_hello(hello);
  ASSERT_TRUE(s.on_hello(hello, reply));
  reply[wire::kFrameHeaderSize + 3] |= wire::kFeatureEncrypt;
  auto cn = c.on_hello_reply(reply, finish);
  ASSERT_FALSE(cn);
  EXPECT_EQ(cn.error().code, Errc::kProtocol);
}

TEST_F(Handshake, WrongFinishIsBadMac) {
  crypto::SeededRng crng(17), srng(18);
  ClientHandshake c(HandshakeParams{}, crng);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame hello, reply, finish;
  c.write_hello(hello);
  ASSERT_TRUE(s.on_hello(hello, reply));
  ASSERT_TRUE(c.on_hello_reply(reply, finish));
  for (std::size_t i = wire::kFrameHeaderSize; i < finish.size(); i += 7) {
    Frame bad = finish;
    bad[i] ^= 0x10;
    auto sn = s.on_finish(bad);
    ASSERT_FALSE(sn) << i;
    EXPECT_EQ(sn.error().code, Errc::kBadMac);
  }
  EXPECT_TRUE(s.on_finish(finish));  // the genuine one still verifies
}

// A FINISH from another session (other keys) does not verify either.
TEST_F(Handshake, FinishOfAnotherSessionIsBadMac) {
  crypto::SeededRng rng(19);
  ClientHandshake c1(HandshakeParams{}, rng), c2(HandshakeParams{}, rng);
  ServerHandshake s1(HandshakeParams{}, rng), s2(HandshakeParams{}, rng);
  Frame h1, r1, f1, h2, r2, f2;
  c1.write_hello(h1);
  c2.write_hello(h2);
  ASSERT_TRUE(s1.on_hello(h1, r1));
  ASSERT_TRUE(s2.on_hello(h2, r2));
  ASSERT_TRUE(c1.on_hello_reply(r1, f1));
  ASSERT_TRUE(c2.on_hello_reply(r2, f2));
  auto sn = s1.on_finish(f2);
  ASSERT_FALSE(sn);
  EXPECT_EQ(sn.error().code, Errc::kBadMac);
}

TEST_F(Handshake, OutOfOrderMessagesAreProtocolErrors) {
  crypto::SeededRng crng(21), srng(22);
  ClientHandshake c(HandshakeParams{}, crng);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame hello, reply, finish;
  auto early = c.on_hello_reply(Frame(wire::kFrameHeaderSize + wire::kHelloReplySize), finish);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Errc::kProtocol);
  auto fin_first = s.on_finish(Frame(wire::kFrameHeaderSize + wire::kFinishSize));
  ASSERT_FALSE(fin_first);
  EXPECT_EQ(fin_first.error().code, Errc::kProtocol);
  c.write_hello(hello);
  ASSERT_TRUE(s.on_hello(hello, reply));
  Frame again;
  auto second = s.on_hello(hello, again);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::kProtocol);
}

TEST_F(Handshake, LowOrderPublicKeyIsRefused) {
  crypto::SeededRng crng(23), srng(24);
  ClientHandshake c(HandshakeParams{}, crng);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame hello, reply;
  c.write_hello(hello);
  // Public key: the last 32 bytes of HELLO. Zero is a low-order point.
  std::fill(hello.end() - wire::kKeySize, hello.end(), 0);
  auto r = s.on_hello(hello, reply);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCrypto);
  EXPECT_TRUE(reply.empty());
}

TEST_F(Handshake, MalformedHelloIsRefused) {
  crypto::SeededRng srng(26);
  ServerHandshake s(HandshakeParams{}, srng);
  Frame reply;
  Frame hello(wire::kFrameHeaderSize + wire::kHelloSize - 1, 0);
  auto r = s.on_hello(hello, reply);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
}

// Fixed keys and randoms give a fixed transcript: the whole exchange is reproducible byte for
// byte (the basis of tests/vectors).
TEST_F(Handshake, FixedInputsGiveFixedBytes) {
  wire::Key cs{}, ss{};
  wire::Random cr{}, sr{};
  for (std::size_t i = 0; i < 32; ++i) {
    cs[i] = static_cast<std::uint8_t>(i + 1);
    ss[i] = static_cast<std::uint8_t>(0x80 + i);
    cr[i] = static_cast<std::uint8_t>(0x40 + i);
    sr[i] = static_cast<std::uint8_t>(0xc0 + i);
  }
  Frame first;
  for (int round = 0; round < 2; ++round) {
    ClientHandshake c(HandshakeParams{}, cs, cr);
    ServerHandshake s(HandshakeParams{}, ss, sr);
    Frame all, reply, finish;
    c.write_hello(all);
    ASSERT_TRUE(s.on_hello(all, reply));
    ASSERT_TRUE(c.on_hello_reply(reply, finish));
    all.insert(all.end(), reply.begin(), reply.end());
    all.insert(all.end(), finish.begin(), finish.end());
    if (round == 0) first = all;
    else EXPECT_EQ(first, all);
  }
}

TEST_F(Handshake, MacLabelsNameDirectionAndType) {
  auto text = [](wire::FrameType t) {
    Bytes b = mac_label(t);
    return std::string(b.begin(), b.end());
  };
  EXPECT_EQ(text(wire::FrameType::kMigrate), "roam/1 c2s MIGRATE");
  EXPECT_EQ(text(wire::FrameType::kAccept), "roam/1 s2c ACCEPT");
  EXPECT_NE(text(wire::FrameType::kChallenge), text(wire::FrameType::kResponse));
}

}  // namespace
}  // namespace roam::core
