// `roam demo`: the showcase. In network namespaces (root) a mobile host hands over between Wi-Fi
// and cellular while a plain TCP stream, a Migrate stream (roam connect → roam server) and an
// MSOCKS stream (roam socks → roam proxy) download side by side; without namespaces, a loopback
// demo with a relay that cuts connections. The same binary also plays the demo's hidden helper
// roles (a paced source, a checking sink) inside the namespaces.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace roam::apps {

struct DemoFlags {
  std::string mode = "auto";  // auto, netns, loopback
  std::string bytes = "64M";
  int cuts = 5;
  std::string plot = "roam-demo.svg";
  // Hidden helper roles (group ""): "source" or "sink".
  std::string role;
  std::string listen;      // source: ADDR:PORT
  std::string connect;     // sink: ADDR:PORT (the destination when --socks is given)
  std::string socks;       // sink: SOCKS5 server to CONNECT through
  std::string rate = "4M";  // source: bytes per second per connection
};

CLI::App* add_demo_command(CLI::App& app, DemoFlags& flags);
int run_demo(const DemoFlags& flags);

// Internals shared by the demo's files.
namespace demo {

// Position i of every demo stream holds this byte, so a receiver checks each byte where it lands
// (a loss, duplicate or reordering shows at once).
inline std::uint8_t pattern(std::uint64_t i) {
  std::uint64_t x = i * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x >> 17);
}

int run_source(const DemoFlags& flags);
int run_sink(const DemoFlags& flags);
// The namespace showcase; returns -1 (with `why` set) when the test bed cannot be built here.
int run_netns(const std::string& self, std::uint64_t total, const std::string& plot, std::string& why);
int run_loopback(std::uint64_t total, int cuts);

}  // namespace demo
}  // namespace roam::apps
