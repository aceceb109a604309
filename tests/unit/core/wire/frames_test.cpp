#include "core/wire/frames.hpp"

#include <gtest/gtest.h>

namespace roam::core::wire {
namespace {

TEST(Frames, AckRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Ack{0x0102030405060708ull}, out);
  const std::vector<std::uint8_t> golden = {0x21, 0x00, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(out, golden);
  auto h = decode_header(out);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->type, 0x21);
  auto a = parse_ack(Bytes(out).subspan(4));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->consumed, 0x0102030405060708ull);
}

}  // namespace
}  // namespace roam::core::wire
