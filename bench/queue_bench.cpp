// bench/queue_bench.cpp — ByteQueue: message rate with one and with two producers and
// consumers, in batches, one-way latency to a waiting and to a sleeping consumer, and
// bandwidth with 1 MiB messages.
//
// The floors are what moving bytes through shared memory between processes costs at the
// least: a ring of fixed-size slots in MAP_SHARED anonymous memory, its producer's and
// consumer's indices on separate cache lines, each side keeping a copy of the other's
// index and waiting by spinning (FloorRing below); for the sleeping consumer, a bare
// futex word. The rings carry no lengths, take no locks (but a spinlock per side when two
// processes share a side), survive no crash and never sleep. Python's sides are in
// peers/multiprocessing_peer.py under the same workload names.
//
// Every run starts its children before the clock, and they wait for a "go" from the
// parent, sent in the first timed iteration, so each run starts with an empty queue.
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "child.hpp"
#include "ipckit/queue.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::IterationCount;
using benchmark::State;

constexpr std::size_t kMiB = std::size_t{1} << 20;
// Messages per put_many and most taken per get in queue.throughput.batch.
constexpr std::size_t kBatch = 64;
// queue.bandwidth: ipckit's ring (and the floor's slots) hold 8 MiB.
constexpr std::size_t kBandwidthCapacity = 8 * kMiB;

// The one-byte message that starts a run.
constexpr std::byte kGo{'g'};

std::vector<std::byte> payload(std::size_t size) { return std::vector<std::byte>(size, std::byte{0x5a}); }

// Messages and payload bytes moved, for the msg/s and MB/s figures.
void count_messages(State& state, IterationCount messages, std::size_t size) {
  state.SetItemsProcessed(messages);
  state.SetBytesProcessed(messages * static_cast<std::int64_t>(size));
}

[[noreturn]] void wrong_size(std::size_t got, std::size_t expected) {
  throw std::runtime_error("got a " + std::to_string(got) + "-byte message, expected " + std::to_string(expected));
}

// The go, from the parent's side and the child's, for ipckit's children and the floor's.
void send_go(ipckit::Connection& child) {
  const std::byte go[] = {kGo};
  child.send_bytes(go);
}
void send_go(int child) {
  const std::byte go[] = {kGo};
  write_all(child, go);
}
void await_go(ipckit::Connection& parent) { parent.recv_bytes(); }
void await_go(int parent) {
  std::byte go[1];
  read_exactly(parent, go);
}

// A count reported by a child at the end of a run.
void send_count(ipckit::Connection& parent, std::uint64_t count) {
  std::byte bytes[sizeof count];
  std::memcpy(bytes, &count, sizeof count);
  parent.send_bytes(bytes);
}
void send_count(int parent, std::uint64_t count) {
  std::byte bytes[sizeof count];
  std::memcpy(bytes, &count, sizeof count);
  write_all(parent, bytes);
}
std::uint64_t receive_count(ipckit::Connection& child) {
  const auto bytes = child.recv_bytes();
  std::uint64_t count = 0;
  if (bytes.size() != sizeof count) throw std::runtime_error("bench child: bad count message");
  std::memcpy(&count, bytes.data(), sizeof count);
  return count;
}
std::uint64_t receive_count(int child) {
  std::byte bytes[sizeof(std::uint64_t)];
  read_exactly(child, bytes);
  std::uint64_t count = 0;
  std::memcpy(&count, bytes, sizeof count);
  return count;
}

void check_taken(std::uint64_t taken, IterationCount expected) {
  if (taken != static_cast<std::uint64_t>(expected))
    throw std::runtime_error("the consumers took " + std::to_string(taken) + " messages, expected " +
                             std::to_string(expected));
}

// --- the floor: a ring of fixed-size slots in shared memory ------------------------------

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// The floor's only way to wait: spin until `ready()`. Every 1024th look yields the CPU
// instead, which costs nothing while each process has a CPU of its own, and lets a
// floor with more processes than CPUs (queue.throughput.2p2c: four on two) go on.
template <class Ready>
void spin_until(Ready&& ready) {
  for (unsigned looks = 1; !ready(); ++looks) {
    if (looks % 1024 == 0) {
      sched_yield();
    } else {
      cpu_pause();
    }
  }
}

