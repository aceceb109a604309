#include "sim/simulator.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <sstream>

namespace roam::sim {

namespace {

constexpr int kClient = 0;
constexpr int kServer = 1;

int idx(Side s) { return static_cast<int>(s); }
Side other(Side s) { return s == Side::kClient ? Side::kServer : Side::kClient; }

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A byte FIFO: a vector with a moving head, compacted now and then.
class ByteQueue {
 public:
  std::size_t size() const { return buf_.size() - head_; }
  bool empty() const { return size() == 0; }
  void push(const std::uint8_t* p, std::size_t n) { buf_.insert(buf_.end(), p, p + n); }
  void pop_into(std::uint8_t* out, std::size_t n) {
    std::memcpy(out, buf_.data() + head_, n);
    head_ += n;
    if (head_ == buf_.size()) {
      buf_.clear();
      head_ = 0;
    } else if (head_ > 64 * 1024 && head_ * 2 > buf_.size()) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    buf_.clear();
    head_ = 0;
  }

 private:
  std::vector<std::uint8_t> buf_;
  std::size_t head_ = 0;
};

}  // namespace

const char* side_name(Side s) { return s == Side::kClient ? "client" : "server"; }

// One direction of a link: writer's kernel send buffer → wire → reader's kernel receive buffer.
struct Simulator::Pipe {
  struct Segment {
    Time arrive;
    std::vector<std::uint8_t> bytes;
    bool fin = false;
  };
  ByteQueue snd;
  std::size_t snd_cap = 0;
  std::deque<Segment> wire;
  std::size_t in_flight = 0;
  ByteQueue rcv;
  std::size_t rcv_cap = 0;
  Time wire_free{};
  Duration delay{};
  std::uint64_t bps = 0;
  std::size_t mss = 0;
  bool fin_queued = false;   // the writer closed: FIN follows the send buffer
  bool fin_sent = false;
  bool fin_arrived = false;
  bool frozen = false;       // cut: nothing leaves the send buffer any more
  bool reader_gone = false;  // the reading end closed its socket: arrivals are dropped
};

// One side's socket on a link.
struct Simulator::End {
  bool open = false;      // the shell may use it
  bool closed = false;    // the shell closed it
  bool attached = false;  // the session knows this path
  std::optional<Time> error_at;
  Time io_ready{};
  std::vector<std::uint8_t> initial;  // server: bytes read before classify_first decided
};

struct Simulator::Link {
  LinkId id = 0;
  Duration delay{};
  Pipe c2s;
  Pipe s2c;
  End end[2];
  bool cut = false;
  Time connect_started{};
  Pipe& out(Side s) { return s == Side::kClient ? c2s : s2c; }
  Pipe& in(Side s) { return s == Side::kClient ? s2c : c2s; }
};

// --- setup ---------------------------------------------------------------------------------

Simulator::Simulator(const Options& o) : opt_(o), rng_(o.seed) {
  if (!core::crypto::init()) fail("libsodium failed to initialise");
  if (const char* t = std::getenv("ROAM_SIM_TRACE"); t && *t) trace_ = true;
  client_rng_ = std::make_unique<core::crypto::SeededRng>(splitmix64(o.seed ^ 0xC11E));
  server_rng_ = std::make_unique<core::crypto::SeededRng>(splitmix64(o.seed ^ 0x5E4E));
  table_rng_ = std::make_unique<core::crypto::SeededRng>(splitmix64(o.seed ^ 0x7AB1));
  table_ = std::make_unique<core::SessionTable>(*table_rng_);
  stream_key_[kClient] = splitmix64(o.seed * 2 + 1);
  stream_key_[kServer] = splitmix64(o.seed * 2 + 2);
  client_ = core::Session::client(opt_.client, *client_rng_, now_);
  open_link();
}

Simulator::~Simulator() = default;

std::vector<std::uint64_t> seeds(std::uint64_t base, std::size_t count) {
  if (const char* env = std::getenv("ROAM_SIM_SEED"); env && *env)
    return {std::strtoull(env, nullptr, 0)};
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(base + i);
  return out;
}

std::uint64_t Simulator::uniform(std::uint64_t lo, std::uint64_t hi) {
  if (hi <= lo) return lo;
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
}
Duration Simulator::uniform(Duration lo, Duration hi) {
  if (hi <= lo) return lo;
  return Duration(static_cast<Duration::rep>(
      uniform(static_cast<std::uint64_t>(lo.count()), static_cast<std::uint64_t>(hi.count()))));
}
bool Simulator::chance(double p) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p;
}

