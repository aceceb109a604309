// `roam server`: accepts roam sessions and forwards each one's bytes to one fixed target.
//
// New connections are classified by their first frame: HELLO starts a session (the target is
// connected only once the handshake completed), MIGRATE is routed by token to its session, and
// anything else is refused. Unfinished connections are bounded by a deadline and a global cap;
// when the cap is full the oldest unfinished one is evicted, never the newcomer.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/session/dispatcher.hpp"
#include "core/session/handoff.hpp"
#include "io/listener.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/session_driver.hpp"

namespace roam::io {

class Handoff;

struct ServerConfig {
  Endpoint listen;
  Endpoint forward;
  core::SessionConfig session;
  std::size_t max_unfinished = 4096;
  // Sessions in the wait state at once (--max-waiting); beyond it the one that has waited
  // longest ends (its target sees a RST). Each holds its target socket and retention buffers.
  std::size_t max_waiting = 4096;
  // Embedding (libroam): when set, each established session is handed to this callback (which may
  // attach an application or set an observer) instead of being forwarded to `forward`.
  std::function<void(SessionDriver&)> on_session = nullptr;
  // --workers N: migrate requests for sessions this worker does not hold go round the ring.
  Handoff* handoff = nullptr;
};

class Server {
 public:
  Server(Loop& loop, ServerConfig cfg);
  ~Server();
  // Binds and starts accepting; prints "listening on ADDR:PORT" to the log.
  core::Result<void> start();
  // The address actually bound (after start()).
  std::string bound() const { return listener_.bound(); }
  std::size_t session_count() const { return drivers_.size(); }
  // Aborts every session (SIGTERM).
  void abort_all(const std::string& why);
  // --workers: a MIGRATE connection another worker passed on (io::Handoff's receiver).
  void adopt_handoff(int fd, std::vector<std::uint8_t> bytes, core::Hop hop) {
    admit_migrate(fd, std::move(bytes), peer_address(fd), hop);
  }

 private:
  struct Pending {
    int fd = -1;
    std::vector<std::uint8_t> buf;
    core::Time deadline;
    std::string peer;
  };
  struct Target {
    int fd = -1;
    Loop::TimerId timer = 0;
  };
  void on_accept(int fd, const SockAddr& peer);
  void on_pending(int fd);
  void drop_pending(int fd);
  void sweep_pending();
  void start_session(Pending p);
  // A connection whose first frame is MIGRATE: routed to its session, passed to another worker,
  // or refused.
  void admit_migrate(int fd, std::vector<std::uint8_t> buf, const std::string& peer, core::Hop hop);
  // HELLOs are started after every other ready connection of this loop pass has been read, so
  // migrate checks (one HMAC) are served before new handshakes (an X25519 each; SPEC 13).
  void queue_hello(Pending p);
  void start_hellos();
  void connect_target(SessionDriver& d);
  // The connect to the target finished with `err` (0: connected): attach it or end the session.
  void target_ready(core::Session* key, int err);
  void on_finished(SessionDriver& d);

  Loop& loop_;
  ServerConfig cfg_;
  Listener listener_;
  core::SessionTable table_;
  std::list<Pending> pending_;  // oldest first
  std::unordered_map<int, std::list<Pending>::iterator> pending_by_fd_;
  std::unordered_map<core::Session*, std::unique_ptr<SessionDriver>> drivers_;
  std::unordered_map<core::Session*, Target> targets_;
  core::ArrivalOrder<SessionDriver*> handshaking_;  // handshakes in progress, oldest first
  core::ArrivalOrder<SessionDriver*> waiting_;  // sessions in the wait state, longest first
  Loop::TimerId pending_timer_ = 0;
  std::vector<Pending> hellos_;   // classified HELLOs waiting for the end of this loop pass
  Loop::TimerId hello_timer_ = 0;
  std::uint64_t session_counter_ = 0;
  std::vector<SockAddr> forward_literal_;  // --forward's address when it is a literal
};

}  // namespace roam::io
