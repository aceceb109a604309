// roam_loadgen: many checked TCP streams from one process, for the soak and scale benchmarks
// (bench/soak/soak.sh, bench/scale/*.sh). Not a test: never registered with ctest.
//
//   roam_loadgen serve   --listen ADDR:PORT [--rate BPS] [--interval MS] [--report FILE]
//   roam_loadgen connect --to ADDR:PORT [--socks HOST:PORT] [--kind stream|ticks|echo]
//                        [--sessions N] [--first-id K] [--seed S] [--rate BPS] [--duration SEC]
//                        [--concurrency C (100)] [--report FILE] [--control FIFO] [--drain SEC]
//                        [--interval MS] [--latencies FILE]
//   roam_loadgen x25519  [COUNT]        µs per X25519 scalar multiplication (the handshake's cost)
//
// Every connection starts with a 24-byte hello from the client — "RLG1", u32 kind, u64 session
// id, u64 seed (little endian) — after, with --socks, a SOCKS5 CONNECT (no authentication) to
// --to through the proxy. Then, by kind:
//
//   stream  both directions carry an endless seeded pseudo-random byte sequence (one per session
//           and direction), paced at --rate bytes/s per direction (each side uses its own flag).
//           Every received byte is checked at its offset, so loss, duplication and reordering are
//           caught where they happen. After --duration the client half-closes; the server, on
//           EOF, stops and half-closes too; the client reads to EOF (at most --drain seconds).
//   ticks   the server sends a 16-byte record every --interval ms (u64 sequence number, u64 send
//           time in CLOCK_REALTIME ns; all namespaces share the kernel's clock), each session at its
//           own phase. The client checks
//           that the numbers are contiguous. A line "event NAME T_NS" on --control starts a
//           measurement: per session, the time from T_NS to the arrival of the first record sent
//           at or after T_NS (so it cannot have travelled on a path that was gone by then; the
//           resolution is one interval), and to the first arrival of any record after T_NS. When
//           every session has delivered (or on "report") it prints one line per event — sessions
//           measured, still waiting, dead; median/p90/max of both times — and with --latencies
//           FILE appends "NAME ID MS_SENT MS_ANY" per session to FILE. "quit" ends the run.
//   echo    the server answers the hello with one byte and then waits for EOF; the client closes
//           on that byte and opens the next connection: --sessions set-ups in all, --concurrency
//           at a time. Measures session set-up (handshake included) end to end.
//
// Reports: one line per session, written when it ends (the server also at SIGTERM/SIGINT for the
// sessions still open): "C|S ID KIND sent SENT recv RECV STATUS" (STATUS "ok" or what went
// wrong). The client prints a progress line every 10 s and a summary at the end, both on stdout;
// exit status 0 when every session ended "ok".
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../bench_util.hpp"

