// Connection: the user-facing end of a StreamChannel, with one lock per direction; for a
// shared-memory Pipe, of two transport::Rings (one per direction) whose wake socket is
// the channel's fd.
//
// Locks: send_mutex serialises whole frames on the way out; recv_mutex guards the
// channel's receive buffer. They are independent, so one thread may block in recv while
// another sends. `closed`, `readable` and `max_message_size` are atomics so that
// wait(), poll() callers and close() can read them without either lock.
#include "ipckit/connection.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <mutex>
#include <new>
#include <optional>

#include "sys/deadline.hpp"
#include "sys/mapping.hpp"
#include "sys/notify.hpp"
#include "sys/spin.hpp"
#include "transport/shm_ring.hpp"
#include "transport/stream_channel.hpp"

namespace ipckit {

using std::chrono::nanoseconds;

namespace {

// The shared memory of a Pipe's rings: for each direction, the ring's control block in
// one page, then its data. Both ends (and forked copies of them) share it.
constexpr std::size_t kRingControl = 4096;
constexpr std::uint64_t kPipeMaxMessage = std::uint64_t{1} << 62;  // the receiver's limit applies

struct PipeMemory {
  sys::Mapping mapping;
  std::size_t capacity = 0;
  transport::RingLayout* layout(int ring) const {
    return reinterpret_cast<transport::RingLayout*>(mapping.data() + static_cast<std::size_t>(ring) * (kRingControl + capacity));
  }
  std::byte* data(int ring) const { return reinterpret_cast<std::byte*>(layout(ring)) + kRingControl; }
};

// How often (in sends) a sender whose peer has taken nothing since checks that the peer
// is still there.
constexpr unsigned kSendsBetweenPeerChecks = 64;

}  // namespace

struct Connection::State {
  State(sys::UniqueFd fd, bool r, bool w, ConnectionOptions options)
      : channel(make_channel(std::move(fd))),
        readable(r),
        writable(w),
        max_message_size(options.max_message_size) {}

  static transport::StreamChannel make_channel(sys::UniqueFd fd) {
    std::string subject = "connection fd " + std::to_string(fd.get());
    return transport::StreamChannel(std::move(fd), std::move(subject));
  }

  transport::StreamChannel channel;  // fd: guarded by both mutexes for close
  std::mutex send_mutex;
  std::mutex recv_mutex;
  std::atomic<bool> readable;
  const bool writable;
  std::atomic<bool> closed{false};
  std::atomic<std::size_t> max_message_size;

  void require_open(const char* what) const {
    if (closed.load(std::memory_order_acquire))
      throw ValueError(std::string(what) + " on a closed connection");
  }
  void require_readable(const char* what) const {
    require_open(what);
    if (!readable.load(std::memory_order_acquire))
      throw ValueError(std::string(what) + " on " + channel.subject() + ": it is not readable" +
                       (poisoned ? " any more (an earlier message broke the limit or the format)" : ""));
  }
  std::atomic<bool> poisoned{false};  // set under recv_mutex, read without it
  void poison() {
    poisoned = true;
    readable = false;
  }

