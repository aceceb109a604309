// --encrypt, server keys and known_hosts with real processes: an encrypted session through the
// CutRelay survives cuts exactly; `roam keygen` writes its files with the right modes; the first
// connection pins the server's key and a server restarted with another key is refused.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/crypto/crypto.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh directory under $TMPDIR (or /tmp), removed with its files at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/roam-crypt-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reads a pipe until EOF or the deadline (read_until_close is for sockets).
std::string read_pipe(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string out;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) continue;
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

// `roam keygen -o FILE`; returns the public line it printed on stdout ("" on failure).
std::string keygen(const std::string& file) {
  Process p({roam_bin(), "keygen", "-o", file}, SpawnOptions{false, true, {}});
  const int out = p.take_stdout();
  std::string line = read_pipe(out, seconds(10));
  ::close(out);
  if (p.wait_exit(seconds(10)) != 0) return "";
  while (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

// 16 MiB each way through the CutRelay with a cut every MiB, sealed with the cipher that the
// client's `--cipher` leads to (`want`, as the client logs it).
void survives_cuts(const std::string& cipher, const std::string& want) {
  DumpOnFailure dump;
  constexpr std::uint64_t kBytes = 16 * kMiB, kUpSeed = 0xc0de01, kDownSeed = 0xc0de02;
  DuplexOptions svc_opts;
  svc_opts.send_bytes = kBytes;
  svc_opts.seed = kDownSeed;
  svc_opts.timeout = seconds(60);
  RelayThread* relay_ptr = nullptr;
  std::atomic<std::uint64_t> next_cut{kMiB};
  std::atomic<int> cuts{0};
  auto maybe_cut = [&](std::uint64_t n) {
    std::uint64_t at = next_cut.load();
    if (n < at || n > kBytes - kMiB || !next_cut.compare_exchange_strong(at, at + kMiB)) return;
    if (relay_ptr && relay_ptr->cut() > 0) ++cuts;
  };
  svc_opts.on_progress = maybe_cut;
  Service service(svc_opts);
  std::uint16_t server_port = 0;
  // The server requires encryption: a session that got through is an encrypted one.
  auto server = start_server(service.port(), {"--heartbeat", "200ms", "--encrypt"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  RelayThread relay(server_port);
  relay_ptr = &relay;
  std::uint16_t local_port = 0;
  auto client = start_local_client(relay.port(),
                                   {"--heartbeat", "200ms", "--encrypt", "--cipher", cipher}, local_port);
  dump.add(client);
  ASSERT_NE(local_port, 0);

  DuplexOptions app_opts;
  app_opts.send_bytes = kBytes;
  app_opts.seed = kUpSeed;
  app_opts.timeout = seconds(60);
  ClientApp app(local_port, app_opts);
  const DuplexResult up = app.result();
  const DuplexResult down = service.result();
  relay_ptr = nullptr;
  std::cout << "[ figures  ] encrypted: " << cuts.load() << " cuts; app " << up.summary()
            << "; service " << down.summary() << "\n";
  EXPECT_GE(cuts.load(), 5);
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(kUpSeed, kBytes)));
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(kDownSeed, kBytes)));
  EXPECT_TRUE(up.got_eof && down.got_eof);
  EXPECT_FALSE(up.got_reset || down.got_reset);
  EXPECT_NE(client->log().find("encrypted with " + want), std::string::npos) << client->log();
}

TEST(Encrypt, EncryptedSessionSurvivesCutsExactlyBothWays) {
  // The client does not offer AES-256-GCM (like a CPU without AES-NI): XChaCha20-Poly1305.
  survives_cuts("xchacha20-poly1305", "XChaCha20-Poly1305");
}

TEST(Encrypt, AesGcmSessionSurvivesCutsExactlyBothWays) {
  if (!core::crypto::init() || !core::crypto::aes256gcm_available())
    GTEST_SKIP() << "this CPU has no AES-NI/PCLMULQDQ: AES-256-GCM is never negotiated here";
  survives_cuts("auto", "AES-256-GCM");
}