std::uint8_t Simulator::stream_byte(Side writer, std::uint64_t pos) const {
  const std::uint64_t w = splitmix64(stream_key_[idx(writer)] ^ ((pos >> 3) * 0xD6E8FEB86659FD93ull));
  return static_cast<std::uint8_t>(w >> (8 * (pos & 7)));
}

void Simulator::fail(const std::string& what) {
  std::ostringstream s;
  s << "seed " << opt_.seed << " t=" << ms(now_.since_epoch) << "ms: " << what;
  failures_.push_back(s.str());
}

void Simulator::log(const std::string& what) const {
  if (trace_) std::fprintf(stderr, "[%10.3f ms] %s\n", ms(now_.since_epoch), what.c_str());
}

Simulator::Link* Simulator::link(LinkId id) {
  auto it = links_.find(id);
  return it == links_.end() ? nullptr : it->second.get();
}

void Simulator::at(Time t, std::function<void()> fn) {
  actions_.push(Action{t, action_seq_++, std::move(fn)});
}

// --- links ---------------------------------------------------------------------------------

void Simulator::open_link() {
  auto l = std::make_unique<Link>();
  const LinkId id = next_link_++;
  l->id = id;
  l->delay = id > 1 && opt_.link_delay_max > opt_.link.delay
                 ? uniform(opt_.link.delay, opt_.link_delay_max)
                 : opt_.link.delay;
  for (Pipe* p : {&l->c2s, &l->s2c}) {
    p->delay = l->delay;
    p->bps = opt_.link.bytes_per_sec;
    p->mss = opt_.link.mss;
    p->snd_cap = opt_.random_kernel ? uniform(4096, std::max<std::size_t>(4096, opt_.link.sndbuf))
                                    : opt_.link.sndbuf;
    p->rcv_cap = opt_.random_kernel ? uniform(4096, std::max<std::size_t>(4096, opt_.link.rcvbuf))
                                    : opt_.link.rcvbuf;
  }
  l->connect_started = now_;
  const Duration rtt = 2 * l->delay;
  links_[id] = std::move(l);
  // The TCP connect takes one round trip; during a partition (or on a link cut while
  // connecting) it fails and the shell drops it without telling the session.
  at(now_ + rtt, [this, id] {
    Link* lk = link(id);
    if (!lk) return;
    if (lk->cut || partition_) {
      log("link " + std::to_string(id) + ": connect failed");
      links_.erase(id);
      return;
    }
    std::uint64_t others = 0;
    for (auto& [oid, ol] : links_)
      if (oid != id && ol->end[kClient].open && ol->end[kClient].attached &&
          client_->active_path() != std::optional<core::PathId>(oid))
        ++others;
    if (others > 0 && client_->established_once()) ++competing_attaches_;
    lk->end[kClient].open = true;
    lk->end[kServer].open = true;
    lk->end[kClient].attached = true;
    if (client_->established_once()) {
      Handover h;
      h.link = id;
      h.connect_started = lk->connect_started;
      h.attached = now_;
      h.client_rx0 = client_->bytes_received();
      h.server_rx0 = server_ ? server_->bytes_received() : 0;
      handovers_.push_back(h);
    }
    log("link " + std::to_string(id) + ": connected (delay " + std::to_string(ms(lk->delay)) +
        " ms), attach_path");
    client_->attach_path(id, now_);
  });
}

void Simulator::close_end(Link& l, Side side, bool graceful) {
  End& e = l.end[idx(side)];
  log(std::string(side_name(side)) + " closes link " + std::to_string(l.id) +
      (graceful ? "" : " (abort)"));
  e.open = false;
  e.closed = true;
  Pipe& out = l.out(side);
  if (graceful) {
    out.fin_queued = true;
  } else {
    out.snd.clear();
    out.frozen = true;
  }
  Pipe& in = l.in(side);
  in.reader_gone = true;
  in.rcv.clear();
}

