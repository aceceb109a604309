#include "core/crypto/crypto.hpp"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace roam::core::crypto {
namespace {
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "roam-v1_";
static_assert(sizeof(kKdfContext) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(crypto_auth_hmacsha512256_BYTES == wire::kMacSize);
static_assert(crypto_scalarmult_BYTES == wire::kKeySize);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == kAeadTagSize);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == kAeadNonceSize);
static_assert(crypto_aead_aes256gcm_ABYTES == kAeadTagSize);
static_assert(crypto_aead_aes256gcm_NPUBBYTES == kGcmNonceSize);
static_assert(crypto_aead_aes256gcm_KEYBYTES == wire::kKeySize);
static_assert(crypto_sign_PUBLICKEYBYTES == kSignPublicSize);
static_assert(crypto_sign_SECRETKEYBYTES == kSignSecretSize);
static_assert(crypto_sign_BYTES == kSignatureSize);
static_assert(crypto_sign_SEEDBYTES == wire::kKeySize);
}  // namespace

bool init() { return sodium_init() >= 0; }

void SystemRng::fill(MutBytes out) { randombytes_buf(out.data(), out.size()); }

SeededRng::SeededRng(std::uint64_t seed) : seed_(seed) {}

void SeededRng::fill(MutBytes out) {
  unsigned char s[randombytes_SEEDBYTES] = {};
  const auto a = be64(seed_);
  const auto b = be64(counter_++);
  std::memcpy(s, a.data(), 8);
  std::memcpy(s + 8, b.data(), 8);
  randombytes_buf_deterministic(out.data(), out.size(), s);
}

Rng& system_rng() {
  static SystemRng rng;
  return rng;
}

KeyPair keypair(Rng& rng) {
  KeyPair kp;
  rng.fill(kp.secret_key);
  kp.public_key = public_of(kp.secret_key);
  return kp;
}

Key public_of(const Key& secret_key) {
  Key pk{};
  crypto_scalarmult_base(pk.data(), secret_key.data());
  return pk;
}

Result<Key> x25519(const Key& secret_key, const Key& peer_public) {
  Key shared{};
  if (crypto_scalarmult(shared.data(), secret_key.data(), peer_public.data()) != 0)
    return fail(Errc::kCrypto, "peer public key is a low-order point");
  return shared;
}

Key blake2b_256(Bytes message) {
  Key out{};
  crypto_generichash(out.data(), out.size(), message.data(), message.size(), nullptr, 0);
  return out;
}

Key extract(const Key& shared, const Key& transcript_hash) {
  Key out{};
  crypto_generichash(out.data(), out.size(), transcript_hash.data(), transcript_hash.size(),
                     shared.data(), shared.size());
  return out;
}

Key derive(const Key& prk, KeyId id) {
  Key out{};
  crypto_kdf_derive_from_key(out.data(), out.size(), static_cast<std::uint64_t>(id), kKdfContext,
                             prk.data());
  return out;
}

Token token_of(const Key& token_key, const wire::Random& client_random,
               const wire::Random& server_random) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, token_key.data(), token_key.size(), wire::kTokenSize);
  crypto_generichash_update(&st, client_random.data(), client_random.size());
  crypto_generichash_update(&st, server_random.data(), server_random.size());
  Token t{};
  crypto_generichash_final(&st, t.data(), t.size());
  return t;
}

Mac mac(const Key& key, std::initializer_list<Bytes> parts) {
  crypto_auth_hmacsha512256_state st;
  crypto_auth_hmacsha512256_init(&st, key.data(), key.size());
  for (Bytes p : parts) crypto_auth_hmacsha512256_update(&st, p.data(), p.size());
  Mac out{};
  crypto_auth_hmacsha512256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

bool mac_verify(const Key& key, std::initializer_list<Bytes> parts, const Mac& tag) {
  const Mac expect = mac(key, parts);
  return crypto_verify_32(expect.data(), tag.data()) == 0;
}

bool equal_ct(Bytes a, Bytes b) {
  if (a.size() != b.size()) return false;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

AeadNonce aead_nonce(std::uint64_t epoch, std::uint64_t seq) {
  AeadNonce n{};
  const auto e = be64(epoch);
  const auto q = be64(seq);
  std::memcpy(n.data(), e.data(), 8);
  std::memcpy(n.data() + 8, q.data(), 8);
  return n;
}

void aead_seal(const Key& key, const AeadNonce& nonce, Bytes ad, Bytes plain, MutBytes out) {
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data(), &n, plain.data(), plain.size(), ad.data(),
                                             ad.size(), nullptr, nonce.data(), key.data());
}

bool aead_open(const Key& key, const AeadNonce& nonce, Bytes ad, Bytes sealed, MutBytes out) {
  if (sealed.size() < kAeadTagSize) return false;
  unsigned long long n = 0;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &n, nullptr, sealed.data(),
                                                    sealed.size(), ad.data(), ad.size(),
                                                    nonce.data(), key.data()) == 0;
}

