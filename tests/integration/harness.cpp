#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace roam::itest {
namespace {

// Writes to a pipe whose reader is gone must fail with EPIPE, not kill the test binary.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

void set_nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

bool is_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::uint16_t bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

}  // namespace

const char* roam_bin() { return ROAM_BIN; }

std::uint16_t parse_listening_port(const std::string& text) {
  static const std::string kKey = "listening on 127.0.0.1:";
  const auto at = text.find(kKey);
  if (at == std::string::npos) return 0;
  unsigned port = 0;
  std::size_t i = at + kKey.size(), digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 6; ++i, ++digits)
    port = port * 10 + static_cast<unsigned>(text[i] - '0');
  // The number must be complete (followed by something other than a digit) and a port.
  if (digits == 0 || i >= text.size() || port == 0 || port > 65535) return 0;
  return static_cast<std::uint16_t>(port);
}

// --- Process ---------------------------------------------------------------------------------

Process::Process(std::vector<std::string> argv, SpawnOptions opts) : argv_(std::move(argv)) {
  int err_pipe[2], in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (opts.pipe_stdin && ::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (opts.pipe_stdout && ::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (opts.pipe_stdin)
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  else
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (opts.pipe_stdout)
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  else
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);

  // The child starts with default signal dispositions and an empty mask (the test binary ignores
  // SIGPIPE; the child must not inherit that by accident).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  for (auto& e : opts.env_extra) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);

  const int rc = ::posix_spawn(&pid_, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(err_pipe[1]);
  if (opts.pipe_stdin) ::close(in_pipe[0]);
  if (opts.pipe_stdout) ::close(out_pipe[1]);
  if (rc != 0) {
    ::close(err_pipe[0]);
    if (opts.pipe_stdin) ::close(in_pipe[1]);
    if (opts.pipe_stdout) ::close(out_pipe[0]);
    throw std::runtime_error("posix_spawn " + argv_[0] + ": " + std::strerror(rc));
  }
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
  stderr_fd_ = err_pipe[0];
  set_nonblock(stderr_fd_);
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  drainer_ = std::thread([this] { drain_loop(); });
}

Process::~Process() {
  if (!status_ && running()) terminate();
  reap(0);
  const char c = 'x';
  (void)!::write(stop_pipe_[1], &c, 1);
  if (drainer_.joinable()) drainer_.join();
  for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_, pidfd_, stop_pipe_[0], stop_pipe_[1]})
    if (fd >= 0) ::close(fd);
}

int Process::take_stdin() { return std::exchange(stdin_fd_, -1); }
int Process::take_stdout() { return std::exchange(stdout_fd_, -1); }

// Reads whatever stderr holds right now (the fd is non-blocking). Caller holds mu_.
void Process::read_available_locked() const {
  char buf[4096];
  for (;;) {
    const ssize_t r = ::read(stderr_fd_, buf, sizeof buf);
    if (r > 0) {
      log_.append(buf, static_cast<std::size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) stderr_eof_ = true;
    return;
  }
}

void Process::drain_loop() {
  for (;;) {
    pollfd p[2] = {{stderr_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    const int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (p[0].revents) {
      std::lock_guard<std::mutex> lk(mu_);
      read_available_locked();
      cv_.notify_all();
      if (stderr_eof_) return;
      continue;
    }
    if (p[1].revents) return;
  }
}

bool Process::wait_for(const std::string& text, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] {
    if (!stderr_eof_) read_available_locked();
    return log_.find(text) != std::string::npos || stderr_eof_;
  }) && log_.find(text) != std::string::npos;
}

bool Process::wait_until(const std::function<bool(const std::string& log)>& pred,
                         std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] {
    if (!stderr_eof_) read_available_locked();
    return pred(log_) || stderr_eof_;
  }) && pred(log_);
}

std::uint16_t Process::wait_listening(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  std::uint16_t port = 0;
  cv_.wait_for(lk, timeout, [&] {
    if (!stderr_eof_) read_available_locked();
    port = parse_listening_port(log_);
    return port != 0 || stderr_eof_;
  });
  return port;
}

std::string Process::log() const {
  // Reads what is in the pipe now: a child that has exited may have written its last lines
  // after the drain thread's last wake-up.
  std::lock_guard<std::mutex> lk(mu_);
  if (!stderr_eof_) read_available_locked();
  return log_;
}

