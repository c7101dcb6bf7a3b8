// ipckit/connection.hpp — Connection and Pipe(): messages between two processes, as
// Python's multiprocessing.connection.
//
//   auto [parent_end, child_end] = ipckit::Pipe();
//   ipckit::Process child([&] { child_end.send(std::string("hello")); });
//   child.start();
//   std::string greeting = parent_end.recv<std::string>();
//
// A Connection carries whole messages: send_bytes/recv_bytes exchange raw bytes,
// send/recv exchange values through the codec (MessagePack, docs/formats/codec.md). Over a
// stream fd each message is framed as Python frames it — docs/formats/framing.md — so a
// Python Connection on the other end of the same fd reads and writes the same messages.
// Pipe() by default moves them through shared memory instead, for speed (see
// ConnectionOptions::shared_memory).
//
// Blocking: send blocks while the peer's buffer is full; recv blocks until a whole message
// is there; the forms that take a timeout return nullopt when it passes, keeping any part
// of a message already read for the next call (nothing is lost).
//
// Errors: ConnectionClosed when the peer is gone (end of stream or reset; Python's
// EOFError); MessageTooLarge when an incoming message announces more than
// max_message_size(), raised before allocating — the connection is then no longer
// readable, as in Python; DecodeError from recv<T>() when the message is not a T (the
// message is in DecodeError::payload()); ValueError on a closed connection or a direction
// it does not have; OSError for anything else the OS reports.
//
// Threads: send and recv may be called from several threads at once; each message is sent
// and received whole (one lock per direction). close() waits for a send or recv that
// another thread has in progress; to stop a thread blocked in recv, have the peer send or
// close, or receive with a timeout and check closed().
//
// Buffering: recv reads as much as the fd holds and keeps what follows the current message
// for the next calls, so a burst of small messages costs one read. poll() and wait() see
// such buffered messages; a caller watching fileno() in its own event loop must drain
// with poll() until it returns false before waiting on the fd again.
//
// Lifetime: the Connection owns its fd and closes it when destroyed or closed. After
// fork both processes hold the fd: close the end a process does not use so the peer sees
// end of stream when the user exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ipckit/codec.hpp"
#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"

namespace ipckit {

// Default largest incoming message: 1 GiB. Raise it per connection for bigger ones.
inline constexpr std::size_t kDefaultMaxMessageSize = std::size_t{1} << 30;

inline constexpr std::size_t kDefaultPipeRingCapacity = std::size_t{256} << 10;

struct ConnectionOptions {
  std::size_t max_message_size = kDefaultMaxMessageSize;
  // Pipe() only. True: each direction's messages go through a ring in shared memory
  // (docs/formats/queue.md); the socket pair underneath only wakes a sleeping peer and
  // tells when it has gone. The ends work in this process and in processes forked from
  // it. False: a plain socket pair carrying Python's framing, whose fds any program can
  // use (an exec'd child, a Python Connection).
  bool shared_memory = true;
  // Pipe() with shared_memory: bytes of each direction's ring. Longer messages stream
  // through it in chunks.
  std::size_t ring_capacity = kDefaultPipeRingCapacity;
};

class Connection;
namespace detail {
// A connected socket as a Connection; `subject` names it in errors ("connection to
// tcp://127.0.0.1:5000").
Connection adopt_socket(int fd, std::string subject, ConnectionOptions options);
}  // namespace detail

class Connection {
 public:
  // A closed connection (a placeholder to move a real one into).
  Connection() noexcept;
  // Adopts `fd` (any stream fd: socket, pipe end, FIFO, file) and closes it when done.
  Connection(int fd, bool readable, bool writable, ConnectionOptions options = {});
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // Sends `size` bytes of `data` starting at `offset` (all that follows when size is
  // nullopt) as one message. Throws ValueError when offset/size fall outside `data`.
  void send_bytes(std::span<const std::byte> data, std::size_t offset = 0,
                  std::optional<std::size_t> size = std::nullopt);
  void send_bytes(std::string_view text) { send_bytes(std::as_bytes(std::span(text))); }

