// Queue, SimpleQueue, JoinableQueue and ByteQueue across real processes: typed items both
// ways, item and byte limits, messages that wrap around the ring, batches, close(),
// named queues opened by unrelated processes, join/task_done, wait() and poll(), many
// producers and consumers, threads, and producers and consumers killed with SIGKILL.
//
// Blocked callers. Where a test needs a process (or thread) to be asleep inside a queue
// call before it acts, the sleeper first says it is about to call, then the test waits
// until /proc shows that thread sleeping in the kernel: after saying so, the queue call is
// the only place where it can sleep. No sleep on the test's side, no guess at timing.
#include "ipckit/queue.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"
#include "ipckit_test.hpp"
#include "shm_support.hpp"
#include "sys/notify.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::Bytes;
using ipckit::QueueOptions;
using ipckit::test::kChildCheckFailed;
using ipckit::test::kChildOk;
using ipckit::test::text;
using ipckit::test::unique_name;
using ipckit::test::wait_for_gate;
using ipckit::test::wait_until_sleeping;
using ipckit::test::wait_until_state;
using QueueTest = ipckit::test::Test;
using QueueBytesTest = ipckit::test::Test;
using QueueNamedTest = ipckit::test::Test;
using QueueJoinableTest = ipckit::test::Test;
using QueueWaitTest = ipckit::test::Test;
using QueueCrashTest = ipckit::test::Test;

// A process that wakes a queue's pollers sends through one datagram socket of its own,
// made on first use and kept for the life of the process. Made here before the first
// test, so that the fixture's fd check stays exact for every other fd.
class NotifySenderEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ipckit::sys::send_notify("ipckit-queue-test-nobody"); }
};
[[maybe_unused]] const auto* const notify_sender_environment =
    ::testing::AddGlobalTestEnvironment(new NotifySenderEnvironment);

struct Order {
  int id = 0;
  std::string item;
  std::vector<double> prices;
  std::optional<std::string> note;
  IPCKIT_CODABLE(id, item, prices, note)
  bool operator==(const Order&) const = default;
};

struct Tagged {
  int producer = 0;
  int seq = 0;
  IPCKIT_CODABLE(producer, seq)
};

// Started children are daemons: a failed ASSERT in the parent ends them, never waits on
// one that is blocked in a queue.
std::unique_ptr<ipckit::Process> spawn(std::function<void()> body) { return ipckit::test::spawn(std::move(body), true); }

void expect_clean_exit(ipckit::Process& p) {
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << p.error().value_or("(no error message)");
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s)); }


// Message `index` of `size` bytes: every byte depends on both, so a byte from another
// message, another offset or a stale lap of the ring shows.
std::byte pattern(std::size_t index, std::size_t i) {
  return static_cast<std::byte>((index * 131 + (index >> 8) * 29 + i * 7 + (i >> 8) * 13) & 0xFF);
}
Bytes make_message(std::size_t index, std::size_t size) {
  Bytes m(size);
  for (std::size_t i = 0; i < size; ++i) m[i] = pattern(index, i);
  return m;
}
// "" when `m` is message `index` of `size` bytes, else where it differs.
std::string mismatch(std::span<const std::byte> m, std::size_t index, std::size_t size) {
  if (m.size() != size)
    return "message " + std::to_string(index) + " has " + std::to_string(m.size()) + " bytes, not " +
           std::to_string(size);
  for (std::size_t i = 0; i < size; ++i)
    if (m[i] != pattern(index, i)) return "message " + std::to_string(index) + " differs at byte " + std::to_string(i);
  return "";
}

// --- Typed queues between a parent and a forked child ------------------------------------

TEST_F(QueueTest, CarriesStringsIntsAndStructsBothWaysInOrder) {
  ipckit::Queue<std::string> strings_down, strings_up;
  ipckit::Queue<int> ints_down, ints_up;
  ipckit::Queue<Order> orders_down, orders_up;
  constexpr int kItems = 300;
  auto child = spawn([&] {
    for (int i = 0; i < kItems; ++i) {
      strings_up.put(strings_down.get() + "!");
      ints_up.put(ints_down.get() ^ 0x5a5a);
      Order order = orders_down.get();
      order.prices.push_back(order.id * 0.5);
      order.note = "seen by " + std::to_string(::getpid());
      orders_up.put(order);
    }
  });
  auto int_at = [](int i) {
    if (i == 1) return std::numeric_limits<int>::min();
    if (i == 2) return std::numeric_limits<int>::max();
    return (i - kItems / 2) * 1000003;
  };
  for (int i = 0; i < kItems; ++i) {
    strings_down.put(std::string(static_cast<std::size_t>(i % 40), static_cast<char>('a' + i % 26)) + std::to_string(i));
    ints_down.put(int_at(i));
    orders_down.put(Order{i, "widget-" + std::to_string(i), {1.5 * i}, std::nullopt});
  }
  const std::string note = "seen by " + std::to_string(child->pid());
  for (int i = 0; i < kItems; ++i) {
    ASSERT_EQ(strings_up.get(),
              std::string(static_cast<std::size_t>(i % 40), static_cast<char>('a' + i % 26)) + std::to_string(i) + "!");
    ASSERT_EQ(ints_up.get(), int_at(i) ^ 0x5a5a);
    ASSERT_EQ(orders_up.get(), (Order{i, "widget-" + std::to_string(i), {1.5 * i, i * 0.5}, note}));
  }
  expect_clean_exit(*child);
  EXPECT_TRUE(strings_up.empty() && ints_up.empty() && orders_up.empty());
  EXPECT_TRUE(strings_down.empty() && ints_down.empty() && orders_down.empty());
}

TEST_F(QueueTest, SimpleQueueHasNoItemLimit) {
  ipckit::SimpleQueue<std::string> q;
  EXPECT_EQ(q.maxsize(), 0u);
  auto child = spawn([&] {
    for (int i = 0; i < 1000; ++i) q.put("s" + std::to_string(i));
  });
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.get(), "s" + std::to_string(i));
  expect_clean_exit(*child);
  ipckit::SimpleQueue<int> small(4096);
  EXPECT_EQ(small.bytes().capacity_bytes(), 4096u);
}

