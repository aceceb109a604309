// The protocol test vectors of docs/PROTOCOL.md ("Test vectors"), computed from fixed inputs with
// the project's own code: the handshake classes for HELLO / HELLO_REPLY / FINISH and the key
// schedule, and the documented MAC recipe (crypto::mac over mac_label() and the listed fields) for
// the migrate frames. vectors_test.cpp checks the result against literal hex, against the bytes a
// pair of real Sessions puts on the wire, and against the document itself.
#pragma once

#include <string>
#include <vector>

#include "core/session/handshake.hpp"
#include "core/wire/frames.hpp"

namespace roam::vectors {

struct Vector {
  std::string name;
  std::string hex;
};

// Fixed inputs (also listed as vectors, so that the document states them).
core::wire::Key client_secret();    // 01 02 .. 20
core::wire::Key server_secret();    // 21 22 .. 40
core::wire::Random client_random(); // 41 42 .. 60
core::wire::Random server_random(); // 61 62 .. 80
core::wire::Nonce challenge_nonce(); // 81 82 .. 90
core::HandshakeParams client_params();  // features 0x3, cap 8 MiB, wait 10 min
core::HandshakeParams server_params();  // features 0x1, cap 4 MiB, wait 2 h

// The scenario's stream contents.
inline constexpr char kServerData1[] = "welcome to roam\n";  // 16 bytes, delivered on path 1
inline constexpr char kServerData2[] = "more\n";             // 5 bytes, lost with path 1, resent
inline constexpr char kClientData[] = "ping\n";              // 5 bytes
inline constexpr std::uint64_t kClientConsumedBeforeMove = 10;
inline constexpr char kAbortReason[] = "bye";

std::string hex(core::Bytes b);
std::vector<std::uint8_t> unhex(const std::string& h);

// Every vector, in document order. Keys and token are the client's view; vectors_test.cpp checks
// separately that the server derives the same.
std::vector<Vector> compute_vectors();

}  // namespace roam::vectors
