#include "transport/shm_ring.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "ipckit/error.hpp"
#include "sys/futex.hpp"
#include "sys/io.hpp"
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

// The futex word of a tail or head: its position, the low half (little-endian), which
// moves with every record, chunks included.
const std::atomic<std::uint32_t>& position_word(const std::atomic<std::uint64_t>& word) noexcept {
  static_assert(std::endian::native == std::endian::little);
  return *reinterpret_cast<const std::atomic<std::uint32_t>*>(&word);
}

// A record's header word: the sequence (the message's count: how many messages were put
// before it, modulo 2^32) in the high half; flags and the payload length in the low half.
// Zero means "nothing here yet".
constexpr std::uint32_t kCommitted = std::uint32_t{1} << 31;
constexpr std::uint32_t kMore = std::uint32_t{1} << 30;   // another chunk of this message follows
constexpr std::uint32_t kCont = std::uint32_t{1} << 29;   // continues a message
constexpr std::uint32_t kAbort = std::uint32_t{1} << 28;  // the message being sent was abandoned
constexpr std::uint32_t kLengthMask = kAbort - 1;
constexpr std::size_t kLargestChunk = std::size_t{1} << 27;

constexpr std::uint64_t header_word(std::uint32_t sequence, std::uint32_t flags, std::size_t length) noexcept {
  return (std::uint64_t{sequence} << 32) | kCommitted | flags | static_cast<std::uint32_t>(length);
}
constexpr bool committed(std::uint64_t header) noexcept { return (header & kCommitted) != 0; }
constexpr std::uint32_t sequence_of(std::uint64_t header) noexcept { return static_cast<std::uint32_t>(header >> 32); }
constexpr std::uint32_t flags_of(std::uint64_t header) noexcept {
  return static_cast<std::uint32_t>(header) & (kMore | kCont | kAbort);
}
constexpr std::size_t length_of(std::uint64_t header) noexcept { return static_cast<std::uint32_t>(header) & kLengthMask; }

// `word` moved past the record `header`: a message is counted when its last record goes.
constexpr std::uint64_t advance(std::uint64_t word, std::uint64_t header) noexcept {
  const bool ends_message = (flags_of(header) & (kMore | kAbort)) == 0;
  return make_word(count_of(word) + (ends_message ? 1 : 0),
                   units_of(word) + static_cast<std::uint32_t>(record_bytes(length_of(header)) / 8));
}

// A message that wraps around the end of the ring, or comes in chunks, is assembled here
// to be handed on whole.
thread_local std::vector<std::byte> assembled;

// A consumer waiting for an item looks often: that is its latency. A producer waiting
// for room looks rarely and long: each look costs the consumer the cache line of `head`,
// and a full ring is the case where consumers have the most to do.
constexpr Ring::Patience kEmptyPatience{sys::kSpinTime, 1};
constexpr Ring::Patience kFullPatience{std::chrono::microseconds(20), 64};
// In the middle of a chunked message the other side is at work on the next chunk, which
// takes a few µs per 64 KiB: waiting for it by spinning beats a wake-up.
constexpr Ring::Patience kStreamPatience{std::chrono::microseconds(200), 16};

// A thread that has just woken a sleeping peer will wait for that peer's answer longer
// than a wake-up takes (tens of µs here), so that the answer finds it still spinning —
// else two processes taking turns would wake each other, once a turn, for ever.
constexpr std::chrono::microseconds kAfterWakeSpin{150};
thread_local std::chrono::steady_clock::time_point last_wake{};
void woke_someone() noexcept { last_wake = std::chrono::steady_clock::now(); }

// Spins until `done()` for `patience` (longer when this thread has just woken someone).
// With `yield`, it yields the CPU between rounds of a microsecond after the first: a
// process woken through a socket is often put on its waker's CPU, and must get to run
// there to answer. (Without need, yielding slows a futex wake-up on these VMs.)
constexpr std::chrono::nanoseconds kSpinRound{1000};
template <class Done>
bool spin(Done& done, const Ring::Patience& patience, bool yield) {
  if (sys::spin_until(done, std::min(patience.spin_time, kSpinRound), patience.pauses)) return true;
  const auto start = std::chrono::steady_clock::now();
  auto spin_time = patience.spin_time;
  if (start - last_wake < kAfterWakeSpin) spin_time = std::max<std::chrono::nanoseconds>(spin_time, kAfterWakeSpin);
  const auto end = start + spin_time - kSpinRound;
  while (std::chrono::steady_clock::now() < end) {
    if (yield) std::this_thread::yield();
    if (sys::spin_until(done, kSpinRound, patience.pauses)) return true;
  }
  return false;
}

}  // namespace

