// Process: fork-based children with pidfds, reaped without SIGCHLD.
//
// Why pidfds: a pidfd names one process for good (no pid-reuse race for signals), and it
// becomes readable when the process ends, so join(timeout) and wait() poll it instead of
// installing a SIGCHLD handler, which would be process-wide state owned by the
// application. The exit status is then collected with a non-blocking waitpid.
//
// Error reporting: before fork, a non-blocking close-on-exec pipe is made; the child
// writes "<type>: <what>" into it when an exception escapes its target, then exits. The
// parent reads it after reaping. The message is written before the child exits, so it is
// complete once the child is reaped; the read end is non-blocking because children
// forked later also hold copies of the write end (no EOF to wait for).
#include "ipckit/process.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <typeinfo>

#include "ipckit/codec.hpp"  // detail::type_name
#include "ipckit/error.hpp"
#include "objects/sync_layout.hpp"
#include "sys/io.hpp"
#include "sys/proc.hpp"

namespace ipckit {
namespace {

using std::chrono::nanoseconds;

constexpr std::size_t kMaxErrorText = 4000;  // below PIPE_BUF-sized pipe capacity
constexpr auto kDaemonGrace = std::chrono::seconds(1);

// --- Process-wide state ---------------------------------------------------------------
//
// A forked child writes as little memory as it can before its target runs: each page it
// writes is copied (copy-on-write), and those copies are most of what start() + join()
// costs beyond fork() itself. So the child writes only `lineage` (a few words in static
// storage); what belongs to one process — the registry of its children, the counter
// behind "Process-N", the pidfd of its parent — is made again on first use in the child,
// when it finds that it was made for another generation (per_process() below).
struct Lineage {
  std::atomic<unsigned> generation{0};  // 0 in the main process, +1 in each forked child
  int parent_pid = 0;                   // 0 in the main process
  const Process::State* self = nullptr;    // what this child runs; null in the main process
  const Process::State* parent = nullptr;  // what the parent ran; null if it is the main one
};
Lineage lineage;

unsigned generation() noexcept { return lineage.generation.load(std::memory_order_acquire); }

// One T per process, made lazily; T(previous) gets the parent's copy, if any, so that
// what carries over (the "Process-1:2" numbering) can.
template <class T>
T& per_process(std::atomic<T*>& slot) {
  const unsigned gen = generation();
  T* current = slot.load(std::memory_order_acquire);
  if (current != nullptr && current->generation == gen) return *current;
  auto* fresh = new T(gen, current);  // the old one is left alone: it may be locked
  if (slot.compare_exchange_strong(current, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread of this process made it first
  return *current;
}

// Names: "Process-N" in the main process, "Process-<parent's number>:N" below it.
struct Naming {
  Naming(unsigned gen, const Naming* parent);
  const unsigned generation;
  std::string number;  // "" in the main process, then "3", "3:1", ...
  std::atomic<int> made{0};
};
std::atomic<Naming*> naming_slot{nullptr};

// The parent's pidfd, opened on first use (see parent_process()).
struct ParentWatch {
  ParentWatch(unsigned gen, const ParentWatch*) : generation(gen) {}
  const unsigned generation;
  std::mutex mutex;
  std::shared_ptr<const int> pidfd;  // guarded by mutex
};
std::atomic<ParentWatch*> parent_watch_slot{nullptr};

}  // namespace

struct Process::State {
  std::mutex mutex;  // guards everything below except `target`, used only by start()
  Target target;
  std::string name;
  int index = 0;  // n in "Process-n": the how-manieth Process made in this process
  unsigned generation = 0;  // of the process that made it: only that one may wait/signal
  Process::State* prev_live = nullptr;  // in the registry's list; guarded by its mutex
  Process::State* next_live = nullptr;
  bool daemon = false;
  bool starting = false;
  bool started = false;
  bool closed = false;
  int pid = 0;
  sys::UniqueFd pidfd;
  sys::UniqueFd error_pipe;  // read end
  std::optional<int> exitcode;
  std::optional<std::string> error;

  bool running() const { return started && !exitcode; }
  std::string describe() const {
    return "Process '" + name + "'" + (pid ? " (pid " + std::to_string(pid) + ")" : "");
  }
  void require_started(const char* what) const {
    if (!started) throw ValueError("cannot " + std::string(what) + " " + describe() + ": not started");
  }
  // Only the process that made a Process may start, wait for or signal it (a forked
  // copy of the object in a child names the child's sibling, not its own child).
  bool owned() const noexcept { return generation == ipckit::generation(); }
  void require_owner(const char* what) const {
    if (!owned())
      throw ValueError("cannot " + std::string(what) + " " + describe() +
                       ": only the process that made it may (as Python: \"can only join a child process\")");
  }
  void require_open(const char* what) const {
    if (closed) throw ValueError("cannot " + std::string(what) + " " + describe() + ": closed");
  }

  // Signals a child that has not ended (one that has is left alone).
  void send_signal(int signal, const char* what) {
    std::lock_guard lock(mutex);
    require_started(what);
    require_owner(what);
    require_open(what);
    if (!exitcode) sys::signal_pidfd(pidfd.get(), signal, describe());
  }

  // Collects the exit status if the child has ended. Caller holds `mutex`.
  bool try_reap() {
    if (!started) return false;
    if (exitcode) return true;
    if (!owned()) return false;
    const auto code = sys::reap_child(pid, /*block=*/false, describe());
    if (!code) return false;
    exitcode = code;
    char text[kMaxErrorText];
    std::string message;
    for (;;) {
      const auto r = sys::read_some(error_pipe.get(), std::as_writable_bytes(std::span(text)));
      if (!r.ok() || r.bytes == 0) break;
      message.append(text, r.bytes);
    }
    if (!message.empty()) error = std::move(message);
    error_pipe.reset();
    return true;
  }
};

namespace {

// Started, unreaped children of this process, for active_children(), reaping on start()
// and ending them at exit: an intrusive list, so registering allocates nothing.
struct Registry {
  Registry(unsigned gen, const Registry*) : generation(gen) {}
  const unsigned generation;
  std::mutex mutex;
  Process::State* head = nullptr;  // guarded by mutex

  void add(Process::State* s) {
    std::lock_guard lock(mutex);
    s->next_live = head;
    if (head != nullptr) head->prev_live = s;
    head = s;
  }
  void remove(Process::State* s) {
    std::lock_guard lock(mutex);
    if (s->prev_live == nullptr && head != s) return;  // not listed
    (s->prev_live ? s->prev_live->next_live : head) = s->next_live;
    if (s->next_live != nullptr) s->next_live->prev_live = s->prev_live;
    s->prev_live = s->next_live = nullptr;
  }
  template <class F>
  void for_each(F&& f) {
    std::lock_guard lock(mutex);
    for (Process::State* s = head; s != nullptr; s = s->next_live) f(*s);
  }
};
std::atomic<Registry*> registry_slot{nullptr};
Registry& registry() { return per_process(registry_slot); }

// Removes `s` from the registry of the process that started it; in a forked copy of that
// process the old list is not ours (and its lock may have been held at fork).
void unregister(Process::State& s) {
  if (s.started && s.generation == generation()) registry().remove(&s);
}

Naming::Naming(unsigned gen, const Naming* parent) : generation(gen) {
  if (lineage.self != nullptr) {
    const std::string& above = parent != nullptr ? parent->number : std::string();
    number = (above.empty() ? "" : above + ":") + std::to_string(lineage.self->index);
  }
}

// Ends a child as ~Process does. Never throws.
void end_child(Process::State& s) noexcept;

void at_exit() {
  std::vector<Process::State*> children;
  registry().for_each([&](Process::State& s) { children.push_back(&s); });
  for (auto* s : children) end_child(*s);
}

// Reaps every child that has ended. Caller must not hold any State mutex.
void reap_ended_children() {
  registry().for_each([](Process::State& s) {
    std::lock_guard child_lock(s.mutex);
    try {
      s.try_reap();
    } catch (const Error&) {  // reaped elsewhere (e.g. waitpid(-1) by the application)
    }
  });
}

// Blocks until the child's pidfd is readable (it ended) or the deadline passes, without
// holding the State mutex, then reaps. True when reaped.
bool wait_and_reap(Process::State& s, const sys::Deadline& deadline) {
  int fd = -1;
  {
    std::lock_guard lock(s.mutex);
    s.require_started("join");
    s.require_owner("join");
    if (s.exitcode) return true;
    s.require_open("join");
    fd = s.pidfd.get();
  }
  if (!sys::wait_readable(fd, deadline)) return false;
  std::lock_guard lock(s.mutex);
  if (s.exitcode) return true;
  // The pidfd is readable, so the child is a zombie: a non-blocking reap collects it.
  return s.try_reap();
}

void end_child(Process::State& s) noexcept {
  try {
    bool daemon = false;
    {
      std::lock_guard lock(s.mutex);
      if (!s.running() || s.closed || !s.owned()) return;
      daemon = s.daemon;
      if (daemon) sys::signal_pidfd(s.pidfd.get(), sys::kSigTerm, s.describe());
    }
    if (daemon && !wait_and_reap(s, sys::Deadline::after(kDaemonGrace))) {
      {
        std::lock_guard lock(s.mutex);
        sys::signal_pidfd(s.pidfd.get(), sys::kSigKill, s.describe());
      }
    }
    wait_and_reap(s, sys::Deadline::never());
  } catch (...) {  // destructors and atexit never throw; the child was ours to end
  }
}

[[noreturn]] void run_child(Process::State& s, int error_fd) noexcept {
  int code = 0;
  std::string failure;
  try {
    s.target();
  } catch (const SystemExit& e) {
    code = e.code;
  } catch (const std::exception& e) {
    failure = detail::type_name(typeid(e)) + ": " + e.what();
    code = 1;
  } catch (...) {
    failure = "unknown exception (not derived from std::exception)";
    code = 1;
  }
  if (!failure.empty()) {
    if (failure.size() > kMaxErrorText) failure.resize(kMaxErrorText);
    sys::flush_standard_streams();
    std::fprintf(stderr, "ipckit: %s (pid %d) ended by an exception: %s\n", s.name.c_str(),
                 sys::current_pid(), failure.c_str());
    const sys::ConstBytes part = std::as_bytes(std::span(failure));
    sys::write_some(error_fd, std::span(&part, 1), false);
  }
  if (code == 0) detail::leave_barriers();  // an orderly end is not a party's death
  sys::flush_standard_streams();  // as Python flushes sys.stdout and sys.stderr
  sys::exit_immediately(code);
}

}  // namespace

Process::Process(Target target, ProcessOptions options) : state_(std::make_unique<State>()) {
  state_->target = std::move(target);
  state_->daemon = options.daemon;
  Naming& naming = per_process(naming_slot);
  state_->index = naming.made.fetch_add(1) + 1;
  state_->generation = naming.generation;
  if (options.name.empty()) {
    const std::string& prefix = naming.number;
    state_->name = "Process-" + (prefix.empty() ? "" : prefix + ":") + std::to_string(state_->index);
  } else {
    state_->name = std::move(options.name);
  }
}

Process::Process(Target target, std::string name)
    : Process(std::move(target), ProcessOptions{std::move(name), false}) {}

Process::Process(Process&&) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process replaced(std::move(*this));  // ended as by ~Process at the end of this scope
    state_ = std::move(other.state_);
  }
  return *this;
}

Process::~Process() {
  if (!state_) return;
  end_child(*state_);
  unregister(*state_);
}

Process::State& Process::state() const {
  if (!state_) throw ValueError("use of a moved-from Process");
  return *state_;
}

void Process::start() {
  State& s = state();
  {
    std::lock_guard lock(s.mutex);
    s.require_open("start");
    s.require_owner("start");
    if (s.started || s.starting) throw ValueError("cannot start " + s.describe() + " twice");
    if (!s.target) throw ValueError("cannot start " + s.describe() + ": it has no target");
    s.starting = true;
  }
  static std::once_flag exit_hook;
  std::call_once(exit_hook, [] { std::atexit(at_exit); });
  reap_ended_children();

  const std::string subject = "start " + s.describe();
  auto [error_read, error_write] = [&] {
    try {
      return sys::make_pipe(subject, /*nonblocking=*/true);
    } catch (...) {
      std::lock_guard lock(s.mutex);
      s.starting = false;
      throw;
    }
  }();
  // Flush what the standard streams hold, or the child would print it a second time.
  sys::flush_standard_streams();
  const int parent = sys::current_pid();
  int pid = 0;
  try {
    pid = sys::fork_process(subject);
  } catch (...) {
    std::lock_guard lock(s.mutex);
    s.starting = false;
    throw;
  }

  if (pid == 0) {
    // The child. Only this thread exists here, and locks other threads held stay locked
    // in its copy: it touches no lock and writes only `lineage` before the target runs.
    error_read.reset();
    // A daemon whose parent died before prctl() took effect ends as the kernel would have
    // ended it a moment later.
    if (s.daemon && !sys::set_parent_death_signal(sys::kSigKill, parent))
      sys::signal_pid(sys::current_pid(), sys::kSigKill);
    lineage.parent = lineage.self;
    lineage.self = &s;
    lineage.parent_pid = parent;
    lineage.generation.fetch_add(1, std::memory_order_acq_rel);
    run_child(s, error_write.get());
  }

  error_write.reset();
  sys::UniqueFd pidfd;
  try {
    pidfd = sys::open_pidfd(pid, subject);
  } catch (...) {
    // Without a pidfd the child cannot be watched: end it now rather than lose it.
    sys::signal_pid(pid, sys::kSigKill);
    sys::reap_child(pid, /*block=*/true, subject);
    std::lock_guard lock(s.mutex);
    s.starting = false;
    throw;
  }
  {
    std::lock_guard lock(s.mutex);
    s.pid = pid;
    s.pidfd = std::move(pidfd);
    s.error_pipe = std::move(error_read);
    s.started = true;
    s.starting = false;
  }
  registry().add(&s);
}

void Process::join() { wait_and_reap(state(), sys::Deadline::never()); }

bool Process::join(nanoseconds timeout) {
  return wait_and_reap(state(), sys::Deadline::after(timeout));
}

bool Process::is_alive() {
  std::lock_guard lock(state().mutex);
  if (!state().started || state().closed) return false;
  return !state().try_reap();
}

int Process::pid() const {
  std::lock_guard lock(state().mutex);
  return state().pid;
}

std::optional<int> Process::exitcode() {
  std::lock_guard lock(state().mutex);
  if (!state().closed) state().try_reap();
  return state().exitcode;
}

std::optional<std::string> Process::error() {
  std::lock_guard lock(state().mutex);
  if (!state().closed) state().try_reap();
  return state().error;
}

void Process::terminate() { state().send_signal(sys::kSigTerm, "terminate"); }

void Process::kill() { state().send_signal(sys::kSigKill, "kill"); }

void Process::close() {
  {
    std::lock_guard lock(state().mutex);
    State& s = state();
    if (s.closed) return;
    if (s.started && !s.try_reap())
      throw ValueError("cannot close " + s.describe() + ": it is still running");
    s.pidfd.reset();
    s.error_pipe.reset();
    s.target = nullptr;
    s.closed = true;
  }
  unregister(state());
}

const std::string& Process::name() const { return state().name; }

void Process::set_name(std::string name) {
  std::lock_guard lock(state().mutex);
  state().name = std::move(name);
}

bool Process::daemon() const {
  std::lock_guard lock(state().mutex);
  return state().daemon;
}

void Process::set_daemon(bool daemon) {
  std::lock_guard lock(state().mutex);
  if (state().started || state().starting)
    throw ValueError("cannot change daemon of " + state().describe() + " after start");
  state().daemon = daemon;
}

int Process::sentinel() const {
  std::lock_guard lock(state().mutex);
  state().require_started("get the sentinel of");
  state().require_open("get the sentinel of");
  return state().pidfd.get();
}

WaitHandle Process::wait_handle() const { return WaitHandle{sentinel(), nullptr, nullptr}; }

ProcessInfo current_process() {
  const Process::State* self = lineage.self;
  return self != nullptr ? ProcessInfo{self->name, sys::current_pid(), self->daemon}
                         : ProcessInfo{"MainProcess", sys::current_pid(), false};
}

std::vector<ProcessInfo> active_children() {
  reap_ended_children();
  std::vector<ProcessInfo> out;
  registry().for_each([&](Process::State& s) {
    std::lock_guard child_lock(s.mutex);
    if (s.running()) out.push_back(ProcessInfo{s.name, s.pid, s.daemon});
  });
  return out;
}

int cpu_count() { return sys::usable_cpu_count(); }

// --- ParentProcess ---------------------------------------------------------------

std::optional<ParentProcess> parent_process() {
  const int ppid = lineage.parent_pid;
  if (ppid == 0) return std::nullopt;
  ParentWatch& watch = per_process(parent_watch_slot);
  std::lock_guard lock(watch.mutex);
  if (!watch.pidfd) {
    // Opened lazily. If getppid() still names the parent after the open, the pidfd is the
    // parent's; otherwise the parent had ended (we were re-parented) and -1 says so.
    sys::UniqueFd fd = sys::try_open_pidfd(ppid);
    if (sys::parent_pid() != ppid) fd.reset();
    watch.pidfd = std::shared_ptr<const int>(new int(fd.release()), [](const int* p) {
      const sys::UniqueFd closer(*p);
      delete p;
    });
  }
  return ParentProcess(ppid, lineage.parent != nullptr ? lineage.parent->name : "MainProcess",
                       watch.pidfd);
}

bool ParentProcess::is_alive() const { return !join(nanoseconds::zero()); }

bool ParentProcess::join(nanoseconds timeout) const {
  if (*pidfd_ < 0) return true;
  return sys::wait_readable(*pidfd_, sys::Deadline::after(timeout));
}

int ParentProcess::sentinel() const {
  if (*pidfd_ < 0) throw ValueError("the parent process (pid " + std::to_string(pid_) + ") has ended");
  return *pidfd_;
}

WaitHandle ParentProcess::wait_handle() const {
  return WaitHandle{*pidfd_, this, [](const void* self) {
                      return *static_cast<const ParentProcess*>(self)->pidfd_ < 0;
                    }};
}

}  // namespace ipckit
