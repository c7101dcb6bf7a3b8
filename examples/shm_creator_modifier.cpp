// The "Shared Memory" example of seeds/003 (§4), with ipckit.
//
// The main process creates a shared memory block holding the int64 array [1 2 3 4 5]. A
// modifier process attaches to the block by its name, multiplies every element by 10 and
// detaches; the main process waits for it, prints the array it now sees, then closes and
// unlinks the block.
//
// The Python keeps the creator's SharedMemory object alive by returning it; so does this
// one (the handle owns the mapping). The parent reads the array only after join(): the
// child's writes are complete by then, with no lock needed.
#include <array>
#include <cstdint>
#include <iostream>
#include <span>
#include <string>

#include "ipckit/process.hpp"
#include "ipckit/shared_memory.hpp"

namespace {

// numpy's way of printing an array: [1 2 3 4 5]
std::string show(std::span<const std::int64_t> values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? " " : "") + std::to_string(values[i]);
  return text + "]";
}

ipckit::SharedMemory creator() {
  const std::array<std::int64_t, 5> original_array{1, 2, 3, 4, 5};
  // A shared memory block of the array's size, under a fresh unique name.
  auto shm = ipckit::SharedMemory::create(sizeof original_array);
  // An array view of the block, and the original copied into it.
  auto shared_array = shm.as<std::int64_t>();
  std::copy(original_array.begin(), original_array.end(), shared_array.begin());
  std::cout << "Creator process: Original array is " << show(original_array) << std::endl;
  std::cout << "Shared memory name: " << shm.name() << std::endl;
  return shm;  // keeps the block mapped
}

void modifier(const std::string& shm_name) {
  auto shm = ipckit::SharedMemory::open(shm_name);  // attach to the existing block
  auto shared_array = shm.as<std::int64_t>();
  for (auto& value : shared_array) value *= 10;
  std::cout << "Modifier process: Modified array is " << show(shared_array) << std::endl;
  shm.close();
}

}  // namespace

int main() {
  auto shm = creator();
  const std::string name = shm.name();
  ipckit::Process p([&] { modifier(name); }, "Modifier");
  p.start();
  p.join();
  if (p.exitcode() != 0) {  // it has said why on stderr
    shm.close();
    shm.unlink();
    return 1;
  }
  std::cout << "Parent process: Array after modification is " << show(shm.as<std::int64_t>()) << std::endl;
  shm.close();
  shm.unlink();  // free the shared memory block
}
