// Server side routing of new connections: classify the first frame, find sessions by token, and
// answer unknown tokens with the same REFUSED, after the same work, as forged requests.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/common.hpp"
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

class SessionTable {
 public:
  explicit SessionTable(crypto::Rng& rng);

  void add(Session* s);
  void remove(Session* s);
  Session* find(const wire::Token& t) const;
  std::size_t size() const { return map_.size(); }

  // For a connection whose first frame is MIGRATE: returns the session it names, or nullptr
  // after appending preamble + REFUSED to `reply` (having verified a MAC with a dummy key, so
  // an unknown token costs what a forged MAC costs).
  Session* route_migrate(Bytes initial, std::vector<std::uint8_t>& reply) const;

 private:
  static std::string key_of(const wire::Token& t) { return std::string(t.begin(), t.end()); }
  std::unordered_map<std::string, Session*> map_;
  wire::Key dummy_key_{};
};

}  // namespace roam::core
