// --encrypt and server keys at the session level: sealed frames per direction, tampering,
// replays, nonce uniqueness across migrations with re-chunking, downgrades, signed handshakes.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <tuple>

#include "core/session/session.hpp"
#include "support/session_pair.hpp"

namespace roam::core {
namespace {

using test::ByteVec;
using test::pattern;
using test::SessionPair;
using Link = SessionPair::Link;

// Whether both ends offer AES-256-GCM (the cipher under test); false acts like CPUs without AES-NI.
bool g_aes = false;

// Every test runs with each cipher: XChaCha20-Poly1305 and AES-256-GCM.
class EncryptTest : public ::testing::TestWithParam<crypto::Aead> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    g_aes = GetParam() == crypto::Aead::kAes256Gcm;
    if (g_aes && !crypto::aes256gcm_available())
      GTEST_SKIP() << "this CPU has no AES-NI/PCLMULQDQ: AES-256-GCM is never negotiated here";
  }
  void TearDown() override { g_aes = false; }
};

SessionConfig cfg(std::uint32_t features, bool require_encrypt, std::uint64_t cap) {
  SessionConfig c;
  c.handshake.buffer_cap = cap;
  c.handshake.features = wire::kFeatureResume | features;
  c.handshake.require_encrypt = require_encrypt;
  c.handshake.aes_gcm = g_aes;
  return c;
}
// A client offers to verify a server key; with `encrypt` it offers and requires encryption.
SessionConfig client_cfg(bool encrypt, std::uint64_t cap = 8u << 20) {
  return cfg(wire::kFeatureServerKey, encrypt, cap);
}
// A server accepts encryption; with `require` it refuses clients that do not offer it.
SessionConfig server_cfg(bool require, std::uint64_t cap = 8u << 20) {
  return cfg(wire::kFeatureEncrypt, require, cap);
}

// Every frame on `bytes` (after the 8-byte preamble): (type, payload view).
std::vector<std::pair<std::uint8_t, ByteVec>> frames_of(const ByteVec& bytes) {
  std::vector<std::pair<std::uint8_t, ByteVec>> out;
  std::size_t pos = wire::kPreambleSize;
  while (pos + wire::kFrameHeaderSize <= bytes.size()) {
    const std::size_t len = (std::size_t{bytes[pos + 1]} << 16) | (std::size_t{bytes[pos + 2]} << 8) |
                            bytes[pos + 3];
    if (pos + wire::kFrameHeaderSize + len > bytes.size()) break;
    out.emplace_back(bytes[pos], ByteVec(bytes.begin() + static_cast<std::ptrdiff_t>(pos + 4),
                                         bytes.begin() + static_cast<std::ptrdiff_t>(pos + 4 + len)));
    pos += wire::kFrameHeaderSize + len;
  }
  return out;
}

bool contains(const ByteVec& hay, const ByteVec& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

void send_all(SessionPair& p, Session& s, const ByteVec& data) {
  std::size_t off = 0;
  for (int guard = 0; off < data.size() && guard < 100000; ++guard) {
    off += s.write(Bytes(data).subspan(off));
    p.pump();
  }
  ASSERT_EQ(off, data.size());
}

Link& reconnect(SessionPair& p) {
  EXPECT_TRUE(p.client->take_connect_request());
  Link& l = p.open_link();
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClientEstablished);
  return l;
}

