// SharedMemory: named POSIX shm segments with a tracking trailer, foreign (plain) shm
// names, memfds and mapped files.
//
// A named ipckit segment is the user's bytes at offset 0 — so a foreign reader (Python's
// SharedMemory on "/ipckit-<name>") sees them where it expects — and a fixed trailer at
// align_up(size, 64) holding who created it, whether it is live, and a table of the
// processes that opened it, guarded by a robust mutex (docs/formats/shared_memory.md).
// The trailer is found from the file size, so open() needs no other input than the name.
//
// Who removes a name: unlink() at once; otherwise, for a tracked segment, the last one
// to see "creator ended and no user runs" — the tracker process (shm_tracker.cpp) when the
// creator or a user it watches ends, or a closing user. Both decide under the trailer's
// mutex and remove the name before marking the segment Removed, so exactly one removes it
// and an opener that finds Removed knows the name is gone (FileNotFoundError).
//
// Invariants of the attach table (all under the mutex): a slot with pid 0 is free; a slot
// names a process by pid and start time, so a reused pid never counts as a user; a
// process killed in the middle of writing one leaves it free or naming no living process.
#include "ipckit/shared_memory.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <new>
#include <random>
#include <system_error>
#include <thread>

#include "objects/shm_tracker.hpp"
#include "objects/shm_trailer.hpp"
#include "sys/file_ops.hpp"
#include "sys/mapping.hpp"
#include "sys/proc.hpp"
#include "sys/robust_mutex.hpp"

