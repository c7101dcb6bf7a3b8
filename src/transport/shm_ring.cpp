#include "transport/shm_ring.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "ipckit/error.hpp"
#include "sys/futex.hpp"
#include "sys/notify.hpp"
#include "sys/spin.hpp"

namespace ipckit::transport {
namespace {

constexpr std::uint32_t count_of(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32); }
constexpr std::uint32_t units_of(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word); }
constexpr std::uint64_t make_word(std::uint32_t count, std::uint32_t units) noexcept {
  return (std::uint64_t{count} << 32) | units;
}
constexpr std::uint64_t record_bytes(std::size_t length) noexcept {
  return kRecordHeader + ((length + 7) & ~std::size_t{7});
}

// The futex word of a tail or head: its count, the high half (little-endian).
const std::atomic<std::uint32_t>& count_word(const std::atomic<std::uint64_t>& word) noexcept {
  static_assert(std::endian::native == std::endian::little);
  return *reinterpret_cast<const std::atomic<std::uint32_t>*>(reinterpret_cast<const char*>(&word) + 4);
}

// A record's header: one 64-bit word, its sequence (the item's count: low 32 bits of how
// many were put before it) above its length, with kCommitted set. Zero is "nothing yet".
constexpr std::uint32_t kCommitted = std::uint32_t{1} << 31;
constexpr std::uint64_t header_word(std::uint32_t sequence, std::size_t length) noexcept {
  return (std::uint64_t{sequence} << 32) | kCommitted | static_cast<std::uint32_t>(length);
}
constexpr bool committed(std::uint64_t header) noexcept { return (header & kCommitted) != 0; }
constexpr std::uint32_t sequence_of(std::uint64_t header) noexcept { return static_cast<std::uint32_t>(header >> 32); }
constexpr std::size_t length_of(std::uint64_t header) noexcept { return static_cast<std::uint32_t>(header) & ~kCommitted; }

// A message that wraps around the end of the ring is copied here to be handed on whole.
thread_local std::vector<std::byte> wrapped_copy;

// A consumer waiting for an item looks often: that is its latency. A producer waiting
// for room looks rarely and long: each look costs the consumer the cache line of `head`,
// and a full ring is the case where consumers have the most to do.
constexpr Ring::Patience kEmptyPatience{sys::kSpinTime, 1};
constexpr Ring::Patience kFullPatience{std::chrono::microseconds(20), 64};

}  // namespace

void Ring::init(RingLayout& layout, const RingConfig& config, std::uint64_t id) {
  layout.capacity = config.capacity;
  layout.max_message = config.max_message;
  layout.maxsize = config.maxsize;
  layout.id = id;
  sys::robust_mutex_init(layout.put_lock, false);
  sys::robust_mutex_init(layout.get_lock, false);
}

Ring::Ring(RingLayout* layout, std::byte* data, std::size_t data_bytes, std::string description)
    : layout_(layout), data_(data), mask_(layout->capacity - 1), description_(std::move(description)) {
  const std::uint64_t capacity = layout->capacity;
  if (capacity < kMinRingCapacity || capacity > kMaxRingCapacity || !std::has_single_bit(capacity) ||
      capacity > data_bytes || layout->max_message + 2 * kRecordHeader > capacity)
    throw ValueError(description_ + " has an impossible layout (ring of " + std::to_string(capacity) +
                     " bytes in " + std::to_string(data_bytes) + ", messages up to " +
                     std::to_string(layout->max_message) + ")");
}

Ring::Locked Ring::lock(sys::RobustMutex& mutex, const sys::Deadline& deadline) {
  sys::MutexLock r = sys::robust_mutex_try_lock(mutex);
  if (r == sys::MutexLock::TimedOut && !deadline.expired()) {
    // The other holder's turn is short: spin for it before sleeping in the kernel.
    sys::spin_until([&] {
      return sys::robust_mutex_looks_free(mutex) && (r = sys::robust_mutex_try_lock(mutex)) != sys::MutexLock::TimedOut;
    });
    if (r == sys::MutexLock::TimedOut) r = sys::robust_mutex_lock(mutex, deadline);
  }
  switch (r) {
    case sys::MutexLock::Acquired: return Locked::Yes;
    case sys::MutexLock::OwnerDied:
      // What the dead holder did is either published or invisible (see the top of
      // shm_ring.hpp); the caller rolls forward what it can.
      sys::robust_mutex_consistent(mutex);
      return Locked::AfterDeath;
    case sys::MutexLock::TimedOut: return Locked::No;
    case sys::MutexLock::NotRecoverable: break;
  }
  throw Error(description_ + ": a lock of the ring is unrecoverable");
}

