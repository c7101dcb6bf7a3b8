// The shared memory tracker: the client side (one socket per process tree, shared through
// fork) and the tracker process itself.
//
// Why a process: a creator killed by SIGKILL runs no code, so the removal of its segments
// must be done by someone else. Python's resource tracker does it too, but it unlinks a
// segment when the process that registered it ends, even while others still use it; here
// the trailer's attach table (docs/formats/shared_memory.md) says who still does, and the
// tracker waits for them (pidfds) before it removes the name.
//
// Why a double fork: the tracker must not be a child of the process that happened to start
// it (that process's waitpid(-1), its "no child left behind" checks, its SIGCHLD handler
// would see it), and it must outlive it.
//
// Why SOCK_SEQPACKET: many processes of a tree send on copies of one socket; each message
// arrives whole (no framing, no interleaving), and the tracker sees end of stream once
// every process holding a copy has exited (or exec'd: the fd is close-on-exec).
//
// Ordering: a creator's messages are all queued before its pidfd becomes readable (it sent
// them before it ended), so the tracker drains the socket after each poll before it acts
// on the pidfds that poll reported.
#include "objects/shm_tracker.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "ipckit/error.hpp"
#include "objects/shm_trailer.hpp"
#include "sys/daemon.hpp"
#include "sys/file_ops.hpp"
#include "sys/inotify.hpp"
#include "sys/io.hpp"
#include "sys/mapping.hpp"
#include "sys/proc.hpp"
#include "sys/seqpacket.hpp"

