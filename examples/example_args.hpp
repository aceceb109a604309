// Tiny argument helpers shared by the libroam examples (kept dependency-free so that an example
// builds against an installed libroam with nothing but `pkg-config --cflags --libs roam`).
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <roam/roam.hpp>

namespace example {

// "250ms", "2s", "10m", "1h" (a bare number means seconds). Exits with status 2 on bad input.
inline std::chrono::milliseconds parse_duration(std::string_view flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const std::string_view unit(end);
  double ms = -1;
  if (end != text.c_str() && v >= 0) {
    if (unit == "ms") ms = v;
    else if (unit.empty() || unit == "s") ms = v * 1e3;
    else if (unit == "m") ms = v * 60e3;
    else if (unit == "h") ms = v * 3600e3;
  }
  if (ms < 0) {
    std::fprintf(stderr, "%.*s: expected a duration like 500ms, 30s or 10m, got '%s'\n",
                 static_cast<int>(flag.size()), flag.data(), text.c_str());
    std::exit(2);
  }
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

// The value after flag argv[i] (advancing i). Exits with status 2 when it is missing.
inline std::string value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value (see --help)\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

// The flags every example takes: --help (prints `usage`, exits 0), --wait, --heartbeat,
// --encrypt (into `opts`) and --quiet (only warnings and errors from the library). Returns false
// when argv[i] is none of them.
inline bool common_flag(int argc, char** argv, int& i, const char* usage,
                        roam::SessionOptions& opts) {
  const std::string_view a = argv[i];
  if (a == "--help" || a == "-h") {
    std::fputs(usage, stdout);
    std::exit(0);
  }
  if (a == "--wait")
    opts.wait = parse_duration(a, value(argc, argv, i));
  else if (a == "--heartbeat")
    opts.heartbeat = parse_duration(a, value(argc, argv, i));
  else if (a == "--encrypt")
    opts.encrypt = true;
  else if (a == "--quiet")
    roam::set_log_level(roam::LogLevel::kWarn);
  else
    return false;
  return true;
}

}  // namespace example
