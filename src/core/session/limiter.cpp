#include "core/session/limiter.hpp"

#include <arpa/inet.h>  // inet_ntop: formatting only, no I/O
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace roam::core {

SourceKey SourceKey::ipv4(const std::array<std::uint8_t, 4>& a) {
  SourceKey k;
  k.bytes[10] = 0xff;
  k.bytes[11] = 0xff;
  std::copy(a.begin(), a.end(), k.bytes.begin() + 12);
  return k;
}

SourceKey SourceKey::ipv6(const std::array<std::uint8_t, 16>& a) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.data(), kMapped, sizeof kMapped) == 0)
    return ipv4({a[12], a[13], a[14], a[15]});
  SourceKey k;
  std::copy(a.begin(), a.begin() + 8, k.bytes.begin());  // the /64
  return k;
}

SourceKey SourceKey::of(const sockaddr* sa, std::size_t len) {
  if (sa == nullptr) return {};
  sa_family_t family = 0;
  if (len >= sizeof family) std::memcpy(&family, sa, sizeof family);
  if (family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof in);
    std::array<std::uint8_t, 4> a{};
    std::memcpy(a.data(), &in.sin_addr, 4);
    return ipv4(a);
  }
  if (family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof in6);
    std::array<std::uint8_t, 16> a{};
    std::memcpy(a.data(), &in6.sin6_addr, 16);
    return ipv6(a);
  }
  return {};
}

std::string SourceKey::str() const {
  char text[INET6_ADDRSTRLEN] = {};
  const SourceKey probe = ipv4({bytes[12], bytes[13], bytes[14], bytes[15]});
  if (probe == *this) {
    ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
    return text;
  }
  ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  return std::string(text) + "/64";
}

std::size_t RefusalLimiter::Hash::operator()(const SourceKey& k) const {
  // FNV-1a: the key is an address the peer chose, but the table is bounded and evicts, so a
  // crafted collision costs the attacker its own lookups only.
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint8_t b : k.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

RefusalLimiter::RefusalLimiter(RefusalLimits limits) : limits_(limits) {}

RefusalLimiter::Entry* RefusalLimiter::touch(const SourceKey& src, Time now) {
  auto it = map_.find(src);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  Entry& e = *it->second;
  if (now > e.refilled) {
    const double secs = std::chrono::duration<double>(now - e.refilled).count();
    e.tokens = std::min(limits_.burst, e.tokens + secs * limits_.refill_per_second);
    e.refilled = now;
  }
  return &e;
}

bool RefusalLimiter::limited(const SourceKey& src, Time now) {
  const Entry* e = touch(src, now);
  return e != nullptr && e->tokens < 1.0;
}

void RefusalLimiter::note_refused(const SourceKey& src, Time now) {
  Entry* e = touch(src, now);
  if (e == nullptr) {
    if (limits_.max_sources == 0) return;
    if (map_.size() >= limits_.max_sources) {
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Entry{src, limits_.burst, now});
    map_[src] = lru_.begin();
    e = &lru_.front();
  }
  e->tokens = std::max(0.0, e->tokens - 1.0);
}

std::optional<std::uint64_t> RefusalLimiter::note_dropped(const SourceKey& src, Time now) {
  Entry* e = touch(src, now);
  if (e == nullptr) return std::nullopt;
  ++e->dropped;
  if (e->logged != Time{Duration::min()} && now - e->logged < limits_.log_interval) return std::nullopt;
  e->logged = now;
  const std::uint64_t n = e->dropped;
  e->dropped = 0;
  return n;
}

}  // namespace roam::core
