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

#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"
#include "core/wire/frames.hpp"

namespace roam::core {

struct HandshakeParams {
  std::uint32_t features = wire::kFeatureResume;
  std::uint64_t buffer_cap = 8u << 20;
  Duration wait = std::chrono::minutes(10);
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
  std::uint64_t buffer_cap = 0;  // the smaller of both caps
  Duration wait{};               // the smaller of both waits
  SessionKeys keys;
  wire::Token token{};
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
  // `out`. Errors: kMalformed, kBadMac (wrong key or tampered transcript), kCrypto.
  Result<Negotiated> on_hello_reply(Bytes frame, std::vector<std::uint8_t>& out);

 private:
  HandshakeParams params_;
  crypto::KeyPair kp_;
  wire::Hello hello_;
  std::vector<std::uint8_t> transcript_;
};

class ServerHandshake {
 public:
  ServerHandshake(HandshakeParams params, crypto::Rng& rng);
  ServerHandshake(HandshakeParams params, const wire::Key& secret, const wire::Random& random);

  // `frame` is the whole HELLO frame. Appends HELLO_REPLY to `out`.
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
