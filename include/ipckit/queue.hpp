// ipckit/queue.hpp — Queue, SimpleQueue and JoinableQueue: many producers and many
// consumers in any processes, as Python's multiprocessing queues, but in shared memory:
// no feeder thread, no pipe, and safe when a process is killed while using one.
//
//   ipckit::Queue<std::string> q;                 // made before start(): children share it
//   ipckit::Process producer([&] { q.put("hello"); });
//   producer.start();
//   std::string s = q.get();
//
// Items. Queue<T> carries values through the codec (codec.hpp: numbers, strings,
// containers, IPCKIT_CODABLE structs; a Python peer reads them with msgpack); ByteQueue
// carries byte messages untouched. A message may have any size up to max_message_size();
// a bigger one throws MessageTooLarge from put, before anything is written.
//
// Capacity. A queue holds at most `maxsize` items (0: no item limit, as Python's
// maxsize <= 0) and at most `capacity_bytes` of messages (each takes its size rounded up
// to 8, plus 8 bytes). put blocks while either limit is reached. Python's Queue never
// blocks a put (its feeder thread buffers without limit in the producer, which then
// cannot exit until a consumer drains it); here, when put returns, the item is in shared
// memory: the producer may exit at once and nothing is lost.
//
// Blocking. put/get block; the forms with a Timeout return false / nullopt when it
// passes; try_put/try_get never block. put_many/get_many move a batch under one
// synchronisation. Waiters spin for a few microseconds, then sleep on a futex; a busy
// producer and consumer make no system call per item. qsize(), empty() and full() are
// snapshots: another process may change the answer at once.
//
// Closing. close() closes the queue for everyone: put then throws QueueClosed; get
// returns what is left, then throws QueueClosed. (Python's close() only says that this
// process will put no more.) Blocked callers wake up.
//
// Sharing. A queue made with a constructor lives in an anonymous shared mapping: children
// started afterwards share it (fork). create(name) / open(name) / open_or_create(name)
// put it in a named SharedMemory segment ("/ipckit-<name>"; see shared_memory.hpp for
// names and lifetime) that unrelated processes open, including processes of another
// language that follow docs/formats/queue.md. Handles are move-only; every method may be
// called from any thread of any process that has the queue.
//
// Crash safety. A producer or consumer killed at any instant — also inside put or get —
// leaves the queue consistent and usable by everyone else: a put that had not returned
// either published its items or not; a get that had not returned either took its item
// (lost with the process) or left it for another consumer. See docs/formats/queue.md.
//
// wait(). A queue is waitable: ready when an item is there (or it is closed). fileno()
// is a datagram socket that turns readable when an item is put while this process is
// watching: call poll() before each wait on it in an event loop (it re-arms the fd and
// says whether an item is already there).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipckit/codec.hpp"
#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"

namespace ipckit {

using Timeout = std::chrono::nanoseconds;

inline constexpr std::size_t kDefaultQueueCapacity = std::size_t{1} << 20;
inline constexpr std::size_t kDefaultQueueMaxMessage = std::size_t{1} << 30;

struct QueueOptions {
  // Most items held at once; 0 for no limit but capacity_bytes.
  std::size_t maxsize = 0;
  // Bytes of the ring, rounded up to a power of two between 4 KiB and 1 GiB.
  std::size_t capacity_bytes = kDefaultQueueCapacity;
  // Largest message put accepts. A message longer than a quarter of the ring travels
  // in chunks, streamed while its consumer takes them.
  std::size_t max_message_size = kDefaultQueueMaxMessage;
};

class ByteQueue {
 public:
  explicit ByteQueue(QueueOptions options = {});
  static ByteQueue create(std::string_view name, QueueOptions options = {});
  static ByteQueue open(std::string_view name);
  static ByteQueue open_or_create(std::string_view name, QueueOptions options = {});
  ByteQueue(ByteQueue&&) noexcept;
  ByteQueue& operator=(ByteQueue&&) noexcept;
  ~ByteQueue();

  void put(std::span<const std::byte> message);
  bool put(std::span<const std::byte> message, Timeout timeout);
  bool try_put(std::span<const std::byte> message) { return put(message, Timeout::zero()); }
  // Puts all, in order, publishing as many at once as there is room for.
  void put_many(std::span<const std::span<const std::byte>> messages);
  // How many went in before the timeout passed.
  std::size_t put_many(std::span<const std::span<const std::byte>> messages, Timeout timeout);

