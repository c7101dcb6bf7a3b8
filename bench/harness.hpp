// bench/harness.hpp — runs workloads three ways (ipckit, Python, OS floor) and reports.
//
// run_bench() is the whole of `ipckit bench`: it selects workloads, times the ipckit and
// floor sides with Google Benchmark (one figure per repetition, in the workload's unit),
// runs the Python peer for the same workload, prints a table of medians and ratios, and
// writes the JSON and the SVG chart when asked. Errors (a failing benchmark, a missing or
// failing Python peer, a pattern that matches nothing) throw BenchError with a message
// meant for the user.
#pragma once

#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "workload.hpp"

namespace ipckit::bench {

class BenchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::vector<std::string> only;  // shell globs on workload names; empty: every workload
  bool quick = false;             // smoke-test length: fewer, shorter repetitions
  int reps = 0;                   // repetitions per side; 0: 5 (3 with quick)
  double min_time = 0;            // seconds per repetition; 0: 0.5 (0.05 with quick)
  bool python = true;             // run the Python peers
  std::string python_path = "/usr/bin/python3";
  std::string peers_dir;          // holds multiprocessing_peer.py
  std::string json_path;          // empty: no JSON
  std::string chart_path;         // empty: no chart
  std::string command_line;       // for the machine block
  std::string build_type;         // CMake's build type of this binary
};

// The repetitions of one side, summarised.
struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  int reps = 0;
};
Summary summarize(std::vector<double> samples);

struct Result {
  std::string workload;
  std::string unit;
  bool lower_is_better = false;
  Summary ipckit;
  std::optional<Summary> python;
  std::optional<Summary> floor;
};

// How much faster `side` is than `other` (>1: side is faster), whatever the unit's
// direction.
double speedup(const Result& result, const Summary& side, const Summary& other);

struct Machine {
  std::string cpu_model;
  int cores = 0;
  std::string kernel;
  std::string compiler;
  std::string build_type;
  std::optional<std::string> python_version;
  std::string date;  // UTC, ISO 8601
  std::string command_line;
};

// Workloads whose name matches one of `patterns` (all when empty), in registry order.
// Throws BenchError naming a pattern that matches nothing.
std::vector<const Workload*> select(const Registry& registry, const std::vector<std::string>& patterns);

// `ipckit bench --list`.
void print_list(std::ostream& out, const Registry& registry);

// `ipckit bench`: returns the process exit code.
int run_bench(const Options& options);

// The words as a shell would read them back: "ipckit bench --only 'pipe.*'".
std::string join_command(const std::vector<std::string>& words);

// Reports (report.cpp).
void print_table(std::ostream& out, const std::vector<Result>& results);
void write_json(const std::string& path, const Machine& machine, const std::vector<Result>& results);
void write_chart(const std::string& path, const Machine& machine, const std::vector<Result>& results);
// "12.3", "5234", "1.52M": three significant digits, SI suffix from 10^5 up.
std::string format_figure(double value);

}  // namespace ipckit::bench
