// Helpers for the `roam status` / metrics / status page tests: a private control directory, a
// scripted session (handshake, forced migrations, known bytes each way), `roam status` runs and
// plain HTTP GETs.
#pragma once

#include <gtest/gtest.h>

#include <dirent.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "itest_util.hpp"

namespace roam::itest {

using nlohmann::json;

// A fresh directory under /tmp, removed (with what is left in it) at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/roam-status-test-XXXXXX";
    if (::mkdtemp(tmpl)) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    for (const auto& f : files()) ::unlink((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (const dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }

 private:
  std::string path_;
};

// Polls `pred` every 20 ms until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// Reads a pipe until EOF or the deadline, then closes it.
inline std::string read_pipe_until_eof(int fd, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  std::string out;
  char buf[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  return out;
}

// Runs `roam ARGS...` to completion; its stdout and exit status.
struct RunResult {
  std::string out;
  int status = -1;
  std::string err;
};
inline RunResult run_roam(std::vector<std::string> args, std::chrono::milliseconds timeout = seconds(20)) {
  std::vector<std::string> argv = {roam_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions so;
  so.pipe_stdout = true;
  Process p(argv, so);
  RunResult r;
  r.out = read_pipe_until_eof(p.take_stdout(), timeout);
  r.status = p.wait_exit(timeout).value_or(-1);
  r.err = p.log();
  return r;
}

// `roam status --json --control-dir DIR`, parsed (a null json when it did not parse).
inline nlohmann::json status_json(const std::string& dir) {
  const RunResult r = run_roam({"status", "--json", "--control-dir", dir});
  if (r.status != 0) return nullptr;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// The daemon of `kind` in a status document (null if absent).
inline nlohmann::json daemon_of(const nlohmann::json& status, const std::string& kind) {
  if (!status.is_object()) return nullptr;
  for (const auto& d : status.at("daemons"))
    if (d.at("kind") == kind) return d;
  return nullptr;
}

// HTTP/1.0 GET http://127.0.0.1:PORT/PATH: the body ("" on failure), and the status line.
inline std::string http_get(std::uint16_t port, const std::string& path, std::string* status_line = nullptr) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (!send_all(fd, req.data(), req.size(), seconds(5))) {
    ::close(fd);
    return "";
  }
  ReadEnd how{};
  auto bytes = read_until_close(fd, seconds(10), how, 16u << 20);
  ::close(fd);
  const std::string text(bytes.begin(), bytes.end());
  if (status_line) *status_line = text.substr(0, text.find("\r\n"));
  const auto body = text.find("\r\n\r\n");
  return body == std::string::npos ? "" : text.substr(body + 4);
}

// The port in "metrics at http://127.0.0.1:PORT/metrics" in a daemon's log (0 if absent).
inline std::uint16_t metrics_port(Process& p) {
  const std::string key = "metrics at http://127.0.0.1:";
  if (!p.wait_for(key)) return 0;
  const std::string log = p.log();
  const auto at = log.find(key) + key.size();
  return static_cast<std::uint16_t>(std::strtoul(log.c_str() + at, nullptr, 10));
}

// The value of the sample `name{labels}` (exactly as written) in a Prometheus text, or -1.
inline double prom_value(const std::string& text, const std::string& sample) {
  const std::string key = "\n" + sample + " ";
  const auto at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + key.size() - 1, nullptr);
}

// app → roam connect --local → CutRelay → roam server → service, both daemons with --metrics on
// any port and a private control directory. Both apps send a paced stream (Gate): kFirst bytes
// at once, more on flow(), everything (kTotal) on finish().
class ScriptedSession {
 public:
  static constexpr std::uint64_t kFirst = 256 * 1024;
  static constexpr std::uint64_t kSecond = 512 * 1024;
  static constexpr std::uint64_t kTotal = 1024 * 1024;
  static constexpr std::uint64_t kUpSeed = 0x5a7a0001, kDownSeed = 0x5a7a0002;

  explicit ScriptedSession(DumpOnFailure& dump) : up_gate_(kFirst), down_gate_(kFirst) {
    DuplexOptions svc;
    svc.send_bytes = kTotal;
    svc.seed = kDownSeed;
    svc.gate = &down_gate_;
    svc.timeout = seconds(90);
    svc.on_progress = [this](std::uint64_t n) { progress.note(1, n); };
    service_ = std::make_unique<Service>(svc);
    const std::vector<std::string> extra = {"--heartbeat", "200ms", "--control-dir", dir.path(),
                                            "--metrics", "127.0.0.1:0"};
    server = start_server(service_->port(), extra, server_port);
    dump.add(server);
    if (server_port == 0) return;
    server_metrics = metrics_port(*server);
    relay = std::make_unique<RelayThread>(server_port);
    client = start_local_client(relay->port(), extra, client_port);
    dump.add(client);
    if (client_port == 0) return;
    client_metrics = metrics_port(*client);
    DuplexOptions app;
    app.send_bytes = kTotal;
    app.seed = kUpSeed;
    app.gate = &up_gate_;
    app.timeout = seconds(90);
    app.on_progress = [this](std::uint64_t n) { progress.note(0, n); };
    app_ = std::make_unique<ClientApp>(client_port, app);
  }

  // The session is up and the first bytes went through both ways.
  bool ready() {
    return client_port != 0 && server_metrics != 0 && client_metrics != 0 &&
           progress.wait_both(kFirst, seconds(20));
  }
  // Resets the path and waits until both daemons logged their k-th migration.
  bool cut_and_wait(int k) {
    if (relay->cut() == 0) return false;
    auto count = [](const std::string& log) {
      int n = 0;
      for (auto at = log.find("] migrated to "); at != std::string::npos; at = log.find("] migrated to ", at + 1)) ++n;
      return n;
    };
    auto migrated = [&](const std::string& log) { return count(log) >= k; };
    return client->wait_until(migrated, seconds(15)) && server->wait_until(migrated, seconds(15));
  }
  // Lets both apps send up to `total` bytes and waits until both received them.
  bool flow(std::uint64_t total) {
    up_gate_.allow(total);
    down_gate_.allow(total);
    return progress.wait_both(total, seconds(20));
  }
  // Lets everything through; true when both ends received exactly the other's stream.
  bool finish() {
    flow(kTotal);
    const DuplexResult a = app_->result(), b = service_->result();
    EXPECT_TRUE(a.got_eof && b.got_eof) << a.summary() << " / " << b.summary();
    EXPECT_EQ(a.received_digest, pattern_digest(kDownSeed, kTotal)) << a.summary();
    EXPECT_EQ(b.received_digest, pattern_digest(kUpSeed, kTotal)) << b.summary();
    return a.received == kTotal && b.received == kTotal &&
           a.received_digest == pattern_digest(kDownSeed, kTotal) &&
           b.received_digest == pattern_digest(kUpSeed, kTotal);
  }

  TempDir dir;
  ProgressWatch progress;
  std::shared_ptr<Process> server, client;
  std::unique_ptr<RelayThread> relay;
  std::uint16_t server_port = 0, client_port = 0, server_metrics = 0, client_metrics = 0;

 private:
  Gate up_gate_, down_gate_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<ClientApp> app_;
};

}  // namespace roam::itest
