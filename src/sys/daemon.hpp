// sys/daemon.hpp — helper processes that are nobody's child: the double fork, and the
// clean-up such a helper does before it starts its own work.
//
// The helper is a fork of its starter, not an exec: it shares no lock with it (fork copies
// only the calling thread, and the intermediate process is single-threaded), but it
// inherits every fd and mapping the starter had. It drops them with isolate_fds() and
// drop_shared_mappings() first, or it would hold a pipe open (a reader would never see end
// of stream) or keep a deleted segment's memory alive.
#pragma once

#include <string_view>

namespace ipckit::sys {

// Starts a process that is not a child of the caller: fork(); the child calls setsid()
// (leaving the caller's session, so a terminal's SIGINT/SIGHUP does not reach it), forks
// again and exits; the caller reaps that intermediate child before returning.
// Returns true in the detached grandchild, which must end with exit_immediately(), and
// false in the caller. Throws OSError when either fork fails.
bool fork_detached(std::string_view subject);

// In a detached helper: fds 0, 1 and 2 read and write /dev/null, `keep` is moved to fd 3
// (close-on-exec), and every other fd is closed. Returns 3, or -1 if `keep` could not be
// kept. Never throws.
int isolate_fds(int keep) noexcept;

// Unmaps every MAP_SHARED mapping of this process (as listed in /proc/self/maps). For a
// helper that must not keep its starter's shared memory alive. Never throws.
void drop_shared_mappings() noexcept;

}  // namespace ipckit::sys
