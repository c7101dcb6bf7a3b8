// objects/shm_trailer.hpp — the trailer at the end of every named ipckit shared memory
// segment, and the operations on it that SharedMemory and the tracker process share.
//
// Byte layout (offsets, sizes, states, who writes what when):
// docs/formats/shared_memory.md. Change one, change the other.
//
// Private to src/objects/ (shared_memory.cpp, shm_tracker.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sys/deadline.hpp"
#include "sys/mapping.hpp"
#include "sys/robust_mutex.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::shm {

inline constexpr std::size_t kAlignment = 64;                // the trailer starts at align_up(size, 64)
inline constexpr std::uint64_t kMagic = 0x316d68736b637069;  // "ipckshm1", little-endian
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kSlotCount = 64;
inline constexpr std::string_view kOsPrefix = "/ipckit-";

enum class State : std::uint32_t {
  Live = 1,     // the name exists (or is being removed by the holder of the lock)
  Removed = 2,  // the name has been removed: opening the segment must fail
};

// A process that opened the segment: written and read only under the trailer's mutex.
// Written start_time, handles, then pid; cleared pid first: a process killed halfway
// leaves either an empty slot (pid 0) or one that names no living process.
struct Slot {
  std::int32_t pid;          // 0: free
  std::uint32_t handles;     // open handles of that process
  std::uint64_t start_time;  // the process's start time (/proc/<pid>/stat field 22)
};
static_assert(sizeof(Slot) == 16);

struct Trailer {
  std::atomic<std::uint64_t> magic;  // kMagic once initialised (stored last, release)
  std::uint32_t version;             // kVersion
  std::uint32_t trailer_size;        // sizeof(Trailer)
  std::uint64_t size;                // the user's size in bytes
  std::int32_t creator_pid;
  std::uint32_t slot_count;  // kSlotCount
  std::uint64_t creator_start_time;
  std::atomic<std::uint32_t> state;    // State; written under `mutex`
  std::atomic<std::uint32_t> tracked;  // 1 tracked, 0 untracked; written under `mutex`
  sys::RobustMutex mutex;              // guards state, tracked and slots
  std::byte reserved[40];
  Slot slots[kSlotCount];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
              std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4);
static_assert(offsetof(Trailer, version) == 8);
static_assert(offsetof(Trailer, trailer_size) == 12);
static_assert(offsetof(Trailer, size) == 16);
static_assert(offsetof(Trailer, creator_pid) == 24);
static_assert(offsetof(Trailer, slot_count) == 28);
static_assert(offsetof(Trailer, creator_start_time) == 32);
static_assert(offsetof(Trailer, state) == 40);
static_assert(offsetof(Trailer, tracked) == 44);
static_assert(offsetof(Trailer, mutex) == 48);
static_assert(offsetof(Trailer, slots) == 128);
static_assert(sizeof(Trailer) == 1152 && sizeof(Trailer) % kAlignment == 0);

constexpr std::size_t align_up(std::size_t n) noexcept {
  return (n + kAlignment - 1) / kAlignment * kAlignment;
}
constexpr std::size_t file_size_for(std::size_t size) noexcept { return align_up(size) + sizeof(Trailer); }

// Holds the trailer's robust mutex. A previous holder that died is no error here: every
// write under the lock leaves the table readable (see Slot), so the lock is marked
// consistent and used.
class TrailerLock {
 public:
  explicit TrailerLock(Trailer& trailer);
  TrailerLock(const TrailerLock&) = delete;
  TrailerLock& operator=(const TrailerLock&) = delete;
  ~TrailerLock();

 private:
  Trailer& trailer_;
};

// The attach table, under the lock.
// Adds one handle of this process; false when every slot holds a living process.
bool attach(Trailer& t, int pid, std::uint64_t start_time);
// Removes one handle of this process.
void detach(Trailer& t, int pid, std::uint64_t start_time);
// Frees the slots of processes that have ended; returns the ones still running.
struct User {
  int pid;
  std::uint64_t start_time;
};
std::size_t live_users(Trailer& t, std::span<User, kSlotCount> out);
bool creator_alive(const Trailer& t);
// Removes the name (shm_unlink, quietly), then marks the segment Removed. The order
// matters: Removed always means that the name is gone, so whoever finds it may stop; a
// process killed between the two leaves a Live segment without a name, which is harmless.
void remove_name(Trailer& t, const std::string& os_name) noexcept;
// For a closing user: removes the name if the segment is tracked and live, its creator
// has ended and no user runs any more. True when it did.
bool remove_if_abandoned(Trailer& t, const std::string& os_name);

enum class TrailerCheck {
  Valid,    // an initialised trailer that agrees with the file's size
  NotYet,   // no magic yet: a creator may be initialising it
  Invalid,  // not an ipckit segment (or a version this code does not read)
};
// Looks for the trailer at the end of a whole mapped segment; `trailer` is set when Valid.
TrailerCheck find_trailer(std::span<std::byte> file, Trailer*& trailer) noexcept;

// A named ipckit segment, opened and mapped whole, its trailer checked.
struct OpenedSegment {
  sys::UniqueFd fd;
  sys::Mapping mapping;
  Trailer* trailer = nullptr;
  std::size_t size = 0;  // the user's bytes
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
};
// Maps the segment behind `fd` whole once it holds a valid trailer, waiting until
// `deadline` for a creator that is between shm_open and setting the magic. nullopt when
// the deadline passed first; ValueError when the file holds something else.
std::optional<OpenedSegment> map_segment(sys::UniqueFd fd, const std::string& os_name,
                                         const sys::Deadline& deadline);
// Opens `os_name`, waits until `deadline` for its creator to finish initialising it, and
// checks the trailer. Throws FileNotFoundError (no such name), ValueError (not an ipckit
// segment, or its creator did not finish in time), OSError.
OpenedSegment open_segment(const std::string& os_name, const sys::Deadline& deadline);
// How long open() waits for a creator that is between shm_open and initialisation.
inline constexpr auto kCreationGrace = std::chrono::seconds(1);

}  // namespace ipckit::shm
