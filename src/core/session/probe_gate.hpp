// Reconnect probes shared among the sessions of one process.
//
// Theory of operation. A client session without a working path asks to reconnect every 100 ms
// (then backing off). Left alone, N such sessions open N connections every 100 ms towards the same
// server from the same address — after a shared outage (an access point failing, the server
// stalling) that is a storm that exhausts descriptors and the server's cap on unfinished
// connections, and recovery takes longer the more sessions there are. SPEC 7 asks for probes
// "shared per local address and server, not per session", and this is that sharing.
//
// A key names (local source address, server address). While the server has not been reached from
// there recently, one probe per `spacing` is admitted for the key (at most `max_in_flight` at a
// time); every other session asking is put on the key's waiting list and does not connect. When a
// probe connects, the key is *reachable* for `reachable_for`: every waiting session is woken at
// once and every session asking is admitted, so they all reconnect together without waiting for
// their next tick. A probe that fails or times out changes nothing but the in-flight count.
//
// Pure bookkeeping on virtual time: no sockets, no clocks. The shell calls admit() before a
// reconnect attempt and done() when that attempt's TCP connect resolves; wake callbacks are called
// synchronously from done() and must not call back into the gate (schedule work instead).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/common.hpp"

namespace roam::core {

class ProbeGate {
 public:
  using Waiter = std::uintptr_t;

  // spacing: least time between two probes of one key while unreachable (SPEC 7: 100 ms);
  // reachable_for: how long after a connected probe every session may connect at will;
  // max_in_flight: most admitted attempts of one unreachable key connecting at once.
  explicit ProbeGate(Duration spacing = std::chrono::milliseconds(100),
                     Duration reachable_for = std::chrono::seconds(1),
                     std::size_t max_in_flight = 32);

  // A session (`w`) wants to connect for `key` now. True: it may, and must report the attempt
  // with done(key, …) when its connect resolves (or is abandoned). False: it must not; it is
  // registered as waiting and `wake` is called once when a probe of this key connects (a later
  // admit() or forget() replaces or drops the registration).
  bool admit(const std::string& key, Waiter w, std::function<void()> wake, Time now);

  // An attempt admitted for `key` resolved: `connected` when its TCP connect succeeded. Wakes the
  // key's waiting sessions on success.
  void done(const std::string& key, bool connected, Time now);

  // `w` goes away (its session ended, or it no longer needs a path): drops its registrations.
  void forget(Waiter w);

  // For tests and status: attempts of `key` in flight, sessions waiting on it.
  std::size_t in_flight(const std::string& key) const;
  std::size_t waiting(const std::string& key) const;
  std::size_t keys() const { return keys_.size(); }

 private:
  struct Entry {
    Time last_probe{};
    bool probed = false;
    Time reachable_until{};
    std::size_t in_flight = 0;
    std::map<Waiter, std::function<void()>> waiting;
  };
  void tidy(std::map<std::string, Entry>::iterator it, Time now);

  Duration spacing_;
  Duration reachable_for_;
  std::size_t max_in_flight_;
  std::map<std::string, Entry> keys_;
};

}  // namespace roam::core
