// roam wire format: the connection preamble and every frame (docs/PROTOCOL.md is the reference).
//
// Every TCP connection starts with an 8-byte preamble from each side, then carries frames:
//
//   frame  = type:u8 length:u24 payload[length]        (all integers big-endian)
//
// Decoders follow one contract: kNeedMore when the bytes are not all there yet, kMalformed when
// they never can be valid; they never read past the end. Encoders append to a byte vector.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/common.hpp"

namespace roam::core::wire {

inline constexpr std::array<std::uint8_t, 4> kMagic = {'R', 'O', 'A', 'M'};
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kPreambleSize = 8;
inline constexpr std::size_t kFrameHeaderSize = 4;
// Largest DATA payload we send or accept: big enough that framing costs <0.01% of a bulk
// transfer, small enough that a control frame never waits behind more than 256 KiB.
inline constexpr std::size_t kMaxDataPayload = 256 * 1024;
// Control frames are small and fixed-size; anything above this is malformed before we buffer it.
inline constexpr std::size_t kMaxControlPayload = 512;
inline constexpr std::size_t kMaxCloseReason = 200;

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kRandomSize = 32;
inline constexpr std::size_t kMacSize = 32;
inline constexpr std::size_t kTokenSize = 16;
inline constexpr std::size_t kNonceSize = 16;

using Key = std::array<std::uint8_t, kKeySize>;
using Random = std::array<std::uint8_t, kRandomSize>;
using Mac = std::array<std::uint8_t, kMacSize>;
using Token = std::array<std::uint8_t, kTokenSize>;
using Nonce = std::array<std::uint8_t, kNonceSize>;

// Feature bits negotiated in HELLO / HELLO_REPLY (the reply carries the intersection).
inline constexpr std::uint32_t kFeatureResume = 1u << 0;   // always set in version 1
inline constexpr std::uint32_t kFeatureEncrypt = 1u << 1;  // every frame after the handshake sealed
// Client: "I verify a server key" / server: "SERVER_KEY follows HELLO_REPLY". A server without a
// key never sets it, so old clients and keyless servers interoperate unchanged.
inline constexpr std::uint32_t kFeatureServerKey = 1u << 2;
// With kFeatureEncrypt: seal with AES-256-GCM instead of XChaCha20-Poly1305. Offered and accepted
// only by a side whose CPU has AES-NI and PCLMULQDQ, so either both ends have it or the session
// falls back to XChaCha20-Poly1305; selected only together with kFeatureEncrypt.
inline constexpr std::uint32_t kFeatureAesGcm = 1u << 3;
// What this implementation can actually do; nothing else is offered or accepted.
inline constexpr std::uint32_t kSupportedFeatures =
    kFeatureResume | kFeatureEncrypt | kFeatureServerKey | kFeatureAesGcm;

enum class FrameType : std::uint8_t {
  kHello = 0x01,
  kHelloReply = 0x02,
  kFinish = 0x03,
  kServerKey = 0x04,
  kMigrate = 0x10,
  kChallenge = 0x11,
  kResponse = 0x12,
  kAccept = 0x13,
  kStale = 0x14,
  kRefused = 0x15,
  kData = 0x20,
  kAck = 0x21,
  kFin = 0x22,
  kClose = 0x24,
  kSealed = 0x30,
};

const char* frame_type_name(std::uint8_t type);

struct FrameHeader {
  std::uint8_t type = 0;
  std::uint32_t length = 0;
};

struct Hello {
  std::uint32_t features = 0;
  std::uint64_t buffer_cap = 0;
  std::uint64_t wait_ms = 0;
  Random random{};
  Key public_key{};
};
struct HelloReply {
  std::uint32_t features = 0;
  std::uint64_t buffer_cap = 0;
  std::uint64_t wait_ms = 0;
  Random random{};
  Key public_key{};
  Mac mac{};
};
struct Finish {
  Mac mac{};
};
inline constexpr std::size_t kSignPublicSize = 32;
inline constexpr std::size_t kSignatureSize = 64;
// Server → client after HELLO_REPLY when kFeatureServerKey was negotiated: the server's long-term
// Ed25519 key and its signature over the transcript hash (docs/PROTOCOL.md §Server keys).
struct ServerKey {
  std::array<std::uint8_t, kSignPublicSize> public_key{};
  std::array<std::uint8_t, kSignatureSize> signature{};
};
// SEALED (with kFeatureEncrypt, every frame after the handshake): inner_type:u8, then the inner
// frame's payload encrypted, then a 16-byte Poly1305 tag. `sealed` views ciphertext || tag.
inline constexpr std::size_t kSealTagSize = 16;
inline constexpr std::size_t kSealedOverhead = 1 + kSealTagSize;
struct SealedView {
  std::uint8_t inner_type = 0;
  Bytes sealed;
};
struct Migrate {
  Token token{};
  std::uint64_t request = 0;
  std::uint64_t received = 0;
  Mac mac{};
};
struct Challenge {
  std::uint64_t request = 0;
  Nonce nonce{};
  Mac mac{};
};
struct Response {
  std::uint64_t request = 0;
  std::uint64_t received = 0;
  Mac mac{};
};
struct Accept {
  std::uint64_t request = 0;
  std::uint64_t received = 0;
  Mac mac{};
};
struct Stale {
  std::uint64_t request = 0;
  std::uint64_t newest = 0;
  Mac mac{};
};
struct Refused {
  std::uint64_t request = 0;  // echoed so the client knows which attempt was refused
};
struct Ack {
  std::uint64_t consumed = 0;
};
struct Fin {
  std::uint64_t offset = 0;
};
struct Close {
  std::uint16_t code = 0;
  std::string reason;
};

// Size of each fixed-size payload (DATA and CLOSE vary).
inline constexpr std::size_t kHelloSize = 4 + 8 + 8 + kRandomSize + kKeySize;
inline constexpr std::size_t kHelloReplySize = kHelloSize + kMacSize;
inline constexpr std::size_t kFinishSize = kMacSize;
inline constexpr std::size_t kServerKeySize = kSignPublicSize + kSignatureSize;
inline constexpr std::size_t kMaxSealedPayload = kSealedOverhead + kMaxDataPayload;
inline constexpr std::size_t kMigrateSize = kTokenSize + 8 + 8 + kMacSize;
inline constexpr std::size_t kChallengeSize = 8 + kNonceSize + kMacSize;
inline constexpr std::size_t kResponseSize = 8 + 8 + kMacSize;
inline constexpr std::size_t kAcceptSize = 8 + 8 + kMacSize;
inline constexpr std::size_t kStaleSize = 8 + 8 + kMacSize;
inline constexpr std::size_t kRefusedSize = 16;
inline constexpr std::size_t kAckSize = 8;
inline constexpr std::size_t kFinSize = 8;

// --- preamble ------------------------------------------------------------------------------
void encode_preamble(std::vector<std::uint8_t>& out);
// Ok when `in` holds a full preamble of our version. kNeedMore while fewer than 8 bytes are
// present and they agree with the magic so far; kNotRoam as soon as they cannot; kVersion for a
// roam preamble of another version.
Result<void> check_preamble(Bytes in);

// --- frames --------------------------------------------------------------------------------
// kNeedMore with fewer than 4 bytes; kMalformed for an unknown type or a length above its limit.
Result<FrameHeader> decode_header(Bytes in);
void encode_header(FrameType type, std::uint32_t length, std::uint8_t out[kFrameHeaderSize]);

// Each parse_* takes exactly the payload and fails with kMalformed on a wrong size or value.
Result<Hello> parse_hello(Bytes payload);
Result<HelloReply> parse_hello_reply(Bytes payload);
Result<Finish> parse_finish(Bytes payload);
Result<Migrate> parse_migrate(Bytes payload);
Result<Challenge> parse_challenge(Bytes payload);
Result<Response> parse_response(Bytes payload);
Result<Accept> parse_accept(Bytes payload);
Result<Stale> parse_stale(Bytes payload);
Result<Refused> parse_refused(Bytes payload);
Result<Ack> parse_ack(Bytes payload);
Result<Fin> parse_fin(Bytes payload);
Result<Close> parse_close(Bytes payload);
Result<ServerKey> parse_server_key(Bytes payload);
// Checks the inner type (DATA, ACK, FIN or CLOSE) and that the inner payload's length suits it.
Result<SealedView> parse_sealed(Bytes payload);

// Each encode_* appends header and payload to `out`.
void encode(const Hello& m, std::vector<std::uint8_t>& out);
void encode(const HelloReply& m, std::vector<std::uint8_t>& out);
void encode(const Finish& m, std::vector<std::uint8_t>& out);
void encode(const Migrate& m, std::vector<std::uint8_t>& out);
void encode(const Challenge& m, std::vector<std::uint8_t>& out);
void encode(const Response& m, std::vector<std::uint8_t>& out);
void encode(const Accept& m, std::vector<std::uint8_t>& out);
void encode(const Stale& m, std::vector<std::uint8_t>& out);
void encode(const Refused& m, std::vector<std::uint8_t>& out);
void encode(const Ack& m, std::vector<std::uint8_t>& out);
void encode(const Fin& m, std::vector<std::uint8_t>& out);
void encode(const Close& m, std::vector<std::uint8_t>& out);
void encode(const ServerKey& m, std::vector<std::uint8_t>& out);

}  // namespace roam::core::wire
