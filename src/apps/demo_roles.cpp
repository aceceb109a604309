// The demo's helper processes, run by `roam demo` inside the namespaces as hidden roles of the
// same binary:
//
//   roam demo --role source --listen ADDR:PORT --bytes N --rate R
//       accepts connections and sends each one N pattern bytes, paced at R bytes/s from its
//       accept; after a stall it catches up as fast as the path allows. Logs "listening on".
//   roam demo --role sink --connect ADDR:PORT [--socks ADDR:PORT] --bytes N
//       connects (through a SOCKS5 CONNECT when --socks is given), checks every byte against its
//       position and reports on stdout, every 50 ms and at the end, one line each:
//         p MONO_NS BYTES INTACT MAXSTALL_NS            progress
//         e MONO_NS BYTES INTACT MAXSTALL_NS OUTCOME    the end ("clean end", "died: ...")
//       MONO_NS is CLOCK_MONOTONIC, shared by every namespace, so the parent can plot it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "apps/demo.hpp"
#include "apps/options.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"

namespace roam::apps::demo {
namespace {

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class PacedSource {
 public:
  PacedSource(io::Loop& loop, std::uint64_t total, double rate) : loop_(loop), total_(total), rate_(rate) {}
  bool start(const io::Endpoint& ep) {
    auto fd = io::listen_on(ep);
    if (!fd) {
      spdlog::error("{}", fd.error().detail);
      return false;
    }
    fd_ = *fd;
    loop_.add(fd_, EPOLLIN, [this](std::uint32_t) {
      for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return;
        spdlog::info("sending {} bytes to {}", total_, io::peer_address(c));
        conns_.push_back(Conn{c, 0, mono_ns()});
      }
    });
    spdlog::info("listening on {}", io::local_address(fd_));
    tick();
    return true;
  }

 private:
  struct Conn {
    int fd;
    std::uint64_t sent;
    std::int64_t since;
  };
  void tick() {
    const std::int64_t now = mono_ns();
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn& c = *it;
      const double due = rate_ * static_cast<double>(now - c.since) / 1e9;
      const std::uint64_t allowed = std::min<std::uint64_t>(total_, static_cast<std::uint64_t>(due));
      bool dead = false;
      while (c.sent < allowed) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf_, allowed - c.sent));
        for (std::size_t k = 0; k < n; ++k) buf_[k] = pattern(c.sent + k);
        const ssize_t w = ::send(c.fd, buf_, n, MSG_NOSIGNAL);
        if (w <= 0) {
          dead = w < 0 && errno != EAGAIN && errno != EINTR;
          break;
        }
        c.sent += static_cast<std::uint64_t>(w);
      }
      if (dead) spdlog::info("connection died after {} bytes: {}", c.sent, std::strerror(errno));
      if (c.sent == total_) {
        ::shutdown(c.fd, SHUT_WR);
        spdlog::info("sent all {} bytes", total_);
      }
      if (dead || c.sent == total_) {
        if (dead) ::close(c.fd);  // a finished one stays open until the peer has read it all
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
    loop_.at(loop_.now() + std::chrono::milliseconds(5), [this] { tick(); });
  }

  io::Loop& loop_;
  std::uint64_t total_;
  double rate_;
  int fd_ = -1;
  std::vector<Conn> conns_;
  std::uint8_t buf_[64 * 1024];
};

bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
bool recv_all(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A minimal SOCKS5 CONNECT (RFC 1928, no authentication, IPv4 literal destination). Returns an
// empty string on success, else why it failed.
std::string socks5_connect(int fd, const io::Endpoint& dest) {
  in_addr a{};
  if (::inet_pton(AF_INET, dest.host.c_str(), &a) != 1) return "the destination must be an IPv4 literal";
  const std::uint8_t hello[] = {5, 1, 0};
  std::uint8_t choice[2];
  if (!send_all(fd, hello, sizeof hello) || !recv_all(fd, choice, 2)) return "SOCKS5 greeting failed";
  if (choice[0] != 5 || choice[1] != 0) return "SOCKS5 server refused method 0x00";
  std::uint8_t req[10] = {5, 1, 0, 1};
  std::memcpy(req + 4, &a, 4);
  req[8] = static_cast<std::uint8_t>(dest.port >> 8);
  req[9] = static_cast<std::uint8_t>(dest.port & 0xff);
  std::uint8_t rep[4];
  if (!send_all(fd, req, sizeof req) || !recv_all(fd, rep, 4)) return "SOCKS5 request failed";
  if (rep[0] != 5 || rep[1] != 0) return "SOCKS5 CONNECT refused (reply " + std::to_string(rep[1]) + ")";
  std::size_t rest = rep[3] == 1 ? 4 + 2 : rep[3] == 4 ? 16 + 2 : 0;
  if (rep[3] == 3) {
    std::uint8_t len = 0;
    if (!recv_all(fd, &len, 1)) return "SOCKS5 reply truncated";
    rest = len + 2u;
  }
  std::uint8_t skip[300];
  if (rest == 0 || !recv_all(fd, skip, rest)) return "SOCKS5 reply malformed";
  return {};
}

void report(char kind, std::uint64_t bytes, bool intact, std::int64_t max_stall, const std::string& outcome = {}) {
  char line[512];
  const int n = std::snprintf(line, sizeof line, "%c %lld %llu %d %lld%s%s\n", kind,
                              static_cast<long long>(mono_ns()), static_cast<unsigned long long>(bytes),
                              intact ? 1 : 0, static_cast<long long>(max_stall), outcome.empty() ? "" : " ",
                              outcome.c_str());
  if (n > 0) {
    const ssize_t w = ::write(1, line, static_cast<std::size_t>(std::min(n, static_cast<int>(sizeof line) - 1)));
    (void)w;
  }
}

}  // namespace

