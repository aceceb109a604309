// Fuzz target: the dispatcher's first-frame classification and the MIGRATE admission with its
// per-source refusal limiter (libFuzzer; replayed by tests/unit under g++).
//
// Input: byte 0 picks the source (one of four) and byte 1 how far virtual time moves; the rest is
// what a new connection sent. classify_first must say need-more / not-roam / version / malformed
// or name HELLO/MIGRATE with an end inside the input, whatever prefix it is given. For MIGRATE,
// admit_migrate runs against a table holding one genuine established session: a routed verdict
// needs the live token and its MAC (so random bytes never route), a refusal is exactly
// preamble + REFUSED, a drop sends nothing, and the table never grows beyond its bound.
#include <cstddef>
#include <cstdint>

#include "core/session/dispatcher.hpp"
#include "fuzz_setup.hpp"

namespace {

using namespace roam;
using namespace roam::fuzz;

struct World {
  std::unique_ptr<core::test::SessionPair> pair = established_pair();
  core::crypto::SeededRng rng{99};
  core::SessionTable table{rng, limits()};
  core::Time now = kT0;
  ByteVec refused_len;  // preamble + REFUSED, for its size
  World() {
    table.add(pair->server.get());
    core::wire::encode_preamble(refused_len);
    core::wire::encode(core::wire::Refused{}, refused_len);
  }
  static core::RefusalLimits limits() {
    core::RefusalLimits l;
    l.burst = 3;  // within a fuzz run's reach
    l.max_sources = 2;
    return l;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  init_once();
  static World w;
  if (size < 2) return 0;
  const core::SourceKey source = core::SourceKey::ipv4({10, 0, 0, static_cast<std::uint8_t>(data[0] & 3)});
  w.now = w.now + std::chrono::milliseconds(data[1] * 10);
  const Bytes in(data + 2, size - 2);

  // Every prefix classifies consistently: once complete, longer inputs agree.
  for (std::size_t n = 0; n <= in.size(); n += 1 + n / 4) {
    auto f = core::classify_first(in.first(n));
    if (f) {
      ROAM_FUZZ_CHECK(f->end <= n);
      ROAM_FUZZ_CHECK(f->type == core::wire::FrameType::kHello ||
                      f->type == core::wire::FrameType::kMigrate);
    }
  }
  auto first = core::classify_first(in);
  if (!first) {
    const auto c = first.error().code;
    ROAM_FUZZ_CHECK(c == core::Errc::kNeedMore || c == core::Errc::kNotRoam ||
                    c == core::Errc::kVersion || c == core::Errc::kMalformed);
    return 0;
  }
  if (first->type != core::wire::FrameType::kMigrate) return 0;
  ByteVec reply;
  const core::MigrateVerdict v = w.table.admit_migrate(in.first(first->end), source, w.now, reply);
  if (v.session) {
    ROAM_FUZZ_CHECK(v.session == w.pair->server.get());
    ROAM_FUZZ_CHECK(reply.empty() && !v.dropped);
  } else if (v.dropped) {
    ROAM_FUZZ_CHECK(reply.empty());
  } else {
    ROAM_FUZZ_CHECK(reply.size() == w.refused_len.size());
  }
  ROAM_FUZZ_CHECK(w.table.limiter().size() <= World::limits().max_sources);
  // The old entry point (the simulator's) agrees on who is named.
  ByteVec reply2;
  core::Session* routed = w.table.route_migrate(in.first(first->end), reply2);
  if (v.session) ROAM_FUZZ_CHECK(routed == v.session);
  return 0;
}
