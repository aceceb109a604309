// `roam demo`: the command, its dispatch between the namespace showcase (demo_netns.cpp) and the
// loopback demo below, and the hidden helper roles (demo_roles.cpp).
//
// The loopback demo: a download through a roam session and the same download over plain TCP, both
// through a relay that cuts every connection again and again. The roam stream carries on; the
// plain one dies at the first cut. Everything runs in this process on 127.0.0.1.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

#include "apps/demo.hpp"
#include "apps/options.hpp"
#include "io/client.hpp"
#include "io/relay.hpp"
#include "io/server.hpp"

namespace roam::apps {
namespace {

using demo::pattern;

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

namespace demo {

int run_loopback(std::uint64_t total, int cuts) {
  std::fprintf(stdout,
               "roam demo (loopback): every connection runs on 127.0.0.1 through a relay that resets\n"
               "all connections %d times.\n\n",
               cuts);
  spdlog::set_level(spdlog::level::warn);

  io::Loop loop;
  const auto duration = std::chrono::seconds(6);
  const std::uint64_t ticks = 600;  // 10 ms each
  Source source(loop, total, std::max<std::uint64_t>(1, total / ticks));
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
  const bool tty = isatty(1) != 0;
  int cuts_done = 0;
  std::function<void()> cutter = [&] {
    if (cuts_done >= cuts) return;
    ++cuts_done;
    roam_relay.cut();
    tcp_relay.cut();
    std::fprintf(stdout, "%s  ✂  cut %d: every connection reset\n", tty ? "\n" : "", cuts_done);
    loop.at(loop.now() + duration / (cuts + 1), cutter);
  };
  loop.at(t0 + duration / (cuts + 1), cutter);

  int tick = 0;
  std::function<void()> progress = [&] {
    const double t = std::chrono::duration<double>(loop.now() - t0).count();
    const bool show = tty || tick++ % 10 == 0 || (roam_sink.done() && tcp_sink.done());
    if (show)
      std::fprintf(stdout, "%s  %5.1fs   %s: %s %s   |   %s: %s %s   %s", tty ? "\r" : "", t, roam_sink.label().c_str(),
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

  const bool roam_ok = roam_sink.done() && roam_sink.intact() && roam_sink.received() == total;
  std::fprintf(stdout, "\n\n  %-16s %14s %7s %12s %15s  %s\n", "stream", "delivered", "exact",
               "migrations", "longest stall", "outcome");
  for (const Sink* s : {&roam_sink, &tcp_sink})
    std::fprintf(stdout, "  %-16s %14s %7s %12s %12.1f ms  %s\n", s->label().c_str(),
                 mib(s->received()).c_str(), s->intact() ? "yes" : "NO",
                 s == &roam_sink ? std::to_string(client.total_migrations()).c_str() : "-",
                 std::chrono::duration<double, std::milli>(s->longest_stall()).count(),
                 s->done() ? s->outcome().c_str() : "still running");
  std::fprintf(stdout, "\n  %d cuts. roam carried all%s exactly once, in order: %s\n", cuts_done,
               mib(total).c_str(), roam_ok ? "yes" : "NO");
  return roam_ok ? 0 : 1;
}

}  // namespace demo

CLI::App* add_demo_command(CLI::App& app, DemoFlags& f) {
  auto* demo = app.add_subcommand(
      "demo",
      "Show roam at work. As root (network namespaces): a mobile host with Wi-Fi and cellular\n"
      "hands over again and again (break-before-make, make-before-break, renumbering, an\n"
      "outage) while three downloads run side by side: plain TCP, which dies at the first\n"
      "handover, Migrate (roam connect → roam server) and MSOCKS (roam socks → roam proxy),\n"
      "which arrive complete and exact. Ends with a summary and a plot (SVG) of bytes over time.\n"
      "Without root or namespaces: a loopback demo whose relay cuts every connection.\n"
      "Exit status: 0 when every roam stream arrived complete and exact, 1 otherwise.");
  demo->add_option("--mode", f.mode, "auto (namespaces when possible), netns or loopback")
      ->capture_default_str();
  demo->add_option("--bytes", f.bytes, "Bytes each stream carries")->capture_default_str();
  demo->add_option("--plot", f.plot, "SVG file for the plot of bytes delivered over time (netns mode)")
      ->capture_default_str();
  demo->add_option("--cuts", f.cuts, "How many times the relay cuts the connections (loopback mode)")
      ->capture_default_str();
  // The demo's helper processes inside the namespaces; not for users.
  demo->add_option("--role", f.role)->group("");
  demo->add_option("--listen", f.listen)->group("");
  demo->add_option("--connect", f.connect)->group("");
  demo->add_option("--socks", f.socks)->group("");
  demo->add_option("--rate", f.rate)->group("");
  return demo;
}

int run_demo(const DemoFlags& f) {
  auto total = parse_size(f.bytes);
  if (!total || *total == 0) throw CLI::ValidationError("--bytes", "expected a size like 64M");
  if (f.role == "source") return demo::run_source(f);
  if (f.role == "sink") return demo::run_sink(f);
  if (!f.role.empty()) throw CLI::ValidationError("--role", "source or sink");
  if (f.cuts < 0 || f.cuts > 1000) throw CLI::ValidationError("--cuts", "expected 0..1000");
  if (f.mode != "auto" && f.mode != "netns" && f.mode != "loopback")
    throw CLI::ValidationError("--mode", "auto, netns or loopback");
  if (f.mode != "loopback") {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string why = "cannot find my own binary (/proc/self/exe)";
    if (n > 0) {
      self[n] = 0;
      const int rc = demo::run_netns(self, *total, f.plot, why);
      if (rc >= 0) return rc;
    }
    if (f.mode == "netns") {
      std::fprintf(stderr, "roam demo: network namespaces unavailable: %s\n", why.c_str());
      return 1;
    }
    std::fprintf(stdout, "roam demo: cannot build the namespace test bed here: %s; running the loopback demo instead.\n",
                 why.c_str());
  }
  return demo::run_loopback(*total, f.cuts);
}

}  // namespace roam::apps
