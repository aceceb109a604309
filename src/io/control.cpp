#include "io/control.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace roam::io {
namespace {

// Connections served at once; a local user's status queries never need more.
constexpr std::size_t kMaxClients = 64;
// A status answer larger than this is cut off (about 100,000 sessions).
constexpr std::size_t kMaxAnswer = 64u << 20;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool fill_sockaddr(const std::string& path, sockaddr_un& sa) {
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.data(), path.size());
  return true;
}

// Display width of UTF-8 text (code points; the table uses no wide characters).
std::size_t text_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

}  // namespace

std::string control_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ROAM_RUNTIME_DIR"); env && *env) return env;
  if (::geteuid() == 0) return "/run/roam";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) return std::string(xdg) + "/roam";
  return "/tmp/roam-" + std::to_string(::getuid());
}

core::Result<void> ensure_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return core::fail(core::Errc::kLimit, errno_text("cannot create " + dir));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return core::fail(core::Errc::kLimit, errno_text(dir));
  if (!S_ISDIR(st.st_mode)) return core::fail(core::Errc::kLimit, dir + " is not a directory");
  if (st.st_uid != ::geteuid())
    return core::fail(core::Errc::kLimit, dir + " belongs to another user");
  if ((st.st_mode & 0077) != 0 && ::chmod(dir.c_str(), 0700) != 0)
    return core::fail(core::Errc::kLimit, errno_text("cannot make " + dir + " private"));
  return {};
}

// --- the daemon's side ---------------------------------------------------------------------

ControlServer::ControlServer(Loop& loop, std::string dir, std::string kind)
    : loop_(loop), dir_(std::move(dir)), kind_(std::move(kind)) {}

ControlServer::~ControlServer() {
  for (auto& [fd, c] : clients_) {
    loop_.remove(fd);
    ::close(fd);
  }
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

core::Result<void> ControlServer::start() {
  if (auto ok = ensure_private_dir(dir_); !ok) return ok;
  const std::string path = dir_ + "/" + kind_ + "-" + std::to_string(::getpid()) + ".sock";
  sockaddr_un sa{};
  if (!fill_sockaddr(path, sa)) return core::fail(core::Errc::kLimit, path + ": path too long for a socket");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::fail(core::Errc::kLimit, errno_text("socket"));
  ::unlink(path.c_str());  // a leftover of a killed process that had our pid
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
      ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 16) != 0) {
    const auto err = errno_text(path);
    ::close(fd);
    ::unlink(path.c_str());
    return core::fail(core::Errc::kLimit, err);
  }
  fd_ = fd;
  path_ = path;
  loop_.add(fd_, EPOLLIN, [this](std::uint32_t) { on_accept(); });
  return {};
}

void ControlServer::on_accept() {
  for (;;) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or a transient error (EMFILE: the next event retries)
    }
    if (clients_.size() >= kMaxClients) {
      ::close(c);
      continue;
    }
    Client& cl = clients_[c];
    cl.out = to_json(registry().snapshot(loop_, loop_.now())).dump() + "\n";
    if (cl.out.size() > kMaxAnswer) cl.out.resize(kMaxAnswer);
    loop_.add(c, EPOLLOUT, [this, c](std::uint32_t) { on_writable(c); });
    on_writable(c);
  }
}

void ControlServer::on_writable(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& cl = it->second;
  while (cl.off < cl.out.size()) {
    const ssize_t n = ::send(fd, cl.out.data() + cl.off, cl.out.size() - cl.off, MSG_NOSIGNAL);
    if (n > 0) {
      cl.off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT calls again
    break;  // the reader went away
  }
  drop(fd);
}

void ControlServer::drop(int fd) {
  loop_.remove(fd);
  ::close(fd);
  clients_.erase(fd);
}

// --- roam status's side --------------------------------------------------------------------

namespace {

ControlAnswer ask(const std::string& path, std::chrono::milliseconds timeout) {
  ControlAnswer a;
  a.socket = path;
  sockaddr_un sa{};
  if (!fill_sockaddr(path, sa)) {
    a.error = "path too long";
    return a;
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    a.error = errno_text("socket");
    return a;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    a.error = errno == ECONNREFUSED ? "no daemon behind it (left by a process that did not exit cleanly?)"
                                    : std::string(std::strerror(errno));
    ::close(fd);
    return a;
  }
  std::string in;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      a.error = "no answer within " + std::to_string(timeout.count()) + " ms";
      ::close(fd);
      return a;
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      a.error = errno_text("read");
      ::close(fd);
      return a;
    }
    if (n == 0) break;
    in.append(buf, static_cast<std::size_t>(n));
    if (in.size() > kMaxAnswer) {
      a.error = "answer too large";
      ::close(fd);
      return a;
    }
  }
  ::close(fd);
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    a.error = "answer is not JSON";
    return a;
  }
  auto s = snapshot_from_json(j);
  if (!s) {
    a.error = "unexpected answer: " + s.error().detail;
    return a;
  }
  a.ok = true;
  a.snapshot = std::move(*s);
  return a;
}

}  // namespace

