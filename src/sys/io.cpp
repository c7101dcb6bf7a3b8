#include "sys/io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>
#include <vector>

namespace ipckit::sys {
namespace {

constexpr std::size_t kMaxParts = 8;

// Fills `iov` from `parts`; returns the count (at most kMaxParts).
std::size_t to_iovec(std::span<const ConstBytes> parts, iovec (&iov)[kMaxParts]) noexcept {
  std::size_t n = 0;
  for (const auto& part : parts) {
    if (n == kMaxParts) break;
    if (part.empty()) continue;
    // writev takes a non-const base pointer but does not write through it.
    iov[n].iov_base = const_cast<std::byte*>(part.data());
    iov[n].iov_len = part.size();
    ++n;
  }
  return n;
}

// ppoll's timeout for what remains of `deadline`; nullptr when never.
const timespec* remaining_timespec(const Deadline& deadline, timespec& storage) noexcept {
  if (deadline.is_never()) return nullptr;
  const auto left = deadline.remaining().count();
  storage.tv_sec = static_cast<time_t>(left / 1'000'000'000);
  storage.tv_nsec = static_cast<long>(left % 1'000'000'000);
  return &storage;
}

}  // namespace

std::pair<UniqueFd, UniqueFd> socket_pair(std::string_view subject) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw_last_error("socketpair(AF_UNIX, SOCK_STREAM)", subject);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::pair<UniqueFd, UniqueFd> make_pipe(std::string_view subject, bool nonblocking) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) != 0) throw_last_error("pipe2", subject);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool is_socket(int fd) noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void shutdown_socket(int fd, Shutdown how) noexcept {
  const int h = how == Shutdown::Read ? SHUT_RD : how == Shutdown::Write ? SHUT_WR : SHUT_RDWR;
  ::shutdown(fd, h);  // ENOTCONN after the peer left is the state we want anyway
}

void set_nonblocking(int fd, bool on, std::string_view subject) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_last_error("fcntl(F_GETFL)", subject);
  const int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags && ::fcntl(fd, F_SETFL, want) != 0)
    throw_last_error("fcntl(F_SETFL, O_NONBLOCK)", subject);
}

IoResult read_some(int fd, std::span<std::byte> into) noexcept {
  for (;;) {
    const ssize_t n = ::read(fd, into.data(), into.size());
    if (n >= 0) return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR) return {0, errno};
  }
}

IoResult read_some_nowait(int fd, std::span<std::byte> into, bool socket) noexcept {
  for (;;) {
    const ssize_t n = socket ? ::recv(fd, into.data(), into.size(), MSG_DONTWAIT)
                             : ::read(fd, into.data(), into.size());
    if (n >= 0) return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR) return {0, errno};
  }
}

IoResult write_some(int fd, std::span<const ConstBytes> parts, bool socket) noexcept {
  iovec iov[kMaxParts];
  const std::size_t count = to_iovec(parts, iov);
  if (count == 0) return {0, 0};
  if (socket && count == 1) {  // send() skips sendmsg's iovec import: cheaper per message
    for (;;) {
      const ssize_t n = ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      if (n >= 0) return {static_cast<std::size_t>(n), 0};
      if (errno != EINTR) return {0, errno};
    }
  }
  if (socket) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    for (;;) {
      const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (n >= 0) return {static_cast<std::size_t>(n), 0};
      if (errno != EINTR) return {0, errno};
    }
  }
  // A pipe or FIFO: keep SIGPIPE from killing the process without touching its
  // disposition (process-wide state). Block it in this thread, write, and if the write
  // raised one, take it off the pending set before unblocking. Technique: "Handling
  // SIGPIPE without a global handler", as done by OpenSSL's and curl's socket layers.
  sigset_t pipe_only, old_mask, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  sigpending(&pending);
  const bool already_pending = sigismember(&pending, SIGPIPE) == 1;
  IoResult result;
  for (;;) {
    const ssize_t n = ::writev(fd, iov, static_cast<int>(count));
    if (n >= 0) {
      result = {static_cast<std::size_t>(n), 0};
      break;
    }
    if (errno != EINTR) {
      result = {0, errno};
      break;
    }
  }
  if (result.error == EPIPE && !already_pending) {
    const timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return result;
}

bool wait_readable(int fd, const Deadline& deadline) {
  PollItem item{fd, false};
  return poll_readable(std::span(&item, 1), deadline) == 1;
}

bool wait_writable(int fd, const Deadline& deadline) {
  pollfd item{fd, POLLOUT, 0};
  for (;;) {
    timespec storage{};
    const int n = ::ppoll(&item, 1, remaining_timespec(deadline, storage), nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_last_error("ppoll(POLLOUT)", "fd " + std::to_string(fd));
    }
    if (n > 0) return true;
    if (deadline.expired()) return false;
  }
}

namespace {

// ppoll() until at least one fd has events (for POLLIN that includes hang-up, error and
// POLLNVAL: a closed fd counts, so that the caller's next call reports it) or the
// deadline passes; a coarse timer that fires early is waited out. Returns how many.
std::size_t ppoll_until(std::span<pollfd> fds, const Deadline& deadline) {
  for (;;) {
    timespec storage{};
    const int n = ::ppoll(fds.data(), fds.size(), remaining_timespec(deadline, storage), nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_last_error("ppoll", std::to_string(fds.size()) + " fds");
    }
    if (n > 0 || deadline.expired()) return static_cast<std::size_t>(n);
  }
}

}  // namespace

std::size_t poll_readable(std::span<PollItem> items, const Deadline& deadline) {
  std::vector<pollfd> fds(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) fds[i] = {items[i].fd, POLLIN, 0};  // fd < 0: ignored
  const std::size_t ready = ppoll_until(fds, deadline);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].ready = fds[i].revents != 0;
  return ready;
}

std::size_t poll_events(std::span<PollEvent> items, const Deadline& deadline) {
  std::vector<pollfd> fds(items.size());
  for (std::size_t i = 0; i < items.size(); ++i)
    fds[i] = {items[i].fd, static_cast<short>(items[i].write ? POLLOUT : POLLIN), 0};
  const std::size_t ready = ppoll_until(fds, deadline);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].ready = fds[i].revents != 0;
  return ready;
}

}  // namespace ipckit::sys
