// testpeer: one end of a checked, paced, bidirectional byte stream, for tests and the demo.
//
//   testpeer serve   --listen ADDR:PORT --send N --expect M [--rate BPS] [--seed S]
//   testpeer connect --to ADDR:PORT     --send N --expect M [--rate BPS] [--seed S]
//
// Each side sends N bytes of a seeded pattern (the server's stream is seed+1) and checks every byte
// it receives against the peer's pattern at its position, so loss, duplication and reordering are
// caught where they happen; at EOF it compares the count with M and prints the SHA-256 of both
// streams. After sending it half-closes. Exit status: 0 both streams exact, 1 a mismatch, a short
// stream or a reset, 2 usage. `serve` prints "listening on ADDR:PORT" when ready; with
// --progress FILE both write the bytes received so far to FILE (for tests that act on progress).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::uint8_t pattern(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  return static_cast<std::uint8_t>(x);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool split_hostport(const std::string& s, std::string& host, std::string& port) {
  if (!s.empty() && s[0] == '[') {
    auto c = s.find(']');
    if (c == std::string::npos || c + 2 > s.size()) return false;
    host = s.substr(1, c - 1);
    port = s.substr(c + 2);
    return true;
  }
  auto c = s.rfind(':');
  if (c == std::string::npos) return false;
  host = s.substr(0, c);
  port = s.substr(c + 1);
  return true;
}

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

int usage() {
  std::fprintf(stderr,
               "usage: testpeer serve --listen ADDR:PORT | connect --to ADDR:PORT\n"
               "                --send N --expect M [--rate BYTES_PER_SEC] [--seed S] [--progress FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || sodium_init() < 0) return usage();
  const std::string mode = argv[1];
  std::string addr, progress_file;
  std::uint64_t send_n = 0, expect_n = 0, seed = 1;
  double rate = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--listen" || k == "--to") addr = v;
    else if (k == "--send") send_n = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--expect") expect_n = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--rate") rate = std::strtod(v.c_str(), nullptr);
    else if (k == "--seed") seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--progress") progress_file = v;
    else return usage();
  }
  if ((mode != "serve" && mode != "connect") || addr.empty()) return usage();
  std::string host, port;
  if (!split_hostport(addr, host, port)) return usage();
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = mode == "serve" ? AI_PASSIVE : 0;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    std::fprintf(stderr, "testpeer: cannot resolve %s\n", addr.c_str());
    return 1;
  }
  int fd = -1;
  const std::uint64_t my_seed = mode == "serve" ? seed + 1 : seed;
  const std::uint64_t peer_seed = mode == "serve" ? seed : seed + 1;
  if (mode == "serve") {
    const int l = socket(res->ai_family, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, res->ai_addr, res->ai_addrlen) != 0 || listen(l, 1) != 0) {
      std::fprintf(stderr, "testpeer: cannot listen on %s: %s\n", addr.c_str(), std::strerror(errno));
      return 1;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(l, reinterpret_cast<sockaddr*>(&ss), &len);
    char h[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, h, sizeof h);
      p = ntohs(a->sin_port);
      std::fprintf(stderr, "testpeer: listening on %s:%d\n", h, p);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
      p = ntohs(a->sin6_port);
      std::fprintf(stderr, "testpeer: listening on [%s]:%d\n", h, p);
    }
    fd = accept(l, nullptr, nullptr);
    close(l);
  } else {
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      std::fprintf(stderr, "testpeer: cannot connect to %s: %s\n", addr.c_str(), std::strerror(errno));
      return 1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return 1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  crypto_hash_sha256_state sent_h, recv_h;
  crypto_hash_sha256_init(&sent_h);
  crypto_hash_sha256_init(&recv_h);
  std::uint64_t sent = 0, received = 0, mismatch_at = UINT64_MAX;
  bool shut = false, eof = false;
  std::string error;
  const double t0 = now_s();
  double last_progress = 0;
  std::vector<std::uint8_t> out(64 * 1024), in(256 * 1024);
  while (!(eof && shut) && error.empty()) {
    if (!shut && sent == send_n) {
      shutdown(fd, SHUT_WR);
      shut = true;
    }
    std::uint64_t allowed = send_n;
    if (rate > 0) allowed = std::min<std::uint64_t>(send_n, static_cast<std::uint64_t>((now_s() - t0) * rate) + 16384);
    pollfd pfd{fd, static_cast<short>((eof ? 0 : POLLIN) | (!shut && sent < allowed ? POLLOUT : 0)), 0};
    const int timeout = (!shut && sent >= allowed) ? 5 : 200;
    if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) break;
    if (!shut && sent < allowed) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), allowed - sent));
      for (std::size_t k = 0; k < n; ++k) out[k] = pattern(my_seed, sent + k);
      const ssize_t w = send(fd, out.data(), n, MSG_NOSIGNAL);
      if (w > 0) {
        crypto_hash_sha256_update(&sent_h, out.data(), static_cast<std::size_t>(w));
        sent += static_cast<std::uint64_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        error = std::string("send: ") + std::strerror(errno);
      }
    }
    if (!eof) {
      const ssize_t r = recv(fd, in.data(), in.size(), 0);
      if (r > 0) {
        for (ssize_t k = 0; k < r && mismatch_at == UINT64_MAX; ++k)
          if (in[static_cast<std::size_t>(k)] != pattern(peer_seed, received + static_cast<std::uint64_t>(k)))
            mismatch_at = received + static_cast<std::uint64_t>(k);
        crypto_hash_sha256_update(&recv_h, in.data(), static_cast<std::size_t>(r));
        received += static_cast<std::uint64_t>(r);
        if (received > expect_n) error = "received more than expected";
      } else if (r == 0) {
        eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        error = std::string("recv: ") + std::strerror(errno);
      }
    }
    if (!progress_file.empty() && now_s() - last_progress > 0.05) {
      last_progress = now_s();
      if (FILE* f = std::fopen((progress_file + ".tmp").c_str(), "w")) {
        std::fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(received),
                     static_cast<unsigned long long>(sent));
        std::fclose(f);
        std::rename((progress_file + ".tmp").c_str(), progress_file.c_str());
      }
    }
  }
  close(fd);
  unsigned char sd[32], rd[32];
  crypto_hash_sha256_final(&sent_h, sd);
  crypto_hash_sha256_final(&recv_h, rd);
  if (!progress_file.empty())
    if (FILE* f = std::fopen(progress_file.c_str(), "w")) {
      std::fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(received),
                   static_cast<unsigned long long>(sent));
      std::fclose(f);
    }
  const bool ok = error.empty() && mismatch_at == UINT64_MAX && received == expect_n && sent == send_n;
  std::fprintf(stderr, "testpeer %s: sent %llu sha256=%s, received %llu/%llu sha256=%s, %.2fs: %s\n",
               mode.c_str(), static_cast<unsigned long long>(sent), hex(sd, 32).c_str(),
               static_cast<unsigned long long>(received), static_cast<unsigned long long>(expect_n),
               hex(rd, 32).c_str(), now_s() - t0,
               ok ? "ok"
                  : (!error.empty() ? error.c_str()
                                    : mismatch_at != UINT64_MAX ? "MISMATCH" : "short stream"));
  if (mismatch_at != UINT64_MAX)
    std::fprintf(stderr, "testpeer: first wrong byte at offset %llu\n",
                 static_cast<unsigned long long>(mismatch_at));
  return ok ? 0 : 1;
}
