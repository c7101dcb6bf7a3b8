// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, Value and Array
// across real processes, including holders and parties killed with SIGKILL.
#include "ipckit/sync.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/value.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using SyncTest = ipckit::test::Test;

using ipckit::test::text;

using ipckit::test::spawn;

// A child that takes `lock`, says so on `ready`, and then waits to be killed.
std::unique_ptr<ipckit::Process> die_holding(ipckit::Lock& lock, ipckit::Connection& ready) {
  return spawn([&] {
    lock.acquire();
    ready.send_bytes("holding");
    for (;;) pause();
  });
}

// --- Lock --------------------------------------------------------------------------------

TEST_F(SyncTest, LockExcludesOtherProcessesAndTimesOut) {
  ipckit::Lock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  EXPECT_FALSE(lock.locked());
  ASSERT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.locked());
  auto child = spawn([&] {
    const bool got_now = lock.acquire(false);
    const bool got_timed = lock.acquire(1ms);
    child_end.send_bytes(std::string(got_now ? "1" : "0") + (got_timed ? "1" : "0"));
    lock.acquire();  // blocks until the parent releases
    child_end.send_bytes("acquired");
    lock.release();
  });
  EXPECT_EQ(text(parent_end.recv_bytes()), "00");
  lock.release();
  EXPECT_EQ(text(parent_end.recv_bytes()), "acquired");
  child->join();
  EXPECT_EQ(child->exitcode(), 0);
}

TEST_F(SyncTest, LockedIncrementsFromFourProcessesAreExact) {
  ipckit::Lock lock;
  ipckit::Value<std::int64_t> counter(0, false);
  constexpr int kPerChild = 20000;
  std::vector<std::unique_ptr<ipckit::Process>> children;
  for (int i = 0; i < 4; ++i) {
    children.push_back(spawn([&] {
      for (int n = 0; n < kPerChild; ++n) {
        std::lock_guard guard(lock);
        counter.raw() = counter.raw() + 1;  // a torn read-modify-write without the lock
      }
    }));
  }
  for (auto& c : children) {
    c->join();
    EXPECT_EQ(c->exitcode(), 0);
  }
  EXPECT_EQ(counter.raw(), 4 * kPerChild);
}

TEST_F(SyncTest, OnlyTheHolderMayRelease) {
  ipckit::Lock lock;
  EXPECT_THROW(lock.release(), ipckit::ValueError);
  lock.acquire();
  std::thread other([&] { EXPECT_THROW(lock.release(), ipckit::ValueError); });
  other.join();
  lock.release();
}

