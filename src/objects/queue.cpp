// ByteQueue and JoinableByteQueue: a transport::Ring in a shared region.
//
// The object (docs/formats/queue.md): the 16-byte ObjectHeader, the offset of the data,
// the ring's control block at byte 64, the data ring at byte 4096.
#include "ipckit/queue.hpp"

#include <bit>
#include <mutex>
#include <new>
#include <random>

#include "objects/shared_region.hpp"
#include "objects/sync_layout.hpp"
#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/notify.hpp"
#include "sys/proc.hpp"
#include "sys/unique_fd.hpp"
#include "transport/shm_ring.hpp"

namespace ipckit {

using detail::How;
using detail::ObjectKind;
using detail::SharedRegion;
using transport::Ring;
using transport::RingLayout;

namespace {

struct QueueLayout {
  detail::ObjectHeader header;  // 0
  std::uint32_t data_offset;    // 16: detail::kQueueDataOffset
  std::uint32_t reserved[11];   // 20
  RingLayout ring;              // 64
};
static_assert(offsetof(QueueLayout, data_offset) == 16 && offsetof(QueueLayout, ring) == 64 &&
              sizeof(QueueLayout) <= detail::kQueueDataOffset);

transport::RingConfig config_for(const QueueOptions& o) {
  if (o.capacity_bytes > transport::kMaxRingCapacity)
    throw ValueError("a queue's capacity_bytes may be at most 1 GiB, not " + std::to_string(o.capacity_bytes));
  const std::size_t capacity = std::bit_ceil(std::max(o.capacity_bytes, transport::kMinRingCapacity));
  if (o.maxsize > 0x7fffffff) throw ValueError("a queue's maxsize may be at most 2^31 - 1");
  return {capacity, o.max_message_size, o.maxsize};
}

std::shared_ptr<SharedRegion> make_queue_region(How how, std::string_view name, ObjectKind kind,
                                                const QueueOptions& options) {
  const transport::RingConfig config = how == How::kOpen ? transport::RingConfig{} : config_for(options);
  return detail::make_region(how, name, kind, detail::kQueueDataOffset + config.capacity, [&](std::byte* object) {
    auto* q = new (object) QueueLayout{};
    q->data_offset = detail::kQueueDataOffset;
    Ring::init(q->ring, config, std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32));
  });
}

}  // namespace

struct ByteQueue::State {
  State(std::shared_ptr<SharedRegion> r)
      : region(std::move(r)),
        ring(&std::launder(reinterpret_cast<QueueLayout*>(region->object()))->ring,
             region->object() + detail::kQueueDataOffset, region->size() - detail::kQueueDataOffset,
             region->describe()) {
    if (std::launder(reinterpret_cast<QueueLayout*>(region->object()))->data_offset != detail::kQueueDataOffset)
      throw ValueError(region->describe() + " has its data at an unknown offset");
  }

  // The poll socket of this process (made on first use; a forked child makes its own).
  int poll_fd() {
    std::lock_guard lock(poll_mutex);
    if (poll_socket && poll_pid == sys::current_pid()) return poll_socket.get();
    poll_socket.reset();
    for (unsigned slot = 0; slot < transport::kPollSlots; ++slot) {
      sys::UniqueFd fd = sys::bind_notify_socket(ring.poll_name(slot));
      if (!fd) continue;
      poll_socket = std::move(fd);
      poll_slot = slot;
      poll_pid = sys::current_pid();
      return poll_socket.get();
    }
    throw Error(ring.description() + ": more than " + std::to_string(transport::kPollSlots) +
                " processes are waiting on it with wait() or fileno()");
  }
  // Drains the socket, arms it, and says whether the queue is ready.
  bool rearm() {
    const int fd = poll_fd();
    sys::drain_notify(fd);
    return ring.arm(poll_slot);
  }

  std::shared_ptr<SharedRegion> region;
  Ring ring;
  std::mutex poll_mutex;
  sys::UniqueFd poll_socket;
  unsigned poll_slot = 0;
  int poll_pid = 0;
};

ByteQueue::ByteQueue(QueueOptions options) : ByteQueue(Kind::Plain, static_cast<int>(How::kAnonymous), {}, options) {}

ByteQueue::ByteQueue(Kind kind, int how, std::string_view name, QueueOptions options)
    : state_(std::make_unique<State>(make_queue_region(
          static_cast<How>(how), name, kind == Kind::Joinable ? ObjectKind::JoinableQueue : ObjectKind::Queue,
          options))) {}

ByteQueue ByteQueue::create(std::string_view name, QueueOptions options) {
  return ByteQueue(Kind::Plain, static_cast<int>(How::kCreate), name, options);
}
ByteQueue ByteQueue::open(std::string_view name) {
  return ByteQueue(Kind::Plain, static_cast<int>(How::kOpen), name, {});
}
ByteQueue ByteQueue::open_or_create(std::string_view name, QueueOptions options) {
  return ByteQueue(Kind::Plain, static_cast<int>(How::kOpenOrCreate), name, options);
}

JoinableByteQueue::JoinableByteQueue(QueueOptions options)
    : ByteQueue(Kind::Joinable, static_cast<int>(How::kAnonymous), {}, options) {}
