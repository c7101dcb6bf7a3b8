// Pipe and Connection across real processes: values and bytes, limits, errors, threads,
// timeouts, and Python's own Connection on the other end of the fd.
#include "ipckit/connection.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <map>
#include <thread>

#include "ipckit/process.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using ConnectionTest = ipckit::test::Test;

using ipckit::test::text;
ipckit::Bytes bytes_of(std::string_view s) {
  const auto span = std::as_bytes(std::span(s));
  return {span.begin(), span.end()};
}
ipckit::Bytes pattern(std::size_t n, unsigned seed) {
  ipckit::Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return out;
}

struct Order {
  std::string item;
  int quantity = 0;
  std::optional<double> price;
  std::vector<std::string> tags;
  IPCKIT_CODABLE(item, quantity, price, tags)
};

TEST_F(ConnectionTest, ValuesTravelBothWaysBetweenProcesses) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process child([&] {
    parent_end.close();
    auto order = child_end.recv<Order>();
    order.quantity *= 2;
    order.tags.push_back("seen");
    child_end.send(order);
    child_end.send(std::map<std::string, int>{{"a", 1}, {"b", 2}});
    child_end.send(std::optional<std::string>{});  // Python's None as a sentinel
  });
  child.start();
  child_end.close();
  parent_end.send(Order{"widget", 21, 9.5, {"new"}});
  const auto back = parent_end.recv<Order>();
  EXPECT_EQ(back.item, "widget");
  EXPECT_EQ(back.quantity, 42);
  EXPECT_EQ(back.price, 9.5);
  EXPECT_EQ(back.tags, (std::vector<std::string>{"new", "seen"}));
  EXPECT_EQ((parent_end.recv<std::map<std::string, int>>()), (std::map<std::string, int>{{"a", 1}, {"b", 2}}));
  EXPECT_EQ(parent_end.recv<std::optional<std::string>>(), std::nullopt);
  EXPECT_THROW(parent_end.recv_bytes(), ipckit::ConnectionClosed);  // child ended
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
}

TEST_F(ConnectionTest, SendBytesWithOffsetAndSize) {
  auto [a, b] = ipckit::Pipe();
  const auto data = bytes_of("0123456789");
  a.send_bytes(data, 2, 3);
  a.send_bytes(data, 7);
  a.send_bytes(data, 10);  // empty message
  EXPECT_EQ(text(b.recv_bytes()), "234");
  EXPECT_EQ(text(b.recv_bytes()), "789");
  EXPECT_EQ(text(b.recv_bytes()), "");
  EXPECT_THROW(a.send_bytes(data, 11), ipckit::ValueError);
  EXPECT_THROW(a.send_bytes(data, 5, 6), ipckit::ValueError);
}

TEST_F(ConnectionTest, RecvBytesIntoAndBufferTooShortLosesNothing) {
  auto [a, b] = ipckit::Pipe();
  a.send_bytes("hello");
  a.send_bytes("a longer message");
  a.send_bytes("next");
  std::array<std::byte, 8> buf{};
  EXPECT_EQ(b.recv_bytes_into(buf, 1), 5u);
  EXPECT_EQ(text(ipckit::Bytes(buf.begin() + 1, buf.begin() + 6)), "hello");
  try {
    b.recv_bytes_into(buf);
    FAIL() << "expected BufferTooShort";
  } catch (const ipckit::BufferTooShort& e) {
    EXPECT_EQ(text(e.message()), "a longer message");
  }
  EXPECT_EQ(b.recv_bytes_into(buf), 4u);
  EXPECT_THROW(b.recv_bytes_into(buf, 9), ipckit::ValueError);
}

TEST_F(ConnectionTest, LargeMessagesGoStraightIntoTheCallersBuffer) {
  auto [parent_end, child_end] = ipckit::Pipe();
  const auto big = pattern(3 << 20, 9);
  ipckit::Process sender([&] {
    parent_end.close();
    child_end.send_bytes(big);                // fits the buffer below
    child_end.send_bytes(pattern(200000, 4));  // does not fit it
    child_end.send_bytes("small");
  });
  sender.start();
  child_end.close();
  ipckit::Bytes buffer(big.size() + 10);
  EXPECT_EQ(parent_end.recv_bytes_into(buffer, 10), big.size());
  EXPECT_TRUE(std::equal(big.begin(), big.end(), buffer.begin() + 10));
  std::vector<std::byte> small(1000);
  try {
    parent_end.recv_bytes_into(small);
    FAIL() << "expected BufferTooShort";
  } catch (const ipckit::BufferTooShort& e) {
    EXPECT_EQ(e.message(), pattern(200000, 4));
  }
  EXPECT_EQ(parent_end.recv_bytes_into(small), 5u);
  sender.join();
}

