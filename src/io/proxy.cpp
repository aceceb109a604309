#include "io/proxy.hpp"
#include "io/admission.hpp"
#include "io/workers.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace roam::io {
namespace socks5 = core::socks5;
using socks5::Reply;

namespace {

constexpr Duration kHandshakeDeadline = std::chrono::seconds(5);     // SPEC property 13
constexpr Duration kConnectTimeout = std::chrono::seconds(10);       // per destination address
constexpr Duration kInnerRequestDeadline = std::chrono::seconds(60); // roam: request inside the session
constexpr Duration kRefusedLinger = std::chrono::seconds(10);        // roam: reply, then give up waiting
// Greeting + RFC 1929 + request + the first roam frame (HELLO or MIGRATE) with the preamble, and a
// little room for bytes pipelined behind a request.
constexpr std::size_t kPendingMax = socks5::kMaxGreeting + socks5::kMaxUserPass + socks5::kMaxRequest + 1024;

std::optional<socks5::IpAddr> ip_of_sockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    std::array<std::uint8_t, 4> b{};
    std::memcpy(b.data(), &a->sin_addr, 4);
    return socks5::IpAddr::v4(b);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), &a->sin6_addr, 16);
    return socks5::IpAddr::v6_of(b);
  }
  return std::nullopt;
}

std::vector<socks5::IpAddr> own_addresses() {
  std::vector<socks5::IpAddr> out;
  ifaddrs* ifa = nullptr;
  if (::getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    sockaddr_storage ss{};
    if (i->ifa_addr->sa_family == AF_INET)
      std::memcpy(&ss, i->ifa_addr, sizeof(sockaddr_in));
    else if (i->ifa_addr->sa_family == AF_INET6)
      std::memcpy(&ss, i->ifa_addr, sizeof(sockaddr_in6));
    else
      continue;
    if (auto ip = ip_of_sockaddr(ss)) out.push_back(*ip);
  }
  ::freeifaddrs(ifa);
  return out;
}

// A SockAddr for an IP literal of a SOCKS request.
SockAddr sockaddr_of(const socks5::Address& a) {
  SockAddr s;
  if (a.type == socks5::AddrType::kIPv4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&s.ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(a.port);
    std::memcpy(&in->sin_addr, a.ip.data(), 4);
    s.len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&s.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a.port);
    std::memcpy(&in6->sin6_addr, a.ip.data(), 16);
    s.len = sizeof(sockaddr_in6);
  }
  return s;
}

bool send_small(int fd, const std::vector<std::uint8_t>& bytes) {
  if (bytes.empty()) return true;
  const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(bytes.size());
}

// The metrics' reason for a SOCKS request refused with `reply`.
const char* refusal_reason(Reply reply) {
  switch (reply) {
    case Reply::kNotAllowed: return "not_allowed";
    case Reply::kCommandNotSupported: return "command_not_supported";
    case Reply::kAddressTypeNotSupported: return "address_type_not_supported";
    default: return "connect_failed";
  }
}

}  // namespace

Reply reply_for_errno(int err) {
  switch (err) {
    case ECONNREFUSED: return Reply::kConnectionRefused;
    case ENETUNREACH: case ENETDOWN: return Reply::kNetworkUnreachable;
    case EHOSTUNREACH: case EHOSTDOWN: case ETIMEDOUT: return Reply::kHostUnreachable;
    case EACCES: case EPERM: return Reply::kNotAllowed;
    case EAFNOSUPPORT: return Reply::kAddressTypeNotSupported;
    default: return Reply::kGeneralFailure;
  }
}

