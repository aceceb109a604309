// SOCKS5 parsers and writers: golden bytes, every truncation is kNeedMore, malformed inputs, and
// the server negotiation fed one byte at a time and pipelined.
#include "core/socks5/socks5.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace roam::core::socks5 {
namespace {

using V = std::vector<std::uint8_t>;

// Every strict prefix of `msg` must be kNeedMore for `parse`, and the whole must parse with
// consumed == msg.size() even with trailing bytes behind it.
template <typename F>
void check_truncations(const V& msg, F parse) {
  for (std::size_t n = 0; n < msg.size(); ++n) {
    auto r = parse(Bytes(msg.data(), n));
    ASSERT_FALSE(r) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.error().code, Errc::kNeedMore) << "prefix of " << n << " bytes: " << r.error().detail;
  }
  V with_tail = msg;
  with_tail.push_back(0xAB);
  with_tail.push_back(0xCD);
  auto r = parse(with_tail);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->consumed, msg.size());
}

TEST(Socks5Greeting, GoldenAndTruncations) {
  const V g = {0x05, 0x02, 0x00, 0x80};
  auto r = parse_greeting(g);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value.methods, (V{0x00, 0x80}));
  EXPECT_TRUE(r->value.offers(kMethodRoam));
  EXPECT_FALSE(r->value.offers(kMethodUserPass));
  check_truncations(g, [](Bytes b) { return parse_greeting(b); });
  V out;
  ASSERT_TRUE(encode_greeting({0x00, 0x80}, out));
  EXPECT_EQ(out, g);
}

TEST(Socks5Greeting, Malformed) {
  EXPECT_EQ(parse_greeting(V{0x04, 0x01, 0x00}).error().code, Errc::kMalformed);  // SOCKS4
  EXPECT_EQ(parse_greeting(V{0x05, 0x00}).error().code, Errc::kMalformed);        // no methods
  EXPECT_EQ(parse_greeting(V{'G', 'E', 'T', ' '}).error().code, Errc::kMalformed);
  // An absurd count is just "need more" until 255 methods arrived: bounded by kMaxGreeting.
  V big = {0x05, 0xff};
  big.resize(2 + 254, 0x00);
  EXPECT_EQ(parse_greeting(big).error().code, Errc::kNeedMore);
  big.push_back(0x00);
  EXPECT_TRUE(parse_greeting(big));
  EXPECT_EQ(big.size(), kMaxGreeting);
  V out;
  EXPECT_FALSE(encode_greeting({}, out));
  EXPECT_FALSE(encode_greeting(V(256, 0), out));
}

TEST(Socks5MethodChoice, Golden) {
  V out;
  encode_method_choice(kMethodRoam, out);
  EXPECT_EQ(out, (V{0x05, 0x80}));
  check_truncations(out, [](Bytes b) { return parse_method_choice(b); });
  EXPECT_EQ(parse_method_choice(out)->value, kMethodRoam);
  EXPECT_EQ(parse_method_choice(V{0x01, 0x00}).error().code, Errc::kMalformed);
}

TEST(Socks5UserPass, GoldenAndTruncations) {
  const V m = {0x01, 0x03, 'b', 'o', 'b', 0x04, 'p', 'a', ':', 's'};
  auto r = parse_userpass(m);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value.user, "bob");
  EXPECT_EQ(r->value.password, "pa:s");
  check_truncations(m, [](Bytes b) { return parse_userpass(b); });
  V out;
  ASSERT_TRUE(encode_userpass({"bob", "pa:s"}, out));
  EXPECT_EQ(out, m);
  EXPECT_FALSE(encode_userpass({"", "x"}, out));
  EXPECT_FALSE(encode_userpass({"x", std::string(256, 'a')}, out));

  EXPECT_EQ(parse_userpass(V{0x05, 0x01, 'a', 0x01, 'b'}).error().code, Errc::kMalformed);
  EXPECT_EQ(parse_userpass(V{0x01, 0x00, 0x01, 'b'}).error().code, Errc::kMalformed);
  EXPECT_EQ(parse_userpass(V{0x01, 0x01, 'a', 0x00}).error().code, Errc::kMalformed);

  V st;
  encode_userpass_status(true, st);
  encode_userpass_status(false, st);
  EXPECT_EQ(st, (V{0x01, 0x00, 0x01, 0x01}));
  check_truncations(V{0x01, 0x00}, [](Bytes b) { return parse_userpass_status(b); });
  EXPECT_TRUE(parse_userpass_status(V{0x01, 0x00})->value);
  EXPECT_FALSE(parse_userpass_status(V{0x01, 0x01})->value);
}