void Simulator::cut(LinkId id, const CutSpec& spec) {
  Link* l = link(id);
  if (!l || l->cut) return;
  ++cuts_;
  l->cut = true;
  log("link " + std::to_string(id) + ": CUT (client error " +
      (spec.client_error ? std::to_string(ms(*spec.client_error)) + " ms" : "never") +
      ", server error " +
      (spec.server_error ? std::to_string(ms(*spec.server_error)) + " ms" : "never") + ")");
  for (Pipe* p : {&l->c2s, &l->s2c}) {
    p->wire.clear();
    p->in_flight = 0;
    p->rcv.clear();  // bytes the kernel accepted but the session never read are lost
    p->fin_arrived = false;
    p->frozen = true;
  }
  if (spec.client_error && l->end[kClient].open) l->end[kClient].error_at = now_ + *spec.client_error;
  if (spec.server_error && l->end[kServer].open) l->end[kServer].error_at = now_ + *spec.server_error;
}

CutSpec Simulator::random_cut_spec(double p_error, Duration max_after) {
  CutSpec s;
  if (chance(p_error)) s.client_error = uniform(Duration{0}, max_after);
  if (chance(p_error)) s.server_error = uniform(Duration{0}, max_after);
  return s;
}

std::vector<LinkId> Simulator::open_links() const {
  std::vector<LinkId> out;
  for (const auto& [id, l] : links_)
    if (!l->cut && (l->end[kClient].open || l->end[kServer].open)) out.push_back(id);
  return out;
}

std::optional<LinkId> Simulator::cut_target() const {
  if (auto a = client_->active_path()) {
    auto it = links_.find(*a);
    if (it != links_.end() && !it->second->cut) return *a;
  }
  auto open = open_links();
  if (open.empty()) return std::nullopt;
  return open.back();
}

void Simulator::set_partition(bool on) {
  partition_ = on;
  if (!on) return;
  for (auto& [id, l] : links_) cut(id, CutSpec{});
}