TEST_F(SyncTest, WorksWithStandardLockTypes) {
  ipckit::Lock lock;
  {
    std::unique_lock guard(lock, std::defer_lock);
    EXPECT_TRUE(guard.try_lock_for(10ms));
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
  { std::scoped_lock both(lock); }
  EXPECT_FALSE(lock.locked());
}

TEST_F(SyncTest, HolderKilledMakesEveryAcquireThrowOwnerDiedUntilRecovered) {
  ipckit::Lock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto holder = die_holding(lock, child_end);
  ASSERT_EQ(text(parent_end.recv_bytes()), "holding");
  holder->kill();
  holder->join();
  try {
    lock.acquire();
    FAIL() << "expected OwnerDied";
  } catch (const ipckit::OwnerDied& e) {
    EXPECT_EQ(e.owner(), holder->pid());  // a single-threaded holder: its thread id is its pid
    EXPECT_NE(std::string(e.what()).find("recover"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(lock.locked());  // OwnerDied leaves it released
  EXPECT_TRUE(lock.inconsistent());
  EXPECT_THROW(lock.acquire(10ms), ipckit::OwnerDied);  // sticky, for every acquirer
  auto other = spawn([&] {
    try {
      lock.acquire();
    } catch (const ipckit::OwnerDied&) {
      throw ipckit::SystemExit{42};
    }
  });
  other->join();
  EXPECT_EQ(other->exitcode(), 42);
  int repaired = 0;
  EXPECT_TRUE(lock.recover([&] { ++repaired; }));
  EXPECT_EQ(repaired, 1);
  EXPECT_FALSE(lock.inconsistent());
  EXPECT_TRUE(lock.acquire());
  lock.release();
  EXPECT_FALSE(lock.recover([&] { ++repaired; }));  // nothing to repair
  EXPECT_EQ(repaired, 1);
}

TEST_F(SyncTest, WaiterIsToldWhenTheHolderDiesWhileItWaits) {
  ipckit::Lock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto holder = die_holding(lock, child_end);
  ASSERT_EQ(text(parent_end.recv_bytes()), "holding");
  std::thread killer([&] {
    holder->kill();
    holder->join();
  });
  EXPECT_THROW(lock.acquire(), ipckit::OwnerDied);  // blocked until the death, never a hang
  killer.join();
  lock.recover(nullptr);
}

TEST_F(SyncTest, RepairThatThrowsLeavesTheLockInconsistent) {
  ipckit::Lock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto holder = die_holding(lock, child_end);
  ASSERT_EQ(text(parent_end.recv_bytes()), "holding");
  holder->kill();
  holder->join();
  EXPECT_THROW(lock.recover([] { throw std::runtime_error("cannot repair"); }), std::runtime_error);
  EXPECT_TRUE(lock.inconsistent());
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.recover(nullptr));
}

const ipckit::test::ChildScenario try_named_lock("try-named-lock", [](const std::vector<std::string>& args) {
  auto lock = ipckit::Lock::open(args.at(0));
  // Exit 0 when the lock is held by the parent, as it must be.
  return lock.acquire(false) ? ipckit::test::kChildCheckFailed : ipckit::test::kChildOk;
});

TEST_F(SyncTest, NamedLockIsSharedWithAnUnrelatedProcess) {
  const std::string name = ipckit::test::unique_name("ipckit-lock");
  auto lock = ipckit::Lock::create(name);
  EXPECT_EQ(lock.name(), name);
  lock.acquire();
  const auto held = ipckit::test::run_child("try-named-lock", {name});
  EXPECT_EQ(held.exit_code, ipckit::test::kChildOk) << held.output;
  lock.release();
  EXPECT_THROW(ipckit::Semaphore::open(name), ipckit::ValueError);  // a Lock, not a Semaphore
  EXPECT_THROW(ipckit::Lock::create(name), ipckit::FileExistsError);
  auto same = ipckit::Lock::open_or_create(name);
  EXPECT_TRUE(same.acquire(false));
  same.release();
  lock.unlink();
  EXPECT_THROW(ipckit::Lock::open(name), ipckit::FileNotFoundError);
  EXPECT_THROW(ipckit::Lock().unlink(), ipckit::ValueError);
}

// --- RLock -------------------------------------------------------------------------------

TEST_F(SyncTest, RLockIsReentrantForItsHolderOnly) {
  ipckit::RLock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  lock.acquire();
  lock.acquire();
  auto child = spawn([&] { child_end.send_bytes(lock.acquire(false) ? "got it" : "busy"); });
  EXPECT_EQ(text(parent_end.recv_bytes()), "busy");
  child->join();
  lock.release();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.release(), ipckit::ValueError);
}

TEST_F(SyncTest, RLockHolderKilledIsOwnerDied) {
  ipckit::RLock lock;
  auto [parent_end, child_end] = ipckit::Pipe();
  auto holder = spawn([&] {
    lock.acquire();
    lock.acquire();
    child_end.send_bytes("holding");
    for (;;) pause();
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "holding");
  holder->kill();
  holder->join();
  EXPECT_THROW(lock.acquire(), ipckit::OwnerDied);
  EXPECT_TRUE(lock.recover(nullptr));
  lock.acquire();
  lock.acquire();
  lock.release();
  lock.release();
}

// --- Semaphore ---------------------------------------------------------------------------

TEST_F(SyncTest, SemaphoreLetsTwoOfThreeIn) {
  ipckit::Semaphore slots(2);
  ipckit::Semaphore inside(0);
  ipckit::Event go;
  std::vector<std::unique_ptr<ipckit::Process>> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(spawn([&] {
      slots.acquire();
      inside.release();
      go.wait();
      slots.release();
    }));
  }
  inside.acquire();
  inside.acquire();  // both holders are in
  EXPECT_EQ(slots.get_value(), 0u);
  auto third = spawn([&] {
    if (slots.acquire(20ms)) throw ipckit::SystemExit{1};  // there must be no third slot
  });
  third->join();
  EXPECT_EQ(third->exitcode(), 0) << "a third process got a slot";
  go.set();
  for (auto& h : holders) h->join();
  EXPECT_EQ(slots.get_value(), 2u);
}

TEST_F(SyncTest, SemaphoreReleaseWakesAWaiterInAnotherProcess) {
  ipckit::Semaphore sem(0);
  auto [parent_end, child_end] = ipckit::Pipe();
  auto waiter = spawn([&] {
    child_end.send_bytes("waiting");
    child_end.send_bytes(sem.acquire(30s) ? "acquired" : "timed out");
  });
  EXPECT_EQ(text(parent_end.recv_bytes()), "waiting");
  EXPECT_FALSE(sem.acquire(false));
  sem.release();
  EXPECT_EQ(text(parent_end.recv_bytes()), "acquired");
  waiter->join();
  EXPECT_EQ(sem.get_value(), 0u);
  sem.release(3);
  EXPECT_EQ(sem.get_value(), 3u);
}

TEST_F(SyncTest, BoundedSemaphoreRefusesExtraReleases) {
  ipckit::BoundedSemaphore sem(2);
  EXPECT_THROW(sem.release(), ipckit::ValueError);
  sem.acquire();
  sem.release();
  sem.acquire();
  sem.acquire();
  EXPECT_THROW(sem.release(3), ipckit::ValueError);
  sem.release(2);
  EXPECT_EQ(sem.get_value(), 2u);
}

// --- Event -------------------------------------------------------------------------------

TEST_F(SyncTest, EventReleasesEveryWaiter) {
  ipckit::Event event;
  ipckit::Semaphore waiting(0);
  std::vector<std::unique_ptr<ipckit::Process>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(spawn([&] {
      waiting.release();
      if (!event.wait(30s)) throw ipckit::SystemExit{1};
    }));
  }
  for (int i = 0; i < 3; ++i) waiting.acquire();
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait(1ms));
  event.set();
  for (auto& w : waiters) {
    w->join();
    EXPECT_EQ(w->exitcode(), 0);
  }
  EXPECT_TRUE(event.wait());
  event.clear();
  EXPECT_FALSE(event.is_set());
}