TEST_F(ConnectionTest, PollSeesMessagesAndEndOfStream) {
  auto [a, b] = ipckit::Pipe();
  EXPECT_FALSE(b.poll());
  EXPECT_FALSE(b.poll(1ms));
  a.send_bytes("x");
  EXPECT_TRUE(b.poll(std::nullopt));
  b.recv_bytes();
  EXPECT_FALSE(b.poll());
  a.close();
  EXPECT_TRUE(b.poll());  // end of stream is "ready": recv reports it
  EXPECT_THROW(b.recv_bytes(), ipckit::ConnectionClosed);
}

TEST_F(ConnectionTest, TimedRecvReturnsNulloptThenTheValue) {
  auto [a, b] = ipckit::Pipe();
  EXPECT_EQ(b.recv<int>(1ms), std::nullopt);
  EXPECT_EQ(b.recv_bytes(1ms), std::nullopt);
  a.send(42);
  EXPECT_EQ(b.recv<int>(10s), 42);
}

TEST_F(ConnectionTest, PeerKilledMidConversationIsConnectionClosed) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process child([&] {
    child_end.send_bytes("ready");
    for (;;) child_end.recv_bytes();
  });
  child.start();
  child_end.close();
  EXPECT_EQ(text(parent_end.recv_bytes()), "ready");
  child.kill();
  child.join();
  EXPECT_EQ(child.exitcode(), -SIGKILL);
  EXPECT_THROW(parent_end.recv_bytes(), ipckit::ConnectionClosed);
  // Sending to the dead peer is an error, not a SIGPIPE that kills this process.
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) parent_end.send_bytes("anyone?");
      },
      ipckit::ConnectionClosed);
}

TEST_F(ConnectionTest, OneWayPipeHasOneDirectionEach) {
  auto [reader, writer] = ipckit::Pipe(false);
  EXPECT_TRUE(reader.readable());
  EXPECT_FALSE(reader.writable());
  EXPECT_FALSE(writer.readable());
  EXPECT_TRUE(writer.writable());
  EXPECT_THROW(reader.send_bytes("no"), ipckit::ValueError);
  EXPECT_THROW(writer.recv_bytes(), ipckit::ValueError);
  writer.send(std::string("one way"));
  EXPECT_EQ(reader.recv<std::string>(), "one way");
}

TEST_F(ConnectionTest, OversizedMessageIsRefusedAndTheConnectionStopsReading) {
  auto [a, b] = ipckit::Pipe(true, {.max_message_size = 1024});
  EXPECT_EQ(b.max_message_size(), 1024u);
  a.send_bytes(pattern(1024, 1));
  EXPECT_EQ(b.recv_bytes().size(), 1024u);
  a.send_bytes(pattern(2048, 1));
  try {
    b.recv_bytes();
    FAIL() << "expected MessageTooLarge";
  } catch (const ipckit::MessageTooLarge& e) {
    EXPECT_EQ(e.size(), 2048u);
    EXPECT_EQ(e.limit(), 1024u);
  }
  EXPECT_FALSE(b.readable());
  EXPECT_THROW(b.recv_bytes(), ipckit::ValueError);
  // The other direction still works.
  b.send_bytes("still writable");
  EXPECT_EQ(text(a.recv_bytes()), "still writable");
}

TEST_F(ConnectionTest, MaxlengthLowersTheLimitForOneCall) {
  auto [a, b] = ipckit::Pipe();
  a.send_bytes(pattern(100, 0));
  EXPECT_THROW(b.recv_bytes(99), ipckit::MessageTooLarge);
}

TEST_F(ConnectionTest, WrongTypeIsDecodeErrorWithThePayloadKept) {
  auto [a, b] = ipckit::Pipe();
  a.send(std::string("not a number"));
  a.send(5);
  try {
    b.recv<int>();
    FAIL() << "expected DecodeError";
  } catch (const ipckit::DecodeError& e) {
    EXPECT_EQ(ipckit::decode<std::string>(e.payload()), "not a number");
  }
  EXPECT_EQ(b.recv<int>(), 5);  // the stream is intact
}

