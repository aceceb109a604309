// A roam session: one reliable, resumable byte stream in each direction, carried over a sequence
// of TCP connections ("paths") that come and go.
//
// Theory of operation
// -------------------
// The core never touches a socket or a clock. The I/O shell owns the sockets and numbers each TCP
// connection with a fresh PathId (a generation: larger is newer). It feeds what a socket returns
// into recv_space()/on_received(), writes what poll_transmit() hands out and reports how much the
// kernel took with on_transmitted(). It asks next_deadline() when to call on_timeout(). It learns
// about state changes from poll_event() and closes the sockets that path_done() names.
//
// Client                                   Server
//   attach_path(p1) ── HELLO ───────────▶   (shell: first frame is HELLO → Session::accept)
//                   ◀── HELLO_REPLY ────
//                   ── FINISH, DATA… ───▶   kEstablished: the shell connects the target
//   … p1 dies (error, silence) → kClientWait; the server notices silence → kServerWait
//   attach_path(p2) ── MIGRATE(tok,req,received,mac) ─▶ (shell: token lookup → attach_server_path)
//                   ◀── CHALLENGE(req,nonce,mac) ─────  p2 on probation; p1 kept
//                   ── RESPONSE(req,received,mac) ────▶ adopt p2 atomically: p1 never read again
//                   ◀── ACCEPT(req,received,mac), DATA…  both sides resend from the peer's
//                                                       "received" offset: exactly once, in order
//
// Flow control is by credit: a sender never has more than `buffer_cap` bytes beyond what the
// peer's application consumed, so the receiver's ring always has room and it can always drain its
// socket; a full retention buffer makes write_space() empty (backpressure on the application).
//
// Reentrancy: none of these functions calls back into the shell; all are safe to call in any
// order from one thread. Peer input never asserts: it ends the path or the session with an Error.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"
#include "core/session/handshake.hpp"
#include "core/session/sealer.hpp"
#include "core/session/stream.hpp"
#include "core/wire/frames.hpp"

namespace roam::core {

using PathId = std::uint64_t;

// States, with role prefixes. The names come from this one table (logs and code never drift).
#define ROAM_SESSION_STATES(X)                                                       \
  X(kClientHandshake, "client-handshake")                                            \
  X(kClientEstablished, "client-established")                                        \
  X(kClientWait, "client-migrate-wait")                                              \
  X(kClientMigrating, "client-migrating")                                            \
  X(kServerHandshake, "server-handshake")                                            \
  X(kServerEstablished, "server-established")                                        \
  X(kServerWait, "server-migrate-wait")                                              \
  X(kClosed, "closed")

enum class State : std::uint8_t {
#define X(name, text) name,
  ROAM_SESSION_STATES(X)
#undef X
};
const char* state_name(State s);

struct SessionConfig {
  HandshakeParams handshake;
  // Send something (an ACK heartbeat) when nothing was sent for this long; declare the path dead
  // after `dead_after_beats` intervals in which nothing was heard and TCP made no progress.
  Duration heartbeat = std::chrono::seconds(1);
  int dead_after_beats = 3;
  // Unauthenticated work is bounded: a handshake or a migrate exchange must finish in time.
  Duration handshake_timeout = std::chrono::seconds(5);
  // After a path is lost the client probes at this interval for `fast_probe_period`, then backs
  // off linearly (a tenth of the time since the loss) up to `max_probe_interval` (SPEC prop. 7).
  Duration probe_interval = std::chrono::milliseconds(100);
  Duration fast_probe_period = std::chrono::seconds(30);
  Duration max_probe_interval = std::chrono::seconds(5);
  // A migrate attempt that got no answer for this long is superseded by a new one.
  Duration attempt_timeout = std::chrono::seconds(2);
  // Server: competing migrate attempts kept on probation at once.
  std::size_t max_probation_paths = 4;
  // Bytes the application may write ahead of what was sent (SendStream::set_unsent_limit).
  std::size_t unsent_limit = 512 * 1024;
  // Consumed bytes are acknowledged at least every this many (and every quarter of the cap).
  std::size_t ack_every = 256 * 1024;
  // Server: how long a cleanly ended session stays resumable (capped by the wait).
  Duration linger = std::chrono::seconds(60);
};

enum class EventType : std::uint8_t {
  kEstablished,  // handshake complete (server: connect the target now)
  kPathLost,     // the active path died; the session waits (client: reconnect)
  kMigrated,     // a new path was adopted; `took` is the time since the old one was lost
  kClosed,       // the session ended; `clean` tells FIN from abort; `error` says why
};

struct Event {
  EventType type;
  PathId path = 0;
  Duration took{0};
  std::uint64_t request = 0;
  bool clean = false;
  Error error{Errc::kAborted, {}};
};

// Up to four byte ranges to write with one writev.
struct IoSlices {
  static constexpr std::size_t kMax = 4;
  Bytes slice[kMax];
  std::size_t count = 0;
  std::size_t total() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < count; ++i) n += slice[i].size();
    return n;
  }
};

