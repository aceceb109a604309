#include "apps/cmd_proxy.hpp"
#include "apps/config.hpp"

#include <cstdlib>

#include <spdlog/spdlog.h>

#include "apps/observe.hpp"
#include "io/proxy.hpp"
#include "io/socks_agent.hpp"
#include "io/workers.hpp"

namespace roam::apps {
namespace {

core::socks5::CidrList cidr_list(const std::vector<std::string>& texts, const char* flag) {
  core::socks5::CidrList l;
  for (const auto& t : texts) {
    auto c = core::socks5::parse_cidr(t);
    if (!c) throw CLI::ValidationError(flag, c.error().detail + " (expected a network like 10.0.0.0/8 or fc00::/7)");
    l.add(*c);
  }
  return l;
}

// SIGHUP: the access rules again, each from the command line if given there, else from the
// config file read anew (a key removed from the file falls back to the default). A bad file or
// value is an error naming its line; nothing is applied then.
core::Result<io::ProxyConfig> reloaded_rules(const ProxyFlags& f) {
  const ConfigFile& file = ConfigFile::instance();
  auto values = file.reload("proxy");
  if (!values) return tl::make_unexpected(values.error());
  io::ProxyConfig r;
  auto pick = [&](const char* key, const std::vector<std::string>& flag, std::string& origin) {
    origin.clear();
    if (file.from_command_line(key)) return flag;
    auto it = values->find(key);
    if (it == values->end()) return std::vector<std::string>{};
    origin = it->second.origin + ": ";
    return it->second.inputs;
  };
  std::string origin;
  try {
    r.allow_client = cidr_list(pick("allow-client", f.allow_client, origin), "--allow-client");
    r.allow_dest = cidr_list(pick("allow-dest", f.allow_dest, origin), "--allow-dest");
    r.deny_dest = cidr_list(pick("deny-dest", f.deny_dest, origin), "--deny-dest");
  } catch (const CLI::ValidationError& e) {
    return core::fail(core::Errc::kMalformed, origin + e.what());
  }
  const auto users = pick("users", {f.users}, origin);
  r.users_file = users.empty() ? std::string() : users.front();
  reload_log_level(*values);
  return r;
}

// One process's (or worker's) proxy: today's whole daemon.
int serve_proxy(io::ProxyConfig cfg, const ProxyFlags& f, const io::WorkerContext* worker);

}  // namespace

CLI::App* add_proxy_command(CLI::App& app, ProxyFlags& f) {
  auto* cmd = app.add_subcommand(
      "proxy",
      "MSOCKS edge proxy: a SOCKS5 server (RFC 1928 CONNECT, RFC 1929 users) that any SOCKS5\n"
      "client can use. Clients that offer roam's own method (0x80, e.g. `roam socks`) get a\n"
      "resumable session: when they move to another address they re-attach and the server they\n"
      "talk to never notices.\n"
      "Access control is on by default: clients only from loopback and private networks (10/8,\n"
      "172.16/12, 192.168/16, 100.64/10, 198.18/15, fc00::/7); destinations anywhere except\n"
      "loopback, unspecified, link-local, multicast and the proxy's own addresses, checked on\n"
      "the address actually connected to (after name resolution). Refusals are logged.\n"
      "Examples:\n"
      "  roam proxy --listen 0.0.0.0:1080\n"
      "  roam proxy --listen 0.0.0.0:1080 --users /etc/roam/users --deny-dest 10.0.0.0/8\n"
      "  curl --socks5-hostname proxy.example:1080 https://example.com/\n"
      "Every option can also come from a TOML file (--config /etc/roam/proxy.toml; see man roam).\n"
      "SIGHUP reloads the access rules (--allow-client, --allow-dest, --deny-dest, --users) and\n"
      "--log-level from the config file and re-reads the users file: new connections get the new\n"
      "rules, established sessions keep going; a bad file is logged and the old rules stay.");
  cmd->add_option("--listen", f.listen, "Address to accept SOCKS5 clients on (ADDR:PORT or [v6]:PORT)")
      ->required();
  cmd->add_option("--allow-client", f.allow_client,
                  "Accept clients only from this network (CIDR; repeatable; replaces the default "
                  "private networks)");
  cmd->add_option("--allow-dest", f.allow_dest,
                  "Connect only to this network (CIDR; repeatable); also lifts the default denial "
                  "for it, e.g. --allow-dest 127.0.0.0/8 to reach local services");
  cmd->add_option("--deny-dest", f.deny_dest,
                  "Never connect to this network (CIDR; repeatable; wins over --allow-dest)");
  cmd->add_option("--users", f.users,
                  "File of `user:password` lines (# comments): clients must authenticate "
                  "(RFC 1929, or inside the session for roam's method)");
  cmd->add_flag("--no-roam", f.no_roam, "Do not offer roam's method: a plain SOCKS5 proxy");
  add_session_flags(*cmd, f.session);
  add_daemon_limit_flags(*cmd, f.session);
  add_security_flags(*cmd, f.session.security, Side::kServer);
  return cmd;
}

CLI::App* add_socks_command(CLI::App& app, SocksFlags& f) {
  auto* cmd = app.add_subcommand(
      "socks",
      "Mobile-host agent: a local SOCKS5 listener for unmodified applications (curl, browsers,\n"
      "git, ssh). Each of their connections rides its own resumable session to a `roam proxy`,\n"
      "and keeps going when this host changes address.\n"
      "Examples:\n"
      "  roam socks --proxy proxy.example:1080 --listen 127.0.0.1:1080\n"
      "  curl --socks5-hostname 127.0.0.1:1080 https://example.com/big.iso -O\n"
      "  ssh -o ProxyCommand='nc -X 5 -x 127.0.0.1:1080 %h %p' host\n"
      "SIGHUP makes every session re-attach now.");
  cmd->add_option("--proxy", f.proxy, "The roam proxy (HOST:PORT or [v6]:PORT); resolved again on every re-attach")
      ->required();
  cmd->add_option("--listen", f.listen, "Local SOCKS5 address ([ADDR:]PORT; ADDR defaults to 127.0.0.1)")
      ->capture_default_str();
  cmd->add_option("--user", f.user,
                  "USER:PASSWORD for a proxy started with --users (default: $ROAM_SOCKS_USER)");
  add_session_flags(*cmd, f.session);
  add_path_flags(*cmd, f.path);
  add_security_flags(*cmd, f.session.security, Side::kClient);
  return cmd;
}

int run_proxy(const ProxyFlags& f) {
  auto l = io::parse_endpoint(f.listen, "0.0.0.0", /*listener=*/true);
  if (!l) throw CLI::ValidationError("--listen", l.error().detail);
  io::ProxyConfig cfg;
  cfg.listen = *l;
  cfg.session = session_config(f.session);
  cfg.max_waiting = f.session.max_waiting;
  apply_server_security(f.session.security, cfg.session);
  cfg.allow_client = cidr_list(f.allow_client, "--allow-client");
  cfg.allow_dest = cidr_list(f.allow_dest, "--allow-dest");
  cfg.deny_dest = cidr_list(f.deny_dest, "--deny-dest");
  cfg.users_file = f.users;
  cfg.allow_roam = !f.no_roam;
  check_workers(f.session);
  io::raise_nofile_limit();
  block_signals();  // before the resolver's threads start and before workers fork
  return io::run_workers(f.session.workers, cfg.listen, [&](const io::WorkerContext* w) {
    return serve_proxy(cfg, f, w);
  });
}

namespace {

int serve_proxy(io::ProxyConfig cfg, const ProxyFlags& f, const io::WorkerContext* worker) {
  io::Loop loop;
  auto handoff = worker ? std::make_unique<io::Handoff>(loop, *worker) : nullptr;
  cfg.handoff = handoff.get();
  io::Proxy proxy(loop, cfg);
  if (handoff)
    handoff->set_receiver([&proxy](int fd, std::vector<std::uint8_t> bytes, core::Hop hop) {
      proxy.adopt_handoff(fd, std::move(bytes), hop);
    });
  Observer observer(loop, f.session, "proxy");
  install_signals(
      loop,
      [&] {
        spdlog::info("terminating: aborting {} connection(s)", proxy.connection_count());
        proxy.abort_all("proxy shutting down");
        loop.at(loop.now() + std::chrono::milliseconds(300), [&] { loop.stop(); });
      },
      [&] {
        auto rules = reloaded_rules(f);
        auto ok = rules ? proxy.reload(&*rules) : core::Result<void>(tl::make_unexpected(rules.error()));
        if (!ok)
          spdlog::error("SIGHUP: keeping the old rules: {}", ok.error().detail);
        else
          spdlog::info("SIGHUP: access rules reloaded{}; established sessions keep going",
                       ConfigFile::instance().path().empty() ? "" : " from " + ConfigFile::instance().path());
      });
  if (auto ok = proxy.start(); !ok) {
    spdlog::error("{}", ok.error().detail);
    return 1;
  }
  if (!observer.start(proxy.bound())) return 1;
  loop.run();
  return 0;
}

}  // namespace

int run_socks(const SocksFlags& f) {
  auto p = io::parse_endpoint(f.proxy);
  if (!p) throw CLI::ValidationError("--proxy", p.error().detail);
  auto l = io::parse_endpoint(f.listen, "127.0.0.1", /*listener=*/true);
  if (!l) throw CLI::ValidationError("--listen", l.error().detail);
  io::SocksAgentConfig cfg;
  cfg.proxy = *p;
  cfg.listen = *l;
  cfg.session = session_config(f.session);
  cfg.policy = path_policy(f.path);
  cfg.pin = apply_client_security(f.session.security, p->str(), cfg.session);
  std::string user = f.user;
  if (user.empty())
    if (const char* env = std::getenv("ROAM_SOCKS_USER")) user = env;
  if (!user.empty()) {
    const auto colon = user.find(':');
    core::socks5::UserPass up;
    if (colon != std::string::npos) {
      up.user = user.substr(0, colon);
      up.password = user.substr(colon + 1);
    }
    std::vector<std::uint8_t> probe;
    if (colon == std::string::npos || !core::socks5::encode_userpass(up, probe))
      throw CLI::ValidationError("--user", "expected USER:PASSWORD, each 1 to 255 bytes");
    cfg.credentials = up;
  }
  io::raise_nofile_limit();
  block_signals();  // before the resolver's threads start

  io::Loop loop;
  io::SocksAgent agent(loop, cfg);
  Observer observer(loop, f.session, "socks");
  install_signals(
      loop,
      [&] {
        spdlog::info("terminating: aborting {} session(s)", agent.session_count());
        agent.abort_all("agent shutting down");
        loop.at(loop.now() + std::chrono::milliseconds(300), [&] { loop.stop(); });
      },
      [&] { agent.migrate_all(); });
  if (auto ok = agent.start(); !ok) {
    spdlog::error("{}", ok.error().detail);
    return 1;
  }
  if (!observer.start(agent.bound())) return 1;
  loop.run();
  return 0;
}

}  // namespace roam::apps
