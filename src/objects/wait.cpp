#include "ipckit/wait.hpp"

#include "sys/deadline.hpp"
#include "sys/io.hpp"

namespace ipckit {

std::vector<Waitable> wait(std::span<const Waitable> objects,
                           std::optional<std::chrono::nanoseconds> timeout) {
  std::vector<sys::PollItem> items(objects.size());
  bool any_ready_now = false;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    items[i].fd = objects[i].fd();
    any_ready_now = any_ready_now || objects[i].ready_now();
  }
  // Something already holds a message in user space: only check the others, don't wait.
  const sys::Deadline deadline = any_ready_now ? sys::Deadline::now() : sys::Deadline::within(timeout);
  std::vector<Waitable> ready;
  for (;;) {
    sys::poll_readable(items, deadline);
    for (std::size_t i = 0; i < objects.size(); ++i)
      if ((items[i].ready && !objects[i].fd_is_hint()) || objects[i].ready_now()) ready.push_back(objects[i]);
    // Only hints fired (a handshake moved on, no connection yet): wait for what remains.
    if (!ready.empty() || deadline.expired()) return ready;
  }
}

}  // namespace ipckit