// The ring's shared control block. Each side writes only its own cache line: its index
// (slots ever filled / ever taken) and the spinlock that two processes on that side take
// turns with.
struct RingControl {
  alignas(64) std::atomic<std::uint64_t> tail;
  std::atomic<std::uint32_t> put_lock;
  alignas(64) std::atomic<std::uint64_t> head;
  std::atomic<std::uint32_t> get_lock;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free);

void spin_lock(std::atomic<std::uint32_t>& lock) {
  while (lock.exchange(1, std::memory_order_acquire) != 0)
    spin_until([&] { return lock.load(std::memory_order_relaxed) == 0; });
}
void spin_unlock(std::atomic<std::uint32_t>& lock) { lock.store(0, std::memory_order_release); }

// `slots` slots of `slot_size` bytes after a page holding the RingControl, in anonymous
// MAP_SHARED memory: children fork()ed after it is made share it.
class FloorRing {
 public:
  FloorRing(std::size_t slots, std::size_t slot_size)
      : slots_(slots), slot_size_(slot_size), bytes_(kControlBytes + slots * slot_size) {
    if (slots == 0 || (slots & (slots - 1)) != 0) throw std::invalid_argument("FloorRing: slots must be a power of two");
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap(MAP_SHARED)");
    base_ = static_cast<std::byte*>(p);
    control_ = new (p) RingControl{};
  }
  FloorRing(const FloorRing&) = delete;
  FloorRing& operator=(const FloorRing&) = delete;
  ~FloorRing() { munmap(base_, bytes_); }

  RingControl& control() const { return *control_; }
  std::size_t slots() const { return slots_; }
  std::size_t slot_size() const { return slot_size_; }
  std::byte* slot(std::uint64_t index) const { return base_ + kControlBytes + (index & (slots_ - 1)) * slot_size_; }

 private:
  static constexpr std::size_t kControlBytes = 4096;
  std::size_t slots_;
  std::size_t slot_size_;
  std::size_t bytes_;
  std::byte* base_ = nullptr;
  RingControl* control_ = nullptr;
};

// One producer's end of a FloorRing, in one process. `shared`: other processes produce
// too, so each put holds the producers' spinlock and reads the tail afresh.
class FloorProducer {
 public:
  FloorProducer(const FloorRing& ring, bool shared) : ring_(ring), shared_(shared) {}

  // Copies `count` (at most the ring's slots) consecutive messages of the slot size from
  // `messages` into the ring once there is room for all, then publishes them at once.
  void put(const std::byte* messages, std::size_t count) {
    RingControl& c = ring_.control();
    if (shared_) {
      spin_lock(c.put_lock);
      tail_ = c.tail.load(std::memory_order_relaxed);
    }
    const std::size_t slots = ring_.slots();
    if (tail_ + count - head_seen_ > slots)
      spin_until([&] {
        head_seen_ = c.head.load(std::memory_order_acquire);
        return tail_ + count - head_seen_ <= slots;
      });
    const std::size_t size = ring_.slot_size();
    for (std::size_t i = 0; i < count; ++i) std::memcpy(ring_.slot(tail_ + i), messages + i * size, size);
    tail_ += count;
    c.tail.store(tail_, std::memory_order_release);
    if (shared_) spin_unlock(c.put_lock);
  }

 private:
  const FloorRing& ring_;
  bool shared_;
  std::uint64_t tail_ = 0;       // this side's index
  std::uint64_t head_seen_ = 0;  // a past value of the consumers' index
};

// One consumer's end, in one process, of a FloorRing that will carry `total` messages.
// `shared`: other processes consume too (each get holds the consumers' spinlock).
class FloorConsumer {
 public:
  FloorConsumer(const FloorRing& ring, bool shared, std::uint64_t total)
      : ring_(ring), shared_(shared), total_(total) {}

  // Waits for at least one message, then copies up to `max` of those there into `out`;
  // returns how many, 0 once all `total` have been taken.
  std::size_t get(std::byte* out, std::size_t max) {
    RingControl& c = ring_.control();
    if (shared_) {
      spin_lock(c.get_lock);
      head_ = c.head.load(std::memory_order_relaxed);
    }
    std::size_t count = 0;
    if (head_ != total_) {
      // (Another consumer may have taken past what this one last saw of the tail.)
      if (tail_seen_ <= head_)
        spin_until([&] { return (tail_seen_ = c.tail.load(std::memory_order_acquire)) > head_; });
      count = static_cast<std::size_t>(std::min<std::uint64_t>(tail_seen_ - head_, max));
      const std::size_t size = ring_.slot_size();
      for (std::size_t i = 0; i < count; ++i) std::memcpy(out + i * size, ring_.slot(head_ + i), size);
      head_ += count;
      c.head.store(head_, std::memory_order_release);
    }
    if (shared_) spin_unlock(c.get_lock);
    return count;
  }

