#include "io/loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace roam::io {
namespace {

// What epoll is told for an interest mask. The kernel always reports EPOLLHUP and EPOLLERR, and
// level-triggered it reports them on every epoll_wait for as long as they hold: a socket that is
// fully shut down (our FIN sent, the peer's read) with no interest left (a session waiting for its
// peer's last frame, a splice that finished one side) would be returned on every pass and its
// handler run each time, a busy loop until the owner closes it (measured: a third of `roam
// server`'s CPU during connection churn). With no interest, the hang-up or error is reported
// edge-triggered instead: once when it happens (and again on a later state change), which is all
// a handler with nothing to read or write can act on. Re-arming with EPOLLIN or EPOLLOUT
// (level-triggered) re-checks the socket's state at once, so nothing is missed.
std::uint32_t kernel_mask(std::uint32_t events) { return events == 0 ? std::uint32_t{EPOLLET} : events; }

}  // namespace

Time boot_now() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return Time{std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)};
}

Loop::Loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)), now_(boot_now()) {
  if (epfd_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  add(wake_fd_, EPOLLIN, [this](std::uint32_t) {
    std::uint64_t v = 0;
    (void)!::read(wake_fd_, &v, sizeof v);
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard<std::mutex> lock(posted_mu_);
      fns.swap(posted_);
    }
    for (auto& fn : fns) fn();
  });
}

Loop::~Loop() {
  ::close(wake_fd_);
  ::close(epfd_);
}

void Loop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

bool Loop::add(int fd, std::uint32_t events, FdHandler h) {
  epoll_event ev{};
  ev.events = kernel_mask(events);
  ev.data.fd = fd;
  auto it = fds_.find(fd);
  if (it != fds_.end() && !it->second.handler) {
    // Released by its previous owner and still registered: keep the registration.
    if (it->second.events == events ||
        epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0 ||
        (errno == ENOENT && epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0)) {
      it->second = Entry{std::make_shared<FdHandler>(std::move(h)), events};
      return true;
    }
    fds_.erase(it);
    return false;
  }
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  fds_[fd] = Entry{std::make_shared<FdHandler>(std::move(h)), events};
  return true;
}

void Loop::release(int fd) {
  auto it = fds_.find(fd);
  if (it != fds_.end()) it->second.handler.reset();
}

void Loop::modify(int fd, std::uint32_t events) {
  auto it = fds_.find(fd);
  if (it == fds_.end() || it->second.events == events) return;
  epoll_event ev{};
  ev.events = kernel_mask(events);
  ev.data.fd = fd;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  it->second.events = events;
}

void Loop::remove(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(it);
}

Loop::TimerId Loop::at(Time when, TimerFn fn) {
  const TimerId id = next_timer_++;
  timers_.emplace(when, id);
  timer_fns_.emplace(id, std::make_pair(when, std::move(fn)));
  return id;
}

void Loop::cancel(TimerId id) {
  auto it = timer_fns_.find(id);
  if (it == timer_fns_.end()) return;
  auto range = timers_.equal_range(it->second.first);
  for (auto t = range.first; t != range.second; ++t)
    if (t->second == id) {
      timers_.erase(t);
      break;
    }
  timer_fns_.erase(it);
}

void Loop::run() {
  running_ = true;
  std::vector<epoll_event> events(64);
  while (running_) {
    int timeout_ms = -1;
    now_ = boot_now();
    if (!timers_.empty()) {
      const Duration d = timers_.begin()->first - now_;
      timeout_ms = d.count() <= 0
                       ? 0
                       : static_cast<int>(std::min<std::int64_t>(
                             (d.count() + 999'999) / 1'000'000, 60'000));
    }
    const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
    now_ = boot_now();
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      auto it = fds_.find(fd);
      if (it == fds_.end()) continue;
      if (!it->second.handler) {  // released and not taken over within its pass
        remove(fd);
        continue;
      }
      auto handler = it->second.handler;  // keep alive even if the handler removes itself
      (*handler)(events[static_cast<std::size_t>(i)].events);
    }
    while (!timers_.empty() && timers_.begin()->first <= now_) {
      const TimerId id = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto it = timer_fns_.find(id);
      if (it == timer_fns_.end()) continue;
      TimerFn fn = std::move(it->second.second);
      timer_fns_.erase(it);
      fn();
    }
  }
}

}  // namespace roam::io
