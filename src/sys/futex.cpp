#include "sys/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "sys/sys_error.hpp"

namespace ipckit::sys {

FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     const Deadline& deadline) {
  // FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (the Deadline's clock),
  // so an interrupted wait resumes against the same end without recomputing it.
  timespec at{};
  const timespec* timeout = nullptr;
  if (!deadline.is_never()) {
    const auto since_epoch = deadline.time_point().time_since_epoch();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count();
    at.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    at.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    timeout = &at;
  }
  // The kernel only reads the word; const_cast is for the syscall's signature.
  auto* address = const_cast<std::atomic<std::uint32_t>*>(&word);
  const long r = ::syscall(SYS_futex, address, FUTEX_WAIT_BITSET, expected, timeout, nullptr,
                           FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return FutexWait::Woken;
  switch (errno) {
    case EAGAIN: return FutexWait::Changed;
    case EINTR: return FutexWait::Woken;
    case ETIMEDOUT: return FutexWait::TimedOut;
    default: throw_last_error("futex(FUTEX_WAIT_BITSET)", "shared word");
  }
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  auto* address = const_cast<std::atomic<std::uint32_t>*>(&word);
  const long r = ::syscall(SYS_futex, address, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

}  // namespace ipckit::sys
