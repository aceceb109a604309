// Protocol test vectors (docs/PROTOCOL.md, "Test vectors").
//
// The literal hex below is the reference. Four checks keep code and document from drifting apart:
//  1. compute_vectors() (handshake classes, key schedule, the documented MAC recipes) yields it;
//  2. a client and a server Session, driven through handshake, data, a lost path, a migration, a
//     replay, a forgery, a half-close and an abort, put exactly these bytes on the wire;
//  3. docs/PROTOCOL.md lists exactly these vectors with exactly these values;
//  4. (crosscheck.py, a separate ctest) independent implementations agree with the document.
// Regenerate after a deliberate wire change with build/tests/vectors/roam_gen_vectors.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string_view>

#include "core/crypto/crypto.hpp"
#include "core/session/dispatcher.hpp"
#include "core/session/session.hpp"
#include "vectors.hpp"

namespace roam::vectors {
namespace {

using namespace roam::core;

const std::vector<Vector>& literals() {
  static const std::vector<Vector> kVectors = {
    {"client_secret",
     "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"},
    {"server_secret",
     "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40"},
    {"client_random",
     "4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60"},
    {"server_random",
     "6162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80"},
    {"challenge_nonce",
     "8182838485868788898a8b8c8d8e8f90"},
    {"client_public",
     "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"},
    {"server_public",
     "5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b"},
    {"preamble",
     "524f414d01000000"},
    {"hello",
     "0100005400000003000000000080000000000000000927c04142434445464748"
     "494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6007a37cbc142093c8"
     "b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"},
    {"hello_reply",
     "0200007400000001000000000040000000000000006ddd006162636465666768"
     "696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f805869aff450549732"
     "cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b7d5463af455095a7"
     "d8e1cd3119787c5cfcedd2145093b3936fc1d708c5d2fa83"},
    {"shared_secret",
     "a84dc7c3c8f058b1b2dc4cd1e9b5dc0a7987f88b6a9564cde3391fc421159e77"},
    {"transcript",
     "0100005400000003000000000080000000000000000927c04142434445464748"
     "494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6007a37cbc142093c8"
     "b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c0200007400000001"
     "000000000040000000000000006ddd006162636465666768696a6b6c6d6e6f70"
     "7172737475767778797a7b7c7d7e7f805869aff450549732cbaaed5e5df9b30a"
     "6da31cb0e5742bad5ad4a1a768f1a67b"},
    {"transcript_hash",
     "57f2031759dab6facb26618501bb5cf332abbe84fa6a7ab0320981a16a21ee78"},
    {"prk",
     "dd13b57bec7a98b00d08e02902bb1effb61ad092b647ee75fd82111cdd6a633d"},
    {"k_mac_c2s",
     "7f5ef24fea442a5a39dc1b40c2652d47ba4965b7599eed6d0e48eee260336b43"},
    {"k_mac_s2c",
     "ec6d40017359e022cf2f696f833b2e4cbd8ae3238646db16c7231ad6ee7fa3d5"},
    {"k_token",
     "d7a59872533ddaa80bea0f5196cbb13bc3a1a1155c8ba12114a2cb8017eef11e"},
    {"k_aead_c2s",
     "364705b772820f180b13c21c40b212d881f1c9ec3135b1d9f8ca997b9064927d"},
    {"k_aead_s2c",
     "d25bffb7b6ed14e7bdc68d946e3e9b219b1b00a6f6c38d636138d35d888cd863"},
    {"token",
     "8a37330fc55ff3f76d49ae28d78f7ce5"},
    {"hello_reply_mac",
     "7d5463af455095a7d8e1cd3119787c5cfcedd2145093b3936fc1d708c5d2fa83"},
    {"finish",
     "03000020a334caa10aa0223f68c31cb377a34b22d96972d0f2a4d8784c8a0d06"
     "96339169"},
    {"migrate",
     "100000408a37330fc55ff3f76d49ae28d78f7ce5000000000000000100000000"
     "00000010b28f9bb9ce6b03c09d0ea583959bb37b80bb9795eb1bf5c4f22b431d"
     "559db9aa"},
    {"challenge",
     "1100003800000000000000018182838485868788898a8b8c8d8e8f90ff898758"
     "52b8bdf4c4d8c6e5014dec3c574657b9229916015c6b7d385e8f6266"},
    {"response",
     "1200003000000000000000010000000000000010e86afc974900c456e35f538b"
     "ee4c4e025b96403d63cc14b765824f6c8f4bd2e4"},
    {"accept",
     "13000030000000000000000100000000000000051f5895f813131ccc535c8252"
     "e1c812ccdfd09e1d93ccc0d160c1ba8f6b12e3b2"},
    {"stale",
     "1400003000000000000000010000000000000001bd79993faa1ce43546d1b8ae"
     "ba165d9417c5a59c89cb52e7af41e78a47ab9ebf"},
    {"refused",
     "1500001000000000000000010000000000000000"},
    {"data_s2c_1",
     "2000001077656c636f6d6520746f20726f616d0a"},
    {"data_c2s",
     "2000000570696e670a"},
    {"data_s2c_2",
     "200000056d6f72650a"},
    {"ack",
     "21000008000000000000000a"},
    {"fin",
     "220000080000000000000005"},
    {"ack_eof",
     "210000080000000000000006"},
    {"close",
     "24000005000a627965"},
    {"sign_seed",
     "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0"},
    {"sign_public",
     "0b47823e71095dd59be78ac271c576ef389f87b64561ab07cf9a4ebcd02d2041"},
    {"server_key",
     "040000600b47823e71095dd59be78ac271c576ef389f87b64561ab07cf9a4ebc"
     "d02d2041ddf3964cd74e6e3cf28b1911945b95d9c47f2d2d292c826103347eb3"
     "67d038fc27d729877a0ec64b580946c75ab26642ff4ff2e57d88432b8c61f173"
     "16a94f02"},
    {"sealed_data_c2s",
     "3000001620794db7eb8b4da14e1b138ee6cfda0097fd9be575ae"},
    {"sealed_ack_s2c",
     "3000001921b2350b27bf124db28ca96ab56a194144bb85775d51eb5d6e"},
    {"gcm_data_c2s",
     "30000016209fe3c7a04c0379f72d5d5016f3d12fe4d370647c2c"},
    {"gcm_ack_s2c",
     "3000001921e91e5167031de38b242fb22e699361a10ed7422807f4288d"},
  };
  return kVectors;
}

std::string V(std::string_view name) {
  for (const auto& v : literals())
    if (v.name == name) return v.hex;
  ADD_FAILURE() << "no vector named " << name;
  return {};
}

Bytes text(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

std::string as_string(Bytes b) { return std::string(b.begin(), b.end()); }

class Init : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
};
const auto* const kInit = ::testing::AddGlobalTestEnvironment(new Init);

// --- 1. recomputation ----------------------------------------------------------------------

TEST(Vectors, RecomputedValuesMatchTheLiterals) {
  const auto got = compute_vectors();
  // The AES-256-GCM vectors (gcm_*) need AES-NI to compute here; crosscheck.py checks them anyway.
  std::vector<Vector> want;
  for (const auto& v : literals())
    if (crypto::aes256gcm_available() || v.name.rfind("gcm_", 0) != 0) want.push_back(v);
  if (want.size() != literals().size())
    std::printf("gcm_* vectors not recomputed: this CPU has no AES-NI/PCLMULQDQ\n");
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].hex, want[i].hex) << got[i].name;
  }
}

