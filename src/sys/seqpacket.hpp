// sys/seqpacket.hpp — AF_UNIX SOCK_SEQPACKET pairs: whole messages, kept in order, between
// processes that share one end through fork. Every sender's message arrives whole and
// alone (a datagram), so several processes may send on copies of the same end at once.
#pragma once

#include <span>
#include <string_view>
#include <utility>

#include "sys/io.hpp"
#include "sys/sys_error.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::sys {

// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). Throws OSError naming `subject`.
std::pair<UniqueFd, UniqueFd> seqpacket_pair(std::string_view subject);

// One send(MSG_NOSIGNAL) of a whole message, EINTR retried; blocks while the peer's queue
// is full. A peer that is gone comes back as an error for is_peer_gone().
IoResult send_packet(int fd, ConstBytes message) noexcept;

// One recv() of a whole message, EINTR retried; with `block` false (MSG_DONTWAIT) an empty
// queue comes back as an error for is_would_block(). ok() with bytes == 0 is end of stream
// (senders never send empty messages). A message longer than `into` is cut to fit, and
// `bytes` is then its full length (MSG_TRUNC), so the caller can tell.
IoResult recv_packet(int fd, std::span<std::byte> into, bool block) noexcept;

// Asks for a send buffer of `bytes` (SO_SNDBUF; the kernel caps it at net.core.wmem_max):
// how many messages may wait for a receiver that is not reading yet. Best effort.
void set_send_buffer(int fd, std::size_t bytes) noexcept;

}  // namespace ipckit::sys
