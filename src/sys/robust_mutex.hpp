// sys/robust_mutex.hpp — a glibc pthread_mutex_t in shared memory: process-shared and
// robust, so that the kernel hands it to the next locker, flagged, when its holder dies.
//
// The storage is a pthread_mutex_t (40 bytes on x86-64 glibc); its first word is the lock
// word: 0 when free, else the holder's thread id, with FUTEX_WAITERS (bit 31) and
// FUTEX_OWNER_DIED (bit 30) flags (Linux's robust futex protocol, see
// Documentation/locking/robust-futex-ABI.rst). Code outside sys/ treats it as opaque.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sys/deadline.hpp"

namespace ipckit::sys {

inline constexpr std::size_t kRobustMutexSize = 40;

struct alignas(8) RobustMutex {
  std::byte storage[kRobustMutexSize];
};

enum class MutexLock {
  Acquired,
  OwnerDied,       // acquired; the previous holder died holding it (EOWNERDEAD)
  TimedOut,        // or busy, for try_lock
  NotRecoverable,  // a holder that got OwnerDied released it without marking it consistent
};

// Initialises the mutex in place (process-shared, robust; recursive if asked).
void robust_mutex_init(RobustMutex& m, bool recursive);
// Blocks until acquired or the deadline passes (pthread_mutex_clocklock, CLOCK_MONOTONIC,
// in slices of 100 ms: a waiter whose wake-up died with the holder tries again).
MutexLock robust_mutex_lock(RobustMutex& m, const Deadline& deadline);
MutexLock robust_mutex_try_lock(RobustMutex& m);
// False (EPERM) when the calling thread does not hold it: glibc checks robust mutexes.
bool robust_mutex_unlock(RobustMutex& m);
// After OwnerDied: the state it guards is consistent again; the mutex works normally.
void robust_mutex_consistent(RobustMutex& m);
// A racy look at the lock word: true when nobody holds it (for spinning before locking).
bool robust_mutex_looks_free(const RobustMutex& m) noexcept;
// True when the calling thread holds it.
bool robust_mutex_held_by_caller(const RobustMutex& m) noexcept;
// The holder's thread id as glibc records it (valid right after locking it).
int robust_mutex_owner(const RobustMutex& m) noexcept;
// How many times the holder has locked a recursive mutex (0 when not held).
unsigned robust_mutex_depth(const RobustMutex& m) noexcept;

}  // namespace ipckit::sys
