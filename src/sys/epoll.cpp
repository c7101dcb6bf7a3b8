#include "sys/epoll.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "sys/sys_error.hpp"

namespace ipckit::sys {

Epoll::Epoll(std::string subject) : fd_(::epoll_create1(EPOLL_CLOEXEC)), subject_(std::move(subject)) {
  if (!fd_) throw_last_error("epoll_create1", subject_);
}

void Epoll::add(int fd, std::uint64_t key) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = key;
  if (::epoll_ctl(fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw_last_error("epoll_ctl(ADD)", subject_);
}

void Epoll::remove(int fd) noexcept { ::epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

std::size_t Epoll::take(std::span<std::uint64_t> keys, const Deadline& deadline) {
  constexpr std::size_t kBatch = 64;
  epoll_event events[kBatch];
  const int capacity = static_cast<int>(std::min(keys.size(), kBatch));
  for (;;) {
    int timeout_ms = -1;
    if (!deadline.is_never()) {
      // Round up, so that a wait never ends just before its deadline.
      const auto left = deadline.remaining();
      timeout_ms = static_cast<int>(std::min<std::int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(left).count(), 1 << 30));
    }
    const int n = ::epoll_wait(fd_.get(), events, capacity, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_last_error("epoll_wait", subject_);
    }
    for (int i = 0; i < n; ++i) keys[static_cast<std::size_t>(i)] = events[i].data.u64;
    if (n > 0 || deadline.expired() || timeout_ms == 0) return static_cast<std::size_t>(n);
  }
}

Timer::Timer(std::string subject)
    : fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)), subject_(std::move(subject)) {
  if (!fd_) throw_last_error("timerfd_create", subject_);
}

void Timer::arm(const Deadline& deadline) {
  itimerspec spec{};
  if (!deadline.is_never()) {
    // steady_clock is CLOCK_MONOTONIC: its time_since_epoch is the timerfd's clock.
    const auto at = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
    spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;  // 0 would disarm
  }
  // Re-arming also clears an expiry not yet read.
  if (::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0)
    throw_last_error("timerfd_settime", subject_);
}

}  // namespace ipckit::sys
