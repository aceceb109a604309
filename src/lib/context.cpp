// libroam: Context and Connection over the I/O shell (see internal.hpp for the theory).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/crypto/crypto.hpp"
#include "io/known_hosts.hpp"
#include "lib/internal.hpp"

namespace roam {

// The public codes are the core's, numerically; the library's own start at 100.
static_assert(static_cast<int>(Errc::kMalformed) == static_cast<int>(core::Errc::kMalformed));
static_assert(static_cast<int>(Errc::kLimit) == static_cast<int>(core::Errc::kLimit));

namespace {

Error lib_error(Errc code, std::string message) { return Error{code, std::move(message)}; }
tl::unexpected<Error> lib_fail(Errc code, std::string message) {
  return tl::unexpected<Error>(lib_error(code, std::move(message)));
}

Error from_core(const core::Error& e) {
  if (e.code == core::Errc::kNeedMore) return lib_error(Errc::kMalformed, e.detail);
  return lib_error(static_cast<Errc>(e.code), e.detail);
}

// Validates the shared options (the ranges of the `roam` command's flags).
Result<core::SessionConfig> session_config(const SessionOptions& o) {
  if (o.wait < std::chrono::seconds(1)) return lib_fail(Errc::kInvalidArgument, "wait: at least 1s");
  if (o.heartbeat < std::chrono::milliseconds(50) || o.heartbeat > std::chrono::minutes(5))
    return lib_fail(Errc::kInvalidArgument, "heartbeat: between 50ms and 5m");
  if (o.buffer < 4096 || o.buffer > (std::uint64_t{4} << 30))
    return lib_fail(Errc::kInvalidArgument, "buffer: between 4K and 4G");
  core::SessionConfig cfg;
  cfg.handshake.wait = o.wait;
  cfg.handshake.buffer_cap = o.buffer;
  cfg.heartbeat = o.heartbeat;
  cfg.handshake.require_encrypt = o.encrypt;  // client: offer and require; server: require
  cfg.handshake.aes_gcm = o.cipher == Cipher::kAuto;
  return cfg;
}

Result<io::Endpoint> endpoint(std::string_view text, bool listener) {
  auto ep = io::parse_endpoint(text, listener ? "0.0.0.0" : "", listener);
  if (!ep) return lib_fail(Errc::kInvalidArgument, std::string(text) + ": " + ep.error().detail);
  return *ep;
}

}  // namespace

void require_loop_thread(const Context::Impl& ctx, const char* what) {
  if (ctx.on_loop_thread()) return;
  std::fprintf(stderr,
               "libroam: %s called off the loop thread while the loop runs (use Context::post "
               "or Stream)\n",
               what);
  std::abort();
}

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kWouldBlock: return "would-block";
    case Errc::kClosed: return "closed";
    case Errc::kShutdown: return "shutdown";
    case Errc::kInvalidArgument: return "invalid-argument";
    case Errc::kSystem: return "system";
    default: return core::errc_name(static_cast<core::Errc>(code));
  }
}

const char* version() { return "0.1.0"; }

void set_log_level(LogLevel level) {
  static constexpr spdlog::level::level_enum kLevels[] = {
      spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
      spdlog::level::warn,  spdlog::level::err,   spdlog::level::off};
  spdlog::set_level(kLevels[static_cast<int>(level)]);
}

// --- Connection::State ---------------------------------------------------------------------

void Connection::State::bind(io::SessionDriver& d, bool is_client) {
  driver = &d;
  client = is_client;
  established = !is_client;
  name = d.name();
  // The observer holds the state alive for as long as the driver lives.
  auto self = shared_from_this();
  io::SessionDriver::Observer o;
  o.on_event = [self](const core::Event& e) { self->on_event(e); };
  o.on_synced = [self] { self->on_synced(); };
  o.on_gone = [self] { self->on_gone(); };
  d.set_observer(std::move(o));
}

void Connection::State::kick() {
  if (kick_pending || !driver) return;
  kick_pending = true;
  ctx->loop.at(ctx->loop.now(), [weak = weak_from_this()] {
    auto s = weak.lock();
    if (!s) return;
    s->kick_pending = false;
    if (s->driver) s->driver->sync();
  });
}

