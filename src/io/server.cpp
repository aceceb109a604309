#include "io/server.hpp"
#include "io/admission.hpp"
#include "io/workers.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace roam::io {
namespace {
constexpr Duration kFirstFrameDeadline = std::chrono::seconds(5);
constexpr Duration kTargetConnectTimeout = std::chrono::seconds(10);
constexpr std::size_t kFirstFrameMax = 512;
}  // namespace

Server::Server(Loop& loop, ServerConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      listener_(loop, [this](int fd, const SockAddr& peer) { on_accept(fd, peer); }),
      table_(core::crypto::system_rng()) {}

Server::~Server() {
  for (auto& p : pending_) {
    loop_.remove(p.fd);
    ::close(p.fd);
  }
  for (auto& [s, t] : targets_) {
    if (t.fd >= 0) {
      loop_.remove(t.fd);
      ::close(t.fd);
    }
    if (t.timer) loop_.cancel(t.timer);
  }
  for (auto& p : hellos_) {
    loop_.remove(p.fd);  // released, still registered (on_pending)
    ::close(p.fd);
  }
  if (hello_timer_) loop_.cancel(hello_timer_);
  drivers_.clear();
  if (pending_timer_) loop_.cancel(pending_timer_);
}

core::Result<void> Server::start() {
  // Every connection a roam client opens is a path: the listener carries the path options, and
  // each accepted socket inherits them (no setsockopt per session).
  const Duration user_timeout = cfg_.session.heartbeat * cfg_.session.dead_after_beats;
  auto tune = [user_timeout](int fd) { tune_path_socket(fd, user_timeout); };
  if (auto ok = listener_.start(cfg_.listen, tune); !ok) return ok;
  // An address literal never resolves differently: resolve it once, not once per session. A
  // name is resolved again for every session (the target may move).
  if (!cfg_.on_session && is_ip_literal(cfg_.forward.host)) {
    if (auto addrs = resolve(cfg_.forward, false)) forward_literal_ = std::move(*addrs);
  }
  if (cfg_.on_session)
    spdlog::info("listening on {}", listener_.bound());
  else
    spdlog::info("listening on {} (forwarding to {})", listener_.bound(), cfg_.forward.str());
  return {};
}

void Server::on_accept(int fd, const SockAddr& peer) {
  if (pending_.size() >= cfg_.max_unfinished) {
    spdlog::info("unfinished connections at cap ({}); evicting the oldest from {}",
                 cfg_.max_unfinished, pending_.front().peer);
    registry().on_refused("unfinished_cap");
    drop_pending(pending_.front().fd);
  }
  Pending p;
  p.fd = fd;
  p.deadline = loop_.now() + kFirstFrameDeadline;
  p.peer = peer.str();
  pending_.push_back(std::move(p));
  pending_by_fd_[fd] = std::prev(pending_.end());
  loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_pending(fd); });
  if (!pending_timer_) sweep_pending();
}

void Server::sweep_pending() {
  pending_timer_ = 0;
  const core::Time now = loop_.now();
  while (!pending_.empty() && pending_.front().deadline <= now) {
    spdlog::debug("connection from {} sent no complete first frame within 5s",
                  pending_.front().peer);
    registry().on_refused("first_frame_timeout");
    drop_pending(pending_.front().fd);
  }
  if (!pending_.empty()) pending_timer_ = loop_.at(pending_.front().deadline, [this] { sweep_pending(); });
}

void Server::drop_pending(int fd) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return;
  loop_.remove(fd);
  ::close(fd);
  pending_.erase(it->second);
  pending_by_fd_.erase(it);
}