void Simulator::transmit(Pipe& p) {
  if (p.frozen) return;
  while (p.wire_free <= now_) {
    const Time start = std::max(now_, p.wire_free);
    if (!p.snd.empty()) {
      const std::size_t used = p.rcv.size() + p.in_flight;
      const std::size_t window = used >= p.rcv_cap ? 0 : p.rcv_cap - used;
      if (window == 0) return;
      const std::size_t n = std::min({p.snd.size(), p.mss, window});
      Pipe::Segment seg;
      seg.bytes.resize(n);
      p.snd.pop_into(seg.bytes.data(), n);
      const auto ser = Duration(static_cast<Duration::rep>(n * 1'000'000'000ull / p.bps));
      p.wire_free = start + ser;
      seg.arrive = p.wire_free + p.delay;
      p.in_flight += n;
      p.wire.push_back(std::move(seg));
    } else if (p.fin_queued && !p.fin_sent) {
      Pipe::Segment seg;
      seg.fin = true;
      seg.arrive = start + p.delay;
      p.fin_sent = true;
      p.wire.push_back(std::move(seg));
    } else {
      return;
    }
  }
}

void Simulator::deliver(Link& l) {
  for (Side writer : {Side::kClient, Side::kServer}) {
    Pipe& p = l.out(writer);
    bool progressed = false;
    while (!p.wire.empty() && p.wire.front().arrive <= now_) {
      Pipe::Segment& seg = p.wire.front();
      p.in_flight -= seg.bytes.size();
      if (!p.reader_gone) {
        if (seg.fin) {
          p.fin_arrived = true;
        } else {
          p.rcv.push(seg.bytes.data(), seg.bytes.size());
          progressed = true;
        }
      }
      p.wire.pop_front();
    }
    // The writer's TCP sees its bytes acknowledged (TCP_INFO progress).
    const End& e = l.end[idx(writer)];
    if (progressed && e.open && e.attached)
      if (core::Session* s = session_of(writer)) s->note_transport_progress(l.id, now_);
  }
}

// --- the shells ----------------------------------------------------------------------------

bool Simulator::pump_end(Link& l, Side side) {
  End& e = l.end[idx(side)];
  if (!e.open) return false;
  if (side == Side::kServer && !e.attached) return pump_server_unbound(l);
  core::Session* s = session_of(side);
  if (e.error_at && *e.error_at <= now_) {
    log(std::string(side_name(side)) + " error on link " + std::to_string(l.id));
    s->on_path_error(l.id, now_, "connection reset by the simulator's cut");
    s->forget_path(l.id);
    close_end(l, side, false);
    return true;
  }
  if (now_ < e.io_ready) return false;
  bool changed = false;
  Pipe& in = l.in(side);
  Pipe& out = l.out(side);
  if (!in.rcv.empty()) {
    core::MutBytes space = s->recv_space(l.id);
    if (space.empty()) {
      fail(std::string(side_name(side)) + ": recv_space() empty on a live path");
      return false;
    }
    std::size_t n = std::min(space.size(), in.rcv.size());
    if (opt_.partial_io) n = uniform(1, n);
    in.rcv.pop_into(space.data(), n);
    s->on_received(l.id, n, now_);
    stats_[idx(side)].last_rx = now_;
    changed = true;
  } else if (in.fin_arrived) {
    log(std::string(side_name(side)) + " EOF on link " + std::to_string(l.id));
    s->on_path_eof(l.id, now_);
    s->forget_path(l.id);
    close_end(l, side, true);
    return true;
  }
  const core::IoSlices sl = s->poll_transmit(l.id, now_);
  const std::size_t total = sl.total();
  const std::size_t room = out.snd_cap - std::min(out.snd_cap, out.snd.size());
  if (total > 0 && room > 0) {
    std::size_t n = std::min(total, room);
    if (opt_.partial_io && chance(0.5)) n = uniform(1, n);
    std::size_t left = n;
    for (std::size_t i = 0; i < sl.count && left > 0; ++i) {
      const std::size_t k = std::min(left, sl.slice[i].size());
      out.snd.push(sl.slice[i].data(), k);
      left -= k;
    }
    s->on_transmitted(l.id, n, now_);
    changed = true;
  }
  if (s->path_done(l.id)) {
    s->forget_path(l.id);
    close_end(l, side, true);
    return true;
  }
  if (changed && opt_.partial_io && chance(opt_.io_pause_prob))
    e.io_ready = now_ + uniform(Duration{1}, opt_.io_pause_max);
  return changed;
}

bool Simulator::pump_server_unbound(Link& l) {
  End& e = l.end[kServer];
  Pipe& in = l.in(Side::kServer);
  if (e.error_at && *e.error_at <= now_) {
    close_end(l, Side::kServer, false);
    return true;
  }
  if (now_ < e.io_ready) return false;
  if (in.rcv.empty()) {
    if (in.fin_arrived) {  // a probe that closed without a complete first frame
      close_end(l, Side::kServer, true);
      return true;
    }
    return false;
  }
  std::size_t n = in.rcv.size();
  if (opt_.partial_io) n = uniform(1, n);
  const std::size_t old = e.initial.size();
  e.initial.resize(old + n);
  in.rcv.pop_into(e.initial.data() + old, n);
  auto first = core::classify_first(e.initial);
  if (!first) {
    if (first.error().code == core::Errc::kNeedMore) return true;
    fail(std::string("server: first bytes rejected: ") + core::errc_name(first.error().code) +
         " " + first.error().detail);
    close_end(l, Side::kServer, true);
    return true;
  }
  if (first->type == core::wire::FrameType::kHello) {
    if (server_) {
      fail("server: a second HELLO");
      close_end(l, Side::kServer, true);
      return true;
    }
    server_ = core::Session::accept(opt_.server, *server_rng_, l.id, e.initial, now_);
    e.attached = true;
    stats_[kServer].last_rx = now_;
    return true;
  }
  std::vector<std::uint8_t> reply;
  if (core::Session* s = table_->route_migrate(e.initial, reply)) {
    s->attach_server_path(l.id, e.initial, now_);
    e.attached = true;
    return true;
  }
  ++refused_replies_;
  log("server shell: REFUSED on link " + std::to_string(l.id));
  Pipe& out = l.out(Side::kServer);
  out.snd.push(reply.data(), reply.size());
  close_end(l, Side::kServer, true);
  return true;
}

// --- the applications ----------------------------------------------------------------------

bool Simulator::pump_apps(Side side) {
  core::Session* s = session_of(side);
  if (!s) return false;
  bool changed = false;
  SideStats& st = stats_[idx(side)];
  AppState& a = app_[idx(side)];
  const AppParams& wp = side == Side::kClient ? opt_.c2s : opt_.s2c;
  const AppParams& rp = side == Side::kClient ? opt_.s2c : opt_.c2s;

  if (wp.pace > Duration{0}) {
    // One record at a time; a record that does not fit is finished as space appears (its delay
    // counts from its first byte).
    const std::uint64_t rec_end = std::min<std::uint64_t>(wp.bytes, (st.written / wp.record + 1) * wp.record);
    while (now_ >= a.write_wake && st.written < wp.bytes && s->can_write()) {
      core::MutBytes space = s->write_space();
      if (space.empty()) break;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(space.size(), rec_end - st.written));
      for (std::size_t i = 0; i < n; ++i) space[i] = stream_byte(side, st.written + i);
      if (st.written % wp.record == 0) st.record_written.push_back(now_);
      s->commit_write(n);
      st.written += n;
      changed = true;
      if (st.written == rec_end) {
        a.write_wake = (a.write_wake == Time{} ? now_ : a.write_wake) + wp.pace;
        break;
      }
    }
  } else if (now_ >= a.write_wake && st.written < wp.bytes) {
    core::MutBytes space = s->write_space();
    if (!space.empty()) {
      const std::size_t n = static_cast<std::size_t>(
          uniform(1, std::min<std::uint64_t>({space.size(), wp.bytes - st.written, wp.max_chunk})));
      for (std::size_t i = 0; i < n; ++i) space[i] = stream_byte(side, st.written + i);
      s->commit_write(n);
      st.written += n;
      changed = true;
      if (chance(wp.write_gap_prob)) a.write_wake = now_ + uniform(Duration{1}, wp.write_gap_max);
    }
  }
  if (wp.shutdown && st.written == wp.bytes && !st.shut && s->state() != core::State::kClosed) {
    s->shutdown_write();
    st.shut = true;
    changed = true;
  }

  if (now_ >= a.read_wake) {
    const core::Bytes r = s->readable();
    if (!r.empty()) {
      const std::size_t cap = std::min<std::size_t>(r.size(), rp.max_chunk);
      const std::size_t n = opt_.partial_io ? static_cast<std::size_t>(uniform(1, cap)) : cap;
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t want = stream_byte(other(side), st.read + i);
        if (r[i] != want) {
          fail(std::string(side_name(side)) + " reader: byte " + std::to_string(st.read + i) +
               " is " + std::to_string(r[i]) + ", expected " + std::to_string(want) +
               " (loss, duplication or reordering)");
          return false;
        }
      }
      if (st.read + n > rp.bytes) {
        fail(std::string(side_name(side)) + " reader: more bytes than the peer wrote");
        return false;
      }
      s->consume(n, now_);
      if (rp.pace > Duration{0}) {
        const SideStats& w = stats_[idx(other(side))];
        for (std::uint64_t end = (st.read / rp.record + 1) * rp.record; end <= st.read + n;
             end += rp.record) {
          const std::size_t k = static_cast<std::size_t>(end / rp.record - 1);
          if (k < w.record_written.size())
            st.record_delays.push_back({now_, now_ - w.record_written[k]});
        }
      }
      st.read += n;
      changed = true;
      if (chance(rp.stall_prob))
        a.read_wake = now_ + uniform(Duration{1ms}, rp.stall_max);
      else if (chance(rp.read_gap_prob))
        a.read_wake = now_ + uniform(Duration{1}, rp.read_gap_max);
    } else if (s->at_eof() && !st.eof) {
      if (st.read != rp.bytes)
        fail(std::string(side_name(side)) + " reader: EOF after " + std::to_string(st.read) +
             " of " + std::to_string(rp.bytes) + " bytes (truncation)");
      s->consume_eof(now_);
      st.eof = true;
      changed = true;
    }
  }
  return changed;
}

