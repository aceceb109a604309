#include "io/listener.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "io/workers.hpp"

namespace roam::io {
namespace {
constexpr Duration kAcceptPause = std::chrono::milliseconds(100);
}

Listener::Listener(Loop& loop, OnAccept on_accept)
    : loop_(loop), on_accept_([f = std::move(on_accept)](int fd, const SockAddr&) { f(fd); }) {}

Listener::Listener(Loop& loop, OnAcceptFrom on_accept)
    : loop_(loop), on_accept_(std::move(on_accept)) {}

Listener::~Listener() {
  if (pause_) loop_.cancel(pause_);
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
  }
}

core::Result<void> Listener::start(const Endpoint& ep, const std::function<void(int fd)>& tune) {
  // A worker of `--workers N` takes the socket its parent bound (SO_REUSEPORT, io/workers.hpp).
  auto inherited = take_inherited_listener(ep);
  auto fd = inherited ? core::Result<int>(*inherited) : listen_on(ep, tune);
  if (!fd) return tl::unexpected(fd.error());
  fd_ = *fd;
  tuned_ = tune && !inherited;
  bound_ = local_address(fd_);
  loop_.add(fd_, EPOLLIN, [this](std::uint32_t) { on_ready(); });
  return {};
}

void Listener::on_ready() {
  for (;;) {
    SockAddr peer;
    peer.len = sizeof peer.ss;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer.ss), &peer.len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      on_accept_(fd, peer);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) {
      spdlog::warn("out of file descriptors; pausing accept for 100 ms");
      loop_.modify(fd_, 0);
      pause_ = loop_.at(loop_.now() + kAcceptPause, [this] {
        pause_ = 0;
        loop_.modify(fd_, EPOLLIN);
      });
    }
    return;
  }
}

}  // namespace roam::io
