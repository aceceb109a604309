// Writes the seed corpus of each fuzz target: valid frames, a genuine handshake transcript,
// genuine migrate exchanges (MACs and all, thanks to the seeded random numbers of fuzz_setup.hpp)
// and truncations. Run it after a wire-format change and commit the result:
//
//   make roam_make_fuzz_corpus && ./tests/unit/roam_make_fuzz_corpus ../fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_setup.hpp"

using namespace roam;
using roam::fuzz::ByteVec;
namespace wire = roam::core::wire;

namespace {

std::filesystem::path g_root;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "seed %s does not do what it should\n", what);
  std::exit(1);
}

void put(const std::string& target, const std::string& name, const ByteVec& bytes) {
  const auto dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A scenario input: mode byte, read-size byte, then the peer's bytes.
ByteVec scenario(std::uint8_t mode, std::uint8_t chunk, const ByteVec& body) {
  ByteVec out{mode, chunk};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

ByteVec first(const ByteVec& v, std::size_t n) { return ByteVec(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(n, v.size()))); }

ByteVec cat(ByteVec a, const ByteVec& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ByteVec data_frame(const ByteVec& payload) {
  ByteVec out(wire::kFrameHeaderSize);
  wire::encode_header(wire::FrameType::kData, static_cast<std::uint32_t>(payload.size()), out.data());
  return cat(out, payload);
}

template <typename M>
ByteVec frame(const M& m) {
  ByteVec out;
  wire::encode(m, out);
  return out;
}

void frames() {
  ByteVec pre;
  wire::encode_preamble(pre);
  put("fuzz_frames", "preamble", pre);
  put("fuzz_frames", "preamble-v2", {'R', 'O', 'A', 'M', 2, 0, 0, 0});
  put("fuzz_frames", "ssh", {'S', 'S', 'H', '-', '2', '.', '0', '-'});
  wire::Hello h;
  h.features = wire::kFeatureResume;
  h.buffer_cap = 1 << 20;
  h.wait_ms = 600000;
  put("fuzz_frames", "hello", frame(h));
  put("fuzz_frames", "hello-truncated", first(frame(h), 40));
  wire::HelloReply hr;
  hr.features = 1;
  hr.buffer_cap = 4096;
  hr.wait_ms = 1;
  put("fuzz_frames", "hello-reply", frame(hr));
  put("fuzz_frames", "finish", frame(wire::Finish{}));
  put("fuzz_frames", "migrate", frame(wire::Migrate{{}, 3, 100, {}}));
  put("fuzz_frames", "challenge", frame(wire::Challenge{3, {}, {}}));
  put("fuzz_frames", "response", frame(wire::Response{3, 100, {}}));
  put("fuzz_frames", "accept", frame(wire::Accept{3, 100, {}}));
  put("fuzz_frames", "stale", frame(wire::Stale{3, 4, {}}));
  put("fuzz_frames", "refused", frame(wire::Refused{3}));
  put("fuzz_frames", "ack", frame(wire::Ack{4096}));
  put("fuzz_frames", "fin", frame(wire::Fin{4096}));
  put("fuzz_frames", "close", frame(wire::Close{7, "bye"}));
  put("fuzz_frames", "data", data_frame({'a', 'b', 'c'}));
  put("fuzz_frames", "data-huge-length", {0x20, 0xff, 0xff, 0xff});
  put("fuzz_frames", "header-only", {0x21, 0x00});
}

void handshake() {
  fuzz::ClientStart c;
  fuzz::ServerStart s(c.hello);
  put("fuzz_handshake", "server-hello", scenario(0, 0, c.hello));
  put("fuzz_handshake", "server-hello-bytewise", scenario(0, 1, c.hello));
  put("fuzz_handshake", "server-hello-truncated", scenario(0, 0, first(c.hello, 30)));
  put("fuzz_handshake", "server-not-roam", scenario(0, 0, {'S', 'S', 'H', '-', '2', '.', '0', '-'}));

  // The client's answer to the genuine reply: FINISH, then its first data.
  core::test::deliver(*c.session, 1, s.reply, fuzz::kT0);
  c.session->write(core::test::pattern(20, 9));
  ByteVec finish;
  core::test::drain(*c.session, 1, fuzz::kT0, finish);
  put("fuzz_handshake", "server-finish-data", scenario(1, 0, finish));
  {  // self-check: the seed really completes the handshake
    fuzz::ClientStart c2;
    fuzz::ServerStart s2(c2.hello);
    core::test::deliver(*s2.session, 1, finish, fuzz::kT0);
    check(s2.session->state() == core::State::kServerEstablished, "server-finish-data");
  }
  put("fuzz_handshake", "server-finish-split", scenario(1, 3, finish));
  put("fuzz_handshake", "server-finish-truncated", scenario(1, 0, first(finish, 20)));

  put("fuzz_handshake", "client-reply", scenario(2, 0, s.reply));
  put("fuzz_handshake", "client-reply-split", scenario(2, 5, s.reply));
  ByteVec flipped = s.reply;
  flipped.back() ^= 1;
  put("fuzz_handshake", "client-reply-bad-mac", scenario(2, 0, flipped));
  put("fuzz_handshake", "client-reply-truncated", scenario(2, 0, first(s.reply, 50)));

  ByteVec after = cat(data_frame({'h', 'i'}), frame(wire::Ack{0}));
  after = cat(after, frame(wire::Fin{2}));
  put("fuzz_handshake", "client-established-frames", scenario(3, 0, after));
  put("fuzz_handshake", "client-established-close", scenario(3, 7, frame(wire::Close{10, "gone"})));
}

void session() {
  put("fuzz_session", "server-ack", scenario(0, 0, frame(wire::Ack{50})));
  put("fuzz_session", "server-data-fin", scenario(0, 0, cat(data_frame({'x', 'y'}), frame(wire::Fin{102}))));
  put("fuzz_session", "server-close", scenario(0, 2, frame(wire::Close{10, "bye"})));
  put("fuzz_session", "server-garbage", scenario(0, 0, {0xff, 0xff, 0xff, 0xff}));
  put("fuzz_session", "client-ack-fin", scenario(1, 0, cat(frame(wire::Ack{100}), frame(wire::Fin{50}))));
  put("fuzz_session", "client-data", scenario(1, 1, data_frame(core::test::pattern(64, 3))));

  auto p = fuzz::established_pair();
  const ByteVec migrate = fuzz::genuine_migrate(*p->client, 1);
  put("fuzz_session", "migrate-genuine", scenario(2, 0, migrate));
  ByteVec forged = migrate;
  forged.back() ^= 1;
  put("fuzz_session", "migrate-forged", scenario(2, 0, forged));
  put("fuzz_session", "migrate-truncated", scenario(2, 0, first(migrate, 30)));
  put("fuzz_session", "migrate-stale", scenario(2, 0, fuzz::genuine_migrate(*p->client, 0)));

  // The genuine RESPONSE to the server's CHALLENGE on that connection (mode 3 replays the same
  // MIGRATE, so the server draws the same nonce).
  const auto& keys = p->client->negotiated().keys;
  const auto& tok = p->client->token();
  core::test::SessionPair::Link& l = p->open_raw_link();
  l.c2s = migrate;
  p->pump();
  const core::Bytes ch = core::Bytes(l.replies).subspan(wire::kPreambleSize + wire::kFrameHeaderSize);
  auto challenge = wire::parse_challenge(ch.first(std::min(ch.size(), wire::kChallengeSize)));
  if (!challenge) {
    std::fprintf(stderr, "no CHALLENGE from the server\n");
    std::exit(1);
  }
  wire::Response r;
  r.request = 1;
  r.received = p->client->bytes_received();
  r.mac = core::crypto::mac(keys.mac_c2s, {core::mac_label(wire::FrameType::kResponse), tok,
                                           core::crypto::be64(r.request), challenge->nonce,
                                           core::crypto::be64(r.received)});
  put("fuzz_session", "response-genuine", scenario(3, 0, cat(frame(r), data_frame({'m', 'v'}))));
  {  // self-check: the seed really moves the session
    auto q = fuzz::established_pair();
    core::test::SessionPair::Link& ql = q->open_raw_link();
    ql.c2s = cat(migrate, frame(r));
    q->pump();
    check(q->server->migrations() == 1 && q->server->active_path() == ql.id, "response-genuine");
  }
  wire::Response bad = r;
  bad.mac[0] ^= 1;
  put("fuzz_session", "response-forged", scenario(3, 0, frame(bad)));

  // The server's side of a migration, as the client's attempt (request 1) sees it.
  wire::Challenge c;
  c.request = 1;
  c.nonce.fill(0x42);
  c.mac = core::crypto::mac(keys.mac_s2c, {core::mac_label(wire::FrameType::kChallenge), tok,
                                           core::crypto::be64(c.request), c.nonce});
  wire::Accept a;
  a.request = 1;
  a.received = 100;  // what the server's session received of the client's stream
  a.mac = core::crypto::mac(keys.mac_s2c, {core::mac_label(wire::FrameType::kAccept), tok,
                                           core::crypto::be64(a.request), core::crypto::be64(a.received)});
  {  // self-check: the client adopts the attempt
    auto q = fuzz::established_pair();
    q->cut(q->last_link(), true, false);
    check(q->client->take_connect_request(), "attempt: connect request");
    core::test::SessionPair::Link& ql = q->open_link();
    ql.server = core::test::SessionPair::ServerSide::kRefused;
    wire::encode_preamble(ql.s2c);
    ql.s2c = cat(cat(ql.s2c, frame(c)), frame(a));
    q->pump();
    check(q->client->migrations() == 1, "attempt-challenge-accept");  // (then the fake server hangs up)
  }
  put("fuzz_session", "attempt-challenge-accept",
      scenario(4, 0, cat(cat(frame(c), frame(a)), data_frame({'o', 'k'}))));
  wire::Stale st;
  st.request = 1;
  st.newest = 5;
  st.mac = core::crypto::mac(keys.mac_s2c, {core::mac_label(wire::FrameType::kStale), tok,
                                            core::crypto::be64(st.request), core::crypto::be64(st.newest)});
  put("fuzz_session", "attempt-stale", scenario(4, 0, frame(st)));
  put("fuzz_session", "attempt-refused", scenario(4, 0, frame(wire::Refused{1})));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_ROOT\n", argv[0]);
    return 2;
  }
  fuzz::init_once();
  g_root = argv[1];
  frames();
  handshake();
  session();
  std::printf("corpus written under %s\n", argv[1]);
  return 0;
}
