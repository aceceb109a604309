#include "core/session/handoff.hpp"

#include <cstring>

namespace roam::core {

HopAction hop_action(const Hop& hop, unsigned self, unsigned workers, bool held) {
  if (workers <= 1 || held) return HopAction::kAnswerHere;
  if (hop.hops == 0) return HopAction::kPass;  // accepted here, not ours: ask the others first
  // Back at the worker that accepted it: nobody holds the session; answer as one process would.
  return hop.origin == self ? HopAction::kAnswerHere : HopAction::kPass;
}

Hop next_hop(const Hop& hop, unsigned self) {
  Hop n;
  n.origin = hop.hops == 0 ? static_cast<std::uint8_t>(self) : hop.origin;
  n.hops = static_cast<std::uint8_t>(hop.hops + 1);
  return n;
}

std::vector<std::uint8_t> encode_handoff(const Hop& hop, Bytes bytes) {
  std::vector<std::uint8_t> out(kHandoffHeader + bytes.size());
  out[0] = 'R';
  out[1] = 'W';
  out[2] = 1;
  out[3] = hop.origin;
  out[4] = hop.hops;
  out[5] = 0;
  out[6] = static_cast<std::uint8_t>(bytes.size() >> 8);
  out[7] = static_cast<std::uint8_t>(bytes.size() & 0xff);
  if (!bytes.empty()) std::memcpy(out.data() + kHandoffHeader, bytes.data(), bytes.size());
  return out;
}

Result<Handoff> decode_handoff(Bytes m, unsigned self, unsigned workers) {
  if (m.size() < kHandoffHeader || m[0] != 'R' || m[1] != 'W' || m[2] != 1 || m[5] != 0)
    return fail(Errc::kMalformed, "not a handoff message");
  const std::size_t len = (std::size_t{m[6]} << 8) | m[7];
  if (len != m.size() - kHandoffHeader || len > kMaxHandoffBytes)
    return fail(Errc::kMalformed, "handoff length does not match");
  Handoff h;
  h.hop.origin = m[3];
  h.hop.hops = m[4];
  if (workers < 2 || h.hop.origin >= workers || h.hop.hops == 0 || h.hop.hops > workers ||
      (h.hop.origin + h.hop.hops) % workers != self)
    return fail(Errc::kMalformed, "handoff hop cannot have reached this worker");
  h.bytes.assign(m.begin() + kHandoffHeader, m.end());
  return h;
}

}  // namespace roam::core