namespace ipckit {

// --- The trailer (shared with the tracker) ----------------------------------------------

namespace shm {

TrailerLock::TrailerLock(Trailer& trailer) : trailer_(trailer) {
  switch (sys::robust_mutex_lock(trailer.mutex, sys::Deadline::never())) {
    case sys::MutexLock::Acquired: return;
    case sys::MutexLock::OwnerDied:
      // Every write under this lock leaves the table readable (see Slot): repair nothing.
      sys::robust_mutex_consistent(trailer.mutex);
      return;
    case sys::MutexLock::TimedOut: break;  // not with Deadline::never()
    case sys::MutexLock::NotRecoverable: break;
  }
  throw Error("ipckit: the lock in a shared memory segment's trailer is not recoverable");
}

TrailerLock::~TrailerLock() {
  try {
    sys::robust_mutex_unlock(trailer_.mutex);
  } catch (...) {  // only if this thread did not hold it, which it does
  }
}

namespace {

// The pid is written last and cleared first (see Slot); the fences keep the compiler from
// moving the other stores across it, and the CPU retires them in order for this thread,
// which is all a process that inherits the lock after our death can observe.
void fill_slot(Slot& s, int pid, std::uint64_t start_time) noexcept {
  s.start_time = start_time;
  s.handles = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::atomic_ref<std::int32_t>(s.pid).store(pid, std::memory_order_relaxed);
}

void clear_slot(Slot& s) noexcept {
  std::atomic_ref<std::int32_t>(s.pid).store(0, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s.handles = 0;
  s.start_time = 0;
}

}  // namespace

bool attach(Trailer& t, int pid, std::uint64_t start_time) {
  Slot* free = nullptr;
  for (Slot& s : t.slots) {
    if (s.pid == pid && s.start_time == start_time) {
      ++s.handles;
      return true;
    }
    if (free == nullptr && s.pid == 0) free = &s;
  }
  if (free == nullptr) {  // full: make room by forgetting processes that have ended
    for (Slot& s : t.slots) {
      if (!sys::process_alive(s.pid, s.start_time)) {
        clear_slot(s);
        if (free == nullptr) free = &s;
      }
    }
  }
  if (free == nullptr) return false;
  fill_slot(*free, pid, start_time);
  return true;
}

void detach(Trailer& t, int pid, std::uint64_t start_time) {
  for (Slot& s : t.slots) {
    if (s.pid != pid || s.start_time != start_time) continue;
    if (s.handles > 1) {
      --s.handles;
    } else {
      clear_slot(s);
    }
    return;
  }
}

std::size_t live_users(Trailer& t, std::span<User, kSlotCount> out) {
  std::size_t n = 0;
  for (Slot& s : t.slots) {
    if (s.pid == 0) continue;
    if (sys::process_alive(s.pid, s.start_time)) {
      out[n++] = {s.pid, s.start_time};
    } else {
      clear_slot(s);
    }
  }
  return n;
}

bool creator_alive(const Trailer& t) { return sys::process_alive(t.creator_pid, t.creator_start_time); }

void remove_name(Trailer& t, const std::string& os_name) noexcept {
  sys::shm_remove_quietly(os_name);
  t.state.store(static_cast<std::uint32_t>(State::Removed), std::memory_order_relaxed);
}

bool remove_if_abandoned(Trailer& t, const std::string& os_name) {
  if (t.tracked.load(std::memory_order_relaxed) == 0 ||
      t.state.load(std::memory_order_relaxed) != static_cast<std::uint32_t>(State::Live) || creator_alive(t))
    return false;
  std::array<User, kSlotCount> users{};
  if (live_users(t, users) != 0) return false;
  remove_name(t, os_name);
  return true;
}

TrailerCheck find_trailer(std::span<std::byte> file, Trailer*& trailer) noexcept {
  if (file.size() < file_size_for(1) || (file.size() - sizeof(Trailer)) % kAlignment != 0)
    return TrailerCheck::Invalid;
  auto* t = reinterpret_cast<Trailer*>(file.data() + (file.size() - sizeof(Trailer)));
  // Acquire: pairs with the creator's release store of the magic, after which every
  // other field of the trailer is initialised.
  const std::uint64_t magic = t->magic.load(std::memory_order_acquire);
  if (magic == 0) return TrailerCheck::NotYet;
  if (magic != kMagic || t->version != kVersion || t->trailer_size != sizeof(Trailer) ||
      t->slot_count != kSlotCount || t->size == 0 || file_size_for(t->size) != file.size())
    return TrailerCheck::Invalid;
  trailer = t;
  return TrailerCheck::Valid;
}

namespace {

std::string not_ipckit(const std::string& os_name) {
  return "shared memory '" + os_name + "' is not an ipckit segment (no valid trailer at its end)";
}

}  // namespace

std::optional<OpenedSegment> map_segment(sys::UniqueFd fd, const std::string& os_name,
                                         const sys::Deadline& deadline) {
  using std::chrono::microseconds;
  microseconds pause(20);
  sys::Mapping mapping;
  for (;;) {
    const auto status = sys::file_status(fd.get(), os_name);
    // A creator sets the whole size with one ftruncate: 0 means "not yet", anything
    // else too small for a trailer means "not ipckit".
    if (status.size != 0) {
      if (status.size < file_size_for(1)) throw ValueError(not_ipckit(os_name));
      if (mapping.size() != status.size) mapping = sys::map_fd(fd.get(), status.size, true, os_name);
      Trailer* trailer = nullptr;
      switch (find_trailer(mapping.bytes(), trailer)) {
        case TrailerCheck::Valid: {
          const std::size_t size = trailer->size;
          return OpenedSegment{std::move(fd), std::move(mapping), trailer, size, status.device, status.inode};
        }
        case TrailerCheck::Invalid: throw ValueError(not_ipckit(os_name));
        case TrailerCheck::NotYet: break;
      }
    }
    if (deadline.expired()) return std::nullopt;
    // The creator is between shm_open and its release of the magic: microseconds unless
    // it was descheduled or killed. Poll with a growing pause, bounded by the deadline.
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, deadline.remaining()));
    pause = std::min(pause * 2, microseconds(5000));
  }
}

OpenedSegment open_segment(const std::string& os_name, const sys::Deadline& deadline) {
  auto segment = map_segment(sys::shm_open_existing(os_name, true), os_name, deadline);
  if (!segment) throw ValueError(not_ipckit(os_name) + ", or its creator has not finished creating it");
  return std::move(*segment);
}

}  // namespace shm

// --- SharedMemory -------------------------------------------------------------------------