TEST_P(EncryptTest, SealedRoundTripInBothDirectionsAndNoPlaintextOnTheWire) {
  SessionPair p(client_cfg(true), server_cfg(false), 7);
  ASSERT_TRUE(p.establish());
  EXPECT_TRUE(p.client->negotiated().features & wire::kFeatureEncrypt);
  EXPECT_TRUE(p.server->negotiated().features & wire::kFeatureEncrypt);
  EXPECT_EQ(p.client->negotiated().aead, GetParam());
  EXPECT_EQ(p.server->negotiated().aead, GetParam());
  const ByteVec up = pattern(300000, 1), down = pattern(200000, 2);
  p.client->write(up);
  p.server->write(down);
  send_all(p, *p.client, {});
  p.client->shutdown_write();
  p.server->shutdown_write();
  p.pump();
  EXPECT_EQ(p.server_got, up);
  EXPECT_EQ(p.client_got, down);
  EXPECT_TRUE(p.client_saw_eof && p.server_saw_eof);
  const Link& l = p.last_link();
  // Neither direction carries a recognisable run of the plaintext, and after the handshake every
  // frame is SEALED (DATA, ACK and FIN included).
  EXPECT_FALSE(contains(l.requests, ByteVec(up.begin() + 1000, up.begin() + 1032)));
  EXPECT_FALSE(contains(l.replies, ByteVec(down.begin() + 1000, down.begin() + 1032)));
  int sealed_up = 0, sealed_down = 0;
  for (auto& [type, payload] : frames_of(l.requests)) {
    if (type == 0x01 || type == 0x03) continue;  // HELLO, FINISH
    EXPECT_EQ(type, 0x30) << wire::frame_type_name(type);
    ++sealed_up;
  }
  for (auto& [type, payload] : frames_of(l.replies)) {
    if (type == 0x02) continue;  // HELLO_REPLY (no SERVER_KEY: this server has no key)
    EXPECT_EQ(type, 0x30) << wire::frame_type_name(type);
    ++sealed_down;
  }
  // 300000 bytes are at least two SEALED DATA frames (at most 256 KiB each), then FIN.
  EXPECT_GE(sealed_up, 3);
  EXPECT_GE(sealed_down, 2);
}

TEST_P(EncryptTest, ServerWithoutEncryptAcceptsEitherAndPlainStaysPlain) {
  SessionPair p(client_cfg(false), server_cfg(false), 8);
  ASSERT_TRUE(p.establish());
  EXPECT_FALSE(p.client->negotiated().features & wire::kFeatureEncrypt);
  const ByteVec up = pattern(5000, 3);
  p.client->write(up);
  p.pump();
  EXPECT_EQ(p.server_got, up);
  EXPECT_TRUE(contains(p.last_link().requests, up));  // DATA in clear, as before
}

TEST_P(EncryptTest, ServerRequiringEncryptionRefusesAPlainClientWithAReason) {
  SessionPair p(client_cfg(false), server_cfg(true), 9);
  EXPECT_FALSE(p.establish());
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_NE(p.client->close_error().detail.find("requires encryption"), std::string::npos)
      << p.client->close_error().detail;
}

TEST_P(EncryptTest, EncryptingClientRefusesAServerThatWillNot) {
  SessionConfig old_server;  // accepts resume only, like a build without --encrypt support
  SessionPair p(client_cfg(true), old_server, 10);
  EXPECT_FALSE(p.establish());
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_NE(p.client->close_error().detail.find("does not encrypt"), std::string::npos)
      << p.client->close_error().detail;
}

// A middlebox clears the encryption bit in HELLO: the server would agree to plain, but the
// transcripts differ, so the HELLO_REPLY MAC fails and nothing is sent in clear.
TEST_P(EncryptTest, DowngradeOfTheFeatureBitIsDetected) {
  SessionPair p(client_cfg(true), server_cfg(false), 11);
  Link& l = p.open_link();
  l.hold_c2s = true;
  p.pump();
  // HELLO payload starts after preamble (8) and header (4): features u32 big-endian.
  ASSERT_GE(l.c2s.size(), 12u + 4u);
  l.c2s[12 + 3] &= static_cast<std::uint8_t>(~wire::kFeatureEncrypt);
  l.hold_c2s = false;
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_EQ(p.client->close_error().code, Errc::kBadMac);
}

// Flips one byte of each sealed frame kind in flight: the receiving session ends with a clear
// authentication error (never a crash, never corrupted data delivered).
TEST_P(EncryptTest, TamperedSealedByteEndsTheSessionWithAnError) {
  for (bool to_server : {true, false}) {
    for (std::size_t at : {4u, 5u, 6u, 40u}) {  // inner type (AD), ciphertext, tag region
      SCOPED_TRACE(std::string(to_server ? "c2s" : "s2c") + " byte " + std::to_string(at));
      SessionPair p(client_cfg(true), server_cfg(false), 12 + at);
      ASSERT_TRUE(p.establish());
      Link& l = p.last_link();
      (to_server ? l.hold_c2s : l.hold_s2c) = true;
      (to_server ? *p.client : *p.server).write(pattern(100, 5));
      p.pump();
      ByteVec& q = to_server ? l.c2s : l.s2c;
      ASSERT_GT(q.size(), at);
      q[at] ^= 0x01;
      l.hold_c2s = l.hold_s2c = false;
      p.pump();
      Session& victim = to_server ? *p.server : *p.client;
      EXPECT_EQ(victim.state(), State::kClosed);
      EXPECT_FALSE(victim.closed_clean());
      const Errc code = victim.close_error().code;
      EXPECT_TRUE(code == Errc::kBadMac || code == Errc::kMalformed) << errc_name(code);
      EXPECT_TRUE((to_server ? p.server_got : p.client_got).empty());
    }
  }
}

