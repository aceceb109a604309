#include "core/session/handshake.hpp"

#include <algorithm>
#include <string_view>

namespace roam::core {
namespace {

Bytes as_bytes(std::string_view s) {
  return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

std::uint64_t wait_ms(Duration d) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

Bytes mac_label(wire::FrameType type) {
  using wire::FrameType;
  switch (type) {
    case FrameType::kHelloReply: return as_bytes("roam/1 s2c HELLO_REPLY");
    case FrameType::kFinish: return as_bytes("roam/1 c2s FINISH");
    case FrameType::kMigrate: return as_bytes("roam/1 c2s MIGRATE");
    case FrameType::kChallenge: return as_bytes("roam/1 s2c CHALLENGE");
    case FrameType::kResponse: return as_bytes("roam/1 c2s RESPONSE");
    case FrameType::kAccept: return as_bytes("roam/1 s2c ACCEPT");
    case FrameType::kStale: return as_bytes("roam/1 s2c STALE");
    default: return as_bytes("roam/1 unused");
  }
}

Bytes server_key_label() { return as_bytes("roam/1 s2c SERVER_KEY"); }

namespace {
// derive_session from the transcript's hash `th`, which each side also MACs: hashed once.
Negotiated derive_hashed(const wire::Key& shared, const wire::Key& th, const wire::Hello& hello,
                         const wire::HelloReply& reply) {
  const wire::Key prk = crypto::extract(shared, th);
  Negotiated n;
  n.features = hello.features & reply.features;
  n.aead = (n.features & wire::kFeatureEncrypt) && (n.features & wire::kFeatureAesGcm)
               ? crypto::Aead::kAes256Gcm
               : crypto::Aead::kXChaCha20Poly1305;
  n.buffer_cap = std::min(hello.buffer_cap, reply.buffer_cap);
  n.wait = std::chrono::milliseconds(std::min(hello.wait_ms, reply.wait_ms));
  n.keys.mac_c2s = crypto::derive(prk, crypto::KeyId::kMacClientToServer);
  n.keys.mac_s2c = crypto::derive(prk, crypto::KeyId::kMacServerToClient);
  n.keys.aead_c2s = crypto::derive(prk, crypto::KeyId::kAeadClientToServer);
  n.keys.aead_s2c = crypto::derive(prk, crypto::KeyId::kAeadServerToClient);
  n.token = crypto::token_of(crypto::derive(prk, crypto::KeyId::kToken), hello.random, reply.random);
  return n;
}
}  // namespace

Negotiated derive_session(const wire::Key& shared, Bytes transcript, const wire::Hello& hello,
                          const wire::HelloReply& reply) {
  return derive_hashed(shared, crypto::blake2b_256(transcript), hello, reply);
}

// --- client --------------------------------------------------------------------------------

ClientHandshake::ClientHandshake(HandshakeParams params, crypto::Rng& rng) : params_(params) {
  kp_ = crypto::keypair(rng);
  rng.fill(hello_.random);
}

ClientHandshake::ClientHandshake(HandshakeParams params, const wire::Key& secret,
                                 const wire::Random& random)
    : params_(params) {
  kp_.secret_key = secret;
  kp_.public_key = crypto::public_of(secret);
  hello_.random = random;
}

void ClientHandshake::write_hello(std::vector<std::uint8_t>& out) {
  hello_.features = params_.features | wire::kFeatureResume |
                    (params_.require_encrypt ? wire::kFeatureEncrypt : 0) |
                    (params_.pinned_server_key ? wire::kFeatureServerKey : 0);
  // AES-256-GCM is offered with encryption, and only by a CPU that has it.
  hello_.features &= ~wire::kFeatureAesGcm;
  if ((hello_.features & wire::kFeatureEncrypt) && params_.aes_gcm && crypto::aes256gcm_available())
    hello_.features |= wire::kFeatureAesGcm;
  hello_.buffer_cap = params_.buffer_cap;
  hello_.wait_ms = std::max<std::uint64_t>(1, wait_ms(params_.wait));
  hello_.public_key = kp_.public_key;
  transcript_.clear();
  wire::encode(hello_, transcript_);
  out.insert(out.end(), transcript_.begin(), transcript_.end());
}

Result<Negotiated> ClientHandshake::on_hello_reply(Bytes frame, std::vector<std::uint8_t>& out) {
  if (transcript_.empty() || pending_) return fail(Errc::kProtocol, "unexpected HELLO_REPLY");
  auto reply = wire::parse_hello_reply(frame.subspan(wire::kFrameHeaderSize));
  if (!reply) return tl::unexpected(reply.error());
  if (reply->features & ~hello_.features)
    return fail(Errc::kProtocol, "server selected a feature we did not offer");
  if (reply->features & ~wire::kSupportedFeatures)
    return fail(Errc::kProtocol, "server selected a feature this build cannot do");
  if ((reply->features & wire::kFeatureAesGcm) && !(reply->features & wire::kFeatureEncrypt))
    return fail(Errc::kProtocol, "server selected AES-256-GCM without encryption");
  auto shared = crypto::x25519(kp_.secret_key, reply->public_key);
  if (!shared) return tl::unexpected(shared.error());
  // The transcript covers HELLO and HELLO_REPLY up to (not including) its MAC.
  transcript_.insert(transcript_.end(), frame.begin(), frame.end() - wire::kMacSize);
  transcript_hash_ = crypto::blake2b_256(transcript_);
  Negotiated n = derive_hashed(*shared, transcript_hash_, hello_, *reply);
  const wire::Key& th = transcript_hash_;
  if (!crypto::mac_verify(n.keys.mac_s2c, {mac_label(wire::FrameType::kHelloReply), th}, reply->mac))
    return fail(Errc::kBadMac, "HELLO_REPLY MAC does not verify (tampered or downgraded)");
  if (params_.require_encrypt && !(n.features & wire::kFeatureEncrypt))
    return fail(Errc::kProtocol,
                "the server does not encrypt (--encrypt needs a roam server that supports it)");
  if (n.features & wire::kFeatureServerKey) {
    pending_ = std::move(n);
    return fail(Errc::kNeedMore);
  }
  if (params_.pinned_server_key)
    return fail(Errc::kProtocol,
                "the server presented no key, but its key " +
                    crypto::base64_encode(*params_.pinned_server_key) +
                    " is pinned in known_hosts (possible man-in-the-middle)");
  return finish(std::move(n), out);
}

Result<Negotiated> ClientHandshake::on_server_key(Bytes frame, std::vector<std::uint8_t>& out) {
  if (!pending_) return fail(Errc::kProtocol, "SERVER_KEY not expected");
  auto k = wire::parse_server_key(frame.subspan(wire::kFrameHeaderSize));
  if (!k) return tl::unexpected(k.error());
  if (!crypto::sign_verify(k->public_key, {server_key_label(), transcript_hash_}, k->signature))
    return fail(Errc::kBadMac, "SERVER_KEY signature does not verify");
  if (params_.pinned_server_key && !crypto::equal_ct(*params_.pinned_server_key, k->public_key))
    return fail(Errc::kCrypto, "server key changed: it presents ed25519 " +
                                   crypto::base64_encode(k->public_key) + " but ed25519 " +
                                   crypto::base64_encode(*params_.pinned_server_key) +
                                   " is pinned (possible man-in-the-middle)");
  Negotiated n = std::move(*pending_);
  pending_.reset();
  n.server_key = k->public_key;
  return finish(std::move(n), out);
}

Result<Negotiated> ClientHandshake::finish(Negotiated n, std::vector<std::uint8_t>& out) {
  wire::Finish fin;
  fin.mac = crypto::mac(n.keys.mac_c2s, {mac_label(wire::FrameType::kFinish), transcript_hash_});
  wire::encode(fin, out);
  return n;
}

// --- server --------------------------------------------------------------------------------

ServerHandshake::ServerHandshake(HandshakeParams params, crypto::Rng& rng) : params_(params) {
  kp_ = crypto::keypair(rng);
  rng.fill(random_);
}

ServerHandshake::ServerHandshake(HandshakeParams params, const wire::Key& secret,
                                 const wire::Random& random)
    : params_(params), random_(random) {
  kp_.secret_key = secret;
  kp_.public_key = crypto::public_of(secret);
}

Result<void> ServerHandshake::on_hello(Bytes frame, std::vector<std::uint8_t>& out) {
  if (have_hello_) return fail(Errc::kProtocol, "second HELLO");
  auto hello = wire::parse_hello(frame.subspan(wire::kFrameHeaderSize));
  if (!hello) return tl::unexpected(hello.error());
  auto shared = crypto::x25519(kp_.secret_key, hello->public_key);
  if (!shared) return tl::unexpected(shared.error());

  if (params_.require_encrypt && !(hello->features & wire::kFeatureEncrypt))
    return fail(Errc::kProtocol, "this server requires encryption (run the client with --encrypt)");
  std::uint32_t accepted = (params_.features & wire::kSupportedFeatures) | wire::kFeatureResume;
  if (params_.require_encrypt) accepted |= wire::kFeatureEncrypt;
  if (params_.identity) accepted |= wire::kFeatureServerKey;
  else accepted &= ~wire::kFeatureServerKey;  // nothing to sign with
  if (params_.aes_gcm && crypto::aes256gcm_available()) accepted |= wire::kFeatureAesGcm;
  else accepted &= ~wire::kFeatureAesGcm;  // XChaCha20-Poly1305 it is
  if (!(hello->features & accepted & wire::kFeatureEncrypt)) accepted &= ~wire::kFeatureAesGcm;
  wire::HelloReply reply;
  reply.features = hello->features & accepted;
  reply.buffer_cap = params_.buffer_cap;
  reply.wait_ms = std::max<std::uint64_t>(1, wait_ms(params_.wait));
  reply.random = random_;
  reply.public_key = kp_.public_key;

  std::vector<std::uint8_t> transcript(frame.begin(), frame.end());
  wire::encode(reply, transcript);
  transcript.resize(transcript.size() - wire::kMacSize);  // MAC not covered by itself

  transcript_hash_ = crypto::blake2b_256(transcript);
  negotiated_ = derive_hashed(*shared, transcript_hash_, *hello, reply);
  reply.mac = crypto::mac(negotiated_.keys.mac_s2c,
                          {mac_label(wire::FrameType::kHelloReply), transcript_hash_});
  wire::encode(reply, out);
  if (reply.features & wire::kFeatureServerKey) {
    wire::ServerKey k;
    k.public_key = params_.identity->public_key;
    k.signature = crypto::sign(*params_.identity, {server_key_label(), transcript_hash_});
    wire::encode(k, out);
  }
  have_hello_ = true;
  return {};
}

Result<Negotiated> ServerHandshake::on_finish(Bytes frame) {
  if (!have_hello_) return fail(Errc::kProtocol, "FINISH before HELLO");
  auto fin = wire::parse_finish(frame.subspan(wire::kFrameHeaderSize));
  if (!fin) return tl::unexpected(fin.error());
  if (!crypto::mac_verify(negotiated_.keys.mac_c2s,
                          {mac_label(wire::FrameType::kFinish), transcript_hash_}, fin->mac))
    return fail(Errc::kBadMac, "FINISH MAC does not verify (tampered or downgraded)");
  return negotiated_;
}

}  // namespace roam::core
