#include "sys/socket.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <memory>

#include "ipckit/error.hpp"
#include "sys/proc.hpp"

namespace ipckit::sys {
namespace {

constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;  // room for the NUL
constexpr std::size_t kMaxFdsPerRead = 32;

[[noreturn]] void bad_address(std::string_view text, const std::string& why) {
  throw ValueError("address '" + std::string(text) + "': " + why);
}

std::uint16_t parse_port(std::string_view text, std::string_view port) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    bad_address(text, "the port must be a number from 0 to 65535");
  return static_cast<std::uint16_t>(value);
}

std::string format_address(const sockaddr_storage& storage, socklen_t length) {
  char host[INET6_ADDRSTRLEN] = {};
  switch (storage.ss_family) {
    case AF_INET: {
      const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
      ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
      return "tcp://" + std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
    }
    case AF_INET6: {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
      ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
      return "tcp://[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    case AF_UNIX: {
      const auto& un = reinterpret_cast<const sockaddr_un&>(storage);
      const std::size_t path_length = length > offsetof(sockaddr_un, sun_path)
                                          ? static_cast<std::size_t>(length) - offsetof(sockaddr_un, sun_path)
                                          : 0;
      if (path_length == 0) return "unix:";
      if (un.sun_path[0] == '\0') return "unix:@" + std::string(un.sun_path + 1, path_length - 1);
      return "unix://" + std::string(un.sun_path, ::strnlen(un.sun_path, path_length));
    }
    default:
      return "(address family " + std::to_string(storage.ss_family) + ")";
  }
}

std::string local_address(int fd, std::string_view text) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0)
    throw_last_error("getsockname", text);
  return format_address(storage, length);
}

// The sockaddr_un of a Unix or abstract address and its length.
socklen_t unix_sockaddr(const SocketAddress& address, sockaddr_un& un) {
  un = {};
  un.sun_family = AF_UNIX;
  if (address.kind == SocketAddress::Kind::Abstract) {
    if (address.path.empty()) return sizeof(sa_family_t);  // autobind: the kernel picks
    std::memcpy(un.sun_path + 1, address.path.data(), address.path.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + address.path.size());
  }
  std::memcpy(un.sun_path, address.path.data(), address.path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.path.size() + 1);
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const noexcept { ::freeaddrinfo(info); }
};
using AddrInfo = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfo resolve(const SocketAddress& address, bool passive, std::string_view text) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  const std::string port = std::to_string(address.port);
  const bool any = address.host == "*";
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(any ? nullptr : address.host.c_str(), port.c_str(), &hints, &found);
  if (rc == EAI_SYSTEM) throw_last_error("getaddrinfo", text);
  if (rc != 0) bad_address(text, "cannot resolve '" + address.host + "': " + ::gai_strerror(rc));
  return AddrInfo(found);
}

void set_option(int fd, int level, int name, int value, std::string_view call, std::string_view text) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_last_error(call, text);
}

[[noreturn]] void throw_connect_error(int err, std::string_view text) {
  const std::error_code code(err, std::generic_category());
  if (err == ECONNREFUSED) throw ConnectionRefusedError(code, "connect", std::string(text) + " (nothing listens there)");
  if (err == ENOENT) throw FileNotFoundError(code, "connect", std::string(text) + " (no such socket file)");
  throw_os_error(err, "connect", text);
}

[[noreturn]] void throw_timeout(std::string_view text) {
  throw TimeoutError("connect to " + std::string(text) + ": timed out");
}

// Whether a listener answers at this Unix address (a connect that is not refused).
bool unix_socket_in_use(const sockaddr_un& un, socklen_t length) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return true;  // cannot tell: do not remove anything
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&un), length) == 0) return true;
  return errno != ECONNREFUSED;  // EAGAIN: a full backlog, so alive
}

