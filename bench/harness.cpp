// bench/harness.cpp — selecting, running and summarising workloads (reports: report.cpp).
//
// Each side of a workload is run on its own: the ipckit and floor sides by registering
// that one Google Benchmark function and running it with a reporter that keeps each
// repetition's figure; the Python side by running the peer script, which calibrates and
// repeats the same way (iterations grown until a run lasts min_time, then `reps` runs)
// and prints its samples as JSON. Sides run one after the other, never at the same time,
// so they do not compete for the two cores.
#include "harness.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <spawn.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

extern char** environ;  // NOLINT: POSIX declares it nowhere else

namespace ipckit::bench {
namespace {

constexpr int kDefaultReps = 9;
constexpr int kQuickReps = 3;
constexpr double kDefaultMinTime = 0.5;
constexpr double kQuickMinTime = 0.05;
constexpr const char* kPeerScript = "multiprocessing_peer.py";
constexpr const char* kInstallHint =
    "scripts/install-deps installs Debian's python3; or pass --python PATH, or --no-python to skip "
    "the Python peers";

struct Settings {
  int reps;
  double min_time;
};

Settings settings_of(const Options& options) {
  Settings s{options.quick ? kQuickReps : kDefaultReps, options.quick ? kQuickMinTime : kDefaultMinTime};
  if (options.reps > 0) s.reps = options.reps;
  if (options.min_time > 0) s.min_time = options.min_time;
  return s;
}

// --- Google Benchmark -------------------------------------------------------------------

// Keeps the figure of every repetition (not the aggregates Google Benchmark adds).
class Collector : public benchmark::BenchmarkReporter {
 public:
  explicit Collector(Metric metric) : metric_(metric) {}

  bool ReportContext(const Context&) override { return true; }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      if (run.error_occurred) {
        error_ = run.error_message.empty() ? "failed" : run.error_message;
        continue;
      }
      try {
        figures_.push_back(figure(run));
        iterations_ = run.iterations;
      } catch (const BenchError& e) {  // not thrown through Google Benchmark
        error_ = e.what();
      }
    }
  }

  const std::vector<double>& figures() const { return figures_; }
  benchmark::IterationCount iterations() const { return iterations_; }
  const std::optional<std::string>& error() const { return error_; }

 private:
  double figure(const Run& run) const {
    switch (metric_) {
      case Metric::MicrosecondsPerIteration:
        return run.real_accumulated_time / static_cast<double>(run.iterations) * 1e6;
      case Metric::NanosecondsPerIteration:
        return run.real_accumulated_time / static_cast<double>(run.iterations) * 1e9;
      case Metric::ItemsPerSecond: return counter(run, "items_per_second", "SetItemsProcessed");
      case Metric::MegabytesPerSecond:
        return counter(run, "bytes_per_second", "SetBytesProcessed") / 1e6;
    }
    return 0;
  }

  static double counter(const Run& run, const char* name, const char* setter) {
    auto it = run.counters.find(name);
    if (it == run.counters.end())
      throw BenchError(run.benchmark_name() + " does not call state." + setter + "()");
    return it->second.value;
  }

  Metric metric_;
  std::vector<double> figures_;
  benchmark::IterationCount iterations_ = 0;  // of the last repetition
  std::optional<std::string> error_;
};

// Google Benchmark's own flags keep their defaults: what it needs comes from Options.
void initialize_google_benchmark() {
  static const bool initialized = [] {
    int argc = 1;
    char name[] = "ipckit";
    char* argv[] = {name, nullptr};
    benchmark::Initialize(&argc, argv);
    return true;
  }();
  static_cast<void>(initialized);
}

// One repetition of one side: its figure, and the iteration count it settled on.
struct Repetition {
  double figure;
  benchmark::IterationCount iterations;
};

// Runs one repetition of one side: for `iterations` iterations, or as many as fill
// settings.min_time when that is 0 (Google Benchmark's calibration).
Repetition run_benchmark(const BenchmarkFunction& function, Metric metric, const Settings& settings,
                         benchmark::IterationCount iterations) {
  benchmark::ClearRegisteredBenchmarks();
  auto* benchmark = benchmark::RegisterBenchmark(function.name.c_str(), [&function](benchmark::State& state) {
    // An exception must not unwind through Google Benchmark: it becomes the run's error.
    try {
      function.run(state);
    } catch (const std::exception& e) {
      static thread_local std::string message;
      message = e.what();
      state.SkipWithError(message.c_str());
    }
  });
  benchmark->UseRealTime();
  if (iterations > 0) {
    benchmark->Iterations(iterations);
  } else {
    benchmark->MinTime(settings.min_time);
  }
  Collector collector(metric);
  benchmark::RunSpecifiedBenchmarks(&collector, ".");
  benchmark::ClearRegisteredBenchmarks();
  if (collector.error()) throw BenchError(function.name + " failed: " + *collector.error());
  if (collector.figures().empty()) throw BenchError(function.name + " reported no repetition");
  return {collector.figures().back(), collector.iterations()};
}

