#include <spdlog/spdlog.h>

#include "apps/observe.hpp"
#include "apps/options.hpp"
#include "io/client.hpp"

namespace roam::apps {

int run_connect(const std::string& target, const std::string& port_arg, const std::string& local,
                const SessionFlags& flags, const PathFlags& path) {
  io::Endpoint server;
  if (!port_arg.empty()) {
    // `roam connect HOST PORT`: unambiguous for IPv6 literals (ssh's %h).
    auto p = io::parse_port(port_arg);
    if (!p) throw CLI::ValidationError("PORT", p.error().detail);
    server.host = target;
    if (server.host.size() > 2 && server.host.front() == '[' && server.host.back() == ']')
      server.host = server.host.substr(1, server.host.size() - 2);
    server.port = *p;
  } else {
    auto e = io::parse_endpoint(target);
    if (!e) throw CLI::ValidationError("HOST:PORT", e.error().detail);
    server = *e;
  }
  io::ClientConfig cfg;
  cfg.server = server;
  cfg.session = session_config(flags);
  cfg.policy = path_policy(path);
  cfg.pin = apply_client_security(flags.security, server.str(), cfg.session);

  io::Loop loop;
  Observer observer(loop, flags, "connect");
  if (!local.empty()) {
    auto l = io::parse_endpoint(local, "127.0.0.1", /*listener=*/true);
    if (!l) throw CLI::ValidationError("--local", l.error().detail);
    io::raise_nofile_limit();
    io::LocalForwarder fwd(loop, cfg, *l);
    install_signals(
        loop,
        [&] {
          spdlog::info("terminating: aborting {} session(s)", fwd.session_count());
          fwd.abort_all("client shutting down");
          loop.at(loop.now() + std::chrono::milliseconds(300), [&] { loop.stop(); });
        },
        [&] { fwd.migrate_all(); });
    if (auto ok = fwd.start(); !ok) {
      spdlog::error("{}", ok.error().detail);
      return 1;
    }
    if (!observer.start(fwd.bound())) return 1;
    loop.run();
    return 0;
  }
  io::StdioClient client(loop, cfg);
  install_signals(
      loop, [&] { client.abort("interrupted"); },
      [&] {
        if (client.driver()) client.driver()->migrate_now();
      });
  if (!observer.start("stdio")) return 1;
  client.start();
  loop.run();
  if (client.exit_status() == 1 && client.driver())
    spdlog::error("{}", client.driver()->error_text());
  return client.exit_status();
}

}  // namespace roam::apps
