// ipckit/sync.hpp — locks and friends shared between processes, as Python's
// multiprocessing.Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier,
// but safe when a process dies holding or waiting on one.
//
//   ipckit::Lock lock;                        // made before start(): children share it
//   ipckit::Process worker([&] {
//     std::lock_guard guard(lock);            // Lock is Lockable and TimedLockable
//     counter.raw() += 1;
//   });
//
// Sharing. An object made with its default constructor lives in an anonymous shared
// mapping: children started afterwards share it (fork), nobody else can reach it. The
// static create(name) / open(name) / open_or_create(name) put it in a named SharedMemory
// segment ("/ipckit-<name>", see shared_memory.hpp for names and lifetime) that
// unrelated processes open by name, including processes of another language that follow
// docs/formats/sync.md. Handles are move-only; every method may be called from any
// thread of any process that has the object.
//
// Blocking. Every blocking call has a timed form taking a std::chrono duration; a
// timeout is an outcome (false), never an exception. Waiters spin briefly, then sleep on
// a futex (shared, never FUTEX_PRIVATE_FLAG).
//
// Memory ordering. Releasing a lock (or setting an event, releasing a semaphore,
// notifying a condition, passing a barrier) happens-before the acquire (the wait) that
// it lets through, in whatever process that runs: what was written before is visible
// after.
//
// Crash safety, object by object:
//   - Lock, RLock: owned by a thread. When the holder dies (SIGKILL, a crash) the next
//     acquirer gets the kernel's word of it (robust futexes) and the lock turns
//     "inconsistent": every acquire then throws OwnerDied — without holding the lock —
//     until someone calls recover(repair), which acquires it, runs `repair` (put the
//     guarded data right) and clears the mark. Never a hang, never a silent repair.
//   - Semaphore, BoundedSemaphore: no owner, as in Python: a permit taken by a process
//     that dies is not given back. (An owner-tracking semaphore is future work.)
//   - Event: no owner; a dead waiter is harmless, a dead setter simply never sets.
//   - Condition: waiters sleep on a sequence number, so a waiter or notifier that dies
//     strands nobody; a dead holder of the condition's lock makes the waiters' re-acquire
//     throw OwnerDied. A notify that woke a waiter killed before it ran is lost, as a
//     notify to a thread that then fails is: wait in a loop (wait_for) with a timeout.
//   - Barrier: a process that has waited on a barrier is one of its parties until it ends
//     in order (its Process target returns, exit(), or it destroys its handle); if it dies
//     otherwise (SIGKILL, a crash, an exception out of its target) while others wait, they
//     find out within 50 ms and get BrokenBarrierError.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ipckit/error.hpp"

namespace ipckit {

namespace detail {
class SharedRegion;  // the mapping an object lives in (anonymous or a named segment)
struct LockLayout;
class ValueCore;
}  // namespace detail

using Timeout = std::chrono::nanoseconds;

// ---------------------------------------------------------------------------------------
// Lock: a mutex owned by the thread that acquired it (unlike Python's, only the holder
// may release it: ValueError otherwise). Not recursive: acquiring it twice from the same
// thread deadlocks, unless timed.
class Lock {
 public:
  Lock();
  static Lock create(std::string_view name);
  static Lock open(std::string_view name);
  static Lock open_or_create(std::string_view name);
  Lock(Lock&&) noexcept;
  Lock& operator=(Lock&&) noexcept;
  ~Lock();

  // Blocks until acquired (or returns false at once when !block). Throws OwnerDied (not
  // holding the lock) while the lock is inconsistent.
  bool acquire(bool block = true);
  // acquire(100) would mean "block": a number of what? Say acquire(100ms).
  template <std::integral N>
    requires(!std::same_as<N, bool>)
  bool acquire(N) = delete;
  // Waits at most `timeout`; false if it passed.
  bool acquire(Timeout timeout);
  // Throws ValueError if the calling thread does not hold it.
  void release();
  // True when some thread holds it (a snapshot).
  bool locked() const;

