// ipckit/socket.hpp — plain stream sockets: bytes as they come, no frames, no
// handshake, as Python's socket.create_server / socket.create_connection. For talking to
// programs that speak their own protocol (netcat, a line protocol, HTTP); between ipckit
// or Python multiprocessing programs, Listener/Client (connection.hpp) carry whole
// messages and authenticate.
//
//   auto server = ipckit::create_server("tcp://127.0.0.1:65432");
//   ipckit::Socket conn = server.accept();
//   while (true) {
//     ipckit::Bytes data = conn.recv(1024);
//     if (data.empty()) break;          // the peer closed
//     conn.sendall(data);
//   }
//
// Addresses are those of Listener: tcp://HOST:PORT, unix:///PATH, unix:@NAME.
// Errors: ConnectionRefusedError / FileNotFoundError / TimeoutError from
// create_connection, ConnectionClosed when sending to a peer that is gone (never
// SIGPIPE), ValueError on a closed socket, OSError otherwise. Threads: a Socket may be
// used from several threads (one send and one recv at a time; close() waits for them); a
// ServerSocket's accept() from several threads, but its close() must not race them.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ipckit/codec.hpp"
#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"

namespace ipckit {

class Socket {
 public:
  // A closed socket (a placeholder to move a real one into).
  Socket() noexcept;
  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  ~Socket();

  // Writes all of `data`, blocking while the peer's buffer is full. ValueError after
  // shutdown_write().
  void sendall(std::span<const std::byte> data);
  void sendall(std::string_view text) { sendall(std::as_bytes(std::span(text))); }
  // Up to `max_bytes` of what has arrived, blocking until something has; empty at end of
  // stream (the peer closed or shut down its side). A reset by the peer is
  // ConnectionClosed; max_bytes 0 is ValueError (its empty result would mean the end).
  Bytes recv(std::size_t max_bytes = 65536);
  // nullopt when nothing arrives within `timeout`.
  std::optional<Bytes> recv(std::size_t max_bytes, std::chrono::nanoseconds timeout);
  // Ends this side's sending (the peer's recv then returns empty); receiving goes on.
  void shutdown_write();

  void close();  // idempotent
  bool closed() const noexcept;
  // "tcp://127.0.0.1:51234"; "unix:" for an unnamed Unix peer.
  const std::string& peer_address() const;
  int fileno() const;
  WaitHandle wait_handle() const;  // readable: bytes or end of stream

  struct State;  // private to socket.cpp
  explicit Socket(std::unique_ptr<State> state) noexcept;

 private:
  State& state(const char* what) const;
  std::unique_ptr<State> state_;
};

class ServerSocket {
 public:
  ServerSocket() noexcept;  // closed
  ServerSocket(ServerSocket&&) noexcept;
  ServerSocket& operator=(ServerSocket&&) noexcept;
  ~ServerSocket();  // close()

  // The next connection, waiting for one.
  Socket accept();
  // nullopt when none arrives within `timeout`.
  std::optional<Socket> accept(std::chrono::nanoseconds timeout);
  // Stops listening and removes the socket file it created (idempotent).
  void close();
  bool closed() const noexcept;
  const std::string& address() const;  // with the port the system picked for port 0
  int fileno() const;
  WaitHandle wait_handle() const;  // readable: a connection is waiting

  struct State;  // private to socket.cpp
  explicit ServerSocket(std::unique_ptr<State> state) noexcept;

 private:
  std::unique_ptr<State> state_;
};

// Listens at `address` (a socket file left by a dead process is replaced, as by Listener).
ServerSocket create_server(std::string_view address, int backlog = 4096);
// Connects to `address`; `timeout` bounds the connect.
Socket create_connection(std::string_view address, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

}  // namespace ipckit