Proxy::Proxy(Loop& loop, ProxyConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      policy_(cfg_.allow_client, cfg_.allow_dest, cfg_.deny_dest, own_addresses()),
      resolver_(loop),
      listener_(loop, [this](int fd, const SockAddr& peer) { on_accept(fd, peer); }),
      table_(core::crypto::system_rng()) {}

Proxy::~Proxy() {
  for (auto& p : pending_) {
    loop_.remove(p->fd);
    ::close(p->fd);
  }
  for (auto& p : hellos_) {
    loop_.remove(p->fd);  // released, still registered (roam_first_frame)
    ::close(p->fd);
  }
  if (hello_timer_) loop_.cancel(hello_timer_);
  for (auto& [id, c] : connects_) {
    if (c->fd >= 0) {
      loop_.remove(c->fd);
      ::close(c->fd);
    }
    if (c->timer) loop_.cancel(c->timer);
    if (c->lookup) resolver_.cancel(*c->lookup);
  }
  for (auto& [id, w] : plain_waits_) ::close(w.fd);
  pairs_.clear();
  for (auto& [s, r] : roams_)
    if (r.timer) loop_.cancel(r.timer);
  roams_.clear();
  if (pending_timer_) loop_.cancel(pending_timer_);
}

core::Result<void> Proxy::reload(const ProxyConfig* rules) {
  const ProxyConfig& r = rules ? *rules : cfg_;
  std::optional<socks5::Users> users;
  if (!r.users_file.empty()) {
    std::ifstream in(r.users_file);
    if (!in) return core::fail(core::Errc::kMalformed, "cannot read users file " + r.users_file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto u = socks5::Users::parse(ss.str());
    if (!u) return core::fail(core::Errc::kMalformed, r.users_file + ": " + u.error().detail);
    if (u->size() == 0)
      return core::fail(core::Errc::kMalformed, r.users_file + ": no users (a proxy requiring "
                                                              "authentication nobody can pass)");
    users = std::move(*u);
  }
  if (rules) {
    cfg_.allow_client = rules->allow_client;
    cfg_.allow_dest = rules->allow_dest;
    cfg_.deny_dest = rules->deny_dest;
    cfg_.users_file = rules->users_file;
  }
  users_ = std::move(users);
  policy_ = socks5::Policy(cfg_.allow_client, cfg_.allow_dest, cfg_.deny_dest, own_addresses());
  return {};
}

core::Result<void> Proxy::start() {
  if (auto ok = reload(); !ok) return ok;
  // Every accepted socket wants TCP_NODELAY (a roam path, and a plain SOCKS5 client once
  // spliced): the listener carries it and accepted sockets inherit it.
  if (auto ok = listener_.start(cfg_.listen, tune_app_socket); !ok) return ok;
  spdlog::info("listening on {} (SOCKS5{}{})", listener_.bound(), users_ ? ", users required" : "",
               cfg_.allow_roam ? ", roam method 0x80" : "");
  return {};
}

socks5::ServerNegotiation::Options Proxy::negotiation_options() const {
  return {users_.has_value(), cfg_.allow_roam};
}

bool Proxy::authenticate(const socks5::UserPass& up) const {
  return users_ && users_->check(up.user, up.password);
}

// --- accepting and negotiating -----------------------------------------------------------------

void Proxy::on_accept(int fd, const SockAddr& from) {
  const std::string peer = from.str();
  const auto ip = ip_of_sockaddr(from.ss);
  const socks5::Verdict v = ip ? policy_.check_client(*ip) : socks5::Verdict{false, "unknown family"};
  if (!v.allowed) {
    spdlog::info("refused {}: {}", peer, v.reason);
    registry().on_refused("client_not_allowed");
    ::close(fd);
    return;
  }
  if (pending_.size() >= cfg_.max_unfinished) {
    spdlog::info("unfinished handshakes at cap ({}); evicting the oldest from {}",
                 cfg_.max_unfinished, pending_.front()->peer);
    registry().on_refused("unfinished_cap");
    drop_pending(pending_.front()->fd);
  }
  auto p = std::make_unique<Pending>(negotiation_options());
  p->fd = fd;
  p->deadline = loop_.now() + kHandshakeDeadline;
  p->peer = peer;
  pending_.push_back(std::move(p));
  pending_by_fd_[fd] = std::prev(pending_.end());
  loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_pending(fd); });
  if (!pending_timer_) sweep_pending();
}

void Proxy::sweep_pending() {
  pending_timer_ = 0;
  const core::Time now = loop_.now();
  while (!pending_.empty() && pending_.front()->deadline <= now) {
    spdlog::info("refused {}: handshake not finished within 5 s", pending_.front()->peer);
    registry().on_refused("handshake_timeout");
    drop_pending(pending_.front()->fd);
  }
  if (!pending_.empty())
    pending_timer_ = loop_.at(pending_.front()->deadline, [this] { sweep_pending(); });
}

