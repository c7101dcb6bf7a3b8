// sys/epoll.hpp — an epoll set and a timerfd: one pollable fd standing for many.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sys/deadline.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// An epoll instance watching fds for readability (level-triggered), each under a key.
// Its own fd is readable while any watched fd is: poll it, wait() on it, or take().
class Epoll {
 public:
  explicit Epoll(std::string subject);
  int fd() const noexcept { return fd_.get(); }
  void add(int fd, std::uint64_t key);
  void remove(int fd) noexcept;
  // The keys of ready fds, at most keys.size(), waiting until the deadline for the first
  // (Deadline::now(): only check). Returns how many.
  std::size_t take(std::span<std::uint64_t> keys, const Deadline& deadline);

 private:
  UniqueFd fd_;
  std::string subject_;
};

// A timerfd on CLOCK_MONOTONIC: readable once its deadline has passed, until disarmed or
// re-armed.
class Timer {
 public:
  explicit Timer(std::string subject);
  int fd() const noexcept { return fd_.get(); }
  // Fires at `deadline`; never() disarms.
  void arm(const Deadline& deadline);

 private:
  UniqueFd fd_;
  std::string subject_;
};

}  // namespace ipckit::sys