bool Simulator::pump_events(Side side) {
  core::Session* s = session_of(side);
  if (!s) return false;
  bool changed = false;
  SideStats& st = stats_[idx(side)];
  while (auto ev = s->poll_event()) {
    changed = true;
    static const char* const kNames[] = {"established", "path-lost", "migrated", "closed"};
    log(std::string(side_name(side)) + " event " + kNames[static_cast<int>(ev->type)] +
        " path=" + std::to_string(ev->path) + " clean=" + std::to_string(ev->clean) + " " +
        ev->error.detail + " state=" + core::state_name(s->state()));
    switch (ev->type) {
      case core::EventType::kEstablished:
        if (side == Side::kServer) table_->add(s);
        break;
      case core::EventType::kPathLost:
        st.path_lost_at.push_back(now_);
        break;
      case core::EventType::kMigrated:
        st.migrated_at.push_back(now_);
        break;
      case core::EventType::kClosed:
        if (st.closed) fail(std::string(side_name(side)) + ": a second kClosed event");
        st.closed = true;
        st.clean = ev->clean;
        st.close_code = ev->error.code;
        st.close_detail = ev->error.detail;
        st.closed_at = now_;
        // A server that ended cleanly lingers, still answering migrate requests.
        if (side == Side::kServer && !s->lingering()) table_->remove(s);
        break;
    }
  }
  return changed;
}

