// The "Value and Array Objects" example of seeds/002 (§3 Shared Memory), with ipckit.
//
// Four incrementer processes each add 1, a hundred times, to a shared counter (a Value)
// and to every element of a shared array (an Array), pausing 5 ms between rounds. A
// monitor process reports progress at every tenth of the work, until the work is done.
//
// Where the Python is loose, this is strict:
//   - One lock guards the counter and the array together (the counter's lock, also the
//     lock of the `progress` Condition), so every snapshot the monitor takes is whole:
//     each element equals the count. (The Python updates the array without a lock, so
//     increments get lost, and reads the counter and the array at different moments.)
//   - The monitor does not poll with sleeps, nor stop after a fixed two seconds whether
//     or not the work is done: it sleeps on the Condition until the count reaches the
//     next tenth (incrementers notify it when they cross one) and stops after the last.
//     If no progress comes for ten seconds (an incrementer died), it fails instead of
//     waiting for ever.
#include <chrono>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kIncrementers = 4;
constexpr int kRounds = 100;                         // per incrementer
constexpr int kTotal = kIncrementers * kRounds;      // the final count
constexpr int kReportEvery = kTotal / 10;            // a tenth of the work

std::string format(const std::vector<int>& values) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < values.size(); ++i) out << (i == 0 ? "" : ", ") << values[i];
  out << "]";
  return out.str();
}

void increment_counter(ipckit::Value<int>& counter, ipckit::Array<int>& array, ipckit::Condition& progress) {
  for (int i = 0; i < kRounds; ++i) {
    {
      auto count = counter.access();  // holds the counter's lock, which also guards `array`
      *count += 1;
      for (int& element : array.raw()) element += 1;
      if (*count % kReportEvery == 0) progress.notify_all();
    }
    std::this_thread::sleep_for(5ms);  // simulated work
  }
}

void monitor_process(ipckit::Value<int>& counter, ipckit::Array<int>& array, ipckit::Condition& progress) {
  for (int next = kReportEvery; next <= kTotal; next += kReportEvery) {
    int count = 0;
    std::vector<int> snapshot;
    {
      std::unique_lock hold(progress);  // the counter's lock
      if (!progress.wait_for([&] { return counter.raw() >= next; }, 10s))
        throw std::runtime_error("no progress for 10 s at count " + std::to_string(counter.raw()));
      count = counter.raw();
      snapshot = array.to_vector();  // the array itself has no lock: `hold` guards it
    }
    std::cout << "Monitor: passed " << next << " of " << kTotal << " (count " << count << ", array "
              << format(snapshot) << ")" << std::endl;
  }
  std::cout << "Monitor: all increments done" << std::endl;
}

}  // namespace

int main() {
  ipckit::Value<int> shared_counter(0);                   // with a lock (Python's Value('i', 0))
  ipckit::Array<int> shared_array({0, 0, 0, 0, 0}, false);  // guarded by the counter's lock
  ipckit::Condition progress(shared_counter.get_lock());

  std::vector<ipckit::Process> incrementers;
  for (int i = 0; i < kIncrementers; ++i)
    incrementers.emplace_back([&] { increment_counter(shared_counter, shared_array, progress); },
                              "Incrementer-" + std::to_string(i));
  ipckit::Process monitor([&] { monitor_process(shared_counter, shared_array, progress); }, "Monitor");

  for (auto& p : incrementers) p.start();
  monitor.start();

  bool ok = true;
  for (auto& p : incrementers) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  monitor.join();
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok || monitor.exitcode() != 0) return 1;

  std::cout << "Final counter value: " << shared_counter.get() << std::endl;
  std::cout << "Final array values: " << format(shared_array.to_vector()) << std::endl;
}
