// bench/process_bench.cpp — Process: the cost of starting and joining a child.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "ipckit/process.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::State;

// process.start_join: one iteration starts a process whose target does nothing and
// joins it (Python: Process(target=noop).start(); join()).
void BM_Process_StartJoin(State& state) {
  for (auto _ : state) {
    ipckit::Process child([] {});
    child.start();
    child.join();
    if (child.exitcode() != 0)
      throw std::runtime_error("the child exited with " + std::to_string(child.exitcode().value_or(-1)));
  }
}

// The floor: fork(), the child calls _exit(0), the parent waitpid()s.
void BM_Floor_ForkWaitpid(State& state) {
  for (auto _ : state) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    if (status != 0) throw std::runtime_error("the forked child ended with status " + std::to_string(status));
  }
}

}  // namespace

void register_process_workloads(Registry& registry) {
  registry.add({.name = "process.start_join",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = {"BM_Process_StartJoin", BM_Process_StartJoin},
                .floor = BenchmarkFunction{"BM_Floor_ForkWaitpid", BM_Floor_ForkWaitpid},
                .python = "process.start_join"});
}

}  // namespace ipckit::bench
