// roam_bench_latency: small-message ping-pong over loopback, through a pair of core::Sessions
// (each driven by its own thread with the benchmark's poll loop) against raw TCP (TCP_NODELAY,
// same poll loop shape), same process, interleaved runs. The client writes a MSG-byte message,
// the server echoes it, the client waits for all MSG bytes back: one round trip.
//
// Usage: roam_bench_latency [ROUND_TRIPS_PER_RUN [RUNS [MSG]]]   (defaults 20000 5 64)
// Prints the median and p99 round trip over all runs of each variant, the per-run medians'
// spread, and the ratios roam/raw.
#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <thread>

#include "bench_util.hpp"
#include "session_pump.hpp"

namespace rb = roam::bench;
namespace core = roam::core;

namespace {

int g_trips = 20000;
std::size_t g_msg = 64;

// --- raw -----------------------------------------------------------------------------------

// Sends all of `buf` then receives exactly `want` bytes, with a non-blocking socket and poll.
void raw_xfer(int fd, const std::uint8_t* out, std::size_t out_len, std::uint8_t* in, std::size_t want) {
  std::size_t sent = 0, got = 0;
  while (sent < out_len || got < want) {
    if (sent < out_len) {
      const ssize_t n = ::send(fd, out + sent, out_len - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) rb::die("send");
    }
    if (got < want) {
      const ssize_t n = ::recv(fd, in + got, want - got, 0);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0) return;
      if (errno != EAGAIN && errno != EINTR) rb::die("recv");
    }
    if (sent < out_len || got < want) {
      pollfd p{fd, static_cast<short>((got < want ? POLLIN : 0) | (sent < out_len ? POLLOUT : 0)), 0};
      ::poll(&p, 1, -1);
    }
  }
}

std::vector<double> run_raw(int lfd, std::uint16_t port) {
  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(g_trips));
  std::thread server([&] {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) rb::die("accept");
    rb::set_nodelay(fd);
    rb::make_nonblocking(fd);
    std::vector<std::uint8_t> buf(g_msg);
    for (int i = 0; i < g_trips; ++i) {
      raw_xfer(fd, nullptr, 0, buf.data(), g_msg);
      raw_xfer(fd, buf.data(), g_msg, nullptr, 0);
    }
    ::close(fd);
  });
  const int fd = rb::connect_loopback(port);
  rb::set_nodelay(fd);
  rb::make_nonblocking(fd);
  std::vector<std::uint8_t> out(g_msg, 0x42), in(g_msg);
  for (int i = 0; i < g_trips; ++i) {
    const double t0 = rb::mono_seconds();
    raw_xfer(fd, out.data(), g_msg, in.data(), g_msg);
    rtt.push_back((rb::mono_seconds() - t0) * 1e6);
  }
  server.join();
  ::close(fd);
  return rtt;
}

// --- roam ----------------------------------------------------------------------------------

std::vector<double> run_roam(int lfd, std::uint16_t port) {
  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(g_trips));
  std::thread server([&] {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) rb::die("accept");
    core::crypto::SystemRng rng;
    auto pump = rb::server_pump(core::SessionConfig{}, rng, fd);
    core::Session& s = pump->session();
    bool shut = false;
    while (!pump->finished()) {
      const core::Time now = roam::io::boot_now();
      // Echo: whatever is readable goes straight back.
      for (;;) {
        core::Bytes b = s.readable();
        if (b.empty()) break;
        const std::size_t n = s.write(b);
        if (n == 0) break;
        s.consume(n, now);
      }
      if (s.at_eof() && !shut) {
        s.consume_eof(now);
        s.shutdown_write();
        shut = true;
      }
      pump->write(now);
      if (pump->finished()) break;
      pump->wait_and_service();
    }
    ::close(fd);
  });
  core::crypto::SystemRng rng;
  const int fd = rb::connect_loopback(port);
  auto pump = rb::client_pump(core::SessionConfig{}, rng, fd);
  core::Session& s = pump->session();
  while (!pump->established()) pump->wait_and_service();
  std::vector<std::uint8_t> out(g_msg, 0x42);
  for (int i = 0; i < g_trips; ++i) {
    const double t0 = rb::mono_seconds();
    s.write(out);
    pump->write(roam::io::boot_now());
    std::size_t got = 0;
    while (got < g_msg) {
      pump->wait_and_service();
      core::Bytes b = s.readable();
      if (!b.empty()) {
        got += b.size();
        s.consume(b.size(), roam::io::boot_now());
      }
    }
    rtt.push_back((rb::mono_seconds() - t0) * 1e6);
  }
  s.shutdown_write();
  while (!pump->finished()) {
    if (s.at_eof()) s.consume_eof(roam::io::boot_now());
    pump->write(roam::io::boot_now());
    if (pump->finished()) break;
    pump->wait_and_service();
  }
  server.join();
  ::close(fd);
  return rtt;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_trips = std::atoi(argv[1]);
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  if (argc > 3) g_msg = static_cast<std::size_t>(std::atoi(argv[3]));
  if (g_trips < 1 || runs < 1 || g_msg < 1) {
    std::fprintf(stderr, "usage: roam_bench_latency [ROUND_TRIPS_PER_RUN [RUNS [MSG]]]\n");
    return 2;
  }
  if (!core::crypto::init()) return 1;
  std::uint16_t port = 0;
  const int lfd = rb::listen_loopback(port);
  std::printf("roam_bench_latency: %zu-byte ping-pong, %d round trips per run, %d interleaved runs, 127.0.0.1\n",
              g_msg, g_trips, runs);
  const char* names[2] = {"raw", "roam"};
  std::vector<double> all[2], medians[2], p99s[2];
  for (int r = 0; r < runs; ++r) {
    for (int v = 0; v < 2; ++v) {
      std::vector<double> rtt = v == 0 ? run_raw(lfd, port) : run_roam(lfd, port);
      medians[v].push_back(rb::percentile(rtt, 50));
      p99s[v].push_back(rb::percentile(rtt, 99));
      std::printf("  run %d %-5s median %7.2f us  p99 %7.2f us\n", r + 1, names[v], medians[v].back(),
                  p99s[v].back());
      std::fflush(stdout);
      all[v].insert(all[v].end(), rtt.begin(), rtt.end());
    }
  }
  std::printf("\n%-5s %10s %26s %10s %26s\n", "", "median us", "per-run medians (min-max)", "p99 us",
              "per-run p99s (min-max)");
  double med[2], p99[2];
  for (int v = 0; v < 2; ++v) {
    med[v] = rb::percentile(all[v], 50);
    p99[v] = rb::percentile(all[v], 99);
    const rb::Summary m = rb::summarize(medians[v]), p = rb::summarize(p99s[v]);
    std::printf("%-5s %10.2f %15s(%6.2f-%6.2f) %10.2f %15s(%6.2f-%6.2f)\n", names[v], med[v], "", m.min,
                m.max, p99[v], "", p.min, p.max);
  }
  std::printf("\nroam/raw round trip: median %.3f, p99 %.3f (over %zu round trips each); extra per round trip %.2f us\n",
              med[1] / med[0], p99[1] / p99[0], all[0].size(), med[1] - med[0]);
  ::close(lfd);
  return 0;
}
