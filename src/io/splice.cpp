#include "io/splice.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/net.hpp"

namespace roam::io {
namespace {
// Passes per event: enough to drain a full pipe several times, bounded so one busy pair cannot
// starve the others.
constexpr int kPumpBudget = 8;
}  // namespace

PipePool::PipePool(std::size_t keep, int size) : keep_(keep), size_(size) {}

PipePool::~PipePool() {
  for (const Pipe& p : idle_) {
    ::close(p.r);
    ::close(p.w);
  }
}

core::Result<PipePool::Pipe> PipePool::take() {
  if (!idle_.empty()) {
    Pipe p = idle_.back();
    idle_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
    return core::fail(core::Errc::kLimit, std::string("pipe: ") + std::strerror(errno));
  const int got = ::fcntl(fds[1], F_SETPIPE_SZ, size_);
  if (got < 0) {
    // Not allowed that much (pipe-max-size): keep the kernel's default and remember it.
    const int cur = ::fcntl(fds[1], F_GETPIPE_SZ);
    if (cur > 0) size_ = cur;
  }
  return Pipe{fds[0], fds[1]};
}

void PipePool::give(Pipe p, bool empty) {
  if (p.r < 0) return;
  if (empty && idle_.size() < keep_) {
    idle_.push_back(p);
    return;
  }
  ::close(p.r);
  ::close(p.w);
}

SplicePair::SplicePair(Loop& loop, PipePool& pool, int a, int b, std::vector<std::uint8_t> to_b_first,
                       Done done)
    : loop_(loop), pool_(pool), a_(a), b_(b), done_(std::move(done)) {
  ab_.from = a;
  ab_.to = b;
  ab_.prefix = std::move(to_b_first);
  ab_.counter = &stats_.a_to_b;
  ba_.from = b;
  ba_.to = a;
  ba_.counter = &stats_.b_to_a;
}

SplicePair::~SplicePair() {
  if (!finished_) {
    if (started_) {
      loop_.remove(a_);
      loop_.remove(b_);
    }
    reset_close(a_);
    reset_close(b_);
    pool_.give(ab_.pipe, false);
    pool_.give(ba_.pipe, false);
  }
}

core::Result<void> SplicePair::start() {
  auto p1 = pool_.take();
  if (!p1) return tl::unexpected(p1.error());
  auto p2 = pool_.take();
  if (!p2) {
    pool_.give(*p1, true);
    return tl::unexpected(p2.error());
  }
  ab_.pipe = *p1;
  ba_.pipe = *p2;
  started_ = true;
  loop_.add(a_, 0, [this](std::uint32_t ev) { on_event(a_, ev); });
  loop_.add(b_, 0, [this](std::uint32_t ev) { on_event(b_, ev); });
  on_event(-1, 0);
  return {};
}

void SplicePair::abort(const std::string& why) {
  if (finished_) return;
  finish(false, why);
}

bool SplicePair::pump(Dir& d, std::string& why) {
  for (int pass = 0; pass < kPumpBudget; ++pass) {
    bool moved = false;
    // Out: the prefix first, then the pipe.
    while (d.prefix_off < d.prefix.size()) {
      const ssize_t n = ::send(d.to, d.prefix.data() + d.prefix_off, d.prefix.size() - d.prefix_off,
                               MSG_NOSIGNAL);
      if (n > 0) {
        d.prefix_off += static_cast<std::size_t>(n);
        *d.counter += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        d.blocked = true;
        return true;
      }
      why = std::string("send: ") + std::strerror(errno);
      return false;
    }
    if (!d.prefix.empty()) {
      d.prefix.clear();
      d.prefix.shrink_to_fit();
      d.prefix_off = 0;
    }
    if (d.in_pipe > 0) {
      const ssize_t n = ::splice(d.pipe.r, nullptr, d.to, nullptr, d.in_pipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.in_pipe -= static_cast<std::size_t>(n);
        *d.counter += static_cast<std::size_t>(n);
        d.blocked = false;
        moved = true;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        d.blocked = true;
      } else {
        why = std::string("splice out: ") + (n == 0 ? "no progress" : std::strerror(errno));
        return false;
      }
    } else {
      d.blocked = false;
    }
    const std::size_t room = pool_.capacity() > d.in_pipe ? pool_.capacity() - d.in_pipe : 0;
    if (!d.eof && room > 0) {
      const ssize_t n = ::splice(d.from, nullptr, d.pipe.w, nullptr, room,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.in_pipe += static_cast<std::size_t>(n);
        moved = true;
      } else if (n == 0) {
        d.eof = true;
        moved = true;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        why = std::string("splice in: ") + std::strerror(errno);
        return false;
      }
    }
    if (d.eof && d.in_pipe == 0 && !d.shut) {
      d.shut = true;
      ::shutdown(d.to, SHUT_WR);
    }
    if (!moved || d.blocked) break;
  }
  return true;
}

std::uint32_t SplicePair::interest(const Dir& reading, const Dir& writing, std::size_t cap) {
  std::uint32_t ev = 0;
  if (!reading.eof && reading.in_pipe < cap && reading.prefix.empty()) ev |= EPOLLIN;
  // Bytes waiting for the destination (a partial write leaves some without an EAGAIN).
  if (writing.in_pipe > 0 || writing.prefix_off < writing.prefix.size()) ev |= EPOLLOUT;
  return ev;
}

void SplicePair::update_interest() {
  const std::uint32_t ma = interest(ab_, ba_, pool_.capacity());
  const std::uint32_t mb = interest(ba_, ab_, pool_.capacity());
  if (ma != mask_a_) loop_.modify(a_, mask_a_ = ma);
  if (mb != mask_b_) loop_.modify(b_, mask_b_ = mb);
}

void SplicePair::on_event(int fd, std::uint32_t events) {
  if (finished_) return;
  std::string why;
  const std::uint64_t before = stats_.a_to_b + stats_.b_to_a;
  const bool eofs_before = ab_.eof && ba_.eof;
  if (!pump(ab_, why) || !pump(ba_, why)) {
    finish(false, why);
    return;
  }
  if (ab_.shut && ba_.shut) {
    finish(true, {});
    return;
  }
  if ((events & (EPOLLERR | EPOLLHUP)) && fd >= 0 &&
      stats_.a_to_b + stats_.b_to_a == before && eofs_before == (ab_.eof && ba_.eof)) {
    // Hung up or failed without anything left to move: a reset (level-triggered, it would spin).
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    finish(false, std::string(fd == a_ ? "client" : "server") + " side: " +
                      (err ? std::strerror(err) : "hung up"));
    return;
  }
  update_interest();
}

void SplicePair::finish(bool clean, const std::string& why) {
  finished_ = true;
  if (started_) {
    loop_.remove(a_);
    loop_.remove(b_);
  }
  if (clean) {
    ::close(a_);
    ::close(b_);
  } else {
    reset_close(a_);
    reset_close(b_);
  }
  pool_.give(ab_.pipe, ab_.in_pipe == 0);
  pool_.give(ba_.pipe, ba_.in_pipe == 0);
  ab_.pipe = {};
  ba_.pipe = {};
  if (done_) {
    // Deferred: the callback may destroy this pair.
    loop_.at(loop_.now(), [this, clean, why] { done_(*this, clean, why); });
  }
}

}  // namespace roam::io