 private:
  const FloorRing& ring_;
  bool shared_;
  std::uint64_t total_;
  std::uint64_t head_ = 0;       // this side's index
  std::uint64_t tail_seen_ = 0;  // a past value of the producers' index
};

// --- queue.throughput.1p1c and queue.bandwidth ---------------------------------------------

// A child on another CPU puts n messages of `size` bytes as fast as it can; the parent
// takes each into one reused buffer with get_into. One iteration is one message taken.
void BM_Queue_Stream(State& state, std::size_t size, QueueOptions options) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  ipckit::ByteQueue queue(options);
  IpckitChild producer([&queue, &placement, n, size](ipckit::Connection& parent) {
    placement.pin_child();
    const auto message = payload(size);
    await_go(parent);
    for (IterationCount i = 0; i < n; ++i) queue.put(message);
  });
  placement.pin_parent();
  std::vector<std::byte> buffer(size);
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ == 0) send_go(producer.connection());
    const std::size_t got = queue.get_into(buffer);
    if (got != size) wrong_size(got, size);
  }
  producer.join();
  count_messages(state, state.iterations(), size);
}

// The default queue (a 1 MiB ring).
void BM_Queue_Throughput1p1c(State& state, std::size_t size) { BM_Queue_Stream(state, size, {}); }

// A ring of 8 MiB taking messages up to 1 MiB.
void BM_Queue_Bandwidth(State& state, std::size_t size) {
  BM_Queue_Stream(state, size, {.capacity_bytes = kBandwidthCapacity, .max_message_size = size});
}

// The same through a FloorRing of `size`-byte slots filling `ring_bytes`.
void BM_Floor_SpscStream(State& state, std::size_t size, std::size_t ring_bytes) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  FloorRing ring(ring_bytes / size, size);
  ForkedChild producer([&ring, &placement, n, size](int parent) {
    placement.pin_child();
    const auto message = payload(size);
    FloorProducer put(ring, false);
    await_go(parent);
    for (IterationCount i = 0; i < n; ++i) put.put(message.data(), 1);
  });
  placement.pin_parent();
  FloorConsumer get(ring, false, static_cast<std::uint64_t>(n));
  std::vector<std::byte> buffer(size);
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ == 0) send_go(producer.fd());
    if (get.get(buffer.data(), 1) != 1) throw std::runtime_error("the floor ring ran dry");
    benchmark::DoNotOptimize(buffer.data());
  }
  producer.join();
  count_messages(state, state.iterations(), size);
}

// 64-byte slots in 1 MiB, the memory of the default queue.
void BM_Floor_SpscRing(State& state, std::size_t size) { BM_Floor_SpscStream(state, size, kDefaultQueueCapacity); }
// 1 MiB slots in 8 MiB, the memory of queue.bandwidth's queue.
void BM_Floor_SpscRingMemcpy(State& state, std::size_t size) { BM_Floor_SpscStream(state, size, kBandwidthCapacity); }

// --- queue.throughput.2p2c -------------------------------------------------------------------

// Two producers (the parent and a child) each put n messages into one queue; two child
// consumers take them all. One iteration is one put of the parent's. The clock runs from
// the "go" sent in the first iteration until both consumers have said how many they took,
// and the figure is the 2n messages over that time. A consumer stops at an empty message:
// the parent puts two once the producing child has said it is done, so they come after
// every other message.
void BM_Queue_Throughput2p2c(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  ipckit::ByteQueue queue;
  IpckitChild producer([&queue, n, size](ipckit::Connection& parent) {
    const auto message = payload(size);
    await_go(parent);
    for (IterationCount i = 0; i < n; ++i) queue.put(message);
    send_count(parent, static_cast<std::uint64_t>(n));
  });
  auto consume = [&queue, size](ipckit::Connection& parent) {
    std::vector<std::byte> buffer(size);
    std::uint64_t taken = 0;
    await_go(parent);
    for (;;) {
      const std::size_t got = queue.get_into(buffer);
      if (got == 0) break;  // the end
      if (got != size) wrong_size(got, size);
      ++taken;
    }
    send_count(parent, taken);
  };
  IpckitChild first(consume);
  IpckitChild second(consume);
  const auto message = payload(size);
  const std::span<const std::byte> end;
  std::uint64_t taken = 0;
  IterationCount i = 0;
  for (auto _ : state) {
    if (i == 0) {
      for (IpckitChild* child : {&producer, &first, &second}) send_go(child->connection());
    }
    queue.put(message);
    if (++i == n) {
      receive_count(producer.connection());  // its n messages are in
      queue.put(end);
      queue.put(end);
      taken = receive_count(first.connection()) + receive_count(second.connection());
    }
  }
  producer.join();
  first.join();
  second.join();
  check_taken(taken, 2 * n);
  count_messages(state, 2 * state.iterations(), size);
}

