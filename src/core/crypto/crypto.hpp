// Thin wrappers over libsodium: X25519, BLAKE2b (transcript hash, extract, KDF), HMAC-SHA-512-256,
// XChaCha20-Poly1305 and AES-256-GCM (--encrypt), Ed25519 (server keys), base64 and constant-time comparison. Nothing here is hand-rolled; every primitive is libsodium's.
//
// Key schedule (docs/PROTOCOL.md §Keys):
//   shared = X25519(own_secret, peer_public)                  (all-zero result is refused)
//   th     = BLAKE2b-256(transcript)             (HELLO frame, HELLO_REPLY frame without its MAC)
//   prk    = BLAKE2b-256(key = shared, message = th)          (extract)
//   k_i    = crypto_kdf_derive_from_key(32, i, "roam-v1_", prk)   (expand, one id per purpose)
//   token  = BLAKE2b-128(key = k_token, message = client_random || server_random)
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common.hpp"
#include "core/wire/frames.hpp"

namespace roam::core::crypto {

using wire::Key;
using wire::Mac;
using wire::Token;

// Call once before any other function (sodium_init). Safe to call repeatedly; returns false
// only if libsodium cannot initialise (no entropy source).
bool init();

// Source of randomness. The daemons use the system's; tests inject a seeded one so that test
// vectors and simulations are reproducible.
class Rng {
 public:
  virtual ~Rng() = default;
  virtual void fill(MutBytes out) = 0;
};
class SystemRng final : public Rng {
 public:
  void fill(MutBytes out) override;
};
// Deterministic stream from a seed (libsodium's randombytes_buf_deterministic, ChaCha20).
class SeededRng final : public Rng {
 public:
  explicit SeededRng(std::uint64_t seed);
  void fill(MutBytes out) override;

