// objects/sync_layout.hpp — the bytes of every synchronisation object in shared memory.
// Byte-level description for other languages: docs/formats/sync.md. Every struct here is
// placed at the start of a shared mapping (anonymous or a named segment's bytes) and
// static_asserts its size and offsets, because other processes depend on them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ipckit/sync.hpp"
#include "sys/robust_mutex.hpp"

namespace ipckit::detail {

inline constexpr std::uint32_t kObjectMagic = 0x534b5049;  // "IPKS" little-endian
inline constexpr std::uint16_t kLayoutVersion = 1;

enum class ObjectKind : std::uint16_t {
  Lock = 1,
  RLock = 2,
  Semaphore = 3,
  BoundedSemaphore = 4,
  Event = 5,
  Condition = 6,
  Barrier = 7,
  Value = 8,
  Array = 9,
  Queue = 10,  // also SimpleQueue; layout in docs/formats/queue.md
  JoinableQueue = 11,
};

// Where a queue's ring of messages starts, from the start of the object.
inline constexpr std::size_t kQueueDataOffset = 4096;
const char* kind_name(ObjectKind kind) noexcept;

// Takes this process out of every Barrier it has waited on: it ended in order (its
// target returned, or exit()), so the others must not take its end for a death. Called
// by Process's child before it exits with code 0, and at exit().
void leave_barriers() noexcept;

// The first 16 bytes of every object: what it is, and whether it is ready. The creator
// fills the object, then stores `magic` (release) and wakes futex waiters on it; an
// opener waits (futex, bounded) until `magic` is set.
struct ObjectHeader {
  std::atomic<std::uint32_t> magic;
  std::uint16_t kind;
  std::uint16_t version;
  std::uint32_t size;  // bytes of the whole layout, header included
  std::uint32_t reserved;
};
static_assert(sizeof(ObjectHeader) == 16);

// Lock and RLock. What every acquire and release touches (the mutex, `inconsistent`,
// `holder`) shares the first 64-byte cache line.
struct LockLayout {
  ObjectHeader header;                     // 0
  sys::RobustMutex mutex;                  // 16: glibc pthread_mutex_t, robust, shared
  std::atomic<std::uint32_t> inconsistent;  // 56: 1 from a holder's death until recover()
  std::atomic<std::int32_t> holder;         // 60: thread id of the holder (informational)
  std::atomic<std::int32_t> dead_owner;     // 64: thread id of the holder that died
  std::uint32_t reserved;                   // 68
};
static_assert(sizeof(LockLayout) == 72);
static_assert(offsetof(LockLayout, mutex) == 16 && offsetof(LockLayout, inconsistent) == 56 &&
              offsetof(LockLayout, holder) == 60 && offsetof(LockLayout, dead_owner) == 64);

// Value<T> and Array<T>: this header, then the elements at `data_offset` (a multiple of
// 64 and of the element's alignment). ObjectHeader::size covers the elements too.
struct ValueLayout {
  ObjectHeader header;         // 0: kind Value or Array
  std::uint32_t element_size;  // 16: sizeof(T)
  std::uint32_t has_lock;      // 20: 1 when `lock` guards the elements
  std::uint64_t count;         // 24: elements (1 for a Value)
  LockLayout lock;             // 32
  std::uint32_t data_offset;   // 104: from the start of this header
  std::uint32_t alignment;     // 108: alignof(T)
};
static_assert(sizeof(ValueLayout) == 112 && offsetof(ValueLayout, lock) == 32 &&
              offsetof(ValueLayout, data_offset) == 104);

}  // namespace ipckit::detail

namespace ipckit {

struct Semaphore::Layout {
  detail::ObjectHeader header;         // 0
  std::atomic<std::uint32_t> value;    // 16: permits; the futex word
  std::atomic<std::uint32_t> waiters;  // 20: processes/threads asleep (or about to be)
  std::uint32_t initial;               // 24: the value given at creation
  std::uint32_t bounded;               // 28: 1 for a BoundedSemaphore
};
static_assert(sizeof(Semaphore::Layout) == 32 && offsetof(Semaphore::Layout, value) == 16);

struct Event::Layout {
  detail::ObjectHeader header;         // 0
  std::atomic<std::uint32_t> state;    // 16: 0 clear, 1 set; the futex word
  std::atomic<std::uint32_t> waiters;  // 20
};
static_assert(sizeof(Event::Layout) == 24 && offsetof(Event::Layout, state) == 16);

struct Condition::Layout {
  detail::ObjectHeader header;         // 0
  std::atomic<std::uint32_t> sequence;  // 16: +1 per notify; the futex word
  std::atomic<std::uint32_t> waiters;  // 20
  std::uint32_t has_lock;              // 24: 1 when `lock` below is this condition's RLock
  std::uint32_t reserved;              // 28
  detail::LockLayout lock;             // 32: the named form's own RLock
};
static_assert(sizeof(Condition::Layout) == 104 && offsetof(Condition::Layout, lock) == 32);

struct Barrier::Layout {
  static constexpr std::size_t kMaxKnownParties = 64;
  struct Party {
    std::int32_t pid;  // 0: free slot
    std::uint32_t reserved;
    std::uint64_t start_time;  // of that process: the pid names it for good
  };
  detail::ObjectHeader header;        // 0
  sys::RobustMutex mutex;             // 16: guards everything below but `epoch`'s wakes
  std::uint32_t parties;              // 56
  std::uint32_t arrived;              // 60: waiters in the current round
  std::atomic<std::uint32_t> epoch;   // 64: +1 when a round passes, breaks or resets; futex word
  std::uint32_t broken;               // 68: 1 while broken
  std::uint32_t known;                // 72: used slots of `known_parties`
  std::uint32_t last_break;           // 76: the epoch a break ended (its waiters throw)
  Party known_parties[kMaxKnownParties];  // 80: processes that have waited on it
};
static_assert(sizeof(Barrier::Layout::Party) == 16);
static_assert(offsetof(Barrier::Layout, epoch) == 64 && offsetof(Barrier::Layout, known_parties) == 80);

}  // namespace ipckit
