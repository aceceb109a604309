// Fuzz target: bytes from a hostile peer during the handshake, on either side.
//
// The first input byte picks the scenario, the second how the bytes are cut into reads (so the
// incremental decoder sees every split); the rest is what the peer sends:
//   0  server: a new connection's first bytes straight into Session::accept
//   1  server: a genuine preamble + HELLO, then the input (FINISH and onwards)
//   2  client: after sending HELLO, the input as the server's answer
//   3  client: a genuine preamble + HELLO_REPLY, then the input (frames after the handshake)
// A first byte of 4..7 (mod 8) runs the same with --encrypt on both sides and a server that signs
// (SERVER_KEY after HELLO_REPLY, SEALED frames after FINISH); of those, an odd data[0] / 8 offers
// AES-256-GCM on both sides (negotiated where the CPU has AES-NI). Whatever happens, nothing crashes,
// and a closed session stays closed.
#include <cstddef>
#include <cstdint>

#include "fuzz_setup.hpp"

using namespace roam;
using roam::fuzz::ByteVec;

namespace {

const std::uint8_t data_of_one[1] = {0x61};

void exercise(core::Session& s, core::PathId id, core::Bytes input, std::size_t chunk) {
  ByteVec sink;
  core::test::deliver(s, id, input, fuzz::kT0, chunk);
  core::test::drain(s, id, fuzz::kT0, sink);
  const bool was_closed = s.state() == core::State::kClosed;
  s.on_timeout(fuzz::kT0 + std::chrono::seconds(6));  // past the handshake deadline
  core::test::drain(s, id, fuzz::kT0 + std::chrono::seconds(6), sink);
  while (s.poll_event()) {
  }
  if (was_closed) ROAM_FUZZ_CHECK(s.state() == core::State::kClosed);
  if (s.state() == core::State::kClosed) {
    ROAM_FUZZ_CHECK(s.write(core::Bytes(data_of_one, 1)) == 0);
    ROAM_FUZZ_CHECK(s.next_deadline() == core::Time::never());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::init_once();
  if (size < 2) return 0;
  const int mode = data[0] % 4;
  const bool secure = data[0] % 8 >= 4;
  const bool aes = (data[0] / 8) % 2 == 1;
  const std::size_t chunk = data[1] == 0 ? SIZE_MAX : data[1];
  const core::Bytes input(data + 2, size - 2);

  switch (mode) {
    case 0: {
      core::crypto::SeededRng rng(fuzz::kServerSeed);
      // Split like the shell does: what arrived first goes to accept, the rest is read later.
      const std::size_t first = std::min(input.size(), chunk);
      auto s = core::Session::accept(fuzz::fuzz_config(secure, aes), rng, 1, input.first(first), fuzz::kT0);
      exercise(*s, 1, input.subspan(first), chunk);
      break;
    }
    case 1: {
      fuzz::ClientStart c(secure, aes);
      fuzz::ServerStart s(c.hello, secure, aes);
      exercise(*s.session, 1, input, chunk);
      break;
    }
    case 2: {
      fuzz::ClientStart c(secure, aes);
      exercise(*c.session, 1, input, chunk);
      break;
    }
    case 3: {
      fuzz::ClientStart c(secure, aes);
      fuzz::ServerStart s(c.hello, secure, aes);
      ByteVec all = s.reply;
      all.insert(all.end(), input.begin(), input.end());
      exercise(*c.session, 1, all, chunk);
      break;
    }
  }
  return 0;
}