TEST_F(QueueTest, MaxsizeBoundsItemsAndABlockedPutIsReleasedByAGet) {
  ipckit::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 0u);
  q.put(1);
  EXPECT_FALSE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_TRUE(q.try_put(2));
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_FALSE(q.try_put(3));
  EXPECT_FALSE(q.put(3, 20ms));
  EXPECT_EQ(q.qsize(), 2u);

  auto [parent_end, child_end] = ipckit::Pipe();
  auto child = spawn([&] {
    child_end.send_bytes("putting");
    q.put(3);
    child_end.send_bytes("put");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(child->pid());
  EXPECT_FALSE(parent_end.poll());  // still blocked: the queue is full
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(text(parent_end.recv_bytes()), "put");
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  EXPECT_TRUE(q.empty());
  expect_clean_exit(*child);
}

TEST_F(QueueTest, TimedGetAndTryGetOnAnEmptyQueue) {
  ipckit::Queue<std::string> q;
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_FALSE(q.get(0ms).has_value());
  EXPECT_FALSE(q.get(20ms).has_value());
  q.put("there");
  EXPECT_EQ(q.try_get(), "there");
  EXPECT_FALSE(q.try_get().has_value());

  // A timed get that is asleep when another process puts returns the item.
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = spawn([&] {
    wait_for_gate(gate, gate_writer);
    wait_until_sleeping(::getppid());
    q.put("late");
  });
  gate_writer.close();
  EXPECT_EQ(q.get(30s), "late");
  expect_clean_exit(*child);
}

TEST_F(QueueTest, AnItemThatIsNotATIsADecodeErrorHoldingItsBytes) {
  ipckit::Queue<int> q;
  const Bytes not_an_int = ipckit::encode(std::string("forty-two"));
  const Bytes not_msgpack = {std::byte{0xc1}};  // never used by MessagePack
  auto child = spawn([&] {
    q.bytes().put(not_an_int);
    q.put(42);
    q.bytes().put(not_msgpack);
    q.put(43);
  });
  expect_clean_exit(*child);
  try {
    q.get();
    ADD_FAILURE() << "a str decoded as an int";
  } catch (const ipckit::DecodeError& e) {
    EXPECT_EQ(e.payload(), not_an_int);
  }
  EXPECT_EQ(q.get(), 42);
  try {
    q.try_get();
    ADD_FAILURE() << "0xc1 decoded as an int";
  } catch (const ipckit::DecodeError& e) {
    EXPECT_EQ(e.payload(), not_msgpack);
  }
  EXPECT_EQ(q.get(), 43);
  EXPECT_TRUE(q.empty());
}

// get_many takes items in a batch: one that is not a T must not cost the items taken with
// it before it (DESIGN: at most the message being handled is lost).
TEST_F(QueueTest, TypedGetManyLosesNoItemTakenBeforeOneThatIsNotAT) {
  ipckit::Queue<int> q;
  q.put(1);
  q.put(2);
  q.bytes().put(ipckit::encode(std::string("three")));
  q.put(4);
  std::vector<int> got;
  int errors = 0;
  for (int round = 0; round < 5; ++round) {
    try {
      const auto batch = q.get_many(10, 0ms);
      if (batch.empty()) break;
      got.insert(got.end(), batch.begin(), batch.end());
    } catch (const ipckit::DecodeError& e) {
      ++errors;
      EXPECT_EQ(e.payload(), ipckit::encode(std::string("three")));
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 4})) << "items decoded before the bad one were taken and dropped";
}

