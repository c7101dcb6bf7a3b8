// The "Task Distribution System" of seeds/002 (§8 Practical IPC Patterns), with the
// status monitor of seeds/003 ("A Simple Task Distribution System"), with ipckit.
//
// A generator process puts 20 tasks on a task queue, then one None (an empty
// std::optional) per worker. cpu_count() worker processes take tasks until they get
// None, simulate the work (complexity × 2 ms) and put a result on a result queue. A
// collector process takes the results. A status monitor process reports how many tasks
// are done, from a status board in shared memory (an Array with one status per task,
// which the workers move from pending to running to done), until all are. The main
// process joins them all.
//
// Where the Python is loose, this is strict:
//   - The board is an Array of a small enum guarded by its lock, and a Condition on that
//     lock: the monitor sleeps until the count of finished tasks changes (workers notify
//     it), instead of polling every two seconds, and stops when all 20 are done, not when
//     the tasks created so far happen to be done. (seeds/003 needs a Manager process for
//     its dict and polls the result queue with empty() and sleeps.)
//   - The generator puts one None per worker it was told about; the Python puts
//     cpu_count() of them, whatever the number of workers.
//   - No result is lost or counted twice: the main process closes the result queue once
//     every worker has ended; the collector takes what is left, then get throws
//     QueueClosed, and it checks that it got each task's result exactly once. A worker
//     that died cannot leave it waiting for ever, as the Python's would (nor the monitor,
//     which the main process then stops).
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/codec.hpp"
#include "ipckit/error.hpp"
#include "ipckit/process.hpp"
#include "ipckit/queue.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kTasks = 20;
constexpr auto kWorkPerComplexity = 2ms;

struct Task {
  int id = 0;
  std::string type;
  int data = 0;
  int complexity = 0;
  IPCKIT_CODABLE(id, type, data, complexity)
};

struct Result {
  int task_id = 0;
  int worker_id = 0;
  int result_data = 0;
  double processing_time = 0;  // seconds
  IPCKIT_CODABLE(task_id, worker_id, result_data, processing_time)
};

using TaskQueue = ipckit::Queue<std::optional<Task>>;  // std::nullopt: Python's None, stop
using ResultQueue = ipckit::Queue<Result>;

enum class Status : std::uint8_t { Pending, Running, Done };

// One status per task, guarded by the array's lock; `changed` is notified on each change.
struct StatusBoard {
  ipckit::Array<Status> status{kTasks};  // all Pending (zero)
  ipckit::Condition changed{status.get_lock()};

  void set(int task, Status s) {
    std::lock_guard hold(changed);  // the array's lock
    status.raw()[task] = s;
    changed.notify_all();
  }
  // Tasks in status `s`; call holding the lock.
  int count(Status s) const {
    int n = 0;
    for (Status t : status.raw()) n += t == s ? 1 : 0;
    return n;
  }
};

// Every line is flushed (std::endl) so that the lines of the processes interleave whole.
void task_generator(TaskQueue& tasks, int num_tasks, int num_workers) {
  std::cout << "Generator: Creating " << num_tasks << " tasks" << std::endl;
  std::mt19937 random(std::random_device{}());
  const char* const types[] = {"calculation", "analysis", "validation"};
  for (int i = 0; i < num_tasks; ++i) {
    tasks.put(Task{i, types[std::uniform_int_distribution<int>(0, 2)(random)],
                   std::uniform_int_distribution<int>(1000, 9999)(random),
                   std::uniform_int_distribution<int>(1, 5)(random)});
    std::cout << "Generator: Created task " << i << std::endl;
    // Variable creation times.
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 1000)(random)));
  }
  for (int i = 0; i < num_workers; ++i) tasks.put(std::nullopt);  // one stop per worker
  std::cout << "Generator: All tasks created" << std::endl;
}