namespace {

using roam::bench::mono_seconds;

enum class Kind : std::uint32_t { kStream = 0, kTicks = 1, kEcho = 2 };
constexpr const char* kKindNames[] = {"stream", "ticks", "echo"};
constexpr std::size_t kHelloSize = 24;
constexpr std::size_t kTickSize = 16;
constexpr std::size_t kMaxBurst = 256 * 1024;  // most bytes one session sends in one go

std::uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// The key of one direction of one session's stream (dir 0: client→server, 1: server→client).
std::uint64_t stream_key(std::uint64_t seed, std::uint64_t id, int dir) {
  return mix(seed * 0x9E3779B97F4A7C15ull ^ mix(id * 2 + static_cast<std::uint64_t>(dir) + 1));
}
std::uint8_t pattern(std::uint64_t key, std::uint64_t off) {
  return static_cast<std::uint8_t>(mix(key + (off >> 3) * 0x9E3779B97F4A7C15ull) >> ((off & 7) * 8));
}

bool resolve(const std::string& s, sockaddr_storage& out, socklen_t& len) {
  const auto c = s.rfind(':');
  if (c == std::string::npos) return false;
  std::string host = s.substr(0, c);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  if (getaddrinfo(host.c_str(), s.substr(c + 1).c_str(), &hints, &res) != 0 || !res) return false;
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

struct Options {
  std::string mode, listen, to, socks, report, control, latencies;
  Kind kind = Kind::kStream;
  std::uint64_t sessions = 1, first_id = 0, seed = 1, concurrency = 100;
  double rate = 16384, duration = 10, interval_ms = 50, drain = 60;
};

struct Conn {
  int fd = -1;
  std::uint64_t id = 0, seed = 0;
  Kind kind = Kind::kStream;
  bool client = false, connected = false, socks_done = true, hello_done = false;
  bool shut_wr = false, eof = false, finished = false;
  std::string out;                 // bytes queued before the stream (SOCKS request, hello, ticks)
  std::vector<std::uint8_t> in;    // partial SOCKS reply, hello or tick record
  std::uint64_t sent = 0, recv = 0;  // stream bytes (stream kind) or records (ticks)
  double start = 0;                // pacing origin
  std::uint64_t next_seq = 0;      // ticks: next record expected / to send
  double next_tick = 0;
  std::string status = "ok";
  // ticks, client side: the event being measured (0: none) and its result.
  std::uint64_t event_ns = 0;
  double latency = -1, latency_any = -1;
};

class LoadGen {
 public:
  explicit LoadGen(Options o) : o_(std::move(o)) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (!o_.report.empty()) report_ = std::fopen(o_.report.c_str(), "w");
  }

  int run_server();
  int run_client();

 private:
  void add(int fd, void* tag, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }
  void mod(Conn& c, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }
  void fail(Conn& c, const std::string& why) {
    if (c.status == "ok") c.status = why;
    finish(c);
  }
  void finish(Conn& c);
  bool open_client(std::uint64_t id);
  void on_readable(Conn& c);
  void on_bytes(Conn& c, const std::uint8_t* p, std::size_t n);
  void pump(Conn& c, double now);
  bool flush_out(Conn& c);
  void control_line(const std::string& line);
  bool event_complete() const;
  void print_event_report();
  void progress(double now, bool final);

  Options o_;
  int ep_ = -1;
  std::FILE* report_ = nullptr;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns_;
  sockaddr_storage to_{}, via_{};
  socklen_t to_len_ = 0, via_len_ = 0;
  std::uint64_t next_server_key_ = 0;
  // totals
  std::uint64_t opened_ = 0, ended_ok_ = 0, ended_bad_ = 0, bytes_out_ = 0, bytes_in_ = 0;
  std::map<std::string, std::uint64_t> errors_;
  std::string event_name_;
  bool event_reported_ = false;
  std::uint64_t event_ns_ = 0;
  std::string ctl_buf_;
  bool quit_ = false;
};

void LoadGen::finish(Conn& c) {
  if (c.finished) return;
  c.finished = true;
  if (c.status == "ok") ++ended_ok_;
  else {
    ++ended_bad_;
    ++errors_[c.status];
  }
  if (report_)
    std::fprintf(report_, "%c %" PRIu64 " %s sent %" PRIu64 " recv %" PRIu64 " %s\n",
                 c.client ? 'C' : 'S', c.id, kKindNames[static_cast<int>(c.kind)], c.sent, c.recv,
                 c.status.c_str());
  epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
}

// Sends what is queued in c.out; false when the socket failed (c is finished then).
bool LoadGen::flush_out(Conn& c) {
  while (!c.out.empty()) {
    const ssize_t w = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (w > 0) {
      c.out.erase(0, static_cast<std::size_t>(w));
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      return true;
    } else {
      fail(c, std::string("send: ") + std::strerror(errno));
      return false;
    }
  }
  return true;
}

// Writes what the pacing allows: the pattern for streams, due records for ticks.
void LoadGen::pump(Conn& c, double now) {
  if (c.finished || !c.connected || !c.socks_done || (!c.client && !c.hello_done)) return;
  if (!flush_out(c) || !c.out.empty()) return;
  if (c.kind == Kind::kTicks && !c.client) {
    if (c.next_tick < now - 1) c.next_tick = now;  // after a long block: no burst of stale records
    while (now >= c.next_tick && c.out.size() < 64 * kTickSize) {
      std::uint8_t rec[kTickSize];
      put64(rec, c.next_seq++);
      put64(rec + 8, realtime_ns());
      c.out.append(reinterpret_cast<char*>(rec), kTickSize);
      ++c.sent;
      c.next_tick += o_.interval_ms / 1000.0;
    }
    flush_out(c);
    return;
  }
  if (c.kind != Kind::kStream || c.shut_wr) return;
  if (c.client && now - c.start >= o_.duration) {  // the end of the run: half-close
    shutdown(c.fd, SHUT_WR);
    c.shut_wr = true;
    return;
  }
  const auto allowed = static_cast<std::uint64_t>((now - c.start) * o_.rate) + 4096;
  if (allowed <= c.sent) return;
  static std::vector<std::uint8_t> buf(kMaxBurst);
  const std::size_t n = std::min<std::uint64_t>(allowed - c.sent, kMaxBurst);
  const std::uint64_t key = stream_key(c.seed, c.id, c.client ? 0 : 1);
  for (std::size_t k = 0; k < n; ++k) buf[k] = pattern(key, c.sent + k);
  const ssize_t w = send(c.fd, buf.data(), n, MSG_NOSIGNAL);
  if (w > 0) {
    c.sent += static_cast<std::uint64_t>(w);
    bytes_out_ += static_cast<std::uint64_t>(w);
  } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
    fail(c, std::string("send: ") + std::strerror(errno));
  }
}

