// Test harness for the loopback integration tier: real `roam` processes, in-process data
// endpoints and a CutRelay on its own thread.
//
// Theory of operation. A Process is a child started with posix_spawn whose stderr is a pipe that a
// background thread drains (poll on the pipe and a stop pipe) into a buffer, so a chatty child
// never blocks on a full pipe and the log can be printed when a test fails. Readiness is the
// `listening on ADDR:PORT` line every daemon prints: wait_for() blocks on a condition variable
// until the text appears or the deadline passes — there are no sleeps anywhere. Exit is observed
// through a pidfd (poll), and a Process that is still running when destroyed gets SIGTERM, then
// SIGKILL after a bounded wait; processes are only ever signalled by their own PID.
//
// Data endpoints run the same duplex pump (run_duplex) on both ends: send `n` bytes of a seeded
// pseudo-random stream while reading everything the peer sends until EOF, hashing both with
// SHA-256. Every blocking step has a deadline; a stuck transfer fails instead of hanging.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/loop.hpp"
#include "io/relay.hpp"

namespace roam::itest {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

inline constexpr std::chrono::seconds kReadyTimeout{10};

// The `roam` binary built alongside the tests.
const char* roam_bin();

// --- processes -------------------------------------------------------------------------------

struct SpawnOptions {
  bool pipe_stdin = false;   // else /dev/null
  bool pipe_stdout = false;  // else /dev/null
  std::vector<std::string> env_extra;  // "NAME=value" added to the environment
};

class Process {
 public:
  // Starts argv[0] (a path) with `argv`. Throws std::runtime_error when posix_spawn fails.
  Process(std::vector<std::string> argv, SpawnOptions opts = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Write end of the child's stdin / read end of its stdout (-1 unless piped). The caller may
  // close them (set to -1 via take_*), ownership moves with take_*.
  int take_stdin();
  int take_stdout();

  // Waits until stderr contains `text` (searching from the start). False at the deadline or if
  // the child exited without printing it.
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout = kReadyTimeout);
  // Waits until `pred` holds for everything stderr holds so far (checked as it grows). False at
  // the deadline or if the child exited first without it holding.
  bool wait_until(const std::function<bool(const std::string& log)>& pred,
                  std::chrono::milliseconds timeout);
  // Waits for "listening on 127.0.0.1:PORT" and returns the port (0 on timeout).
  std::uint16_t wait_listening(std::chrono::milliseconds timeout = kReadyTimeout);
  // Everything the child wrote to stderr so far.
  std::string log() const;

  // Exit status once the child ended (WEXITSTATUS, or 128+signal), waiting up to `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();
  // SIGTERM, up to `grace` for an exit, then SIGKILL. Returns the exit status.
  int terminate(std::chrono::milliseconds grace = milliseconds(3000));

  std::string describe() const;

 private:
  void drain_loop();
  void read_available_locked() const;
  bool reap(int flags);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::optional<int> status_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  mutable std::string log_;
  mutable bool stderr_eof_ = false;
  std::thread drainer_;
};

// --- sockets ---------------------------------------------------------------------------------

// A TCP socket bound to 127.0.0.1:0 that does not listen: connections to its port are refused,
// and no other test can take the port while it lives.
class DeadPort {
 public:
  DeadPort();
  ~DeadPort();
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// Listening socket on 127.0.0.1:0 (blocking). Returns fd, sets `port`.
int listen_loopback(std::uint16_t& port);
// Blocking connect to 127.0.0.1:port; -1 on failure (errno set).
int connect_loopback(std::uint16_t port);
// accept() with a deadline; -1 on timeout or error.
int accept_with_timeout(int listen_fd, std::chrono::milliseconds timeout);
// Closes with RST.
void reset_close(int fd);
// Writes everything (poll for writability, deadline). False on error or timeout.
bool send_all(int fd, const void* data, std::size_t n, std::chrono::milliseconds timeout);
// Reads until EOF, error, `max` bytes or the deadline. `how` says which ended it.
enum class ReadEnd { kEof, kReset, kError, kTimeout, kMax };
std::vector<std::uint8_t> read_until_close(int fd, std::chrono::milliseconds timeout, ReadEnd& how,
                                           std::size_t max = 1 << 20);
const char* read_end_name(ReadEnd e);

// --- data ------------------------------------------------------------------------------------

using Digest = std::array<std::uint8_t, 32>;
std::string hex(const Digest& d);

// A seeded pseudo-random byte stream (splitmix64), position by position.
class PatternStream {
 public:
  explicit PatternStream(std::uint64_t seed) : state_(seed) {}
  void fill(std::uint8_t* out, std::size_t n);

