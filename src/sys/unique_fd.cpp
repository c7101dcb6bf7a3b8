#include "sys/unique_fd.hpp"

#include <unistd.h>

namespace ipckit::sys {

void UniqueFd::reset(int fd) noexcept {
  const int old = std::exchange(fd_, fd);
  // Linux closes the fd even when close() reports EINTR; retrying could close a reused fd.
  if (old >= 0) ::close(old);
}

}  // namespace ipckit::sys
