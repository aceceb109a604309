#include "io/session_driver.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace roam::io {
namespace {

// How long a closed session may spend flushing its last frames (final ACK, CLOSE).
constexpr Duration kLinger = std::chrono::seconds(2);
// A TCP connect that has not completed in this long is abandoned. Probes start every 100 ms while
// the network is down and each lives until shortly after its first SYN retransmission (1 s), so
// when the path returns a fresh SYN is never more than one probe interval away (SPEC: data flows
// again within 150 ms of the path returning, where TCP's own backoff takes seconds).
constexpr Duration kConnectTimeout = std::chrono::milliseconds(2500);
// Concurrent connection attempts per session while reconnecting.
constexpr int kMaxConnecting = 32;
// Reads per path per wakeup, so that one busy socket cannot starve the others.
constexpr int kReadBudget = 16;

std::string ms_text(Duration d) {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  return fmt::format("{:.1f} ms", ms);
}

}  // namespace

core::PathId next_path_id() {
  static core::PathId next = 1;
  return next++;
}

SessionDriver::SessionDriver(Loop& loop, std::unique_ptr<core::Session> session, std::string name,
                             Hooks hooks)
    : loop_(loop), session_(std::move(session)), name_(std::move(name)), hooks_(std::move(hooks)) {
  created_at_ = loop_.now();
  registry().add(this, &loop_);
}

SessionDriver::~SessionDriver() {
  registry().remove(this, session_->bytes_sent(), session_->data_bytes_received());
  for (auto& [id, ps] : paths_) {
    loop_.remove(ps.fd);
    if (ps.connect_timer) loop_.cancel(ps.connect_timer);
    if (!ps.gate_key.empty()) probe_gate().done(ps.gate_key, false, loop_.now());
    ::close(ps.fd);
  }
  probe_gate().forget(reinterpret_cast<core::ProbeGate::Waiter>(this));
  if (wake_timer_) loop_.cancel(wake_timer_);
  if (timer_) loop_.cancel(timer_);
  if (linger_timer_) loop_.cancel(linger_timer_);
  if (finish_timer_) loop_.cancel(finish_timer_);
  if (app_attached_) release_app(false);
  if (observer_.on_gone) observer_.on_gone();
}

int SessionDriver::exit_status() const {
  if (!ever_established_) return 1;
  return session_->closed_clean() ? 0 : 3;
}

void SessionDriver::start() { connect_new_path(); }

void SessionDriver::adopt_path(int fd, core::PathId id) {
  PathSock ps;
  ps.fd = fd;
  ps.id = id;
  ps.where = local_address(fd) + " <-> " + peer_address(fd);
  ps.source = ip_of(local_address(fd));
  paths_[id] = ps;
  loop_.add(fd, EPOLLIN, [this, id](std::uint32_t ev) { on_path_event(id, ev); });
  sync();
}

void SessionDriver::add_migrate_path(int fd, core::Bytes initial) {
  const core::PathId id = next_path_id();
  tune_path_socket(fd, session_->path_timeout());
  session_->attach_server_path(id, initial, loop_.now());
  adopt_path(fd, id);
}

void SessionDriver::attach_app(AppIo app) {
  app_ = app;
  app_attached_ = true;
  if (app_.is_socket) {
    loop_.add(app_.in_fd, EPOLLIN, [this](std::uint32_t ev) { on_app_event(ev); });
    app_in_registered_ = true;
  } else {
    if (loop_.add(app_.in_fd, EPOLLIN, [this](std::uint32_t ev) { on_app_event(ev | EPOLLIN); }))
      app_in_registered_ = true;
    else
      app_in_always_ready_ = true;  // a regular file: always readable
    if (app_.out_fd != app_.in_fd)
      loop_.add(app_.out_fd, 0, [this](std::uint32_t ev) { on_app_event(ev & ~EPOLLIN); });
  }
  sync();
}

void SessionDriver::abort(const std::string& why) {
  session_->abort(why, loop_.now());
  sync();
}

