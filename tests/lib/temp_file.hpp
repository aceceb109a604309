// A temporary file of pattern bytes for the libroam example and dissector tests.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace roam::itest {

// A temporary file of `n` pattern bytes, removed with the object.
class TempFile {
 public:
  TempFile(std::uint64_t n, std::uint64_t seed) {
    char name[] = "/tmp/roam-lib-example-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    path_ = name;
    std::ofstream out(path_, std::ios::binary);
    PatternStream p(seed);
    std::vector<std::uint8_t> buf(1 << 16);
    for (std::uint64_t done = 0; done < n; done += buf.size()) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - done));
      p.fill(buf.data(), k);
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(k));
    }
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace roam::itest
