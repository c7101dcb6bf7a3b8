// ipckit/shared_memory.hpp — SharedMemory: bytes that several processes map at once, as
// Python's multiprocessing.shared_memory.SharedMemory (and mmap of files).
//
//   auto shm = ipckit::SharedMemory::create("prices", 1000 * sizeof(double));
//   std::span<double> prices = shm.as<double>();             // 1000 doubles, zeroed
//   // in another process, related or not:
//   auto same = ipckit::SharedMemory::open("prices");
//
// Kinds of segment:
//   - named (create / open / open_or_create): a POSIX shm object "/ipckit-<name>" in
//     /dev/shm that any process may open by name. A name that starts with '/' is a
//     foreign OS name used as it is ("/psm_1a2b" is what Python's SharedMemory("psm_1a2b")
//     uses): such segments are plain bytes, with no ipckit trailer and no tracking, so
//     Python's multiprocessing.shared_memory reads and writes them directly.
//   - anonymous (anonymous): a memfd. Children started afterwards share it; fd() can be
//     handed to an unrelated process, which maps it with from_fd().
//   - file-backed (map_file): a file mapped with MAP_SHARED, as the seeds' mmap examples.
// Byte layout of named segments (the trailer that tracks their users):
// docs/formats/shared_memory.md.
//
// Lifetime (named ipckit segments). A segment belongs to the process that created it
// unless it is untracked (SharedMemoryOptions::track = false, or untrack()). A tracked
// segment is removed from /dev/shm once its creator has ended — by returning, exit() or
// SIGKILL alike — and no other process that opened it is still running: a process that
// still uses a segment never loses its name behind its back (the flaw of Python's
// resource tracker). A helper process started on the first tracked create (double-forked:
// not a child of the caller) watches the creator and the segment's users through pidfds
// and removes the name within milliseconds of the last one's end. unlink() removes the
// name at once, whoever calls it. An untracked segment lives until someone unlinks it.
// A user is a process that called open() (or open_or_create()); a child that only
// inherited the mapping through fork keeps its mapping when the name goes, but does not
// hold the name: it calls open() if it must hand the name to others after its parent.
//
// Threads and processes: a SharedMemory handle may be used from several threads; the
// bytes themselves are the caller's to synchronise (see sync.hpp). Mapping and unmapping
// are not synchronised with access through buf() from other threads of the same process.
//
// Crash safety: a process killed at any point leaves the segment intact for the others;
// its own use of it ends (the trailer forgets it). Nothing it wrote is undone.
//
// Errors: FileExistsError (create of a taken name), FileNotFoundError (open of a missing
// one), ValueError (an invalid name, a zero size, a view that does not fit), OSError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "ipckit/error.hpp"

namespace ipckit {

struct SharedMemoryOptions {
  bool track = true;      // removed once its creator and its users have ended
  unsigned mode = 0600;   // permissions of a new named segment
};

struct FileMappingOptions {
  std::size_t size = 0;    // 0: the file's size; larger than the file: grows it
  bool create = false;     // create the file when missing
  bool read_only = false;  // map PROT_READ; buf() must then not be written
};

class SharedMemory {
 public:
  // A closed handle (a placeholder to move a real one into).
  SharedMemory() noexcept;
  SharedMemory(SharedMemory&&) noexcept;
  SharedMemory& operator=(SharedMemory&&) noexcept;
  ~SharedMemory();  // unmaps; never unlinks (tracking does that for tracked segments)

  // A new named segment of `size` bytes, zeroed. Throws FileExistsError if taken.
  static SharedMemory create(std::string_view name, std::size_t size, SharedMemoryOptions options = {});
  // A new named segment under a fresh unique name ("<pid>-<counter>-<random>", see name()).
  static SharedMemory create(std::size_t size, SharedMemoryOptions options = {});
  // An existing named segment. Throws FileNotFoundError if there is none.
  static SharedMemory open(std::string_view name);
  // Opens `name` if it exists, else creates it with `size` bytes; race-free between any
  // number of processes doing the same (exclusive create, open on exists). created()
  // says which happened.
  static SharedMemory open_or_create(std::string_view name, std::size_t size,
                                     SharedMemoryOptions options = {});
  // An anonymous segment (memfd) of `size` bytes, zeroed.
  static SharedMemory anonymous(std::size_t size);
  // Maps the memfd or shm object behind `fd` (e.g. received from another process); takes
  // ownership of `fd`.
  static SharedMemory from_fd(int fd);
  // Maps the file at `path`.
  static SharedMemory map_file(const std::string& path, FileMappingOptions options = {});

  // The segment's bytes (for a named ipckit segment, without its trailer).
  std::span<std::byte> buf() const;
  // The bytes from `offset` as `count` values of T (all that fit when nullopt). Throws
  // ValueError when they do not fit or `offset` is not aligned for T.
  template <class T>
  std::span<T> as(std::size_t offset = 0, std::optional<std::size_t> count = std::nullopt) const;

  std::size_t size() const noexcept;
  // The name as given ("" for an anonymous segment; the path for a file).
  const std::string& name() const noexcept;
  // True when this handle created the segment (create, or open_or_create that created).
  bool created() const noexcept;
  bool closed() const noexcept;
  // The fd behind the mapping (to hand an anonymous segment to another process).
  int fd() const;

  // Unmaps and closes this handle; the segment lives on. Idempotent.
  void close();
  // Removes the name now; handles already open keep working. Throws FileNotFoundError if
  // the name is already gone, ValueError for a segment without a name.
  void unlink();
  // Hands ownership over: the segment is no longer removed when its creator ends, only
  // by unlink(). (Python's track=False.)
  void untrack();

  struct State;  // private to shared_memory.cpp

 private:
  explicit SharedMemory(std::unique_ptr<State> state) noexcept;
  [[noreturn]] static void bad_view(std::size_t offset, std::size_t bytes, std::size_t alignment,
                                    std::size_t size);
  std::unique_ptr<State> state_;
};

template <class T>
std::span<T> SharedMemory::as(std::size_t offset, std::optional<std::size_t> count) const {
  static_assert(std::is_trivially_copyable_v<T>, "shared memory holds only trivially copyable types");
  const auto bytes = buf();
  const std::size_t available = offset <= bytes.size() ? (bytes.size() - offset) / sizeof(T) : 0;
  const std::size_t n = count.value_or(available);
  auto* start = bytes.data() + (offset <= bytes.size() ? offset : 0);
  if (offset > bytes.size() || n > available || reinterpret_cast<std::uintptr_t>(start) % alignof(T) != 0)
    bad_view(offset, n * sizeof(T), alignof(T), bytes.size());
  return {reinterpret_cast<T*>(start), n};
}

}  // namespace ipckit