TEST(Vectors, BothSidesDeriveTheSameSession) {
  ClientHandshake client(client_params(), client_secret(), client_random());
  ServerHandshake server(server_params(), server_secret(), server_random());
  std::vector<std::uint8_t> hello, reply, finish;
  client.write_hello(hello);
  ASSERT_TRUE(server.on_hello(hello, reply));
  auto nc = client.on_hello_reply(reply, finish);
  ASSERT_TRUE(nc) << nc.error().detail;
  auto ns = server.on_finish(finish);
  ASSERT_TRUE(ns) << ns.error().detail;
  for (const Negotiated* n : {&*nc, &*ns}) {
    EXPECT_EQ(n->features, wire::kFeatureResume);  // 0x3 offered, 0x1 supported
    EXPECT_EQ(n->buffer_cap, 4u << 20);            // min(8 MiB, 4 MiB)
    EXPECT_EQ(n->wait, std::chrono::minutes(10));  // min(10 min, 2 h)
    EXPECT_EQ(hex(n->keys.mac_c2s), V("k_mac_c2s"));
    EXPECT_EQ(hex(n->keys.mac_s2c), V("k_mac_s2c"));
    EXPECT_EQ(hex(n->keys.aead_c2s), V("k_aead_c2s"));
    EXPECT_EQ(hex(n->keys.aead_s2c), V("k_aead_s2c"));
    EXPECT_EQ(hex(n->token), V("token"));
  }
  auto s1 = crypto::x25519(client_secret(), crypto::public_of(server_secret()));
  auto s2 = crypto::x25519(server_secret(), crypto::public_of(client_secret()));
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(hex(*s1), V("shared_secret"));
  EXPECT_EQ(hex(*s2), V("shared_secret"));
}