void Proxy::drop_pending(int fd, bool reset) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return;
  loop_.remove(fd);
  if (reset)
    reset_close(fd);
  else
    ::close(fd);
  pending_.erase(it->second);
  pending_by_fd_.erase(it);
}

std::unique_ptr<Proxy::Pending> Proxy::take_pending(int fd, bool keep_registered) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return nullptr;
  std::unique_ptr<Pending> p = std::move(*it->second);
  pending_.erase(it->second);
  pending_by_fd_.erase(it);
  if (keep_registered)
    loop_.release(fd);
  else
    loop_.remove(fd);
  return p;
}

void Proxy::on_pending(int fd) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return;
  Pending& p = **it->second;
  std::uint8_t buf[2048];
  const std::size_t room = kPendingMax - p.buf.size();
  if (room == 0) {
    spdlog::info("refused {}: handshake too long", p.peer);
    registry().on_refused("handshake_too_long");
    drop_pending(fd);
    return;
  }
  const ssize_t n = ::recv(fd, buf, std::min(room, sizeof buf), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    if (p.buf.empty())
      spdlog::debug("probe connection from {} closed without a byte", p.peer);
    else
      spdlog::info("connection from {} closed during the handshake ({})", p.peer,
                   socks5::stage_name(p.neg.stage()));
    drop_pending(fd);
    return;
  }
  if (n < 0) return;
  p.buf.insert(p.buf.end(), buf, buf + n);
  advance(p);
}

void Proxy::advance(Pending& p) {
  const int fd = p.fd;
  if (p.roam) {
    roam_first_frame(fd);
    return;
  }
  std::vector<std::uint8_t> out;
  auto r = p.neg.feed(core::Bytes(p.buf).subspan(p.used), out,
                      [this](const socks5::UserPass& up) { return authenticate(up); });
  if (r) p.used += *r;
  if (!send_small(fd, out)) {
    drop_pending(fd);
    return;
  }
  if (!r) {
    spdlog::info("refused {}: {}", p.peer, r.error().detail);
    registry().on_refused("socks_handshake");
    drop_pending(fd);
    return;
  }
  switch (p.neg.stage()) {
    case socks5::Stage::kRequestReady:
      plain_request(take_pending(fd));
      return;
    case socks5::Stage::kRoam:
      p.roam = true;
      p.buf.erase(p.buf.begin(), p.buf.begin() + static_cast<std::ptrdiff_t>(p.used));
      p.used = 0;
      if (!p.buf.empty()) roam_first_frame(fd);
      return;
    default:
      if (p.buf.size() >= kPendingMax) {
        spdlog::info("refused {}: handshake too long", p.peer);
        registry().on_refused("handshake_too_long");
        drop_pending(fd);
      }
      return;
  }
}

// --- plain SOCKS5 ------------------------------------------------------------------------------

void Proxy::plain_request(std::unique_ptr<Pending> p) {
  const socks5::Request& rq = p->neg.request();
  const std::string who = p->peer + (p->neg.user().empty() ? "" : " (" + p->neg.user() + ")");
  if (rq.command != static_cast<std::uint8_t>(socks5::Command::kConnect)) {
    spdlog::info("refused {}: command {:#04x} to {} not supported (CONNECT only)", who, rq.command,
                 rq.dest.str());
    registry().on_refused(refusal_reason(Reply::kCommandNotSupported));
    (void)send_small(p->fd, reply_bytes(Reply::kCommandNotSupported, -1));
    ::close(p->fd);
    return;
  }
  const std::uint64_t id = next_id_++;
  PlainWait w;
  w.fd = p->fd;
  w.peer = who;
  w.early.assign(p->buf.begin() + static_cast<std::ptrdiff_t>(p->used), p->buf.end());
  plain_waits_[id] = std::move(w);
  // The client's socket is not watched while connecting: what it sends waits in its buffer.
  const std::uint64_t cid =
      connect_dest(rq.dest, who, [this, id](int target, Reply reply, const std::string& why) {
        plain_done(id, target, reply, why);
      });
  (void)cid;
}

