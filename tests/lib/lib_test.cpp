// libroam's public API (include/roam/roam.hpp), in process on 127.0.0.1: a callback-API server
// on one Context, blocking Streams on another, and a CutRelay between them where paths must break.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <numeric>
#include <roam/roam.hpp>

#include "harness.hpp"

namespace {

using namespace std::chrono_literals;
using roam::itest::DeadPort;
using roam::itest::RelayThread;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint8_t> v(n);
  roam::itest::PatternStream(seed).fill(v.data(), n);
  return v;
}

// A server on its own background Context that reads each session to its end, then answers with
// everything it read (a "reply after EOF" service: exercises half-close in both directions) and
// shuts down. It records the session events it saw.
class ReplyServer {
 public:
  explicit ReplyServer(roam::ListenOptions opts = {}, bool keep_handle = true) {
    auto l = ctx_.listen(
        "127.0.0.1:0",
        [this, keep_handle](roam::Connection c) {
          if (!keep_handle) return;  // dropping the handle closes the session gracefully
          auto got = std::make_shared<std::vector<std::uint8_t>>();
          auto sent = std::make_shared<std::size_t>(0);
          auto eof = std::make_shared<bool>(false);
          roam::Connection* conn = &conns_.emplace_back(std::move(c));
          auto pump = [this, conn, got, sent, eof] {
            std::uint8_t buf[16384];
            while (!*eof) {
              auto r = conn->read(buf);
              if (!r) return;
              if (*r == 0) *eof = true;
              got->insert(got->end(), buf, buf + *r);
            }
            while (*sent < got->size()) {
              auto w = conn->write(std::span(*got).subspan(*sent));
              if (!w) return;
              *sent += *w;
            }
            conn->shutdown();
          };
          roam::Connection::Handlers h;
          h.readable = pump;
          h.writable = pump;
          h.path_lost = [this](const std::string&) { ++path_lost_; };
          h.migrated = [this](std::chrono::nanoseconds) { ++migrated_; };
          h.closed = [this](const roam::CloseInfo& info) {
            std::lock_guard<std::mutex> lk(mu_);
            closed_.push_back(info);
            cv_.notify_all();
          };
          conn->set_handlers(std::move(h));
          pump();
        },
        opts);
    EXPECT_TRUE(l.has_value()) << l.error().message;
    if (l) port_ = l->port();
    EXPECT_TRUE(ctx_.start().has_value());
  }
  ~ReplyServer() { ctx_.stop(); }

  std::uint16_t port() const { return port_; }
  // Waits until `n` sessions ended; returns their CloseInfos.
  std::vector<roam::CloseInfo> wait_closed(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, 30s, [&] { return closed_.size() >= n; });
    return closed_;
  }
  int path_lost() const { return path_lost_; }
  int migrated() const { return migrated_; }

 private:
  roam::Context ctx_;
  std::uint16_t port_ = 0;
  std::deque<roam::Connection> conns_;  // loop thread only
  std::atomic<int> path_lost_{0}, migrated_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<roam::CloseInfo> closed_;
};

// Writes `data`, half-closes, reads the whole reply.
std::vector<std::uint8_t> round_trip(roam::Stream& s, const std::vector<std::uint8_t>& data) {
  EXPECT_TRUE(s.write_all(data).has_value());
  s.shutdown();
  std::vector<std::uint8_t> reply;
  std::uint8_t buf[65536];
  for (;;) {
    auto r = s.read(buf);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    if (!r || *r == 0) break;
    reply.insert(reply.end(), buf, buf + *r);
  }
  return reply;
}

TEST(Library, HalfCloseInBothDirectionsEndsCleanly) {
  ReplyServer server;
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(s) << s.error().message;
  const auto data = pattern(3 << 20, 1);
  EXPECT_EQ(round_trip(*s, data), data);
  const roam::CloseInfo info = s->wait_closed();
  EXPECT_TRUE(info.clean) << info.error.message;
  EXPECT_EQ(info.bytes_sent, data.size());
  EXPECT_EQ(info.bytes_received, data.size());
  const auto server_side = server.wait_closed(1);
  ASSERT_EQ(server_side.size(), 1u);
  EXPECT_TRUE(server_side[0].clean);
  EXPECT_EQ(server_side[0].bytes_received, data.size());
  // A clean end reads as end of stream from then on, and writing says why it cannot.
  std::uint8_t b[1];
  EXPECT_EQ(s->read(b).value_or(99), 0u);
  auto w = s->write_all(data);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, roam::Errc::kShutdown);
}

TEST(Library, SurvivesCutsWithEveryByteInOrderAndReportsMigrations) {
  roam::ListenOptions lo;
  lo.heartbeat = 200ms;
  ReplyServer server(lo);
  RelayThread relay(server.port());
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  roam::ConnectOptions co;
  co.heartbeat = 200ms;
  co.watch_network = false;
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(relay.port()), co);
  ASSERT_TRUE(s) << s.error().message;
  const auto data = pattern(4 << 20, 2);
  const std::size_t chunk = data.size() / 4;
  for (int k = 0; k < 4; ++k) {
    ASSERT_TRUE(s->write_all(std::span(data).subspan(k * chunk, chunk)));
    if (k == 3) break;
    ASSERT_GE(relay.cut(), 1u);
    EXPECT_GE(s->wait_migrations(k + 1), static_cast<std::uint64_t>(k + 1));
  }
  s->shutdown();
  std::vector<std::uint8_t> reply;
  std::uint8_t buf[65536];
  for (;;) {
    auto r = s->read(buf);
    ASSERT_TRUE(r) << r.error().message;
    if (*r == 0) break;
    reply.insert(reply.end(), buf, buf + *r);
  }
  EXPECT_TRUE(reply == data) << "reply of " << reply.size() << " bytes differs";
  const roam::CloseInfo info = s->wait_closed();
  EXPECT_TRUE(info.clean) << info.error.message;
  EXPECT_GE(info.migrations, 3u);
  server.wait_closed(1);
  EXPECT_GE(server.migrated(), 3);
  EXPECT_GE(server.path_lost(), 1);  // the server saw its side of at least one cut
}

