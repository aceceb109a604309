// libroam's public API (include/roam/roam.hpp), in process on 127.0.0.1: a callback-API server
// on one Context, blocking Streams on another, and a CutRelay between them where paths must break;
// encryption, server keys and key pinning (SessionOptions::encrypt, ListenOptions::key_file,
// ConnectOptions::known_hosts).
#include <gtest/gtest.h>

#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <roam/roam.hpp>
#include <sodium.h>
#include <sstream>

#include "harness.hpp"
#include "key_file.hpp"

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
  explicit ReplyServer(roam::ListenOptions opts = {}, bool keep_handle = true,
                       const std::string& address = "127.0.0.1:0") {
    auto l = ctx_.listen(
        address,
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

// A ReplyServer with `lo`, a relay in front of it and a Stream (with `co`) through the relay that
// sends 4 MiB in four parts with a cut of the relay between parts; checks the echo byte for byte,
// the clean end and the migrations on both sides.
void echo_through_three_cuts(roam::ListenOptions lo, roam::ConnectOptions co) {
  lo.heartbeat = co.heartbeat = 200ms;
  co.watch_network = false;
  ReplyServer server(lo);
  RelayThread relay(server.port());
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
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

TEST(Library, SurvivesCutsWithEveryByteInOrderAndReportsMigrations) {
  echo_through_three_cuts({}, {});
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

// --- encryption and server keys ---------------------------------------------------------------

// A fresh directory under /tmp, removed with its files.
struct TmpDir {
  std::filesystem::path path;
  TmpDir() {
    char tmpl[] = "/tmp/roam-lib-test-XXXXXX";
    if (::mkdtemp(tmpl)) path = tmpl;
  }
  ~TmpDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LibraryEncrypt, EncryptedSignedSessionSurvivesCutsWithEveryByteInOrder) {
  TmpDir dir;
  ASSERT_FALSE(dir.path.empty());
  roam::ListenOptions lo;
  lo.encrypt = true;  // requires it: a session that works is an encrypted one
  lo.key_file = dir.path / "server_key";
  const std::string pub = roam::itest::write_server_key(lo.key_file);
  roam::ConnectOptions co;
  co.encrypt = true;
  co.known_hosts = dir.path / "known_hosts";
  echo_through_three_cuts(lo, co);
  // The key was pinned under the address the client named (the relay's).
  const std::string pinned = slurp(co.known_hosts);
  EXPECT_EQ(pinned.rfind("127.0.0.1:", 0), 0u) << pinned;
  EXPECT_NE(pinned.find(" " + pub + "\n"), std::string::npos) << pinned;
}

TEST(LibraryEncrypt, MismatchedEncryptionIsRefusedWithTheReason) {
  roam::ListenOptions lo;
  lo.encrypt = true;
  ReplyServer server(lo);
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  auto plain = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, roam::Errc::kAborted) << plain.error().message;
  EXPECT_NE(plain.error().message.find("this server requires encryption"), std::string::npos)
      << plain.error().message;
  // A server without `encrypt` encrypts for a client that asks (it is not refused).
  ReplyServer any;
  roam::ConnectOptions co;
  co.encrypt = true;
  auto s = roam::Stream::connect(ctx, "127.0.0.1:" + std::to_string(any.port()), co);
  ASSERT_TRUE(s) << s.error().message;
  const auto data = pattern(100000, 5);
  EXPECT_EQ(round_trip(*s, data), data);
  EXPECT_TRUE(s->wait_closed().clean);
}

// The cipher option is honoured and Stats::cipher names what seals the session (read while it is
// established: a session that has ended reports none).
TEST(LibraryEncrypt, CipherChoiceIsHonouredAndReported) {
  ReplyServer server;  // default options: encrypts for a client that asks, cipher auto
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  const std::string addr = "127.0.0.1:" + std::to_string(server.port());
  const auto data = pattern(10000, 7);
  const auto check = [&](const roam::ConnectOptions& co, const std::string& want) {
    auto s = roam::Stream::connect(ctx, addr, co);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->stats().cipher, want);
    EXPECT_EQ(round_trip(*s, data), data);
  };
  check(roam::ConnectOptions{}, "");
  roam::ConnectOptions xchacha;
  xchacha.encrypt = true;
  xchacha.cipher = roam::Cipher::kXChaCha20Poly1305;
  check(xchacha, "XChaCha20-Poly1305");
  roam::ConnectOptions any;
  any.encrypt = true;
  check(any, crypto_aead_aes256gcm_is_available() ? "AES-256-GCM" : "XChaCha20-Poly1305");
}

TEST(LibraryEncrypt, FirstUsePinsTheServerKeyAndAChangedKeyIsRefused) {
  TmpDir dir;
  ASSERT_FALSE(dir.path.empty());
  const auto k1 = dir.path / "k1", k2 = dir.path / "k2";
  const std::string pub1 = roam::itest::write_server_key(k1);
  const std::string pub2 = roam::itest::write_server_key(k2);
  roam::ConnectOptions co;
  co.encrypt = true;
  co.known_hosts = dir.path / "known_hosts";
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  const auto data = pattern(1000, 6);
  std::uint16_t port = 0;
  std::string addr;
  {
    roam::ListenOptions lo;
    lo.key_file = k1;
    ReplyServer first(lo);
    port = first.port();
    addr = "127.0.0.1:" + std::to_string(port);
    auto s = roam::Stream::connect(ctx, addr, co);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(round_trip(*s, data), data);
    EXPECT_TRUE(s->wait_closed().clean);
  }
  EXPECT_EQ(slurp(co.known_hosts), addr + " " + pub1 + "\n");

  // Another key at the same address: refused before any byte of the session, file unchanged.
  roam::ListenOptions lo2;
  lo2.key_file = k2;
  ReplyServer second(lo2, true, addr);
  ASSERT_EQ(second.port(), port);
  auto s = roam::Stream::connect(ctx, addr, co);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, roam::Errc::kCrypto) << s.error().message;
  EXPECT_NE(s.error().message.find("server key changed"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(pub2), std::string::npos) << s.error().message;
  EXPECT_EQ(slurp(co.known_hosts), addr + " " + pub1 + "\n");
  // Without known_hosts nothing is checked (and nothing written).
  roam::ConnectOptions unpinned;
  auto u = roam::Stream::connect(ctx, addr, unpinned);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(round_trip(*u, data), data);
}

TEST(LibraryEncrypt, KeyFileProblemsAreRejectedByListen) {
  TmpDir dir;
  ASSERT_FALSE(dir.path.empty());
  roam::Context ctx;
  roam::ListenOptions lo;
  lo.key_file = dir.path / "missing";
  auto missing = ctx.listen("127.0.0.1:0", [](roam::Connection) {}, lo);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, roam::Errc::kInvalidArgument);
  lo.key_file = dir.path / "k";
  roam::itest::write_server_key(lo.key_file);
  std::filesystem::permissions(lo.key_file, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto readable = ctx.listen("127.0.0.1:0", [](roam::Connection) {}, lo);
  ASSERT_FALSE(readable);
  EXPECT_EQ(readable.error().code, roam::Errc::kInvalidArgument);
  EXPECT_NE(readable.error().message.find("chmod 600"), std::string::npos)
      << readable.error().message;
}

}  // namespace
