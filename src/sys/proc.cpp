#include "sys/proc.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ext/stdio_sync_filebuf.h>
#include <stdio_ext.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "sys/sys_error.hpp"

static_assert(ipckit::sys::kSigKill == SIGKILL && ipckit::sys::kSigTerm == SIGTERM);

namespace ipckit::sys {
namespace {

// Raw system calls: glibc 2.36 (Debian 12) declares pidfd_open in <sys/pidfd.h> without
// extern "C", so C++ cannot link against it (fixed in glibc 2.37).
int sys_pidfd_open(int pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int sys_pidfd_send_signal(int pidfd, int signal) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

}  // namespace

namespace {
// getpid() is a system call since glibc 2.25; the pid is cached and forgotten in a child
// of fork() (pthread_atfork), as the thread id is below.
std::atomic<int> cached_pid{0};
void forget_pid() noexcept { cached_pid.store(0, std::memory_order_relaxed); }
}  // namespace

int current_pid() noexcept {
  int pid = cached_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    static const bool registered = (::pthread_atfork(nullptr, nullptr, forget_pid), true);
    static_cast<void>(registered);
    pid = ::getpid();
    cached_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}
int parent_pid() noexcept { return ::getppid(); }

int fork_process(std::string_view subject) {
  const pid_t pid = ::fork();
  if (pid < 0) throw_last_error("fork", subject);
  return pid;
}

void flush_standard_streams() noexcept {
  // With sync_with_stdio (the default), libstdc++'s std::cout has no buffer of its own:
  // it writes straight into stdout's FILE, which __fpending sees.
  if (dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(std::cout.rdbuf()) == nullptr) std::cout.flush();
  if (__fpending(stdout) > 0) std::fflush(stdout);
  if (__fpending(stderr) > 0) std::fflush(stderr);
}

void exit_immediately(int code) noexcept { ::_exit(code); }

UniqueFd open_pidfd(int pid, std::string_view subject) {
  const int fd = sys_pidfd_open(pid);  // pidfds are always close-on-exec
  if (fd < 0) throw_last_error("pidfd_open(" + std::to_string(pid) + ")", subject);
  return UniqueFd(fd);
}

UniqueFd try_open_pidfd(int pid) noexcept { return UniqueFd(sys_pidfd_open(pid)); }

std::optional<int> reap_child(int pid, bool block, std::string_view subject) {
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    if (r == pid) break;
    if (r == 0) return std::nullopt;
    if (errno == EINTR) continue;
    throw_last_error("waitpid(" + std::to_string(pid) + ")", subject);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return std::nullopt;  // not reachable without WUNTRACED/WCONTINUED
}

void signal_pidfd(int pidfd, int signal, std::string_view subject) {
  if (sys_pidfd_send_signal(pidfd, signal) == 0 || errno == ESRCH) return;
  throw_last_error("pidfd_send_signal(" + std::to_string(signal) + ")", subject);
}

void signal_pid(int pid, int signal) noexcept { ::kill(pid, signal); }

bool set_parent_death_signal(int signal, int expected_parent) noexcept {
  ::prctl(PR_SET_PDEATHSIG, signal);
  // The parent may have died between fork() and prctl(); then we were re-parented.
  return ::getppid() == expected_parent;
}

void signal_process_group(int pgid, int signal) noexcept {
  if (pgid > 1) ::kill(-pgid, signal);
}

std::optional<std::uint64_t> process_start_time(int pid) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char text[1024];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  text[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after the
  // last ')' are plain. State is field 3, start time field 22.
  const char* p = std::strrchr(text, ')');
  if (p == nullptr || p[1] != ' ') return std::nullopt;
  const char state = p[2];
  if (state == 'Z' || state == 'X' || state == 'x') return std::nullopt;
  p += 2;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return std::nullopt;
    ++p;
  }
  return std::strtoull(p, nullptr, 10);
}

bool process_alive(int pid, std::uint64_t start_time) noexcept {
  const auto now = process_start_time(pid);
  return now && *now == start_time;
}

std::uint64_t own_start_time() noexcept {
  // Per process: a forked child has its own (the cache is keyed by pid).
  static thread_local int for_pid = 0;
  static thread_local std::uint64_t cached = 0;
  const int pid = current_pid();
  if (for_pid != pid) {
    cached = process_start_time(pid).value_or(0);
    for_pid = pid;
  }
  return cached;
}

namespace {
thread_local int cached_tid = 0;
// In a forked child the thread that forked has a new id: forget the cached one.
void forget_tid() noexcept { cached_tid = 0; }
}  // namespace

int current_tid() noexcept {
  if (cached_tid == 0) {
    static const bool registered = (::pthread_atfork(nullptr, nullptr, forget_tid), true);
    static_cast<void>(registered);
    cached_tid = ::gettid();
  }
  return cached_tid;
}

int usable_cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
  }
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

}  // namespace ipckit::sys
