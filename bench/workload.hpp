// bench/workload.hpp — a named workload, measured three ways by `ipckit bench`.
//
// A workload is one piece of work ("a 64-byte round trip to a child process") done by
// ipckit, by the bare system calls that any implementation needs (the floor), and by
// Python's multiprocessing (a peer script in bench/peers/ that knows the same name). The
// ipckit and floor sides are Google Benchmark functions; each repetition yields one
// figure in the workload's unit (see Metric).
//
// Adding a workload: write its benchmark functions in bench/<object>_bench.cpp, add them
// to the registry in that file's register_<object>_workloads(), list that function in
// register_all_workloads() (workload.cpp) once per file, and teach
// bench/peers/multiprocessing_peer.py the same name. bench/README.md has an example.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipckit::bench {

// How a repetition's figure is read from Google Benchmark's run, and in what unit.
enum class Metric {
  MicrosecondsPerIteration,  // "µs", lower is better: real time / iterations
  NanosecondsPerIteration,   // "ns", lower is better: the same, for sub-microsecond work
  ItemsPerSecond,            // "msg/s" (or the workload's item), from SetItemsProcessed
  MegabytesPerSecond,        // "MB/s" (10^6 bytes), from SetBytesProcessed
};

// One side of a workload: a Google Benchmark function, named BM_<Object>_<Op> (plus
// "/<arg>" when it takes one, e.g. the message size).
struct BenchmarkFunction {
  std::string name;
  std::function<void(benchmark::State&)> run;
};

// "<name>/<size>": `function` run with a size argument (a message size, in bytes).
BenchmarkFunction sized(const std::string& name, void (*function)(benchmark::State&, std::size_t),
                        std::size_t size);

struct Workload {
  std::string name;  // "<object>.<what>.<size>", e.g. "pipe.rtt.64B"
  Metric metric = Metric::MicrosecondsPerIteration;
  std::string item = "msg";  // what ItemsPerSecond counts: "msg/s"
  BenchmarkFunction ipckit;
  std::optional<BenchmarkFunction> floor;  // nullopt: no meaningful OS floor
  std::string python;                      // the peer's workload name; empty: none

  std::string unit() const;
  bool lower_is_better() const {
    return metric == Metric::MicrosecondsPerIteration || metric == Metric::NanosecondsPerIteration;
  }
};

// All workloads, in the order they are run and shown.
class Registry {
 public:
  // Throws std::invalid_argument on a duplicate name.
  void add(Workload workload);
  const std::vector<Workload>& all() const { return workloads_; }

 private:
  std::vector<Workload> workloads_;
};

// Each <object>_bench.cpp adds its workloads with one of these.
void register_pipe_workloads(Registry& registry);
void register_process_workloads(Registry& registry);
void register_sync_workloads(Registry& registry);
void register_shm_workloads(Registry& registry);
void register_queue_workloads(Registry& registry);
void register_connection_workloads(Registry& registry);
void register_subprocess_workloads(Registry& registry);

// Every workload, from the functions above (the one list to extend).
Registry all_workloads();

}  // namespace ipckit::bench
