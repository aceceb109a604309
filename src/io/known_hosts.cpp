#include "io/known_hosts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "core/crypto/keys.hpp"

namespace roam::io {
namespace {

// mkdir -p of the file's directory, mode 0700 for what it creates.
void make_parent_dirs(const std::string& file) {
  for (std::size_t i = 1; i < file.size(); ++i)
    if (file[i] == '/') ::mkdir(file.substr(0, i).c_str(), 0700);
}

}  // namespace

std::string default_known_hosts_path() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/roam/known_hosts";
}

core::Result<core::crypto::SignKeyPair> load_server_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return core::fail(core::Errc::kMalformed,
                      "cannot read the key file " + path + ": " + std::strerror(errno));
  if (st.st_mode & 077)
    return core::fail(core::Errc::kMalformed, "the key file " + path +
                                                  " is readable by others; run chmod 600 on it "
                                                  "(it is a secret)");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto kp = core::keys::parse_secret(text.str());
  if (!kp) return core::fail(core::Errc::kMalformed, path + ": " + kp.error().detail);
  return *kp;
}

ServerPin::ServerPin(std::string file, std::string host)
    : file_(std::move(file)), host_(std::move(host)) {}

core::Result<void> ServerPin::load() {
  std::ifstream in(file_);
  if (!in) {
    if (errno == ENOENT) return {};
    return core::fail(core::Errc::kAborted, "cannot read " + file_ + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto hosts = core::keys::parse_known_hosts(text.str());
  for (const auto& e : hosts.errors) spdlog::warn("{}: {} (ignored)", file_, e);
  if (const auto* k = core::keys::find_known_host(hosts, host_)) {
    pinned_ = k->key;
    line_ = k->line;
    spdlog::debug("{} is pinned to {} ({}:{})", host_, core::keys::format_public(k->key), file_,
                  k->line);
  }
  return {};
}

core::SessionConfig ServerPin::apply(core::SessionConfig cfg) const {
  cfg.handshake.features |= core::wire::kFeatureServerKey;
  if (pinned_) cfg.handshake.pinned_server_key = pinned_;
  return cfg;
}

void ServerPin::watch(SessionDriver::Hooks& hooks, const std::shared_ptr<ServerPin>& pin) {
  if (!pin) return;
  auto established = std::move(hooks.on_established);
  hooks.on_established = [pin, established](SessionDriver& d) {
    pin->on_established(d.session());
    if (established) established(d);
  };
  auto finished = std::move(hooks.on_finished);
  hooks.on_finished = [pin, finished](SessionDriver& d) {
    pin->on_finished(d.session());
    if (finished) finished(d);
  };
}

void ServerPin::on_established(const core::Session& s) {
  const auto& key = s.negotiated().server_key;
  if (!key || pinned_) return;  // no key to pin, or the core already checked it against the pin
  // Another process may have pinned meanwhile: re-read before appending.
  if (auto ok = load(); ok && pinned_) return;
  make_parent_dirs(file_);
  const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  // The new line's number (for the warning a later key change prints), and a newline first if
  // the file's last line has none (else the pin would be glued onto that line).
  std::string line = core::keys::known_host_line(host_, *key);
  std::size_t lines = 0;
  char last = '\n';
  char buf[4096];
  ssize_t n = 0;
  while (fd >= 0 && (n = ::read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
    last = buf[n - 1];
  }
  if (last != '\n') {
    line.insert(line.begin(), '\n');
    ++lines;
  }
  if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    spdlog::warn("cannot pin the key of {} in {}: {}", host_, file_, std::strerror(errno));
  } else {
    line_ = lines + 1;
    spdlog::info("pinned the key of {} ({}) in {}:{}", host_, core::keys::format_public(*key),
                 file_, line_);
  }
  if (fd >= 0) ::close(fd);
  pinned_ = key;
}

void ServerPin::on_finished(const core::Session& s) const {
  if (s.established_once() || !pinned_ ||
      s.close_error().detail.find("pinned") == std::string::npos)
    return;
  spdlog::error(
      "@@@ WARNING: THE KEY OF ROAM SERVER {} HAS CHANGED! @@@ Someone could be eavesdropping on "
      "you right now (man-in-the-middle), or the server's key was replaced. {}. The pinned key is "
      "in {}:{}; remove that line if the change is expected. Refusing to connect.",
      host_, s.close_error().detail, file_, line_);
}

}  // namespace roam::io
