// Replays fuzz inputs without libFuzzer: for g++ builds and ctest. Every regular file in every
// directory (or file) named on the command line goes through LLVMFuzzerTestOneInput once, in
// name order so that a failure is reproducible. An empty or missing corpus is an error, so a
// wrong path cannot pass silently.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::directory_iterator(argv[i], ec))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.emplace_back(argv[i]);
    } else {
      std::fprintf(stderr, "fuzz replay: no such file or directory: %s\n", argv[i]);
      return 1;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs (usage: %s DIR|FILE...)\n", argv[0]);
    return 1;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "fuzz replay: %s (%zu bytes)\n", f.c_str(), bytes.size());
    // A copy on the heap of exactly the input's size, so that AddressSanitizer sees overreads.
    std::vector<std::uint8_t> copy(bytes.begin(), bytes.end());
    auto* buf = new std::uint8_t[copy.size() + (copy.empty() ? 1 : 0)];
    std::copy(copy.begin(), copy.end(), buf);
    LLVMFuzzerTestOneInput(buf, copy.size());
    delete[] buf;
  }
  std::printf("fuzz replay: %zu inputs, no crash\n", files.size());
  return 0;
}