// Incremental decoder of one path's bytes: preamble, then frames. DATA payloads can be read
// directly into the receive ring (data_remaining() tells how much).
class FrameDecoder {
 public:
  struct Frame {
    wire::FrameHeader header;
    MutBytes bytes;  // header and payload, in the decoder's buffer (a SEALED frame is opened there)
  };
  // Feeds `in`. For each complete control frame calls on_frame(Frame) -> Result<void>; for DATA
  // payload bytes calls on_data(Bytes) -> Result<void>. Stops at the first error.
  template <typename OnFrame, typename OnData>
  Result<void> feed(Bytes in, OnFrame&& on_frame, OnData&& on_data);
  // While inside a DATA payload with nothing buffered: bytes still expected.
  std::size_t data_remaining() const { return stage_ == Stage::kData ? data_left_ : 0; }
  void data_read_directly(std::size_t n) {
    data_left_ -= n;
    if (data_left_ == 0) stage_ = Stage::kHeader;
  }
  bool preamble_done() const { return stage_ != Stage::kPreamble; }
  // --encrypt: from the next frame header on, only SEALED frames are valid (and before, none is).
  void require_sealed() { sealed_only_ = true; }
  // Inside a control frame (on an encrypted path: a SEALED frame of up to 256 KiB), the rest of it
  // can be read straight into the frame buffer: this is its unfilled tail (empty otherwise).
  MutBytes frame_space() {
    if (stage_ != Stage::kControl) return {};
    return MutBytes(partial_.data() + filled_, need_ - filled_);
  }
  // `n` bytes were read into frame_space(); calls on_frame once the frame is complete.
  template <typename OnFrame>
  Result<void> frame_read_directly(std::size_t n, OnFrame&& on_frame);
  // Between frames: frees the frame buffer.
  void trim_memory() {
    if (stage_ != Stage::kControl && partial_.empty()) decltype(partial_)().swap(partial_);
  }

 private:
  // Grows without zero-filling: every byte of a frame is written by a read before it is used.
  template <typename T>
  struct UninitAlloc : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = UninitAlloc<U>;
    };
    UninitAlloc() = default;
    template <typename U>
    UninitAlloc(const UninitAlloc<U>&) {}
    template <typename U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... A>
    void construct(U* p, A&&... a) {
      ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
  };
  Result<void> deliver_control(auto&& on_frame);

  enum class Stage : std::uint8_t { kPreamble, kHeader, kControl, kData };
  Stage stage_ = Stage::kPreamble;
  std::vector<std::uint8_t, UninitAlloc<std::uint8_t>> partial_;
  std::size_t filled_ = 0;  // kControl: bytes of the frame (header included) in partial_
  std::size_t need_ = wire::kPreambleSize;
  std::size_t data_left_ = 0;
  bool sealed_only_ = false;
};

class Session {
 public:
  // A client session. Call attach_path() once the first TCP connection is up.
  static std::unique_ptr<Session> client(const SessionConfig& cfg, crypto::Rng& rng, Time now);
  // A server session for a connection whose first frame is HELLO. `initial` holds the bytes read
  // so far (preamble onwards). Check state() and poll_event(): a bad HELLO closes it at once.
  static std::unique_ptr<Session> accept(const SessionConfig& cfg, crypto::Rng& rng, PathId path,
                                         Bytes initial, Time now);

