#include "core/wire/frames.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace roam::core::wire {
namespace {

// Golden bytes are written out as hex text so that a reader can check them against
// docs/PROTOCOL.md by eye; spaces are ignored.
std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int hi = -1;
  for (char c : text) {
    if (c == ' ') continue;
    const int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) ADD_FAILURE() << "bad hex digit " << c;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  EXPECT_EQ(hi, -1) << "odd number of hex digits";
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> counting(std::uint8_t first) {
  std::array<std::uint8_t, N> a{};
  for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<std::uint8_t>(first + i);
  return a;
}

// Field values shared by the golden frames below.
constexpr std::string_view kRandomHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr std::string_view kKeyHex = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
constexpr std::string_view kMacHex = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
constexpr std::string_view kTokenHex = "606162636465666768696a6b6c6d6e6f";
constexpr std::string_view kNonceHex = "707172737475767778797a7b7c7d7e7f";
const Random kRandom = counting<kRandomSize>(0x00);
const Key kKey = counting<kKeySize>(0x20);
const Mac kMac = counting<kMacSize>(0x40);
const Token kToken = counting<kTokenSize>(0x60);
const Nonce kNonce = counting<kNonceSize>(0x70);

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

Bytes payload_of(const std::vector<std::uint8_t>& frame) { return Bytes(frame).subspan(kFrameHeaderSize); }

// Checks the header of an encoded frame and returns its payload.
Bytes checked_payload(const std::vector<std::uint8_t>& frame, FrameType type) {
  auto h = decode_header(frame);
  EXPECT_TRUE(h) << (h ? "" : h.error().detail);
  if (h) {
    EXPECT_EQ(h->type, static_cast<std::uint8_t>(type));
    EXPECT_EQ(h->length, frame.size() - kFrameHeaderSize);
  }
  return payload_of(frame);
}

// --- preamble ------------------------------------------------------------------------------

TEST(Frames, PreambleMatchesGoldenBytesAndChecks) {
  std::vector<std::uint8_t> out;
  encode_preamble(out);
  EXPECT_EQ(out, hex("524f414d 01 000000"));
  EXPECT_TRUE(check_preamble(out));
}

TEST(Frames, PreambleTruncationsNeedMore) {
  std::vector<std::uint8_t> pre;
  encode_preamble(pre);
  for (std::size_t n = 0; n < kPreambleSize; ++n) {
    SCOPED_TRACE("prefix length " + std::to_string(n));
    auto r = check_preamble(Bytes(pre).first(n));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kNeedMore);
  }
}

