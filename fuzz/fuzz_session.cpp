// Fuzz target: an established session pair, with hostile bytes on its paths.
//
// The first input byte picks where the bytes go, the second how they are cut into reads:
//   0  the server's active path (as if the client sent them)
//   1  the client's active path (as if the server sent them)
//   2  a new connection to the server (through the dispatcher: MIGRATE routing, probation)
//   3  a new connection to the server after a genuine MIGRATE (RESPONSE handling and beyond)
//   4  the client's migrate attempt, as the server's answer
// A first byte of 5..9 (mod 10) runs the same on an encrypted pair whose server signs its
// handshake (SEALED frames, SERVER_KEY); of those, an odd data[0] / 10 seals with AES-256-GCM
// (where the CPU has AES-NI), an even one with XChaCha20-Poly1305. Then time moves past
// heartbeats and the wait, and both
// applications write. Nothing crashes;
// peer input ends at most that one session.
#include <cstddef>
#include <cstdint>

#include "fuzz_setup.hpp"

using namespace roam;
using roam::fuzz::ByteVec;
using Pair = core::test::SessionPair;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::init_once();
  if (size < 2) return 0;
  const int mode = data[0] % 5;
  const bool secure = data[0] % 10 >= 5;
  const bool aes = (data[0] / 10) % 2 == 1;
  const std::size_t chunk = data[1] == 0 ? SIZE_MAX : data[1];
  const core::Bytes input(data + 2, size - 2);

  auto p = fuzz::established_pair(secure, aes);
  p->max_chunk = chunk;
  Pair::Link& first = p->last_link();
  switch (mode) {
    case 0:
      first.c2s.assign(input.begin(), input.end());
      break;
    case 1:
      first.s2c.assign(input.begin(), input.end());
      break;
    case 2: {
      Pair::Link& l = p->open_raw_link();
      l.c2s.assign(input.begin(), input.end());
      break;
    }
    case 3: {
      Pair::Link& l = p->open_raw_link();
      l.c2s = fuzz::genuine_migrate(*p->client, 1);
      l.c2s.insert(l.c2s.end(), input.begin(), input.end());
      break;
    }
    case 4: {
      p->cut(first, true, false);
      if (!p->client->take_connect_request()) std::abort();
      Pair::Link& l = p->open_link();
      l.server = Pair::ServerSide::kRefused;  // the input plays the server
      core::wire::encode_preamble(l.s2c);
      l.s2c.insert(l.s2c.end(), input.begin(), input.end());
      break;
    }
  }
  p->pump();
  p->auto_reconnect = true;
  for (auto d : {std::chrono::seconds(1), std::chrono::seconds(3), std::chrono::seconds(700)}) {
    p->client->write(core::test::pattern(300, 3));
    if (p->server) p->server->write(core::test::pattern(300, 4));
    p->advance_to(p->now + d);
    p->pump();
  }
  // A session that ended stays ended and takes no more bytes.
  for (core::Session* s : {p->client.get(), p->server.get()}) {
    if (s && s->state() == core::State::kClosed) {
      ROAM_FUZZ_CHECK(s->write(core::test::pattern(1, 5)) == 0);
      ROAM_FUZZ_CHECK(s->next_deadline() == core::Time::never());
    }
  }
  return 0;
}
