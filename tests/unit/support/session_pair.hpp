// An in-memory network for two Sessions: a client and the server that a tiny model of the I/O
// shell builds from the first frame of each connection (HELLO → Session::accept, MIGRATE →
// SessionTable::route_migrate + attach_server_path). Shared by the unit tests and the fuzz
// targets; it depends on nothing but the core.
//
// Theory of operation. A Link is one TCP connection: two byte queues standing in for the
// kernels' buffers. pump() repeats, at the fixed virtual time `now`, until nothing moves:
//   client poll_transmit → c2s → server recv_space/on_received (or the dispatcher, first)
//   server poll_transmit → s2c → client recv_space/on_received
//   each application consumes what it may read (unless told not to), FIN included
//   a side whose path_done() closes its socket; the other sees EOF once the bytes are drained
// Time only moves when a test moves `now`. Nothing here sleeps or reads a clock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/session/dispatcher.hpp"
#include "core/session/session.hpp"

namespace roam::core::test {

using ByteVec = std::vector<std::uint8_t>;

// Appends every slice to `out`; returns the total.
inline std::size_t append_slices(const IoSlices& s, ByteVec& out) {
  for (std::size_t i = 0; i < s.count; ++i) out.insert(out.end(), s.slice[i].begin(), s.slice[i].end());
  return s.total();
}

// Writes what `s` wants to send on `id` into `out`, as a kernel taking at most `max` bytes would.
// Returns the count.
inline std::size_t drain(Session& s, PathId id, Time now, ByteVec& out,
                         std::size_t max = std::numeric_limits<std::size_t>::max()) {
  std::size_t taken = 0;
  for (int guard = 0; guard < 100000 && taken < max; ++guard) {
    const IoSlices slices = s.poll_transmit(id, now);
    const std::size_t total = slices.total();
    if (total == 0) break;
    const std::size_t take = std::min(total, max - taken);
    ByteVec all;
    append_slices(slices, all);
    out.insert(out.end(), all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take));
    s.on_transmitted(id, take, now);
    taken += take;
    if (take < total) break;
  }
  return taken;
}

// Feeds all of `in` to `s` on `id` the way the shell reads a socket: into recv_space(), pieces of
// at most `max_chunk` bytes.
inline void deliver(Session& s, PathId id, Bytes in, Time now,
                    std::size_t max_chunk = std::numeric_limits<std::size_t>::max()) {
  std::size_t pos = 0;
  while (pos < in.size()) {
    MutBytes space = s.recv_space(id);
    if (space.empty()) return;  // never for a live path; a test asserts on state instead
    const std::size_t n = std::min({space.size(), in.size() - pos, max_chunk});
    std::memcpy(space.data(), in.data() + pos, n);
    s.on_received(id, n, now);
    pos += n;
  }
}

