// ipckit/subprocess.hpp — running other programs, as Python's subprocess module.
//
//   auto listing = ipckit::subprocess::run({"ls", "-l"}, {.capture_output = true});
//   std::cout << listing.out;
//
//   ipckit::subprocess::Popen grep({"grep", "example"}, {.in = PIPE, .out = PIPE});
//   auto [out, err] = grep.communicate("an example line\nanother line\n");
//
// Programs start through posix_spawn (no shell unless `shell` is set): argv[0] is looked
// up in PATH when it has no '/'. A program that cannot be started — missing, not
// executable, a bad cwd — is an OSError (FileNotFoundError when missing) in the parent,
// naming it, never a child that exits with 127.
//
// Streams: each of the child's stdin, stdout and stderr is inherited (the default), a
// pipe to this process (PIPE), /dev/null (DEVNULL), an fd of this process (from_fd), or
// for stderr the same as stdout (STDOUT). Apart from those three and `pass_fds`, the
// child gets no fd of this process.
//
// Blocking: wait() and communicate() block; their timed forms throw TimeoutExpired
// (Python's) once the time is up, leaving the child running (run() kills it). A
// communicate() interrupted by its timeout may be called again with the same input: what
// was written and read is kept.
//
// Lifetime: a Popen owns its child's pidfd and its pipe ends. Destroying a Popen whose
// child still runs waits for it (as Python's context manager does after closing the
// pipes); kill() or terminate() first to end it sooner. The child is always reaped: no
// zombie outlives its Popen.
//
// Threads: a Popen may be used from several threads; calls are serialised, except the
// signals, which another thread may send while one waits in wait() or communicate().
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"

namespace ipckit::subprocess {

// Where one of the child's standard streams goes.
struct Redirect {
  enum class Kind { Inherit, Pipe, DevNull, Stdout, Fd };
  Kind kind = Kind::Inherit;
  int fd = -1;  // Kind::Fd: an fd of this process (not closed, not taken over)
};
inline constexpr Redirect INHERIT{Redirect::Kind::Inherit, -1};
inline constexpr Redirect PIPE{Redirect::Kind::Pipe, -1};
inline constexpr Redirect DEVNULL{Redirect::Kind::DevNull, -1};
inline constexpr Redirect STDOUT{Redirect::Kind::Stdout, -1};  // stderr only: into stdout
inline constexpr Redirect from_fd(int fd) { return {Redirect::Kind::Fd, fd}; }

// Popen's options, in the order of Python's Popen parameters (designated initializers
// must follow it): Options{.in = PIPE, .out = PIPE, .cwd = "/tmp"}.
struct Options {
  Redirect in{};   // the child's stdin
  Redirect out{};  // stdout
  Redirect err{};  // stderr
  // args[0] is a command line for /bin/sh -c (and the other arguments its $0, $1, ...).
  bool shell = false;
  // The child's working directory; empty: this process's.
  std::string cwd{};
  // The child's whole environment; nullopt: this process's, with `extra_env` on top.
  std::optional<std::map<std::string, std::string>> env{};
  std::map<std::string, std::string> extra_env{};
  // The child leads a new process group, so that kill_group() reaches its own children.
  bool new_process_group = false;
  // Fds of this process that stay open in the child under the same numbers (a socket it
  // serves on, say).
  std::vector<int> pass_fds{};
};

// run(check = true) of a program that exited with a non-zero status.
class CalledProcessError : public Error {
 public:
  CalledProcessError(std::vector<std::string> args, int returncode, std::string out, std::string err);
  int returncode() const noexcept { return returncode_; }
  const std::vector<std::string>& args() const noexcept { return args_; }
  const std::string& out() const noexcept { return out_; }  // captured output, if any
  const std::string& err() const noexcept { return err_; }

 private:
  std::vector<std::string> args_;
  int returncode_;
  std::string out_;
  std::string err_;
};

// A timed wait()/communicate()/run() ran out of time. Holds what was captured so far.
class TimeoutExpired : public Error {
 public:
  TimeoutExpired(std::vector<std::string> args, std::chrono::nanoseconds timeout, std::string out, std::string err);
  const std::vector<std::string>& args() const noexcept { return args_; }
  std::chrono::nanoseconds timeout() const noexcept { return timeout_; }
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

 private:
  std::vector<std::string> args_;
  std::chrono::nanoseconds timeout_;
  std::string out_;
  std::string err_;
};

class Popen {
 public:
  // Starts `args` (args[0] is the program). Throws FileNotFoundError / OSError when it
  // cannot be started, ValueError for empty args or a bad Redirect.
  explicit Popen(std::vector<std::string> args, Options options = {});
  Popen(Popen&&) noexcept;
  Popen& operator=(Popen&&) noexcept;
  ~Popen();

  int pid() const noexcept;
  const std::vector<std::string>& args() const;

  // The exit status once known: the exit code, or minus the signal that ended it (as
  // Python's returncode). poll() checks without blocking.
  std::optional<int> returncode() const;
  std::optional<int> poll();
  int wait();
  int wait(std::chrono::nanoseconds timeout);  // TimeoutExpired

  // Writes `input` to the child's stdin (a PIPE) and closes it, while reading its stdout
  // and stderr (those that are PIPEs) to the end, then waits for it: no deadlock however
  // much flows each way. Returns {stdout, stderr} (empty for streams that are not PIPEs).
  std::pair<std::string, std::string> communicate(std::string_view input = {},
                                                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // The parent's ends of PIPE streams, for reading and writing them directly: -1 when the
  // stream is not a PIPE or was closed. close_stdin() ends the child's input.
  int stdin_fd() const noexcept;
  int stdout_fd() const noexcept;
  int stderr_fd() const noexcept;
  void close_stdin();

  // Signals, never to a recycled pid (through the pidfd); no-ops once the child is
  // reaped. kill_group() signals its process group (new_process_group).
  void send_signal(int signal);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  void kill_group(int signal);

  // For wait(): readable once the child has ended (its pidfd).
  WaitHandle wait_handle() const;

  struct State;  // private to subprocess.cpp

 private:
  State& state(const char* what) const;  // ValueError on a moved-from Popen
  std::unique_ptr<State> state_;
};

struct CompletedProcess {
  std::vector<std::string> args;
  int returncode = 0;
  std::string out;  // captured stdout (capture_output or out = PIPE), else empty
  std::string err;  // captured stderr
  // Throws CalledProcessError when returncode is not 0.
  void check_returncode() const;
};

// run()'s options, in the order of Python's run parameters, then Popen's.
struct RunOptions {
  Redirect in{};
  // Sent to the child's stdin (which becomes a PIPE); nullopt: stdin as `in` says.
  std::optional<std::string> input{};
  Redirect out{};
  Redirect err{};
  // stdout and stderr become PIPEs and are captured (unless out/err say otherwise).
  bool capture_output = false;
  bool shell = false;
  std::string cwd{};
  // Past it, the child is killed (with its process group when new_process_group) and
  // TimeoutExpired is thrown, holding what it wrote.
  std::optional<std::chrono::nanoseconds> timeout{};
  // A non-zero exit status throws CalledProcessError.
  bool check = false;
  std::optional<std::map<std::string, std::string>> env{};
  std::map<std::string, std::string> extra_env{};
  bool new_process_group = false;
  std::vector<int> pass_fds{};
};

// Starts `args`, feeds `input`, captures what was asked, waits: Python's subprocess.run.
CompletedProcess run(std::vector<std::string> args, RunOptions options = {});

}  // namespace ipckit::subprocess
