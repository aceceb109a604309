// Server side routing of new connections: classify the first frame, find sessions by token, and
// answer unknown tokens with the same REFUSED, after the same work, as forged requests.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/common.hpp"
#include "core/session/limiter.hpp"
#include "core/session/session.hpp"

namespace roam::core {

struct FirstFrame {
  wire::FrameType type;
  std::size_t end = 0;  // offset just past the first frame
};

// Looks at the bytes a new connection sent so far. kNeedMore until preamble and first frame are
// complete; kNotRoam / kVersion / kMalformed otherwise; the first frame must be HELLO or MIGRATE.
Result<FirstFrame> classify_first(Bytes initial);

// The text a server writes to a peer that does not speak roam, before closing.
inline constexpr char kNotRoamReply[] =
    "roam: this port speaks the roam session protocol; connect with `roam connect`\r\n";

// What the shell does with a connection whose first frame is MIGRATE (SessionTable::admit_migrate).
struct MigrateVerdict {
  Session* session = nullptr;  // hand the connection to this session (its MAC checked out)
  // Otherwise: `reply` holds preamble + REFUSED to send before closing, unless `dropped` (the
  // source is over its refusal limit: close without a reply).
  bool dropped = false;
  // When dropped and a log line is due: attempts dropped from this source since the last line.
  std::optional<std::uint64_t> log_dropped;
};

class SessionTable {
 public:
  explicit SessionTable(crypto::Rng& rng, RefusalLimits limits = {});

  void add(Session* s);
  void remove(Session* s);
  Session* find(const wire::Token& t) const;
  std::size_t size() const { return map_.size(); }

  // For a connection whose first frame is MIGRATE: returns the session it names, or nullptr
  // after appending preamble + REFUSED to `reply` (having verified a MAC with a dummy key, so
  // an unknown token costs what a forged MAC costs).
  Session* route_migrate(Bytes initial, std::vector<std::uint8_t>& reply) const;

  // The shells' entry point for a MIGRATE connection from `source`: routes it to its session only
  // if the MAC checks out; an unknown token or a forged MAC gets REFUSED (byte-identical, one HMAC
  // each) and counts against the source's refusal limit. A source over its limit is dropped
  // without a reply and without HMAC work, unless the token is live and the MAC verifies (a
  // genuine client behind the attacker's NAT still migrates; see limiter.hpp).
  MigrateVerdict admit_migrate(Bytes initial, const SourceKey& source, Time now,
                               std::vector<std::uint8_t>& reply);
  const RefusalLimiter& limiter() const { return limiter_; }
  // For `--workers N` (core/session/handoff.hpp): the session a MIGRATE names if this table holds
  // it, else nullptr. With `check_mac`, only if its MAC verifies too (one HMAC for a live token,
  // none for an unknown one, as on the limited path). Touches no limiter.
  Session* holder(Bytes initial, bool check_mac) const;

 private:
  // One HMAC verification: the session's key when `s` is set, the dummy key otherwise.
  bool migrate_mac_ok(const Session* s, const wire::Migrate& m) const;
  static void encode_refused(std::optional<std::uint64_t> request, std::vector<std::uint8_t>& reply);

  static std::string key_of(const wire::Token& t) { return std::string(t.begin(), t.end()); }
  std::unordered_map<std::string, Session*> map_;
  wire::Key dummy_key_{};
  RefusalLimiter limiter_;
};

}  // namespace roam::core
