// roam_bench_throughput: one bulk transfer over loopback TCP through the library (a client and a
// server core::Session, each driven by its own thread with a minimal poll loop) against raw
// kernel TCP on the same path, same process, same amount of data, same 256 KiB user-space chunk
// (the largest DATA payload), interleaved raw, raw+opts, roam, raw, raw+opts, roam, …
//
//   raw       plain sockets, kernel defaults (autotuned buffers): the baseline of the ratio.
//   raw+opts  plain sockets with roam's path socket options (TCP_NODELAY, TCP_NOTSENT_LOWAT
//             128 KiB, TCP_USER_TIMEOUT): separates the cost of the options from the library's.
//   roam      sender writes straight into write_space() (zero-copy send path: commit only, the
//             ring's bytes are whatever they are), receiver consumes readable().
//   roam+xcha the same with --encrypt on both sides, every frame SEALED with XChaCha20-Poly1305
//             (both ends told not to offer AES-256-GCM, like a CPU without AES-NI).
//   roam+aes  --encrypt with AES-256-GCM, as negotiated by two ends with AES-NI (skipped, with a
//             message, on a CPU without it).
//   The cost of encryption is each cipher's ratio to roam; its ratio to raw is what a user gets
//   compared with no roam at all.
//
// Both receivers touch one byte per chunk and nothing more. Time runs from the first byte the
// sender offers (after the handshake for roam) to the receiver having consumed every byte; CPU is
// the process's user+system time (getrusage) over the whole run, both ends included.
//
// Usage: roam_bench_throughput [BYTES [RUNS]]   (defaults 2G 7)
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "bench_util.hpp"
#include "session_pump.hpp"

namespace rb = roam::bench;
namespace core = roam::core;

namespace {

constexpr std::size_t kChunk = 256 * 1024;  // = wire::kMaxDataPayload

struct RunResult {
  double seconds = 0;
  double cpu = 0;
};

volatile std::uint8_t g_sink;  // the receivers' light touch

std::uint64_t g_bytes = 2ull << 30;
// The encrypted variants (set between runs, read by both threads).
bool g_encrypt = false;
bool g_aes_gcm = false;

// The sessions' configuration: roam's defaults (8 MiB retention cap), or ROAM_BENCH_BUFFER.
core::SessionConfig bench_config() {
  core::SessionConfig cfg;
  if (const char* b = std::getenv("ROAM_BENCH_BUFFER")) cfg.handshake.buffer_cap = rb::parse_bytes(b);
  if (g_encrypt) {  // one configuration for both ends: offer, accept and require encryption
    cfg.handshake.features |= core::wire::kFeatureEncrypt;
    cfg.handshake.require_encrypt = true;
    cfg.handshake.aes_gcm = g_aes_gcm;
  }
  return cfg;
}

// --- raw TCP -------------------------------------------------------------------------------

void raw_send(int fd, std::atomic<double>& t0) {
  std::vector<std::uint8_t> buf(kChunk, 0x5a);
  rb::make_nonblocking(fd);
  std::uint64_t left = g_bytes;
  t0 = rb::mono_seconds();
  while (left > 0) {
    const ssize_t n = ::send(fd, buf.data(), std::min<std::uint64_t>(kChunk, left), MSG_NOSIGNAL);
    if (n > 0) {
      left -= static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) rb::die("send");
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, -1);
  }
  ::shutdown(fd, SHUT_WR);
  // Wait for the receiver's close so that both ends are done when the thread ends.
  std::uint8_t b;
  for (;;) {
    const ssize_t n = ::recv(fd, &b, 1, 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) break;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, -1);
  }
  ::close(fd);
}

void raw_recv(int fd, double& t1) {
  std::vector<std::uint8_t> buf(kChunk);
  rb::make_nonblocking(fd);
  std::uint64_t got = 0;
  std::uint8_t touch = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      touch ^= buf[0];
      got += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) rb::die("recv");
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, -1);
  }
  t1 = rb::mono_seconds();
  g_sink = touch;
  if (got != g_bytes) {
    std::fprintf(stderr, "raw: received %llu of %llu bytes\n", static_cast<unsigned long long>(got),
                 static_cast<unsigned long long>(g_bytes));
    std::exit(1);
  }
  ::close(fd);
}

