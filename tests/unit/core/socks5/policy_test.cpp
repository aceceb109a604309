// Access control: CIDR parsing and matching, the default client and destination rules, the
// override order, and the users file.
#include "core/socks5/policy.hpp"

#include <gtest/gtest.h>

#include "core/crypto/crypto.hpp"

namespace roam::core::socks5 {
namespace {

IpAddr ip(const char* s) {
  auto r = parse_ip(s);
  EXPECT_TRUE(r) << s;
  return r ? *r : IpAddr{};
}

CidrList list(std::initializer_list<const char*> nets) {
  CidrList l;
  for (const char* n : nets) {
    auto c = parse_cidr(n);
    EXPECT_TRUE(c) << n;
    if (c) l.add(*c);
  }
  return l;
}

TEST(PolicyCidr, Parse) {
  auto a = parse_cidr("10.1.2.3/8");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "10.0.0.0/8");
  auto b = parse_cidr("fc00::1/7");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->str(), "fc00::/7");
  auto c = parse_cidr("192.168.1.1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->prefix, 32u);
  auto m = parse_cidr("::ffff:127.0.0.0/104");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->str(), "127.0.0.0/8");
  EXPECT_FALSE(m->base.v6);
  auto zero = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(zero);
  EXPECT_TRUE(zero->contains(ip("8.8.8.8")));
  EXPECT_FALSE(zero->contains(ip("::1")));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "x", "", "10.0.0.0/8x",
                          "1.2.3.4/-1", "/8"})
    EXPECT_FALSE(parse_cidr(bad)) << bad;
}

TEST(PolicyCidr, Contains) {
  auto n = *parse_cidr("172.16.0.0/12");
  EXPECT_TRUE(n.contains(ip("172.31.255.255")));
  EXPECT_FALSE(n.contains(ip("172.32.0.0")));
  auto v6 = *parse_cidr("2001:db8::/33");
  EXPECT_TRUE(v6.contains(ip("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(ip("2001:db8:8000::1")));
}

TEST(PolicyIp, MappedIsNormalised) {
  const IpAddr a = ip("::ffff:127.0.0.1");
  EXPECT_FALSE(a.v6);
  EXPECT_EQ(a, ip("127.0.0.1"));
  EXPECT_EQ(a.str(), "127.0.0.1");
  EXPECT_FALSE(parse_ip("localhost"));
  EXPECT_FALSE(parse_ip("1.2.3.4.5"));
}

TEST(PolicyClient, Defaults) {
  Policy p;
  for (const char* ok : {"127.0.0.1", "10.9.8.7", "172.20.0.1", "192.168.5.5", "100.64.0.1",
                         "198.19.1.1", "fd00::1", "::1", "::ffff:10.0.0.1"})
    EXPECT_TRUE(p.check_client(ip(ok)).allowed) << ok;
  for (const char* no : {"8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "::ffff:8.8.8.8"})
    EXPECT_FALSE(p.check_client(ip(no)).allowed) << no;
  Policy only({list({"203.0.113.0/24"})}, {}, {}, {});
  EXPECT_TRUE(only.check_client(ip("203.0.113.9")).allowed);
  EXPECT_FALSE(only.check_client(ip("127.0.0.1")).allowed);  // --allow-client replaces defaults
}

TEST(PolicyDest, Defaults) {
  Policy p({}, {}, {}, {ip("192.0.2.10")});
  for (const char* no : {"127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
                         "169.254.1.1", "fe80::1", "224.0.0.1", "239.1.1.1", "ff02::1",
                         "255.255.255.255", "192.0.2.10"}) {
    const Verdict v = p.check_dest(ip(no));
    EXPECT_FALSE(v.allowed) << no;
    EXPECT_FALSE(v.reason.empty());
  }
  for (const char* ok : {"8.8.8.8", "10.0.0.1", "2001:db8::1", "192.0.2.11"})
    EXPECT_TRUE(p.check_dest(ip(ok)).allowed) << ok;
}

TEST(PolicyDest, AllowListLiftsDefaultsAndRestricts) {
  Policy p({}, list({"127.0.0.0/8"}), {}, {});
  EXPECT_TRUE(p.check_dest(ip("127.0.0.1")).allowed);
  EXPECT_TRUE(p.check_dest(ip("::ffff:127.0.0.1")).allowed);
  EXPECT_FALSE(p.check_dest(ip("8.8.8.8")).allowed);  // not in the allow list
  EXPECT_FALSE(p.check_dest(ip("::1")).allowed);
}

TEST(PolicyDest, DenyWinsOverAllow) {
  Policy p({}, list({"10.0.0.0/8"}), list({"10.1.0.0/16"}), {});
  EXPECT_TRUE(p.check_dest(ip("10.2.0.1")).allowed);
  const Verdict v = p.check_dest(ip("10.1.0.1"));
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("--deny-dest 10.1.0.0/16"), std::string::npos) << v.reason;
  Policy q({}, {}, list({"8.8.8.0/24"}), {});
  EXPECT_FALSE(q.check_dest(ip("8.8.8.8")).allowed);
  EXPECT_TRUE(q.check_dest(ip("8.8.4.4")).allowed);
}

TEST(PolicyUsers, ParseAndCheck) {
  ASSERT_TRUE(crypto::init());
  auto u = Users::parse("# users\n\nalice:s3cret\r\nbob:pa:ss:word\n  \n");
  ASSERT_FALSE(u);  // "  " has no ':'
  EXPECT_NE(u.error().detail.find("line 5"), std::string::npos) << u.error().detail;
  auto ok = Users::parse("# users\n\nalice:s3cret\r\nbob:pa:ss:word\n");
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_TRUE(ok->check("alice", "s3cret"));
  EXPECT_TRUE(ok->check("bob", "pa:ss:word"));
  EXPECT_FALSE(ok->check("alice", "s3cre"));
  EXPECT_FALSE(ok->check("alice", "pa:ss:word"));
  EXPECT_FALSE(ok->check("carol", "s3cret"));
  EXPECT_FALSE(ok->check("", ""));
  EXPECT_FALSE(Users::parse("alice:\n"));
  EXPECT_FALSE(Users::parse(":pw\n"));
  EXPECT_FALSE(Users::parse(std::string(256, 'a') + ":pw\n"));
  auto empty = Users::parse("");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->check("a", "b"));
}

}  // namespace
}  // namespace roam::core::socks5