TEST(Vectors, MacLabelsAreTheDocumentedStrings) {
  using wire::FrameType;
  const std::map<FrameType, std::string> labels = {
      {FrameType::kHelloReply, "roam/1 s2c HELLO_REPLY"},
      {FrameType::kFinish, "roam/1 c2s FINISH"},
      {FrameType::kMigrate, "roam/1 c2s MIGRATE"},
      {FrameType::kChallenge, "roam/1 s2c CHALLENGE"},
      {FrameType::kResponse, "roam/1 c2s RESPONSE"},
      {FrameType::kAccept, "roam/1 s2c ACCEPT"},
      {FrameType::kStale, "roam/1 s2c STALE"},
  };
  for (const auto& [type, label] : labels) EXPECT_EQ(as_string(mac_label(type)), label);
}

TEST(Vectors, StrippedFeatureBitIsDetectedAsDowngrade) {
  ClientHandshake client(client_params(), client_secret(), client_random());
  ServerHandshake server(client_params(), server_secret(), server_random());
  std::vector<std::uint8_t> hello, reply, finish;
  client.write_hello(hello);
  hello[4 + 3] &= static_cast<std::uint8_t>(~wire::kFeatureEncrypt);  // a middlebox strips "encrypt"
  ASSERT_TRUE(server.on_hello(hello, reply));
  auto n = client.on_hello_reply(reply, finish);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::kBadMac);
}

TEST(Vectors, HmacIsHmacSha512TruncatedTo32Bytes) {
  // RFC 4231 test case 2 (key "Jefe"): HMAC-SHA-512's first 32 bytes. libsodium's
  // crypto_auth_hmacsha512256 takes a 32-byte key here; "Jefe" zero-padded to 32 bytes is the
  // same HMAC key, since HMAC pads keys with zeros to the block size anyway.
  wire::Key key{};
  std::memcpy(key.data(), "Jefe", 4);
  const auto tag = crypto::mac(key, {text("what do ya want "), text("for nothing?")});
  EXPECT_EQ(hex(tag), "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554");
}

// --- 2. the same bytes from real sessions --------------------------------------------------

// Hands out scripted values in order: secret key, random (and the server's challenge nonce).
class ScriptedRng final : public crypto::Rng {
 public:
  explicit ScriptedRng(std::vector<std::vector<std::uint8_t>> chunks)
      : chunks_(chunks.begin(), chunks.end()) {}
  void fill(MutBytes out) override {
    ASSERT_FALSE(chunks_.empty()) << "unscripted random draw of " << out.size() << " bytes";
    ASSERT_EQ(chunks_.front().size(), out.size());
    std::memcpy(out.data(), chunks_.front().data(), out.size());
    chunks_.pop_front();
  }

 private:
  std::deque<std::vector<std::uint8_t>> chunks_;
};

template <typename A>
std::vector<std::uint8_t> vec(const A& a) {
  return std::vector<std::uint8_t>(a.begin(), a.end());
}

// What the I/O shell would write to the socket of `path`, everything at once.
std::vector<std::uint8_t> drain(Session& s, PathId path, Time now) {
  std::vector<std::uint8_t> out;
  for (int guard = 0; guard < 100; ++guard) {
    const IoSlices io = s.poll_transmit(path, now);
    if (io.count == 0) break;
    for (std::size_t i = 0; i < io.count; ++i)
      out.insert(out.end(), io.slice[i].begin(), io.slice[i].end());
    s.on_transmitted(path, io.total(), now);
  }
  return out;
}