  // The next message. `maxlength` lowers max_message_size() for this call (Python's
  // maxlength): a longer message throws MessageTooLarge.
  Bytes recv_bytes(std::optional<std::size_t> maxlength = std::nullopt);
  // nullopt if no whole message arrives within `timeout`.
  std::optional<Bytes> recv_bytes(std::chrono::nanoseconds timeout);
  // Reads the next message into `buffer` at `offset`; returns its size. A message that
  // does not fit throws BufferTooShort holding the message.
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);

  // A value as a message through the codec.
  template <class T>
  void send(const T& value);
  template <class T>
  T recv();
  template <class T>
  std::optional<T> recv(std::chrono::nanoseconds timeout);

  // Whether a message (or end of stream) is waiting: checks and returns at once with the
  // default zero timeout, waits for ever with nullopt.
  bool poll(std::optional<std::chrono::nanoseconds> timeout = std::chrono::nanoseconds::zero());

  // Closes this process's fd (idempotent). Other processes' copies of it stay open, so
  // the peer sees end of stream only when every copy of this end is closed.
  void close();
  bool closed() const noexcept;
  bool readable() const noexcept;
  bool writable() const noexcept;
  // The fd; throws ValueError when closed.
  int fileno() const;
  std::size_t max_message_size() const noexcept;
  void set_max_message_size(std::size_t limit) noexcept;

  WaitHandle wait_handle() const;

  // Passing fds (Unix-socket connections only: a Listener/Client on a unix: address, or
  // Pipe(shared_memory=false)); otherwise ValueError. send_handle sends `fd` itself (the
  // caller keeps its own copy); recv_handle returns the receiver's new fd for the same
  // open file (a memfd of an anonymous SharedMemory, a socket, a file), with FD_CLOEXEC
  // set, which the caller owns and must close. On the wire: one byte carrying the fd, as
  // Python's multiprocessing.reduction.send_handle/recv_handle, so either side may be
  // Python. Sender and receiver must agree that a handle comes next: recv_handle when a
  // message is next throws ProtocolError and recv when a handle is next does the same,
  // both leaving what is next in place.
  void send_handle(int fd);
  int recv_handle();

  struct State;  // private to connection.cpp

 private:
  using Sink = void (*)(void* context, std::span<const std::byte> message);
  // Receives the next message and hands it to `sink` while it is still in the receive
  // buffer (no copy). False on timeout. A DecodeError from the sink gets the payload.
  bool recv_to(Sink sink, void* context, std::optional<std::chrono::nanoseconds> timeout);

  State& state(const char* what) const;
  std::unique_ptr<State> state_;

  friend std::pair<Connection, Connection> Pipe(bool duplex, ConnectionOptions options);
  friend Connection detail::adopt_socket(int, std::string, ConnectionOptions);
};

// Two connected Connections. duplex: both send and receive. Otherwise the first only
// receives and the second only sends, as Python's Pipe(duplex=False). See
// ConnectionOptions::shared_memory for what carries the messages; fileno() is the socket
// either way (what wait() and poll() watch). With shared memory, a send to a peer that
// has gone fails (ConnectionClosed) once the peer has taken nothing for a while — at
// the latest when the ring is full — rather than at once.
std::pair<Connection, Connection> Pipe(bool duplex = true, ConnectionOptions options = {});

// --- Listener and Client: connections between unrelated processes -------------------
//
// Addresses are strings:
//   tcp://HOST:PORT    a host name or address; IPv6 literals in brackets
//                      (tcp://[::1]:5000); port 0 lets the Listener pick a free one and
//                      address() tells which; HOST * listens on every interface.
//   unix:///PATH       a socket file (unix:PATH also works, relative paths too)
//   unix:@NAME         a Linux abstract socket (no file; unix:@ alone picks a free name)
//
// Messages on these connections are framed as everywhere else (docs/formats/framing.md),
// so Python's multiprocessing.connection Listener and Client talk to ipckit's.
//
// Authentication: with an authkey both sides prove that they know it before anything
// else is exchanged — CPython's challenge-response handshake exactly, in both its
// generations (HMAC-SHA256 with a {sha256} prefix, as Python >= 3.12 sends it, and bare
// HMAC-MD5, as Python <= 3.11 does): docs/formats/handshake.md. Without an authkey there
// is no handshake (as in Python), and no way to tell a stranger: use one on a network.
//
// Hardening: the Listener reads at most 256 bytes per handshake message, decodes nothing
// before both directions are authenticated, and drops a peer that has not finished within
// ListenerOptions::handshake_timeout. Handshakes run side by side: a silent or hostile
// peer never holds up accept() for the others. Every connection's max_message_size
// (ConnectionOptions) bounds what a peer can make it allocate, before and after
// authentication.

