// --encrypt: seals and opens the frames of one path in one direction.
//
// Theory of operation. With kFeatureEncrypt every frame after the handshake (DATA, ACK, FIN,
// CLOSE) travels inside a SEALED frame: inner_type:u8, then the inner payload encrypted with
// XChaCha20-Poly1305 under the direction's key (aead_c2s / aead_s2c), then the tag. The
// associated data is the SEALED header and the inner type; the 24-byte nonce is never sent:
//
//   nonce = epoch:u64 || seq:u64 || 0:u64
//
// `epoch` names the path: 0 for the handshake connection, the migrate request number for a path
// adopted by a migration (unique per session: the client numbers attempts strictly upwards and
// the server adopts, or answers from a lingering session, each number at most once). `seq` counts
// the sealed frames sent on that path in that direction from 0. So no (key, nonce) pair ever
// repeats, however a resume re-chunks the retained bytes; and since the receiver opens frame i
// with nonce (epoch, i), a replayed, reordered, dropped or spliced-in frame fails authentication.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"
#include "core/wire/frames.hpp"

namespace roam::core {

class Sealer {
 public:
  // Starts sealing (or opening) with `key` on the path whose epoch is `epoch`; seq restarts at 0.
  void start(const wire::Key& key, std::uint64_t epoch) {
    key_ = key;
    epoch_ = epoch;
    seq_ = 0;
    on_ = true;
  }
  bool on() const { return on_; }
  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t seq() const { return seq_; }

  // Appends one SEALED frame carrying an inner frame of `inner` type with `payload` to `out`.
  void seal(wire::FrameType inner, Bytes payload, std::vector<std::uint8_t>& out);
  // Replaces the complete plaintext frames in out[from, end) by SEALED frames, in order.
  void seal_tail(std::vector<std::uint8_t>& out, std::size_t from);
  // Opens the whole SEALED frame `frame` into `scratch`, which then holds the inner frame (header
  // and payload); returns a view of it. kMalformed for a bad inner type or size, kBadMac when the
  // tag does not verify (tampered, replayed, reordered or not from the peer).
  Result<Bytes> open(Bytes frame, std::vector<std::uint8_t>& scratch);

 private:
  wire::Key key_{};
  std::uint64_t epoch_ = 0;
  std::uint64_t seq_ = 0;
  bool on_ = false;
};

}  // namespace roam::core
