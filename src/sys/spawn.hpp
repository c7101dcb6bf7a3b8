// sys/spawn.hpp — starting another program with posix_spawn.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/unique_fd.hpp"

namespace ipckit::sys {

struct SpawnRequest {
  std::vector<std::string> argv;                // argv[0] looked up in PATH without a '/'
  std::optional<std::vector<std::string>> env;  // "NAME=value"; nullopt: this process's
  std::string cwd;                              // empty: this process's
  // Fds of this process to become the child's 0, 1, 2; -1 leaves that one inherited.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool stderr_to_stdout = false;  // 2 becomes a copy of the child's 1
  std::vector<int> pass_fds;      // kept open under the same numbers
  bool new_process_group = false;
};

struct Spawned {
  int pid = -1;
  UniqueFd pidfd;
};

// Starts the program. Every fd of this process other than 0-2 and pass_fds is closed in
// the child, the signal mask is emptied and SIGPIPE set back to its default. Failing to
// start it (missing program, bad cwd) throws in this process: FileNotFoundError for
// ENOENT, OSError otherwise, naming the program.
Spawned spawn(const SpawnRequest& request);

// This process's environment as "NAME=value" strings.
std::vector<std::string> environment();

// /dev/null opened for reading and writing (close-on-exec).
UniqueFd open_dev_null();

}  // namespace ipckit::sys