  Bytes get();
  std::optional<Bytes> get(Timeout timeout);
  std::optional<Bytes> try_get() { return get(Timeout::zero()); }
  // Copies the next message into `buffer`; returns its size. A message that does not fit
  // throws BufferTooShort holding it (nothing is lost).
  std::size_t get_into(std::span<std::byte> buffer);
  // Waits (for ever with nullopt) for at least one message, then takes up to max_items
  // of those there. Empty when the timeout passed.
  std::vector<Bytes> get_many(std::size_t max_items, std::optional<Timeout> timeout = std::nullopt);

  // The lowest level: hands up to `max_items` messages, each while the queue still holds
  // it (no copy), to `sink`. Returns how many were taken (0 on timeout). If `sink`
  // throws, the message it was given is taken all the same and the exception propagates.
  // If it returns false for the second or a later message, that message stays for the
  // next get and the batch ends (false for the first is ignored: it is taken).
  using Sink = bool (*)(void* context, std::span<const std::byte> message);
  std::size_t get_to(Sink sink, void* context, std::size_t max_items, std::optional<Timeout> timeout);

  std::size_t qsize() const;
  bool empty() const { return qsize() == 0; }
  bool full() const;
  void close();
  bool closed() const;

  std::size_t maxsize() const noexcept;
  std::size_t capacity_bytes() const noexcept;
  std::size_t max_message_size() const noexcept;
  // The name given to create/open ("" when anonymous).
  const std::string& name() const noexcept;
  // Removes the name now (open handles keep working). ValueError if anonymous.
  void unlink();

  // See "wait()" at the top of this file.
  int fileno() const;
  bool poll(std::optional<Timeout> timeout = Timeout::zero()) const;
  WaitHandle wait_handle() const;

  struct State;  // private to queue.cpp

 protected:
  enum class Kind { Plain, Joinable };
  ByteQueue(Kind kind, int how, std::string_view name, QueueOptions options);
  void task_done();
  bool join(std::optional<Timeout> timeout);

 private:
  State& state() const;
  std::unique_ptr<State> state_;
};

// A ByteQueue whose consumers report each item finished (task_done), so that a producer
// can wait until all it put has been dealt with (join), as Python's JoinableQueue.
// A consumer that dies before task_done() leaves join() waiting: use join(timeout).
class JoinableByteQueue : public ByteQueue {
 public:
  explicit JoinableByteQueue(QueueOptions options = {});
  static JoinableByteQueue create(std::string_view name, QueueOptions options = {});
  static JoinableByteQueue open(std::string_view name);
  static JoinableByteQueue open_or_create(std::string_view name, QueueOptions options = {});

  // ValueError when called more times than items were taken.
  void task_done() { ByteQueue::task_done(); }
  void join() { ByteQueue::join(std::nullopt); }
  bool join(Timeout timeout) { return ByteQueue::join(timeout); }

 private:
  using ByteQueue::ByteQueue;
};

// Queue<T>: values through the codec. get() throws DecodeError when a message is not a
// T; the message is then taken, and in DecodeError::payload().
template <class T, class Bytes_ = ByteQueue>
class BasicQueue {
 public:
  explicit BasicQueue(std::size_t maxsize = 0) : bytes_(QueueOptions{.maxsize = maxsize}) {}
  explicit BasicQueue(QueueOptions options) : bytes_(options) {}
  static BasicQueue create(std::string_view name, QueueOptions options = {}) {
    return BasicQueue(Bytes_::create(name, options));
  }
  static BasicQueue open(std::string_view name) { return BasicQueue(Bytes_::open(name)); }
  static BasicQueue open_or_create(std::string_view name, QueueOptions options = {}) {
    return BasicQueue(Bytes_::open_or_create(name, options));
  }

  void put(const T& item) { bytes_.put(encoded(item)); }
  bool put(const T& item, Timeout timeout) { return bytes_.put(encoded(item), timeout); }
  bool try_put(const T& item) { return bytes_.try_put(encoded(item)); }
  void put_many(std::span<const T> items) { bytes_.put_many(encoded_all(items)); }
  std::size_t put_many(std::span<const T> items, Timeout timeout) {
    return bytes_.put_many(encoded_all(items), timeout);
  }

  T get() { return std::move(*get_one(std::nullopt)); }
  std::optional<T> get(Timeout timeout) { return get_one(timeout); }
  std::optional<T> try_get() { return get_one(Timeout::zero()); }
  // A message that is not a T ends the batch: it throws DecodeError from the next get.
  std::vector<T> get_many(std::size_t max_items, std::optional<Timeout> timeout = std::nullopt) {
    std::vector<T> out;
    bytes_.get_to(&append<std::vector<T>>, &out, max_items, timeout);
    return out;
  }

