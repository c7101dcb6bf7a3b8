#include "sys/robust_mutex.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <string>

#include "sys/proc.hpp"
#include "sys/sys_error.hpp"

namespace ipckit::sys {
namespace {

static_assert(sizeof(pthread_mutex_t) == kRobustMutexSize, "docs/formats/sync.md assumes glibc's 40-byte mutex");
static_assert(alignof(pthread_mutex_t) <= alignof(RobustMutex));

pthread_mutex_t* native(RobustMutex& m) noexcept { return reinterpret_cast<pthread_mutex_t*>(m.storage); }
const pthread_mutex_t* native(const RobustMutex& m) noexcept {
  return reinterpret_cast<const pthread_mutex_t*>(m.storage);
}

// The futex word glibc keeps first in the mutex; read only, relaxed, to decide whether to
// keep spinning. glibc writes it atomically, so reading it through atomic_ref is sound.
std::uint32_t lock_word(const RobustMutex& m) noexcept {
  auto& word = const_cast<int&>(native(m)->__data.__lock);
  return static_cast<std::uint32_t>(std::atomic_ref<int>(word).load(std::memory_order_relaxed));
}

void check(int rc, const char* call) {
  if (rc != 0) throw_os_error(rc, call, "shared mutex");
}

MutexLock sort(int rc, const char* call) {
  switch (rc) {
    case 0: return MutexLock::Acquired;
    case EOWNERDEAD: return MutexLock::OwnerDied;
    case ETIMEDOUT:
    case EBUSY: return MutexLock::TimedOut;
    case ENOTRECOVERABLE: return MutexLock::NotRecoverable;
    default: throw_os_error(rc, call, "shared mutex");
  }
}

}  // namespace

void robust_mutex_init(RobustMutex& m, bool recursive) {
  pthread_mutexattr_t attr;
  check(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
  check(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), "pthread_mutexattr_setpshared");
  check(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST), "pthread_mutexattr_setrobust");
  check(pthread_mutexattr_settype(&attr, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_NORMAL),
        "pthread_mutexattr_settype");
  const int rc = pthread_mutex_init(native(m), &attr);
  pthread_mutexattr_destroy(&attr);
  check(rc, "pthread_mutex_init");
}

MutexLock robust_mutex_lock(RobustMutex& m, const Deadline& deadline) {
  const MutexLock first = sort(pthread_mutex_trylock(native(m)), "pthread_mutex_trylock");
  if (first != MutexLock::TimedOut) return first;
  // Never one unbounded sleep. A holder killed between freeing the lock word and waking
  // a sleeper (or a woken sleeper killed before it took the lock) leaves that sleeper
  // asleep: the kernel repairs this at the dead thread's exit only if the word is still
  // free then, and another process may have taken and released it meanwhile. So sleep in
  // slices and try again; a stranded waiter loses at most one slice. The slices are
  // measured on the coarse monotonic clock (same time base, a few ms behind, and cheaper
  // to read), since this path runs at every contended acquire.
  constexpr auto kSlice = std::chrono::milliseconds(100);
  for (;;) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    std::int64_t end = std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec +
                       std::chrono::duration_cast<std::chrono::nanoseconds>(kSlice).count();
    bool last = false;
    if (!deadline.is_never()) {
      const std::int64_t limit =
          std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_point().time_since_epoch()).count();
      if (limit <= end) {
        end = limit;
        last = true;
      }
    }
    const timespec at{static_cast<time_t>(end / 1'000'000'000), static_cast<long>(end % 1'000'000'000)};
    const MutexLock r = sort(pthread_mutex_clocklock(native(m), CLOCK_MONOTONIC, &at), "pthread_mutex_clocklock");
    if (r != MutexLock::TimedOut || last) return r;
  }
}

MutexLock robust_mutex_try_lock(RobustMutex& m) {
  return sort(pthread_mutex_trylock(native(m)), "pthread_mutex_trylock");
}

bool robust_mutex_unlock(RobustMutex& m) {
  const int rc = pthread_mutex_unlock(native(m));
  if (rc == EPERM) return false;
  check(rc, "pthread_mutex_unlock");
  return true;
}

void robust_mutex_consistent(RobustMutex& m) {
  check(pthread_mutex_consistent(native(m)), "pthread_mutex_consistent");
}

bool robust_mutex_looks_free(const RobustMutex& m) noexcept { return lock_word(m) == 0; }

bool robust_mutex_held_by_caller(const RobustMutex& m) noexcept {
  return static_cast<int>(lock_word(m) & FUTEX_TID_MASK) == current_tid();
}

int robust_mutex_owner(const RobustMutex& m) noexcept { return native(m)->__data.__owner; }

unsigned robust_mutex_depth(const RobustMutex& m) noexcept {
  if (!robust_mutex_held_by_caller(m)) return 0;
  return native(m)->__data.__count;
}

}  // namespace ipckit::sys
