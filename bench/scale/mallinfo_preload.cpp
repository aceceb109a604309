// An LD_PRELOAD module for the scale benchmarks: a thread that writes glibc's heap statistics
// (mallinfo2, summed over all arenas) of the process it is loaded into to $ROAM_MALLINFO_FILE
// twice a second, as one line "in_use_bytes mmapped_bytes arena_bytes" (replaced atomically).
// In use = uordblks (allocated chunks in the arenas) + hblkhd (chunks served by mmap). This is
// the process's live heap, which VmRSS alone cannot separate from freed-but-retained pages.
//
//   LD_PRELOAD=build-scale/bench/libroam_mallinfo.so ROAM_MALLINFO_FILE=/tmp/x roam proxy ...
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void* writer(void* arg) {
  const std::string path = static_cast<const char*>(arg);
  const std::string tmp = path + ".tmp";
  for (;;) {
    const struct mallinfo2 mi = mallinfo2();
    if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%zu %zu %zu\n", mi.uordblks + mi.hblkhd, mi.hblkhd, mi.arena);
      std::fclose(f);
      std::rename(tmp.c_str(), path.c_str());
    }
    usleep(500000);
  }
  return nullptr;
}

// A forked child (a worker of `roam proxy --workers N`) has no writer thread: it starts its own,
// writing to $ROAM_MALLINFO_FILE.<its pid>.
char child_path[4096];
void start_child_writer() {
  const char* path = std::getenv("ROAM_MALLINFO_FILE");
  std::snprintf(child_path, sizeof child_path, "%s.%ld", path, static_cast<long>(getpid()));
  pthread_t t;
  if (pthread_create(&t, nullptr, writer, child_path) == 0) pthread_detach(t);
}

__attribute__((constructor)) void start_writer() {
  const char* path = std::getenv("ROAM_MALLINFO_FILE");
  if (!path || !*path) return;
  pthread_t t;
  if (pthread_create(&t, nullptr, writer, const_cast<char*>(path)) == 0) pthread_detach(t);
  pthread_atfork(nullptr, nullptr, start_child_writer);
}

}  // namespace