TEST_F(QueueTest, ItemsPutByAChildThatExitsAtOnceAreAllThere) {
  constexpr int kItems = 20000;
  ipckit::Queue<int> q;
  auto child = spawn([&] {
    for (int i = 0; i < kItems; ++i) q.put(i);
    ::_exit(0);  // no flush, no destructor, no thread to wait for
  });
  child->join();
  EXPECT_EQ(child->exitcode(), 0);
  EXPECT_EQ(q.qsize(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(q.try_get(), i);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, AnItemIsInTheQueueOncePutReturnsEvenIfTheProducerIsKilled) {
  ipckit::Queue<std::string> q;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto child = spawn([&] {
    q.put("first");
    q.put_many(std::vector<std::string>{"second", "third"});
    child_end.send_bytes("put");
    for (;;) ::pause();
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "put");
  child->kill();
  child->join();
  EXPECT_EQ(q.get_many(10, 0ms), (std::vector<std::string>{"first", "second", "third"}));
}

TEST_F(QueueTest, AMovedFromHandleThrowsValueError) {
  ipckit::Queue<int> a;
  a.put(1);
  ipckit::Queue<int> b = std::move(a);
  EXPECT_THROW(a.put(2), ipckit::ValueError);  // NOLINT(bugprone-use-after-move): what is tested
  EXPECT_THROW(a.get(0ms), ipckit::ValueError);
  EXPECT_EQ(b.get(), 1);
}

// --- Byte limits, messages wrapping around the ring --------------------------------------

TEST_F(QueueBytesTest, OptionsAreRoundedAndChecked) {
  EXPECT_EQ(ipckit::ByteQueue().capacity_bytes(), ipckit::kDefaultQueueCapacity);
  EXPECT_EQ(ipckit::ByteQueue().max_message_size(), ipckit::kDefaultQueueMaxMessage);
  EXPECT_EQ(ipckit::ByteQueue({.capacity_bytes = 0}).capacity_bytes(), 4096u);
  EXPECT_EQ(ipckit::ByteQueue({.capacity_bytes = 5000}).capacity_bytes(), 8192u);
  EXPECT_EQ(ipckit::ByteQueue({.capacity_bytes = 4096, .max_message_size = 100}).max_message_size(), 100u);
  // A limit beyond the ring is no error: such messages travel in chunks.
  EXPECT_EQ(ipckit::ByteQueue({.capacity_bytes = 4096, .max_message_size = 1 << 20}).max_message_size(), 1u << 20);
  EXPECT_THROW(ipckit::ByteQueue({.capacity_bytes = (std::size_t{1} << 30) + 1}), ipckit::ValueError);
  EXPECT_THROW(ipckit::ByteQueue({.maxsize = std::size_t{1} << 31}), ipckit::ValueError);
  EXPECT_THROW(ipckit::JoinableQueue<int>(QueueOptions{.capacity_bytes = std::size_t{1} << 31}), ipckit::ValueError);
}

// A capacity beyond every power of two a size_t holds is refused like any other too-big
// capacity (not rounded up first, which is undefined for it).
TEST_F(QueueBytesTest, AHugeCapacityIsAValueError) {
  EXPECT_THROW(ipckit::ByteQueue({.capacity_bytes = std::numeric_limits<std::size_t>::max()}), ipckit::ValueError);
  EXPECT_THROW(ipckit::ByteQueue({.capacity_bytes = (std::size_t{1} << 63) + 1}), ipckit::ValueError);
}

// Messages of at most a quarter of the ring, each one record: three of 1016 bytes (1024
// with their header) leave no room for a fourth, but for a smaller one.
TEST_F(QueueBytesTest, APutThatDoesNotFitInTheBytesLeftWaitsForAGet) {
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  EXPECT_EQ(q.capacity_bytes(), 4096u);
  EXPECT_EQ(q.maxsize(), 0u);
  for (std::size_t i = 0; i < 3; ++i) ASSERT_TRUE(q.try_put(make_message(i, 1016)));
  EXPECT_FALSE(q.try_put(make_message(3, 1016)));
  EXPECT_FALSE(q.put(make_message(3, 1016), 20ms));
  EXPECT_FALSE(q.full());  // a small message still fits
  ASSERT_TRUE(q.try_put(make_message(4, 500)));
  EXPECT_EQ(q.qsize(), 4u);

  auto [parent_end, child_end] = ipckit::Pipe();
  auto child = spawn([&] {
    child_end.send_bytes("putting");
    q.put(make_message(5, 1016));
    child_end.send_bytes("put");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(child->pid());
  EXPECT_FALSE(parent_end.poll());
  EXPECT_EQ(mismatch(q.get(), 0, 1016), "");
  EXPECT_EQ(text(parent_end.recv_bytes()), "put");
  for (const std::size_t i : {1, 2}) EXPECT_EQ(mismatch(q.get(), i, 1016), "");
  EXPECT_EQ(mismatch(q.get(), 4, 500), "");
  EXPECT_EQ(mismatch(q.get(), 5, 1016), "");
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueBytesTest, EmptyMessagesFillTheRingUntilFull) {
  // Each empty message still takes 8 bytes of the ring: at most 512 fit in 4 KiB.
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  std::size_t put = 0;
  while (put <= 512 && q.try_put({})) ++put;
  EXPECT_GE(put, 256u);
  EXPECT_LE(put, 512u);
  EXPECT_EQ(q.qsize(), put);
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.put({}, 20ms));
  EXPECT_EQ(q.get(), Bytes{});
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(q.try_put({}));
  EXPECT_EQ(q.get_many(1000, 0ms).size(), put);
  EXPECT_TRUE(q.empty());
}

// A put that gave up (timeout or try_put) had no effect: the room it found is still there
// for the next put, and consumers see nothing of its message.
TEST_F(QueueBytesTest, APutThatGaveUpLeavesTheRoomItFound) {
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  q.put(make_message(0, 3000));
  EXPECT_FALSE(q.try_put(make_message(1, 2000)));    // needs more than the ~1 KiB left
  EXPECT_FALSE(q.put(make_message(1, 2000), 20ms));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_TRUE(q.try_put(make_message(2, 500))) << "a failed put of 2000 bytes took the room of a 500-byte one";
  EXPECT_EQ(mismatch(q.get(), 0, 3000), "");
  const auto next = q.try_get();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(mismatch(*next, 2, 500), "");
  EXPECT_FALSE(q.try_get().has_value());
}

TEST_F(QueueBytesTest, MessagesWrappingAroundTheRingArriveIntact) {
  // 4 KiB ring, messages of 0 to 2 KiB and now and then almost the whole ring (those
  // above a quarter of it in chunks): the ring wraps some hundred times, with records
  // split across its end at every offset.
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  constexpr std::size_t kMessages = 800;
  constexpr std::size_t largest = 4080;
  auto size_of = [&](std::size_t i) { return i % 97 == 5 ? largest : (i * 397 + i / 3) % 2049; };
  auto child = spawn([&] {
    for (std::size_t i = 0; i < kMessages; ++i) {
      if (i % 10 == 9) {
        std::vector<Bytes> batch;
        for (std::size_t j = i; j < std::min(i + 5, kMessages); ++j) batch.push_back(make_message(j, size_of(j)));
        std::vector<std::span<const std::byte>> spans(batch.begin(), batch.end());
        q.put_many(spans);
        i += batch.size() - 1;
      } else {
        q.put(make_message(i, size_of(i)));
      }
    }
  });
  std::vector<std::byte> buffer(largest);
  std::size_t i = 0;
  while (i < kMessages) {
    switch (i % 3) {
      case 0: {
        const Bytes m = q.get();
        ASSERT_EQ(mismatch(m, i, size_of(i)), "");
        ++i;
        break;
      }
      case 1: {
        const std::size_t n = q.get_into(buffer);
        ASSERT_EQ(mismatch(std::span(buffer).first(n), i, size_of(i)), "");
        ++i;
        break;
      }
      default:
        for (const Bytes& m : q.get_many(4)) {
          ASSERT_EQ(mismatch(m, i, size_of(i)), "");
          ++i;
        }
    }
  }
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueBytesTest, MessagesLargerThanTheRingArriveWhole) {
  // A 4 KiB ring; messages up to 16 times its size, streamed through it in chunks while
  // the consumer takes them, between and after small ones.
  ipckit::ByteQueue q({.capacity_bytes = 4096, .max_message_size = 1 << 16});
  const std::vector<std::size_t> sizes = {5000, 1, 20000, 4096, 0, 65536, 1025, 12345, 3, 40000};
  auto child = spawn([&] {
    q.put(make_message(0, sizes[0]));
    q.put(make_message(1, sizes[1]));
    std::vector<Bytes> batch;
    for (std::size_t i = 2; i < 6; ++i) batch.push_back(make_message(i, sizes[i]));
    q.put_many(std::vector<std::span<const std::byte>>(batch.begin(), batch.end()));
    for (std::size_t i = 6; i < sizes.size(); ++i) q.put(make_message(i, sizes[i]));
  });
  EXPECT_EQ(mismatch(q.get(), 0, sizes[0]), "");
  EXPECT_EQ(mismatch(q.get(), 1, sizes[1]), "");
  std::vector<std::byte> exact(sizes[2]);
  ASSERT_EQ(q.get_into(exact), sizes[2]);
  EXPECT_EQ(mismatch(exact, 2, sizes[2]), "");
  std::vector<std::byte> roomy(sizes[3] + 100);
  ASSERT_EQ(q.get_into(roomy), sizes[3]);
  EXPECT_EQ(mismatch(std::span(roomy).first(sizes[3]), 3, sizes[3]), "");
  EXPECT_EQ(mismatch(q.get(), 4, sizes[4]), "");
  std::vector<std::byte> short_buffer(sizes[5] - 1);
  try {
    q.get_into(short_buffer);
    ADD_FAILURE() << "a " << sizes[5] << "-byte message fit a buffer of " << short_buffer.size();
  } catch (const ipckit::BufferTooShort& e) {
    EXPECT_EQ(mismatch(e.message(), 5, sizes[5]), "");  // the whole message, in the exception
  }
  std::size_t i = 6;
  while (i < sizes.size()) {
    const auto batch = q.get_many(3);
    ASSERT_FALSE(batch.empty());
    for (const Bytes& m : batch) {
      ASSERT_LT(i, sizes.size());
      EXPECT_EQ(mismatch(m, i, sizes[i]), "");
      ++i;
    }
  }
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());

  // Above the limit: refused whole, before anything is streamed.
  EXPECT_THROW(q.put(make_message(0, (1 << 16) + 1)), ipckit::MessageTooLarge);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueBytesTest, ALargeMessageThatTimesOutLeavesNothingForConsumers) {
  // No consumer: the first chunks of a 20000-byte message fill the 4 KiB ring, then the
  // put gives up. Consumers must see nothing of it, and the queue goes on.
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  EXPECT_FALSE(q.put(make_message(0, 20000), 20ms));
  EXPECT_FALSE(q.try_put(make_message(0, 20000)));
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_FALSE(q.try_get().has_value());
  auto child = spawn([&] {
    q.put(make_message(1, 300));
    q.put(make_message(2, 20000));  // with a consumer there, the same message goes through
  });
  EXPECT_EQ(mismatch(q.get(), 1, 300), "");
  EXPECT_EQ(mismatch(q.get(), 2, 20000), "");
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, TypedItemsLargerThanTheRing) {
  ipckit::Queue<std::string> strings(QueueOptions{.capacity_bytes = 4096});
  ipckit::Queue<std::vector<std::int64_t>> numbers(QueueOptions{.capacity_bytes = 4096});
  std::string text_item(100000, ' ');
  for (std::size_t i = 0; i < text_item.size(); ++i) text_item[i] = static_cast<char>('a' + i % 26);
  std::vector<std::int64_t> numbers_item(20000);
  for (std::size_t i = 0; i < numbers_item.size(); ++i) numbers_item[i] = static_cast<std::int64_t>(i * i) - 7;
  auto child = spawn([&] {
    strings.put(text_item);
    numbers.put(numbers_item);
    strings.put("small");
  });
  EXPECT_EQ(strings.get(), text_item);
  EXPECT_EQ(numbers.get(), numbers_item);
  EXPECT_EQ(strings.get(), "small");
  expect_clean_exit(*child);
}

TEST_F(QueueBytesTest, TooLargeAMessageThrowsAtOnceAndPutsNothing) {
  ipckit::ByteQueue q({.maxsize = 1, .capacity_bytes = 4096, .max_message_size = 100});
  EXPECT_EQ(q.max_message_size(), 100u);
  q.put(make_message(0, 100));
  ASSERT_TRUE(q.full());
  // Full: a put that waited for room first would hang here (the watchdog ends the test).
  try {
    q.put(make_message(1, 101));
    ADD_FAILURE() << "a 101-byte message went into a queue whose limit is 100";
  } catch (const ipckit::MessageTooLarge& e) {
    EXPECT_EQ(e.size(), 101u);
    EXPECT_EQ(e.limit(), 100u);
  }
  EXPECT_THROW(q.put(make_message(1, 4000), 30s), ipckit::MessageTooLarge);
  EXPECT_THROW(q.try_put(make_message(1, 101)), ipckit::MessageTooLarge);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(mismatch(q.get(), 0, 100), "");

  // A batch with one message too large puts none of it, not even those before it.
  const Bytes small = make_message(2, 10);
  const Bytes large = make_message(3, 200);
  const std::vector<std::span<const std::byte>> batch = {small, large};
  EXPECT_THROW(q.put_many(batch), ipckit::MessageTooLarge);
  EXPECT_THROW(q.put_many(batch, 30s), ipckit::MessageTooLarge);
  EXPECT_TRUE(q.empty());

  // Typed: the limit applies to the encoded item (a str of 100 bytes is 102 in MessagePack).
  ipckit::Queue<std::string> strings(QueueOptions{.capacity_bytes = 4096, .max_message_size = 64});
  try {
    strings.put(std::string(100, 'x'));
    ADD_FAILURE() << "a 102-byte item went into a queue whose limit is 64";
  } catch (const ipckit::MessageTooLarge& e) {
    EXPECT_EQ(e.size(), 102u);
    EXPECT_EQ(e.limit(), 64u);
  }
  EXPECT_TRUE(strings.empty());
}

// --- ByteQueue: bytes, empty messages, get_into, batches --------------------------------

TEST_F(QueueBytesTest, BytesAndEmptyMessagesGoThroughUntouched) {
  ipckit::ByteQueue q;
  Bytes all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::byte>(i);
  auto child = spawn([&] {
    q.put({});
    q.put(bytes_of("abc"));
    q.put({});
    q.put({});
    q.put(all);
    q.put({});
  });
  EXPECT_EQ(q.get(), Bytes{});
  EXPECT_EQ(text(q.get()), "abc");
  EXPECT_EQ(q.get(), Bytes{});
  std::array<std::byte, 4> buffer{};
  EXPECT_EQ(q.get_into(std::span<std::byte>{}), 0u);  // an empty message fits no room at all
  EXPECT_EQ(q.get(), all);
  EXPECT_EQ(q.get_into(buffer), 0u);
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.try_get().has_value());
}

TEST_F(QueueBytesTest, GetIntoAShortBufferThrowsBufferTooShortHoldingTheMessage) {
  // The message is taken by the caller that got BufferTooShort and travels in the
  // exception: no other consumer sees it twice, and nothing is lost.
  ipckit::ByteQueue q;
  q.put(bytes_of("a message longer than eight bytes"));
  q.put(bytes_of("12345678"));
  q.put(bytes_of("next"));
  auto [parent_end, child_end] = ipckit::Pipe();
  auto child = spawn([&] {
    std::array<std::byte, 8> buffer{};
    try {
      q.get_into(buffer);
      child_end.send_bytes("no BufferTooShort");
    } catch (const ipckit::BufferTooShort& e) {
      child_end.send_bytes(e.message());
    }
    const std::size_t n = q.get_into(buffer);  // exactly fits
    child_end.send_bytes(std::span<const std::byte>(buffer).first(n));
  });
  EXPECT_EQ(text(parent_end.recv_bytes()), "a message longer than eight bytes");
  EXPECT_EQ(text(parent_end.recv_bytes()), "12345678");
  expect_clean_exit(*child);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(text(q.get()), "next");
}

TEST_F(QueueBytesTest, PutManyAndGetManyMoveBatchesInOrder) {
  const std::vector<std::string> words = {"a", "bb", "", "dddd", "e", "ff", "g", "hh", "i", "jjj"};
  std::vector<std::span<const std::byte>> spans;
  for (const auto& w : words) spans.push_back(bytes_of(w));
  ipckit::ByteQueue q({.maxsize = 4});

  EXPECT_EQ(q.put_many(spans, 20ms), 4u);  // room for four, then the timeout
  EXPECT_EQ(q.qsize(), 4u);
  EXPECT_EQ(q.put_many(spans, 0ms), 0u);
  EXPECT_TRUE(q.get_many(0, 0ms).empty());  // none asked for, none taken
  EXPECT_EQ(q.qsize(), 4u);
  auto first = q.get_many(3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(text(first[0]), "a");
  EXPECT_EQ(text(first[1]), "bb");
  EXPECT_EQ(text(first[2]), "");
  auto rest = q.get_many(100, 0ms);  // at most those there
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(text(rest[0]), "dddd");
  EXPECT_TRUE(q.get_many(5, 20ms).empty());

  // An untimed put_many of more than the queue holds completes while a consumer in
  // another process drains it; the untimed get_many waits for the first of each batch.
  auto child = spawn([&] { q.put_many(spans); });
  std::vector<std::string> got;
  while (got.size() < words.size()) {
    const auto batch = q.get_many(3);
    ASSERT_FALSE(batch.empty());
    ASSERT_LE(batch.size(), 3u);
    for (const Bytes& m : batch) got.push_back(text(m));
  }
  EXPECT_EQ(got, words);
  expect_clean_exit(*child);
  EXPECT_TRUE(q.empty());
}

// --- close() -----------------------------------------------------------------------------

TEST_F(QueueTest, CloseStopsPutsAndGetsDrainWhatIsLeft) {
  ipckit::Queue<int> q;
  q.put(1);
  q.put(2);
  EXPECT_FALSE(q.closed());
  auto closer = spawn([&] { q.close(); });  // closes it for every process
  expect_clean_exit(*closer);
  EXPECT_TRUE(q.closed());
  EXPECT_THROW(q.put(3), ipckit::QueueClosed);
  EXPECT_THROW(q.try_put(3), ipckit::QueueClosed);
  EXPECT_THROW(q.put(3, 10ms), ipckit::QueueClosed);
  EXPECT_THROW(q.put_many(std::vector<int>{3, 4}), ipckit::QueueClosed);
  EXPECT_TRUE(q.poll());  // ready: there are items (and it is closed)
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get(10ms), 2);
  EXPECT_THROW(q.get(), ipckit::QueueClosed);
  EXPECT_THROW(q.get(10ms), ipckit::QueueClosed);
  EXPECT_THROW(q.try_get(), ipckit::QueueClosed);
  EXPECT_THROW(q.get_many(4), ipckit::QueueClosed);
  EXPECT_TRUE(q.poll());  // closed counts as ready, so an event loop learns of it
  EXPECT_EQ(ipckit::wait({q}, 0ms).size(), 1u);
}

TEST_F(QueueTest, CloseWakesAConsumerBlockedInAnotherProcess) {
  ipckit::Queue<int> q;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto consumer = spawn([&] {
    child_end.send_bytes("getting");
    try {
      q.get();
    } catch (const ipckit::QueueClosed&) {
      throw ipckit::SystemExit{7};
    }
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "getting");
  wait_until_sleeping(consumer->pid());
  q.close();
  consumer->join();
  EXPECT_EQ(consumer->exitcode(), 7) << consumer->error().value_or("");
}

TEST_F(QueueTest, CloseWakesAProducerBlockedOnAFullQueue) {
  ipckit::Queue<int> q(1);
  q.put(1);
  auto [parent_end, child_end] = ipckit::Pipe();
  auto producer = spawn([&] {
    child_end.send_bytes("putting");
    try {
      q.put(2);
    } catch (const ipckit::QueueClosed&) {
      throw ipckit::SystemExit{7};
    }
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(producer->pid());
  q.close();
  producer->join();
  EXPECT_EQ(producer->exitcode(), 7) << producer->error().value_or("");
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW(q.get(), ipckit::QueueClosed);
}

// --- Named queues ------------------------------------------------------------------------

const ipckit::test::ChildScenario named_queue_peer("queue-named-peer", [](const std::vector<std::string>& args) {
  if (args.size() != 2) return ipckit::test::kChildBadArguments;
  auto q = ipckit::Queue<std::string>::open(args[0]);
  if (q.name() != args[0] || q.maxsize() != std::stoul(args[1])) {
    std::fprintf(stderr, "opened '%s' with maxsize %zu\n", q.name().c_str(), q.maxsize());
    return kChildCheckFailed;
  }
  const std::string got = q.get();
  q.put(got + " pong");
  auto again = ipckit::Queue<std::string>::open_or_create(args[0]);
  again.put("through open_or_create");
  try {
    ipckit::JoinableQueue<std::string>::open(args[0]);
    std::fprintf(stderr, "a Queue opened as a JoinableQueue\n");
    return kChildCheckFailed;
  } catch (const ipckit::ValueError&) {
  }
  return kChildOk;
});

TEST_F(QueueNamedTest, CreateOpenAndOpenOrCreateAcrossAnUnrelatedProcess) {
  const std::string name = unique_name("ipckit-queue");
  auto q = ipckit::Queue<std::string>::create(name, {.maxsize = 5});
  EXPECT_EQ(q.name(), name);
  q.put("ping");
  const auto result = ipckit::test::run_child("queue-named-peer", {name, "5"});
  EXPECT_EQ(result.exit_code, kChildOk) << result.output;
  EXPECT_EQ(q.get(0ms), "ping pong");
  EXPECT_EQ(q.get(0ms), "through open_or_create");

  EXPECT_THROW(ipckit::Queue<std::string>::create(name), ipckit::FileExistsError);
  auto same = ipckit::Queue<std::string>::open_or_create(name, {.maxsize = 99});  // opens: options unused
  EXPECT_EQ(same.maxsize(), 5u);
  same.put("same queue");
  EXPECT_EQ(q.get(0ms), "same queue");

  q.unlink();
  EXPECT_THROW(ipckit::Queue<std::string>::open(name), ipckit::FileNotFoundError);
  q.put("still works after unlink");
  EXPECT_EQ(same.get(0ms), "still works after unlink");
}

TEST_F(QueueNamedTest, OpenOrCreateCreatesWhenMissing) {
  const std::string name = unique_name("ipckit-queue");
  auto q = ipckit::ByteQueue::open_or_create(name, {.capacity_bytes = 8192});
  EXPECT_EQ(q.capacity_bytes(), 8192u);
  auto other = ipckit::ByteQueue::open(name);
  EXPECT_EQ(other.capacity_bytes(), 8192u);
  other.put(bytes_of("x"));
  EXPECT_EQ(text(q.get()), "x");
  other.unlink();
  EXPECT_THROW(q.unlink(), ipckit::FileNotFoundError);  // already gone
}

TEST_F(QueueNamedTest, OpenOfAMissingOrWrongKindOfObjectFails) {
  EXPECT_THROW(ipckit::Queue<int>::open(unique_name("ipckit-none")), ipckit::FileNotFoundError);
  EXPECT_THROW(ipckit::JoinableQueue<int>::open(unique_name("ipckit-none")), ipckit::FileNotFoundError);
  EXPECT_THROW(ipckit::ByteQueue().unlink(), ipckit::ValueError);  // anonymous: no name

  const std::string queue_name = unique_name("ipckit-queue");
  auto q = ipckit::Queue<int>::create(queue_name);
  EXPECT_THROW(ipckit::JoinableQueue<int>::open(queue_name), ipckit::ValueError);
  EXPECT_THROW(ipckit::JoinableQueue<int>::open_or_create(queue_name), ipckit::ValueError);
  EXPECT_THROW(ipckit::Lock::open(queue_name), ipckit::ValueError);
  q.unlink();

  const std::string joinable_name = unique_name("ipckit-joinable");
  auto j = ipckit::JoinableQueue<int>::create(joinable_name);
  EXPECT_THROW(ipckit::Queue<int>::open(joinable_name), ipckit::ValueError);
  j.unlink();

  const std::string lock_name = unique_name("ipckit-lock");
  auto lock = ipckit::Lock::create(lock_name);
  EXPECT_THROW(ipckit::Queue<int>::open(lock_name), ipckit::ValueError);
  EXPECT_THROW(ipckit::ByteQueue::open_or_create(lock_name), ipckit::ValueError);
  lock.unlink();
}

// --- JoinableQueue -----------------------------------------------------------------------

TEST_F(QueueJoinableTest, JoinReturnsOnceConsumersInOtherProcessesMarkedEveryItemDone) {
  constexpr int kItems = 200;
  constexpr int kConsumers = 2;
  ipckit::JoinableQueue<int> q;
  ipckit::Value<int> processed(0);
  EXPECT_TRUE(q.join(0ms));  // nothing put: nothing to wait for
  std::vector<std::unique_ptr<ipckit::Process>> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(spawn([&] {
      for (;;) {
        const int item = q.get();
        if (item >= 0) processed.fetch_add(1);
        q.task_done();  // after the work: join must not return before it
        if (item < 0) return;
      }
    }));
  for (int i = 0; i < kItems; ++i) q.put(i);
  for (int c = 0; c < kConsumers; ++c) q.put(-1);
  q.join();
  EXPECT_EQ(processed.load(), kItems);
  EXPECT_TRUE(q.empty());
  for (auto& c : consumers) expect_clean_exit(*c);
}

TEST_F(QueueJoinableTest, TimedJoinIsFalseWhileItemsArePending) {
  ipckit::JoinableQueue<std::string> q;
  q.put("job");
  EXPECT_FALSE(q.join(20ms));  // not taken
  EXPECT_EQ(q.get(), "job");
  EXPECT_FALSE(q.join(20ms));  // taken, not done
  auto worker = spawn([&] { q.task_done(); });
  expect_clean_exit(*worker);
  EXPECT_TRUE(q.join(0ms));
  q.join();
}

TEST_F(QueueJoinableTest, TaskDoneMoreTimesThanItemsTakenIsAValueError) {
  ipckit::JoinableQueue<int> q;
  EXPECT_THROW(q.task_done(), ipckit::ValueError);
  q.put(1);
  q.put(2);
  EXPECT_THROW(q.task_done(), ipckit::ValueError);  // put, but not taken
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_THROW(q.task_done(), ipckit::ValueError);
  EXPECT_FALSE(q.join(0ms));
  EXPECT_EQ(q.get(), 2);
  q.task_done();
  EXPECT_TRUE(q.join(0ms));
  EXPECT_THROW(q.task_done(), ipckit::ValueError);
}

const ipckit::test::ChildScenario joinable_worker("queue-joinable-worker", [](const std::vector<std::string>& args) {
  if (args.size() != 1) return ipckit::test::kChildBadArguments;
  auto q = ipckit::JoinableQueue<int>::open(args[0]);
  long sum = 0;
  for (;;) {
    const int item = q.get();
    q.task_done();
    if (item < 0) break;
    sum += item;
  }
  std::printf("sum %ld\n", sum);
  return kChildOk;
});

TEST_F(QueueJoinableTest, JoinWaitsForAnUnrelatedProcessThatOpenedItByName) {
  const std::string name = unique_name("ipckit-joinable");
  auto q = ipckit::JoinableQueue<int>::create(name);
  auto worker = ipckit::test::Spawned::scenario("queue-joinable-worker", {name});
  for (int i = 1; i <= 100; ++i) q.put(i);
  q.put(-1);
  q.join();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(worker.read_line(), "sum 5050");
  EXPECT_EQ(worker.wait(), kChildOk) << worker.read_rest();
  q.unlink();
}

// --- wait(), poll(), fileno() ------------------------------------------------------------

TEST_F(QueueWaitTest, WaitReturnsTheQueueWhenAChildPuts) {
  ipckit::Queue<int> q;
  EXPECT_TRUE(ipckit::wait({q}, 20ms).empty());
  EXPECT_FALSE(q.poll());
  EXPECT_FALSE(q.poll(20ms));
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = spawn([&] {
    wait_for_gate(gate, gate_writer);
    wait_until_sleeping(::getppid());  // the parent is asleep in wait()
    q.put(5);
  });
  gate_writer.close();
  const auto ready = ipckit::wait({q}, 30s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == q);
  EXPECT_TRUE(q.poll());
  EXPECT_EQ(q.get(), 5);
  EXPECT_FALSE(q.poll());
  EXPECT_TRUE(ipckit::wait({q}, 0ms).empty());
  expect_clean_exit(*child);
}

TEST_F(QueueWaitTest, PollWithATimeoutSeesAPutFromAnotherProcess) {
  ipckit::ByteQueue q;
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = spawn([&] {
    wait_for_gate(gate, gate_writer);
    wait_until_sleeping(::getppid());  // the parent is asleep in poll()
    q.put(bytes_of("now"));
  });
  gate_writer.close();
  EXPECT_TRUE(q.poll(30s));
  EXPECT_EQ(text(q.get()), "now");
  expect_clean_exit(*child);
}

TEST_F(QueueWaitTest, FilenoTurnsReadableInAnEventLoop) {
  ipckit::Queue<std::string> q;
  const int fd = q.fileno();
  EXPECT_EQ(q.fileno(), fd);
  EXPECT_FALSE(q.poll());  // arms the fd: nothing there yet
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = spawn([&] {
    wait_for_gate(gate, gate_writer);
    q.put("event");
  });
  gate_writer.close();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);
  EXPECT_TRUE(p.revents & POLLIN);
  EXPECT_TRUE(q.poll());  // re-arms, and says the item is there
  EXPECT_EQ(q.get(), "event");
  EXPECT_FALSE(q.poll());
  p.revents = 0;
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // drained and re-armed: idle until the next put
  expect_clean_exit(*child);
}

TEST_F(QueueWaitTest, WaitsOnAQueueAndAConnectionTogether) {
  ipckit::Queue<std::string> q;
  auto [conn, child_conn] = ipckit::Pipe();
  auto child = spawn([&] {
    child_conn.send_bytes("on the connection");
    child_conn.recv_bytes();
    wait_until_sleeping(::getppid());
    q.put("on the queue");
  });
  auto ready = ipckit::wait({q, conn}, 30s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == conn);
  EXPECT_EQ(text(conn.recv_bytes()), "on the connection");
  conn.send_bytes("now the queue");
  ready = ipckit::wait({q, conn}, 30s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == q);
  EXPECT_EQ(q.get(), "on the queue");
  expect_clean_exit(*child);
  EXPECT_TRUE(ipckit::wait({q}, 0ms).empty());
}

// --- Many producers and consumers, threads -----------------------------------------------

TEST_F(QueueTest, ManyProducersAndConsumersDeliverEveryItemOnceInProducerOrder) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 2;
  constexpr int kPerProducer = 3000;
  // A small ring: producers often find it full and consumers often find it empty.
  ipckit::Queue<Tagged> q(QueueOptions{.capacity_bytes = 4096});
  std::vector<std::pair<ipckit::Connection, ipckit::Connection>> results;
  for (int c = 0; c < kConsumers; ++c) results.push_back(ipckit::Pipe());
  std::vector<std::unique_ptr<ipckit::Process>> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(spawn([&, c] {
      std::vector<Tagged> seen;
      try {
        for (;;) {
          if (c == 0) {
            seen.push_back(q.get());
          } else {
            for (const Tagged& t : q.get_many(16)) seen.push_back(t);
          }
        }
      } catch (const ipckit::QueueClosed&) {
      }
      results[static_cast<std::size_t>(c)].second.send(seen);
    }));
  std::vector<std::unique_ptr<ipckit::Process>> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(spawn([&, p] {
      if (p == 1) {
        std::vector<Tagged> batch;
        for (int s = 0; s < kPerProducer; ++s) {
          batch.push_back({p, s});
          if (batch.size() == 25 || s == kPerProducer - 1) {
            q.put_many(batch);
            batch.clear();
          }
        }
      } else {
        for (int s = 0; s < kPerProducer; ++s) q.put({p, s});
      }
    }));
  for (auto& p : producers) expect_clean_exit(*p);
  q.close();  // consumers drain what is left, then stop with QueueClosed
  std::vector<std::vector<int>> count(kProducers, std::vector<int>(kPerProducer, 0));
  for (int c = 0; c < kConsumers; ++c) {
    const auto seen = results[static_cast<std::size_t>(c)].first.recv<std::vector<Tagged>>();
    std::vector<int> last(kProducers, -1);
    for (const Tagged& t : seen) {
      ASSERT_TRUE(t.producer >= 0 && t.producer < kProducers && t.seq >= 0 && t.seq < kPerProducer);
      ASSERT_GT(t.seq, last[static_cast<std::size_t>(t.producer)])
          << "consumer " << c << " saw producer " << t.producer << "'s items out of order";
      last[static_cast<std::size_t>(t.producer)] = t.seq;
      ++count[static_cast<std::size_t>(t.producer)][static_cast<std::size_t>(t.seq)];
    }
  }
  for (int p = 0; p < kProducers; ++p)
    for (int s = 0; s < kPerProducer; ++s)
      ASSERT_EQ(count[static_cast<std::size_t>(p)][static_cast<std::size_t>(s)], 1)
          << "item " << s << " of producer " << p;
  for (auto& c : consumers) expect_clean_exit(*c);
}

TEST_F(QueueTest, ThreadsOfOneProcessShareAHandle) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 5000;
  ipckit::Queue<std::pair<int, int>> q(QueueOptions{.capacity_bytes = 4096});
  std::vector<std::vector<std::pair<int, int>>> seen(kConsumers);
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.emplace_back([&, c] {
      auto& mine = seen[static_cast<std::size_t>(c)];
      try {
        for (;;) {
          if (c % 2 == 0) {
            mine.push_back(q.get());
          } else {
            for (const auto& item : q.get_many(8)) mine.push_back(item);
          }
        }
      } catch (const ipckit::QueueClosed&) {
      }
    });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int s = 0; s < kPerProducer; ++s) q.put({p, s});
    });
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  std::vector<std::vector<int>> count(kProducers, std::vector<int>(kPerProducer, 0));
  for (const auto& mine : seen) {
    std::vector<int> last(kProducers, -1);
    for (const auto& [p, s] : mine) {
      ASSERT_GT(s, last[static_cast<std::size_t>(p)]);
      last[static_cast<std::size_t>(p)] = s;
      ++count[static_cast<std::size_t>(p)][static_cast<std::size_t>(s)];
    }
  }
  for (int p = 0; p < kProducers; ++p)
    for (int s = 0; s < kPerProducer; ++s)
      ASSERT_EQ(count[static_cast<std::size_t>(p)][static_cast<std::size_t>(s)], 1) << "item " << s << " of " << p;
}