void Proxy::plain_done(std::uint64_t id, int target, Reply reply, const std::string& why) {
  auto it = plain_waits_.find(id);
  if (it == plain_waits_.end()) {
    if (target >= 0) ::close(target);
    return;
  }
  PlainWait w = std::move(it->second);
  plain_waits_.erase(it);
  if (target < 0) {
    spdlog::info("refused {}: {} (reply {:#04x} {})", w.peer, why, static_cast<int>(reply),
                 socks5::reply_name(reply));
    registry().on_refused(refusal_reason(reply));
    (void)send_small(w.fd, reply_bytes(reply, -1));
    ::close(w.fd);
    return;
  }
  if (!send_small(w.fd, reply_bytes(Reply::kSucceeded, target))) {
    spdlog::info("{}: client went away before the reply", w.peer);
    reset_close(w.fd);
    ::close(target);
    return;
  }
  spdlog::debug("{}: connected to {}; splicing", w.peer, why);
  if (!listener_.accepted_tuned()) tune_app_socket(w.fd);
  tune_app_socket(target);
  auto pair = std::make_unique<SplicePair>(
      loop_, pipes_, w.fd, target, std::move(w.early),
      [this, peer = w.peer](SplicePair& sp, bool clean, const std::string& reason) {
        spdlog::debug("{}: {} ({} bytes up, {} down){}", peer, clean ? "ended" : "aborted",
                      sp.stats().a_to_b, sp.stats().b_to_a, reason.empty() ? "" : ": " + reason);
        pairs_.erase(&sp);
      });
  SplicePair* raw = pair.get();
  pairs_[raw] = std::move(pair);
  if (auto ok = raw->start(); !ok) {
    spdlog::warn("{}: {}", w.peer, ok.error().detail);
    raw->abort(ok.error().detail);
  }
}

std::vector<std::uint8_t> Proxy::reply_bytes(Reply reply, int target_fd) {
  socks5::Address bound = socks5::Address::ipv4({0, 0, 0, 0}, 0);
  if (target_fd >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(target_fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &a->sin_addr, 4);
        bound = socks5::Address::ipv4(b, ntohs(a->sin_port));
      } else if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &a->sin6_addr, 16);
        bound = socks5::Address::ipv6(b, ntohs(a->sin6_port));
      }
    }
  }
  std::vector<std::uint8_t> out;
  (void)socks5::encode_reply(reply, bound, out);
  return out;
}

// --- connecting to a destination ---------------------------------------------------------------

std::uint64_t Proxy::connect_dest(const socks5::Address& dest, std::string who,
                                  std::function<void(int, Reply, const std::string&)> done) {
  const std::uint64_t id = next_id_++;
  auto c = std::make_unique<Connect>();
  c->id = id;
  c->who = std::move(who);
  c->dest = dest;
  c->done = std::move(done);
  Connect& ref = *c;
  connects_[id] = std::move(c);
  if (dest.type != socks5::AddrType::kDomain) {
    ref.addrs.push_back(sockaddr_of(dest));
    loop_.at(loop_.now(), [this, id] { connect_next(id); });  // never call back synchronously
    return id;
  }
  ref.lookup = resolver_.resolve(Endpoint{dest.domain, dest.port},
                                 [this, id](core::Result<std::vector<SockAddr>> r) {
                                   auto it = connects_.find(id);
                                   if (it == connects_.end()) return;
                                   it->second->lookup.reset();
                                   if (!r) {
                                     connect_finish(id, -1, Reply::kHostUnreachable,
                                                    "cannot resolve " + it->second->dest.str() +
                                                        ": " + r.error().detail);
                                     return;
                                   }
                                   it->second->addrs = std::move(*r);
                                   connect_next(id);
                                 });
  return id;
}

