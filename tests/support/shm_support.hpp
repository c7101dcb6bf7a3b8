// tests/support/shm_support.hpp — helpers for the shared memory tests.
//
// * wait_until_removed(): waits, with inotify on the directory, until a file is gone —
//   how a test learns that the tracker process removed a segment, without sleeping.
// * Spawned: a process started with fork + exec whose stdin and stdout (with stderr) are
//   pipes to the test, running asynchronously (run_child() waits for its child): a child
//   scenario of this binary, or any program (e.g. /usr/bin/python3). Line-based, so a
//   child can say "ready" and wait for "go".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipckit::test {

// "/dev/shm/ipckit-<name>": where the segment of an ipckit name lives.
std::string shm_path(std::string_view ipckit_name);
bool path_exists(const std::string& path);

// Returns true once `path` does not exist (at once if it does not), false when `timeout`
// passed first. Waits with inotify on the parent directory (IN_DELETE, IN_MOVED_FROM).
bool wait_until_removed(const std::string& path, std::chrono::milliseconds timeout);

class Spawned {
 public:
  // This binary with --ipckit-child=<scenario> args..., keeping `keep_fds` open in it.
  static Spawned scenario(std::string_view name, const std::vector<std::string>& args = {},
                          const std::vector<int>& keep_fds = {});
  // Any program: argv[0] is its path.
  static Spawned program(const std::vector<std::string>& argv);

  Spawned(Spawned&& other) noexcept;
  Spawned& operator=(Spawned&&) = delete;
  ~Spawned();  // kills and reaps a child still running

  int pid() const { return pid_; }
  // The next line of its output, without the newline; nullopt at end of output.
  std::optional<std::string> read_line();
  // Everything it printed so far that read_line() has not returned, plus the rest up to
  // end of output (for failure messages).
  std::string read_rest();
  void write_line(std::string_view line);
  void close_stdin();
  void kill();
  // Waits for it; its exit code, or minus the signal that ended it.
  int wait();

 private:
  static Spawned start(std::vector<std::string> argv, const std::vector<int>& keep_fds);
  Spawned(int pid, int in, int out) : pid_(pid), in_(in), out_(out) {}
  int pid_ = -1;
  int in_ = -1;   // its stdin
  int out_ = -1;  // its stdout and stderr
  std::string buffer_;
  std::optional<int> status_;
};

}  // namespace ipckit::test
