// Starting `roam proxy` and `roam socks` on loopback for the proxy tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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

}  // namespace roam::ptest
