// `roam proxy`: the MSOCKS edge proxy. A SOCKS5 server (RFC 1928 CONNECT, RFC 1929 users) for any
// client, whose clients that offer roam's private method (0x80) get a resumable session on the
// mobile ↔ proxy leg (docs/PROTOCOL.md §MSOCKS).
//
// Theory of operation
// -------------------
// accept ─ client ACL ─▶ Pending: ServerNegotiation over the bytes read so far (a greeting split
//   over many segments or pipelined with the request both work); bounded by a 5 s deadline and a
//   global cap on unfinished connections (the oldest is evicted, never the newcomer).
//   ├─ plain SOCKS5: request ready ─▶ connect_dest(): resolve (worker threads, never the loop),
//   │   check each address against the destination ACL, connect non-blocking; the reply code comes
//   │   from the real error. Success ─▶ SplicePair (splice(2) through pooled pipes).
//   └─ method 0x80 ─▶ the rest of the connection is the roam session protocol: HELLO starts a
//       core::Session (SessionDriver), MIGRATE is routed by token (core::SessionTable) exactly as
//       `roam server` does. Once established, the first bytes the client sends inside the session
//       are [RFC 1929 user/password] + the SOCKS request; the proxy answers with the SOCKS reply
//       as the first bytes inside the session, then attaches the server-side socket as the
//       driver's application. A re-attach from a new address only changes the driver's path: the
//       server-side socket never sees it.
// Everything runs on one Loop thread; only getaddrinfo runs elsewhere (Resolver).
#pragma once

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/session/dispatcher.hpp"
#include "core/session/handoff.hpp"
#include "core/socks5/policy.hpp"
#include "core/socks5/socks5.hpp"
#include "io/listener.hpp"
#include "io/loop.hpp"
#include "io/net.hpp"
#include "io/resolver.hpp"
#include "io/session_driver.hpp"
#include "io/splice.hpp"

namespace roam::io {

class Handoff;

struct ProxyConfig {
  Endpoint listen;
  core::SessionConfig session;
  core::socks5::CidrList allow_client;  // empty: the defaults (private networks)
  core::socks5::CidrList allow_dest;
  core::socks5::CidrList deny_dest;
  std::string users_file;  // empty: no authentication
  std::size_t max_unfinished = 4096;
  // roam sessions in the wait state at once (--max-waiting); beyond it the one that has waited
  // longest ends (its destination connection is reset).
  std::size_t max_waiting = 4096;
  bool allow_roam = true;
  // --workers N: re-attach requests for sessions this worker does not hold go round the ring.
  Handoff* handoff = nullptr;
};

// Maps a connect(2) errno to the SOCKS5 reply code a client should see.
core::socks5::Reply reply_for_errno(int err);

class Proxy {
 public:
  Proxy(Loop& loop, ProxyConfig cfg);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Loads the users file, learns the host's own addresses, binds and starts accepting; logs
  // "listening on ADDR:PORT".
  core::Result<void> start();
  // SIGHUP: re-reads the users file and the host's addresses; with `rules`, its access rules
  // (allow_client, allow_dest, deny_dest, users_file; its other fields are ignored) replace the
  // current ones. They apply to connections accepted and CONNECTs asked from then on; sessions
  // and splices already established keep going. On error (users file unreadable, malformed or
  // empty) nothing changes.
  core::Result<void> reload(const ProxyConfig* rules = nullptr);
  std::string bound() const { return listener_.bound(); }
  std::size_t connection_count() const { return pending_.size() + connects_.size() + pairs_.size() + roams_.size(); }
  void abort_all(const std::string& why);
  // --workers: a re-attach (method 0x80 chosen, then MIGRATE) another worker passed on.
  void adopt_handoff(int fd, std::vector<std::uint8_t> bytes, core::Hop hop) {
    roam_migrate(fd, std::move(bytes), peer_address(fd), hop);
  }