void SessionDriver::on_network_change() {
  spdlog::debug("[{}] network event", name_);
  if (!server_ || finished_ || closing_ || !ever_established_) return;
  auto addrs = resolve(*server_, false);
  if (!addrs) return;
  // The best of the server's addresses (either family) and its route: the one a new path takes.
  const auto candidates = route_candidates(*addrs, policy_);
  if (candidates.empty()) {
    spdlog::info("[{}] network changed: no route to {} at the moment", name_, server_->str());
    return;
  }
  const RouteChoice* choice = &candidates.front().route;
  // Already on the right path, or moving to it?
  const auto active = session_->active_path();
  std::string current = "none";
  if (active && paths_.count(*active)) current = paths_[*active].source;
  if (current == choice->source) return;
  for (const auto& [id, ps] : paths_)
    if (ps.source == choice->source && (ps.connecting || !session_->path_done(id))) return;
  spdlog::info("[{}] network changed: {} now leaves via {}{} (path uses {}): migrating", name_,
               candidates.front().addr.str(), choice->source,
               choice->interface.empty() ? "" : " on " + choice->interface, current);
  addr_index_ = 0;  // the new path goes to the best candidate
  session_->request_migration(loop_.now());
  sync();
}

void SessionDriver::migrate_now() {
  session_->request_migration(loop_.now());
  sync();
}

core::ProbeGate& SessionDriver::probe_gate() {
  // One loop per thread, so one gate per thread is one gate per process's loop.
  static thread_local core::ProbeGate gate;
  return gate;
}

void SessionDriver::wake_for_probe() {
  if (wake_timer_) return;
  // Called from another session's connect completion: act from the loop, not inside it.
  wake_timer_ = loop_.at(loop_.now(), [this] {
    wake_timer_ = 0;
    if (!session_->active_path() && session_->state() != core::State::kClosed) migrate_now();
  });
}

// --- paths ---------------------------------------------------------------------------------

void SessionDriver::connect_new_path() {
  if (!server_) return;
  if (connecting_ >= kMaxConnecting) {
    spdlog::debug("[{}] {} connection attempts already in progress", name_, connecting_);
    return;
  }
  auto addrs = resolve(*server_, false);
  if (!addrs) {
    spdlog::warn("[{}] cannot resolve {}: {}", name_, server_->str(), addrs.error().detail);
    if (!ever_established_ && paths_.empty()) {
      error_text_ = addrs.error().detail;
      session_->abort(error_text_, loop_.now());
    }
    return;
  }
  // The server's addresses that have a route now, best first (route_candidates); the first
  // attempt after a success or a network change takes the best, repeated attempts (probes while
  // the path is down, or the handshake's next try after a failure) go round all of them, so a
  // family that is routed but broken cannot hold the session.
  const auto candidates = route_candidates(*addrs, policy_);
  std::optional<RouteChoice> route;
  SockAddr a;
  if (!candidates.empty()) {
    candidate_count_ = candidates.size();
    const auto& c = candidates[addr_index_++ % candidates.size()];
    a = c.addr;
    route = c.route;
  } else {
    spdlog::debug("[{}] no route to {}{} yet", name_, server_->str(),
                  policy_.empty() ? "" : " through the preferred interfaces");
    if (!policy_.pin.empty()) return;  // pinned: wait for that interface
    // No route at all: try anyway, in order (the connect fails at once, or a route appears).
    candidate_count_ = addrs->size();
    a = (*addrs)[addr_index_++ % addrs->size()];
  }
  // Reconnecting without a working path: share the probes with every other session of this
  // process that goes from the same address to the same server (SPEC 7; see ProbeGate).
  std::string gate_key;
  if (ever_established_ && !session_->active_path()) {
    gate_key = (route ? route->source : std::string("*")) + "|" + a.str();
    const auto waiter = reinterpret_cast<core::ProbeGate::Waiter>(this);
    if (!probe_gate().admit(gate_key, waiter, [this] { wake_for_probe(); }, loop_.now())) {
      spdlog::debug("[{}] waiting for the shared probe of {}", name_, gate_key);
      return;
    }
  }
  auto fd = connect_start(a, route ? route->interface : std::string());
  spdlog::debug("[{}] connecting to {}{}", name_, a.str(),
                route && !route->interface.empty() ? " via " + route->interface : std::string());
  if (!fd) {
    spdlog::debug("[{}] {}", name_, fd.error().detail);
    if (!gate_key.empty()) probe_gate().done(gate_key, false, loop_.now());
    first_connect_failed(fd.error().detail);
    return;
  }
  const core::PathId id = next_path_id();
  PathSock ps;
  ps.fd = *fd;
  ps.id = id;
  ps.connecting = true;
  ps.gate_key = gate_key;
  ps.where = a.str();
  if (route) ps.source = route->source;
  ps.connect_timer = loop_.at(loop_.now() + kConnectTimeout, [this, id] {
    auto it = paths_.find(id);
    if (it == paths_.end() || !it->second.connecting) return;
    it->second.connect_timer = 0;
    spdlog::debug("[{}] connect to {} timed out", name_, it->second.where);
    const std::string why = "cannot connect to " + it->second.where + ": timed out";
    close_path_socket(id, false);
    --connecting_;
    first_connect_failed(why);
    sync();
  });
  ++connecting_;
  paths_[id] = ps;
  loop_.add(*fd, EPOLLOUT, [this, id](std::uint32_t ev) { on_path_event(id, ev); });
}

