// `roam demo`: a download through a roam session and the same download over plain TCP, both
// through a relay that cuts every connection again and again. The roam stream carries on; the
// plain one dies at the first cut. Everything runs in this process on loopback.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

#include "apps/options.hpp"
#include "io/client.hpp"
#include "io/relay.hpp"
#include "io/server.hpp"

namespace roam::apps {
namespace {

// The demo's byte stream: position i holds a fixed pseudo-random byte, so the receiver checks
// every byte where it lands (a loss, duplicate or reordering shows at once).
std::uint8_t pattern(std::uint64_t i) {
  std::uint64_t x = i * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x >> 17);
}

// The "server application": accepts connections and sends `total` pattern bytes to each, paced.
class Source {
 public:
  Source(io::Loop& loop, std::uint64_t total, std::uint64_t bytes_per_tick)
      : loop_(loop), total_(total), per_tick_(bytes_per_tick) {}
  ~Source() {
    for (auto& c : conns_) {
      loop_.remove(c.fd);
      ::close(c.fd);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  std::string start() {
    auto fd = io::listen_on(io::Endpoint{"127.0.0.1", 0});
    if (!fd) return {};
    fd_ = *fd;
    loop_.add(fd_, EPOLLIN, [this](std::uint32_t) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c >= 0) {
        conns_.push_back(Conn{c, 0, 0});
        loop_.add(c, 0, [](std::uint32_t) {});
      }
    });
    tick();
    return io::local_address(fd_);
  }

 private:
  struct Conn {
    int fd;
    std::uint64_t sent;
    std::uint64_t allowed;
  };
  void tick() {
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn& c = *it;
      c.allowed = std::min(total_, c.allowed + per_tick_);
      std::uint8_t buf[64 * 1024];
      bool dead = false;
      while (c.sent < c.allowed) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, c.allowed - c.sent));
        for (std::size_t k = 0; k < n; ++k) buf[k] = pattern(c.sent + k);
        const ssize_t w = ::send(c.fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0) {
          dead = w < 0 && errno != EAGAIN;
          break;
        }
        c.sent += static_cast<std::uint64_t>(w);
      }
      if (c.sent == total_) ::shutdown(c.fd, SHUT_WR);
      if (dead || c.sent == total_) {
        loop_.remove(c.fd);
        if (dead) ::close(c.fd);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
    loop_.at(loop_.now() + std::chrono::milliseconds(10), [this] { tick(); });
  }

  io::Loop& loop_;
  std::uint64_t total_;
  std::uint64_t per_tick_;
  int fd_ = -1;
  std::vector<Conn> conns_;
};

// The "mobile application": connects, reads and checks every byte.
class Sink {
 public:
  Sink(io::Loop& loop, std::string label) : loop_(loop), label_(std::move(label)) {}
  ~Sink() {
    if (fd_ >= 0) {
      loop_.remove(fd_);
      ::close(fd_);
    }
  }
  void start(const std::string& addr) {
    auto ep = io::parse_endpoint(addr);
    auto addrs = io::resolve(*ep, false);
    auto fd = io::connect_start(addrs->front());
    if (!fd) {
      finish("cannot connect: " + fd.error().detail);
      return;
    }
    fd_ = *fd;
    loop_.add(fd_, EPOLLIN, [this](std::uint32_t) { on_read(); });
  }
  const std::string& label() const { return label_; }
  std::uint64_t received() const { return received_; }
  bool done() const { return done_; }
  bool intact() const { return intact_; }
  core::Duration longest_stall() const { return longest_stall_; }
  const std::string& outcome() const { return outcome_; }

 private:
  void on_read() {
    std::uint8_t buf[256 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        const core::Time now = io::boot_now();
        if (received_ > 0) longest_stall_ = std::max(longest_stall_, now - last_data_);
        last_data_ = now;
        for (ssize_t k = 0; k < n; ++k)
          if (buf[k] != pattern(received_ + static_cast<std::uint64_t>(k))) intact_ = false;
        received_ += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == 0) return finish("clean end");
      if (errno == EAGAIN || errno == EINTR) return;
      return finish(std::string("died: ") + std::strerror(errno));
    }
  }
  void finish(const std::string& why) {
    done_ = true;
    outcome_ = why;
    if (fd_ >= 0) {
      loop_.remove(fd_);
      ::close(fd_);
      fd_ = -1;
    }
  }

  io::Loop& loop_;
  std::string label_;
  int fd_ = -1;
  std::uint64_t received_ = 0;
  bool done_ = false;
  bool intact_ = true;
  std::string outcome_;
  core::Time last_data_{};
  core::Duration longest_stall_{0};
};

std::string mib(std::uint64_t b) { return fmt::format("{:7.1f} MiB", static_cast<double>(b) / (1 << 20)); }

}  // namespace

