// `--workers N` as people see it: `roam status` headings and JSON per worker, and the parent's
// words for a worker that ended.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "io/control.hpp"
#include "io/registry.hpp"
#include "io/workers.hpp"

namespace roam::io {
namespace {

DaemonSnapshot worker(unsigned i, unsigned n) {
  DaemonSnapshot d;
  d.kind = "proxy";
  d.listen = "0.0.0.0:1080";
  d.pid = 4000 + i;
  d.worker = i;
  d.workers = n;
  d.handoffs_passed = 3;
  d.handoffs_received = 5;
  return d;
}

TEST(WorkersStatus, HeadingNamesEachWorker) {
  const std::string t = format_status_table({worker(1, 2), worker(2, 2)});
  EXPECT_NE(t.find("roam proxy worker 1/2 (pid 4001, 0.0.0.0:1080"), std::string::npos) << t;
  EXPECT_NE(t.find("roam proxy worker 2/2 (pid 4002, 0.0.0.0:1080"), std::string::npos) << t;
  DaemonSnapshot single = worker(0, 0);
  EXPECT_NE(format_status_table({single}).find("roam proxy (pid 4000,"), std::string::npos)
      << "one process: no worker in the heading";
}

TEST(WorkersStatus, JsonCarriesWorkerAndHandoffsAndOlderDaemonsStillParse) {
  const auto j = to_json(worker(2, 3));
  EXPECT_EQ(j.at("worker"), 2);
  EXPECT_EQ(j.at("workers"), 3);
  auto back = snapshot_from_json(j);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(back->worker, 2u);
  EXPECT_EQ(back->workers, 3u);
  EXPECT_EQ(back->handoffs_passed, 3u);
  EXPECT_EQ(back->handoffs_received, 5u);
  auto old = j;
  for (const char* k : {"worker", "workers", "handoffs_passed", "handoffs_received"}) old.erase(k);
  auto parsed = snapshot_from_json(old);
  ASSERT_TRUE(parsed) << parsed.error().detail;
  EXPECT_EQ(parsed->workers, 0u);
}

TEST(WorkersStatus, ExitStatusInWords) {
  EXPECT_EQ(describe_exit(3 << 8), "exited with status 3");  // as waitpid() reports exit(3)
  EXPECT_EQ(describe_exit(SIGKILL), "was killed by signal 9 (SIGKILL)");
  EXPECT_EQ(describe_exit(SIGSEGV | 0x80), "was killed by signal 11 (SIGSEGV), core dumped");
}

}  // namespace
}  // namespace roam::io
