#include "sys/seqpacket.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace ipckit::sys {

std::pair<UniqueFd, UniqueFd> seqpacket_pair(std::string_view subject) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    throw_last_error("socketpair(AF_UNIX, SOCK_SEQPACKET)", subject);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

IoResult send_packet(int fd, ConstBytes message) noexcept {
  for (;;) {
    const ssize_t n = ::send(fd, message.data(), message.size(), MSG_NOSIGNAL);
    if (n >= 0) return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR) return {0, errno};
  }
}

IoResult recv_packet(int fd, std::span<std::byte> into, bool block) noexcept {
  const int flags = MSG_TRUNC | (block ? 0 : MSG_DONTWAIT);
  for (;;) {
    const ssize_t n = ::recv(fd, into.data(), into.size(), flags);
    if (n >= 0) return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR) return {0, errno};
  }
}

void set_send_buffer(int fd, std::size_t bytes) noexcept {
  const int value = bytes > 0x3fffffff ? 0x3fffffff : static_cast<int>(bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof value);
}

}  // namespace ipckit::sys
