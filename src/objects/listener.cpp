// Listener and Client: sockets that find each other through addresses, with CPython's
// authentication handshake (transport/handshake.hpp) before a Connection is handed out.
//
// A Listener runs every handshake in progress side by side, without threads: an epoll set
// holds the listening socket, each socket still in its handshake and a timer for the
// earliest handshake deadline. Whoever calls accept() (or wait(), through the listener's
// ready_now) takes the events under the listener's mutex, moves each handshake on with
// non-blocking reads and writes, and queues the connections that complete. A peer that
// stalls, sends garbage or the wrong MAC only ever costs the listener one short step.
#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>

#include "ipckit/connection.hpp"
#include "sys/deadline.hpp"
#include "sys/epoll.hpp"
#include "sys/io.hpp"
#include "sys/proc.hpp"
#include "sys/socket.hpp"
#include "transport/handshake.hpp"
#include "transport/stream_channel.hpp"

namespace ipckit {

using std::chrono::nanoseconds;

namespace {

std::span<const std::byte> key_bytes(const std::string& key) { return std::as_bytes(std::span(key)); }

// Writes the handshake's pending output on a non-blocking socket. Handshake messages are
// a few hundred bytes and the peer's socket buffer is empty, so a write that does not go
// through at once means a peer that does not read: false.
bool flush_nowait(int fd, transport::Handshake& handshake) {
  while (!handshake.output().empty()) {
    const sys::ConstBytes part = handshake.output();
    const auto r = sys::write_some(fd, std::span(&part, 1), true);
    if (!r.ok() || r.bytes == 0) return false;
    handshake.sent(r.bytes);
  }
  return true;
}

}  // namespace

struct Listener::State {
  State(sys::ListeningSocket s, std::optional<std::string> key, ListenerOptions o)
      : socket(std::move(s)), authkey(std::move(key)), options(std::move(o)) {
    subject = "listener " + socket.address;
    reset_events();
  }
  ~State() { sys::remove_socket_file(socket); }

  sys::ListeningSocket socket;
  std::optional<std::string> authkey;
  ListenerOptions options;
  std::string subject;

  std::atomic<bool> closed{false};

  // Everything below is guarded by `mutex`.
  std::mutex mutex;
  // close() writes a byte here (never read), which keeps the epoll set readable: threads
  // waiting in accept() or wait() wake and see `closed`.
  sys::UniqueFd wake_read;
  sys::UniqueFd wake_write;
  std::optional<sys::Epoll> epoll;
  std::optional<sys::Timer> timer;
  int owner = 0;  // the process whose epoll set this is (a forked child makes its own)

  struct Pending {
    sys::UniqueFd fd;
    std::string peer;
    transport::Handshake handshake;
    sys::Deadline deadline;
  };
  std::map<std::uint64_t, Pending> pending;  // by epoll key
  std::uint64_t next_key = kFirstPendingKey;

  struct Ready {
    sys::UniqueFd fd;
    std::string peer;
  };
  std::deque<Ready> ready;
  std::string last_accepted;
  std::vector<std::string> rejected;  // reasons to tell on_reject, outside the lock

  static constexpr std::uint64_t kListenKey = 0;
  static constexpr std::uint64_t kTimerKey = 1;
  static constexpr std::uint64_t kWakeKey = 2;
  static constexpr std::uint64_t kFirstPendingKey = 3;

  // A new epoll set, timer and wake pipe for this process. After fork the parent's are
  // shared with the child (an epoll set belongs to its open file description), and the
  // handshakes in progress are the parent's: the child drops its copies of them.
  void reset_events() {
    pending.clear();
    epoll.emplace(subject);
    timer.emplace(subject);
    auto [read_end, write_end] = sys::make_pipe(subject, true);
    wake_read = std::move(read_end);
    wake_write = std::move(write_end);
    if (socket.fd) epoll->add(socket.fd.get(), kListenKey);
    epoll->add(timer->fd(), kTimerKey);
    epoll->add(wake_read.get(), kWakeKey);
    owner = sys::current_pid();
  }

  // Stops listening; threads in accept() wake and throw, wait() reports the listener.
  void shut_down() {
    std::lock_guard lock(mutex);
    if (closed.exchange(true)) return;
    if (owner != sys::current_pid()) reset_events();  // leave the parent's set alone
    pending.clear();
    ready.clear();
    epoll->remove(socket.fd.get());
    socket.fd.reset();
    sys::remove_socket_file(socket);
    socket.path.clear();
    const std::byte wake{1};
    const sys::ConstBytes part(&wake, 1);
    sys::write_some(wake_write.get(), std::span(&part, 1), false);
  }

