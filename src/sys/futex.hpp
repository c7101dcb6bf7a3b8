// sys/futex.hpp — futex wait and wake on a 32-bit word in memory shared between processes.
//
// Never FUTEX_PRIVATE_FLAG: the words live in MAP_SHARED memory and waiters sit in other
// processes (abseil sets the flag because its objects stay in one process; ours do not).
#pragma once

#include <atomic>
#include <cstdint>

#include "sys/deadline.hpp"

namespace ipckit::sys {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex word must be a lock-free 32-bit atomic");

enum class FutexWait {
  Woken,     // woken, or a signal interrupted the wait: the caller re-checks the word
  Changed,   // *word != expected when the call began
  TimedOut,  // the deadline passed
};

// Sleeps while *word == expected, until futex_wake, the deadline (absolute, on
// CLOCK_MONOTONIC) or a signal. Throws OSError for anything else the kernel reports.
FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     const Deadline& deadline);
// Wakes up to `count` waiters; returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;
inline constexpr int kWakeAll = 0x7fffffff;

}  // namespace ipckit::sys
