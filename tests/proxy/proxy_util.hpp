// Starting `roam proxy` and `roam socks` on loopback, and a minimal SOCKS5 application, for the
// proxy and dissector tests.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/socks5/socks5.hpp"
#include "itest_util.hpp"

namespace roam::ptest {

// A fresh directory under /tmp, removed with its files at the end.
struct TmpDir {
  std::filesystem::path path;
  TmpDir() {
    char tmpl[] = "/tmp/roam-proxy-test-XXXXXX";
    if (::mkdtemp(tmpl)) path = tmpl;
  }
  ~TmpDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
};

// `roam proxy --listen 127.0.0.1:0 EXTRA...`; `port` is the bound port, 0 if it never said
// "listening on".
inline std::shared_ptr<itest::Process> start_proxy(std::vector<std::string> extra,
                                                   std::uint16_t& port) {
  std::vector<std::string> argv = {itest::roam_bin(), "proxy", "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_shared<itest::Process>(argv);
  port = p->wait_listening();
  return p;
}

// `roam socks --proxy 127.0.0.1:PROXY --listen 127.0.0.1:0 EXTRA...`.
inline std::shared_ptr<itest::Process> start_socks(std::uint16_t proxy_port,
                                                   std::vector<std::string> extra,
                                                   std::uint16_t& port) {
  std::vector<std::string> argv = {itest::roam_bin(), "socks", "--proxy",
                                   itest::loopback_ep(proxy_port), "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_shared<itest::Process>(argv);
  port = p->wait_listening();
  return p;
}

// Reads exactly `n` bytes (deadline 10 s). False when the connection ended first; `how` says how.
inline bool recv_exact(int fd, std::uint8_t* out, std::size_t n, itest::ReadEnd& how) {
  const auto deadline = itest::Clock::now() + itest::seconds(10);
  std::size_t got = 0;
  while (got < n) {
    const auto left =
        std::chrono::duration_cast<itest::milliseconds>(deadline - itest::Clock::now()).count();
    if (left <= 0) {
      how = itest::ReadEnd::kTimeout;
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r == 0) {
      how = itest::ReadEnd::kEof;
      return false;
    }
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      how = errno == ECONNRESET ? itest::ReadEnd::kReset : itest::ReadEnd::kError;
      return false;
    }
    got += static_cast<std::size_t>(r);
  }
  return true;
}

inline std::vector<std::uint8_t> connect_request(std::uint16_t target) {
  std::vector<std::uint8_t> req;
  EXPECT_TRUE(core::socks5::encode_request(
      static_cast<std::uint8_t>(core::socks5::Command::kConnect),
      core::socks5::Address::ipv4({127, 0, 0, 1}, target), req));
  return req;
}

// An unmodified SOCKS5 application: greeting (no authentication) and CONNECT 127.0.0.1:target
// through `socks_port`. Returns the reply code and leaves the connected socket in `fd`, or -1
// when the connection ended before a complete reply (`how` says how; `fd` is then closed).
inline int socks_connect(std::uint16_t socks_port, std::uint16_t target, int& fd,
                         itest::ReadEnd& how) {
  how = itest::ReadEnd::kMax;
  fd = itest::connect_loopback(socks_port);
  if (fd < 0) return -1;
  std::vector<std::uint8_t> out = {0x05, 0x01, 0x00};
  const std::vector<std::uint8_t> req = connect_request(target);
  out.insert(out.end(), req.begin(), req.end());
  std::uint8_t head[2 + 4];
  std::uint8_t addr[18];
  int code = -1;
  if (itest::send_all(fd, out.data(), out.size(), itest::seconds(5)) &&
      recv_exact(fd, head, sizeof head, how) &&
      head[0] == 0x05 && head[1] == 0x00 && head[2] == 0x05 &&
      recv_exact(fd, addr, (head[5] == 0x04 ? 16 : 4) + 2, how))
    code = head[3];
  if (code < 0) {
    ::close(fd);
    fd = -1;
  }
  return code;
}

}  // namespace roam::ptest