  void reject(std::uint64_t key, const std::string& why) {
    auto it = pending.find(key);
    if (it == pending.end()) return;
    flush_nowait(it->second.fd.get(), it->second.handshake);  // a #FAILURE# owed, best effort
    epoll->remove(it->second.fd.get());
    if (options.on_reject) rejected.push_back("listener " + socket.address + " turned away " + it->second.peer + ": " + why);
    pending.erase(it);
  }

  void admit(sys::AcceptedSocket accepted) {
    if (!authkey) {
      ready.push_back({std::move(accepted.fd), std::move(accepted.peer)});
      return;
    }
    sys::set_nonblocking(accepted.fd.get(), true, subject);
    const std::uint64_t key = next_key++;
    transport::Handshake handshake(transport::HandshakeRole::Deliver, key_bytes(*authkey), accepted.peer);
    auto [it, inserted] = pending.emplace(
        key, Pending{std::move(accepted.fd), std::move(accepted.peer), std::move(handshake),
                     sys::Deadline::after(options.handshake_timeout)});
    epoll->add(it->second.fd.get(), key);
    if (!flush_nowait(it->second.fd.get(), it->second.handshake)) reject(key, "it does not read");
  }

  // Moves one handshake on with what its socket holds. It reads no further than the
  // handshake: what follows (a message, a passed fd) is the connection's.
  void advance(std::uint64_t key) {
    auto it = pending.find(key);
    if (it == pending.end()) return;
    Pending& p = it->second;
    std::byte buffer[transport::kMaxHandshakeMessage + transport::kLongHeaderSize];
    while (!p.handshake.done()) {
      const auto r = sys::read_some_nowait(p.fd.get(), std::span(buffer).first(std::min(sizeof buffer, p.handshake.wanted())), true);
      if (!r.ok()) {
        if (sys::is_would_block(r.error)) return;
        return reject(key, "its connection failed during the handshake: " + sys::error_text(r.error));
      }
      if (r.bytes == 0) return reject(key, "it hung up during the handshake");
      try {
        p.handshake.feed(std::span(buffer, r.bytes));
      } catch (const AuthenticationError& e) {
        return reject(key, e.what());
      }
      if (!flush_nowait(p.fd.get(), p.handshake)) return reject(key, "it does not read");
    }
    epoll->remove(p.fd.get());
    sys::set_nonblocking(p.fd.get(), false, subject);
    ready.push_back({std::move(p.fd), std::move(p.peer)});
    pending.erase(it);
  }

  // Takes every event that is there, without blocking: new connections, handshake
  // messages, expired handshakes.
  void step() {
    if (closed) return;
    if (owner != sys::current_pid()) reset_events();
    std::uint64_t keys[64];
    for (;;) {
      const std::size_t n = epoll->take(keys, sys::Deadline::now());
      for (std::size_t i = 0; i < n; ++i) {
        if (keys[i] == kListenKey) {
          while (auto accepted = sys::accept_now(socket.fd.get(), subject)) admit(std::move(*accepted));
        } else if (keys[i] >= kFirstPendingKey) {
          advance(keys[i]);
        }
      }
      if (n < std::size(keys)) break;
    }
    sys::Deadline earliest = sys::Deadline::never();
    for (auto it = pending.begin(); it != pending.end();) {
      const auto key = (it++)->first;  // reject() erases
      const Pending& p = pending.at(key);
      if (p.deadline.expired()) {
        reject(key, "it did not finish the handshake in time");
      } else if (p.deadline.time_point() < earliest.time_point()) {
        earliest = p.deadline;
      }
    }
    timer->arm(earliest);  // also clears an expiry that fired
  }

  std::optional<Ready> take_ready() {
    if (ready.empty()) return std::nullopt;
    Ready r = std::move(ready.front());
    ready.pop_front();
    last_accepted = r.peer;
    return r;
  }

  void tell_rejections(std::vector<std::string>& reasons) const {
    for (const auto& why : reasons) options.on_reject(AuthenticationError(why));
    reasons.clear();
  }

  std::optional<Connection> accept(const sys::Deadline& deadline) {
    for (;;) {
      std::optional<Ready> got;
      std::vector<std::string> reasons;
      {
        std::lock_guard lock(mutex);
        if (closed) throw ValueError("accept on " + subject + ": the listener is closed");
        step();
        got = take_ready();
        reasons.swap(rejected);
      }
      tell_rejections(reasons);
      if (got) {
        const int fd = got->fd.release();
        return detail::adopt_socket(fd, "connection from " + got->peer, options.connection);
      }
      if (!sys::wait_readable(epoll_fd(), deadline)) return std::nullopt;
    }
  }

