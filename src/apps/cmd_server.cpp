#include <spdlog/spdlog.h>

#include "apps/config.hpp"
#include "apps/observe.hpp"
#include "apps/options.hpp"
#include "io/server.hpp"
#include "io/workers.hpp"

namespace roam::apps {
namespace {
// One process's (or worker's) server: today's whole daemon.
int serve(io::ServerConfig cfg, const SessionFlags& flags, const io::WorkerContext* worker);
}  // namespace

int run_server(const std::string& listen, const std::string& forward, const SessionFlags& flags) {
  auto l = io::parse_endpoint(listen, "0.0.0.0", /*listener=*/true);
  if (!l) throw CLI::ValidationError("--listen", l.error().detail);
  auto f = io::parse_endpoint(forward);
  if (!f) throw CLI::ValidationError("--forward", f.error().detail);
  io::ServerConfig cfg;
  cfg.listen = *l;
  cfg.forward = *f;
  cfg.session = session_config(flags);
  cfg.max_waiting = flags.max_waiting;
  apply_server_security(flags.security, cfg.session);
  check_workers(flags);
  io::raise_nofile_limit();
  block_signals();  // before any thread starts (the observer's) and before workers fork
  return io::run_workers(flags.workers, cfg.listen, [&](const io::WorkerContext* w) {
    return serve(cfg, flags, w);
  });
}

namespace {

int serve(io::ServerConfig cfg, const SessionFlags& flags, const io::WorkerContext* worker) {
  io::Loop loop;
  auto handoff = worker ? std::make_unique<io::Handoff>(loop, *worker) : nullptr;
  cfg.handoff = handoff.get();
  io::Server server(loop, cfg);
  if (handoff)
    handoff->set_receiver([&server](int fd, std::vector<std::uint8_t> bytes, core::Hop hop) {
      server.adopt_handoff(fd, std::move(bytes), hop);
    });
  Observer observer(loop, flags, "server");
  install_signals(
      loop,
      [&] {
        spdlog::info("terminating: aborting {} session(s)", server.session_count());
        server.abort_all("server shutting down");
        loop.at(loop.now() + std::chrono::milliseconds(300), [&] { loop.stop(); });
      },
      [&] {
        // The target, listener and session settings stay (changing them would break sessions);
        // SIGHUP re-reads only --log-level from the config file.
        if (auto v = ConfigFile::instance().reload("server"); !v)
          spdlog::error("SIGHUP: keeping the old log level: {}", v.error().detail);
        else
          reload_log_level(*v);
      });
  if (auto ok = server.start(); !ok) {
    spdlog::error("{}", ok.error().detail);
    return 1;
  }
  if (!observer.start(server.bound())) return 1;
  loop.run();
  return 0;
}

}  // namespace
}  // namespace roam::apps
