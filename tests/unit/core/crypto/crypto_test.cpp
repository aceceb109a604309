#include "core/crypto/crypto.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace roam::core::crypto {
namespace {

Key key_hex(std::string_view text) {
  Key k{};
  EXPECT_EQ(text.size(), 64u);
  for (std::size_t i = 0; i < k.size() && 2 * i + 1 < text.size(); ++i) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    k[i] = static_cast<std::uint8_t>(nib(text[2 * i]) << 4 | nib(text[2 * i + 1]));
  }
  return k;
}

class Crypto : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(init()); }
};

// RFC 7748 §6.1.
const Key kAliceSecret = key_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const Key kAlicePublic = key_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const Key kBobSecret = key_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
const Key kBobPublic = key_hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
const Key kShared = key_hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

TEST_F(Crypto, X25519MatchesRfc7748Vector) {
  EXPECT_EQ(public_of(kAliceSecret), kAlicePublic);
  EXPECT_EQ(public_of(kBobSecret), kBobPublic);
  auto a = x25519(kAliceSecret, kBobPublic);
  auto b = x25519(kBobSecret, kAlicePublic);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, kShared);
  EXPECT_EQ(*b, kShared);
}

TEST_F(Crypto, X25519RefusesLowOrderPoints) {
  // The identity (0), the point of order 1 (u = 1), and a point of order 8 (RFC 7748 errata
  // list / libsodium's blocklist): each gives the all-zero secret.
  const Key points[] = {
      key_hex("0000000000000000000000000000000000000000000000000000000000000000"),
      key_hex("0100000000000000000000000000000000000000000000000000000000000000"),
      key_hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
  };
  for (const Key& p : points) {
    auto r = x25519(kAliceSecret, p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kCrypto);
  }
}

TEST_F(Crypto, MacVerifyRejectsEveryOneBitFlip) {
  const Key k = key_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const std::uint8_t part1[] = {'r', 'o', 'a', 'm'};
  const auto part2 = be64(42);
  const Mac tag = mac(k, {part1, part2});
  EXPECT_TRUE(mac_verify(k, {part1, part2}, tag));
  for (std::size_t bit = 0; bit < tag.size() * 8; ++bit) {
    Mac bad = tag;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    ASSERT_FALSE(mac_verify(k, {part1, part2}, bad)) << "bit " << bit;
  }
  // The message is covered too, and so is the key.
  EXPECT_FALSE(mac_verify(k, {part1, be64(43)}, tag));
  Key k2 = k;
  k2[31] ^= 0x80;
  EXPECT_FALSE(mac_verify(k2, {part1, part2}, tag));
}

TEST_F(Crypto, MacOfPartsEqualsMacOfConcatenation) {
  const Key k{};
  const std::uint8_t ab[] = {'a', 'b'};
  const std::uint8_t a[] = {'a'};
  const std::uint8_t b[] = {'b'};
  EXPECT_EQ(mac(k, {ab}), mac(k, {a, b}));
}

TEST_F(Crypto, EqualCtComparesContentAndLength) {
  const std::uint8_t a[] = {1, 2, 3};
  const std::uint8_t b[] = {1, 2, 3};
  const std::uint8_t c[] = {1, 2, 4};
  EXPECT_TRUE(equal_ct(a, b));
  EXPECT_FALSE(equal_ct(a, c));
  EXPECT_FALSE(equal_ct(Bytes(a), Bytes(a).first(2)));
  EXPECT_TRUE(equal_ct(Bytes{}, Bytes{}));
}

TEST_F(Crypto, Be64IsBigEndian) {
  const std::array<std::uint8_t, 8> want = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(be64(0x0102030405060708ull), want);
}

TEST_F(Crypto, SeededRngIsReproducibleAndAdvances) {
  SeededRng a(7);
  SeededRng b(7);
  SeededRng c(8);
  Key x{}, y{}, z{}, x2{};
  a.fill(x);
  b.fill(y);
  c.fill(z);
  a.fill(x2);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  EXPECT_NE(x, x2);
}

TEST_F(Crypto, KeyScheduleSeparatesPurposes) {
  const Key prk = extract(kShared, blake2b_256(Bytes{}));
  EXPECT_NE(derive(prk, KeyId::kMacClientToServer), derive(prk, KeyId::kMacServerToClient));
  EXPECT_NE(derive(prk, KeyId::kMacClientToServer), derive(prk, KeyId::kToken));
  EXPECT_EQ(derive(prk, KeyId::kToken), derive(prk, KeyId::kToken));
  wire::Random r1{}, r2{};
  r2[0] = 1;
  const Key tk = derive(prk, KeyId::kToken);
  EXPECT_NE(token_of(tk, r1, r2), token_of(tk, r2, r1));
}

TEST_F(Crypto, Blake2bMatchesKnownDigestOfEmptyInput) {
  // BLAKE2b-256("") from the reference implementation.
  EXPECT_EQ(blake2b_256(Bytes{}),
            key_hex("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"));
}

}  // namespace
}  // namespace roam::core::crypto
