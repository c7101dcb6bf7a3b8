// Process across real forks: exit codes, errors, signals, daemons, sentinels, no zombies.
#include "ipckit/process.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "ipckit/connection.hpp"
#include "ipckit_test.hpp"
#include "sys/proc.hpp"

namespace {

using namespace std::chrono_literals;
using ProcessTest = ipckit::test::Test;

using ipckit::test::text;

using ipckit::test::wait_for_gate;

bool is_zombie_or_gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return line.at(close + 2) == 'Z';
}

TEST_F(ProcessTest, StartJoinAndExitCodeZero) {
  ipckit::Process p([] {});
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_NE(p.pid(), getpid());
  p.join();
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(p.error(), std::nullopt);
}

TEST_F(ProcessTest, DefaultNamesCountUpAndCustomNamesStick) {
  ipckit::Process a([] {});
  ipckit::Process b([] {});
  ASSERT_EQ(a.name().rfind("Process-", 0), 0u) << a.name();
  const int na = std::stoi(a.name().substr(8));
  EXPECT_EQ(b.name(), "Process-" + std::to_string(na + 1));
  ipckit::Process c([] {}, "worker");
  EXPECT_EQ(c.name(), "worker");
  c.set_name("renamed");
  EXPECT_EQ(c.name(), "renamed");
}

TEST_F(ProcessTest, SystemExitGivesItsCode) {
  ipckit::Process p([] { throw ipckit::SystemExit{3}; });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 3);
  EXPECT_EQ(p.error(), std::nullopt);
}

TEST_F(ProcessTest, EscapingExceptionGivesCodeOneAndItsMessageInTheParent) {
  ipckit::Process p([] { throw std::runtime_error("the disk is full"); }, "failing");
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  ASSERT_TRUE(p.error().has_value());
  EXPECT_EQ(*p.error(), "std::runtime_error: the disk is full");
}

TEST_F(ProcessTest, HugeExceptionMessageIsTruncatedNotBlocking) {
  ipckit::Process p([] { throw std::length_error(std::string(1 << 20, 'x')); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
  ASSERT_TRUE(p.error().has_value());
  EXPECT_EQ(p.error()->rfind("std::length_error: xxxx", 0), 0u);
  EXPECT_LT(p.error()->size(), 8192u);
}

TEST_F(ProcessTest, KillAndTerminateGiveNegativeSignalNumbers) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process killed([&] { wait_for_gate(gate_r, gate_w); });
  ipckit::Process terminated([&] { wait_for_gate(gate_r, gate_w); });
  killed.start();
  terminated.start();
  EXPECT_TRUE(killed.is_alive());
  killed.kill();
  terminated.terminate();
  killed.join();
  terminated.join();
  EXPECT_EQ(killed.exitcode(), -SIGKILL);
  EXPECT_EQ(terminated.exitcode(), -SIGTERM);
  EXPECT_NO_THROW(killed.kill());  // already ended: no effect
}

TEST_F(ProcessTest, JoinWithTimeoutReturnsFalseWhileRunning) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process p([&] { wait_for_gate(gate_r, gate_w); });
  p.start();
  EXPECT_FALSE(p.join(1ms));
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  gate_w.send_bytes("go");
  EXPECT_TRUE(p.join(60s));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, MisuseIsAValueError) {
  ipckit::Process p([] {});
  EXPECT_THROW(p.join(), ipckit::ValueError);
  EXPECT_THROW(p.terminate(), ipckit::ValueError);
  EXPECT_THROW(p.sentinel(), ipckit::ValueError);
  p.start();
  EXPECT_THROW(p.start(), ipckit::ValueError);
  EXPECT_THROW(p.set_daemon(true), ipckit::ValueError);
  p.join();
  p.close();
  EXPECT_THROW(p.start(), ipckit::ValueError);
  EXPECT_THROW(p.sentinel(), ipckit::ValueError);
  EXPECT_EQ(p.exitcode(), 0);  // still known after close
  ipckit::Process empty(nullptr);
  EXPECT_THROW(empty.start(), ipckit::ValueError);
}

TEST_F(ProcessTest, CloseWhileRunningIsRefused) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process p([&] { wait_for_gate(gate_r, gate_w); });
  p.start();
  EXPECT_THROW(p.close(), ipckit::ValueError);
  gate_w.close();
  p.join();
  EXPECT_NO_THROW(p.close());
}