  // A shared-memory Pipe's end: the rings it receives from and sends to, each with its
  // own wake socket (the channel's fd for the first), so that a thread waiting to receive
  // and one waiting to send never take each other's wake-up.
  std::shared_ptr<PipeMemory> memory;
  std::optional<transport::Ring> in;
  std::optional<transport::Ring> out;
  sys::UniqueFd second_socket;   // the out ring's, when the end has both
  std::uint64_t last_taken = 0;  // guarded by send_mutex
  unsigned sends_unchecked = 0;
  int out_socket() const { return second_socket ? second_socket.get() : channel.fd(); }
  void attach(std::shared_ptr<PipeMemory> m, int in_ring, int out_ring, sys::UniqueFd out_fd) {
    memory = std::move(m);
    second_socket = std::move(out_fd);
    const std::size_t bytes = memory->capacity;
    if (in_ring >= 0)
      in.emplace(memory->layout(in_ring), memory->data(in_ring), bytes, channel.subject(), channel.fd());
    if (out_ring >= 0)
      out.emplace(memory->layout(out_ring), memory->data(out_ring), bytes, channel.subject(), out_socket());
  }
  // Drains the wake socket, arms it, and says whether a message (or the end) is there.
  bool ring_ready() { return in->poll_wake_socket(); }
};

Connection::Connection() noexcept = default;

Connection::Connection(int fd, bool readable, bool writable, ConnectionOptions options) {
  if (fd < 0) throw ValueError("Connection: invalid fd " + std::to_string(fd));
  sys::UniqueFd owned(fd);
  if (!readable && !writable) throw ValueError("Connection: at least one of readable and writable must be true");
  state_ = std::make_unique<State>(std::move(owned), readable, writable, options);
}

Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;  // StreamChannel closes the fd

void Connection::send_bytes(std::span<const std::byte> data, std::size_t offset,
                            std::optional<std::size_t> size) {
  if (offset > data.size()) throw ValueError("send_bytes: offset is beyond the end of the buffer");
  const std::size_t count = size.value_or(data.size() - offset);
  if (count > data.size() - offset) throw ValueError("send_bytes: offset + size is beyond the end of the buffer");
  State& s = state("send_bytes");
  s.require_open("send_bytes");
  if (!s.writable) throw ValueError("send_bytes on " + s.channel.subject() + ": it is not writable");
  const sys::ConstBytes part = data.subspan(offset, count);
  std::lock_guard lock(s.send_mutex);
  s.require_open("send_bytes");
  if (!s.out) {
    s.channel.send(std::span(&part, 1));
    return;
  }
  s.out->put(std::span(&part, 1), sys::Deadline::never());
  // A peer that has taken nothing for a while may have gone: ask the socket.
  if (++s.sends_unchecked < kSendsBetweenPeerChecks) return;
  s.sends_unchecked = 0;
  const std::uint64_t taken = s.out->taken();
  if (taken == s.last_taken && sys::peer_hung_up(s.out_socket()))
    throw ConnectionClosed("send_bytes on " + s.channel.subject() + ": the receiving end is closed");
  s.last_taken = taken;
}

namespace {

// Receives one message and hands it to `sink` while it is still in the channel's buffer.
// False on timeout. A message over `limit` or a broken frame leaves the connection
// unreadable, as Python's Connection does after a bad length.
// A shared-memory Pipe's receive: the ring hands the message over where it lies, or
// assembles a chunked one in `direct` (when it fits) or in `allocate`.
struct RingReceive {
  void (*sink)(void*, std::span<const std::byte>);
  void* context;
  std::size_t limit;
  std::span<std::byte> direct;
  Bytes* allocate;
  const std::string* subject;

