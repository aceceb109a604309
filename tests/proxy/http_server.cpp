#include "http_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace roam::ptest {

using namespace roam::itest;

HttpServer::HttpServer(std::uint64_t size, std::uint64_t seed, std::uint64_t allowed)
    : size_(size), seed_(seed), allowed_(allowed) {
  listen_fd_ = listen_loopback(port_);
  if (::pipe(stop_pipe_) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
  acceptor_ = std::thread([this] { accept_loop(); });
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (stop_pipe_[1] >= 0) (void)!::write(stop_pipe_[1], "x", 1);
  acceptor_.join();
  for (auto& t : threads_) t.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

void HttpServer::allow(std::uint64_t total) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    allowed_ = total;
  }
  cv_.notify_all();
}

bool HttpServer::wait_sent(std::uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return sent_.load() >= n; });
}

void HttpServer::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) continue;
    if (p[1].revents) return;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++connections_;
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void HttpServer::serve(int fd) {
  // Read the request head.
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, 30000) <= 0 || p[1].revents) {
      ::close(fd);
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == ECONNRESET) ++resets_;
      ::close(fd);
      return;
    }
    head.append(buf, static_cast<std::size_t>(n));
  }
  const std::string hdr = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                          std::to_string(size_) + "\r\nConnection: close\r\n\r\n";
  if (!send_all(fd, hdr.data(), hdr.size(), std::chrono::milliseconds(30000))) {
    ++resets_;
    ::close(fd);
    return;
  }
  PatternStream ps(seed_);
  std::vector<std::uint8_t> chunk(256 * 1024);
  std::uint64_t done = 0;
  while (done < size_) {
    std::uint64_t limit;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || allowed_ > sent_.load(); });
      if (stopping_) break;
      limit = allowed_ - sent_.load();
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>({chunk.size(), size_ - done, limit}));
    ps.fill(chunk.data(), n);
    if (!send_all(fd, chunk.data(), n, std::chrono::milliseconds(60000))) {
      ++resets_;
      ::close(fd);
      return;
    }
    done += n;
    sent_ += n;
    { std::lock_guard<std::mutex> lock(mu_); }  // no lost wake-up for wait_sent
    cv_.notify_all();
  }
  if (done == size_) {
    ::shutdown(fd, SHUT_WR);
    // Drain until the client closes: a reset here would be one too.
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 30000) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n < 0) {
        if (errno == ECONNRESET) ++resets_;
        break;
      }
    }
    ++completed_;
  }
  ::close(fd);
}

}  // namespace roam::ptest
