// Socket and ServerSocket: the sockets of Listener/Client (sys/socket.cpp) without frames
// or handshake. One mutex per direction, as Connection has, so that close() waits for a
// send or recv in progress on another thread instead of closing an fd under it.
#include "ipckit/socket.hpp"

#include <atomic>
#include <mutex>

#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/socket.hpp"

namespace ipckit {

using std::chrono::nanoseconds;

struct Socket::State {
  sys::UniqueFd fd;
  std::string peer;
  std::mutex send_mutex;
  std::mutex recv_mutex;
  std::atomic<bool> closed{false};
  bool write_shut = false;  // guarded by send_mutex
  std::string subject;      // "socket to ADDRESS" / "socket from PEER"
};

Socket::Socket() noexcept = default;
Socket::Socket(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Socket::Socket(Socket&&) noexcept = default;
Socket& Socket::operator=(Socket&&) noexcept = default;
Socket::~Socket() = default;

Socket::State& Socket::state(const char* what) const {
  if (closed()) throw ValueError(std::string(what) + " on a closed socket");
  return *state_;
}

void Socket::sendall(std::span<const std::byte> data) {
  State& s = state("sendall");
  std::lock_guard lock(s.send_mutex);
  if (s.closed) throw ValueError("sendall on a closed socket");
  if (s.write_shut) throw ValueError("sendall on " + s.subject + " after shutdown_write()");
  while (!data.empty()) {
    const auto r = sys::write_some(s.fd.get(), std::span(&data, 1), true);
    if (!r.ok()) {
      if (sys::is_peer_gone(r.error)) throw ConnectionClosed("sendall on " + s.subject + ": the peer has closed the connection");
      sys::throw_os_error(r.error, "send", s.subject);
    }
    data = data.subspan(r.bytes);
  }
}

namespace {

std::optional<Bytes> receive(Socket::State& s, std::size_t max_bytes, const sys::Deadline& deadline) {
  // recv(0) would return empty, which means end of stream.
  if (max_bytes == 0) throw ValueError("recv on " + s.subject + ": max_bytes must be at least 1");
  std::lock_guard lock(s.recv_mutex);
  if (s.closed) throw ValueError("recv on a closed socket");
  if (!deadline.is_never() && !sys::wait_readable(s.fd.get(), deadline)) return std::nullopt;
  Bytes out(max_bytes);
  const auto r = sys::read_some(s.fd.get(), out);
  if (!r.ok()) {
    if (sys::is_peer_gone(r.error)) throw ConnectionClosed("recv on " + s.subject + ": the connection was reset by the peer");
    sys::throw_os_error(r.error, "recv", s.subject);
  }
  out.resize(r.bytes);
  if (out.capacity() > 2 * out.size() + 4096) out.shrink_to_fit();  // don't hand out 64 KiB for 4 bytes
  return out;
}

}  // namespace

Bytes Socket::recv(std::size_t max_bytes) { return *receive(state("recv"), max_bytes, sys::Deadline::never()); }

std::optional<Bytes> Socket::recv(std::size_t max_bytes, nanoseconds timeout) {
  return receive(state("recv"), max_bytes, sys::Deadline::after(timeout));
}

void Socket::shutdown_write() {
  State& s = state("shutdown_write");
  std::lock_guard lock(s.send_mutex);
  if (s.closed) throw ValueError("shutdown_write on a closed socket");
  sys::shutdown_socket(s.fd.get(), sys::Shutdown::Write);
  s.write_shut = true;
}

void Socket::close() {
  if (!state_ || state_->closed.exchange(true)) return;
  std::scoped_lock lock(state_->send_mutex, state_->recv_mutex);
  state_->fd.reset();
}

bool Socket::closed() const noexcept { return !state_ || state_->closed; }
const std::string& Socket::peer_address() const { return state("peer_address").peer; }
int Socket::fileno() const { return state("fileno").fd.get(); }
WaitHandle Socket::wait_handle() const { return WaitHandle{fileno(), nullptr, nullptr}; }

struct ServerSocket::State {
  sys::ListeningSocket socket;
  std::string subject;
  ~State() { sys::remove_socket_file(socket); }
};

ServerSocket::ServerSocket() noexcept = default;
ServerSocket::ServerSocket(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
ServerSocket::ServerSocket(ServerSocket&&) noexcept = default;
ServerSocket& ServerSocket::operator=(ServerSocket&&) noexcept = default;
ServerSocket::~ServerSocket() = default;

Socket ServerSocket::accept() { return *accept(nanoseconds::max()); }

std::optional<Socket> ServerSocket::accept(nanoseconds timeout) {
  if (!state_) throw ValueError("accept on a closed server socket");
  const sys::Deadline deadline = sys::Deadline::after(timeout);
  for (;;) {
    if (auto accepted = sys::accept_now(state_->socket.fd.get(), state_->subject)) {
      auto s = std::make_unique<Socket::State>();
      s->fd = std::move(accepted->fd);
      s->peer = std::move(accepted->peer);
      s->subject = "socket from " + s->peer;
      return Socket(std::move(s));
    }
    if (!sys::wait_readable(state_->socket.fd.get(), deadline)) return std::nullopt;
  }
}

void ServerSocket::close() { state_.reset(); }
bool ServerSocket::closed() const noexcept { return !state_; }

const std::string& ServerSocket::address() const {
  if (!state_) throw ValueError("address of a closed server socket");
  return state_->socket.address;
}

int ServerSocket::fileno() const {
  if (!state_) throw ValueError("fileno of a closed server socket");
  return state_->socket.fd.get();
}

WaitHandle ServerSocket::wait_handle() const { return WaitHandle{fileno(), nullptr, nullptr}; }

ServerSocket create_server(std::string_view address, int backlog) {
  if (backlog < 1) throw ValueError("create_server " + std::string(address) + ": the backlog must be at least 1");
  auto s = std::make_unique<ServerSocket::State>();
  s->socket = sys::listen_at(sys::parse_address(address), backlog, address);
  s->subject = "server socket " + s->socket.address;
  return ServerSocket(std::move(s));
}

Socket create_connection(std::string_view address, std::optional<nanoseconds> timeout) {
  auto s = std::make_unique<Socket::State>();
  s->fd = sys::connect_to(sys::parse_address(address), sys::Deadline::within(timeout), address);
  s->peer = std::string(address);
  s->subject = "socket to " + s->peer;
  return Socket(std::move(s));
}

}  // namespace ipckit
