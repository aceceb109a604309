// Fuzz target: the known_hosts and key-file parsers (src/core/crypto/keys.*), on any text.
// Every entry they accept must print back to a line that parses to the same entry.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/crypto/keys.hpp"
#include "fuzz_setup.hpp"

using namespace roam;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::init_once();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto hosts = core::keys::parse_known_hosts(text);
  for (const auto& e : hosts.entries) {
    const auto again = core::keys::parse_known_hosts(core::keys::known_host_line(e.host, e.key));
    ROAM_FUZZ_CHECK(again.errors.empty() && again.entries.size() == 1);
    ROAM_FUZZ_CHECK(again.entries[0].host == e.host && again.entries[0].key == e.key);
    ROAM_FUZZ_CHECK(core::keys::find_known_host(hosts, e.host) != nullptr);
  }
  if (auto kp = core::keys::parse_secret(text)) {
    // A parsed secret gives a working key pair.
    const std::uint8_t m[1] = {0};
    ROAM_FUZZ_CHECK(core::crypto::sign_verify(kp->public_key, {core::Bytes(m, 1)},
                                              core::crypto::sign(*kp, {core::Bytes(m, 1)})));
  }
  return 0;
}
