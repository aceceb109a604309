// The client side of `roam connect`: one session on stdin/stdout, or a local listener whose
// every accepted connection becomes its own session.
#pragma once

#include <memory>
#include <unordered_map>

#include "io/known_hosts.hpp"
#include "io/listener.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/netmon.hpp"
#include "io/session_driver.hpp"

namespace roam::io {

struct ClientConfig {
  Endpoint server;
  core::SessionConfig session;
  PathPolicy policy;
  // Pins the server's key (--key servers) in known_hosts and checks it; null: nothing pinned.
  std::shared_ptr<ServerPin> pin;
  // Watch rtnetlink and migrate on address/route changes (off: heartbeats and errors only).
  bool watch_network = true;
};

// Runs one session between stdin/stdout and the server until it ends; returns the exit status
// (0 clean end, 1 error, 3 abort).
class StdioClient {
 public:
  StdioClient(Loop& loop, ClientConfig cfg);
  void start();
  bool finished() const { return finished_; }
  int exit_status() const { return status_; }
  void abort(const std::string& why);
  SessionDriver* driver() { return driver_.get(); }

 private:
  Loop& loop_;
  ClientConfig cfg_;
  std::unique_ptr<SessionDriver> driver_;
  std::unique_ptr<NetlinkMonitor> monitor_;
  bool finished_ = false;
  int status_ = 1;
};

class LocalForwarder {
 public:
  LocalForwarder(Loop& loop, ClientConfig cfg, Endpoint local);
  ~LocalForwarder();
  core::Result<void> start();
  std::string bound() const { return listener_.bound(); }
  std::size_t session_count() const { return drivers_.size(); }
  void abort_all(const std::string& why);
  // Every live session migrates now (SIGHUP).
  void migrate_all();
  // Address or route event: each session re-checks its path.
  void network_changed();
  // Migrations of all sessions, live and ended.
  std::uint64_t total_migrations() const;

 private:
  void on_accept(int fd);

  Loop& loop_;
  ClientConfig cfg_;
  Endpoint local_;
  Listener listener_;
  std::unordered_map<SessionDriver*, std::unique_ptr<SessionDriver>> drivers_;
  std::unique_ptr<NetlinkMonitor> monitor_;
  std::uint64_t counter_ = 0;
  std::uint64_t ended_migrations_ = 0;
};

}  // namespace roam::io
