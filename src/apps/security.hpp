// --encrypt, --key, --known-hosts and `roam keygen`: the command-line side of session encryption
// and server keys (docs/PROTOCOL.md §Encryption, §Server keys).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/session/session.hpp"
#include "io/known_hosts.hpp"

namespace roam::apps {

struct SecurityFlags {
  bool encrypt = false;
  std::string cipher = "auto";  // auto (AES-256-GCM when both ends have AES-NI) | xchacha20-poly1305
  std::string key;          // server, proxy
  std::string known_hosts;  // connect, socks
};

enum class Side : std::uint8_t { kServer, kClient };
// kServer (`server`, `proxy`): --encrypt (require it; without it either is accepted) and --key
// FILE (sign every handshake). kClient (`connect`, `socks`): --encrypt (offer and require it) and
// --known-hosts FILE.
void add_security_flags(CLI::App& cmd, SecurityFlags& flags, Side side);

// Applies the server flags to `cfg`. Throws std::runtime_error for an unreadable key file or one
// that others may read (exit status 1).
void apply_server_security(const SecurityFlags& flags, core::SessionConfig& cfg);
// Applies the client flags to `cfg` and returns the pin of `server` ("host:port"). Throws
// std::runtime_error for an unreadable known_hosts file.
std::shared_ptr<io::ServerPin> apply_client_security(const SecurityFlags& flags,
                                                     const std::string& server,
                                                     core::SessionConfig& cfg);

struct KeygenFlags {
  std::string out;
  bool force = false;
};
CLI::App* add_keygen_command(CLI::App& app, KeygenFlags& flags);
int run_keygen(const KeygenFlags& flags);

}  // namespace roam::apps