void worker_process(TaskQueue& tasks, ResultQueue& results, StatusBoard& board, int worker_id) {
  std::cout << "Worker " << worker_id << ": Started" << std::endl;
  int tasks_processed = 0;
  for (;;) {
    const std::optional<Task> task = tasks.get();
    if (!task) {
      std::cout << "Worker " << worker_id << ": Received termination signal" << std::endl;
      break;
    }
    std::cout << "Worker " << worker_id << ": Processing task " << task->id << " (" << task->type << ")"
              << std::endl;
    board.set(task->id, Status::Running);
    const auto processing_time = task->complexity * kWorkPerComplexity;
    std::this_thread::sleep_for(processing_time);
    results.put(Result{task->id, worker_id, task->data * task->complexity,
                       std::chrono::duration<double>(processing_time).count()});
    board.set(task->id, Status::Done);  // after put: a task done has its result queued
    ++tasks_processed;
  }
  std::cout << "Worker " << worker_id << ": Finished after processing " << tasks_processed << " tasks"
            << std::endl;
}

// Takes results until the queue is closed (every worker has ended) and it is empty.
void result_collector(ResultQueue& results, int expected_results) {
  std::cout << "Collector: Expecting " << expected_results << " results" << std::endl;
  std::vector<int> received(expected_results, 0);  // per task
  int results_received = 0;
  double total_processing_time = 0;
  try {
    for (;;) {
      const Result result = results.get();
      std::cout << "Collector: Received result for task " << result.task_id << " from worker "
                << result.worker_id << std::endl;
      ++received.at(result.task_id);
      total_processing_time += result.processing_time;
      ++results_received;
    }
  } catch (const ipckit::QueueClosed&) {
  }
  for (int id = 0; id < expected_results; ++id)
    if (received[id] != 1)
      throw std::runtime_error("Collector: task " + std::to_string(id) + " has " + std::to_string(received[id]) +
                               " results");
  std::cout << "Collector: All " << results_received << " results collected" << std::endl;
  std::cout << "Collector: Total processing time: " << std::fixed << std::setprecision(3)
            << total_processing_time << " seconds" << std::endl;
}

void status_monitor(StatusBoard& board) {
  std::cout << "Status Monitor: Starting" << std::endl;
  int reported = -1;
  while (reported < kTasks) {
    int done = 0;
    int running = 0;
    {
      std::unique_lock hold(board.changed);  // the array's lock
      if (!board.changed.wait_for([&] { return board.count(Status::Done) != reported; }, 10s))
        throw std::runtime_error("Status Monitor: no task finished for 10 s");
      done = board.count(Status::Done);
      running = board.count(Status::Running);
    }
    std::cout << "Status Monitor: Tasks: " << done << "/" << kTasks << " completed (" << running << " running)"
              << std::endl;
    reported = done;
  }
  std::cout << "Status Monitor: All tasks completed" << std::endl;
}

}  // namespace

int main() {
  TaskQueue task_queue;
  ResultQueue result_queue;
  StatusBoard board;

  const int num_workers = ipckit::cpu_count();
  ipckit::Process generator([&] { task_generator(task_queue, kTasks, num_workers); }, "Generator");
  generator.start();

  std::cout << "Main: Creating " << num_workers << " worker processes" << std::endl;
  std::vector<ipckit::Process> workers;
  for (int i = 0; i < num_workers; ++i) {
    workers.emplace_back([&, i] { worker_process(task_queue, result_queue, board, i); },
                         "Worker-" + std::to_string(i));
    workers.back().start();
  }
  ipckit::Process collector([&] { result_collector(result_queue, kTasks); }, "Collector");
  collector.start();
  ipckit::Process monitor([&] { status_monitor(board); }, "Status Monitor");
  monitor.start();

  generator.join();
  bool ok = generator.exitcode() == 0;
  if (!ok) task_queue.close();  // no stops will come: wake the workers (get throws QueueClosed)
  for (auto& worker : workers) {
    worker.join();
    ok = ok && worker.exitcode() == 0;
  }
  result_queue.close();  // no more results can come: the collector ends when it has them all
  if (!ok) monitor.terminate();  // a task lost with a failed worker will never be done
  collector.join();
  monitor.join();
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok || collector.exitcode() != 0 || monitor.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
