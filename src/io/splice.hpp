// Zero-copy relay of two TCP sockets with splice(2) through pooled pipes (SPEC property 10), for
// plain SOCKS5 connections where no byte needs to be retained.
//
// Theory of operation. Each direction owns one pipe taken from a PipePool: splice(socket → pipe)
// while the pipe has room, splice(pipe → socket) while the pipe holds bytes; the bytes never enter
// user space. Socket interest is a pure function of the two directions' states (interest()):
// EPOLLIN on a source while its pipe has room and it has not ended, EPOLLOUT on a destination only
// while it refused bytes. A FIN is forwarded (shutdown SHUT_WR) only once its pipe is drained; the
// pair is done when both directions are shut (clean end: both sockets closed) or when either side
// fails (the other side is reset, so an abort carries through as an abort). Pipes still holding
// bytes are closed, empty ones go back to the pool. EINTR is retried, EAGAIN ends a pass.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/common.hpp"
#include "io/loop.hpp"

namespace roam::io {

class PipePool {
 public:
  // 256 KiB: on loopback 64 KiB, 256 KiB and 1 MiB pipes measured the same (within noise), and
  // pages are only allocated for bytes actually in a pipe.
  static constexpr int kDefaultPipeSize = 256 * 1024;
  struct Pipe {
    int r = -1;
    int w = -1;
  };
  // Keeps up to `keep` idle pipes; new pipes are sized to `size` bytes when the kernel allows.
  explicit PipePool(std::size_t keep = 256, int size = kDefaultPipeSize);
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;
  // A pipe (pooled or new); kLimit when the process is out of descriptors.
  core::Result<Pipe> take();
  // Returns a pipe: kept if `empty` and the pool has room, closed otherwise.
  void give(Pipe p, bool empty);
  std::size_t capacity() const { return static_cast<std::size_t>(size_); }
  std::size_t idle() const { return idle_.size(); }

 private:
  std::size_t keep_;
  int size_;
  std::vector<Pipe> idle_;
};

class SplicePair {
 public:
  struct Stats {
    std::uint64_t a_to_b = 0;
    std::uint64_t b_to_a = 0;
  };
  // `clean`: both directions ended with FIN; otherwise one side failed (reason in `why`).
  using Done = std::function<void(SplicePair&, bool clean, const std::string& why)>;

  // Takes ownership of the connected, non-blocking sockets `a` and `b`. `to_b_first` are bytes
  // already read from `a` (pipelined behind a SOCKS request) that go to `b` before anything else.
  // Call start(); `done` runs on the loop once both sockets are closed (the pair may be destroyed
  // from it).
  SplicePair(Loop& loop, PipePool& pool, int a, int b, std::vector<std::uint8_t> to_b_first, Done done);
  ~SplicePair();
  SplicePair(const SplicePair&) = delete;
  SplicePair& operator=(const SplicePair&) = delete;

  // kLimit when no pipe could be had (the caller then resets both sockets itself).
  core::Result<void> start();
  // Ends the pair now with RST on both sides.
  void abort(const std::string& why);
  const Stats& stats() const { return stats_; }
  bool finished() const { return finished_; }

 private:
  struct Dir {
    int from = -1;
    int to = -1;
    PipePool::Pipe pipe;
    std::size_t in_pipe = 0;      // bytes spliced in, not yet out
    std::vector<std::uint8_t> prefix;  // bytes to send before the pipe's
    std::size_t prefix_off = 0;
    bool eof = false;             // `from` reached EOF
    bool shut = false;            // FIN forwarded to `to`
    bool blocked = false;         // `to` refused bytes (ends a pass)
    std::uint64_t* counter = nullptr;
  };
  // Moves what can move in one direction; false (with `why`) when a socket failed.
  bool pump(Dir& d, std::string& why);
  void on_event(int fd, std::uint32_t events);
  void update_interest();
  void finish(bool clean, const std::string& why);
  static std::uint32_t interest(const Dir& reading, const Dir& writing, std::size_t cap);

  Loop& loop_;
  PipePool& pool_;
  int a_;
  int b_;
  Dir ab_;
  Dir ba_;
  Done done_;
  Stats stats_;
  bool started_ = false;
  bool finished_ = false;
  std::uint32_t mask_a_ = 0;
  std::uint32_t mask_b_ = 0;
};

}  // namespace roam::io