// ROAM_BENCH_RAW_BUF=1M: fixed SO_SNDBUF/SO_RCVBUF on the raw sockets (diagnosis: how much of
// the cost is the kernel's in-flight footprint rather than the library's).
void raw_buffers(int fd) {
  if (const char* b = std::getenv("ROAM_BENCH_RAW_BUF")) {
    const int v = static_cast<int>(rb::parse_bytes(b));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  }
}

RunResult run_raw(int lfd, std::uint16_t port, bool roam_opts) {
  const double cpu0 = rb::process_cpu_seconds();
  std::atomic<double> t0{0};
  double t1 = 0;
  std::thread server([&] {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) rb::die("accept");
    if (roam_opts) roam::io::tune_path_socket(fd, std::chrono::seconds(3));
    raw_buffers(fd);
    raw_recv(fd, t1);
  });
  std::thread client([&] {
    const int fd = rb::connect_loopback(port);
    if (roam_opts) roam::io::tune_path_socket(fd, std::chrono::seconds(3));
    raw_buffers(fd);
    raw_send(fd, t0);
  });
  client.join();
  server.join();
  return {t1 - t0.load(), rb::process_cpu_seconds() - cpu0};
}

// --- roam sessions -------------------------------------------------------------------------

void roam_sender(int fd, std::atomic<double>& t0) {
  core::crypto::SystemRng rng;
  const core::SessionConfig cfg = bench_config();
  auto pump = rb::client_pump(cfg, rng, fd);
  core::Session& s = pump->session();
  std::uint64_t written = 0;
  bool shut = false;
  bool started = false;
  while (!pump->finished()) {
    if (pump->established()) {
      if (!started) {
        started = true;
        t0 = rb::mono_seconds();
      }
      // The application: fill the retention buffer in place (no copy) and commit.
      while (written < g_bytes) {
        core::MutBytes space = s.write_space();
        if (space.empty()) break;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(space.size(), g_bytes - written));
        s.commit_write(n);
        written += n;
      }
      if (written == g_bytes && !shut) {
        s.shutdown_write();
        shut = true;
      }
      if (s.at_eof()) s.consume_eof(roam::io::boot_now());
      pump->write(roam::io::boot_now());
    }
    pump->wait_and_service();
  }
  pump->print_stats("sender");
  if (!s.closed_clean()) {
    std::fprintf(stderr, "roam sender: session did not end cleanly: %s\n", s.close_error().detail.c_str());
    std::exit(1);
  }
  ::close(fd);
}

void roam_receiver(int fd, double& t1) {
  core::crypto::SystemRng rng;
  const core::SessionConfig cfg = bench_config();
  auto pump = rb::server_pump(cfg, rng, fd);
  core::Session& s = pump->session();
  std::uint64_t got = 0;
  std::uint8_t touch = 0;
  bool done = false;
  while (!pump->finished()) {
    const core::Time now = roam::io::boot_now();
    for (;;) {
      core::Bytes b = s.readable();
      if (b.empty()) break;
      touch ^= b[0];
      got += b.size();
      s.consume(b.size(), now);
    }
    if (!done && s.at_eof()) {
      done = true;
      t1 = rb::mono_seconds();
      s.consume_eof(now);
      s.shutdown_write();
    }
    pump->write(now);
    if (pump->finished()) break;
    pump->wait_and_service();
  }
  g_sink = touch;
  pump->print_stats("receiver");
  if (got != g_bytes || !s.closed_clean()) {
    std::fprintf(stderr, "roam receiver: got %llu of %llu bytes (%s)\n",
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(g_bytes),
                 s.close_error().detail.c_str());
    std::exit(1);
  }
  ::close(fd);
}

