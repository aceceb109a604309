// An LD_PRELOAD module for the scale benchmarks: a thread that writes glibc's heap statistics
// (mallinfo2, summed over all arenas) of the process it is loaded into to $ROAM_MALLINFO_FILE
// twice a second, as one line "in_use_bytes mmapped_bytes arena_bytes direct_mapped_bytes"
// (replaced atomically). In use = uordblks (allocated chunks in the arenas) + hblkhd (chunks
// glibc served by mmap) + direct_mapped (private anonymous mappings the program made itself with
// mmap, e.g. roam's large ring buffers, core/session/stream.hpp: glibc's statistics do not see
// them). This is the process's live heap, which VmRSS alone cannot separate from
// freed-but-retained pages.
//
//   LD_PRELOAD=build-scale/bench/libroam_mallinfo.so ROAM_MALLINFO_FILE=/tmp/x roam proxy ...
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Direct anonymous mappings, by address (open addressing; roam maps and unmaps whole blocks).
// glibc's malloc maps through an internal alias, so only the program's own calls arrive here.
using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using MunmapFn = int (*)(void*, size_t);
constexpr std::size_t kSlots = 1 << 16;
struct Mapping {
  std::uintptr_t addr;
  std::size_t len;
};
Mapping mappings[kSlots];
pthread_mutex_t mappings_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<std::size_t> direct_mapped{0};

std::size_t slot_of(std::uintptr_t a) { return (a >> 12) * 11400714819323198485ull >> 48; }

void note_map(void* p, std::size_t len) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  pthread_mutex_lock(&mappings_mu);
  for (std::size_t i = slot_of(a) % kSlots, n = 0; n < kSlots; i = (i + 1) % kSlots, ++n) {
    if (mappings[i].addr == 0 || mappings[i].addr == 1) {
      mappings[i] = Mapping{a, len};
      direct_mapped += len;
      break;
    }
  }
  pthread_mutex_unlock(&mappings_mu);
}

void note_unmap(void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  pthread_mutex_lock(&mappings_mu);
  for (std::size_t i = slot_of(a) % kSlots, n = 0; n < kSlots && mappings[i].addr != 0;
       i = (i + 1) % kSlots, ++n) {
    if (mappings[i].addr == a) {
      direct_mapped -= mappings[i].len;
      mappings[i].addr = 1;  // tombstone
      break;
    }
  }
  pthread_mutex_unlock(&mappings_mu);
}

void* writer(void* arg) {
  const std::string path = static_cast<const char*>(arg);
  const std::string tmp = path + ".tmp";
  for (;;) {
    const struct mallinfo2 mi = mallinfo2();
    if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
      const std::size_t direct = direct_mapped.load();
      std::fprintf(f, "%zu %zu %zu %zu\n", mi.uordblks + mi.hblkhd + direct, mi.hblkhd, mi.arena,
                   direct);
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

namespace {
void* mapped(MmapFn real, void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  void* p = real(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED && (flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE) && !(flags & MAP_FIXED))
    note_map(p, len);
  return p;
}
}  // namespace

// Both names: a program built with _FILE_OFFSET_BITS=64 calls mmap64 (the same function here).
extern "C" {
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  static const auto real = reinterpret_cast<MmapFn>(dlsym(RTLD_NEXT, "mmap"));
  return mapped(real, addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  static const auto real = reinterpret_cast<MmapFn>(dlsym(RTLD_NEXT, "mmap64"));
  return mapped(real, addr, len, prot, flags, fd, off);
}
int munmap(void* addr, size_t len) {
  static const auto real = reinterpret_cast<MunmapFn>(dlsym(RTLD_NEXT, "munmap"));
  note_unmap(addr);
  return real(addr, len);
}
}
