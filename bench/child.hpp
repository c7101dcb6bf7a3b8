// bench/child.hpp — a child process that serves one benchmark run.
//
// A cross-process benchmark starts its child once per run, before the timed loop, and the
// child serves exactly the run's iteration count: it knows it because fork copies it, e.g.
//
//   const auto n = state.max_iterations;
//   IpckitChild echo([n](ipckit::Connection& parent) {
//     for (benchmark::IterationCount i = 0; i < n; ++i) parent.send_bytes(parent.recv_bytes());
//   });
//   for (auto _ : state) { ... echo.connection() ... }
//   echo.join();
//
// The constructor returns once the child has said it is ready, so the child's start-up is
// never timed. The child is reaped on every path: join() on the normal one, the destructor
// (kill, then reap) when the benchmark throws.
#pragma once

#include <sched.h>

#include <vector>

#include <cstddef>
#include <functional>
#include <optional>
#include <span>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"

namespace ipckit::bench {

// The child is an ipckit::Process, talking to the parent over ipckit::Pipe().
class IpckitChild {
 public:
  using Serve = std::function<void(ipckit::Connection& to_parent)>;
  explicit IpckitChild(const Serve& serve);

  ipckit::Connection& connection() { return to_child_; }
  // Waits for the child to end; throws std::runtime_error unless it exited with 0.
  void join();

 private:
  ipckit::Connection to_child_;
  std::optional<ipckit::Process> process_;  // a daemon: ended and reaped if never joined
};

// Puts the parent and the child of a two-process workload on two different CPUs (when
// there are two). Left to itself, the scheduler sometimes runs both on one CPU, where they
// take turns instead of running at once: a lock is then never contended, a consumer that
// spins and then sleeps takes turns with its producer, and a wake-up is a context switch
// rather than the wake-up of an idle CPU, so the figures would measure where it put
// them. The parent's own mask is restored when the run ends.
class TwoCpus {
 public:
  TwoCpus();
  TwoCpus(const TwoCpus&) = delete;
  TwoCpus& operator=(const TwoCpus&) = delete;
  ~TwoCpus();

  void pin_parent() const;
  void pin_child() const;

 private:
  std::vector<int> cpus_;
  cpu_set_t saved_;
};

// The floor's child: fork(), with a socketpair(AF_UNIX, SOCK_STREAM) to the parent.
class ForkedChild {
 public:
  using Serve = std::function<void(int to_parent)>;
  explicit ForkedChild(const Serve& serve);
  ForkedChild(const ForkedChild&) = delete;
  ForkedChild& operator=(const ForkedChild&) = delete;
  ~ForkedChild();

  int fd() const { return fd_; }
  // Waits for the child to end; throws std::runtime_error unless it exited with 0.
  void join();

 private:
  int fd_ = -1;
  int pid_ = -1;
};

// Blocking I/O for the floors: the whole buffer, retrying short transfers and EINTR.
// Throw std::system_error, or std::runtime_error at end of stream.
void write_all(int fd, std::span<const std::byte> data);
void read_exactly(int fd, std::span<std::byte> data);

}  // namespace ipckit::bench