int run_demo(const std::string& /*self*/, const std::string& mode, const std::string& bytes_text,
             int cuts) {
  auto total = parse_size(bytes_text);
  if (!total || *total == 0) throw CLI::ValidationError("--bytes", "expected a size like 64M");
  if (cuts < 0 || cuts > 1000) throw CLI::ValidationError("--cuts", "expected 0..1000");
  if (mode != "auto" && mode != "loopback") throw CLI::ValidationError("--mode", "auto or loopback");
  std::fprintf(stderr,
               "roam demo (loopback): network namespaces are not used yet; every connection runs on\n"
               "127.0.0.1 through a relay that resets all connections %d times.\n\n",
               cuts);
  spdlog::set_level(spdlog::level::warn);

  io::Loop loop;
  const auto duration = std::chrono::seconds(6);
  const std::uint64_t ticks = 600;  // 10 ms each
  Source source(loop, *total, std::max<std::uint64_t>(1, *total / ticks));
  const std::string service = source.start();

  core::SessionConfig sc;
  sc.heartbeat = std::chrono::milliseconds(200);
  io::Server server(loop, io::ServerConfig{io::Endpoint{"127.0.0.1", 0}, *io::parse_endpoint(service), sc});
  if (auto ok = server.start(); !ok) return 1;
  io::CutRelay roam_relay(loop, io::Endpoint{"127.0.0.1", 0}, *io::parse_endpoint(server.bound()));
  io::CutRelay tcp_relay(loop, io::Endpoint{"127.0.0.1", 0}, *io::parse_endpoint(service));
  if (!roam_relay.start() || !tcp_relay.start()) return 1;
  io::ClientConfig cc;
  cc.server = *io::parse_endpoint(roam_relay.bound());
  cc.session = sc;
  cc.watch_network = false;  // loopback: the relay's cuts are the only events
  io::LocalForwarder client(loop, cc, io::Endpoint{"127.0.0.1", 0});
  if (!client.start()) return 1;

  Sink roam_sink(loop, "roam (Migrate)");
  Sink tcp_sink(loop, "plain TCP");
  roam_sink.start(client.bound());
  tcp_sink.start(tcp_relay.bound());

  const core::Time t0 = loop.now();
  const bool tty = isatty(2) != 0;
  int cuts_done = 0;
  std::function<void()> cutter = [&] {
    if (cuts_done >= cuts) return;
    ++cuts_done;
    roam_relay.cut();
    tcp_relay.cut();
    std::fprintf(stderr, "%s  ✂  cut %d: every connection reset\n", tty ? "\n" : "", cuts_done);
    loop.at(loop.now() + duration / (cuts + 1), cutter);
  };
  loop.at(t0 + duration / (cuts + 1), cutter);

  int tick = 0;
  std::function<void()> progress = [&] {
    const double t = std::chrono::duration<double>(loop.now() - t0).count();
    const bool show = tty || tick++ % 10 == 0 || (roam_sink.done() && tcp_sink.done());
    if (show)
      std::fprintf(stderr, "%s  %5.1fs   %s: %s %s   |   %s: %s %s   %s", tty ? "\r" : "", t, roam_sink.label().c_str(),
                 mib(roam_sink.received()).c_str(), roam_sink.done() ? roam_sink.outcome().c_str() : "",
                 tcp_sink.label().c_str(), mib(tcp_sink.received()).c_str(),
                 tcp_sink.done() ? tcp_sink.outcome().c_str() : "", tty ? "" : "\n");
    if (roam_sink.done() && tcp_sink.done()) {
      loop.stop();
      return;
    }
    if (loop.now() - t0 > duration * 5) {
      loop.stop();
      return;
    }
    loop.at(loop.now() + std::chrono::milliseconds(100), progress);
  };
  progress();
  loop.run();

  const bool roam_ok = roam_sink.done() && roam_sink.intact() && roam_sink.received() == *total;
  std::fprintf(stderr, "\n\n  %-16s %14s %7s %12s %15s  %s\n", "stream", "delivered", "exact",
               "migrations", "longest stall", "outcome");
  for (const Sink* s : {&roam_sink, &tcp_sink})
    std::fprintf(stderr, "  %-16s %14s %7s %12s %12.1f ms  %s\n", s->label().c_str(),
                 mib(s->received()).c_str(), s->intact() ? "yes" : "NO",
                 s == &roam_sink ? std::to_string(client.total_migrations()).c_str() : "-",
                 std::chrono::duration<double, std::milli>(s->longest_stall()).count(),
                 s->done() ? s->outcome().c_str() : "still running");
  std::fprintf(stderr, "\n  %d cuts. roam carried all%s exactly once, in order: %s\n", cuts_done,
               mib(*total).c_str(), roam_ok ? "yes" : "NO");
  return roam_ok ? 0 : 1;
}

}  // namespace roam::apps
