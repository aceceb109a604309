#include "core/wire/frames.hpp"

#include <algorithm>

#include "core/wire/codec.hpp"

namespace roam::core {

const char* errc_name(Errc e) {
  switch (e) {
    case Errc::kNeedMore: return "need-more";
    case Errc::kMalformed: return "malformed";
    case Errc::kNotRoam: return "not-roam";
    case Errc::kVersion: return "version";
    case Errc::kBadMac: return "bad-mac";
    case Errc::kCrypto: return "crypto";
    case Errc::kProtocol: return "protocol";
    case Errc::kRefused: return "refused";
    case Errc::kTimeout: return "timeout";
    case Errc::kAborted: return "aborted";
    case Errc::kRetentionLost: return "retention-lost";
    case Errc::kLimit: return "limit";
  }
  return "unknown";
}

}  // namespace roam::core

namespace roam::core::wire {
namespace {

// Fixed payload size of each control frame, or 0 for variable-size frames.
struct TypeInfo {
  std::uint8_t type;
  const char* name;
  std::size_t max_length;
};
constexpr TypeInfo kTypes[] = {
    {0x01, "HELLO", kHelloSize},         {0x02, "HELLO_REPLY", kHelloReplySize},
    {0x03, "FINISH", kFinishSize},       {0x10, "MIGRATE", kMigrateSize},
    {0x11, "CHALLENGE", kChallengeSize}, {0x12, "RESPONSE", kResponseSize},
    {0x13, "ACCEPT", kAcceptSize},       {0x14, "STALE", kStaleSize},
    {0x15, "REFUSED", kRefusedSize},     {0x20, "DATA", kMaxDataPayload},
    {0x21, "ACK", kAckSize},             {0x22, "FIN", kFinSize},
    {0x24, "CLOSE", 2 + kMaxCloseReason}, {0x04, "SERVER_KEY", kServerKeySize},
    {0x30, "SEALED", kMaxSealedPayload},
};

const TypeInfo* find_type(std::uint8_t type) {
  for (const auto& t : kTypes)
    if (t.type == type) return &t;
  return nullptr;
}

// Frame writer: reserves the header, lets the caller fill the payload, then patches the length.
class FrameBuilder {
 public:
  FrameBuilder(std::vector<std::uint8_t>& out, FrameType type, std::size_t payload)
      : out_(out), start_(out.size()) {
    out_.resize(start_ + kFrameHeaderSize + payload);
    encode_header(type, static_cast<std::uint32_t>(payload), out_.data() + start_);
  }
  Writer writer() {
    return Writer(std::span<std::uint8_t>(out_).subspan(start_ + kFrameHeaderSize));
  }

 private:
  std::vector<std::uint8_t>& out_;
  std::size_t start_;
};

Result<void> need_size(Bytes payload, std::size_t size, const char* what) {
  if (payload.size() != size)
    return fail(Errc::kMalformed, std::string(what) + ": wrong payload size " +
                                      std::to_string(payload.size()));
  return {};
}

}  // namespace

const char* frame_type_name(std::uint8_t type) {
  const TypeInfo* t = find_type(type);
  return t ? t->name : "UNKNOWN";
}

void encode_preamble(std::vector<std::uint8_t>& out) {
  out.insert(out.end(), kMagic.begin(), kMagic.end());
  out.push_back(kVersion);
  out.insert(out.end(), {0, 0, 0});
}

Result<void> check_preamble(Bytes in) {
  const std::size_t n = std::min(in.size(), kMagic.size());
  if (!std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n), kMagic.begin()))
    return fail(Errc::kNotRoam, "peer does not speak roam");
  if (in.size() < kPreambleSize) return fail(Errc::kNeedMore);
  if (in[4] != kVersion)
    return fail(Errc::kVersion, "peer speaks roam version " + std::to_string(in[4]) +
                                    ", we speak " + std::to_string(kVersion));
  if (in[5] != 0 || in[6] != 0 || in[7] != 0)
    return fail(Errc::kMalformed, "reserved preamble bytes are not zero");
  return {};
}

Result<FrameHeader> decode_header(Bytes in) {
  Reader r(in);
  FrameHeader h;
  if (!r.u8(h.type) || !r.u24(h.length)) return fail(Errc::kNeedMore);
  const TypeInfo* t = find_type(h.type);
  if (!t) return fail(Errc::kMalformed, "unknown frame type " + std::to_string(h.type));
  if (h.length > t->max_length)
    return fail(Errc::kMalformed, std::string(t->name) + " frame too long: " +
                                      std::to_string(h.length));
  if (h.type == static_cast<std::uint8_t>(FrameType::kData) && h.length == 0)
    return fail(Errc::kMalformed, "empty DATA frame");
  return h;
}

