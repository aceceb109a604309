// What a running roam daemon is doing, for `roam status`, the Prometheus metrics and the status
// page.
//
// Theory of operation. Every SessionDriver registers itself with the process-wide Registry when it
// is created and leaves when it is destroyed; the drivers report events (handshake done or failed,
// migration with its latency, end) and the daemons report refusals by reason. Counters live under
// the registry's mutex and may be bumped from any thread. The sessions themselves belong to their
// loop's thread, so a snapshot — plain structs, no pointers — is taken on that thread only:
// snapshot(loop) lists the drivers of that loop. Other threads (the metrics HTTP server) ask the
// loop for one with snapshot_via_loop(), which posts the work and waits with a deadline.
//
// Byte counters are monotonic: bytes of sessions that ended are added to a running total when
// their driver leaves, and a snapshot adds the live sessions' current values.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/common.hpp"

namespace roam::io {

class Loop;
class SessionDriver;

// One session as `roam status` shows it.
struct SessionInfo {
  std::string id;       // first 4 bytes of the session token in hex ("-" before the handshake)
  std::string role;     // "client" or "server"
  std::string name;     // the daemon's name for it (log prefix), e.g. "s3 127.0.0.1:5555"
  std::string peer;     // client: the server it talks to; server: the client's latest address
  std::string local;    // the active path's local address ("" while there is none)
  std::string remote;   // the active path's remote address
  std::string state;    // core::state_name()
  std::uint64_t bytes_sent = 0;      // application bytes written into the session
  std::uint64_t bytes_received = 0;  // bytes received from the peer
  std::uint64_t retained = 0;        // unacknowledged bytes held for resume
  std::uint64_t migrations = 0;
  double last_handover_s = -1;  // latency of the last migration (path lost → new path), -1: none
  double waiting_s = 0;         // how long the session has been without a path (0: it has one)
  double waited_total_s = 0;    // all time spent without a path, finished waits included
  double age_s = 0;
};

// Handover latency buckets, in seconds (upper bounds; +Inf is implicit).
inline constexpr std::array<double, 12> kHandoverBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5,   1,    2.5,   5,    10,  60};

struct Histogram {
  std::array<std::uint64_t, kHandoverBuckets.size() + 1> counts{};  // per bucket, last = +Inf
  double sum = 0;
  std::uint64_t count = 0;
  void observe(double seconds);
};

// One migration, for the status page's chart.
struct HandoverPoint {
  double unix_time = 0;  // when it completed (seconds since 1970)
  double seconds = 0;    // its latency
  std::string id;        // the session
};

// Everything one daemon reports.
struct DaemonSnapshot {
  std::string kind;    // "server", "connect", "proxy", "socks" ("" before set_daemon)
  std::string listen;  // the address it accepts on ("stdio" for `roam connect` on stdin/stdout)
  std::string version;
  long pid = 0;
  double uptime_s = 0;
  double unix_time = 0;  // when the snapshot was taken
  std::vector<SessionInfo> sessions;
  std::uint64_t sessions_started = 0;
  std::uint64_t ended_clean = 0;
  std::uint64_t ended_aborted = 0;
  std::uint64_t handshakes_ok = 0;
  std::uint64_t handshakes_failed = 0;
  std::uint64_t migrations = 0;
  std::uint64_t bytes_sent = 0;      // all sessions, live and ended
  std::uint64_t bytes_received = 0;
  std::uint64_t retained = 0;        // live sessions
  std::map<std::string, std::uint64_t> refusals;  // by reason
  Histogram handover;
  std::vector<HandoverPoint> recent;  // the latest migrations, oldest first
  // --workers N > 1 (io/workers.hpp): this process is worker `worker` (1-based) of `workers`;
  // both 0 for a single process. Handoffs: migrate requests passed to the next worker / taken
  // from the previous one.
  unsigned worker = 0;
  unsigned workers = 0;
  std::uint64_t handoffs_passed = 0;
  std::uint64_t handoffs_received = 0;
};

class Registry {
 public:
  // How many migrations the status page's chart keeps.
  static constexpr std::size_t kRecentHandovers = 120;

  Registry();
  // What this process is (set once the daemon listens).
  void set_daemon(std::string kind, std::string listen);
  // This process is worker `index` (1-based) of `count` (--workers).
  void set_worker(unsigned index, unsigned count);
  // A migrate request passed to the next worker (`passed`) or taken from the previous one.
  void on_handoff(bool passed);

  // SessionDriver bookkeeping (its constructor, its destructor with its final byte counts).
  void add(const SessionDriver* d, const Loop* loop);
  void remove(const SessionDriver* d, std::uint64_t bytes_sent, std::uint64_t bytes_received);

  // Events. Thread-safe.
  void on_handshake(bool ok);
  void on_migrated(core::Duration took, const std::string& id);
  void on_closed(bool clean);
  // A connection or request refused, by a short stable reason ("unknown_session", "not_roam"...).
  void on_refused(std::string_view reason);

  // The daemon and the sessions of `loop`. Call on `loop`'s thread only (it reads the sessions).
  DaemonSnapshot snapshot(const Loop& loop, core::Time now) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<const SessionDriver*, const Loop*> drivers_;
  std::string kind_;
  std::string listen_;
  unsigned worker_ = 0;
  unsigned workers_ = 0;
  std::uint64_t handoffs_passed_ = 0;
  std::uint64_t handoffs_received_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::uint64_t sessions_started_ = 0;
  std::uint64_t ended_clean_ = 0;
  std::uint64_t ended_aborted_ = 0;
  std::uint64_t handshakes_ok_ = 0;
  std::uint64_t handshakes_failed_ = 0;
  std::uint64_t migrations_ = 0;
  std::uint64_t ended_bytes_sent_ = 0;
  std::uint64_t ended_bytes_received_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> refusals_;
  Histogram handover_;
  std::deque<HandoverPoint> recent_;
};

// The process-wide registry.
Registry& registry();

// From any thread: a snapshot taken on `loop`'s thread, or nothing if the loop did not answer
// within `timeout` (stopped or stuck).
std::optional<DaemonSnapshot> snapshot_via_loop(Loop& loop, std::chrono::milliseconds timeout);

// JSON form (the control socket's answer, `roam status --json`, the status page's data).
nlohmann::json to_json(const DaemonSnapshot& s);
// Reads what to_json wrote; unknown fields are ignored, a missing or mistyped one is an error.
core::Result<DaemonSnapshot> snapshot_from_json(const nlohmann::json& j);

}  // namespace roam::io
