// `roam connect HOST:PORT` in stdio mode (the ssh ProxyCommand form) and the error paths of
// the command-line contract: exit 0 on a clean end, 1 on an error, 3 on an abort, with a logged
// reason.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "itest_util.hpp"

namespace roam::itest {
namespace {

constexpr std::chrono::milliseconds kExitTimeout{10000};

std::shared_ptr<Process> start_stdio_client(std::uint16_t port, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {roam_bin(), "connect", loopback_ep(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  SpawnOptions so;
  so.pipe_stdin = true;
  so.pipe_stdout = true;
  return std::make_shared<Process>(argv, so);
}

// Data in, data out; EOF on stdin is a half-close: the service answers only after it saw EOF,
// and the client gets every byte of the answer (through a cut in the middle of it), then exits 0.
TEST(StdioConnect, HalfCloseCarriesTheWholeAnswerAndExitsZero) {
  DumpOnFailure dump;
  constexpr std::uint64_t kUp = 3 * kMiB, kDown = 4 * kMiB;
  DuplexOptions svc;
  svc.send_bytes = kDown;
  svc.seed = 21;
  svc.send_after_eof = true;
  svc.timeout = seconds(30);
  Service service(svc);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {"--heartbeat", "200ms"}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  RelayThread relay(server_port);
  auto client = start_stdio_client(relay.port(), {"--heartbeat", "200ms"});
  dump.add(client);
  const int in_fd = client->take_stdin();
  const int out_fd = client->take_stdout();

  DuplexOptions app;
  app.send_bytes = kUp;
  app.seed = 12;
  app.timeout = seconds(30);
  bool cut_done = false;
  std::size_t cut_count = 0;
  app.on_progress = [&](std::uint64_t n) {
    if (!cut_done && n >= kDown / 2) {
      cut_done = true;
      cut_count = relay.cut();
    }
  };
  const DuplexResult up = run_duplex(out_fd, in_fd, app);  // closes in_fd after sending
  ::close(out_fd);
  const auto status = client->wait_exit(kExitTimeout);
  const DuplexResult down = service.result();

  std::cout << "[ figures  ] stdio: " << up.summary() << "; service " << down.summary()
            << "; cut " << cut_count << " connection(s) halfway through the answer\n";
  EXPECT_EQ(up.sent, kUp);
  EXPECT_EQ(down.received, kUp);
  EXPECT_EQ(hex(down.received_digest), hex(pattern_digest(12, kUp)));
  EXPECT_TRUE(down.got_eof) << "the service never saw the half-close";
  EXPECT_EQ(down.sent, kDown);
  EXPECT_EQ(up.received, kDown);
  EXPECT_EQ(hex(up.received_digest), hex(pattern_digest(21, kDown)));
  EXPECT_TRUE(up.got_eof);
  EXPECT_FALSE(down.got_reset);
  EXPECT_EQ(cut_count, 1u);
  ASSERT_TRUE(status.has_value()) << "roam connect did not exit after the clean end";
  EXPECT_EQ(*status, 0);
  EXPECT_TRUE(server->running());
}

// The service aborts (RST) in the middle: the session ends as an abort and `roam connect` exits 3.
TEST(StdioConnect, ServiceResetMakesConnectExitThree) {
  DumpOnFailure dump;
  DuplexOptions svc;
  svc.send_bytes = 8 * kMiB;
  svc.seed = 3;
  svc.abort_after = 1 * kMiB;
  svc.timeout = seconds(30);
  Service service(svc);
  std::uint16_t server_port = 0;
  auto server = start_server(service.port(), {}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);
  auto client = start_stdio_client(server_port);
  dump.add(client);
  const int in_fd = client->take_stdin();
  const int out_fd = client->take_stdout();
  DuplexOptions app;
  app.send_bytes = 8 * kMiB;
  app.seed = 4;
  app.timeout = seconds(30);
  const DuplexResult up = run_duplex(out_fd, in_fd, app);
  const auto status = client->wait_exit(kExitTimeout);
  ::close(out_fd);
  if (up.sent < app.send_bytes) ::close(in_fd);
  const DuplexResult down = service.result();
  std::cout << "[ figures  ] abort: app " << up.summary() << "; service " << down.summary() << "\n";
  EXPECT_TRUE(down.aborted);
  EXPECT_LT(up.received, 8 * kMiB) << "an abort must not look like a complete stream";
  ASSERT_TRUE(status.has_value()) << "roam connect did not exit after the abort";
  EXPECT_EQ(*status, 3);
  EXPECT_TRUE(client->wait_for("aborted", milliseconds(0))) << "no reason logged";
  EXPECT_TRUE(server->running());
}

// Nothing listens: exit 1 and a message that says what failed.
TEST(StdioConnect, NothingListeningExitsOneWithAClearMessage) {
  DumpOnFailure dump;
  DeadPort dead;
  auto client = start_stdio_client(dead.port());
  dump.add(client);
  const auto status = client->wait_exit(kExitTimeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 1);
  const std::string log = client->log();
  EXPECT_NE(log.find("127.0.0.1:" + std::to_string(dead.port())), std::string::npos) << log;
  EXPECT_NE(log.find("refused"), std::string::npos) << log;
  std::cout << "[ message  ] " << log;
}

// `roam server --forward` to a dead target: the stdio client exits 3, a --local client's
// application connection is reset, and the server log names the reason.
TEST(StdioConnect, DeadForwardTargetAbortsAndIsLogged) {
  DumpOnFailure dump;
  DeadPort dead;
  std::uint16_t server_port = 0;
  auto server = start_server(dead.port(), {}, server_port);
  dump.add(server);
  ASSERT_NE(server_port, 0);

  auto client = start_stdio_client(server_port);
  dump.add(client);
  const int in_fd = client->take_stdin();  // kept open: the abort must come from the server
  const auto status = client->wait_exit(kExitTimeout);
  ::close(in_fd);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 3);

  std::uint16_t local_port = 0;
  auto local = start_local_client(server_port, {}, local_port);
  dump.add(local);
  ASSERT_NE(local_port, 0);
  const int fd = connect_loopback(local_port);
  ASSERT_GE(fd, 0);
  ReadEnd how{};
  const auto got = read_until_close(fd, kExitTimeout, how);
  ::close(fd);
  EXPECT_EQ(how, ReadEnd::kReset) << "got " << read_end_name(how) << " after " << got.size()
                                  << " bytes";
  EXPECT_TRUE(got.empty());

  const std::string reason = "target 127.0.0.1:" + std::to_string(dead.port()) + ": Connection refused";
  EXPECT_TRUE(server->wait_for(reason, milliseconds(0))) << "server log does not name the reason";
  EXPECT_TRUE(client->wait_for("Connection refused", milliseconds(0)))
      << "the client's log does not say why";
  EXPECT_TRUE(server->running());
}

}  // namespace
}  // namespace roam::itest
