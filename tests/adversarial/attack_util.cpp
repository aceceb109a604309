#include "attack_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/crypto/crypto.hpp"
#include "core/session/handshake.hpp"

namespace roam::itest {

namespace wire = core::wire;

int connect_from(const char* source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

Exchange exchange_from(const char* source, std::uint16_t port, const ByteVec& bytes,
                       std::chrono::milliseconds timeout) {
  Exchange ex;
  const int fd = connect_from(source, port);
  if (fd < 0) {
    ex.how = ReadEnd::kError;
    return ex;
  }
  if (!send_all(fd, bytes.data(), bytes.size(), timeout)) {
    // The server may already have closed (a limited source): what it sent still counts.
    ex.reply = read_until_close(fd, std::chrono::milliseconds(100), ex.how);
    ::close(fd);
    return ex;
  }
  ex.reply = read_until_close(fd, timeout, ex.how);
  ::close(fd);
  return ex;
}

namespace {
// Calls fn(type, payload) for each complete frame after the preamble; false without a preamble.
template <typename Fn>
bool each_frame(const ByteVec& in, Fn&& fn) {
  if (in.size() < wire::kPreambleSize || !wire::check_preamble(core::Bytes(in.data(), in.size())))
    return false;
  std::size_t off = wire::kPreambleSize;
  while (off < in.size()) {
    auto h = wire::decode_header(core::Bytes(in.data() + off, in.size() - off));
    if (!h) break;
    const std::size_t end = off + wire::kFrameHeaderSize + h->length;
    if (end > in.size()) break;
    if (!fn(static_cast<wire::FrameType>(h->type),
            ByteVec(in.begin() + static_cast<std::ptrdiff_t>(off + wire::kFrameHeaderSize),
                    in.begin() + static_cast<std::ptrdiff_t>(end))))
      break;
    off = end;
  }
  return true;
}
}  // namespace

std::vector<wire::FrameType> frame_types(const ByteVec& reply) {
  std::vector<wire::FrameType> out;
  each_frame(reply, [&](wire::FrameType t, const ByteVec&) {
    out.push_back(t);
    return true;
  });
  return out;
}

std::optional<ByteVec> frame_payload(const ByteVec& reply, wire::FrameType t) {
  std::optional<ByteVec> found;
  each_frame(reply, [&](wire::FrameType type, const ByteVec& p) {
    if (type != t) return true;
    found = p;
    return false;
  });
  return found;
}

std::string frame_names(const ByteVec& reply) {
  if (reply.empty()) return "<nothing>";
  std::string s;
  for (auto t : frame_types(reply))
    s += std::string(s.empty() ? "" : ",") + wire::frame_type_name(static_cast<std::uint8_t>(t));
  return s.empty() ? "<no frames>" : s;
}

bool has_frame(const ByteVec& reply, wire::FrameType t) {
  for (auto x : frame_types(reply))
    if (x == t) return true;
  return false;
}

ByteVec migrate_frame(const wire::Token& token, std::uint64_t request, std::uint64_t received,
                      const wire::Mac& mac) {
  ByteVec out;
  wire::encode_preamble(out);
  wire::Migrate m;
  m.token = token;
  m.request = request;
  m.received = received;
  m.mac = mac;
  wire::encode(m, out);
  return out;
}

ByteVec hello_frame() {
  ByteVec out;
  wire::encode_preamble(out);
  core::ClientHandshake hs(core::HandshakeParams{}, core::crypto::system_rng());
  hs.write_hello(out);
  return out;
}

std::uint64_t proc_status_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string want = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) != 0) continue;
    std::istringstream ss(line.substr(want.size()));
    std::uint64_t kib = 0;
    ss >> kib;
    return kib;
  }
  return 0;
}

std::vector<ByteVec> recorded_migrates(TapProxy& tap, std::size_t from) {
  std::vector<ByteVec> out;
  const std::size_t len = wire::kPreambleSize + wire::kFrameHeaderSize + wire::kMigrateSize;
  for (std::size_t i = from; i < tap.connections(); ++i) {
    ByteVec rec = tap.recorded(i);
    if (rec.size() < len ||
        rec[wire::kPreambleSize] != static_cast<std::uint8_t>(wire::FrameType::kMigrate))
      continue;
    rec.resize(len);
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace roam::itest