namespace {

using std::chrono::milliseconds;

enum class Kind {
  Named,      // an ipckit segment "/ipckit-<name>" with a trailer
  Foreign,    // an OS name used verbatim ("/psm_1a2b"): plain bytes
  Anonymous,  // a memfd (anonymous(), from_fd())
  File,       // map_file()
};

constexpr std::size_t kMaxNameLength = 200;
constexpr std::size_t kMaxOsNameLength = 255;  // NAME_MAX
// No size whose file (size + padding + trailer) could overflow.
constexpr std::size_t kMaxSize = std::size_t{1} << 62;
constexpr int kOpenOrCreateRounds = 100;

std::string quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

// The OS name for `name`, or ValueError. Sets `foreign` for names used verbatim.
std::string os_name_of(std::string_view name, bool& foreign) {
  foreign = !name.empty() && name.front() == '/';
  if (foreign) {
    if (name.size() < 2 || name.size() > kMaxOsNameLength || name.find('/', 1) != std::string_view::npos ||
        name.find('\0') != std::string_view::npos)
      throw ValueError("invalid shared memory name " + quoted(name) +
                       ": an OS name is '/' then 1 to 254 characters without '/'");
    if (name.starts_with(shm::kOsPrefix))
      throw ValueError("invalid shared memory name " + quoted(name) + ": that is the ipckit segment " +
                       quoted(name.substr(shm::kOsPrefix.size())) + "; open it by that name");
    return std::string(name);
  }
  const bool valid =
      !name.empty() && name.size() <= kMaxNameLength && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
      });
  if (!valid)
    throw ValueError("invalid shared memory name " + quoted(name) +
                     ": 1 to 200 characters of A-Z a-z 0-9 . _ - (or an OS name starting with '/')");
  return std::string(shm::kOsPrefix) + std::string(name);
}

void check_size(std::size_t size, std::string_view what) {
  if (size == 0) throw ValueError("cannot create " + std::string(what) + " of 0 bytes");
  if (size > kMaxSize)
    throw ValueError("cannot create " + std::string(what) + " of " + std::to_string(size) +
                     " bytes: too large");
}

// "<pid>-<counter>-<random>": unique while this process lives (pid + counter), and not
// guessable (32 random bits from a per-process generator).
std::string fresh_name() {
  static std::atomic<std::uint64_t> counter{0};
  struct Generator {
    int pid = 0;
    std::uint64_t state = 0;
  };
  thread_local Generator rng;
  const int pid = sys::current_pid();
  if (rng.pid != pid) {  // first use in this thread, or a forked child
    std::random_device device;
    rng.state = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    rng.pid = pid;
  }
  // splitmix64
  std::uint64_t z = (rng.state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z ^= z >> 31;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string random(8, '0');
  for (int i = 0; i < 8; ++i) random[static_cast<std::size_t>(i)] = kHex[(z >> (4 * i)) & 0xF];
  return std::to_string(pid) + "-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1) +
         "-" + random;
}

// This process's start time: read once per process (and thread) from /proc.
std::uint64_t start_time_of_self(int pid) {
  thread_local int cached_pid = 0;
  thread_local std::uint64_t cached = 0;
  if (cached_pid != pid) {
    cached = sys::own_start_time();
    cached_pid = pid;
  }
  return cached;
}

FileNotFoundError name_gone(const std::string& os_name, const char* call) {
  return FileNotFoundError(std::make_error_code(std::errc::no_such_file_or_directory), call, os_name);
}

}  // namespace

struct SharedMemory::State {
  Kind kind = Kind::Anonymous;
  std::string name;     // as given; the path for a file
  std::string os_name;  // the shm name (Named, Foreign) or the path (File)
  bool created = false;
  std::size_t size = 0;  // the user's bytes
  std::mutex mutex;      // serialises close(), unlink(), untrack() of this handle
  std::atomic<bool> open{true};
  sys::UniqueFd fd;
  sys::Mapping mapping;  // the whole file, trailer included
  // Named segments only:
  shm::Trailer* trailer = nullptr;  // inside `mapping`; null once closed
  std::uint64_t device = 0;         // the file behind the name when this handle got it
  std::uint64_t inode = 0;
  int creator_pid = 0;
  std::uint64_t creator_start_time = 0;
  int attached_pid = 0;  // the process whose attach-table slot this handle holds; 0: none
  std::uint64_t attached_start_time = 0;

  shm::SegmentId id() const { return {os_name, device, inode, creator_pid, creator_start_time}; }
};