TEST(Socks5Request, GoldenIpv4Ipv6Domain) {
  const V v4 = {0x05, 0x01, 0x00, 0x01, 10, 0, 0, 1, 0x00, 0x50};
  const V v6 = {0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb};
  const V dn = {0x05, 0x01, 0x00, 0x03, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x1f, 0x90};
  for (const V* m : {&v4, &v6, &dn})
    check_truncations(*m, [](Bytes b) { return parse_request(b); });
  auto a = parse_request(v4);
  EXPECT_EQ(a->value.dest.str(), "10.0.0.1:80");
  auto b = parse_request(v6);
  EXPECT_EQ(b->value.dest.type, AddrType::kIPv6);
  EXPECT_EQ(b->value.dest.str(), "[2001:db8:0:0:0:0:0:1]:443");
  auto c = parse_request(dn);
  EXPECT_EQ(c->value.dest.domain, "example.com");
  EXPECT_EQ(c->value.dest.port, 8080);
  EXPECT_EQ(c->value.command, 0x01);
  // Round trips.
  for (const V* m : {&v4, &v6, &dn}) {
    auto p = parse_request(*m);
    V out;
    ASSERT_TRUE(encode_request(p->value.command, p->value.dest, out));
    EXPECT_EQ(out, *m);
  }
}

TEST(Socks5Request, UnknownCommandParses) {
  const V bind = {0x05, 0x02, 0x00, 0x01, 1, 2, 3, 4, 0, 1};
  const V udp = {0x05, 0x03, 0x00, 0x01, 1, 2, 3, 4, 0, 1};
  const V junk = {0x05, 0x7f, 0x00, 0x01, 1, 2, 3, 4, 0, 1};
  EXPECT_EQ(parse_request(bind)->value.command, 0x02);
  EXPECT_EQ(parse_request(udp)->value.command, 0x03);
  EXPECT_EQ(parse_request(junk)->value.command, 0x7f);
}