 private:
  std::uint64_t state_;
  std::uint64_t word_ = 0;
  unsigned left_ = 0;
};
// SHA-256 of the first `n` bytes of the stream with this seed.
Digest pattern_digest(std::uint64_t seed, std::uint64_t n);

// Lets a pump send only up to a limit that another thread raises (paced transfers); one Gate
// per pump, since a wake-up is consumed by whoever reads it. The pump
// polls fd() (an eventfd that allow() signals) beside its socket.
class Gate {
 public:
  explicit Gate(std::uint64_t allowed);
  ~Gate();
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  void allow(std::uint64_t total);
  std::uint64_t allowed() const { return allowed_.load(); }
  int fd() const { return fd_; }
  void clear();  // consumes the wake-up

 private:
  std::atomic<std::uint64_t> allowed_;
  int fd_ = -1;
};

struct DuplexOptions {
  std::uint64_t send_bytes = 0;
  std::uint64_t seed = 0;
  // Send only after reading EOF from the peer (a service answering a half-closed request).
  bool send_after_eof = false;
  // Abort (RST) after receiving this many bytes (0 = never).
  std::uint64_t abort_after = 0;
  // After sending everything: shutdown(SHUT_WR) (sockets) or close (pipes).
  bool half_close = true;
  std::chrono::milliseconds timeout{60000};
  // Called from the pump's thread after each read with the cumulative bytes received.
  std::function<void(std::uint64_t)> on_progress;
  Gate* gate = nullptr;
  // When readable, the pump stops at once (set by Service/ClientApp: their destructors cancel).
  int cancel_fd = -1;
};

struct DuplexResult {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  Digest sent_digest{};
  Digest received_digest{};
  bool got_eof = false;
  bool got_reset = false;   // ECONNRESET (or EPIPE) on read or write
  bool timed_out = false;
  bool aborted = false;     // abort_after fired: the socket was reset and closed
  std::string error;        // anything else that went wrong
  double seconds = 0;
  std::string summary() const;
};

// Runs the duplex pump on `read_fd`/`write_fd` (the same fd for a socket). Sets both
// non-blocking. Does not close the fds (except write_fd for a pipe half-close).
DuplexResult run_duplex(int read_fd, int write_fd, const DuplexOptions& opts);

// A service that accepts one connection on 127.0.0.1:0 and runs run_duplex on it in a thread.
class Service {
 public:
  explicit Service(DuplexOptions opts, std::chrono::milliseconds accept_timeout = seconds(60));
  ~Service();
  std::uint16_t port() const { return port_; }
  // Waits for the pump to finish (bounded by the options' timeout + accept timeout). The
// destructor cancels a pump still running.
  DuplexResult result();

 private:
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  int cancel_fd_ = -1;
  std::future<DuplexResult> result_;
  std::thread thread_;
};

// Connects to 127.0.0.1:port and runs run_duplex in a thread.
class ClientApp {
 public:
  ClientApp(std::uint16_t port, DuplexOptions opts);
  ~ClientApp();
  DuplexResult result();

