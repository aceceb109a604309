// Binds one core::Session to its sockets: the paths to the peer and the local application's
// byte stream (a forwarded TCP socket, or stdin/stdout).
//
// Theory of operation. Every socket event and timer ends in sync(), which moves bytes until
// nothing more can move: application → retention buffer (read straight into write_space, the
// zero-copy send path), retention → path (writev of poll_transmit), path → receive ring
// (recv into recv_space), receive ring → application. Socket interest is derived from the
// session's state after each pass (EPOLLOUT only while a path wants to write, EPOLLIN on the
// application only while the retention buffer has room: backpressure). A client driver also
// opens new connections when the session asks (take_connect_request).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/session/session.hpp"
#include "core/session/probe_gate.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/netmon.hpp"
#include "io/registry.hpp"

namespace roam::io {

core::PathId next_path_id();

struct AppIo {
  int in_fd = -1;
  int out_fd = -1;
  bool is_socket = false;  // in_fd == out_fd, a TCP socket (RST on abort)
};

class SessionDriver {
 public:
  struct Hooks {
    std::function<void(SessionDriver&)> on_established;  // handshake complete
    std::function<void(SessionDriver&)> on_finished;     // closed and all sockets released
    // No application attached yet and the peer's bytes (or its EOF) are readable: the owner may
    // consume them from session() (roam proxy reads the SOCKS request inside the session).
    std::function<void(SessionDriver&)> on_app_data;
    // The session entered (true: its path was lost) or left (false: migrated) the wait state.
    std::function<void(SessionDriver&, bool waiting)> on_wait;
  };

  SessionDriver(Loop& loop, std::unique_ptr<core::Session> session, std::string name, Hooks hooks);
  ~SessionDriver();
  SessionDriver(const SessionDriver&) = delete;
  SessionDriver& operator=(const SessionDriver&) = delete;

  // Client: the server to (re)connect to; resolved again on every attempt.
  void set_server(Endpoint server) { server_ = std::move(server); }
  // Client: which interface paths use (--prefer, --interface).
  void set_policy(PathPolicy policy) { policy_ = std::move(policy); }
  // Client: the host's addresses or routes changed; migrate if the path in use is no longer the
  // one the kernel (and the policy) would choose, or retry at once if the session is waiting.
  void on_network_change();
  // Client: opens the first connection.
  void start();
  // A connected socket that is already a path of this session (the server's first connection,
  // or a migrate connection routed here). `id` must be the id the session knows.
  void adopt_path(int fd, core::PathId id);
  // Server: a connection whose first frame is a MIGRATE for this session.
  void add_migrate_path(int fd, core::Bytes initial);
  // The application's byte stream (the server attaches it once the target is connected).
  void attach_app(AppIo app);
  // Ends the session with CLOSE (e.g. the target refused); the client's application sees abort.
  void abort(const std::string& why);
  // Asks for a migration now (an address or route event).
  void migrate_now();
  // An embedding application's view of the session (libroam, src/lib): every core event after the
  // driver handled it, the end of every sync() pass (bytes may have become readable or writable;
  // called outside sync, so the observer may write, consume, abort and call sync()), and the
  // driver's destruction. All on the loop thread; none of them may destroy the driver.
  struct Observer {
    std::function<void(const core::Event&)> on_event;
    std::function<void()> on_synced;
    std::function<void()> on_gone;
  };
  void set_observer(Observer o) { observer_ = std::move(o); }

  core::Session& session() { return *session_; }
  const std::string& name() const { return name_; }
  // What `roam status` and the metrics show about this session (loop thread only).
  SessionInfo info(core::Time now) const;
  bool finished() const { return finished_; }
  // Exit status for stdio mode: 0 clean, 1 error (never established), 3 abort.
  int exit_status() const;
  const std::string& error_text() const { return error_text_; }
  // Client: every new path first writes `send` and then expects exactly `expect` from the peer
  // before the session protocol (roam socks: the SOCKS5 greeting offering roam's method and the
  // proxy's choice of it). A different answer fails that path.
  void set_path_prologue(std::vector<std::uint8_t> send, std::vector<std::uint8_t> expect) {
    prologue_send_ = std::move(send);
    prologue_expect_ = std::move(expect);
  }

  void sync();

 private:
  struct PathSock {
    int fd = -1;
    core::PathId id = 0;
    bool connecting = false;
    Loop::TimerId connect_timer = 0;
    std::string where;
    std::string source;  // local IP (intended, while connecting)
    std::string gate_key;  // a reconnect attempt admitted by the shared ProbeGate (until it resolves)
  };

  void on_path_event(core::PathId id, std::uint32_t events);
  void read_path(PathSock& ps);
  void write_path(PathSock& ps);
  void close_path_socket(core::PathId id, bool reset);
  void on_app_event(std::uint32_t events);
  void pump_app_in();
  void pump_app_out();
  void connect_new_path();
  // Closes every connection attempt still in progress (the session found its path).
  void abandon_probes();
  // The reconnect probes every session of this thread shares (SPEC 7), and the callback it
  // calls when one of them connects while this session waits: reconnect at once.
  static core::ProbeGate& probe_gate();
  void wake_for_probe();
  // A connection attempt failed with `why`: during the handshake, try the server's next address
  // (each resolved address once, in order) and end the session only when none is left.
  void first_connect_failed(const std::string& why);
  void handle_events();
  // Records an event for info() and the registry's counters.
  void note_for_status(const core::Event& e);
  void update_interest();
  void schedule_timer();
  void on_timer();
  void finish();
  void release_app(bool clean);

  Loop& loop_;
  std::unique_ptr<core::Session> session_;
  std::string name_;
  Hooks hooks_;
  Observer observer_;
  std::optional<Endpoint> server_;
  PathPolicy policy_;
  std::unordered_map<core::PathId, PathSock> paths_;
  AppIo app_;
  bool app_attached_ = false;
  bool app_in_eof_ = false;
  bool app_out_shut_ = false;
  bool app_in_registered_ = false;
  bool app_in_always_ready_ = false;
  bool app_out_blocked_ = false;
  bool finished_ = false;
  bool closing_ = false;
  bool in_sync_ = false;
  bool ever_established_ = false;
  int connecting_ = 0;
  std::size_t addr_index_ = 0;      // connection attempts since the last success (rotation)
  std::size_t candidate_count_ = 0; // the server's reachable addresses at the last attempt
  Loop::TimerId timer_ = 0;
  core::Time timer_at_ = core::Time::never();
  Loop::TimerId linger_timer_ = 0;
  Loop::TimerId finish_timer_ = 0;  // the deferred on_finished hook
  Loop::TimerId wake_timer_ = 0;    // a shared probe connected: reconnect now (ProbeGate)
  std::string error_text_;
  // Monitoring (io/registry.hpp): when the current wait began, all finished waits, the last
  // handover latency, the client's latest address (server side).
  core::Time created_at_{};
  std::optional<core::Time> waiting_since_;
  core::Duration waited_{0};
  std::optional<core::Duration> last_handover_;
  std::string peer_seen_;
  // Path prologue (set_path_prologue): bytes of `prologue_expect_` each path still has to read.
  bool read_prologue(PathSock& ps);
  std::vector<std::uint8_t> prologue_send_;
  std::vector<std::uint8_t> prologue_expect_;
  std::unordered_map<core::PathId, std::size_t> prologue_read_;
};

}  // namespace roam::io
