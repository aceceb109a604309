// What every daemon (server, connect, proxy, socks) runs beside its sessions so that people can
// watch it: the control socket for `roam status` and, with --metrics, the HTTP endpoint.
#pragma once

#include <memory>
#include <string>

#include "apps/options.hpp"
#include "io/control.hpp"
#include "io/loop.hpp"
#include "io/metrics.hpp"

namespace roam::apps {

class Observer {
 public:
  // `kind` names the daemon in `roam status` and its socket: "server", "connect", "proxy", "socks".
  Observer(io::Loop& loop, const SessionFlags& flags, std::string kind);
  // Once the daemon listens on `listen`: opens the control socket (a failure is logged, the daemon
  // goes on) and the metrics server. Returns false when --metrics was asked for and cannot be
  // served (logged; the daemon should exit 1).
  bool start(const std::string& listen);

 private:
  io::Loop& loop_;
  std::string metrics_;
  std::string control_dir_;
  std::string kind_;
  std::unique_ptr<io::ControlServer> control_;
  std::unique_ptr<io::MetricsServer> http_;
};

// `roam status`.
struct StatusFlags {
  std::string control_dir;
  bool json = false;
  double timeout_s = 2;
};
CLI::App* add_status_command(CLI::App& app, StatusFlags& flags);
int run_status(const StatusFlags& flags);

}  // namespace roam::apps