TEST(Frames, PreambleOfAnotherProtocolIsNotRoam) {
  const std::string_view ssh = "SSH-2.0-OpenSSH_9.2\r\n";
  for (std::size_t n = 1; n <= ssh.size(); ++n) {
    SCOPED_TRACE("prefix length " + std::to_string(n));
    auto r = check_preamble(Bytes(reinterpret_cast<const std::uint8_t*>(ssh.data()), n));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kNotRoam);
  }
  // A roam-looking start that diverges is refused as soon as it diverges.
  auto r = check_preamble(hex("524f41"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNeedMore);
  r = check_preamble(hex("524f4158"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotRoam);
}

TEST(Frames, PreambleOfVersion2IsVersionError) {
  auto r = check_preamble(hex("524f414d 02 000000"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kVersion);
  r = check_preamble(hex("524f414d 00 000000"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kVersion);
}

TEST(Frames, PreambleWithReservedBitsIsMalformed) {
  auto r = check_preamble(hex("524f414d 01 000100"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
}

// --- golden bytes and round trips, one per frame type ---------------------------------------

TEST(Frames, HelloRoundTripsAndMatchesGoldenBytes) {
  Hello m;
  m.features = kFeatureResume | kFeatureEncrypt;
  m.buffer_cap = 0x100000;
  m.wait_ms = 600000;
  m.random = kRandom;
  m.public_key = kKey;
  std::vector<std::uint8_t> out;
  encode(m, out);
  EXPECT_EQ(out, hex(cat({"01 000054 00000003 0000000000100000 00000000000927c0", kRandomHex, kKeyHex})));
  auto p = parse_hello(checked_payload(out, FrameType::kHello));
  ASSERT_TRUE(p) << p.error().detail;
  EXPECT_EQ(p->features, m.features);
  EXPECT_EQ(p->buffer_cap, m.buffer_cap);
  EXPECT_EQ(p->wait_ms, m.wait_ms);
  EXPECT_EQ(p->random, m.random);
  EXPECT_EQ(p->public_key, m.public_key);
}

TEST(Frames, HelloReplyRoundTripsAndMatchesGoldenBytes) {
  HelloReply m;
  m.features = kFeatureResume;
  m.buffer_cap = 0x0102030405060708;
  m.wait_ms = 1;
  m.random = kRandom;
  m.public_key = kKey;
  m.mac = kMac;
  std::vector<std::uint8_t> out;
  encode(m, out);
  EXPECT_EQ(out, hex(cat({"02 000074 00000001 0102030405060708 0000000000000001", kRandomHex, kKeyHex,
                          kMacHex})));
  auto p = parse_hello_reply(checked_payload(out, FrameType::kHelloReply));
  ASSERT_TRUE(p) << p.error().detail;
  EXPECT_EQ(p->features, m.features);
  EXPECT_EQ(p->buffer_cap, m.buffer_cap);
  EXPECT_EQ(p->wait_ms, m.wait_ms);
  EXPECT_EQ(p->random, m.random);
  EXPECT_EQ(p->public_key, m.public_key);
  EXPECT_EQ(p->mac, m.mac);
}

TEST(Frames, FinishRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Finish{kMac}, out);
  EXPECT_EQ(out, hex(cat({"03 000020", kMacHex})));
  auto p = parse_finish(checked_payload(out, FrameType::kFinish));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mac, kMac);
}

TEST(Frames, MigrateRoundTripsAndMatchesGoldenBytes) {
  Migrate m;
  m.token = kToken;
  m.request = 0x0102030405060708;
  m.received = 0x1112131415161718;
  m.mac = kMac;
  std::vector<std::uint8_t> out;
  encode(m, out);
  EXPECT_EQ(out, hex(cat({"10 000040", kTokenHex, "0102030405060708 1112131415161718", kMacHex})));
  auto p = parse_migrate(checked_payload(out, FrameType::kMigrate));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->token, m.token);
  EXPECT_EQ(p->request, m.request);
  EXPECT_EQ(p->received, m.received);
  EXPECT_EQ(p->mac, m.mac);
}

TEST(Frames, ChallengeRoundTripsAndMatchesGoldenBytes) {
  Challenge m;
  m.request = 7;
  m.nonce = kNonce;
  m.mac = kMac;
  std::vector<std::uint8_t> out;
  encode(m, out);
  EXPECT_EQ(out, hex(cat({"11 000038 0000000000000007", kNonceHex, kMacHex})));
  auto p = parse_challenge(checked_payload(out, FrameType::kChallenge));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->request, 7u);
  EXPECT_EQ(p->nonce, kNonce);
  EXPECT_EQ(p->mac, kMac);
}

TEST(Frames, ResponseRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Response{7, 0xfffffffffffffffe, kMac}, out);
  EXPECT_EQ(out, hex(cat({"12 000030 0000000000000007 fffffffffffffffe", kMacHex})));
  auto p = parse_response(checked_payload(out, FrameType::kResponse));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->request, 7u);
  EXPECT_EQ(p->received, 0xfffffffffffffffeu);
  EXPECT_EQ(p->mac, kMac);
}

TEST(Frames, AcceptRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Accept{2, 0x10000, kMac}, out);
  EXPECT_EQ(out, hex(cat({"13 000030 0000000000000002 0000000000010000", kMacHex})));
  auto p = parse_accept(checked_payload(out, FrameType::kAccept));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->request, 2u);
  EXPECT_EQ(p->received, 0x10000u);
  EXPECT_EQ(p->mac, kMac);
}

TEST(Frames, StaleRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Stale{3, 5, kMac}, out);
  EXPECT_EQ(out, hex(cat({"14 000030 0000000000000003 0000000000000005", kMacHex})));
  auto p = parse_stale(checked_payload(out, FrameType::kStale));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->request, 3u);
  EXPECT_EQ(p->newest, 5u);
  EXPECT_EQ(p->mac, kMac);
}

TEST(Frames, RefusedRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Refused{9}, out);
  EXPECT_EQ(out, hex("15 000010 0000000000000009 0000000000000000"));
  auto p = parse_refused(checked_payload(out, FrameType::kRefused));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->request, 9u);
}

