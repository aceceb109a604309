// Bounds on what unauthenticated or abandoned peers can make a daemon hold, shared by `roam server`
// and `roam proxy`: handshakes in progress (a global cap, oldest evicted: SPEC 13) and sessions in
// the wait state (--max-waiting, longest-waiting ended).
#pragma once

#include <algorithm>
#include <string>

#include <spdlog/spdlog.h>

#include "core/session/limiter.hpp"
#include "io/session_driver.hpp"

namespace roam::io {

// SessionDriver::Hooks::on_wait for a daemon: keeps `waiting` in arrival order and, when more
// than `cap` (at least 1) sessions wait, aborts the one that has waited longest (its application
// sees the abort: a RST on the forwarded socket) and logs it. Abort only schedules that driver's
// teardown, so this is safe to call from inside another driver's event handling.
inline void track_waiting(core::ArrivalOrder<SessionDriver*>& waiting, SessionDriver& d,
                          bool is_waiting, std::size_t cap) {
  if (!is_waiting) {
    waiting.remove(&d);
    return;
  }
  waiting.add(&d);
  while (waiting.size() > std::max<std::size_t>(cap, 1)) {
    SessionDriver* oldest = *waiting.oldest();
    waiting.remove(oldest);
    spdlog::warn("[{}] {} sessions in the wait state (--max-waiting {}): ending the one that has "
                 "waited longest",
                 oldest->name(), waiting.size() + 1, cap);
    oldest->abort("too many sessions waiting (--max-waiting " + std::to_string(cap) + ")");
  }
}

// A session whose handshake is in progress (HELLO answered, FINISH not yet heard) was added:
// when more than `cap` are in progress the oldest is ended (never the newcomer), so a flood of
// HELLOs that never finish costs at most `cap` sessions for at most the handshake deadline.
// Call with is_new=false when the handshake completes or the session ends.
inline void track_handshake(core::ArrivalOrder<SessionDriver*>& handshaking, SessionDriver& d,
                            bool is_new, std::size_t cap) {
  if (!is_new) {
    handshaking.remove(&d);
    return;
  }
  handshaking.add(&d);
  while (handshaking.size() > std::max<std::size_t>(cap, 1)) {
    SessionDriver* oldest = *handshaking.oldest();
    handshaking.remove(oldest);
    spdlog::info("handshakes in progress at cap ({}); ending the oldest, [{}]", cap, oldest->name());
    oldest->abort("handshake evicted: too many in progress");
  }
}

}  // namespace roam::io
