// A small epoll event loop with timers. Time is read once per iteration from CLOCK_BOOTTIME
// (keeps counting through suspend, so a migrate wait measured across a laptop's sleep is right).
//
// Handlers run on the loop's thread; they may add/modify/remove fds and timers, including their
// own. EINTR is retried; nothing here blocks except epoll_wait.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <unordered_map>

#include "core/common.hpp"

namespace roam::io {

using core::Duration;
using core::Time;

Time boot_now();

class Loop {
 public:
  using FdHandler = std::function<void(std::uint32_t events)>;
  using TimerFn = std::function<void()>;
  using TimerId = std::uint64_t;

  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Registers `fd` for `events` (EPOLLIN/EPOLLOUT...). Returns false if epoll refuses the fd
  // (e.g. a regular file); the caller then treats it as always ready. EPOLLHUP and EPOLLERR are
  // always reported: level-triggered while `events` holds EPOLLIN or EPOLLOUT, but with no
  // interest (events == 0) only when they occur, not on every pass (see kernel_mask in loop.cpp).
  bool add(int fd, std::uint32_t events, FdHandler h);
  void modify(int fd, std::uint32_t events);
  void remove(int fd);
  // Hands `fd` over to a new owner without epoll_ctl calls: its handler is dropped at once, but the
  // kernel registration stays until the next add() of the same fd (which then only swaps in the
  // new handler, or modifies the mask if it differs: no EPOLL_CTL_DEL + EPOLL_CTL_ADD pair). Events
  // that arrive in between go to no handler; a released fd still registered when epoll reports it
  // on a later pass is removed then. Contract: the owner re-adds or remove()s a released fd before
  // closing it (a closed fd's number may be reused for a socket the kernel does not watch).
  void release(int fd);

  TimerId at(Time when, TimerFn fn);
  void cancel(TimerId id);

  // The time frozen for this iteration.
  Time now() const { return now_; }
  void refresh_now() { now_ = boot_now(); }

  // Thread-safe: runs `fn` on the loop's thread at its next iteration (wakes it up).
  void post(std::function<void()> fn);

  // Runs until stop(); returns after the iteration in which stop() was called.
  void run();
  void stop() { running_ = false; }
  bool running() const { return running_; }

 private:
  struct Entry {
    std::shared_ptr<FdHandler> handler;  // null: released (still registered in the kernel)
    std::uint32_t events = 0;
  };
  int epfd_;
  bool running_ = false;
  Time now_{};
  std::unordered_map<int, Entry> fds_;
  std::multimap<Time, TimerId> timers_;
  std::unordered_map<TimerId, std::pair<Time, TimerFn>> timer_fns_;
  TimerId next_timer_ = 1;
  int wake_fd_ = -1;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
};

}  // namespace roam::io