// --- Condition ---------------------------------------------------------------------------

TEST_F(SyncTest, ConditionProducerConsumerWithWaitFor) {
  ipckit::Condition cond;
  ipckit::Value<int> items(0, false);
  constexpr int kItems = 200;
  auto consumer = spawn([&] {
    for (int taken = 0; taken < kItems; ++taken) {
      std::lock_guard guard(cond);
      if (!cond.wait_for([&] { return items.raw() > 0; }, 30s)) throw ipckit::SystemExit{1};
      --items.raw();
    }
  });
  for (int i = 0; i < kItems; ++i) {
    std::lock_guard guard(cond);
    ++items.raw();
    cond.notify();
  }
  consumer->join();
  EXPECT_EQ(consumer->exitcode(), 0);
  EXPECT_EQ(items.raw(), 0);
}

TEST_F(SyncTest, ConditionNeedsItsLockHeld) {
  ipckit::Condition cond;
  EXPECT_THROW(cond.notify(), ipckit::ValueError);
  EXPECT_THROW(cond.wait(1ms), ipckit::ValueError);
  std::lock_guard guard(cond);
  EXPECT_FALSE(cond.wait(1ms));  // nobody notifies: a timeout, the lock held again after
  EXPECT_TRUE(cond.get_lock().locked());
}

TEST_F(SyncTest, NotifyAllWakesEveryWaiterEvenWithOneKilled) {
  ipckit::Lock lock;
  ipckit::Condition cond(lock);
  ipckit::Value<int> released(0, false);
  ipckit::Semaphore waiting(0);
  std::vector<std::unique_ptr<ipckit::Process>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(spawn([&] {
      std::lock_guard guard(cond);
      waiting.release();
      if (!cond.wait_for([&] { return released.raw() != 0; }, 30s)) throw ipckit::SystemExit{1};
    }));
  }
  for (int i = 0; i < 3; ++i) waiting.acquire();
  {
    // Each waiter said "waiting" holding the lock and lets go of it only inside wait: once
    // we hold it, all three are asleep in wait, holding nothing.
    std::lock_guard guard(cond);
    waiters[0]->kill();
    waiters[0]->join();
    released.raw() = 1;
    cond.notify_all();
  }
  for (std::size_t i = 1; i < waiters.size(); ++i) {
    waiters[i]->join();
    EXPECT_EQ(waiters[i]->exitcode(), 0);
  }
}