// Runs the ipckit side and the floor (if any) in turns, `settings.reps` repetitions each,
// so that a slow spell of the machine (another process, the CPU clock) falls on both
// alike. The first repetition of each side calibrates its iteration count; the others
// reuse it. Returns the figures of each side.
std::pair<std::vector<double>, std::vector<double>> run_in_turns(const Workload& w,
                                                                 const Settings& settings) {
  std::vector<double> mine, floor;
  benchmark::IterationCount mine_n = 0, floor_n = 0;
  for (int i = 0; i < settings.reps; ++i) {
    const Repetition a = run_benchmark(w.ipckit, w.metric, settings, mine_n);
    mine.push_back(a.figure);
    mine_n = a.iterations;
    if (w.floor) {
      const Repetition b = run_benchmark(*w.floor, w.metric, settings, floor_n);
      floor.push_back(b.figure);
      floor_n = b.iterations;
    }
  }
  return {mine, floor};
}

// --- Python peer ------------------------------------------------------------------------

struct Captured {
  int status = 0;  // as from waitpid
  std::string out;
};

// Runs argv (looked up in PATH when it has no '/'), capturing stdout; stderr passes
// through. Returns nullopt when the program cannot be started (errno is set).
std::optional<Captured> run_captured(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw BenchError(std::string("pipe2: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: argv API
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    errno = rc;
    return std::nullopt;
  }
  Captured captured;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n > 0) {
      captured.out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  while (waitpid(pid, &captured.status, 0) < 0 && errno == EINTR) {
  }
  return captured;
}

bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by ") + strsignal(WTERMSIG(status));
  return "ended abnormally";
}

std::string quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./=:,+@%") == std::string::npos)
    return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The numbers of the JSON array `"key": [ ... ]` in `json` (the peer's output, which we
// write ourselves: a flat object, so a full JSON parser is not needed).
std::optional<std::vector<double>> json_number_array(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return std::nullopt;
  at = json.find('[', at);
  auto end = json.find(']', at);
  if (at == std::string::npos || end == std::string::npos) return std::nullopt;
  std::vector<double> numbers;
  std::istringstream items(json.substr(at + 1, end - at - 1));
  std::string item;
  while (std::getline(items, item, ',')) {
    char* parsed_end = nullptr;
    double value = std::strtod(item.c_str(), &parsed_end);
    if (parsed_end == item.c_str()) return std::nullopt;
    numbers.push_back(value);
  }
  return numbers;
}

class PythonPeer {
 public:
  PythonPeer(std::string interpreter, const std::string& peers_dir)
      : interpreter_(std::move(interpreter)), script_(peers_dir + "/" + kPeerScript) {
    if (access(script_.c_str(), R_OK) != 0)
      throw BenchError("the Python peer script " + script_ + " is missing (" + std::strerror(errno) +
                       "); pass --peers-dir DIR, or --no-python to skip the Python peers");
    std::vector<std::string> probe{interpreter_, "-c",
                                   "import multiprocessing, platform; print(platform.python_version())"};
    auto captured = run_captured(probe);
    if (!captured)
      throw BenchError("cannot run the Python interpreter " + interpreter_ + ": " + std::strerror(errno) +
                       "; " + kInstallHint);
    if (!exited_ok(captured->status))
      throw BenchError("the Python interpreter " + interpreter_ + " cannot import multiprocessing (" +
                       describe_status(captured->status) + "); " + kInstallHint);
    version_ = captured->out.substr(0, captured->out.find_first_of("\r\n"));
  }

  const std::string& version() const { return version_; }

  std::vector<double> run(const std::string& workload, const Settings& settings, bool quick) const {
    std::ostringstream min_time;
    min_time << settings.min_time;
    std::vector<std::string> argv{interpreter_, script_, "--workload", workload, "--reps",
                                  std::to_string(settings.reps), "--min-time", min_time.str()};
    if (quick) argv.emplace_back("--quick");
    auto captured = run_captured(argv);
    const std::string what = "the Python peer for " + workload + " (" + join_command(argv) + ")";
    if (!captured)
      throw BenchError("cannot start " + what + ": " + std::strerror(errno) + "; " + kInstallHint);
    if (!exited_ok(captured->status))
      throw BenchError(what + " " + describe_status(captured->status) +
                       " (its messages, if any, are above)");
    auto samples = json_number_array(captured->out, "samples");
    if (!samples || samples->empty() || captured->out.find("\"" + workload + "\"") == std::string::npos)
      throw BenchError(what + " printed no samples for that workload: " + captured->out);
    return *samples;
  }

 private:
  std::string interpreter_;
  std::string script_;
  std::string version_;
};

// --- machine ----------------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown CPU";
}