  std::size_t qsize() const { return bytes_.qsize(); }
  bool empty() const { return bytes_.empty(); }
  bool full() const { return bytes_.full(); }
  void close() { bytes_.close(); }
  bool closed() const { return bytes_.closed(); }
  std::size_t maxsize() const noexcept { return bytes_.maxsize(); }
  const std::string& name() const noexcept { return bytes_.name(); }
  void unlink() { bytes_.unlink(); }
  int fileno() const { return bytes_.fileno(); }
  bool poll(std::optional<Timeout> timeout = Timeout::zero()) const { return bytes_.poll(timeout); }
  WaitHandle wait_handle() const { return bytes_.wait_handle(); }

  // The byte queue underneath (a Python peer sees the same messages).
  Bytes_& bytes() noexcept { return bytes_; }

 protected:
  explicit BasicQueue(Bytes_ bytes) : bytes_(std::move(bytes)) {}
  Bytes_ bytes_;

 private:
  static std::span<const std::byte> encoded(const T& item) {
    thread_local Bytes buffer;
    buffer.clear();
    encode_into(buffer, item);
    if (buffer.capacity() > (std::size_t{1} << 20) && buffer.size() < (std::size_t{1} << 16))
      Bytes(buffer).swap(buffer);  // don't pin a big buffer after one big item
    return buffer;
  }
  static std::vector<std::span<const std::byte>> encoded_all(std::span<const T> items) {
    thread_local Bytes buffer;
    buffer.clear();
    std::vector<std::size_t> ends;
    ends.reserve(items.size());
    for (const T& item : items) {
      encode_into(buffer, item);
      ends.push_back(buffer.size());
    }
    std::vector<std::span<const std::byte>> spans;
    spans.reserve(items.size());
    std::size_t begin = 0;
    for (std::size_t end : ends) {
      spans.emplace_back(buffer.data() + begin, end - begin);
      begin = end;
    }
    return spans;
  }
  template <class Out>
  static bool append(void* context, std::span<const std::byte> message) {
    auto& out = *static_cast<Out*>(context);
    try {
      if constexpr (requires { out.emplace_back(decode<T>(message)); })
        out.emplace_back(decode<T>(message));
      else
        out.emplace(decode<T>(message));
    } catch (DecodeError& e) {
      if constexpr (requires { out.empty(); }) {
        if (!out.empty()) return false;  // keep what was taken; this one throws next time
      }
      e.set_payload(Bytes(message.begin(), message.end()));
      throw;
    }
    return true;
  }
  std::optional<T> get_one(std::optional<Timeout> timeout) {
    std::optional<T> out;
    bytes_.get_to(&append<std::optional<T>>, &out, 1, timeout);
    return out;
  }
};

template <class T>
using Queue = BasicQueue<T, ByteQueue>;

// As Python's SimpleQueue: a Queue with no item limit.
template <class T>
class SimpleQueue : public BasicQueue<T, ByteQueue> {
 public:
  SimpleQueue() : BasicQueue<T, ByteQueue>(QueueOptions{}) {}
  explicit SimpleQueue(std::size_t capacity_bytes)
      : BasicQueue<T, ByteQueue>(QueueOptions{.capacity_bytes = capacity_bytes}) {}
};

template <class T>
class JoinableQueue : public BasicQueue<T, JoinableByteQueue> {
  using Base = BasicQueue<T, JoinableByteQueue>;

 public:
  explicit JoinableQueue(std::size_t maxsize = 0) : Base(maxsize) {}
  explicit JoinableQueue(QueueOptions options) : Base(options) {}
  static JoinableQueue create(std::string_view name, QueueOptions options = {}) {
    return JoinableQueue(Base::create(name, options));
  }
  static JoinableQueue open(std::string_view name) { return JoinableQueue(Base::open(name)); }
  static JoinableQueue open_or_create(std::string_view name, QueueOptions options = {}) {
    return JoinableQueue(Base::open_or_create(name, options));
  }

  void task_done() { this->bytes_.task_done(); }
  void join() { this->bytes_.join(); }
  bool join(Timeout timeout) { return this->bytes_.join(timeout); }

 private:
  explicit JoinableQueue(Base base) : Base(std::move(base)) {}
};

}  // namespace ipckit
