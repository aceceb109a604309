// The control socket every roam daemon serves, and the client side that `roam status` uses.
//
// Theory of operation. A daemon binds one Unix stream socket, `<dir>/<kind>-<pid>.sock`, in a
// directory only its user can enter (0700; the socket itself 0600), and serves it on its own
// epoll loop: each accepted connection gets one JSON document — the daemon's snapshot
// (io/registry.hpp) — written without blocking, and is closed. Nothing is read from the client,
// so there is no parser to attack. The socket is unlinked when the server is destroyed (a daemon
// killed with SIGKILL leaves it behind; `roam status` notes it as dead and skips it).
//
// The directory is `--control-dir`, else $ROAM_RUNTIME_DIR, else /run/roam for root, else
// $XDG_RUNTIME_DIR/roam, else /tmp/roam-$UID.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/common.hpp"
#include "io/loop.hpp"
#include "io/registry.hpp"

namespace roam::io {

// The control directory from the flag (empty: not given) and the environment, as described above.
std::string control_dir(const std::string& flag);

// Creates `dir` (0700) if missing; checks that it is a directory owned by this user, not a
// symbolic link, and not writable by others (an error otherwise).
core::Result<void> ensure_private_dir(const std::string& dir);

class ControlServer {
 public:
  ControlServer(Loop& loop, std::string dir, std::string kind);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  // Binds and starts serving. Errors say why (the daemon goes on without a control socket).
  core::Result<void> start();
  const std::string& path() const { return path_; }

 private:
  struct Client {
    std::string out;
    std::size_t off = 0;
  };
  void on_accept();
  void on_writable(int fd);
  void drop(int fd);

  Loop& loop_;
  std::string dir_;
  std::string kind_;
  std::string path_;
  int fd_ = -1;
  std::unordered_map<int, Client> clients_;
};

// One daemon found in the control directory: its snapshot, or why it was skipped.
struct ControlAnswer {
  std::string socket;
  bool ok = false;
  std::string error;  // when !ok
  DaemonSnapshot snapshot;
};

// Connects to every `*.sock` in `dir` (sorted by name) and reads each daemon's snapshot, waiting
// at most `timeout` per socket. A missing directory yields an empty list.
std::vector<ControlAnswer> query_control_dir(const std::string& dir,
                                             std::chrono::milliseconds timeout);

// The human-readable table of `roam status`: per daemon a heading line, then one row per session
// (id, role, peer, path, state, bytes each way, retained, migrations, last handover, wait).
std::string format_status_table(const std::vector<DaemonSnapshot>& daemons);
// Byte counts as people read them: "0 B", "512 B", "1.5 KiB", "64.0 MiB".
std::string human_bytes(std::uint64_t n);
// Durations: "-" for negative (none), "850 ms", "2.3 s", "4m05s", "1h02m".
std::string human_duration(double seconds);

}  // namespace roam::io
