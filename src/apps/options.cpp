#include "apps/options.hpp"

#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/session/handoff.hpp"

namespace roam::apps {

std::optional<core::Duration> parse_duration(const std::string& text) {
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    return std::nullopt;
  }
  if (value < 0) return std::nullopt;
  const std::string unit = text.substr(pos);
  double ns = 0;
  if (unit == "ms") ns = value * 1e6;
  else if (unit == "s" || unit.empty()) ns = value * 1e9;
  else if (unit == "m" || unit == "min") ns = value * 60e9;
  else if (unit == "h") ns = value * 3600e9;
  else if (unit == "d") ns = value * 86400e9;
  else return std::nullopt;
  return core::Duration(static_cast<std::int64_t>(ns));
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::size_t pos = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &pos);
  } catch (...) {
    return std::nullopt;
  }
  std::string unit = text.substr(pos);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  std::uint64_t mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "K" || unit == "k") mult = 1ull << 10;
  else if (unit == "M" || unit == "m") mult = 1ull << 20;
  else if (unit == "G" || unit == "g") mult = 1ull << 30;
  else return std::nullopt;
  return value * mult;
}

void add_session_flags(CLI::App& cmd, SessionFlags& flags) {
  cmd.add_option("--wait", flags.wait,
                 "How long a session whose path is gone waits for the client to come back "
                 "(MIGRATE_WAIT), counted from the last byte heard; the smaller of both sides' "
                 "values applies. E.g. 30s, 10m, 2h")
      ->capture_default_str();
  cmd.add_option("--heartbeat", flags.heartbeat,
                 "Heartbeat interval; a path that stays silent (and makes no TCP progress) for 3 "
                 "intervals is declared dead and the client migrates. E.g. 500ms, 1s")
      ->capture_default_str();
  cmd.add_option("--buffer", flags.buffer,
                 "Retention buffer cap per direction: the most unacknowledged bytes a session "
                 "keeps for resume. A full buffer pauses the local reader (backpressure). "
                 "E.g. 64K, 8M")
      ->capture_default_str();
  cmd.add_option("--metrics", flags.metrics,
                 "Serve Prometheus metrics (/metrics), a JSON snapshot (/status.json) and a live "
                 "status page (/) over HTTP on ADDR:PORT, e.g. 127.0.0.1:9100 (port 0: any free "
                 "port, logged). No authentication: keep it on loopback or a management network");
  cmd.add_option("--control-dir", flags.control_dir,
                 "Directory of the control socket that `roam status` reads (default: "
                 "$ROAM_RUNTIME_DIR, else /run/roam for root, else $XDG_RUNTIME_DIR/roam, else "
                 "/tmp/roam-$UID)");
}

void add_daemon_limit_flags(CLI::App& cmd, SessionFlags& flags) {
  cmd.add_option("--max-waiting", flags.max_waiting,
                 "Most sessions in the wait state at once; beyond it the session that has waited "
                 "longest ends (its application sees an abort) and it is logged. Each waiting "
                 "session keeps its forwarded socket and retention buffers")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--workers", flags.workers,
                 "Worker processes sharing --listen (SO_REUSEPORT), each with its own event loop, "
                 "sessions and control socket (`roam status` lists each as worker i/N). A migrate "
                 "request that reaches a worker not holding its session is passed to the one that "
                 "does. Use 2 or more to use several cores, or to hold more sessions than one "
                 "process's descriptor limit allows (2 per session). --max-waiting, the "
                 "unfinished-handshake cap and the refused-migrate limiter apply per worker. "
                 "Not with --metrics (use `roam status --json`)")
      ->check(CLI::Range(1u, core::kMaxWorkers))
      ->capture_default_str();
}

void check_workers(const SessionFlags& flags) {
  if (flags.workers > 1 && !flags.metrics.empty())
    throw CLI::ValidationError(
        "--metrics", "not served with --workers " + std::to_string(flags.workers) +
                         ": each worker is its own process with its own counters, and one HTTP "
                         "endpoint cannot show them all yet. Use `roam status --json` (one entry "
                         "per worker), or --workers 1 with --metrics");
}

core::SessionConfig session_config(const SessionFlags& flags) {
  core::SessionConfig cfg;
  auto wait = parse_duration(flags.wait);
  if (!wait || *wait < std::chrono::seconds(1))
    throw CLI::ValidationError("--wait", "expected a duration of at least 1s, like 30s, 10m or 2h");
  auto hb = parse_duration(flags.heartbeat);
  if (!hb || *hb < std::chrono::milliseconds(50) || *hb > std::chrono::minutes(5))
    throw CLI::ValidationError("--heartbeat", "expected a duration between 50ms and 5m, like 1s");
  auto cap = parse_size(flags.buffer);
  if (!cap || *cap < 4096 || *cap > (1ull << 32))
    throw CLI::ValidationError("--buffer", "expected a size between 4K and 4G, like 64K or 8M");
  cfg.handshake.wait = *wait;
  cfg.handshake.buffer_cap = *cap;
  cfg.heartbeat = *hb;
  return cfg;
}

void add_path_flags(CLI::App& cmd, PathFlags& flags) {
  cmd.add_option("--prefer", flags.prefer,
                 "Interfaces in order of preference, e.g. wifi0,wwan0: paths use the first one "
                 "that has a route to the server, and move back when a preferred one returns");
  cmd.add_option("--interface", flags.interface,
                 "Pin every path to this interface (SO_BINDTODEVICE; needs CAP_NET_RAW)");
}

io::PathPolicy path_policy(const PathFlags& flags) {
  io::PathPolicy p;
  p.pin = flags.interface;
  std::size_t start = 0;
  while (start <= flags.prefer.size() && !flags.prefer.empty()) {
    const auto comma = flags.prefer.find(',', start);
    std::string name = flags.prefer.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!name.empty()) p.prefer.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (!p.pin.empty() && !p.prefer.empty())
    throw CLI::ValidationError("--interface", "pinning excludes --prefer");
  return p;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("roam");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e roam[%P] %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

namespace {
sigset_t daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void block_signals() {
  const sigset_t set = daemon_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void install_signals(io::Loop& loop, std::function<void()> on_term, std::function<void()> on_hup) {
  std::signal(SIGPIPE, SIG_IGN);
  const sigset_t set = daemon_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  const int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return;
  loop.add(fd, EPOLLIN, [fd, on_term = std::move(on_term), on_hup = std::move(on_hup)](std::uint32_t) {
    signalfd_siginfo si{};
    while (::read(fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGHUP) {
        if (on_hup) on_hup();
      } else if (on_term) {
        on_term();
      }
    }
  });
}

}  // namespace roam::apps