void Connection::State::on_event(const core::Event& e) {
  const auto h = handlers;  // a callback may replace the handlers
  const bool call = callbacks_allowed();
  switch (e.type) {
    case core::EventType::kEstablished:
      if (established) return;  // a server connection is handed over established
      established = true;
      if (call && h->established) h->established();
      return;
    case core::EventType::kPathLost:
      if (call && h->path_lost) h->path_lost(e.error.detail);
      return;
    case core::EventType::kMigrated:
      if (call && h->migrated) h->migrated(e.took);
      return;
    case core::EventType::kClosed: {
      if (ended) return;
      ended = true;
      const core::Session& s = driver->session();
      close_info.clean = e.clean;
      close_info.error = e.clean ? lib_error(Errc::kClosed, "ended cleanly") : from_core(e.error);
      close_info.bytes_sent = s.bytes_sent();
      close_info.bytes_received = delivered;
      close_info.migrations = s.migrations();
      if (call && h->closed) h->closed(close_info);
      return;
    }
  }
}

void Connection::State::on_synced() {
  if (!driver || ended) return;
  core::Session& s = driver->session();
  if (discard) drop_received();
  const auto h = handlers;
  const bool call = callbacks_allowed();
  if (!discard && s.bytes_received() != notified_rx) {
    notified_rx = s.bytes_received();
    if (call && h->readable) h->readable();
  }
  if (want_writable && driver && s.can_write()) {
    want_writable = false;
    if (call && h->writable) h->writable();
  }
}

void Connection::State::on_gone() {
  driver = nullptr;
  if (!ended) {
    ended = true;
    close_info.clean = false;
    close_info.error = lib_error(Errc::kClosed, "the context was destroyed");
  }
}

void Connection::State::drop_received() {
  core::Session& s = driver->session();
  const std::size_t n = s.readable().size();
  if (n > 0) s.consume(n, ctx->loop.now());
  delivered += n;
  // Kick only for progress: the end of stream stays "at EOF" once consumed, and a kick for it
  // on every sync spun the loop until the session ended (a closed stream whose peer had ended
  // first but not yet closed the session hung the context's destructor).
  bool took_eof = false;
  if (s.at_eof() && !eof_dropped) {
    s.consume_eof(ctx->loop.now());
    eof_dropped = took_eof = true;
  }
  if (n > 0 || took_eof) kick();
}

void Connection::State::close() {
  if (!driver || ended) return;
  if (!shut) {
    shut = true;
    driver->session().shutdown_write();
  }
  discard = true;
  drop_received();
  kick();
}

// --- Connection ----------------------------------------------------------------------------

Connection::Connection() = default;

Connection::Connection(std::shared_ptr<State> s) : state_(std::move(s)) {
  if (state_) ++state_->user_handles;
}

Connection::~Connection() {
  if (!state_ || --state_->user_handles > 0) return;
  // The last handle: end the session gracefully, on the loop thread.
  auto s = std::move(state_);
  if (!s->ctx || s->ended) return;
  if (s->ctx->on_loop_thread())
    s->close();
  else
    s->ctx->loop.post([s] { s->close(); });
}

Connection::Connection(const Connection& o) : state_(o.state_) {
  if (state_) ++state_->user_handles;
}

Connection& Connection::operator=(const Connection& o) {
  if (this != &o) {
    Connection copy(o);
    *this = std::move(copy);
  }
  return *this;
}

Connection::Connection(Connection&& o) noexcept : state_(std::move(o.state_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    Connection old(std::move(*this));  // releases our previous session, if any
    state_ = std::move(o.state_);
  }
  return *this;
}

void Connection::set_handlers(Handlers h) {
  if (!state_) return;
  if (state_->ctx) require_loop_thread(*state_->ctx, "Connection::set_handlers");
  state_->handlers = std::make_shared<Handlers>(std::move(h));
}

Result<std::size_t> Connection::read(std::span<std::uint8_t> buf) {
  if (!state_) return lib_fail(Errc::kClosed, "empty connection");
  State& st = *state_;
  if (st.ctx) require_loop_thread(*st.ctx, "Connection::read");
  if (st.eof_read) return 0;
  if (!st.driver || st.ended) {
    if (st.close_info.clean) return 0;
    return lib_fail(Errc::kClosed, st.close_info.error.message);
  }
  core::Session& s = st.driver->session();
  const core::Bytes data = s.readable();
  if (!data.empty()) {
    const std::size_t n = std::min(buf.size(), data.size());
    std::memcpy(buf.data(), data.data(), n);
    s.consume(n, st.ctx->loop.now());
    st.delivered += n;
    st.kick();
    return n;
  }
  if (s.at_eof()) {
    s.consume_eof(st.ctx->loop.now());
    st.eof_read = true;
    st.kick();
    return 0;
  }
  return lib_fail(Errc::kWouldBlock, "nothing to read yet");
}

