// tests/support/ipckit_test.hpp — what every ipckit test shares.
//
// * ipckit::test::Test, the base fixture: each test runs under a watchdog and must leave
//   no fd, no /dev/shm entry and no child process (running or zombie) behind.
// * Child scenarios: a test binary re-executes itself with --ipckit-child=<name> to run a
//   scenario in a fresh, unrelated process (exec, not fork), e.g. to see which fds
//   survive exec. Scenario exit codes are named below.
// * unique_name(): names that cannot collide between tests, runs or concurrent binaries.
#pragma once

#include <gtest/gtest.h>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ipckit::test {

// Exit codes of child scenarios.
inline constexpr int kChildOk = 0;
inline constexpr int kChildCheckFailed = 10;   // the scenario found something wrong
inline constexpr int kChildUnknownScenario = 11;
inline constexpr int kChildBadArguments = 12;
inline constexpr int kWatchdogExitCode = 124;  // a test outran the watchdog

class Test : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

 private:
  std::set<std::string> fds_before_;
  std::set<std::string> shm_before_;
};

// Registers `main` as the child scenario `name` (use at namespace scope).
struct ChildScenario {
  using Main = std::function<int(const std::vector<std::string>& args)>;
  ChildScenario(std::string name, Main main);
};

struct ChildResult {
  int exit_code = -1;      // negative: killed by that signal
  std::string output;      // stdout and stderr together
};

// Runs this binary as `--ipckit-child=<scenario> args...` in a new process, keeping
// `keep_fds` open (without FD_CLOEXEC) in it, and waits for it.
ChildResult run_child(std::string_view scenario, const std::vector<std::string>& args = {},
                      const std::vector<int>& keep_fds = {});

// "<stem>-<pid>-<test>-<counter>": unique per process, test and call.
std::string unique_name(std::string_view stem);

// The fds open in this process, as /proc/self/fd names ("0", "1", ...) with their targets.
std::set<std::string> open_fds();
// Entries of /dev/shm that start with "ipckit" and carry this process's pid ("-<pid>-",
// as unique_name() and an unnamed SharedMemory::create() make them).
std::set<std::string> shm_entries();
// Pids of this process's children, running or zombie.
std::vector<int> child_pids();

// Starts `body` in a child and returns it started. A daemon child (as the queue tests
// start them) is ended, not waited for, when a failed ASSERT leaves the test early.
std::unique_ptr<ipckit::Process> spawn(std::function<void()> body, bool daemon = false);

// A message's bytes as text.
std::string text(const ipckit::Bytes& bytes);

// Blocks a child until the test sends on, or closes, the gate (a Pipe(false)): no sleeps
// needed to keep a child alive for as long as a test wants. The child first closes its
// copy of the write end, or the test's close would never reach it as end of stream.
void wait_for_gate(ipckit::Connection& gate, ipckit::Connection& gate_writer);

// Returns once thread `tid` (for a single-threaded process: its pid) is in `state`, as
// /proc shows it: 'S' asleep in the kernel (blocked in a wait), 'T' stopped by a signal.
// How a test knows another process has got as far as blocking, without sleeping itself.
void wait_until_state(int tid, char state);
inline void wait_until_sleeping(int tid) { wait_until_state(tid, 'S'); }

// Seconds the watchdog allows each test (IPCKIT_TEST_TIMEOUT overrides; default 60).
int watchdog_seconds();

}  // namespace ipckit::test