bool Process::reap(int flags) {
  if (status_) return true;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, flags);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return true;
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  if (reap(WNOHANG)) return status_;
  const auto deadline = Clock::now() + timeout;
  if (pidfd_ < 0) {
    // No pidfd (old kernel): a bounded blocking wait is the only option left.
    if (timeout.count() > 0) reap(0);
    return status_;
  }
  for (;;) {
    pollfd p{pidfd_, POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n > 0 && reap(WNOHANG)) return status_;
    if (n == 0 || Clock::now() >= deadline) return reap(WNOHANG) ? status_ : std::nullopt;
  }
}

bool Process::running() { return !reap(WNOHANG); }

int Process::terminate(std::chrono::milliseconds grace) {
  if (reap(WNOHANG)) return *status_;
  ::kill(pid_, SIGTERM);
  if (auto s = wait_exit(grace)) return *s;
  ::kill(pid_, SIGKILL);
  reap(0);
  return *status_;
}

std::string Process::describe() const {
  std::string cmd;
  for (auto& a : argv_) cmd += (cmd.empty() ? "" : " ") + a;
  return "$ " + cmd + "  (pid " + std::to_string(pid_) + ")\n--- stderr ---\n" + log() +
         "--------------";
}

// --- sockets ---------------------------------------------------------------------------------

DeadPort::DeadPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  port_ = bound_port(fd_);
}
DeadPort::~DeadPort() { ::close(fd_); }

int listen_loopback(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1:0");
  }
  port = bound_port(fd);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int accept_with_timeout(int listen_fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{listen_fd, POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) return fd;
  }
}

void reset_close(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

bool send_all(int fd, const void* data, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) return false;
    pollfd pf{fd, POLLOUT, 0};
    if (::poll(&pf, 1, remaining_ms(deadline)) <= 0 && Clock::now() >= deadline) return false;
  }
  return true;
}

std::vector<std::uint8_t> read_until_close(int fd, std::chrono::milliseconds timeout, ReadEnd& how,
                                           std::size_t max) {
  const auto deadline = Clock::now() + timeout;
  std::vector<std::uint8_t> out;
  std::uint8_t buf[4096];
  for (;;) {
    if (out.size() >= max) {
      how = ReadEnd::kMax;
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      how = ReadEnd::kTimeout;
      return out;
    }
    const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, max - out.size()), MSG_DONTWAIT);
    if (r > 0) {
      out.insert(out.end(), buf, buf + r);
      continue;
    }
    if (r == 0) {
      how = ReadEnd::kEof;
      return out;
    }
    if (errno == EINTR || errno == EAGAIN) continue;
    how = errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
    return out;
  }
}

const char* read_end_name(ReadEnd e) {
  switch (e) {
    case ReadEnd::kEof: return "EOF";
    case ReadEnd::kReset: return "reset";
    case ReadEnd::kError: return "error";
    case ReadEnd::kTimeout: return "timeout";
    case ReadEnd::kMax: return "max";
  }
  return "?";
}

// --- data ------------------------------------------------------------------------------------

std::string hex(const Digest& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

void PatternStream::fill(std::uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (left_ == 0) {
      // splitmix64
      std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word_ = z ^ (z >> 31);
      left_ = 8;
    }
    out[i] = static_cast<std::uint8_t>(word_);
    word_ >>= 8;
    --left_;
  }
}

Digest pattern_digest(std::uint64_t seed, std::uint64_t n) {
  PatternStream ps(seed);
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::vector<std::uint8_t> buf(1 << 16);
  while (n > 0) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
    ps.fill(buf.data(), k);
    crypto_hash_sha256_update(&st, buf.data(), k);
    n -= k;
  }
  Digest d;
  crypto_hash_sha256_final(&st, d.data());
  return d;
}

Gate::Gate(std::uint64_t allowed) : allowed_(allowed) {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}
Gate::~Gate() { ::close(fd_); }

void Gate::allow(std::uint64_t total) {
  std::uint64_t cur = allowed_.load();
  while (cur < total && !allowed_.compare_exchange_weak(cur, total)) {
  }
  const std::uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);
}

void Gate::clear() {
  std::uint64_t v;
  (void)!::read(fd_, &v, sizeof v);
}

std::string DuplexResult::summary() const {
  std::ostringstream o;
  o << "sent " << sent << " received " << received << (got_eof ? " eof" : "")
    << (got_reset ? " RESET" : "") << (timed_out ? " TIMEOUT" : "")
    << (error.empty() ? "" : " error: " + error) << " in " << seconds << " s";
  return o.str();
}