  // --- paths -------------------------------------------------------------------------------
  // Client: a new TCP connection to the server is up. Sends HELLO on the first, MIGRATE on later
  // ones (make-before-break when a path is still active).
  void attach_path(PathId path, Time now);
  // Server: a connection whose first frame is a MIGRATE naming this session's token.
  void attach_server_path(PathId path, Bytes initial, Time now);
  // Where the shell should read this path's next bytes (never empty for a live path).
  MutBytes recv_space(PathId path);
  // `n` bytes were read into recv_space(path).
  void on_received(PathId path, std::size_t n, Time now);
  // The connection hit an error or a connect failure.
  void on_path_error(PathId path, Time now, const std::string& why);
  // The peer closed the connection cleanly (recv returned 0). For a client whose session is
  // complete in both directions this is the server's word that it is done: a clean end.
  void on_path_eof(PathId path, Time now);
  // Bytes this path wants to send now (empty when nothing).
  IoSlices poll_transmit(PathId path, Time now);
  void on_transmitted(PathId path, std::size_t n, Time now);
  bool wants_write(PathId path) const;
  // The shell should close this path's socket (superseded, refused, or the session ended and
  // everything queued on it was written).
  bool path_done(PathId path) const;
  void forget_path(PathId path);
  // TCP reports that the peer acknowledged our bytes recently (TCP_INFO): the path is alive even
  // if the peer is silent because it has nothing to send.
  void note_transport_progress(PathId path, Time now);
  std::optional<PathId> active_path() const { return active_; }
  std::vector<PathId> path_ids() const;

  // --- client reconnects -------------------------------------------------------------------
  // True when the client should open a new TCP connection now (checked after on_timeout and
  // on_path_error). Clears the request.
  bool take_connect_request();
  // Asks for an immediate reconnect attempt (e.g. on an address or route event).
  void request_migration(Time now);

  // --- application -------------------------------------------------------------------------
  MutBytes write_space() { return state_ == State::kClosed ? MutBytes{} : tx_.write_space(); }
  // Whether write_space() would offer room (allocates nothing: use it to decide socket interest).
  bool can_write() const { return state_ != State::kClosed && tx_.has_space(); }
  void commit_write(std::size_t n) { tx_.commit(n); }
  std::size_t write(Bytes in) { return state_ == State::kClosed ? 0 : tx_.write(in); }
  void shutdown_write() { tx_.shutdown(); }
  Bytes readable() const { return rx_.readable(); }
  void consume(std::size_t n, Time now);
  bool at_eof() const { return rx_.at_eof(); }
  void consume_eof(Time now);
  // Ends the session at once: CLOSE to the peer (if a path is up), kClosed(abort) event.
  void abort(const std::string& reason, Time now);

  // --- time --------------------------------------------------------------------------------
  Time next_deadline() const;
  void on_timeout(Time now);

  // --- introspection -----------------------------------------------------------------------
  State state() const { return state_; }
  bool is_client() const { return client_; }
  const wire::Token& token() const { return negotiated_.token; }
  bool established_once() const { return established_once_; }
  std::optional<Event> poll_event();
  std::uint64_t bytes_sent() const { return tx_.written(); }
  // Stream position received, the peer's FIN included (it takes one position, as in TCP).
  std::uint64_t bytes_received() const { return rx_.received(); }
  // Data bytes received, the FIN not counted: what logs, status and metrics report.
  std::uint64_t data_bytes_received() const { return rx_.received() - (rx_.fin_received() ? 1 : 0); }
  std::uint64_t migrations() const { return migrations_; }
  std::size_t retained() const { return tx_.retained(); }
  // Storage the retention and receive rings hold now (they grow with bursts and shrink back).
  std::size_t ring_memory() const { return tx_.allocated() + rx_.allocated(); }
  const Negotiated& negotiated() const { return negotiated_; }
  // Silence after which the active path is declared dead (heartbeat × dead_after_beats); the
  // shell also uses it as the path sockets' TCP_USER_TIMEOUT.
  Duration path_timeout() const;
  const Error& close_error() const { return close_error_; }
  bool closed_clean() const { return closed_clean_; }
  // Server: after a clean end the session stays resumable for a while (like TCP's TIME_WAIT), so a
  // client whose last ACK was lost with its path can come back, hear it and end cleanly too.
  bool lingering() const { return lingering_; }
  // Client: both directions are complete; waiting for the server to close its side.
  bool complete() const { return complete_; }
  // Client: the active path has been silent for over a heartbeat and the session is probing for
  // another (a probe from the same address is then not redundant).
  bool probing_while_active() const { return suspect_; }

