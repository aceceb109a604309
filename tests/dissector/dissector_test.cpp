// The Wireshark dissector (tools/wireshark/roam.lua) on a real capture: tshark records lo while
// roam_file_client talks to roam_echo_server through a CutRelay that is cut once (so the session
// migrates); tshark then decodes the file with the dissector, and the test checks that the
// handshake, the migrate request (token, request number) and the resume offsets come out by name.
#include <gtest/gtest.h>

#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "itest_util.hpp"
#include "temp_file.hpp"

namespace roam::itest {
namespace {

// tshark's path, or empty when it is not installed.
std::string find_tshark() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
    const std::string p = std::string(dir) + "/tshark";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

// Runs `argv` to completion and returns its stdout (bounded by the child's own end).
std::string run_stdout(const std::vector<std::string>& argv, int& status) {
  Process p(argv, SpawnOptions{false, true, {}});
  const int out = p.take_stdout();
  std::string text;
  char buf[65536];
  ssize_t n = 0;
  while ((n = ::read(out, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out);
  status = p.wait_exit(seconds(60)).value_or(-1);
  if (status != 0) text += "\n[stderr] " + p.log();
  return text;
}

// tshark capturing lo (filtered to one port) into a pipe; a thread copies the pcap stream into a
// file and counts its bytes.
class Capture {
 public:
  Capture(const std::string& tshark, std::uint16_t port, const std::string& path)
      : out_(path, std::ios::binary),
        proc_({tshark, "-i", "lo", "-B", "64", "-f", "tcp port " + std::to_string(port), "-F", "pcap",
               "-w", "-"},
              SpawnOptions{false, true, {}}) {
    const int fd = proc_.take_stdout();
    copier_ = std::thread([this, fd] {
      char buf[65536];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        std::lock_guard<std::mutex> lk(mu_);
        out_.write(buf, n);
        out_.flush();
        bytes_ += static_cast<std::size_t>(n);
        cv_.notify_all();
      }
      ::close(fd);
      std::lock_guard<std::mutex> lk(mu_);
      eof_ = true;
      cv_.notify_all();
    });
  }
  ~Capture() { finish(); }

  // Connects to the port (and closes) until a packet shows up in the capture, or the deadline.
  bool wait_live(std::uint16_t port, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock<std::mutex> lk(mu_);
    while (bytes_ <= kPcapHeader && !eof_ && Clock::now() < deadline) {
      lk.unlock();
      const int fd = connect_loopback(port);
      if (fd >= 0) ::close(fd);
      lk.lock();
      cv_.wait_for(lk, milliseconds(50), [&] { return bytes_ > kPcapHeader || eof_; });
    }
    return bytes_ > kPcapHeader;
  }
  // Stops tshark and waits until everything it wrote is in the file.
  void finish() {
    if (finished_) return;
    finished_ = true;
    proc_.terminate();
    if (copier_.joinable()) copier_.join();
    out_.close();
  }
  std::string log() const { return proc_.log(); }

 private:
  static constexpr std::size_t kPcapHeader = 24;  // pcap global header; records follow
  std::ofstream out_;
  Process proc_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t bytes_ = 0;
  bool eof_ = false;
  bool finished_ = false;
  std::thread copier_;
};

class Dissector : public ::testing::Test {
 protected:
  void SetUp() override {
    tshark_ = find_tshark();
    if (tshark_.empty()) GTEST_SKIP() << "tshark is not installed (scripts/deps.sh installs it)";
  }
  std::string tshark_;
};

TEST_F(Dissector, DecodesHandshakeMigrateAndResumeFromACapture) {
  DumpOnFailure dump;
  TempFile data(512 * 1024, 0xd15);  // small: a fast loopback flood would overrun the capture
  char pcap_name[] = "/tmp/roam-dissector-XXXXXX";
  const int pfd = ::mkstemp(pcap_name);
  ASSERT_GE(pfd, 0);
  ::close(pfd);
  const std::string pcap = pcap_name;
  struct Remove {
    std::string path;
    // ROAM_KEEP_PCAP=1 keeps the capture for a look in Wireshark.
    ~Remove() {
      if (std::getenv("ROAM_KEEP_PCAP") == nullptr) std::remove(path.c_str());
      else std::cerr << "capture kept: " << path << "\n";
    }
  } remove_pcap{pcap};

  auto server = std::make_shared<Process>(std::vector<std::string>{
      ROAM_ECHO_SERVER, "--listen", "127.0.0.1:0", "--heartbeat", "200ms"});
  dump.add(server);
  const std::uint16_t port = server->wait_listening();
  ASSERT_NE(port, 0);

  // The capture: only the relay <-> server connections (the server's port), which carry roam.
  // "Capturing on" comes before libpcap has attached the filter (packets in between are
  // dropped), so readiness is proven instead: tshark writes the pcap to a pipe, and probe
  // connections to the port are made until a captured packet comes out of it.
  std::unique_ptr<Capture> capture;
  try {
    capture = std::make_unique<Capture>(tshark_, port, pcap);
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  if (!capture->wait_live(port, seconds(20)))
    GTEST_SKIP() << "tshark cannot capture on lo here (needs root or CAP_NET_RAW): "
                 << capture->log();

  RelayThread relay(port);
  auto client = std::make_shared<Process>(std::vector<std::string>{
      ROAM_FILE_CLIENT, "--connect", loopback_ep(relay.port()), "--file", data.path(),
      "--heartbeat", "200ms", "--migrations", "1"});
  dump.add(client);
  ASSERT_TRUE(client->wait_for("session established"));
  ASSERT_GE(relay.cut(), 1u);
  ASSERT_TRUE(client->wait_for("1 of 1 migrations", seconds(30)));
  ASSERT_EQ(client->wait_exit(seconds(60)), 0);
  capture->finish();  // SIGTERM: tshark writes out what it captured and exits

  const std::string lua = std::string("lua_script:") + ROAM_DISSECTOR;
  const std::string decode_as = "tcp.port==" + std::to_string(port) + ",roam";
  int status = 0;
  const std::string verbose = run_stdout(
      {tshark_, "-r", pcap, "-X", lua, "-d", decode_as, "-V", "-Y", "roam"}, status);
  ASSERT_EQ(status, 0) << verbose;
  for (const char* text :
       {"roam session protocol", "Magic: ROAM", "Version: 1", "Frame: HELLO ", "Frame: HELLO_REPLY",
        "Frame: FINISH", "X25519 public key:", "resume: True", "MIGRATE_WAIT (ms):",
        "Frame: MIGRATE", "Token:", "Request number: 1", "Frame: CHALLENGE", "Nonce:",
        "Frame: RESPONSE", "Frame: ACCEPT", "Received offset:", "Frame: DATA", "Stream offset:",
        "Frame: ACK", "Consumed offset:", "MAC (HMAC-SHA-512-256):"})
    EXPECT_NE(verbose.find(text), std::string::npos) << "missing '" << text << "'";
  EXPECT_EQ(verbose.find("Malformed"), std::string::npos) << "a frame did not decode";
  EXPECT_EQ(verbose.find("Lua Error"), std::string::npos) << "the dissector raised an error";

  // Field extraction, as a script would do it: the migrate request and the resume offsets.
  const std::string fields = run_stdout(
      {tshark_, "-r", pcap, "-X", lua, "-d", decode_as, "-Y", "roam.type == 0x10", "-T", "fields",
       "-e", "roam.token", "-e", "roam.request", "-e", "roam.received"},
      status);
  ASSERT_EQ(status, 0) << fields;
  // One MIGRATE (request 1) with a 16-byte token.
  EXPECT_NE(fields.find("\t1\t"), std::string::npos) << fields;
  EXPECT_EQ(fields.find_first_of("0123456789abcdef"), 0u) << fields;
  EXPECT_GE(fields.find('\t'), 32u) << "token should be 16 bytes of hex: " << fields;
  // The resumed stream offsets are consistent: what the ACCEPT says the server holds is where
  // the client's DATA continues on the new path.
  const std::string resume = run_stdout(
      {tshark_, "-r", pcap, "-X", lua, "-d", decode_as, "-Y", "roam.type == 0x13 || roam.type == 0x12",
       "-T", "fields", "-e", "roam.type", "-e", "roam.received"},
      status);
  ASSERT_EQ(status, 0) << resume;
  EXPECT_NE(resume.find("0x12"), std::string::npos) << resume;  // RESPONSE
  EXPECT_NE(resume.find("0x13"), std::string::npos) << resume;  // ACCEPT
}

}  // namespace
}  // namespace roam::itest