DuplexResult run_duplex(int read_fd, int write_fd, const DuplexOptions& opts) {
  DuplexResult res;
  const auto start = Clock::now();
  const auto deadline = start + opts.timeout;
  set_nonblock(read_fd);
  set_nonblock(write_fd);
  const bool sock = is_socket(write_fd);
  PatternStream pattern(opts.seed);
  crypto_hash_sha256_state sent_st, recv_st;
  crypto_hash_sha256_init(&sent_st);
  crypto_hash_sha256_init(&recv_st);
  std::vector<std::uint8_t> out(256 * 1024), in(256 * 1024);
  std::size_t out_off = 0, out_len = 0;
  bool write_done = opts.send_bytes == 0 && !opts.send_after_eof;
  bool read_done = false;
  if (write_done && opts.half_close) {
    if (sock) ::shutdown(write_fd, SHUT_WR);
    else ::close(write_fd);
  }

  auto finish = [&] {
    crypto_hash_sha256_final(&sent_st, res.sent_digest.data());
    crypto_hash_sha256_final(&recv_st, res.received_digest.data());
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return res;
  };

  while (!(write_done && read_done)) {
    if (Clock::now() >= deadline) {
      res.timed_out = true;
      return finish();
    }
    const bool may_send = !write_done && (!opts.send_after_eof || res.got_eof);
    const std::uint64_t allowed =
        opts.gate ? std::min(opts.send_bytes, opts.gate->allowed()) : opts.send_bytes;
    // Refill the send buffer.
    if (may_send && out_off == out_len && res.sent < allowed) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(allowed - res.sent, out.size()));
      pattern.fill(out.data(), k);
      out_off = 0;
      out_len = k;
    }
    pollfd p[4];
    nfds_t np = 0;
    int ri = -1, wi = -1, gi = -1, ci = -1;
    if (!read_done) {
      p[np] = {read_fd, POLLIN, 0};
      ri = static_cast<int>(np++);
    }
    const bool have_out = may_send && out_off < out_len;
    if (have_out) {
      if (write_fd == read_fd && ri >= 0) {
        p[ri].events |= POLLOUT;
        wi = ri;
      } else {
        p[np] = {write_fd, POLLOUT, 0};
        wi = static_cast<int>(np++);
      }
    } else if (may_send && opts.gate) {
      // Waiting for the gate to open further.
      p[np] = {opts.gate->fd(), POLLIN, 0};
      gi = static_cast<int>(np++);
    }
    if (np == 0) break;
    if (opts.cancel_fd >= 0) {
      p[np] = {opts.cancel_fd, POLLIN, 0};
      ci = static_cast<int>(np++);
    }
    const int wait_ms = remaining_ms(deadline);
    const int n = ::poll(p, np, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    if (ci >= 0 && p[ci].revents) {
      res.error = "cancelled";
      return finish();
    }
    if (gi >= 0 && p[gi].revents) opts.gate->clear();

    if (ri >= 0 && (p[ri].revents & (POLLIN | POLLHUP | POLLERR))) {
      for (int i = 0; i < 8; ++i) {
        const ssize_t r = ::read(read_fd, in.data(), in.size());
        if (r > 0) {
          crypto_hash_sha256_update(&recv_st, in.data(), static_cast<std::size_t>(r));
          res.received += static_cast<std::uint64_t>(r);
          if (opts.on_progress) opts.on_progress(res.received);
          if (opts.abort_after && res.received >= opts.abort_after) {
            if (sock) reset_close(read_fd);
            res.aborted = true;
            return finish();
          }
          continue;
        }
        if (r == 0) {
          res.got_eof = true;
          read_done = true;
          break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (errno == ECONNRESET) res.got_reset = true;
        else res.error = std::string("read: ") + std::strerror(errno);
        return finish();
      }
    }
    if (wi >= 0 && (p[wi].revents & (POLLOUT | POLLERR | POLLHUP)) && out_off < out_len) {
      const ssize_t w = sock ? ::send(write_fd, out.data() + out_off, out_len - out_off, MSG_NOSIGNAL)
                             : ::write(write_fd, out.data() + out_off, out_len - out_off);
      if (w > 0) {
        crypto_hash_sha256_update(&sent_st, out.data() + out_off, static_cast<std::size_t>(w));
        out_off += static_cast<std::size_t>(w);
        res.sent += static_cast<std::uint64_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        if (errno == ECONNRESET || errno == EPIPE) res.got_reset = true;
        else res.error = std::string("write: ") + std::strerror(errno);
        return finish();
      }
    }
    if (!write_done && res.sent == opts.send_bytes && (!opts.send_after_eof || res.got_eof)) {
      write_done = true;
      if (opts.half_close) {
        if (sock) ::shutdown(write_fd, SHUT_WR);
        else ::close(write_fd);
      }
    }
  }
  return finish();
}

