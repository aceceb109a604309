// A server key file for tests, written as `roam keygen` writes it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "core/crypto/crypto.hpp"
#include "core/crypto/keys.hpp"

namespace roam::itest {

// Writes a fresh secret key file (one "roam-ed25519-secret BASE64" line, mode 0600) and returns
// its public line "ed25519 BASE64" (what `roam keygen` prints).
inline std::string write_server_key(const std::filesystem::path& file) {
  core::wire::Key seed{};
  core::crypto::system_rng().fill(seed);
  {
    std::ofstream out(file);
    out << core::keys::format_secret(seed);
  }
  std::filesystem::permissions(
      file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace);
  return core::keys::format_public(core::crypto::sign_keypair_from_seed(seed).public_key);
}

}  // namespace roam::itest
