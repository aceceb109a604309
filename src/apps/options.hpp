// Command-line vocabulary shared by the subcommands: durations ("500ms", "30s", "2h"), sizes
// ("64K", "8M"), logging, signals.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/security.hpp"
#include "core/session/session.hpp"
#include "io/loop.hpp"
#include "io/netmon.hpp"

namespace roam::apps {

std::optional<core::Duration> parse_duration(const std::string& text);
std::optional<std::uint64_t> parse_size(const std::string& text);

struct SessionFlags {
  std::string wait = "10m";
  std::string heartbeat = "1s";
  std::string buffer = "8M";
  SecurityFlags security;  // --encrypt, --key / --known-hosts (apps/security.hpp)
  // Observability (apps/observe.hpp): --metrics ADDR:PORT, --control-dir DIR.
  std::string metrics;
  std::string control_dir;
  // Daemons only (add_daemon_limit_flags): sessions in the wait state at once.
  std::size_t max_waiting = 4096;
  // Daemons only: worker processes sharing the listening address (io/workers.hpp).
  unsigned workers = 1;
};
// Adds --wait, --heartbeat and --buffer to `cmd`.
void add_session_flags(CLI::App& cmd, SessionFlags& flags);
// Adds --max-waiting and --workers to `cmd` (roam server, roam proxy).
void add_daemon_limit_flags(CLI::App& cmd, SessionFlags& flags);
// Throws CLI::ValidationError for flags that --workers N > 1 cannot serve (--metrics).
void check_workers(const SessionFlags& flags);
// Builds the core's configuration; throws CLI::ValidationError on bad values (exit status 2).
core::SessionConfig session_config(const SessionFlags& flags);

// Sets spdlog to stderr with the given level ("trace".."off").
void setup_logging(const std::string& level);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and in every thread it starts later, so
// that they reach install_signals()' signalfd and never kill the process through a worker thread
// (whose default action would). Call it before anything starts a thread (a Resolver, a server).
void block_signals();
// SIGTERM/SIGINT call `on_term`, SIGHUP calls `on_hup`; SIGPIPE is ignored.
void install_signals(io::Loop& loop, std::function<void()> on_term, std::function<void()> on_hup);

int run_server(const std::string& listen, const std::string& forward, const SessionFlags& flags);
struct PathFlags {
  std::string prefer;     // "wifi,cell"
  std::string interface;  // pin
};
void add_path_flags(CLI::App& cmd, PathFlags& flags);
io::PathPolicy path_policy(const PathFlags& flags);

int run_connect(const std::string& target, const std::string& port_arg, const std::string& local,
                const SessionFlags& flags, const PathFlags& path);

}  // namespace roam::apps
