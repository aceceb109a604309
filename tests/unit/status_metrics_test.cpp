// The Prometheus text rendering of a daemon snapshot, and the snapshot's JSON round trip.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/metrics.hpp"
#include "io/registry.hpp"

namespace roam::io {
namespace {

DaemonSnapshot sample() {
  DaemonSnapshot s;
  s.kind = "server";
  s.listen = "127.0.0.1:7000";
  s.version = "0.1.0";
  s.pid = 4242;
  s.uptime_s = 12.5;
  s.unix_time = 1.7e9;
  SessionInfo a;
  a.id = "0a1b2c3d";
  a.role = "server";
  a.name = "s1 127.0.0.1:5555";
  a.peer = "127.0.0.1:5556";
  a.local = "127.0.0.1:7000";
  a.remote = "127.0.0.1:5556";
  a.state = "server-established";
  a.bytes_sent = 1000;
  a.bytes_received = 2000;
  a.retained = 300;
  a.migrations = 2;
  a.last_handover_s = 0.042;
  a.waited_total_s = 0.1;
  a.age_s = 9;
  SessionInfo b = a;
  b.id = "ffee0011";
  b.state = "server-migrate-wait";
  b.local.clear();
  b.remote.clear();
  b.waiting_s = 1.5;
  s.sessions = {a, b};
  s.sessions_started = 3;
  s.ended_clean = 1;
  s.handshakes_ok = 3;
  s.handshakes_failed = 1;
  s.migrations = 4;
  s.bytes_sent = 5000;
  s.bytes_received = 6000;
  s.retained = 600;
  s.refusals = {{"unknown_session", 2}, {"not_roam", 1}};
  for (double v : {0.003, 0.04, 0.04, 3.0}) s.handover.observe(v);
  s.recent = {{1.7e9, 0.04, "0a1b2c3d"}};
  return s;
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(StatusMetrics, RendersEveryFamilyWithTypeAndValues) {
  const std::string t = render_prometheus(sample());
  EXPECT_TRUE(has_line(t, "# TYPE roam_sessions gauge")) << t;
  EXPECT_TRUE(has_line(t, "roam_sessions{state=\"server-established\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_sessions{state=\"server-migrate-wait\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_sessions{state=\"client-handshake\"} 0")) << t;  // every state listed
  EXPECT_TRUE(has_line(t, "# TYPE roam_bytes_total counter")) << t;
  EXPECT_TRUE(has_line(t, "roam_bytes_total{direction=\"sent\"} 5000")) << t;
  EXPECT_TRUE(has_line(t, "roam_bytes_total{direction=\"received\"} 6000")) << t;
  EXPECT_TRUE(has_line(t, "roam_retained_bytes 600")) << t;
  EXPECT_TRUE(has_line(t, "roam_migrations_total 4")) << t;
  EXPECT_TRUE(has_line(t, "roam_handshakes_total{result=\"ok\"} 3")) << t;
  EXPECT_TRUE(has_line(t, "roam_handshakes_total{result=\"failed\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_refusals_total{reason=\"unknown_session\"} 2")) << t;
  EXPECT_TRUE(has_line(t, "roam_refusals_total{reason=\"not_roam\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_sessions_ended_total{outcome=\"clean\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_info{kind=\"server\",version=\"0.1.0\",listen=\"127.0.0.1:7000\"} 1")) << t;
}

TEST(StatusMetrics, HistogramBucketsAreCumulativeAndEndInInf) {
  const std::string t = render_prometheus(sample());
  EXPECT_TRUE(has_line(t, "# TYPE roam_handover_seconds histogram")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"0.005\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"0.025\"} 1")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"0.05\"} 3")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"2.5\"} 3")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"5\"} 4")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_bucket{le=\"+Inf\"} 4")) << t;
  EXPECT_TRUE(has_line(t, "roam_handover_seconds_count 4")) << t;
  EXPECT_NE(t.find("roam_handover_seconds_sum 3.08"), std::string::npos) << t;
}

TEST(StatusMetrics, EveryLineIsACommentOrANameLabelsValueSample) {
  const std::string t = render_prometheus(sample());
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back(), '\n');
  std::size_t start = 0;
  while (start < t.size()) {
    const std::size_t end = t.find('\n', start);
    const std::string line = t.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    ASSERT_EQ(line.rfind("roam_", 0), 0u) << line;
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string value = line.substr(space + 1);
    char* endp = nullptr;
    std::strtod(value.c_str(), &endp);
    EXPECT_EQ(*endp, '\0') << "not a number: " << line;
  }
}

TEST(StatusMetrics, LabelValuesAreEscaped) {
  DaemonSnapshot s = sample();
  s.refusals = {{"odd \"reason\"\\\n", 1}};
  const std::string t = render_prometheus(s);
  EXPECT_TRUE(has_line(t, "roam_refusals_total{reason=\"odd \\\"reason\\\"\\\\\\n\"} 1")) << t;
}

TEST(StatusMetrics, SnapshotJsonRoundTrips) {
  const DaemonSnapshot s = sample();
  auto back = snapshot_from_json(nlohmann::json::parse(to_json(s).dump()));
  ASSERT_TRUE(back.has_value()) << back.error().detail;
  EXPECT_EQ(to_json(*back), to_json(s));
  EXPECT_EQ(back->sessions.at(1).state, "server-migrate-wait");
  EXPECT_EQ(back->handover.counts, s.handover.counts);
}

TEST(StatusMetrics, MalformedJsonIsAnErrorNotACrash) {
  for (const char* text : {"{}", "[]", "{\"kind\": 3}", "null"}) {
    auto r = snapshot_from_json(nlohmann::json::parse(text));
    EXPECT_FALSE(r.has_value()) << text;
  }
  auto j = to_json(sample());
  j["handover_buckets"] = nlohmann::json::array({1, 2});
  EXPECT_FALSE(snapshot_from_json(j).has_value());
  j = to_json(sample());
  j["sessions"][0]["bytes_sent"] = "lots";
  EXPECT_FALSE(snapshot_from_json(j).has_value());
}

TEST(StatusMetrics, StatusPageIsSelfContained) {
  const std::string& html = status_page_html();
  EXPECT_NE(html.find("status.json"), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"chart\""), std::string::npos);
  for (const char* external : {"http://", "https://", "//cdn", "<link "})
    EXPECT_EQ(html.find(std::string("src=\"") + external), std::string::npos) << external;
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("innerHTML"), std::string::npos) << "session data must go in as text";
}

}  // namespace
}  // namespace roam::io