  // Acquires even an inconsistent lock, runs `repair` holding it, clears the mark if
  // `repair` returns, and releases. Returns true if there was something to repair. If
  // `repair` throws, the lock stays inconsistent (and is released) and the exception
  // propagates.
  bool recover(const std::function<void()>& repair);
  // Whether a holder died and nobody has recovered since.
  bool inconsistent() const;

  // Lockable / TimedLockable, for std::lock_guard, std::unique_lock, std::scoped_lock.
  void lock() { acquire(true); }
  bool try_lock() { return acquire(false); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return acquire(std::chrono::ceil<Timeout>(d));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return try_lock_for(t - Clock::now());
  }
  void unlock() { release(); }

  // The name given to create/open ("" when anonymous).
  const std::string& name() const noexcept;
  // Removes the name of a named object now (handles already open keep working; see
  // shared_memory.hpp for what happens to names nobody removes). ValueError if anonymous.
  void unlink();

 protected:
  Lock(std::shared_ptr<detail::SharedRegion> region, detail::LockLayout* layout, bool recursive);
  std::shared_ptr<detail::SharedRegion> region_;
  detail::LockLayout* layout_ = nullptr;
  bool recursive_ = false;

  friend class Condition;
  friend class detail::ValueCore;
};

// RLock: a Lock its holder may acquire again; each acquire needs a release.
class RLock : public Lock {
 public:
  RLock();
  static RLock create(std::string_view name);
  static RLock open(std::string_view name);
  static RLock open_or_create(std::string_view name);

 private:
  using Lock::Lock;
};

// ---------------------------------------------------------------------------------------
// Semaphore: a counter of permits. acquire takes one (waiting while there is none),
// release gives `n` back.
class Semaphore {
 public:
  explicit Semaphore(unsigned value = 1);
  static Semaphore create(std::string_view name, unsigned value = 1);
  static Semaphore open(std::string_view name);
  Semaphore(Semaphore&&) noexcept;
  Semaphore& operator=(Semaphore&&) noexcept;
  ~Semaphore();

  bool acquire(bool block = true);
  bool acquire(Timeout timeout);
  template <std::integral N>
    requires(!std::same_as<N, bool>)
  bool acquire(N) = delete;  // a bare number: say acquire(100ms)
  // BoundedSemaphore: throws ValueError when it would exceed the initial value; any
  // semaphore when it would pass 2^32 - 1.
  void release(unsigned n = 1);
  // Permits available now (a snapshot; Python's get_value()).
  unsigned get_value() const;

  // Lockable, for std::lock_guard / std::unique_lock / std::counting_semaphore habits.
  void lock() { acquire(true); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }

  const std::string& name() const noexcept;
  void unlink();

  struct Layout;  // docs/formats/sync.md

 protected:
  Semaphore(std::shared_ptr<detail::SharedRegion> region, Layout* layout);
  std::shared_ptr<detail::SharedRegion> region_;
  Layout* layout_ = nullptr;
};

// BoundedSemaphore: a Semaphore that refuses a release beyond its initial value.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(unsigned value = 1);
  static BoundedSemaphore create(std::string_view name, unsigned value = 1);
  static BoundedSemaphore open(std::string_view name);

 private:
  using Semaphore::Semaphore;
};

// ---------------------------------------------------------------------------------------
// Event: a flag that waiters wait to see set.
class Event {
 public:
  Event();
  static Event create(std::string_view name);
  static Event open(std::string_view name);
  Event(Event&&) noexcept;
  Event& operator=(Event&&) noexcept;
  ~Event();

  void set();
  void clear();
  bool is_set() const;
  // Waits until set; returns is_set() (false when the timeout passed first).
  bool wait();
  bool wait(Timeout timeout);

  const std::string& name() const noexcept;
  void unlink();

  struct Layout;  // docs/formats/sync.md

