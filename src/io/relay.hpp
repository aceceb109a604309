// A TCP relay that can cut every connection through it on command: the stand-in for a network
// that breaks, used by `roam demo`, the integration tests and the benchmarks. Not part of the
// roam protocol.
//
// cut() resets both halves of every relayed connection (each side sees ECONNRESET, as when a
// NAT drops its mapping); freeze() stops moving bytes without closing anything (a path that dies
// silently, which only heartbeats can detect). Single-threaded on its Loop; use Loop::post to
// drive it from another thread.
#pragma once

#include <list>
#include <memory>
#include <vector>

#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::io {

class CutRelay {
 public:
  CutRelay(Loop& loop, Endpoint listen, Endpoint target);
  ~CutRelay();
  core::Result<void> start();
  std::string bound() const { return bound_; }
  // Resets every connection now; returns how many were cut.
  std::size_t cut();
  // Stops (true) or resumes (false) moving bytes on every connection, current and future.
  void freeze(bool on);
  std::size_t live() const { return pairs_.size(); }
  std::uint64_t accepted() const { return accepted_; }

 private:
  struct Half {
    int fd = -1;
    std::vector<std::uint8_t> buf;  // bytes read from the other side that this side refused
    std::size_t off = 0;
    bool eof_in = false;   // the other side sent FIN
    bool shut = false;     // FIN forwarded to this side
  };
  struct Pair {
    Half a;  // accepted side
    Half b;  // target side
    bool connected = false;
  };
  void on_accept();
  void on_event(Pair* p);
  bool pump(Pair* p, Half& from, Half& to);
  void update(Pair* p);
  void drop(Pair* p, bool reset);

  Loop& loop_;
  Endpoint listen_ep_;
  Endpoint target_;
  int listen_fd_ = -1;
  std::string bound_;
  bool frozen_ = false;
  std::uint64_t accepted_ = 0;
  std::list<std::unique_ptr<Pair>> pairs_;
  std::vector<std::uint8_t> scratch_;  // every pair reads into it (one loop thread)
};

}  // namespace roam::io
