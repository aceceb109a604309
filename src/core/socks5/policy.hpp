// Access control of `roam proxy` (SPEC property 12), as pure functions over addresses: no
// sockets, no resolution, no files. The I/O shell resolves names, reads the users file and lists
// the host's own addresses, then asks here.
//
// Rules, in order, for a destination (the address actually connected to, after resolution):
//   1. in a --deny-dest network                → refused
//   2. in an --allow-dest network              → allowed (this lifts the built-in denials below)
//   3. loopback, unspecified, link-local, multicast, broadcast, or one of the proxy's own
//      addresses                               → refused
//   4. --allow-dest was given (an allow list)  → refused: not in it
//   5. otherwise                               → allowed
// A client is allowed when its address is in the allow-client list (the private networks by
// default; --allow-client replaces the defaults). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
// are normalised to IPv4 before any check, so a mapped loopback is loopback.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common.hpp"

namespace roam::core::socks5 {

struct IpAddr {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4 bytes
  static IpAddr v4(std::array<std::uint8_t, 4> a);
  static IpAddr v6_of(const std::array<std::uint8_t, 16>& a);  // normalises IPv4-mapped
  std::string str() const;
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
};

// "10.1.2.3", "fe80::1", "::ffff:127.0.0.1" (normalised to 127.0.0.1). kMalformed otherwise.
Result<IpAddr> parse_ip(std::string_view text);

struct Cidr {
  IpAddr base;         // host bits cleared
  unsigned prefix = 0; // 0..32 (v4) or 0..128 (v6)
  bool contains(const IpAddr& a) const;
  std::string str() const;
};

// "10.0.0.0/8", "fc00::/7", or an address alone (a /32 or /128). Host bits set below the prefix
// are cleared. An IPv4-mapped prefix (::ffff:0:0/96 and longer) becomes the IPv4 network.
Result<Cidr> parse_cidr(std::string_view text);

class CidrList {
 public:
  void add(const Cidr& c) { nets_.push_back(c); }
  // The first network containing `a`, if any.
  const Cidr* match(const IpAddr& a) const;
  bool empty() const { return nets_.empty(); }
  const std::vector<Cidr>& nets() const { return nets_; }

 private:
  std::vector<Cidr> nets_;
};

// The default allow-client list: loopback, 10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15,
// fc00::/7 (and ::1).
CidrList default_client_networks();

// A refusal and its reason, for the log.
struct Verdict {
  bool allowed = true;
  std::string reason;  // why refused (empty when allowed)
};

class Policy {
 public:
  // With `allow_client` empty the defaults apply.
  Policy(CidrList allow_client, CidrList allow_dest, CidrList deny_dest,
         std::vector<IpAddr> own_addresses);
  Policy() : Policy({}, {}, {}, {}) {}

  Verdict check_client(const IpAddr& a) const;
  // An IPv6 address that embeds an IPv4 one (IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96,
  // 6to4 2002:AABB:CCDD::/48) is also judged by the embedded address: ::127.0.0.1 is as denied
  // as 127.0.0.1 (IPv4-mapped ones are already normalised to IPv4 by IpAddr::v6_of).
  Verdict check_dest(const IpAddr& a) const;

 private:
  Verdict check_one(const IpAddr& a) const;
  CidrList allow_client_;
  CidrList allow_dest_;
  CidrList deny_dest_;
  CidrList builtin_deny_;
  std::vector<IpAddr> own_;
};

// Users for RFC 1929: one `user:password` per line; blank lines and lines starting with '#' are
// ignored; the password is everything after the first ':' (it may contain ':'). Lines without
// ':' or with an empty user or password, or fields longer than 255 bytes, are kMalformed (the
// detail names the line number, never its content).
class Users {
 public:
  static Result<Users> parse(std::string_view text);
  // Constant time in the credentials: every entry is compared (hashes, with a constant-time
  // compare), whatever matches first; the work depends only on the number of entries.
  bool check(std::string_view user, std::string_view password) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<std::uint8_t, 32> user_hash{};
    std::array<std::uint8_t, 32> pass_hash{};
  };
  std::vector<Entry> entries_;
};

}  // namespace roam::core::socks5