 private:
  Event(std::shared_ptr<detail::SharedRegion> region, Layout* layout);
  std::shared_ptr<detail::SharedRegion> region_;
  Layout* layout_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Condition: waiting for a predicate over shared data that a lock guards. The lock is an
// RLock unless one is given; it must outlive the Condition (a given lock is borrowed).
// wait, wait_for, notify and notify_all must be called holding the lock (ValueError
// otherwise, as Python's RuntimeError).
class Condition {
 public:
  Condition();
  explicit Condition(Lock& lock);
  // The named form keeps its own RLock in the same segment.
  static Condition create(std::string_view name);
  static Condition open(std::string_view name);
  Condition(Condition&&) noexcept;
  Condition& operator=(Condition&&) noexcept;
  ~Condition();

  // The lock's acquire and release.
  bool acquire(bool block = true);
  bool acquire(Timeout timeout);
  template <std::integral N>
    requires(!std::same_as<N, bool>)
  bool acquire(N) = delete;  // a bare number: say acquire(100ms)
  void release();
  void lock() { acquire(true); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }

  // Releases the lock (all levels of an RLock), sleeps until notified or the timeout,
  // re-acquires it. False on timeout. May wake spuriously: use wait_for.
  bool wait();
  bool wait(Timeout timeout);
  // Waits until pred() is true (checked holding the lock); returns its last result.
  bool wait_for(const std::function<bool()>& pred);
  bool wait_for(const std::function<bool()>& pred, Timeout timeout);
  // Wakes up to n waiters / all of them.
  void notify(unsigned n = 1);
  void notify_all();

  Lock& get_lock() noexcept { return *lock_; }
  const std::string& name() const noexcept;
  void unlink();

  struct Layout;  // docs/formats/sync.md

 private:
  explicit Condition(std::shared_ptr<detail::SharedRegion> named);
  bool wait_until(std::optional<Timeout> timeout);
  std::shared_ptr<detail::SharedRegion> region_;
  Layout* layout_ = nullptr;
  std::unique_ptr<Lock> own_lock_;  // when no lock was given, or the named form's
  Lock* lock_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Barrier: `parties` waiters meet; the last to arrive runs `action` (in its own process),
// then all go on. Python's threading.Barrier, across processes. A timeout (given here as
// the default, or to wait), abort(), reset() while others wait, a throwing action, or a
// party that died (see "Crash safety") breaks it: waiters get BrokenBarrierError until
// reset().
class Barrier {
 public:
  explicit Barrier(unsigned parties, std::function<void()> action = nullptr,
                   std::optional<Timeout> timeout = std::nullopt);
  static Barrier create(std::string_view name, unsigned parties, std::function<void()> action = nullptr,
                        std::optional<Timeout> timeout = std::nullopt);
  // `action` and `timeout` are per process: an opener gives its own.
  static Barrier open(std::string_view name, std::function<void()> action = nullptr,
                      std::optional<Timeout> timeout = std::nullopt);
  Barrier(Barrier&&) noexcept;
  Barrier& operator=(Barrier&&) noexcept;
  ~Barrier();

  // Returns this waiter's arrival index, 0 .. parties-1. Throws BrokenBarrierError.
  unsigned wait();
  unsigned wait(Timeout timeout);
  // Back to empty; current waiters get BrokenBarrierError.
  void reset();
  // Breaks it: current and future waiters get BrokenBarrierError until reset().
  void abort();

  unsigned parties() const;
  unsigned n_waiting() const;
  bool broken() const;
  const std::string& name() const noexcept;
  void unlink();

  struct Layout;  // docs/formats/sync.md

 private:
  Barrier(std::shared_ptr<detail::SharedRegion> region, Layout* layout, std::function<void()> action,
          std::optional<Timeout> timeout);
  unsigned wait_until(std::optional<Timeout> timeout);
  std::shared_ptr<detail::SharedRegion> region_;
  Layout* layout_ = nullptr;
  std::function<void()> action_;
  std::optional<Timeout> timeout_;
};

}  // namespace ipckit
