#include "sys/notify.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sys/sys_error.hpp"

namespace ipckit::sys {
namespace {

// sockaddr_un for the abstract `name`: sun_path[0] is NUL, the name follows unterminated.
socklen_t abstract_address(std::string_view name, sockaddr_un& address) noexcept {
  std::memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  const std::size_t n = name.size() < sizeof address.sun_path - 1 ? name.size() : sizeof address.sun_path - 1;
  std::memcpy(address.sun_path + 1, name.data(), n);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

// One per process, made on first use; datagram sends need no connection.
int sender() noexcept {
  static const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  return fd;
}

}  // namespace

UniqueFd bind_notify_socket(std::string_view name) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_last_error("socket(AF_UNIX, SOCK_DGRAM)", name);
  sockaddr_un address;
  const socklen_t length = abstract_address(name, address);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    if (errno == EADDRINUSE) return UniqueFd();
    throw_last_error("bind(abstract socket)", name);
  }
  return fd;
}

void send_notify(std::string_view name) noexcept {
  const int fd = sender();
  if (fd < 0) return;
  sockaddr_un address;
  const socklen_t length = abstract_address(name, address);
  char byte = 0;
  while (::sendto(fd, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                  length) < 0 &&
         errno == EINTR) {
  }
}

void drain_notify(int fd) noexcept {
  char buffer[64];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n >= 0) continue;
    if (errno != EINTR) return;
  }
}

void send_wake(int socket) noexcept {
  const char byte = 0;
  while (::send(socket, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

bool drain_stream(int socket) noexcept {
  char buffer[256];
  for (;;) {
    const ssize_t n = ::recv(socket, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool peer_hung_up(int socket) noexcept {
  pollfd item{socket, POLLRDHUP, 0};
  int r = 0;
  while ((r = ::poll(&item, 1, 0)) < 0 && errno == EINTR) {
  }
  return r > 0 && (item.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace ipckit::sys