 private:
  struct Pending {
    int fd = -1;
    std::vector<std::uint8_t> buf;
    std::size_t used = 0;  // bytes of buf consumed by the negotiation
    core::Time deadline;
    std::string peer;
    core::socks5::ServerNegotiation neg;
    bool roam = false;  // method 0x80 chosen: buf holds roam bytes from `used` on
    explicit Pending(core::socks5::ServerNegotiation::Options o) : neg(o) {}
  };
  // One CONNECT in progress: resolve, check, connect (trying each allowed address in turn).
  struct Connect {
    std::uint64_t id = 0;
    std::string who;  // for logs
    core::socks5::Address dest;
    std::vector<SockAddr> addrs;
    std::size_t next = 0;
    int fd = -1;
    Loop::TimerId timer = 0;
    std::optional<Resolver::Id> lookup;
    core::socks5::Reply failure = core::socks5::Reply::kHostUnreachable;
    std::string why;
    // fd == -1 on failure (reply and why say what happened).
    std::function<void(int fd, core::socks5::Reply reply, const std::string& why)> done;
  };
  enum class RoamStage : std::uint8_t { kHandshake, kAwaitRequest, kConnecting, kRelaying, kRefused };
  struct Roam {
    std::unique_ptr<SessionDriver> driver;
    RoamStage stage = RoamStage::kHandshake;
    bool authed = false;
    std::uint64_t connect_id = 0;
    Loop::TimerId timer = 0;
  };
  // Plain client whose CONNECT is in progress.
  struct PlainWait {
    int fd = -1;
    std::string peer;
    std::vector<std::uint8_t> early;  // pipelined bytes behind the request
  };

  void on_accept(int fd, const SockAddr& from);
  void on_pending(int fd);
  void advance(Pending& p);
  void drop_pending(int fd, bool reset = false);
  void sweep_pending();
  // Removes `fd` from the pending connections; `keep_registered`: Loop::release instead of
  // Loop::remove (a roam HELLO whose socket the session's driver adds again at once).
  std::unique_ptr<Pending> take_pending(int fd, bool keep_registered = false);

  void plain_request(std::unique_ptr<Pending> p);
  void plain_done(std::uint64_t id, int target, core::socks5::Reply reply, const std::string& why);

  void roam_first_frame(int fd);
  void start_roam(std::unique_ptr<Pending> p);
  // A roam connection whose first frame is MIGRATE: re-attached to its session, passed to another
  // worker, or refused.
  void roam_migrate(int fd, std::vector<std::uint8_t> buf, const std::string& peer, core::Hop hop);
  // New roam sessions (HELLO) start after every other ready connection of this loop pass has been
  // read, so re-attach checks (one HMAC) are served before new handshakes (X25519; SPEC 13).
  void queue_hello(std::unique_ptr<Pending> p);
  void start_hellos();
  void roam_data(SessionDriver& d);
  void roam_refuse(Roam& r, core::socks5::Reply reply, const std::string& why);
  void roam_finished(SessionDriver& d);

  std::uint64_t connect_dest(const core::socks5::Address& dest, std::string who,
                             std::function<void(int, core::socks5::Reply, const std::string&)> done);
  void connect_next(std::uint64_t id);
  // The connect to `where` finished with `err` (0: connected): hand it over, or try the next address.
  void connect_ready(std::uint64_t id, const std::string& where, int err);
  void connect_finish(std::uint64_t id, int fd, core::socks5::Reply reply, const std::string& why);
  void cancel_connect(std::uint64_t id);

  bool authenticate(const core::socks5::UserPass& up) const;
  core::socks5::ServerNegotiation::Options negotiation_options() const;
  static std::vector<std::uint8_t> reply_bytes(core::socks5::Reply reply, int target_fd);

  Loop& loop_;
  ProxyConfig cfg_;
  core::socks5::Policy policy_;
  std::optional<core::socks5::Users> users_;
  Resolver resolver_;
  PipePool pipes_;
  Listener listener_;
  core::SessionTable table_;
  std::list<std::unique_ptr<Pending>> pending_;  // oldest first
  std::unordered_map<int, std::list<std::unique_ptr<Pending>>::iterator> pending_by_fd_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connect>> connects_;
  std::unordered_map<std::uint64_t, PlainWait> plain_waits_;
  std::unordered_map<SplicePair*, std::unique_ptr<SplicePair>> pairs_;
  std::unordered_map<core::Session*, Roam> roams_;
  core::ArrivalOrder<SessionDriver*> handshaking_;  // handshakes in progress, oldest first
  core::ArrivalOrder<SessionDriver*> waiting_;  // roam sessions in the wait state, longest first
  Loop::TimerId pending_timer_ = 0;
  std::vector<std::unique_ptr<Pending>> hellos_;  // classified HELLOs waiting for the pass's end
  Loop::TimerId hello_timer_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t counter_ = 0;
};

}  // namespace roam::io