// The same through a FloorRing of 64-byte slots (1 MiB) with a spinlock per side; the
// consumers stop when all 2n messages are taken.
void BM_Floor_SpinlockRing2p2c(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  FloorRing ring(kDefaultQueueCapacity / size, size);
  ForkedChild producer([&ring, n, size](int parent) {
    const auto message = payload(size);
    FloorProducer put(ring, true);
    await_go(parent);
    for (IterationCount i = 0; i < n; ++i) put.put(message.data(), 1);
  });
  auto consume = [&ring, n, size](int parent) {
    FloorConsumer get(ring, true, 2 * static_cast<std::uint64_t>(n));
    std::vector<std::byte> buffer(size);
    std::uint64_t taken = 0;
    await_go(parent);
    while (get.get(buffer.data(), 1) != 0) {
      benchmark::DoNotOptimize(buffer.data());
      ++taken;
    }
    send_count(parent, taken);
  };
  ForkedChild first(consume);
  ForkedChild second(consume);
  FloorProducer put(ring, true);
  const auto message = payload(size);
  std::uint64_t taken = 0;
  IterationCount i = 0;
  for (auto _ : state) {
    if (i == 0) {
      for (int fd : {producer.fd(), first.fd(), second.fd()}) send_go(fd);
    }
    put.put(message.data(), 1);
    if (++i == n) taken = receive_count(first.fd()) + receive_count(second.fd());
  }
  producer.join();
  first.join();
  second.join();
  check_taken(taken, 2 * n);
  count_messages(state, 2 * state.iterations(), size);
}

// --- queue.throughput.batch ------------------------------------------------------------------

// What the batched get hands each message to: a copy into one reused buffer of kBatch
// messages, as get_into does for one.
struct BatchBuffer {
  explicit BatchBuffer(std::size_t message_size) : bytes(kBatch * message_size), size(message_size) {}

  static bool sink(void* context, std::span<const std::byte> message) {
    auto& self = *static_cast<BatchBuffer*>(context);
    if (message.size() != self.size) wrong_size(message.size(), self.size);
    std::memcpy(self.bytes.data() + self.count * self.size, message.data(), message.size());
    ++self.count;
    return true;
  }

  std::vector<std::byte> bytes;
  std::size_t size;
  std::size_t count = 0;
};

// A child on another CPU puts n messages with put_many, kBatch at a time; the parent
// takes up to kBatch of those there at once (get_to, copying each into a reused buffer)
// and hands them out one per iteration. One iteration is one message taken.
void BM_Queue_ThroughputBatch(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  ipckit::ByteQueue queue;
  IpckitChild producer([&queue, &placement, n, size](ipckit::Connection& parent) {
    placement.pin_child();
    const auto message = payload(size);
    const std::vector<std::span<const std::byte>> batch(kBatch, std::span<const std::byte>(message));
    await_go(parent);
    for (IterationCount left = n; left > 0;) {
      const auto count = static_cast<std::size_t>(std::min<IterationCount>(left, kBatch));
      queue.put_many(std::span(batch).first(count));
      left -= static_cast<IterationCount>(count);
    }
  });
  placement.pin_parent();
  BatchBuffer batch(size);
  std::size_t next = 0;
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ == 0) send_go(producer.connection());
    if (next == batch.count) {
      batch.count = 0;
      next = 0;
      queue.get_to(&BatchBuffer::sink, &batch, kBatch, std::nullopt);
    }
    benchmark::DoNotOptimize(batch.bytes.data() + next * size);
    ++next;
  }
  producer.join();
  count_messages(state, state.iterations(), size);
}

