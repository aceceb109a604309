// libroam's implementation types behind the public handles (include/roam/roam.hpp).
//
// Theory of operation. A Context owns an io::Loop and every client SessionDriver it started; the
// io::Servers it owns hold the server-side drivers. Each driver has an Observer (a libroam hook in
// SessionDriver) that feeds a Connection::State: core events become the `established`,
// `path_lost`, `migrated` and `closed` callbacks, and the end of every sync pass is where new bytes
// (`readable`) and room (`writable`) are noticed. Application calls act on the core Session
// directly (read copies out of the receive ring, write copies into the retention ring: no extra
// buffer) and then "kick" the driver: one deferred sync on the loop, coalesced, so a call made
// inside a callback (while the driver is mid-sync) is never lost and never re-enters it.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "io/loop.hpp"
#include "io/netmon.hpp"
#include "io/server.hpp"
#include "io/session_driver.hpp"
#include "roam/roam.hpp"

namespace roam {

// Aborts the process with `what` when called off the loop thread while the loop runs (a data race
// in the caller: STYLE's second tier, a release assert with a reason).
void require_loop_thread(const Context::Impl& ctx, const char* what);

struct Context::Impl {
  io::Loop loop;  // declared first: destroyed last
  std::atomic<bool> running{false};
  std::atomic<std::thread::id> loop_thread{};
  std::thread background;
  bool dying = false;  // the Context is being destroyed: no more user callbacks
  std::unordered_map<io::SessionDriver*, std::unique_ptr<io::SessionDriver>> clients;
  std::set<io::SessionDriver*> watching;  // clients that follow rtnetlink
  std::unique_ptr<io::NetlinkMonitor> monitor;
  std::vector<std::unique_ptr<io::Server>> servers;
  std::uint64_t client_counter = 0;

  bool on_loop_thread() const {
    return !running.load() || loop_thread.load() == std::this_thread::get_id();
  }
  void start_watching(io::SessionDriver& d);
};

struct Connection::State : std::enable_shared_from_this<Connection::State> {
  Context::Impl* ctx = nullptr;
  io::SessionDriver* driver = nullptr;  // null once the driver is gone
  bool client = false;
  std::shared_ptr<Handlers> handlers = std::make_shared<Handlers>();
  std::atomic<int> user_handles{0};
  bool established = false;
  bool ended = false;
  bool shut = false;
  bool discard = false;        // close(): received bytes are dropped
  bool eof_dropped = false;    // close(): the peer's end of stream was consumed too
  bool eof_read = false;       // read() returned 0
  bool want_writable = false;  // a write() found no room
  bool kick_pending = false;
  std::uint64_t notified_rx = 0;  // bytes_received() when `readable` last fired
  std::uint64_t delivered = 0;    // bytes read (or discarded by close) by the application
  CloseInfo close_info;
  std::string name;

  // Binds to `d`: sets its observer. `established` for a server session (handed over after its
  // handshake).
  void bind(io::SessionDriver& d, bool is_client);
  // One deferred sync of the driver on the loop (coalesced).
  void kick();
  void on_event(const core::Event& e);
  void on_synced();
  void on_gone();
  void drop_received();  // close(): consume and discard everything readable
  void close();
  bool callbacks_allowed() const { return ctx && !ctx->dying; }
};

}  // namespace roam