// Stream bytes (after the SOCKS reply and the hello) arriving on c.
void LoadGen::on_bytes(Conn& c, const std::uint8_t* p, std::size_t n) {
  if (c.kind == Kind::kStream) {
    const std::uint64_t key = stream_key(c.seed, c.id, c.client ? 1 : 0);
    for (std::size_t k = 0; k < n; ++k)
      if (p[k] != pattern(key, c.recv + k)) {
        c.recv += k;
        fail(c, "MISMATCH at offset " + std::to_string(c.recv));
        return;
      }
    c.recv += n;
    bytes_in_ += n;
  } else if (c.kind == Kind::kTicks && c.client) {
    c.in.insert(c.in.end(), p, p + n);
    std::size_t off = 0;
    const std::uint64_t arrival = realtime_ns();
    for (; off + kTickSize <= c.in.size(); off += kTickSize) {
      const std::uint64_t seq = get64(&c.in[off]), sent_at = get64(&c.in[off + 8]);
      if (seq != c.next_seq) {
        fail(c, "record " + std::to_string(seq) + " where " + std::to_string(c.next_seq) + " was due");
        return;
      }
      ++c.next_seq;
      ++c.recv;
      if (c.event_ns && c.latency_any < 0 && arrival >= c.event_ns)
        c.latency_any = static_cast<double>(arrival - c.event_ns) / 1e9;
      if (c.event_ns && c.latency < 0 && sent_at >= c.event_ns)
        c.latency = static_cast<double>(arrival - c.event_ns) / 1e9;
    }
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(off));
  } else if (c.kind == Kind::kEcho && c.client) {
    ++c.recv;
    finish(c);  // the session is set up end to end: close and open the next
  } else {
    c.recv += n;  // echo server: anything after the hello is ignored
  }
}