void SessionDriver::first_connect_failed(const std::string& why) {
  if (ever_established_ || session_->state() != core::State::kClientHandshake) return;
  if (addr_index_ < candidate_count_) {
    spdlog::info("[{}] {}; trying the next address", name_, why);
    connect_new_path();
    return;
  }
  error_text_ = why;
  session_->abort(error_text_, loop_.now());
}

void SessionDriver::abandon_probes() {
  std::vector<core::PathId> probes;
  for (auto& [id, ps] : paths_)
    if (ps.connecting) probes.push_back(id);
  for (core::PathId id : probes) {
    close_path_socket(id, false);
    --connecting_;
  }
}

void SessionDriver::on_path_event(core::PathId id, std::uint32_t events) {
  auto it = paths_.find(id);
  if (it == paths_.end()) return;
  PathSock& ps = it->second;
  if (ps.connecting) {
    const int err = connect_result(ps.fd);
    ps.connecting = false;
    --connecting_;
    if (ps.connect_timer) loop_.cancel(ps.connect_timer);
    ps.connect_timer = 0;
    if (!ps.gate_key.empty()) {
      const std::string key = std::move(ps.gate_key);
      ps.gate_key.clear();
      probe_gate().done(key, err == 0, loop_.now());
    }
    if (err != 0) {
      spdlog::debug("[{}] connect to {} failed: {}", name_, ps.where, std::strerror(err));
      const std::string why = "cannot connect to " + ps.where + ": " + std::strerror(err);
      close_path_socket(id, false);
      first_connect_failed(why);
      sync();
      return;
    }
    tune_path_socket(ps.fd, session_->path_timeout());
    ps.where = local_address(ps.fd) + " -> " + peer_address(ps.fd);
    ps.source = ip_of(local_address(ps.fd));
    // A probe that completes after the session already moved to a working path from the same
    // address is redundant: migrating again would only cost a round trip.
    if (const auto active = session_->active_path(); active && !session_->probing_while_active()) {
      auto a = paths_.find(*active);
      if (a != paths_.end() && a->second.source == ps.source) {
        spdlog::debug("[{}] dropping redundant probe {}", name_, ps.where);
        close_path_socket(id, false);
        sync();
        return;
      }
    }
    loop_.modify(ps.fd, EPOLLIN);
    session_->attach_path(id, loop_.now());
    if (!prologue_send_.empty() || !prologue_expect_.empty()) {
      // A few bytes on a fresh connection: the socket buffer takes them whole.
      const ssize_t n = ::send(ps.fd, prologue_send_.data(), prologue_send_.size(), MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(prologue_send_.size())) {
        session_->on_path_error(id, loop_.now(), "cannot send the path prologue");
        close_path_socket(id, false);
        sync();
        return;
      }
      if (!prologue_expect_.empty()) prologue_read_[id] = 0;
    }
    sync();
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_path(ps);
  if ((events & EPOLLOUT) && paths_.count(id)) write_path(paths_[id]);
  sync();
}

bool SessionDriver::read_prologue(PathSock& ps) {
  const core::PathId id = ps.id;
  auto it = prologue_read_.find(id);
  if (it == prologue_read_.end()) return true;
  for (;;) {
    std::uint8_t buf[64];
    const std::size_t want = std::min(sizeof buf, prologue_expect_.size() - it->second);
    const ssize_t n = ::recv(ps.fd, buf, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    std::string why;
    if (n == 0) why = "peer closed the connection during the path prologue (" + ps.where + ")";
    else if (n < 0) why = std::string(std::strerror(errno)) + " (" + ps.where + ")";
    else if (std::memcmp(buf, prologue_expect_.data() + it->second, static_cast<std::size_t>(n)) != 0)
      why = "unexpected answer to the path prologue from " + ps.where +
            " (a SOCKS5 proxy that does not offer roam's method?)";
    if (!why.empty()) {
      prologue_read_.erase(it);
      session_->on_path_error(id, loop_.now(), why);
      close_path_socket(id, false);
      return false;
    }
    it->second += static_cast<std::size_t>(n);
    if (it->second == prologue_expect_.size()) {
      prologue_read_.erase(it);
      return true;
    }
  }
}

void SessionDriver::read_path(PathSock& ps) {
  const core::PathId id = ps.id;
  if (!read_prologue(ps)) return;
  for (int i = 0; i < kReadBudget; ++i) {
    core::MutBytes space = session_->recv_space(id);
    const ssize_t n = ::recv(ps.fd, space.data(), space.size(), 0);
    if (n > 0) {
      session_->on_received(id, static_cast<std::size_t>(n), loop_.now());
      if (static_cast<std::size_t>(n) < space.size()) break;
      continue;
    }
    if (n == 0) {
      session_->on_path_eof(id, loop_.now());
      session_->recv_space(id);  // reset any direct-read marker
      close_path_socket(id, false);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    const std::string why = std::string(std::strerror(errno)) + " (" + ps.where + ")";
    session_->on_path_error(id, loop_.now(), why);
    close_path_socket(id, false);
    return;
  }
}

void SessionDriver::write_path(PathSock& ps) {
  for (int i = 0; i < kReadBudget; ++i) {
    core::IoSlices s = session_->poll_transmit(ps.id, loop_.now());
    if (s.count == 0) return;
    iovec iov[core::IoSlices::kMax];
    for (std::size_t k = 0; k < s.count; ++k) {
      iov[k].iov_base = const_cast<std::uint8_t*>(s.slice[k].data());
      iov[k].iov_len = s.slice[k].size();
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = s.count;
    const ssize_t n = ::sendmsg(ps.fd, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      session_->on_transmitted(ps.id, static_cast<std::size_t>(n), loop_.now());
      if (static_cast<std::size_t>(n) < s.total()) return;
      continue;
    }
    session_->on_transmitted(ps.id, 0, loop_.now());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    const std::string why = std::string(std::strerror(errno)) + " (" + ps.where + ")";
    const core::PathId id = ps.id;
    session_->on_path_error(id, loop_.now(), why);
    close_path_socket(id, false);
    return;
  }
}

void SessionDriver::close_path_socket(core::PathId id, bool reset) {
  auto it = paths_.find(id);
  if (it == paths_.end()) return;
  loop_.remove(it->second.fd);
  if (it->second.connect_timer) loop_.cancel(it->second.connect_timer);
  if (!it->second.gate_key.empty()) probe_gate().done(it->second.gate_key, false, loop_.now());
  if (reset)
    reset_close(it->second.fd);
  else
    ::close(it->second.fd);
  paths_.erase(it);
  prologue_read_.erase(id);
  session_->forget_path(id);
}

// --- application ---------------------------------------------------------------------------

void SessionDriver::on_app_event(std::uint32_t events) {
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) pump_app_in();
  if (events & (EPOLLOUT | EPOLLERR)) app_out_blocked_ = false;
  sync();
}

void SessionDriver::pump_app_in() {
  if (!app_attached_ || app_in_eof_ || session_->state() == core::State::kClosed) return;
  for (int i = 0; i < kReadBudget; ++i) {
    core::MutBytes space = session_->write_space();
    if (space.empty()) return;  // backpressure: interest is dropped in update_interest
    const ssize_t n = ::read(app_.in_fd, space.data(), space.size());
    if (n > 0) {
      session_->commit_write(static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      app_in_eof_ = true;
      session_->shutdown_write();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    session_->abort(std::string("local application: ") + std::strerror(errno), loop_.now());
    return;
  }
}

void SessionDriver::pump_app_out() {
  if (!app_attached_ && hooks_.on_app_data && session_->state() != core::State::kClosed &&
      (!session_->readable().empty() || session_->at_eof()))
    hooks_.on_app_data(*this);
  if (!app_attached_ || app_out_shut_ || app_out_blocked_) return;
  for (int i = 0; i < kReadBudget; ++i) {
    core::Bytes data = session_->readable();
    if (data.empty()) break;
    const ssize_t n = app_.is_socket ? ::send(app_.out_fd, data.data(), data.size(), MSG_NOSIGNAL)
                                     : ::write(app_.out_fd, data.data(), data.size());
    if (n > 0) {
      session_->consume(static_cast<std::size_t>(n), loop_.now());
      if (static_cast<std::size_t>(n) < data.size()) {
        app_out_blocked_ = true;
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      app_out_blocked_ = true;
      return;
    }
    session_->abort(std::string("local application: ") + std::strerror(errno), loop_.now());
    return;
  }
  if (session_->at_eof() && session_->readable().empty()) {
    app_out_shut_ = true;
    if (app_.is_socket)
      ::shutdown(app_.out_fd, SHUT_WR);
    else if (app_.out_fd != app_.in_fd) {
      loop_.remove(app_.out_fd);
      ::close(app_.out_fd);
      app_.out_fd = -1;
    }
    session_->consume_eof(loop_.now());
  }
}

void SessionDriver::release_app(bool clean) {
  if (!app_attached_) return;
  app_attached_ = false;
  if (app_.is_socket) {
    loop_.remove(app_.in_fd);
    if (clean)
      ::close(app_.in_fd);
    else
      reset_close(app_.in_fd);
    return;
  }
  if (app_in_registered_) loop_.remove(app_.in_fd);
  if (app_.out_fd >= 0 && app_.out_fd != app_.in_fd) loop_.remove(app_.out_fd);
}

// --- the pump ------------------------------------------------------------------------------

void SessionDriver::sync() {
  if (in_sync_ || finished_) return;
  in_sync_ = true;
  for (int round = 0; round < 8; ++round) {
    const std::uint64_t before_in = session_->bytes_sent();
    const std::size_t before_readable = session_->readable().size();
    if (app_attached_ && app_in_always_ready_) pump_app_in();
    pump_app_out();
    for (auto it = paths_.begin(); it != paths_.end();) {
      PathSock& ps = it->second;
      ++it;
      if (!ps.connecting && session_->wants_write(ps.id)) write_path(ps);
    }
    handle_events();
    if (session_->take_connect_request()) connect_new_path();
    if (session_->bytes_sent() == before_in && session_->readable().size() == before_readable)
      break;
  }
  // Paths the session is done with.
  std::vector<core::PathId> done;
  for (auto& [id, ps] : paths_)
    if (!ps.connecting && session_->path_done(id)) done.push_back(id);
  for (core::PathId id : done) close_path_socket(id, false);
  handle_events();
  if (session_->state() == core::State::kClosed && !closing_) {
    closing_ = true;
    release_app(session_->closed_clean());
    linger_timer_ = loop_.at(loop_.now() + kLinger, [this] {
      // Whatever has not flushed by now never will.
      linger_timer_ = 0;
      std::vector<core::PathId> stuck;
      for (auto& [id, ps] : paths_) stuck.push_back(id);
      for (core::PathId id : stuck) close_path_socket(id, false);
      if (!session_->lingering()) finish();
    });
  }
  if (closing_) {
    bool flushing = false;
    for (auto& [id, ps] : paths_)
      if (!ps.connecting && !session_->path_done(id)) flushing = true;
    if (!flushing && !session_->lingering()) {
      in_sync_ = false;
      finish();
      return;
    }
  }
  update_interest();
  schedule_timer();
  in_sync_ = false;
  if (observer_.on_synced) observer_.on_synced();
}

void SessionDriver::handle_events() {
  while (auto e = session_->poll_event()) {
    note_for_status(*e);
    switch (e->type) {
      case core::EventType::kEstablished:
        ever_established_ = true;
        addr_index_ = 0;
        spdlog::info("[{}] session established ({}{}{})", name_,
                     session_->active_path() && paths_.count(*session_->active_path())
                         ? paths_[*session_->active_path()].where
                         : std::string("?"),
                     session_->negotiated().features & core::wire::kFeatureEncrypt
                         ? ", encrypted with "
                         : "",
                     session_->negotiated().features & core::wire::kFeatureEncrypt
                         ? core::crypto::aead_name(session_->negotiated().aead)
                         : "");
        if (hooks_.on_established) hooks_.on_established(*this);
        break;
      case core::EventType::kPathLost:
        spdlog::info("[{}] path lost: {}; in migrate wait", name_, e->error.detail);
        if (hooks_.on_wait) hooks_.on_wait(*this, true);
        break;
      case core::EventType::kMigrated: {
        const std::string where = paths_.count(e->path) ? paths_[e->path].where : "?";
        spdlog::info("[{}] migrated to {} (request {}, {} after the old path was lost)", name_,
                     where, e->request, ms_text(e->took));
        addr_index_ = 0;
        abandon_probes();
        if (hooks_.on_wait) hooks_.on_wait(*this, false);
        break;
      }
      case core::EventType::kClosed:
        if (e->clean)
          spdlog::info("[{}] session ended cleanly ({} bytes out, {} in, {} migrations)", name_,
                       session_->bytes_sent(), session_->data_bytes_received(), session_->migrations());
        else {
          if (error_text_.empty()) error_text_ = e->error.detail;
          spdlog::warn("[{}] session aborted: {} ({} bytes out, {} in, {} migrations)", name_,
                       e->error.detail, session_->bytes_sent(), session_->data_bytes_received(),
                       session_->migrations());
        }
        break;
    }
    if (observer_.on_event) observer_.on_event(*e);
  }
}

void SessionDriver::update_interest() {
  for (auto& [id, ps] : paths_) {
    if (ps.connecting) continue;
    std::uint32_t ev = EPOLLIN;
    if (session_->wants_write(id)) ev |= EPOLLOUT;
    loop_.modify(ps.fd, ev);
  }
  if (!app_attached_) return;
  const bool want_in = !app_in_eof_ && session_->can_write() &&
                       session_->state() != core::State::kClosed;
  const bool want_out = app_out_blocked_;
  if (app_.is_socket) {
    loop_.modify(app_.in_fd, (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u));
  } else {
    if (app_in_registered_) loop_.modify(app_.in_fd, want_in ? EPOLLIN : 0u);
    if (app_.out_fd >= 0 && app_.out_fd != app_.in_fd)
      loop_.modify(app_.out_fd, want_out ? EPOLLOUT : 0u);
  }
}

void SessionDriver::schedule_timer() {
  core::Time t = session_->next_deadline();
  if (t == timer_at_ && timer_) return;
  if (timer_) loop_.cancel(timer_);
  timer_ = 0;
  timer_at_ = t;
  if (t == core::Time::never()) return;
  timer_ = loop_.at(t, [this] {
    timer_ = 0;
    timer_at_ = core::Time::never();
    on_timer();
  });
}

void SessionDriver::on_timer() {
  // A busy sender whose peer is silent is alive as long as TCP sees acknowledgements.
  if (auto active = session_->active_path()) {
    auto it = paths_.find(*active);
    if (it != paths_.end() && tcp_recent_ack(it->second.fd, std::chrono::seconds(1)))
      session_->note_transport_progress(*active, loop_.now());
  }
  session_->on_timeout(loop_.now());
  sync();
}

void SessionDriver::finish() {
  if (finished_) return;
  finished_ = true;
  for (auto& [id, ps] : paths_) {
    loop_.remove(ps.fd);
    if (ps.connect_timer) loop_.cancel(ps.connect_timer);
    ::close(ps.fd);
  }
  paths_.clear();
  if (timer_) loop_.cancel(timer_);
  timer_ = 0;
  if (linger_timer_) loop_.cancel(linger_timer_);
  linger_timer_ = 0;
  // Defer the hook: it may destroy this driver.
  if (hooks_.on_finished)
    finish_timer_ = loop_.at(loop_.now(), [this] {
      finish_timer_ = 0;
      hooks_.on_finished(*this);
    });
}

}  // namespace roam::io

// --- monitoring (roam status, metrics) -----------------------------------------------------

namespace roam::io {

void SessionDriver::note_for_status(const core::Event& e) {
  const core::Time now = loop_.now();
  auto remote_of = [this](core::PathId id) {
    auto it = paths_.find(id);
    return it == paths_.end() ? std::string() : peer_address(it->second.fd);
  };
  switch (e.type) {
    case core::EventType::kEstablished:
      registry().on_handshake(true);
      if (!session_->is_client() && session_->active_path())
        peer_seen_ = remote_of(*session_->active_path());
      break;
    case core::EventType::kPathLost:
      if (!waiting_since_) waiting_since_ = now;
      break;
    case core::EventType::kMigrated: {
      if (waiting_since_) waited_ += now - *waiting_since_;
      waiting_since_.reset();
      last_handover_ = e.took;
      if (!session_->is_client()) peer_seen_ = remote_of(e.path);
      registry().on_migrated(e.took, info(now).id);
      break;
    }
    case core::EventType::kClosed:
      if (!ever_established_ && !session_->established_once()) registry().on_handshake(false);
      registry().on_closed(e.clean);
      if (waiting_since_) waited_ += now - *waiting_since_;
      waiting_since_.reset();
      break;
  }
}

SessionInfo SessionDriver::info(core::Time now) const {
  auto seconds = [](core::Duration d) { return std::chrono::duration<double>(d).count(); };
  const core::Session& s = *session_;
  SessionInfo i;
  if (s.established_once()) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t k = 0; k < 4 && k < s.token().size(); ++k) {
      i.id += kHex[s.token()[k] >> 4];
      i.id += kHex[s.token()[k] & 0xf];
    }
  } else {
    i.id = "-";
  }
  i.role = s.is_client() ? "client" : "server";
  i.name = name_;
  i.peer = s.is_client() ? (server_ ? server_->str() : std::string()) : peer_seen_;
  if (const auto active = s.active_path()) {
    auto it = paths_.find(*active);
    if (it != paths_.end() && !it->second.connecting) {
      i.local = local_address(it->second.fd);
      i.remote = peer_address(it->second.fd);
    }
  }
  i.state = core::state_name(s.state());
  i.bytes_sent = s.bytes_sent();
  i.bytes_received = s.data_bytes_received();
  i.retained = s.retained();
  i.migrations = s.migrations();
  i.last_handover_s = last_handover_ ? seconds(*last_handover_) : -1;
  const core::Duration waiting = waiting_since_ ? now - *waiting_since_ : core::Duration{0};
  i.waiting_s = seconds(waiting);
  i.waited_total_s = seconds(waited_ + waiting);
  i.age_s = seconds(now - created_at_);
  return i;
}

}  // namespace roam::io