std::uint64_t Ring::header_at(std::uint64_t word) const noexcept {
  auto* p = reinterpret_cast<std::uint64_t*>(data_ + ((std::uint64_t{units_of(word)} * 8) & mask_));
  return std::atomic_ref<std::uint64_t>(*p).load(std::memory_order_acquire);
}

bool Ring::wait_for_change(const std::atomic<std::uint64_t>& word, std::uint32_t seen,
                           std::atomic<std::uint32_t>& sleepers, const sys::Deadline& deadline,
                           const std::function<bool()>& ready, const Patience& patience) {
  auto changed = [&] { return ready() || layout_->closed.load(std::memory_order_relaxed) != 0; };
  if (deadline.expired()) return changed();
  if (sys::spin_until(changed, patience.spin_time, patience.pauses)) return true;
  for (;;) {
    const sys::Deadline slice = sys::Deadline::after(kSleepSlice);
    const sys::Deadline& until = deadline.time_point() < slice.time_point() ? deadline : slice;
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (!changed() && count_of(word.load(std::memory_order_seq_cst)) == seen)
      sys::futex_wait(count_word(word), seen, until);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    if (changed()) return true;
    if (deadline.expired()) return false;
    seen = count_of(word.load(std::memory_order_seq_cst));
  }
}

void Ring::write(std::uint64_t position, ConstBytes bytes) noexcept {
  const std::uint64_t offset = position & mask_;
  const std::size_t first = std::min<std::uint64_t>(bytes.size(), layout_->capacity - offset);
  std::memcpy(data_ + offset, bytes.data(), first);
  if (first < bytes.size()) std::memcpy(data_, bytes.data() + first, bytes.size() - first);
}

void Ring::roll_forward() noexcept {
  // The dead producer may have committed records without publishing `tail`: they are
  // whole (a header is committed last), and consumers may be taking them already.
  RingLayout& l = *layout_;
  std::uint64_t tail = l.tail.load(std::memory_order_relaxed);
  const std::uint64_t start = tail;
  for (;;) {
    const std::uint64_t header = header_at(tail);
    if (!committed(header) || sequence_of(header) != count_of(tail) || length_of(header) > l.max_message) break;
    tail = make_word(count_of(tail) + 1, units_of(tail) + static_cast<std::uint32_t>(record_bytes(length_of(header)) / 8));
  }
  if (tail != start) l.tail.store(tail, std::memory_order_seq_cst);
}