TEST_F(ConnectionTest, LargeMessagesRoundTripAcrossProcesses) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process echo([&] {
    for (;;) {
      auto m = child_end.recv_bytes();
      if (m.empty()) return;
      child_end.send_bytes(m);
    }
  });
  echo.start();
  for (std::size_t n : {std::size_t{65536}, std::size_t{1} << 20, (std::size_t{20} << 20) + 3}) {
    const auto data = pattern(n, static_cast<unsigned>(n));
    std::thread sender([&] { parent_end.send_bytes(data); });  // both sides block otherwise
    const auto back = parent_end.recv_bytes();
    sender.join();
    EXPECT_EQ(back, data) << n;
  }
  parent_end.send_bytes("");
  echo.join();
}

TEST_F(ConnectionTest, ConcurrentSendersNeverInterleaveMessages) {
  auto [parent_end, child_end] = ipckit::Pipe();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  ipckit::Process checker([&] {
    parent_end.close();
    int bad = 0;
    for (int i = 0; i < kThreads * kPerThread; ++i) {
      const auto m = child_end.recv_bytes();
      // Every byte of a message is its sender's id: a torn message shows mixed ids.
      for (auto byte : m) bad += byte != m[0];
      if (m.size() % 1000 != 0) ++bad;
    }
    child_end.send(bad);
  });
  checker.start();
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        parent_end.send_bytes(ipckit::Bytes(std::size_t(1000) * (1 + (i % 100)), std::byte(t)));
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(parent_end.recv<int>(), 0);
  checker.join();
  EXPECT_EQ(checker.exitcode(), 0);
}

TEST_F(ConnectionTest, ClosingTheParentsCopyOfTheChildsEndLeavesTheChildConnected) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process child([&] {
    parent_end.close();
    child_end.send_bytes(child_end.recv_bytes());
  });
  child.start();
  child_end.close();  // only this process's fd: the child's copy keeps working
  EXPECT_TRUE(child_end.closed());
  EXPECT_THROW(child_end.fileno(), ipckit::ValueError);
  EXPECT_THROW(child_end.send_bytes("x"), ipckit::ValueError);
  parent_end.send_bytes("echo");
  EXPECT_EQ(text(parent_end.recv_bytes()), "echo");
  child.join();
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_THROW(parent_end.recv_bytes(), ipckit::ConnectionClosed);
}

TEST_F(ConnectionTest, ConnectionOverAPlainPipeFd) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ipckit::Connection reader(fds[0], true, false);
  ipckit::Connection writer(fds[1], false, true);
  writer.send(std::string("through a pipe"));
  EXPECT_EQ(reader.recv<std::string>(), "through a pipe");
  reader.close();
  // No reader: EPIPE becomes ConnectionClosed; SIGPIPE does not kill the test.
  EXPECT_THROW(writer.send_bytes("lost"), ipckit::ConnectionClosed);
}

TEST_F(ConnectionTest, DefaultConnectionIsClosed) {
  ipckit::Connection c;
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.readable());
  EXPECT_THROW(c.recv_bytes(), ipckit::ValueError);
  EXPECT_THROW(c.send_bytes("x"), ipckit::ValueError);
  EXPECT_NO_THROW(c.close());
}

