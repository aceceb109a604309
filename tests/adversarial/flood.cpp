// roam_adv_flood PORT COUNT MODE [SOURCE] — the half-open flood's attacker, a separate process.
// Opens COUNT TCP connections to 127.0.0.1:PORT from SOURCE (default 127.0.0.1) and holds them:
//   silent  connects and sends nothing
//   hello   sends preamble + a valid HELLO (the server does its X25519) and never the FINISH
//   socks   (roam proxy) roam's method, then the HELLO, never the FINISH
// Connections the server closes are not reopened. Prints "opened N in S s" on stderr when done,
// then waits for SIGTERM (or stdin EOF). Raises its own RLIMIT_NOFILE to the hard limit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/session/handshake.hpp"
#include "core/wire/frames.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: roam_adv_flood PORT COUNT silent|hello|socks [SOURCE]\n");
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  const long count = std::atol(argv[2]);
  const std::string mode = argv[3];
  const char* source = argc > 4 ? argv[4] : "127.0.0.1";
  ::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<std::uint8_t> first;
  if (mode == "socks") first = {0x05, 0x01, 0x80};
  if (mode == "hello" || mode == "socks") {
    roam::core::wire::encode_preamble(first);
    roam::core::ClientHandshake hs(roam::core::HandshakeParams{}, roam::core::crypto::system_rng());
    hs.write_hello(first);
  }
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> fds;
  long failed = 0;
  for (long i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      std::fprintf(stderr, "socket: %s after %zu\n", std::strerror(errno), fds.size());
      break;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
      ++failed;
      ::close(fd);
      continue;
    }
    if (!first.empty()) (void)!::send(fd, first.data(), first.size(), MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "opened %zu in %.2f s (%ld failed)\n", fds.size(), secs, failed);
  // Hold them until told to stop.
  pollfd in{0, POLLIN, 0};
  while (::poll(&in, 1, -1) < 0 && errno == EINTR) {
  }
  for (int fd : fds) ::close(fd);
  return 0;
}