namespace ipckit::shm {
namespace {

constexpr std::string_view kSubject = "the shared memory tracker";
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxOsName = 255;  // NAME_MAX
// After handling a batch of notices the tracker pauses this long before it polls again.
// A sender whose receiver is not waiting in poll() wakes nobody: under a stream of
// creates and unlinks, notices cost a send() each instead of a send() plus a cross-CPU
// wake-up, and the tracker handles them a batch at a time. It delays the removal of a
// dead creator's segments by at most this much, and only while notices keep coming.
constexpr auto kBatchPause = std::chrono::milliseconds(1);
constexpr std::size_t kSendBuffer = std::size_t{4} << 20;  // capped by net.core.wmem_max

// --- Wire format of the notices (native byte order; both ends are the same program) -------
struct NoticeHeader {
  std::uint8_t kind;
  std::uint8_t reserved[3];
  std::int32_t creator_pid;
  std::uint64_t creator_start_time;
  std::uint64_t device;
  std::uint64_t inode;
};
static_assert(sizeof(NoticeHeader) == 32);
constexpr std::size_t kMaxNotice = sizeof(NoticeHeader) + kMaxOsName;

// The tracker's first message on a new socket: its pid, once it has let go of every fd
// it inherited (so the starter's pipes are not held open by it after start returns).
struct Hello {
  std::int32_t pid;
};

// --- The client side: this process's end of the socket ----------------------------------
//
// One Link per process, made lazily and again in a forked child (keyed by pid, so that a
// plain fork() is caught as well as ipckit::Process): a child must not take the parent's
// mutex, which another thread may have held at fork. The child's Link starts from the fd
// number it inherited. The fd is never closed; when its tracker dies, a new socket is put
// in its place with dup3(), so a number another thread is sending on never comes to name
// a different file.
struct Link {
  Link(int owner, int inherited_fd, int inherited_tracker)
      : pid(owner), fd(inherited_fd), tracker_pid(inherited_tracker) {}
  const int pid;
  std::mutex mutex;  // serialises starting a tracker in this process
  std::atomic<int> fd;
  std::atomic<int> tracker_pid;
  std::atomic<unsigned> starts{0};  // trackers this process started: tells a thread whose
                                    // send failed whether another one replaced it since
};
std::atomic<Link*> link_slot{nullptr};

Link& link(int pid) {
  Link* current = link_slot.load(std::memory_order_acquire);
  if (current != nullptr && current->pid == pid) return *current;
  // The parent's Link is left alone (and leaked): it may be locked.
  auto* fresh = new Link(pid, current != nullptr ? current->fd.load(std::memory_order_acquire) : -1,
                         current != nullptr ? current->tracker_pid.load(std::memory_order_relaxed) : 0);
  if (link_slot.compare_exchange_strong(current, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread of this process made it first (the fd is not owned)
  return *current;
}

[[noreturn]] void tracker_main(int socket) noexcept;

// Starts a tracker for this process, unless another thread did since the caller read
// `seen_starts` (then the fd already leads to a new one). Returns the fd to send on.
int start_tracker(Link& l, unsigned seen_starts) {
  std::lock_guard lock(l.mutex);
  const int failed_fd = l.fd.load(std::memory_order_acquire);
  if (l.starts.load(std::memory_order_acquire) != seen_starts) return failed_fd;
  auto [mine, theirs] = sys::seqpacket_pair(kSubject);
  // Room for the notices that queue while the tracker pauses between batches (run()).
  sys::set_send_buffer(mine.get(), kSendBuffer);
  if (sys::fork_detached(kSubject)) tracker_main(theirs.get());  // never returns
  theirs.reset();
  // Wait for its hello: then it has closed what it inherited, and it is known to run.
  Hello hello{};
  if (sys::wait_readable(mine.get(), sys::Deadline::after(kStartTimeout))) {
    const auto r = sys::recv_packet(mine.get(), std::as_writable_bytes(std::span(&hello, 1)), false);
    if (!r.ok() || r.bytes != sizeof hello) hello.pid = 0;
  }
  if (hello.pid <= 0) throw Error("ipckit: " + std::string(kSubject) + " did not start");
  int fd = failed_fd;
  if (failed_fd >= 0) {
    sys::replace_fd(mine.get(), failed_fd, kSubject);  // `mine` closes at return
  } else {
    fd = mine.release();
    l.fd.store(fd, std::memory_order_release);
  }
  l.tracker_pid.store(hello.pid, std::memory_order_relaxed);
  l.starts.fetch_add(1, std::memory_order_release);
  return fd;
}

std::size_t encode(Notice kind, const SegmentId& s, std::array<std::byte, kMaxNotice>& out) {
  NoticeHeader h{};
  h.kind = static_cast<std::uint8_t>(kind);
  h.creator_pid = s.creator_pid;
  h.creator_start_time = s.creator_start_time;
  h.device = s.device;
  h.inode = s.inode;
  const std::size_t name = std::min(s.os_name.size(), kMaxOsName);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, s.os_name.data(), name);
  return sizeof h + name;
}

// --- The tracker process --------------------------------------------------------------

struct Key {
  int pid = 0;
  std::uint64_t start_time = 0;
  auto operator<=>(const Key&) const = default;
};

// A tracked segment whose creator the tracker heard from.
struct Record {
  std::string os_name;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  Key creator;
  bool creator_ended = false;  // then it waits for `users` to end
  std::vector<Key> users;
};

class Tracker {
 public:
  explicit Tracker(int socket) : socket_(socket) {}

  [[noreturn]] void run() {
    std::vector<sys::PollItem> items;
    for (;;) {
      if (!socket_open_ && creators_.empty() && users_.empty() && !any_waiting()) sys::exit_immediately(0);
      items.clear();
      items.push_back({socket_open_ ? socket_ : -1, false});
      items.push_back({removals_.get(), false});
      for (const auto& c : creators_) items.push_back({c.pidfd.get(), false});
      for (const auto& [key, pidfd] : users_) items.push_back({pidfd.get(), false});
      sys::poll_readable(items, sys::Deadline::never());
      const bool names_removed = items[1].ready && waited_on_name_removed();

      // Which watched processes ended, by key: the containers change below.
      std::vector<Key> ended_creators;
      std::size_t i = 2;
      for (const auto& c : creators_)
        if (items[i++].ready) ended_creators.push_back(c.key);
      bool user_ended = false;
      for (auto it = users_.begin(); it != users_.end(); ++i) {
        if (items[i].ready) {
          it = users_.erase(it);
          user_ended = true;
        } else {
          ++it;
        }
      }

      const bool notices = drain();  // every message an ended creator sent is queued by now
      for (const auto& key : dead_on_arrival_) ended_creators.push_back(key);
      dead_on_arrival_.clear();
      for (const auto& key : ended_creators) creator_ended(key);
      if (user_ended || names_removed) recheck_waiting();
      if (notices) std::this_thread::sleep_for(kBatchPause);
    }
  }

 private:
  struct Creator {
    Key key;
    sys::UniqueFd pidfd;
  };

  bool any_waiting() const {
    return std::any_of(records_.begin(), records_.end(),
                       [](const auto& r) { return r.second.creator_ended; });
  }

  // True when a name some record waits on was removed (by unlink(), or by its last user's
  // close()): that record is settled, and its users need no watching any more.
  bool waited_on_name_removed() {
    std::vector<std::string> names;
    if (!sys::read_removals(removals_.get(), names)) return true;  // events lost
    return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
      const auto [first, last] = records_.equal_range("/" + name);
      return std::any_of(first, last, [](const auto& r) { return r.second.creator_ended; });
    });
  }

