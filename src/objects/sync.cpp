// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier in shared memory.
//
// Layouts: objects/sync_layout.hpp (docs/formats/sync.md). Semaphore and Event waits spin
// for a few microseconds (sys::spin_until), then sleep on a futex word of the object;
// locks leave waiting to glibc (see take_mutex).
//
// Lost wake-ups. Sleepers announce themselves in a `waiters` count before they re-check
// the word and sleep; wakers change the word, then read `waiters` and call futex_wake
// only if someone may sleep. Both sides use sequentially consistent operations, so one
// of them always sees the other (Dekker): the waker sees the count, or the sleeper sees
// the new word (and futex_wait refuses to sleep on a stale value anyway). A sleeper
// killed while asleep leaves the count too high: wakers then make one futex_wake call
// too many, which costs a system call and nothing else.
#include "ipckit/sync.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>
#include <new>

#include "objects/shared_region.hpp"
#include "objects/sync_layout.hpp"
#include "sys/deadline.hpp"
#include "sys/futex.hpp"
#include "sys/proc.hpp"
#include "sys/robust_mutex.hpp"
#include "sys/spin.hpp"

namespace ipckit {

using detail::LockLayout;
using detail::ObjectKind;
using detail::SharedRegion;
using detail::How;
using detail::make_region;
using enum detail::How;

namespace {

template <class Layout>
Layout* layout_in(const std::shared_ptr<SharedRegion>& region) {
  return std::launder(reinterpret_cast<Layout*>(region->object()));
}

// Waits on `word` while it holds `value`, counting itself in `waiters` (see the top of
// this file), until the deadline. Returns false when the deadline passed.
bool sleep_while(std::atomic<std::uint32_t>& word, std::uint32_t value, std::atomic<std::uint32_t>& waiters,
                 const sys::Deadline& deadline) {
  waiters.fetch_add(1, std::memory_order_seq_cst);
  sys::FutexWait r = sys::FutexWait::Changed;
  if (word.load(std::memory_order_seq_cst) == value) r = sys::futex_wait(word, value, deadline);
  waiters.fetch_sub(1, std::memory_order_relaxed);
  return r != sys::FutexWait::TimedOut;
}

void wake(std::atomic<std::uint32_t>& word, const std::atomic<std::uint32_t>& waiters, int count) {
  if (waiters.load(std::memory_order_seq_cst) != 0) sys::futex_wake(word, count);
}

// --- Lock ------------------------------------------------------------------------------

void init_lock(std::byte* object, bool recursive) {
  auto* l = new (object) LockLayout{};
  sys::robust_mutex_init(l->mutex, recursive);
}

std::shared_ptr<SharedRegion> make_lock_region(std::string_view name, bool recursive, How how) {
  return make_region(how, name, recursive ? ObjectKind::RLock : ObjectKind::Lock, sizeof(LockLayout),
                     [recursive](std::byte* p) { init_lock(p, recursive); });
}

[[noreturn]] void throw_owner_died(const LockLayout& l, const SharedRegion& region) {
  const int owner = l.dead_owner.load(std::memory_order_relaxed);
  throw OwnerDied(region.describe() + ": its holder (thread " + std::to_string(owner) +
                      ") died holding it; what it guards may be half-updated. Call recover(repair) "
                      "to put that right; until then every acquire fails",
                  owner);
}

// Takes the mutex (sleeping until the deadline). Marks the lock inconsistent when the
// previous holder died. False on timeout, or when busy and !block.
bool take_mutex(LockLayout& l, const sys::Deadline& deadline, bool block) {
  // No spinning of our own: glibc's robust lock sleeps at once when the mutex is taken,
  // so the holder keeps the cache line and runs on; with short critical sections shared
  // by two processes that is several times the throughput of spinning hand-offs.
  const sys::MutexLock r =
      block ? sys::robust_mutex_lock(l.mutex, deadline) : sys::robust_mutex_try_lock(l.mutex);
  if (r == sys::MutexLock::TimedOut) return false;
  if (r == sys::MutexLock::OwnerDied) {
    // The kernel handed us the mutex of a dead holder. Keep the mutex usable and record
    // the death in our own flag, which recover() clears (see sync.hpp, "Crash safety").
    l.dead_owner.store(l.holder.load(std::memory_order_relaxed), std::memory_order_relaxed);
    l.inconsistent.store(1, std::memory_order_release);
    sys::robust_mutex_consistent(l.mutex);
  } else if (r == sys::MutexLock::NotRecoverable) {
    throw Error("shared mutex is not recoverable (released after its holder died without being repaired)");
  }
  l.holder.store(sys::robust_mutex_owner(l.mutex), std::memory_order_relaxed);
  return true;
}

}  // namespace

Lock::Lock() : Lock(make_lock_region({}, false, kAnonymous), nullptr, false) {}
Lock Lock::create(std::string_view name) { return Lock(make_lock_region(name, false, kCreate), nullptr, false); }
Lock Lock::open(std::string_view name) { return Lock(make_lock_region(name, false, kOpen), nullptr, false); }
Lock Lock::open_or_create(std::string_view name) {
  return Lock(make_lock_region(name, false, kOpenOrCreate), nullptr, false);
}

Lock::Lock(std::shared_ptr<SharedRegion> region, LockLayout* layout, bool recursive)
    : region_(std::move(region)),
      layout_(layout != nullptr ? layout : layout_in<LockLayout>(region_)),
      recursive_(recursive) {}

Lock::Lock(Lock&&) noexcept = default;
Lock& Lock::operator=(Lock&&) noexcept = default;
Lock::~Lock() = default;

bool Lock::acquire(bool block) {
  if (!take_mutex(*layout_, sys::Deadline::never(), block)) return false;
  if (layout_->inconsistent.load(std::memory_order_acquire) != 0) {
    sys::robust_mutex_unlock(layout_->mutex);
    throw_owner_died(*layout_, *region_);
  }
  return true;
}

bool Lock::acquire(Timeout timeout) {
  if (!take_mutex(*layout_, sys::Deadline::after(timeout), true)) return false;
  if (layout_->inconsistent.load(std::memory_order_acquire) != 0) {
    sys::robust_mutex_unlock(layout_->mutex);
    throw_owner_died(*layout_, *region_);
  }
  return true;
}

void Lock::release() {
  if (!sys::robust_mutex_unlock(layout_->mutex))
    throw ValueError("release of " + region_->describe() + " by a thread that does not hold it");
}

bool Lock::locked() const { return !sys::robust_mutex_looks_free(layout_->mutex); }

bool Lock::inconsistent() const { return layout_->inconsistent.load(std::memory_order_acquire) != 0; }

bool Lock::recover(const std::function<void()>& repair) {
  take_mutex(*layout_, sys::Deadline::never(), true);
  if (layout_->inconsistent.load(std::memory_order_acquire) == 0) {
    sys::robust_mutex_unlock(layout_->mutex);
    return false;
  }
  try {
    if (repair) repair();
  } catch (...) {
    sys::robust_mutex_unlock(layout_->mutex);
    throw;
  }
  layout_->dead_owner.store(0, std::memory_order_relaxed);
  layout_->inconsistent.store(0, std::memory_order_release);
  sys::robust_mutex_unlock(layout_->mutex);
  return true;
}

const std::string& Lock::name() const noexcept { return region_->name(); }
void Lock::unlink() { region_->unlink(); }

RLock::RLock() : Lock(make_lock_region({}, true, kAnonymous), nullptr, true) {}
RLock RLock::create(std::string_view name) { return RLock(make_lock_region(name, true, kCreate), nullptr, true); }
RLock RLock::open(std::string_view name) { return RLock(make_lock_region(name, true, kOpen), nullptr, true); }
RLock RLock::open_or_create(std::string_view name) {
  return RLock(make_lock_region(name, true, kOpenOrCreate), nullptr, true);
}

// --- Semaphore ---------------------------------------------------------------------------

namespace {

std::shared_ptr<SharedRegion> make_semaphore_region(std::string_view name, unsigned value, bool bounded, How how) {
  const auto kind = bounded ? ObjectKind::BoundedSemaphore : ObjectKind::Semaphore;
  const auto init = [value, bounded](std::byte* p) {
    auto* s = new (p) Semaphore::Layout{};
    s->value.store(value, std::memory_order_relaxed);
    s->initial = value;
    s->bounded = bounded ? 1 : 0;
  };
  return make_region(how, name, kind, sizeof(Semaphore::Layout), init);
}

bool try_take_permit(std::atomic<std::uint32_t>& value) {
  std::uint32_t v = value.load(std::memory_order_relaxed);
  while (v > 0)
    if (value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  return false;
}

bool take_permit(Semaphore::Layout& s, const sys::Deadline& deadline, bool block) {
  if (try_take_permit(s.value)) return true;
  if (!block) return false;
  if (sys::spin_until([&] { return try_take_permit(s.value); })) return true;
  for (;;) {
    const bool in_time = sleep_while(s.value, 0, s.waiters, deadline);
    if (try_take_permit(s.value)) return true;
    if (!in_time) return false;
  }
}

}  // namespace

Semaphore::Semaphore(unsigned value) : Semaphore(make_semaphore_region({}, value, false, kAnonymous), nullptr) {}
Semaphore Semaphore::create(std::string_view name, unsigned value) {
  return Semaphore(make_semaphore_region(name, value, false, kCreate), nullptr);
}
Semaphore Semaphore::open(std::string_view name) { return Semaphore(make_semaphore_region(name, 0, false, kOpen), nullptr); }

Semaphore::Semaphore(std::shared_ptr<SharedRegion> region, Layout* layout)
    : region_(std::move(region)), layout_(layout != nullptr ? layout : layout_in<Layout>(region_)) {}
Semaphore::Semaphore(Semaphore&&) noexcept = default;
Semaphore& Semaphore::operator=(Semaphore&&) noexcept = default;
Semaphore::~Semaphore() = default;

bool Semaphore::acquire(bool block) { return take_permit(*layout_, sys::Deadline::never(), block); }
bool Semaphore::acquire(Timeout timeout) { return take_permit(*layout_, sys::Deadline::after(timeout), true); }

void Semaphore::release(unsigned n) {
  if (n == 0) return;
  Layout& s = *layout_;
  const std::uint64_t limit = s.bounded != 0 ? s.initial : std::numeric_limits<std::uint32_t>::max();
  std::uint32_t v = s.value.load(std::memory_order_relaxed);
  do {
    if (static_cast<std::uint64_t>(v) + n > limit)
      throw ValueError(region_->describe() + " released too many times (value " + std::to_string(v) + " + " +
                       std::to_string(n) + " > " + (s.bounded != 0 ? "initial " : "maximum ") +
                       std::to_string(limit) + ")");
  } while (!s.value.compare_exchange_weak(v, v + n, std::memory_order_seq_cst, std::memory_order_relaxed));
  wake(s.value, s.waiters, static_cast<int>(std::min<unsigned>(n, sys::kWakeAll)));
}

unsigned Semaphore::get_value() const { return layout_->value.load(std::memory_order_acquire); }
const std::string& Semaphore::name() const noexcept { return region_->name(); }
void Semaphore::unlink() { region_->unlink(); }

BoundedSemaphore::BoundedSemaphore(unsigned value)
    : Semaphore(make_semaphore_region({}, value, true, kAnonymous), nullptr) {}
BoundedSemaphore BoundedSemaphore::create(std::string_view name, unsigned value) {
  return BoundedSemaphore(make_semaphore_region(name, value, true, kCreate), nullptr);
}
BoundedSemaphore BoundedSemaphore::open(std::string_view name) {
  return BoundedSemaphore(make_semaphore_region(name, 0, true, kOpen), nullptr);
}

// --- Event -------------------------------------------------------------------------------

namespace {

std::shared_ptr<SharedRegion> make_event_region(std::string_view name, How how) {
  const auto init = [](std::byte* p) { new (p) Event::Layout{}; };
  return make_region(how, name, ObjectKind::Event, sizeof(Event::Layout), init);
}

bool wait_for_set(Event::Layout& e, const sys::Deadline& deadline) {
  const auto is_set = [&] { return e.state.load(std::memory_order_acquire) != 0; };
  if (sys::spin_until(is_set)) return true;
  while (!is_set())
    if (!sleep_while(e.state, 0, e.waiters, deadline)) return is_set();
  return true;
}

}  // namespace

Event::Event() : Event(make_event_region({}, kAnonymous), nullptr) {}
Event Event::create(std::string_view name) { return Event(make_event_region(name, kCreate), nullptr); }
Event Event::open(std::string_view name) { return Event(make_event_region(name, kOpen), nullptr); }
Event::Event(std::shared_ptr<SharedRegion> region, Layout* layout)
    : region_(std::move(region)), layout_(layout != nullptr ? layout : layout_in<Layout>(region_)) {}
Event::Event(Event&&) noexcept = default;
Event& Event::operator=(Event&&) noexcept = default;
Event::~Event() = default;

void Event::set() {
  layout_->state.store(1, std::memory_order_seq_cst);
  wake(layout_->state, layout_->waiters, sys::kWakeAll);
}
void Event::clear() { layout_->state.store(0, std::memory_order_seq_cst); }
bool Event::is_set() const { return layout_->state.load(std::memory_order_acquire) != 0; }
bool Event::wait() { return wait_for_set(*layout_, sys::Deadline::never()); }
bool Event::wait(Timeout timeout) { return wait_for_set(*layout_, sys::Deadline::after(timeout)); }
const std::string& Event::name() const noexcept { return region_->name(); }
void Event::unlink() { region_->unlink(); }

// --- Condition ---------------------------------------------------------------------------

namespace {

// A waiter re-checks the sequence at least this often, so that a notifier that died
// between bumping it and waking the sleepers strands nobody for longer.
constexpr auto kConditionSlice = std::chrono::seconds(1);

std::shared_ptr<SharedRegion> make_condition_region(std::string_view name, How how, bool own_lock) {
  const auto init = [own_lock](std::byte* p) {
    auto* c = new (p) Condition::Layout{};
    c->has_lock = own_lock ? 1 : 0;
    if (own_lock) init_lock(reinterpret_cast<std::byte*>(&c->lock), true);
  };
  return make_region(how, name, ObjectKind::Condition, sizeof(Condition::Layout), init);
}

}  // namespace

Condition::Condition() : region_(make_condition_region({}, kAnonymous, false)) {
  layout_ = layout_in<Layout>(region_);
  own_lock_ = std::make_unique<RLock>();
  lock_ = own_lock_.get();
}

Condition::Condition(Lock& lock) : region_(make_condition_region({}, kAnonymous, false)), lock_(&lock) {
  layout_ = layout_in<Layout>(region_);
}

Condition::Condition(std::shared_ptr<SharedRegion> named) : region_(std::move(named)) {
  layout_ = layout_in<Layout>(region_);
  if (layout_->has_lock == 0) throw ValueError(region_->describe() + " has no lock of its own");
  own_lock_.reset(new Lock(region_, &layout_->lock, true));
  lock_ = own_lock_.get();
}

Condition Condition::create(std::string_view name) { return Condition(make_condition_region(name, kCreate, true)); }
Condition Condition::open(std::string_view name) { return Condition(make_condition_region(name, kOpen, true)); }
Condition::Condition(Condition&&) noexcept = default;
Condition& Condition::operator=(Condition&&) noexcept = default;
Condition::~Condition() = default;

bool Condition::acquire(bool block) { return lock_->acquire(block); }
bool Condition::acquire(Timeout timeout) { return lock_->acquire(timeout); }
void Condition::release() { lock_->release(); }

bool Condition::wait() { return wait_until(std::nullopt); }
bool Condition::wait(Timeout timeout) { return wait_until(timeout); }

bool Condition::wait_until(std::optional<Timeout> timeout) {
  LockLayout& l = *lock_->layout_;
  if (!sys::robust_mutex_held_by_caller(l.mutex))
    throw ValueError("wait on " + region_->describe() + " without holding its lock");
  const sys::Deadline deadline = sys::Deadline::within(timeout);
  Layout& c = *layout_;
  const std::uint32_t seen = c.sequence.load(std::memory_order_seq_cst);
  // Release every level of an RLock (Python's _release_save), to restore them after.
  const unsigned depth = lock_->recursive_ ? std::max(1U, sys::robust_mutex_depth(l.mutex)) : 1;
  c.waiters.fetch_add(1, std::memory_order_seq_cst);
  for (unsigned i = 0; i < depth; ++i) sys::robust_mutex_unlock(l.mutex);
  bool notified = false;
  for (;;) {
    if (c.sequence.load(std::memory_order_seq_cst) != seen) {
      notified = true;
      break;
    }
    const auto slice = sys::Deadline::after(kConditionSlice);
    const auto r = sys::futex_wait(c.sequence, seen, deadline.is_never() || slice.time_point() < deadline.time_point()
                                                         ? slice
                                                         : deadline);
    if (r == sys::FutexWait::TimedOut && deadline.expired()) {
      notified = c.sequence.load(std::memory_order_seq_cst) != seen;
      break;
    }
  }
  c.waiters.fetch_sub(1, std::memory_order_relaxed);
  // Re-acquire as the caller had it. OwnerDied propagates with the lock not held.
  lock_->acquire(true);
  for (unsigned i = 1; i < depth; ++i) lock_->acquire(true);
  return notified;
}

bool Condition::wait_for(const std::function<bool()>& pred) {
  while (!pred()) wait_until(std::nullopt);
  return true;
}

bool Condition::wait_for(const std::function<bool()>& pred, Timeout timeout) {
  const sys::Deadline deadline = sys::Deadline::after(timeout);
  bool result = pred();
  while (!result) {
    if (deadline.expired()) return false;
    wait_until(deadline.remaining());
    result = pred();
  }
  return result;
}

void Condition::notify(unsigned n) {
  if (!sys::robust_mutex_held_by_caller(lock_->layout_->mutex))
    throw ValueError("notify on " + region_->describe() + " without holding its lock");
  if (n == 0) return;
  layout_->sequence.fetch_add(1, std::memory_order_seq_cst);
  wake(layout_->sequence, layout_->waiters, static_cast<int>(std::min<unsigned>(n, sys::kWakeAll)));
}

void Condition::notify_all() {
  if (!sys::robust_mutex_held_by_caller(lock_->layout_->mutex))
    throw ValueError("notify_all on " + region_->describe() + " without holding its lock");
  layout_->sequence.fetch_add(1, std::memory_order_seq_cst);
  wake(layout_->sequence, layout_->waiters, sys::kWakeAll);
}

const std::string& Condition::name() const noexcept { return region_->name(); }
void Condition::unlink() { region_->unlink(); }

// --- Barrier -----------------------------------------------------------------------------

namespace {

// How often a waiter looks whether a party has died.
constexpr auto kBarrierSlice = std::chrono::milliseconds(50);

std::shared_ptr<SharedRegion> make_barrier_region(std::string_view name, unsigned parties, How how) {
  if (how != kOpen && parties == 0) throw ValueError("a Barrier needs at least one party");
  const auto init = [parties](std::byte* p) {
    auto* b = new (p) Barrier::Layout{};
    sys::robust_mutex_init(b->mutex, false);
    b->parties = parties;
    b->last_break = ~0U;
  };
  return make_region(how, name, ObjectKind::Barrier, sizeof(Barrier::Layout), init);
}

// The barriers this process has joined as a party, so that an orderly end can leave them.
// Made per process: a forked child starts with its own (the parent's copy may be locked).
struct JoinedBarriers {
  explicit JoinedBarriers(int owner) : pid(owner) {}
  const int pid;
  std::mutex mutex;
  std::vector<Barrier::Layout*> layouts;  // guarded by mutex
};
std::atomic<JoinedBarriers*> joined_slot{nullptr};

JoinedBarriers& joined_barriers() {
  const int pid = sys::current_pid();
  JoinedBarriers* current = joined_slot.load(std::memory_order_acquire);
  if (current != nullptr && current->pid == pid) return *current;
  auto* fresh = new JoinedBarriers(pid);
  if (joined_slot.compare_exchange_strong(current, fresh, std::memory_order_acq_rel)) {
    static const bool at_exit = (std::atexit([] { detail::leave_barriers(); }), true);
    static_cast<void>(at_exit);
    return *fresh;
  }
  delete fresh;
  return *current;
}

// Holds the barrier's mutex for a scope. A holder that died leaves the barrier in an
// unknown state: it is broken (its waiters are told) and the mutex made usable again.
class BarrierGuard {
 public:
  explicit BarrierGuard(Barrier::Layout& b) : b_(b) {
    const auto r = sys::robust_mutex_lock(b.mutex, sys::Deadline::never());
    if (r == sys::MutexLock::OwnerDied) {
      sys::robust_mutex_consistent(b.mutex);
      break_barrier();
    }
  }
  ~BarrierGuard() { sys::robust_mutex_unlock(b_.mutex); }
  BarrierGuard(const BarrierGuard&) = delete;
  BarrierGuard& operator=(const BarrierGuard&) = delete;

