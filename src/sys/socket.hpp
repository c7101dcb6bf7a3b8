// sys/socket.hpp — addresses, listening, accepting, connecting, and passing fds over
// Unix sockets.
//
// Address strings (the public form, connection.hpp):
//   tcp://HOST:PORT   HOST a name, an IPv4 literal, an IPv6 literal in brackets, or *
//   unix:///PATH, unix:PATH     a socket file
//   unix:@NAME        an abstract socket; unix:@ alone lets the kernel pick a name
// Every fd made here has FD_CLOEXEC set at creation.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/sys_error.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::sys {

struct SocketAddress {
  enum class Kind { Tcp, Unix, Abstract };
  Kind kind = Kind::Tcp;
  std::string host;        // Tcp: as written, without brackets; "*" for every interface
  std::uint16_t port = 0;  // Tcp
  std::string path;        // Unix: the path; Abstract: the name (empty: let the kernel pick)
};

// Parses an address string. Throws ValueError saying what is wrong with it.
SocketAddress parse_address(std::string_view text);

struct ListeningSocket {
  UniqueFd fd;           // non-blocking
  std::string address;   // with the port or abstract name filled in
  // A socket file this listener created, and its identity, so that only that file is
  // removed at close (not one a later listener put at the same path).
  std::string path;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  int creator = 0;  // the process that made it: only it removes the file (not a forked child)
};

// socket + bind + listen. A unix socket file that nobody listens on any more (left by a
// process that died) is replaced; one in use is FileExistsError. TCP sets SO_REUSEADDR,
// as Python's Listener does.
ListeningSocket listen_at(const SocketAddress& address, int backlog, std::string_view text);
// Removes the socket file of `socket`, if it is still the one it created and this is the
// process that created it. Never throws.
void remove_socket_file(const ListeningSocket& socket) noexcept;

struct AcceptedSocket {
  UniqueFd fd;       // blocking
  std::string peer;  // "tcp://127.0.0.1:51234", "unix:" for an unnamed peer
};
// One accept4 on a non-blocking listening socket; nullopt when nothing is waiting (or the
// connection was aborted before we took it). Throws OSError for anything else (EMFILE).
std::optional<AcceptedSocket> accept_now(int listen_fd, std::string_view listener);

// A connected stream socket (blocking). Throws
// ConnectionRefusedError (nothing listens), FileNotFoundError (no socket file),
// TimeoutError (the deadline passed), OSError otherwise, each naming `text`.
UniqueFd connect_to(const SocketAddress& address, const Deadline& deadline, std::string_view text);

// TCP_QUICKACK: the next segments received are acknowledged at once rather than after
// the delayed-ACK timer (the kernel turns it off again by itself). No-op on other sockets.
void acknowledge_at_once(int fd) noexcept;

// Before a TCP socket's owner blocks for input: sends at once what Nagle's algorithm
// holds back, and asks for the next segments to be acknowledged at once, so that neither
// side's small messages wait for a delayed ACK. No-op on other fds.
void before_waiting_for_input(int fd) noexcept;
bool is_tcp_socket(int fd) noexcept;

// Whether `fd` is an AF_UNIX socket (can carry fds).
bool is_unix_socket(int fd) noexcept;

// Sends the one byte `marker` carrying `fd_to_send` (SCM_RIGHTS), EINTR retried.
IoResult send_fd(int socket, std::byte marker, int fd_to_send) noexcept;

// recvmsg() into `into`, taking the fds that arrive with the bytes (MSG_CMSG_CLOEXEC)
// into `fds`, EINTR retried. More fds than fit the control buffer (32) are closed by the
// kernel.
IoResult read_some_with_fds(int fd, std::span<std::byte> into, std::vector<UniqueFd>& fds) noexcept;

}  // namespace ipckit::sys