struct ListenerOptions {
  // Connections not yet accepted that the kernel queues (capped by net.core.somaxconn).
  // Large, so that a burst of connects is not dropped (a dropped SYN costs the client 1 s).
  int backlog = 4096;
  // A peer that has not completed the handshake within this time is disconnected.
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(5);
  // Options of the accepted connections (max_message_size; shared_memory does not apply).
  ConnectionOptions connection{};
  // Told of each peer the listener turned away (wrong key, broken handshake, timeout),
  // with the reason; called from inside accept() or wait(). Unset: they are dropped
  // silently. It must not throw.
  std::function<void(const Error& why)> on_reject;
};

class Listener {
 public:
  // A closed listener (a placeholder to move a real one into).
  Listener() noexcept;
  // Binds and listens at `address`. A unix socket file left behind by a process that died
  // is replaced; one that a live listener uses is FileExistsError (as is a TCP port in
  // use: OSError EADDRINUSE). ValueError for an address it cannot parse.
  explicit Listener(std::string_view address, std::optional<std::string> authkey = std::nullopt,
                    ListenerOptions options = {});
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();  // close()

  // The next connection, authenticated when there is an authkey. Peers that fail the
  // handshake are dropped (see ListenerOptions::on_reject) and accept() goes on waiting.
  Connection accept();
  // nullopt when no connection is ready within `timeout` (zero: only check).
  std::optional<Connection> accept(std::chrono::nanoseconds timeout);

  // Stops listening (idempotent), drops handshakes in progress and removes the socket
  // file it created. Accepted connections stay open. Threads blocked in accept() on it
  // wake and throw ValueError; wait() reports it (and accept() then throws).
  void close();
  bool closed() const noexcept;
  // The address it listens at, with the port or abstract name filled in:
  // "tcp://127.0.0.1:40123". Throws ValueError when closed.
  const std::string& address() const;
  // The address of the peer accept() last returned ("tcp://127.0.0.1:51234"; "unix:" for
  // an unnamed unix client), or empty before the first.
  std::string last_accepted() const;
  // A pollable fd: readable when accept() may have something for it. wait() reports the
  // listener only when a connection is ready to be accepted without blocking.
  int fileno() const;
  WaitHandle wait_handle() const;

  struct State;  // private to listener.cpp

 private:
  std::unique_ptr<State> state_;
};

// Connects to a Listener at `address` (ipckit's or Python's) and, with an authkey, runs
// the handshake. ConnectionRefusedError when nothing listens there (FileNotFoundError for
// a missing socket file); AuthenticationError when either side's proof fails;
// TimeoutError when connecting and authenticating take longer than `timeout` (nullopt:
// no limit of its own — a TCP connect then gives up as the kernel decides);
// ConnectionClosed when the listener hangs up during the handshake.
Connection Client(std::string_view address, std::optional<std::string> authkey = std::nullopt,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
                  ConnectionOptions options = {});

// --- implementation of the templates ------------------------------------------------

template <class T>
void Connection::send(const T& value) {
  thread_local Bytes buffer;
  buffer.clear();
  encode_into(buffer, value);
  send_bytes(buffer);
  if (buffer.capacity() > (std::size_t{1} << 20)) Bytes().swap(buffer);  // don't pin big buffers
}

template <class T>
T Connection::recv() {
  std::optional<T> out;
  recv_to([](void* context, std::span<const std::byte> message) {
            static_cast<std::optional<T>*>(context)->emplace(decode<T>(message));
          },
          &out, std::nullopt);
  return std::move(*out);
}

template <class T>
std::optional<T> Connection::recv(std::chrono::nanoseconds timeout) {
  std::optional<T> out;
  recv_to([](void* context, std::span<const std::byte> message) {
            static_cast<std::optional<T>*>(context)->emplace(decode<T>(message));
          },
          &out, timeout);
  return out;
}

}  // namespace ipckit