TEST_F(ProcessTest, ChildKnowsItsNameAndItsParent) {
  auto [parent_end, child_end] = ipckit::Pipe();
  EXPECT_EQ(ipckit::current_process().name, "MainProcess");
  EXPECT_FALSE(ipckit::parent_process().has_value());
  ipckit::Process p(
      [&] {
        const auto me = ipckit::current_process();
        const auto parent = ipckit::parent_process();
        std::string report = me.name + "|" + std::to_string(me.pid) + "|" +
                             (parent ? parent->name() + "|" + std::to_string(parent->pid()) + "|" +
                                           (parent->is_alive() ? "alive" : "dead")
                                     : "none");
        child_end.send_bytes(report);
      },
      "reporter");
  p.start();
  const auto report = text(parent_end.recv_bytes());
  p.join();
  EXPECT_EQ(report, "reporter|" + std::to_string(p.pid()) + "|MainProcess|" +
                        std::to_string(getpid()) + "|alive");
}

TEST_F(ProcessTest, GrandchildNamesNestAndItSeesItsParentEnd) {
  // Re-parented grandchildren come to us (a subreaper) so the test can reap them.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process middle([&] {
    ipckit::Process grandchild([&] {
      const auto parent = ipckit::parent_process();
      child_end.send_bytes(ipckit::current_process().name + " of " + parent->name());
      // Wait for the middle process to end, through its sentinel, then report.
      ipckit::wait({*parent});
      child_end.send_bytes(parent->is_alive() ? "parent alive" : "parent ended");
    });
    grandchild.start();
    child_end.send_bytes(std::to_string(grandchild.pid()));
    // End without joining the grandchild (no destructors): it must notice.
    ipckit::sys::exit_immediately(0);
  });
  middle.start();
  // The middle's "pid" and the grandchild's "names" race each other: sort them out.
  auto first = text(parent_end.recv_bytes());
  auto second = text(parent_end.recv_bytes());
  if (!std::isdigit(static_cast<unsigned char>(first.at(0)))) std::swap(first, second);
  const int grandchild = std::stoi(first);
  const auto& names = second;
  middle.join();
  EXPECT_EQ(text(parent_end.recv_bytes()), "parent ended");
  int status = 0;
  ASSERT_EQ(waitpid(grandchild, &status, 0), grandchild);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(names, middle.name() + ":1 of " + middle.name()) << names;
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(ProcessTest, DaemonChildDiesWhenItsParentIsKilled) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process middle([&] {
    ipckit::Process daemon([] { for (;;) pause(); }, ipckit::ProcessOptions{"daemon", true});
    daemon.start();
    child_end.send_bytes(std::to_string(daemon.pid()));
    for (;;) pause();
  });
  middle.start();
  const int daemon_pid = std::stoi(text(parent_end.recv_bytes()));
  middle.kill();
  middle.join();
  EXPECT_EQ(middle.exitcode(), -SIGKILL);
  // The daemon was re-parented to us; the kernel killed it when its parent died.
  int status = 0;
  ASSERT_EQ(waitpid(daemon_pid, &status, 0), daemon_pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(ProcessTest, DestroyingADaemonProcessEndsAndReapsIt) {
  int pid = 0;
  {
    ipckit::Process p([] { for (;;) pause(); }, ipckit::ProcessOptions{"", true});
    p.start();
    pid = p.pid();
  }
  // Reaped by the destructor: no zombie, nothing left for the leak check.
  EXPECT_TRUE(is_zombie_or_gone(pid));
  EXPECT_TRUE(ipckit::test::child_pids().empty());
}

TEST_F(ProcessTest, DestroyingANonDaemonProcessJoinsIt) {
  auto [parent_end, child_end] = ipckit::Pipe();
  {
    ipckit::Process p([&] {
      parent_end.close();
      child_end.recv_bytes();
      child_end.send_bytes("finished");
    });
    p.start();
    parent_end.send_bytes("go");
  }  // joins: the child has sent "finished" before the destructor returns
  EXPECT_TRUE(parent_end.poll());
  EXPECT_EQ(text(parent_end.recv_bytes()), "finished");
}

TEST_F(ProcessTest, EndedChildrenAreReapedByTheNextStart) {
  ipckit::Process first([] {});
  first.start();
  ipckit::wait({first});  // ended, not yet reaped: a zombie until someone collects it
  ipckit::Process second([] {});
  second.start();  // reaps every ended child of this process
  std::ifstream stat("/proc/" + std::to_string(first.pid()) + "/stat");
  EXPECT_FALSE(stat.good()) << "the first child is still a zombie";
  EXPECT_EQ(first.exitcode(), 0);
  second.join();
}

TEST_F(ProcessTest, ActiveChildrenListsRunningOnes) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process a([&] { wait_for_gate(gate_r, gate_w); }, "a");
  ipckit::Process b([&] { wait_for_gate(gate_r, gate_w); }, "b");
  a.start();
  b.start();
  auto children = ipckit::active_children();
  ASSERT_EQ(children.size(), 2u);
  std::sort(children.begin(), children.end(), [](auto& x, auto& y) { return x.name < y.name; });
  EXPECT_EQ(children[0].name, "a");
  EXPECT_EQ(children[0].pid, a.pid());
  EXPECT_EQ(children[1].name, "b");
  gate_w.close();
  a.join();
  b.join();
  EXPECT_TRUE(ipckit::active_children().empty());
}