// A copy of an earlier sealed frame, or two frames swapped, never authenticates: the receiver
// opens frame i with nonce (epoch, i).
TEST_P(EncryptTest, ReplayedOrReorderedSealedFrameIsRejected) {
  for (bool reorder : {false, true}) {
    SCOPED_TRACE(reorder ? "reorder" : "replay");
    SessionPair p(client_cfg(true), server_cfg(false), 20);
    ASSERT_TRUE(p.establish());
    Link& l = p.last_link();
    l.hold_c2s = true;
    p.client->write(pattern(50, 1));
    p.pump();
    const ByteVec first = l.c2s;
    l.c2s.clear();
    p.client->write(pattern(60, 2));
    p.pump();
    const ByteVec second = l.c2s;
    ASSERT_FALSE(first.empty());
    ASSERT_FALSE(second.empty());
    if (reorder) {
      l.c2s = second;
      l.c2s.insert(l.c2s.end(), first.begin(), first.end());
    } else {
      l.c2s = first;
      l.c2s.insert(l.c2s.end(), first.begin(), first.end());
    }
    l.hold_c2s = false;
    p.pump();
    EXPECT_EQ(p.server->state(), State::kClosed);
    EXPECT_EQ(p.server->close_error().code, Errc::kBadMac);
    EXPECT_NE(p.server->close_error().detail.find("does not authenticate"), std::string::npos);
    // Replay: the genuine first frame was delivered once, the copy rejected.
    EXPECT_EQ(p.server_got, reorder ? ByteVec{} : pattern(50, 1));
  }
}

TEST_P(EncryptTest, UnencryptedFrameOnAnEncryptedPathEndsTheSession) {
  SessionPair p(client_cfg(true), server_cfg(false), 21);
  ASSERT_TRUE(p.establish());
  Link& l = p.last_link();
  ByteVec injected;
  const std::uint8_t hdr[4] = {0x20, 0, 0, 3};
  injected.insert(injected.end(), hdr, hdr + 4);
  injected.insert(injected.end(), {'b', 'a', 'd'});
  l.s2c = injected;
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_NE(p.client->close_error().detail.find("unencrypted DATA"), std::string::npos)
      << p.client->close_error().detail;
  EXPECT_TRUE(p.client_got.empty());
}

