// `roam status` and `--metrics` against a session driven through a known sequence: handshake,
// N forced migrations (the relay resets the path), one MIGRATE with an unknown token refused by
// the server, known bytes each way. What the table, the JSON and /metrics report must match it.
#include "status_util.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include "core/wire/frames.hpp"

namespace roam::itest {
namespace {


// A MIGRATE naming a token no session has, straight to the server: one REFUSED comes back.
bool poke_unknown_migrate(std::uint16_t server_port) {
  namespace wire = core::wire;
  std::vector<std::uint8_t> bytes;
  wire::encode_preamble(bytes);
  wire::Migrate m;
  m.token.fill(0x5a);
  m.request = 9;
  m.mac.fill(0x11);
  wire::encode(m, bytes);
  const int fd = connect_loopback(server_port);
  if (fd < 0) return false;
  const bool sent = send_all(fd, bytes.data(), bytes.size(), seconds(5));
  ReadEnd how{};
  const auto got = read_until_close(fd, seconds(10), how);
  ::close(fd);
  return sent && got.size() > wire::kPreambleSize &&
         got[wire::kPreambleSize] == static_cast<std::uint8_t>(wire::FrameType::kRefused);
}

TEST(Status, ReportsAKnownSequenceInTableJsonAndMetrics) {
  DumpOnFailure dump;
  ScriptedSession s(dump);
  ASSERT_TRUE(s.ready()) << "the session did not come up";
  constexpr int kMigrations = 3;
  for (int k = 1; k <= kMigrations; ++k) ASSERT_TRUE(s.cut_and_wait(k)) << "migration " << k;
  ASSERT_TRUE(poke_unknown_migrate(s.server_port)) << "no REFUSED for an unknown token";
  ASSERT_TRUE(s.flow(ScriptedSession::kSecond)) << s.progress.text();

  const std::uint64_t up = ScriptedSession::kSecond, down = ScriptedSession::kSecond;
  const json st = status_json(s.dir.path());
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st.at("daemons").size(), 2u) << st.dump(2);
  EXPECT_TRUE(st.at("skipped").empty()) << st.dump(2);
  const json client = daemon_of(st, "connect"), server = daemon_of(st, "server");
  ASSERT_TRUE(client.is_object() && server.is_object()) << st.dump(2);
  ASSERT_EQ(client.at("sessions").size(), 1u) << st.dump(2);
  ASSERT_EQ(server.at("sessions").size(), 1u) << st.dump(2);
  const json cs = client.at("sessions")[0], ss = server.at("sessions")[0];

  // One session, the same id on both ends, as the logs name it.
  const std::string id = cs.at("id");
  EXPECT_EQ(id.size(), 8u);
  EXPECT_EQ(ss.at("id"), id);
  EXPECT_EQ(cs.at("role"), "client");
  EXPECT_EQ(ss.at("role"), "server");
  EXPECT_EQ(cs.at("state"), "client-established");
  EXPECT_EQ(ss.at("state"), "server-established");
  // The client talks to the relay; its path ends there, the server's path starts at its port.
  EXPECT_EQ(cs.at("peer"), loopback_ep(s.relay->port()));
  EXPECT_EQ(cs.at("remote"), loopback_ep(s.relay->port()));
  EXPECT_EQ(ss.at("local"), loopback_ep(s.server_port));
  EXPECT_EQ(ss.at("remote").get<std::string>().rfind("127.0.0.1:", 0), 0u);
  // Bytes each way, exactly.
  EXPECT_EQ(cs.at("bytes_sent"), up);
  EXPECT_EQ(cs.at("bytes_received"), down);
  EXPECT_EQ(ss.at("bytes_sent"), down);
  EXPECT_EQ(ss.at("bytes_received"), up);
  // Migrations and their latency; waits are over.
  EXPECT_EQ(cs.at("migrations"), kMigrations);
  EXPECT_EQ(ss.at("migrations"), kMigrations);
  EXPECT_GE(cs.at("last_handover_s").get<double>(), 0.0);
  EXPECT_LT(cs.at("last_handover_s").get<double>(), 5.0);
  EXPECT_EQ(cs.at("waiting_s").get<double>(), 0.0);
  EXPECT_EQ(client.at("migrations"), kMigrations);
  EXPECT_EQ(server.at("migrations"), kMigrations);
  EXPECT_EQ(server.at("handover_count"), kMigrations);
  EXPECT_EQ(server.at("recent_handovers").size(), static_cast<std::size_t>(kMigrations));
  // The handshake, and the refusal (only the server saw it).
  EXPECT_EQ(client.at("handshakes_ok"), 1);
  EXPECT_EQ(server.at("handshakes_ok"), 1);
  EXPECT_EQ(server.at("handshakes_failed"), 0);
  EXPECT_EQ(server.at("refusals").value("unknown_session", 0), 1) << server.dump(2);
  EXPECT_TRUE(client.at("refusals").empty());
  EXPECT_EQ(server.at("listen"), loopback_ep(s.server_port));

