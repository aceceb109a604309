// Name resolution off the event loop: getaddrinfo runs on a small pool of worker threads and the
// answer is posted back to the loop's thread (Loop::post), so a slow DNS server never stalls the
// other sessions.
//
// Callbacks run on the loop's thread. The owner must outlive every callback it registered or
// cancel them: cancel(id) guarantees the callback will not run. Destroying the Resolver joins its
// threads (waiting for lookups in progress) and drops every pending callback.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::io {

class Resolver {
 public:
  using Id = std::uint64_t;
  using Callback = std::function<void(core::Result<std::vector<SockAddr>>)>;

  Resolver(Loop& loop, unsigned threads = 4);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves `ep` (a name or a literal) for connecting; `done` runs later on the loop's thread.
  Id resolve(Endpoint ep, Callback done);
  void cancel(Id id);

 private:
  struct Job {
    Id id;
    Endpoint ep;
  };
  void work();

  Loop& loop_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
  // Loop thread only.
  std::unordered_map<Id, Callback> callbacks_;
  Id next_ = 1;
  // Shared with posted closures so that they can tell the Resolver is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace roam::io
