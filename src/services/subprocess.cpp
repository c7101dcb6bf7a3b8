// subprocess: Popen and run over sys::spawn (posix_spawn). The parent's pipe ends are
// non-blocking only inside communicate(), which moves input and output with one poll()
// loop so that neither side can fill a pipe the other is not draining.
#include "ipckit/subprocess.hpp"

#include <algorithm>
#include <mutex>
#include <tuple>

#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/proc.hpp"
#include "sys/spawn.hpp"

namespace ipckit::subprocess {

using std::chrono::nanoseconds;

namespace {

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

std::string status_text(int returncode) {
  return returncode < 0 ? "was ended by signal " + std::to_string(-returncode)
                        : "exited with status " + std::to_string(returncode);
}

}  // namespace

CalledProcessError::CalledProcessError(std::vector<std::string> args, int returncode, std::string out, std::string err)
    : Error("'" + joined(args) + "' " + status_text(returncode)),
      args_(std::move(args)),
      returncode_(returncode),
      out_(std::move(out)),
      err_(std::move(err)) {}

TimeoutExpired::TimeoutExpired(std::vector<std::string> args, nanoseconds timeout, std::string out, std::string err)
    : Error("'" + joined(args) + "' did not finish within " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms"),
      args_(std::move(args)),
      timeout_(timeout),
      out_(std::move(out)),
      err_(std::move(err)) {}

struct Popen::State {
  std::vector<std::string> args;
  int pid = -1;
  sys::UniqueFd pidfd;
  bool process_group = false;
  std::optional<int> returncode;
  sys::UniqueFd in;   // the parent's ends of PIPE streams
  sys::UniqueFd out;
  sys::UniqueFd err;
  // What communicate() has moved so far (kept across a timeout).
  std::string out_text;
  std::string err_text;
  std::size_t input_sent = 0;
  std::mutex mutex;

  std::string subject() const { return "'" + args.at(0) + "' (pid " + std::to_string(pid) + ")"; }

  // Reaps the child if it has ended (or, with `block`, once it has). Needs `mutex`.
  std::optional<int> reap(bool block) {
    if (!returncode) returncode = sys::reap_child(pid, block, subject());
    return returncode;
  }
  std::optional<int> wait_until(const sys::Deadline& deadline) {
    if (returncode) return returncode;
    if (!deadline.is_never() && !sys::wait_readable(pidfd.get(), deadline)) return reap(false);
    return reap(true);
  }
};

Popen::Popen(std::vector<std::string> args, Options options) : state_(std::make_unique<State>()) {
  if (args.empty()) throw ValueError("Popen: no program given (args is empty)");
  if (options.in.kind == Redirect::Kind::Stdout || options.out.kind == Redirect::Kind::Stdout)
    throw ValueError("Popen: only stderr can go to STDOUT");
  State& s = *state_;
  s.args = args;
  s.process_group = options.new_process_group;

  sys::SpawnRequest request;
  request.argv = options.shell ? std::vector<std::string>{"/bin/sh", "-c"} : std::vector<std::string>{};
  request.argv.insert(request.argv.end(), args.begin(), args.end());
  request.cwd = options.cwd;
  request.pass_fds = options.pass_fds;
  request.new_process_group = options.new_process_group;
  if (options.env || !options.extra_env.empty()) {
    std::map<std::string, std::string> env;
    if (options.env) {
      env = *options.env;
    } else {
      for (const auto& entry : sys::environment()) {
        const auto eq = entry.find('=');
        if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
      }
    }
    for (const auto& [name, value] : options.extra_env) env[name] = value;
    request.env.emplace();
    for (const auto& [name, value] : env) request.env->push_back(name + "=" + value);
  }

  // The child's ends live until the child has them (they are closed when this returns).
  sys::UniqueFd dev_null;
  std::vector<sys::UniqueFd> child_ends;
  const auto child_fd = [&](const Redirect& r, bool child_reads, sys::UniqueFd& parent_end) -> int {
    switch (r.kind) {
      case Redirect::Kind::Inherit:
      case Redirect::Kind::Stdout:
        return -1;
      case Redirect::Kind::Fd:
        if (r.fd < 0) throw ValueError("Popen: from_fd(" + std::to_string(r.fd) + ") is not an fd");
        return r.fd;
      case Redirect::Kind::DevNull:
        if (!dev_null) dev_null = sys::open_dev_null();
        return dev_null.get();
      case Redirect::Kind::Pipe: {
        auto [read_end, write_end] = sys::make_pipe("Popen " + args[0]);
        parent_end = std::move(child_reads ? write_end : read_end);
        child_ends.push_back(std::move(child_reads ? read_end : write_end));
        return child_ends.back().get();
      }
    }
    return -1;
  };
  request.stdin_fd = child_fd(options.in, true, s.in);
  request.stdout_fd = child_fd(options.out, false, s.out);
  request.stderr_fd = child_fd(options.err, false, s.err);
  request.stderr_to_stdout = options.err.kind == Redirect::Kind::Stdout;

  sys::Spawned spawned = sys::spawn(request);
  s.pid = spawned.pid;
  s.pidfd = std::move(spawned.pidfd);
}

namespace {

// Closes the parent's pipe ends (a child reading its input to the end can finish) and
// waits for the child.
void finish(std::unique_ptr<Popen::State>& state) noexcept;

}  // namespace

Popen::Popen(Popen&&) noexcept = default;
Popen& Popen::operator=(Popen&& other) noexcept {
  if (this != &other) {
    finish(state_);
    state_ = std::move(other.state_);
  }
  return *this;
}
Popen::~Popen() { finish(state_); }

namespace {

void finish(std::unique_ptr<Popen::State>& state) noexcept {
  if (!state) return;
  Popen::State& s = *state;
  s.in.reset();
  s.out.reset();
  s.err.reset();
  try {
    std::lock_guard lock(s.mutex);
    s.reap(true);
  } catch (const Error&) {  // reaped elsewhere (waitpid(-1) by the application)
  }
  state.reset();
}

}  // namespace

Popen::State& Popen::state(const char* what) const {
  if (!state_) throw ValueError(std::string(what) + " on a moved-from Popen");
  return *state_;
}

int Popen::pid() const noexcept { return state_ ? state_->pid : -1; }
const std::vector<std::string>& Popen::args() const { return state("args").args; }

std::optional<int> Popen::returncode() const {
  State& s = state("returncode");
  std::lock_guard lock(s.mutex);
  return s.returncode;
}

std::optional<int> Popen::poll() {
  State& s = state("poll");
  std::lock_guard lock(s.mutex);
  return s.reap(false);
}

int Popen::wait() {
  State& s = state("wait");
  std::lock_guard lock(s.mutex);
  return *s.wait_until(sys::Deadline::never());
}

int Popen::wait(nanoseconds timeout) {
  State& s = state("wait");
  std::lock_guard lock(s.mutex);
  if (auto code = s.wait_until(sys::Deadline::after(timeout))) return *code;
  throw TimeoutExpired(s.args, timeout, {}, {});
}

std::pair<std::string, std::string> Popen::communicate(std::string_view input, std::optional<nanoseconds> timeout) {
  State& s = state("communicate");
  std::lock_guard lock(s.mutex);
  const sys::Deadline deadline = sys::Deadline::within(timeout);
  // (After a timeout the input may all be out already, and stdin closed.)
  if (!s.in && s.input_sent < input.size())
    throw ValueError("communicate: input given but the child's stdin is not a PIPE");
  for (auto* fd : {&s.in, &s.out, &s.err})
    if (*fd) sys::set_nonblocking(fd->get(), true, s.subject());
  if (s.in && s.input_sent >= input.size()) s.in.reset();  // nothing (more) to write: end of input
  std::byte buffer[65536];
  while (s.in || s.out || s.err) {
    sys::PollEvent events[3] = {{s.in.get(), true, false}, {s.out.get(), false, false}, {s.err.get(), false, false}};
    // The deadline holds even while data keeps flowing.
    if (deadline.expired() || sys::poll_events(events, deadline) == 0)
      throw TimeoutExpired(s.args, timeout.value_or(nanoseconds::zero()), s.out_text, s.err_text);
    if (events[0].ready) {
      const sys::ConstBytes part = std::as_bytes(std::span(input.substr(s.input_sent)));
      const auto r = sys::write_some(s.in.get(), std::span(&part, 1), false);
      if (r.ok()) s.input_sent += r.bytes;
      // A child that stopped reading (EPIPE) does not want the rest: as Python, not an error.
      if ((!r.ok() && !sys::is_would_block(r.error)) || s.input_sent >= input.size()) s.in.reset();
    }
    for (auto [event, fd, text] : {std::tuple{&events[1], &s.out, &s.out_text}, std::tuple{&events[2], &s.err, &s.err_text}}) {
      if (!event->ready) continue;
      const auto r = sys::read_some(fd->get(), buffer);
      if (r.ok() && r.bytes > 0) {
        text->append(reinterpret_cast<const char*>(buffer), r.bytes);
      } else if (r.ok() || !sys::is_would_block(r.error)) {
        fd->reset();  // end of stream (or an error: nothing more will come)
      }
    }
  }
  if (!s.wait_until(deadline)) throw TimeoutExpired(s.args, timeout.value_or(nanoseconds::zero()), s.out_text, s.err_text);
  return {std::exchange(s.out_text, {}), std::exchange(s.err_text, {})};
}

int Popen::stdin_fd() const noexcept { return state_ && state_->in ? state_->in.get() : -1; }
int Popen::stdout_fd() const noexcept { return state_ && state_->out ? state_->out.get() : -1; }
int Popen::stderr_fd() const noexcept { return state_ && state_->err ? state_->err.get() : -1; }

void Popen::close_stdin() {
  State& s = state("close_stdin");
  std::lock_guard lock(s.mutex);
  s.in.reset();
}

// Without the mutex, so that another thread may end a child this one waits for. The
// pidfd outlives reaping, and signalling a reaped child through it is ESRCH, ignored.
void Popen::send_signal(int signal) {
  const State& s = state("send_signal");
  sys::signal_pidfd(s.pidfd.get(), signal, s.subject());
}
void Popen::terminate() { send_signal(sys::kSigTerm); }
void Popen::kill() { send_signal(sys::kSigKill); }

void Popen::kill_group(int signal) {
  const State& s = state("kill_group");
  if (!s.process_group) throw ValueError("kill_group: " + s.subject() + " was not started with new_process_group");
  sys::signal_process_group(s.pid, signal);
}

WaitHandle Popen::wait_handle() const { return WaitHandle{state("wait_handle").pidfd.get(), nullptr, nullptr}; }

void CompletedProcess::check_returncode() const {
  if (returncode != 0) throw CalledProcessError(args, returncode, out, err);
}

CompletedProcess run(std::vector<std::string> args, RunOptions options) {
  Options popen{options.in, options.out, options.err, options.shell, std::move(options.cwd),
                std::move(options.env), std::move(options.extra_env), options.new_process_group,
                std::move(options.pass_fds)};
  if (options.input) popen.in = PIPE;
  if (options.capture_output) {
    if (popen.out.kind == Redirect::Kind::Inherit) popen.out = PIPE;
    if (popen.err.kind == Redirect::Kind::Inherit) popen.err = PIPE;
  }
  Popen child(std::move(args), std::move(popen));
  CompletedProcess done{child.args(), 0, {}, {}};
  try {
    std::tie(done.out, done.err) = child.communicate(options.input.value_or(""), options.timeout);
  } catch (const TimeoutExpired&) {
    // As Python: end the child and wait for it, not for grandchildren that may hold its
    // pipes; the exception holds what it wrote so far.
    if (options.new_process_group) child.kill_group(sys::kSigKill);
    child.kill();
    child.wait();
    throw;
  }
  done.returncode = *child.returncode();
  if (options.check) done.check_returncode();
  return done;
}

}  // namespace ipckit::subprocess
