// Prints the test vectors of docs/PROTOCOL.md, one "name = hex" line each, in the format the
// document's "Test vectors" section uses. Run: build/tests/vectors/roam_gen_vectors
#include <cstdio>

#include "core/crypto/crypto.hpp"
#include "vectors.hpp"

int main() {
  if (!roam::core::crypto::init()) {
    std::fprintf(stderr, "libsodium failed to initialise\n");
    return 1;
  }
  for (const auto& v : roam::vectors::compute_vectors())
    std::printf("%-16s = %s\n", v.name.c_str(), v.hex.c_str());
  return 0;
}