TEST_F(SyncTest, ConditionWaiterLearnsThatTheLockHolderDied) {
  ipckit::Condition cond;
  ipckit::Semaphore waiting(0);
  auto [parent_end, child_end] = ipckit::Pipe();
  auto waiter = spawn([&] {
    std::unique_lock guard(cond);
    waiting.release();
    try {
      cond.wait(30s);
    } catch (const ipckit::OwnerDied&) {
      guard.release();  // OwnerDied: the lock is not held
      throw ipckit::SystemExit{7};
    }
  });
  waiting.acquire();
  auto notifier = spawn([&] {
    cond.acquire();
    cond.notify();
    child_end.send_bytes("notified, holding");
    for (;;) pause();
  });
  EXPECT_EQ(text(parent_end.recv_bytes()), "notified, holding");
  notifier->kill();
  notifier->join();
  waiter->join();
  EXPECT_EQ(waiter->exitcode(), 7);
}

// --- Barrier -----------------------------------------------------------------------------

TEST_F(SyncTest, BarrierLetsPartiesThroughTogetherAndRunsTheActionOnce) {
  ipckit::Value<int> actions(0, false);
  ipckit::Barrier barrier(3, [&] { ++actions.raw(); });
  ipckit::Array<int> indices(3, false);
  std::vector<std::unique_ptr<ipckit::Process>> parties;
  for (int i = 0; i < 2; ++i)
    parties.push_back(spawn([&, i] {
      for (int round = 0; round < 3; ++round) indices.raw()[static_cast<std::size_t>(i)] += static_cast<int>(barrier.wait(30s));
    }));
  for (int round = 0; round < 3; ++round) indices.raw()[2] += static_cast<int>(barrier.wait(30s));
  for (auto& p : parties) {
    p->join();
    EXPECT_EQ(p->exitcode(), 0);
  }
  EXPECT_EQ(actions.raw(), 3);
  EXPECT_EQ(indices.raw()[0] + indices.raw()[1] + indices.raw()[2], 3 * (0 + 1 + 2));
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_EQ(barrier.parties(), 3u);
}

