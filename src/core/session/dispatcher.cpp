#include "core/session/dispatcher.hpp"

namespace roam::core {

Result<FirstFrame> classify_first(Bytes initial) {
  if (auto ok = wire::check_preamble(initial); !ok) return tl::unexpected(ok.error());
  auto h = wire::decode_header(initial.subspan(wire::kPreambleSize));
  if (!h) return tl::unexpected(h.error());
  const auto type = static_cast<wire::FrameType>(h->type);
  if (type != wire::FrameType::kHello && type != wire::FrameType::kMigrate)
    return fail(Errc::kMalformed, std::string("a connection must start with HELLO or MIGRATE, not ") +
                                      wire::frame_type_name(h->type));
  const std::size_t end = wire::kPreambleSize + wire::kFrameHeaderSize + h->length;
  if (initial.size() < end) return fail(Errc::kNeedMore);
  return FirstFrame{type, end};
}

SessionTable::SessionTable(crypto::Rng& rng) { rng.fill(dummy_key_); }

void SessionTable::add(Session* s) { map_[key_of(s->token())] = s; }

void SessionTable::remove(Session* s) {
  auto it = map_.find(key_of(s->token()));
  if (it != map_.end() && it->second == s) map_.erase(it);
}

Session* SessionTable::find(const wire::Token& t) const {
  auto it = map_.find(key_of(t));
  return it == map_.end() ? nullptr : it->second;
}

Session* SessionTable::route_migrate(Bytes initial, std::vector<std::uint8_t>& reply) const {
  const Bytes payload = initial.subspan(std::min(initial.size(), wire::kPreambleSize + wire::kFrameHeaderSize));
  auto m = wire::parse_migrate(payload.first(std::min(payload.size(), wire::kMigrateSize)));
  wire::Refused refused;
  if (m) {
    refused.request = m->request;
    if (Session* s = find(m->token)) return s;  // the session checks the MAC itself
    // Same work as a real check: one HMAC verification.
    (void)crypto::mac_verify(dummy_key_,
                             {mac_label(wire::FrameType::kMigrate), m->token,
                              crypto::be64(m->request), crypto::be64(m->received)},
                             m->mac);
  }
  wire::encode_preamble(reply);
  wire::encode(refused, reply);
  return nullptr;
}

}  // namespace roam::core
