// --encrypt: seals and opens the frames of one path in one direction.
//
// Theory of operation. With kFeatureEncrypt every frame after the handshake (DATA, ACK, FIN,
// CLOSE) travels inside a SEALED frame: inner_type:u8, then the inner payload encrypted under the
// direction's key (aead_c2s / aead_s2c), then the 16-byte tag. The AEAD is XChaCha20-Poly1305, or
// AES-256-GCM when both ends negotiated kFeatureAesGcm. The associated data is the SEALED header
// and the inner type; the nonce is never sent:
//
//   XChaCha20-Poly1305 (24 bytes)  nonce = epoch:u64 || seq:u64 || 0:u64
//   AES-256-GCM        (12 bytes)  nonce = epoch:u32 || seq:u64      (epoch <= 2^32 - 1)
//
// `epoch` names the path: 0 for the handshake connection, the migrate request number for a path
// adopted by a migration (unique per session: the client numbers attempts strictly upwards and
// the server adopts, or answers from a lingering session, each number at most once). `seq` counts
// the sealed frames sent on that path in that direction from 0. So no (key, nonce) pair ever
// repeats, however a resume re-chunks the retained bytes; and since the receiver opens frame i
// with nonce (epoch, i), a replayed, reordered, dropped or spliced-in frame fails authentication.
// A path whose epoch does not fit AES-GCM's 32 bits is never sealed (Session ends instead).
//
// Costs: sealing writes the ciphertext straight into the output queue (the plaintext stays in the
// retention ring for resends); opening works in place in the decoder's frame buffer, or decrypts
// a DATA payload straight into the receive ring. No copy and no allocation per frame.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"
#include "core/wire/frames.hpp"

namespace roam::core {

class Sealer {
 public:
  // Starts sealing (or opening) with `key` under `aead` on the path whose epoch is `epoch`; seq
  // restarts at 0. For AES-256-GCM, epoch must be <= crypto::kMaxGcmEpoch.
  void start(crypto::Aead aead, const wire::Key& key, std::uint64_t epoch);
  void start(const wire::Key& key, std::uint64_t epoch) {
    start(crypto::Aead::kXChaCha20Poly1305, key, epoch);
  }
  bool on() const { return on_; }
  crypto::Aead aead() const { return key_.aead(); }
  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t seq() const { return seq_; }

  // Appends one SEALED frame carrying an inner frame of `inner` type with `payload` to `out`.
  void seal(wire::FrameType inner, Bytes payload, std::vector<std::uint8_t>& out);
  // Plaintext bytes inside the whole SEALED frame `frame` (0 if it is too short to be one).
  static std::size_t payload_size(Bytes frame) {
    const std::size_t min = wire::kFrameHeaderSize + wire::kSealedOverhead;
    return frame.size() > min ? frame.size() - min : 0;
  }
  // Opens the whole SEALED frame `frame` (header included). With `into` (payload_size() bytes)
  // the plaintext payload goes there and `into` is returned; without, the frame is opened in
  // place and the inner frame (its header and payload) is returned, inside `frame`. kMalformed
  // for a bad inner type or size, kBadMac when the tag does not verify (tampered, replayed,
  // reordered or not from the peer).
  Result<MutBytes> open(MutBytes frame, MutBytes into = {});

 private:
  crypto::AeadKey key_;
  std::uint64_t epoch_ = 0;
  std::uint64_t seq_ = 0;
  bool on_ = false;
};

}  // namespace roam::core
