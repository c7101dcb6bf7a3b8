#include "sys/file_ops.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "ipckit/error.hpp"
#include "sys/sys_error.hpp"

namespace ipckit::sys {

FileStatus file_status(int fd, std::string_view subject) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_last_error("fstat", subject);
  return {static_cast<std::size_t>(st.st_size), static_cast<std::uint64_t>(st.st_dev),
          static_cast<std::uint64_t>(st.st_ino)};
}

bool fd_writable(int fd, std::string_view subject) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_last_error("fcntl(F_GETFL)", subject);
  return (flags & O_ACCMODE) != O_RDONLY;
}

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return;
  const int err = errno;
  if (err == ENOENT) throw FileNotFoundError(std::error_code(err, std::generic_category()), "unlink", path);
  throw_os_error(err, "unlink", path);
}

UniqueFd shm_open_if_exists(const std::string& os_name) {
  const int fd = ::shm_open(os_name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != ENOENT) throw_last_error("shm_open", os_name);
  return UniqueFd();
}

void replace_fd(int from, int onto, std::string_view subject) {
  for (;;) {
    if (::dup3(from, onto, O_CLOEXEC) >= 0) return;
    if (errno != EINTR && errno != EBUSY) throw_last_error("dup3(O_CLOEXEC)", subject);
  }
}

}  // namespace ipckit::sys
