// ipckit/process.hpp — Process: run a function in a child process, as Python's
// multiprocessing.Process with the fork start method.
//
//   ipckit::Process worker([&] { conn.send(compute()); }, "worker");
//   worker.start();
//   worker.join();
//   if (worker.exitcode() != 0) std::cerr << worker.error().value_or("killed") << "\n";
//
// start() forks: the child is a copy of this process, so everything the target captures
// (connections, shared objects, plain data) is there. Only the thread that calls start()
// exists in the child: start children before creating threads, or make sure the target
// needs nothing another thread holds (a lock held elsewhere at fork time stays held).
//
// Exit codes follow Python: 0 when the target returns, 1 when an exception escapes it
// (its type and what() are printed to stderr *and* readable in the parent with error()),
// n after `throw SystemExit{n}`, minus the signal number when a signal ended it.
// The child ends with _exit() after flushing stdio: like Python's os._exit, it runs no
// atexit handlers and no static destructors of the parent's copy.
//
// Lifetime. No zombies: a child is reaped by join(), is_alive(), exitcode(), by the next
// start() or active_children() of any Process, or by the destructor. Destroying a
// Process whose child still runs:
//   - non-daemon: the destructor joins it (waits for it to end), as Python joins
//     non-daemon children at exit and std::jthread joins its thread;
//   - daemon: the destructor sends SIGTERM, waits up to one second, then SIGKILL, and
//     reaps it.
// At normal exit of the parent (exit() or return from main), daemon children still
// running are ended the same way and non-daemon children are joined.
//
// Crash safety. A daemon child also dies (SIGKILL, from the kernel) when its parent dies,
// even by SIGKILL: no orphans. The kernel ties this to the *thread* that called start():
// if that thread exits while the process lives on, the daemon child is killed too.
// A non-daemon child outlives a parent that is killed, as in Python.
//
// Thread safety: a Process may be used from several threads; calls are serialised.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipckit/wait.hpp"

namespace ipckit {

// Throw from a child's target to end it with `code`, as Python's sys.exit(code).
struct SystemExit {
  int code = 0;
};

struct ProcessOptions {
  std::string name;     // empty: "Process-N" ("Process-N:M" for a child's children)
  bool daemon = false;  // see "Lifetime" and "Crash safety" above
};

class Process {
 public:
  using Target = std::function<void()>;

  explicit Process(Target target, ProcessOptions options = {});
  Process(Target target, std::string name);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;  // the replaced Process is ended as by ~Process
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  // Forks and runs the target in the child. Throws ValueError if already started or
  // closed, OSError if fork or pidfd_open fails.
  void start();

  // Waits until the child ends and reaps it. Throws ValueError if not started.
  void join();
  // The same with a timeout; true when the child has ended (and was reaped).
  bool join(std::chrono::nanoseconds timeout);

  // True between start() and the end of the child. Reaps an ended child.
  bool is_alive();
  // The child's pid; 0 before start().
  int pid() const;
  // nullopt while the child runs or before start(); see the exit codes above.
  std::optional<int> exitcode();
  // When an exception escaped the child's target: "<type>: <what()>". nullopt otherwise.
  std::optional<std::string> error();

  // SIGTERM / SIGKILL to the child, through its pidfd (never a recycled pid). No effect
  // on a child that already ended. Throws ValueError if not started.
  void terminate();
  void kill();

  // Releases the pidfd. Throws ValueError if the child is still running; afterwards
  // every method but name(), pid() and exitcode() throws ValueError.
  void close();

  const std::string& name() const;
  void set_name(std::string name);
  bool daemon() const;
  // Throws ValueError after start().
  void set_daemon(bool daemon);

  // A pidfd that becomes readable when the child ends (Python's sentinel). Valid from
  // start() to close(); the Process owns it.
  int sentinel() const;
  WaitHandle wait_handle() const;

  struct State;  // private to process.cpp

 private:
  State& state() const;
  std::unique_ptr<State> state_;
};

// Who a process is, for logs and for active_children().
struct ProcessInfo {
  std::string name;  // "MainProcess" in the process that was not started by ipckit
  int pid = 0;
  bool daemon = false;
};

// This process. In a child started by Process, the name given to it.
ProcessInfo current_process();

// The process that started this one, watchable for its end. Holds a pidfd of its own.
class ParentProcess {
 public:
  int pid() const noexcept { return pid_; }
  const std::string& name() const noexcept { return name_; }
  bool is_alive() const;
  // Waits until the parent ends; true if it did within the timeout.
  bool join(std::chrono::nanoseconds timeout) const;
  int sentinel() const;
  WaitHandle wait_handle() const;

 private:
  friend std::optional<ParentProcess> parent_process();
  ParentProcess(int pid, std::string name, std::shared_ptr<const int> pidfd)
      : pid_(pid), name_(std::move(name)), pidfd_(std::move(pidfd)) {}
  int pid_;
  std::string name_;
  std::shared_ptr<const int> pidfd_;  // owning; closed with the last copy
};

// The parent, in a process started by Process; nullopt in the main process.
std::optional<ParentProcess> parent_process();

// Children started by this process that are still running (ended ones are reaped).
std::vector<ProcessInfo> active_children();

// CPUs this process may run on (its affinity mask), at least 1.
int cpu_count();

}  // namespace ipckit
