// `roam server --workers N` and `roam proxy --workers N`: N worker processes serving one listening
// address, each with its own event loop, sessions, limiter and control socket (like nginx).
//
// Theory of operation (docs/DESIGN.md §Workers).
//   Start-up. The parent binds N listening sockets to the same address with SO_REUSEPORT (the
//   first one resolves port 0; the others bind to the address it got), so the kernel spreads new
//   connections over the workers by a hash of the 4-tuple — an even split whatever each worker's
//   wake-up order (a shared accept queue lets one busy worker take most connections). It creates
//   a ring of SOCK_SEQPACKET socketpairs, blocks SIGCHLD, and forks the workers BEFORE any thread
//   exists (the caller calls run_workers() before building its loop, resolver or observer). Each
//   worker keeps its own listener, the send end to worker i+1 and the receive end from worker
//   i-1, and dies with the parent (PR_SET_PDEATHSIG).
//   Migrate requests. A MIGRATE that reaches a worker not holding its session is passed around the
//   ring with its descriptor and the bytes read so far (io::Handoff; core/session/handoff.hpp);
//   the holder takes it as if it had accepted it, and when nobody holds it the accepting worker
//   answers as one process would (same REFUSED bytes, its own limiter charged).
//   Signals. The parent waits for SIGTERM/SIGINT (passed to every worker as SIGTERM; a worker
//   still running after 1.5 s gets SIGKILL), SIGHUP (passed on: each worker reloads) and SIGCHLD.
//   A worker that ends while nobody asked it to is logged with its exit status or signal; the
//   parent then stops the others and exits 1 (a supervisor such as systemd restarts the daemon).
//   With N = 1 nothing of this runs: the daemon is the single process it always was.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/session/dispatcher.hpp"
#include "core/session/handoff.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::io {

// What the parent hands each worker.
struct WorkerContext {
  unsigned index = 0;  // 0-based; logs and `roam status` say "worker index+1/count"
  unsigned count = 1;
  int send_fd = -1;  // ring: to worker (index + 1) % count
  int recv_fd = -1;  // ring: from worker (index - 1) % count
};

// Runs the daemon. With `workers` <= 1: returns worker_main(nullptr) in this process. Otherwise
// binds `listen` N times (SO_REUSEPORT), forks N workers and returns, in each worker,
// worker_main(&its context) (its Listener takes the inherited socket: take_inherited_listener),
// and in the parent the supervisor's exit status (0 after a requested stop, 1 when binding or
// forking failed or a worker died unasked). Call it before any thread exists, with SIGTERM,
// SIGINT and SIGHUP blocked (apps::block_signals).
int run_workers(unsigned workers, const Endpoint& listen,
                const std::function<int(const WorkerContext*)>& worker_main);

// In a worker: the listening socket the parent bound for `ep` (once; later calls get nothing),
// else nothing (a single process binds its own). Used by Listener::start.
std::optional<int> take_inherited_listener(const Endpoint& ep);

// "exited with status 3", "was killed by signal 9 (SIGKILL)" for a waitpid() status.
std::string describe_exit(int wait_status);

// One worker's end of the ring: passes MIGRATE connections it does not hold to the next worker
// and delivers the ones the previous worker passed to `on_receive`.
class Handoff {
 public:
  // `fd`: the connection (non-blocking, close-on-exec, owned by the receiver from then on);
  // `bytes`: what was read from it (the roam bytes: preamble and MIGRATE); `hop`: for pass().
  using OnReceive = std::function<void(int fd, std::vector<std::uint8_t> bytes, core::Hop hop)>;
  Handoff(Loop& loop, const WorkerContext& ctx);
  ~Handoff();
  Handoff(const Handoff&) = delete;
  Handoff& operator=(const Handoff&) = delete;
  void set_receiver(OnReceive on_receive) { on_receive_ = std::move(on_receive); }

  // For a connection whose first frame is MIGRATE, which arrived with `hop` ({} when accepted
  // here): when this worker does not hold its session and core::hop_action says pass, sends it
  // to the next worker and returns true (the descriptor is closed here once sent). Returns false
  // when the caller answers it itself (SessionTable::admit_migrate, exactly as one process).
  bool pass(const core::SessionTable& table, int fd, core::Bytes bytes, const core::Hop& hop);
  const WorkerContext& context() const { return ctx_; }

 private:
  struct Queued {
    int fd;
    std::vector<std::uint8_t> msg;
  };
  bool send_one(int fd, const std::vector<std::uint8_t>& msg);  // false: EAGAIN
  void on_writable();
  void on_readable();

  Loop& loop_;
  WorkerContext ctx_;
  OnReceive on_receive_;
  std::deque<Queued> queue_;  // waiting for room in the socketpair (the sibling is busy)
};

}  // namespace roam::io