  // Ends the current round as broken: its waiters throw, the barrier stays broken.
  void break_barrier() {
    b_.broken = 1;
    b_.arrived = 0;
    b_.last_break = b_.epoch.load(std::memory_order_relaxed);
    b_.epoch.fetch_add(1, std::memory_order_seq_cst);
    sys::futex_wake(b_.epoch, sys::kWakeAll);
  }

  // Records this process as a party (once). True when it was not one yet.
  bool register_party() {
    const int pid = sys::current_pid();
    for (std::uint32_t i = 0; i < b_.known; ++i)
      if (b_.known_parties[i].pid == pid) return false;
    const std::uint64_t start = sys::own_start_time();
    // Reuse the slot of a process that has ended, else take a new one.
    for (std::uint32_t i = 0; i < b_.known; ++i) {
      auto& p = b_.known_parties[i];
      if (!sys::process_alive(p.pid, p.start_time)) {
        p = {pid, 0, start};
        return true;
      }
    }
    if (b_.known < Barrier::Layout::kMaxKnownParties) b_.known_parties[b_.known++] = {pid, 0, start};
    return true;
  }

  // Takes this process out of the parties (it ends in order).
  void unregister_party() {
    const int pid = sys::current_pid();
    for (std::uint32_t i = 0; i < b_.known; ++i) {
      if (b_.known_parties[i].pid != pid) continue;
      b_.known_parties[i] = b_.known_parties[b_.known - 1];
      b_.known_parties[--b_.known] = {};
      return;
    }
  }