void Proxy::connect_next(std::uint64_t id) {
  auto it = connects_.find(id);
  if (it == connects_.end()) return;
  Connect& c = *it->second;
  while (c.next < c.addrs.size()) {
    const SockAddr& a = c.addrs[c.next++];
    const auto ip = ip_of_sockaddr(a.ss);
    const socks5::Verdict v = ip ? policy_.check_dest(*ip) : socks5::Verdict{false, "unknown family"};
    if (!v.allowed) {
      // Only a refusal when no other address of the name is allowed and reachable.
      if (c.why.empty() || c.failure == Reply::kNotAllowed) {
        c.failure = Reply::kNotAllowed;
        c.why = c.dest.str() + ": " + v.reason;
      }
      continue;
    }
    auto fd = connect_start(a);
    if (!fd) {
      c.failure = Reply::kGeneralFailure;
      c.why = fd.error().detail;
      continue;
    }
    c.fd = *fd;
    const std::string where = a.str();
    // A destination on this host has usually accepted already (the kernel ran the handshake
    // inside connect()): no epoll round trip then. connect_next runs from the loop (a timer, the
    // resolver's answer, an epoll event), never inside a caller's handler.
    if (const int done = connect_done(c.fd, a); done != EALREADY) {
      connect_ready(id, where, done);
      return;
    }
    c.timer = loop_.at(loop_.now() + kConnectTimeout, [this, id, where] {
      auto i2 = connects_.find(id);
      if (i2 == connects_.end()) return;
      Connect& c2 = *i2->second;
      c2.timer = 0;
      loop_.remove(c2.fd);
      ::close(c2.fd);
      c2.fd = -1;
      c2.failure = Reply::kHostUnreachable;
      c2.why = "connect to " + where + " timed out";
      connect_next(id);
    });
    const int tfd = c.fd;
    loop_.add(tfd, EPOLLOUT,
              [this, id, where, tfd](std::uint32_t) { connect_ready(id, where, connect_result(tfd)); });
    return;
  }
  if (c.why.empty()) c.why = "no address for " + c.dest.str();
  connect_finish(id, -1, c.failure, c.why);
}

void Proxy::connect_ready(std::uint64_t id, const std::string& where, int err) {
  auto it = connects_.find(id);
  if (it == connects_.end()) return;
  Connect& c = *it->second;
  const int tfd = c.fd;
  loop_.remove(tfd);
  if (c.timer) loop_.cancel(c.timer);
  c.timer = 0;
  c.fd = -1;
  if (err == 0) {
    connect_finish(id, tfd, Reply::kSucceeded, where);
    return;
  }
  ::close(tfd);
  c.failure = reply_for_errno(err);
  c.why = "connect to " + where + ": " + std::strerror(err);
  connect_next(id);
}

void Proxy::connect_finish(std::uint64_t id, int fd, Reply reply, const std::string& why) {
  auto it = connects_.find(id);
  if (it == connects_.end()) {
    if (fd >= 0) ::close(fd);
    return;
  }
  auto done = std::move(it->second->done);
  const std::string reason = why;  // `why` may live in the Connect erased here
  connects_.erase(it);
  done(fd, reply, reason);
}

void Proxy::cancel_connect(std::uint64_t id) {
  auto it = connects_.find(id);
  if (it == connects_.end()) return;
  Connect& c = *it->second;
  if (c.fd >= 0) {
    loop_.remove(c.fd);
    ::close(c.fd);
  }
  if (c.timer) loop_.cancel(c.timer);
  if (c.lookup) resolver_.cancel(*c.lookup);
  connects_.erase(it);
}

// --- roam's method -----------------------------------------------------------------------------

void Proxy::roam_first_frame(int fd) {
  auto it = pending_by_fd_.find(fd);
  if (it == pending_by_fd_.end()) return;
  Pending& p = **it->second;
  auto first = core::classify_first(p.buf);
  if (!first) {
    if (first.error().code == core::Errc::kNeedMore && p.buf.size() < kPendingMax) return;
    if (first.error().code == core::Errc::kNotRoam)
      (void)!::send(fd, core::kNotRoamReply, sizeof core::kNotRoamReply - 1, MSG_NOSIGNAL);
    if (first.error().code == core::Errc::kVersion) {
      std::vector<std::uint8_t> pre;
      core::wire::encode_preamble(pre);
      (void)send_small(fd, pre);
    }
    spdlog::info("refused {}: roam method: {}", p.peer,
                 first.error().detail.empty() ? core::errc_name(first.error().code) : first.error().detail);
    registry().on_refused(first.error().code == core::Errc::kNotRoam   ? "not_roam"
                          : first.error().code == core::Errc::kVersion ? "version"
                                                                       : "malformed");
    drop_pending(fd);
    return;
  }
  const bool hello = first->type == core::wire::FrameType::kHello;
  // A HELLO's socket becomes its session's path, watched for EPOLLIN as now: its registration is
  // handed over to the driver (adopt_path) instead of deleted and added again.
  std::unique_ptr<Pending> taken = take_pending(fd, hello);
  if (hello) {
    queue_hello(std::move(taken));
    return;
  }
  roam_migrate(fd, std::move(taken->buf), taken->peer, {});
}

