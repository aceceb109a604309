#include "io/netmon.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace roam::io {

std::string ip_of(const std::string& addr_port) {
  if (!addr_port.empty() && addr_port.front() == '[') {
    const auto close = addr_port.find(']');
    return addr_port.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return addr_port.substr(0, addr_port.rfind(':'));
}

bool bind_to_interface(int fd, const std::string& interface) {
  return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                    static_cast<socklen_t>(interface.size())) == 0;
}

namespace {

// Whether `ip` is assigned to `interface` (a device without an address of its own can still be
// "routed" through by borrowing another device's source; that is no path through it).
bool address_on_interface(const std::string& ip, const std::string& interface) {
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0) return false;
  bool found = false;
  for (ifaddrs* a = all; a && !found; a = a->ifa_next) {
    if (!a->ifa_addr || interface != a->ifa_name) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    else if (a->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, buf, sizeof buf);
    found = ip.substr(0, ip.find('%')) == buf;  // "fe80::1%wifi": the scope is the interface
  }
  freeifaddrs(all);
  return found;
}

// Whether the routing table has a route through `interface` that covers `dst`. Needed because a
// socket bound to a device with no route at all is still "routed" there as if the destination
// were on-link (ip route get … oif DEV answers "dev DEV" without a gateway), and its SYNs vanish.
bool has_route_via(const SockAddr& dst, const std::string& interface) {
  if (dst.ss.ss_family == AF_INET) {
    const auto want = reinterpret_cast<const sockaddr_in*>(&dst.ss)->sin_addr.s_addr;
    std::ifstream in("/proc/net/route");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string iface, dest, gw, flags, refcnt, use, metric, mask;
      if (!(f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
      if (iface != interface || !(std::stoul(flags, nullptr, 16) & 0x1)) continue;
      const auto d = static_cast<std::uint32_t>(std::stoul(dest, nullptr, 16));
      const auto m = static_cast<std::uint32_t>(std::stoul(mask, nullptr, 16));
      if ((want & m) == d) return true;
    }
    return false;
  }
  if (dst.ss.ss_family == AF_INET6) {
    const auto* want = reinterpret_cast<const sockaddr_in6*>(&dst.ss)->sin6_addr.s6_addr;
    std::ifstream in("/proc/net/ipv6_route");
    std::string dest, plen, src, splen, nexthop, metric, refcnt, use, flags, iface;
    while (in >> dest >> plen >> src >> splen >> nexthop >> metric >> refcnt >> use >> flags >> iface) {
      if (iface != interface || !(std::stoul(flags, nullptr, 16) & 0x1)) continue;
      const unsigned bits = static_cast<unsigned>(std::stoul(plen, nullptr, 16));
      bool match = true;
      for (unsigned b = 0; b < bits && match; ++b) {
        const unsigned byte = b / 8, shift = 7 - b % 8;
        const unsigned have = static_cast<unsigned>(std::stoul(dest.substr(byte * 2, 2), nullptr, 16));
        match = ((have >> shift) & 1u) == ((want[byte] >> shift) & 1u);
      }
      if (match) return true;
    }
    return false;
  }
  return false;
}

// The source address the kernel would pick for `server` (optionally through `interface`).
std::optional<std::string> probe_source(const SockAddr& server, const std::string& interface) {
  const int fd = socket(server.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  if ((interface.empty() || bind_to_interface(fd, interface)) &&
      connect(fd, server.get(), server.len) == 0) {
    const std::string local = local_address(fd);
    if (local != "?") out = ip_of(local);
    if (out && !interface.empty() &&
        (!address_on_interface(*out, interface) || !has_route_via(server, interface)))
      out.reset();
  }
  ::close(fd);
  return out;
}

}  // namespace

std::optional<RouteChoice> choose_route(const SockAddr& server, const PathPolicy& policy) {
  auto c = route_candidates({server}, policy);
  if (c.empty()) return std::nullopt;
  return c.front().route;
}

std::vector<RouteCandidate> route_candidates(const std::vector<SockAddr>& servers,
                                             const PathPolicy& policy) {
  std::vector<RouteCandidate> out;
  std::vector<bool> taken(servers.size(), false);
  auto take_via = [&](const std::string& iface) {
    for (std::size_t i = 0; i < servers.size(); ++i) {
      if (taken[i]) continue;
      if (auto src = probe_source(servers[i], iface)) {
        out.push_back(RouteCandidate{servers[i], RouteChoice{iface, *src}});
        taken[i] = true;
      }
    }
  };
  if (!policy.pin.empty()) {
    take_via(policy.pin);
    return out;
  }
  for (const auto& iface : policy.prefer)
    if (if_nametoindex(iface.c_str()) != 0) take_via(iface);
  take_via("");
  return out;
}

NetlinkMonitor::NetlinkMonitor(Loop& loop, std::function<void()> on_change)
    : loop_(loop), on_change_(std::move(on_change)) {}

NetlinkMonitor::~NetlinkMonitor() {
  if (nl_) {
    loop_.remove(mnl_socket_get_fd(nl_));
    mnl_socket_close(nl_);
  }
}

core::Result<void> NetlinkMonitor::start() {
  nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!nl_) return core::fail(core::Errc::kAborted, std::string("netlink: ") + std::strerror(errno));
  const unsigned groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
                          RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
  if (mnl_socket_bind(nl_, groups, MNL_SOCKET_AUTOPID) < 0) {
    const std::string why = std::strerror(errno);
    mnl_socket_close(nl_);
    nl_ = nullptr;
    return core::fail(core::Errc::kAborted, "netlink bind: " + why);
  }
  loop_.add(mnl_socket_get_fd(nl_), EPOLLIN, [this](std::uint32_t) { on_readable(); });
  return {};
}

void NetlinkMonitor::on_readable() {
  static char buf[64 * 1024];  // one loop thread per process
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      // ENOBUFS: we missed events; re-evaluating everything is exactly the right reaction.
      if (errno == ENOBUFS) ++events_;
      break;
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
      switch (h->nlmsg_type) {
        case RTM_NEWADDR:
        case RTM_DELADDR:
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
        case RTM_NEWLINK:
        case RTM_DELLINK:
          ++events_;
          break;
        default:
          break;
      }
    }
  }
  // Coalesce a burst (an address and its routes arrive together) into one re-evaluation.
  if (!scheduled_) {
    scheduled_ = true;
    loop_.at(loop_.now(), [this] {
      scheduled_ = false;
      if (on_change_) on_change_();
    });
  }
}

}  // namespace roam::io