void encode_header(FrameType type, std::uint32_t length, std::uint8_t out[kFrameHeaderSize]) {
  out[0] = static_cast<std::uint8_t>(type);
  out[1] = static_cast<std::uint8_t>(length >> 16);
  out[2] = static_cast<std::uint8_t>(length >> 8);
  out[3] = static_cast<std::uint8_t>(length);
}

// --- parsers -------------------------------------------------------------------------------

Result<Hello> parse_hello(Bytes p) {
  if (auto ok = need_size(p, kHelloSize, "HELLO"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Hello m;
  r.u32(m.features);
  r.u64(m.buffer_cap);
  r.u64(m.wait_ms);
  r.bytes(m.random);
  r.bytes(m.public_key);
  if (!(m.features & kFeatureResume)) return fail(Errc::kMalformed, "HELLO without resume");
  if (m.buffer_cap == 0 || m.wait_ms == 0) return fail(Errc::kMalformed, "HELLO with zero cap");
  return m;
}

Result<HelloReply> parse_hello_reply(Bytes p) {
  if (auto ok = need_size(p, kHelloReplySize, "HELLO_REPLY"); !ok)
    return tl::unexpected(ok.error());
  Reader r(p);
  HelloReply m;
  r.u32(m.features);
  r.u64(m.buffer_cap);
  r.u64(m.wait_ms);
  r.bytes(m.random);
  r.bytes(m.public_key);
  r.bytes(m.mac);
  if (!(m.features & kFeatureResume)) return fail(Errc::kMalformed, "HELLO_REPLY without resume");
  if (m.buffer_cap == 0 || m.wait_ms == 0)
    return fail(Errc::kMalformed, "HELLO_REPLY with zero cap");
  return m;
}

Result<Finish> parse_finish(Bytes p) {
  if (auto ok = need_size(p, kFinishSize, "FINISH"); !ok) return tl::unexpected(ok.error());
  Finish m;
  Reader(p).bytes(m.mac);
  return m;
}

Result<Migrate> parse_migrate(Bytes p) {
  if (auto ok = need_size(p, kMigrateSize, "MIGRATE"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Migrate m;
  r.bytes(m.token);
  r.u64(m.request);
  r.u64(m.received);
  r.bytes(m.mac);
  return m;
}

Result<Challenge> parse_challenge(Bytes p) {
  if (auto ok = need_size(p, kChallengeSize, "CHALLENGE"); !ok)
    return tl::unexpected(ok.error());
  Reader r(p);
  Challenge m;
  r.u64(m.request);
  r.bytes(m.nonce);
  r.bytes(m.mac);
  return m;
}

Result<Response> parse_response(Bytes p) {
  if (auto ok = need_size(p, kResponseSize, "RESPONSE"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Response m;
  r.u64(m.request);
  r.u64(m.received);
  r.bytes(m.mac);
  return m;
}

Result<Accept> parse_accept(Bytes p) {
  if (auto ok = need_size(p, kAcceptSize, "ACCEPT"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Accept m;
  r.u64(m.request);
  r.u64(m.received);
  r.bytes(m.mac);
  return m;
}

Result<Stale> parse_stale(Bytes p) {
  if (auto ok = need_size(p, kStaleSize, "STALE"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Stale m;
  r.u64(m.request);
  r.u64(m.newest);
  r.bytes(m.mac);
  return m;
}

Result<Refused> parse_refused(Bytes p) {
  if (auto ok = need_size(p, kRefusedSize, "REFUSED"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  Refused m;
  std::uint64_t reserved = 0;
  r.u64(m.request);
  r.u64(reserved);
  if (reserved != 0) return fail(Errc::kMalformed, "REFUSED reserved field not zero");
  return m;
}

Result<Ack> parse_ack(Bytes p) {
  if (auto ok = need_size(p, kAckSize, "ACK"); !ok) return tl::unexpected(ok.error());
  Ack m;
  Reader(p).u64(m.consumed);
  return m;
}

Result<Fin> parse_fin(Bytes p) {
  if (auto ok = need_size(p, kFinSize, "FIN"); !ok) return tl::unexpected(ok.error());
  Fin m;
  Reader(p).u64(m.offset);
  return m;
}

Result<Close> parse_close(Bytes p) {
  if (p.size() < 2 || p.size() > 2 + kMaxCloseReason)
    return fail(Errc::kMalformed, "CLOSE: wrong payload size");
  Reader r(p);
  Close m;
  r.u16(m.code);
  m.reason.assign(p.begin() + 2, p.end());
  // Reasons are shown in logs: keep printable ASCII only, so a peer cannot inject escapes.
  for (char& c : m.reason)
    if (c < 0x20 || c > 0x7e) c = '?';
  return m;
}

Result<ServerKey> parse_server_key(Bytes p) {
  if (auto ok = need_size(p, kServerKeySize, "SERVER_KEY"); !ok) return tl::unexpected(ok.error());
  Reader r(p);
  ServerKey m;
  r.bytes(m.public_key);
  r.bytes(m.signature);
  return m;
}

Result<SealedView> parse_sealed(Bytes p) {
  if (p.size() < kSealedOverhead) return fail(Errc::kMalformed, "SEALED: shorter than its tag");
  SealedView v;
  v.inner_type = p[0];
  v.sealed = p.subspan(1);
  const std::size_t inner = p.size() - kSealedOverhead;
  switch (static_cast<FrameType>(v.inner_type)) {
    case FrameType::kData:
      if (inner == 0) return fail(Errc::kMalformed, "SEALED: empty DATA");
      return v;  // the frame header's limit already bounds it by kMaxDataPayload
    case FrameType::kAck:
      if (inner != kAckSize) return fail(Errc::kMalformed, "SEALED: ACK of wrong size");
      return v;
    case FrameType::kFin:
      if (inner != kFinSize) return fail(Errc::kMalformed, "SEALED: FIN of wrong size");
      return v;
    case FrameType::kClose:
      if (inner < 2 || inner > 2 + kMaxCloseReason)
        return fail(Errc::kMalformed, "SEALED: CLOSE of wrong size");
      return v;
    default:
      return fail(Errc::kMalformed,
                  std::string("SEALED: cannot carry ") + frame_type_name(v.inner_type));
  }
}

// --- encoders ------------------------------------------------------------------------------

void encode(const Hello& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kHello, kHelloSize);
  Writer w = f.writer();
  w.u32(m.features);
  w.u64(m.buffer_cap);
  w.u64(m.wait_ms);
  w.bytes(m.random);
  w.bytes(m.public_key);
}

void encode(const HelloReply& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kHelloReply, kHelloReplySize);
  Writer w = f.writer();
  w.u32(m.features);
  w.u64(m.buffer_cap);
  w.u64(m.wait_ms);
  w.bytes(m.random);
  w.bytes(m.public_key);
  w.bytes(m.mac);
}

void encode(const Finish& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kFinish, kFinishSize);
  f.writer().bytes(m.mac);
}

void encode(const Migrate& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kMigrate, kMigrateSize);
  Writer w = f.writer();
  w.bytes(m.token);
  w.u64(m.request);
  w.u64(m.received);
  w.bytes(m.mac);
}

void encode(const Challenge& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kChallenge, kChallengeSize);
  Writer w = f.writer();
  w.u64(m.request);
  w.bytes(m.nonce);
  w.bytes(m.mac);
}

void encode(const Response& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kResponse, kResponseSize);
  Writer w = f.writer();
  w.u64(m.request);
  w.u64(m.received);
  w.bytes(m.mac);
}

void encode(const Accept& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kAccept, kAcceptSize);
  Writer w = f.writer();
  w.u64(m.request);
  w.u64(m.received);
  w.bytes(m.mac);
}

void encode(const Stale& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kStale, kStaleSize);
  Writer w = f.writer();
  w.u64(m.request);
  w.u64(m.newest);
  w.bytes(m.mac);
}

void encode(const Refused& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kRefused, kRefusedSize);
  Writer w = f.writer();
  w.u64(m.request);
  w.u64(0);
}

void encode(const Ack& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kAck, kAckSize);
  f.writer().u64(m.consumed);
}

void encode(const Fin& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kFin, kFinSize);
  f.writer().u64(m.offset);
}

void encode(const ServerKey& m, std::vector<std::uint8_t>& out) {
  FrameBuilder f(out, FrameType::kServerKey, kServerKeySize);
  Writer w = f.writer();
  w.bytes(m.public_key);
  w.bytes(m.signature);
}

void encode(const Close& m, std::vector<std::uint8_t>& out) {
  const std::size_t n = std::min(m.reason.size(), kMaxCloseReason);
  FrameBuilder f(out, FrameType::kClose, 2 + n);
  Writer w = f.writer();
  w.u16(m.code);
  w.bytes(Bytes(reinterpret_cast<const std::uint8_t*>(m.reason.data()), n));
}

}  // namespace roam::core::wire