void Proxy::roam_migrate(int fd, std::vector<std::uint8_t> buf, const std::string& peer, core::Hop hop) {
  if (cfg_.handoff && cfg_.handoff->pass(table_, fd, buf, hop)) return;
  std::vector<std::uint8_t> reply;
  const core::MigrateVerdict v = table_.admit_migrate(buf, peer_source(fd), loop_.now(), reply);
  auto r = v.session ? roams_.find(v.session) : roams_.end();
  if (v.dropped) {
    registry().on_refused("rate_limited");
    if (v.log_dropped)
      spdlog::warn("{} is over its limit of refused re-attach requests: closed {} unchecked",
                   peer, *v.log_dropped);
    ::close(fd);
    return;
  }
  if (r == roams_.end()) {
    (void)send_small(fd, reply);
    spdlog::info("refused migrate request from {} (unknown session or bad MAC)", peer);
    registry().on_refused("unknown_session");
    ::close(fd);
    return;
  }
  spdlog::debug("[{}] re-attach request from {}", r->second.driver->name(), peer);
  r->second.driver->add_migrate_path(fd, buf);
}

void Proxy::queue_hello(std::unique_ptr<Pending> p) {
  hellos_.push_back(std::move(p));
  // A timer due now runs after the loop has handled every ready descriptor of this pass.
  if (!hello_timer_) hello_timer_ = loop_.at(loop_.now(), [this] { start_hellos(); });
}

void Proxy::start_hellos() {
  hello_timer_ = 0;
  std::vector<std::unique_ptr<Pending>> batch = std::move(hellos_);
  hellos_.clear();
  for (auto& p : batch) start_roam(std::move(p));
}

void Proxy::start_roam(std::unique_ptr<Pending> p) {
  const core::PathId id = next_path_id();
  tune_path_socket(p->fd, cfg_.session.heartbeat * cfg_.session.dead_after_beats,
                   !listener_.accepted_tuned());
  auto session = core::Session::accept(cfg_.session, core::crypto::system_rng(), id, p->buf, loop_.now());
  core::Session* key = session.get();
  const std::string name = "m" + std::to_string(++counter_) + " " + p->peer;
  SessionDriver::Hooks hooks;
  hooks.on_established = [this](SessionDriver& d) {
    track_handshake(handshaking_, d, false, cfg_.max_unfinished);
    table_.add(&d.session());
    auto it = roams_.find(&d.session());
    if (it == roams_.end()) return;
    it->second.stage = RoamStage::kAwaitRequest;
    core::Session* k = &d.session();
    it->second.timer = loop_.at(loop_.now() + kInnerRequestDeadline, [this, k] {
      auto i2 = roams_.find(k);
      if (i2 == roams_.end()) return;
      i2->second.timer = 0;
      if (i2->second.stage == RoamStage::kAwaitRequest || i2->second.stage == RoamStage::kRefused)
        i2->second.driver->abort("no SOCKS request inside the session");
    });
    roam_data(d);  // the request often arrives with the handshake's last frame
  };
  hooks.on_app_data = [this](SessionDriver& d) { roam_data(d); };
  hooks.on_finished = [this](SessionDriver& d) { roam_finished(d); };
  hooks.on_wait = [this](SessionDriver& d, bool waiting) {
    track_waiting(waiting_, d, waiting, cfg_.max_waiting);
  };
  Roam r;
  r.driver = std::make_unique<SessionDriver>(loop_, std::move(session), name, std::move(hooks));
  SessionDriver& ref = *r.driver;
  roams_[key] = std::move(r);
  track_handshake(handshaking_, ref, true, cfg_.max_unfinished);
  ref.adopt_path(p->fd, id);
}

void Proxy::roam_refuse(Roam& r, Reply reply, const std::string& why) {
  SessionDriver& d = *r.driver;
  spdlog::info("[{}] refused: {} (reply {:#04x} {})", d.name(), why, static_cast<int>(reply),
               socks5::reply_name(reply));
  registry().on_refused(refusal_reason(reply));
  const auto bytes = reply_bytes(reply, -1);
  d.session().write(bytes);
  d.session().shutdown_write();
  r.stage = RoamStage::kRefused;
  if (r.timer) loop_.cancel(r.timer);
  core::Session* k = &d.session();
  r.timer = loop_.at(loop_.now() + kRefusedLinger, [this, k] {
    auto it = roams_.find(k);
    if (it == roams_.end()) return;
    it->second.timer = 0;
    it->second.driver->abort("refused");
  });
}