void Ring::init(RingLayout& layout, const RingConfig& config, std::uint64_t id) {
  layout.capacity = config.capacity;
  layout.max_message = config.max_message;
  layout.maxsize = config.maxsize;
  layout.id = id;
  sys::robust_mutex_init(layout.put_lock, false);
  sys::robust_mutex_init(layout.get_lock, false);
}

Ring::Ring(RingLayout* layout, std::byte* data, std::size_t data_bytes, std::string description, int wake_socket)
    : layout_(layout),
      data_(data),
      mask_(layout->capacity - 1),
      chunk_(std::min<std::uint64_t>(layout->capacity / 4, kLargestChunk)),
      description_(std::move(description)),
      wake_socket_(wake_socket) {
  const std::uint64_t capacity = layout->capacity;
  if (capacity < kMinRingCapacity || capacity > kMaxRingCapacity || !std::has_single_bit(capacity) ||
      capacity > data_bytes)
    throw ValueError(description_ + " has an impossible layout (a ring of " + std::to_string(capacity) +
                     " bytes in " + std::to_string(data_bytes) + ")");
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
      // What the dead holder did is either visible whole or not at all (the top of
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

bool Ring::record_ready(std::uint64_t head) const noexcept {
  const std::uint64_t header = header_at(head);
  return committed(header) && sequence_of(header) == count_of(head);
}

template <class Ready>
bool Ring::wait(Side side, Ready&& ready, const sys::Deadline& deadline, bool streaming) {
  auto done = [&] { return ready() || closed() || peer_gone_; };
  if (deadline.expired()) return done();
  if (spin(done, streaming ? kStreamPatience : side == Side::Consumer ? kEmptyPatience : kFullPatience,
           wake_socket_ >= 0))
    return true;
  for (;;) {
    const sys::Deadline slice = sys::Deadline::after(kSleepSlice);
    const sys::Deadline& until = deadline.time_point() < slice.time_point() ? deadline : slice;
    RingLayout& l = *layout_;
    if (wake_socket_ >= 0) {
      // Sleep in poll() on the wake socket: the other side sends a byte when it sees the
      // bit; end of stream says it is gone.
      auto& armed = side == Side::Consumer ? l.armed : l.space_armed;
      armed.fetch_or(1, std::memory_order_seq_cst);
      if (!done() && sys::wait_readable(wake_socket_, until)) peer_gone_ = !sys::drain_stream(wake_socket_);
    } else {
      const std::atomic<std::uint64_t>& other = side == Side::Consumer ? l.tail : l.head;
      auto& sleepers = side == Side::Consumer ? l.consumers_sleeping : l.producers_sleeping;
      auto& pending = side == Side::Consumer ? l.consumers_wake_pending : l.producers_wake_pending;
      const std::uint64_t seen = other.load(std::memory_order_seq_cst);
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      if (!done() && other.load(std::memory_order_seq_cst) == seen)
        sys::futex_wait(position_word(other), units_of(seen), until);
      sleepers.fetch_sub(1, std::memory_order_relaxed);
      pending.store(0, std::memory_order_relaxed);  // awake: the next publish may wake again
    }
    if (done()) return true;
    if (deadline.expired()) return false;
  }
}

void Ring::wake_consumers(std::size_t published) noexcept {
  RingLayout& l = *layout_;
  if (wake_socket_ >= 0) {
    if (l.armed.load(std::memory_order_seq_cst) != 0 && l.armed.exchange(0, std::memory_order_seq_cst) != 0) {
      sys::send_wake(wake_socket_);
      woke_someone();
    }
    return;
  }
  // One wake-up call until a sleeper has run: publishes meanwhile would only repeat it
  // (and, on a shared CPU, keep the sleeper from running).
  if (l.consumers_sleeping.load(std::memory_order_seq_cst) != 0 &&
      l.consumers_wake_pending.exchange(1, std::memory_order_seq_cst) == 0) {
    sys::futex_wake(position_word(l.tail), static_cast<int>(std::min<std::size_t>(published, sys::kWakeAll)));
    woke_someone();
  }
  if (l.armed.load(std::memory_order_seq_cst) != 0) notify_pollers();
}

void Ring::wake_producers() noexcept {
  RingLayout& l = *layout_;
  if (wake_socket_ >= 0) {
    if (l.space_armed.load(std::memory_order_seq_cst) != 0 &&
        l.space_armed.exchange(0, std::memory_order_seq_cst) != 0) {
      sys::send_wake(wake_socket_);
      woke_someone();
    }
    return;
  }
  if (l.producers_sleeping.load(std::memory_order_seq_cst) != 0 &&
      l.producers_wake_pending.exchange(1, std::memory_order_seq_cst) == 0) {
    sys::futex_wake(position_word(l.head), sys::kWakeAll);
    woke_someone();
  }
}

void Ring::write(std::uint64_t position, ConstBytes bytes) noexcept {
  if (bytes.empty()) return;
  const std::uint64_t offset = position & mask_;
  const std::size_t first = std::min<std::uint64_t>(bytes.size(), layout_->capacity - offset);
  std::memcpy(data_ + offset, bytes.data(), first);
  if (first < bytes.size()) std::memcpy(data_, bytes.data() + first, bytes.size() - first);
}

std::uint64_t Ring::write_record(std::uint64_t tail, std::uint32_t flags, ConstBytes prefix,
                                 ConstBytes payload) noexcept {
  const std::size_t length = prefix.size() + payload.size();
  const std::uint64_t position = std::uint64_t{units_of(tail)} * 8;
  const std::uint64_t header = header_word(count_of(tail), flags, length);
  // The next header position reads "nothing yet" before this record can be seen...
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + ((position + record_bytes(length)) & mask_)))
      .store(0, std::memory_order_relaxed);
  write(position + kRecordHeader, prefix);
  write(position + kRecordHeader + prefix.size(), payload);
  // ...and the header, committed last, makes the record visible to consumers.
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + (position & mask_)))
      .store(header, std::memory_order_release);
  return advance(tail, header);
}

