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

SessionTable::SessionTable(crypto::Rng& rng, RefusalLimits limits) : limiter_(limits) {
  rng.fill(dummy_key_);
}

void SessionTable::add(Session* s) { map_[key_of(s->token())] = s; }

void SessionTable::remove(Session* s) {
  auto it = map_.find(key_of(s->token()));
  if (it != map_.end() && it->second == s) map_.erase(it);
}

Session* SessionTable::find(const wire::Token& t) const {
  auto it = map_.find(key_of(t));
  return it == map_.end() ? nullptr : it->second;
}

namespace {
std::optional<wire::Migrate> migrate_of(Bytes initial) {
  const Bytes payload =
      initial.subspan(std::min(initial.size(), wire::kPreambleSize + wire::kFrameHeaderSize));
  auto m = wire::parse_migrate(payload.first(std::min(payload.size(), wire::kMigrateSize)));
  if (!m) return std::nullopt;
  return *m;
}
}  // namespace

bool SessionTable::migrate_mac_ok(const Session* s, const wire::Migrate& m) const {
  return crypto::mac_verify(s ? s->negotiated().keys.mac_c2s : dummy_key_,
                            {mac_label(wire::FrameType::kMigrate), m.token,
                             crypto::be64(m.request), crypto::be64(m.received)},
                            m.mac);
}

void SessionTable::encode_refused(std::optional<std::uint64_t> request,
                                  std::vector<std::uint8_t>& reply) {
  wire::Refused refused;
  if (request) refused.request = *request;
  wire::encode_preamble(reply);
  wire::encode(refused, reply);
}

Session* SessionTable::route_migrate(Bytes initial, std::vector<std::uint8_t>& reply) const {
  const auto m = migrate_of(initial);
  if (m) {
    if (Session* s = find(m->token)) return s;  // the session checks the MAC itself
    (void)migrate_mac_ok(nullptr, *m);  // same work as a real check: one HMAC verification
  }
  encode_refused(m ? std::optional(m->request) : std::nullopt, reply);
  return nullptr;
}

Session* SessionTable::holder(Bytes initial, bool check_mac) const {
  const auto m = migrate_of(initial);
  Session* s = m ? find(m->token) : nullptr;
  return s && (!check_mac || migrate_mac_ok(s, *m)) ? s : nullptr;
}

MigrateVerdict SessionTable::admit_migrate(Bytes initial, const SourceKey& source, Time now,
                                           std::vector<std::uint8_t>& reply) {
  MigrateVerdict v;
  const auto m = migrate_of(initial);
  Session* s = m ? find(m->token) : nullptr;
  if (limiter_.limited(source, now)) {
    // Only a live token earns MAC work here; everything else is closed unchecked and unanswered.
    if (s && migrate_mac_ok(s, *m)) {
      v.session = s;
      return v;
    }
    v.dropped = true;
    v.log_dropped = limiter_.note_dropped(source, now);
    return v;
  }
  if (m && migrate_mac_ok(s, *m) && s) {
    v.session = s;
    return v;
  }
  encode_refused(m ? std::optional(m->request) : std::nullopt, reply);
  limiter_.note_refused(source, now);
  return v;
}

}  // namespace roam::core