JoinableByteQueue JoinableByteQueue::create(std::string_view name, QueueOptions options) {
  return JoinableByteQueue(Kind::Joinable, static_cast<int>(How::kCreate), name, options);
}
JoinableByteQueue JoinableByteQueue::open(std::string_view name) {
  return JoinableByteQueue(Kind::Joinable, static_cast<int>(How::kOpen), name, {});
}
JoinableByteQueue JoinableByteQueue::open_or_create(std::string_view name, QueueOptions options) {
  return JoinableByteQueue(Kind::Joinable, static_cast<int>(How::kOpenOrCreate), name, options);
}

ByteQueue::ByteQueue(ByteQueue&&) noexcept = default;
ByteQueue& ByteQueue::operator=(ByteQueue&&) noexcept = default;
ByteQueue::~ByteQueue() = default;

ByteQueue::State& ByteQueue::state() const {
  if (!state_) throw ValueError("use of a moved-from queue");
  return *state_;
}

void ByteQueue::put(std::span<const std::byte> message) { state().ring.put({&message, 1}, sys::Deadline::never()); }

bool ByteQueue::put(std::span<const std::byte> message, Timeout timeout) {
  return state().ring.put({&message, 1}, sys::Deadline::after(timeout)) == 1;
}

void ByteQueue::put_many(std::span<const std::span<const std::byte>> messages) {
  state().ring.put(messages, sys::Deadline::never());
}

std::size_t ByteQueue::put_many(std::span<const std::span<const std::byte>> messages, Timeout timeout) {
  return state().ring.put(messages, sys::Deadline::after(timeout));
}

std::size_t ByteQueue::get_to(Sink sink, void* context, std::size_t max_items, std::optional<Timeout> timeout) {
  if (max_items == 0) return 0;
  return state().ring.get(transport::RingSink{sink, nullptr, context}, max_items, sys::Deadline::within(timeout));
}

namespace {

bool copy_to_optional(void* context, std::span<const std::byte> message) {
  static_cast<std::optional<Bytes>*>(context)->emplace(message.begin(), message.end());
  return true;
}

bool copy_to_vector(void* context, std::span<const std::byte> message) {
  static_cast<std::vector<Bytes>*>(context)->emplace_back(message.begin(), message.end());
  return true;
}

struct Into {
  std::span<std::byte> buffer;
  std::size_t size = 0;
  // A chunked message goes straight into the buffer when it fits (else it is assembled,
  // and sink() refuses it with a copy).
  static std::span<std::byte> reserve(void* context, std::size_t total) {
    auto& self = *static_cast<Into*>(context);
    return total <= self.buffer.size() ? self.buffer.first(total) : std::span<std::byte>();
  }
  static bool sink(void* context, std::span<const std::byte> message) {
    auto& self = *static_cast<Into*>(context);
    if (message.size() > self.buffer.size())
      throw BufferTooShort("a " + std::to_string(message.size()) + "-byte message does not fit a buffer of " +
                               std::to_string(self.buffer.size()) + " bytes",
                           Bytes(message.begin(), message.end()));
    if (message.data() != self.buffer.data()) std::copy(message.begin(), message.end(), self.buffer.begin());
    self.size = message.size();
    return true;
  }
};

}  // namespace

Bytes ByteQueue::get() {
  std::optional<Bytes> out;
  get_to(&copy_to_optional, &out, 1, std::nullopt);
  return std::move(*out);
}

std::optional<Bytes> ByteQueue::get(Timeout timeout) {
  std::optional<Bytes> out;
  get_to(&copy_to_optional, &out, 1, timeout);
  return out;
}

std::size_t ByteQueue::get_into(std::span<std::byte> buffer) {
  Into into{buffer};
  state().ring.get(transport::RingSink{&Into::sink, &Into::reserve, &into}, 1, sys::Deadline::never());
  return into.size;
}

std::vector<Bytes> ByteQueue::get_many(std::size_t max_items, std::optional<Timeout> timeout) {
  std::vector<Bytes> out;
  get_to(&copy_to_vector, &out, max_items, timeout);
  return out;
}

std::size_t ByteQueue::qsize() const { return state().ring.size(); }
bool ByteQueue::full() const { return state().ring.full(); }
void ByteQueue::close() { state().ring.close(); }
bool ByteQueue::closed() const { return state().ring.closed(); }
std::size_t ByteQueue::maxsize() const noexcept { return state_ ? state_->ring.layout().maxsize : 0; }
std::size_t ByteQueue::capacity_bytes() const noexcept { return state_ ? state_->ring.layout().capacity : 0; }
std::size_t ByteQueue::max_message_size() const noexcept { return state_ ? state_->ring.layout().max_message : 0; }

const std::string& ByteQueue::name() const noexcept {
  static const std::string none;
  return state_ ? state_->region->name() : none;
}

void ByteQueue::unlink() { state().region->unlink(); }

int ByteQueue::fileno() const { return state().poll_fd(); }

bool ByteQueue::poll(std::optional<Timeout> timeout) const {
  State& s = state();
  const sys::Deadline deadline = sys::Deadline::within(timeout);
  for (;;) {
    if (s.rearm()) return true;
    if (!sys::wait_readable(s.poll_fd(), deadline)) return s.rearm();
  }
}

WaitHandle ByteQueue::wait_handle() const {
  State& s = state();
  return WaitHandle{s.poll_fd(), &s, [](const void* object) {
                      return const_cast<State*>(static_cast<const State*>(object))->rearm();
                    }};
}

void ByteQueue::task_done() { state().ring.task_done(); }
bool ByteQueue::join(std::optional<Timeout> timeout) { return state().ring.join(sys::Deadline::within(timeout)); }

}  // namespace ipckit
