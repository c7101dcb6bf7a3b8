// The sys/ seam: deadlines, close-on-exec everywhere, SIGPIPE-free writes.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "ipckit/process.hpp"
#include "ipckit_test.hpp"
#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/proc.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::sys::Deadline;
using SysTest = ipckit::test::Test;

// Prints the fds open in this (exec'd) process, one per line.
const ipckit::test::ChildScenario list_fds("list-fds", [](const std::vector<std::string>&) {
  for (const auto& fd : ipckit::test::open_fds()) std::printf("%s\n", fd.c_str());
  return ipckit::test::kChildOk;
});

TEST_F(SysTest, DeadlineSaturatesAndNeverExpires) {
  EXPECT_TRUE(Deadline::never().is_never());
  EXPECT_FALSE(Deadline::never().expired());
  EXPECT_TRUE(Deadline::after(std::chrono::nanoseconds::max()).is_never());
  EXPECT_TRUE(Deadline::after(-5s).expired());
  EXPECT_TRUE(Deadline::after(0s).expired());
  const auto d = Deadline::after(1h);
  EXPECT_FALSE(d.expired());
  EXPECT_GT(d.remaining(), 59min);
  EXPECT_LE(d.remaining(), 1h);
}

TEST_F(SysTest, FdsMadeBySysDoNotSurviveExec) {
  auto [a, b] = ipckit::sys::socket_pair("test");
  auto [r, w] = ipckit::sys::make_pipe("test");
  ipckit::Process child([] {}, "short-lived");
  child.start();  // its pidfd and error pipe are open while it runs
  const auto result = ipckit::test::run_child("list-fds");
  child.join();
  ASSERT_EQ(result.exit_code, ipckit::test::kChildOk) << result.output;
  for (int fd : {a.get(), b.get(), r.get(), w.get()}) {
    std::string line = "\n";  // built step by step: "\n" + ... trips GCC 12's -Wrestrict
    line += std::to_string(fd);
    line += " ->";
    EXPECT_EQ(result.output.find(line), std::string::npos)
        << "fd " << fd << " leaked into an exec'd child:\n" << result.output;
  }
  // Only stdin, stdout and stderr (and nothing ipckit made) are there.
  EXPECT_EQ(result.output.find("socket:"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("anon_inode:[pidfd]"), std::string::npos) << result.output;
}

TEST_F(SysTest, WriteToPipeWithoutReaderReportsEpipeInsteadOfKilling) {
  auto [r, w] = ipckit::sys::make_pipe("test");
  r.reset();
  const std::byte data[4] = {};
  const ipckit::sys::ConstBytes part(data);
  const auto result = ipckit::sys::write_some(w.get(), std::span(&part, 1), false);
  EXPECT_TRUE(ipckit::sys::is_peer_gone(result.error)) << ipckit::sys::error_text(result.error);
  // The SIGPIPE the write raised was consumed: nothing is pending for this thread.
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST_F(SysTest, ReadSomeSeesEndOfStream) {
  auto [a, b] = ipckit::sys::socket_pair("test");
  b.reset();
  std::byte buf[8];
  const auto result = ipckit::sys::read_some(a.get(), buf);
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.bytes, 0u);
}

TEST_F(SysTest, WaitReadableTimesOutThenSeesData) {
  auto [a, b] = ipckit::sys::socket_pair("test");
  EXPECT_FALSE(ipckit::sys::wait_readable(a.get(), Deadline::after(1ms)));
  const std::byte data[1] = {std::byte{7}};
  const ipckit::sys::ConstBytes part(data);
  ASSERT_EQ(ipckit::sys::write_some(b.get(), std::span(&part, 1), true).bytes, 1u);
  EXPECT_TRUE(ipckit::sys::wait_readable(a.get(), Deadline::never()));
}

TEST_F(SysTest, ReapChildReportsSignalAsNegativeCode) {
  const int pid = ipckit::sys::fork_process("test");
  if (pid == 0) {
    for (;;) pause();
  }
  auto pidfd = ipckit::sys::open_pidfd(pid, "test");
  EXPECT_FALSE(ipckit::sys::reap_child(pid, false, "test").has_value());
  ipckit::sys::signal_pidfd(pidfd.get(), SIGKILL, "test");
  EXPECT_EQ(ipckit::sys::reap_child(pid, true, "test"), -SIGKILL);
  // Signalling an ended process through its pidfd is not an error.
  EXPECT_NO_THROW(ipckit::sys::signal_pidfd(pidfd.get(), SIGTERM, "test"));
}

}  // namespace
