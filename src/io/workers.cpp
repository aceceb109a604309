#include "io/workers.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "io/registry.hpp"

namespace roam::io {
namespace {

// Connections waiting for room in the ring (a sibling that stopped reading); beyond it the newest
// is closed (its client tries again).
constexpr std::size_t kMaxQueued = 4096;
// How long workers get to end their sessions after SIGTERM (they take 300 ms) before SIGKILL;
// within SPEC's "exits within 2 s".
constexpr auto kStopGrace = std::chrono::milliseconds(1500);

struct Inherited {
  std::string endpoint;  // Endpoint::str() as given on the command line
  int fd = -1;
};
Inherited& inherited() {
  static Inherited i;
  return i;
}

// N sockets listening on the same address (SO_REUSEPORT): the first binds `ep` (port 0 gets a
// port), the others bind to exactly what the first got.
core::Result<std::vector<int>> listen_reuseport(const Endpoint& ep, unsigned n) {
  auto addrs = resolve(ep, true);
  if (!addrs) return tl::unexpected(addrs.error());
  std::string last = "no address";
  for (const auto& a : *addrs) {
    std::vector<int> fds;
    SockAddr at = a;
    for (unsigned i = 0; i < n; ++i) {
      const int fd = ::socket(at.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      if (at.ss.ss_family == AF_INET6) {  // as listen_on(): [::] is dual-stack, others v6 only
        const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&at.ss);
        const int v6only = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ? 0 : 1;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
      }
      if (::bind(fd, at.get(), at.len) != 0 || ::listen(fd, 1024) != 0) {
        last = at.str() + ": " + std::strerror(errno);
        ::close(fd);
        break;
      }
      fds.push_back(fd);
      if (i == 0) {  // the others join the port the kernel gave the first one
        at.len = sizeof at.ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&at.ss), &at.len);
      }
    }
    if (fds.size() == n) return fds;
    for (const int fd : fds) ::close(fd);
  }
  return core::fail(core::Errc::kMalformed, "cannot listen on " + ep.str() + ": " + last);
}

std::string label(unsigned i, unsigned n, pid_t pid) {
  return "worker " + std::to_string(i + 1) + "/" + std::to_string(n) + " (pid " +
         std::to_string(pid) + ")";
}

// The parent: passes signals on and watches the workers until all have ended.
int supervise(std::vector<pid_t> pids) {
  const unsigned n = static_cast<unsigned>(pids.size());
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  unsigned live = n;
  bool stopping = false;
  int status = 0;
  // When the workers asked to stop get SIGKILL (armed while `killing`).
  bool killing = false;
  auto kill_at = std::chrono::steady_clock::now();
  auto signal_all = [&](int sig) {
    for (const pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  auto stop_all = [&] {
    stopping = true;
    signal_all(SIGTERM);
    killing = true;
    kill_at = std::chrono::steady_clock::now() + kStopGrace;
  };
  while (live > 0) {
    siginfo_t si{};
    int sig;
    if (killing) {
      const auto left = std::max(std::chrono::nanoseconds(0), kill_at - std::chrono::steady_clock::now());
      const timespec ts{static_cast<time_t>(left.count() / 1000000000),
                        static_cast<long>(left.count() % 1000000000)};
      sig = ::sigtimedwait(&set, &si, &ts);
    } else {
      sig = ::sigwaitinfo(&set, &si);
    }
    if (sig < 0) {
      if (errno == EAGAIN && killing) {
        spdlog::warn("{} worker(s) still running {} ms after SIGTERM: killing them", live,
                     kStopGrace.count());
        signal_all(SIGKILL);
        killing = false;
        status = 1;
      }
      continue;
    }
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: passed to {} worker(s)", live);
      signal_all(SIGHUP);
    } else if (sig == SIGTERM || sig == SIGINT) {
      if (!stopping) {
        spdlog::info("terminating: stopping {} worker(s)", live);
        stop_all();
      }
    } else {  // SIGCHLD (several may have merged into one)
      int ws = 0;
      pid_t p;
      while ((p = ::waitpid(-1, &ws, WNOHANG)) > 0) {
        for (unsigned i = 0; i < n; ++i) {
          if (pids[i] != p) continue;
          pids[i] = -1;
          --live;
          if (!stopping) {
            spdlog::error("{} {} unexpectedly; stopping the other {} worker(s)", label(i, n, p),
                          describe_exit(ws), live);
            status = 1;
            stop_all();
          } else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            spdlog::warn("{} {} while stopping", label(i, n, p), describe_exit(ws));
            status = 1;
          }
        }
      }
    }
  }
  if (status != 0) spdlog::error("exiting with status 1: a worker failed (see above)");
  return status;
}

}  // namespace

