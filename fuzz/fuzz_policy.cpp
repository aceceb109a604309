// Fuzz target: the proxy's access-rule parsers and checks — the --users file (Users::parse),
// --allow/--deny CIDRs (parse_cidr), IP literals (parse_ip) and Policy::check_dest with
// embedded-IPv4 forms (libFuzzer; replayed by tests/unit under g++).
//
// Whatever parses must print back to something that parses to the same value; a users file that
// parses has a user:password on every line that is not a comment; check_dest never allows what
// the built-in denial covers, whichever IPv6 form (mapped, compatible, NAT64) embeds it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/socks5/policy.hpp"

namespace {

using namespace roam::core;
using namespace roam::core::socks5;

#define CHECK(cond)            \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // The users file.
  auto users = Users::parse(text);
  if (users) {
    std::string_view rest = text;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      const auto colon = line.find(':');
      CHECK(colon != std::string_view::npos);
      (void)users->check(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    }
  } else {
    CHECK(users.error().code == Errc::kMalformed);
  }

  // Each line as a CIDR and as an IP address.
  std::string_view rest = text;
  const Policy policy;
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (auto c = parse_cidr(line)) {
      auto again = parse_cidr(c->str());
      CHECK(again && again->base == c->base && again->prefix == c->prefix);
      CHECK(c->contains(c->base));
    }
    if (auto ip = parse_ip(line)) {
      auto again = parse_ip(ip->str());
      CHECK(again && *again == *ip);
      const Verdict v = policy.check_dest(*ip);
      CHECK(v.allowed || !v.reason.empty());
    }
  }
  // Raw bytes as an address: v4 ones and their IPv6 embeddings get the same verdict on denial.
  if (size >= 4) {
    const IpAddr v4 = IpAddr::v4({data[0], data[1], data[2], data[3]});
    if (!policy.check_dest(v4).allowed && !(data[0] == 0 && data[1] == 0 && data[2] == 0)) {
      std::array<std::uint8_t, 16> compat{}, nat64{0x00, 0x64, 0xff, 0x9b}, mapped{};
      for (int k = 0; k < 4; ++k) compat[12 + k] = nat64[12 + k] = mapped[12 + k] = data[k];
      mapped[10] = mapped[11] = 0xff;
      CHECK(!policy.check_dest(IpAddr::v6_of(compat)).allowed);
      CHECK(!policy.check_dest(IpAddr::v6_of(nat64)).allowed);
      CHECK(!policy.check_dest(IpAddr::v6_of(mapped)).allowed);
    }
  }
  return 0;
}