Result<std::size_t> Connection::write(std::span<const std::uint8_t> data) {
  if (!state_) return lib_fail(Errc::kClosed, "empty connection");
  State& st = *state_;
  if (st.ctx) require_loop_thread(*st.ctx, "Connection::write");
  if (st.shut) return lib_fail(Errc::kShutdown, "write after shutdown");
  if (!st.driver || st.ended) return lib_fail(Errc::kClosed, st.close_info.error.message);
  if (data.empty()) return 0;
  const std::size_t n = st.driver->session().write(data);
  if (n < data.size()) st.want_writable = true;
  if (n == 0) return lib_fail(Errc::kWouldBlock, "retention buffer full");
  st.kick();
  return n;
}

void Connection::shutdown() {
  if (!state_ || !state_->driver || state_->ended || state_->shut) return;
  require_loop_thread(*state_->ctx, "Connection::shutdown");
  state_->shut = true;
  state_->driver->session().shutdown_write();
  state_->kick();
}

void Connection::close() {
  if (!state_ || !state_->driver) return;
  require_loop_thread(*state_->ctx, "Connection::close");
  state_->close();
}

void Connection::abort(const std::string& reason) {
  if (!state_ || !state_->driver || state_->ended) return;
  require_loop_thread(*state_->ctx, "Connection::abort");
  state_->driver->abort(reason);
  state_->kick();
}

void Connection::migrate_now() {
  if (!state_ || !state_->driver || state_->ended || !state_->client) return;
  require_loop_thread(*state_->ctx, "Connection::migrate_now");
  state_->driver->migrate_now();
  state_->kick();
}

bool Connection::established() const { return state_ && state_->established; }
bool Connection::ended() const { return !state_ || state_->ended; }
std::string Connection::name() const { return state_ ? state_->name : std::string(); }

Stats Connection::stats() const {
  Stats st;
  if (!state_) return st;
  if (state_->driver) {
    if (state_->ctx) require_loop_thread(*state_->ctx, "Connection::stats");
    const core::Session& s = state_->driver->session();
    st.bytes_sent = s.bytes_sent();
    st.bytes_received = state_->delivered;
    st.migrations = s.migrations();
    st.retained = s.retained();
    if (s.established_once() && (s.negotiated().features & core::wire::kFeatureEncrypt))
      st.cipher = core::crypto::aead_name(s.negotiated().aead);
    return st;
  }
  st.bytes_sent = state_->close_info.bytes_sent;
  st.bytes_received = state_->close_info.bytes_received;
  st.migrations = state_->close_info.migrations;
  return st;
}

// --- Listener --------------------------------------------------------------------------------

std::string Listener::address() const { return address_; }
std::uint16_t Listener::port() const { return port_; }

// --- Context -------------------------------------------------------------------------------

void Context::Impl::start_watching(io::SessionDriver& d) {
  watching.insert(&d);
  if (monitor) return;
  monitor = std::make_unique<io::NetlinkMonitor>(loop, [this] {
    const std::vector<io::SessionDriver*> all(watching.begin(), watching.end());
    for (auto* w : all)
      if (watching.count(w)) w->on_network_change();
  });
  if (auto ok = monitor->start(); !ok)
    spdlog::warn("not watching the network ({}); relying on heartbeats", ok.error().detail);
}

Context::Context() : impl_(std::make_unique<Impl>()) { impl_->loop.refresh_now(); }

Context::~Context() {
  stop();
  Impl& m = *impl_;
  m.dying = true;
  // Best effort: each open session tells its peer (CLOSE) before its sockets go.
  for (auto& [k, d] : m.clients) d->abort("the application ended the session (context destroyed)");
  for (auto& s : m.servers) s->abort_all("the application ended the session (context destroyed)");
  m.watching.clear();
  m.monitor.reset();
  m.clients.clear();
  m.servers.clear();
}