TEST(Socks5Request, Malformed) {
  const V bad_atyp = {0x05, 0x01, 0x00, 0x09, 1, 2, 3, 4, 0, 1};
  auto r = parse_request(bad_atyp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
  EXPECT_EQ(malformed_request_reply(bad_atyp), Reply::kAddressTypeNotSupported);
  const V rsv = {0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 1};
  EXPECT_EQ(parse_request(rsv).error().code, Errc::kMalformed);
  EXPECT_EQ(malformed_request_reply(rsv), Reply::kGeneralFailure);
  EXPECT_EQ(parse_request(V{0x04, 0x01}).error().code, Errc::kMalformed);
  EXPECT_EQ(parse_request(V{0x05, 0x01, 0x00, 0x03, 0x00, 0, 80}).error().code, Errc::kMalformed);
  V out;
  EXPECT_FALSE(encode_request(1, Address::name(std::string(256, 'a'), 80), out));
  EXPECT_FALSE(encode_request(1, Address::name("", 80), out));
}

TEST(Socks5Reply, GoldenAndTruncations) {
  V out;
  ASSERT_TRUE(encode_reply(Reply::kConnectionRefused, Address::ipv4({0, 0, 0, 0}, 0), out));
  EXPECT_EQ(out, (V{0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  check_truncations(out, [](Bytes b) { return parse_reply(b); });
  EXPECT_EQ(parse_reply(out)->value.reply, Reply::kConnectionRefused);
  EXPECT_EQ(parse_reply(V{0x05, 0x09, 0x00, 0x01, 0, 0, 0, 0, 0, 0}).error().code, Errc::kMalformed);
  EXPECT_STREQ(reply_name(Reply::kNotAllowed), "not allowed by ruleset");
}

TEST(Socks5Address, StrSanitisesDomain) {
  EXPECT_EQ(Address::name("a\nb", 1).str(), "a?b:1");
}

// --- ServerNegotiation -------------------------------------------------------------------------

struct Fed {
  Result<std::size_t> last = 0;
  std::size_t used = 0;
  V out;
};

// Feeds `in` in chunks of `chunk` bytes, as a connection would deliver it (the unconsumed rest is
// offered again with the next chunk).
Fed feed_chunks(ServerNegotiation& n, const V& in, std::size_t chunk,
                const ServerNegotiation::Authenticate& auth = {}) {
  Fed f;
  std::size_t have = 0;
  while (have < in.size()) {
    have = std::min(in.size(), have + chunk);
    f.last = n.feed(Bytes(in.data() + f.used, have - f.used), f.out, auth);
    if (!f.last) return f;
    f.used += *f.last;
    if (n.stage() == Stage::kRequestReady || n.stage() == Stage::kRoam) return f;
  }
  return f;
}

TEST(Socks5Negotiation, GreetingSplitOverManySegments) {
  const V in = {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x1f, 0x90, 'G', 'E', 'T'};
  for (std::size_t chunk = 1; chunk <= in.size(); ++chunk) {
    ServerNegotiation n({});
    Fed f = feed_chunks(n, in, chunk);
    ASSERT_TRUE(f.last) << chunk;
    EXPECT_EQ(n.stage(), Stage::kRequestReady) << chunk;
    EXPECT_EQ(f.used, in.size() - 3) << "pipelined data left for the next stage, chunk " << chunk;
    EXPECT_EQ(f.out, (V{0x05, 0x00}));
    EXPECT_EQ(n.request().dest.str(), "127.0.0.1:8080");
  }
}

TEST(Socks5Negotiation, UserPassPipelined) {
  const V in = {0x05, 0x02, 0x00, 0x02, 0x01, 0x01, 'u', 0x01, 'p',
                0x05, 0x01, 0x00, 0x03, 0x01, 'h', 0x00, 0x50};
  std::string seen;
  auto auth = [&](const UserPass& up) {
    seen = up.user + ":" + up.password;
    return up.user == "u" && up.password == "p";
  };
  ServerNegotiation n({true, true});
  V out;
  auto r = n.feed(in, out, auth);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, in.size());
  EXPECT_EQ(n.stage(), Stage::kRequestReady);
  EXPECT_EQ(out, (V{0x05, 0x02, 0x01, 0x00}));
  EXPECT_EQ(seen, "u:p");
  EXPECT_EQ(n.user(), "u");
}

TEST(Socks5Negotiation, WrongPassword) {
  const V in = {0x05, 0x01, 0x02, 0x01, 0x01, 'u', 0x01, 'x'};
  ServerNegotiation n({true, false});
  V out;
  auto r = n.feed(in, out, [](const UserPass&) { return false; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRefused);
  EXPECT_EQ(n.stage(), Stage::kFailed);
  EXPECT_EQ(out, (V{0x05, 0x02, 0x01, 0x01}));
  EXPECT_FALSE(n.feed(in, out, {}));  // stays failed
}

TEST(Socks5Negotiation, NoAcceptableMethod) {
  ServerNegotiation n({true, false});
  V out;
  auto r = n.feed(V{0x05, 0x01, 0x00}, out, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRefused);
  EXPECT_EQ(out, (V{0x05, 0xff}));
}

TEST(Socks5Negotiation, RoamMethodStopsAfterGreeting) {
  V in = {0x05, 0x02, 0x00, 0x80, 'R', 'O', 'A', 'M'};
  ServerNegotiation n({});
  V out;
  auto r = n.feed(in, out, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 4u);
  EXPECT_EQ(n.stage(), Stage::kRoam);
  EXPECT_EQ(out, (V{0x05, 0x80}));
  // Not offered when disabled: plain SOCKS.
  ServerNegotiation plain({false, false});
  V out2;
  ASSERT_TRUE(plain.feed(Bytes(in.data(), 4), out2, {}));
  EXPECT_EQ(plain.stage(), Stage::kRequest);
  // ...and the roam preamble that follows is then a malformed request.
  EXPECT_FALSE(plain.feed(Bytes(in.data() + 4, 4), out2, {}));
  EXPECT_EQ(out2, (V{0x05, 0x00, 0x05, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
}

TEST(Socks5Negotiation, MalformedRequestGetsReply) {
  ServerNegotiation n({});
  V out;
  auto r = n.feed(V{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x07, 1, 2, 3, 4, 0, 80}, out, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMalformed);
  EXPECT_EQ(out, (V{0x05, 0x00, 0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  ServerNegotiation g({});
  V out2;
  EXPECT_EQ(g.feed(V{'G', 'E', 'T', ' ', '/'}, out2, {}).error().code, Errc::kMalformed);
  EXPECT_TRUE(out2.empty());
}

}  // namespace
}  // namespace roam::core::socks5
