// Open-relay abuse of roam proxy: every denied destination is refused however it is spelled —
// IPv4 in decimal, hex, octal and short forms, IPv4-mapped, IPv4-compatible, NAT64 and 6to4
// IPv6, IPv6 loopback and unspecified, link-local with a scope, and names that resolve to
// loopback — as SOCKS5 IP requests and as domain requests (resolved by the proxy, then checked on
// the address it would connect to), and through roam's own method. Each gets reply 0x02 (not
// allowed) with a logged reason, and the local service behind them never sees a connection.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>

#include "attack_util.hpp"
#include "itest_util.hpp"

namespace roam::itest {
namespace {

// A SOCKS5 CONNECT request for a domain name, or for an IP literal (ATYP 1 or 4).
ByteVec request_for(const std::string& host, std::uint16_t port, bool as_ip) {
  ByteVec r;
  r.reserve(8 + 255);  // (GCC 12 misjudges a vector grown from a 3-byte initializer list)
  r.insert(r.end(), {0x05, 0x01, 0x00});
  std::array<std::uint8_t, 16> a{};
  if (as_ip && ::inet_pton(AF_INET, host.c_str(), a.data()) == 1) {
    r.push_back(0x01);
    r.insert(r.end(), a.begin(), a.begin() + 4);
  } else if (as_ip && ::inet_pton(AF_INET6, host.c_str(), a.data()) == 1) {
    r.push_back(0x04);
    r.insert(r.end(), a.begin(), a.end());
  } else {
    r.push_back(0x03);
    r.push_back(static_cast<std::uint8_t>(host.size()));
    r.insert(r.end(), host.begin(), host.end());
  }
  r.push_back(static_cast<std::uint8_t>(port >> 8));
  r.push_back(static_cast<std::uint8_t>(port & 0xff));
  return r;
}

// Greeting (no authentication) + request through a SOCKS5 server at `port`; the reply code, or
// -1 when none came.
int reply_code(std::uint16_t port, const ByteVec& request) {
  ByteVec bytes;
  bytes.reserve(3 + request.size());
  bytes.insert(bytes.end(), {0x05, 0x01, 0x00});
  bytes.insert(bytes.end(), request.begin(), request.end());
  const Exchange ex = exchange_from("127.0.0.1", port, bytes, seconds(10));
  if (ex.reply.size() < 4 || ex.reply[0] != 0x05 || ex.reply[1] != 0x00) return -1;
  return ex.reply[3];
}

struct Spelling {
  const char* text;
  bool as_ip;  // ATYP 1/4 (the literal's bytes); false: ATYP 3, the text as a name
};

const std::vector<Spelling> kDenied = {
    {"127.0.0.1", true},        {"127.255.255.254", true},   {"0.0.0.0", true},
    {"::1", true},              {"::", true},                {"::ffff:127.0.0.1", true},
    {"::127.0.0.1", true},      {"64:ff9b::7f00:1", true},   {"2002:7f00:1::1", true},
    {"fe80::1", true},          {"169.254.169.254", true},   {"224.0.0.1", true},
    {"255.255.255.255", true},  {"localhost", false},        {"LOCALHOST", false},
    {"127.0.0.1", false},        {"2130706433", false},
    {"0x7f000001", false},      {"0x7f.1", false},           {"0177.0.0.1", false},
    {"127.1", false},           {"0", false},                {"::1", false},
    {"0:0:0:0:0:0:0:1", false}, {"::ffff:127.0.0.1", false}, {"::ffff:7f00:1", false},
    {"::127.0.0.1", false},     {"fe80::1%lo", false},
};

int nonblocking_accepts(int listen_fd) {
  ::fcntl(listen_fd, F_SETFL, ::fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
  int n = 0;
  for (int fd; (fd = ::accept(listen_fd, nullptr, nullptr)) >= 0; ++n) ::close(fd);
  return n;
}

TEST(ProxyDestinations, EverySpellingOfADeniedAddressIsRefused) {
  DumpOnFailure dump;
  std::uint16_t target_port = 0;
  const int target = listen_loopback(target_port);  // what an open relay would expose
  ASSERT_GE(target, 0);
  auto proxy = std::make_shared<Process>(
      std::vector<std::string>{roam_bin(), "proxy", "--listen", "127.0.0.1:0"});
  dump.add(proxy);
  const std::uint16_t port = proxy->wait_listening();
  ASSERT_NE(port, 0);
  for (const Spelling& s : kDenied) {
    const int code = reply_code(port, request_for(s.text, target_port, s.as_ip));
    EXPECT_EQ(code, 0x02) << s.text << (s.as_ip ? " (IP request)" : " (name request)");
  }
  // Through roam's method: the request travels inside the session to the same checks.
  std::uint16_t agent_port = 0;
  auto agent = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "socks", "--proxy", loopback_ep(port), "--listen", "127.0.0.1:0"});
  dump.add(agent);
  agent_port = agent->wait_listening();
  ASSERT_NE(agent_port, 0);
  for (const Spelling& s : {Spelling{"2130706433", false}, Spelling{"localhost", false},
                            Spelling{"::ffff:127.0.0.1", true}, Spelling{"0x7f.1", false}}) {
    EXPECT_EQ(reply_code(agent_port, request_for(s.text, target_port, s.as_ip)), 0x02)
        << s.text << " through roam socks";
  }
  EXPECT_EQ(nonblocking_accepts(target), 0) << "a denied destination was connected to";
  const std::string log = proxy->log();
  std::cout << "[ relay    ] " << kDenied.size() << " spellings refused; e.g. "
            << log.substr(log.find("refused"), log.find('\n', log.find("refused")) - log.find("refused"))
            << "\n";
  EXPECT_NE(log.find("embeds 127.0.0.1"), std::string::npos) << "no reason logged for ::127.0.0.1";
  EXPECT_NE(log.find("loopback"), std::string::npos);
  // A legitimate destination the rules allow still works (allow-listed loopback on another proxy).
  auto open = std::make_shared<Process>(std::vector<std::string>{
      roam_bin(), "proxy", "--listen", "127.0.0.1:0", "--allow-dest", "127.0.0.1/32"});
  dump.add(open);
  const std::uint16_t open_port = open->wait_listening();
  ASSERT_NE(open_port, 0);
  EXPECT_EQ(reply_code(open_port, request_for("127.0.0.1", target_port, true)), 0x00);
  EXPECT_EQ(reply_code(open_port, request_for("127.0.0.2", target_port, true)), 0x02)
      << "the allow list must not widen to the whole of 127/8";
  ::close(target);
}

}  // namespace
}  // namespace roam::itest
