// SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929): incremental parsers and
// writers, no I/O.
//
// Theory of operation
// -------------------
// A SOCKS5 conversation is a sequence of small messages whose lengths are only known once their
// first bytes are in (NMETHODS, ULEN/PLEN, ATYP and the domain length). Each parse_* function
// looks at the bytes received so far, from the start of the message it expects:
//
//   kNeedMore   the message is not complete yet: read more and call again with all the bytes
//   kMalformed  these bytes can never form that message: refuse and close
//   success     the message and `consumed`, the number of bytes it took; anything after it
//               (a request pipelined behind the greeting, data behind the request) belongs to the
//               next stage and is left alone
//
// Parsers never read past the end of their input and never assert on it: every byte here comes
// from a peer. Writers append to a byte vector; those whose input can be out of range (a domain of
// more than 255 bytes) return an error instead of writing.
//
// ServerNegotiation strings the parsers together into the server's side of the handshake
// (greeting → method choice → optional RFC 1929 → request), including roam's private method
// (kMethodRoam, docs/PROTOCOL.md §MSOCKS), after which the connection is no longer SOCKS.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/common.hpp"

namespace roam::core::socks5 {

inline constexpr std::uint8_t kVersion = 0x05;
inline constexpr std::uint8_t kAuthVersion = 0x01;  // RFC 1929 sub-negotiation version

inline constexpr std::uint8_t kMethodNoAuth = 0x00;
inline constexpr std::uint8_t kMethodUserPass = 0x02;
// roam's private method (RFC 1928 reserves 0x80–0xFE for private methods): after the method
// choice the connection carries the roam session protocol (docs/PROTOCOL.md §MSOCKS).
inline constexpr std::uint8_t kMethodRoam = 0x80;
inline constexpr std::uint8_t kMethodNoAcceptable = 0xFF;

enum class Command : std::uint8_t { kConnect = 0x01, kBind = 0x02, kUdpAssociate = 0x03 };
enum class AddrType : std::uint8_t { kIPv4 = 0x01, kDomain = 0x03, kIPv6 = 0x04 };

// Reply codes (RFC 1928 §6).
enum class Reply : std::uint8_t {
  kSucceeded = 0x00,
  kGeneralFailure = 0x01,
  kNotAllowed = 0x02,
  kNetworkUnreachable = 0x03,
  kHostUnreachable = 0x04,
  kConnectionRefused = 0x05,
  kTtlExpired = 0x06,
  kCommandNotSupported = 0x07,
  kAddressTypeNotSupported = 0x08,
};
const char* reply_name(Reply r);

// Largest messages, for callers that bound their buffers: greeting 2+255, RFC 1929 request
// 3+255+255, request and reply 6+1+255.
inline constexpr std::size_t kMaxGreeting = 257;
inline constexpr std::size_t kMaxUserPass = 513;
inline constexpr std::size_t kMaxRequest = 262;

template <typename T>
struct Parsed {
  T value;
  std::size_t consumed = 0;  // bytes of the input this message took
};

struct Greeting {
  std::vector<std::uint8_t> methods;  // as offered, in order, 1 to 255 of them
  bool offers(std::uint8_t method) const;
};

struct UserPass {
  std::string user;      // 1 to 255 bytes
  std::string password;  // 1 to 255 bytes
};

struct Address {
  AddrType type = AddrType::kIPv4;
  std::array<std::uint8_t, 16> ip{};  // IPv4 in the first 4 bytes
  std::string domain;                 // kDomain: 1 to 255 bytes, as sent (not validated)
  std::uint16_t port = 0;
  static Address ipv4(std::array<std::uint8_t, 4> a, std::uint16_t port);
  static Address ipv6(const std::array<std::uint8_t, 16>& a, std::uint16_t port);
  static Address name(std::string domain, std::uint16_t port);
  // "1.2.3.4:80", "[::1]:80", "example.com:80" (control characters of a domain shown as '?').
  std::string str() const;
};

struct Request {
  std::uint8_t command = 0;  // raw: unknown commands parse (and get kCommandNotSupported)
  Address dest;
};

struct ReplyMsg {
  Reply reply = Reply::kSucceeded;
  Address bound;
};

// --- parsers (contract above) ----------------------------------------------------------------
// Greeting: VER=5 NMETHODS>=1 METHODS[NMETHODS].
Result<Parsed<Greeting>> parse_greeting(Bytes in);
// Method choice (server → client): VER=5 METHOD.
Result<Parsed<std::uint8_t>> parse_method_choice(Bytes in);
// RFC 1929 request: VER=1 ULEN>=1 UNAME PLEN>=1 PASSWD.
Result<Parsed<UserPass>> parse_userpass(Bytes in);
// RFC 1929 status: VER=1 STATUS; value is true for success (STATUS 0).
Result<Parsed<bool>> parse_userpass_status(Bytes in);
// Request: VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT. An unknown ATYP is kMalformed with the detail
// "address type"; use malformed_request_reply() for the reply code such a request gets.
Result<Parsed<Request>> parse_request(Bytes in);
// Reply: VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT.
Result<Parsed<ReplyMsg>> parse_reply(Bytes in);

// The reply a server sends before closing when parse_request said kMalformed: kAddressType-
// NotSupported for an unknown ATYP, kGeneralFailure otherwise.
Reply malformed_request_reply(Bytes in);

// --- writers ---------------------------------------------------------------------------------
// kMalformed when `methods` is empty or has more than 255 entries.
Result<void> encode_greeting(const std::vector<std::uint8_t>& methods, std::vector<std::uint8_t>& out);
void encode_method_choice(std::uint8_t method, std::vector<std::uint8_t>& out);
// kMalformed when user or password is empty or longer than 255 bytes.
Result<void> encode_userpass(const UserPass& up, std::vector<std::uint8_t>& out);
void encode_userpass_status(bool ok, std::vector<std::uint8_t>& out);
// kMalformed when a domain is empty or longer than 255 bytes.
Result<void> encode_request(std::uint8_t command, const Address& dest, std::vector<std::uint8_t>& out);
// kMalformed when a domain is empty or longer than 255 bytes.
Result<void> encode_reply(Reply reply, const Address& bound, std::vector<std::uint8_t>& out);

// --- the server's side of the negotiation -----------------------------------------------------

// Stages, named from one table (logs and code never drift).
#define ROAM_SOCKS5_STAGES(X)                  \
  X(kGreeting, "greeting")                     \
  X(kUserPass, "user-password")                \
  X(kRequest, "request")                       \
  X(kRequestReady, "request-ready")            \
  X(kRoam, "roam-method")                      \
  X(kFailed, "failed")

enum class Stage : std::uint8_t {
#define X(name, text) name,
  ROAM_SOCKS5_STAGES(X)
#undef X
};
const char* stage_name(Stage s);

class ServerNegotiation {
 public:
  struct Options {
    bool require_auth = false;  // users configured: plain clients must use RFC 1929
    bool allow_roam = true;     // answer kMethodRoam when offered
  };
  // Checks a user's credentials (in constant time: the caller's business).
  using Authenticate = std::function<bool(const UserPass&)>;

  explicit ServerNegotiation(Options opts) : opts_(opts) {}

  // Feeds the bytes received so far that this negotiation has not consumed yet. Appends what the
  // server must send (method choice, RFC 1929 status, an error reply) to `out`. Returns how many
  // bytes of `in` were consumed; stops at the end of the request (kRequestReady) or of the
  // greeting when the roam method was chosen (kRoam): later bytes are the next stage's.
  // Errors (the stage is then kFailed and whatever `out` holds should be sent before closing):
  //   kMalformed  bytes that are not SOCKS5 (detail says what)
  //   kRefused    no acceptable method, or wrong credentials
  // A request with a command other than CONNECT is not an error here: it is kRequestReady and the
  // caller answers kCommandNotSupported.
  Result<std::size_t> feed(Bytes in, std::vector<std::uint8_t>& out, const Authenticate& auth);

  Stage stage() const { return stage_; }
  const Request& request() const { return request_; }
  // The authenticated user name (empty without RFC 1929).
  const std::string& user() const { return user_; }

 private:
  Result<std::size_t> fail_with(Errc code, std::string detail);

  Options opts_;
  Stage stage_ = Stage::kGreeting;
  Request request_;
  std::string user_;
};

}  // namespace roam::core::socks5