// Opens every SEALED frame seen on every link with the session keys and records (direction,
// epoch, seq): no nonce may ever repeat under one key, even though the resume after each cut
// resends retained bytes re-chunked (different frame boundaries from different offsets).
TEST_P(EncryptTest, NoNonceRepeatsAcrossMigrationsWithRechunking) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
      return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    };
    const std::uint64_t cap = pick(0, 1) ? 4096 : 128 * 1024;
    SessionPair p(client_cfg(true, cap), server_cfg(false, cap), seed);
    p.max_chunk = pick(0, 1) ? pick(1, 64) : pick(1000, 100000);
    ASSERT_TRUE(p.establish());
    const std::size_t total = static_cast<std::size_t>(pick(20000, 150000));
    const ByteVec up_all = pattern(total, seed), down_all = pattern(total, seed + 99);
    // Six cuts at random points of a transfer that is partly unread, partly in flight: every
    // resume resends from another offset, so frames on the new path start at other boundaries.
    std::size_t up_w = 0, down_w = 0;
    for (int c = 0; c < 6; ++c) {
      up_w += p.client->write(Bytes(up_all).subspan(up_w, pick(0, total - up_w)));
      down_w += p.server->write(Bytes(down_all).subspan(down_w, pick(0, total - down_w)));
      Link& l = p.last_link();
      l.hold_c2s = c % 3 == 0;
      l.hold_s2c = c % 2 == 0;
      p.pump();
      p.cut(l, true, c % 2 == 1);
      reconnect(p);
      p.pump();
    }
    send_all(p, *p.client, ByteVec(up_all.begin() + static_cast<std::ptrdiff_t>(up_w), up_all.end()));
    send_all(p, *p.server,
             ByteVec(down_all.begin() + static_cast<std::ptrdiff_t>(down_w), down_all.end()));
    EXPECT_EQ(p.server_got, up_all);
    EXPECT_EQ(p.client_got, down_all);
    EXPECT_GT(p.client->migrations(), 0u);

    // Recover every (key, nonce) used: a sealed frame's nonce is (epoch, seq); try to open it
    // with the candidate nonces of its link and record which one authenticates.
    const auto& keys = p.client->negotiated().keys;
    std::set<std::tuple<int, std::uint64_t, std::uint64_t>> used;
    std::uint64_t epoch = 0;
    for (std::uint64_t i = 0; p.link(i + 1) != nullptr; ++i) {
      const Link& l = *p.link(i + 1);
      for (int dir = 0; dir < 2; ++dir) {
        const ByteVec& bytes = dir == 0 ? l.requests : l.replies;
        const wire::Key& key = dir == 0 ? keys.aead_c2s : keys.aead_s2c;
        // The migrate request of link i is i (0: the handshake link), as the client numbers them.
        epoch = i;
        std::uint64_t seq = 0;
        std::size_t pos = wire::kPreambleSize;
        while (pos + 4 <= bytes.size()) {
          const std::size_t len = (std::size_t{bytes[pos + 1]} << 16) |
                                  (std::size_t{bytes[pos + 2]} << 8) | bytes[pos + 3];
          if (pos + 4 + len > bytes.size()) break;  // cut mid-frame
          if (bytes[pos] == 0x30) {
            const Bytes frame(bytes.data() + pos, 4 + len);
            ByteVec out(len - wire::kSealedOverhead);
            ASSERT_TRUE(crypto::AeadKey(GetParam(), key)
                            .open(epoch, seq, frame.first(5), frame.subspan(5), out.data()))
                << "link " << i << " dir " << dir << " seq " << seq;
            EXPECT_TRUE(used.emplace(dir, epoch, seq).second) << "nonce reused";
            ++seq;
          }
          pos += 4 + len;
        }
      }
    }
    EXPECT_GT(used.size(), 10u);
  }
}

// --- server keys ---------------------------------------------------------------------------

std::shared_ptr<const crypto::SignKeyPair> identity(std::uint64_t seed) {
  crypto::SeededRng rng(seed);
  return std::make_shared<const crypto::SignKeyPair>(crypto::sign_keypair(rng));
}

// A server (accepting encryption) that signs with `id`.
SessionConfig keyed_server(std::shared_ptr<const crypto::SignKeyPair> id) {
  SessionConfig s = server_cfg(false);
  s.handshake.identity = std::move(id);
  return s;
}

TEST_P(EncryptTest, SignedHandshakeGivesTheClientTheServerKey) {
  auto id = identity(1);
  SessionPair p(client_cfg(true), keyed_server(id), 30);
  ASSERT_TRUE(p.establish());
  ASSERT_TRUE(p.client->negotiated().server_key);
  EXPECT_EQ(*p.client->negotiated().server_key, id->public_key);
  auto f = frames_of(p.last_link().replies);
  ASSERT_GE(f.size(), 2u);
  EXPECT_EQ(f[1].first, 0x04);  // SERVER_KEY right after HELLO_REPLY
  p.client->write(pattern(1000, 4));
  p.pump();
  EXPECT_EQ(p.server_got, pattern(1000, 4));
}

TEST_P(EncryptTest, PinnedKeyMatchesAndAChangedKeyIsRefused) {
  auto id = identity(1), other = identity(2);
  for (bool same : {true, false}) {
    SCOPED_TRACE(same ? "same key" : "changed key");
    const SessionConfig s = keyed_server(same ? id : other);
    SessionConfig c = client_cfg(false);
    c.handshake.pinned_server_key = id->public_key;
    SessionPair p(c, s, 31);
    EXPECT_EQ(p.establish(), same);
    if (!same) {
      EXPECT_EQ(p.client->close_error().code, Errc::kCrypto);
      EXPECT_NE(p.client->close_error().detail.find("server key changed"), std::string::npos);
      EXPECT_NE(p.client->close_error().detail.find(crypto::base64_encode(other->public_key)),
                std::string::npos);
    }
  }
}

