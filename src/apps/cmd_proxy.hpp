// `roam proxy` and `roam socks`: the MSOCKS subcommands (flags, help text, run functions).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/options.hpp"

namespace roam::apps {

struct ProxyFlags {
  std::string listen;
  std::vector<std::string> allow_client;
  std::vector<std::string> allow_dest;
  std::vector<std::string> deny_dest;
  std::string users;
  bool no_roam = false;
  SessionFlags session;
};

struct SocksFlags {
  std::string proxy;
  std::string listen = "127.0.0.1:1080";
  std::string user;  // USER:PASSWORD, or from ROAM_SOCKS_USER
  SessionFlags session;
  PathFlags path;
};

// Adds the subcommands to `app`; returns them so that main can tell which one was parsed.
CLI::App* add_proxy_command(CLI::App& app, ProxyFlags& flags);
CLI::App* add_socks_command(CLI::App& app, SocksFlags& flags);

int run_proxy(const ProxyFlags& flags);
int run_socks(const SocksFlags& flags);

}  // namespace roam::apps
