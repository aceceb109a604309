#include "io/client.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace roam::io {
namespace {

// The session configuration with the server's pinned key (checked by the handshake).
core::SessionConfig pinned(const ClientConfig& cfg) {
  return cfg.pin ? cfg.pin->apply(cfg.session) : cfg.session;
}

}  // namespace

StdioClient::StdioClient(Loop& loop, ClientConfig cfg) : loop_(loop), cfg_(std::move(cfg)) {}

void StdioClient::start() {
  auto session = core::Session::client(pinned(cfg_), core::crypto::system_rng(), loop_.now());
  SessionDriver::Hooks hooks;
  hooks.on_finished = [this](SessionDriver& d) {
    finished_ = true;
    status_ = d.exit_status();
    loop_.stop();
  };
  ServerPin::watch(hooks, cfg_.pin);
  driver_ = std::make_unique<SessionDriver>(loop_, std::move(session), "stdio", std::move(hooks));
  driver_->set_server(cfg_.server);
  driver_->set_policy(cfg_.policy);
  if (cfg_.watch_network) {
    monitor_ = std::make_unique<NetlinkMonitor>(loop_, [this] {
      if (driver_ && !finished_) driver_->on_network_change();
    });
    if (auto ok = monitor_->start(); !ok)
      spdlog::warn("not watching the network ({}); relying on heartbeats", ok.error().detail);
  }
  set_nonblocking(0);
  set_nonblocking(1);
  driver_->attach_app(AppIo{0, 1, false});
  driver_->start();
}

void StdioClient::abort(const std::string& why) {
  if (driver_) driver_->abort(why);
}

LocalForwarder::LocalForwarder(Loop& loop, ClientConfig cfg, Endpoint local)
    : loop_(loop),
      cfg_(std::move(cfg)),
      local_(std::move(local)),
      listener_(loop, [this](int fd) { on_accept(fd); }) {}

LocalForwarder::~LocalForwarder() { drivers_.clear(); }

core::Result<void> LocalForwarder::start() {
  if (auto ok = listener_.start(local_); !ok) return ok;
  if (cfg_.watch_network) {
    monitor_ = std::make_unique<NetlinkMonitor>(loop_, [this] { network_changed(); });
    if (auto ok = monitor_->start(); !ok)
      spdlog::warn("not watching the network ({}); relying on heartbeats", ok.error().detail);
  }
  spdlog::info("listening on {} (sessions to {})", listener_.bound(), cfg_.server.str());
  return {};
}

void LocalForwarder::on_accept(int fd) {
  tune_app_socket(fd);
  auto session = core::Session::client(pinned(cfg_), core::crypto::system_rng(), loop_.now());
  SessionDriver::Hooks hooks;
  hooks.on_finished = [this](SessionDriver& d) {
    ended_migrations_ += d.session().migrations();
    drivers_.erase(&d);
  };
  ServerPin::watch(hooks, cfg_.pin);
  const std::string name = "c" + std::to_string(++counter_) + " " + peer_address(fd);
  auto driver = std::make_unique<SessionDriver>(loop_, std::move(session), name, std::move(hooks));
  SessionDriver& ref = *driver;
  drivers_[&ref] = std::move(driver);
  ref.set_server(cfg_.server);
  ref.set_policy(cfg_.policy);
  ref.attach_app(AppIo{fd, fd, true});
  ref.start();
}

void LocalForwarder::abort_all(const std::string& why) {
  std::vector<SessionDriver*> all;
  for (auto& [k, d] : drivers_) all.push_back(k);
  for (auto* d : all) d->abort(why);
}

void LocalForwarder::migrate_all() {
  for (auto& [k, d] : drivers_) d->migrate_now();
}

void LocalForwarder::network_changed() {
  std::vector<SessionDriver*> all;
  for (auto& [k, d] : drivers_) all.push_back(k);
  for (auto* d : all) d->on_network_change();
}

std::uint64_t LocalForwarder::total_migrations() const {
  std::uint64_t n = ended_migrations_;
  for (const auto& [k, d] : drivers_) n += k->session().migrations();
  return n;
}

}  // namespace roam::io