ListeningSocket listen_unix(const SocketAddress& address, int backlog, std::string_view text) {
  sockaddr_un un;
  const socklen_t length = unix_sockaddr(address, un);
  ListeningSocket out;
  out.fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!out.fd) throw_last_error("socket(AF_UNIX)", text);
  const auto bind_once = [&] { return ::bind(out.fd.get(), reinterpret_cast<const sockaddr*>(&un), length) == 0; };
  if (!bind_once()) {
    int err = errno;
    // A socket file whose listener died: nobody answers at it, so it can go.
    struct stat st {};
    if (err == EADDRINUSE && address.kind == SocketAddress::Kind::Unix &&
        ::lstat(address.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && !unix_socket_in_use(un, length)) {
      ::unlink(address.path.c_str());
      err = bind_once() ? 0 : errno;
    }
    if (err == EADDRINUSE)
      throw FileExistsError(std::error_code(err, std::generic_category()), "bind", std::string(text) + " (a live listener uses it)");
    if (err == ENOENT)
      throw FileNotFoundError(std::error_code(err, std::generic_category()), "bind", std::string(text) + " (no such directory)");
    if (err != 0) throw_os_error(err, "bind", text);
  }
  if (address.kind == SocketAddress::Kind::Unix) {
    out.path = address.path;
    out.creator = current_pid();
    struct stat st {};
    if (::lstat(address.path.c_str(), &st) == 0) {
      out.device = st.st_dev;
      out.inode = st.st_ino;
    }
  }
  if (::listen(out.fd.get(), backlog) != 0) {
    const int err = errno;
    remove_socket_file(out);
    throw_os_error(err, "listen", text);
  }
  out.address = address.kind == SocketAddress::Kind::Unix ? "unix://" + address.path : local_address(out.fd.get(), text);
  return out;
}

ListeningSocket listen_tcp(const SocketAddress& address, int backlog, std::string_view text) {
  const AddrInfo found = resolve(address, true, text);
  int last_error = EADDRNOTAVAIL;
  for (const addrinfo* a = found.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      last_error = errno;
      continue;
    }
    set_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)", text);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), backlog) != 0) {
      last_error = errno;
      continue;
    }
    ListeningSocket out;
    out.address = local_address(fd.get(), text);
    out.fd = std::move(fd);
    return out;
  }
  throw_os_error(last_error, "bind", text);
}

// A TCP connect bounded by `deadline`: non-blocking connect, wait for writable, SO_ERROR.
// Tries each resolved address in turn (localhost may be ::1 and 127.0.0.1).
UniqueFd connect_tcp(const SocketAddress& address, const Deadline& deadline, std::string_view text) {
  const AddrInfo found = resolve(address, false, text);
  int last_error = ECONNREFUSED;
  for (const addrinfo* a = found.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_last_error("socket", text);
    int err = ::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS || err == EINTR) {
      if (!wait_writable(fd.get(), deadline)) throw_timeout(text);
      socklen_t length = sizeof err;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
    }
    if (err != 0) {
      last_error = err;
      continue;
    }
    set_nonblocking(fd.get(), false, text);
    return fd;
  }
  throw_connect_error(last_error, text);
}

// A Unix connect bounded by `deadline`. A blocking connect waits while the listener's
// backlog is full; SO_SNDTIMEO bounds that wait.
UniqueFd connect_unix(const SocketAddress& address, const Deadline& deadline, std::string_view text) {
  sockaddr_un un;
  const socklen_t length = unix_sockaddr(address, un);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_last_error("socket(AF_UNIX)", text);
  for (;;) {
    timeval limit{};
    if (!deadline.is_never()) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline.remaining()).count();
      if (left <= 0) throw_timeout(text);
      limit.tv_sec = static_cast<time_t>(left / 1'000'000);
      limit.tv_usec = static_cast<suseconds_t>(left % 1'000'000);
    }
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0)
      throw_last_error("setsockopt(SO_SNDTIMEO)", text);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&un), length) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EINPROGRESS) throw_timeout(text);
    throw_connect_error(errno, text);
  }
  const timeval none{};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  return fd;
}

}  // namespace