TEST_P(EncryptTest, PinnedClientRefusesAServerThatPresentsNoKey) {
  SessionConfig c = client_cfg(false);
  c.handshake.pinned_server_key = identity(1)->public_key;
  SessionPair p(c, server_cfg(false), 32);
  EXPECT_FALSE(p.establish());
  EXPECT_NE(p.client->close_error().detail.find("presented no key"), std::string::npos)
      << p.client->close_error().detail;
}

// An old client (no kFeatureServerKey) still works with a server that has a key; nothing signed.
TEST_P(EncryptTest, OldClientStillWorksWithAKeyedServer) {
  const SessionConfig s = keyed_server(identity(1));
  SessionConfig old_client;
  SessionPair p(old_client, s, 33);
  ASSERT_TRUE(p.establish());
  EXPECT_FALSE(p.client->negotiated().server_key);
  for (auto& [type, payload] : frames_of(p.last_link().replies)) EXPECT_NE(type, 0x04);
}

// A man in the middle who runs its own ephemeral exchange can re-MAC the HELLO_REPLY, but its
// transcript differs, so the genuine server's signature over it fails (and it cannot sign).
TEST_P(EncryptTest, ForgedOrReplayedServerSignatureIsRejected) {
  const SessionConfig s = keyed_server(identity(1));
  SessionPair a(client_cfg(true), s, 34);
  ASSERT_TRUE(a.establish());
  auto fa = frames_of(a.last_link().replies);
  ASSERT_EQ(fa[1].first, 0x04);
  // Splice session A's SERVER_KEY into session B's handshake.
  SessionPair b(client_cfg(true), s, 35);
  Link& l = b.open_link();
  l.hold_s2c = true;
  b.pump();
  auto fb = frames_of(ByteVec(l.s2c.begin(), l.s2c.end()));
  ASSERT_GE(fb.size(), 2u);
  const std::size_t key_at = wire::kPreambleSize + 4 + wire::kHelloReplySize + 4;
  ASSERT_EQ(l.s2c[key_at - 4], 0x04);
  std::copy(fa[1].second.begin(), fa[1].second.end(), l.s2c.begin() + static_cast<std::ptrdiff_t>(key_at));
  l.hold_s2c = false;
  b.pump();
  EXPECT_EQ(b.client->state(), State::kClosed);
  EXPECT_EQ(b.client->close_error().code, Errc::kBadMac);
  EXPECT_NE(b.client->close_error().detail.find("signature"), std::string::npos);
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Ciphers, EncryptTest,
                         ::testing::Values(crypto::Aead::kXChaCha20Poly1305, crypto::Aead::kAes256Gcm),
                         [](const ::testing::TestParamInfo<crypto::Aead>& i) {
                           return i.param == crypto::Aead::kAes256Gcm ? "AesGcm" : "XChaCha";
                         });

// --- cipher negotiation ----------------------------------------------------------------------

class CipherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    if (!crypto::aes256gcm_available())
      GTEST_SKIP() << "this CPU has no AES-NI/PCLMULQDQ: only XChaCha20-Poly1305 can be negotiated";
    g_aes = true;  // both ends offer AES-256-GCM unless a test says otherwise
  }
  void TearDown() override { g_aes = false; }
  static SessionConfig with_aes(SessionConfig c, bool aes) {
    c.handshake.aes_gcm = aes;
    return c;
  }
};

// AES-256-GCM only when both ends offer it (a side without AES-NI never does); otherwise, and
// whenever encryption is off, the bit is not selected.
TEST_F(CipherTest, AesGcmOnlyWhenBothEndsOfferIt) {
  for (int c = 0; c < 2; ++c) {
    for (int s = 0; s < 2; ++s) {
      SCOPED_TRACE("client aes " + std::to_string(c) + " server aes " + std::to_string(s));
      SessionPair p(with_aes(client_cfg(true), c), with_aes(server_cfg(false), s), 40 + c * 2 + s);
      ASSERT_TRUE(p.establish());
      const auto want = c && s ? crypto::Aead::kAes256Gcm : crypto::Aead::kXChaCha20Poly1305;
      EXPECT_EQ(p.client->negotiated().aead, want);
      EXPECT_EQ(p.server->negotiated().aead, want);
      EXPECT_EQ((p.client->negotiated().features & wire::kFeatureAesGcm) != 0, c && s);
      const ByteVec up = pattern(70000, 3);
      send_all(p, *p.client, up);
      EXPECT_EQ(p.server_got, up);
    }
  }
  SessionPair plain(with_aes(client_cfg(false), true), with_aes(server_cfg(false), true), 44);
  ASSERT_TRUE(plain.establish());
  EXPECT_EQ(plain.client->negotiated().features & (wire::kFeatureEncrypt | wire::kFeatureAesGcm), 0u);
}

