// sys/sys_error.hpp — errno to ipckit::OSError.
//
// Setup calls (socketpair, fork, pidfd_open) throw at once through throw_os_error().
// Hot-path calls return an IoResult instead and let the caller sort the errno into retry
// (EINTR, handled inside sys/), outcome (EAGAIN, EPIPE...) or failure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ipckit::sys {

// Throws ipckit::OSError for `err` (an errno value) from `call` on `subject`.
[[noreturn]] void throw_os_error(int err, std::string_view call, std::string_view subject);
// The same with the current errno.
[[noreturn]] void throw_last_error(std::string_view call, std::string_view subject);

// The result of a hot-path I/O call: bytes moved, or the errno it failed with.
struct IoResult {
  std::size_t bytes = 0;
  int error = 0;
  bool ok() const noexcept { return error == 0; }
};

// Names for the errno values callers sort on, so that code outside sys/ needs no OS header.
bool is_would_block(int err) noexcept;   // EAGAIN / EWOULDBLOCK
bool is_peer_gone(int err) noexcept;     // EPIPE, ECONNRESET, ENOTCONN
bool is_bad_fd(int err) noexcept;        // EBADF
std::string error_text(int err);         // strerror, thread-safe

}  // namespace ipckit::sys