void LoadGen::on_readable(Conn& c) {
  static std::vector<std::uint8_t> buf(256 * 1024);
  for (int rounds = 0; rounds < 4 && !c.finished; ++rounds) {
    const ssize_t r = recv(c.fd, buf.data(), buf.size(), 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      fail(c, errno == ECONNRESET ? "reset" : std::string("recv: ") + std::strerror(errno));
      return;
    }
    if (r == 0) {
      c.eof = true;
      if (!c.socks_done || (!c.client && !c.hello_done)) {
        fail(c, "closed before the stream started");
      } else if (c.client && c.kind == Kind::kStream && !c.shut_wr) {
        fail(c, "closed by the peer before the end of the run");
      } else if (c.client && c.kind != Kind::kStream) {
        fail(c, "closed by the peer");
      } else if (!c.client && c.kind == Kind::kStream && !c.shut_wr) {
        shutdown(c.fd, SHUT_WR);  // the client's stream ended: end ours, and we are done
        c.shut_wr = true;
        finish(c);
      } else {
        finish(c);
      }
      return;
    }
    const std::uint8_t* p = buf.data();
    std::size_t n = static_cast<std::size_t>(r);
    if (!c.socks_done) {  // method reply (2) + CONNECT reply (4 + address + 2)
      c.in.insert(c.in.end(), p, p + n);
      n = 0;
      if (c.in.size() < 2 + 5) continue;
      if (c.in[0] != 5 || c.in[1] != 0) return fail(c, "SOCKS method refused");
      if (c.in[3] != 0) return fail(c, "SOCKS reply " + std::to_string(c.in[3]));
      const std::size_t alen = c.in[5] == 1 ? 4 : c.in[5] == 4 ? 16 : 1u + c.in[6];
      const std::size_t need = 2 + 4 + alen + 2;
      if (c.in.size() < need) continue;
      c.socks_done = true;
      const std::vector<std::uint8_t> rest(c.in.begin() + static_cast<std::ptrdiff_t>(need), c.in.end());
      c.in.clear();
      c.start = mono_seconds();
      if (!rest.empty()) on_bytes(c, rest.data(), rest.size());
      continue;
    }
    if (!c.client && !c.hello_done) {
      const std::size_t take = std::min(n, kHelloSize - c.in.size());
      c.in.insert(c.in.end(), p, p + take);
      p += take;
      n -= take;
      if (c.in.size() < kHelloSize) continue;
      if (std::memcmp(c.in.data(), "RLG1", 4) != 0) return fail(c, "bad hello");
      const std::uint32_t kind = c.in[4] | c.in[5] << 8 | c.in[6] << 16 | static_cast<std::uint32_t>(c.in[7]) << 24;
      if (kind > 2) return fail(c, "bad kind");
      c.kind = static_cast<Kind>(kind);
      c.id = get64(&c.in[8]);
      c.seed = get64(&c.in[16]);
      c.in.clear();
      c.hello_done = true;
      c.start = mono_seconds();
      // Sessions tick out of phase (as independent applications would), at a per-session offset.
      c.next_tick = c.start + static_cast<double>(mix(c.id) % 1000) / 1000.0 * o_.interval_ms / 1000.0;
      if (c.kind == Kind::kEcho) {
        c.out = "A";
        if (!flush_out(c)) return;
      }
    }
    if (n) on_bytes(c, p, n);
  }
}

bool LoadGen::open_client(std::uint64_t id) {
  const auto& dst = o_.socks.empty() ? to_ : via_;
  const socklen_t dlen = o_.socks.empty() ? to_len_ : via_len_;
  const int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++errors_[std::string("socket: ") + std::strerror(errno)];
    ++ended_bad_;
    return false;
  }
  auto c = std::make_unique<Conn>();
  c->fd = fd;
  c->id = id;
  c->seed = o_.seed;
  c->kind = o_.kind;
  c->client = true;
  c->hello_done = true;
  c->event_ns = event_ns_;  // a session opened after an event is measured against it too
  c->start = mono_seconds();
  if (!o_.socks.empty()) {  // greeting + CONNECT, pipelined (the agent answers both in order)
    c->socks_done = false;
    c->out = std::string("\x05\x01\x00", 3);
    if (to_.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&to_);
      c->out += std::string("\x05\x01\x00\x01", 4);
      c->out.append(reinterpret_cast<const char*>(&a->sin_addr), 4);
      c->out.append(reinterpret_cast<const char*>(&a->sin_port), 2);
    } else {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&to_);
      c->out += std::string("\x05\x01\x00\x04", 4);
      c->out.append(reinterpret_cast<const char*>(&a->sin6_addr), 16);
      c->out.append(reinterpret_cast<const char*>(&a->sin6_port), 2);
    }
  }
  std::uint8_t hello[kHelloSize];
  std::memcpy(hello, "RLG1", 4);
  for (int i = 0; i < 4; ++i) hello[4 + i] = static_cast<std::uint8_t>(static_cast<std::uint32_t>(o_.kind) >> (8 * i));
  put64(hello + 8, id);
  put64(hello + 16, o_.seed);
  c->out.append(reinterpret_cast<char*>(hello), kHelloSize);
  ++opened_;
  Conn& ref = *c;
  conns_[id] = std::move(c);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst), dlen) != 0 && errno != EINPROGRESS) {
    add(fd, &ref, EPOLLIN);
    fail(ref, std::string("connect: ") + std::strerror(errno));
    return false;
  }
  add(fd, &ref, EPOLLIN | EPOLLOUT);
  return true;
}

