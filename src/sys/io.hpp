// sys/io.hpp — fds that carry bytes: socket pairs, pipes, reads, vectored writes, poll.
//
// Every fd made here has FD_CLOEXEC set atomically at creation. Writes never raise
// SIGPIPE: sockets use MSG_NOSIGNAL, other fds block SIGPIPE in the calling thread for
// the duration of the write and consume the one it raised.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

#include "sys/deadline.hpp"
#include "sys/sys_error.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::sys {

using ConstBytes = std::span<const std::byte>;

// AF_UNIX SOCK_STREAM pair. Throws OSError naming `subject`.
std::pair<UniqueFd, UniqueFd> socket_pair(std::string_view subject);
// pipe2(): first is the read end, second the write end.
std::pair<UniqueFd, UniqueFd> make_pipe(std::string_view subject, bool nonblocking = false);

bool is_socket(int fd) noexcept;
enum class Shutdown { Read, Write, Both };
// shutdown(2); a socket that is not connected any more is not an error.
void shutdown_socket(int fd, Shutdown how) noexcept;
void set_nonblocking(int fd, bool on, std::string_view subject);

// One read(2), EINTR retried. ok() with bytes == 0 is end of stream.
IoResult read_some(int fd, std::span<std::byte> into) noexcept;
// One non-blocking read: recv(MSG_DONTWAIT) on a socket; on other fds the caller must
// have made the fd non-blocking. EAGAIN comes back as an error to sort.
IoResult read_some_nowait(int fd, std::span<std::byte> into, bool socket) noexcept;
// One writev/sendmsg of `parts` in order, EINTR retried; may write less than all.
IoResult write_some(int fd, std::span<const ConstBytes> parts, bool socket) noexcept;

// Waits until `fd` is readable, hung up or in error, or the deadline passes.
// Returns true when ready. Throws OSError if poll itself fails.
bool wait_readable(int fd, const Deadline& deadline);
// Waits until `fd` accepts writes (or is in error); for fds a caller made non-blocking.
bool wait_writable(int fd, const Deadline& deadline);

struct PollItem {
  int fd = -1;
  bool ready = false;
};
// Waits until at least one item is readable (hung up, in error) or the deadline passes;
// marks those ready and returns how many. Items with fd < 0 are skipped.
std::size_t poll_readable(std::span<PollItem> items, const Deadline& deadline);

// Waits until at least one item is ready for what it asks (readable or writable; hung
// up and in error count as ready) or the deadline passes; marks those ready and returns
// how many. Items with fd < 0 are skipped.
struct PollEvent {
  int fd = -1;
  bool write = false;  // false: wait for readable
  bool ready = false;
};
std::size_t poll_events(std::span<PollEvent> items, const Deadline& deadline);

}  // namespace ipckit::sys
