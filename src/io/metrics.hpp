// `--metrics ADDR:PORT`: Prometheus metrics, a JSON snapshot and a live status page over HTTP.
//
// Theory of operation. cpp-httplib serves on its own threads; the sessions belong to the
// daemon's loop thread, so each request asks the loop for a snapshot (snapshot_via_loop: posted
// to the loop, waited for with a deadline) and renders it. A loop that does not answer in time
// gets a 503, never a stale or torn read. Routes:
//   GET /metrics      Prometheus text format 0.0.4 (names in docs/OPERATING.md)
//   GET /status.json  the daemon's snapshot, as `roam status --json` shows it
//   GET /             the status page: sessions and a chart of recent handover latencies, drawn by
//                     a small inline script that fetches /status.json every second (no external
//                     resources)
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "core/common.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/registry.hpp"

namespace httplib {
class Server;
}

namespace roam::io {

// The Prometheus exposition (text format 0.0.4) of one snapshot.
std::string render_prometheus(const DaemonSnapshot& s);
// The status page (self-contained HTML).
const std::string& status_page_html();

class MetricsServer {
 public:
  explicit MetricsServer(Loop& loop);
  ~MetricsServer();  // stops the HTTP threads
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Binds `where` (port 0: any free port) and starts serving on a thread.
  core::Result<void> start(const Endpoint& where);
  // "ADDR:PORT" actually bound.
  const std::string& bound() const { return bound_; }

 private:
  Loop& loop_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::string bound_;
};

}  // namespace roam::io
