// An attacker's toolbox for the adversarial tier: connections from a chosen loopback source
// address, one-shot exchanges with a deadline, frame parsing of replies, MIGRATE forging, and
// a daemon's memory from /proc.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "core/wire/frames.hpp"
#include "harness.hpp"

namespace roam::itest {

using ByteVec = std::vector<std::uint8_t>;

// A blocking TCP connection from `source` (e.g. "127.0.0.2", port 0) to 127.0.0.1:port; -1 on
// failure (errno set).
int connect_from(const char* source, std::uint16_t port);

struct Exchange {
  ByteVec reply;  // everything the server sent before it closed
  ReadEnd how = ReadEnd::kTimeout;
  bool closed() const { return how == ReadEnd::kEof || how == ReadEnd::kReset; }
};
// Connects from `source`, sends `bytes`, reads until the server closes (or the deadline).
Exchange exchange_from(const char* source, std::uint16_t port, const ByteVec& bytes,
                       std::chrono::milliseconds timeout = std::chrono::seconds(8));

// The frame types in a server's reply (preamble first); nothing if the preamble is missing.
std::vector<core::wire::FrameType> frame_types(const ByteVec& reply);
// The payload of the first frame of type `t` in `reply`.
std::optional<ByteVec> frame_payload(const ByteVec& reply, core::wire::FrameType t);
std::string frame_names(const ByteVec& reply);
bool has_frame(const ByteVec& reply, core::wire::FrameType t);

// Preamble + MIGRATE(token, request, received, mac).
ByteVec migrate_frame(const core::wire::Token& token, std::uint64_t request,
                      std::uint64_t received, const core::wire::Mac& mac);
// Preamble + a HELLO with a fresh key pair (a real client's first bytes).
ByteVec hello_frame();

// VmRSS / VmHWM of a process in KiB (from /proc/PID/status), 0 if unreadable.
std::uint64_t proc_status_kib(pid_t pid, const char* field);

// The MIGRATE requests (preamble + frame) that a TapProxy recorded from connection `from` on.
std::vector<ByteVec> recorded_migrates(TapProxy& tap, std::size_t from);

}  // namespace roam::itest
