// transport/shm_ring.hpp — the shared-memory ring under Queue and Pipe: whole messages of
// any size, many producers and many consumers in any processes, no feeder thread, and
// safe when any of them is killed at any instant.
//
// Byte layout and protocol for other languages: docs/formats/queue.md. In short: a
// control block (RingLayout) and a power-of-two byte ring of records. Producers take
// turns under one robust mutex, consumers under another. A record becomes visible when
// its 64-bit header word is committed, after its payload and after the zero header that
// must follow it; consumers take records by storing `head`, once, after they are done
// with them. So whatever a process killed at any instant had done is either visible
// whole or not at all: the kernel hands its mutex on (robust futexes), and the next
// producer rolls forward what the dead one had committed (ending a half-sent message
// with an abort record), while the next consumer re-reads what the dead one had not
// taken. A message longer than a quarter of the ring travels in chunks, streamed while
// the producer holds its mutex and the consumer holds its own.
//
// Waiting: a side that finds the ring empty (or full) spins for a few microseconds, then
// counts itself a sleeper and sleeps on the futex of the other side's position (the low
// half of `tail` or `head`); the other side wakes sleepers only when the count says there
// are some, so busy peers make no system call per message. Sleeps last at most
// kSleepSlice, so a waker killed between its store and its wake-up strands nobody long.
// A ring built with a wake socket (Pipe) sleeps in poll() on that socket instead and is
// woken by a byte on it, which also tells it when the peer has gone.
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
#include <span>
#include <string>

#include "sys/deadline.hpp"
#include "sys/robust_mutex.hpp"

namespace ipckit::transport {

using ConstBytes = std::span<const std::byte>;

struct alignas(64) RingLayout {
  // Line 0: fixed when the ring is made.
  std::uint64_t capacity;     // 0: bytes of the data ring, a power of two
  std::uint64_t max_message;  // 8: largest message a producer may put
  std::uint64_t maxsize;      // 16: most messages held at once; 0 for no limit but bytes
  std::uint64_t id;           // 24: random; names the poll sockets
  std::uint8_t reserved0[32];
  // Line 1: read on every publish, written only by sleepers, close and pollers.
  std::atomic<std::uint32_t> closed;              // 64: 1 after close()
  std::atomic<std::uint32_t> consumers_sleeping;  // 68
  std::atomic<std::uint32_t> producers_sleeping;  // 72
  std::atomic<std::uint32_t> armed;               // 76: poll slots waiting for a put
  std::atomic<std::uint32_t> joiners_sleeping;    // 80
  std::atomic<std::uint32_t> space_armed;         // 84: wake-socket producers waiting for room
  std::atomic<std::uint32_t> consumers_wake_pending;  // 88: a wake-up call to consumers is on its way
  std::atomic<std::uint32_t> producers_wake_pending;  // 92
  std::uint8_t reserved1[32];
  // Line 2: producers.
  sys::RobustMutex put_lock;             // 128
  std::atomic<std::uint64_t> tail;       // 168: messages ever put << 32 | end position / 8
  std::atomic<std::uint64_t> head_seen;  // 176: a past value of `head` (producers' cache)
  std::atomic<std::uint32_t> streaming;  // 184: 1 while a chunked message is being put
  std::uint32_t reserved2;               // 188
  // Line 3: consumers.
  sys::RobustMutex get_lock;        // 192
  std::atomic<std::uint64_t> head;  // 232: messages ever taken << 32 | start position / 8
  std::uint64_t reserved3[2];       // 240
  // Line 4: JoinableQueue.
  std::atomic<std::uint32_t> done;  // 256: task_done() calls ever
  std::uint8_t reserved4[60];
};
static_assert(sizeof(RingLayout) == 320);
static_assert(offsetof(RingLayout, closed) == 64 && offsetof(RingLayout, armed) == 76 &&
              offsetof(RingLayout, space_armed) == 84 && offsetof(RingLayout, consumers_wake_pending) == 88 && offsetof(RingLayout, put_lock) == 128 &&
              offsetof(RingLayout, tail) == 168 && offsetof(RingLayout, head_seen) == 176 &&
              offsetof(RingLayout, streaming) == 184 && offsetof(RingLayout, get_lock) == 192 &&
              offsetof(RingLayout, head) == 232 && offsetof(RingLayout, done) == 256);

inline constexpr std::size_t kRecordHeader = 8;  // the header word
inline constexpr std::size_t kMinRingCapacity = 4096;
inline constexpr std::size_t kMaxRingCapacity = std::size_t{1} << 30;
inline constexpr unsigned kPollSlots = 32;
inline constexpr std::chrono::milliseconds kSleepSlice{100};

struct RingConfig {
  std::uint64_t capacity;  // a power of two within the limits
  std::uint64_t max_message;
  std::uint64_t maxsize;
};

// Where a consumer's messages go.
struct RingSink {
  // Receives each message whole, while the ring still holds it when it came in one
  // piece. May throw: the message is taken all the same.
  // Returns false to leave the message where it is and end the batch (honoured for the
  // second and later messages of a batch only).
  bool (*deliver)(void* context, ConstBytes message) = nullptr;
  // Optional, for a message that comes in chunks: a buffer of exactly `total` bytes to
  // assemble it in (deliver() then gets that buffer), or an empty span to have the ring
  // assemble it. May throw to refuse the message: the ring then skips it and rethrows.
  std::span<std::byte> (*reserve)(void* context, std::size_t total) = nullptr;
  void* context = nullptr;
};

class Ring {
 public:
  // Fills a zeroed layout.
  static void init(RingLayout& layout, const RingConfig& config, std::uint64_t id);
  // Checks the layout against the `data_bytes` that follow it in the mapping; throws
  // ValueError naming `description` when it cannot be a ring. With a `wake_socket`
  // (a connected stream socket to the process at the other end, Pipe), waiters sleep in
  // poll() on it and are woken by a byte on it; its end of stream means the peer is
  // gone (ConnectionClosed once nothing is left to take).
  Ring(RingLayout* layout, std::byte* data, std::size_t data_bytes, std::string description,
       int wake_socket = -1);

