// ipckit/wait.hpp — wait(): block until any of several objects is ready, as Python's
// multiprocessing.connection.wait.
//
// Anything with a pollable fd can be waited on. An object joins wait() by having a member
// `WaitHandle wait_handle() const`; Connection (readable: a message or end of stream is
// waiting), Process and ParentProcess (ended) have one now; later objects — queues,
// listeners, events, signals, file watchers — add theirs the same way. A bare fd works too.
//
//   auto ready = ipckit::wait({conn_a, conn_b, worker}, 1s);
//   for (auto& r : ready)
//     if (r == conn_a) handle(conn_a.recv<Msg>());
//
// Blocks until at least one object is ready or the timeout passes (then returns an empty
// list). Safe to call from several threads. Throws OSError if poll fails (e.g. a closed fd).
#pragma once

#include <chrono>
#include <concepts>
#include <initializer_list>
#include <optional>
#include <span>
#include <vector>

namespace ipckit {

// How wait() sees an object: the fd to poll, and optionally a check for data that the
// object already holds in user space (then the fd may look idle while it is ready).
struct WaitHandle {
  int fd = -1;
  const void* object = nullptr;
  bool (*ready_now)(const void* object) = nullptr;
  // The fd only says that the object may have become ready (a Listener's: a handshake
  // moved on): wait() then asks ready_now() and goes on waiting when it says no.
  bool fd_is_hint = false;
};

template <class T>
concept HasWaitHandle = requires(const T& t) {
  { t.wait_handle() } -> std::same_as<WaitHandle>;
};

// A reference to something wait() can watch; compare results with `==` against the
// objects passed in. It does not own the object, which must outlive the call.
class Waitable {
 public:
  template <HasWaitHandle T>
  Waitable(const T& object) : handle_(object.wait_handle()), identity_(&object) {}  // NOLINT: implicit on purpose
  Waitable(int fd) : handle_{fd, nullptr, nullptr}, identity_(nullptr) {}  // NOLINT: a bare fd

  int fd() const noexcept { return handle_.fd; }
  bool fd_is_hint() const noexcept { return handle_.fd_is_hint; }
  bool ready_now() const { return handle_.ready_now != nullptr && handle_.ready_now(handle_.object); }

  friend bool operator==(const Waitable& a, const Waitable& b) noexcept {
    return a.identity_ == b.identity_ && (a.identity_ != nullptr || a.handle_.fd == b.handle_.fd);
  }

 private:
  WaitHandle handle_;
  const void* identity_;
};

// Waits for ever when `timeout` is nullopt. A zero timeout only checks.
std::vector<Waitable> wait(std::span<const Waitable> objects,
                           std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
inline std::vector<Waitable> wait(std::initializer_list<Waitable> objects,
                                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  return wait(std::span<const Waitable>(objects.begin(), objects.size()), timeout);
}

}  // namespace ipckit