// Runs Python's multiprocessing.connection.Connection (python_connection_peer.py) on
// `peer_fd` in a child and holds the conversation the script expects through `conn`.
// `close_peer_copy` closes this process's copy of `peer_fd` once the child has it.
void converse_with_python(ipckit::Connection& conn, int peer_fd, const std::function<void()>& close_peer_copy) {
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(peer_fd, 3);  // dup2 clears close-on-exec on the copy
    execl(IPCKIT_PYTHON, IPCKIT_PYTHON, IPCKIT_TEST_DIR "/python_connection_peer.py", "3", nullptr);
    _exit(127);
  }
  close_peer_copy();
  for (std::size_t n : {std::size_t{0}, std::size_t{5}, std::size_t{16384}, std::size_t{100000}}) {
    auto data = pattern(n, 3);
    conn.send_bytes(data);
    std::reverse(data.begin(), data.end());
    EXPECT_EQ(conn.recv_bytes(), data) << n;
  }
  conn.send_bytes("bye");
  for (std::size_t n : {0, 1, 16384, 16385, 70000}) {
    ipckit::Bytes want(n);
    for (std::size_t i = 0; i < n; ++i) want[i] = static_cast<std::byte>((i * 7) & 0xff);
    EXPECT_EQ(conn.recv_bytes(), want) << n;
  }
  const auto order = conn.recv<Order>(10s);  // a dict packed by Python's msgpack
  ASSERT_TRUE(order.has_value());
  EXPECT_EQ(order->item, "tea");
  EXPECT_EQ(order->quantity, 3);
  EXPECT_EQ(order->price, std::nullopt);
  EXPECT_EQ(order->tags, std::vector<std::string>{"green"});
  EXPECT_THROW(conn.recv_bytes(), ipckit::ConnectionClosed);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the Python peer failed (is python3-msgpack installed for " IPCKIT_PYTHON "?)";
}

// Python's multiprocessing.connection.Connection on the other end of a socket pair.
TEST_F(ConnectionTest, PythonConnectionReadsAndWritesTheSameFrames) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ipckit::Connection conn(fds[0], true, true);
  converse_with_python(conn, fds[1], [&] { close(fds[1]); });
}

// A Pipe without shared memory is a socket pair whose end another program can use.
TEST_F(ConnectionTest, SocketPipeEndWorksInAnExecdPythonProcess) {
  auto [mine, theirs] = ipckit::Pipe(true, {.shared_memory = false});
  converse_with_python(mine, theirs.fileno(), [&] { theirs.close(); });
}

// A sender killed in the middle of a message larger than the ring (so it streams in
// chunks): another sender on the same end carries on, and the receiver drops the torn
// message and gets the next whole.
TEST_F(ConnectionTest, SenderKilledInTheMiddleOfAChunkedMessage) {
  auto [receiver, sender] = ipckit::Pipe(false, {.ring_capacity = 16384});
  const auto big = pattern(1 << 20, 5);
  ipckit::Process torn([&] {
    receiver.close();
    sender.send_bytes("first");
    sender.send_bytes(big);  // blocks in the middle: nobody reads until it is killed
  });
  torn.start();
  EXPECT_EQ(text(receiver.recv_bytes()), "first");
  // It is in the middle of the big message once it sleeps waiting for room (the ring
  // holds a few KiB of it).
  ipckit::test::wait_until_sleeping(torn.pid());
  ipckit::Process next([&] {
    receiver.close();
    sender.send_bytes("whole");  // waits for the put lock the torn sender holds
  });
  next.start();
  torn.kill();
  torn.join();
  sender.close();
  EXPECT_EQ(text(receiver.recv_bytes()), "whole");
  next.join();
  EXPECT_EQ(next.exitcode(), 0);
  EXPECT_THROW(receiver.recv_bytes(), ipckit::ConnectionClosed);
}

// A receiver killed in the middle of a chunked message: the rest of it is skipped by the
// next receiver on the same end, which gets the following message whole.
TEST_F(ConnectionTest, ReceiverKilledInTheMiddleOfAChunkedMessage) {
  auto [receiver, sender] = ipckit::Pipe(false, {.ring_capacity = 16384});
  const auto big = pattern(1 << 20, 6);
  ipckit::Process torn([&] {
    sender.close();
    receiver.recv_bytes();  // blocks in the middle: the sender is stopped below
  });
  ipckit::Process writer([&] {
    receiver.close();
    sender.send_bytes(big);
    sender.send_bytes("after");
  });
  writer.start();
  // The writer fills the ring and sleeps; then the reader starts taking and, once the
  // writer is stopped, sleeps in the middle of the message.
  ipckit::test::wait_until_sleeping(writer.pid());
  ASSERT_EQ(::kill(writer.pid(), SIGSTOP), 0);
  torn.start();
  ipckit::test::wait_until_sleeping(torn.pid());
  torn.kill();
  torn.join();
  ASSERT_EQ(::kill(writer.pid(), SIGCONT), 0);
  sender.close();
  EXPECT_EQ(text(receiver.recv_bytes()), "after");
  writer.join();
  EXPECT_EQ(writer.exitcode(), 0);
}

}  // namespace