void Server::on_pending(int fd) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return;
  Pending& p = *it->second;
  std::uint8_t buf[kFirstFrameMax];
  const std::size_t room = kFirstFrameMax - p.buf.size();
  const ssize_t n = ::recv(fd, buf, room, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    if (p.buf.empty())
      spdlog::debug("probe connection from {} closed without a byte", p.peer);
    else
      spdlog::info("connection from {} closed before its first frame", p.peer);
    drop_pending(fd);
    return;
  }
  if (n < 0) return;
  p.buf.insert(p.buf.end(), buf, buf + n);
  auto first = core::classify_first(p.buf);
  if (!first) {
    if (first.error().code == core::Errc::kNeedMore && p.buf.size() < kFirstFrameMax) return;
    if (first.error().code == core::Errc::kNotRoam) {
      (void)!::send(fd, core::kNotRoamReply, sizeof core::kNotRoamReply - 1, MSG_NOSIGNAL);
      spdlog::info("refused {}: peer does not speak roam", p.peer);
      registry().on_refused("not_roam");
    } else if (first.error().code == core::Errc::kVersion) {
      // Our preamble tells the client which version we speak, so it can say so.
      std::vector<std::uint8_t> pre;
      core::wire::encode_preamble(pre);
      (void)!::send(fd, pre.data(), pre.size(), MSG_NOSIGNAL);
      spdlog::info("refused {}: {}", p.peer, first.error().detail);
      registry().on_refused("version");
    } else {
      spdlog::info("refused {}: {}", p.peer, first.error().detail);
      registry().on_refused("malformed");
    }
    drop_pending(fd);
    return;
  }
  Pending taken = std::move(p);
  const bool hello = first->type == core::wire::FrameType::kHello;
  // A HELLO's socket becomes its session's path, watched for EPOLLIN as now: hand the epoll
  // registration over (adopt_path re-adds it) instead of deleting and adding it again.
  if (hello)
    loop_.release(fd);
  else
    loop_.remove(fd);
  pending_.erase(it->second);
  pending_by_fd_.erase(it);
  if (hello) {
    queue_hello(std::move(taken));
    return;
  }
  admit_migrate(fd, std::move(taken.buf), taken.peer, {});
}

