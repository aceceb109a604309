// roam echo server: the libroam callback API on the loop thread.
//
// Accepts roam sessions and sends every byte back; when a client half-closes, it half-closes too
// once everything has been echoed. Backpressure is end to end: when the session's retention
// buffer is full it stops reading until `writable` fires, so a client that does not read its
// echo eventually stops the server from reading more, and nothing grows without bound.
//
//   roam_echo_server --listen 127.0.0.1:7000
//   roam_file_client --connect 127.0.0.1:7000 --file /etc/services
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <roam/roam.hpp>

#include "example_args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: roam_echo_server --listen ADDR:PORT [options]

Echoes every roam session's bytes back to its client (libroam example).

  --listen ADDR:PORT   address to listen on (port 0: any; the bound one is printed)
  --wait DURATION      how long a session whose path is gone waits for its client (default 10m)
  --heartbeat DURATION idle heartbeat, same on both sides (default 1s)
  --encrypt            refuse clients that do not encrypt (without it, those that ask get it)
  --key FILE           server key from `roam keygen`: sign every handshake (clients pin it)
  --quiet              log only warnings and errors
  --help               this text

Prints "listening on ADDR:PORT" on stderr once it accepts sessions, then one line per session
event. SIGINT/SIGTERM end it (sessions still open are aborted).
)";

// One session's echo: read into `pending`, write it back, repeat.
struct Echo {
  roam::Connection conn;
  std::vector<std::uint8_t> pending;
  std::size_t off = 0;
  bool eof = false;

  void pump() {
    for (;;) {
      while (off < pending.size()) {
        auto w = conn.write(std::span(pending).subspan(off));
        if (!w) return;  // kWouldBlock: `writable` calls pump() again; else `closed` follows
        off += *w;
      }
      pending.clear();
      off = 0;
      if (eof) {
        conn.shutdown();
        return;
      }
      pending.resize(64 * 1024);
      auto r = conn.read(pending);
      if (!r) {  // kWouldBlock: `readable` calls pump() again
        pending.clear();
        return;
      }
      pending.resize(*r);
      if (*r == 0) eof = true;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen;
  roam::ListenOptions opts;
  roam::set_log_level(roam::LogLevel::kInfo);
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (example::common_flag(argc, argv, i, kUsage, opts)) {
      continue;
    } else if (a == "--key") {
      opts.key_file = example::value(argc, argv, i);
    } else if (a == "--listen") {
      listen = example::value(argc, argv, i);
    } else {
      std::fprintf(stderr, "unknown argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (listen.empty()) {
    std::fputs("--listen is required (see --help)\n", stderr);
    return 2;
  }

  // Signals are taken by a thread of their own (sigwait) that stops the loop: a signal handler
  // could not call Context::stop() safely.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  roam::Context ctx;
  std::map<std::uint64_t, std::unique_ptr<Echo>> sessions;
  std::uint64_t next_id = 0;
  auto listener = ctx.listen(
      listen,
      [&](roam::Connection conn) {
        const std::uint64_t id = ++next_id;
        auto echo = std::make_unique<Echo>();
        Echo* e = echo.get();
        e->conn = std::move(conn);
        const std::string name = e->conn.name();
        std::fprintf(stderr, "session %s established\n", name.c_str());
        roam::Connection::Handlers h;
        h.readable = [e] { e->pump(); };
        h.writable = [e] { e->pump(); };
        h.path_lost = [name](const std::string& why) {
          std::fprintf(stderr, "session %s path lost: %s\n", name.c_str(), why.c_str());
        };
        h.migrated = [name](std::chrono::nanoseconds took) {
          std::fprintf(stderr, "session %s migrated after %.1f ms\n", name.c_str(),
                       std::chrono::duration<double, std::milli>(took).count());
        };
        h.closed = [&sessions, id, name](const roam::CloseInfo& info) {
          std::fprintf(stderr, "session %s %s: %llu bytes echoed, %llu migrations%s%s\n",
                       name.c_str(), info.clean ? "ended cleanly" : "aborted",
                       static_cast<unsigned long long>(info.bytes_sent),
                       static_cast<unsigned long long>(info.migrations),
                       info.clean ? "" : ": ", info.clean ? "" : info.error.message.c_str());
          sessions.erase(id);  // safe: the library holds the callbacks while they run
        };
        e->conn.set_handlers(std::move(h));
        sessions[id] = std::move(echo);
        e->pump();  // bytes may have arrived with the handshake
      },
      opts);
  if (!listener) {
    std::fprintf(stderr, "cannot listen on %s: %s\n", listen.c_str(),
                 listener.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "listening on %s\n", listener->address().c_str());

  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    ctx.stop();  // thread-safe
  });
  ctx.run();
  // run() returned because a signal arrived; the Context's destructor aborts what is left.
  signals.join();
  sessions.clear();
  return 0;
}
