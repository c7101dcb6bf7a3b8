// sys/notify.hpp — wake-up datagrams between processes that share no fd: Linux abstract
// AF_UNIX datagram sockets, named by a string, released by the kernel when their holder
// dies (so a name is never stale), pollable by the process that bound it.
#pragma once

#include <string_view>

#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// Binds a non-blocking datagram socket to the abstract `name` (without the leading NUL).
// An invalid fd when some live socket holds the name already. Throws OSError otherwise.
UniqueFd bind_notify_socket(std::string_view name);
// Sends one empty datagram to the socket bound to `name`; nothing happens if none is, or
// if its queue is full (it is readable then anyway). Never blocks.
void send_notify(std::string_view name) noexcept;
// Reads and discards every datagram waiting on `fd`.
void drain_notify(int fd) noexcept;

// Wake-ups over a connected stream socket (a Pipe's): one byte, never blocking (a full
// buffer already means a wake-up is pending).
void send_wake(int socket) noexcept;
// Reads and discards every byte waiting on a stream socket; false once it has reached
// end of stream (or a reset): the peer is gone.
bool drain_stream(int socket) noexcept;

// Whether the peer of a connected stream socket has closed its end (poll POLLRDHUP,
// without reading anything).
bool peer_hung_up(int socket) noexcept;

}  // namespace ipckit::sys
