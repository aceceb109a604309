#include "vectors.hpp"

#include <string_view>

#include "core/crypto/crypto.hpp"
#include "core/session/sealer.hpp"

namespace roam::vectors {
namespace {

using namespace roam::core;

template <typename A>
A sequence(std::uint8_t first) {
  A a{};
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>(first + i);
  return a;
}

Bytes text(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

std::vector<std::uint8_t> data_frame(std::string_view payload) {
  std::vector<std::uint8_t> out(wire::kFrameHeaderSize);
  wire::encode_header(wire::FrameType::kData, static_cast<std::uint32_t>(payload.size()), out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace

wire::Key client_secret() { return sequence<wire::Key>(0x01); }
wire::Key server_secret() { return sequence<wire::Key>(0x21); }
wire::Random client_random() { return sequence<wire::Random>(0x41); }
wire::Random server_random() { return sequence<wire::Random>(0x61); }
wire::Nonce challenge_nonce() { return sequence<wire::Nonce>(0x81); }

HandshakeParams client_params() {
  HandshakeParams p;
  p.features = wire::kFeatureResume | wire::kFeatureEncrypt;
  p.aes_gcm = false;  // the same HELLO on every CPU (AES-256-GCM vectors are below, apart)
  p.buffer_cap = 8u << 20;
  p.wait = std::chrono::minutes(10);
  return p;
}

HandshakeParams server_params() {
  HandshakeParams p;
  p.features = wire::kFeatureResume;
  p.aes_gcm = false;
  p.buffer_cap = 4u << 20;
  p.wait = std::chrono::hours(2);
  return p;
}

std::string hex(Bytes b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (std::uint8_t c : b) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 15]);
  }
  return s;
}

std::vector<std::uint8_t> unhex(const std::string& h) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    const int hi = nibble(h[i]);
    const int lo = nibble(h[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

std::vector<Vector> compute_vectors() {
  std::vector<Vector> v;
  auto add = [&](const char* name, Bytes b) { v.push_back({name, hex(b)}); };

  const wire::Key cs = client_secret();
  const wire::Key ss = server_secret();
  const wire::Random cr = client_random();
  const wire::Random sr = server_random();
  const wire::Nonce nonce = challenge_nonce();
  add("client_secret", cs);
  add("server_secret", ss);
  add("client_random", cr);
  add("server_random", sr);
  add("challenge_nonce", nonce);

  const wire::Key cp = crypto::public_of(cs);
  const wire::Key sp = crypto::public_of(ss);
  add("client_public", cp);
  add("server_public", sp);

  std::vector<std::uint8_t> preamble;
  wire::encode_preamble(preamble);
  add("preamble", preamble);

  // Handshake, with the project's own classes.
  ClientHandshake client(client_params(), cs, cr);
  ServerHandshake server(server_params(), ss, sr);
  std::vector<std::uint8_t> hello, reply, finish;
  client.write_hello(hello);
  (void)server.on_hello(hello, reply);
  auto nc = client.on_hello_reply(reply, finish);
  add("hello", hello);
  add("hello_reply", reply);

  // Key schedule, step by step.
  const wire::Key shared = crypto::x25519(cs, sp).value_or(wire::Key{});
  add("shared_secret", shared);
  std::vector<std::uint8_t> transcript = hello;
  transcript.insert(transcript.end(), reply.begin(), reply.end() - wire::kMacSize);
  add("transcript", transcript);
  const wire::Key th = crypto::blake2b_256(transcript);
  add("transcript_hash", th);
  const wire::Key prk = crypto::extract(shared, th);
  add("prk", prk);
  const wire::Key mac_c2s = crypto::derive(prk, crypto::KeyId::kMacClientToServer);
  const wire::Key mac_s2c = crypto::derive(prk, crypto::KeyId::kMacServerToClient);
  const wire::Key k_token = crypto::derive(prk, crypto::KeyId::kToken);
  add("k_mac_c2s", mac_c2s);
  add("k_mac_s2c", mac_s2c);
  add("k_token", k_token);
  add("k_aead_c2s", crypto::derive(prk, crypto::KeyId::kAeadClientToServer));
  add("k_aead_s2c", crypto::derive(prk, crypto::KeyId::kAeadServerToClient));
  const wire::Token tok = crypto::token_of(k_token, cr, sr);
  add("token", tok);
  add("hello_reply_mac",
      crypto::mac(mac_s2c, {mac_label(wire::FrameType::kHelloReply), th}));
  add("finish", finish);
  (void)nc;

  // The migrate exchange of the scenario: the client received 16 bytes, consumed 10; the server
  // received 5.
  const std::uint64_t client_received = sizeof(kServerData1) - 1;
  const std::uint64_t server_received = sizeof(kClientData) - 1;
  const std::uint64_t request = 1;
  std::vector<std::uint8_t> out;

  wire::Migrate m;
  m.token = tok;
  m.request = request;
  m.received = client_received;
  m.mac = crypto::mac(mac_c2s, {mac_label(wire::FrameType::kMigrate), tok, crypto::be64(request),
                                crypto::be64(client_received)});
  wire::encode(m, out);
  add("migrate", out);
  out.clear();

  wire::Challenge c;
  c.request = request;
  c.nonce = nonce;
  c.mac = crypto::mac(mac_s2c,
                      {mac_label(wire::FrameType::kChallenge), tok, crypto::be64(request), nonce});
  wire::encode(c, out);
  add("challenge", out);
  out.clear();

  wire::Response r;
  r.request = request;
  r.received = client_received;
  r.mac = crypto::mac(mac_c2s, {mac_label(wire::FrameType::kResponse), tok, crypto::be64(request),
                                nonce, crypto::be64(client_received)});
  wire::encode(r, out);
  add("response", out);
  out.clear();

  wire::Accept a;
  a.request = request;
  a.received = server_received;
  a.mac = crypto::mac(mac_s2c, {mac_label(wire::FrameType::kAccept), tok, crypto::be64(request),
                                crypto::be64(server_received)});
  wire::encode(a, out);
  add("accept", out);
  out.clear();

  wire::Stale st;
  st.request = request;
  st.newest = request;
  st.mac = crypto::mac(mac_s2c, {mac_label(wire::FrameType::kStale), tok, crypto::be64(request),
                                 crypto::be64(request)});
  wire::encode(st, out);
  add("stale", out);
  out.clear();

  wire::encode(wire::Refused{request}, out);
  add("refused", out);
  out.clear();

  add("data_s2c_1", data_frame(kServerData1));
  add("data_c2s", data_frame(kClientData));
  add("data_s2c_2", data_frame(kServerData2));

  wire::encode(wire::Ack{kClientConsumedBeforeMove}, out);
  add("ack", out);
  out.clear();

  wire::encode(wire::Fin{server_received}, out);
  add("fin", out);
  out.clear();

  wire::encode(wire::Ack{server_received + 1}, out);
  add("ack_eof", out);
  out.clear();

  wire::Close cl;
  cl.code = static_cast<std::uint16_t>(Errc::kAborted);
  cl.reason = kAbortReason;
  wire::encode(cl, out);
  add("close", out);
  out.clear();

  // --encrypt and server keys (docs/PROTOCOL.md §Encryption, §Server keys). SERVER_KEY as a
  // server with the fixed key would send it after this transcript; SEALED frames as the client
  // sends "ping\n" first on path 1 (epoch 0, seq 0) and as the server's ACK (consumed 5) is its
  // first frame after ACCEPT on path 2 (epoch = request 1, seq 0).
  const wire::Key seed = sequence<wire::Key>(0xa1);
  add("sign_seed", seed);
  const crypto::SignKeyPair id = crypto::sign_keypair_from_seed(seed);
  add("sign_public", id.public_key);
  wire::ServerKey sk;
  sk.public_key = id.public_key;
  sk.signature = crypto::sign(id, {server_key_label(), th});
  wire::encode(sk, out);
  add("server_key", out);
  out.clear();
  const wire::Key aead_c2s = crypto::derive(prk, crypto::KeyId::kAeadClientToServer);
  const wire::Key aead_s2c = crypto::derive(prk, crypto::KeyId::kAeadServerToClient);
  Sealer c2s_path1;
  c2s_path1.start(aead_c2s, 0);
  c2s_path1.seal(wire::FrameType::kData, text(kClientData), out);
  add("sealed_data_c2s", out);
  out.clear();
  Sealer s2c_path2;
  s2c_path2.start(aead_s2c, request);
  std::vector<std::uint8_t> ack;
  wire::encode(wire::Ack{server_received}, ack);
  s2c_path2.seal(wire::FrameType::kAck, Bytes(ack).subspan(wire::kFrameHeaderSize), out);
  add("sealed_ack_s2c", out);
  out.clear();
  // The same two frames sealed with AES-256-GCM (kFeatureAesGcm negotiated): 12-byte nonce
  // be32(epoch) || be64(seq).
  if (crypto::aes256gcm_available()) {
    Sealer c2s_gcm;
    c2s_gcm.start(crypto::Aead::kAes256Gcm, aead_c2s, 0);
    c2s_gcm.seal(wire::FrameType::kData, text(kClientData), out);
    add("gcm_data_c2s", out);
    out.clear();
    Sealer s2c_gcm;
    s2c_gcm.start(crypto::Aead::kAes256Gcm, aead_s2c, request);
    s2c_gcm.seal(wire::FrameType::kAck, Bytes(ack).subspan(wire::kFrameHeaderSize), out);
    add("gcm_ack_s2c", out);
    out.clear();
  }

  return v;
}

}  // namespace roam::vectors