  // Handles every queued notice; true when there was at least one.
  bool drain() {
    std::array<std::byte, kMaxNotice + 1> buffer{};
    bool any = false;
    while (socket_open_) {
      const auto r = sys::recv_packet(socket_, buffer, false);
      if (!r.ok() && sys::is_would_block(r.error)) return any;
      if (!r.ok() || r.bytes == 0) {  // end of stream: every sender has gone
        socket_open_ = false;
        return any;
      }
      any = true;
      if (r.bytes <= sizeof(NoticeHeader) || r.bytes > kMaxNotice) continue;  // not ours
      NoticeHeader h{};
      std::memcpy(&h, buffer.data(), sizeof h);
      std::string name(reinterpret_cast<const char*>(buffer.data()) + sizeof h, r.bytes - sizeof h);
      const Key creator{h.creator_pid, h.creator_start_time};
      switch (static_cast<Notice>(h.kind)) {
        case Notice::Created:
          records_.emplace(name, Record{name, h.device, h.inode, creator, false, {}});
          watch_creator(creator);
          break;
        case Notice::Unlinked:
        case Notice::Untracked: forget(name, h.device, h.inode); break;
      }
    }
    return any;
  }

  void forget(const std::string& name, std::uint64_t device, std::uint64_t inode) {
    const auto [first, last] = records_.equal_range(name);
    for (auto it = first; it != last;) {
      if (it->second.device == device && it->second.inode == inode) {
        it = records_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Watches a creator through a pidfd. The start time is checked after the pidfd is open:
  // if the pid has already been reused (or is a zombie), the creator has ended.
  void watch_creator(const Key& key) {
    for (const auto& c : creators_)
      if (c.key == key) return;
    if (std::find(dead_on_arrival_.begin(), dead_on_arrival_.end(), key) != dead_on_arrival_.end()) return;
    sys::UniqueFd pidfd = sys::try_open_pidfd(key.pid);
    if (!pidfd.valid() || !sys::process_alive(key.pid, key.start_time)) {
      dead_on_arrival_.push_back(key);
      return;
    }
    creators_.push_back({key, std::move(pidfd)});  // in the order they were heard of
  }

  void creator_ended(const Key& key) {
    std::erase_if(creators_, [&](const Creator& c) { return c.key == key; });
    // Watch removals before deciding: a name removed after decide() looked is then seen.
    if (!removals_) {
      try {
        removals_ = sys::watch_removals(std::string(sys::kShmDirectory));
      } catch (const OSError&) {  // out of inotify instances: users' ends still settle it
      }
    }
    for (auto& [name, record] : records_)
      if (record.creator == key) record.creator_ended = true;
    recheck_waiting();
  }

  // Decides every segment whose creator has ended: removed when no user runs, else
  // watched until they end. Repeats while a user turns out to have ended already.
  void recheck_waiting() {
    bool again = true;
    while (again) {
      again = false;
      for (auto it = records_.begin(); it != records_.end();) {
        if (!it->second.creator_ended) {
          ++it;
          continue;
        }
        bool settled = true;
        try {
          settled = decide(it->second, again);
        } catch (const std::exception&) {  // e.g. out of fds: retried on the next end
          settled = false;
        }
        it = settled ? records_.erase(it) : std::next(it);
      }
    }
    if (!any_waiting()) removals_.reset();
    // Drop the watches nobody waits on any more.
    for (auto it = users_.begin(); it != users_.end();) {
      const bool needed = std::any_of(records_.begin(), records_.end(), [&](const auto& r) {
        return r.second.creator_ended &&
               std::find(r.second.users.begin(), r.second.users.end(), it->first) != r.second.users.end();
      });
      it = needed ? std::next(it) : users_.erase(it);
    }
  }

  // True when the record is settled (removed, or not ours to remove any more). Sets
  // `again` when a user it would watch has already ended.
  bool decide(Record& record, bool& again) {
    // The tracker is a fork of a process that may have had other threads: it keeps its
    // common paths free of exceptions (unwinding takes locks such a thread may have held).
    sys::UniqueFd fd = sys::shm_open_if_exists(record.os_name);
    if (!fd) return true;  // already removed
    const auto status = sys::file_status(fd.get(), record.os_name);
    if (status.device != record.device || status.inode != record.inode) return true;  // not ours
    std::optional<OpenedSegment> segment;
    try {
      segment = map_segment(std::move(fd), record.os_name, sys::Deadline::after(kCreationGrace));
    } catch (const ValueError&) {
      return true;  // our file, but someone wrote over its trailer: not ours to judge
    }
    if (!segment) {
      // Our file, never initialised: its creator died between shm_open and the magic.
      sys::shm_remove_quietly(record.os_name);
      return true;
    }
    Trailer& t = *segment->trailer;
    TrailerLock lock(t);
    if (t.creator_pid != record.creator.pid || t.creator_start_time != record.creator.start_time) return true;
    if (t.state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(State::Removed)) return true;
    if (t.tracked.load(std::memory_order_relaxed) == 0) return true;  // untracked; the notice may be late
    // Never remove a name under a running creator (one whose pidfd could not be opened,
    // e.g. out of fds, was taken for ended): decide again on the next end.
    if (creator_alive(t)) return false;
    std::array<User, kSlotCount> users{};
    const std::size_t n = live_users(t, users);
    if (n == 0) {
      remove_name(t, record.os_name);
      return true;
    }
    record.users.clear();
    for (std::size_t k = 0; k < n; ++k) {
      const Key key{users[k].pid, users[k].start_time};
      record.users.push_back(key);
      if (users_.contains(key)) continue;
      sys::UniqueFd pidfd = sys::try_open_pidfd(key.pid);
      if (!sys::process_alive(key.pid, key.start_time)) {
        again = true;  // it ended between the table and here: decide again
        continue;
      }
      // Running but not watchable (out of fds): decided again on the next end we see.
      if (pidfd.valid()) users_.emplace(key, std::move(pidfd));
    }
    return false;
  }

  int socket_;
  bool socket_open_ = true;
  std::vector<Creator> creators_;       // alive when last looked at, in the order heard of
  std::vector<Key> dead_on_arrival_;    // creators found ended when first heard of
  std::map<Key, sys::UniqueFd> users_;  // users some waiting record waits for
  std::multimap<std::string, Record> records_;
  sys::UniqueFd removals_;  // inotify on /dev/shm while some record waits
};

[[noreturn]] void tracker_main(int socket) noexcept {
  try {
    const int fd = sys::isolate_fds(socket);
    if (fd < 0) sys::exit_immediately(1);
    sys::drop_shared_mappings();
    const Hello hello{sys::current_pid()};
    if (!sys::send_packet(fd, std::as_bytes(std::span(&hello, 1))).ok()) sys::exit_immediately(1);
    Tracker(fd).run();
  } catch (...) {
  }
  sys::exit_immediately(1);
}

}  // namespace

void notify_created(const SegmentId& segment) {
  std::array<std::byte, kMaxNotice> message{};
  const std::size_t length = encode(Notice::Created, segment, message);
  const sys::ConstBytes bytes(message.data(), length);
  Link& l = link(segment.creator_pid);  // the creator is this process
  unsigned starts = l.starts.load(std::memory_order_acquire);
  int fd = l.fd.load(std::memory_order_acquire);
  if (fd < 0) {
    fd = start_tracker(l, starts);
    starts = l.starts.load(std::memory_order_acquire);
  }
  auto r = sys::send_packet(fd, bytes);
  if (!r.ok() && sys::is_peer_gone(r.error)) {  // the tracker died: start another
    fd = start_tracker(l, starts);
    r = sys::send_packet(fd, bytes);
  }
  if (!r.ok()) sys::throw_os_error(r.error, "send", kSubject);
}

void notify_forget(Notice notice, const SegmentId& segment) noexcept {
  try {
    std::array<std::byte, kMaxNotice> message{};
    const std::size_t length = encode(notice, segment, message);
    const int fd = link(sys::current_pid()).fd.load(std::memory_order_acquire);
    if (fd >= 0) sys::send_packet(fd, sys::ConstBytes(message.data(), length));
  } catch (...) {  // only link()'s allocation can throw; the tracker re-checks anyway
  }
}

int ensure_tracker() {
  Link& l = link(sys::current_pid());
  const unsigned starts = l.starts.load(std::memory_order_acquire);
  if (l.fd.load(std::memory_order_acquire) < 0) start_tracker(l, starts);
  return l.tracker_pid.load(std::memory_order_relaxed);
}

}  // namespace ipckit::shm
