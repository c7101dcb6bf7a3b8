// sys/file_ops.hpp — what SharedMemory needs to know about, and do to, the files behind
// its mappings: identity and size in one fstat, access mode, removal by path, and
// replacing what an fd number refers to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sys/unique_fd.hpp"

namespace ipckit::sys {

struct FileStatus {
  std::size_t size = 0;
  std::uint64_t device = 0;  // st_dev and st_ino: which file, for good while it is open
  std::uint64_t inode = 0;
};
// fstat(2). Throws OSError naming `subject`.
FileStatus file_status(int fd, std::string_view subject);

// True when `fd` was opened for writing (O_RDWR or O_WRONLY), by fcntl(F_GETFL).
bool fd_writable(int fd, std::string_view subject);

// unlink(2) of a path: throws FileNotFoundError when there is none, else OSError.
void remove_file(const std::string& path);

// shm_open(O_RDWR) of an existing name; an invalid fd when there is none (ENOENT), so
// that code that expects names to vanish (the shared memory tracker) does not throw for
// it. Throws OSError for anything else.
UniqueFd shm_open_if_exists(const std::string& os_name);

// dup3(from, onto, O_CLOEXEC): `onto` now refers to what `from` does, atomically for
// other threads using the number `onto`; `from` stays open. Throws OSError.
void replace_fd(int from, int onto, std::string_view subject);

}  // namespace ipckit::sys
