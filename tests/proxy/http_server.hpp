// A tiny HTTP/1.0 file server for the proxy tests: every GET is answered with `size` bytes of a
// seeded pattern stream (PatternStream), so the client's SHA-256 can be checked against
// pattern_digest(). It counts accepted connections and notices resets, which is how the tests see
// that the server-side connection never noticed a mobile host's re-attachments. Sending can be
// paced (allow()) so that a test cuts the mobile leg while a download is in flight.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace roam::ptest {

class HttpServer {
 public:
  HttpServer(std::uint64_t size, std::uint64_t seed,
             std::uint64_t allowed = std::numeric_limits<std::uint64_t>::max());
  ~HttpServer();
  std::uint16_t port() const { return port_; }
  // Lets the body go out up to `total` bytes (across all connections).
  void allow(std::uint64_t total);
  // Waits until at least `n` body bytes were sent (false on timeout).
  bool wait_sent(std::uint64_t n, std::chrono::milliseconds timeout);
  std::uint64_t connections() const { return connections_.load(); }
  std::uint64_t resets() const { return resets_.load(); }
  std::uint64_t completed() const { return completed_.load(); }
  std::uint64_t sent() const { return sent_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  std::uint64_t size_;
  std::uint64_t seed_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t allowed_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> resets_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> sent_{0};
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace roam::ptest
