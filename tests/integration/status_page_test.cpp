// The status page (GET / on --metrics) in a real browser: headless Chromium loads it while a
// session migrates; the rendered DOM must show the session and the handover chart, and a
// screenshot must be a real picture. Skipped with a reason when Chromium is not installed.
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "status_util.hpp"

namespace roam::itest {
namespace {

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

// Runs headless Chromium with `args` then `url`; returns its stdout.
std::string chromium(const std::string& bin, const std::string& profile, std::vector<std::string> args,
                     const std::string& url) {
  std::vector<std::string> argv = {bin, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-dev-shm-usage", "--no-first-run",
                                   "--user-data-dir=" + profile, "--virtual-time-budget=4000"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  SpawnOptions so;
  so.pipe_stdout = true;
  Process p(argv, so);
  std::string out = read_pipe_until_eof(p.take_stdout(), seconds(90));
  p.wait_exit(seconds(30));
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(StatusPage, HeadlessChromiumRendersSessionsAndHandoverChart) {
  const std::string bin = find_chromium();
  if (bin.empty()) GTEST_SKIP() << "chromium is not installed (scripts/deps.sh installs it)";
  DumpOnFailure dump;
  ScriptedSession s(dump);
  ASSERT_TRUE(s.ready()) << "the session did not come up";
  constexpr int kMigrations = 2;
  for (int k = 1; k <= kMigrations; ++k) ASSERT_TRUE(s.cut_and_wait(k)) << "migration " << k;
  ASSERT_TRUE(s.flow(ScriptedSession::kSecond));
  TempDir profile;
  const std::string url = "http://127.0.0.1:" + std::to_string(s.client_metrics) + "/";

  // Load the page while the session migrates a third time.
  std::string dom;
  std::thread browser([&] { dom = chromium(bin, profile.path(), {"--dump-dom"}, url); });
  const bool third = s.cut_and_wait(kMigrations + 1);
  browser.join();
  ASSERT_TRUE(third);
  ASSERT_FALSE(dom.empty()) << "chromium printed no DOM";
  // The script ran (it fetched /status.json and filled the page).
  EXPECT_NE(dom.find("data-updated="), std::string::npos) << dom.substr(0, 4000);
  EXPECT_NE(dom.find("<table id=\"session-table\""), std::string::npos) << dom.substr(0, 4000);
  EXPECT_EQ(count(dom, "<tr class=\"session\""), 1u);
  const json st = status_json(s.dir.path());
  const json client = daemon_of(st, "connect");
  ASSERT_TRUE(client.is_object());
  const std::string id = client.at("sessions")[0].at("id");
  EXPECT_NE(dom.find("data-id=\"" + id + "\""), std::string::npos) << "session " << id << " not shown";
  EXPECT_NE(dom.find("client-established"), std::string::npos);
  // The chart has a bar per migration it has seen (2 before the page loaded, maybe the third).
  const std::size_t bars = count(dom, "<rect class=\"bar");
  EXPECT_GE(bars, static_cast<std::size_t>(kMigrations)) << dom.substr(dom.find("<svg"), 2000);
  EXPECT_LE(bars, static_cast<std::size_t>(kMigrations + 1));
  const auto points = dom.find("data-points=\"");
  ASSERT_NE(points, std::string::npos) << "the chart was not drawn";
  EXPECT_GE(std::atoi(dom.c_str() + points + 13), kMigrations);

  // A screenshot: a real PNG of a non-trivial size.
  const std::string png = profile.path() + "/../roam-status-page-" + std::to_string(::getpid()) + ".png";
  chromium(bin, profile.path(), {"--screenshot=" + png, "--window-size=1280,720", "--hide-scrollbars"}, url);
  std::ifstream f(png, std::ios::binary);
  ASSERT_TRUE(f.good()) << "no screenshot at " << png;
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(bytes.size(), 20u * 1024) << "a blank page would be a few KiB";
  std::cout << "[status page] screenshot: " << png << " (" << bytes.size() << " bytes)\n";
  if (!std::getenv("ROAM_KEEP_SCREENSHOT")) ::unlink(png.c_str());
  ASSERT_TRUE(s.finish());
}

}  // namespace
}  // namespace roam::itest
