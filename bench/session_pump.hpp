// A minimal non-blocking poll(2) shell around one core::Session on one TCP connection, for the
// benchmarks. It does what src/io/session_driver.cpp does on the path side (recv into
// recv_space, writev of poll_transmit, timers, events) without the application socket: the
// benchmark itself plays the application through write_space/commit_write and readable/consume.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "bench_util.hpp"
#include "core/crypto/crypto.hpp"
#include "core/session/dispatcher.hpp"
#include "core/session/session.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::bench {

// Reads per wakeup, as the real driver (kReadBudget).
inline constexpr int kIoBudget = 16;

class SessionPump {
 public:
  SessionPump(std::unique_ptr<core::Session> s, int fd, core::PathId id)
      : s_(std::move(s)), fd_(fd), id_(id) {}

  core::Session& session() { return *s_; }
  bool established() const { return established_; }
  // The session ended and everything queued on the path was written (a server then closes its
  // socket: that EOF is what lets a complete client end cleanly).
  bool finished() const {
    return s_->state() == core::State::kClosed && (path_dead_ || s_->path_done(id_));
  }

  void read(core::Time now) {
    for (int i = 0; i < kIoBudget; ++i) {
      core::MutBytes space = s_->recv_space(id_);
      const ssize_t n = ::recv(fd_, space.data(), space.size(), 0);
      ++stats.recvs;
      if (n > 0) {
        stats.recv_bytes += static_cast<std::uint64_t>(n);
        s_->on_received(id_, static_cast<std::size_t>(n), now);
        if (static_cast<std::size_t>(n) < space.size()) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n == 0)
        s_->on_path_eof(id_, now);  // a complete client ends cleanly on the server's EOF
      else
        s_->on_path_error(id_, now, std::strerror(errno));
      s_->recv_space(id_);
      path_dead_ = true;
      break;
    }
    drain_events();
  }

  void write(core::Time now) {
    if (path_dead_) return;
    for (int i = 0; i < kIoBudget; ++i) {
      core::IoSlices sl = s_->poll_transmit(id_, now);
      if (sl.count == 0) break;
      iovec iov[core::IoSlices::kMax];
      for (std::size_t k = 0; k < sl.count; ++k) {
        iov[k].iov_base = const_cast<std::uint8_t*>(sl.slice[k].data());
        iov[k].iov_len = sl.slice[k].size();
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = sl.count;
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      ++stats.sends;
      if (n > 0) {
        stats.send_bytes += static_cast<std::uint64_t>(n);
        s_->on_transmitted(id_, static_cast<std::size_t>(n), now);
        if (static_cast<std::size_t>(n) < sl.total()) break;
        continue;
      }
      s_->on_transmitted(id_, 0, now);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      s_->on_path_error(id_, now, std::strerror(errno));
      path_dead_ = true;
      break;
    }
    drain_events();
  }

  // Waits for socket readiness or the session's next deadline, then does the I/O and timers.
  void wait_and_service() {
    core::Time now = io::boot_now();
    const core::Time deadline = s_->next_deadline();
    int timeout = -1;
    if (deadline != core::Time::never()) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      timeout = ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms + 1, 1000));
    }
    pollfd p{fd_, static_cast<short>(POLLIN | (s_->wants_write(id_) ? POLLOUT : 0)), 0};
    if (path_dead_) p.fd = -1;
    ++stats.polls;
    if (!(p.events & POLLOUT) && s_->bytes_sent() > 0 && s_->write_space().empty()) ++stats.polls_without_out;
    const int r = ::poll(&p, 1, timeout);
    if (r < 0 && errno != EINTR) die("poll");
    now = io::boot_now();
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) read(now);
    if (p.revents & POLLOUT) write(now);
    if (now >= s_->next_deadline()) {
      s_->on_timeout(now);
      drain_events();
    }
  }

  // Counters for diagnosis (printed with ROAM_BENCH_DEBUG).
  struct Stats {
    std::uint64_t recvs = 0, recv_bytes = 0, sends = 0, send_bytes = 0, polls = 0,
                  polls_without_out = 0;
  } stats;
  void print_stats(const char* who) const {
    if (!std::getenv("ROAM_BENCH_DEBUG")) return;
    std::fprintf(stderr, "  [%s] polls %llu (credit-blocked %llu) recvs %llu (avg %.0f B) sends %llu (avg %.0f B)\n", who,
                 (unsigned long long)stats.polls, (unsigned long long)stats.polls_without_out,
                 (unsigned long long)stats.recvs, stats.recvs ? double(stats.recv_bytes) / double(stats.recvs) : 0.0,
                 (unsigned long long)stats.sends, stats.sends ? double(stats.send_bytes) / double(stats.sends) : 0.0);
  }

  void drain_events() {
    while (auto e = s_->poll_event()) {
      if (e->type == core::EventType::kEstablished) established_ = true;
      if (e->type == core::EventType::kClosed && !e->clean)
        std::fprintf(stderr, "bench: session aborted: %s\n", e->error.detail.c_str());
      if (std::getenv("ROAM_BENCH_DEBUG")) std::fprintf(stderr, "[%s] event %d state %s clean %d sent %llu recv %llu\n", s_->is_client() ? "c" : "s", static_cast<int>(e->type), core::state_name(s_->state()), e->clean, static_cast<unsigned long long>(s_->bytes_sent()), static_cast<unsigned long long>(s_->bytes_received()));
      if (e->type == core::EventType::kPathLost)
        std::fprintf(stderr, "bench: path lost: %s\n", e->error.detail.c_str());
    }
  }

 private:
  std::unique_ptr<core::Session> s_;
  int fd_;
  core::PathId id_;
  bool established_ = false;
  bool path_dead_ = false;
};

inline void make_nonblocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// Client side: a connected socket becomes the first path of a new client session.
inline std::unique_ptr<SessionPump> client_pump(const core::SessionConfig& cfg, core::crypto::Rng& rng,
                                                int fd) {
  make_nonblocking(fd);
  io::tune_path_socket(fd, cfg.heartbeat * cfg.dead_after_beats);
  const core::Time now = io::boot_now();
  auto s = core::Session::client(cfg, rng, now);
  s->attach_path(1, now);
  return std::make_unique<SessionPump>(std::move(s), fd, 1);
}

// Server side, as src/io/server.cpp: read until classify_first accepts the first frame, then
// Session::accept with the bytes read so far.
inline std::unique_ptr<SessionPump> server_pump(const core::SessionConfig& cfg, core::crypto::Rng& rng,
                                                int fd) {
  io::tune_path_socket(fd, cfg.heartbeat * cfg.dead_after_beats);
  std::vector<std::uint8_t> buf;
  std::uint8_t tmp[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);  // still blocking here
    if (n <= 0) die("recv first frame");
    buf.insert(buf.end(), tmp, tmp + n);
    auto first = core::classify_first(buf);
    if (first) break;
    if (first.error().code != core::Errc::kNeedMore) {
      std::fprintf(stderr, "bench: bad first frame: %s\n", first.error().detail.c_str());
      std::exit(1);
    }
  }
  make_nonblocking(fd);
  auto s = core::Session::accept(cfg, rng, 1, buf, io::boot_now());
  return std::make_unique<SessionPump>(std::move(s), fd, 1);
}

}  // namespace roam::bench
