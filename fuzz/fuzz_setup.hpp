// Deterministic starting points shared by the fuzz targets and the seed-corpus generator.
//
// Every random value comes from a SeededRng with a fixed seed, so the bytes a session sends are
// the same in every run: a seed file can hold a genuine HELLO_REPLY, FINISH or RESPONSE (MACs
// included) and the fuzzer mutates from deep inside the protocol instead of from its front door.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/session/session.hpp"
#include "support/session_pair.hpp"

namespace roam::fuzz {

using core::Bytes;
using core::test::ByteVec;

// A check that holds for every input; a violation is a bug the fuzzer should report.
#define ROAM_FUZZ_CHECK(cond) \
  do {                        \
    if (!(cond)) std::abort(); \
  } while (0)

inline constexpr std::uint64_t kClientSeed = 101;
inline constexpr std::uint64_t kServerSeed = 202;
inline constexpr std::uint64_t kPairSeed = 7;
inline const core::Time kT0{std::chrono::seconds(1000)};

// Small caps so that credit and retention limits are within a fuzz input's reach.
inline core::SessionConfig fuzz_config() {
  core::SessionConfig c;
  c.handshake.buffer_cap = 4096;
  return c;
}

// With `secure`, the same configuration on both sides encrypts (--encrypt) and the server signs
// the handshake with a fixed key (--key): SEALED frames and SERVER_KEY are reached too. With
// `aes` both ends offer AES-256-GCM (negotiated where the CPU has AES-NI), else XChaCha20-Poly1305.
inline core::SessionConfig fuzz_config(bool secure, bool aes = false) {
  core::SessionConfig c = fuzz_config();
  c.handshake.aes_gcm = aes;
  if (!secure) return c;
  c.handshake.features |= core::wire::kFeatureEncrypt | core::wire::kFeatureServerKey;
  c.handshake.require_encrypt = true;
  static const auto identity = [] {
    core::wire::Key seed{};
    seed[0] = 1;
    return std::make_shared<const core::crypto::SignKeyPair>(
        core::crypto::sign_keypair_from_seed(seed));
  }();
  c.handshake.identity = identity;
  return c;
}

inline void init_once() {
  static const bool ok = core::crypto::init();
  ROAM_FUZZ_CHECK(ok);
}

// The client side of a handshake: preamble and HELLO, as the seeded client sends them.
struct ClientStart {
  core::crypto::SeededRng rng{kClientSeed};
  std::unique_ptr<core::Session> session;
  ByteVec hello;  // preamble + HELLO
  explicit ClientStart(bool secure = false, bool aes = false) {
    session = core::Session::client(fuzz_config(secure, aes), rng, kT0);
    session->attach_path(1, kT0);
    core::test::drain(*session, 1, kT0, hello);
  }
};

// The server side after a genuine HELLO: its preamble and HELLO_REPLY.
struct ServerStart {
  core::crypto::SeededRng rng{kServerSeed};
  std::unique_ptr<core::Session> session;
  ByteVec reply;  // preamble + HELLO_REPLY
  explicit ServerStart(const ByteVec& hello, bool secure = false, bool aes = false) {
    session = core::Session::accept(fuzz_config(secure, aes), rng, 1, hello, kT0);
    core::test::drain(*session, 1, kT0, reply);
  }
};

// An established pair on path 1, with a little data exchanged.
inline std::unique_ptr<core::test::SessionPair> established_pair(bool secure = false,
                                                                  bool aes = false) {
  auto p = std::make_unique<core::test::SessionPair>(fuzz_config(secure, aes), fuzz_config(secure, aes),
                                                     kPairSeed);
  ROAM_FUZZ_CHECK(p->establish());
  p->client->write(core::test::pattern(100, 1));
  p->server->write(core::test::pattern(50, 2));
  p->pump();
  return p;
}

// A genuine MIGRATE of the established pair (preamble first), as a new connection sends it.
inline ByteVec genuine_migrate(const core::Session& client, std::uint64_t request) {
  core::wire::Migrate m;
  m.token = client.token();
  m.request = request;
  m.received = client.bytes_received();
  m.mac = core::crypto::mac(client.negotiated().keys.mac_c2s,
                            {core::mac_label(core::wire::FrameType::kMigrate), m.token,
                             core::crypto::be64(m.request), core::crypto::be64(m.received)});
  ByteVec out;
  core::wire::encode_preamble(out);
  core::wire::encode(m, out);
  return out;
}

}  // namespace roam::fuzz
