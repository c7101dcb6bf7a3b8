// bench/shm_bench.cpp — SharedMemory: the life of a named segment.
//
// shm.create_unlink: one iteration creates a named 4 KiB segment under a fresh name,
// removes the name and closes the handle — ipckit with tracking (the default: a notice to
// the tracker process on create and on unlink, and the trailer initialised), Python's
// SharedMemory(create=True) + close() + unlink() with its resource tracker (the default),
// and the floor: the system calls any implementation needs.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "ipckit/shared_memory.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::State;

void BM_SharedMemory_CreateUnlink(State& state, std::size_t size) {
  // The tracker process starts with the first tracked create of a process tree: once,
  // before the timed loop (Python's peer starts its resource tracker before timing, too).
  ipckit::SharedMemory::create(size).unlink();
  for (auto _ : state) {
    auto shm = ipckit::SharedMemory::create(size);
    shm.unlink();
  }  // each handle is closed (unmapped) at the end of its iteration
}

[[noreturn]] void fail(const char* call) { throw std::system_error(errno, std::generic_category(), call); }

// The floor: shm_open(O_CREAT | O_EXCL), ftruncate, mmap, munmap, close, shm_unlink.
void BM_Floor_ShmCreateUnlink(State& state, std::size_t size) {
  const std::string name = "/ipckit-bench-floor-" + std::to_string(getpid());
  for (auto _ : state) {
    const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) fail("shm_open");
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) fail("ftruncate");
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) fail("mmap");
    munmap(p, size);
    close(fd);
    if (shm_unlink(name.c_str()) != 0) fail("shm_unlink");
  }
}

}  // namespace

void register_shm_workloads(Registry& registry) {
  registry.add({.name = "shm.create_unlink.4KiB",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_SharedMemory_CreateUnlink", BM_SharedMemory_CreateUnlink, 4096),
                .floor = sized("BM_Floor_ShmCreateUnlink", BM_Floor_ShmCreateUnlink, 4096),
                .python = "shm.create_unlink.4KiB"});
}

}  // namespace ipckit::bench