SocketAddress parse_address(std::string_view text) {
  SocketAddress out;
  if (text.starts_with("tcp://")) {
    std::string_view rest = text.substr(6);
    std::string_view host;
    std::string_view port;
    if (rest.starts_with('[')) {
      const auto close = rest.find(']');
      if (close == std::string_view::npos) bad_address(text, "an IPv6 address needs its closing ']'");
      host = rest.substr(1, close - 1);
      if (rest.substr(close + 1, 1) != ":") bad_address(text, "expected ':PORT' after the ']'");
      port = rest.substr(close + 2);
    } else {
      const auto colon = rest.rfind(':');
      if (colon == std::string_view::npos) bad_address(text, "expected tcp://HOST:PORT");
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) bad_address(text, "put an IPv6 address in brackets: tcp://[::1]:PORT");
    }
    if (host.empty()) bad_address(text, "the host is missing (use * for every interface)");
    if (host.find('\0') != std::string_view::npos) bad_address(text, "the host contains a NUL byte");
    out.kind = SocketAddress::Kind::Tcp;
    out.host = std::string(host);
    out.port = parse_port(text, port);
    return out;
  }
  if (text.starts_with("unix:")) {
    std::string_view rest = text.substr(5);
    if (rest.starts_with('@')) {
      out.kind = SocketAddress::Kind::Abstract;
      rest.remove_prefix(1);
      if (rest.size() > kMaxUnixPath)
        bad_address(text, "an abstract name is at most " + std::to_string(kMaxUnixPath) + " bytes");
    } else {
      out.kind = SocketAddress::Kind::Unix;
      if (rest.starts_with("//")) rest.remove_prefix(2);
      if (rest.empty()) bad_address(text, "the socket path is missing");
      if (rest.find('\0') != std::string_view::npos) bad_address(text, "the path contains a NUL byte");
      if (rest.size() > kMaxUnixPath)
        bad_address(text, "a socket path is at most " + std::to_string(kMaxUnixPath) + " bytes");
    }
    out.path = std::string(rest);
    return out;
  }
  bad_address(text, "expected tcp://HOST:PORT, unix:///PATH or unix:@NAME");
}

ListeningSocket listen_at(const SocketAddress& address, int backlog, std::string_view text) {
  return address.kind == SocketAddress::Kind::Tcp ? listen_tcp(address, backlog, text)
                                                  : listen_unix(address, backlog, text);
}

void remove_socket_file(const ListeningSocket& socket) noexcept {
  if (socket.path.empty() || socket.creator != current_pid()) return;
  struct stat st {};
  if (::lstat(socket.path.c_str(), &st) == 0 && st.st_dev == socket.device && st.st_ino == socket.inode)
    ::unlink(socket.path.c_str());
}

std::optional<AcceptedSocket> accept_now(int listen_fd, std::string_view listener) {
  for (;;) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    UniqueFd fd(::accept4(listen_fd, reinterpret_cast<sockaddr*>(&storage), &length, SOCK_CLOEXEC));
    if (fd) return AcceptedSocket{std::move(fd), format_address(storage, length)};
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:
      // A connection that went away before it was taken, or a network error that
      // accept(2) says to treat like EAGAIN: nothing to return now.
      case ECONNABORTED:
      case EPROTO:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH:
        return std::nullopt;
      default:
        throw_last_error("accept4", listener);
    }
  }
}

UniqueFd connect_to(const SocketAddress& address, const Deadline& deadline, std::string_view text) {
  return address.kind == SocketAddress::Kind::Tcp ? connect_tcp(address, deadline, text)
                                                  : connect_unix(address, deadline, text);
}

void acknowledge_at_once(int fd) noexcept {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);  // EOPNOTSUPP on a Unix socket
}

void before_waiting_for_input(int fd) noexcept {
  int on = 1;
  int off = 0;
  // Setting TCP_NODELAY sends what Nagle's algorithm holds back; then it goes back on.
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) return;  // not TCP
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof off);
  ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

bool is_tcp_socket(int fd) noexcept {
  int domain = 0;
  socklen_t length = sizeof domain;
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && (domain == AF_INET || domain == AF_INET6);
}

bool is_unix_socket(int fd) noexcept {
  int domain = 0;
  socklen_t length = sizeof domain;
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && domain == AF_UNIX;
}

IoResult send_fd(int socket, std::byte marker, int fd_to_send) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&marker, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* header = CMSG_FIRSTHDR(&msg);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd_to_send, sizeof(int));
  for (;;) {
    const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return {static_cast<std::size_t>(n), 0};
    if (errno != EINTR) return {0, errno};
  }
}

IoResult read_some_with_fds(int fd, std::span<std::byte> into, std::vector<UniqueFd>& fds) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerRead * sizeof(int))];
  iovec iov{into.data(), into.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  for (;;) {
    const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {0, errno};
    }
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
      if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
        fds.emplace_back(received);
      }
    }
    return {static_cast<std::size_t>(n), 0};
  }
}

}  // namespace ipckit::sys