std::size_t Ring::put(std::span<const ConstBytes> messages, const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  for (const ConstBytes& m : messages)
    if (m.size() > l.max_message)
      throw MessageTooLarge("put of a " + std::to_string(m.size()) + "-byte message on " + description_ +
                                ", whose limit is " + std::to_string(l.max_message) +
                                " bytes (raise max_message_size and capacity_bytes)",
                            m.size(), l.max_message);
  std::size_t done = 0;
  while (done < messages.size()) {
    if (l.closed.load(std::memory_order_acquire) != 0) throw QueueClosed("put on closed " + description_);
    const Locked locked = lock(l.put_lock, deadline);
    if (locked == Locked::No) return done;
    if (locked == Locked::AfterDeath) roll_forward();
    std::uint64_t tail = l.tail.load(std::memory_order_relaxed);
    std::uint64_t head = l.head_seen.load(std::memory_order_relaxed);
    bool refreshed = false;
    const std::size_t before = done;
    while (done < messages.size()) {
      const ConstBytes m = messages[done];
      const std::uint64_t need = record_bytes(m.size());
      const std::uint64_t used = std::uint64_t{static_cast<std::uint32_t>(units_of(tail) - units_of(head))} * 8;
      const std::uint32_t items = count_of(tail) - count_of(head);
      // Room for the record and for the zero header that must follow it.
      if (used + need + kRecordHeader > l.capacity || (l.maxsize != 0 && items >= l.maxsize)) {
        if (refreshed) break;
        head = l.head.load(std::memory_order_acquire);
        l.head_seen.store(head, std::memory_order_relaxed);
        refreshed = true;
        continue;
      }
      const std::uint64_t position = std::uint64_t{units_of(tail)} * 8;
      // The next header position reads "nothing yet" before this record can be seen...
      std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + ((position + need) & mask_)))
          .store(0, std::memory_order_relaxed);
      write(position + kRecordHeader, m);
      // ...and the header, committed last, makes the record visible to consumers.
      std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + (position & mask_)))
          .store(header_word(count_of(tail), m.size()), std::memory_order_release);
      tail = make_word(count_of(tail) + 1, units_of(tail) + static_cast<std::uint32_t>(need / 8));
      ++done;
    }
    const std::size_t published = done - before;
    std::uint32_t sleeping = 0;
    std::uint32_t armed = 0;
    if (published != 0) {
      l.tail.store(tail, std::memory_order_seq_cst);
      sleeping = l.consumers_sleeping.load(std::memory_order_seq_cst);
      armed = l.armed.load(std::memory_order_seq_cst);
    }
    sys::robust_mutex_unlock(l.put_lock);
    if (sleeping != 0)
      sys::futex_wake(count_word(l.tail), static_cast<int>(std::min<std::size_t>(published, sys::kWakeAll)));
    if (armed != 0) notify_pollers();
    if (done == messages.size()) break;
    // Full: wait for a consumer to take something.
    const std::uint32_t seen = count_of(head);
    if (!wait_for_change(l.head, seen, l.producers_sleeping, deadline,
                         [&] { return count_of(l.head.load(std::memory_order_acquire)) != seen; }, kFullPatience))
      return done;
  }
  return done;
}

std::size_t Ring::get(Sink sink, void* context, std::size_t max, const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  for (;;) {
    // Without the lock: wait until the record at `head` is committed.
    const std::uint64_t seen_head = l.head.load(std::memory_order_acquire);
    auto ready = [&] {
      const std::uint64_t header = header_at(seen_head);
      return (committed(header) && sequence_of(header) == count_of(seen_head)) ||
             l.head.load(std::memory_order_relaxed) != seen_head;
    };
    if (!ready()) {
      if (l.closed.load(std::memory_order_acquire) != 0) {
        if (!ready()) throw QueueClosed("get from closed and empty " + description_);
      } else if (!wait_for_change(l.tail, count_of(l.tail.load(std::memory_order_seq_cst)), l.consumers_sleeping,
                                  deadline, ready, kEmptyPatience)) {
        return 0;
      }
      continue;
    }
    if (lock(l.get_lock, deadline) == Locked::No) return 0;
    std::uint64_t head = l.head.load(std::memory_order_relaxed);
    std::size_t taken = 0;
    auto publish = [&] {
      if (taken != 0) l.head.store(head, std::memory_order_seq_cst);
    };
    try {
      while (taken < max) {
        const std::uint64_t header = header_at(head);
        if (!committed(header)) break;
        const std::size_t length = length_of(header);
        const std::uint64_t position = std::uint64_t{units_of(head)} * 8;
        if (sequence_of(header) != count_of(head) || length > l.max_message)
          throw ProtocolError(description_ + " is corrupt: item " + std::to_string(count_of(head)) + " at byte " +
                              std::to_string(position & mask_) + " has sequence " +
                              std::to_string(sequence_of(header)) + " and length " + std::to_string(length));
        const std::uint64_t offset = (position + kRecordHeader) & mask_;
        ConstBytes message;
        if (offset + length <= l.capacity) {
          message = ConstBytes(data_ + offset, length);
        } else {
          wrapped_copy.resize(length);
          const std::size_t first = l.capacity - offset;
          std::memcpy(wrapped_copy.data(), data_ + offset, first);
          std::memcpy(wrapped_copy.data() + first, data_, length - first);
          message = ConstBytes(wrapped_copy.data(), length);
        }
        head = make_word(count_of(head) + 1, units_of(head) + static_cast<std::uint32_t>(record_bytes(length) / 8));
        ++taken;
        sink(context, message);
      }
    } catch (...) {
      // The message that failed is taken too: a sink throws only once it has it.
      publish();
      sys::robust_mutex_unlock(l.get_lock);
      if (l.producers_sleeping.load(std::memory_order_seq_cst) != 0) sys::futex_wake(count_word(l.head), sys::kWakeAll);
      throw;
    }
    publish();
    const bool more = taken != 0 && committed(header_at(head));
    const std::uint32_t producers = taken != 0 ? l.producers_sleeping.load(std::memory_order_seq_cst) : 0;
    const std::uint32_t consumers = more ? l.consumers_sleeping.load(std::memory_order_seq_cst) : 0;
    sys::robust_mutex_unlock(l.get_lock);
    if (producers != 0) sys::futex_wake(count_word(l.head), sys::kWakeAll);
    // A consumer woken for this backlog may have died before taking it: pass it on.
    if (consumers != 0) sys::futex_wake(count_word(l.tail), 1);
    if (taken != 0) return taken;
  }
}

