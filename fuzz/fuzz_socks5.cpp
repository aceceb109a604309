// Fuzz target: the SOCKS5 parsers and the server negotiation (libFuzzer; replayed by tests/unit
// under g++).
//
// The whole input goes to every parse_*; whatever parses must encode back to the same bytes and
// have consumed no more than it was given. Then the input drives a ServerNegotiation (with and
// without authentication) in chunks whose sizes come from the input's first byte: the result must
// not depend on how the bytes were split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/socks5/socks5.hpp"

namespace {

using namespace roam::core;
using namespace roam::core::socks5;

#define CHECK(cond)            \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)

template <typename T>
void check_result(const Result<Parsed<T>>& r, Bytes in) {
  if (r) {
    CHECK(r->consumed <= in.size());
    CHECK(r->consumed > 0);
  } else {
    CHECK(r.error().code == Errc::kNeedMore || r.error().code == Errc::kMalformed);
  }
}

struct Outcome {
  Stage stage;
  std::size_t used;
  std::vector<std::uint8_t> out;
  bool ok;
};

Outcome negotiate(Bytes in, std::size_t chunk, bool auth) {
  ServerNegotiation n({auth, true});
  Outcome o{Stage::kGreeting, 0, {}, true};
  std::size_t have = 0;
  const auto check = [](const UserPass& up) { return up.user == "u" && up.password == "p"; };
  while (have < in.size()) {
    have = std::min(in.size(), have + chunk);
    auto r = n.feed(in.subspan(o.used, have - o.used), o.out, check);
    if (!r) {
      o.ok = false;
      break;
    }
    CHECK(*r <= have - o.used);
    o.used += *r;
    if (n.stage() == Stage::kRequestReady || n.stage() == Stage::kRoam) break;
  }
  o.stage = n.stage();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(data, size);

  auto g = parse_greeting(in);
  check_result(g, in);
  if (g) {
    std::vector<std::uint8_t> out;
    CHECK(encode_greeting(g->value.methods, out));
    CHECK(out.size() == g->consumed && std::memcmp(out.data(), data, out.size()) == 0);
  }
  auto up = parse_userpass(in);
  check_result(up, in);
  if (up) {
    std::vector<std::uint8_t> out;
    CHECK(encode_userpass(up->value, out));
    CHECK(out.size() == up->consumed && std::memcmp(out.data(), data, out.size()) == 0);
  }
  auto rq = parse_request(in);
  check_result(rq, in);
  if (rq) {
    std::vector<std::uint8_t> out;
    CHECK(encode_request(rq->value.command, rq->value.dest, out));
    CHECK(out.size() == rq->consumed && std::memcmp(out.data(), data, out.size()) == 0);
    (void)rq->value.dest.str();
  } else if (rq.error().code == Errc::kMalformed) {
    (void)malformed_request_reply(in);
  }
  auto rp = parse_reply(in);
  check_result(rp, in);
  if (rp) {
    std::vector<std::uint8_t> out;
    CHECK(encode_reply(rp->value.reply, rp->value.bound, out));
    CHECK(out.size() == rp->consumed && std::memcmp(out.data(), data, out.size()) == 0);
  }
  check_result(parse_method_choice(in), in);
  check_result(parse_userpass_status(in), in);

  // Segmentation must not matter.
  if (size > 0) {
    const std::size_t chunk = 1 + data[0] % 7;
    const Bytes body = in.subspan(1);
    for (bool auth : {false, true}) {
      const Outcome whole = negotiate(body, body.size() + 1, auth);
      const Outcome split = negotiate(body, chunk, auth);
      CHECK(whole.stage == split.stage);
      CHECK(whole.ok == split.ok);
      CHECK(whole.out == split.out);
      if (whole.ok) CHECK(whole.used == split.used);
    }
  }
  return 0;
}
