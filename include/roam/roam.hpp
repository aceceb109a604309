// libroam: embed roam's resumable sessions (the Migrate design) in your own program.
//
// A roam session is one reliable byte stream in each direction between a client and a server,
// like a TCP connection, except that it survives the client's address changing: the session is
// named by a secret token, and when its TCP connection ("path") dies the client opens a new one,
// proves it holds the session's key and both sides resume from exact byte offsets. Nothing is
// lost, duplicated or reordered. The peer can be another libroam program or the `roam` command
// (`roam server` accepts what Context::connect makes; `roam connect` talks to Context::listen).
//
// Threading model
// ---------------
// Everything happens on one event-loop thread per Context (epoll; no locks on the data path):
//
//   * Context::run() runs the loop on the calling thread until stop(); Context::start() runs it on
//     a background thread that the Context owns (joined by stop() or the destructor).
//   * The callback API (Context::connect/listen, every Connection and Listener member) must be
//     called on the loop thread: from inside a callback, from a function given to post(), or
//     before the loop starts. Calling it from another thread while the loop runs is a programming
//     error and aborts the process with a message (it would be a data race otherwise).
//   * Callbacks run on the loop thread, never re-entrantly inside a Connection call: read(),
//     write(), shutdown(), close() and abort() only queue work, so they are safe inside callbacks.
//     Callbacks must not block; a blocking callback stalls every session of the Context.
//   * Context::post() and Context::stop() are thread-safe.
//   * Stream is a blocking layer for other threads over a Context started with start(): each call
//     posts into the loop and waits. One Stream may be used by one reader thread and one writer
//     thread at the same time (read/write_all from two threads is fine), like a socket.
//
// Errors are values: calls return Result<T> (tl::expected<T, roam::Error>). Nothing here throws,
// except std::bad_alloc and exceptions thrown by your own callbacks (which propagate out of run()).
//
// Lifetimes
// ---------
// Connection, Listener and Stream are handles: cheap to copy (Connection) or move (Stream). A
// session lives on inside the Context until it has ended, even with no handle left: dropping the
// last Connection handle of an open session close()s it gracefully. Handles may outlive the
// Context; after it is gone every call fails with Errc::kClosed. Destroying the Context aborts
// every session still open (the peer sees an abort, never a silent truncation).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace roam {

// --- errors --------------------------------------------------------------------------------

// Stable codes. The protocol's own codes (kMalformed..kLimit) are the ones roam's CLOSE frames,
// logs and docs/PROTOCOL.md use; the library adds its own from 100 on.
enum class Errc : std::uint16_t {
  kMalformed = 2,       // the peer sent bytes that can never be valid
  kNotRoam = 3,         // the peer does not speak roam
  kVersion = 4,         // the peer speaks another roam version
  kBadMac = 5,          // a MAC did not verify (forgery or corruption)
  kCrypto = 6,          // the key exchange failed
  kProtocol = 7,        // the peer broke a protocol rule
  kRefused = 8,         // the server refused to resume (it does not know the session)
  kTimeout = 9,         // a deadline passed (handshake, or the wait for the client expired)
  kAborted = 10,        // the peer or this side aborted the session
  kRetentionLost = 11,  // the peer asked for bytes that are no longer held
  kLimit = 12,          // a configured cap was reached
  kWouldBlock = 100,    // nothing to read / no room to write now; a callback says when to retry
  kClosed = 101,        // the session (or the Context) has ended
  kShutdown = 102,      // write after shutdown() or close()
  kInvalidArgument = 103,  // e.g. an address that does not parse, an option out of range
  kSystem = 104,        // the operating system refused (bind, resolve, threads); see message
};

// The code's stable name ("bad-mac", "would-block", ...).
const char* errc_name(Errc code);

struct Error {
  Errc code;
  std::string message;  // for humans; includes the code's context (address, reason)
};

template <typename T>
using Result = tl::expected<T, Error>;

// --- options -------------------------------------------------------------------------------

// With encryption, which AEAD may seal a session (`roam --cipher`).
enum class Cipher : std::uint8_t {
  kAuto,               // AES-256-GCM when both ends' CPUs have AES-NI, else XChaCha20-Poly1305
  kXChaCha20Poly1305,  // never offer (client) or select (server) AES-256-GCM
};

// Defaults are those of the `roam` command (README's table of shared options).
struct SessionOptions {
  // MIGRATE_WAIT: how long a session whose path is gone waits for the client, counted from the
  // last byte heard. The smaller of both sides' values applies. At least 1 s.
  std::chrono::milliseconds wait = std::chrono::minutes(10);
  // Idle heartbeat; a path silent for 3 intervals (and making no TCP progress) is dead. Use the
  // same value on both sides. Between 50 ms and 5 min.
  std::chrono::milliseconds heartbeat = std::chrono::seconds(1);
  // Retention cap per direction: the most unacknowledged bytes kept for resume; also the flow
  // control window (write() accepts no more than this ahead of what the peer consumed). 4 KiB..4 GiB.
  std::uint64_t buffer = 8u << 20;
  // Encryption (`--encrypt`): every byte and control frame after the handshake travels sealed
  // (keys per session and direction; AES-256-GCM when both ends' CPUs have AES-NI, else
  // XChaCha20-Poly1305, as `roam --cipher auto`); a tampered, replayed or reordered frame ends the
  // session (kBadMac). Client: offer it and refuse a server that will not (kProtocol).
  // Server: refuse clients that do not offer it (kProtocol, "this server requires encryption");
  // a server without it still encrypts every session whose client asks.
  bool encrypt = false;
  // Which AEAD seals an encrypted session; Stats::cipher tells which one did.
  Cipher cipher = Cipher::kAuto;
};

