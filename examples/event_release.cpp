// The event part of seeds/002 §5 ("Other Synchronization Primitives"), with ipckit.
//
// Three worker processes wait on an Event; the main process prepares something (50 ms of
// simulated work), then sets the event, and every worker goes on at once.
//
// The Python sleeps a second before set() and hopes the workers are waiting by then. Here
// the workers and the main process meet at a Barrier first, so every worker has said it
// waits before the main process sets the event: the output's order is certain, not
// likely. (A worker that reached wait() after set() would still go on: an Event stays
// set until clear().)
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kWorkers = 3;

void event_worker(ipckit::Event& event, ipckit::Barrier& ready, int worker_id) {
  std::cout << "Worker " << worker_id << " waiting for event" << std::endl;
  ready.wait();
  event.wait();
  std::cout << "Worker " << worker_id << " received event notification" << std::endl;
}

}  // namespace

int main() {
  ipckit::Event event;
  ipckit::Barrier ready(kWorkers + 1);  // the workers and the main process

  std::vector<ipckit::Process> workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.emplace_back([&, i] { event_worker(event, ready, i); }, "Worker-" + std::to_string(i));
  for (auto& worker : workers) worker.start();

  ready.wait();                       // every worker is about to wait
  std::this_thread::sleep_for(50ms);  // simulated work: what the event announces
  std::cout << "Main process setting the event" << std::endl;
  event.set();

  bool ok = true;
  for (auto& worker : workers) {
    worker.join();
    ok = ok && worker.exitcode() == 0;
  }
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok) return 1;
  std::cout << "Main process: all workers went on" << std::endl;
}