bool Ring::room(std::uint64_t tail, std::uint64_t need, bool new_message) noexcept {
  RingLayout& l = *layout_;
  std::uint64_t head = l.head_seen.load(std::memory_order_relaxed);
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t used = std::uint64_t{static_cast<std::uint32_t>(units_of(tail) - units_of(head))} * 8;
    const std::uint32_t messages = count_of(tail) - count_of(head);
    if (used + need <= l.capacity && (!new_message || l.maxsize == 0 || messages < l.maxsize)) return true;
    if (attempt == 1) return false;
    head = l.head.load(std::memory_order_acquire);
    l.head_seen.store(head, std::memory_order_relaxed);
  }
}

void Ring::publish_tail(std::uint64_t tail, std::size_t messages) noexcept {
  layout_->tail.store(tail, std::memory_order_seq_cst);
  wake_consumers(std::max<std::size_t>(messages, 1));
}

void Ring::roll_forward() noexcept {
  // The dead producer may have committed records without publishing `tail`: they are
  // whole (a header is committed last), and consumers may be taking them already.
  RingLayout& l = *layout_;
  std::uint64_t tail = l.tail.load(std::memory_order_relaxed);
  const std::uint64_t start = tail;
  for (;;) {
    const std::uint64_t header = header_at(tail);
    if (!committed(header) || sequence_of(header) != count_of(tail) || length_of(header) > chunk_) break;
    tail = advance(tail, header);
  }
  // It died in the middle of a chunked message: end it, so that a consumer assembling it
  // drops it. Room was kept for this record when the last chunk was written.
  if (l.streaming.load(std::memory_order_relaxed) != 0) {
    tail = write_record(tail, kCont | kAbort, {}, {});
    l.streaming.store(0, std::memory_order_relaxed);
  }
  if (tail != start) publish_tail(tail, 1);
}

std::uint64_t Ring::chunked_bytes(std::uint64_t total) const noexcept {
  // The first chunk carries the 8-byte total: chunk_ - 8 bytes of message, the others chunk_.
  const std::uint64_t first = chunk_ - 8;
  const std::uint64_t rest = total > first ? total - first : 0;
  const std::uint64_t full = rest / chunk_;
  const std::uint64_t last = rest % chunk_;
  return record_bytes(chunk_) * (1 + full) + (last != 0 ? record_bytes(last) : 0);
}

