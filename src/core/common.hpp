// Shared vocabulary of the protocol core: errors as values, time as a type, byte views.
//
// The core never reads a clock: every entry point takes `Time now`, which the I/O shell reads
// once per loop iteration from CLOCK_BOOTTIME (so that the wait keeps counting through suspend).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace roam::core {

using Bytes = std::span<const std::uint8_t>;
using MutBytes = std::span<std::uint8_t>;

// Monotonic time since an arbitrary epoch. Durations and instants share the representation.
using Duration = std::chrono::nanoseconds;
struct Time {
  Duration since_epoch{0};
  friend constexpr auto operator<=>(Time, Time) = default;
  friend constexpr Time operator+(Time t, Duration d) { return Time{t.since_epoch + d}; }
  friend constexpr Time operator-(Time t, Duration d) { return Time{t.since_epoch - d}; }
  friend constexpr Duration operator-(Time a, Time b) { return a.since_epoch - b.since_epoch; }
  static constexpr Time never() { return Time{Duration::max()}; }
};

// What went wrong, as a value. `code` is stable (used in logs, tests and the CLOSE frame);
// `detail` is for humans.
enum class Errc : std::uint16_t {
  kNeedMore = 1,       // decoder: not enough bytes yet (not an error of the peer)
  kMalformed,          // decoder: bytes can never form a valid message
  kNotRoam,            // the peer's first bytes are not the roam preamble
  kVersion,            // the peer speaks a roam version we do not
  kBadMac,             // a MAC did not verify
  kCrypto,             // key exchange failed (e.g. low-order point)
  kProtocol,           // a valid message at the wrong time or breaking a rule (credit, order)
  kRefused,            // the server refused a migrate request (unknown session or forgery)
  kTimeout,            // a deadline passed (handshake, wait)
  kAborted,            // the peer or the application aborted the session
  kRetentionLost,      // the peer asked to resume from bytes we no longer hold
  kLimit,              // a configured cap was reached
};

const char* errc_name(Errc e);

struct Error {
  Errc code;
  std::string detail;
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Errc code, std::string detail = {}) {
  return tl::unexpected<Error>(Error{code, std::move(detail)});
}

}  // namespace roam::core
