// gtest-side helpers for the loopback tier: starting the roam daemons and printing their logs
// when a test fails.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace roam::itest {

// Owns a share of every process a test starts. At the end of the test it stops them (SIGTERM,
// then SIGKILL), fails the test if any of them reported a sanitizer error (the tier runs the
// ROAM_SANITIZE build too), and prints their stderr when the test has failed.
class DumpOnFailure {
 public:
  void add(std::shared_ptr<Process> p) { procs_.push_back(std::move(p)); }
  ~DumpOnFailure() {
    for (const auto& p : procs_) {
      p->terminate();
      const std::string log = p->log();
      for (const char* bad : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                              "ThreadSanitizer"})
        EXPECT_EQ(log.find(bad), std::string::npos) << "sanitizer report from a child";
    }
    if (!::testing::Test::HasFailure()) return;
    for (const auto& p : procs_) std::cerr << p->describe() << "\n";
  }

 private:
  std::vector<std::shared_ptr<Process>> procs_;
};

inline std::string loopback_ep(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// `roam server --listen 127.0.0.1:0 --forward 127.0.0.1:FORWARD EXTRA...`; `port` is the bound
// port, 0 if it never said "listening on".
inline std::shared_ptr<Process> start_server(std::uint16_t forward, std::vector<std::string> extra,
                                             std::uint16_t& port) {
  std::vector<std::string> argv = {roam_bin(), "server", "--listen", "127.0.0.1:0", "--forward",
                                   loopback_ep(forward)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_shared<Process>(argv);
  port = p->wait_listening();
  return p;
}

// `roam connect 127.0.0.1:SERVER --local 127.0.0.1:0 EXTRA...`.
inline std::shared_ptr<Process> start_local_client(std::uint16_t server,
                                                   std::vector<std::string> extra,
                                                   std::uint16_t& port) {
  std::vector<std::string> argv = {roam_bin(), "connect", loopback_ep(server), "--local",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_shared<Process>(argv);
  port = p->wait_listening();
  return p;
}

constexpr std::uint64_t kMiB = 1ull << 20;

}  // namespace roam::itest
