// wait(): several connections and process sentinels, buffered messages, timeouts.
#include "ipckit/wait.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using WaitTest = ipckit::test::Test;

TEST_F(WaitTest, ReturnsOnlyTheReadyConnections) {
  auto [a1, b1] = ipckit::Pipe();
  auto [a2, b2] = ipckit::Pipe();
  auto [a3, b3] = ipckit::Pipe();
  a2.send_bytes("two");
  const auto ready = ipckit::wait({b1, b2, b3});
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == b2);
  EXPECT_FALSE(ready[0] == b1);
}

TEST_F(WaitTest, TimeoutGivesAnEmptyList) {
  auto [a, b] = ipckit::Pipe();
  EXPECT_TRUE(ipckit::wait({b}, 1ms).empty());
  EXPECT_TRUE(ipckit::wait({b}, 0ms).empty());
}

TEST_F(WaitTest, SeesMessagesAlreadyBufferedInUserSpace) {
  auto [a, b] = ipckit::Pipe();
  a.send_bytes("first");
  a.send_bytes("second");
  ASSERT_EQ(ipckit::wait({b}).size(), 1u);
  b.recv_bytes();  // reads both frames from the fd; "second" stays buffered
  auto [c, d] = ipckit::Pipe();
  const auto ready = ipckit::wait({d, b}, 0ms);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == b);
  EXPECT_TRUE(b.poll());
  b.recv_bytes();
  EXPECT_TRUE(ipckit::wait({b}, 0ms).empty());
}

TEST_F(WaitTest, MixesConnectionsProcessesAndBareFds) {
  auto [a, b] = ipckit::Pipe();
  ipckit::Process child([&] { a.send_bytes("from child"); });
  child.start();
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  std::vector<ipckit::Waitable> watched = {b, child, fds[0]};
  std::size_t seen_child = 0, seen_message = 0;
  while (seen_child == 0 || seen_message == 0) {
    for (const auto& r : ipckit::wait(watched)) {
      if (r == child) ++seen_child, watched.erase(std::find(watched.begin(), watched.end(), r));
      if (r == b) ++seen_message, b.recv_bytes();
      ASSERT_FALSE(r == ipckit::Waitable(fds[0]));
    }
  }
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  const auto ready = ipckit::wait({b, fds[0]});
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == ipckit::Waitable(fds[0]));
  close(fds[0]);
  close(fds[1]);
  child.join();
}

}  // namespace
