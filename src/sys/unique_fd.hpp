// sys/unique_fd.hpp — an owned file descriptor, closed on destruction.
#pragma once

#include <utility>

namespace ipckit::sys {

// Owns one fd. Move-only; not synchronised (guard it like any other member).
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current fd (errors from close are ignored: the fd is gone either way,
  // see close(2) "Dealing with error returns from close()").
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace ipckit::sys