RunResult run_roam(int lfd, std::uint16_t port) {
  const double cpu0 = rb::process_cpu_seconds();
  std::atomic<double> t0{0};
  double t1 = 0;
  std::thread server([&] {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) rb::die("accept");
    roam_receiver(fd, t1);
  });
  std::thread client([&] { roam_sender(rb::connect_loopback(port), t0); });
  client.join();
  server.join();
  return {t1 - t0.load(), rb::process_cpu_seconds() - cpu0};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_bytes = rb::parse_bytes(argv[1]);
  const int runs = argc > 2 ? std::atoi(argv[2]) : 7;
  if (g_bytes == 0 || runs < 1) {
    std::fprintf(stderr, "usage: roam_bench_throughput [BYTES [RUNS]]\n");
    return 2;
  }
  if (!core::crypto::init()) return 1;
  std::uint16_t port = 0;
  const int lfd = rb::listen_loopback(port);

  constexpr int kVariants = 5;
  enum { kRaw, kRawOpts, kRoam, kXcha, kAes };
  const char* names[kVariants] = {"raw", "raw+opts", "roam", "roam+xcha", "roam+aes"};
  const bool have_aes = core::crypto::aes256gcm_available();
  if (!have_aes) std::printf("roam+aes skipped: this CPU has no AES-NI/PCLMULQDQ for AES-256-GCM\n");
  std::vector<double> gbps[kVariants], cpu_per_gb[kVariants];
  const double gb = static_cast<double>(g_bytes) / 1e9;
  std::printf("roam_bench_throughput: %.2f GiB per run, %d interleaved runs per variant, 127.0.0.1\n",
              static_cast<double>(g_bytes) / (1u << 30), runs);
  const int only = std::getenv("ROAM_BENCH_ONLY") ? std::atoi(std::getenv("ROAM_BENCH_ONLY")) : -1;
  auto ran = [&](int v) { return (only < 0 || v == only) && (v != kAes || have_aes); };
  for (int r = 0; r < runs; ++r) {
    for (int v = 0; v < kVariants; ++v) {
      if (!ran(v)) continue;
      g_encrypt = v >= kXcha;
      g_aes_gcm = v == kAes;
      const RunResult res = v >= kRoam ? run_roam(lfd, port) : run_raw(lfd, port, v == kRawOpts);
      gbps[v].push_back(gb * 8 / res.seconds);
      cpu_per_gb[v].push_back(res.cpu / gb);
      std::printf("  run %d %-9s %7.2f Gbit/s  %6.3f CPU-s/GB\n", r + 1, names[v], gbps[v].back(),
                  cpu_per_gb[v].back());
      std::fflush(stdout);
    }
  }
  std::printf("\n%-9s %22s %30s\n", "variant", "Gbit/s median (min-max)", "CPU-s per GB median (min-max)");
  rb::Summary g[kVariants], c[kVariants];
  for (int v = 0; v < kVariants; ++v) {
    if (!ran(v)) continue;
    g[v] = rb::summarize(gbps[v]);
    c[v] = rb::summarize(cpu_per_gb[v]);
    std::printf("%-9s %7.2f (%5.2f-%5.2f)         %6.3f (%5.3f-%5.3f)\n", names[v], g[v].median, g[v].min,
                g[v].max, c[v].median, c[v].min, c[v].max);
  }
  if (only >= 0) return 0;  // a single variant (profiling): no ratios
  // Per-pair ratios (run i of one variant against run i of another) give the spread of a ratio.
  auto pairs = [&](int a, int b) {
    std::vector<double> q;
    for (int r = 0; r < runs; ++r) q.push_back(gbps[a][r] / gbps[b][r]);
    return rb::summarize(q);
  };
  const rb::Summary rr = pairs(kRoam, kRaw), ro = pairs(kRoam, kRawOpts);
  std::printf("\nroam/raw throughput: %.3f (median of medians); per-pair %.3f (%.3f-%.3f)   target >= 0.95 -> %s\n",
              g[kRoam].median / g[kRaw].median, rr.median, rr.min, rr.max,
              g[kRoam].median / g[kRaw].median >= 0.95 ? "MET" : "NOT MET");
  std::printf("roam/raw+opts throughput: %.3f; per-pair %.3f (%.3f-%.3f)\n", g[kRoam].median / g[kRawOpts].median,
              ro.median, ro.min, ro.max);
  std::printf("CPU per GB roam/raw: %.3f, raw+opts/raw: %.3f\n", c[kRoam].median / c[kRaw].median,
              c[kRawOpts].median / c[kRaw].median);
  for (int v : {kXcha, kAes}) {
    if (!ran(v)) continue;
    const rb::Summary vr = pairs(v, kRoam), vw = pairs(v, kRaw);
    std::printf("%s (--encrypt, %s): /roam %.3f, per-pair %.3f (%.3f-%.3f); /raw %.3f, per-pair %.3f "
                "(%.3f-%.3f); CPU per GB /roam %.3f\n",
                names[v], v == kAes ? "AES-256-GCM" : "XChaCha20-Poly1305", g[v].median / g[kRoam].median,
                vr.median, vr.min, vr.max, g[v].median / g[kRaw].median, vw.median, vw.min, vw.max,
                c[v].median / c[kRoam].median);
  }
  ::close(lfd);
  return 0;
}