Service::Service(DuplexOptions opts, std::chrono::milliseconds accept_timeout) {
  listen_fd_ = listen_loopback(port_);
  cancel_fd_ = ::eventfd(0, EFD_CLOEXEC);
  opts.cancel_fd = cancel_fd_;
  std::promise<DuplexResult> pr;
  result_ = pr.get_future();
  thread_ = std::thread([this, opts, accept_timeout, pr = std::move(pr)]() mutable {
    int fd = -1;
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {cancel_fd_, POLLIN, 0}};
    const auto deadline = Clock::now() + accept_timeout;
    for (;;) {
      const int n = ::poll(p, 2, remaining_ms(deadline));
      if (n < 0 && errno == EINTR) continue;
      if (n > 0 && p[0].revents) fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      break;
    }
    if (fd < 0) {
      DuplexResult r;
      r.error = "service: no connection (accept timed out or cancelled)";
      pr.set_value(r);
      return;
    }
    DuplexResult r = run_duplex(fd, fd, opts);
    if (!r.aborted) ::close(fd);
    pr.set_value(r);
  });
}

Service::~Service() {
  const std::uint64_t one = 1;
  (void)!::write(cancel_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(cancel_fd_);
}

DuplexResult Service::result() {
  if (thread_.joinable()) thread_.join();
  return result_.get();
}

ClientApp::ClientApp(std::uint16_t port, DuplexOptions opts) {
  cancel_fd_ = ::eventfd(0, EFD_CLOEXEC);
  opts.cancel_fd = cancel_fd_;
  std::promise<DuplexResult> pr;
  result_ = pr.get_future();
  thread_ = std::thread([port, opts, pr = std::move(pr)]() mutable {
    const int fd = connect_loopback(port);
    if (fd < 0) {
      DuplexResult r;
      r.error = std::string("connect: ") + std::strerror(errno);
      pr.set_value(r);
      return;
    }
    DuplexResult r = run_duplex(fd, fd, opts);
    if (!r.aborted) ::close(fd);
    pr.set_value(r);
  });
}

ClientApp::~ClientApp() {
  const std::uint64_t one = 1;
  (void)!::write(cancel_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(cancel_fd_);
}

DuplexResult ClientApp::result() {
  if (thread_.joinable()) thread_.join();
  return result_.get();
}

// --- RelayThread -----------------------------------------------------------------------------

RelayThread::RelayThread(std::uint16_t target_port) {
  relay_ = std::make_unique<io::CutRelay>(loop_, io::Endpoint{"127.0.0.1", 0},
                                          io::Endpoint{"127.0.0.1", target_port});
  auto ok = relay_->start();
  if (!ok) throw std::runtime_error("CutRelay: " + ok.error().detail);
  port_ = parse_listening_port("listening on " + relay_->bound() + "\n");
  thread_ = std::thread([this] { loop_.run(); });
}

RelayThread::~RelayThread() {
  loop_.post([this] {
    relay_.reset();
    loop_.stop();
  });
  thread_.join();
}

template <typename T>
T RelayThread::call(std::function<T()> fn) {
  std::promise<T> pr;
  auto fut = pr.get_future();
  loop_.post([&] { pr.set_value(fn()); });
  if (fut.wait_for(seconds(10)) != std::future_status::ready)
    throw std::runtime_error("relay loop did not answer");
  return fut.get();
}

std::size_t RelayThread::cut() {
  return call<std::size_t>([this] { return relay_->cut(); });
}
void RelayThread::freeze(bool on) {
  call<int>([this, on] {
    relay_->freeze(on);
    return 0;
  });
}
std::size_t RelayThread::live() {
  return call<std::size_t>([this] { return relay_->live(); });
}
std::uint64_t RelayThread::accepted() {
  return call<std::uint64_t>([this] { return relay_->accepted(); });
}

// --- TapProxy --------------------------------------------------------------------------------

TapProxy::TapProxy(std::uint16_t target_port, std::size_t keep)
    : target_(target_port), keep_(keep) {
  listen_fd_ = listen_loopback(port_);
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  acceptor_ = std::thread([this] { accept_loop(); });
}

TapProxy::~TapProxy() {
  ::close(stop_pipe_[1]);  // every poll sees POLLHUP on the read end
  acceptor_.join();
  for (auto& t : threads_) t.join();
  ::close(stop_pipe_[0]);
  ::close(listen_fd_);
}

void TapProxy::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) continue;
    if (p[1].revents) return;
    const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    const int s = connect_loopback(target_);
    if (s < 0) {
      reset_close(c);
      continue;
    }
    std::lock_guard<std::mutex> lk(mu_);
    recorded_.emplace_back();
    recorded_down_.emplace_back();
    const std::size_t index = recorded_.size() - 1;
    threads_.emplace_back([this, c, s, index] { relay(c, s, index); });
  }
}