int run_source(const DemoFlags& f) {
  const auto total = parse_size(f.bytes);
  const auto rate = parse_size(f.rate);
  if (!rate || *rate == 0) throw CLI::ValidationError("--rate", "expected a size like 4M");
  auto ep = io::parse_endpoint(f.listen, "0.0.0.0", /*listener=*/true);
  if (!ep) throw CLI::ValidationError("--listen", ep.error().detail);
  std::signal(SIGPIPE, SIG_IGN);
  io::Loop loop;
  PacedSource source(loop, *total, static_cast<double>(*rate));
  if (!source.start(*ep)) return 1;
  loop.run();
  return 0;
}

int run_sink(const DemoFlags& f) {
  const std::uint64_t total = *parse_size(f.bytes);
  auto dest = io::parse_endpoint(f.connect);
  if (!dest) throw CLI::ValidationError("--connect", dest.error().detail);
  auto first = f.socks.empty() ? dest : io::parse_endpoint(f.socks);
  if (!first) throw CLI::ValidationError("--socks", first.error().detail);
  std::signal(SIGPIPE, SIG_IGN);
  auto addrs = io::resolve(*first, false);
  if (!addrs || addrs->empty()) {
    report('e', 0, true, 0, "cannot resolve " + first->str());
    return 1;
  }
  const auto& sa = addrs->front();
  const int fd = ::socket(sa.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, sa.get(), sa.len) != 0) {
    report('e', 0, true, 0, std::string("cannot connect: ") + std::strerror(errno));
    return 1;
  }
  // Every sink is the same application: one that notices a dead peer after a few seconds (TCP
  // keepalive, as ssh's ServerAlive or a database driver would). On the roam streams the sink talks
  // to a local roam process, so this never fires there; on plain TCP it ends a connection whose
  // address is gone instead of leaving it hanging for minutes.
  const int one = 1, idle = 1, intvl = 1, cnt = 2;
  const unsigned user_timeout_ms = 2000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  if (!f.socks.empty()) {
    const timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (auto why = socks5_connect(fd, *dest); !why.empty()) {
      report('e', 0, true, 0, why);
      return 1;
    }
    const timeval none{0, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  }

  std::uint64_t received = 0;
  bool intact = true;
  std::int64_t last_data = 0, max_stall = 0, last_report = 0;
  std::vector<std::uint8_t> buf(256 * 1024);
  std::string outcome;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, 50);
    if (pr > 0) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n > 0) {
        const std::int64_t now = mono_ns();
        if (received > 0) max_stall = std::max(max_stall, now - last_data);
        last_data = now;
        for (ssize_t k = 0; k < n; ++k)
          if (buf[static_cast<std::size_t>(k)] != pattern(received + static_cast<std::uint64_t>(k))) intact = false;
        received += static_cast<std::uint64_t>(n);
      } else if (n == 0) {
        outcome = received == total ? "clean end" : "ended early";
        break;
      } else if (errno != EAGAIN && errno != EINTR) {
        outcome = std::string("died: ") + std::strerror(errno);
        break;
      }
    }
    if (const std::int64_t now = mono_ns(); now - last_report >= 50'000'000) {
      report('p', received, intact, max_stall);
      last_report = now;
    }
  }
  report('e', received, intact, max_stall, outcome);
  ::close(fd);
  return intact && received == total && outcome == "clean end" ? 0 : 1;
}

}  // namespace roam::apps::demo
