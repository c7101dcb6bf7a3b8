// bench/sync_bench.cpp — Lock, Event and Value: the cost of a lock, of a contended lock
// between two processes, of waking a process, and of an atomic increment.
//
// The floors use POSIX directly on MAP_SHARED memory, as any implementation of these
// objects must: a process-shared robust pthread mutex (what ipckit's Lock is built on), a
// bare futex word, std::atomic_ref. Python's sides are in peers/multiprocessing_peer.py
// under the same workload names.
//
// Units: lock.uncontended and value.increment are in ns per iteration, the others as
// their names say.
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "child.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::IterationCount;
using benchmark::State;

// The one-byte messages that start and end a contended run.
constexpr std::byte kGo{'g'};
constexpr std::byte kDone{'d'};

// --- the floors' shared memory -----------------------------------------------------------

// What the floors share with their forked child: a robust process-shared mutex and the
// counter it guards, and two futex words.
struct FloorShared {
  pthread_mutex_t mutex;
  alignas(64) std::int64_t counter;
  alignas(64) std::atomic<std::uint32_t> ping;
  alignas(64) std::atomic<std::uint32_t> pong;
};

void check_pthread(int rc, const char* call) {
  if (rc != 0) throw std::system_error(rc, std::generic_category(), call);
}

// A FloorShared in anonymous MAP_SHARED memory (fork()ed children share it), its mutex
// initialised as ipckit's are: process-shared, robust, normal.
class SharedFloor {
 public:
  SharedFloor() {
    void* p = mmap(nullptr, sizeof(FloorShared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap(MAP_SHARED)");
    shared_ = new (p) FloorShared{};
    pthread_mutexattr_t attr;
    check_pthread(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
    check_pthread(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), "pthread_mutexattr_setpshared");
    check_pthread(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST), "pthread_mutexattr_setrobust");
    const int rc = pthread_mutex_init(&shared_->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    check_pthread(rc, "pthread_mutex_init");
  }
  SharedFloor(const SharedFloor&) = delete;
  SharedFloor& operator=(const SharedFloor&) = delete;
  ~SharedFloor() { munmap(shared_, sizeof(FloorShared)); }

  FloorShared& operator*() const { return *shared_; }
  FloorShared* operator->() const { return shared_; }

 private:
  FloorShared* shared_ = nullptr;
};

// The floor's lock and unlock: what ipckit's Lock must do at least. A dead owner is not
// expected here, so anything but success is an error.
void floor_lock(pthread_mutex_t& m) { check_pthread(pthread_mutex_lock(&m), "pthread_mutex_lock"); }
void floor_unlock(pthread_mutex_t& m) { check_pthread(pthread_mutex_unlock(&m), "pthread_mutex_unlock"); }

// A bare event on a futex word: set = store 1 and FUTEX_WAKE; wait = FUTEX_WAIT while 0.
// Not FUTEX_PRIVATE_FLAG: the waiter is in another process.
void floor_set(std::atomic<std::uint32_t>& word) {
  word.store(1, std::memory_order_release);
  syscall(SYS_futex, &word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}
void floor_wait(std::atomic<std::uint32_t>& word) {
  while (word.load(std::memory_order_acquire) == 0)
    syscall(SYS_futex, &word, FUTEX_WAIT, 0, nullptr, nullptr, 0);  // EAGAIN, EINTR: look again
}
void floor_clear(std::atomic<std::uint32_t>& word) { word.store(0, std::memory_order_relaxed); }

void check_count(std::int64_t got, std::int64_t expected) {
  if (got != expected)
    throw std::runtime_error("the shared counter is " + std::to_string(got) + ", expected " +
                             std::to_string(expected) + ": increments were lost");
}

// --- lock.uncontended --------------------------------------------------------------------

// One iteration is acquire() + release() of a Lock nobody else uses.
void BM_Lock_Uncontended(State& state) {
  ipckit::Lock lock;
  for (auto _ : state) {
    lock.acquire();
    lock.release();
  }
}

void BM_Floor_RobustMutexUncontended(State& state) {
  SharedFloor floor;
  for (auto _ : state) {
    floor_lock(floor->mutex);
    floor_unlock(floor->mutex);
  }
}

// --- lock.contended.2proc ------------------------------------------------------------------

// The parent and a child, on two CPUs, each add 1 to a shared counter, n times, each time
// holding the lock. One iteration is one increment of the parent's; the clock runs from
// the "go" sent in the first iteration to the child's "done" received in the last, and the
// figure is both processes' increments (2n) over that time.
void BM_Lock_Contended2Proc(State& state) {
  const IterationCount n = state.max_iterations;
  ipckit::Lock lock;
  ipckit::Value<std::int64_t> counter(0, false);  // guarded by `lock`
  TwoCpus placement;
  IpckitChild child([&, n](ipckit::Connection& parent) {
    placement.pin_child();
    parent.recv_bytes();  // go
    for (IterationCount i = 0; i < n; ++i) {
      std::lock_guard hold(lock);
      counter.raw() += 1;
    }
    const std::byte done[] = {kDone};
    parent.send_bytes(done);
  });
  placement.pin_parent();
  ipckit::Connection& to_child = child.connection();
  const std::byte go[] = {kGo};
  IterationCount i = 0;
  for (auto _ : state) {
    if (i == 0) to_child.send_bytes(go);
    {
      std::lock_guard hold(lock);
      counter.raw() += 1;
    }
    if (++i == n) to_child.recv_bytes();  // done
  }
  child.join();
  check_count(counter.raw(), 2 * n);
  state.SetItemsProcessed(2 * state.iterations());
}

void BM_Floor_RobustMutexContended2Proc(State& state) {
  const IterationCount n = state.max_iterations;
  SharedFloor floor;
  FloorShared& shared = *floor;
  TwoCpus placement;
  ForkedChild child([&shared, &placement, n](int parent) {
    placement.pin_child();
    std::byte byte[1];
    read_exactly(parent, byte);  // go
    for (IterationCount i = 0; i < n; ++i) {
      floor_lock(shared.mutex);
      shared.counter += 1;
      floor_unlock(shared.mutex);
    }
    const std::byte done[] = {kDone};
    write_all(parent, done);
  });
  placement.pin_parent();
  const std::byte go[] = {kGo};
  std::byte done[1];
  IterationCount i = 0;
  for (auto _ : state) {
    if (i == 0) write_all(child.fd(), go);
    floor_lock(shared.mutex);
    shared.counter += 1;
    floor_unlock(shared.mutex);
    if (++i == n) read_exactly(child.fd(), done);
  }
  child.join();
  check_count(shared.counter, 2 * n);
  state.SetItemsProcessed(2 * state.iterations());
}

// --- event.wake ----------------------------------------------------------------------------

// Long enough for a waiter that spins before it sleeps (ipckit spins for 4 µs) to be
// asleep in the kernel: the pause before each ping, not timed.
constexpr auto kSettle = std::chrono::microseconds(20);

void settle(State& state) {
  state.PauseTiming();
  const auto end = std::chrono::steady_clock::now() + kSettle;
  while (std::chrono::steady_clock::now() < end) {
  }
  state.ResumeTiming();
}

// Two events, `ping` and `pong`, bounce between the parent and a child on another CPU
// that answers each ping with a pong. One iteration is one wake-up of a process asleep in
// wait(): even iterations set `ping` (the child's wait returns), odd ones wait for the
// child's `pong`, so the time per iteration is half a round trip — from set() in one
// process to the return of wait() in the other, plus a clear(). Before each ping the
// parent pauses for kSettle, untimed, so the child has stopped spinning and sleeps; the
// parent itself sleeps while the child wakes (which takes longer than its spin). Both
// legs are therefore wake-ups of an idle waiter. (Halving a round trip rather than
// timestamping one direction: the harness times the parent's loop, nothing else.)
void BM_Event_Wake(State& state) {
  const IterationCount n = state.max_iterations;
  const IterationCount round_trips = (n + 1) / 2;
  TwoCpus placement;
  ipckit::Event ping;
  ipckit::Event pong;
  IpckitChild child([&, round_trips](ipckit::Connection&) {
    placement.pin_child();
    for (IterationCount i = 0; i < round_trips; ++i) {
      ping.wait();
      ping.clear();
      pong.set();
    }
  });
  placement.pin_parent();
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ % 2 == 0) {
      settle(state);
      ping.set();
    } else {
      pong.wait();
      pong.clear();
    }
  }
  if (n % 2 == 1) pong.wait();  // the answer to the last ping, untimed
  child.join();
}

void BM_Floor_FutexWake(State& state) {
  const IterationCount n = state.max_iterations;
  const IterationCount round_trips = (n + 1) / 2;
  TwoCpus placement;
  SharedFloor floor;
  FloorShared& shared = *floor;
  ForkedChild child([&shared, &placement, round_trips](int) {
    placement.pin_child();
    for (IterationCount i = 0; i < round_trips; ++i) {
      floor_wait(shared.ping);
      floor_clear(shared.ping);
      floor_set(shared.pong);
    }
  });
  placement.pin_parent();
  IterationCount i = 0;
  for (auto _ : state) {
    if (i++ % 2 == 0) {
      settle(state);
      floor_set(shared.ping);
    } else {
      floor_wait(shared.pong);
      floor_clear(shared.pong);
    }
  }
  if (n % 2 == 1) floor_wait(shared.pong);
  child.join();
}

// --- value.increment -----------------------------------------------------------------------

// One iteration is one atomic increment of a shared 64-bit value, uncontended.
void BM_Value_FetchAdd(State& state) {
  ipckit::Value<std::int64_t> value(0);
  for (auto _ : state) value.fetch_add(1);
  check_count(value.load(), state.iterations());
}

void BM_Floor_AtomicRefFetchAdd(State& state) {
  SharedFloor floor;
  for (auto _ : state) std::atomic_ref<std::int64_t>(floor->counter).fetch_add(1);
  check_count(std::atomic_ref<std::int64_t>(floor->counter).load(), state.iterations());
}

}  // namespace