void Simulator::run_timeouts() {
  for (Side side : {Side::kClient, Side::kServer}) {
    core::Session* s = session_of(side);
    if (!s || (s->state() == core::State::kClosed && !s->lingering())) continue;
    if (s->next_deadline() <= now_) {
      s->on_timeout(now_);
      if (side == Side::kServer && s->state() == core::State::kClosed && !s->lingering())
        table_->remove(s);
      if (++timeouts_at_instant_ > 10000) {
        fail(std::string(side_name(side)) + ": next_deadline() stays at or before now after "
                                            "on_timeout() (livelock)");
        return;
      }
    }
  }
}

void Simulator::track() {
  for (Side side : {Side::kClient, Side::kServer}) {
    core::Session* s = session_of(side);
    if (!s) continue;
    SideStats& st = stats_[idx(side)];
    st.max_retained = std::max(st.max_retained, s->retained());
    st.max_readable = std::max(st.max_readable, s->readable().size());
  }
  if (!handovers_.empty()) {
    Handover& h = handovers_.back();
    if (!h.client_first && client_->bytes_received() > h.client_rx0) h.client_first = now_;
    if (!h.server_first && server_ && server_->bytes_received() > h.server_rx0)
      h.server_first = now_;
  }
}

bool Simulator::pump_once() {
  bool changed = false;
  std::vector<LinkId> ids;
  ids.reserve(links_.size());
  for (auto& [id, l] : links_) ids.push_back(id);
  for (LinkId id : ids) {
    for (Side side : {Side::kClient, Side::kServer}) {
      Link* l = link(id);
      if (!l) break;
      if (pump_end(*l, side)) changed = true;
    }
    if (Link* l = link(id)) {
      transmit(l->c2s);
      transmit(l->s2c);
    }
  }
  for (Side side : {Side::kClient, Side::kServer}) {
    if (pump_apps(side)) changed = true;
    if (pump_events(side)) changed = true;
  }
  if (client_->take_connect_request()) {
    open_link();
    changed = true;
  }
  run_timeouts();
  track();
  return changed;
}

void Simulator::process_instant() {
  if (now_ != last_instant_) {
    last_instant_ = now_;
    same_instant_steps_ = 0;
    timeouts_at_instant_ = 0;
  } else if (++same_instant_steps_ > 100000) {
    fail("time does not advance (livelock)");
    return;
  }
  for (auto& [id, l] : links_) deliver(*l);
  while (!actions_.empty() && actions_.top().t <= now_) {
    auto fn = actions_.top().fn;
    actions_.pop();
    fn();
  }
  run_timeouts();
  for (int i = 0;; ++i) {
    if (i > 1'000'000) {
      fail("the shells never settle at one instant (livelock)");
      return;
    }
    if (!pump_once() || failed()) break;
  }
  for (auto it = links_.begin(); it != links_.end();) {
    const Link& l = *it->second;
    const bool connecting = !l.end[kClient].open && !l.end[kClient].closed;
    if (!connecting && l.end[kClient].closed && l.end[kServer].closed)
      it = links_.erase(it);
    else
      ++it;
  }
}