// True when an event is being measured and every live session has delivered a record sent
// after it.
bool LoadGen::event_complete() const {
  if (event_name_.empty() || event_reported_ || conns_.size() < o_.sessions) return false;
  for (const auto& [id, c] : conns_)
    if (!c->finished && c->latency < 0) return false;
  return true;
}

void LoadGen::print_event_report() {
  event_reported_ = true;
  std::vector<double> v, any;
  std::uint64_t waiting = 0, dead = 0;
  std::FILE* f = o_.latencies.empty() ? nullptr : std::fopen(o_.latencies.c_str(), "a");
  for (auto& [id, c] : conns_) {
    if (c->finished) ++dead;
    else if (c->latency >= 0) {
      v.push_back(c->latency * 1000);
      any.push_back(c->latency_any * 1000);
      if (f) std::fprintf(f, "%s %" PRIu64 " %.3f %.3f\n", event_name_.c_str(), id, c->latency * 1000, c->latency_any * 1000);
    } else {
      ++waiting;
    }
  }
  if (f) std::fclose(f);
  auto max = [](const std::vector<double>& x) { return x.empty() ? 0.0 : *std::max_element(x.begin(), x.end()); };
  std::printf("event %s: %zu delivered, %" PRIu64 " waiting, %" PRIu64 " dead; ms to the first record sent"
              " after it: median %.1f p90 %.1f max %.1f; to the first arrival: median %.1f p90 %.1f max %.1f\n",
              event_name_.c_str(), v.size(), waiting, dead, roam::bench::percentile(v, 50),
              roam::bench::percentile(v, 90), max(v), roam::bench::percentile(any, 50),
              roam::bench::percentile(any, 90), max(any));
  std::fflush(stdout);
}

void LoadGen::control_line(const std::string& line) {
  char name[64] = "";
  unsigned long long t = 0;
  if (std::sscanf(line.c_str(), "event %63s %llu", name, &t) == 2) {
    event_name_ = name;
    event_ns_ = t;
    event_reported_ = false;
    for (auto& [id, c] : conns_) {
      c->event_ns = t;
      c->latency = c->latency_any = -1;
    }
  } else if (line == "report") {
    print_event_report();
  } else if (line == "quit") {
    quit_ = true;
  }
}

void LoadGen::progress(double now, bool final) {
  std::uint64_t alive = 0;
  for (auto& [id, c] : conns_) alive += !c->finished;
  std::printf("%s t=%.0fs sessions %" PRIu64 " opened, %" PRIu64 " open, %" PRIu64 " ended ok, %" PRIu64
              " failed; bytes out %" PRIu64 " in %" PRIu64 "\n",
              final ? "final" : "progress", now, opened_, alive, ended_ok_, ended_bad_, bytes_out_, bytes_in_);
  for (auto& [what, n] : errors_) std::printf("  error x%" PRIu64 ": %s\n", n, what.c_str());
  std::fflush(stdout);
}

volatile sig_atomic_t g_stop = 0;

