// The "Raw Shared Memory with multiprocessing.shared_memory" example of seeds/002 (§3
// Shared Memory), with ipckit.
//
// The main process creates a named segment holding ten int64 values and sets them to 0. A
// writer process attaches to it by name and sets every value to 0, 1, ... 9 in turn; a
// reader process attaches by name too and prints what it finds after each step. The main
// process joins both, then closes and unlinks the segment.
//
// The Python version orders the two with sleeps (the writer sleeps 0.5 s, the reader
// 0.3 s) and so reads at arbitrary moments: a value twice, a value never, or a
// half-written array. Here the writer tells the reader over a Pipe when a step is
// complete and waits for its answer before writing the next one, so the reader sees every
// step, whole. The Pipe carries only turns; the values travel through the shared memory.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/shared_memory.hpp"

namespace {

constexpr std::size_t kLength = 10;  // values in the array
constexpr std::int64_t kSteps = 10;

// A completed step, or None (nullopt): the writer is done.
using Step = std::optional<std::int64_t>;

void writer_process(const std::string& name, ipckit::Connection& reader) {
  auto shm = ipckit::SharedMemory::open(name);  // attach to the existing block
  auto shared_array = shm.as<std::int64_t>();
  for (std::int64_t i = 0; i < kSteps; ++i) {
    std::fill(shared_array.begin(), shared_array.end(), i);
    std::cout << "Writer: Set shared memory to " << i << std::endl;
    reader.send(Step(i));  // the array holds step i, whole
    reader.recv<bool>();   // the reader has copied it: the next step may overwrite it
  }
  reader.send(Step());
  shm.close();
}

void reader_process(const std::string& name, ipckit::Connection& writer) {
  auto shm = ipckit::SharedMemory::open(name);
  auto shared_array = shm.as<std::int64_t>();
  while (const Step step = writer.recv<Step>()) {
    const std::vector<std::int64_t> current(shared_array.begin(), shared_array.end());  // a copy
    const bool whole =
        std::all_of(current.begin(), current.end(), [&](std::int64_t v) { return v == *step; });
    std::cout << "Reader: Current value in shared memory: " << current[0]
              << (whole ? "" : " (a half-written array!)") << std::endl;
    writer.send(true);
  }
  shm.close();
}

}  // namespace

int main() {
  // A new block under a fresh unique name, as Python's SharedMemory(create=True).
  auto shm = ipckit::SharedMemory::create(kLength * sizeof(std::int64_t));
  auto shared_array = shm.as<std::int64_t>();
  std::fill(shared_array.begin(), shared_array.end(), 0);
  std::cout << "Main process: Initialized shared memory with " << shared_array[0] << std::endl;

  const std::string name = shm.name();
  auto [writer_end, reader_end] = ipckit::Pipe();
  ipckit::Process writer([&] {
    reader_end.close();
    writer_process(name, writer_end);
  }, "Writer");
  ipckit::Process reader([&] {
    writer_end.close();
    reader_process(name, reader_end);
  }, "Reader");
  writer.start();
  reader.start();
  writer_end.close();  // the children have their own copies
  reader_end.close();

  writer.join();
  reader.join();
  shm.close();
  shm.unlink();  // free and remove the block
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (writer.exitcode() != 0 || reader.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
