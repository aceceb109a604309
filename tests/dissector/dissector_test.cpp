// The Wireshark dissector (tools/wireshark/roam.lua) on a real capture: tshark records lo while
// a libroam client talks to roam_echo_server through a CutRelay that is cut once (so the session
// migrates); tshark then decodes the file with the dissector, and the test checks that the
// handshake, the migrate request (token, request number) and the resume offsets come out by name.
// The same for an encrypted MSOCKS session (roam socks → roam proxy --encrypt --key).
#include <gtest/gtest.h>
#include <roam/roam.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "itest_util.hpp"
#include "key_file.hpp"
#include "proxy_util.hpp"

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
        parse(buf, static_cast<std::size_t>(n));
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
    return wait_growth(port, kPcapHeader, timeout);
  }
  // Makes sure every packet sent so far is in the file: packets come out in order, so once the
  // SYN of a probe connection made now has come out, so has everything before it.
  bool sync(std::uint16_t port, std::chrono::milliseconds timeout) {
    const int fd = connect_loopback(port);
    if (fd < 0) return false;
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    ::close(fd);
    const std::uint16_t probe = ntohs(local.sin_port);
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return source_ports_.count(probe) > 0 || eof_; }) &&
           source_ports_.count(probe) > 0;
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
  // Probes the port until the capture holds more than `past` bytes, or the deadline.
  bool wait_growth(std::uint16_t port, std::size_t past, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock<std::mutex> lk(mu_);
    while (bytes_ <= past && !eof_ && Clock::now() < deadline) {
      lk.unlock();
      const int fd = connect_loopback(port);
      if (fd >= 0) ::close(fd);
      lk.lock();
      cv_.wait_for(lk, milliseconds(50), [&] { return bytes_ > past || eof_; });
    }
    return bytes_ > past;
  }

  // Follows the pcap stream (little-endian pcap, Ethernet link type as tshark writes for lo) and
  // notes the TCP source port of every IPv4 packet.
  void parse(const char* data, std::size_t n) {
    pending_.insert(pending_.end(), data, data + n);
    std::size_t at = header_done_ ? 0 : kPcapHeader;
    if (!header_done_ && pending_.size() < kPcapHeader) return;
    header_done_ = true;
    auto le32 = [&](std::size_t i) {
      return static_cast<std::uint32_t>(static_cast<std::uint8_t>(pending_[i])) |
             static_cast<std::uint32_t>(static_cast<std::uint8_t>(pending_[i + 1])) << 8 |
             static_cast<std::uint32_t>(static_cast<std::uint8_t>(pending_[i + 2])) << 16 |
             static_cast<std::uint32_t>(static_cast<std::uint8_t>(pending_[i + 3])) << 24;
    };
    auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(pending_[i]); };
    while (pending_.size() - at >= 16) {
      const std::size_t incl = le32(at + 8);
      if (pending_.size() - at - 16 < incl) break;
      const std::size_t p = at + 16;
      if (incl >= 14 + 20 + 4 && byte(p + 12) == 0x08 && byte(p + 13) == 0x00 &&
          byte(p + 14 + 9) == 6) {
        const std::size_t tcp = p + 14 + (byte(p + 14) & 0xf) * 4u;
        if (tcp + 2 <= p + incl)
          source_ports_.insert(static_cast<std::uint16_t>(byte(tcp) << 8 | byte(tcp + 1)));
      }
      at = p + incl;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(at));
  }

  static constexpr std::size_t kPcapHeader = 24;  // pcap global header; records follow
  std::vector<char> pending_;
  bool header_done_ = false;
  std::set<std::uint16_t> source_ports_;
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
  // The client is libroam in process, so the cut comes at a known stream position: 64 KiB sent
  // and its echo read in full, then the cut, then 64 KiB more. Both sides then resume from 65536.
  constexpr std::size_t kHalf = 64 * 1024;
  std::vector<std::uint8_t> data(2 * kHalf), echo;
  PatternStream(0xd15).fill(data.data(), data.size());
  roam::Context ctx;
  ASSERT_TRUE(ctx.start());
  roam::ConnectOptions co;
  co.heartbeat = std::chrono::milliseconds(200);
  co.watch_network = false;
  auto s = roam::Stream::connect(ctx, loopback_ep(relay.port()), co);
  ASSERT_TRUE(s) << s.error().message;
  auto read_until = [&](std::size_t total) {
    std::uint8_t buf[16384];
    while (echo.size() < total) {
      auto r = s->read(buf);
      if (!r || *r == 0) return false;
      echo.insert(echo.end(), buf, buf + *r);
    }
    return true;
  };
  ASSERT_TRUE(s->write_all(std::span(data).first(kHalf)));
  ASSERT_TRUE(read_until(kHalf));
  ASSERT_GE(relay.cut(), 1u);
  ASSERT_GE(s->wait_migrations(1), 1u);
  ASSERT_TRUE(s->write_all(std::span(data).subspan(kHalf)));
  s->shutdown();
  ASSERT_TRUE(read_until(data.size()));
  EXPECT_TRUE(echo == data);
  std::uint8_t end[1];
  auto eof = s->read(end);  // reading the end of stream is what lets the session end cleanly
  ASSERT_TRUE(eof && *eof == 0);
  EXPECT_TRUE(s->wait_closed().clean);
  ASSERT_TRUE(capture->sync(port, seconds(20))) << "the capture stopped: " << capture->log();
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
  // One line per packet: "types<TAB>received" (an ACK may share ACCEPT's packet: "0x13,0x21").
  EXPECT_NE(resume.find("0x12\t65536\n"), std::string::npos) << resume;  // RESPONSE: client holds 64 KiB
  EXPECT_NE(resume.find("0x13"), std::string::npos) << resume;             // ACCEPT: server holds 64 KiB
  std::istringstream lines(resume);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n)
    EXPECT_TRUE(line.size() > 6 && line.substr(line.size() - 6) == "\t65536") << line;
  EXPECT_EQ(n, 2) << resume;
  // The DATA after the migration continues at that offset, in both directions.
  const std::string resumed_data = run_stdout(
      {tshark_, "-r", pcap, "-X", lua, "-d", decode_as, "-Y", "roam.data.offset == 65536", "-T",
       "fields", "-e", "tcp.srcport"},
      status);
  ASSERT_EQ(status, 0) << resumed_data;
  EXPECT_NE(resumed_data.find(std::to_string(port)), std::string::npos)
      << "no server DATA at offset 65536: " << resumed_data;
  EXPECT_GE(std::count(resumed_data.begin(), resumed_data.end(), '\n'), 2) << resumed_data;
}

