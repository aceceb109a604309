#include "core/socks5/socks5.hpp"

#include <cstdio>

#include "core/wire/codec.hpp"

namespace roam::core::socks5 {
namespace {

// Reads ATYP ADDR PORT at the reader's position. kNeedMore / kMalformed per the contract.
Result<Address> read_address(wire::Reader& r) {
  std::uint8_t atyp = 0;
  if (!r.u8(atyp)) return fail(Errc::kNeedMore);
  Address a;
  switch (atyp) {
    case static_cast<std::uint8_t>(AddrType::kIPv4): {
      a.type = AddrType::kIPv4;
      if (!r.bytes(MutBytes(a.ip.data(), 4))) return fail(Errc::kNeedMore);
      break;
    }
    case static_cast<std::uint8_t>(AddrType::kIPv6): {
      a.type = AddrType::kIPv6;
      if (!r.bytes(MutBytes(a.ip.data(), 16))) return fail(Errc::kNeedMore);
      break;
    }
    case static_cast<std::uint8_t>(AddrType::kDomain): {
      a.type = AddrType::kDomain;
      std::uint8_t len = 0;
      if (!r.u8(len)) return fail(Errc::kNeedMore);
      if (len == 0) return fail(Errc::kMalformed, "empty domain name");
      Bytes name;
      if (!r.view(len, name)) return fail(Errc::kNeedMore);
      a.domain.assign(name.begin(), name.end());
      break;
    }
    default:
      return fail(Errc::kMalformed, "address type");
  }
  if (!r.u16(a.port)) return fail(Errc::kNeedMore);
  return a;
}

Result<void> write_address(const Address& a, std::vector<std::uint8_t>& out) {
  switch (a.type) {
    case AddrType::kIPv4:
      out.push_back(static_cast<std::uint8_t>(AddrType::kIPv4));
      out.insert(out.end(), a.ip.begin(), a.ip.begin() + 4);
      break;
    case AddrType::kIPv6:
      out.push_back(static_cast<std::uint8_t>(AddrType::kIPv6));
      out.insert(out.end(), a.ip.begin(), a.ip.end());
      break;
    case AddrType::kDomain:
      if (a.domain.empty() || a.domain.size() > 255)
        return fail(Errc::kMalformed, "a domain name must be 1 to 255 bytes");
      out.push_back(static_cast<std::uint8_t>(AddrType::kDomain));
      out.push_back(static_cast<std::uint8_t>(a.domain.size()));
      out.insert(out.end(), a.domain.begin(), a.domain.end());
      break;
    default:
      return fail(Errc::kMalformed, "address type");
  }
  out.push_back(static_cast<std::uint8_t>(a.port >> 8));
  out.push_back(static_cast<std::uint8_t>(a.port & 0xff));
  return {};
}

Result<std::string> read_short_string(wire::Reader& r, const char* what) {
  std::uint8_t len = 0;
  if (!r.u8(len)) return fail(Errc::kNeedMore);
  if (len == 0) return fail(Errc::kMalformed, std::string("empty ") + what);
  Bytes v;
  if (!r.view(len, v)) return fail(Errc::kNeedMore);
  return std::string(v.begin(), v.end());
}

}  // namespace

const char* reply_name(Reply r) {
  switch (r) {
    case Reply::kSucceeded: return "succeeded";
    case Reply::kGeneralFailure: return "general failure";
    case Reply::kNotAllowed: return "not allowed by ruleset";
    case Reply::kNetworkUnreachable: return "network unreachable";
    case Reply::kHostUnreachable: return "host unreachable";
    case Reply::kConnectionRefused: return "connection refused";
    case Reply::kTtlExpired: return "TTL expired";
    case Reply::kCommandNotSupported: return "command not supported";
    case Reply::kAddressTypeNotSupported: return "address type not supported";
  }
  return "unknown reply";
}

const char* stage_name(Stage s) {
  switch (s) {
#define X(name, text) \
  case Stage::name:   \
    return text;
    ROAM_SOCKS5_STAGES(X)
#undef X
  }
  return "?";
}

bool Greeting::offers(std::uint8_t method) const {
  for (std::uint8_t m : methods)
    if (m == method) return true;
  return false;
}

Address Address::ipv4(std::array<std::uint8_t, 4> a, std::uint16_t port) {
  Address r;
  r.type = AddrType::kIPv4;
  std::copy(a.begin(), a.end(), r.ip.begin());
  r.port = port;
  return r;
}

Address Address::ipv6(const std::array<std::uint8_t, 16>& a, std::uint16_t port) {
  Address r;
  r.type = AddrType::kIPv6;
  r.ip = a;
  r.port = port;
  return r;
}

Address Address::name(std::string domain, std::uint16_t port) {
  Address r;
  r.type = AddrType::kDomain;
  r.domain = std::move(domain);
  r.port = port;
  return r;
}

std::string Address::str() const {
  char buf[64];
  switch (type) {
    case AddrType::kIPv4:
      std::snprintf(buf, sizeof buf, "%u.%u.%u.%u:%u", ip[0], ip[1], ip[2], ip[3], port);
      return buf;
    case AddrType::kIPv6: {
      std::string s = "[";
      for (int i = 0; i < 16; i += 2) {
        std::snprintf(buf, sizeof buf, "%s%x", i ? ":" : "", (ip[i] << 8) | ip[i + 1]);
        s += buf;
      }
      return s + "]:" + std::to_string(port);
    }
    case AddrType::kDomain: {
      std::string s;
      for (char c : domain) s += (c >= 0x21 && c <= 0x7e) ? c : '?';
      return s + ":" + std::to_string(port);
    }
  }
  return "?";
}

Result<Parsed<Greeting>> parse_greeting(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0, n = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kVersion) return fail(Errc::kMalformed, "not SOCKS version 5");
  if (!r.u8(n)) return fail(Errc::kNeedMore);
  if (n == 0) return fail(Errc::kMalformed, "greeting offers no method");
  Bytes m;
  if (!r.view(n, m)) return fail(Errc::kNeedMore);
  Parsed<Greeting> p;
  p.value.methods.assign(m.begin(), m.end());
  p.consumed = r.position();
  return p;
}

