// transport/shm_ring.hpp — the shared-memory ring under Queue: whole messages of any size
// up to a limit, many producers and many consumers in any processes, no feeder thread,
// and safe when any of them is killed at any instant.
//
// Byte layout for other languages: docs/formats/queue.md. In short: a control block
// (RingLayout) and a power-of-two byte ring. Producers take turns under one robust mutex,
// consumers under another; each side writes only its own cache line and publishes with a
// single 64-bit store (`tail` or `head`: an item count in the high half, a position in
// 8-byte units in the low half). Whatever a process does under its side's mutex becomes
// visible to the other side only by that store, so a process killed before it leaves
// nothing half-done: the kernel hands the mutex on (robust futex), and the next holder
// carries on from the last published state. A consumer killed after taking a message
// loses only that message; one killed before the store leaves it for the next consumer.
//
// Waiting: a side that finds the ring empty (or full) spins for a few microseconds, then
// counts itself a sleeper and sleeps on the other side's count (the high half of `tail`
// or `head`). A side that publishes wakes sleepers only when the count says there are
// some, so busy peers make no system call per message. Sleeps last at most kSleepSlice,
// so a waker killed between its store and its wake-up strands nobody for long.
//
// Polling: a process that wants an fd (for wait() or an event loop) binds an abstract
// datagram socket named after the ring's id and a slot, sets the slot's bit in `armed`,
// and re-checks; a producer that publishes while bits are set clears them and sends each
// slot one datagram.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "sys/deadline.hpp"
#include "sys/robust_mutex.hpp"

namespace ipckit::transport {

using ConstBytes = std::span<const std::byte>;

struct alignas(64) RingLayout {
  // Line 0: fixed when the ring is made.
  std::uint64_t capacity;     // 0: bytes of the data ring, a power of two
  std::uint64_t max_message;  // 8: largest payload in bytes
  std::uint64_t maxsize;      // 16: most items held at once; 0 for no limit but bytes
  std::uint64_t id;           // 24: random; names the poll sockets
  std::uint8_t reserved0[32];
  // Line 1: read on every publish, written only by sleepers, close and pollers.
  std::atomic<std::uint32_t> closed;              // 64: 1 after close()
  std::atomic<std::uint32_t> consumers_sleeping;  // 68
  std::atomic<std::uint32_t> producers_sleeping;  // 72
  std::atomic<std::uint32_t> armed;               // 76: poll slots waiting for a put
  std::atomic<std::uint32_t> joiners_sleeping;    // 80
  std::uint8_t reserved1[44];
  // Line 2: producers.
  sys::RobustMutex put_lock;            // 128
  std::atomic<std::uint64_t> tail;      // 168: items ever put << 32 | end position / 8
  std::atomic<std::uint64_t> head_seen;  // 176: a past value of `head` (producers' cache)
  std::uint64_t reserved2;              // 184
  // Line 3: consumers.
  sys::RobustMutex get_lock;            // 192
  std::atomic<std::uint64_t> head;      // 232: items ever taken << 32 | start position / 8
  std::uint64_t reserved3[2];           // 240
  // Line 4: JoinableQueue.
  std::atomic<std::uint32_t> done;  // 256: task_done() calls ever
  std::uint8_t reserved4[60];
};
static_assert(sizeof(RingLayout) == 320);
static_assert(offsetof(RingLayout, closed) == 64 && offsetof(RingLayout, armed) == 76 &&
              offsetof(RingLayout, put_lock) == 128 && offsetof(RingLayout, tail) == 168 &&
              offsetof(RingLayout, head_seen) == 176 && offsetof(RingLayout, get_lock) == 192 &&
              offsetof(RingLayout, head) == 232 && offsetof(RingLayout, done) == 256);

inline constexpr std::size_t kRecordHeader = 8;  // u32 length, u32 sequence
inline constexpr std::size_t kMinRingCapacity = 4096;
inline constexpr std::size_t kMaxRingCapacity = std::size_t{1} << 30;
inline constexpr unsigned kPollSlots = 32;
inline constexpr std::chrono::milliseconds kSleepSlice{100};

struct RingConfig {
  std::uint64_t capacity;  // already a power of two within the limits
  std::uint64_t max_message;
  std::uint64_t maxsize;
};

class Ring {
 public:
  // Hands a message to the caller while the ring still holds it; may throw (the message
  // is taken all the same).
  using Sink = void (*)(void* context, ConstBytes message);

  // Fills a zeroed layout.
  static void init(RingLayout& layout, const RingConfig& config, std::uint64_t id);
  // Checks the layout against the `data_bytes` that follow it in the mapping; throws
  // ValueError naming `description` when it cannot be a ring.
  Ring(RingLayout* layout, std::byte* data, std::size_t data_bytes, std::string description);

  // Puts messages in order until all are in or the deadline passes; returns how many
  // went in. Throws MessageTooLarge (before putting any) and QueueClosed.
  std::size_t put(std::span<const ConstBytes> messages, const sys::Deadline& deadline);
  // Waits for at least one message, then takes up to `max` of those there, handing each
  // to `sink`. Returns how many (0 when the deadline passed). Throws QueueClosed once the
  // ring is closed and empty.
  std::size_t get(Sink sink, void* context, std::size_t max, const sys::Deadline& deadline);

  void close() noexcept;
  bool closed() const noexcept;
  std::size_t size() const noexcept;  // items held now (a snapshot)
  bool full() const noexcept;

  // JoinableQueue.
  void task_done();
  bool join(const sys::Deadline& deadline);

  // Polling: sets `slot`'s bit, then says whether a message is waiting (if not, a put
  // will send the slot's socket a datagram).
  bool arm(unsigned slot) noexcept;
  // The abstract socket name of `slot`.
  std::string poll_name(unsigned slot) const;

  const RingLayout& layout() const noexcept { return *layout_; }
  const std::string& description() const noexcept { return description_; }

  // How a waiter spins before it sleeps.
  struct Patience {
    std::chrono::nanoseconds spin_time;
    int pauses;
  };

 private:
  enum class Locked { No, Yes, AfterDeath };
  Locked lock(sys::RobustMutex& mutex, const sys::Deadline& deadline);
  // After a producer died holding put_lock: publishes what it committed.
  void roll_forward() noexcept;
  // The record header at `word`'s position.
  std::uint64_t header_at(std::uint64_t word) const noexcept;
  // Spins, then sleeps on `word`'s count (which was `seen`), until `ready()`, the ring
  // is closed, or the deadline passes (then false).
  bool wait_for_change(const std::atomic<std::uint64_t>& word, std::uint32_t seen,
                       std::atomic<std::uint32_t>& sleepers, const sys::Deadline& deadline,
                       const std::function<bool()>& ready, const Patience& patience);
  void write(std::uint64_t position, ConstBytes bytes) noexcept;
  void notify_pollers() noexcept;

  RingLayout* layout_;
  std::byte* data_;
  std::uint64_t mask_;
  std::string description_;
};

}  // namespace ipckit::transport