TEST_F(ProcessTest, SentinelIsReadableWhenTheChildEnds) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process quick([] {});
  ipckit::Process slow([&] { wait_for_gate(gate_r, gate_w); });
  quick.start();
  slow.start();
  const auto ready = ipckit::wait({quick, slow});
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == quick);
  EXPECT_TRUE(ipckit::wait({slow}, 1ms).empty());
  gate_w.close();
  EXPECT_EQ(ipckit::wait({slow}).size(), 1u);
  quick.join();
  slow.join();
}

TEST_F(ProcessTest, MovedProcessKeepsItsChild) {
  ipckit::Process a([] { throw ipckit::SystemExit{7}; });
  a.start();
  ipckit::Process b = std::move(a);
  b.join();
  EXPECT_EQ(b.exitcode(), 7);
  EXPECT_THROW(a.join(), ipckit::ValueError);  // NOLINT: moved-from use is the point
}

TEST_F(ProcessTest, JoinFromSeveralThreads) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process p([&] { wait_for_gate(gate_r, gate_w); });
  p.start();
  std::vector<std::thread> joiners;
  for (int i = 0; i < 4; ++i) joiners.emplace_back([&] { p.join(); });
  gate_w.close();
  for (auto& t : joiners) t.join();
  EXPECT_EQ(p.exitcode(), 0);
}

// Prints without flushing (stdout is a pipe, so fully buffered), then starts a child.
const ipckit::test::ChildScenario print_then_fork("print-then-fork", [](const std::vector<std::string>&) {
  std::printf("printed once;");
  std::cout << "streamed once;";
  ipckit::Process child([] {});
  child.start();
  child.join();
  return ipckit::test::kChildOk;
});

TEST_F(ProcessTest, StartFlushesBufferedOutputSoTheChildDoesNotRepeatIt) {
  const auto result = ipckit::test::run_child("print-then-fork");
  ASSERT_EQ(result.exit_code, ipckit::test::kChildOk) << result.output;
  EXPECT_EQ(result.output, "printed once;streamed once;");
}

TEST_F(ProcessTest, OnlyTheMakerMayJoinOrSignal) {
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process sibling([&] { wait_for_gate(gate_r, gate_w); });
  sibling.start();
  ipckit::Process child([&] {
    // This child's copy of `sibling` names its sibling, not a child of its own.
    std::string verdict;
    try {
      sibling.join();
      verdict = "joined";
    } catch (const ipckit::ValueError&) {
      verdict = "refused";
    }
    try {
      sibling.kill();
    } catch (const ipckit::ValueError&) {
      verdict += ",refused";
    }
    child_end.send_bytes(verdict);
  });
  child.start();
  EXPECT_EQ(text(parent_end.recv_bytes()), "refused,refused");
  child.join();
  EXPECT_TRUE(sibling.is_alive());
  gate_w.close();
  sibling.join();
  EXPECT_EQ(sibling.exitcode(), 0);
}

TEST_F(ProcessTest, CpuCountIsPositive) { EXPECT_GE(ipckit::cpu_count(), 1); }

}  // namespace
