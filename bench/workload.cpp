// bench/workload.cpp — the registry, and the one list of workload files.
#include "workload.hpp"

#include <stdexcept>

namespace ipckit::bench {

std::string Workload::unit() const {
  switch (metric) {
    case Metric::MicrosecondsPerIteration: return "µs";
    case Metric::NanosecondsPerIteration: return "ns";
    case Metric::ItemsPerSecond: return item + "/s";
    case Metric::MegabytesPerSecond: return "MB/s";
  }
  return "?";
}

BenchmarkFunction sized(const std::string& name, void (*function)(benchmark::State&, std::size_t),
                        std::size_t size) {
  return {name + "/" + std::to_string(size), [function, size](benchmark::State& state) { function(state, size); }};
}

void Registry::add(Workload workload) {
  for (const auto& known : workloads_)
    if (known.name == workload.name)
      throw std::invalid_argument("bench: workload registered twice: " + workload.name);
  workloads_.push_back(std::move(workload));
}

Registry all_workloads() {
  Registry registry;
  register_pipe_workloads(registry);
  register_process_workloads(registry);
  register_sync_workloads(registry);
  register_shm_workloads(registry);
  register_queue_workloads(registry);
  register_connection_workloads(registry);
  register_subprocess_workloads(registry);
  return registry;
}

}  // namespace ipckit::bench