std::vector<ControlAnswer> query_control_dir(const std::string& dir,
                                             std::chrono::milliseconds timeout) {
  std::vector<std::string> sockets;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".sock") == 0)
        sockets.push_back(dir + "/" + name);
    }
    ::closedir(d);
  }
  std::sort(sockets.begin(), sockets.end());
  std::vector<ControlAnswer> out;
  for (const auto& s : sockets) out.push_back(ask(s, timeout));
  return out;
}

// --- the table -----------------------------------------------------------------------------

std::string human_bytes(std::uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024;
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string human_duration(double s) {
  if (s < 0) return "-";
  if (s < 0.01) return fmt::format("{:.1f} ms", s * 1000);
  if (s < 1) return fmt::format("{:.0f} ms", s * 1000);
  if (s < 60) return fmt::format("{:.1f} s", s);
  const auto whole = static_cast<std::uint64_t>(s);
  if (whole < 3600) return fmt::format("{}m{:02}s", whole / 60, whole % 60);
  return fmt::format("{}h{:02}m", whole / 3600, (whole % 3600) / 60);
}

std::string format_status_table(const std::vector<DaemonSnapshot>& daemons) {
  static const std::vector<std::string> kHead = {"ID",   "ROLE",     "PEER",     "PATH (local → remote)",
                                                 "STATE", "SENT",    "RECEIVED", "RETAINED",
                                                 "MIGR", "LAST HO", "WAITED"};
  // Right-aligned columns: the numbers.
  static const std::vector<bool> kRight = {false, false, false, false, false, true,
                                           true,  true,  true,  true,  true};
  std::string out;
  for (std::size_t di = 0; di < daemons.size(); ++di) {
    const DaemonSnapshot& d = daemons[di];
    if (di) out += "\n";
    std::uint64_t refused = 0;
    for (const auto& [r, n] : d.refusals) refused += n;
    out += fmt::format("roam {}{} (pid {}, {}, up {}): {} session{}, {} migration{}, {} refused, "
                       "{} sent, {} received\n",
                       d.kind.empty() ? "daemon" : d.kind,
                       d.workers > 1 ? fmt::format(" worker {}/{}", d.worker, d.workers) : "", d.pid,
                       d.listen.empty() ? "not listening yet" : d.listen, human_duration(d.uptime_s),
                       d.sessions.size(), d.sessions.size() == 1 ? "" : "s", d.migrations,
                       d.migrations == 1 ? "" : "s", refused, human_bytes(d.bytes_sent),
                       human_bytes(d.bytes_received));
    if (d.sessions.empty()) {
      out += "  (no sessions)\n";
      continue;
    }
    std::vector<std::vector<std::string>> rows{kHead};
    for (const auto& s : d.sessions)
      rows.push_back({s.id, s.role, s.peer.empty() ? "-" : s.peer,
                      s.local.empty() ? "-" : s.local + " → " + s.remote, s.state,
                      human_bytes(s.bytes_sent), human_bytes(s.bytes_received),
                      human_bytes(s.retained), std::to_string(s.migrations),
                      human_duration(s.last_handover_s),
                      s.waited_total_s > 0 ? human_duration(s.waited_total_s) : "-"});
    std::vector<std::size_t> width(kHead.size(), 0);
    for (const auto& r : rows)
      for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], text_width(r[c]));
    for (const auto& r : rows) {
      std::string line = " ";
      for (std::size_t c = 0; c < r.size(); ++c) {
        const std::string pad(width[c] - text_width(r[c]), ' ');
        line += " ";
        line += kRight[c] ? pad + r[c] : r[c] + (c + 1 < r.size() ? pad : std::string());
        if (c + 1 < r.size()) line += " ";
      }
      out += line + "\n";
    }
  }
  return out;
}

}  // namespace roam::io