  // True when a process that has waited on the barrier has ended.
  bool a_party_died() const {
    for (std::uint32_t i = 0; i < b_.known; ++i) {
      const auto& p = b_.known_parties[i];
      if (!sys::process_alive(p.pid, p.start_time)) return true;
    }
    return false;
  }

 private:
  Barrier::Layout& b_;
};

[[noreturn]] void throw_broken(const SharedRegion& region, const char* why) {
  throw BrokenBarrierError(region.describe() + " is broken: " + why);
}

}  // namespace

Barrier::Barrier(unsigned parties, std::function<void()> action, std::optional<Timeout> timeout)
    : Barrier(make_barrier_region({}, parties, kAnonymous), nullptr, std::move(action), timeout) {}
Barrier Barrier::create(std::string_view name, unsigned parties, std::function<void()> action,
                        std::optional<Timeout> timeout) {
  return Barrier(make_barrier_region(name, parties, kCreate), nullptr, std::move(action), timeout);
}
Barrier Barrier::open(std::string_view name, std::function<void()> action, std::optional<Timeout> timeout) {
  return Barrier(make_barrier_region(name, 0, kOpen), nullptr, std::move(action), timeout);
}
Barrier::Barrier(std::shared_ptr<SharedRegion> region, Layout* layout, std::function<void()> action,
                 std::optional<Timeout> timeout)
    : region_(std::move(region)),
      layout_(layout != nullptr ? layout : layout_in<Layout>(region_)),
      action_(std::move(action)),
      timeout_(timeout) {}
Barrier::Barrier(Barrier&& other) noexcept
    : region_(std::move(other.region_)),
      layout_(std::exchange(other.layout_, nullptr)),
      action_(std::move(other.action_)),
      timeout_(other.timeout_) {}
Barrier& Barrier::operator=(Barrier&& other) noexcept {
  if (this != &other) {
    Barrier replaced(std::move(*this));  // leaves as ~Barrier at the end of this scope
    region_ = std::move(other.region_);
    layout_ = std::exchange(other.layout_, nullptr);
    action_ = std::move(other.action_);
    timeout_ = other.timeout_;
  }
  return *this;
}

// A process that lets go of its handle will not wait on it again: it leaves the parties.
Barrier::~Barrier() {
  if (layout_ == nullptr) return;
  JoinedBarriers& joined = joined_barriers();
  std::lock_guard lock(joined.mutex);
  const auto it = std::find(joined.layouts.begin(), joined.layouts.end(), layout_);
  if (it == joined.layouts.end()) return;
  joined.layouts.erase(it);
  try {
    BarrierGuard guard(*layout_);
    guard.unregister_party();
  } catch (...) {  // a destructor never throws; at worst the others see a "dead" party
  }
}

unsigned Barrier::wait() { return wait_until(timeout_); }
unsigned Barrier::wait(Timeout timeout) { return wait_until(timeout); }

unsigned Barrier::wait_until(std::optional<Timeout> timeout) {
  Layout& b = *layout_;
  const sys::Deadline deadline = sys::Deadline::within(timeout);
  std::uint32_t round = 0;
  unsigned index = 0;
  {
    BarrierGuard guard(b);
    if (b.broken != 0) throw_broken(*region_, "aborted, timed out, reset, or a party died");
    if (guard.register_party()) {
      JoinedBarriers& joined = joined_barriers();
      std::lock_guard lock(joined.mutex);
      joined.layouts.push_back(&b);
    }
    index = b.arrived++;
    if (b.arrived == b.parties) {
      // The last to arrive runs the action, then lets everyone through.
      if (action_) {
        try {
          action_();
        } catch (...) {
          guard.break_barrier();
          throw;
        }
      }
      b.arrived = 0;
      b.epoch.fetch_add(1, std::memory_order_seq_cst);
      sys::futex_wake(b.epoch, sys::kWakeAll);
      return index;
    }
    round = b.epoch.load(std::memory_order_relaxed);
  }
  for (;;) {
    const auto slice = sys::Deadline::after(kBarrierSlice);
    const bool slice_first = deadline.is_never() || slice.time_point() < deadline.time_point();
    sys::futex_wait(b.epoch, round, slice_first ? slice : deadline);
    if (b.epoch.load(std::memory_order_seq_cst) != round) {
      BarrierGuard guard(b);
      if (b.last_break == round) throw_broken(*region_, "aborted, reset, timed out, or a party died");
      return index;
    }
    BarrierGuard guard(b);
    if (b.epoch.load(std::memory_order_relaxed) != round) continue;  // changed meanwhile: look again
    if (deadline.expired()) {
      guard.break_barrier();
      throw_broken(*region_, "a wait timed out");
    }
    if (guard.a_party_died()) {
      guard.break_barrier();
      throw_broken(*region_, "one of its parties died");
    }
  }
}

void Barrier::reset() {
  BarrierGuard guard(*layout_);
  if (layout_->arrived > 0) guard.break_barrier();
  layout_->broken = 0;
  layout_->arrived = 0;
}

void Barrier::abort() {
  BarrierGuard guard(*layout_);
  guard.break_barrier();
}

unsigned Barrier::parties() const { return layout_->parties; }
unsigned Barrier::n_waiting() const {
  BarrierGuard guard(*layout_);
  return layout_->arrived;
}
bool Barrier::broken() const {
  BarrierGuard guard(*layout_);
  return layout_->broken != 0;
}
const std::string& Barrier::name() const noexcept { return region_->name(); }

void detail::leave_barriers() noexcept {
  // Most processes never joined a barrier: do nothing then (a child on its way out
  // should not even allocate).
  JoinedBarriers* mine = joined_slot.load(std::memory_order_acquire);
  if (mine == nullptr || mine->pid != sys::current_pid()) return;
  try {
    JoinedBarriers& joined = *mine;
    std::lock_guard lock(joined.mutex);
    for (Barrier::Layout* layout : joined.layouts) {
      BarrierGuard guard(*layout);
      guard.unregister_party();
    }
    joined.layouts.clear();
  } catch (...) {  // called on the way out of a process: never throw
  }
}
void Barrier::unlink() { region_->unlink(); }

}  // namespace ipckit
