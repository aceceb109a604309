// tcp_blast: the load generator and sink of bench/chain.sh. Loopback only.
//
//   tcp_blast sink PORT            listen on 127.0.0.1:PORT (0: the kernel picks; stderr says
//                                  "listening on 127.0.0.1:P"); for each connection read to EOF,
//                                  answer "<bytes>\n", close; stdout: "bytes=N seconds=S" (first
//                                  byte to EOF)
//   tcp_blast send HOST PORT BYTES connect, send BYTES (sizes like 2G), half-close, wait for the
//                                  sink's count to come back through the chain; stdout:
//                                  "bytes=N seconds=S" (connect to the sink's answer: end to end)
//   tcp_blast freeport             print a port that was free a moment ago (for peers that cannot
//                                  report a kernel-chosen port)
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace rb = roam::bench;

namespace {

constexpr std::size_t kChunk = 256 * 1024;

int usage() {
  std::fprintf(stderr,
               "usage: tcp_blast sink PORT | tcp_blast send HOST PORT BYTES | tcp_blast freeport\n");
  return 2;
}

void serve(int fd) {
  std::vector<char> buf(kChunk);
  std::uint64_t got = 0;
  double t0 = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      if (got == 0) t0 = rb::mono_seconds();
      got += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  const double secs = got ? rb::mono_seconds() - t0 : 0;
  const std::string reply = std::to_string(got) + "\n";
  (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  // Let the reply drain through the chain before the close.
  char c;
  while (::recv(fd, &c, 1, 0) > 0) {
  }
  ::close(fd);
  std::printf("bytes=%llu seconds=%.6f\n", static_cast<unsigned long long>(got), secs);
  std::fflush(stdout);
}

int sink(std::uint16_t port) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) rb::die("bind");
  if (::listen(lfd, 64) != 0) rb::die("listen");
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
  for (;;) {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      rb::die("accept");
    }
    std::thread(serve, fd).detach();
  }
}

int send_bytes(const char* host, const char* port, std::uint64_t bytes) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
    std::fprintf(stderr, "tcp_blast: cannot resolve %s\n", host);
    return 1;
  }
  const double t0 = rb::mono_seconds();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) rb::die("connect");
  freeaddrinfo(res);
  std::vector<char> buf(kChunk, 'x');
  std::uint64_t left = bytes;
  while (left > 0) {
    const ssize_t n = ::send(fd, buf.data(), std::min<std::uint64_t>(left, kChunk), MSG_NOSIGNAL);
    if (n > 0) {
      left -= static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    rb::die("send");
  }
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char c[64];
  for (;;) {
    const ssize_t n = ::recv(fd, c, sizeof c, 0);
    if (n > 0) {
      reply.append(c, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  const double secs = rb::mono_seconds() - t0;
  ::close(fd);
  const unsigned long long sunk = std::strtoull(reply.c_str(), nullptr, 10);
  std::printf("bytes=%llu seconds=%.6f\n", sunk, secs);
  if (sunk != bytes) {
    std::fprintf(stderr, "tcp_blast: the sink received %llu of %llu bytes\n", sunk,
                 static_cast<unsigned long long>(bytes));
    return 1;
  }
  return 0;
}

int freeport() {
  std::uint16_t port = 0;
  const int fd = rb::listen_loopback(port);
  ::close(fd);
  std::printf("%u\n", port);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  if (cmd == "sink" && argc == 3) return sink(static_cast<std::uint16_t>(std::atoi(argv[2])));
  if (cmd == "send" && argc == 5) return send_bytes(argv[2], argv[3], rb::parse_bytes(argv[4]));
  if (cmd == "freeport" && argc == 2) return freeport();
  return usage();
}
