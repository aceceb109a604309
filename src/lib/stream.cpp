// libroam: the blocking Stream over a Context's background loop.
//
// Theory of operation. Every Stream call runs a small task on the loop thread (post + wait for
// its result) that tries the non-blocking Connection call once. When that says kWouldBlock, the
// caller sleeps on a condition variable until the loop reports progress in that direction: the
// `readable`/`writable`/`closed` callbacks bump a per-direction counter under the mutex. The task
// records the counter's value at the moment it tried, so an event that lands between the try and
// the wait is never missed. Bytes are copied straight between the caller's buffer and the
// session's rings, on the loop thread, while the caller waits.
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>

#include "lib/internal.hpp"

namespace roam {

struct Stream::State {
  Context* ctx = nullptr;
  Connection conn;  // touched only on the loop thread
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t read_seq = 0;
  std::uint64_t write_seq = 0;
  bool established = false;
  std::uint64_t migrations = 0;
  std::optional<CloseInfo> closed;

  // Runs `fn` on the loop thread and waits for it.
  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    if (ctx->on_loop_thread()) {
      std::fprintf(stderr, "libroam: Stream used on the loop thread (use Connection there)\n");
      std::abort();
    }
    std::promise<decltype(fn())> done;
    auto result = done.get_future();
    ctx->post([&] {
      if constexpr (std::is_void_v<decltype(fn())>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return result.get();
  }

  void bump(bool read_side, bool write_side) {
    std::lock_guard<std::mutex> lk(mu);
    if (read_side) ++read_seq;
    if (write_side) ++write_seq;
    cv.notify_all();
  }

  // Waits until the counter `seq` moved past `seen` (or the session closed).
  void wait_past(const std::uint64_t& seq, std::uint64_t seen) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return seq != seen || closed.has_value(); });
  }
};

Stream::Stream(std::shared_ptr<State> s) : state_(std::move(s)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;

Stream::~Stream() {
  if (!state_) return;
  // The Connection must be released on the loop thread (its last handle closes the session).
  auto s = std::move(state_);
  s->ctx->post([s] { s->conn = Connection(); });
}

Result<Stream> Stream::connect(Context& ctx, std::string_view host_port, const ConnectOptions& opts,
                               std::chrono::milliseconds timeout) {
  if (!ctx.running() || ctx.on_loop_thread())
    return tl::unexpected(Error{Errc::kInvalidArgument,
                                "Stream needs a Context running on its background thread "
                                "(Context::start) and must not be used on that thread"});
  auto st = std::make_shared<State>();
  st->ctx = &ctx;
  State* raw = st.get();
  auto made = st->call([&]() -> Result<void> {
    auto c = ctx.connect(host_port, opts);
    if (!c) return tl::unexpected(c.error());
    Connection::Handlers h;
    // The handlers run on the loop thread and hold the state only weakly: the Stream owns it.
    std::weak_ptr<State> weak = st;
    h.established = [weak] {
      if (auto s = weak.lock()) {
        std::lock_guard<std::mutex> lk(s->mu);
        s->established = true;
        s->cv.notify_all();
      }
    };
    h.readable = [weak] {
      if (auto s = weak.lock()) s->bump(true, false);
    };
    h.writable = [weak] {
      if (auto s = weak.lock()) s->bump(false, true);
    };
    h.migrated = [weak](std::chrono::nanoseconds) {
      if (auto s = weak.lock()) {
        std::lock_guard<std::mutex> lk(s->mu);
        ++s->migrations;
        s->cv.notify_all();
      }
    };
    h.closed = [weak](const CloseInfo& info) {
      if (auto s = weak.lock()) {
        std::lock_guard<std::mutex> lk(s->mu);
        s->closed = info;
        s->cv.notify_all();
      }
    };
    c->set_handlers(std::move(h));
    raw->conn = std::move(*c);
    return {};
  });
  if (!made) return tl::unexpected(made.error());
  std::unique_lock<std::mutex> lk(st->mu);
  const bool done = st->cv.wait_for(lk, timeout, [&] { return st->established || st->closed; });
  if (st->established) {
    lk.unlock();
    return Stream(std::move(st));
  }
  Error err = done ? st->closed->error
                   : Error{Errc::kTimeout, "no session within " +
                                               std::to_string(timeout.count()) + " ms"};
  lk.unlock();
  if (!done) st->call([&] { raw->conn.abort("connect timed out"); });
  { Stream release(std::move(st)); }  // releases the connection on the loop
  return tl::unexpected(std::move(err));
}

Result<std::size_t> Stream::read(std::span<std::uint8_t> buf) {
  State& s = *state_;
  for (;;) {
    std::uint64_t seen = 0;
    auto r = s.call([&] {
      std::lock_guard<std::mutex> lk(s.mu);
      seen = s.read_seq;
      return s.conn.read(buf);
    });
    if (r || r.error().code != Errc::kWouldBlock) return r;
    s.wait_past(s.read_seq, seen);
  }
}

Result<void> Stream::write_all(std::span<const std::uint8_t> data) {
  State& s = *state_;
  while (!data.empty()) {
    std::uint64_t seen = 0;
    auto r = s.call([&] {
      std::lock_guard<std::mutex> lk(s.mu);
      seen = s.write_seq;
      return s.conn.write(data);
    });
    if (r) {
      data = data.subspan(*r);
      continue;
    }
    if (r.error().code != Errc::kWouldBlock) return tl::unexpected(r.error());
    s.wait_past(s.write_seq, seen);
  }
  return {};
}

void Stream::shutdown() {
  State& s = *state_;
  s.call([&] { s.conn.shutdown(); });
}

void Stream::close() {
  State& s = *state_;
  s.call([&] { s.conn.close(); });
}

void Stream::abort(const std::string& reason) {
  State& s = *state_;
  s.call([&] { s.conn.abort(reason); });
}

CloseInfo Stream::wait_closed() {
  State& s = *state_;
  std::unique_lock<std::mutex> lk(s.mu);
  s.cv.wait(lk, [&] { return s.closed.has_value(); });
  return *s.closed;
}

std::uint64_t Stream::wait_migrations(std::uint64_t at_least) {
  State& s = *state_;
  std::unique_lock<std::mutex> lk(s.mu);
  s.cv.wait(lk, [&] { return s.migrations >= at_least || s.closed.has_value(); });
  return s.migrations;
}

Stats Stream::stats() {
  State& s = *state_;
  return s.call([&] { return s.conn.stats(); });
}

}  // namespace roam