// The bytes of a deterministic test stream: position `i` of a stream seeded with `seed`.
inline ByteVec pattern(std::size_t n, std::uint64_t seed, std::size_t start = 0) {
  ByteVec out(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t x = (start + i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    out[i] = static_cast<std::uint8_t>(x);
  }
  return out;
}

class SessionPair {
 public:
  enum class ServerSide : std::uint8_t { kPending, kSession, kRefused };

  struct Link {
    PathId id = 0;
    ByteVec c2s;      // written by the client's kernel, not yet read by the server
    ByteVec s2c;      // written by the server's kernel, not yet read by the client
    ByteVec initial;  // what the server's dispatcher holds before it picks an owner
    ServerSide server = ServerSide::kPending;
    bool client_open = true;  // the client's socket is open
    bool server_open = true;  // the server's socket is open
    bool hold_c2s = false;    // the server's kernel keeps the bytes; nothing is read
    bool hold_s2c = false;
    bool up = true;           // false once cut: nothing crosses any more
    bool raw = false;         // written by the test, not by the client session; never closes
    ByteVec replies;          // everything the server ever sent on this link (for assertions)
    ByteVec requests;         // everything the client ever sent on this link
  };

  SessionPair(const SessionConfig& client_cfg, const SessionConfig& server_cfg, std::uint64_t seed,
              Time start = Time{std::chrono::seconds(1000)})
      : now(start),
        client_rng_(seed * 2 + 1),
        server_rng_(seed * 2 + 2),
        server_cfg_(server_cfg),
        table_(server_rng_) {
    client = Session::client(client_cfg, client_rng_, now);
  }
  explicit SessionPair(const SessionConfig& cfg = SessionConfig{}, std::uint64_t seed = 1)
      : SessionPair(cfg, cfg, seed) {}

  // Opens a new TCP connection from the client (HELLO on the first, MIGRATE later).
  Link& open_link() {
    links_.emplace_back();
    Link& l = links_.back();
    l.id = next_id_++;
    client->attach_path(l.id, now);
    return l;
  }
  // Opens a connection that does not belong to the client session: the test writes its bytes.
  Link& open_raw_link() {
    links_.emplace_back();
    Link& l = links_.back();
    l.id = next_id_++;
    l.client_open = false;
    l.raw = true;
    return l;
  }
  Link* link(PathId id) {
    for (auto& l : links_)
      if (l.id == id) return &l;
    return nullptr;
  }
  Link& last_link() { return links_.back(); }

  // Handshake on a first connection; true when both sides are established.
  bool establish() {
    open_link();
    pump();
    return server && client->state() == State::kClientEstablished &&
           server->state() == State::kServerEstablished;
  }

  // The connection dies. Bytes in flight are lost. Each side hears of it only if told.
  void cut(Link& l, bool tell_client, bool tell_server) {
    l.up = false;
    l.c2s.clear();
    l.s2c.clear();
    if (tell_client && l.client_open) {
      l.client_open = false;
      client->on_path_error(l.id, now, "connection reset");
      client->forget_path(l.id);
    }
    if (tell_server && l.server_open && l.server == ServerSide::kSession && server) {
      l.server_open = false;
      server->on_path_error(l.id, now, "connection reset");
      server->forget_path(l.id);
    }
  }

  // Moves bytes until nothing changes. Returns the number of rounds that moved something.
  int pump() {
    int rounds = 0;
    for (int guard = 0; guard < 10000; ++guard) {
      if (!step()) break;
      ++rounds;
    }
    return rounds;
  }

  // Advances virtual time and lets both sessions' timers run.
  void advance_to(Time t) {
    now = t;
    client->on_timeout(now);
    if (server) server->on_timeout(now);
  }

  // Application behaviour.
  bool client_reads = true;
  bool server_reads = true;
  bool auto_reconnect = false;  // open a link whenever the client asks for one
  std::size_t max_chunk = std::numeric_limits<std::size_t>::max();  // per read and per write

  Time now;
  std::unique_ptr<Session> client;
  std::unique_ptr<Session> server;
  ByteVec client_got;  // what the client's application consumed
  ByteVec server_got;
  bool client_saw_eof = false;
  bool server_saw_eof = false;
  std::vector<Event> client_events;
  std::vector<Event> server_events;
  int connect_requests = 0;

  const SessionTable& table() const { return table_; }

 private:
  bool step() {
    bool moved = false;
    for (std::size_t i = 0; i < links_.size(); ++i) {  // open_link() may append
      Link& l = links_[i];
      if (!l.up) continue;
      if (l.client_open) {
        const std::size_t before = l.c2s.size();
        if (drain(*client, l.id, now, l.c2s, max_chunk) > 0) {
          l.requests.insert(l.requests.end(), l.c2s.begin() + static_cast<std::ptrdiff_t>(before),
                            l.c2s.end());
          moved = true;
        }
      }
      if (l.server_open && l.server == ServerSide::kSession && server) {
        const std::size_t before = l.s2c.size();
        if (drain(*server, l.id, now, l.s2c, max_chunk) > 0) {
          l.replies.insert(l.replies.end(), l.s2c.begin() + static_cast<std::ptrdiff_t>(before),
                           l.s2c.end());
          moved = true;
        }
      }
      if (!l.c2s.empty() && !l.hold_c2s && l.server_open) {
        ByteVec in;
        in.swap(l.c2s);
        to_server(l, in);
        moved = true;
      }
      if (!l.s2c.empty() && !l.hold_s2c && l.client_open) {
        ByteVec in;
        in.swap(l.s2c);
        deliver(*client, l.id, in, now, max_chunk);
        moved = true;
      }
      // Sockets close once their session is done with them; the peer then reads EOF.
      if (l.client_open && client->path_done(l.id)) {
        l.client_open = false;
        client->forget_path(l.id);
        moved = true;
      }
      if (l.server_open && l.server == ServerSide::kSession && server && server->path_done(l.id)) {
        l.server_open = false;
        server->forget_path(l.id);
        moved = true;
      }
      if (l.server_open && l.server == ServerSide::kRefused && l.s2c.empty()) {
        l.server_open = false;
        moved = true;
      }
      if (!l.server_open && l.client_open && l.s2c.empty()) {
        l.client_open = false;
        client->on_path_eof(l.id, now);
        client->forget_path(l.id);
        moved = true;
      }
      if (!l.raw && !l.client_open && l.server_open && l.c2s.empty() &&
          l.server == ServerSide::kSession && server) {
        l.server_open = false;
        server->on_path_eof(l.id, now);
        server->forget_path(l.id);
        moved = true;
      }
    }
    moved |= applications();
    if (auto_reconnect && client->take_connect_request()) {
      ++connect_requests;
      open_link();
      moved = true;
    }
    return moved;
  }

  void to_server(Link& l, const ByteVec& in) {
    if (l.server == ServerSide::kSession) {
      deliver(*server, l.id, in, now, max_chunk);
      return;
    }
    if (l.server == ServerSide::kRefused) return;
    l.initial.insert(l.initial.end(), in.begin(), in.end());
    auto first = classify_first(l.initial);
    if (!first) {
      if (first.error().code == Errc::kNeedMore) return;
      const Bytes text(reinterpret_cast<const std::uint8_t*>(kNotRoamReply),
                       sizeof kNotRoamReply - 1);
      refuse(l, ByteVec(text.begin(), text.end()));
      return;
    }
    if (first->type == wire::FrameType::kHello) {
      if (server) {  // one session per pair
        refuse(l, {});
        return;
      }
      server = Session::accept(server_cfg_, server_rng_, l.id, l.initial, now);
      l.server = ServerSide::kSession;
      return;
    }
    ByteVec reply;
    Session* s = table_.route_migrate(l.initial, reply);
    if (!s) {
      refuse(l, reply);
      return;
    }
    l.server = ServerSide::kSession;
    s->attach_server_path(l.id, l.initial, now);
  }

  void refuse(Link& l, const ByteVec& reply) {
    l.server = ServerSide::kRefused;
    l.s2c.insert(l.s2c.end(), reply.begin(), reply.end());
    l.replies.insert(l.replies.end(), reply.begin(), reply.end());
  }

  bool applications() {
    bool moved = false;
    while (auto e = client->poll_event()) {
      client_events.push_back(*e);
      moved = true;
    }
    if (server) {
      while (auto e = server->poll_event()) {
        if (e->type == EventType::kEstablished) table_.add(server.get());
        server_events.push_back(*e);
        moved = true;
      }
    }
    moved |= read_app(*client, client_reads, client_got, client_saw_eof);
    if (server) moved |= read_app(*server, server_reads, server_got, server_saw_eof);
    return moved;
  }

  bool read_app(Session& s, bool reads, ByteVec& got, bool& saw_eof) {
    if (!reads) return false;
    bool moved = false;
    for (Bytes r = s.readable(); !r.empty(); r = s.readable()) {
      got.insert(got.end(), r.begin(), r.end());
      s.consume(r.size(), now);
      moved = true;
    }
    if (s.at_eof() && !saw_eof) {
      saw_eof = true;
      s.consume_eof(now);
      moved = true;
    }
    return moved;
  }

  crypto::SeededRng client_rng_;
  crypto::SeededRng server_rng_;
  SessionConfig server_cfg_;
  SessionTable table_;
  std::deque<Link> links_;
  PathId next_id_ = 1;
};

}  // namespace roam::core::test
