// Handing a migrate request between the worker processes of `roam server --workers N` and
// `roam proxy --workers N` (docs/DESIGN.md §Workers).
//
// Theory of operation. Each worker owns its own sessions, so a MIGRATE (a re-attach for the
// proxy) that the kernel gave to worker A may name a session that lives in worker B. The workers
// form a ring: worker i passes such a connection — its descriptor (SCM_RIGHTS) and the bytes
// already read from it — to worker (i+1) mod N over a socketpair. Each worker that receives it
// checks its own table; the one holding the session (token known and MAC valid) takes it as if it
// had accepted it itself. When nobody holds it, it comes back to the worker that accepted it
// (its origin, after N hops), which answers exactly as a single process would: REFUSED after one
// dummy HMAC, charged to ITS refusal limiter — or, for a source over its limit, closed unanswered.
// So the reply to an unknown token is byte-identical to today's, only the accepting worker's
// limiter is ever charged, and no request travels more than N hops (each message names its origin
// and hop count, and a receiver checks self == (origin + hops) mod N).
//
// Pure core: no sockets; the message is a byte string the shell sends beside the descriptor.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.hpp"

namespace roam::core {

// Where a handed-over connection has been.
struct Hop {
  std::uint8_t origin = 0;  // the worker that accepted it (0-based)
  std::uint8_t hops = 0;    // 0: freshly accepted here, never handed over
  friend bool operator==(const Hop&, const Hop&) = default;
};

// Most workers a daemon runs (the hop fields are one byte; more than the machine's cores buys
// nothing).
inline constexpr unsigned kMaxWorkers = 64;
// Most bytes read from a connection that travel with it (a first frame is far smaller).
inline constexpr std::size_t kMaxHandoffBytes = 8192;
// Message header: "RW", version 1, origin, hops, 0, bytes length (u16 big-endian).
inline constexpr std::size_t kHandoffHeader = 8;

enum class HopAction : std::uint8_t {
  kAnswerHere,  // route or refuse here, as a single process does (SessionTable::admit_migrate)
  kPass,        // hand it to the next worker, next_hop(...)
};

// What worker `self` of `workers` does with a MIGRATE connection that arrived with `hop`;
// `held` says whether this worker holds the session it names (hop 0: the token is in its table;
// later hops: the token is in its table and the MAC verifies).
HopAction hop_action(const Hop& hop, unsigned self, unsigned workers, bool held);
// The hop a passed connection travels with, and the worker it goes to.
Hop next_hop(const Hop& hop, unsigned self);
inline unsigned next_worker(unsigned self, unsigned workers) { return (self + 1) % workers; }

// The message sent beside the descriptor. `bytes` must hold at most kMaxHandoffBytes.
std::vector<std::uint8_t> encode_handoff(const Hop& hop, Bytes bytes);
struct Handoff {
  Hop hop;
  std::vector<std::uint8_t> bytes;
};
// Decodes what worker `self` of `workers` received; kMalformed for a bad header, a length that
// does not match, or a hop that cannot have reached `self` (never more than `workers` hops).
Result<Handoff> decode_handoff(Bytes message, unsigned self, unsigned workers);

}  // namespace roam::core
