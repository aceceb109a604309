#include "core/session/sealer.hpp"

namespace roam::core {

void Sealer::start(crypto::Aead aead, const wire::Key& key, std::uint64_t epoch) {
  key_ = crypto::AeadKey(aead, key);
  epoch_ = epoch;
  seq_ = 0;
  on_ = true;
}

void Sealer::seal(wire::FrameType inner, Bytes payload, std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  const std::size_t length = wire::kSealedOverhead + payload.size();
  out.resize(start + wire::kFrameHeaderSize + length);
  std::uint8_t* f = out.data() + start;
  wire::encode_header(wire::FrameType::kSealed, static_cast<std::uint32_t>(length), f);
  f[wire::kFrameHeaderSize] = static_cast<std::uint8_t>(inner);
  const Bytes ad(f, wire::kFrameHeaderSize + 1);
  key_.seal(epoch_, seq_++, ad, payload, f + wire::kFrameHeaderSize + 1);
}

Result<MutBytes> Sealer::open(MutBytes frame, MutBytes into) {
  auto v = wire::parse_sealed(frame.subspan(wire::kFrameHeaderSize));
  if (!v) return tl::unexpected(v.error());
  const std::size_t n = v->sealed.size() - wire::kSealTagSize;
  const std::size_t body = wire::kFrameHeaderSize + 1;  // the ciphertext starts here
  std::uint8_t* out = into.empty() ? frame.data() + body : into.data();
  if ((!into.empty() && into.size() != n) ||
      !key_.open(epoch_, seq_, frame.first(body), v->sealed, out))
    return fail(Errc::kBadMac, "sealed frame " + std::to_string(seq_) + " on path epoch " +
                                   std::to_string(epoch_) +
                                   " does not authenticate (tampered, replayed or reordered)");
  ++seq_;
  if (!into.empty()) return into;
  // In place: the inner header goes right before the plaintext, over the SEALED header's tail.
  MutBytes inner = frame.subspan(1, wire::kFrameHeaderSize + n);
  wire::encode_header(static_cast<wire::FrameType>(v->inner_type), static_cast<std::uint32_t>(n),
                      inner.data());
  return inner;
}

}  // namespace roam::core
