#include "sys/daemon.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "sys/sys_error.hpp"

namespace ipckit::sys {
namespace {

constexpr int kKeptFd = 3;

// close_range(2) (Linux 5.9); falls back to closing one by one when the kernel lacks it.
void close_from(int first) noexcept {
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, 0U) == 0) return;
  const long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd < (max > 0 ? max : 1024); ++fd) ::close(static_cast<int>(fd));
}

}  // namespace

bool fork_detached(std::string_view subject) {
  const pid_t middle = ::fork();
  if (middle < 0) throw_last_error("fork", subject);
  if (middle == 0) {
    // The intermediate child: only async-signal-safe calls until it exits.
    ::setsid();
    const pid_t helper = ::fork();
    if (helper == 0) return true;
    ::_exit(helper < 0 ? (errno & 0xff) : 0);
  }
  int status = 0;
  for (;;) {
    if (::waitpid(middle, &status, 0) == middle) break;
    if (errno == EINTR) continue;
    if (errno == ECHILD) return false;  // SIGCHLD ignored: the kernel reaped it for us
    throw_last_error("waitpid(" + std::to_string(middle) + ")", subject);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    throw_os_error(WEXITSTATUS(status), "fork (second of a double fork)", subject);
  if (!WIFEXITED(status)) throw_os_error(ECHILD, "fork (the intermediate child was killed)", subject);
  return false;
}

int isolate_fds(int keep) noexcept {
  // Park `keep` above the standard fds first: it may itself be 0, 1 or 2.
  int parked = ::fcntl(keep, F_DUPFD_CLOEXEC, kKeptFd);
  if (parked < 0) return -1;
  const int null = ::open("/dev/null", O_RDWR);  // lands on the lowest free number
  if (null >= 0) {
    for (int fd = 0; fd <= 2; ++fd)
      if (fd != null) ::dup2(null, fd);
    if (null > 2 && null != parked) ::close(null);
  }
  if (parked != kKeptFd) {
    if (::dup3(parked, kKeptFd, O_CLOEXEC) < 0) return -1;
    parked = kKeptFd;
  }
  close_from(kKeptFd + 1);
  return parked;
}

void drop_shared_mappings() noexcept {
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string text;
  char chunk[8192];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fd);
  // Lines are "start-end perms offset dev inode path"; perms is e.g. "rw-s".
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> shared;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    char* rest = nullptr;
    const auto start = static_cast<std::uintptr_t>(std::strtoull(line.c_str(), &rest, 16));
    if (rest == nullptr || *rest != '-') continue;
    const auto stop = static_cast<std::uintptr_t>(std::strtoull(rest + 1, &rest, 16));
    if (rest == nullptr || rest[0] != ' ' || line.size() < static_cast<std::size_t>(rest - line.c_str()) + 5)
      continue;
    if (rest[4] == 's') shared.emplace_back(start, stop);
  }
  for (const auto& [start, stop] : shared) ::munmap(reinterpret_cast<void*>(start), stop - start);
}

}  // namespace ipckit::sys