Result<Parsed<std::uint8_t>> parse_method_choice(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0, m = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kVersion) return fail(Errc::kMalformed, "not SOCKS version 5");
  if (!r.u8(m)) return fail(Errc::kNeedMore);
  return Parsed<std::uint8_t>{m, r.position()};
}

Result<Parsed<UserPass>> parse_userpass(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kAuthVersion) return fail(Errc::kMalformed, "not RFC 1929 version 1");
  auto user = read_short_string(r, "user name");
  if (!user) return tl::unexpected(user.error());
  auto pass = read_short_string(r, "password");
  if (!pass) return tl::unexpected(pass.error());
  Parsed<UserPass> p;
  p.value.user = std::move(*user);
  p.value.password = std::move(*pass);
  p.consumed = r.position();
  return p;
}

Result<Parsed<bool>> parse_userpass_status(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0, status = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kAuthVersion) return fail(Errc::kMalformed, "not RFC 1929 version 1");
  if (!r.u8(status)) return fail(Errc::kNeedMore);
  return Parsed<bool>{status == 0, r.position()};
}

Result<Parsed<Request>> parse_request(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0, cmd = 0, rsv = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kVersion) return fail(Errc::kMalformed, "not SOCKS version 5");
  if (!r.u8(cmd)) return fail(Errc::kNeedMore);
  if (!r.u8(rsv)) return fail(Errc::kNeedMore);
  if (rsv != 0) return fail(Errc::kMalformed, "reserved byte is not zero");
  auto a = read_address(r);
  if (!a) return tl::unexpected(a.error());
  Parsed<Request> p;
  p.value.command = cmd;
  p.value.dest = std::move(*a);
  p.consumed = r.position();
  return p;
}

Result<Parsed<ReplyMsg>> parse_reply(Bytes in) {
  wire::Reader r(in);
  std::uint8_t ver = 0, rep = 0, rsv = 0;
  if (!r.u8(ver)) return fail(Errc::kNeedMore);
  if (ver != kVersion) return fail(Errc::kMalformed, "not SOCKS version 5");
  if (!r.u8(rep)) return fail(Errc::kNeedMore);
  if (rep > static_cast<std::uint8_t>(Reply::kAddressTypeNotSupported))
    return fail(Errc::kMalformed, "unknown reply code");
  if (!r.u8(rsv)) return fail(Errc::kNeedMore);
  if (rsv != 0) return fail(Errc::kMalformed, "reserved byte is not zero");
  auto a = read_address(r);
  if (!a) return tl::unexpected(a.error());
  Parsed<ReplyMsg> p;
  p.value.reply = static_cast<Reply>(rep);
  p.value.bound = std::move(*a);
  p.consumed = r.position();
  return p;
}

Reply malformed_request_reply(Bytes in) {
  if (in.size() >= 4 && in[0] == kVersion && in[2] == 0 &&
      in[3] != static_cast<std::uint8_t>(AddrType::kIPv4) &&
      in[3] != static_cast<std::uint8_t>(AddrType::kIPv6) &&
      in[3] != static_cast<std::uint8_t>(AddrType::kDomain))
    return Reply::kAddressTypeNotSupported;
  return Reply::kGeneralFailure;
}

