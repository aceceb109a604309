// Fuzz target: the frame decoder and every parser (libFuzzer; replayed by tests/unit under g++).
//
// The whole input goes to check_preamble and decode_header, and, both whole and after a 4-byte
// header, to every parse_*. Whatever a parser accepts must encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/wire/frames.hpp"

namespace {

using namespace roam::core;
using namespace roam::core::wire;

#define CHECK(cond)            \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)

// encode(parse(p)) must reproduce the header and `p` exactly.
template <typename T>
void round_trip(const Result<T>& parsed, Bytes p, FrameType type) {
  if (!parsed) {
    CHECK(parsed.error().code == Errc::kMalformed);
    return;
  }
  std::vector<std::uint8_t> out;
  encode(*parsed, out);
  CHECK(out.size() == kFrameHeaderSize + p.size());
  CHECK(out[0] == static_cast<std::uint8_t>(type));
  CHECK(std::memcmp(out.data() + kFrameHeaderSize, p.data(), p.size()) == 0);
  auto h = decode_header(out);
  CHECK(h && h->length == p.size());
}

void parse_all(Bytes p) {
  round_trip(parse_hello(p), p, FrameType::kHello);
  round_trip(parse_hello_reply(p), p, FrameType::kHelloReply);
  round_trip(parse_finish(p), p, FrameType::kFinish);
  round_trip(parse_migrate(p), p, FrameType::kMigrate);
  round_trip(parse_challenge(p), p, FrameType::kChallenge);
  round_trip(parse_response(p), p, FrameType::kResponse);
  round_trip(parse_accept(p), p, FrameType::kAccept);
  round_trip(parse_stale(p), p, FrameType::kStale);
  round_trip(parse_refused(p), p, FrameType::kRefused);
  round_trip(parse_ack(p), p, FrameType::kAck);
  round_trip(parse_fin(p), p, FrameType::kFin);
  // CLOSE sanitises its reason, so only code and length survive byte for byte.
  if (auto c = parse_close(p)) {
    CHECK(c->reason.size() + 2 == p.size());
    for (char ch : c->reason) CHECK(ch >= 0x20 && ch <= 0x7e);
    std::vector<std::uint8_t> out;
    encode(*c, out);
    CHECK(out.size() == kFrameHeaderSize + p.size());
    CHECK(std::memcmp(out.data() + kFrameHeaderSize, p.data(), 2) == 0);
  } else {
    CHECK(c.error().code == Errc::kMalformed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(data, size);

  auto pre = check_preamble(in);
  if (pre) CHECK(size >= kPreambleSize);
  if (!pre && pre.error().code == Errc::kNeedMore) CHECK(size < kPreambleSize);

  auto h = decode_header(in);
  if (h) {
    CHECK(size >= kFrameHeaderSize);
    CHECK(std::string(frame_type_name(h->type)) != "UNKNOWN");
    // The largest frame is a SEALED one carrying a full DATA payload (inner type + tag on top).
    CHECK(h->length <= (h->type == static_cast<std::uint8_t>(FrameType::kSealed) ? kMaxSealedPayload
                                                                                  : kMaxDataPayload));
    CHECK(h->type != static_cast<std::uint8_t>(FrameType::kData) || h->length > 0);
  } else {
    CHECK((h.error().code == Errc::kNeedMore) == (size < kFrameHeaderSize));
  }

  parse_all(in);
  if (size >= kFrameHeaderSize) {
    const Bytes payload = in.subspan(kFrameHeaderSize);
    parse_all(payload);
    // A frame whose header is valid and whose payload is complete parses per its type.
    if (h && payload.size() == h->length) (void)frame_type_name(h->type);
  }
  return 0;
}