bool Ring::put_chunked(std::uint64_t& tail, ConstBytes message, const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  const std::uint64_t total = message.size();
  std::byte prefix[8];
  std::memcpy(prefix, &total, sizeof prefix);
  std::size_t offset = 0;
  bool first = true;
  while (offset < total) {
    const std::size_t take = std::min<std::size_t>(chunk_ - (first ? sizeof prefix : 0), total - offset);
    const bool last = offset + take == total;
    const std::uint64_t length = take + (first ? sizeof prefix : 0);
    // The record, the zero header after it, and while more follows, room for an abort
    // record and its zero header.
    const std::uint64_t need = record_bytes(length) + kRecordHeader + (last ? 0 : 2 * kRecordHeader);
    while (!room(tail, need, first)) {
      publish_tail(tail, 0);
      const std::uint64_t seen = l.head_seen.load(std::memory_order_relaxed);
      const bool moved =
          wait(Side::Producer, [&] { return l.head.load(std::memory_order_acquire) != seen; }, deadline, true);
      if (moved && !closed() && !peer_gone_) continue;
      if (!first) {  // abandon the part already sent
        tail = write_record(tail, kCont | kAbort, {}, {});
        l.streaming.store(0, std::memory_order_relaxed);
        publish_tail(tail, 1);
      }
      if (closed()) throw QueueClosed("put on closed " + description_);
      if (peer_gone_) throw ConnectionClosed(description_ + ": the receiving end is closed");
      return false;
    }
    if (first) l.streaming.store(1, std::memory_order_relaxed);  // before the first chunk is committed
    tail = write_record(tail, (first ? 0 : kCont) | (last ? 0 : kMore), first ? ConstBytes(prefix) : ConstBytes(),
                        message.subspan(offset, take));
    if (last) l.streaming.store(0, std::memory_order_relaxed);
    if (!last) publish_tail(tail, 0);  // consumers take chunks as they come
    offset += take;
    first = false;
  }
  return true;
}

std::size_t Ring::put(std::span<const ConstBytes> messages, const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  for (const ConstBytes& m : messages)
    if (m.size() > l.max_message)
      throw MessageTooLarge("put of a " + std::to_string(m.size()) + "-byte message on " + description_ +
                                ", whose limit is " + std::to_string(l.max_message) + " bytes",
                            m.size(), l.max_message);
  std::size_t done = 0;
  while (done < messages.size()) {
    if (closed()) throw QueueClosed("put on closed " + description_);
    const Locked locked = lock(l.put_lock, deadline);
    if (locked == Locked::No) return done;
    if (locked == Locked::AfterDeath) roll_forward();
    std::uint64_t tail = l.tail.load(std::memory_order_relaxed);
    const std::size_t before = done;
    bool stalled = false;
    try {
      while (done < messages.size() && !stalled) {
        const ConstBytes m = messages[done];
        if (m.size() > chunk_) {
          // One that fits in the ring waits for room for all of it, so that a put that
          // gives up leaves nothing behind; only a longer one streams.
          const std::uint64_t whole = chunked_bytes(m.size());
          if (whole + kRecordHeader <= l.capacity && !room(tail, whole + kRecordHeader, true)) {
            stalled = true;
          } else {
            if (!put_chunked(tail, m, deadline)) break;
            ++done;
          }
        } else if (room(tail, record_bytes(m.size()) + kRecordHeader, true)) {
          tail = write_record(tail, 0, {}, m);
          ++done;
        } else {
          stalled = true;
        }
      }
    } catch (...) {
      sys::robust_mutex_unlock(l.put_lock);
      throw;
    }
    const std::uint64_t seen = l.head_seen.load(std::memory_order_relaxed);
    l.tail.store(tail, std::memory_order_seq_cst);
    sys::robust_mutex_unlock(l.put_lock);
    wake_consumers(done - before);
    if (!stalled) break;
    // Full: wait for a consumer to take something.
    if (!wait(Side::Producer, [&] { return l.head.load(std::memory_order_acquire) != seen; }, deadline)) break;
    if (peer_gone_) throw ConnectionClosed(description_ + ": the receiving end is closed");
  }
  return done;
}

