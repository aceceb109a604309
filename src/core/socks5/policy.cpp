#include "core/socks5/policy.hpp"

// inet_pton/inet_ntop only: text <-> address conversion, no socket and no I/O.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "core/crypto/crypto.hpp"

namespace roam::core::socks5 {
namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const std::array<std::uint8_t, 16>& a) {
  return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), a.begin());
}

Cidr must(std::string_view text) {
  auto c = parse_cidr(text);
  return c ? *c : Cidr{};  // only called on the literals below, which all parse
}

}  // namespace

IpAddr IpAddr::v4(std::array<std::uint8_t, 4> a) {
  IpAddr r;
  std::copy(a.begin(), a.end(), r.bytes.begin());
  return r;
}

IpAddr IpAddr::v6_of(const std::array<std::uint8_t, 16>& a) {
  if (is_mapped(a)) return v4({a[12], a[13], a[14], a[15]});
  IpAddr r;
  r.v6 = true;
  r.bytes = a;
  return r;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

Result<IpAddr> parse_ip(std::string_view text) {
  if (text.size() >= INET6_ADDRSTRLEN) return fail(Errc::kMalformed, "not an IP address");
  const std::string s(text);
  std::array<std::uint8_t, 16> b{};
  if (inet_pton(AF_INET, s.c_str(), b.data()) == 1) return IpAddr::v4({b[0], b[1], b[2], b[3]});
  if (inet_pton(AF_INET6, s.c_str(), b.data()) == 1) return IpAddr::v6_of(b);
  return fail(Errc::kMalformed, "not an IP address: " + s);
}

bool Cidr::contains(const IpAddr& a) const {
  if (a.v6 != base.v6) return false;
  unsigned bits = prefix;
  for (std::size_t i = 0; bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> take);
    if ((a.bytes[i] & mask) != (base.bytes[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

std::string Cidr::str() const { return base.str() + "/" + std::to_string(prefix); }

Result<Cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  std::array<std::uint8_t, 16> raw{};
  bool v6 = false;
  {
    if (addr_text.size() >= INET6_ADDRSTRLEN) return fail(Errc::kMalformed, "not a network");
    const std::string s(addr_text);
    if (inet_pton(AF_INET, s.c_str(), raw.data()) == 1)
      v6 = false;
    else if (inet_pton(AF_INET6, s.c_str(), raw.data()) == 1)
      v6 = true;
    else
      return fail(Errc::kMalformed, "not an IP address: " + s);
  }
  unsigned prefix = v6 ? 128 : 32;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v > prefix)
      return fail(Errc::kMalformed, "bad prefix length in " + std::string(text));
    prefix = v;
  }
  Cidr c;
  if (v6 && is_mapped(raw) && prefix >= 96) {
    c.base = IpAddr::v4({raw[12], raw[13], raw[14], raw[15]});
    c.prefix = prefix - 96;
  } else {
    c.base.v6 = v6;
    c.base.bytes = raw;
    c.prefix = prefix;
  }
  // Clear host bits.
  const std::size_t len = c.base.v6 ? 16 : 4;
  unsigned bits = c.prefix;
  for (std::size_t i = 0; i < len; ++i) {
    const unsigned keep = bits >= 8 ? 8 : bits;
    c.base.bytes[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    bits -= keep;
  }
  return c;
}

const Cidr* CidrList::match(const IpAddr& a) const {
  for (const Cidr& c : nets_)
    if (c.contains(a)) return &c;
  return nullptr;
}

CidrList default_client_networks() {
  CidrList l;
  for (const char* n : {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                        "100.64.0.0/10", "198.18.0.0/15", "::1/128", "fc00::/7"})
    l.add(must(n));
  return l;
}

Policy::Policy(CidrList allow_client, CidrList allow_dest, CidrList deny_dest,
               std::vector<IpAddr> own_addresses)
    : allow_client_(allow_client.empty() ? default_client_networks() : std::move(allow_client)),
      allow_dest_(std::move(allow_dest)),
      deny_dest_(std::move(deny_dest)),
      own_(std::move(own_addresses)) {
  for (const char* n : {"127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                        "255.255.255.255/32", "::1/128", "::/128", "fe80::/10", "ff00::/8"})
    builtin_deny_.add(must(n));
}

Verdict Policy::check_client(const IpAddr& a) const {
  if (allow_client_.match(a)) return {};
  return {false, "client " + a.str() + " is not in the allowed client networks"};
}

namespace {
// The IPv4 address embedded in an IPv4-compatible, NAT64 (RFC 6052 well-known prefix) or 6to4
// address; nothing for other addresses (and for :: and ::1, which are IPv6's own).
std::optional<IpAddr> embedded_v4(const IpAddr& a) {
  if (!a.v6) return std::nullopt;
  const auto& b = a.bytes;
  auto zero = [&](std::size_t from, std::size_t to) {
    return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(from),
                       b.begin() + static_cast<std::ptrdiff_t>(to), [](std::uint8_t x) { return x == 0; });
  };
  if (zero(0, 12) && !zero(12, 15)) return IpAddr::v4({b[12], b[13], b[14], b[15]});  // ::a.b.c.d
  static constexpr std::uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::equal(std::begin(kNat64), std::end(kNat64), b.begin()))
    return IpAddr::v4({b[12], b[13], b[14], b[15]});
  if (b[0] == 0x20 && b[1] == 0x02) return IpAddr::v4({b[2], b[3], b[4], b[5]});  // 6to4
  return std::nullopt;
}
}  // namespace

Verdict Policy::check_dest(const IpAddr& a) const {
  Verdict v = check_one(a);
  if (!v.allowed) return v;
  if (const auto inner = embedded_v4(a)) {
    Verdict w = check_one(*inner);
    if (!w.allowed && !allow_dest_.match(a))
      return {false, "destination " + a.str() + " embeds " + inner->str() + ": " + w.reason};
  }
  return v;
}

Verdict Policy::check_one(const IpAddr& a) const {
  if (const Cidr* c = deny_dest_.match(a))
    return {false, "destination " + a.str() + " is denied by --deny-dest " + c->str()};
  if (allow_dest_.match(a)) return {};
  if (const Cidr* c = builtin_deny_.match(a))
    return {false, "destination " + a.str() + " is in " + c->str() +
                       " (loopback, unspecified, link-local, multicast or broadcast; "
                       "allow it with --allow-dest)"};
  for (const IpAddr& own : own_)
    if (own == a) return {false, "destination " + a.str() + " is one of the proxy's own addresses"};
  if (!allow_dest_.empty()) return {false, "destination " + a.str() + " is not in --allow-dest"};
  return {};
}

Result<Users> Users::parse(std::string_view text) {
  Users u;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos)
      return fail(Errc::kMalformed, "line " + std::to_string(line_no) + ": expected user:password");
    const std::string_view user = line.substr(0, colon), pass = line.substr(colon + 1);
    if (user.empty() || pass.empty() || user.size() > 255 || pass.size() > 255)
      return fail(Errc::kMalformed, "line " + std::to_string(line_no) +
                                        ": user and password must be 1 to 255 bytes");
    Entry e;
    e.user_hash = crypto::blake2b_256(Bytes(reinterpret_cast<const std::uint8_t*>(user.data()), user.size()));
    e.pass_hash = crypto::blake2b_256(Bytes(reinterpret_cast<const std::uint8_t*>(pass.data()), pass.size()));
    u.entries_.push_back(e);
  }
  return u;
}

bool Users::check(std::string_view user, std::string_view password) const {
  const auto uh = crypto::blake2b_256(Bytes(reinterpret_cast<const std::uint8_t*>(user.data()), user.size()));
  const auto ph = crypto::blake2b_256(Bytes(reinterpret_cast<const std::uint8_t*>(password.data()), password.size()));
  unsigned ok = 0;
  for (const Entry& e : entries_) {
    const unsigned u_eq = crypto::equal_ct(uh, e.user_hash) ? 1u : 0u;
    const unsigned p_eq = crypto::equal_ct(ph, e.pass_hash) ? 1u : 0u;
    ok |= u_eq & p_eq;
  }
  return ok != 0;
}

}  // namespace roam::core::socks5