// The same through the SPSC FloorRing (1 MiB), each side publishing its index once per
// batch.
void BM_Floor_SpscRingBatch(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  FloorRing ring(kDefaultQueueCapacity / size, size);
  ForkedChild producer([&ring, &placement, n, size](int parent) {
    placement.pin_child();
    std::vector<std::byte> messages(kBatch * size, std::byte{0x5a});
    FloorProducer put(ring, false);
    await_go(parent);
    for (IterationCount left = n; left > 0;) {
      const auto count = static_cast<std::size_t>(std::min<IterationCount>(left, kBatch));
      put.put(messages.data(), count);
      left -= static_cast<IterationCount>(count);
    }
  });
  placement.pin_parent();
  FloorConsumer get(ring, false, static_cast<std::uint64_t>(n));
  std::vector<std::byte> batch(kBatch * size);
  std::size_t count = 0;
  std::size_t next = 0;
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ == 0) send_go(producer.fd());
    if (next == count) {
      count = get.get(batch.data(), kBatch);
      next = 0;
      if (count == 0) throw std::runtime_error("the floor ring ran dry");
    }
    benchmark::DoNotOptimize(batch.data() + next * size);
    ++next;
  }
  producer.join();
  count_messages(state, state.iterations(), size);
}

// --- queue.latency and queue.wake ------------------------------------------------------------

// queue.wake: the untimed pause before each ping, long enough for any waiter that spins
// before it sleeps (ipckit's consumers spin for a few µs) to be asleep in the kernel.
constexpr auto kSettle = std::chrono::microseconds(200);

void settle(State& state) {
  state.PauseTiming();
  const auto end = std::chrono::steady_clock::now() + kSettle;
  while (std::chrono::steady_clock::now() < end) {
  }
  state.ResumeTiming();
}

// Two queues, `ping` and `pong`, between the parent and a child on another CPU that puts
// each message it takes from `ping` into `pong`. One iteration is one message from one
// process to the other: even iterations put into `ping`, odd ones take the child's answer
// from `pong`, so the time per iteration is half a round trip. For queue.latency
// (`sleep` false) each side is waiting, spinning, when the other puts; for queue.wake,
// the parent pauses for kSettle, untimed, before each ping, so the child sleeps in the
// kernel, and the parent itself sleeps while the child wakes (which takes longer than
// ipckit's spin): each leg wakes a sleeping consumer.
void BM_Queue_PingPong(State& state, std::size_t size, bool sleep) {
  const IterationCount n = state.max_iterations;
  const IterationCount round_trips = (n + 1) / 2;
  TwoCpus placement;
  ipckit::ByteQueue ping;
  ipckit::ByteQueue pong;
  IpckitChild child([&, round_trips, size](ipckit::Connection&) {
    placement.pin_child();
    std::vector<std::byte> buffer(size);
    for (IterationCount i = 0; i < round_trips; ++i) {
      const std::size_t got = ping.get_into(buffer);
      pong.put(std::span(buffer).first(got));
    }
  });
  placement.pin_parent();
  const auto message = payload(size);
  std::vector<std::byte> buffer(size);
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ % 2 == 0) {
      if (sleep) settle(state);
      ping.put(message);
    } else if (const std::size_t got = pong.get_into(buffer); got != size) {
      wrong_size(got, size);
    }
  }
  if (n % 2 == 1) pong.get_into(buffer);  // the answer to the last ping, untimed
  child.join();
}

void BM_Queue_Latency(State& state, std::size_t size) { BM_Queue_PingPong(state, size, false); }
void BM_Queue_Wake(State& state, std::size_t size) { BM_Queue_PingPong(state, size, true); }

// queue.latency's floor: the same over two SPSC FloorRings of `size`-byte slots, both
// sides spinning.
void BM_Floor_SpscRingPingPong(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  const IterationCount round_trips = (n + 1) / 2;
  const auto total = static_cast<std::uint64_t>(round_trips);
  TwoCpus placement;
  FloorRing ping(kDefaultQueueCapacity / size, size);
  FloorRing pong(kDefaultQueueCapacity / size, size);
  ForkedChild child([&, round_trips, size, total](int) {
    placement.pin_child();
    FloorConsumer take(ping, false, total);
    FloorProducer answer(pong, false);
    std::vector<std::byte> buffer(size);
    for (IterationCount i = 0; i < round_trips; ++i) {
      take.get(buffer.data(), 1);
      answer.put(buffer.data(), 1);
    }
  });
  placement.pin_parent();
  FloorProducer put(ping, false);
  FloorConsumer get(pong, false, total);
  const auto message = payload(size);
  std::vector<std::byte> buffer(size);
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ % 2 == 0) {
      put.put(message.data(), 1);
    } else {
      get.get(buffer.data(), 1);
      benchmark::DoNotOptimize(buffer.data());
    }
  }
  if (n % 2 == 1) get.get(buffer.data(), 1);
  child.join();
}