  int epoll_fd() {
    std::lock_guard lock(mutex);
    return epoll->fd();
  }
};

Listener::Listener() noexcept = default;

Listener::Listener(std::string_view address, std::optional<std::string> authkey, ListenerOptions options) {
  const sys::SocketAddress parsed = sys::parse_address(address);
  if (options.backlog < 1) throw ValueError("Listener " + std::string(address) + ": the backlog must be at least 1");
  sys::ListeningSocket socket = sys::listen_at(parsed, options.backlog, address);
  state_ = std::make_unique<State>(std::move(socket), std::move(authkey), std::move(options));
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;

Connection Listener::accept() {
  if (closed()) throw ValueError("accept on a closed listener");
  return *state_->accept(sys::Deadline::never());
}

std::optional<Connection> Listener::accept(nanoseconds timeout) {
  if (closed()) throw ValueError("accept on a closed listener");
  return state_->accept(sys::Deadline::after(timeout));
}

void Listener::close() {
  if (state_) state_->shut_down();
}
bool Listener::closed() const noexcept { return !state_ || state_->closed; }

const std::string& Listener::address() const {
  if (closed()) throw ValueError("address of a closed listener");
  return state_->socket.address;
}

std::string Listener::last_accepted() const {
  if (!state_) return {};
  std::lock_guard lock(state_->mutex);
  return state_->last_accepted;
}

int Listener::fileno() const {
  if (closed()) throw ValueError("fileno of a closed listener");
  return state_->epoll_fd();
}

WaitHandle Listener::wait_handle() const {
  return WaitHandle{fileno(), state_.get(),
                    [](const void* raw) {
                      auto& s = *const_cast<State*>(static_cast<const State*>(raw));
                      std::vector<std::string> reasons;
                      bool any = false;
                      {
                        std::lock_guard lock(s.mutex);
                        s.step();
                        any = s.closed || !s.ready.empty();  // closed: accept() says so
                        reasons.swap(s.rejected);
                      }
                      s.tell_rejections(reasons);
                      return any;
                    },
                    true};
}

Connection Client(std::string_view address, std::optional<std::string> authkey,
                  std::optional<nanoseconds> timeout, ConnectionOptions options) {
  const sys::Deadline deadline = sys::Deadline::within(timeout);
  const sys::SocketAddress parsed = sys::parse_address(address);
  sys::UniqueFd fd = sys::connect_to(parsed, deadline, address);
  const std::string subject = "connection to " + std::string(address);
  if (authkey) {
    transport::Handshake handshake(transport::HandshakeRole::Answer, key_bytes(*authkey),
                                   "listener " + std::string(address));
    std::byte buffer[transport::kMaxHandshakeMessage + transport::kLongHeaderSize];
    const auto send_output = [&] {
      while (!handshake.output().empty()) {
        const sys::ConstBytes part = handshake.output();
        const auto r = sys::write_some(fd.get(), std::span(&part, 1), true);
        if (!r.ok()) {
          if (sys::is_peer_gone(r.error))
            throw ConnectionClosed("Client " + std::string(address) + ": the listener closed the connection during the handshake");
          sys::throw_os_error(r.error, "send", subject);
        }
        handshake.sent(r.bytes);
      }
    };
    while (!handshake.done()) {
      send_output();
      if (handshake.done()) break;
      // Our challenge went out with our answer; a listener that sends its verdict and its
      // answer as two writes with Nagle's algorithm on (CPython's) holds the second until
      // the first is acknowledged: acknowledge at once, not after the delayed-ACK timer.
      sys::acknowledge_at_once(fd.get());
      if (!sys::wait_readable(fd.get(), deadline))
        throw TimeoutError("Client " + std::string(address) + ": the handshake did not finish in time");
      const auto r = sys::read_some(fd.get(), std::span(buffer).first(std::min(sizeof buffer, handshake.wanted())));
      if (!r.ok() && !sys::is_peer_gone(r.error)) sys::throw_os_error(r.error, "recv", subject);
      if (!r.ok() || r.bytes == 0)
        throw ConnectionClosed("Client " + std::string(address) + ": the listener closed the connection during the handshake");
      try {
        handshake.feed(std::span(buffer, r.bytes));
      } catch (const AuthenticationError&) {
        try {
          send_output();  // the #FAILURE# the listener is owed
        } catch (const Error&) {
        }
        throw;
      }
    }
  }
  return detail::adopt_socket(fd.release(), subject, options);
}

}  // namespace ipckit