  Session(const SessionConfig& cfg, crypto::Rng& rng, bool client, Time now);
  ~Session();

 private:
  enum class PathRole : std::uint8_t {
    kHandshake,  // first connection, before the handshake completes
    kActive,     // carries the session's data
    kAttempt,    // client: a migrate attempt in progress
    kProbation,  // server: a migrate request awaiting path validation
    kDraining,   // client, make-before-break: the old path after RESPONSE, read (never written)
                 // until ACCEPT arrives on the new one, so nothing in flight there is wasted
    kClosing,    // flush what is queued, then close
  };
  struct Path {
    PathId id = 0;
    PathRole role = PathRole::kHandshake;
    FrameDecoder decoder;
    std::vector<std::uint8_t> ctrl;  // queued control bytes
    std::size_t ctrl_sent = 0;
    std::size_t plan_ctrl = 0;       // control bytes handed out by the last poll_transmit
    std::uint8_t data_hdr[wire::kFrameHeaderSize] = {};
    std::size_t hdr_left = 0;        // DATA header bytes still to write
    std::size_t payload_left = 0;    // DATA payload bytes still to write
    std::uint64_t request = 0;       // migrate request number bound to this path
    wire::Nonce nonce{};             // server: the challenge sent on this path
    bool responded = false;          // client: RESPONSE sent on this attempt
    std::uint64_t reported = 0;      // client: the received offset that RESPONSE named
    Time opened{};
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    Sealer seal_out;  // --encrypt: frames we send on this path
    Sealer seal_in;   // --encrypt: frames we receive on it
  };

  Path* find(PathId id);
  const Path* find(PathId id) const;
  Path& add_path(PathId id, PathRole role, Time now);
  // Marks a path for closing; with `flush` its queued control bytes are written first.
  void close_path(Path& p, bool flush);
  Result<void> handle_frame(Path& p, const FrameDecoder::Frame& f, Time now);
  Result<void> handle_data(Path& p, Bytes payload, Time now);
  // --encrypt: opens a SEALED frame and handles the frame inside it.
  Result<void> handle_sealed(Path& p, const FrameDecoder::Frame& f, Time now);
  // --encrypt: seal what `p` sends (`out`) and/or what it receives (`in`) from now on, on the path
  // whose epoch is `epoch` (0: the handshake connection; else the migrate request number).
  void start_sealing(Path& p, std::uint64_t epoch, bool out, bool in);
  // AES-256-GCM: `epoch` does not fit the nonce's 32 bits, so no path may have it.
  bool epoch_exhausted(std::uint64_t epoch) const;
  // Queues a frame of the established protocol (ACK, FIN, CLOSE), sealed when `p` seals.
  template <typename M>
  void send_frame(Path& p, const M& m);
  Result<void> on_established_frame(Path& p, const FrameDecoder::Frame& f, Time now);
  Result<void> client_on_migrate_reply(Path& p, const FrameDecoder::Frame& f, Time now);
  Result<void> server_on_response(Path& p, const FrameDecoder::Frame& f, Time now);
  void server_on_migrate(Path& p, const wire::Migrate& m, Time now);
  void refuse_stale(Path& p, std::uint64_t request);
  void queue_accept(Path& p, std::uint64_t request, Time now);
  void feed(Path& p, Bytes in, Time now);
  // What feeding a path's bytes gave: a failure (other than "stop") fails the path.
  void fed(Path& p, const Result<void>& r, Time now);
  // Whether DATA payload bytes for `p` may go straight into the receive ring (nothing to check or
  // drop first).
  bool data_direct(const Path& p) const;
  void path_failed(Path& p, Time now, const Error& why, bool peer_fault);
  void lose_active(Time now, const std::string& why);
  void enter_established(Time now);
  void maybe_ack(Time now);
  // The consumed offset an ACK may name now (capped by resent_, see there).
  std::uint64_t ack_point() const;
  void note_resent(std::uint64_t n, Time now);
  void queue_ack(Path& p, Time now);
  void check_finished(Time now);
  void close_session(bool clean, Error err, Time now, bool tell_peer);
  void emit(Event e) { events_.push_back(std::move(e)); }
  Duration probe_delay(Time now) const;
  bool data_allowed(const Path& p) const;
  // Whether DATA and FIN may arrive on `p`: the active path, or the old one while it drains.
  bool receives_data(const Path& p) const;
  // Client: closes the path draining beside a make-before-break attempt, if any.
  void stop_draining();
  bool path_live(const Path& p) const;
  std::size_t credit() const;
  Duration suspect_after() const;

