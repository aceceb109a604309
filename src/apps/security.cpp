#include "apps/security.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "core/crypto/keys.hpp"

namespace roam::apps {
namespace {

std::string default_key_path() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/roam/server_key";
}

// Writes `text` to a new file of mode `mode`; false with errno set when it exists (unless
// `force`) or cannot be written.
bool write_new_file(const std::string& path, const std::string& text, mode_t mode, bool force) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) return false;
  const bool ok = ::fchmod(fd, mode) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}

}  // namespace

void add_security_flags(CLI::App& cmd, SecurityFlags& flags, Side side) {
  const bool server = side == Side::kServer;
  cmd.add_flag("--encrypt", flags.encrypt,
               server ? "Require encryption: refuse clients that do not encrypt (without it a "
                        "client that asks for encryption gets it, and one that does not is accepted)"
                      : "Encrypt and authenticate every byte of the session (AES-256-GCM when "
                        "both ends have AES-NI, else XChaCha20-Poly1305); refuse a server that "
                        "will not");
  cmd.add_option("--cipher", flags.cipher,
                 "With encryption: `auto` seals with AES-256-GCM when both ends' CPUs have AES-NI "
                 "(else XChaCha20-Poly1305); `xchacha20-poly1305` never offers AES-256-GCM")
      ->check(CLI::IsMember({"auto", "xchacha20-poly1305"}));
  if (server)
    cmd.add_option("--key", flags.key,
                   "Server key file (from `roam keygen`): sign every handshake, so that clients "
                   "pin this key and refuse an impostor later");
  else
    cmd.add_option("--known-hosts", flags.known_hosts,
                   "Where the keys of servers started with --key are pinned on first use "
                   "(default ~/.config/roam/known_hosts)");
}

void apply_server_security(const SecurityFlags& flags, core::SessionConfig& cfg) {
  cfg.handshake.features |= core::wire::kFeatureEncrypt;  // encrypt whenever a client asks
  cfg.handshake.require_encrypt = flags.encrypt;
  cfg.handshake.aes_gcm = flags.cipher == "auto";
  if (flags.key.empty()) return;
  auto kp = io::load_server_key(flags.key);
  if (!kp) throw std::runtime_error(kp.error().detail);
  spdlog::info("server key {} (from {})", core::keys::format_public(kp->public_key), flags.key);
  cfg.handshake.identity = std::make_shared<const core::crypto::SignKeyPair>(*kp);
}

std::shared_ptr<io::ServerPin> apply_client_security(const SecurityFlags& flags,
                                                     const std::string& server,
                                                     core::SessionConfig& cfg) {
  cfg.handshake.require_encrypt = flags.encrypt;
  cfg.handshake.aes_gcm = flags.cipher == "auto";
  auto pin = std::make_shared<io::ServerPin>(
      flags.known_hosts.empty() ? io::default_known_hosts_path() : flags.known_hosts, server);
  if (auto ok = pin->load(); !ok) throw std::runtime_error(ok.error().detail);
  cfg = pin->apply(std::move(cfg));
  return pin;
}

CLI::App* add_keygen_command(CLI::App& app, KeygenFlags& flags) {
  auto* cmd = app.add_subcommand(
      "keygen",
      "Create a server key pair for `roam server --key` / `roam proxy --key`: the secret key in\n"
      "FILE (mode 0600), the public key in FILE.pub and on stdout (\"ed25519 BASE64\").");
  cmd->add_option("-o,--output", flags.out, "Secret key file (default ~/.config/roam/server_key)");
  cmd->add_flag("--force", flags.force, "Overwrite an existing key file");
  return cmd;
}

int run_keygen(const KeygenFlags& flags) {
  const std::string path = flags.out.empty() ? default_key_path() : flags.out;
  if (flags.out.empty()) ::mkdir((path.substr(0, path.rfind('/'))).c_str(), 0700);
  core::wire::Key seed{};
  core::crypto::system_rng().fill(seed);
  const auto kp = core::crypto::sign_keypair_from_seed(seed);
  const std::string secret = core::keys::format_secret(seed);
  if (!write_new_file(path, secret, 0600, flags.force)) {
    spdlog::error("cannot write {}: {}{}", path, std::strerror(errno),
                  errno == EEXIST ? " (use --force to overwrite it)" : "");
    return 1;
  }
  const std::string pub = core::keys::format_public(kp.public_key);
  if (!write_new_file(path + ".pub", pub + "\n", 0644, true)) {
    spdlog::error("cannot write {}.pub: {}", path, std::strerror(errno));
    return 1;
  }
  spdlog::info("wrote the secret key to {} (mode 0600) and the public key to {}.pub", path, path);
  std::printf("%s\n", pub.c_str());
  return 0;
}

}  // namespace roam::apps
