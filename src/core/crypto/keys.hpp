// Server static keys and the client's known_hosts file, as text (no file I/O here: the shell
// reads and writes the files, src/io/known_hosts.*).
//
// Formats (docs/PROTOCOL.md §Server keys):
//   secret key file   "roam-ed25519-secret " base64(32-byte seed) "\n"       (mode 0600)
//   public key line   "ed25519 " base64(32-byte public key)
//   known_hosts line  HOST:PORT " ed25519 " base64(public key)   ('#' comments, blank lines)
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common.hpp"
#include "core/crypto/crypto.hpp"

namespace roam::core::keys {

inline constexpr std::string_view kKeyType = "ed25519";
inline constexpr std::string_view kSecretTag = "roam-ed25519-secret";

std::string format_secret(const wire::Key& seed);
// kMalformed with a reason for anything but one well-formed secret line.
Result<crypto::SignKeyPair> parse_secret(std::string_view text);

// "ed25519 BASE64"
std::string format_public(const crypto::SignPublic& key);
// Parses the two fields of a public key ("ed25519", base64). kMalformed with a reason.
Result<crypto::SignPublic> parse_public(std::string_view type, std::string_view base64);

struct KnownHost {
  std::string host;  // "host:port" exactly as the client names the server
  crypto::SignPublic key{};
  std::size_t line = 0;  // 1-based
};
struct KnownHosts {
  std::vector<KnownHost> entries;
  std::vector<std::string> errors;  // "line N: why" for each line that was skipped
};
// Never fails: malformed lines are skipped and reported in `errors` (like ssh, one bad line does
// not lock the user out of every other host).
KnownHosts parse_known_hosts(std::string_view text);
// The first entry for `host`, if any.
const KnownHost* find_known_host(const KnownHosts& hosts, std::string_view host);
// One line, with its newline.
std::string known_host_line(std::string_view host, const crypto::SignPublic& key);

}  // namespace roam::core::keys