void Server::admit_migrate(int fd, std::vector<std::uint8_t> buf, const std::string& peer, core::Hop hop) {
  if (cfg_.handoff && cfg_.handoff->pass(table_, fd, buf, hop)) return;
  std::vector<std::uint8_t> reply;
  const core::MigrateVerdict v = table_.admit_migrate(buf, peer_source(fd), loop_.now(), reply);
  auto d = v.session ? drivers_.find(v.session) : drivers_.end();
  if (v.dropped) {
    registry().on_refused("rate_limited");
    if (v.log_dropped)
      spdlog::warn("{} is over its limit of refused migrate requests: closed {} unchecked",
                   peer, *v.log_dropped);
    ::close(fd);
    return;
  }
  if (d == drivers_.end()) {
    (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    spdlog::info("refused migrate request from {} (unknown session or bad MAC)", peer);
    registry().on_refused("unknown_session");
    ::close(fd);
    return;
  }
  spdlog::debug("[{}] migrate request from {}", d->second->name(), peer);
  d->second->add_migrate_path(fd, buf);
}

void Server::queue_hello(Pending p) {
  hellos_.push_back(std::move(p));
  // A timer due now runs after the loop has handled every ready descriptor of this pass.
  if (!hello_timer_) hello_timer_ = loop_.at(loop_.now(), [this] { start_hellos(); });
}

void Server::start_hellos() {
  hello_timer_ = 0;
  std::vector<Pending> batch = std::move(hellos_);
  hellos_.clear();
  for (auto& p : batch) start_session(std::move(p));
}

void Server::start_session(Pending p) {
  const core::PathId id = next_path_id();
  if (!listener_.accepted_tuned())
    tune_path_socket(p.fd, cfg_.session.heartbeat * cfg_.session.dead_after_beats);
  auto session = core::Session::accept(cfg_.session, core::crypto::system_rng(), id, p.buf,
                                       loop_.now());
  core::Session* key = session.get();
  const std::string name = "s" + std::to_string(++session_counter_) + " " + p.peer;
  SessionDriver::Hooks hooks;
  hooks.on_established = [this](SessionDriver& d) {
    track_handshake(handshaking_, d, false, cfg_.max_unfinished);
    table_.add(&d.session());
    if (cfg_.on_session)
      cfg_.on_session(d);
    else
      connect_target(d);
  };
  hooks.on_finished = [this](SessionDriver& d) { on_finished(d); };
  hooks.on_wait = [this](SessionDriver& d, bool waiting) {
    track_waiting(waiting_, d, waiting, cfg_.max_waiting);
  };
  auto driver = std::make_unique<SessionDriver>(loop_, std::move(session), name, std::move(hooks));
  SessionDriver& ref = *driver;
  drivers_[key] = std::move(driver);
  track_handshake(handshaking_, ref, true, cfg_.max_unfinished);
  ref.adopt_path(p.fd, id);
}

void Server::connect_target(SessionDriver& d) {
  core::Session* key = &d.session();
  auto addrs = forward_literal_.empty() ? resolve(cfg_.forward, false)
                                        : core::Result<std::vector<SockAddr>>(forward_literal_);
  if (!addrs) {
    spdlog::warn("[{}] target {}: {}", d.name(), cfg_.forward.str(), addrs.error().detail);
    d.abort("target " + cfg_.forward.str() + ": " + addrs.error().detail);
    return;
  }
  auto fd = connect_start(addrs->front());
  if (!fd) {
    spdlog::warn("[{}] {}", d.name(), fd.error().detail);
    d.abort("target " + fd.error().detail);
    return;
  }
  Target t;
  t.fd = *fd;
  // A local target has usually accepted already (the kernel ran the handshake inside connect):
  // then no epoll round trip. Either way the outcome is handled from the loop, after this hook.
  const int done = connect_done(*fd, addrs->front());
  if (done != EALREADY) {
    t.timer = loop_.at(loop_.now(), [this, key, done] {
      auto it = targets_.find(key);
      if (it != targets_.end()) it->second.timer = 0;
      target_ready(key, done);
    });
    targets_[key] = t;
    return;
  }
  t.timer = loop_.at(loop_.now() + kTargetConnectTimeout, [this, key] {
    auto it = targets_.find(key);
    if (it == targets_.end()) return;
    it->second.timer = 0;
    auto d2 = drivers_.find(key);
    if (d2 != drivers_.end()) d2->second->abort("target " + cfg_.forward.str() + " did not answer");
  });
  targets_[key] = t;
  const int tfd = *fd;
  loop_.add(tfd, EPOLLOUT, [this, key, tfd](std::uint32_t) { target_ready(key, connect_result(tfd)); });
}

void Server::target_ready(core::Session* key, int err) {
  auto it = targets_.find(key);
  auto dit = drivers_.find(key);
  if (it == targets_.end() || dit == drivers_.end()) return;
  const int tfd = it->second.fd;
  loop_.remove(tfd);
  if (it->second.timer) loop_.cancel(it->second.timer);
  it->second.timer = 0;
  if (err != 0) {
    ::close(tfd);
    targets_.erase(it);
    const std::string why = "target " + cfg_.forward.str() + ": " + std::strerror(err);
    spdlog::warn("[{}] {}", dit->second->name(), why);
    dit->second->abort(why);
    return;
  }
  tune_app_socket(tfd);
  it->second.fd = -1;  // owned by the driver from here on
  dit->second->attach_app(AppIo{tfd, tfd, true});
}

void Server::on_finished(SessionDriver& d) {
  waiting_.remove(&d);
  handshaking_.remove(&d);
  core::Session* key = &d.session();
  table_.remove(key);
  auto t = targets_.find(key);
  if (t != targets_.end()) {
    if (t->second.fd >= 0) {
      loop_.remove(t->second.fd);
      ::close(t->second.fd);
    }
    if (t->second.timer) loop_.cancel(t->second.timer);
    targets_.erase(t);
  }
  drivers_.erase(key);
}

void Server::abort_all(const std::string& why) {
  std::vector<SessionDriver*> all;
  for (auto& [k, d] : drivers_) all.push_back(d.get());
  for (auto* d : all) d->abort(why);
}

}  // namespace roam::io
