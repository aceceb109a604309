#include "core/crypto/keys.hpp"

#include <gtest/gtest.h>

namespace roam::core::keys {
namespace {

class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
};

crypto::SignKeyPair pair_of(std::uint64_t seed) {
  crypto::SeededRng rng(seed);
  return crypto::sign_keypair(rng);
}

TEST_F(KeysTest, Base64RoundTripAndRejects) {
  const std::vector<std::uint8_t> raw = {0, 1, 2, 250, 251, 252, 253};
  const std::string b = crypto::base64_encode(raw);
  EXPECT_EQ(b, "AAEC+vv8/Q==");
  EXPECT_EQ(crypto::base64_decode(b), raw);
  EXPECT_FALSE(crypto::base64_decode("AAEC+vv8/Q="));   // not a multiple of 4
  EXPECT_FALSE(crypto::base64_decode("AAEC+vv8/Q=!"));  // outside the alphabet
  EXPECT_FALSE(crypto::base64_decode("AAEC-vv8_Q=="));  // the URL alphabet is not ours
}

TEST_F(KeysTest, SecretFileRoundTripGivesTheSameKeyPair) {
  wire::Key seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(i);
  const std::string text = format_secret(seed);
  EXPECT_EQ(text.rfind("roam-ed25519-secret ", 0), 0u);
  EXPECT_EQ(text.back(), '\n');
  auto kp = parse_secret(text);
  ASSERT_TRUE(kp) << kp.error().detail;
  EXPECT_EQ(kp->public_key, crypto::sign_keypair_from_seed(seed).public_key);
  // Trailing CR/LF and spaces are fine; anything else is not a key file.
  EXPECT_TRUE(parse_secret(text.substr(0, text.size() - 1) + "\r\n"));
  EXPECT_FALSE(parse_secret(""));
  EXPECT_FALSE(parse_secret("ed25519 " + crypto::base64_encode(seed)));
  EXPECT_FALSE(parse_secret("roam-ed25519-secret AAAA\n"));  // 3 bytes, not 32
  EXPECT_FALSE(parse_secret(text + "second line\n"));
}

TEST_F(KeysTest, PublicLineRoundTrip) {
  const auto kp = pair_of(1);
  const std::string line = format_public(kp.public_key);
  EXPECT_EQ(line.rfind("ed25519 ", 0), 0u);
  auto k = parse_public("ed25519", line.substr(8));
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, kp.public_key);
  EXPECT_FALSE(parse_public("ssh-rsa", line.substr(8)));
}

TEST_F(KeysTest, KnownHostsParsesGoodLinesAndReportsEachMalformedOne) {
  const auto a = pair_of(1), b = pair_of(2);
  std::string text = "# roam known hosts\n\n";
  text += known_host_line("server.example:7000", a.public_key);
  text += "  [2001:db8::1]:7000\ted25519  " + crypto::base64_encode(b.public_key) + "  \r\n";
  text += "missing-port ed25519 " + crypto::base64_encode(a.public_key) + "\n";     // line 5
  text += "h:1 ed25519\n";                                                            // line 6
  text += "h:2 ssh-rsa " + crypto::base64_encode(a.public_key) + "\n";               // line 7
  text += "h:3 ed25519 AAAA\n";                                                       // line 8
  text += "h:4 ed25519 !!!!" + crypto::base64_encode(a.public_key).substr(4) + "\n";  // line 9
  text += "h:99999999 ed25519 " + crypto::base64_encode(a.public_key) + "\n";        // line 10
  text += "last:1 ed25519 " + crypto::base64_encode(a.public_key);                    // no newline
  const KnownHosts kh = parse_known_hosts(text);
  ASSERT_EQ(kh.entries.size(), 3u);
  ASSERT_EQ(kh.errors.size(), 6u);
  for (std::size_t i = 0; i < kh.errors.size(); ++i)
    EXPECT_EQ(kh.errors[i].rfind("line " + std::to_string(5 + i) + ":", 0), 0u) << kh.errors[i];
  const KnownHost* s = find_known_host(kh, "server.example:7000");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->key, a.public_key);
  EXPECT_EQ(s->line, 3u);
  const KnownHost* v6 = find_known_host(kh, "[2001:db8::1]:7000");
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->key, b.public_key);
  EXPECT_NE(find_known_host(kh, "last:1"), nullptr);
  EXPECT_EQ(find_known_host(kh, "server.example:7001"), nullptr);
  EXPECT_EQ(find_known_host(kh, "server.example"), nullptr);
}

TEST_F(KeysTest, SignaturesVerifyOnlyForTheirMessageAndKey) {
  const auto a = pair_of(1), b = pair_of(2);
  const std::uint8_t m1[] = {1, 2, 3}, m2[] = {1, 2, 4};
  const auto sig = crypto::sign(a, {Bytes(m1)});
  EXPECT_TRUE(crypto::sign_verify(a.public_key, {Bytes(m1)}, sig));
  EXPECT_TRUE(crypto::sign_verify(a.public_key, {Bytes(m1).first(1), Bytes(m1).subspan(1)}, sig));
  EXPECT_FALSE(crypto::sign_verify(a.public_key, {Bytes(m2)}, sig));
  EXPECT_FALSE(crypto::sign_verify(b.public_key, {Bytes(m1)}, sig));
}

TEST_F(KeysTest, AeadOpensOnlyWithTheSameKeyNonceAndAd) {
  wire::Key k{};
  k[0] = 1;
  const std::uint8_t ad[] = {0x30, 0, 0, 20, 0x20};
  const std::uint8_t msg[] = {'h', 'e', 'l', 'l', 'o'};
  std::array<std::uint8_t, 5 + 16> sealed{};
  crypto::aead_seal(k, crypto::aead_nonce(0, 7), ad, msg, sealed);
  std::array<std::uint8_t, 5> out{};
  EXPECT_TRUE(crypto::aead_open(k, crypto::aead_nonce(0, 7), ad, sealed, out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "hello");
  EXPECT_FALSE(crypto::aead_open(k, crypto::aead_nonce(0, 8), ad, sealed, out));
  EXPECT_FALSE(crypto::aead_open(k, crypto::aead_nonce(1, 7), ad, sealed, out));
  const std::uint8_t ad2[] = {0x30, 0, 0, 20, 0x21};
  EXPECT_FALSE(crypto::aead_open(k, crypto::aead_nonce(0, 7), ad2, sealed, out));
  const auto n = crypto::aead_nonce(0x0102, 0x0304);
  EXPECT_EQ(n[7], 0x02);
  EXPECT_EQ(n[6], 0x01);
  EXPECT_EQ(n[15], 0x04);
  for (std::size_t i = 16; i < 24; ++i) EXPECT_EQ(n[i], 0);
}

}  // namespace
}  // namespace roam::core::keys