 private:
  std::uint64_t seed_;
  std::uint64_t counter_ = 0;
};
Rng& system_rng();

struct KeyPair {
  Key public_key{};
  Key secret_key{};
};
KeyPair keypair(Rng& rng);
// Public key of a given secret (used by test vectors).
Key public_of(const Key& secret_key);

// X25519. kCrypto when the peer's point yields the all-zero secret (low-order point).
Result<Key> x25519(const Key& secret_key, const Key& peer_public);

Key blake2b_256(Bytes message);
Key extract(const Key& shared, const Key& transcript_hash);

enum class KeyId : std::uint64_t {
  kMacClientToServer = 1,
  kMacServerToClient = 2,
  kToken = 3,
  kAeadClientToServer = 4,
  kAeadServerToClient = 5,
};
Key derive(const Key& prk, KeyId id);
Token token_of(const Key& token_key, const wire::Random& client_random,
               const wire::Random& server_random);

// HMAC-SHA-512-256 over the concatenation of `parts`.
Mac mac(const Key& key, std::initializer_list<Bytes> parts);
// Constant-time check of `tag` against the MAC of `parts`.
bool mac_verify(const Key& key, std::initializer_list<Bytes> parts, const Mac& tag);
// Constant-time equality of two equally long byte strings.
bool equal_ct(Bytes a, Bytes b);

// --- AEAD (XChaCha20-Poly1305-IETF, --encrypt) -------------------------------------------------
// The nonce of a sealed frame is never sent: both ends compute it from the path's epoch and the
// frame's sequence number on that path (docs/PROTOCOL.md §Encryption).
inline constexpr std::size_t kAeadTagSize = wire::kSealTagSize;
inline constexpr std::size_t kAeadNonceSize = 24;
using AeadNonce = std::array<std::uint8_t, kAeadNonceSize>;
// epoch:u64 || seq:u64 || 8 zero bytes, big-endian.
AeadNonce aead_nonce(std::uint64_t epoch, std::uint64_t seq);
// Encrypts `plain` into `out` (plain.size() + kAeadTagSize bytes; may alias plain) authenticating
// `ad` too.
void aead_seal(const Key& key, const AeadNonce& nonce, Bytes ad, Bytes plain, MutBytes out);
// Decrypts `sealed` (ciphertext || tag) into `out` (sealed.size() - kAeadTagSize bytes). False
// when the tag does not verify (tampered, replayed, reordered or wrong key); `out` is then zeroed.
bool aead_open(const Key& key, const AeadNonce& nonce, Bytes ad, Bytes sealed, MutBytes out);

// --- The sealing AEADs (docs/PROTOCOL.md §Encryption) -----------------------------------------
// Which AEAD seals a session's frames: XChaCha20-Poly1305 unless both ends negotiated aes256gcm.
enum class Aead : std::uint8_t { kXChaCha20Poly1305, kAes256Gcm };
const char* aead_name(Aead a);
// Whether this CPU can run libsodium's AES-256-GCM (AES-NI and PCLMULQDQ). Call after init().
bool aes256gcm_available();
// AES-256-GCM's nonce is 96 bits: be32(epoch) || be64(seq). A path whose epoch does not fit 32 bits
// cannot be sealed with it (the session ends instead; see PROTOCOL.md).
inline constexpr std::uint64_t kMaxGcmEpoch = 0xffffffffu;
inline constexpr std::size_t kGcmNonceSize = 12;
using GcmNonce = std::array<std::uint8_t, kGcmNonceSize>;
GcmNonce gcm_nonce(std::uint64_t epoch, std::uint64_t seq);

// One direction's AEAD key, ready to seal or open frame after frame: for AES-256-GCM the key
// schedule and the GHASH key are computed once, here (crypto_aead_aes256gcm_beforenm), not per
// frame. The nonce is computed from (epoch, seq) as above. Wiped on destruction.
class AeadKey {
 public:
  AeadKey();
  // kAes256Gcm only where aes256gcm_available() (aborts otherwise: a caller bug).
  AeadKey(Aead aead, const Key& key);
  AeadKey(AeadKey&& o) noexcept;
  AeadKey& operator=(AeadKey&& o) noexcept;
  ~AeadKey();
  Aead aead() const { return aead_; }
  // Encrypts `plain` into `out` (plain.size() + kAeadTagSize bytes: ciphertext || tag), also
  // authenticating `ad`. `out` may be plain.data() (in place).
  void seal(std::uint64_t epoch, std::uint64_t seq, Bytes ad, Bytes plain, std::uint8_t* out) const;
  // Verifies and decrypts `sealed` (ciphertext || tag) into `out` (sealed.size() - kAeadTagSize
  // bytes; may be sealed.data()). False when the tag does not verify; `out` then holds no
  // plaintext (libsodium zeroes it).
  bool open(std::uint64_t epoch, std::uint64_t seq, Bytes ad, Bytes sealed, std::uint8_t* out) const;

 private:
  struct GcmState;
  void wipe();
  Aead aead_ = Aead::kXChaCha20Poly1305;
  Key key_{};
  std::unique_ptr<GcmState> gcm_;
};

// --- Ed25519 (server static keys) ---------------------------------------------------------------
inline constexpr std::size_t kSignPublicSize = wire::kSignPublicSize;
inline constexpr std::size_t kSignSecretSize = 64;  // libsodium's seed || public key
inline constexpr std::size_t kSignatureSize = wire::kSignatureSize;
using SignPublic = std::array<std::uint8_t, kSignPublicSize>;
using Signature = std::array<std::uint8_t, kSignatureSize>;
struct SignKeyPair {
  SignPublic public_key{};
  std::array<std::uint8_t, kSignSecretSize> secret_key{};
};
SignKeyPair sign_keypair(Rng& rng);
// The key pair of a 32-byte seed (key files store the seed).
SignKeyPair sign_keypair_from_seed(const Key& seed);
Signature sign(const SignKeyPair& kp, std::initializer_list<Bytes> parts);
bool sign_verify(const SignPublic& pk, std::initializer_list<Bytes> parts, const Signature& sig);

// Standard base64 with padding (RFC 4648 §4), as in ssh's known_hosts. decode: nullopt on any
// character outside the alphabet, bad padding or a length that is not a multiple of 4.
std::string base64_encode(Bytes in);
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view in);

// Big-endian encoding of a 64-bit integer, for MAC inputs.
std::array<std::uint8_t, 8> be64(std::uint64_t v);

}  // namespace roam::core::crypto
