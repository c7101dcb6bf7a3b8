// sys/proc.hpp — processes: fork, pidfds, reaping, signals to children.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "sys/deadline.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// getpid(), cached (and forgotten in a child of fork()).
int current_pid() noexcept;
int parent_pid() noexcept;

// fork(2). Returns 0 in the child, the child's pid in the parent; throws OSError.
int fork_process(std::string_view subject);
// Flushes what stdout, stderr and std::cout hold, touching nothing that holds nothing:
// after fork every page a process writes is copied, so an idle flush is not free.
void flush_standard_streams() noexcept;
// _exit(2): ends the process without running atexit handlers or static destructors.
[[noreturn]] void exit_immediately(int code) noexcept;

// pidfd_open(2): an fd that becomes readable when `pid` ends. Throws OSError.
UniqueFd open_pidfd(int pid, std::string_view subject);
// Like open_pidfd, but returns an invalid fd when the process no longer exists.
UniqueFd try_open_pidfd(int pid) noexcept;

// Reaps the child `pid` (waitpid). With `block` false, returns nullopt while it runs.
// Returns Python's exit code: the exit status, or minus the signal number that killed it.
// Throws OSError (ECHILD: not our child, or already reaped).
std::optional<int> reap_child(int pid, bool block, std::string_view subject);

// Sends `signal` through the pidfd, so it can never hit a recycled pid. A process that
// has already ended is not an error.
void signal_pidfd(int pidfd, int signal, std::string_view subject);

// kill(2), for a child that has no pidfd yet (it cannot be reaped behind our back).
void signal_pid(int pid, int signal) noexcept;
// kill(-pgid): every process of the group. A group with no process left is not an error.
void signal_process_group(int pgid, int signal) noexcept;

// Asks the kernel to send `signal` to this process when the thread that forked it exits.
// Returns false if the parent `expected_parent` is already gone.
bool set_parent_death_signal(int signal, int expected_parent) noexcept;

// When process `pid` started (clock ticks after boot, /proc/<pid>/stat field 22): with
// the pid it names one process for good. nullopt when no such process is running (a
// zombie has ended).
std::optional<std::uint64_t> process_start_time(int pid) noexcept;
// True while `pid` runs and is the process that started at `start_time`.
bool process_alive(int pid, std::uint64_t start_time) noexcept;
// This process's start time (computed once).
std::uint64_t own_start_time() noexcept;
// This thread's id (gettid), cached per thread and forgotten across fork.
int current_tid() noexcept;

// CPUs this process may run on (sched_getaffinity), at least 1.
int usable_cpu_count() noexcept;

// Signal numbers callers outside sys/ name.
inline constexpr int kSigKill = 9;
inline constexpr int kSigTerm = 15;

}  // namespace ipckit::sys