std::string describe_exit(int ws) {
  if (WIFEXITED(ws)) return "exited with status " + std::to_string(WEXITSTATUS(ws));
  if (WIFSIGNALED(ws)) {
    const int s = WTERMSIG(ws);
    const char* abbrev = ::sigabbrev_np(s);
    return "was killed by signal " + std::to_string(s) +
           (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string()) +
           (WCOREDUMP(ws) ? ", core dumped" : "");
  }
  return "ended with wait status " + std::to_string(ws);
}

std::optional<int> take_inherited_listener(const Endpoint& ep) {
  Inherited& i = inherited();
  if (i.fd < 0 || i.endpoint != ep.str()) return std::nullopt;
  const int fd = i.fd;
  i.fd = -1;
  return fd;
}

int run_workers(unsigned workers, const Endpoint& listen,
                const std::function<int(const WorkerContext*)>& worker_main) {
  if (workers <= 1) return worker_main(nullptr);
  const unsigned n = workers;
  auto listeners = listen_reuseport(listen, n);
  if (!listeners) {
    spdlog::error("{}", listeners.error().detail);
    return 1;
  }
  const std::string bound = local_address(listeners->front());
  // ring[i]: [0] sends from worker i, [1] receives in worker (i + 1) % n.
  std::vector<std::array<int, 2>> ring(n, {-1, -1});
  auto close_all = [&](const WorkerContext* keep, int keep_listener) {
    for (const int fd : *listeners)
      if (fd != keep_listener) ::close(fd);
    for (const auto& p : ring)
      for (const int fd : p)
        if (fd >= 0 && (!keep || (fd != keep->send_fd && fd != keep->recv_fd))) ::close(fd);
  };
  for (auto& p : ring) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.data()) != 0) {
      spdlog::error("workers: socketpair: {}", std::strerror(errno));
      close_all(nullptr, -1);
      return 1;
    }
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);  // the supervisor waits for it with sigwaitinfo
  ::signal(SIGPIPE, SIG_IGN);  // as in every roam daemon (a closed stderr must not kill the parent)
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids(n, -1);
  for (unsigned i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      spdlog::error("workers: fork: {}", std::strerror(errno));
      close_all(nullptr, -1);
      for (const pid_t p : pids)
        if (p > 0) ::kill(p, SIGTERM);
      for (const pid_t p : pids)
        if (p > 0) ::waitpid(p, nullptr, 0);
      return 1;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) std::_Exit(1);  // the parent died before the line above
      WorkerContext ctx;
      ctx.index = i;
      ctx.count = n;
      ctx.send_fd = ring[i][0];
      ctx.recv_fd = ring[(i + n - 1) % n][1];
      const int mine = (*listeners)[i];
      close_all(&ctx, mine);
      ::sigprocmask(SIG_UNBLOCK, &chld, nullptr);
      inherited() = {listen.str(), mine};
      registry().set_worker(i + 1, n);
      spdlog::info("worker {}/{} started", i + 1, n);
      return worker_main(&ctx);
    }
    pids[i] = pid;
  }
  close_all(nullptr, -1);
  std::string list;
  for (const pid_t p : pids) list += (list.empty() ? "" : ", ") + std::to_string(p);
  spdlog::info("{} workers (pids {}) share {} (SO_REUSEPORT)", n, list, bound);
  return supervise(std::move(pids));
}