namespace {

using State = SharedMemory::State;

std::unique_ptr<State> make_state(Kind kind, std::string name, std::string os_name) {
  auto s = std::make_unique<State>();
  s->kind = kind;
  s->name = std::move(name);
  s->os_name = std::move(os_name);
  return s;
}

// Runs f(trailer) on the segment this handle names, under its lock. A closed handle
// opens the name again, and finds it gone if the name now holds another file.
template <class F>
void with_trailer(State& s, F&& f) {
  if (s.trailer != nullptr) {
    shm::TrailerLock lock(*s.trailer);
    f(*s.trailer);
    return;
  }
  shm::OpenedSegment segment;
  try {
    segment = shm::open_segment(s.os_name, sys::Deadline::after(shm::kCreationGrace));
  } catch (const ValueError&) {
    throw name_gone(s.os_name, "shm_open");  // the name holds something else now
  }
  if (segment.device != s.device || segment.inode != s.inode) throw name_gone(s.os_name, "shm_open");
  shm::TrailerLock lock(*segment.trailer);
  f(*segment.trailer);
}

}  // namespace

SharedMemory::SharedMemory() noexcept = default;
SharedMemory::SharedMemory(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
SharedMemory::SharedMemory(SharedMemory&&) noexcept = default;

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    SharedMemory replaced(std::move(*this));  // closed at the end of this scope
    state_ = std::move(other.state_);
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  if (!state_) return;
  try {
    close();
  } catch (...) {  // destructors never throw; the mapping is gone either way
  }
}

SharedMemory SharedMemory::create(std::string_view name, std::size_t size, SharedMemoryOptions options) {
  bool foreign = false;
  std::string os_name = os_name_of(name, foreign);
  check_size(size, "shared memory " + quoted(name));

  if (foreign) {
    auto s = make_state(Kind::Foreign, std::string(name), std::move(os_name));
    s->fd = sys::shm_create(s->os_name, options.mode);
    try {
      sys::set_file_size(s->fd.get(), size, s->os_name);
      s->mapping = sys::map_fd(s->fd.get(), size, true, s->os_name);
    } catch (...) {
      sys::shm_remove_quietly(s->os_name);
      throw;
    }
    s->size = size;
    s->created = true;
    return SharedMemory(std::move(s));
  }

  auto s = make_state(Kind::Named, std::string(name), std::move(os_name));
  s->creator_pid = sys::current_pid();
  s->creator_start_time = start_time_of_self(s->creator_pid);
  s->fd = sys::shm_create(s->os_name, options.mode);
  bool announced = false;
  try {
    const auto status = sys::file_status(s->fd.get(), s->os_name);
    s->device = status.device;
    s->inode = status.inode;
    // Announced before initialisation: if this process is killed from here on, the
    // tracker removes the name (it recognises a never-initialised file as ours by inode).
    if (options.track) {
      shm::notify_created(s->id());
      announced = true;
    }
    const std::size_t total = shm::file_size_for(size);
    sys::set_file_size(s->fd.get(), total, s->os_name);
    s->mapping = sys::map_fd(s->fd.get(), total, true, s->os_name);
    // The file is zero-filled by ftruncate, and zero is a valid state for each field (the
    // magic stays 0 until the end): the trailer is written in place, never constructed over
    // memory an opener may already be reading.
    auto* t = std::launder(reinterpret_cast<shm::Trailer*>(s->mapping.data() + shm::align_up(size)));
    t->version = shm::kVersion;
    t->trailer_size = sizeof(shm::Trailer);
    t->size = size;
    t->creator_pid = s->creator_pid;
    t->slot_count = shm::kSlotCount;
    t->creator_start_time = s->creator_start_time;
    t->state.store(static_cast<std::uint32_t>(shm::State::Live), std::memory_order_relaxed);
    t->tracked.store(options.track ? 1 : 0, std::memory_order_relaxed);
    sys::robust_mutex_init(t->mutex, /*recursive=*/false);
    // Release: an opener that reads the magic (acquire) sees every field above.
    t->magic.store(shm::kMagic, std::memory_order_release);
    s->trailer = t;
  } catch (...) {
    sys::shm_remove_quietly(s->os_name);
    if (announced) shm::notify_forget(shm::Notice::Unlinked, s->id());
    throw;
  }
  s->size = size;
  s->created = true;
  return SharedMemory(std::move(s));
}

SharedMemory SharedMemory::create(std::size_t size, SharedMemoryOptions options) {
  return create(fresh_name(), size, options);
}