Time Simulator::next_event_time() const {
  Time t = Time::never();
  if (!actions_.empty()) t = std::min(t, actions_.top().t);
  for (const core::Session* s : {client_.get(), server_.get()})
    if (s && (s->state() != core::State::kClosed || s->lingering()))
      t = std::min(t, s->next_deadline());
  for (const auto& [id, l] : links_) {
    for (const Pipe* p : {&l->c2s, &l->s2c}) {
      if (!p->wire.empty()) t = std::min(t, p->wire.front().arrive);
      if (!p->frozen && (!p->snd.empty() || (p->fin_queued && !p->fin_sent)) &&
          p->wire_free > now_)
        t = std::min(t, p->wire_free);
    }
    for (const End& e : l->end) {
      if (!e.open) continue;
      if (e.error_at) t = std::min(t, *e.error_at);
      if (e.io_ready > now_) t = std::min(t, e.io_ready);
    }
  }
  for (int i = 0; i < 2; ++i) {
    const core::Session* s = i == kClient ? client_.get() : server_.get();
    if (!s) continue;
    if (app_[i].read_wake > now_) t = std::min(t, app_[i].read_wake);
    if (app_[i].write_wake > now_ && s->state() != core::State::kClosed)
      t = std::min(t, app_[i].write_wake);
  }
  return t;
}

void Simulator::step() {
  const Time t = next_event_time();
  if (t > now_) now_ = t;
  process_instant();
}

bool Simulator::done() const {
  return stats_[kClient].closed && (!server_ || stats_[kServer].closed);
}

void Simulator::run_until(Time limit) {
  run_until([] { return false; }, limit);
}

bool Simulator::run_until(const std::function<bool()>& pred, Time limit) {
  while (!failed() && !done()) {
    if (pred()) return true;
    const Time t = next_event_time();
    if (t > limit) {
      if (limit != Time::never()) now_ = std::max(now_, limit);
      return pred();
    }
    step();
  }
  return pred();
}

bool Simulator::run_to_end() {
  const Time limit = Time{} + opt_.time_limit;
  run_until(limit);
  if (failed()) return false;
  if (!done()) {
    fail(now_ >= limit ? "not finished by the time limit (hang)"
                       : "nothing left to happen but the sessions are not closed (hang)");
    return false;
  }
  return true;
}

std::string Simulator::summary() const {
  std::ostringstream s;
  s << "seed=" << opt_.seed << " t=" << ms(now_.since_epoch) << "ms links_opened=" << next_link_ - 1
    << " cuts=" << cuts_ << " refused=" << refused_replies_ << "\n";
  for (Side side : {Side::kClient, Side::kServer}) {
    const core::Session* ss = side == Side::kClient ? client_.get() : server_.get();
    const SideStats& st = stats_[idx(side)];
    s << "  " << side_name(side) << ": state=" << (ss ? core::state_name(ss->state()) : "none")
      << " written=" << st.written << " read=" << st.read << " eof=" << st.eof
      << " closed=" << st.closed << " clean=" << st.clean;
    if (st.closed)
      s << " at=" << ms(st.closed_at.since_epoch) << "ms code=" << core::errc_name(st.close_code)
        << " (" << st.close_detail << ")";
    if (ss) s << " migrations=" << ss->migrations() << " paths=" << ss->path_ids().size();
    s << " lost=" << st.path_lost_at.size() << "\n";
  }
  for (const auto& [id, l] : links_)
    s << "  link " << id << ": delay=" << ms(l->delay) << "ms cut=" << l->cut
      << " c(open=" << l->end[kClient].open << " att=" << l->end[kClient].attached << ")"
      << " s(open=" << l->end[kServer].open << " att=" << l->end[kServer].attached << ")\n";
  for (const auto& f : failures_) s << "  FAIL " << f << "\n";
  return s.str();
}

}  // namespace roam::sim