void Ring::close() noexcept {
  RingLayout& l = *layout_;
  l.closed.store(1, std::memory_order_seq_cst);
  sys::futex_wake(count_word(l.tail), sys::kWakeAll);
  sys::futex_wake(count_word(l.head), sys::kWakeAll);
  notify_pollers();
}

bool Ring::closed() const noexcept { return layout_->closed.load(std::memory_order_acquire) != 0; }

std::size_t Ring::size() const noexcept {
  const std::uint64_t head = layout_->head.load(std::memory_order_acquire);
  const std::uint64_t tail = layout_->tail.load(std::memory_order_acquire);
  // Negative only while records of a dead producer are being taken before a live one
  // rolls `tail` forward past them.
  const auto items = static_cast<std::int32_t>(count_of(tail) - count_of(head));
  return items > 0 ? static_cast<std::size_t>(items) : 0;
}

bool Ring::full() const noexcept {
  const RingLayout& l = *layout_;
  const std::uint64_t head = l.head.load(std::memory_order_acquire);
  const std::uint64_t tail = l.tail.load(std::memory_order_acquire);
  const std::uint64_t used = std::uint64_t{static_cast<std::uint32_t>(units_of(tail) - units_of(head))} * 8;
  return used + record_bytes(0) + kRecordHeader > l.capacity || (l.maxsize != 0 && size() >= l.maxsize);
}

void Ring::task_done() {
  RingLayout& l = *layout_;
  std::uint32_t done = l.done.load(std::memory_order_acquire);
  for (;;) {
    if (done == count_of(l.head.load(std::memory_order_acquire)))
      throw ValueError("task_done() called on " + description_ + " more times than items were taken");
    if (l.done.compare_exchange_weak(done, done + 1, std::memory_order_seq_cst)) break;
  }
  if (l.joiners_sleeping.load(std::memory_order_seq_cst) != 0) sys::futex_wake(l.done, sys::kWakeAll);
}

bool Ring::join(const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  auto finished = [&](std::uint32_t& done) {
    done = l.done.load(std::memory_order_seq_cst);
    return done == count_of(l.tail.load(std::memory_order_seq_cst));
  };
  std::uint32_t done = 0;
  while (!finished(done)) {
    if (deadline.expired()) return false;
    const sys::Deadline slice = sys::Deadline::after(kSleepSlice);
    l.joiners_sleeping.fetch_add(1, std::memory_order_seq_cst);
    if (!finished(done)) sys::futex_wait(l.done, done, deadline.time_point() < slice.time_point() ? deadline : slice);
    l.joiners_sleeping.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

bool Ring::arm(unsigned slot) noexcept {
  RingLayout& l = *layout_;
  l.armed.fetch_or(std::uint32_t{1} << slot, std::memory_order_seq_cst);
  return committed(header_at(l.head.load(std::memory_order_seq_cst))) || closed();
}

std::string Ring::poll_name(unsigned slot) const {
  char name[64];
  std::snprintf(name, sizeof name, "ipckit-ring-%016llx-%u", static_cast<unsigned long long>(layout_->id), slot);
  return name;
}

void Ring::notify_pollers() noexcept {
  std::uint32_t armed = layout_->armed.exchange(0, std::memory_order_seq_cst);
  while (armed != 0) {
    const unsigned slot = static_cast<unsigned>(std::countr_zero(armed));
    armed &= armed - 1;
    try {
      sys::send_notify(poll_name(slot));
    } catch (...) {  // poll_name allocates: nothing to do without memory
    }
  }
}

}  // namespace ipckit::transport