SharedMemory SharedMemory::open(std::string_view name) {
  bool foreign = false;
  std::string os_name = os_name_of(name, foreign);

  if (foreign) {
    auto s = make_state(Kind::Foreign, std::string(name), std::move(os_name));
    s->fd = sys::shm_open_existing(s->os_name, true);
    // A foreign creator sets the size right after shm_open: wait for it a bounded time.
    const auto deadline = sys::Deadline::after(shm::kCreationGrace);
    std::size_t size = 0;
    for (auto pause = std::chrono::microseconds(20);;
         pause = std::min(pause * 2, std::chrono::microseconds(5000))) {
      size = sys::file_status(s->fd.get(), s->os_name).size;
      if (size != 0 || deadline.expired()) break;
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, deadline.remaining()));
    }
    if (size == 0) throw ValueError("cannot open shared memory " + quoted(s->os_name) + ": it is empty");
    s->mapping = sys::map_fd(s->fd.get(), size, true, s->os_name);
    s->size = size;
    return SharedMemory(std::move(s));
  }

  auto segment = shm::open_segment(os_name, sys::Deadline::after(shm::kCreationGrace));
  auto s = make_state(Kind::Named, std::string(name), std::move(os_name));
  shm::Trailer& t = *segment.trailer;
  const int pid = sys::current_pid();
  const std::uint64_t start_time = start_time_of_self(pid);
  {
    shm::TrailerLock lock(t);
    if (t.state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(shm::State::Removed))
      throw name_gone(s->os_name, "shm_open");
    // A full table: the handle works, but this process does not hold the name (documented
    // in the format: a 65th concurrent user may see the name go when the others end).
    if (shm::attach(t, pid, start_time)) {
      s->attached_pid = pid;
      s->attached_start_time = start_time;
    }
  }
  s->fd = std::move(segment.fd);
  s->mapping = std::move(segment.mapping);
  s->trailer = &t;
  s->size = segment.size;
  s->device = segment.device;
  s->inode = segment.inode;
  s->creator_pid = t.creator_pid;
  s->creator_start_time = t.creator_start_time;
  return SharedMemory(std::move(s));
}

SharedMemory SharedMemory::open_or_create(std::string_view name, std::size_t size,
                                          SharedMemoryOptions options) {
  // Exclusive create, open when it exists; the name may vanish in between (removed by its
  // last user), and then the create is tried again. Bounded: each round needs another
  // process to create and remove the name in the meantime.
  for (int round = 1;; ++round) {
    try {
      return create(name, size, options);
    } catch (const FileExistsError&) {
      if (round == kOpenOrCreateRounds) throw;
    }
    try {
      return open(name);
    } catch (const FileNotFoundError&) {
      if (round == kOpenOrCreateRounds) throw;
    }
  }
}

SharedMemory SharedMemory::anonymous(std::size_t size) {
  check_size(size, "an anonymous shared memory segment");
  auto s = make_state(Kind::Anonymous, "", "");
  s->fd = sys::memfd("ipckit-anonymous");
  sys::set_file_size(s->fd.get(), size, "memfd");
  s->mapping = sys::map_fd(s->fd.get(), size, true, "memfd");
  s->size = size;
  s->created = true;
  return SharedMemory(std::move(s));
}

SharedMemory SharedMemory::from_fd(int fd) {
  sys::UniqueFd owned(fd);
  const std::string subject = "fd " + std::to_string(fd);
  if (!owned.valid()) throw ValueError("cannot map " + subject + ": not an fd");
  const auto status = sys::file_status(owned.get(), subject);
  if (status.size == 0) throw ValueError("cannot map " + subject + ": it is empty");
  const bool writable = sys::fd_writable(owned.get(), subject);
  auto s = make_state(Kind::Anonymous, "", "");
  s->mapping = sys::map_fd(owned.get(), status.size, writable, subject);
  s->fd = std::move(owned);
  s->size = status.size;
  // The fd of a named ipckit segment: show the user's bytes, not the trailer.
  shm::Trailer* trailer = nullptr;
  if (shm::find_trailer(s->mapping.bytes(), trailer) == shm::TrailerCheck::Valid) s->size = trailer->size;
  return SharedMemory(std::move(s));
}

