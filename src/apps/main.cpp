// roam: keeps TCP connections alive when a host's IP address changes.
#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "apps/cmd_proxy.hpp"
#include "apps/config.hpp"
#include "apps/demo.hpp"
#include "apps/observe.hpp"
#include "apps/options.hpp"
#include "apps/version.hpp"
#include "core/crypto/crypto.hpp"

int main(int argc, char** argv) {
  using namespace roam::apps;
  CLI::App app{
      "roam keeps TCP connections alive when a host's IP address changes.\n"
      "A session is named by a secret-derived token, not by addresses: when the client's\n"
      "connection breaks it reconnects from wherever it is and both sides resume exactly\n"
      "where they were (no byte lost, duplicated or reordered).",
      "roam"};
  app.require_subcommand(1);
  app.set_version_flag("--version", roam::apps::version_text());
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (logs go to stderr)")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  SessionFlags server_flags;
  std::string listen, forward;
  auto* server = app.add_subcommand(
      "server",
      "Accept roam sessions and forward each one's bytes to one fixed local service.\n"
      "Example: roam server --listen 0.0.0.0:7000 --forward 127.0.0.1:22");
  server->add_option("--listen", listen, "Address to accept roam sessions on (ADDR:PORT or [v6]:PORT)")
      ->required();
  server->add_option("--forward", forward,
                     "The one service every session is forwarded to (HOST:PORT); never an open relay")
      ->required();
  add_session_flags(*server, server_flags);
  add_daemon_limit_flags(*server, server_flags);
  add_security_flags(*server, server_flags.security, Side::kServer);

  SessionFlags connect_flags;
  std::string target, port_arg, local;
  auto* connect = app.add_subcommand(
      "connect",
      "Open a roam session to a `roam server`: on stdin/stdout, or for each connection to a\n"
      "local listener (--local).\n"
      "Examples:\n"
      "  ssh -o ProxyCommand='roam connect %h 7000' host\n"
      "  roam connect server.example:7000 --local 2222   # then: ssh -p 2222 localhost\n"
      "Exit status (stdio mode): 0 clean end, 1 error, 2 usage, 3 session aborted.");
  connect->add_option("target", target, "HOST:PORT, [v6]:PORT, or HOST followed by PORT")->required();
  connect->add_option("port", port_arg, "PORT, when HOST is given alone (as ssh's %h)");
  connect->add_option("--local", local,
                      "[ADDR:]PORT to listen on; each accepted connection becomes its own session "
                      "(ADDR defaults to 127.0.0.1)");
  add_session_flags(*connect, connect_flags);
  PathFlags connect_path;
  add_path_flags(*connect, connect_path);
  add_security_flags(*connect, connect_flags.security, Side::kClient);

  ProxyFlags proxy_flags;
  auto* proxy = add_proxy_command(app, proxy_flags);
  SocksFlags socks_flags;
  auto* socks = add_socks_command(app, socks_flags);
  KeygenFlags keygen_flags;
  auto* keygen = add_keygen_command(app, keygen_flags);

  DemoFlags demo_flags;
  auto* demo = add_demo_command(app, demo_flags);
  StatusFlags status_flags;
  auto* status = add_status_command(app, status_flags);

  try {
    ConfigFile::instance().attach(app);  // after every subcommand: --config on each of them
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help/--version: 0; any usage error: 2 (SPEC)
  }
  setup_logging(log_level);
  if (!roam::core::crypto::init()) {
    spdlog::error("libsodium failed to initialise");
    return 1;
  }
  try {
    if (keygen->parsed()) return run_keygen(keygen_flags);
    if (server->parsed()) return run_server(listen, forward, server_flags);
    if (connect->parsed()) return run_connect(target, port_arg, local, connect_flags, connect_path);
    if (proxy->parsed()) return run_proxy(proxy_flags);
    if (socks->parsed()) return run_socks(socks_flags);
    if (demo->parsed()) return run_demo(demo_flags);
    if (status->parsed()) return run_status(status_flags);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "roam: %s%s\n", config_context(e.what()).c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 2;
}
