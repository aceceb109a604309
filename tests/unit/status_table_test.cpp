// The `roam status` table: columns, alignment, human units, empty daemons.
#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "io/control.hpp"

namespace roam::io {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Display width (code points).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

DaemonSnapshot daemon_with_two_sessions() {
  DaemonSnapshot d;
  d.kind = "connect";
  d.listen = "127.0.0.1:2222";
  d.pid = 77;
  d.uptime_s = 125;
  d.migrations = 3;
  d.bytes_sent = 3 << 20;
  d.bytes_received = 1536;
  d.refusals = {{"unknown_session", 1}};
  SessionInfo a;
  a.id = "deadbeef";
  a.role = "client";
  a.peer = "127.0.0.1:7000";
  a.local = "127.0.0.1:40000";
  a.remote = "127.0.0.1:7000";
  a.state = "client-established";
  a.bytes_sent = 3 << 20;
  a.bytes_received = 1536;
  a.retained = 65536;
  a.migrations = 3;
  a.last_handover_s = 0.0123;
  a.waited_total_s = 0.4;
  SessionInfo b;
  b.id = "-";
  b.role = "client";
  b.peer = "127.0.0.1:7000";
  b.state = "client-migrate-wait";
  b.waited_total_s = 75;
  d.sessions = {a, b};
  return d;
}

TEST(StatusTable, HeadingThenAlignedRowsWithHumanUnits) {
  const auto l = lines(format_status_table({daemon_with_two_sessions()}));
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0],
            "roam connect (pid 77, 127.0.0.1:2222, up 2m05s): 2 sessions, 3 migrations, 1 refused, "
            "3.0 MiB sent, 1.5 KiB received");
  EXPECT_NE(l[1].find("ID"), std::string::npos);
  EXPECT_NE(l[1].find("PATH (local → remote)"), std::string::npos);
  EXPECT_NE(l[2].find("deadbeef"), std::string::npos);
  EXPECT_NE(l[2].find("127.0.0.1:40000 → 127.0.0.1:7000"), std::string::npos);
  EXPECT_NE(l[2].find("client-established"), std::string::npos);
  EXPECT_NE(l[2].find("3.0 MiB"), std::string::npos);
  EXPECT_NE(l[2].find("64.0 KiB"), std::string::npos);
  EXPECT_NE(l[2].find("12 ms"), std::string::npos);
  EXPECT_NE(l[2].find("400 ms"), std::string::npos);
  // A session without a path shows "-" for it; its last handover is "-" (none yet).
  EXPECT_NE(l[3].find("client-migrate-wait"), std::string::npos);
  EXPECT_NE(l[3].find("1m15s"), std::string::npos);
  // Columns line up: every row (header included) has the same display width and the
  // right-aligned last column ends at the same place.
  EXPECT_EQ(width(l[1]), width(l[2]));
  EXPECT_EQ(width(l[2]), width(l[3]));
  // The state column starts at the same display position in every row.
  auto col = [](const std::string& row, const std::string& what) {
    return width(row.substr(0, row.find(what)));
  };
  EXPECT_EQ(col(l[1], "STATE"), col(l[2], "client-established"));
  EXPECT_EQ(col(l[1], "STATE"), col(l[3], "client-migrate-wait"));
}

TEST(StatusTable, DaemonWithoutSessionsSaysSo) {
  DaemonSnapshot d;
  d.kind = "server";
  d.pid = 1;
  d.listen = "0.0.0.0:7000";
  const auto l = lines(format_status_table({d, daemon_with_two_sessions()}));
  ASSERT_GE(l.size(), 3u);
  EXPECT_EQ(l[0].rfind("roam server (pid 1, 0.0.0.0:7000, up 0.0 ms): 0 sessions, 0 migrations", 0), 0u) << l[0];
  EXPECT_EQ(l[1], "  (no sessions)");
  EXPECT_EQ(l[2], "");  // a blank line between daemons
  EXPECT_EQ(l[3].rfind("roam connect", 0), 0u);
}

TEST(StatusTable, HumanUnits) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1024), "1.0 KiB");
  EXPECT_EQ(human_bytes(64ull << 20), "64.0 MiB");
  EXPECT_EQ(human_bytes(5ull << 40), "5.0 TiB");
  EXPECT_EQ(human_duration(-1), "-");
  EXPECT_EQ(human_duration(0.85), "850 ms");
  EXPECT_EQ(human_duration(0.0005), "0.5 ms");
  EXPECT_EQ(human_duration(2.34), "2.3 s");
  EXPECT_EQ(human_duration(245), "4m05s");
  EXPECT_EQ(human_duration(3720), "1h02m");
}

TEST(StatusTable, ControlDirFollowsFlagThenEnvironment) {
  EXPECT_EQ(control_dir("/x/y"), "/x/y");
  ::setenv("ROAM_RUNTIME_DIR", "/run/user/5/roam-test", 1);
  EXPECT_EQ(control_dir(""), "/run/user/5/roam-test");
  ::unsetenv("ROAM_RUNTIME_DIR");
  const std::string d = control_dir("");
  EXPECT_FALSE(d.empty());
}

}  // namespace
}  // namespace roam::io