// What the shell would do with bytes read from the socket of `path`.
void deliver(Session& s, PathId path, Bytes in, Time now) {
  std::size_t pos = 0;
  while (pos < in.size()) {
    MutBytes space = s.recv_space(path);
    ASSERT_FALSE(space.empty());
    const std::size_t n = std::min(space.size(), in.size() - pos);
    std::memcpy(space.data(), in.data() + pos, n);
    s.on_received(path, n, now);
    pos += n;
  }
}

std::string cat(std::initializer_list<std::string_view> names) {
  std::string s;
  for (auto n : names) s += V(n);
  return s;
}

std::vector<EventType> events(Session& s) {
  std::vector<EventType> out;
  while (auto e = s.poll_event()) out.push_back(e->type);
  return out;
}

TEST(Vectors, SessionsPutExactlyTheseBytesOnTheWire) {
  Time t{std::chrono::seconds(1000)};
  ScriptedRng crng({vec(client_secret()), vec(client_random())});
  ScriptedRng srng({vec(server_secret()), vec(server_random()), vec(challenge_nonce())});
  crypto::SeededRng table_rng(7);
  SessionConfig ccfg, scfg;
  ccfg.handshake = client_params();
  scfg.handshake = server_params();

  // Handshake on path 1.
  auto client = Session::client(ccfg, crng, t);
  client->attach_path(1, t);
  auto w = drain(*client, 1, t);
  EXPECT_EQ(hex(w), cat({"preamble", "hello"}));
  auto first = classify_first(w);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->type, wire::FrameType::kHello);
  auto server = Session::accept(scfg, srng, 1, w, t);
  EXPECT_EQ(server->state(), State::kServerHandshake);
  w = drain(*server, 1, t);
  EXPECT_EQ(hex(w), cat({"preamble", "hello_reply"}));
  deliver(*client, 1, w, t);
  EXPECT_EQ(client->state(), State::kClientEstablished);
  w = drain(*client, 1, t);
  EXPECT_EQ(hex(w), V("finish"));
  deliver(*server, 1, w, t);
  EXPECT_EQ(server->state(), State::kServerEstablished);
  EXPECT_EQ(hex(server->token()), V("token"));
  EXPECT_EQ(hex(client->token()), V("token"));
  SessionTable table(table_rng);
  table.add(server.get());

  // Data both ways; the client's application reads only 10 of 16 bytes.
  EXPECT_EQ(server->write(text(kServerData1)), 16u);
  w = drain(*server, 1, t);
  EXPECT_EQ(hex(w), V("data_s2c_1"));
  deliver(*client, 1, w, t);
  EXPECT_EQ(as_string(client->readable()), kServerData1);
  client->consume(kClientConsumedBeforeMove, t);
  EXPECT_EQ(client->write(text(kClientData)), 5u);
  w = drain(*client, 1, t);
  EXPECT_EQ(hex(w), V("data_c2s"));
  deliver(*server, 1, w, t);
  server->consume(server->readable().size(), t);
  // These bytes go into path 1 and are lost with it.
  server->write(text(kServerData2));
  EXPECT_EQ(hex(drain(*server, 1, t)), V("data_s2c_2"));

  // Path 1 dies at the client; it migrates on path 2 (the server has not noticed yet).
  t = t + std::chrono::milliseconds(1);
  client->on_path_error(1, t, "network is unreachable");
  EXPECT_EQ(client->state(), State::kClientWait);
  EXPECT_TRUE(client->take_connect_request());
  client->attach_path(2, t);
  EXPECT_EQ(client->state(), State::kClientMigrating);
  const auto migrate = drain(*client, 2, t);
  EXPECT_EQ(hex(migrate), cat({"preamble", "migrate"}));
  first = classify_first(migrate);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->type, wire::FrameType::kMigrate);
  std::vector<std::uint8_t> reply;
  EXPECT_EQ(table.route_migrate(migrate, reply), server.get());
  EXPECT_TRUE(reply.empty());
  server->attach_server_path(2, migrate, t);
  w = drain(*server, 2, t);
  EXPECT_EQ(hex(w), cat({"preamble", "challenge"}));
  EXPECT_EQ(server->active_path(), std::optional<PathId>(1));  // still on probation
  deliver(*client, 2, w, t);
  w = drain(*client, 2, t);
  EXPECT_EQ(hex(w), V("response"));
  deliver(*server, 2, w, t);
  EXPECT_EQ(server->active_path(), std::optional<PathId>(2));
  EXPECT_TRUE(server->path_done(1));
  w = drain(*server, 2, t);
  // ACCEPT, then the server's ACK again (the last one may have died with the old path: ACK of
  // consumed offset 5), then the DATA resent from the client's offset 16.
  EXPECT_EQ(hex(w), V("accept") + "210000080000000000000005" + V("data_s2c_2"));
  deliver(*client, 2, w, t);
  EXPECT_EQ(client->state(), State::kClientEstablished);
  EXPECT_EQ(as_string(client->readable()), " roam\nmore\n");  // exactly once, in order
  EXPECT_EQ(hex(drain(*client, 2, t)), V("ack"));
  EXPECT_EQ(client->migrations(), 1u);
  EXPECT_EQ(server->migrations(), 1u);

  // A replayed MIGRATE gets an authenticated STALE and changes nothing.
  server->attach_server_path(3, migrate, t);
  EXPECT_EQ(hex(drain(*server, 3, t)), cat({"preamble", "stale"}));
  EXPECT_TRUE(server->path_done(3));
  EXPECT_EQ(server->active_path(), std::optional<PathId>(2));

  // A forged MAC and an unknown token get the same fixed-size REFUSED.
  auto forged = migrate;
  forged.back() ^= 1;
  EXPECT_EQ(table.route_migrate(forged, reply), server.get());
  server->attach_server_path(4, forged, t);
  EXPECT_EQ(hex(drain(*server, 4, t)), cat({"preamble", "refused"}));
  auto unknown = migrate;
  unknown[wire::kPreambleSize + wire::kFrameHeaderSize] ^= 1;
  EXPECT_EQ(table.route_migrate(unknown, reply), nullptr);
  EXPECT_EQ(hex(reply), cat({"preamble", "refused"}));
  EXPECT_EQ(server->active_path(), std::optional<PathId>(2));

  // Half-close: the client's FIN at offset 5; the server's application reads the end (ACK 6).
  client->shutdown_write();
  w = drain(*client, 2, t);
  EXPECT_EQ(hex(w), V("fin"));
  deliver(*server, 2, w, t);
  EXPECT_TRUE(server->at_eof());
  server->consume_eof(t);
  w = drain(*server, 2, t);
  EXPECT_EQ(hex(w), V("ack_eof"));
  deliver(*client, 2, w, t);
  EXPECT_EQ(client->state(), State::kClientEstablished);

  // Abort: CLOSE with code 10 (aborted) and the reason.
  (void)events(*client);
  server->abort(kAbortReason, t);
  w = drain(*server, 2, t);
  EXPECT_EQ(hex(w), V("close"));
  EXPECT_EQ(server->state(), State::kClosed);
  EXPECT_FALSE(server->closed_clean());
  deliver(*client, 2, w, t);
  EXPECT_EQ(client->state(), State::kClosed);
  EXPECT_FALSE(client->closed_clean());
  EXPECT_EQ(client->close_error().code, Errc::kAborted);
  EXPECT_NE(client->close_error().detail.find(kAbortReason), std::string::npos);
  EXPECT_EQ(events(*client), std::vector<EventType>{EventType::kClosed});
}

// --- 3. the document -----------------------------------------------------------------------

TEST(Vectors, DocumentListsExactlyTheseVectors) {
  std::ifstream in(ROAM_PROTOCOL_MD);
  ASSERT_TRUE(in) << "cannot read " << ROAM_PROTOCOL_MD;
  std::map<std::string, std::string> doc;
  const std::regex line_re(R"(^([a-z0-9_]+)\s+= ([0-9a-f]+)\s*$)");
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Test vectors";
    std::smatch m;
    if (in_section && std::regex_match(line, m, line_re)) doc[m[1]] = m[2];
  }
  EXPECT_EQ(doc.size(), literals().size());
  for (const auto& v : literals()) {
    auto it = doc.find(v.name);
    if (it == doc.end()) {
      ADD_FAILURE() << v.name << " is missing from " << ROAM_PROTOCOL_MD;
      continue;
    }
    EXPECT_EQ(it->second, v.hex) << v.name << " differs in " << ROAM_PROTOCOL_MD;
  }
}

}  // namespace
}  // namespace roam::vectors
