#include "apps/observe.hpp"

#include <spdlog/spdlog.h>

#include "io/registry.hpp"

namespace roam::apps {

Observer::Observer(io::Loop& loop, const SessionFlags& flags, std::string kind)
    : loop_(loop), metrics_(flags.metrics), control_dir_(flags.control_dir), kind_(std::move(kind)) {
  if (!metrics_.empty()) {
    // Checked before the daemon starts, so that a typo is a usage error (exit 2).
    auto ep = io::parse_endpoint(metrics_, "127.0.0.1", /*listener=*/true);
    if (!ep) throw CLI::ValidationError("--metrics", ep.error().detail);
  }
}

bool Observer::start(const std::string& listen) {
  io::registry().set_daemon(kind_, listen);
  control_ = std::make_unique<io::ControlServer>(loop_, io::control_dir(control_dir_), kind_);
  if (auto ok = control_->start(); !ok) {
    spdlog::warn("no control socket (roam status will not see this daemon): {}", ok.error().detail);
    control_.reset();
  } else {
    spdlog::info("control socket {} (roam status)", control_->path());
  }
  if (metrics_.empty()) return true;
  http_ = std::make_unique<io::MetricsServer>(loop_);
  const auto ep = io::parse_endpoint(metrics_, "127.0.0.1", /*listener=*/true);  // checked above
  if (auto ok = http_->start(*ep); !ok) {
    spdlog::error("{}", ok.error().detail);
    http_.reset();
    return false;
  }
  spdlog::info("metrics at http://{}/metrics, status page at http://{}/", http_->bound(), http_->bound());
  return true;
}

}  // namespace roam::apps