  // The table says the same for people.
  const RunResult table = run_roam({"status", "--control-dir", s.dir.path()});
  EXPECT_EQ(table.status, 0);
  std::cout << table.out;
  EXPECT_NE(table.out.find("roam connect (pid " + std::to_string(s.client->pid())), std::string::npos);
  EXPECT_NE(table.out.find("roam server (pid " + std::to_string(s.server->pid())), std::string::npos);
  EXPECT_NE(table.out.find(": 1 session, 3 migrations, 1 refused"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(": 1 session, 3 migrations, 0 refused"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("PATH (local → remote)"), std::string::npos);
  EXPECT_NE(table.out.find(id + "  client  " + loopback_ep(s.relay->port())), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("client-established"), std::string::npos);
  EXPECT_NE(table.out.find("server-established"), std::string::npos);
  EXPECT_NE(table.out.find("→ " + loopback_ep(s.relay->port())), std::string::npos);

  // /metrics on both daemons.
  const std::string cm = http_get(s.client_metrics, "/metrics");
  const std::string sm = http_get(s.server_metrics, "/metrics");
  ASSERT_FALSE(cm.empty());
  ASSERT_FALSE(sm.empty());
  EXPECT_EQ(prom_value(sm, "roam_migrations_total"), kMigrations) << sm;
  EXPECT_EQ(prom_value(cm, "roam_migrations_total"), kMigrations) << cm;
  EXPECT_EQ(prom_value(sm, "roam_handover_seconds_count"), kMigrations);
  EXPECT_EQ(prom_value(sm, "roam_handover_seconds_bucket{le=\"+Inf\"}"), kMigrations);
  EXPECT_EQ(prom_value(sm, "roam_handshakes_total{result=\"ok\"}"), 1);
  EXPECT_EQ(prom_value(sm, "roam_handshakes_total{result=\"failed\"}"), 0);
  EXPECT_EQ(prom_value(sm, "roam_refusals_total{reason=\"unknown_session\"}"), 1) << sm;
  EXPECT_EQ(prom_value(sm, "roam_sessions{state=\"server-established\"}"), 1);
  EXPECT_EQ(prom_value(cm, "roam_sessions{state=\"client-established\"}"), 1);
  EXPECT_EQ(prom_value(cm, "roam_bytes_total{direction=\"sent\"}"), static_cast<double>(up));
  EXPECT_EQ(prom_value(cm, "roam_bytes_total{direction=\"received\"}"), static_cast<double>(down));
  EXPECT_EQ(prom_value(sm, "roam_bytes_total{direction=\"sent\"}"), static_cast<double>(down));
  EXPECT_EQ(prom_value(sm, "roam_bytes_total{direction=\"received\"}"), static_cast<double>(up));
  EXPECT_GE(prom_value(sm, "roam_retained_bytes"), 0);
  // The JSON endpoint is the control socket's document.
  const auto sj = json::parse(http_get(s.server_metrics, "/status.json"), nullptr, false);
  ASSERT_FALSE(sj.is_discarded());
  EXPECT_EQ(sj.at("sessions")[0].at("id"), id);

  // The transfer completes intact; the byte counters stay monotonic after the session ends.
  ASSERT_TRUE(s.finish());
  EXPECT_TRUE(eventually(
      [&] {
        const std::string m = http_get(s.client_metrics, "/metrics");
        return prom_value(m, "roam_sessions_ended_total{outcome=\"clean\"}") == 1 &&
               prom_value(m, "roam_bytes_total{direction=\"sent\"}") == ScriptedSession::kTotal;
      },
      seconds(10)));

  // Daemons remove their sockets on exit; then there is nothing to report.
  EXPECT_EQ(s.client->terminate(), 0);
  EXPECT_EQ(s.server->terminate(), 0);
  EXPECT_TRUE(s.dir.files().empty()) << s.dir.files().size() << " file(s) left";
  const RunResult none = run_roam({"status", "--control-dir", s.dir.path()});
  EXPECT_EQ(none.status, 0);
  EXPECT_NE(none.out.find("no roam daemons running"), std::string::npos) << none.out;
}

TEST(Status, SkipsADeadSocketWithANote) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  // A socket file nobody listens on, as a daemon killed with SIGKILL leaves behind.
  const std::string path = dir.path() + "/server-999999.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ::close(fd);
  const RunResult r = run_roam({"status", "--control-dir", dir.path()});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("no roam daemons running"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("skipping " + path), std::string::npos) << r.err;
  const RunResult j = run_roam({"status", "--json", "--control-dir", dir.path()});
  const auto doc = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << j.out;
  EXPECT_TRUE(doc.at("daemons").empty());
  ASSERT_EQ(doc.at("skipped").size(), 1u);
  EXPECT_EQ(doc.at("skipped")[0].at("socket"), path);
}

TEST(Status, ControlDirectoryAndSocketArePrivate) {
  TempDir dir;
  const std::string sub = dir.path() + "/ctl";
  DumpOnFailure dump;
  DeadPort target;
  std::uint16_t port = 0;
  auto server = start_server(target.port(), {"--control-dir", sub}, port);
  dump.add(server);
  ASSERT_NE(port, 0);
  ASSERT_TRUE(server->wait_for("control socket "));
  struct stat st {};
  ASSERT_EQ(::stat(sub.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string sock = sub + "/server-" + std::to_string(server->pid()) + ".sock";
  ASSERT_EQ(::stat(sock.c_str(), &st), 0) << sock;
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(server->terminate(), 0);
  EXPECT_NE(::stat(sock.c_str(), &st), 0) << "socket left behind";
  ::rmdir(sub.c_str());
}

}  // namespace
}  // namespace roam::itest