void TapProxy::relay(int c, int s, std::size_t index) {
  set_nonblock(c);
  set_nonblock(s);
  // Per direction: bytes read but not yet written.
  struct Dir {
    int from, to;
    std::vector<std::uint8_t> buf;
    std::size_t off = 0;
    bool eof = false, shut = false;
  };
  Dir up{c, s, {}, 0, false, false}, down{s, c, {}, 0, false, false};
  std::uint8_t tmp[65536];
  bool broken = false;
  while (!broken && !(up.shut && down.shut)) {
    pollfd p[3] = {{c, 0, 0}, {s, 0, 0}, {stop_pipe_[0], POLLIN, 0}};
    for (Dir* d : {&up, &down}) {
      pollfd& pf_from = d->from == c ? p[0] : p[1];
      pollfd& pf_to = d->to == c ? p[0] : p[1];
      if (d->off < d->buf.size()) pf_to.events |= POLLOUT;
      else if (!d->eof) pf_from.events |= POLLIN;
    }
    if (::poll(p, 3, -1) < 0) continue;
    if (p[2].revents) break;
    for (Dir* d : {&up, &down}) {
      if (d->off == d->buf.size() && !d->eof) {
        const ssize_t r = ::recv(d->from, tmp, sizeof tmp, 0);
        if (r > 0) {
          d->buf.assign(tmp, tmp + r);
          d->off = 0;
          {
            std::lock_guard<std::mutex> lk(mu_);
            auto& rec = d == &up ? recorded_[index] : recorded_down_[index];
            const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(r),
                                                        keep_ - std::min(keep_, rec.size()));
            rec.insert(rec.end(), tmp, tmp + k);
            cv_.notify_all();
          }
        } else if (r == 0) {
          d->eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          broken = true;
          break;
        }
      }
      if (d->off < d->buf.size()) {
        const ssize_t w = ::send(d->to, d->buf.data() + d->off, d->buf.size() - d->off, MSG_NOSIGNAL);
        if (w > 0) d->off += static_cast<std::size_t>(w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          broken = true;
          break;
        }
      }
      if (d->off == d->buf.size() && d->eof && !d->shut) {
        ::shutdown(d->to, SHUT_WR);
        d->shut = true;
      }
    }
  }
  if (broken) {
    reset_close(c);
    reset_close(s);
  } else {
    ::close(c);
    ::close(s);
  }
}

std::vector<std::uint8_t> TapProxy::recorded(std::size_t i) {
  std::lock_guard<std::mutex> lk(mu_);
  return i < recorded_.size() ? recorded_[i] : std::vector<std::uint8_t>{};
}

std::optional<std::size_t> TapProxy::wait_recorded(std::size_t from, std::size_t bytes,
                                                   std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  std::optional<std::size_t> found;
  cv_.wait_for(lk, timeout, [&] {
    for (std::size_t i = recorded_.size(); i-- > from;)
      if (recorded_[i].size() >= bytes) {
        found = i;
        return true;
      }
    return false;
  });
  return found;
}

std::vector<std::uint8_t> TapProxy::recorded_down(std::size_t i) {
  std::lock_guard<std::mutex> lk(mu_);
  return i < recorded_down_.size() ? recorded_down_[i] : std::vector<std::uint8_t>{};
}

std::size_t TapProxy::connections() {
  std::lock_guard<std::mutex> lk(mu_);
  return recorded_.size();
}

}  // namespace roam::itest
