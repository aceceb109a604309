#include "io/relay.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace roam::io {
namespace {
constexpr std::size_t kRelayBuffer = 256 * 1024;
}

CutRelay::CutRelay(Loop& loop, Endpoint listen, Endpoint target)
    : loop_(loop), listen_ep_(std::move(listen)), target_(std::move(target)) {}

CutRelay::~CutRelay() {
  while (!pairs_.empty()) drop(pairs_.front().get(), false);
  if (listen_fd_ >= 0) {
    loop_.remove(listen_fd_);
    ::close(listen_fd_);
  }
}

core::Result<void> CutRelay::start() {
  auto fd = listen_on(listen_ep_);
  if (!fd) return tl::unexpected(fd.error());
  listen_fd_ = *fd;
  bound_ = local_address(listen_fd_);
  loop_.add(listen_fd_, EPOLLIN, [this](std::uint32_t) { on_accept(); });
  return {};
}

void CutRelay::on_accept() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto addrs = resolve(target_, false);
    if (!addrs) {
      reset_close(fd);
      continue;
    }
    auto out = connect_start(addrs->front());
    if (!out) {
      reset_close(fd);
      continue;
    }
    ++accepted_;
    auto p = std::make_unique<Pair>();
    p->a.fd = fd;
    p->b.fd = *out;
    Pair* raw = p.get();
    pairs_.push_back(std::move(p));
    loop_.add(raw->a.fd, 0, [this, raw](std::uint32_t) { on_event(raw); });
    loop_.add(raw->b.fd, EPOLLOUT, [this, raw](std::uint32_t) { on_event(raw); });
  }
}

void CutRelay::on_event(Pair* p) {
  if (!p->connected) {
    if (connect_result(p->b.fd) != 0) {
      drop(p, true);
      return;
    }
    p->connected = true;
  }
  // pump() frees `p` when the connection breaks: never touch it after a false.
  if (!frozen_ && (!pump(p, p->a, p->b) || !pump(p, p->b, p->a))) return;
  if (p->a.shut && p->b.shut) {
    drop(p, false);
    return;
  }
  update(p);
}

// Moves bytes read from `from` into `to`. Returns false after dropping (freeing) `p`. Bytes are
// read into the relay's one scratch buffer and written on at once; only what `to` does not take
// is kept in `to.buf` (sized to it, freed once written), so a pair that flows holds no buffer.
bool CutRelay::pump(Pair* p, Half& from, Half& to) {
  for (;;) {
    if (to.off < to.buf.size()) {
      const ssize_t n = ::send(to.fd, to.buf.data() + to.off, to.buf.size() - to.off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        drop(p, true);
        return false;
      }
      to.off += static_cast<std::size_t>(n);
      if (to.off < to.buf.size()) return true;
      std::vector<std::uint8_t>().swap(to.buf);
      to.off = 0;
    }
    if (to.eof_in) {
      if (!to.shut) {
        ::shutdown(to.fd, SHUT_WR);
        to.shut = true;
      }
      return true;
    }
    if (scratch_.empty()) scratch_.resize(kRelayBuffer);
    const ssize_t n = ::recv(from.fd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      ssize_t sent = ::send(to.fd, scratch_.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          drop(p, true);
          return false;
        }
        sent = 0;
      }
      if (sent < n) {  // `to` is full: keep the rest until it can take it
        to.buf.assign(scratch_.begin() + sent, scratch_.begin() + n);
        to.off = 0;
        return true;
      }
      continue;
    }
    if (n == 0) {
      to.eof_in = true;
      continue;
    }
    if (errno == EAGAIN || errno == EINTR) return true;
    drop(p, true);
    return false;
  }
}

void CutRelay::update(Pair* p) {
  if (frozen_) {
    loop_.modify(p->a.fd, 0);
    loop_.modify(p->b.fd, 0);
    return;
  }
  // Interest: read a side while the opposite buffer is empty; write a side with pending bytes.
  const std::uint32_t a_ev = ((p->b.buf.empty() && !p->b.eof_in) ? EPOLLIN : 0u) |
                             (p->a.off < p->a.buf.size() ? EPOLLOUT : 0u);
  const std::uint32_t b_ev = ((p->a.buf.empty() && !p->a.eof_in) ? EPOLLIN : 0u) |
                             (p->b.off < p->b.buf.size() ? EPOLLOUT : 0u);
  loop_.modify(p->a.fd, a_ev);
  loop_.modify(p->b.fd, b_ev);
}

void CutRelay::drop(Pair* p, bool reset) {
  for (auto it = pairs_.begin(); it != pairs_.end(); ++it) {
    if (it->get() != p) continue;
    for (Half* h : {&p->a, &p->b}) {
      loop_.remove(h->fd);
      if (reset)
        reset_close(h->fd);
      else
        ::close(h->fd);
    }
    pairs_.erase(it);
    return;
  }
}

std::size_t CutRelay::cut() {
  const std::size_t n = pairs_.size();
  while (!pairs_.empty()) drop(pairs_.front().get(), true);
  return n;
}

void CutRelay::freeze(bool on) {
  frozen_ = on;
  for (auto& p : pairs_) {
    if (!on) {
      on_event(p.get());
      break;  // on_event may drop; the rest resume on their next readiness
    }
    update(p.get());
  }
  if (!on)
    for (auto& p : pairs_) update(p.get());
}

}  // namespace roam::io