std::size_t Ring::get(const RingSink& sink, std::size_t max, const sys::Deadline& deadline) {
  RingLayout& l = *layout_;
  for (;;) {
    // Without the lock: wait until a record is committed at `head`.
    const std::uint64_t seen = l.head.load(std::memory_order_acquire);
    auto ready = [&] { return record_ready(seen) || l.head.load(std::memory_order_relaxed) != seen; };
    if (!ready()) {
      if (closed() || peer_gone_) {
        if (record_ready(l.head.load(std::memory_order_acquire))) continue;
        if (closed()) throw QueueClosed("get from closed and empty " + description_);
        throw ConnectionClosed(description_ + ": the sending end is closed and nothing is left");
      }
      if (!wait(Side::Consumer, ready, deadline)) return 0;
      continue;
    }
    if (lock(l.get_lock, deadline) == Locked::No) return 0;
    const std::uint64_t start = l.head.load(std::memory_order_relaxed);
    std::uint64_t head = start;
    std::size_t taken = 0;
    auto finish = [&] {
      if (head != start) l.head.store(head, std::memory_order_seq_cst);
      const bool more = taken != 0 && record_ready(head);
      sys::robust_mutex_unlock(l.get_lock);
      if (head != start) wake_producers();
      // A consumer woken for this backlog may have died before taking it: pass it on.
      if (more && wake_socket_ < 0 && l.consumers_sleeping.load(std::memory_order_seq_cst) != 0)
        sys::futex_wake(position_word(l.tail), 1);
    };
    try {
      while (taken < max) {
        const std::uint64_t header = header_at(head);
        if (!committed(header)) break;
        const std::size_t length = length_of(header);
        const std::uint64_t position = std::uint64_t{units_of(head)} * 8;
        if (sequence_of(header) != count_of(head) || length > chunk_)
          throw ProtocolError(description_ + " is corrupt: record " + std::to_string(count_of(head)) + " at byte " +
                              std::to_string(position & mask_) + " has sequence " +
                              std::to_string(sequence_of(header)) + " and length " + std::to_string(length));
        const std::uint32_t flags = flags_of(header);
        if ((flags & (kCont | kAbort)) != 0) {
          // The rest of a message a dead consumer had begun to take, or an abort: skip.
          head = advance(head, header);
          continue;
        }
        if ((flags & kMore) != 0) {
          // A chunked message only starts a batch: it cannot be left once taken.
          if (taken == 0 && take_chunked(head, sink)) ++taken;
          break;
        }
        const std::uint64_t offset = (position + kRecordHeader) & mask_;
        ConstBytes message;
        if (offset + length <= l.capacity) {
          message = ConstBytes(data_ + offset, length);
        } else {
          assembled.resize(length);
          const std::size_t first = l.capacity - offset;
          std::memcpy(assembled.data(), data_ + offset, first);
          std::memcpy(assembled.data() + first, data_, length - first);
          message = ConstBytes(assembled.data(), length);
        }
        // A sink may leave the second and later messages of a batch for the next get; one
        // that throws has taken its message.
        const std::uint64_t next = advance(head, header);
        bool keep = false;
        try {
          keep = sink.deliver(sink.context, message);
        } catch (...) {
          head = next;
          ++taken;
          throw;
        }
        if (!keep && taken != 0) break;
        head = next;
        ++taken;
      }
    } catch (...) {
      finish();  // what was handed on (or refused) is taken
      throw;
    }
    finish();
    if (taken != 0) return taken;
  }
}

