// A deterministic simulator of one roam session: a client Session and a server Session joined by
// virtual TCP links, on virtual time, driven exactly as an I/O shell drives them.
//
// Theory of operation
// -------------------
// Everything is decided by one seeded std::mt19937_64, so a seed replays a run bit for bit. Time
// is a number that only the simulator advances: each step jumps to the earliest pending event
// (a segment arriving, a wire becoming free, a session deadline, a shell or application wakeup, a
// scheduled action) and then "pumps" both sides until nothing more can happen at that instant.
//
// A link is a TCP connection: a reliable, in-order byte pipe each way with a one-way delay, a
// serialisation rate, a finite kernel send buffer at the writer and a finite kernel receive buffer
// at the reader (the window: bytes leave the send buffer only while the receive buffer plus the
// bytes in flight fit). poll_transmit() output is accepted only as far as the send buffer has room
// and, with `partial_io`, only a random prefix of it; reads take random sizes and the shell
// sometimes pauses, so the receive buffer can hold bytes the session never read.
//
// A cut drops everything in flight and the receiver-side kernel buffers of both directions (bytes
// TCP had acknowledged but the session never read are gone), freezes the link (writes still land in
// the send buffer, nothing leaves it), and delivers an error to each side at a chosen later time or
// never (a silent black hole, left for heartbeats to find).
//
// Shells. Client: when take_connect_request() is true, open a link; after one round trip (the TCP
// connect) call attach_path(). Server: read a new link's bytes until classify_first() decides, then
// Session::accept() for HELLO, or SessionTable::route_migrate() + attach_server_path() for MIGRATE,
// writing the refusal bytes and closing otherwise. Both: close the sockets path_done() names (the
// kernel still delivers what was written, then FIN) and forget_path(); an error or EOF on a socket
// is reported with on_path_error() and the socket is closed.
//
// Applications. Each side writes a seeded pseudo-random stream of N bytes through
// write_space()/commit_write() (respecting backpressure) then shutdown_write(); and reads
// readable() at a random pace with stalls, checking every byte against the stream position by
// position, then consume_eof(). Any deviation is recorded in failures().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/session/dispatcher.hpp"
#include "core/session/session.hpp"

namespace roam::sim {

using core::Duration;
using core::Time;
using LinkId = std::uint64_t;
using namespace std::chrono_literals;

enum class Side : std::uint8_t { kClient = 0, kServer = 1 };
const char* side_name(Side s);

struct LinkParams {
  Duration delay = 10ms;                     // one way
  std::uint64_t bytes_per_sec = 100'000'000;  // serialisation rate of each direction
  std::size_t sndbuf = 64 * 1024;            // kernel send buffer of each end
  std::size_t rcvbuf = 64 * 1024;            // kernel receive buffer of each end
  std::size_t mss = 16 * 1024;               // largest segment
};

struct AppParams {
  std::uint64_t bytes = 256 * 1024;  // length of the stream this side writes
  // The reader pauses after a read with this probability, for up to read_gap_max.
  double read_gap_prob = 0.3;
  Duration read_gap_max = 300us;
  // ... and stops reading for a while (a pager, Ctrl-S) with this probability per read.
  double stall_prob = 0.002;
  Duration stall_max = 2s;
  double write_gap_prob = 0.2;
  Duration write_gap_max = 300us;
  std::size_t max_chunk = 64 * 1024;  // largest single read or write
  bool shutdown = true;               // shutdown_write() once all bytes are written
  // Paced writer (a record stream): when `pace` is non-zero the writer ignores the gap settings
  // and writes one record of `record` bytes every `pace` (a record waits whole for space), and the
  // reader notes each record's delay from write to read (SideStats::record_delays).
  Duration pace{0};
  std::size_t record = 64;
};

struct Options {
  std::uint64_t seed = 1;
  core::SessionConfig client;
  core::SessionConfig server;
  LinkParams link;
  // Each link after the first has a one-way delay uniform in [link.delay, link_delay_max] when
  // the latter is larger; kernel buffers are uniform in [4 KiB, link.sndbuf / rcvbuf] with `random_kernel`.
  Duration link_delay_max{0};
  bool random_kernel = true;
  AppParams c2s;  // written by the client, read by the server
  AppParams s2c;  // written by the server, read by the client
  // Random partial reads and writes, and random shell pauses between I/O on one socket.
  bool partial_io = true;
  double io_pause_prob = 0.05;
  Duration io_pause_max = 1ms;
  // A run that has not ended by then fails (nothing may hang).
  Duration time_limit = 4h;
};

// What a cut tells each side: an error after the given delay, or nothing (nullopt).
struct CutSpec {
  std::optional<Duration> client_error;
  std::optional<Duration> server_error;
};

struct SideStats {
  std::uint64_t written = 0;  // bytes the writer committed
  bool shut = false;          // shutdown_write() called
  std::uint64_t read = 0;     // bytes the reader consumed (all checked)
  bool eof = false;           // consume_eof() called
  bool closed = false;
  bool clean = false;
  core::Errc close_code = core::Errc::kAborted;
  std::string close_detail;
  Time closed_at{};
  Time last_rx{};  // last time the session was given bytes
  std::vector<Time> path_lost_at;
  std::vector<Time> migrated_at;
  std::size_t max_retained = 0;
  std::size_t max_readable = 0;
  std::vector<Time> record_written;  // paced writer: when each record was committed
  struct RecordDelay {
    Time read;       // when the reader consumed the record's last byte
    Duration delay;  // ... minus when the writer committed it
  };
  std::vector<RecordDelay> record_delays;  // paced reader: one per record, in order
};

// One client attach_path() after the handshake: when the link became usable, and when the first
// stream byte arrived on each side after it.
struct Handover {
  LinkId link = 0;
  Time connect_started{};
  Time attached{};
  std::uint64_t client_rx0 = 0;
  std::uint64_t server_rx0 = 0;
  std::optional<Time> client_first;  // server → client byte received
  std::optional<Time> server_first;  // client → server byte received
};

class Simulator {
 public:
  explicit Simulator(const Options& o);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // --- running -------------------------------------------------------------------------------
  // Runs until both sessions closed, a failure, or virtual time `limit` (then now() == limit).
  void run_until(Time limit);
  // Runs until `pred` holds (checked after each step), both sessions closed, a failure or `limit`.
  // Returns whether `pred` held.
  bool run_until(const std::function<bool()>& pred, Time limit);
  // Runs to the end: true when both sessions closed; otherwise records a failure (hang).
  bool run_to_end();
  // Runs `fn` at virtual time `t` (before the shells act at that instant).
  void at(Time t, std::function<void()> fn);

