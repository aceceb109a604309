// A listening socket that hands every accepted connection to a callback. When the process runs
// out of descriptors (EMFILE/ENFILE) it stops accepting for 100 ms instead of spinning on a
// listener that stays readable (SPEC property 13).
#pragma once

#include <functional>
#include <string>

#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::io {

class Listener {
 public:
  // `on_accept` receives each new connection, non-blocking and close-on-exec; it owns the fd.
  using OnAccept = std::function<void(int fd)>;
  // The same, with the peer's address as accept4() returned it (no getpeername call).
  using OnAcceptFrom = std::function<void(int fd, const SockAddr& peer)>;
  Listener(Loop& loop, OnAccept on_accept);
  Listener(Loop& loop, OnAcceptFrom on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and starts accepting. The error names the address. `tune` (see listen_on) sets TCP
  // options on the listening socket that every accepted socket then inherits; accepted_tuned()
  // says whether it did (not for a socket inherited from a `--workers` parent, which may have
  // queued connections before: the owner then tunes each accepted socket itself).
  core::Result<void> start(const Endpoint& ep, const std::function<void(int fd)>& tune = {});
  bool accepted_tuned() const { return tuned_; }
  // The address actually bound (port 0 resolved), after start().
  const std::string& bound() const { return bound_; }

 private:
  void on_ready();

  Loop& loop_;
  OnAcceptFrom on_accept_;
  int fd_ = -1;
  bool tuned_ = false;
  std::string bound_;
  Loop::TimerId pause_ = 0;
};

}  // namespace roam::io