bool Ring::take_chunked(std::uint64_t& head, const RingSink& sink) {
  RingLayout& l = *layout_;
  auto read = [&](std::uint64_t position, std::span<std::byte> into) {
    const std::uint64_t offset = position & mask_;
    const std::size_t first = std::min<std::uint64_t>(into.size(), l.capacity - offset);
    std::memcpy(into.data(), data_ + offset, first);
    if (first < into.size()) std::memcpy(into.data() + first, data_, into.size() - first);
  };
  std::uint64_t header = header_at(head);
  std::uint64_t total = 0;
  read(std::uint64_t{units_of(head)} * 8 + kRecordHeader, std::as_writable_bytes(std::span(&total, 1)));
  if (total > l.max_message || length_of(header) < sizeof total)
    throw ProtocolError(description_ + " is corrupt: a chunked message announces " + std::to_string(total) +
                        " bytes, more than its limit " + std::to_string(l.max_message));
  std::span<std::byte> out;
  std::exception_ptr refused;
  try {
    if (sink.reserve != nullptr) out = sink.reserve(sink.context, total);
    if (out.empty() && total != 0) {
      assembled.resize(total);
      out = assembled;
    }
  } catch (...) {
    refused = std::current_exception();
    out = {};
  }
  std::size_t copied = 0;
  std::size_t skip = sizeof total;  // the first chunk starts with the total
  for (;;) {
    const std::size_t length = length_of(header) - skip;
    if (copied + length > total)
      throw ProtocolError(description_ + " is corrupt: the chunks of a message exceed its " +
                          std::to_string(total) + " bytes");
    if (!refused) read(std::uint64_t{units_of(head)} * 8 + kRecordHeader + skip, out.subspan(copied, length));
    copied += length;
    skip = 0;
    const bool more = (flags_of(header) & kMore) != 0;
    head = advance(head, header);
    if (!more) break;
    // Free the chunk for the producer, which is waiting to send the next.
    l.head.store(head, std::memory_order_seq_cst);
    wake_producers();
    // The next chunk: the producer is streaming it, or has died (then the first one to
    // notice rolls it forward, which ends the message with an abort record).
    while (!committed(header_at(head))) {
      if (wait(Side::Consumer, [&] { return committed(header_at(head)); }, sys::Deadline::after(kSleepSlice), true)) {
        if (committed(header_at(head))) break;
        if (peer_gone_) throw ConnectionClosed(description_ + ": the sending end closed in the middle of a message");
      }
      if (sys::robust_mutex_try_lock(l.put_lock) == sys::MutexLock::OwnerDied) {
        sys::robust_mutex_consistent(l.put_lock);
        roll_forward();
        sys::robust_mutex_unlock(l.put_lock);
      } else if (sys::robust_mutex_held_by_caller(l.put_lock)) {
        sys::robust_mutex_unlock(l.put_lock);
      }
    }
    header = header_at(head);
    if (sequence_of(header) != count_of(head) || length_of(header) > chunk_)
      throw ProtocolError(description_ + " is corrupt: a chunk has sequence " + std::to_string(sequence_of(header)) +
                          " where " + std::to_string(count_of(head)) + " was expected");
    if ((flags_of(header) & kAbort) != 0) {  // the producer gave the message up
      head = advance(head, header);
      return false;
    }
    if ((flags_of(header) & kCont) == 0)
      throw ProtocolError(description_ + " is corrupt: a message begins before the previous one ended");
  }
  if (copied != total)
    throw ProtocolError(description_ + " is corrupt: a message of " + std::to_string(total) + " bytes came with " +
                        std::to_string(copied));
  if (refused) std::rethrow_exception(refused);
  sink.deliver(sink.context, ConstBytes(out.data(), total));  // first of its batch: always taken
  return true;
}

void Ring::close() noexcept {
  RingLayout& l = *layout_;
  l.closed.store(1, std::memory_order_seq_cst);
  sys::futex_wake(position_word(l.tail), sys::kWakeAll);
  sys::futex_wake(position_word(l.head), sys::kWakeAll);
  if (wake_socket_ >= 0) sys::send_wake(wake_socket_);
  notify_pollers();
}

bool Ring::closed() const noexcept { return layout_->closed.load(std::memory_order_acquire) != 0; }

std::size_t Ring::size() const noexcept {
  const std::uint64_t head = layout_->head.load(std::memory_order_acquire);
  const std::uint64_t tail = layout_->tail.load(std::memory_order_acquire);
  // Negative only while records of a dead producer are being taken before a live one
  // rolls `tail` forward past them.
  const auto messages = static_cast<std::int32_t>(count_of(tail) - count_of(head));
  return messages > 0 ? static_cast<std::size_t>(messages) : 0;
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
  return record_ready(l.head.load(std::memory_order_seq_cst)) || closed();
}

bool Ring::poll_wake_socket() noexcept {
  RingLayout& l = *layout_;
  if (!sys::drain_stream(wake_socket_)) peer_gone_ = true;
  l.armed.fetch_or(1, std::memory_order_seq_cst);
  return record_ready(l.head.load(std::memory_order_seq_cst)) || closed() || peer_gone_;
}

bool Ring::ready() const noexcept { return record_ready(layout_->head.load(std::memory_order_acquire)); }

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
