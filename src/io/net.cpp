#include "io/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace roam::io {

using core::Errc;
using core::fail;

std::string Endpoint::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<std::uint16_t> parse_port(std::string_view text) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0 || v > 65535)
    return fail(Errc::kMalformed, "bad port '" + std::string(text) + "' (1-65535)");
  return static_cast<std::uint16_t>(v);
}

Result<Endpoint> parse_endpoint(std::string_view text, std::string_view default_host,
                                bool listener) {
  Endpoint ep;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close < 2 || close + 1 >= text.size() ||
        text[close + 1] != ':')
      return fail(Errc::kMalformed, "bad address '" + std::string(text) + "': expected [v6]:PORT");
    ep.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (default_host.empty())
        return fail(Errc::kMalformed, "bad address '" + std::string(text) + "': expected HOST:PORT");
      ep.host = std::string(default_host);
      port = text;
    } else {
      if (text.find(':') != colon)
        return fail(Errc::kMalformed, "bad address '" + std::string(text) +
                                          "': write IPv6 literals as [v6]:PORT");
      ep.host = std::string(text.substr(0, colon));
      port = text.substr(colon + 1);
      if (ep.host.empty()) {
        if (default_host.empty())
          return fail(Errc::kMalformed, "bad address '" + std::string(text) + "': missing host");
        ep.host = std::string(default_host);
      }
    }
  }
  if (listener && port == "0") return ep;  // ep.port stays 0: kernel-chosen
  auto p = parse_port(port);
  if (!p) return tl::unexpected(p.error());
  ep.port = *p;
  return ep;
}

std::string SockAddr::str() const {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    port = ntohs(a->sin6_port);
    // An IPv4 peer of a dual-stack listener ([::]:PORT) is an IPv4 peer: print it as one.
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, a->sin6_addr.s6_addr + 12, host, sizeof host);
      return std::string(host) + ":" + std::to_string(port);
    }
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    std::string out = "[";
    out.append(host);
    if (a->sin6_scope_id != 0) {  // link-local: fe80::1%wlan0 (the index when it has no name)
      char name[IF_NAMESIZE] = {};
      const bool named = if_indextoname(a->sin6_scope_id, name) != nullptr;
      out.append("%").append(named ? name : std::to_string(a->sin6_scope_id));
    }
    out.append("]:").append(std::to_string(port));
    return out;
  }
  return "?";
}

bool is_ip_literal(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  const std::string bare = host.substr(0, host.find('%'));
  return inet_pton(AF_INET, bare.c_str(), &a4) == 1 || inet_pton(AF_INET6, bare.c_str(), &a6) == 1;
}

Result<std::vector<SockAddr>> resolve(const Endpoint& ep, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // AI_ADDRCONFIG only for names: it would refuse the literal ::1 on a host whose only IPv6
  // address is loopback (glibc does not count loopback), and a user who typed an address means it.
  if (passive) hints.ai_flags = AI_PASSIVE;
  else hints.ai_flags = is_ip_literal(ep.host) ? AI_NUMERICHOST : AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(ep.port);
  const int rc = getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return fail(Errc::kMalformed, "cannot resolve '" + ep.host + "': " + gai_strerror(rc));
  std::vector<SockAddr> out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    SockAddr s;
    std::memcpy(&s.ss, a->ai_addr, a->ai_addrlen);
    s.len = a->ai_addrlen;
    out.push_back(s);
  }
  freeaddrinfo(res);
  if (out.empty()) return fail(Errc::kMalformed, "no address for '" + ep.host + "'");
  return out;
}

void set_nonblocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

Result<int> listen_on(const Endpoint& ep, const std::function<void(int fd)>& tune) {
  auto addrs = resolve(ep, true);
  if (!addrs) return tl::unexpected(addrs.error());
  std::string last;
  for (const auto& a : *addrs) {
    const int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.ss.ss_family == AF_INET6) {
      // [::]:PORT is dual-stack whatever net.ipv6.bindv6only says (IPv4 peers appear as
      // ::ffff:a.b.c.d and are printed as IPv4); any other IPv6 address is IPv6 only anyway.
      const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&a.ss);
      const int v6only = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ? 0 : 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (tune) tune(fd);
    if (bind(fd, a.get(), a.len) == 0 && listen(fd, 1024) == 0) return fd;
    last = a.str() + ": " + std::strerror(errno);
    ::close(fd);
  }
  return fail(Errc::kMalformed, "cannot listen on " + ep.str() + ": " + last);
}

Result<int> connect_start(const SockAddr& addr, const std::string& interface) {
  const int fd = socket(addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::kAborted, std::string("socket: ") + std::strerror(errno));
  if (!interface.empty() &&
      setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                 static_cast<socklen_t>(interface.size())) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::kAborted, "bind to interface " + interface + ": " + std::strerror(e));
  }
  if (connect(fd, addr.get(), addr.len) != 0 && errno != EINPROGRESS) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::kAborted, "connect " + addr.str() + ": " + std::strerror(e));
  }
  return fd;
}

int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

int connect_done(int fd, const SockAddr& addr) {
  // A second connect() on a non-blocking socket reports the state of the first: 0 once it is
  // established, EALREADY while the handshake runs, the error (ECONNREFUSED...) once it failed.
  if (::connect(fd, addr.get(), addr.len) == 0 || errno == EISCONN) return 0;
  return errno == EINPROGRESS ? EALREADY : errno;
}

void tune_path_socket(int fd, Duration user_timeout, bool nodelay) {
  const int one = 1;
  if (nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int lowat = 128 * 1024;
  setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  const unsigned ut = static_cast<unsigned>(
      std::chrono::duration_cast<std::chrono::milliseconds>(user_timeout).count());
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
}

void tune_app_socket(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void reset_close(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

bool tcp_recent_ack(int fd, Duration window) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(window).count();
  return ti.tcpi_unacked > 0 && static_cast<std::int64_t>(ti.tcpi_last_ack_recv) < ms;
}

static std::string name_of(int fd, bool peer) {
  SockAddr a;
  a.len = sizeof a.ss;
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len);
  return rc == 0 ? a.str() : "?";
}
std::string local_address(int fd) { return name_of(fd, false); }
std::string peer_address(int fd) { return name_of(fd, true); }

core::SourceKey peer_source(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return core::SourceKey::of(reinterpret_cast<const sockaddr*>(&ss), len);
}

std::uint64_t raise_nofile_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

}  // namespace roam::io