TEST(Encrypt, ServerRequiringEncryptionRefusesAPlainClientWithAClearError) {
  DumpOnFailure dump;
  DuplexOptions svc_opts;
  Service service(svc_opts, seconds(5));
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--encrypt"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  auto client = std::make_shared<Process>(
      std::vector<std::string>{roam_bin(), "connect", loopback_ep(server_port)},
      SpawnOptions{true, false, {}});
  dump.add(client);
  EXPECT_EQ(client->wait_exit(seconds(10)), 1);
  EXPECT_NE(client->log().find("requires encryption"), std::string::npos) << client->log();
}

TEST(Encrypt, KeygenWritesASecretOnlyItsOwnerCanRead) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string key = dir.path() + "/server_key";
  const std::string pub = keygen(key);
  ASSERT_EQ(pub.rfind("ed25519 ", 0), 0u) << pub;
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((key + ".pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(read_file(key + ".pub"), pub + "\n");
  EXPECT_EQ(read_file(key).rfind("roam-ed25519-secret ", 0), 0u);
  // It never overwrites a key by accident.
  EXPECT_EQ(keygen(key), "");
  EXPECT_EQ(read_file(key + ".pub"), pub + "\n");
  // A server refuses a key file that others can read.
  ::chmod(key.c_str(), 0644);
  Process server({roam_bin(), "server", "--listen", "127.0.0.1:0", "--forward", "127.0.0.1:9",
                  "--key", key});
  EXPECT_EQ(server.wait_exit(seconds(10)), 1);
  EXPECT_NE(server.log().find("chmod 600"), std::string::npos) << server.log();
}

// Runs `roam connect 127.0.0.1:PORT` in stdio mode that sends `bytes` and half-closes; returns the
// process (exited) so that the test can read its status and log.
std::shared_ptr<Process> stdio_session(std::uint16_t port, const std::string& known_hosts) {
  auto p = std::make_shared<Process>(
      std::vector<std::string>{roam_bin(), "connect", loopback_ep(port), "--known-hosts",
                               known_hosts},
      SpawnOptions{true, true, {}});
  const int in = p->take_stdin();
  const int out = p->take_stdout();
  const char msg[] = "hello";
  send_all(in, msg, 5, seconds(5));
  ::close(in);
  (void)read_pipe(out, seconds(10));
  ::close(out);
  p->wait_exit(seconds(10));
  return p;
}

TEST(Encrypt, FirstConnectionPinsAndAServerWithAnotherKeyIsRefused) {
  DumpOnFailure dump;
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string k1 = dir.path() + "/k1", k2 = dir.path() + "/k2";
  const std::string known = dir.path() + "/cfg/known_hosts";
  const std::string pub1 = keygen(k1), pub2 = keygen(k2);
  ASSERT_FALSE(pub1.empty());
  ASSERT_FALSE(pub2.empty());

  DuplexOptions svc_opts;  // answers the half-closed request with nothing and closes
  svc_opts.timeout = seconds(10);
  Service service(svc_opts, seconds(30));
  std::uint16_t port = 0;
  auto first = start_server(service.port(), {"--key", k1}, port);
  dump.add(first);
  ASSERT_NE(port, 0);

  auto c1 = stdio_session(port, known);
  dump.add(c1);
  EXPECT_EQ(c1->wait_exit(seconds(1)), 0) << c1->log();
  EXPECT_NE(c1->log().find("pinned the key of 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << c1->log();
  EXPECT_EQ(read_file(known), "127.0.0.1:" + std::to_string(port) + " " + pub1 + "\n");

  // Same port, another key: the client refuses, says why like ssh, and exits 1.
  first->terminate();
  Service service2(svc_opts, seconds(30));
  auto second = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "server", "--listen", loopback_ep(port), "--forward",
      loopback_ep(service2.port()), "--key", k2});
  dump.add(second);
  ASSERT_EQ(second->wait_listening(), port);
  auto c2 = stdio_session(port, known);
  dump.add(c2);
  EXPECT_EQ(c2->wait_exit(seconds(1)), 1) << c2->log();
  EXPECT_NE(c2->log().find("HAS CHANGED"), std::string::npos) << c2->log();
  EXPECT_NE(c2->log().find(pub2.substr(8)), std::string::npos) << c2->log();
  EXPECT_EQ(read_file(known), "127.0.0.1:" + std::to_string(port) + " " + pub1 + "\n");
}

}  // namespace
}  // namespace roam::itest
