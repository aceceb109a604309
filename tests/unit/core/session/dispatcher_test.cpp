#include "core/session/dispatcher.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "support/session_pair.hpp"

namespace roam::core {
namespace {

using test::ByteVec;

class Dispatcher : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
};

ByteVec hello_connection() {
  crypto::SeededRng rng(3);
  ClientHandshake c(HandshakeParams{}, rng);
  ByteVec out;
  wire::encode_preamble(out);
  c.write_hello(out);
  return out;
}

ByteVec migrate_connection(const wire::Token& token, std::uint64_t request) {
  ByteVec out;
  wire::encode_preamble(out);
  wire::Migrate m;
  m.token = token;
  m.request = request;
  wire::encode(m, out);
  return out;
}

TEST_F(Dispatcher, ClassifiesHello) {
  ByteVec in = hello_connection();
  const std::size_t end = in.size();
  in.push_back(0x21);  // bytes after the first frame are the session's business
  auto f = classify_first(in);
  ASSERT_TRUE(f) << f.error().detail;
  EXPECT_EQ(f->type, wire::FrameType::kHello);
  EXPECT_EQ(f->end, end);
}

TEST_F(Dispatcher, ClassifiesMigrate) {
  const ByteVec in = migrate_connection(wire::Token{}, 1);
  auto f = classify_first(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, wire::FrameType::kMigrate);
  EXPECT_EQ(f->end, in.size());
}

TEST_F(Dispatcher, EveryTruncationNeedsMore) {
  for (const ByteVec& in : {hello_connection(), migrate_connection(wire::Token{}, 1)}) {
    for (std::size_t n = 0; n < in.size(); ++n) {
      SCOPED_TRACE("prefix " + std::to_string(n) + " of " + std::to_string(in.size()));
      auto f = classify_first(Bytes(in).first(n));
      ASSERT_FALSE(f);
      EXPECT_EQ(f.error().code, Errc::kNeedMore);
    }
  }
}

TEST_F(Dispatcher, OtherProtocolsAreNotRoam) {
  for (std::string_view text : {"SSH-2.0-OpenSSH_9.2\r\n", "GET / HTTP/1.1\r\n", "\x16\x03\x01"}) {
    auto f = classify_first(Bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    ASSERT_FALSE(f) << text;
    EXPECT_EQ(f.error().code, Errc::kNotRoam);
  }
}

TEST_F(Dispatcher, OtherVersionIsVersionError) {
  ByteVec in = hello_connection();
  in[4] = 2;
  auto f = classify_first(in);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kVersion);
}

TEST_F(Dispatcher, FirstFrameMustBeHelloOrMigrate) {
  ByteVec in;
  wire::encode_preamble(in);
  wire::encode(wire::Ack{0}, in);
  auto f = classify_first(in);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kMalformed);

  ByteVec garbage;
  wire::encode_preamble(garbage);
  garbage.insert(garbage.end(), {0xff, 0xff, 0xff, 0xff});
  f = classify_first(garbage);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kMalformed);

  // A HELLO header with an absurd length is refused before anything is buffered.
  ByteVec huge;
  wire::encode_preamble(huge);
  huge.insert(huge.end(), {0x01, 0xff, 0xff, 0xff});
  f = classify_first(huge);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kMalformed);
}

TEST_F(Dispatcher, TableFindsAddedSessionsByToken) {
  test::SessionPair pair;
  ASSERT_TRUE(pair.establish());
  const SessionTable& t = pair.table();
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find(pair.client->token()), pair.server.get());
  wire::Token other = pair.client->token();
  other[0] ^= 1;
  EXPECT_EQ(t.find(other), nullptr);

  crypto::SeededRng rng(4);
  SessionTable table(rng);
  table.add(pair.server.get());
  EXPECT_EQ(table.find(pair.server->token()), pair.server.get());
  table.remove(pair.server.get());
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.find(pair.server->token()), nullptr);
}

TEST_F(Dispatcher, UnknownTokenGetsPreambleAndRefused) {
  crypto::SeededRng rng(5);
  SessionTable table(rng);
  ByteVec reply;
  EXPECT_EQ(table.route_migrate(migrate_connection(wire::Token{}, 77), reply), nullptr);
  ByteVec want;
  wire::encode_preamble(want);
  wire::encode(wire::Refused{77}, want);
  EXPECT_EQ(reply, want);
}

TEST_F(Dispatcher, MalformedMigrateGetsTheSameSizeRefusal) {
  crypto::SeededRng rng(6);
  SessionTable table(rng);
  ByteVec reply;
  EXPECT_EQ(table.route_migrate(ByteVec(10, 0), reply), nullptr);
  EXPECT_EQ(reply.size(), wire::kPreambleSize + wire::kFrameHeaderSize + wire::kRefusedSize);
}

}  // namespace
}  // namespace roam::core
