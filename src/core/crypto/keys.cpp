#include "core/crypto/keys.hpp"

#include <algorithm>
#include <cstring>

namespace roam::core::keys {
namespace {

// Splits on runs of spaces and tabs.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string_view strip_eol(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  return line;
}

// A known_hosts name is HOST:PORT or [V6]:PORT with a numeric port.
bool valid_host(std::string_view h) {
  const auto colon = h.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == h.size()) return false;
  const std::string_view port = h.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return std::all_of(h.begin(), h.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '#'; });
}

}  // namespace

std::string format_secret(const wire::Key& seed) {
  return std::string(kSecretTag) + " " + crypto::base64_encode(seed) + "\n";
}

Result<crypto::SignKeyPair> parse_secret(std::string_view text) {
  std::string_view line = text;
  if (auto nl = text.find('\n'); nl != std::string_view::npos) {
    if (!fields(text.substr(nl + 1)).empty())
      return fail(Errc::kMalformed, "key file has more than one line");
    line = text.substr(0, nl);
  }
  const auto f = fields(strip_eol(line));
  if (f.size() != 2 || f[0] != kSecretTag)
    return fail(Errc::kMalformed, "not a roam secret key file (expected \"" +
                                      std::string(kSecretTag) + " BASE64\")");
  auto seed = crypto::base64_decode(f[1]);
  if (!seed || seed->size() != wire::kKeySize)
    return fail(Errc::kMalformed, "secret key is not 32 bytes of base64");
  wire::Key k{};
  std::memcpy(k.data(), seed->data(), k.size());
  return crypto::sign_keypair_from_seed(k);
}

std::string format_public(const crypto::SignPublic& key) {
  return std::string(kKeyType) + " " + crypto::base64_encode(key);
}

Result<crypto::SignPublic> parse_public(std::string_view type, std::string_view base64) {
  if (type != kKeyType)
    return fail(Errc::kMalformed, "unknown key type \"" + std::string(type.substr(0, 32)) + "\"");
  auto raw = crypto::base64_decode(base64);
  if (!raw || raw->size() != crypto::kSignPublicSize)
    return fail(Errc::kMalformed, "public key is not 32 bytes of base64");
  crypto::SignPublic k{};
  std::memcpy(k.data(), raw->data(), k.size());
  return k;
}

KnownHosts parse_known_hosts(std::string_view text) {
  KnownHosts out;
  std::size_t lineno = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = strip_eol(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    const auto f = fields(line);
    if (f.empty() || f[0].front() == '#') continue;
    auto bad = [&](const std::string& why) {
      out.errors.push_back("line " + std::to_string(lineno) + ": " + why);
    };
    if (f.size() != 3) {
      bad("expected \"HOST:PORT ed25519 BASE64\"");
      continue;
    }
    if (!valid_host(f[0])) {
      bad("bad HOST:PORT");
      continue;
    }
    auto key = parse_public(f[1], f[2]);
    if (!key) {
      bad(key.error().detail);
      continue;
    }
    out.entries.push_back(KnownHost{std::string(f[0]), *key, lineno});
  }
  return out;
}

const KnownHost* find_known_host(const KnownHosts& hosts, std::string_view host) {
  for (const auto& e : hosts.entries)
    if (e.host == host) return &e;
  return nullptr;
}

std::string known_host_line(std::string_view host, const crypto::SignPublic& key) {
  return std::string(host) + " " + format_public(key) + "\n";
}

}  // namespace roam::core::keys
