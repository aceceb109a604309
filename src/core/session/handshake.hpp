// The roam handshake: an ephemeral X25519 exchange bound to a transcript.
//
// Theory of operation. The client sends HELLO (its features, buffer cap, wait, a fresh random and
// an ephemeral public key). The server answers HELLO_REPLY with its own values and a MAC, keyed by
// the server→client subkey, over the transcript hash; the client checks it and answers FINISH, a
// MAC keyed by the client→server subkey over the same hash. Because the transcript holds both
// HELLO frames byte for byte (features included), a middlebox that strips a feature bit changes
// the hash and both MACs fail: a downgrade is detected. The token that names the session comes
// from a subkey and both randoms; it is never a credential by itself (every request that uses it
// carries a MAC).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"
#include "core/wire/frames.hpp"

namespace roam::core {

struct HandshakeParams {
  // Client: the features it offers; server: those it accepts (the reply is the intersection).
  std::uint32_t features = wire::kFeatureResume;
  std::uint64_t buffer_cap = 8u << 20;
  Duration wait = std::chrono::minutes(10);
  // --encrypt. Client: refuse a server that will not encrypt. Server: refuse a client that does
  // not offer it (without it a server that accepts kFeatureEncrypt encrypts when asked).
  bool require_encrypt = false;
  // With encryption: offer (client) or accept (server) AES-256-GCM when this CPU can run it
  // (crypto::aes256gcm_available()); the session seals with it only if both ends do. false acts
  // like a side without AES-NI: XChaCha20-Poly1305.
  bool aes_gcm = true;
  // Server (--key): signs the transcript with this long-term key when the client offers
  // kFeatureServerKey (kFeatureServerKey is accepted only with a key).
  std::shared_ptr<const crypto::SignKeyPair> identity;
  // Client: the key known_hosts pins for this server. The server must present exactly it;
  // kFeatureServerKey is then offered even if `features` lacks it.
  std::optional<crypto::SignPublic> pinned_server_key;
};

struct SessionKeys {
  wire::Key mac_c2s{};
  wire::Key mac_s2c{};
  wire::Key aead_c2s{};
  wire::Key aead_s2c{};
};

// What both sides agree on once the handshake completes.
struct Negotiated {
  std::uint32_t features = 0;
  // With kFeatureEncrypt: the AEAD that seals frames (AES-256-GCM iff kFeatureAesGcm).
  crypto::Aead aead = crypto::Aead::kXChaCha20Poly1305;
  std::uint64_t buffer_cap = 0;  // the smaller of both caps
  Duration wait{};               // the smaller of both waits
  SessionKeys keys;
  wire::Token token{};
  // Client: the server's verified long-term key (kFeatureServerKey), for pinning.
  std::optional<crypto::SignPublic> server_key;
};

// Derives keys and token from the shared secret and the transcript (exposed for test vectors).
Negotiated derive_session(const wire::Key& shared, Bytes transcript, const wire::Hello& hello,
                          const wire::HelloReply& reply);
// The MAC input label of each message: "roam/1 <dir> <NAME>".
Bytes mac_label(wire::FrameType type);

class ClientHandshake {
 public:
  ClientHandshake(HandshakeParams params, crypto::Rng& rng);
  // For test vectors: fixed secret key and random.
  ClientHandshake(HandshakeParams params, const wire::Key& secret, const wire::Random& random);

  // Appends the HELLO frame to `out`.
  void write_hello(std::vector<std::uint8_t>& out);
  // `frame` is the whole HELLO_REPLY frame (header and payload). On success appends FINISH to
  // `out`. Errors: kMalformed, kBadMac (wrong key or tampered transcript), kCrypto, kProtocol
  // (--encrypt and the server will not; a pinned key and the server presents none), and kNeedMore
  // when the server signs: FINISH then waits for on_server_key().
  Result<Negotiated> on_hello_reply(Bytes frame, std::vector<std::uint8_t>& out);
  // `frame` is the whole SERVER_KEY frame. Checks the signature over the transcript hash and the
  // pinned key, then appends FINISH. kBadMac for a bad signature, kCrypto for a key that differs
  // from the pinned one ("server key changed").
  Result<Negotiated> on_server_key(Bytes frame, std::vector<std::uint8_t>& out);
  bool awaiting_server_key() const { return pending_.has_value(); }

 private:
  Result<Negotiated> finish(Negotiated n, std::vector<std::uint8_t>& out);

  HandshakeParams params_;
  crypto::KeyPair kp_;
  wire::Hello hello_;
  std::vector<std::uint8_t> transcript_;
  std::optional<Negotiated> pending_;  // HELLO_REPLY verified, SERVER_KEY awaited
  wire::Key transcript_hash_{};
};

// The message a server key signs: "roam/1 s2c SERVER_KEY" || transcript hash.
Bytes server_key_label();

class ServerHandshake {
 public:
  ServerHandshake(HandshakeParams params, crypto::Rng& rng);
  ServerHandshake(HandshakeParams params, const wire::Key& secret, const wire::Random& random);

  // `frame` is the whole HELLO frame. Appends HELLO_REPLY (and SERVER_KEY when signing) to
  // `out`. kProtocol when --encrypt is required and the client does not offer it.
  Result<void> on_hello(Bytes frame, std::vector<std::uint8_t>& out);
  // `frame` is the whole FINISH frame. kBadMac if the client did not derive the same keys.
  Result<Negotiated> on_finish(Bytes frame);

 private:
  HandshakeParams params_;
  crypto::KeyPair kp_;
  wire::Random random_{};
  bool have_hello_ = false;
  Negotiated negotiated_;
  wire::Key transcript_hash_{};
};

}  // namespace roam::core