Result<Connection> Context::connect(std::string_view host_port, const ConnectOptions& opts) {
  Impl& m = *impl_;
  require_loop_thread(m, "Context::connect");
  auto ep = endpoint(host_port, false);
  if (!ep) return tl::unexpected(ep.error());
  auto cfg = session_config(opts);
  if (!cfg) return tl::unexpected(cfg.error());
  std::shared_ptr<io::ServerPin> pin;
  if (!opts.known_hosts.empty()) {
    pin = std::make_shared<io::ServerPin>(opts.known_hosts, ep->str());
    if (auto ok = pin->load(); !ok) return lib_fail(Errc::kSystem, ok.error().detail);
    *cfg = pin->apply(std::move(*cfg));
  }
  if (!m.running) m.loop.refresh_now();
  auto session = core::Session::client(*cfg, core::crypto::system_rng(), m.loop.now());
  auto state = std::make_shared<Connection::State>();
  state->ctx = &m;
  io::SessionDriver::Hooks hooks;
  hooks.on_finished = [&m](io::SessionDriver& d) {
    m.watching.erase(&d);
    m.clients.erase(&d);
  };
  io::ServerPin::watch(hooks, pin);  // pins on first use, explains a refused key change
  const std::string name = "c" + std::to_string(++m.client_counter) + " " + ep->str();
  auto driver = std::make_unique<io::SessionDriver>(m.loop, std::move(session), name,
                                                    std::move(hooks));
  io::SessionDriver& d = *driver;
  m.clients[&d] = std::move(driver);
  d.set_server(*ep);
  io::PathPolicy policy;
  policy.prefer = opts.prefer;
  policy.pin = opts.interface;
  d.set_policy(std::move(policy));
  state->bind(d, true);
  if (opts.watch_network) m.start_watching(d);
  d.start();
  state->kick();  // a connect that failed at once reports it from the loop
  return Connection(std::move(state));
}

Result<Listener> Context::listen(std::string_view addr_port,
                                 std::function<void(Connection)> on_accept,
                                 const ListenOptions& opts) {
  Impl& m = *impl_;
  require_loop_thread(m, "Context::listen");
  auto ep = endpoint(addr_port, true);
  if (!ep) return tl::unexpected(ep.error());
  auto cfg = session_config(opts);
  if (!cfg) return tl::unexpected(cfg.error());
  cfg->handshake.features |= core::wire::kFeatureEncrypt;  // encrypt whenever a client asks
  if (!opts.key_file.empty()) {
    auto kp = io::load_server_key(opts.key_file);
    if (!kp) return lib_fail(Errc::kInvalidArgument, kp.error().detail);
    cfg->handshake.identity = std::make_shared<const core::crypto::SignKeyPair>(*kp);
  }
  if (!m.running) m.loop.refresh_now();
  io::ServerConfig sc;
  sc.listen = *ep;
  sc.session = *cfg;
  sc.max_unfinished = opts.max_unfinished;
  auto accept = std::make_shared<std::function<void(Connection)>>(std::move(on_accept));
  sc.on_session = [&m, accept](io::SessionDriver& d) {
    auto state = std::make_shared<Connection::State>();
    state->ctx = &m;
    state->bind(d, false);
    if (!m.dying && *accept) (*accept)(Connection(state));
    // Nobody kept a handle: the Connection's destructor has closed it gracefully.
  };
  auto server = std::make_unique<io::Server>(m.loop, std::move(sc));
  if (auto ok = server->start(); !ok) return lib_fail(Errc::kSystem, ok.error().detail);
  Listener l;
  l.address_ = server->bound();
  const auto colon = l.address_.rfind(':');
  l.port_ = static_cast<std::uint16_t>(std::atoi(l.address_.c_str() + colon + 1));
  m.servers.push_back(std::move(server));
  return l;
}

void Context::run() {
  Impl& m = *impl_;
  m.loop_thread = std::this_thread::get_id();
  m.running = true;
  m.loop.run();
  m.running = false;
}

Result<void> Context::start() {
  Impl& m = *impl_;
  if (m.running || m.background.joinable())
    return lib_fail(Errc::kInvalidArgument, "the loop already runs");
  m.loop_thread = std::thread::id();
  m.running = true;
  try {
    m.background = std::thread([&m] {
      m.loop_thread = std::this_thread::get_id();
      m.loop.run();
      m.running = false;
    });
  } catch (const std::system_error& e) {
    m.running = false;
    return lib_fail(Errc::kSystem, std::string("cannot start the loop thread: ") + e.what());
  }
  return {};
}

void Context::stop() {
  Impl& m = *impl_;
  if (m.running) m.loop.post([&m] { m.loop.stop(); });
  if (m.background.joinable() && m.background.get_id() != std::this_thread::get_id())
    m.background.join();
}

void Context::post(std::function<void()> fn) { impl_->loop.post(std::move(fn)); }
bool Context::on_loop_thread() const { return impl_->on_loop_thread(); }
bool Context::running() const { return impl_->running; }

}  // namespace roam
