// `roam status`: what every roam daemon on this host is doing, from their control sockets.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/observe.hpp"
#include "io/control.hpp"

namespace roam::apps {

CLI::App* add_status_command(CLI::App& app, StatusFlags& f) {
  auto* cmd = app.add_subcommand(
      "status",
      "Show every running roam daemon (server, connect, proxy, socks) on this host and its\n"
      "sessions: id (the first bytes of the session token, as in the logs), role, peer, current\n"
      "path (local → remote), state, bytes each way, retention in use, migrations, the latency of\n"
      "the last handover and the time spent without a path (WAITED).\n"
      "Each daemon serves a control socket <kind>-<pid>.sock in the control directory (0700):\n"
      "--control-dir, else $ROAM_RUNTIME_DIR, else /run/roam for root, else\n"
      "$XDG_RUNTIME_DIR/roam, else /tmp/roam-$UID. Start the daemons and `roam status` with\n"
      "the same directory (and as the same user).\n"
      "Examples:\n"
      "  roam status\n"
      "  roam status --json | jq '.daemons[].sessions[] | {id, state, migrations}'\n"
      "  watch -n1 roam status\n"
      "For Prometheus and a live page in a browser, start the daemon with --metrics ADDR:PORT.\n"
      "Sockets whose daemon does not answer (killed with SIGKILL) are skipped with a note on\n"
      "stderr. Exit status: 0, also when no daemon runs; 2 on a usage error.");
  cmd->add_option("--control-dir", f.control_dir, "Directory of the daemons' control sockets");
  cmd->add_flag("--json", f.json,
                "Print JSON: {\"daemons\": [per daemon: kind, pid, listen, counters, sessions...], "
                "\"skipped\": [sockets that did not answer]}");
  cmd->add_option("--timeout", f.timeout_s, "Seconds to wait for each daemon's answer")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 60.0));
  return cmd;
}

int run_status(const StatusFlags& f) {
  const std::string dir = io::control_dir(f.control_dir);
  const auto answers = io::query_control_dir(
      dir, std::chrono::milliseconds(static_cast<long>(f.timeout_s * 1000)));
  std::vector<io::DaemonSnapshot> daemons;
  nlohmann::json jd = nlohmann::json::array(), skipped = nlohmann::json::array();
  for (const auto& a : answers) {
    if (a.ok) {
      daemons.push_back(a.snapshot);
      auto j = io::to_json(a.snapshot);
      j["socket"] = a.socket;
      jd.push_back(std::move(j));
    } else {
      skipped.push_back({{"socket", a.socket}, {"error", a.error}});
      std::fprintf(stderr, "roam status: skipping %s: %s\n", a.socket.c_str(), a.error.c_str());
    }
  }
  if (f.json) {
    std::cout << nlohmann::json{{"control_dir", dir}, {"daemons", jd}, {"skipped", skipped}}.dump(2)
              << "\n";
  } else if (daemons.empty()) {
    std::cout << "no roam daemons running (control directory " << dir << ")\n";
  } else {
    std::cout << io::format_status_table(daemons);
  }
  return 0;
}

}  // namespace roam::apps