  SessionConfig cfg_;
  crypto::Rng& rng_;
  bool client_;
  State state_;
  std::unique_ptr<ClientHandshake> client_hs_;
  std::unique_ptr<ServerHandshake> server_hs_;
  Negotiated negotiated_;
  bool established_once_ = false;
  SendStream tx_;
  RecvStream rx_;
  std::deque<Path> paths_;  // deque: adding a path keeps references to the others valid
  std::optional<PathId> direct_read_;   // recv_space() pointed into the receive ring
  std::optional<PathId> direct_frame_;  // recv_space() pointed into a path's frame buffer
  std::optional<PathId> active_;
  std::deque<Event> events_;
  // Read target for frame headers and control frames, shared by every session on this thread:
  // recv_space() hands it out and on_received() consumes it at once, so one per thread suffices
  // and an idle session does not carry 16 KiB of it.
  static thread_local std::array<std::uint8_t, 16 * 1024> staging_;

  Time created_;
  Time last_heard_;       // last authenticated byte from the peer (the wait counts from here)
  Time last_progress_;    // last sign of life of the active path (peer bytes or TCP progress)
  Time last_sent_;        // last frame queued on the active path (heartbeat)
  Time lost_at_;          // when the active path was lost (migration latency)
  Time last_tick_;        // last housekeeping pass while established (ACK owed, ring trim)
  std::uint64_t ack_sent_ = 0;       // consumed offset last reported to the peer
  // Client, after a make-before-break adoption: the server resends from the offset our RESPONSE
  // named (R), but the draining old path may have delivered more since. `skip_` is how many
  // resent DATA bytes we already hold and drop; `resent_` is how far the server's resend has
  // reached (R + everything received on the new path), and ACKs never name more than that (the
  // server would reject an ACK beyond what it sent). Both are idle (skip_ 0, resent_ unset) once
  // the resend has caught up.
  std::uint64_t skip_ = 0;
  std::optional<std::uint64_t> resent_;
  PathId resend_path_ = 0;  // the path the resend arrives on (it may drain beside a newer one)
  std::uint64_t request_ = 0;        // client: newest request number; server: newest adopted
  int refusals_ = 0;                 // client: REFUSED answers to the newest attempt
  bool connect_request_ = false;
  Time next_probe_ = Time::never();
  std::uint64_t migrations_ = 0;
  bool closed_clean_ = false;
  bool complete_ = false;   // client: all acknowledged both ways, waiting for the server's EOF
  bool suspect_ = false;    // client: the active path has been silent for over a heartbeat
  bool lingering_ = false;  // server: ended cleanly, still answers migrate requests
  Time linger_until_ = Time::never();
  Error close_error_{Errc::kAborted, {}};
};

}  // namespace roam::core