TEST_F(SyncTest, BarrierTimeoutBreaksItUntilReset) {
  ipckit::Barrier barrier(2);
  EXPECT_THROW(barrier.wait(5ms), ipckit::BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(5ms), ipckit::BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  auto other = spawn([&] { barrier.wait(30s); });
  EXPECT_NO_THROW(barrier.wait(30s));
  other->join();
  EXPECT_EQ(other->exitcode(), 0);
}

TEST_F(SyncTest, BarrierAbortReleasesWaitersWithBrokenBarrierError) {
  ipckit::Barrier barrier(3);
  ipckit::Semaphore waiting(0);
  auto waiter = spawn([&] {
    waiting.release();
    try {
      barrier.wait(30s);
    } catch (const ipckit::BrokenBarrierError&) {
      throw ipckit::SystemExit{3};
    }
  });
  waiting.acquire();
  barrier.abort();
  waiter->join();
  EXPECT_EQ(waiter->exitcode(), 3);
}

TEST_F(SyncTest, BarrierActionThatThrowsBreaksIt) {
  ipckit::Barrier barrier(1, [] { throw std::runtime_error("action failed"); });
  EXPECT_THROW(barrier.wait(), std::runtime_error);
  EXPECT_TRUE(barrier.broken());
}

TEST_F(SyncTest, BarrierPartyKilledWhileOthersWaitBreaksIt) {
  ipckit::Barrier barrier(3);
  auto [parent_end, child_end] = ipckit::Pipe();
  // Round 1: both children and the parent pass once, so all three are known parties.
  auto doomed = spawn([&] {
    barrier.wait(30s);
    child_end.send_bytes("passed");
    for (;;) pause();  // never arrives at round 2
  });
  auto survivor = spawn([&] {
    barrier.wait(30s);
    try {
      barrier.wait(60s);  // round 2: waits for the doomed party
    } catch (const ipckit::BrokenBarrierError&) {
      throw ipckit::SystemExit{5};
    }
  });
  barrier.wait(30s);
  EXPECT_EQ(text(parent_end.recv_bytes()), "passed");
  doomed->kill();
  doomed->join();
  survivor->join();  // bounded by the 50 ms liveness check (and the watchdog)
  EXPECT_EQ(survivor->exitcode(), 5);
  EXPECT_TRUE(barrier.broken());
}

TEST_F(SyncTest, BarrierPartyThatEndsInOrderLeavesIt) {
  ipckit::Barrier barrier(2);
  auto first = spawn([&] { barrier.wait(30s); });  // one round, then returns: leaves
  barrier.wait(30s);
  first->join();
  EXPECT_EQ(first->exitcode(), 0);
  auto second = spawn([&] { barrier.wait(30s); });  // a new party takes its place
  EXPECT_NO_THROW(barrier.wait(30s));
  second->join();
  EXPECT_EQ(second->exitcode(), 0);
}

// --- Value and Array ---------------------------------------------------------------------

TEST_F(SyncTest, AtomicAndLockedValueIncrementsAreExact) {
  ipckit::Value<std::int64_t> atomic_count(0);
  ipckit::Value<std::int64_t> locked_count(0);
  constexpr int kPerChild = 10000;
  std::vector<std::unique_ptr<ipckit::Process>> children;
  for (int i = 0; i < 4; ++i)
    children.push_back(spawn([&] {
      for (int n = 0; n < kPerChild; ++n) {
        atomic_count.fetch_add(1);
        auto value = locked_count.access();
        *value += 1;
      }
    }));
  for (auto& c : children) c->join();
  EXPECT_EQ(atomic_count.load(), 4 * kPerChild);
  EXPECT_EQ(locked_count.get(), 4 * kPerChild);
}

TEST_F(SyncTest, ValueWithoutLockIsRaw) {
  ipckit::Value<double> v(2.5, false);
  EXPECT_EQ(v.get(), 2.5);
  v.set(3.5);
  EXPECT_EQ(v.raw(), 3.5);
  EXPECT_THROW(v.get_lock(), ipckit::ValueError);
}

TEST_F(SyncTest, ArrayFromValuesWithBoundsChecks) {
  ipckit::Array<int> a{1, 2, 3, 4};
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a.get(2), 3);
  a.set(2, 30);
  EXPECT_EQ(a.to_vector(), (std::vector<int>{1, 2, 30, 4}));
  EXPECT_THROW(a.get(4), ipckit::ValueError);
  EXPECT_EQ(a.fetch_add(0, 5), 1);
  EXPECT_EQ(a.load(0), 6);
  {
    auto all = a.access();
    for (int& x : *all) x *= 10;
  }
  EXPECT_EQ(a.to_vector(), (std::vector<int>{60, 20, 300, 40}));
}

TEST_F(SyncTest, ValueHolderKilledInsideAccessIsOwnerDied) {
  ipckit::Value<int> v(1);
  auto [parent_end, child_end] = ipckit::Pipe();
  auto holder = spawn([&] {
    auto value = v.access();
    *value = -1;  // half-way through an update
    child_end.send_bytes("holding");
    for (;;) pause();
  });
  ASSERT_EQ(text(parent_end.recv_bytes()), "holding");
  holder->kill();
  holder->join();
  EXPECT_THROW(v.get(), ipckit::OwnerDied);
  EXPECT_TRUE(v.get_lock().recover([&] { v.raw() = 1; }));
  EXPECT_EQ(v.get(), 1);
}

const ipckit::test::ChildScenario bump_named_value("bump-named-value", [](const std::vector<std::string>& args) {
  auto v = ipckit::Value<std::int64_t>::open(args.at(0));
  v.fetch_add(41);
  try {
    ipckit::Value<std::int32_t>::open(args.at(0));
    return ipckit::test::kChildCheckFailed;  // the element size differs: must be refused
  } catch (const ipckit::ValueError&) {
  }
  return ipckit::test::kChildOk;
});

TEST_F(SyncTest, NamedValueIsSharedWithAnUnrelatedProcess) {
  const std::string name = ipckit::test::unique_name("ipckit-value");
  auto v = ipckit::Value<std::int64_t>::create(name, 1);
  const auto result = ipckit::test::run_child("bump-named-value", {name});
  EXPECT_EQ(result.exit_code, ipckit::test::kChildOk) << result.output;
  EXPECT_EQ(v.get(), 42);
  v.unlink();
}

}  // namespace
