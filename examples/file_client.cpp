// roam file client: the blocking Stream API from ordinary threads.
//
// Sends a file through a roam session to an echo server (roam_echo_server) and checks that the
// echo is the file, byte for byte, however often the network breaks on the way. One thread
// writes, the main thread reads and compares; the Context's loop runs on its own thread.
//
//   roam_file_client --connect 127.0.0.1:7000 --file big.iso
//
// Exit status: 0 the echo matched, 1 it did not (or the session failed), 2 usage.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include <roam/roam.hpp>

#include "example_args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: roam_file_client --connect HOST:PORT --file PATH [options]

Sends PATH through a roam session to an echo server and checks the echo (libroam example).

  --connect HOST:PORT  the echo server (roam_echo_server)
  --file PATH          the file to send
  --wait DURATION      how long to keep trying to come back after the path is lost (default 10m)
  --heartbeat DURATION idle heartbeat, same on both sides (default 1s)
  --buffer BYTES       retention buffer per direction (default 8388608)
  --prefer IF[,IF...]  interfaces in order of preference
  --interface IF       pin every path to one interface
  --encrypt            encrypt the session; refuse a server that will not
  --known-hosts FILE   pin the key of a server started with a key on first use, refuse another
  --migrations N       after sending, keep the session open until N migrations happened
                       (to watch roam ride out a flaky network; default 0)
  --quiet              log only warnings and errors
  --help               this text

Prints one line per session event on stderr, then "echo verified: N bytes, M migrations".
)";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, path;
  roam::ConnectOptions opts;
  std::uint64_t want_migrations = 0;
  roam::set_log_level(roam::LogLevel::kInfo);
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (example::common_flag(argc, argv, i, kUsage, opts)) {
      continue;
    } else if (a == "--connect") {
      server = example::value(argc, argv, i);
    } else if (a == "--file") {
      path = example::value(argc, argv, i);
    } else if (a == "--buffer") {
      opts.buffer = std::strtoull(example::value(argc, argv, i).c_str(), nullptr, 10);
    } else if (a == "--prefer") {
      opts.prefer = split(example::value(argc, argv, i));
    } else if (a == "--interface") {
      opts.interface = example::value(argc, argv, i);
    } else if (a == "--known-hosts") {
      opts.known_hosts = example::value(argc, argv, i);
    } else if (a == "--migrations") {
      want_migrations = std::strtoull(example::value(argc, argv, i).c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (server.empty() || path.empty()) {
    std::fputs("--connect and --file are required (see --help)\n", stderr);
    return 2;
  }
  std::ifstream to_send(path, std::ios::binary), to_check(path, std::ios::binary);
  if (!to_send || !to_check) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  roam::Context ctx;
  if (auto ok = ctx.start(); !ok) {
    std::fprintf(stderr, "%s\n", ok.error().message.c_str());
    return 1;
  }
  auto stream = roam::Stream::connect(ctx, server, opts);
  if (!stream) {
    std::fprintf(stderr, "cannot start a session with %s: %s (%s)\n", server.c_str(),
                 stream.error().message.c_str(), roam::errc_name(stream.error().code));
    return 1;
  }
  std::fprintf(stderr, "session established with %s\n", server.c_str());

  // Writer: the file, then (once enough migrations happened) a half-close.
  std::string write_error;
  std::thread writer([&] {
    std::vector<std::uint8_t> buf(256 * 1024);
    while (to_send) {
      to_send.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
      const auto n = static_cast<std::size_t>(to_send.gcount());
      if (n == 0) break;
      if (auto ok = stream->write_all(std::span(buf).first(n)); !ok) {
        write_error = ok.error().message;
        return;
      }
    }
    // Each wait returns early if the session dies (read() below then reports why).
    for (std::uint64_t k = 1; k <= want_migrations; ++k)
      if (stream->wait_migrations(k) >= k)
        std::fprintf(stderr, "%llu of %llu migrations\n", static_cast<unsigned long long>(k),
                     static_cast<unsigned long long>(want_migrations));
    stream->shutdown();
  });

  // Reader: compare the echo with the file as it arrives.
  std::vector<std::uint8_t> got(256 * 1024), want(256 * 1024);
  std::uint64_t total = 0;
  bool match = true;
  std::string read_error;
  for (;;) {
    auto r = stream->read(got);
    if (!r) {
      read_error = r.error().message;
      break;
    }
    if (*r == 0) break;
    to_check.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(*r));
    if (static_cast<std::size_t>(to_check.gcount()) != *r ||
        std::memcmp(got.data(), want.data(), *r) != 0) {
      std::fprintf(stderr, "echo differs from the file near offset %llu\n",
                   static_cast<unsigned long long>(total));
      match = false;
      stream->abort("echo mismatch");
      break;
    }
    total += *r;
  }
  if (match && read_error.empty() && to_check.peek() != std::char_traits<char>::eof()) {
    std::fprintf(stderr, "echo ended early, after %llu bytes\n",
                 static_cast<unsigned long long>(total));
    match = false;
  }
  writer.join();
  const roam::CloseInfo info = stream->wait_closed();
  if (!read_error.empty() || !write_error.empty() || !info.clean) {
    std::fprintf(stderr, "session failed: %s\n",
                 !read_error.empty()    ? read_error.c_str()
                 : !write_error.empty() ? write_error.c_str()
                                        : info.error.message.c_str());
    return 1;
  }
  if (!match) return 1;
  std::fprintf(stderr, "echo verified: %llu bytes, %llu migrations\n",
               static_cast<unsigned long long>(total),
               static_cast<unsigned long long>(info.migrations));
  return 0;
}
