#include "core/session/session.hpp"

#include <algorithm>
#include <cstring>

namespace roam::core {

const char* state_name(State s) {
  switch (s) {
#define X(name, text) \
  case State::name: return text;
    ROAM_SESSION_STATES(X)
#undef X
  }
  return "unknown";
}

// --- FrameDecoder --------------------------------------------------------------------------

template <typename OnFrame, typename OnData>
Result<void> FrameDecoder::feed(Bytes in, OnFrame&& on_frame, OnData&& on_data) {
  std::size_t pos = 0;
  auto take_into_partial = [&](std::size_t want) {
    const std::size_t n = std::min(want - partial_.size(), in.size() - pos);
    partial_.insert(partial_.end(), in.begin() + static_cast<std::ptrdiff_t>(pos),
                    in.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
    return partial_.size() == want;
  };
  while (pos < in.size()) {
    switch (stage_) {
      case Stage::kPreamble: {
        const bool full = take_into_partial(wire::kPreambleSize);
        auto ok = wire::check_preamble(partial_);
        if (!ok && ok.error().code != Errc::kNeedMore) return ok;
        if (!full) continue;
        partial_.clear();
        stage_ = Stage::kHeader;
        break;
      }
      case Stage::kHeader: {
        if (!take_into_partial(wire::kFrameHeaderSize)) continue;
        auto h = wire::decode_header(partial_);
        if (!h) return tl::unexpected(h.error());
        if (sealed_only_ != (h->type == static_cast<std::uint8_t>(wire::FrameType::kSealed)))
          return fail(Errc::kProtocol, std::string(sealed_only_ ? "unencrypted " : "unexpected ") +
                                           wire::frame_type_name(h->type) +
                                           " frame on an encrypted path");
        if (h->type == static_cast<std::uint8_t>(wire::FrameType::kData)) {
          stage_ = Stage::kData;
          data_left_ = h->length;
          partial_.clear();
        } else if (h->length == 0) {
          auto r = on_frame(Frame{*h, partial_});
          partial_.clear();
          if (!r) return r;
        } else {
          stage_ = Stage::kControl;
          need_ = wire::kFrameHeaderSize + h->length;
          filled_ = wire::kFrameHeaderSize;
          partial_.resize(need_);  // not zero-filled: the reads below fill it
        }
        break;
      }
      case Stage::kControl: {
        const std::size_t n = std::min(need_ - filled_, in.size() - pos);
        std::memcpy(partial_.data() + filled_, in.data() + pos, n);
        pos += n;
        filled_ += n;
        if (filled_ < need_) continue;
        if (auto r = deliver_control(on_frame); !r) return r;
        break;
      }
      case Stage::kData: {
        const std::size_t n = std::min(data_left_, in.size() - pos);
        auto r = on_data(in.subspan(pos, n));
        pos += n;
        data_left_ -= n;
        if (data_left_ == 0) stage_ = Stage::kHeader;
        if (!r) return r;
        break;
      }
    }
  }
  return {};
}

Result<void> FrameDecoder::deliver_control(auto&& on_frame) {
  auto h = wire::decode_header(partial_);
  stage_ = Stage::kHeader;
  auto r = on_frame(Frame{*h, MutBytes(partial_.data(), need_)});
  partial_.clear();
  return r;
}

template <typename OnFrame>
Result<void> FrameDecoder::frame_read_directly(std::size_t n, OnFrame&& on_frame) {
  filled_ += std::min(n, need_ - filled_);
  if (filled_ < need_) return {};
  return deliver_control(on_frame);
}

namespace {

// --encrypt: DATA bytes per sealed frame, the largest DATA payload as on a plain path. Each is
// sealed whole into the path's output queue before it is written and must be received whole
// before it is opened, so this bounds both per-path buffers. The per-frame work (a sendmsg, the
// nonce and AEAD set-up, a poll wake-up on the receiver) is paid once per 256 KiB.
constexpr std::size_t kMaxSealedData = wire::kMaxDataPayload;

// "Stop feeding; the handler already dealt with it."
tl::unexpected<Error> stop() { return fail(Errc::kNeedMore); }

std::string fmt_duration(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace

// --- construction --------------------------------------------------------------------------

thread_local std::array<std::uint8_t, 16 * 1024> Session::staging_{};

Session::Session(const SessionConfig& cfg, crypto::Rng& rng, bool client, Time now)
    : cfg_(cfg),
      rng_(rng),
      client_(client),
      state_(client ? State::kClientHandshake : State::kServerHandshake),
      tx_(cfg.handshake.buffer_cap),
      rx_(cfg.handshake.buffer_cap),
      created_(now),
      last_heard_(now),
      last_progress_(now),
      last_sent_(now),
      lost_at_(now),
      last_tick_(now) {
  tx_.set_unsent_limit(cfg.unsent_limit);
}

Session::~Session() = default;

std::unique_ptr<Session> Session::client(const SessionConfig& cfg, crypto::Rng& rng, Time now) {
  auto s = std::make_unique<Session>(cfg, rng, true, now);
  s->client_hs_ = std::make_unique<ClientHandshake>(cfg.handshake, rng);
  return s;
}

std::unique_ptr<Session> Session::accept(const SessionConfig& cfg, crypto::Rng& rng, PathId path,
                                         Bytes initial, Time now) {
  auto s = std::make_unique<Session>(cfg, rng, false, now);
  s->server_hs_ = std::make_unique<ServerHandshake>(cfg.handshake, rng);
  Path& p = s->add_path(path, PathRole::kHandshake, now);
  s->feed(p, initial, now);
  return s;
}

// --- paths ---------------------------------------------------------------------------------

Session::Path* Session::find(PathId id) {
  for (auto& p : paths_)
    if (p.id == id) return &p;
  return nullptr;
}
const Session::Path* Session::find(PathId id) const {
  for (const auto& p : paths_)
    if (p.id == id) return &p;
  return nullptr;
}

std::vector<PathId> Session::path_ids() const {
  std::vector<PathId> out;
  for (const auto& p : paths_) out.push_back(p.id);
  return out;
}

Session::Path& Session::add_path(PathId id, PathRole role, Time now) {
  // paths_ is a deque: references to other paths stay valid while we add one.
  paths_.emplace_back();
  Path& p = paths_.back();
  p.id = id;
  p.role = role;
  p.opened = now;
  wire::encode_preamble(p.ctrl);
  return p;
}

void Session::close_path(Path& p, bool flush) {
  if (active_ && *active_ == p.id) active_.reset();
  // A challenged attempt that fails takes the old path draining beside it along: the RESPONSE
  // may have reached the server, which then no longer sends there.
  const bool drained_by = client_ && p.role == PathRole::kAttempt && p.responded;
  p.role = PathRole::kClosing;
  if (drained_by) stop_draining();
  const bool frame_started =
      p.hdr_left + p.payload_left > 0 && p.hdr_left < wire::kFrameHeaderSize;
  if (!flush) {
    p.ctrl.clear();
    p.ctrl_sent = 0;
  }
  // With `flush`, a DATA frame already begun is finished first so that the queued control
  // frames (CLOSE, final ACK) stay parseable; otherwise nothing more of it is sent.
  if (!flush || !frame_started) {
    p.hdr_left = 0;
    p.payload_left = 0;
  }
}

void Session::forget_path(PathId id) {
  for (auto it = paths_.begin(); it != paths_.end(); ++it) {
    if (it->id != id) continue;
    if (active_ && *active_ == id) active_.reset();
    paths_.erase(it);
    return;
  }
}

bool Session::path_done(PathId id) const {
  const Path* p = find(id);
  if (!p) return true;
  if (p->role != PathRole::kClosing) return false;
  return p->ctrl_sent >= p->ctrl.size() && p->hdr_left + p->payload_left == 0;
}

void Session::attach_path(PathId id, Time now) {
  if (!client_ || find(id)) return;
  if (state_ == State::kClosed) {
    add_path(id, PathRole::kClosing, now).ctrl.clear();
    return;
  }
  if (state_ == State::kClientHandshake) {
    if (!paths_.empty()) {  // only one handshake connection
      add_path(id, PathRole::kClosing, now).ctrl.clear();
      return;
    }
    Path& p = add_path(id, PathRole::kHandshake, now);
    client_hs_->write_hello(p.ctrl);
    return;
  }
  // A migrate attempt: it supersedes every older attempt.
  for (auto& other : paths_)
    if (other.role == PathRole::kAttempt) close_path(other, false);
  if (epoch_exhausted(request_ + 1)) {
    // AES-256-GCM: the path's epoch would not fit the 32 bits of the nonce (PROTOCOL.md).
    add_path(id, PathRole::kClosing, now).ctrl.clear();
    close_session(false,
                  Error{Errc::kProtocol, "no migrate request number left for AES-256-GCM nonces"},
                  now, true);
    return;
  }
  Path& p = add_path(id, PathRole::kAttempt, now);
  p.request = ++request_;
  wire::Migrate m;
  m.token = negotiated_.token;
  m.request = p.request;
  m.received = rx_.received();
  m.mac = crypto::mac(negotiated_.keys.mac_c2s,
                      {mac_label(wire::FrameType::kMigrate), m.token, crypto::be64(m.request),
                       crypto::be64(m.received)});
  wire::encode(m, p.ctrl);
  if (!active_) state_ = State::kClientMigrating;
}

void Session::attach_server_path(PathId id, Bytes initial, Time now) {
  if (client_ || find(id)) return;
  Path& p = add_path(id, PathRole::kProbation, now);
  if ((state_ == State::kClosed && !lingering_) || state_ == State::kServerHandshake) {
    // Not (or no longer) resumable: answer like an unknown token, echoing the request number.
    wire::Refused refused;
    const Bytes payload =
        initial.subspan(std::min(initial.size(), wire::kPreambleSize + wire::kFrameHeaderSize));
    if (auto m = wire::parse_migrate(payload.first(std::min(payload.size(), wire::kMigrateSize))))
      refused.request = m->request;
    wire::encode(refused, p.ctrl);
    close_path(p, true);
    return;
  }
  feed(p, initial, now);
}

bool Session::data_direct(const Path& p) const {
  return p.role != PathRole::kClosing && state_ != State::kClosed && receives_data(p) && !resent_ &&
         !rx_.fin_received();
}

MutBytes Session::recv_space(PathId id) {
  Path* p = find(id);
  direct_read_.reset();
  direct_frame_.reset();
  if (p && p->decoder.data_remaining() > 0 && data_direct(*p)) {
    MutBytes direct = rx_.space(p->decoder.data_remaining());
    if (!direct.empty()) {
      direct_read_ = id;
      return direct;
    }
  }
  // --encrypt: the rest of a large SEALED frame goes straight into its frame buffer instead of
  // through staging_ (one copy and several reads fewer per frame).
  if (p && path_live(*p)) {
    MutBytes frame = p->decoder.frame_space();
    if (frame.size() >= staging_.size() / 4) {
      direct_frame_ = id;
      return frame;
    }
  }
  return MutBytes(staging_);
}

void Session::on_received(PathId id, std::size_t n, Time now) {
  Path* p = find(id);
  const bool direct = direct_read_ && *direct_read_ == id;
  const bool frame = direct_frame_ && *direct_frame_ == id;
  direct_read_.reset();
  direct_frame_.reset();
  if (!p || n == 0) return;
  p->bytes_in += n;
  if (direct) {
    rx_.commit(n);
    p->decoder.data_read_directly(n);
    last_heard_ = last_progress_ = now;
    suspect_ = false;
    return;
  }
  if (frame) {
    if (!path_live(*p)) return;
    fed(*p, p->decoder.frame_read_directly(
                n, [&](const FrameDecoder::Frame& f) { return handle_frame(*p, f, now); }),
        now);
    return;
  }
  feed(*p, Bytes(staging_.data(), std::min(n, staging_.size())), now);
}

bool Session::path_live(const Path& p) const {
  if (p.role == PathRole::kClosing) return false;
  // A lingering server still runs the migrate exchange, and nothing else.
  return state_ != State::kClosed || (lingering_ && p.role == PathRole::kProbation);
}

void Session::feed(Path& p, Bytes in, Time now) {
  if (!path_live(p)) return;
  fed(p,
      p.decoder.feed(
          in, [&](const FrameDecoder::Frame& f) { return handle_frame(p, f, now); },
          [&](Bytes d) { return handle_data(p, d, now); }),
      now);
}

void Session::fed(Path& p, const Result<void>& r, Time now) {
  if (!r && r.error().code != Errc::kNeedMore) path_failed(p, now, r.error(), true);
}

void Session::on_path_error(PathId id, Time now, const std::string& why) {
  Path* p = find(id);
  if (!p) return;
  path_failed(*p, now, Error{Errc::kAborted, why}, false);
}

void Session::path_failed(Path& p, Time now, const Error& why, bool peer_fault) {
  switch (p.role) {
    case PathRole::kClosing:
      p.ctrl.clear();
      p.ctrl_sent = 0;
      return;
    case PathRole::kHandshake:
      if (peer_fault) {
        wire::Close c;
        c.code = static_cast<std::uint16_t>(why.code);
        c.reason = "handshake failed: " + why.detail;
        wire::encode(c, p.ctrl);
      }
      close_path(p, peer_fault);
      close_session(false, Error{why.code, "handshake failed: " + why.detail}, now, false);
      return;
    case PathRole::kActive:
      if (peer_fault) {
        close_session(false, why, now, true);
      } else {
        close_path(p, false);
        lose_active(now, why.detail);
      }
      return;
    case PathRole::kAttempt:
      close_path(p, false);
      connect_request_ = true;
      return;
    case PathRole::kProbation:
      close_path(p, false);
      check_finished(now);  // it may have been holding back a clean end
      return;
    case PathRole::kDraining:  // the session already moved on; what it lacks is resent
      close_path(p, false);
      return;
  }
}

void Session::lose_active(Time now, const std::string& why) {
  if (active_) {
    if (Path* old = find(*active_)) close_path(*old, false);
    active_.reset();
  }
  if (state_ == State::kClosed) return;
  lost_at_ = now;
  bool attempt_in_flight = false;
  for (const auto& p : paths_)
    if (p.role == PathRole::kAttempt) attempt_in_flight = true;
  if (client_) {
    state_ = attempt_in_flight ? State::kClientMigrating : State::kClientWait;
    connect_request_ = !attempt_in_flight;
    next_probe_ = now + cfg_.probe_interval;
  } else {
    state_ = State::kServerWait;
  }
  Event e{EventType::kPathLost};
  e.error = Error{Errc::kAborted, why};
  emit(std::move(e));
}

// --- frames --------------------------------------------------------------------------------

bool Session::data_allowed(const Path& p) const {
  return p.role == PathRole::kActive &&
         (state_ == State::kClientEstablished || state_ == State::kServerEstablished);
}

bool Session::receives_data(const Path& p) const {
  return data_allowed(p) || (p.role == PathRole::kDraining && state_ == State::kClientMigrating);
}

void Session::stop_draining() {
  for (auto& p : paths_)
    if (p.role == PathRole::kDraining) close_path(p, false);
}

// Client after a make-before-break adoption: `n` more positions (DATA bytes, or 1 for FIN) of the
// server's resend arrived on the new path. Once the resend has caught up with what the old path
// delivered, ACKs are no longer capped; the one held back is sent now.
void Session::note_resent(std::uint64_t n, Time now) {
  if (!resent_) return;
  *resent_ += n;
  if (*resent_ < rx_.received()) return;
  resent_.reset();
  if (active_ && ack_sent_ != rx_.consumed())
    if (Path* a = find(*active_); a && data_allowed(*a)) queue_ack(*a, now);
  check_finished(now);
}

Result<void> Session::handle_data(Path& p, Bytes payload, Time now) {
  if (p.role == PathRole::kClosing || state_ == State::kClosed) return stop();
  if (!receives_data(p)) return fail(Errc::kProtocol, "DATA before the session was established");
  last_heard_ = last_progress_ = now;
  suspect_ = false;
  // The path carrying the server's resend drops what we already hold, also while it drains
  // beside a newer attempt.
  if (!resent_ || p.id != resend_path_) return rx_.append(payload);
  const std::size_t dup = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, payload.size()));
  skip_ -= dup;
  if (auto ok = rx_.append(payload.subspan(dup)); !ok) return ok;
  note_resent(payload.size(), now);
  return {};
}

Result<void> Session::handle_sealed(Path& p, const FrameDecoder::Frame& f, Time now) {
  // A DATA payload is decrypted straight into the receive ring when it fits there contiguously
  // and needs no look first (the conditions of recv_space's direct reads); anything else is
  // opened in place, in the decoder's frame buffer. No copy and no allocation either way.
  MutBytes into;
  const std::size_t n = Sealer::payload_size(f.bytes);
  if (n > 0 && f.bytes[wire::kFrameHeaderSize] == static_cast<std::uint8_t>(wire::FrameType::kData) &&
      data_direct(p)) {
    MutBytes space = rx_.space(n);
    if (space.size() == n) into = space;
  }
  auto opened = p.seal_in.open(f.bytes, into);
  if (!opened) return tl::unexpected(opened.error());
  if (!into.empty()) {
    rx_.commit(n);
    last_heard_ = last_progress_ = now;
    suspect_ = false;
    return {};
  }
  auto h = wire::decode_header((*opened));
  if (!h) return tl::unexpected(h.error());
  if (h->type == static_cast<std::uint8_t>(wire::FrameType::kData))
    return handle_data(p, (*opened).subspan(wire::kFrameHeaderSize), now);
  return handle_frame(p, FrameDecoder::Frame{*h, (*opened)}, now);  // never SEALED again
}

bool Session::epoch_exhausted(std::uint64_t epoch) const {
  return (negotiated_.features & wire::kFeatureEncrypt) &&
         negotiated_.aead == crypto::Aead::kAes256Gcm && epoch > crypto::kMaxGcmEpoch;
}

void Session::start_sealing(Path& p, std::uint64_t epoch, bool out, bool in) {
  if (!(negotiated_.features & wire::kFeatureEncrypt)) return;
  const auto& k = negotiated_.keys;
  if (out) p.seal_out.start(negotiated_.aead, client_ ? k.aead_c2s : k.aead_s2c, epoch);
  if (in) {
    p.seal_in.start(negotiated_.aead, client_ ? k.aead_s2c : k.aead_c2s, epoch);
    p.decoder.require_sealed();
  }
}

template <typename M>
void Session::send_frame(Path& p, const M& m) {
  if (!p.seal_out.on()) {
    wire::encode(m, p.ctrl);
    return;
  }
  static thread_local std::vector<std::uint8_t> plain;
  plain.clear();
  wire::encode(m, plain);
  p.seal_out.seal(static_cast<wire::FrameType>(plain[0]),
                  Bytes(plain).subspan(wire::kFrameHeaderSize), p.ctrl);
}

Result<void> Session::handle_frame(Path& p, const FrameDecoder::Frame& f, Time now) {
  if (!path_live(p)) return stop();
  using wire::FrameType;
  const auto type = static_cast<FrameType>(f.header.type);
  const Bytes payload = f.bytes.subspan(wire::kFrameHeaderSize);
  if (type == FrameType::kSealed) return handle_sealed(p, f, now);

  // CLOSE ends the session only on the paths where the peer can send it: the server never sends
  // one on a migrate attempt, so there it is treated like any unexpected frame (a failed attempt).
  if (type == FrameType::kClose && (p.role == PathRole::kActive || p.role == PathRole::kHandshake ||
                                    p.role == PathRole::kDraining)) {
    auto c = wire::parse_close(payload);
    if (!c) return tl::unexpected(c.error());
    close_session(false, Error{Errc::kAborted, "peer closed the session: " + c->reason}, now,
                  false);
    return stop();
  }

  switch (p.role) {
    case PathRole::kHandshake:
      if (client_) {
        const FrameType want =
            client_hs_->awaiting_server_key() ? FrameType::kServerKey : FrameType::kHelloReply;
        if (type != want)
          return fail(Errc::kProtocol, std::string("expected ") +
                                           wire::frame_type_name(static_cast<std::uint8_t>(want)) +
                                           ", got " + wire::frame_type_name(f.header.type));
        auto n = type == FrameType::kServerKey ? client_hs_->on_server_key(f.bytes, p.ctrl)
                                               : client_hs_->on_hello_reply(f.bytes, p.ctrl);
        if (!n && n.error().code == Errc::kNeedMore) return {};  // SERVER_KEY follows
        if (!n) return tl::unexpected(n.error());
        negotiated_ = *n;
        p.role = PathRole::kActive;
        active_ = p.id;
        start_sealing(p, 0, true, true);
        enter_established(now);
        return {};
      }
      if (type == FrameType::kHello) return server_hs_->on_hello(f.bytes, p.ctrl);
      if (type == FrameType::kFinish) {
        auto n = server_hs_->on_finish(f.bytes);
        if (!n) return tl::unexpected(n.error());
        negotiated_ = *n;
        p.role = PathRole::kActive;
        active_ = p.id;
        start_sealing(p, 0, true, true);
        enter_established(now);
        return {};
      }
      return fail(Errc::kProtocol, std::string("unexpected ") +
                                       wire::frame_type_name(f.header.type) + " in handshake");
    case PathRole::kActive:
    case PathRole::kDraining:
      return on_established_frame(p, f, now);
    case PathRole::kAttempt:
      return client_on_migrate_reply(p, f, now);
    case PathRole::kProbation:
      if (type == FrameType::kMigrate && p.request == 0) {
        auto m = wire::parse_migrate(payload);
        if (!m) {
          wire::encode(wire::Refused{}, p.ctrl);
          close_path(p, true);
          return stop();
        }
        server_on_migrate(p, *m, now);
        return {};
      }
      if (type == FrameType::kResponse && p.request != 0) return server_on_response(p, f, now);
      return fail(Errc::kProtocol, "unexpected frame on a path under validation");
    case PathRole::kClosing:
      return stop();
  }
  return stop();
}

Result<void> Session::on_established_frame(Path& p, const FrameDecoder::Frame& f, Time now) {
  using wire::FrameType;
  const Bytes payload = f.bytes.subspan(wire::kFrameHeaderSize);
  last_heard_ = last_progress_ = now;
  suspect_ = false;
  switch (static_cast<FrameType>(f.header.type)) {
    case FrameType::kAck: {
      auto a = wire::parse_ack(payload);
      if (!a) return tl::unexpected(a.error());
      if (auto ok = tx_.on_ack(a->consumed); !ok) return ok;
      check_finished(now);
      return {};
    }
    case FrameType::kFin: {
      auto fin = wire::parse_fin(payload);
      if (!fin) return tl::unexpected(fin.error());
      if (auto ok = rx_.on_fin(fin->offset); !ok) return ok;
      if (resent_ && p.id == resend_path_) note_resent(1, now);
      return {};
    }
    default:
      return fail(Errc::kProtocol, std::string("unexpected ") +
                                       wire::frame_type_name(f.header.type) + " on an established path");
  }
}

void Session::enter_established(Time now) {
  state_ = client_ ? State::kClientEstablished : State::kServerEstablished;
  established_once_ = true;
  last_heard_ = last_progress_ = last_sent_ = now;
  suspect_ = false;
  ack_sent_ = rx_.consumed();
  client_hs_.reset();
  server_hs_.reset();
  emit(Event{EventType::kEstablished});
}

// --- migration: client ---------------------------------------------------------------------

Result<void> Session::client_on_migrate_reply(Path& p, const FrameDecoder::Frame& f, Time now) {
  using wire::FrameType;
  const Bytes payload = f.bytes.subspan(wire::kFrameHeaderSize);
  const auto& k = negotiated_.keys;
  const auto& tok = negotiated_.token;
  if (p.request != request_) {  // only the newest attempt is heeded
    close_path(p, false);
    return stop();
  }
  switch (static_cast<FrameType>(f.header.type)) {
    case FrameType::kChallenge: {
      auto c = wire::parse_challenge(payload);
      if (!c) return tl::unexpected(c.error());
      if (p.responded || c->request != p.request) return fail(Errc::kProtocol, "unexpected CHALLENGE");
      if (!crypto::mac_verify(k.mac_s2c,
                              {mac_label(FrameType::kChallenge), tok, crypto::be64(c->request),
                               c->nonce},
                              c->mac))
        return fail(Errc::kBadMac, "CHALLENGE MAC does not verify");
      last_heard_ = now;
      refusals_ = 0;
      // Commit to this path. The old one (make-before-break) is no longer written, but it is read
      // until ACCEPT: what the server sent there before our RESPONSE reached it arrives at once
      // instead of a round trip later, and handle_data() drops the resent copy.
      if (active_) {
        if (Path* old = find(*active_)) old->role = PathRole::kDraining;
        active_.reset();
        state_ = State::kClientMigrating;
        lost_at_ = p.opened;  // make-before-break: the handover started with this attempt
      }
      wire::Response r;
      r.request = c->request;
      r.received = rx_.received();
      r.mac = crypto::mac(k.mac_c2s, {mac_label(FrameType::kResponse), tok, crypto::be64(r.request),
                                      c->nonce, crypto::be64(r.received)});
      wire::encode(r, p.ctrl);
      p.responded = true;
      p.reported = r.received;
      return {};
    }
    case FrameType::kAccept: {
      auto a = wire::parse_accept(payload);
      if (!a) return tl::unexpected(a.error());
      if (!p.responded || a->request != p.request) return fail(Errc::kProtocol, "unexpected ACCEPT");
      if (!crypto::mac_verify(k.mac_s2c,
                              {mac_label(FrameType::kAccept), tok, crypto::be64(a->request),
                               crypto::be64(a->received)},
                              a->mac))
        return fail(Errc::kBadMac, "ACCEPT MAC does not verify");
      if (auto ok = tx_.rewind_to(a->received); !ok) {
        close_session(false, ok.error(), now, true);
        return stop();
      }
      for (auto& other : paths_)
        if (other.id != p.id && other.role == PathRole::kAttempt) close_path(other, false);
      // The old path is never read again: from here on the server resends from what RESPONSE
      // named, and whatever the old path delivered past that is dropped from the resend.
      stop_draining();
      skip_ = 0;
      resent_.reset();
      if (p.reported < rx_.received()) {
        const std::uint64_t data_end = rx_.received() - (rx_.fin_received() ? 1 : 0);
        skip_ = data_end > p.reported ? data_end - p.reported : 0;
        resent_ = p.reported;
        resend_path_ = p.id;
      }
      p.role = PathRole::kActive;
      active_ = p.id;
      state_ = State::kClientEstablished;
      ++migrations_;
      last_heard_ = last_progress_ = last_sent_ = now;
  suspect_ = false;
      Event e{EventType::kMigrated};
      e.path = p.id;
      e.took = now - lost_at_;
      e.request = p.request;
      emit(std::move(e));
      start_sealing(p, p.request, true, true);
      queue_ack(p, now);
      return {};
    }
    case FrameType::kStale: {
      auto s = wire::parse_stale(payload);
      if (!s) return tl::unexpected(s.error());
      if (s->request != p.request) return {};
      if (!crypto::mac_verify(k.mac_s2c,
                              {mac_label(FrameType::kStale), tok, crypto::be64(s->request),
                               crypto::be64(s->newest)},
                              s->mac))
        return fail(Errc::kBadMac, "STALE MAC does not verify");
      last_heard_ = now;
      request_ = std::max(request_, s->newest);
      close_path(p, false);
      connect_request_ = true;
      return stop();
    }
    case FrameType::kRefused: {
      auto r = wire::parse_refused(payload);
      if (!r) return tl::unexpected(r.error());
      if (r->request != p.request) return {};
      close_path(p, false);
      if (complete_) {
        close_session(true, Error{Errc::kAborted, "both directions ended"}, now, false);
        return stop();
      }
      if (++refusals_ >= 2) {
        close_session(false,
                      Error{Errc::kRefused,
                            "the server no longer knows this session (it restarted or the session "
                            "expired)"},
                      now, false);
      } else {
        connect_request_ = true;
      }
      return stop();
    }
    default:
      return fail(Errc::kProtocol, std::string("unexpected ") +
                                       wire::frame_type_name(f.header.type) + " during migration");
  }
}

// --- migration: server ---------------------------------------------------------------------

// Answers a well-MACed request that is not newer than the adopted one (or a replayed copy of one
// on probation) with an authenticated STALE, and closes that connection once it is written.
void Session::refuse_stale(Path& p, std::uint64_t request) {
  wire::Stale s;
  s.request = request;
  s.newest = request_;
  s.mac = crypto::mac(negotiated_.keys.mac_s2c,
                      {mac_label(wire::FrameType::kStale), negotiated_.token,
                       crypto::be64(s.request), crypto::be64(s.newest)});
  wire::encode(s, p.ctrl);
  close_path(p, true);
}

// ACCEPT with our received offset (final: the old path is no longer read), then our ACK again: the
// last one may have died with the old path, and a sender blocked on a full retention buffer would
// otherwise stall until the next heartbeat.
void Session::queue_accept(Path& p, std::uint64_t request, Time now) {
  wire::Accept a;
  a.request = request;
  a.received = rx_.received();
  a.mac = crypto::mac(negotiated_.keys.mac_s2c,
                      {mac_label(wire::FrameType::kAccept), negotiated_.token,
                       crypto::be64(a.request), crypto::be64(a.received)});
  wire::encode(a, p.ctrl);
  start_sealing(p, request, true, false);  // what follows ACCEPT on this path is sealed
  queue_ack(p, now);
}

void Session::server_on_migrate(Path& p, const wire::Migrate& m, Time now) {
  using wire::FrameType;
  const auto& k = negotiated_.keys;
  const auto& tok = negotiated_.token;
  const bool mac_ok = crypto::mac_verify(
      k.mac_c2s,
      {mac_label(FrameType::kMigrate), m.token, crypto::be64(m.request), crypto::be64(m.received)},
      m.mac);
  // An epoch beyond AES-256-GCM's 32 bits can never be sealed: such a request is refused (ours
  // end the session before they would send it).
  if (!mac_ok || !crypto::equal_ct(m.token, tok) || epoch_exhausted(m.request)) {
    wire::Refused r;
    r.request = m.request;
    wire::encode(r, p.ctrl);
    close_path(p, true);
    return;
  }
  if (m.request <= request_) {
    refuse_stale(p, m.request);
    return;
  }
  last_heard_ = now;  // a MAC-verified request is a byte heard from the peer
  // A client never sends one request number twice, so a second copy of a number already on
  // probation is a replay: it gets STALE and cannot push the first arrival out. Competing
  // attempts with different numbers are bounded: the oldest is evicted.
  std::size_t on_probation = 0;
  Path* oldest = nullptr;
  for (auto& other : paths_) {
    if (other.role != PathRole::kProbation || other.request == 0 || other.id == p.id) continue;
    if (other.request == m.request) {
      refuse_stale(p, m.request);
      return;
    }
    ++on_probation;
    if (!oldest || other.opened < oldest->opened) oldest = &other;
  }
  if (oldest && on_probation + 1 > cfg_.max_probation_paths) close_path(*oldest, false);

  p.request = m.request;
  p.opened = now;
  rng_.fill(p.nonce);
  wire::Challenge c;
  c.request = m.request;
  c.nonce = p.nonce;
  c.mac = crypto::mac(k.mac_s2c,
                      {mac_label(FrameType::kChallenge), tok, crypto::be64(c.request), c.nonce});
  wire::encode(c, p.ctrl);
}

Result<void> Session::server_on_response(Path& p, const FrameDecoder::Frame& f, Time now) {
  using wire::FrameType;
  const auto& k = negotiated_.keys;
  const auto& tok = negotiated_.token;
  auto r = wire::parse_response(f.bytes.subspan(wire::kFrameHeaderSize));
  if (!r) return tl::unexpected(r.error());
  if (r->request != p.request) return fail(Errc::kProtocol, "RESPONSE for another request");
  if (!crypto::mac_verify(k.mac_c2s,
                          {mac_label(FrameType::kResponse), tok, crypto::be64(r->request), p.nonce,
                           crypto::be64(r->received)},
                          r->mac))
    return fail(Errc::kBadMac, "RESPONSE MAC does not verify");
  last_heard_ = now;
  if (r->request <= request_) {
    refuse_stale(p, r->request);
    return stop();
  }
  if (state_ == State::kClosed) {
    // Lingering after a clean end: the client only needs our ACK (it has everything else).
    request_ = r->request;
    queue_accept(p, r->request, now);
    close_path(p, true);
    return stop();
  }
  // Adopt atomically: the old path is never read again, so our received offset is final.
  request_ = r->request;
  const bool was_waiting = state_ == State::kServerWait;
  if (active_) {
    if (Path* old = find(*active_)) close_path(*old, false);
    active_.reset();
  }
  for (auto& other : paths_)
    if (other.id != p.id && other.role == PathRole::kProbation && other.request < r->request)
      close_path(other, false);
  if (auto ok = tx_.rewind_to(r->received); !ok) {
    close_session(false, ok.error(), now, false);
    return stop();
  }
  p.role = PathRole::kActive;
  active_ = p.id;
  start_sealing(p, r->request, false, true);  // the client seals what follows RESPONSE
  state_ = State::kServerEstablished;
  ++migrations_;
  last_heard_ = last_progress_ = last_sent_ = now;
  suspect_ = false;
  queue_accept(p, r->request, now);
  Event e{EventType::kMigrated};
  e.path = p.id;
  e.took = was_waiting ? now - lost_at_ : Duration{0};
  e.request = r->request;
  emit(std::move(e));
  check_finished(now);  // a clean end held back by this exchange (ACCEPT and ACK are flushed)
  return {};
}

// --- transmit ------------------------------------------------------------------------------

std::size_t Session::credit() const {
  const std::uint64_t limit = tx_.acked() + negotiated_.buffer_cap;
  return tx_.sent() >= limit ? 0 : static_cast<std::size_t>(limit - tx_.sent());
}

IoSlices Session::poll_transmit(PathId id, Time now) {
  IoSlices out;
  Path* p = find(id);
  if (!p || p->role == PathRole::kDraining) return out;  // read only, never written
  p->plan_ctrl = 0;
  auto add = [&](Bytes b) {
    if (!b.empty() && out.count < IoSlices::kMax) out.slice[out.count++] = b;
  };
  auto add_payload = [&](std::size_t n) {
    std::uint64_t off = tx_.sent();
    while (n > 0 && out.count < IoSlices::kMax) {
      Bytes b = tx_.data_at(off, n);
      if (b.empty()) break;
      add(b);
      off += b.size();
      n -= b.size();
    }
  };
  const bool frame_open = p->hdr_left + p->payload_left > 0;
  const bool frame_started = frame_open && p->hdr_left < wire::kFrameHeaderSize;
  if (frame_started) {
    add(Bytes(p->data_hdr + (wire::kFrameHeaderSize - p->hdr_left), p->hdr_left));
    add_payload(p->payload_left);
    return out;
  }
  if (!frame_open && data_allowed(*p) && tx_.fin_pending()) {
    send_frame(*p, wire::Fin{*tx_.fin_offset()});
    tx_.mark_fin_sent();
    last_sent_ = now;
  }
  if (p->seal_out.on() && !frame_open && data_allowed(*p) && p->ctrl_sent == p->ctrl.size()) {
    // --encrypt: one sealed DATA frame at a time, straight from the retention ring into ctrl.
    const std::size_t len = std::min({static_cast<std::size_t>(tx_.written() - tx_.sent()),
                                      credit(), kMaxSealedData});
    const Bytes b = len > 0 ? tx_.data_at(tx_.sent(), len) : Bytes{};
    if (!b.empty()) {
      p->seal_out.seal(wire::FrameType::kData, b, p->ctrl);
      tx_.mark_sent(b.size());
    }
  }
  if (p->ctrl_sent < p->ctrl.size()) {
    p->plan_ctrl = p->ctrl.size() - p->ctrl_sent;
    add(Bytes(p->ctrl.data() + p->ctrl_sent, p->plan_ctrl));
  }
  if (!frame_open && data_allowed(*p) && !p->seal_out.on()) {
    const std::uint64_t data_end = tx_.written();
    const std::size_t unsent =
        tx_.sent() < data_end ? static_cast<std::size_t>(data_end - tx_.sent()) : 0;
    const std::size_t len = std::min({unsent, credit(), wire::kMaxDataPayload});
    if (len > 0) {
      wire::encode_header(wire::FrameType::kData, static_cast<std::uint32_t>(len), p->data_hdr);
      p->hdr_left = wire::kFrameHeaderSize;
      p->payload_left = len;
    }
  }
  if (p->hdr_left + p->payload_left > 0) {
    add(Bytes(p->data_hdr + (wire::kFrameHeaderSize - p->hdr_left), p->hdr_left));
    add_payload(p->payload_left);
  }
  return out;
}

void Session::on_transmitted(PathId id, std::size_t n, Time now) {
  Path* p = find(id);
  if (!p || n == 0) return;
  p->bytes_out += n;
  const std::size_t c = std::min(n, p->plan_ctrl);
  p->ctrl_sent += c;
  p->plan_ctrl -= c;
  n -= c;
  if (p->ctrl_sent == p->ctrl.size() && p->role != PathRole::kClosing) {
    p->ctrl.clear();
    p->ctrl_sent = 0;
  }
  const std::size_t h = std::min(n, p->hdr_left);
  p->hdr_left -= h;
  n -= h;
  const std::size_t d = std::min(n, p->payload_left);
  p->payload_left -= d;
  if (d > 0) tx_.mark_sent(d);
  if (active_ && *active_ == id) last_sent_ = now;
}

bool Session::wants_write(PathId id) const {
  const Path* p = find(id);
  if (!p || p->role == PathRole::kDraining) return false;
  if (p->ctrl_sent < p->ctrl.size() || p->hdr_left + p->payload_left > 0) return true;
  if (!data_allowed(*p)) return false;
  if (tx_.fin_pending()) return true;
  return tx_.sent() < tx_.written() && credit() > 0;
}

void Session::note_transport_progress(PathId id, Time now) {
  if (active_ && *active_ == id) {
    last_progress_ = std::max(last_progress_, now);
    suspect_ = false;
  }
}

// --- application ---------------------------------------------------------------------------

std::uint64_t Session::ack_point() const {
  return resent_ ? std::min(rx_.consumed(), *resent_) : rx_.consumed();
}

void Session::queue_ack(Path& p, Time now) {
  ack_sent_ = ack_point();
  send_frame(p, wire::Ack{ack_sent_});
  last_sent_ = now;
}

void Session::maybe_ack(Time now) {
  if (!active_ || state_ == State::kClosed) return;
  Path* p = find(*active_);
  if (!p || !data_allowed(*p)) return;
  const std::uint64_t threshold = std::max<std::uint64_t>(
      1, std::min<std::uint64_t>(negotiated_.buffer_cap / 4, cfg_.ack_every));
  if (ack_point() > ack_sent_ && ack_point() - ack_sent_ >= threshold) queue_ack(*p, now);
}

void Session::consume(std::size_t n, Time now) {
  rx_.consume(n);
  maybe_ack(now);
}

void Session::consume_eof(Time now) {
  if (!rx_.at_eof() || rx_.eof_consumed()) return;
  rx_.consume_eof();
  if (active_)
    if (Path* p = find(*active_); p && data_allowed(*p)) queue_ack(*p, now);
  check_finished(now);
}

void Session::check_finished(Time now) {
  if (state_ == State::kClosed) return;
  if (!tx_.all_acked() || !rx_.eof_consumed() || ack_sent_ != rx_.consumed()) return;
  // A challenged client has stopped reading the old path, so our last ACK may have died there:
  // finish only once the exchange resolves (adoption repeats the ACK on the new path), or the
  // client would be left without it and find the session gone (REFUSED) instead of ended.
  if (!client_)
    for (const auto& p : paths_)
      if (p.role == PathRole::kProbation && p.request != 0) return;
  if (client_) {
    // The server may still lack our last ACK: end when it closes its side (on_path_eof), or when
    // it no longer knows the session (it ended cleanly and stopped lingering).
    complete_ = true;
    return;
  }
  close_session(true, Error{Errc::kAborted, "both directions ended"}, now, false);
  lingering_ = true;
  linger_until_ = now + std::min(cfg_.linger, negotiated_.wait);
}

void Session::on_path_eof(PathId id, Time now) {
  Path* p = find(id);
  if (!p) return;
  if (client_ && complete_ && p->role == PathRole::kActive && state_ != State::kClosed) {
    close_path(*p, false);
    close_session(true, Error{Errc::kAborted, "both directions ended"}, now, false);
    return;
  }
  path_failed(*p, now, Error{Errc::kAborted, "connection closed by peer"}, false);
}

void Session::abort(const std::string& reason, Time now) {
  close_session(false, Error{Errc::kAborted, reason}, now, true);
}

void Session::close_session(bool clean, Error err, Time now, bool tell_peer) {
  (void)now;
  if (state_ == State::kClosed) return;
  if (tell_peer && active_) {
    if (Path* p = find(*active_)) {
      wire::Close c;
      c.code = static_cast<std::uint16_t>(err.code);
      c.reason = err.detail;
      send_frame(*p, c);
    }
  }
  state_ = State::kClosed;
  closed_clean_ = clean;
  close_error_ = err;
  // A lingering server keeps the session object, not its (empty) rings.
  tx_.release_memory();
  rx_.release_memory();
  for (auto& p : paths_) {
    if (p.role == PathRole::kClosing) continue;  // keeps a queued REFUSED/STALE/CLOSE
    const bool flush = (active_ && *active_ == p.id) || p.role == PathRole::kHandshake;
    close_path(p, flush);
  }
  active_.reset();
  Event e{EventType::kClosed};
  e.clean = clean;
  e.error = std::move(err);
  emit(std::move(e));
}

std::optional<Event> Session::poll_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

// --- time ----------------------------------------------------------------------------------

Duration Session::probe_delay(Time now) const {
  const Duration since = now - lost_at_;
  if (since < cfg_.fast_probe_period) return cfg_.probe_interval;
  return std::clamp<Duration>(since / 10, cfg_.probe_interval, cfg_.max_probe_interval);
}

Duration Session::path_timeout() const { return cfg_.heartbeat * cfg_.dead_after_beats; }

Duration Session::suspect_after() const { return cfg_.heartbeat + cfg_.heartbeat / 2; }

Time Session::next_deadline() const {
  Time t = Time::never();
  switch (state_) {
    case State::kClosed:
      if (!lingering_) return t;
      t = linger_until_;
      break;
    case State::kClientHandshake:
    case State::kServerHandshake:
      return created_ + cfg_.handshake_timeout;
    case State::kClientEstablished:
    case State::kServerEstablished:
      t = std::min(last_sent_ + cfg_.heartbeat, last_progress_ + path_timeout());
      // The housekeeping pass, while it has something to do: an ACK owed or ring storage to review.
      if (ack_point() > ack_sent_ || tx_.allocated() > 0 || rx_.allocated() > 0)
        t = std::min(t, last_tick_ + cfg_.heartbeat);
      if (client_) t = std::min(t, suspect_ ? next_probe_ : last_progress_ + suspect_after());
      break;
    case State::kClientWait:
    case State::kClientMigrating:
    case State::kServerWait:
      t = last_heard_ + negotiated_.wait;
      if (client_) t = std::min(t, next_probe_);
      break;
  }
  for (const auto& p : paths_) {
    if (p.role == PathRole::kAttempt) t = std::min(t, p.opened + cfg_.attempt_timeout);
    if (p.role == PathRole::kProbation) t = std::min(t, p.opened + cfg_.handshake_timeout);
  }
  return t;
}

void Session::on_timeout(Time now) {
  // A quiet path gives back its frame buffer (up to 256 KiB once it carried SEALED frames); a
  // busy one re-grows it at most once per heartbeat.
  for (auto& p : paths_) p.decoder.trim_memory();
  switch (state_) {
    case State::kClosed:
      if (lingering_ && now >= linger_until_) lingering_ = false;
      for (auto& p : paths_)
        if (p.role == PathRole::kProbation && now >= p.opened + cfg_.handshake_timeout)
          close_path(p, false);
      return;
    case State::kClientHandshake:
    case State::kServerHandshake:
      if (now >= created_ + cfg_.handshake_timeout)
        close_session(false,
                      Error{Errc::kTimeout, "handshake did not complete within " +
                                                fmt_duration(cfg_.handshake_timeout)},
                      now, false);
      return;
    case State::kClientEstablished:
    case State::kServerEstablished:
      if (now >= last_progress_ + path_timeout()) {
        lose_active(now, "nothing heard for " + fmt_duration(now - last_progress_));
        break;
      }
      if (now >= last_sent_ + cfg_.heartbeat && active_) {
        if (Path* p = find(*active_)) queue_ack(*p, now);
      }
      if (now >= last_tick_ + cfg_.heartbeat) {
        last_tick_ = now;
        // Consumed bytes are acknowledged with every heartbeat also while data flows (not only
        // every ACK threshold), so the peer retains about a heartbeat of a slow stream instead
        // of up to 256 KiB of it.
        if (active_ && ack_point() > ack_sent_)
          if (Path* p = find(*active_); p && data_allowed(*p)) queue_ack(*p, now);
        // Ring storage follows the working set: an idle ring is freed, one that stayed at most a
        // quarter full for a few heartbeats shrinks (ByteRing::trim).
        tx_.trim_memory();
        rx_.trim_memory();
      }
      // Silent for longer than a heartbeat: the path may be dying. Probe for a new one every
      // probe interval while keeping the old one (make-before-break), so that when an outage ends
      // the session resumes within one probe interval instead of after the dead-path timeout.
      if (client_ && now >= last_progress_ + suspect_after()) {
        if (!suspect_) {
          suspect_ = true;
          next_probe_ = now;
        }
        if (now >= next_probe_) {
          bool attempt_live = false;
          for (const auto& p : paths_)
            if (p.role == PathRole::kAttempt) attempt_live = true;
          if (!attempt_live) connect_request_ = true;
          next_probe_ = now + cfg_.probe_interval;
        }
      }
      break;
    case State::kClientWait:
    case State::kClientMigrating:
    case State::kServerWait:
      break;
  }
  if (state_ == State::kClientWait || state_ == State::kClientMigrating ||
      state_ == State::kServerWait) {
    if (now >= last_heard_ + negotiated_.wait && complete_) {
      close_session(true, Error{Errc::kAborted, "both directions ended"}, now, false);
      return;
    }
    if (now >= last_heard_ + negotiated_.wait) {
      close_session(false,
                    Error{Errc::kTimeout, "peer silent for " + fmt_duration(now - last_heard_) +
                                              ": migrate wait of " +
                                              fmt_duration(negotiated_.wait) + " expired"},
                    now, false);
      return;
    }
    if (client_ && now >= next_probe_) {
      bool attempt_live = false;
      for (const auto& p : paths_)
        if (p.role == PathRole::kAttempt) attempt_live = true;
      if (!attempt_live) connect_request_ = true;
      next_probe_ = now + probe_delay(now);
    }
  }
  for (auto& p : paths_) {
    if (p.role == PathRole::kAttempt && now >= p.opened + cfg_.attempt_timeout) {
      close_path(p, false);
      connect_request_ = true;
    }
    if (p.role == PathRole::kProbation && now >= p.opened + cfg_.handshake_timeout)
      close_path(p, false);
  }
  check_finished(now);  // an expired probation may have been holding back a clean end
}

bool Session::take_connect_request() {
  const bool r = connect_request_;
  connect_request_ = false;
  return r && state_ != State::kClosed && state_ != State::kClientHandshake && client_;
}

void Session::request_migration(Time now) {
  if (!client_ || state_ == State::kClosed || state_ == State::kClientHandshake) return;
  connect_request_ = true;
  next_probe_ = now + cfg_.probe_interval;
}

}  // namespace roam::core
