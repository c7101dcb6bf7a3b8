#include "sys/sys_error.hpp"

#include <cerrno>
#include <cstring>

#include "ipckit/error.hpp"

namespace ipckit {

OSError::OSError(std::error_code code, std::string call, std::string subject)
    : Error(call + (subject.empty() ? "" : " on " + subject) + ": " + code.message()),
      code_(code),
      call_(std::move(call)),
      subject_(std::move(subject)) {}

namespace sys {

void throw_os_error(int err, std::string_view call, std::string_view subject) {
  throw OSError(std::error_code(err, std::generic_category()), std::string(call),
                std::string(subject));
}

void throw_last_error(std::string_view call, std::string_view subject) {
  throw_os_error(errno, call, subject);
}

bool is_would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
bool is_peer_gone(int err) noexcept {
  return err == EPIPE || err == ECONNRESET || err == ENOTCONN;
}
bool is_bad_fd(int err) noexcept { return err == EBADF; }

std::string error_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

}  // namespace sys
}  // namespace ipckit