struct ConnectOptions : SessionOptions {
  // Interfaces in order of preference (e.g. {"wlan0", "wwan0"}): paths use the first one with
  // its own address and a route to the server, and move back when a preferred one returns.
  std::vector<std::string> prefer;
  // Pin every path to this interface (SO_BINDTODEVICE; needs CAP_NET_RAW).
  std::string interface;
  // Follow address and route changes (rtnetlink) and migrate at once; without it only
  // heartbeats and socket errors trigger a migration.
  bool watch_network = true;
  // Key pinning (`--known-hosts`): a file of "HOST:PORT ed25519 BASE64" lines (`#` comments),
  // the same format as `roam connect`'s (its default is ~/.config/roam/known_hosts). A server
  // started with a key (ListenOptions::key_file, `roam server --key`) signs its handshake; the
  // first session to a HOST:PORT (as passed to connect) that has no line appends one. Afterwards
  // a server there that presents another key fails the session with kCrypto ("server key
  // changed"), one that presents none with kProtocol, and an ssh-like warning is logged. Servers
  // without a key are never pinned. Empty (the default): nothing is pinned or checked. The file
  // is read at connect(): kSystem when it exists but cannot be read.
  std::string known_hosts;
};

struct ListenOptions : SessionOptions {
  // Cap on connections that have not finished their first frame or handshake; when full the
  // oldest is evicted (never the newcomer).
  std::size_t max_unfinished = 4096;
  // Server key (`--key`): a secret key file written by `roam keygen` (mode 0600). Every handshake
  // is then signed, so that clients pin this key and refuse an impostor later (see
  // ConnectOptions::known_hosts). listen() fails with kInvalidArgument when the file cannot be
  // read, is readable by group or others, or is not a roam key. Empty (the default): no key.
  std::string key_file;
};

// --- events --------------------------------------------------------------------------------

struct CloseInfo {
  bool clean = false;   // true: both directions ended by shutdown and were delivered in full
  Error error{Errc::kAborted, {}};  // when !clean: why (the peer's CLOSE reason, a timeout...)
  std::uint64_t bytes_sent = 0;      // bytes this side wrote into the session
  std::uint64_t bytes_received = 0;  // bytes this side's application read (or close() dropped)
  std::uint64_t migrations = 0;
};

struct Stats {
  std::uint64_t bytes_sent = 0;      // bytes written into the session
  std::uint64_t bytes_received = 0;  // bytes read from it (or dropped by close())
  std::uint64_t migrations = 0;
  std::uint64_t retained = 0;  // written bytes not yet acknowledged by the peer's application
  // The AEAD sealing the session while it is established ("AES-256-GCM" or
  // "XChaCha20-Poly1305"); empty for a session that is not encrypted, or once it has ended.
  std::string cipher;
};

class Context;

// One session, seen from the loop thread. Every member must be called on the loop thread (see
// the threading model above). A default-constructed Connection is empty: calls fail with kClosed.
class Connection {
 public:
  // Callbacks, all on the loop thread. Unset ones are skipped. Set them in the connect()/accept
  // call's continuation: no callback fires before control returns to the loop.
  struct Handlers {
    // The handshake completed (client only: a server connection reaches on_accept already
    // established, so this never fires for it).
    std::function<void()> established;
    // New bytes (or the end of stream) arrived. Edge-triggered: read until kWouldBlock (or 0).
    std::function<void()> readable;
    // Room appeared after a write() returned kWouldBlock or accepted less than offered.
    std::function<void()> writable;
    // The path died; the session waits for the client to come back (the client reconnects on
    // its own). `reason` is for humans.
    std::function<void(const std::string& reason)> path_lost;
    // The session moved to a new path; `took` is the time since the old one was lost (zero for a
    // make-before-break move).
    std::function<void(std::chrono::nanoseconds took)> migrated;
    // The session ended. Last callback of this connection.
    std::function<void(const CloseInfo&)> closed;
  };

  Connection();
  ~Connection();
  Connection(const Connection&);
  Connection& operator=(const Connection&);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;

  // Replaces the callbacks.
  void set_handlers(Handlers h);