// Lines of `text`, each split at tabs and commas into numbers (tshark -T fields output).
std::vector<std::vector<std::uint64_t>> numbers(const std::string& text) {
  std::vector<std::vector<std::uint64_t>> rows;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::uint64_t> row;
    std::string cell;
    for (char c : line + "\t") {
      if (c == '\t' || c == ',') {
        if (!cell.empty()) row.push_back(std::stoull(cell));
        cell.clear();
      } else {
        cell += c;
      }
    }
    rows.push_back(row);
  }
  return rows;
}

// MSOCKS with --encrypt and --key: roam socks → relay (cut once) → roam proxy, captured on the
// proxy's port and decoded without telling tshark the port (the heuristic finds the SOCKS5
// greeting that offers roam's method): the method selection, the signed handshake, the
// re-attachment and only SEALED session frames, whose DATA offsets add up to the whole stream.
TEST_F(Dissector, DecodesAnEncryptedMsocksSessionThroughACut) {
  DumpOnFailure dump;
  ptest::TmpDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string dir = tmp.path.string();
  const std::string pcap = dir + "/msocks.pcap";
  write_server_key(dir + "/key");

  constexpr std::uint64_t kBytes = 256 * 1024, kHalf = kBytes / 2;
  GatedStreams streams(kBytes, kHalf, 0xd150c1, 0xd150c2, seconds(30));
  Service service(streams.service, seconds(30));
  std::uint16_t pport = 0;
  auto proxy = ptest::start_proxy({"--allow-dest", "127.0.0.0/8", "--heartbeat", "200ms",
                                   "--encrypt", "--key", dir + "/key"},
                                  pport);
  dump.add(proxy);
  ASSERT_NE(pport, 0);
  std::unique_ptr<Capture> capture;
  try {
    capture = std::make_unique<Capture>(tshark_, pport, pcap);
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  if (!capture->wait_live(pport, seconds(20)))
    GTEST_SKIP() << "tshark cannot capture on lo here (needs root or CAP_NET_RAW): "
                 << capture->log();
  RelayThread relay(pport);
  std::uint16_t sport = 0;
  auto socks = ptest::start_socks(relay.port(), {"--heartbeat", "200ms", "--encrypt",
                                                 "--known-hosts", dir + "/known_hosts"},
                                  sport);
  dump.add(socks);
  ASSERT_NE(sport, 0);
  int fd = -1;
  ReadEnd how;
  ASSERT_EQ(ptest::socks_connect(sport, service.port(), fd, how), 0) << read_end_name(how);
  auto app = std::async(std::launch::async, [&] { return run_duplex(fd, fd, streams.app); });
  ASSERT_TRUE(streams.watch.wait_both(kHalf, seconds(20))) << streams.watch.text();
  ASSERT_GE(relay.cut(), 1u);
  ASSERT_TRUE(proxy->wait_for("migrated to", seconds(20)));
  streams.allow(kBytes);
  const DuplexResult up = app.get();
  ::close(fd);
  const DuplexResult down = service.result();
  EXPECT_EQ(up.received, kBytes);
  EXPECT_EQ(down.received, kBytes);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(0xd150c1, kBytes)));
  ASSERT_TRUE(capture->sync(pport, seconds(20))) << "the capture stopped: " << capture->log();
  capture->finish();

  const std::string lua = std::string("lua_script:") + ROAM_DISSECTOR;
  int status = 0;
  const std::string verbose =
      run_stdout({tshark_, "-r", pcap, "-X", lua, "-V", "-Y", "roam"}, status);
  ASSERT_EQ(status, 0) << verbose;
  for (const char* text :
       {"SOCKS5 method selection (MSOCKS): client offers 0x80",
        "Method chosen: roam (MSOCKS) (0x80)",
        "Magic: ROAM", "Frame: HELLO ", "encrypt: True", "Frame: SERVER_KEY", "Frame: FINISH",
        "Frame: SEALED encrypted DATA", "Frame: SEALED encrypted ACK", "Inner payload length:",
        "Tag (AEAD):", "Frame: MIGRATE", "Frame: CHALLENGE", "Frame: RESPONSE",
        "Frame: ACCEPT"})
    EXPECT_NE(verbose.find(text), std::string::npos) << "missing '" << text << "'";
  EXPECT_EQ(verbose.find("Malformed"), std::string::npos) << "a frame did not decode";
  EXPECT_EQ(verbose.find("Lua Error"), std::string::npos) << "the dissector raised an error";
  EXPECT_EQ(verbose.find("Frame: unknown"), std::string::npos) << "a frame was not recognised";
  // No session frame in clear: DATA, ACK, FIN and CLOSE only inside SEALED.
  const std::string clear = run_stdout(
      {tshark_, "-r", pcap, "-X", lua, "-Y",
       "roam.type == 0x20 || roam.type == 0x21 || roam.type == 0x22 || roam.type == 0x24", "-T",
       "fields", "-e", "frame.number"},
      status);
  ASSERT_EQ(status, 0) << clear;
  EXPECT_EQ(clear, "") << "frames in clear in packets " << clear;
  // The sealed DATA of each direction covers its whole stream (the SOCKS request or reply, 10
  // bytes, then the application's bytes), across the re-attachment's resend.
  for (const bool from_proxy : {false, true}) {
    const std::string rows = run_stdout(
        {tshark_, "-r", pcap, "-X", lua, "-Y",
         std::string(from_proxy ? "tcp.srcport" : "tcp.dstport") + " == " + std::to_string(pport) +
             " && roam.sealed.inner_type == 0x20",
         "-T", "fields", "-e", "roam.data.offset", "-e", "roam.data.length"},
        status);
    ASSERT_EQ(status, 0) << rows;
    std::uint64_t end = 0;
    for (const auto& row : numbers(rows)) {
      ASSERT_EQ(row.size() % 2, 0u) << rows;
      for (std::size_t i = 0; i < row.size() / 2; ++i)
        end = std::max(end, row[i] + row[row.size() / 2 + i]);
    }
    EXPECT_EQ(end, kBytes + 10) << (from_proxy ? "proxy -> agent" : "agent -> proxy");
  }
}

}  // namespace
}  // namespace roam::itest