void Proxy::roam_data(SessionDriver& d) {
  auto it = roams_.find(&d.session());
  if (it == roams_.end()) return;
  Roam& r = it->second;
  core::Session& s = d.session();
  const core::Time now = loop_.now();
  if (r.stage == RoamStage::kRefused) {
    // Discard whatever the client still sends; its EOF lets the session end cleanly.
    while (!s.readable().empty()) s.consume(s.readable().size(), now);
    if (s.at_eof()) s.consume_eof(now);
    return;
  }
  if (r.stage != RoamStage::kAwaitRequest) return;
  const core::Bytes in = s.readable();
  if (in.empty()) {
    if (s.at_eof()) roam_refuse(r, Reply::kGeneralFailure, "session ended before its SOCKS request");
    return;
  }
  // [RFC 1929 user/password] SOCKS request — told apart by their version bytes (1 and 5).
  if (in[0] == socks5::kAuthVersion && !r.authed) {
    auto up = socks5::parse_userpass(in);
    if (!up) {
      if (up.error().code == core::Errc::kNeedMore && !s.at_eof()) return;
      roam_refuse(r, Reply::kGeneralFailure, "user/password inside the session: " + up.error().detail);
      return;
    }
    s.consume(up->consumed, now);
    if (users_ && !authenticate(up->value)) {
      roam_refuse(r, Reply::kNotAllowed, "wrong user name or password");
      return;
    }
    r.authed = true;
    roam_data(d);
    return;
  }
  if (users_ && !r.authed) {
    roam_refuse(r, Reply::kNotAllowed, "users are required and none was given");
    return;
  }
  auto rq = socks5::parse_request(in);
  if (!rq) {
    if (rq.error().code == core::Errc::kNeedMore && !s.at_eof()) return;
    roam_refuse(r, socks5::malformed_request_reply(in), "request inside the session: " + rq.error().detail);
    return;
  }
  s.consume(rq->consumed, now);
  const socks5::Request req = rq->value;
  if (req.command != static_cast<std::uint8_t>(socks5::Command::kConnect)) {
    roam_refuse(r, Reply::kCommandNotSupported,
                fmt::format("command {:#04x} to {} not supported (CONNECT only)", req.command, req.dest.str()));
    return;
  }
  r.stage = RoamStage::kConnecting;
  if (r.timer) loop_.cancel(r.timer);
  r.timer = 0;
  core::Session* key = &s;
  spdlog::info("[{}] CONNECT {}", d.name(), req.dest.str());
  r.connect_id = connect_dest(req.dest, d.name(), [this, key](int target, Reply reply, const std::string& why) {
    auto i2 = roams_.find(key);
    if (i2 == roams_.end()) {
      if (target >= 0) ::close(target);
      return;
    }
    Roam& r2 = i2->second;
    r2.connect_id = 0;
    if (target < 0) {
      roam_refuse(r2, reply, why);
      r2.driver->sync();
      return;
    }
    r2.stage = RoamStage::kRelaying;
    tune_app_socket(target);
    r2.driver->session().write(reply_bytes(Reply::kSucceeded, target));
    spdlog::info("[{}] connected to {}", r2.driver->name(), why);
    r2.driver->attach_app(AppIo{target, target, true});
  });
}

void Proxy::roam_finished(SessionDriver& d) {
  waiting_.remove(&d);
  handshaking_.remove(&d);
  core::Session* key = &d.session();
  table_.remove(key);
  auto it = roams_.find(key);
  if (it == roams_.end()) return;
  if (it->second.connect_id) cancel_connect(it->second.connect_id);
  if (it->second.timer) loop_.cancel(it->second.timer);
  roams_.erase(it);
}

void Proxy::abort_all(const std::string& why) {
  std::vector<SessionDriver*> all;
  for (auto& [k, r] : roams_) all.push_back(r.driver.get());
  for (auto* d : all) d->abort(why);
  std::vector<SplicePair*> pairs;
  for (auto& [k, p] : pairs_) pairs.push_back(k);
  for (auto* p : pairs) p->abort(why);
}

}  // namespace roam::io
