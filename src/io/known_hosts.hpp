// The client's known_hosts file: trust on first use of a server's long-term key, like ssh.
//
// A server started with --key signs every handshake (SERVER_KEY). The first time a client reaches
// HOST:PORT and the server presents a key, the key is appended to the file and logged; from then
// on the handshake fails unless the server presents exactly that key (the core checks it:
// HandshakeParams::pinned_server_key), so an attacker who shows up later cannot take the session.
// A server without --key is never pinned. Lines are "HOST:PORT ed25519 BASE64".
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/crypto/crypto.hpp"
#include "core/session/session.hpp"
#include "io/session_driver.hpp"

namespace roam::io {

// $ROAM_KNOWN_HOSTS is not consulted; the default is $HOME/.config/roam/known_hosts.
std::string default_known_hosts_path();

// The server's side: reads a secret key file written by `roam keygen` (`--key`, the library's
// ListenOptions::key_file). Errors (kMalformed, with a reason naming the file): it cannot be
// read, it is readable by group or others (a secret: "run chmod 600"), or it is not one
// well-formed secret line.
core::Result<core::crypto::SignKeyPair> load_server_key(const std::string& path);

class ServerPin {
 public:
  // `host` is the server as the user named it ("host:port", "[v6]:port").
  ServerPin(std::string file, std::string host);
  // Reads the file (a missing file is empty). Malformed lines are logged and skipped. Errors: the
  // file exists but cannot be read.
  core::Result<void> load();
  // The session configuration with this server's pinned key, if any.
  core::SessionConfig apply(core::SessionConfig cfg) const;
  // Chains onto `hooks`: pins the key of the first established session (appending to the file)
  // and explains a refused key change in ssh's words when a session fails.
  static void watch(SessionDriver::Hooks& hooks, const std::shared_ptr<ServerPin>& pin);

  const std::optional<core::crypto::SignPublic>& pinned() const { return pinned_; }

 private:
  void on_established(const core::Session& s);
  void on_finished(const core::Session& s) const;

  std::string file_;
  std::string host_;
  std::optional<core::crypto::SignPublic> pinned_;
  std::size_t line_ = 0;
};

}  // namespace roam::io