std::string kernel() {
  utsname name{};
  if (uname(&name) != 0) return "unknown";
  return std::string(name.sysname) + " " + name.release + " " + name.machine;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// The one-minute load average, from /proc/loadavg (0 when unreadable).
double load_average() {
  std::ifstream loadavg("/proc/loadavg");
  double load = 0;
  loadavg >> load;
  return load;
}

// Runs the three sides of `w` one after the other, printing a line per side as it ends.
Result run_workload(const Workload& w, const Settings& settings, const PythonPeer* python, bool quick) {
  Result result{w.name, w.unit(), w.lower_is_better(), {}, std::nullopt, std::nullopt};
  auto progress = [&](const char* side, const Summary& s) {
    std::cerr << "  " << std::left << std::setw(28) << w.name << " " << std::setw(8) << side
              << format_figure(s.median) << " " << result.unit << "\n";
  };
  auto [mine, floor] = run_in_turns(w, settings);
  result.ipckit = summarize(std::move(mine));
  progress("ipckit", result.ipckit);
  if (w.floor) {
    result.floor = summarize(std::move(floor));
    progress("floor", *result.floor);
  }
  if (python != nullptr && !w.python.empty()) {
    result.python = summarize(python->run(w.python, settings, quick));
    progress("Python", *result.python);
  }
  return result;
}

}  // namespace

std::string join_command(const std::vector<std::string>& words) {
  std::string command;
  for (const auto& word : words) {
    if (!command.empty()) command += ' ';
    command += quote(word);
  }
  return command;
}

Summary summarize(std::vector<double> samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  const auto n = samples.size();
  s.median = n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  s.min = samples.front();
  s.max = samples.back();
  s.reps = static_cast<int>(n);
  return s;
}

double speedup(const Result& result, const Summary& side, const Summary& other) {
  if (side.median <= 0 || other.median <= 0) return 0;
  return result.lower_is_better ? other.median / side.median : side.median / other.median;
}

std::vector<const Workload*> select(const Registry& registry, const std::vector<std::string>& patterns) {
  auto matches = [](const std::string& pattern, const Workload& w) {
    return fnmatch(pattern.c_str(), w.name.c_str(), 0) == 0;
  };
  for (const auto& pattern : patterns) {
    if (std::none_of(registry.all().begin(), registry.all().end(),
                     [&](const Workload& w) { return matches(pattern, w); }))
      throw BenchError("--only " + pattern + " matches no workload (see --list)");
  }
  std::vector<const Workload*> selected;
  for (const auto& w : registry.all()) {
    if (patterns.empty() ||
        std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return matches(p, w); }))
      selected.push_back(&w);
  }
  return selected;
}

void print_list(std::ostream& out, const Registry& registry) {
  for (const auto& w : registry.all()) {
    out << w.name << "  (" << w.unit() << ", " << (w.lower_is_better() ? "lower" : "higher")
        << " is better)\n    ipckit: " << w.ipckit.name << "\n    floor:  "
        << (w.floor ? w.floor->name : "-") << "\n    python: "
        << (w.python.empty() ? "-" : std::string(kPeerScript) + " --workload " + w.python) << "\n";
  }
}

int run_bench(const Options& options) {
  initialize_google_benchmark();
  const Registry registry = all_workloads();
  const auto workloads = select(registry, options.only);
  const Settings settings = settings_of(options);

  std::optional<PythonPeer> python;
  if (options.python) python.emplace(options.python_path, options.peers_dir);

  Machine machine{cpu_model(),
                  static_cast<int>(std::max(1U, std::thread::hardware_concurrency())),
                  kernel(),
                  compiler(),
                  options.build_type,
                  python ? std::optional<std::string>(python->version()) : std::nullopt,
                  utc_now(),
                  options.command_line};

  if (double load = load_average(); load >= 0.5 * machine.cores)
    std::cerr << "ipckit bench: note: the load average is " << load << " on " << machine.cores
              << " cores; other work running now makes the figures noisy\n";
  std::cerr << "ipckit bench: " << workloads.size() << " workload(s), " << settings.reps
            << (settings.reps == 1 ? " repetition" : " repetitions") << " of at least " << settings.min_time
            << " s per side\n";
  std::vector<Result> results;
  for (const Workload* w : workloads)
    results.push_back(run_workload(*w, settings, python ? &*python : nullptr, options.quick));

  std::cout << "\n";
  print_table(std::cout, results);
  if (!options.json_path.empty()) {
    write_json(options.json_path, machine, results);
    std::cerr << "ipckit bench: wrote " << options.json_path << "\n";
  }
  if (!options.chart_path.empty()) {
    write_chart(options.chart_path, machine, results);
    std::cerr << "ipckit bench: wrote " << options.chart_path << "\n";
  }
  return 0;
}

}  // namespace ipckit::bench