TEST(Library, ConnectionRefusedIsAnErrorValue) {
  DeadPort dead;
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(dead.port()));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, roam::Errc::kAborted);
  EXPECT_NE(s.error().message.find("refused"), std::string::npos) << s.error().message;
}

TEST(Library, BadArgumentsAreRejectedAtOnce) {
  roam::Context ctx;
  auto bad_addr = ctx.connect("no-port-here");
  ASSERT_FALSE(bad_addr);
  EXPECT_EQ(bad_addr.error().code, roam::Errc::kInvalidArgument);
  roam::ConnectOptions co;
  co.heartbeat = 1ms;
  auto bad_hb = ctx.connect("127.0.0.1:9", co);
  ASSERT_FALSE(bad_hb);
  EXPECT_EQ(bad_hb.error().code, roam::Errc::kInvalidArgument);
  auto bad_listen = ctx.listen("256.1.1.1:0", [](roam::Connection) {});
  ASSERT_FALSE(bad_listen);
  // Stream needs a loop on a background thread.
  auto no_loop = roam::Stream::connect(ctx, "127.0.0.1:9");
  ASSERT_FALSE(no_loop);
  EXPECT_EQ(no_loop.error().code, roam::Errc::kInvalidArgument);
  EXPECT_STREQ(roam::errc_name(roam::Errc::kBadMac), "bad-mac");
  EXPECT_STREQ(roam::errc_name(roam::Errc::kWouldBlock), "would-block");
}

TEST(Library, DroppedServerHandleClosesGracefully) {
  ReplyServer server({}, /*keep_handle=*/false);
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(s) << s.error().message;
  std::uint8_t buf[16];
  auto r = s->read(buf);  // the server's side shut down: end of stream, not an abort
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 0u);
  const auto data = pattern(100000, 3);
  ASSERT_TRUE(s->write_all(data));  // it still reads (and discards) what we send
  s->shutdown();
  EXPECT_TRUE(s->wait_closed().clean);
}

TEST(Library, AbortReasonReachesThePeer) {
  // A server whose application aborts every session with a reason as soon as it arrives.
  roam::Context sctx;
  std::vector<roam::Connection> keep;
  auto l = sctx.listen("127.0.0.1:0", [&](roam::Connection c) {
    c.abort("no room at the inn");
    keep.push_back(c);
  });
  ASSERT_TRUE(l);
  ASSERT_TRUE(sctx.start());
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(l->port()));
  if (!s) {  // the abort may beat the handshake's last step to the client
    EXPECT_NE(s.error().message.find("no room at the inn"), std::string::npos) << s.error().message;
    return;
  }
  std::uint8_t buf[16];
  auto r = s->read(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, roam::Errc::kClosed);
  const roam::CloseInfo info = s->wait_closed();
  EXPECT_FALSE(info.clean);
  EXPECT_EQ(info.error.code, roam::Errc::kAborted);
  EXPECT_NE(info.error.message.find("no room at the inn"), std::string::npos) << info.error.message;
}

TEST(Library, CallbackApiOnTheLoopThreadWithPost) {
  // The non-blocking API driven from posted functions and callbacks only (no Stream).
  ReplyServer server;
  roam::Context ctx;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool established_seen = false;
  std::vector<std::uint8_t> reply;
  roam::Connection conn;
  const auto data = pattern(200000, 4);
  std::size_t sent = 0;
  ctx.post([&] {
    ASSERT_TRUE(ctx.on_loop_thread());
    auto c = ctx.connect("127.0.0.1:" + std::to_string(server.port()));
    ASSERT_TRUE(c);
    conn = *c;
    auto push = [&] {
      while (sent < data.size()) {
        auto w = conn.write(std::span(data).subspan(sent));
        if (!w) return;
        sent += *w;
      }
      conn.shutdown();
    };
    roam::Connection::Handlers h;
    h.established = [&] { established_seen = true; };
    h.writable = push;
    h.readable = [&] {
      std::uint8_t buf[8192];
      for (;;) {
        auto r = conn.read(buf);
        if (!r || *r == 0) return;
        reply.insert(reply.end(), buf, buf + *r);
      }
    };
    h.closed = [&](const roam::CloseInfo&) {
      std::lock_guard<std::mutex> lk(mu);
      done = true;
      cv.notify_all();
    };
    conn.set_handlers(std::move(h));
    push();  // bytes may be written before the handshake completes
  });
  ASSERT_TRUE(ctx.start());
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 30s, [&] { return done; }));
  }
  ctx.stop();  // joins the loop thread: its state is ours to read now
  EXPECT_TRUE(established_seen);
  EXPECT_TRUE(reply == data);
  EXPECT_TRUE(conn.ended());
  EXPECT_EQ(conn.stats().bytes_sent, data.size());
}

}  // namespace
