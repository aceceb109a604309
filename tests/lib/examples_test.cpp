// The libroam examples as a user runs them: roam_echo_server and roam_file_client as separate
// processes, with a CutRelay between them that resets the path three times mid-session (also
// encrypted, with a pinned server key).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "itest_util.hpp"
#include "key_file.hpp"
#include "temp_file.hpp"

namespace roam::itest {
namespace {

TEST(LibraryExamples, HelpSaysHowToUseThem) {
  for (const char* bin : {ROAM_ECHO_SERVER, ROAM_FILE_CLIENT}) {
    Process p({bin, "--help"}, SpawnOptions{false, true, {}});
    const int out = p.take_stdout();
    std::string text;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(out, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(out);
    EXPECT_EQ(p.wait_exit(seconds(10)), 0) << bin;
    EXPECT_NE(text.find("usage:"), std::string::npos) << bin << " printed: " << text;
  }
}

// roam_echo_server and roam_file_client (with extra flags each) through a relay cut three times:
// the 8 MiB file comes back exact and both sides saw the migrations.
void file_echo_through_three_cuts(const std::vector<std::string>& server_extra,
                                  const std::vector<std::string>& client_extra) {
  DumpOnFailure dump;
  TempFile file(8 * kMiB, 0x11b);
  std::vector<std::string> server_argv = {ROAM_ECHO_SERVER, "--listen", "127.0.0.1:0",
                                          "--heartbeat", "200ms"};
  server_argv.insert(server_argv.end(), server_extra.begin(), server_extra.end());
  auto server = std::make_shared<Process>(server_argv);
  dump.add(server);
  const std::uint16_t port = server->wait_listening();
  ASSERT_NE(port, 0) << "echo server did not start";
  RelayThread relay(port);
  std::vector<std::string> client_argv = {ROAM_FILE_CLIENT, "--connect", loopback_ep(relay.port()),
                                          "--file", file.path(), "--heartbeat", "200ms",
                                          "--migrations", "3"};
  client_argv.insert(client_argv.end(), client_extra.begin(), client_extra.end());
  auto client = std::make_shared<Process>(client_argv);
  dump.add(client);
  ASSERT_TRUE(client->wait_for("session established"));
  for (int k = 1; k <= 3; ++k) {
    ASSERT_GE(relay.cut(), 1u) << "cut " << k;
    ASSERT_TRUE(client->wait_for(std::to_string(k) + " of 3 migrations", seconds(30))) << "cut " << k;
  }
  EXPECT_EQ(client->wait_exit(seconds(60)), 0);
  EXPECT_TRUE(client->wait_for("echo verified: 8388608 bytes", seconds(1)));
  EXPECT_TRUE(server->wait_for("ended cleanly: 8388608 bytes echoed", seconds(10)));
  EXPECT_TRUE(server->wait_for("migrated after", seconds(1)));
}

TEST(LibraryExamples, FileEchoIsExactThroughThreeCuts) { file_echo_through_three_cuts({}, {}); }

// The same with --encrypt on both (the server requires it) and a signed, pinned server key.
TEST(LibraryExamples, EncryptedFileEchoWithAPinnedKeyIsExactThroughThreeCuts) {
  char tmpl[] = "/tmp/roam-lib-example-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string pub = write_server_key(dir + "/key");
  file_echo_through_three_cuts({"--encrypt", "--key", dir + "/key"},
                               {"--encrypt", "--known-hosts", dir + "/known_hosts"});
  std::ifstream in(dir + "/known_hosts");
  std::string host, type, key;
  in >> host >> type >> key;
  EXPECT_EQ(type + " " + key, pub);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace roam::itest