  void check(std::size_t size) const {
    if (size > limit)
      throw MessageTooLarge("recv on " + *subject + ": a message of " + std::to_string(size) +
                                " bytes is over the limit of " + std::to_string(limit),
                            size, limit);
  }
  static std::span<std::byte> reserve(void* raw, std::size_t total) {
    auto& r = *static_cast<RingReceive*>(raw);
    r.check(total);
    if (total <= r.direct.size()) return r.direct.first(total);
    if (r.allocate == nullptr) return {};
    r.allocate->resize(total);
    return *r.allocate;
  }
  static bool deliver(void* raw, std::span<const std::byte> message) {
    auto& r = *static_cast<RingReceive*>(raw);
    r.check(message.size());
    try {
      r.sink(r.context, message);
    } catch (DecodeError& e) {
      e.set_payload(Bytes(message.begin(), message.end()));
      throw;
    }
    return true;
  }
};

bool receive(Connection::State& s, void (*sink)(void*, std::span<const std::byte>), void* context,
             const sys::Deadline& deadline, std::optional<std::size_t> maxlength,
             std::span<std::byte> direct = {}, Bytes* allocate = nullptr) {
  s.require_readable("recv");
  std::lock_guard lock(s.recv_mutex);
  s.require_readable("recv");
  std::size_t limit = s.max_message_size.load(std::memory_order_relaxed);
  if (maxlength && *maxlength < limit) limit = *maxlength;
  if (s.in) {
    RingReceive r{sink, context, limit, direct, allocate, &s.channel.subject()};
    try {
      return s.in->get(transport::RingSink{&RingReceive::deliver, &RingReceive::reserve, &r}, 1, deadline) != 0;
    } catch (const MessageTooLarge&) {
      s.poison();  // as a socket's Connection (and Python's) after an oversized frame
      throw;
    }
  }
  std::optional<std::span<const std::byte>> message;
  try {
    message = s.channel.recv(deadline, limit, direct);
  } catch (const MessageTooLarge&) {
    s.poison();
    throw;
  } catch (const ProtocolError&) {
    if (!s.channel.handle_next()) s.poison();  // a handle is next: recv_handle takes it
    throw;
  }
  if (!message) return false;
  try {
    sink(context, *message);
  } catch (DecodeError& e) {
    e.set_payload(s.channel.take_payload(*message));
    throw;
  }
  return true;
}

struct TakeBytes {
  Connection::State* state;
  std::optional<Bytes> out;
  Bytes assembled;  // a shared-memory Pipe's chunked message, assembled here
  static void sink(void* raw, std::span<const std::byte> message) {
    auto& self = *static_cast<TakeBytes*>(raw);
    if (self.state->in)
      self.out.emplace(message.data() == self.assembled.data() ? std::move(self.assembled)
                                                               : Bytes(message.begin(), message.end()));
    else
      self.out.emplace(self.state->channel.take_payload(message));
  }
};

}  // namespace

Connection::State& Connection::state(const char* what) const {
  if (!state_) throw ValueError(std::string(what) + " on a closed connection");
  return *state_;
}

bool Connection::recv_to(Sink sink, void* context, std::optional<nanoseconds> timeout) {
  return receive(state("recv"), sink, context, sys::Deadline::within(timeout), std::nullopt);
}

Bytes Connection::recv_bytes(std::optional<std::size_t> maxlength) {
  TakeBytes take{&state("recv_bytes"), std::nullopt, {}};
  receive(*take.state, &TakeBytes::sink, &take, sys::Deadline::never(), maxlength, {}, &take.assembled);
  return std::move(*take.out);
}

std::optional<Bytes> Connection::recv_bytes(nanoseconds timeout) {
  TakeBytes take{&state("recv_bytes"), std::nullopt, {}};
  receive(*take.state, &TakeBytes::sink, &take, sys::Deadline::after(timeout), std::nullopt, {}, &take.assembled);
  return std::move(take.out);
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  if (offset > buffer.size()) throw ValueError("recv_bytes_into: offset is beyond the end of the buffer");
  struct Context {
    State* state;
    std::span<std::byte> into;
    std::size_t size = 0;
  } context{&state("recv_bytes_into"), buffer.subspan(offset)};
  receive(*context.state,
      [](void* raw, std::span<const std::byte> message) {
        auto& c = *static_cast<Context*>(raw);
        c.size = message.size();
        if (message.size() > c.into.size()) {
          throw BufferTooShort("recv_bytes_into: a message of " + std::to_string(message.size()) +
                                   " bytes does not fit the " + std::to_string(c.into.size()) +
                                   " bytes of buffer; the message is in BufferTooShort::message()",
                               c.state->in ? Bytes(message.begin(), message.end())
                                           : c.state->channel.take_payload(message));
        }
        if (message.data() != c.into.data())  // a large message was read straight in
          std::copy(message.begin(), message.end(), c.into.begin());
      },
      &context, sys::Deadline::never(), std::nullopt, context.into);
  return context.size;
}

bool Connection::poll(std::optional<nanoseconds> timeout) {
  State& s = state("poll");
  s.require_readable("poll");
  if (s.in) {
    const sys::Deadline deadline = sys::Deadline::within(timeout);
    if (s.ring_ready()) return true;
    if (deadline.expired()) return false;
    if (sys::spin_until([&] { return s.in->ready(); })) return true;
    for (;;) {
      if (s.ring_ready()) return true;
      if (!sys::wait_readable(s.channel.fd(), deadline)) return s.ring_ready();
    }
  }
  if (s.channel.has_buffered_frame()) return true;
  s.channel.before_waiting();
  return sys::wait_readable(s.channel.fd(), sys::Deadline::within(timeout));
}

void Connection::close() {
  if (!state_) return;
  State& s = *state_;
  if (s.closed.exchange(true)) return;
  // No shutdown(): after fork the socket is shared, and shutdown would end the peer's
  // copy too. Closing just this fd waits for a send or recv another thread has in flight.
  std::scoped_lock lock(s.send_mutex, s.recv_mutex);
  s.channel.close();
  s.second_socket.reset();
}

bool Connection::closed() const noexcept { return !state_ || state_->closed.load(); }
bool Connection::readable() const noexcept { return state_ && !closed() && state_->readable.load(); }
bool Connection::writable() const noexcept { return state_ && !closed() && state_->writable; }

int Connection::fileno() const {
  if (closed()) throw ValueError("fileno of a closed connection");
  return state_->channel.fd();
}

std::size_t Connection::max_message_size() const noexcept {
  return state_ ? state_->max_message_size.load() : kDefaultMaxMessageSize;
}

void Connection::set_max_message_size(std::size_t limit) noexcept {
  if (state_) state_->max_message_size = limit;
}

WaitHandle Connection::wait_handle() const {
  return WaitHandle{fileno(), state_.get(), [](const void* state) {
                      auto& s = *const_cast<State*>(static_cast<const State*>(state));
                      return s.in ? s.ring_ready() : s.channel.has_buffered_frame();
                    }};
}

void Connection::send_handle(int fd) {
  State& s = state("send_handle");
  s.require_open("send_handle");
  if (!s.writable) throw ValueError("send_handle on " + s.channel.subject() + ": it is not writable");
  if (s.out) throw ValueError("send_handle on " + s.channel.subject() + ": a shared-memory Pipe carries no handles (use Pipe with shared_memory = false)");
  std::lock_guard lock(s.send_mutex);
  s.require_open("send_handle");
  s.channel.send_handle(fd);
}

int Connection::recv_handle() {
  State& s = state("recv_handle");
  s.require_readable("recv_handle");
  if (s.in) throw ValueError("recv_handle on " + s.channel.subject() + ": a shared-memory Pipe carries no handles (use Pipe with shared_memory = false)");
  std::lock_guard lock(s.recv_mutex);
  s.require_readable("recv_handle");
  return s.channel.recv_handle().release();
}

namespace detail {

Connection adopt_socket(int fd, std::string subject, ConnectionOptions options) {
  Connection connection(fd, true, true, options);
  connection.state_->channel.set_subject(std::move(subject));
  return connection;
}

}  // namespace detail

std::pair<Connection, Connection> Pipe(bool duplex, ConnectionOptions options) {
  auto [a, b] = sys::socket_pair("Pipe()");
  if (options.shared_memory) {
    // Ring 0 carries what the second end sends to the first, and socket pair (a, b) wakes
    // its waiters; ring 1 and pair (c, d) the other way.
    auto memory = std::make_shared<PipeMemory>();
    memory->capacity = std::bit_ceil(std::clamp(options.ring_capacity, transport::kMinRingCapacity,
                                                transport::kMaxRingCapacity));
    const int rings = duplex ? 2 : 1;
    memory->mapping = sys::map_anonymous(static_cast<std::size_t>(rings) * (kRingControl + memory->capacity), "Pipe()");
    for (int i = 0; i < rings; ++i)
      transport::Ring::init(*new (memory->layout(i)) transport::RingLayout{},
                            {memory->capacity, kPipeMaxMessage, 0}, 0);
    if (!duplex) {
      Connection first(a.release(), true, false, options);
      Connection second(b.release(), false, true, options);
      first.state_->attach(memory, 0, -1, {});
      second.state_->attach(memory, -1, 0, {});
      return {std::move(first), std::move(second)};
    }
    auto [c, d] = sys::socket_pair("Pipe()");
    Connection first(a.release(), true, true, options);
    Connection second(d.release(), true, true, options);
    first.state_->attach(memory, 0, 1, std::move(c));
    second.state_->attach(memory, 1, 0, std::move(b));
    return {std::move(first), std::move(second)};
  }
  if (!duplex) {
    // One direction, as Python's Pipe(duplex=False): a receives, b sends. A socket pair
    // (not pipe2) so that sends never raise SIGPIPE (MSG_NOSIGNAL).
    sys::shutdown_socket(a.get(), sys::Shutdown::Write);
    sys::shutdown_socket(b.get(), sys::Shutdown::Read);
  }
  const int fa = a.release();
  const int fb = b.release();
  Connection first(fa, true, duplex, options);
  Connection second(fb, duplex, true, options);
  return {std::move(first), std::move(second)};
}

}  // namespace ipckit