Result<void> encode_greeting(const std::vector<std::uint8_t>& methods, std::vector<std::uint8_t>& out) {
  if (methods.empty() || methods.size() > 255)
    return fail(Errc::kMalformed, "a greeting offers 1 to 255 methods");
  out.push_back(kVersion);
  out.push_back(static_cast<std::uint8_t>(methods.size()));
  out.insert(out.end(), methods.begin(), methods.end());
  return {};
}

void encode_method_choice(std::uint8_t method, std::vector<std::uint8_t>& out) {
  out.push_back(kVersion);
  out.push_back(method);
}

Result<void> encode_userpass(const UserPass& up, std::vector<std::uint8_t>& out) {
  if (up.user.empty() || up.user.size() > 255 || up.password.empty() || up.password.size() > 255)
    return fail(Errc::kMalformed, "user name and password must be 1 to 255 bytes");
  out.push_back(kAuthVersion);
  out.push_back(static_cast<std::uint8_t>(up.user.size()));
  out.insert(out.end(), up.user.begin(), up.user.end());
  out.push_back(static_cast<std::uint8_t>(up.password.size()));
  out.insert(out.end(), up.password.begin(), up.password.end());
  return {};
}

void encode_userpass_status(bool ok, std::vector<std::uint8_t>& out) {
  out.push_back(kAuthVersion);
  out.push_back(ok ? 0x00 : 0x01);
}

Result<void> encode_request(std::uint8_t command, const Address& dest, std::vector<std::uint8_t>& out) {
  std::vector<std::uint8_t> tmp = {kVersion, command, 0x00};
  if (auto ok = write_address(dest, tmp); !ok) return ok;
  out.insert(out.end(), tmp.begin(), tmp.end());
  return {};
}

Result<void> encode_reply(Reply reply, const Address& bound, std::vector<std::uint8_t>& out) {
  std::vector<std::uint8_t> tmp = {kVersion, static_cast<std::uint8_t>(reply), 0x00};
  if (auto ok = write_address(bound, tmp); !ok) return ok;
  out.insert(out.end(), tmp.begin(), tmp.end());
  return {};
}

// --- ServerNegotiation -----------------------------------------------------------------------

Result<std::size_t> ServerNegotiation::fail_with(Errc code, std::string detail) {
  stage_ = Stage::kFailed;
  return fail(code, std::move(detail));
}

Result<std::size_t> ServerNegotiation::feed(Bytes in, std::vector<std::uint8_t>& out,
                                            const Authenticate& auth) {
  std::size_t used = 0;
  for (;;) {
    const Bytes rest = in.subspan(used);
    switch (stage_) {
      case Stage::kGreeting: {
        auto g = parse_greeting(rest);
        if (!g) {
          if (g.error().code == Errc::kNeedMore) return used;
          return fail_with(Errc::kMalformed, "greeting: " + g.error().detail);
        }
        used += g->consumed;
        if (opts_.allow_roam && g->value.offers(kMethodRoam)) {
          encode_method_choice(kMethodRoam, out);
          stage_ = Stage::kRoam;
          return used;
        }
        if (opts_.require_auth && g->value.offers(kMethodUserPass)) {
          encode_method_choice(kMethodUserPass, out);
          stage_ = Stage::kUserPass;
        } else if (!opts_.require_auth && g->value.offers(kMethodNoAuth)) {
          encode_method_choice(kMethodNoAuth, out);
          stage_ = Stage::kRequest;
        } else {
          encode_method_choice(kMethodNoAcceptable, out);
          return fail_with(Errc::kRefused, opts_.require_auth
                                               ? "client does not offer username/password"
                                               : "client offers no acceptable method");
        }
        break;
      }
      case Stage::kUserPass: {
        auto up = parse_userpass(rest);
        if (!up) {
          if (up.error().code == Errc::kNeedMore) return used;
          encode_userpass_status(false, out);
          return fail_with(Errc::kMalformed, "username/password: " + up.error().detail);
        }
        used += up->consumed;
        const bool ok = auth && auth(up->value);
        encode_userpass_status(ok, out);
        if (!ok) return fail_with(Errc::kRefused, "wrong user name or password");
        user_ = up->value.user;
        stage_ = Stage::kRequest;
        break;
      }
      case Stage::kRequest: {
        auto rq = parse_request(rest);
        if (!rq) {
          if (rq.error().code == Errc::kNeedMore) return used;
          (void)encode_reply(malformed_request_reply(rest), Address{}, out);
          return fail_with(Errc::kMalformed, "request: " + rq.error().detail);
        }
        used += rq->consumed;
        request_ = std::move(rq->value);
        stage_ = Stage::kRequestReady;
        return used;
      }
      case Stage::kRequestReady:
      case Stage::kRoam:
        return used;
      case Stage::kFailed:
        return fail(Errc::kProtocol, "negotiation already failed");
    }
  }
}

}  // namespace roam::core::socks5
