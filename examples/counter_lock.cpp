// The "Lock Example" of seeds/002 (§5 Synchronization Primitives), with ipckit; the same
// counter as seeds/003 ("Synchronization").
//
// Five worker processes each add 1 to a shared counter ten times, pausing a few
// milliseconds between increments: first holding a Lock, then without one. Then the same
// race without the pauses, 20000 increments per worker, where it shows.
//
// With the lock, the read, the write and the print of each increment happen while this
// process holds it, so the workers print 1, 2, ... 50 in order and the count is exact.
// Without it, `counter.set(counter.get() + 1)` is what Python's `counter.value += 1`
// does: the read and the write each take the Value's own lock, but another process may
// write between them, and then one of the two increments is lost. With pauses between
// increments that is rare; without them, it is the rule. For a counter alone,
// counter.fetch_add(1) is atomic and needs no lock at all.
#include <chrono>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kWorkers = 5;
constexpr int kIncrements = 10;        // per worker, with pauses
constexpr int kBurstIncrements = 20000;  // per worker, without pauses

// Up to 20 ms of simulated work (Python: random.random() * 0.2 s).
void pause_randomly(std::mt19937& random) {
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution(0, 20)(random)));
}

void increment_with_lock(ipckit::Value<int>& counter, ipckit::Lock& lock, int worker_id) {
  std::mt19937 random(static_cast<unsigned>(worker_id));
  for (int i = 0; i < kIncrements; ++i) {
    {
      std::lock_guard hold(lock);  // Python: with lock:
      const int value = counter.raw() + 1;
      counter.raw() = value;
      std::cout << "Worker " << worker_id << ": Incremented counter to " << value << std::endl;
    }
    pause_randomly(random);
  }
}

void increment_without_lock(ipckit::Value<int>& counter, int worker_id) {
  std::mt19937 random(static_cast<unsigned>(worker_id));
  for (int i = 0; i < kIncrements; ++i) {
    const int value = counter.get() + 1;  // another process may write here...
    counter.set(value);                   // ...and this overwrites it
    std::cout << "Worker " << worker_id << ": Incremented counter to " << value << " (unsafe)" << std::endl;
    pause_randomly(random);
  }
}

// Runs `work(worker_id)` in kWorkers processes and joins them; false if one failed (it
// has said why on stderr).
bool run_workers(const std::function<void(int)>& work) {
  std::vector<ipckit::Process> workers;
  for (int i = 0; i < kWorkers; ++i) workers.emplace_back([&work, i] { work(i); }, "Worker-" + std::to_string(i));
  for (auto& worker : workers) worker.start();
  bool ok = true;
  for (auto& worker : workers) {
    worker.join();
    ok = ok && worker.exitcode() == 0;
  }
  return ok;
}

// Prints the final count of an unlocked run, and how many increments were lost.
void report_unlocked(const char* label, int value, int expected) {
  std::cout << "Final counter value (" << label << "): " << value << " of " << expected;
  if (value == expected)
    std::cout << " (none lost this time; the race is still there)" << std::endl;
  else
    std::cout << " (" << expected - value << " increments lost: two processes read the same value and both wrote "
              << "value + 1)" << std::endl;
}

}  // namespace

int main() {
  std::cout << "=== With proper locking ===" << std::endl;
  ipckit::Lock lock;
  ipckit::Value<int> counter_with_lock(0, /*lock=*/false);  // guarded by `lock`
  if (!run_workers([&](int id) { increment_with_lock(counter_with_lock, lock, id); })) return 1;
  std::cout << "Final counter value (with lock): " << counter_with_lock.raw() << std::endl;

  std::cout << "\n=== Without locking (unsafe) ===" << std::endl;
  ipckit::Value<int> counter_without_lock(0);  // get() and set() lock, the pair does not
  if (!run_workers([&](int id) { increment_without_lock(counter_without_lock, id); })) return 1;
  report_unlocked("without lock", counter_without_lock.get(), kWorkers * kIncrements);

  std::cout << "\n=== The same, " << kWorkers << " x " << kBurstIncrements << " increments without pauses ==="
            << std::endl;
  ipckit::Value<int> burst_without_lock(0);
  ipckit::Value<int> burst_with_lock(0, false);
  const bool ok = run_workers([&](int) {
    for (int i = 0; i < kBurstIncrements; ++i) burst_without_lock.set(burst_without_lock.get() + 1);
    for (int i = 0; i < kBurstIncrements; ++i) {
      std::lock_guard hold(lock);
      burst_with_lock.raw() += 1;
    }
  });
  if (!ok) return 1;
  report_unlocked("without lock", burst_without_lock.get(), kWorkers * kBurstIncrements);
  std::cout << "Final counter value (with lock): " << burst_with_lock.raw() << " of " << kWorkers * kBurstIncrements
            << std::endl;

  // The locked counts must be exact; anything else is a bug worth a failing exit.
  if (counter_with_lock.raw() != kWorkers * kIncrements || burst_with_lock.raw() != kWorkers * kBurstIncrements) {
    std::cerr << "a locked count is wrong" << std::endl;
    return 1;
  }
}
