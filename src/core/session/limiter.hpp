// Per-source limit on refused migrate requests (token guessing).
//
// Theory of operation. A MIGRATE names a session by a 128-bit token; guessing one is hopeless,
// but each guess costs the server an HMAC (unknown tokens get the same work as forged MACs, so
// the two cannot be told apart). A source that keeps collecting REFUSED replies is guessing (or
// broken): once it has spent its burst, its further MIGRATE attempts are closed at once, with no
// reply and no HMAC work, except those naming a token that is actually live (a hash lookup, no
// MAC work), so a genuine client behind the same NAT as the attacker still migrates — a per-source
// cap must not lock out NAT users (SPEC 13). While a source is limited, a live token with a bad
// MAC is closed without a reply too, so the limited path reveals nothing a REFUSED would not.
// New handshakes (HELLO) are never limited here: the global cap on unfinished handshakes with
// oldest-eviction bounds them.
//
// Sources are IPv4 /32 and IPv6 /64 (one host's allocation). Each has a token bucket of refusals:
// `burst` to start with, refilled at `refill_per_second`; a refusal takes one. The table holds at
// most `max_sources` entries; the least recently used one is evicted when a new source is
// charged (its bucket starts full again, so an attacker with more prefixes than entries only
// gets each prefix's burst). Memory: about 120 bytes per entry, under 0.5 MiB at the default.
//
// Pure core: no clock, no sockets; every call takes `now`. Not thread-safe (one loop thread).
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/common.hpp"

struct sockaddr;

namespace roam::core {

// The prefix a source is limited by: an IPv4 /32 (stored as ::ffff:a.b.c.d) or an IPv6 /64.
struct SourceKey {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const SourceKey&, const SourceKey&) = default;
  static SourceKey ipv4(const std::array<std::uint8_t, 4>& a);
  // IPv4-mapped addresses become their IPv4 /32; others are cut to their /64.
  static SourceKey ipv6(const std::array<std::uint8_t, 16>& a);
  // From a sockaddr_in / sockaddr_in6 (getpeername); a zero key for anything else.
  static SourceKey of(const sockaddr* sa, std::size_t len);
  // "192.0.2.7" or "2001:db8:1:2::/64".
  std::string str() const;
};

struct RefusalLimits {
  // Refusals a source may collect at once: generous for a client that restarted and probes with
  // a forgotten token from several paths (it sees at most a few), tiny for a guesser.
  double burst = 20;
  // Refusals per second a source earns back: a guesser gets 2 checks per second, ~2^-127 of the
  // token space per year.
  double refill_per_second = 2;
  // Sources remembered at once (LRU): bounds memory to ~0.5 MiB whatever the attacker does.
  std::size_t max_sources = 4096;
  // A limited source is logged at most once per this interval (with the count dropped meanwhile).
  Duration log_interval = std::chrono::seconds(10);
};

class RefusalLimiter {
 public:
  explicit RefusalLimiter(RefusalLimits limits = {});

  // True when `src` has no refusal left: its MIGRATE attempts are to be closed unchecked.
  // Refills the bucket; never creates an entry.
  bool limited(const SourceKey& src, Time now);
  // A REFUSED was sent to `src`: takes one refusal (creating the entry, evicting the least
  // recently used one when the table is full).
  void note_refused(const SourceKey& src, Time now);
  // A limited attempt from `src` was closed. Returns how many were closed since the last log line
  // (this one included) when a line is due now (once per log_interval per source), else nothing.
  std::optional<std::uint64_t> note_dropped(const SourceKey& src, Time now);

  std::size_t size() const { return map_.size(); }
  const RefusalLimits& limits() const { return limits_; }

 private:
  struct Entry {
    SourceKey key;
    double tokens = 0;
    Time refilled;
    Time logged = Time{Duration::min()};
    std::uint64_t dropped = 0;  // since the last log line
  };
  struct Hash {
    std::size_t operator()(const SourceKey& k) const;
  };
  using Lru = std::list<Entry>;  // most recently used first
  Entry* touch(const SourceKey& src, Time now);  // refilled entry or nullptr

  RefusalLimits limits_;
  Lru lru_;
  std::unordered_map<SourceKey, Lru::iterator, Hash> map_;
};

// Members in arrival order with O(1) add, remove and oldest: the shells' list of sessions in the
// wait state, so that when `--max-waiting` is exceeded the one that has waited longest ends.
template <typename T>
class ArrivalOrder {
 public:
  // Appends `v` (no effect if it is already in).
  void add(T v) {
    if (where_.count(v)) return;
    order_.push_back(v);
    where_[v] = std::prev(order_.end());
  }
  void remove(T v) {
    auto it = where_.find(v);
    if (it == where_.end()) return;
    order_.erase(it->second);
    where_.erase(it);
  }
  // The member added longest ago; nothing when empty.
  std::optional<T> oldest() const {
    if (order_.empty()) return std::nullopt;
    return order_.front();
  }
  std::size_t size() const { return order_.size(); }

 private:
  std::list<T> order_;
  std::unordered_map<T, typename std::list<T>::iterator> where_;
};

}  // namespace roam::core