// queue.wake's floor: a bare event on a futex word, as event.wake's floor. set = store 1
// and FUTEX_WAKE; wait = FUTEX_WAIT while 0. Not FUTEX_PRIVATE_FLAG: the waiter is in
// another process.
struct FutexWords {
  alignas(64) std::atomic<std::uint32_t> ping;
  alignas(64) std::atomic<std::uint32_t> pong;
};

void futex_set(std::atomic<std::uint32_t>& word) {
  word.store(1, std::memory_order_release);
  syscall(SYS_futex, &word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}
void futex_wait_set(std::atomic<std::uint32_t>& word) {
  while (word.load(std::memory_order_acquire) == 0)
    syscall(SYS_futex, &word, FUTEX_WAIT, 0, nullptr, nullptr, 0);  // EAGAIN, EINTR: look again
  word.store(0, std::memory_order_relaxed);
}

// The two futex words bounced as BM_Queue_Wake bounces its queues, with the same pause.
void BM_Floor_FutexWake(State& state) {
  const IterationCount n = state.max_iterations;
  const IterationCount round_trips = (n + 1) / 2;
  TwoCpus placement;
  void* p = mmap(nullptr, sizeof(FutexWords), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap(MAP_SHARED)");
  struct Unmap {
    void* p;
    ~Unmap() { munmap(p, sizeof(FutexWords)); }
  } unmap{p};
  FutexWords& words = *new (p) FutexWords{};
  ForkedChild child([&words, &placement, round_trips](int) {
    placement.pin_child();
    for (IterationCount i = 0; i < round_trips; ++i) {
      futex_wait_set(words.ping);
      futex_set(words.pong);
    }
  });
  placement.pin_parent();
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ % 2 == 0) {
      settle(state);
      futex_set(words.ping);
    } else {
      futex_wait_set(words.pong);
    }
  }
  if (n % 2 == 1) futex_wait_set(words.pong);
  child.join();
}

}  // namespace

void register_queue_workloads(Registry& registry) {
  registry.add({.name = "queue.throughput.1p1c.64B",
                .metric = Metric::ItemsPerSecond,
                .ipckit = sized("BM_Queue_Throughput1p1c", BM_Queue_Throughput1p1c, 64),
                .floor = sized("BM_Floor_SpscRing", BM_Floor_SpscRing, 64),
                .python = "queue.throughput.1p1c.64B"});
  registry.add({.name = "queue.throughput.2p2c.64B",
                .metric = Metric::ItemsPerSecond,
                .ipckit = sized("BM_Queue_Throughput2p2c", BM_Queue_Throughput2p2c, 64),
                .floor = sized("BM_Floor_SpinlockRing2p2c", BM_Floor_SpinlockRing2p2c, 64),
                .python = "queue.throughput.2p2c.64B"});
  registry.add({.name = "queue.throughput.batch.64B",
                .metric = Metric::ItemsPerSecond,
                .ipckit = sized("BM_Queue_ThroughputBatch", BM_Queue_ThroughputBatch, 64),
                .floor = sized("BM_Floor_SpscRingBatch", BM_Floor_SpscRingBatch, 64),
                .python = "queue.throughput.batch.64B"});
  registry.add({.name = "queue.latency.64B",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_Queue_Latency", BM_Queue_Latency, 64),
                .floor = sized("BM_Floor_SpscRingPingPong", BM_Floor_SpscRingPingPong, 64),
                .python = "queue.latency.64B"});
  registry.add({.name = "queue.wake.64B",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_Queue_Wake", BM_Queue_Wake, 64),
                .floor = BenchmarkFunction{"BM_Floor_FutexWake", BM_Floor_FutexWake},
                .python = "queue.wake.64B"});
  registry.add({.name = "queue.bandwidth.1MiB",
                .metric = Metric::MegabytesPerSecond,
                .ipckit = sized("BM_Queue_Bandwidth", BM_Queue_Bandwidth, kMiB),
                .floor = sized("BM_Floor_SpscRingMemcpy", BM_Floor_SpscRingMemcpy, kMiB),
                .python = "queue.bandwidth.1MiB"});
}

}  // namespace ipckit::bench
