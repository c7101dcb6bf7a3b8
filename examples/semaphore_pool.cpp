// The semaphore part of seeds/002 §5 ("Other Synchronization Primitives"), with ipckit.
//
// A semaphore with two permits lets two of five worker processes at a time into a
// section of simulated work (think of a pool of two database connections). Each worker
// says when it waits, enters and leaves. Unlike the Python, the program also checks the
// claim: workers count themselves in and out of a shared counter while they hold a
// permit, and the highest count seen must not exceed two.
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kWorkers = 5;
constexpr unsigned kPermits = 2;

// Workers inside the section now, and the most there have been at once. Atomic
// operations: no lock needed.
struct Occupancy {
  ipckit::Value<int> inside{0, false};
  ipckit::Value<int> most{0, false};

  void enter() {
    const int now = inside.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange(seen, now)) {
    }
  }
  void leave() { inside.fetch_sub(1); }
};

void semaphore_worker(ipckit::Semaphore& semaphore, Occupancy& occupancy, int worker_id) {
  std::cout << "Worker " << worker_id << " waiting for semaphore" << std::endl;
  {
    std::lock_guard permit(semaphore);  // Python: with sem:
    occupancy.enter();
    std::cout << "Worker " << worker_id << " acquired semaphore" << std::endl;
    std::this_thread::sleep_for(50ms);  // simulated work
    occupancy.leave();
  }
  std::cout << "Worker " << worker_id << " released semaphore" << std::endl;
}

}  // namespace

int main() {
  ipckit::Semaphore semaphore(kPermits);
  Occupancy occupancy;

  std::vector<ipckit::Process> workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.emplace_back([&, i] { semaphore_worker(semaphore, occupancy, i); }, "Worker-" + std::to_string(i));
  for (auto& worker : workers) worker.start();
  bool ok = true;
  for (auto& worker : workers) {
    worker.join();
    ok = ok && worker.exitcode() == 0;
  }
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok) return 1;

  const int most = occupancy.most.load();
  std::cout << "Most workers inside at once: " << most << std::endl;
  if (most > static_cast<int>(kPermits) || semaphore.get_value() != kPermits) {
    std::cerr << "the semaphore let " << most << " workers in at once, or lost a permit" << std::endl;
    return 1;
  }
  std::cout << "Never more than " << kPermits << " workers were inside at once; all " << kPermits
            << " permits are back" << std::endl;
}