// --- the ring --------------------------------------------------------------------------------

Handoff::Handoff(Loop& loop, const WorkerContext& ctx) : loop_(loop), ctx_(ctx) {
  loop_.add(ctx_.recv_fd, EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

Handoff::~Handoff() {
  if (!queue_.empty()) loop_.remove(ctx_.send_fd);
  for (auto& q : queue_) ::close(q.fd);
  loop_.remove(ctx_.recv_fd);
  ::close(ctx_.recv_fd);
  ::close(ctx_.send_fd);
}

bool Handoff::pass(const core::SessionTable& table, int fd, core::Bytes bytes, const core::Hop& hop) {
  const bool held = table.holder(bytes, /*check_mac=*/hop.hops != 0) != nullptr;
  if (core::hop_action(hop, ctx_.index, ctx_.count, held) == core::HopAction::kAnswerHere)
    return false;
  if (bytes.size() > core::kMaxHandoffBytes) return false;
  std::vector<std::uint8_t> msg = core::encode_handoff(core::next_hop(hop, ctx_.index), bytes);
  if (!queue_.empty() || !send_one(fd, msg)) {
    if (queue_.size() >= kMaxQueued) {
      spdlog::warn("worker {}/{}: {} migrate requests already wait for the next worker; closing "
                   "one (its client tries again)", ctx_.index + 1, ctx_.count, queue_.size());
      ::close(fd);
      return true;
    }
    if (queue_.empty()) loop_.add(ctx_.send_fd, EPOLLOUT, [this](std::uint32_t) { on_writable(); });
    queue_.push_back({fd, std::move(msg)});
  }
  return true;
}

bool Handoff::send_one(int fd, const std::vector<std::uint8_t>& msg) {
  iovec iov{const_cast<std::uint8_t*>(msg.data()), msg.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  for (;;) {
    if (::sendmsg(ctx_.send_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    // The next worker is gone (the parent is stopping everything): the client tries again.
    spdlog::warn("worker {}/{}: cannot pass a migrate request on: {}", ctx_.index + 1, ctx_.count,
                 std::strerror(errno));
    ::close(fd);
    return true;
  }
  ::close(fd);  // the receiver has its own descriptor now
  registry().on_handoff(/*passed=*/true);
  return true;
}

void Handoff::on_writable() {
  while (!queue_.empty() && send_one(queue_.front().fd, queue_.front().msg)) queue_.pop_front();
  if (queue_.empty()) loop_.remove(ctx_.send_fd);
}

void Handoff::on_readable() {
  // A bounded batch per wake-up, so that a flood from a sibling cannot starve this loop.
  for (int batch = 0; batch < 64; ++batch) {
    std::uint8_t buf[core::kHandoffHeader + core::kMaxHandoffBytes + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
    iovec iov{buf, sizeof buf};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(ctx_.recv_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::error("worker {}/{}: handoff: {}", ctx_.index + 1, ctx_.count, std::strerror(errno));
      return;
    }
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t k = 0; k < count; ++k) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
        fds.push_back(fd);
      }
    }
    if (n == 0 && fds.empty()) {  // the previous worker is gone; the parent stops everything
      loop_.remove(ctx_.recv_fd);
      return;
    }
    auto h = core::decode_handoff(core::Bytes(buf, static_cast<std::size_t>(n)), ctx_.index, ctx_.count);
    if (!h || fds.size() != 1 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
      spdlog::error("worker {}/{}: dropped a bad handoff ({})", ctx_.index + 1, ctx_.count,
                    h ? "descriptors" : h.error().detail);
      for (const int fd : fds) ::close(fd);
      continue;
    }
    registry().on_handoff(/*passed=*/false);
    if (on_receive_)
      on_receive_(fds[0], std::move(h->bytes), h->hop);
    else
      ::close(fds[0]);
  }
}

}  // namespace roam::io