int LoadGen::run_server() {
  sockaddr_storage a{};
  socklen_t alen = 0;
  if (!resolve(o_.listen, a, alen)) return std::fprintf(stderr, "loadgen: bad --listen\n"), 2;
  const int l = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, reinterpret_cast<sockaddr*>(&a), alen) != 0 || listen(l, 4096) != 0)
    return std::fprintf(stderr, "loadgen: cannot listen on %s: %s\n", o_.listen.c_str(), std::strerror(errno)), 1;
  alen = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &alen);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  getnameinfo(reinterpret_cast<sockaddr*>(&a), alen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  std::fprintf(stderr, "loadgen: listening on %s:%s\n", host, serv);
  add(l, nullptr, EPOLLIN);
  std::vector<epoll_event> evs(1024);
  while (!g_stop) {
    const int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 10);
    const double now = mono_seconds();
    for (int i = 0; i < n; ++i) {
      if (!evs[i].data.ptr) {
        for (;;) {
          const int fd = accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          auto c = std::make_unique<Conn>();
          c->fd = fd;
          c->connected = true;
          Conn& ref = *c;
          conns_[next_server_key_++] = std::move(c);
          add(fd, &ref, EPOLLIN);
          ++opened_;
        }
        continue;
      }
      on_readable(*static_cast<Conn*>(evs[i].data.ptr));
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      pump(*it->second, now);
      if (it->second->finished) it = conns_.erase(it);
      else ++it;
    }
    if (report_) std::fflush(report_);
  }
  for (auto& [k, c] : conns_) fail(*c, "open at exit");
  if (report_) std::fclose(report_);
  std::fprintf(stderr, "loadgen serve: %" PRIu64 " connections, CPU %.3f s\n", opened_,
               roam::bench::process_cpu_seconds());
  return 0;
}

int LoadGen::run_client() {
  if (!resolve(o_.to, to_, to_len_) || (!o_.socks.empty() && !resolve(o_.socks, via_, via_len_)))
    return std::fprintf(stderr, "loadgen: bad --to or --socks\n"), 2;
  int ctl = -1;
  if (!o_.control.empty()) {
    ctl = open(o_.control.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (ctl < 0) return std::fprintf(stderr, "loadgen: cannot open %s\n", o_.control.c_str()), 1;
    add(ctl, &ctl, EPOLLIN);
  }
  const double t0 = mono_seconds();
  double last_progress = t0;
  std::uint64_t next_id = o_.first_id;
  const std::uint64_t end_id = o_.first_id + o_.sessions;
  const bool churn = o_.kind == Kind::kEcho;
  // At most --concurrency connections in set-up at a time (echo: whole set-ups; others: until
  // connected and, with --socks, answered), so that a burst never exceeds the daemons' caps on
  // unfinished handshakes (roam socks evicts the oldest beyond 1,024).
  auto open_more = [&] {
    std::uint64_t in_flight = 0;
    for (const auto& [id, c] : conns_)
      in_flight += churn || (!c->finished && (!c->connected || !c->socks_done));
    const std::uint64_t room = o_.concurrency - std::min(o_.concurrency, in_flight);
    for (std::uint64_t k = 0; k < room && next_id < end_id; ++k) open_client(next_id++);
  };
  open_more();
  std::vector<epoll_event> evs(1024);
  while (!quit_ && !g_stop) {
    const int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 10);
    const double now = mono_seconds();
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == &ctl) {
        char b[4096];
        const ssize_t r = read(ctl, b, sizeof b);
        if (r > 0) ctl_buf_.append(b, static_cast<std::size_t>(r));
        if (r == 0) {  // every writer closed the FIFO: stop watching until one opens it again
          epoll_ctl(ep_, EPOLL_CTL_DEL, ctl, nullptr);
          close(ctl);
          ctl = open(o_.control.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
          add(ctl, &ctl, EPOLLIN);
        }
        for (auto nl = ctl_buf_.find('\n'); nl != std::string::npos; nl = ctl_buf_.find('\n')) {
          control_line(ctl_buf_.substr(0, nl));
          ctl_buf_.erase(0, nl + 1);
        }
        continue;
      }
      Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
      if (c.finished) continue;
      if (!c.connected && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          fail(c, std::string("connect: ") + std::strerror(err));
          continue;
        }
        c.connected = true;
        mod(c, EPOLLIN);
        flush_out(c);
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
    bool all_done = true;
    for (auto it = conns_.begin(); it != conns_.end();) {
      pump(*it->second, now);
      all_done = all_done && it->second->finished;
      if (churn && it->second->finished) it = conns_.erase(it);
      else ++it;
    }
    if (event_complete()) print_event_report();
    if (next_id < end_id) open_more();
    if (churn) {
      if (next_id == end_id && conns_.empty()) break;
    } else if (o_.kind == Kind::kStream) {
      if (all_done) break;
      if (now - t0 > o_.duration + o_.drain) {
        for (auto& [id, c] : conns_) fail(*c, "no end of stream within the drain time");
        break;
      }
    }
    if (now - last_progress >= 10) {
      last_progress = now;
      progress(now - t0, false);
    }
  }
  for (auto& [id, c] : conns_) if (!c->finished) fail(*c, o_.kind == Kind::kTicks ? "ok" : "open at exit");
  const double elapsed = mono_seconds() - t0;
  progress(elapsed, true);
  if (churn)
    std::printf("set-ups %" PRIu64 " in %.3f s: %.0f per second\n", ended_ok_, elapsed,
                static_cast<double>(ended_ok_) / elapsed);
  if (report_) std::fclose(report_);
  return ended_bad_ == 0 ? 0 : 1;
}

