// sys/deadline.hpp — an absolute point on the monotonic clock, or never.
//
// Every timed wait in ipckit turns its relative timeout into a Deadline once, then
// recomputes what remains after each spurious or partial wake-up, so retries never
// stretch the total wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace ipckit::sys {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux

  static Deadline never() noexcept { return Deadline(Clock::time_point::max()); }
  static Deadline now() noexcept { return Deadline(Clock::now()); }
  // Saturates: a huge timeout is the same as never. A negative one is already expired.
  static Deadline after(std::chrono::nanoseconds timeout) noexcept {
    const auto start = Clock::now();
    if (timeout <= std::chrono::nanoseconds::zero()) return Deadline(start);
    if (timeout >= Clock::time_point::max() - start) return never();
    return Deadline(start + timeout);
  }

  // after(*timeout), or never() without one (the timed and untimed forms of a call).
  static Deadline within(std::optional<std::chrono::nanoseconds> timeout) noexcept {
    return timeout ? after(*timeout) : never();
  }

  bool is_never() const noexcept { return at_ == Clock::time_point::max(); }
  bool expired() const noexcept { return !is_never() && Clock::now() >= at_; }
  // Time left, never negative; meaningless when is_never().
  std::chrono::nanoseconds remaining() const noexcept {
    const auto left = at_ - Clock::now();
    return left > Clock::duration::zero()
               ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
               : std::chrono::nanoseconds::zero();
  }
  Clock::time_point time_point() const noexcept { return at_; }

 private:
  explicit Deadline(Clock::time_point at) noexcept : at_(at) {}
  Clock::time_point at_;
};

}  // namespace ipckit::sys
