// ssh through roam: a real sshd behind `roam server`, a real ssh whose ProxyCommand is
// `roam connect`, and a relay cut twice during the session. The remote command echoes every
// line it reads with the line's SHA-256, so each step of progress is observable and checkable.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "itest_util.hpp"

namespace roam::itest {
namespace {

namespace fs = std::filesystem;

constexpr int kLines = 30;
constexpr int kFirstCut = 10, kSecondCut = 20;  // after these many answered lines

// Reads '\n'-terminated lines from a non-blocking fd with a deadline.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || eof_) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
      else if (n == 0) eof_ = true;
    }
  }

 private:
  int fd_;
  std::string buf_;
  bool eof_ = false;
};

std::string sha256_hex(const std::string& s) {
  Digest d;
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(s.data()), s.size());
  return hex(d);
}

// A deterministic line of printable characters.
std::string make_line(int i) {
  PatternStream ps(1000 + static_cast<std::uint64_t>(i));
  std::string s(2000, ' ');
  ps.fill(reinterpret_cast<std::uint8_t*>(s.data()), s.size());
  for (char& c : s) c = static_cast<char>('a' + static_cast<unsigned char>(c) % 26);
  return "line" + std::to_string(i) + ":" + s;
}

// Picks a free loopback port by binding port 0 and closing (sshd cannot listen on port 0).
std::uint16_t free_port() {
  std::uint16_t port = 0;
  const int fd = listen_loopback(port);
  ::close(fd);
  return port;
}

int run_to_exit(std::vector<std::string> argv, std::string* log = nullptr) {
  Process p(std::move(argv));
  auto st = p.wait_exit(seconds(20));
  if (log) *log = p.log();
  return st ? *st : -1;
}

TEST(SshThroughRoam, SessionSurvivesTwoCutsWithIntactOutput) {
  const char* sshd = "/usr/sbin/sshd";
  const char* ssh = "/usr/bin/ssh";
  const char* keygen = "/usr/bin/ssh-keygen";
  for (const char* tool : {sshd, ssh, keygen})
    if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed";
  if (::geteuid() != 0) GTEST_SKIP() << "not root: sshd cannot authenticate a login as another user here";

  DumpOnFailure dump;
  char tmpl[] = "/tmp/roam-ssh-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  // sshd refuses to start without its privilege separation directory (normally made by the
  // service unit).
  ::mkdir("/run/sshd", 0755);

  std::string log;
  ASSERT_EQ(run_to_exit({keygen, "-q", "-t", "ed25519", "-N", "", "-f", (dir / "host_key").string()}, &log), 0) << log;
  ASSERT_EQ(run_to_exit({keygen, "-q", "-t", "ed25519", "-N", "", "-f", (dir / "client_key").string()}, &log), 0) << log;
  fs::copy_file(dir / "client_key.pub", dir / "authorized_keys");
  const std::uint16_t ssh_port = free_port();
  {
    std::ofstream cfg(dir / "sshd_config");
    cfg << "ListenAddress 127.0.0.1\n"
        << "Port " << ssh_port << "\n"
        << "HostKey " << (dir / "host_key").string() << "\n"
        << "AuthorizedKeysFile " << (dir / "authorized_keys").string() << "\n"
        << "PidFile " << (dir / "sshd.pid").string() << "\n"
        << "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        << "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        << "ClientAliveInterval 0\nLogLevel VERBOSE\n";
  }
  auto daemon = std::make_shared<Process>(std::vector<std::string>{
      sshd, "-D", "-e", "-f", (dir / "sshd_config").string()});
  dump.add(daemon);
  ASSERT_TRUE(daemon->wait_for("Server listening on 127.0.0.1 port " + std::to_string(ssh_port)))
      << "sshd did not start";

  std::uint16_t server_port = 0;
  auto server = start_server(ssh_port, {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  RelayThread relay(server_port);

  const std::string proxy = std::string(roam_bin()) + " connect 127.0.0.1 " +
                            std::to_string(relay.port()) + " --heartbeat 200ms";
  const std::string remote =
      "while IFS= read -r l; do printf '%s %s\\n' \"$l\" "
      "\"$(printf '%s' \"$l\" | sha256sum | cut -d' ' -f1)\"; done; echo done";
  SpawnOptions so;
  so.pipe_stdin = true;
  so.pipe_stdout = true;
  auto client = std::make_shared<Process>(
      std::vector<std::string>{ssh, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
                               "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o",
                               "IdentitiesOnly=yes", "-i", (dir / "client_key").string(), "-o",
                               "ProxyCommand=" + proxy, "root@127.0.0.1", remote},
      so);
  dump.add(client);
  const int in_fd = client->take_stdin();
  const int out_fd = client->take_stdout();
  LineReader reader(out_fd);

  const auto start = Clock::now();
  int answered = 0, cuts = 0;
  std::uint64_t bytes_out = 0, bytes_in = 0;
  for (int i = 0; i < kLines; ++i) {
    const std::string line = make_line(i);
    const std::string msg = line + "\n";
    ASSERT_EQ(::write(in_fd, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    bytes_out += msg.size();
    auto got = reader.next(seconds(15));
    ASSERT_TRUE(got.has_value()) << "no answer to line " << i << " (after " << cuts << " cuts)";
    bytes_in += got->size() + 1;
    EXPECT_EQ(*got, line + " " + sha256_hex(line)) << "line " << i << " came back wrong";
    ++answered;
    if (answered == kFirstCut || answered == kSecondCut) {
      const std::size_t n = relay.cut();
      EXPECT_EQ(n, 1u) << "expected exactly the ssh session's connection in the relay";
      ++cuts;
    }
  }
  ::close(in_fd);
  auto done = reader.next(seconds(15));
  EXPECT_EQ(done.value_or("<nothing>"), "done");
  const auto status = client->wait_exit(seconds(15));
  ::close(out_fd);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "[ figures  ] ssh: " << answered << " lines echoed with their SHA-256 through "
            << cuts << " cuts; " << bytes_out << " bytes up, " << bytes_in << " down, in " << secs
            << " s; relay accepted " << relay.accepted() << " connections\n";
  EXPECT_EQ(answered, kLines);
  EXPECT_EQ(cuts, 2);
  ASSERT_TRUE(status.has_value()) << "ssh did not exit";
  EXPECT_EQ(*status, 0);
  EXPECT_GE(relay.accepted(), 3u) << "the session should have reconnected after each cut";
  // The ProxyCommand's roam (a grandchild that logs into ssh's stderr) ends cleanly too.
  EXPECT_TRUE(client->wait_for("session ended cleanly", seconds(10)));
  EXPECT_TRUE(server->running());
}

}  // namespace
}  // namespace roam::itest