  // Copies up to buf.size() received bytes into `buf`. Returns the number copied (> 0), 0 at the
  // end of the stream (the peer shut down its side and everything before it was read), or
  // kWouldBlock (nothing now: `readable` fires later), kClosed (the session ended; after an abort
  // unread bytes are gone; see the `closed` callback for why).
  Result<std::size_t> read(std::span<std::uint8_t> buf);
  // Copies up to data.size() bytes into the session's retention buffer (they are sent, and
  // resent after a migration, from there). Returns how many were taken (> 0; may be fewer than
  // offered: flow control), or kWouldBlock (buffer full: `writable` fires later), kShutdown,
  // kClosed. Bytes may be written before the handshake completes; they go out after it.
  Result<std::size_t> write(std::span<const std::uint8_t> data);
  // Half-close: the peer reads end of stream after everything written so far. Reading goes on.
  // Survives migrations. Idempotent.
  void shutdown();
  // Graceful end from this side: shutdown(), and received bytes are discarded from now on (no
  // more `readable`). The session ends cleanly once the peer shuts down its side too; `closed`
  // still fires. Idempotent.
  void close();
  // Ends the session at once: the peer sees an abort carrying `reason`, unsent and unread bytes
  // are dropped, `closed` fires with clean == false. No-op on an ended session.
  void abort(const std::string& reason = "aborted by the application");
  // Client only: move to a new path now (e.g. your own network hook knows better). No-op on a
  // server connection.
  void migrate_now();

  bool established() const;  // the handshake completed at some point
  bool ended() const;        // `closed` has fired (or the Context is gone)
  Stats stats() const;
  // A short name for logs: "c1 127.0.0.1:7000" / "s3 192.0.2.7:51234".
  std::string name() const;
  explicit operator bool() const { return static_cast<bool>(state_); }

  struct State;  // implementation (src/lib)

 private:
  friend class Context;
  explicit Connection(std::shared_ptr<State> s);
  std::shared_ptr<State> state_;
};

// A listening socket accepting roam sessions. Lives as long as its Context.
class Listener {
 public:
  Listener() = default;
  // The address actually bound, "ADDR:PORT" (port 0 resolved).
  std::string address() const;
  std::uint16_t port() const;

 private:
  friend class Context;
  std::string address_;
  std::uint16_t port_ = 0;
};

class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Starts a client session to a roam server at "HOST:PORT" or "[v6]:PORT" (names are resolved
  // again on every reconnect). Returns at once; `established` or `closed` (e.g. connection
  // refused: kAborted with the reason) follows on the loop. Errors now: kInvalidArgument.
  Result<Connection> connect(std::string_view host_port, const ConnectOptions& opts = {});
  // Listens at "ADDR:PORT" (port 0: any) and calls `on_accept` on the loop thread with each
  // session once its handshake completed; set its handlers there. A connection nobody keeps a
  // handle to is closed gracefully. Errors: kInvalidArgument, kSystem (bind failed).
  Result<Listener> listen(std::string_view addr_port, std::function<void(Connection)> on_accept,
                          const ListenOptions& opts = {});

  // Runs the loop on this thread until stop(). Must not be called while it already runs.
  void run();
  // Runs the loop on a background thread owned by the Context. Error kSystem if it cannot.
  Result<void> start();
  // Thread-safe. Makes run() return (or the background thread end, which stop() then joins,
  // unless called on the loop thread itself). Sessions stay as they are until the Context dies.
  void stop();
  // Thread-safe: runs `fn` on the loop thread at its next iteration. Functions posted to a loop
  // that never runs again are destroyed with the Context without running.
  void post(std::function<void()> fn);
  // True on the loop thread while it runs, and on any thread while it does not.
  bool on_loop_thread() const;
  // True while the loop runs (on whichever thread).
  bool running() const;

  struct Impl;  // implementation (src/lib)
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A blocking view of a client session, for threads other than the loop thread, over a Context
// running on its background thread (Context::start). Destroy Streams before their Context stops.
class Stream {
 public:
  // Connects and blocks until the handshake completed (or the session failed: kAborted with the
  // reason, e.g. connection refused) or `timeout` passed (kTimeout; the attempt is aborted).
  static Result<Stream> connect(Context& ctx, std::string_view host_port,
                                const ConnectOptions& opts = {},
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  // close()s the session if it is still open (without waiting).
  ~Stream();

  // Blocks until at least one byte is available and returns how many were copied, 0 at the end
  // of the stream, or kClosed (aborted: the error says why) — never kWouldBlock.
  Result<std::size_t> read(std::span<std::uint8_t> buf);
  // Blocks until all of `data` is in the session's retention buffer (flow control may make this
  // wait for the peer to read). Errors: kShutdown, kClosed (with the abort reason).
  Result<void> write_all(std::span<const std::uint8_t> data);
  void shutdown();
  void close();
  void abort(const std::string& reason = "aborted by the application");
  // Blocks until the session ended and says how.
  CloseInfo wait_closed();
  // Blocks until the session has moved to a new path at least `at_least` times in all, or ended;
  // returns the number of migrations so far.
  std::uint64_t wait_migrations(std::uint64_t at_least);
  Stats stats();

  struct State;  // implementation (src/lib)

 private:
  explicit Stream(std::shared_ptr<State> s);
  std::shared_ptr<State> state_;
};

// Logging goes through spdlog's default logger (stderr). Levels as in `roam --log-level`.
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };
void set_log_level(LogLevel level);

// "0.1.0"
const char* version();

}  // namespace roam