TEST(Frames, AckRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Ack{0x0102030405060708ull}, out);
  EXPECT_EQ(out, hex("21 000008 0102030405060708"));
  auto a = parse_ack(checked_payload(out, FrameType::kAck));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->consumed, 0x0102030405060708ull);
}

TEST(Frames, FinRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Fin{0x42}, out);
  EXPECT_EQ(out, hex("22 000008 0000000000000042"));
  auto f = parse_fin(checked_payload(out, FrameType::kFin));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->offset, 0x42u);
}

TEST(Frames, CloseRoundTripsAndMatchesGoldenBytes) {
  std::vector<std::uint8_t> out;
  encode(Close{7, "bye"}, out);
  EXPECT_EQ(out, hex("24 000005 0007 627965"));
  auto c = parse_close(checked_payload(out, FrameType::kClose));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->code, 7);
  EXPECT_EQ(c->reason, "bye");
}

TEST(Frames, CloseWithEmptyReasonRoundTrips) {
  std::vector<std::uint8_t> out;
  encode(Close{0x0102, ""}, out);
  EXPECT_EQ(out, hex("24 000002 0102"));
  auto c = parse_close(checked_payload(out, FrameType::kClose));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->code, 0x0102);
  EXPECT_EQ(c->reason, "");
}

TEST(Frames, CloseReasonIsTruncatedAndSanitised) {
  std::vector<std::uint8_t> out;
  encode(Close{1, std::string(500, 'x')}, out);
  EXPECT_EQ(out.size(), kFrameHeaderSize + 2 + kMaxCloseReason);
  ASSERT_TRUE(decode_header(out));
  // Escapes a peer could use against a terminal are replaced before anyone logs them.
  auto c = parse_close(hex("0001 1b5b326a 41 7f ff"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, "?[2jA??");
}

TEST(Frames, DataHeaderMatchesGoldenBytes) {
  std::uint8_t h[kFrameHeaderSize];
  encode_header(FrameType::kData, 0x040000, h);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + 4), hex("20 040000"));
  auto d = decode_header(Bytes(h, 4));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, 0x20);
  EXPECT_EQ(d->length, kMaxDataPayload);
}

TEST(Frames, TypeNamesComeFromOneTable) {
  EXPECT_STREQ(frame_type_name(0x01), "HELLO");
  EXPECT_STREQ(frame_type_name(0x10), "MIGRATE");
  EXPECT_STREQ(frame_type_name(0x20), "DATA");
  EXPECT_STREQ(frame_type_name(0x24), "CLOSE");
  EXPECT_STREQ(frame_type_name(0x23), "UNKNOWN");
}

// --- decoder contract ----------------------------------------------------------------------

struct TypeLimit {
  FrameType type;
  std::size_t max;
};
constexpr TypeLimit kLimits[] = {
    {FrameType::kHello, kHelloSize},         {FrameType::kHelloReply, kHelloReplySize},
    {FrameType::kFinish, kFinishSize},       {FrameType::kMigrate, kMigrateSize},
    {FrameType::kChallenge, kChallengeSize}, {FrameType::kResponse, kResponseSize},
    {FrameType::kAccept, kAcceptSize},       {FrameType::kStale, kStaleSize},
    {FrameType::kRefused, kRefusedSize},     {FrameType::kData, kMaxDataPayload},
    {FrameType::kAck, kAckSize},             {FrameType::kFin, kFinSize},
    {FrameType::kClose, 2 + kMaxCloseReason},
};

TEST(Frames, HeaderTruncationsNeedMore) {
  for (const auto& t : kLimits) {
    std::uint8_t h[kFrameHeaderSize];
    encode_header(t.type, 8, h);
    for (std::size_t n = 0; n < kFrameHeaderSize; ++n) {
      SCOPED_TRACE(std::string(frame_type_name(h[0])) + " prefix " + std::to_string(n));
      auto r = decode_header(Bytes(h, n));
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, Errc::kNeedMore);
    }
  }
}