 private:
  int cancel_fd_ = -1;
  std::future<DuplexResult> result_;
  std::thread thread_;
};

// Received-byte counters of both pumps, with a wait for both to reach a mark.
class ProgressWatch {
 public:
  // Called from the pumps' on_progress (side 0 and 1).
  void note(int side, std::uint64_t n) {
    std::lock_guard<std::mutex> lk(mu_);
    got_[side] = n;
    cv_.notify_all();
  }
  bool wait_both(std::uint64_t mark, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return got_[0] >= mark && got_[1] >= mark; });
  }
  std::string text() {
    std::lock_guard<std::mutex> lk(mu_);
    return "app received " + std::to_string(got_[0]) + ", service received " + std::to_string(got_[1]);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t got_[2] = {0, 0};
};

// The usual live session of a test: a Service and a ClientApp that each send `bytes` of a seeded
// stream (down_seed from the service, up_seed from the app), both held at `first` bytes until the
// test allows more, their progress in one ProgressWatch (side 0: the app, side 1: the service).
struct GatedStreams {
  GatedStreams(std::uint64_t bytes, std::uint64_t first, std::uint64_t up_seed,
               std::uint64_t down_seed, std::chrono::milliseconds timeout)
      : svc_gate(first), app_gate(first) {
    service.send_bytes = app.send_bytes = bytes;
    service.seed = down_seed;
    app.seed = up_seed;
    service.timeout = app.timeout = timeout;
    service.gate = &svc_gate;
    app.gate = &app_gate;
    service.on_progress = [this](std::uint64_t n) { watch.note(1, n); };
    app.on_progress = [this](std::uint64_t n) { watch.note(0, n); };
  }
  GatedStreams(const GatedStreams&) = delete;
  GatedStreams& operator=(const GatedStreams&) = delete;
  // Lets both directions go up to `total` bytes.
  void allow(std::uint64_t total) {
    svc_gate.allow(total);
    app_gate.allow(total);
  }

  ProgressWatch watch;
  Gate svc_gate;
  Gate app_gate;
  DuplexOptions service;  // for Service(...)
  DuplexOptions app;      // for ClientApp(port, ...)
};

// --- relay -----------------------------------------------------------------------------------

// A CutRelay on its own io::Loop in a thread; every call is posted to the loop and waited for.
class RelayThread {
 public:
  // Listens on 127.0.0.1:0 and relays to 127.0.0.1:target_port.
  explicit RelayThread(std::uint16_t target_port);
  ~RelayThread();
  std::uint16_t port() const { return port_; }
  std::size_t cut();
  void freeze(bool on);
  std::size_t live();
  std::uint64_t accepted();

 private:
  template <typename T>
  T call(std::function<T()> fn);

  io::Loop loop_;
  std::unique_ptr<io::CutRelay> relay_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// A recording TCP proxy: 127.0.0.1:0 → 127.0.0.1:target, one thread per connection; keeps the
// first `keep` bytes each side sent. An error on either side resets both (a cut propagates).
class TapProxy {
 public:
  explicit TapProxy(std::uint16_t target_port, std::size_t keep = 4096);
  ~TapProxy();
  std::uint16_t port() const { return port_; }
  // Client→server bytes of connection `i` (0-based, in accept order) recorded so far.
  std::vector<std::uint8_t> recorded(std::size_t i);
  // Server→client bytes of connection `i` recorded so far.
  std::vector<std::uint8_t> recorded_down(std::size_t i);
  std::size_t connections();
  // Waits until some connection with index >= `from` has recorded at least `bytes` bytes;
  // returns its index, or nothing at the deadline.
  std::optional<std::size_t> wait_recorded(std::size_t from, std::size_t bytes,
                                           std::chrono::milliseconds timeout);

 private:
  void accept_loop();
  void relay(int client, int server, std::size_t index);

  std::uint16_t target_;
  std::size_t keep_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<std::uint8_t>> recorded_;
  std::vector<std::vector<std::uint8_t>> recorded_down_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// The port in "…listening on 127.0.0.1:PORT…" within `text`, or 0.
std::uint16_t parse_listening_port(const std::string& text);

}  // namespace roam::itest
