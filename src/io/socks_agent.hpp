// `roam socks`: the mobile host's agent. A local SOCKS5 listener (no authentication: it listens
// on loopback) for unmodified applications; each accepted connection rides its own resumable
// session to `roam proxy` (docs/PROTOCOL.md §MSOCKS).
//
// Theory of operation. A local connection is negotiated here first: greeting (method 0x00), then
// the request, parsed incrementally (split or pipelined). A CONNECT starts a client Session whose
// every path begins with the SOCKS5 greeting offering only roam's method (05 01 80) and expects
// the proxy's choice (05 80) before the roam preamble (SessionDriver's path prologue). The
// request — after the RFC 1929 credentials if configured — is written into the session as its
// first bytes, followed by whatever the application pipelined; the proxy's SOCKS reply comes back
// as the first bytes of the session and reaches the application unchanged, followed by the
// server's data. From then on the local socket is the driver's application: when the host moves
// every session re-attaches on its own and the application never notices.
#pragma once

#include <list>
#include <memory>
#include <optional>
#include <unordered_map>

#include "core/socks5/socks5.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/listener.hpp"
#include "io/netmon.hpp"
#include "io/known_hosts.hpp"
#include "io/session_driver.hpp"

namespace roam::io {

struct SocksAgentConfig {
  Endpoint proxy;
  Endpoint listen;
  core::SessionConfig session;
  std::optional<core::socks5::UserPass> credentials;  // sent inside each session
  std::shared_ptr<ServerPin> pin;  // the proxy's key (--key proxies) in known_hosts
  std::size_t max_unfinished = 1024;
  // Follow rtnetlink: every session re-evaluates its path on address, route and link events.
  bool watch_network = true;
  // Which interface paths use (--prefer, --interface).
  PathPolicy policy;
};

class SocksAgent {
 public:
  SocksAgent(Loop& loop, SocksAgentConfig cfg);
  ~SocksAgent();
  SocksAgent(const SocksAgent&) = delete;
  SocksAgent& operator=(const SocksAgent&) = delete;

  core::Result<void> start();
  std::string bound() const { return listener_.bound(); }
  std::size_t session_count() const { return drivers_.size(); }
  void abort_all(const std::string& why);
  // Every live session migrates now (SIGHUP).
  void migrate_all();
  // The host's addresses or routes changed: every session moves if its path is no longer the one
  // the kernel would choose (SessionDriver::on_network_change).
  void network_changed();

 private:
  struct Local {
    int fd = -1;
    std::vector<std::uint8_t> buf;
    std::size_t used = 0;
    core::Time deadline;
    std::string peer;
    core::socks5::ServerNegotiation neg{{false, false}};
  };
  void on_accept(int fd);
  void on_local(int fd);
  void drop_local(int fd);
  void sweep();
  void start_session(std::unique_ptr<Local> l);

  Loop& loop_;
  SocksAgentConfig cfg_;
  Listener listener_;
  std::list<std::unique_ptr<Local>> locals_;  // oldest first
  std::unordered_map<int, std::list<std::unique_ptr<Local>>::iterator> by_fd_;
  std::unordered_map<SessionDriver*, std::unique_ptr<SessionDriver>> drivers_;
  std::unique_ptr<NetlinkMonitor> monitor_;
  Loop::TimerId sweep_timer_ = 0;
  std::uint64_t counter_ = 0;
};

}  // namespace roam::io