void register_sync_workloads(Registry& registry) {
  registry.add({.name = "lock.uncontended",
                .metric = Metric::NanosecondsPerIteration,
                .ipckit = {"BM_Lock_Uncontended", BM_Lock_Uncontended},
                .floor = BenchmarkFunction{"BM_Floor_RobustMutexUncontended", BM_Floor_RobustMutexUncontended},
                .python = "lock.uncontended"});
  registry.add({.name = "lock.contended.2proc",
                .metric = Metric::ItemsPerSecond,
                .item = "increments",
                .ipckit = {"BM_Lock_Contended2Proc", BM_Lock_Contended2Proc},
                .floor = BenchmarkFunction{"BM_Floor_RobustMutexContended2Proc", BM_Floor_RobustMutexContended2Proc},
                .python = "lock.contended.2proc"});
  registry.add({.name = "event.wake",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = {"BM_Event_Wake", BM_Event_Wake},
                .floor = BenchmarkFunction{"BM_Floor_FutexWake", BM_Floor_FutexWake},
                .python = "event.wake"});
  registry.add({.name = "value.increment",
                .metric = Metric::NanosecondsPerIteration,
                .ipckit = {"BM_Value_FetchAdd", BM_Value_FetchAdd},
                .floor = BenchmarkFunction{"BM_Floor_AtomicRefFetchAdd", BM_Floor_AtomicRefFetchAdd},
                .python = "value.increment"});
}

}  // namespace ipckit::bench