int x25519(std::uint64_t count) {
  unsigned char sk[crypto_scalarmult_SCALARBYTES], pk[crypto_scalarmult_BYTES], q[crypto_scalarmult_BYTES];
  randombytes_buf(sk, sizeof sk);
  crypto_scalarmult_base(pk, sk);
  const double c0 = roam::bench::process_cpu_seconds();
  for (std::uint64_t i = 0; i < count; ++i) {
    if (crypto_scalarmult(q, sk, pk) != 0) return 1;
    pk[0] ^= q[0];
  }
  const double us = (roam::bench::process_cpu_seconds() - c0) * 1e6 / static_cast<double>(count);
  std::printf("x25519: %.1f us CPU per scalar multiplication (%" PRIu64 " runs)\n", us, count);
  return 0;
}

int usage() {
  std::fprintf(stderr, "usage: see the comment at the top of bench/soak/loadgen.cpp\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || sodium_init() < 0) return usage();
  Options o;
  o.mode = argv[1];
  if (o.mode == "x25519") return x25519(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20000);
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--listen") o.listen = v;
    else if (k == "--to") o.to = v;
    else if (k == "--socks") o.socks = v;
    else if (k == "--report") o.report = v;
    else if (k == "--control") o.control = v;
    else if (k == "--latencies") o.latencies = v;
    else if (k == "--sessions") o.sessions = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--first-id") o.first_id = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--seed") o.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--concurrency") o.concurrency = std::max<std::uint64_t>(1, std::strtoull(v.c_str(), nullptr, 10));
    else if (k == "--rate") o.rate = static_cast<double>(roam::bench::parse_bytes(v.c_str()));
    else if (k == "--duration") o.duration = std::strtod(v.c_str(), nullptr);
    else if (k == "--drain") o.drain = std::strtod(v.c_str(), nullptr);
    else if (k == "--interval") o.interval_ms = std::strtod(v.c_str(), nullptr);
    else if (k == "--kind") {
      if (v == "stream") o.kind = Kind::kStream;
      else if (v == "ticks") o.kind = Kind::kTicks;
      else if (v == "echo") o.kind = Kind::kEcho;
      else return usage();
    } else {
      return usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  LoadGen g(o);
  if (o.mode == "serve" && !o.listen.empty()) return g.run_server();
  if (o.mode == "connect" && !o.to.empty()) return g.run_client();
  return usage();
}
