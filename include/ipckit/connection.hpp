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
#include <memory>
#include <optional>
#include <span>
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

  struct State;  // private to connection.cpp

 private:
  using Sink = void (*)(void* context, std::span<const std::byte> message);
  // Receives the next message and hands it to `sink` while it is still in the receive
  // buffer (no copy). False on timeout. A DecodeError from the sink gets the payload.
  bool recv_to(Sink sink, void* context, std::optional<std::chrono::nanoseconds> timeout);

  State& state(const char* what) const;
  std::unique_ptr<State> state_;

  friend std::pair<Connection, Connection> Pipe(bool duplex, ConnectionOptions options);
};

// Two connected Connections. duplex: both send and receive. Otherwise the first only
// receives and the second only sends, as Python's Pipe(duplex=False). See
// ConnectionOptions::shared_memory for what carries the messages; fileno() is the socket
// either way (what wait() and poll() watch). With shared memory, a send to a peer that
// has gone fails (ConnectionClosed) once the peer has taken nothing for a while — at
// the latest when the ring is full — rather than at once.
std::pair<Connection, Connection> Pipe(bool duplex = true, ConnectionOptions options = {});

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
