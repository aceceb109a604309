// Socket helpers for the I/O shell: address parsing and resolution, non-blocking connect and
// listen, and the socket options a roam path needs.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common.hpp"
#include "core/session/limiter.hpp"

namespace roam::io {

using core::Duration;
using core::Result;

struct Endpoint {
  std::string host;  // name or literal, without brackets
  std::uint16_t port = 0;
  std::string str() const;
};

// "HOST:PORT", "[v6]:PORT"; with `default_host`, a bare "PORT" is accepted too. With
// `listener`, port 0 is accepted as well (the kernel picks one; the daemon logs which).
Result<Endpoint> parse_endpoint(std::string_view text, std::string_view default_host = {},
                                bool listener = false);
Result<std::uint16_t> parse_port(std::string_view text);

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&ss); }
  // "1.2.3.4:80", "[2001:db8::1]:80", "[fe80::1%eth0]:80"; an IPv4-mapped IPv6 address (an IPv4
  // peer of a dual-stack listener) prints as IPv4. parse_endpoint() reads every form back.
  std::string str() const;
};

// getaddrinfo; resolved again on every call (a reconnect after renumbering must see new DNS).
// Names get every address of both families the host can currently use (AI_ADDRCONFIG), in
// RFC 6724 order (glibc puts destinations without a route last); literals (v4, v6, v6%scope)
// are taken as they are.
Result<std::vector<SockAddr>> resolve(const Endpoint& ep, bool passive);
// True when `host` is an IP literal (with an optional %scope for IPv6): it resolves to itself.
bool is_ip_literal(const std::string& host);

// Listening socket (SO_REUSEADDR, non-blocking). Returns fd or an error naming the address.
// "[::]:PORT" is dual-stack (IPv4 and IPv6, independent of net.ipv6.bindv6only), "0.0.0.0:PORT"
// IPv4 only, any other address just that address; a name listens on its first usable address.
// `tune`, if set, runs on the socket before listen(): Linux copies the TCP options a listener
// holds (TCP_NODELAY, TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT, ...) to every socket accept() returns,
// so setting them here saves those setsockopt calls on each accepted connection.
Result<int> listen_on(const Endpoint& ep, const std::function<void(int fd)>& tune = {});
// Starts a non-blocking connect, through `interface` (SO_BINDTODEVICE) when it is not empty. The
// fd becomes writable when it completes; check connect_result.
Result<int> connect_start(const SockAddr& addr, const std::string& interface = {});
// 0 when the connect succeeded, else the errno.
int connect_result(int fd);
// Right after connect_start: whether the connect has already completed, without waiting for
// epoll (a target on the same host, e.g. 127.0.0.1, usually has: the kernel runs the whole
// three-way handshake inside connect()). 0: connected; EALREADY: still in progress (wait for
// EPOLLOUT, then connect_result); anything else: the connect failed with that errno.
int connect_done(int fd, const SockAddr& addr);

void set_nonblocking(int fd);
// TCP_NODELAY, TCP_NOTSENT_LOWAT (interactive bytes never wait behind bulk in the kernel),
// TCP_USER_TIMEOUT (unacknowledged data fails the socket after `user_timeout`).
// `nodelay` false leaves TCP_NODELAY alone (a socket that inherited it from its listener).
void tune_path_socket(int fd, Duration user_timeout, bool nodelay = true);
void tune_app_socket(int fd);
// Closes with RST (SO_LINGER 0): the application sees an abort, not a clean end.
void reset_close(int fd);
// TCP_INFO: true if the peer acknowledged data within `window` while we have data in flight.
bool tcp_recent_ack(int fd, Duration window);
std::string local_address(int fd);
std::string peer_address(int fd);
// The peer's prefix for per-source limits (IPv4 /32, IPv6 /64; core/session/limiter.hpp).
core::SourceKey peer_source(int fd);
// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
std::uint64_t raise_nofile_limit();

}  // namespace roam::io