  // --- faults --------------------------------------------------------------------------------
  void cut(LinkId id, const CutSpec& spec);
  // A random cut spec: each side independently gets an error after up to `max_after`, or never.
  CutSpec random_cut_spec(double p_error, Duration max_after);
  // The link of the client's active path, else the newest open link.
  std::optional<LinkId> cut_target() const;
  std::vector<LinkId> open_links() const;
  // While on, every link is cut silently at once and new connects fail after one round trip.
  void set_partition(bool on);

  // --- observation ---------------------------------------------------------------------------
  Time now() const { return now_; }
  bool done() const;
  bool failed() const { return !failures_.empty(); }
  const std::vector<std::string>& failures() const { return failures_; }
  std::string summary() const;
  core::Session& client() { return *client_; }
  core::Session* server() { return server_.get(); }
  const SideStats& stats(Side s) const { return stats_[static_cast<int>(s)]; }
  const std::vector<Handover>& handovers() const { return handovers_; }
  std::uint64_t links_opened() const { return next_link_ - 1; }
  std::uint64_t competing_attaches() const { return competing_attaches_; }
  std::uint64_t refused_replies() const { return refused_replies_; }
  std::uint64_t cuts() const { return cuts_; }
  std::mt19937_64& rng() { return rng_; }
  const Options& options() const { return opt_; }

  // Byte `pos` of the stream a side writes (what the peer's reader checks against).
  std::uint8_t stream_byte(Side writer, std::uint64_t pos) const;

  // Random helpers on the simulation's generator.
  std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi);  // inclusive
  Duration uniform(Duration lo, Duration hi);
  bool chance(double p);

 private:
  struct Link;
  struct Pipe;
  struct End;

  void fail(const std::string& what);
  void log(const std::string& what) const;  // to stderr when $ROAM_SIM_TRACE is set
  Time next_event_time() const;
  void step();
  void process_instant();
  bool pump_once();
  bool pump_end(Link& l, Side side);
  bool pump_server_unbound(Link& l);
  bool pump_apps(Side side);
  bool pump_events(Side side);
  void run_timeouts();
  void transmit(Pipe& p);
  void deliver(Link& l);
  void open_link();
  void close_end(Link& l, Side side, bool graceful);
  void track();
  core::Session* session_of(Side s) { return s == Side::kClient ? client_.get() : server_.get(); }
  const core::SessionConfig& cfg_of(Side s) const {
    return s == Side::kClient ? opt_.client : opt_.server;
  }
  Link* link(LinkId id);

  Options opt_;
  std::mt19937_64 rng_;
  Time now_{};
  std::unique_ptr<core::crypto::SeededRng> client_rng_;
  std::unique_ptr<core::crypto::SeededRng> server_rng_;
  std::unique_ptr<core::crypto::SeededRng> table_rng_;
  std::unique_ptr<core::Session> client_;
  std::unique_ptr<core::Session> server_;
  std::unique_ptr<core::SessionTable> table_;
  std::map<LinkId, std::unique_ptr<Link>> links_;
  LinkId next_link_ = 1;
  bool partition_ = false;

  struct Action {
    Time t;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Action& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  std::priority_queue<Action, std::vector<Action>, std::greater<>> actions_;
  std::uint64_t action_seq_ = 0;

  struct AppState {
    Time read_wake{};
    Time write_wake{};
  };
  AppState app_[2];
  SideStats stats_[2];
  std::vector<Handover> handovers_;
  std::uint64_t competing_attaches_ = 0;
  std::uint64_t refused_replies_ = 0;
  std::uint64_t cuts_ = 0;
  std::uint64_t stream_key_[2] = {0, 0};
  std::vector<std::string> failures_;
  bool trace_ = false;
  std::uint64_t same_instant_steps_ = 0;
  std::uint64_t timeouts_at_instant_ = 0;
  Time last_instant_{};
};

// Seeds for a test: `count` seeds from `base`, or only $ROAM_SIM_SEED when it is set.
std::vector<std::uint64_t> seeds(std::uint64_t base, std::size_t count);

}  // namespace roam::sim
