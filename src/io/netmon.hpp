// Watching the host's network: an rtnetlink monitor (libmnl) and route queries.
//
// The client migrates at once when its path's local address goes away or the route to the
// server changes (SPEC property 7). Rather than mirror the kernel's routing tables, every address,
// route or link event triggers one question to the kernel: "which interface and source address
// would a packet to the server use now?" (a connected UDP socket, optionally bound to a device,
// answers it without sending anything). If the answer differs from the path in use, the session
// migrates — make-before-break when the old path still works. A DHCP client that adds the address
// before the route produces two events; the first finds no usable route, the second does.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/loop.hpp"
#include "io/net.hpp"

struct mnl_socket;

namespace roam::io {

// Which interface a client's paths should use: `pin` (--interface) forces one; otherwise the
// first of `prefer` (--prefer wifi,cell) that has a route to the server; otherwise the kernel's
// choice.
struct PathPolicy {
  std::vector<std::string> prefer;
  std::string pin;
  bool empty() const { return prefer.empty() && pin.empty(); }
};

struct RouteChoice {
  std::string interface;  // empty: the kernel's default choice
  std::string source;     // the source address packets to the server would carry
};

// Asks the kernel how a packet to `server` would leave, under `policy`. nullopt when there is no
// route at all (e.g. between losing one network and joining the next).
std::optional<RouteChoice> choose_route(const SockAddr& server, const PathPolicy& policy);
// One address of the server with the route a packet to it would take.
struct RouteCandidate {
  SockAddr addr;
  RouteChoice route;
};
// Every address of `servers` (one name's addresses, of either family) that has a route now,
// best first: under --interface only routes through the pinned interface; under --prefer by
// interface preference first (a preferred interface wins whatever family reaches the server
// through it), then in the given (RFC 6724) order; otherwise in the given order with the kernel's
// choice of route. Empty when no address can be reached at the moment.
std::vector<RouteCandidate> route_candidates(const std::vector<SockAddr>& servers,
                                             const PathPolicy& policy);
// Binds `fd` to `interface` (SO_BINDTODEVICE). Returns false with errno set on failure.
bool bind_to_interface(int fd, const std::string& interface);
// The IP part of "addr:port" / "[v6]:port" as printed by SockAddr::str().
std::string ip_of(const std::string& addr_port);

class NetlinkMonitor {
 public:
  // `on_change` runs (on the loop) once per burst of address, route or link events.
  NetlinkMonitor(Loop& loop, std::function<void()> on_change);
  ~NetlinkMonitor();
  NetlinkMonitor(const NetlinkMonitor&) = delete;
  NetlinkMonitor& operator=(const NetlinkMonitor&) = delete;
  // Subscribes; fails (and the client runs on heartbeats alone) without a netlink socket.
  core::Result<void> start();
  std::uint64_t events() const { return events_; }

 private:
  void on_readable();

  Loop& loop_;
  std::function<void()> on_change_;
  mnl_socket* nl_ = nullptr;
  bool scheduled_ = false;
  std::uint64_t events_ = 0;
};

}  // namespace roam::io