// A middlebox clears the AES-256-GCM bit in HELLO (to force the other cipher) or in HELLO_REPLY:
// the transcripts differ, the HELLO_REPLY MAC fails at the client and no frame is ever sealed.
TEST_F(CipherTest, StrippingTheAesGcmBitIsDetected) {
  for (bool in_reply : {false, true}) {
    SCOPED_TRACE(in_reply ? "HELLO_REPLY" : "HELLO");
    SessionPair p(client_cfg(true), server_cfg(false), 45);
    Link& l = p.open_link();
    (in_reply ? l.hold_s2c : l.hold_c2s) = true;
    p.pump();
    ByteVec& q = in_reply ? l.s2c : l.c2s;
    // The payload starts after the preamble (8) and header (4): features u32 big-endian.
    ASSERT_GE(q.size(), 12u + 4u);
    ASSERT_TRUE(q[12 + 3] & wire::kFeatureAesGcm);
    q[12 + 3] &= static_cast<std::uint8_t>(~wire::kFeatureAesGcm);
    l.hold_c2s = l.hold_s2c = false;
    p.pump();
    EXPECT_EQ(p.client->state(), State::kClosed);
    EXPECT_EQ(p.client->close_error().code, Errc::kBadMac);
    EXPECT_FALSE(p.server->established_once());
  }
}

// AES-256-GCM's nonce holds a 32-bit epoch. A server refuses a (MAC-verified) MIGRATE whose
// request number does not fit; a client whose next request number would not fit ends the session
// with a clear error instead of sealing a path with a truncated epoch.
TEST_F(CipherTest, AesGcmEpochBeyond32BitsIsNeverSealed) {
  SessionPair p(client_cfg(true), server_cfg(false), 46);
  ASSERT_TRUE(p.establish());
  ASSERT_EQ(p.client->negotiated().aead, crypto::Aead::kAes256Gcm);
  const auto& keys = p.client->negotiated().keys;
  const wire::Token tok = p.client->token();
  for (std::uint64_t request : {crypto::kMaxGcmEpoch + 1, crypto::kMaxGcmEpoch}) {
    Link& raw = p.open_raw_link();
    wire::Migrate m;
    m.token = tok;
    m.request = request;
    m.received = 0;
    m.mac = crypto::mac(keys.mac_c2s, {mac_label(wire::FrameType::kMigrate), m.token,
                                       crypto::be64(m.request), crypto::be64(m.received)});
    wire::encode_preamble(raw.c2s);
    wire::encode(m, raw.c2s);
    p.pump();
    const auto frames = frames_of(raw.replies);
    ASSERT_FALSE(frames.empty());
    // One past the limit: REFUSED. The limit itself: a CHALLENGE, as any fresh request.
    EXPECT_EQ(frames.back().first, request > crypto::kMaxGcmEpoch ? 0x15 : 0x11);
    EXPECT_EQ(p.server->state(), State::kServerEstablished);
  }
  // The client: a (genuine) STALE names the newest request as 2^32 - 1, so the next attempt
  // would need epoch 2^32.
  p.cut(*p.link(1), true, false);
  ASSERT_TRUE(p.client->take_connect_request());
  Link& attempt = p.open_link();
  attempt.hold_s2c = true;
  p.pump();
  attempt.s2c.clear();
  wire::Stale st;
  st.request = 1;
  st.newest = crypto::kMaxGcmEpoch;
  st.mac = crypto::mac(keys.mac_s2c, {mac_label(wire::FrameType::kStale), tok,
                                      crypto::be64(st.request), crypto::be64(st.newest)});
  wire::encode_preamble(attempt.s2c);
  wire::encode(st, attempt.s2c);
  attempt.hold_s2c = false;
  p.pump();
  ASSERT_TRUE(p.client->take_connect_request());
  p.open_link();
  p.pump();
  EXPECT_EQ(p.client->state(), State::kClosed);
  EXPECT_NE(p.client->close_error().detail.find("no migrate request number left"), std::string::npos)
      << p.client->close_error().detail;
}

}  // namespace roam::core
