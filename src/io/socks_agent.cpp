#include "io/socks_agent.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace roam::io {
namespace socks5 = core::socks5;

namespace {
constexpr Duration kLocalDeadline = std::chrono::seconds(5);
constexpr std::size_t kLocalMax = socks5::kMaxGreeting + socks5::kMaxRequest + 4096;

void send_small(int fd, const std::vector<std::uint8_t>& b) {
  if (!b.empty()) (void)!::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
}
}  // namespace

SocksAgent::SocksAgent(Loop& loop, SocksAgentConfig cfg)
    : loop_(loop), cfg_(std::move(cfg)), listener_(loop, [this](int fd) { on_accept(fd); }) {}

SocksAgent::~SocksAgent() {
  monitor_.reset();
  for (auto& l : locals_) {
    loop_.remove(l->fd);
    ::close(l->fd);
  }
  drivers_.clear();
  if (sweep_timer_) loop_.cancel(sweep_timer_);
}

core::Result<void> SocksAgent::start() {
  if (auto ok = listener_.start(cfg_.listen); !ok) return ok;
  if (cfg_.watch_network) {
    monitor_ = std::make_unique<NetlinkMonitor>(loop_, [this] { network_changed(); });
    if (auto ok = monitor_->start(); !ok)
      spdlog::warn("not watching the network ({}); relying on heartbeats", ok.error().detail);
  }
  spdlog::info("listening on {} (SOCKS5 for local applications; sessions to roam proxy {})",
               listener_.bound(),
               cfg_.proxy.str());
  return {};
}

void SocksAgent::on_accept(int fd) {
  if (locals_.size() >= cfg_.max_unfinished) drop_local(locals_.front()->fd);
  auto l = std::make_unique<Local>();
  l->fd = fd;
  l->deadline = loop_.now() + kLocalDeadline;
  l->peer = peer_address(fd);
  locals_.push_back(std::move(l));
  by_fd_[fd] = std::prev(locals_.end());
  loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_local(fd); });
  if (!sweep_timer_) sweep();
}

void SocksAgent::sweep() {
  sweep_timer_ = 0;
  while (!locals_.empty() && locals_.front()->deadline <= loop_.now()) {
    spdlog::info("local client {} sent no complete SOCKS request within 5 s", locals_.front()->peer);
    drop_local(locals_.front()->fd);
  }
  if (!locals_.empty()) sweep_timer_ = loop_.at(locals_.front()->deadline, [this] { sweep(); });
}

void SocksAgent::drop_local(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  loop_.remove(fd);
  ::close(fd);
  locals_.erase(it->second);
  by_fd_.erase(it);
}

void SocksAgent::on_local(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  Local& l = **it->second;
  std::uint8_t buf[4096];
  const std::size_t room = kLocalMax - l.buf.size();
  const ssize_t n = room == 0 ? 0 : ::recv(fd, buf, std::min(room, sizeof buf), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    if (!l.buf.empty()) spdlog::info("local client {} left during the SOCKS handshake", l.peer);
    drop_local(fd);
    return;
  }
  if (n < 0) return;
  l.buf.insert(l.buf.end(), buf, buf + n);
  std::vector<std::uint8_t> out;
  auto r = l.neg.feed(core::Bytes(l.buf).subspan(l.used), out, {});
  if (r) l.used += *r;
  send_small(fd, out);
  if (!r) {
    spdlog::info("refused local client {}: {}", l.peer, r.error().detail);
    registry().on_refused("socks_handshake");
    drop_local(fd);
    return;
  }
  if (l.neg.stage() != socks5::Stage::kRequestReady) return;
  const socks5::Request& rq = l.neg.request();
  if (rq.command != static_cast<std::uint8_t>(socks5::Command::kConnect)) {
    spdlog::info("refused local client {}: command {:#04x} not supported (CONNECT only)", l.peer, rq.command);
    registry().on_refused("command_not_supported");
    std::vector<std::uint8_t> rep;
    (void)socks5::encode_reply(socks5::Reply::kCommandNotSupported, socks5::Address{}, rep);
    send_small(fd, rep);
    drop_local(fd);
    return;
  }
  std::unique_ptr<Local> taken = std::move(*it->second);
  locals_.erase(it->second);
  by_fd_.erase(it);
  loop_.remove(fd);
  start_session(std::move(taken));
}

void SocksAgent::start_session(std::unique_ptr<Local> l) {
  auto session = core::Session::client(cfg_.pin ? cfg_.pin->apply(cfg_.session) : cfg_.session,
                                       core::crypto::system_rng(), loop_.now());
  // First bytes inside the session: [credentials] + the request (re-encoded from what was parsed,
  // so only a valid request travels), then whatever the application already sent behind it.
  std::vector<std::uint8_t> first;
  if (cfg_.credentials) (void)socks5::encode_userpass(*cfg_.credentials, first);
  const socks5::Request& rq = l->neg.request();
  (void)socks5::encode_request(rq.command, rq.dest, first);
  first.insert(first.end(), l->buf.begin() + static_cast<std::ptrdiff_t>(l->used), l->buf.end());
  session->write(first);
  const std::string name = "c" + std::to_string(++counter_) + " " + rq.dest.str();
  SessionDriver::Hooks hooks;
  hooks.on_finished = [this](SessionDriver& d) { drivers_.erase(&d); };
  ServerPin::watch(hooks, cfg_.pin);
  auto driver = std::make_unique<SessionDriver>(loop_, std::move(session), name, std::move(hooks));
  SessionDriver& ref = *driver;
  drivers_[&ref] = std::move(driver);
  std::vector<std::uint8_t> greet;
  (void)socks5::encode_greeting({socks5::kMethodRoam}, greet);
  std::vector<std::uint8_t> choice;
  socks5::encode_method_choice(socks5::kMethodRoam, choice);
  ref.set_path_prologue(std::move(greet), std::move(choice));
  ref.set_server(cfg_.proxy);
  ref.set_policy(cfg_.policy);
  spdlog::info("[{}] local client {}: CONNECT {}", name, l->peer, rq.dest.str());
  tune_app_socket(l->fd);
  ref.attach_app(AppIo{l->fd, l->fd, true});
  ref.start();
}

void SocksAgent::abort_all(const std::string& why) {
  std::vector<SessionDriver*> all;
  for (auto& [k, d] : drivers_) all.push_back(k);
  for (auto* d : all) d->abort(why);
}

void SocksAgent::migrate_all() {
  for (auto& [k, d] : drivers_) d->migrate_now();
}

void SocksAgent::network_changed() {
  std::vector<SessionDriver*> all;
  for (auto& [k, d] : drivers_) all.push_back(k);
  for (auto* d : all) d->on_network_change();
}

}  // namespace roam::io
