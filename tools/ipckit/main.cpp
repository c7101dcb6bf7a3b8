// tools/ipckit/main.cpp — the `ipckit` command line.
//
//   ipckit bench [--only PATTERN]... [--quick] [--reps N] [--json FILE] [--chart FILE.svg]
//                [--no-python | --python PATH] [--peers-dir DIR] [--list]
//
// `bench` runs the named workloads of bench/ three ways in one invocation: with ipckit,
// with Python's multiprocessing (bench/peers/) and with the bare system calls (the floor),
// then prints medians and speed-ups (bench/harness.hpp).
// GCC 12 at -O2 reports a potential null dereference inside std::string code that CLI11
// inlines (CLI::detail::split): a false positive in a header we do not own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "harness.hpp"

#ifndef IPCKIT_PEERS_DIR
#error "IPCKIT_PEERS_DIR must name bench/peers in the source tree (tools/ipckit/CMakeLists.txt)"
#endif
#ifndef IPCKIT_BUILD_TYPE
#define IPCKIT_BUILD_TYPE ""
#endif

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace bench = ipckit::bench;

  CLI::App app{"ipckit: communication between processes for C++"};
  app.name("ipckit");
  app.require_subcommand(1);

  bench::Options options;
  options.peers_dir = IPCKIT_PEERS_DIR;
  options.build_type = IPCKIT_BUILD_TYPE;
  bool list = false;

  CLI::App* bench_command = app.add_subcommand(
      "bench",
      "Run benchmark workloads with ipckit, Python multiprocessing and the bare system calls (the floor), "
      "and print medians and speed-ups (above 1x: ipckit is faster)");
  bench_command
      ->add_option("--only", options.only,
                   "Run only workloads whose name matches this shell glob, e.g. 'pipe.*' (repeatable or "
                   "comma-separated)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->type_name("PATTERN");
  bench_command->add_flag("--quick", options.quick,
                          "Short run for smoke tests: 3 repetitions of at least 0.05 s");
  bench_command->add_option("--reps", options.reps, "Repetitions per side (default 9, 3 with --quick)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  bench_command
      ->add_option("--min-time", options.min_time,
                   "Seconds each repetition lasts at least (default 0.5, 0.05 with --quick)")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  bench_command->add_option("--json", options.json_path, "Write machine and results as JSON to FILE")
      ->type_name("FILE");
  bench_command->add_option("--chart", options.chart_path, "Write an SVG bar chart to FILE (.svg)")
      ->type_name("FILE");
  bench_command->add_flag("--list", list, "List the workloads and exit");
  auto* no_python = bench_command->add_flag_callback("--no-python", [&] { options.python = false; },
                                                     "Skip the Python multiprocessing peers");
  bench_command
      ->add_option("--python", options.python_path, "Python interpreter for the peers")
      ->capture_default_str()
      ->type_name("PATH")
      ->excludes(no_python);
  bench_command->add_option("--peers-dir", options.peers_dir, "Directory of the Python peer scripts")
      ->capture_default_str()
      ->type_name("DIR");

  CLI11_PARSE(app, argc, argv);

  try {
    if (list) {
      bench::print_list(std::cout, bench::all_workloads());
      return 0;
    }
    if (!options.chart_path.empty() && !ends_with(options.chart_path, ".svg"))
      throw bench::BenchError("--chart writes SVG: give a file name ending in .svg, not " + options.chart_path);
    options.command_line = bench::join_command(std::vector<std::string>(argv, argv + argc));
    return bench::run_bench(options);
  } catch (const std::exception& e) {
    std::cerr << "ipckit bench: error: " << e.what() << "\n";
    return 1;
  }
}