TEST(Frames, HeaderLengthLimitsArePerType) {
  for (const auto& t : kLimits) {
    SCOPED_TRACE(frame_type_name(static_cast<std::uint8_t>(t.type)));
    std::uint8_t h[kFrameHeaderSize];
    encode_header(t.type, static_cast<std::uint32_t>(t.max), h);
    EXPECT_TRUE(decode_header(Bytes(h, 4)));
    for (std::uint32_t len : {static_cast<std::uint32_t>(t.max + 1), 0xFFFFFFu}) {
      encode_header(t.type, len, h);
      auto r = decode_header(Bytes(h, 4));
      ASSERT_FALSE(r) << len;
      EXPECT_EQ(r.error().code, Errc::kMalformed);
    }
  }
}

TEST(Frames, UnknownTypesAreMalformed) {
  for (int type = 0; type < 256; ++type) {
    if (std::string_view(frame_type_name(static_cast<std::uint8_t>(type))) != "UNKNOWN") continue;
    const std::uint8_t h[] = {static_cast<std::uint8_t>(type), 0, 0, 8};
    auto r = decode_header(h);
    ASSERT_FALSE(r) << type;
    EXPECT_EQ(r.error().code, Errc::kMalformed) << type;
  }
}

TEST(Frames, EmptyDataIsMalformed) {
  auto r = decode_header(hex("20 000000"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
}

// Every fixed-size parser refuses a payload one byte short or one byte long.
TEST(Frames, FixedSizeParsersRefuseWrongSizes) {
  std::vector<std::uint8_t> big(kHelloReplySize + 1, 0x01);
  auto check = [&](const char* name, std::size_t size, auto parse) {
    SCOPED_TRACE(name);
    for (std::size_t n : {std::size_t{0}, size - 1, size + 1}) {
      auto r = parse(Bytes(big).first(n));
      ASSERT_FALSE(r) << n;
      EXPECT_EQ(r.error().code, Errc::kMalformed) << n;
    }
  };
  check("HELLO", kHelloSize, parse_hello);
  check("HELLO_REPLY", kHelloReplySize, parse_hello_reply);
  check("FINISH", kFinishSize, parse_finish);
  check("MIGRATE", kMigrateSize, parse_migrate);
  check("CHALLENGE", kChallengeSize, parse_challenge);
  check("RESPONSE", kResponseSize, parse_response);
  check("ACCEPT", kAcceptSize, parse_accept);
  check("STALE", kStaleSize, parse_stale);
  check("REFUSED", kRefusedSize, parse_refused);
  check("ACK", kAckSize, parse_ack);
  check("FIN", kFinSize, parse_fin);
}

TEST(Frames, CloseRefusesWrongSizes) {
  std::vector<std::uint8_t> big(2 + kMaxCloseReason + 1, 'a');
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, big.size()}) {
    auto r = parse_close(Bytes(big).first(n));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().code, Errc::kMalformed);
  }
  EXPECT_TRUE(parse_close(Bytes(big).first(big.size() - 1)));
}

TEST(Frames, HelloValuesAreChecked) {
  Hello m;
  m.features = kFeatureResume;
  m.buffer_cap = 1;
  m.wait_ms = 1;
  std::vector<std::uint8_t> ok;
  encode(m, ok);
  ASSERT_TRUE(parse_hello(payload_of(ok)));

  for (int field = 0; field < 3; ++field) {
    SCOPED_TRACE("field " + std::to_string(field));
    Hello bad = m;
    if (field == 0) bad.features = kFeatureEncrypt;  // resume is mandatory in version 1
    if (field == 1) bad.buffer_cap = 0;
    if (field == 2) bad.wait_ms = 0;
    std::vector<std::uint8_t> out;
    encode(bad, out);
    auto r = parse_hello(payload_of(out));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kMalformed);
  }
}

TEST(Frames, HelloReplyWithZeroCapIsMalformed) {
  HelloReply m;
  m.features = kFeatureResume;
  m.buffer_cap = 0;
  m.wait_ms = 1;
  std::vector<std::uint8_t> out;
  encode(m, out);
  auto r = parse_hello_reply(payload_of(out));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
}

TEST(Frames, RefusedWithReservedBitsIsMalformed) {
  auto r = parse_refused(hex("0000000000000009 0000000000000100"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
}

TEST(Frames, ErrorNamesAreStable) {
  EXPECT_STREQ(errc_name(Errc::kNeedMore), "need-more");
  EXPECT_STREQ(errc_name(Errc::kRetentionLost), "retention-lost");
  EXPECT_STREQ(errc_name(static_cast<Errc>(999)), "unknown");
}

}  // namespace
}  // namespace roam::core::wire