SharedMemory SharedMemory::map_file(const std::string& path, FileMappingOptions options) {
  const bool writable = !options.read_only;
  auto s = make_state(Kind::File, path, path);
  try {
    s->fd = sys::open_file(path, writable, false);
  } catch (const FileNotFoundError&) {
    if (!options.create) throw;
    s->fd = sys::open_file(path, writable, true);
    s->created = true;
  }
  std::size_t size = sys::file_status(s->fd.get(), path).size;
  if (options.size > size) {
    if (!writable)
      throw ValueError("cannot grow " + quoted(path) + " to " + std::to_string(options.size) +
                       " bytes: it is mapped read-only");
    sys::set_file_size(s->fd.get(), options.size, path);
    size = options.size;
  }
  if (size == 0)
    throw ValueError("cannot map " + quoted(path) + ": it is empty (give FileMappingOptions::size)");
  s->mapping = sys::map_fd(s->fd.get(), size, writable, path);
  s->size = size;
  return SharedMemory(std::move(s));
}

std::span<std::byte> SharedMemory::buf() const {
  if (closed()) throw ValueError("cannot use a closed SharedMemory");
  return {state_->mapping.data(), state_->size};
}

void SharedMemory::bad_view(std::size_t offset, std::size_t bytes, std::size_t alignment, std::size_t size) {
  throw ValueError("a view of " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                   " (alignment " + std::to_string(alignment) + ") does not fit in a segment of " +
                   std::to_string(size) + " bytes, or is not aligned");
}

std::size_t SharedMemory::size() const noexcept { return state_ ? state_->size : 0; }

const std::string& SharedMemory::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

bool SharedMemory::created() const noexcept { return state_ && state_->created; }

bool SharedMemory::closed() const noexcept {
  return !state_ || !state_->open.load(std::memory_order_acquire);
}

int SharedMemory::fd() const {
  if (closed()) throw ValueError("cannot use a closed SharedMemory");
  return state_->fd.get();
}

void SharedMemory::close() {
  if (!state_) return;
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (!s.open.load(std::memory_order_relaxed)) return;
  s.open.store(false, std::memory_order_release);
  // Only the process that attached detaches: a forked child's copy of the handle holds
  // no slot of its own.
  const bool detach = s.trailer != nullptr && s.attached_pid != 0 && s.attached_pid == sys::current_pid();
  shm::Trailer* trailer = s.trailer;
  s.trailer = nullptr;
  std::exception_ptr failure;
  if (detach) {
    try {
      shm::TrailerLock trailer_lock(*trailer);
      shm::detach(*trailer, s.attached_pid, s.attached_start_time);
      shm::remove_if_abandoned(*trailer, s.os_name);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  s.mapping.reset();
  s.fd.reset();
  if (failure) std::rethrow_exception(failure);
}

void SharedMemory::unlink() {
  if (!state_) throw ValueError("cannot unlink a SharedMemory that has no segment");
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  switch (s.kind) {
    case Kind::Anonymous:
      throw ValueError("cannot unlink an anonymous shared memory segment: it has no name");
    case Kind::File: sys::remove_file(s.os_name); return;
    case Kind::Foreign: sys::shm_remove(s.os_name); return;
    case Kind::Named: break;
  }
  bool tracked = false;
  with_trailer(s, [&](shm::Trailer& t) {
    // A Removed segment's name is gone (or belongs to another segment now): never remove it.
    if (t.state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(shm::State::Removed))
      throw name_gone(s.os_name, "shm_unlink");
    tracked = t.tracked.load(std::memory_order_relaxed) != 0;
    try {
      sys::shm_remove(s.os_name);
    } catch (const FileNotFoundError&) {  // removed behind ipckit's back (rm /dev/shm/...)
      t.state.store(static_cast<std::uint32_t>(shm::State::Removed), std::memory_order_relaxed);
      throw;
    }
    t.state.store(static_cast<std::uint32_t>(shm::State::Removed), std::memory_order_relaxed);
  });
  if (tracked) shm::notify_forget(shm::Notice::Unlinked, s.id());
}

void SharedMemory::untrack() {
  if (!state_) return;
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.kind != Kind::Named) return;  // only named ipckit segments are ever tracked
  bool was_tracked = false;
  with_trailer(s,
               [&](shm::Trailer& t) { was_tracked = t.tracked.exchange(0, std::memory_order_relaxed) != 0; });
  if (was_tracked) shm::notify_forget(shm::Notice::Untracked, s.id());
}

}  // namespace ipckit
