#include "core/session/sealer.hpp"

namespace roam::core {

void Sealer::seal(wire::FrameType inner, Bytes payload, std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  const std::size_t length = wire::kSealedOverhead + payload.size();
  out.resize(start + wire::kFrameHeaderSize + length);
  std::uint8_t* f = out.data() + start;
  wire::encode_header(wire::FrameType::kSealed, static_cast<std::uint32_t>(length), f);
  f[wire::kFrameHeaderSize] = static_cast<std::uint8_t>(inner);
  const Bytes ad(f, wire::kFrameHeaderSize + 1);
  crypto::aead_seal(key_, crypto::aead_nonce(epoch_, seq_++), ad, payload,
                    MutBytes(f + wire::kFrameHeaderSize + 1, payload.size() + wire::kSealTagSize));
}

void Sealer::seal_tail(std::vector<std::uint8_t>& out, std::size_t from) {
  if (from >= out.size()) return;
  const std::vector<std::uint8_t> plain(out.begin() + static_cast<std::ptrdiff_t>(from), out.end());
  out.resize(from);
  std::size_t pos = 0;
  // Our own encoders produced these frames: each header is whole and its length is right.
  while (pos + wire::kFrameHeaderSize <= plain.size()) {
    const std::uint8_t* h = plain.data() + pos;
    const std::size_t len = (std::size_t{h[1]} << 16) | (std::size_t{h[2]} << 8) | h[3];
    seal(static_cast<wire::FrameType>(h[0]),
         Bytes(h + wire::kFrameHeaderSize, std::min(len, plain.size() - pos - wire::kFrameHeaderSize)),
         out);
    pos += wire::kFrameHeaderSize + len;
  }
}

Result<Bytes> Sealer::open(Bytes frame, std::vector<std::uint8_t>& scratch) {
  auto v = wire::parse_sealed(frame.subspan(wire::kFrameHeaderSize));
  if (!v) return tl::unexpected(v.error());
  const std::size_t n = v->sealed.size() - wire::kSealTagSize;
  scratch.resize(wire::kFrameHeaderSize + n);
  const Bytes ad = frame.first(wire::kFrameHeaderSize + 1);
  if (!crypto::aead_open(key_, crypto::aead_nonce(epoch_, seq_), ad, v->sealed,
                         MutBytes(scratch.data() + wire::kFrameHeaderSize, n)))
    return fail(Errc::kBadMac, "sealed frame " + std::to_string(seq_) + " on path epoch " +
                                   std::to_string(epoch_) +
                                   " does not authenticate (tampered, replayed or reordered)");
  ++seq_;
  wire::encode_header(static_cast<wire::FrameType>(v->inner_type), static_cast<std::uint32_t>(n),
                      scratch.data());
  return Bytes(scratch);
}

}  // namespace roam::core