const char* aead_name(Aead a) {
  return a == Aead::kAes256Gcm ? "AES-256-GCM" : "XChaCha20-Poly1305";
}

bool aes256gcm_available() { return crypto_aead_aes256gcm_is_available() == 1; }

GcmNonce gcm_nonce(std::uint64_t epoch, std::uint64_t seq) {
  GcmNonce n{};
  const auto e = be64(epoch);
  const auto q = be64(seq);
  std::memcpy(n.data(), e.data() + 4, 4);  // the low 32 bits (callers keep epoch <= kMaxGcmEpoch)
  std::memcpy(n.data() + 4, q.data(), 8);
  return n;
}

struct AeadKey::GcmState {
  crypto_aead_aes256gcm_state st;
};

AeadKey::AeadKey() = default;

AeadKey::AeadKey(Aead aead, const Key& key) : aead_(aead) {
  if (aead != Aead::kAes256Gcm) {
    key_ = key;
    return;
  }
  if (!aes256gcm_available()) std::abort();  // never negotiated without it
  gcm_ = std::make_unique<GcmState>();
  crypto_aead_aes256gcm_beforenm(&gcm_->st, key.data());
}

AeadKey::AeadKey(AeadKey&& o) noexcept : aead_(o.aead_), key_(o.key_), gcm_(std::move(o.gcm_)) {
  o.wipe();
}

AeadKey& AeadKey::operator=(AeadKey&& o) noexcept {
  if (this != &o) {
    wipe();
    aead_ = o.aead_;
    key_ = o.key_;
    gcm_ = std::move(o.gcm_);
    o.wipe();
  }
  return *this;
}

AeadKey::~AeadKey() { wipe(); }

void AeadKey::wipe() {
  sodium_memzero(key_.data(), key_.size());
  if (gcm_) sodium_memzero(&gcm_->st, sizeof gcm_->st);
  gcm_.reset();
}

void AeadKey::seal(std::uint64_t epoch, std::uint64_t seq, Bytes ad, Bytes plain,
                   std::uint8_t* out) const {
  unsigned long long n = 0;
  if (gcm_) {
    const GcmNonce nonce = gcm_nonce(epoch, seq);
    crypto_aead_aes256gcm_encrypt_afternm(out, &n, plain.data(), plain.size(), ad.data(), ad.size(),
                                          nullptr, nonce.data(), &gcm_->st);
    return;
  }
  const AeadNonce nonce = aead_nonce(epoch, seq);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &n, plain.data(), plain.size(), ad.data(),
                                             ad.size(), nullptr, nonce.data(), key_.data());
}

bool AeadKey::open(std::uint64_t epoch, std::uint64_t seq, Bytes ad, Bytes sealed,
                   std::uint8_t* out) const {
  if (sealed.size() < kAeadTagSize) return false;
  unsigned long long n = 0;
  if (gcm_) {
    const GcmNonce nonce = gcm_nonce(epoch, seq);
    return crypto_aead_aes256gcm_decrypt_afternm(out, &n, nullptr, sealed.data(), sealed.size(),
                                                 ad.data(), ad.size(), nonce.data(),
                                                 &gcm_->st) == 0;
  }
  const AeadNonce nonce = aead_nonce(epoch, seq);
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, nullptr, sealed.data(), sealed.size(),
                                                    ad.data(), ad.size(), nonce.data(),
                                                    key_.data()) == 0;
}

SignKeyPair sign_keypair(Rng& rng) {
  Key seed{};
  rng.fill(seed);
  SignKeyPair kp = sign_keypair_from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return kp;
}

SignKeyPair sign_keypair_from_seed(const Key& seed) {
  SignKeyPair kp;
  crypto_sign_seed_keypair(kp.public_key.data(), kp.secret_key.data(), seed.data());
  return kp;
}

Signature sign(const SignKeyPair& kp, std::initializer_list<Bytes> parts) {
  std::vector<std::uint8_t> msg;
  for (Bytes p : parts) msg.insert(msg.end(), p.begin(), p.end());
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, msg.data(), msg.size(), kp.secret_key.data());
  return sig;
}

bool sign_verify(const SignPublic& pk, std::initializer_list<Bytes> parts, const Signature& sig) {
  std::vector<std::uint8_t> msg;
  for (Bytes p : parts) msg.insert(msg.end(), p.begin(), p.end());
  return crypto_sign_verify_detached(sig.data(), msg.data(), msg.size(), pk.data()) == 0;
}

std::string base64_encode(Bytes in) {
  const std::size_t len = sodium_base64_encoded_len(in.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(len, '\0');
  sodium_bin2base64(out.data(), len, in.data(), in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(len - 1);  // drop the terminating NUL
  return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out(in.size() / 4 * 3);
  std::size_t n = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), in.data(), in.size(), nullptr, &n, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != in.data() + in.size())
    return std::nullopt;
  out.resize(n);
  return out;
}

std::array<std::uint8_t, 8> be64(std::uint64_t v) {
  std::array<std::uint8_t, 8> out{};
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
  return out;
}

}  // namespace roam::core::crypto