// --- Producers and consumers killed ------------------------------------------------------

TEST_F(QueueCrashTest, AConsumerKilledWhileBlockedInGetLeavesTheQueueUsable) {
  ipckit::Queue<std::string> q;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto doomed = spawn([&] {
    child_end.send_bytes("getting");
    q.get();
    child_end.send_bytes("the killed consumer got an item");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "getting");
  wait_until_sleeping(doomed->pid());
  doomed->kill();
  doomed->join();

  auto survivor = spawn([&] {
    child_end.send_bytes("getting");
    child_end.send_bytes(q.get());
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "getting");
  wait_until_sleeping(survivor->pid());
  q.put("for the survivor");
  EXPECT_EQ(text(parent_end.recv_bytes()), "for the survivor");
  expect_clean_exit(*survivor);
  q.put("for the parent");
  EXPECT_EQ(q.get(0ms), "for the parent");
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueCrashTest, AProducerKilledWhileBlockedOnAFullQueueLeavesItUsable) {
  ipckit::Queue<std::string> q(1);
  q.put("first");
  auto [parent_end, child_end] = ipckit::Pipe();
  auto doomed = spawn([&] {
    child_end.send_bytes("putting");
    q.put("from the killed producer");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(doomed->pid());
  auto survivor = spawn([&] {
    child_end.send_bytes("putting");
    q.put("second");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(survivor->pid());
  doomed->kill();
  doomed->join();

  EXPECT_EQ(q.get(), "first");
  EXPECT_EQ(q.get(), "second");  // the survivor's put went in; the killed one's never did
  expect_clean_exit(*survivor);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_TRUE(q.try_put("after"));
  EXPECT_EQ(q.get(), "after");
}

// A message larger than the ring is streamed in chunks while its producer holds the
// producers' lock and its consumer the consumers' lock: a participant killed in the
// middle of one is a state tests can reach on purpose. The producer of a 20000-byte
// message into a 4 KiB ring with no consumer sleeps after the first chunks.

TEST_F(QueueCrashTest, AProducerKilledInTheMiddleOfALargeMessageLeavesNothingOfIt) {
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  auto [parent_end, child_end] = ipckit::Pipe();
  auto doomed = spawn([&] {
    child_end.send_bytes("putting");
    q.put(make_message(0, 20000));
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(doomed->pid());
  doomed->kill();
  doomed->join();
  EXPECT_EQ(q.qsize(), 0u);
  q.put(make_message(1, 100));  // takes over the producers' lock from the dead holder
  EXPECT_EQ(mismatch(q.get(), 1, 100), "");
  EXPECT_FALSE(q.try_get().has_value());
  auto producer = spawn([&] { q.put(make_message(2, 20000)); });
  EXPECT_EQ(mismatch(q.get(), 2, 20000), "");
  expect_clean_exit(*producer);
}

TEST_F(QueueCrashTest, AConsumerWaitingForTheRestOfAMessageLearnsThatItsProducerDied) {
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  auto [parent_end, child_end] = ipckit::Pipe();
  auto doomed = spawn([&] {
    child_end.send_bytes("putting");
    q.put(make_message(0, 20000));
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(doomed->pid());
  ::kill(doomed->pid(), SIGSTOP);  // it stays in the middle of its message
  wait_until_state(doomed->pid(), 'T');
  auto consumer = spawn([&] {
    child_end.send_bytes("getting");
    child_end.send_bytes(q.get());
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "getting");
  wait_until_sleeping(consumer->pid());  // took the first chunks, waits for the next
  doomed->kill();
  doomed->join();
  q.put(make_message(1, 100));
  EXPECT_EQ(mismatch(parent_end.recv_bytes(), 1, 100), "") << "the consumer got part of the dead producer's message";
  expect_clean_exit(*consumer);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueCrashTest, AConsumerKilledInTheMiddleOfAMessageCostsOnlyThatMessage) {
  ipckit::ByteQueue q({.capacity_bytes = 4096});
  auto [parent_end, child_end] = ipckit::Pipe();
  auto producer = spawn([&] {
    child_end.send_bytes("putting");
    q.put(make_message(0, 20000));
    q.put(make_message(1, 100));
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "putting");
  wait_until_sleeping(producer->pid());
  ::kill(producer->pid(), SIGSTOP);
  wait_until_state(producer->pid(), 'T');
  auto doomed = spawn([&] {
    child_end.send_bytes("getting");
    q.get();
    child_end.send_bytes("the consumer finished a message whose producer was stopped");
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "getting");
  wait_until_sleeping(doomed->pid());  // holds the consumers' lock, waits for the next chunk
  doomed->kill();
  doomed->join();
  ::kill(producer->pid(), SIGCONT);
  // The next consumer takes over the consumers' lock and skips the rest of the message.
  EXPECT_EQ(mismatch(q.get(), 1, 100), "");
  expect_clean_exit(*producer);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(parent_end.poll());
}

}  // namespace
