#include "sys/inotify.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include "sys/sys_error.hpp"

namespace ipckit::sys {

UniqueFd watch_removals(const std::string& directory) {
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) throw_last_error("inotify_init1", directory);
  if (::inotify_add_watch(fd.get(), directory.c_str(), IN_DELETE | IN_MOVED_FROM) < 0)
    throw_last_error("inotify_add_watch(IN_DELETE | IN_MOVED_FROM)", directory);
  return fd;
}

bool read_removals(int fd, std::vector<std::string>& names) {
  alignas(inotify_event) char events[4096];
  bool complete = true;
  for (;;) {
    const ssize_t n = ::read(fd, events, sizeof events);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return complete;  // EAGAIN: nothing more queued
    for (ssize_t at = 0; at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(events + at);
      if ((e->mask & IN_Q_OVERFLOW) != 0) complete = false;
      if (e->len > 0) names.emplace_back(e->name);
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
}

}  // namespace ipckit::sys
