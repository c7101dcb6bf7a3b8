// sys/inotify.hpp — inotify(7) on one directory, for the removal of its entries (how the
// shared memory tracker learns that a name it waits on was removed by someone else).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// The directory POSIX shared memory names live in (glibc's shm_open uses it).
inline constexpr std::string_view kShmDirectory = "/dev/shm";

// An inotify fd (non-blocking, close-on-exec) reporting entries of `directory` deleted or
// moved away. Throws OSError.
UniqueFd watch_removals(const std::string& directory);

// Reads every queued event and appends the names of removed entries to `names`. Returns
// false when the kernel's queue overflowed (events were lost: re-check everything).
bool read_removals(int fd, std::vector<std::string>& names);

}  // namespace ipckit::sys