  // Puts messages in order until all are in or the deadline passes; returns how many
  // went in. Throws MessageTooLarge (before putting any) and QueueClosed.
  std::size_t put(std::span<const ConstBytes> messages, const sys::Deadline& deadline);
  // Waits for at least one message, then takes up to `max` of those there, handing each
  // to `sink`. Returns how many (0 when the deadline passed). Throws QueueClosed once the
  // ring is closed and empty.
  std::size_t get(const RingSink& sink, std::size_t max, const sys::Deadline& deadline);

  void close() noexcept;
  bool closed() const noexcept;
  std::size_t size() const noexcept;  // whole messages held now (a snapshot)
  bool full() const noexcept;

  // JoinableQueue.
  void task_done();
  bool join(const sys::Deadline& deadline);

  // Polling: sets `slot`'s bit, then says whether a message is waiting (if not, a put
  // will send the slot's socket a datagram).
  bool arm(unsigned slot) noexcept;
  // The abstract socket name of `slot`.
  std::string poll_name(unsigned slot) const;
  // With a wake socket: drains it, arms it for the next put, and says whether a message
  // is waiting (or the peer has gone, or the ring is closed: then a get will say so).
  bool poll_wake_socket() noexcept;
  // Whether a record waits at `head` (a snapshot, without side effects).
  bool ready() const noexcept;
  // `head` now: it moves whenever a consumer takes something.
  std::uint64_t taken() const noexcept { return layout_->head.load(std::memory_order_acquire); }
  // With a wake socket: true once its end of stream was seen.
  bool peer_gone() const noexcept { return peer_gone_; }

  const RingLayout& layout() const noexcept { return *layout_; }
  const std::string& description() const noexcept { return description_; }

  // How a waiter spins before it sleeps.
  struct Patience {
    std::chrono::nanoseconds spin_time;
    int pauses;
  };

 private:
  enum class Locked { No, Yes, AfterDeath };
  enum class Side { Consumer, Producer };
  Locked lock(sys::RobustMutex& mutex, const sys::Deadline& deadline);
  // After a producer died holding put_lock: publishes what it committed, and ends a
  // chunked message it left unfinished with an abort record.
  void roll_forward() noexcept;
  std::uint64_t header_at(std::uint64_t word) const noexcept;
  bool record_ready(std::uint64_t head) const noexcept;
  // Spins, then sleeps, until `ready()`, the ring is closed, or the deadline passes
  // (then false). `streaming`: in the middle of a chunked message (spin longer).
  template <class Ready>
  bool wait(Side side, Ready&& ready, const sys::Deadline& deadline, bool streaming = false);
  void sleep(Side side, std::uint64_t seen_word, const sys::Deadline& until);
  // Wakes the other side's sleepers (and pollers) after a publish.
  void wake_consumers(std::size_t published) noexcept;
  void wake_producers() noexcept;
  void write(std::uint64_t position, ConstBytes bytes) noexcept;
  // Writes one record at `tail` (room already checked) and returns the new tail.
  std::uint64_t write_record(std::uint64_t tail, std::uint32_t flags, ConstBytes prefix, ConstBytes payload) noexcept;
  // Room for `need` bytes more (and what must follow them) after `tail`, counting one
  // more message when `new_message`; refreshes head_seen once if needed.
  bool room(std::uint64_t tail, std::uint64_t need, bool new_message) noexcept;
  // Puts one message of several chunks; false if the deadline passed (the part sent is
  // then aborted).
  bool put_chunked(std::uint64_t& tail, ConstBytes message, const sys::Deadline& deadline);
  // The bytes of all the records of a chunked message of `total` bytes.
  std::uint64_t chunked_bytes(std::uint64_t total) const noexcept;
  // Takes the chunked message whose first chunk is at `head` (get_lock held), waiting for
  // the rest; false if its producer abandoned it.
  bool take_chunked(std::uint64_t& head, const RingSink& sink);
  void publish_tail(std::uint64_t tail, std::size_t messages) noexcept;
  void notify_pollers() noexcept;

  RingLayout* layout_;
  std::byte* data_;
  std::uint64_t mask_;
  std::uint64_t chunk_;  // largest record payload
  std::string description_;
  int wake_socket_;
  bool peer_gone_ = false;
};

}  // namespace ipckit::transport
