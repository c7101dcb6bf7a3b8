// subprocess (subprocess.hpp): run() and Popen against real programs — exit statuses,
// captured and merged output, input, check and timeouts (with the child and its process
// group killed), start errors raised in this process, cwd, environments, the shell and
// its absence, large transfers both ways, signals, DEVNULL and from_fd, pass_fds and the
// fds a child must not inherit, the pipe ends used directly, and lifetime.
#include "ipckit/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using SubprocessTest = ipckit::test::Test;
namespace sp = ipckit::subprocess;
using sp::DEVNULL;
using sp::PIPE;
using sp::STDOUT;
using Env = std::map<std::string, std::string>;
using Clock = std::chrono::steady_clock;

// An fd of the test, closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// {read end, write end}, close-on-exec unless `cloexec` is false.
std::pair<Fd, Fd> make_pipe(bool cloexec = true) {
  int fds[2];
  if (::pipe2(fds, cloexec ? O_CLOEXEC : 0) != 0) throw std::runtime_error("pipe2 failed");
  return {Fd(fds[0]), Fd(fds[1])};
}

// Reads `fd` to its end.
std::string read_all(int fd) {
  std::string out;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return out;
    }
  }
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("write failed");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// `n` bytes that differ from position to position, so that lost, repeated or reordered
// blocks show.
std::string pattern(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 2654435761u) >> 13);
  return out;
}

// A temporary file holding `content`, with `mode`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view content, mode_t mode = 0600) {
    path_ = "/tmp/" + ipckit::test::unique_name("ipckit-subprocess") + "-XXXXXX";
    Fd fd(::mkstemp(path_.data()));
    if (fd.get() < 0) throw std::runtime_error("mkstemp failed");
    write_all(fd.get(), content);
    ::fchmod(fd.get(), mode);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A temporary directory, removed (with the files the test put in it) at the end.
class TempDir {
 public:
  TempDir() {
    path_ = "/tmp/" + ipckit::test::unique_name("ipckit-subprocess-dir") + "-XXXXXX";
    if (::mkdtemp(path_.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  }
  ~TempDir() {
    for (const auto& file : files_) ::unlink(file.c_str());
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string add(const std::string& name, std::string_view content, mode_t mode) {
    const std::string file = path_ + "/" + name;
    Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (fd.get() < 0) throw std::runtime_error("open failed");
    write_all(fd.get(), content);
    files_.push_back(file);
    return file;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string real_path(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) != nullptr ? resolved : path;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

// Waits (up to `timeout`) for process `pid` — not a child of this one — to end. True once
// it has ended (or was already gone).
bool ends_within(int pid, std::chrono::milliseconds timeout) {
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.get() < 0) return errno == ESRCH;
  pollfd item{pidfd.get(), POLLIN, 0};
  return ::poll(&item, 1, static_cast<int>(timeout.count())) == 1;
}

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A python3 program that prints the fds open in it, in order ("0 1 2"). os.listdir's
// own fd to the directory is closed by the time it is checked, so it does not appear.
constexpr const char* kListFds = R"(
import os
fds = []
for name in os.listdir('/proc/self/fd'):
    try:
        os.fstat(int(name))
        fds.append(int(name))
    except OSError:
        pass
print(' '.join(str(fd) for fd in sorted(fds)))
)";

// ---------------------------------------------------------------------------------------
// run()

TEST_F(SubprocessTest, RunReturnsTheExitStatus) {
  const auto ok = sp::run({"/bin/true"});
  EXPECT_EQ(ok.returncode, 0);
  EXPECT_EQ(ok.args, (std::vector<std::string>{"/bin/true"}));
  EXPECT_EQ(ok.out, "");
  EXPECT_EQ(ok.err, "");
  EXPECT_NO_THROW(ok.check_returncode());

  const auto failed = sp::run({"false"});  // found in PATH
  EXPECT_EQ(failed.returncode, 1);
  EXPECT_THROW(failed.check_returncode(), sp::CalledProcessError);

  EXPECT_EQ(sp::run({"sh", "-c", "exit 42"}).returncode, 42);
}

TEST_F(SubprocessTest, CaptureOutputKeepsStdoutAndStderrApart) {
  const auto r = sp::run({"sh", "-c", "echo to stdout; echo to stderr >&2; echo more"}, {.capture_output = true});
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(r.out, "to stdout\nmore\n");
  EXPECT_EQ(r.err, "to stderr\n");
}

TEST_F(SubprocessTest, StderrIntoStdoutMergesThemInOrder) {
  const std::vector<std::string> args{"sh", "-c", "echo one; echo two >&2; echo three; echo four >&2"};
  const auto merged = sp::run(args, {.err = STDOUT, .capture_output = true});
  EXPECT_EQ(merged.out, "one\ntwo\nthree\nfour\n");
  EXPECT_EQ(merged.err, "");
  const auto piped = sp::run(args, {.out = PIPE, .err = STDOUT});
  EXPECT_EQ(piped.out, "one\ntwo\nthree\nfour\n");
  EXPECT_EQ(piped.err, "");
}

TEST_F(SubprocessTest, InputGoesToStdin) {
  const auto r = sp::run({"cat"}, {.input = "first line\nsecond line\n", .capture_output = true});
  EXPECT_EQ(r.returncode, 0);
  EXPECT_EQ(r.out, "first line\nsecond line\n");
  // An empty input is an immediate end of input, not the test's stdin.
  EXPECT_EQ(sp::run({"cat"}, {.input = "", .capture_output = true}).out, "");
  EXPECT_EQ(sp::run({"wc", "-c"}, {.input = pattern(100000), .capture_output = true}).out, "100000\n");
}

TEST_F(SubprocessTest, CheckThrowsCalledProcessErrorWithTheOutput) {
  try {
    sp::run({"sh", "-c", "echo partial; echo oops >&2; exit 3"}, {.capture_output = true, .check = true});
    FAIL() << "no CalledProcessError";
  } catch (const sp::CalledProcessError& e) {
    EXPECT_EQ(e.returncode(), 3);
    EXPECT_EQ(e.out(), "partial\n");
    EXPECT_EQ(e.err(), "oops\n");
    EXPECT_EQ(e.args().at(0), "sh");
    EXPECT_NE(std::string(e.what()).find("exited with status 3"), std::string::npos) << e.what();
  }
  // An ipckit::Error like every other failure; a zero status does not throw.
  EXPECT_THROW(sp::run({"false"}, {.check = true}), ipckit::Error);
  EXPECT_EQ(sp::run({"/bin/true"}, {.check = true}).returncode, 0);
}

TEST_F(SubprocessTest, ReturncodeOfASignalKilledChildIsMinusTheSignal) {
  EXPECT_EQ(sp::run({"sh", "-c", "kill -KILL $$"}).returncode, -SIGKILL);
  EXPECT_EQ(sp::run({"sh", "-c", "kill -TERM $$"}).returncode, -SIGTERM);
  try {
    sp::run({"sh", "-c", "kill -KILL $$"}, {.check = true});
    FAIL() << "no CalledProcessError";
  } catch (const sp::CalledProcessError& e) {
    EXPECT_EQ(e.returncode(), -SIGKILL);
    EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
  }
}

// The child outlives the timeout: run() kills it (the fixture sees no child and no zombie
// left) and throws soon after the timeout, with what the child wrote before.
TEST_F(SubprocessTest, TimeoutKillsTheChildAndKeepsItsOutput) {
  const auto start = Clock::now();
  try {
    sp::run({"sh", "-c", "echo started; echo on stderr >&2; exec sleep 120"},
            {.capture_output = true, .timeout = 2s});
    FAIL() << "no TimeoutExpired";
  } catch (const sp::TimeoutExpired& e) {
    EXPECT_EQ(e.out(), "started\n");
    EXPECT_EQ(e.err(), "on stderr\n");
    EXPECT_EQ(e.timeout(), 2s);
    EXPECT_EQ(e.args().at(0), "sh");
  }
  const auto elapsed = ms_since(start);
  EXPECT_GE(elapsed, 1900);
  EXPECT_LT(elapsed, 30000);
}

// A shell whose background child also holds the output pipe: the pipe would only end when
// the grandchild does. With new_process_group, run() kills the whole group at the timeout.
TEST_F(SubprocessTest, TimeoutWithNewProcessGroupKillsGrandchildren) {
  const auto start = Clock::now();
  std::string out;
  try {
    sp::run({"sh", "-c", "echo started; sleep 120 & echo $!; wait"},
            {.capture_output = true, .timeout = 2s, .new_process_group = true});
    FAIL() << "no TimeoutExpired";
  } catch (const sp::TimeoutExpired& e) {
    out = e.out();
  }
  EXPECT_LT(ms_since(start), 30000);
  ASSERT_TRUE(out.starts_with("started\n")) << out;
  const int grandchild = std::stoi(out.substr(8));
  EXPECT_TRUE(ends_within(grandchild, 20s)) << "the background sleep " << grandchild << " still runs";
}

// A program that cannot start fails in this process, naming it: not a child exiting 127.
TEST_F(SubprocessTest, MissingProgramIsFileNotFoundError) {
  for (const std::string program : {"ipckit-no-such-program", "/nonexistent/ipckit-no-such-program"}) {
    SCOPED_TRACE(program);
    try {
      sp::run({program, "arg"}, {.capture_output = true});
      FAIL() << "no FileNotFoundError";
    } catch (const ipckit::FileNotFoundError& e) {
      EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
      EXPECT_NE(std::string(e.what()).find(program), std::string::npos) << e.what();
    }
    EXPECT_THROW(sp::Popen({program}, {.in = PIPE, .out = PIPE, .err = PIPE}), ipckit::FileNotFoundError);
  }
}

TEST_F(SubprocessTest, NonExecutableFileIsOSError) {
  const TempFile script("#!/bin/sh\nexit 0\n", 0644);
  try {
    sp::run({script.path()});
    FAIL() << "no OSError";
  } catch (const ipckit::FileNotFoundError& e) {
    FAIL() << "the file exists: " << e.what();
  } catch (const ipckit::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::permission_denied);
    EXPECT_NE(std::string(e.what()).find(script.path()), std::string::npos) << e.what();
  }
  EXPECT_THROW(sp::run({"/tmp"}), ipckit::OSError);  // a directory
  ::chmod(script.path().c_str(), 0755);
  EXPECT_EQ(sp::run({script.path()}).returncode, 0);
}

TEST_F(SubprocessTest, BadCwdIsOSError) {
  try {
    sp::run({"/bin/true"}, {.capture_output = true, .cwd = "/nonexistent/ipckit-cwd"});
    FAIL() << "no OSError";
  } catch (const ipckit::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ipckit-cwd"), std::string::npos) << e.what();
  }
  const TempFile not_a_directory("");
  try {
    sp::run({"/bin/true"}, {.cwd = not_a_directory.path()});
    FAIL() << "no OSError";
  } catch (const ipckit::OSError& e) {
    EXPECT_EQ(e.code(), std::errc::not_a_directory);
  }
}

TEST_F(SubprocessTest, CwdIsTheChildsWorkingDirectory) {
  TempDir dir;
  const auto r = sp::run({"pwd"}, {.capture_output = true, .cwd = dir.path()});
  EXPECT_EQ(r.out, real_path(dir.path()) + "\n");
  // A relative program path is found from the child's cwd.
  dir.add("hello.sh", "#!/bin/sh\necho hello\n", 0755);
  EXPECT_EQ(sp::run({"./hello.sh"}, {.capture_output = true, .cwd = dir.path()}).out, "hello\n");
  EXPECT_THROW(sp::run({"./hello.sh"}), ipckit::FileNotFoundError);
  // This process's cwd is untouched.
  EXPECT_NE(sp::run({"pwd"}, {.capture_output = true}).out, r.out);
}

// With an environment of its own, the program is looked up in the child's PATH.
TEST_F(SubprocessTest, TheChildsPathFindsTheProgram) {
  const std::map<std::string, std::string> only_nonexistent{{"PATH", "/nonexistent"}};
  EXPECT_THROW(sp::run({"ls"}, {.env = only_nonexistent}), ipckit::FileNotFoundError);
  const std::map<std::string, std::string> usr_bin{{"PATH", "/nonexistent:/usr/bin"}};
  EXPECT_EQ(sp::run({"printenv", "PATH"}, {.capture_output = true, .env = usr_bin}).out, "/nonexistent:/usr/bin\n");
}

TEST_F(SubprocessTest, EnvReplacesTheEnvironment) {
  const auto r = sp::run({"/usr/bin/env"}, {.capture_output = true, .env = Env{{"A", "1"}, {"B", "two words"}}});
  EXPECT_EQ(r.out, "A=1\nB=two words\n");
  EXPECT_EQ(sp::run({"/usr/bin/env"}, {.capture_output = true, .env = Env{}}).out, "");
  // extra_env goes on top of env too.
  const auto both = sp::run({"/usr/bin/env"}, {.capture_output = true, .env = Env{{"A", "1"}}, .extra_env = {{"B", "2"}}});
  EXPECT_EQ(both.out, "A=1\nB=2\n");
}

TEST_F(SubprocessTest, ExtraEnvExtendsThisProcesssEnvironment) {
  ::setenv("IPCKIT_SUBPROCESS_INHERITED", "from the parent", 1);
  const auto r = sp::run({"printenv", "IPCKIT_SUBPROCESS_INHERITED", "IPCKIT_SUBPROCESS_EXTRA"},
                         {.capture_output = true, .extra_env = {{"IPCKIT_SUBPROCESS_EXTRA", "extra value"}}});
  EXPECT_EQ(r.out, "from the parent\nextra value\n");
  const auto overridden = sp::run({"printenv", "IPCKIT_SUBPROCESS_INHERITED"},
                                  {.capture_output = true, .extra_env = {{"IPCKIT_SUBPROCESS_INHERITED", "overridden"}}});
  EXPECT_EQ(overridden.out, "overridden\n");
  // Without env or extra_env the child has this process's environment as it is.
  EXPECT_EQ(sp::run({"printenv", "IPCKIT_SUBPROCESS_INHERITED"}, {.capture_output = true}).out, "from the parent\n");
  ::unsetenv("IPCKIT_SUBPROCESS_INHERITED");
  EXPECT_EQ(sp::run({"printenv", "IPCKIT_SUBPROCESS_INHERITED"}, {.capture_output = true}).returncode, 1);
}

TEST_F(SubprocessTest, ShellRunsACommandLineWithPositionalArguments) {
  const auto r = sp::run({"echo \"$0|$1|$2\"", "zero", "one", "two  words"}, {.capture_output = true, .shell = true});
  EXPECT_EQ(r.out, "zero|one|two  words\n");
  EXPECT_EQ(sp::run({"echo lower | tr a-z A-Z; exit 7"}, {.capture_output = true, .shell = true}).out, "LOWER\n");
  EXPECT_EQ(sp::run({"exit 7"}, {.shell = true}).returncode, 7);
}

TEST_F(SubprocessTest, WithoutAShellArgumentsArePassedLiterally) {
  const auto r = sp::run({"echo", "*", "a  b", "$HOME", "`id`", "x;y", "~"}, {.capture_output = true});
  EXPECT_EQ(r.out, "* a  b $HOME `id` x;y ~\n");
}

TEST_F(SubprocessTest, DevNull) {
  // stdin at its end at once, output thrown away.
  EXPECT_EQ(sp::run({"cat"}, {.in = DEVNULL, .capture_output = true}).out, "");
  const auto r = sp::run({"sh", "-c", "echo out; echo err >&2"}, {.out = DEVNULL, .err = PIPE});
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "err\n");
  const auto quiet = sp::run({"sh", "-c", "echo out; echo err >&2"}, {.err = DEVNULL, .capture_output = true});
  EXPECT_EQ(quiet.out, "out\n");
  EXPECT_EQ(quiet.err, "");
  sp::Popen p({"/bin/true"}, {.in = DEVNULL, .out = DEVNULL, .err = DEVNULL});
  EXPECT_EQ(p.stdin_fd(), -1);
  EXPECT_EQ(p.stdout_fd(), -1);
  EXPECT_EQ(p.stderr_fd(), -1);
  EXPECT_EQ(p.wait(), 0);
}

TEST_F(SubprocessTest, FromFdWritesIntoAPipeOfTheTest) {
  auto [read_end, write_end] = make_pipe();
  const auto r = sp::run({"sh", "-c", "echo hello; echo err >&2"},
                         {.out = sp::from_fd(write_end.get()), .err = sp::from_fd(write_end.get())});
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(is_open(write_end.get()));  // not taken over
  EXPECT_TRUE(is_cloexec(write_end.get()));
  write_end.reset();
  EXPECT_EQ(read_all(read_end.get()), "hello\nerr\n");
}

TEST_F(SubprocessTest, FromFdReadsAndWritesAFile) {
  const TempFile file("");
  {
    Fd out(::open(file.path().c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_GE(out.get(), 0);
    EXPECT_EQ(sp::run({"echo", "into a file"}, {.out = sp::from_fd(out.get())}).returncode, 0);
    EXPECT_EQ(sp::run({"echo", "and more"}, {.out = sp::from_fd(out.get())}).returncode, 0);  // same offset
  }
  Fd in(::open(file.path().c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(in.get(), 0);
  EXPECT_EQ(sp::run({"cat"}, {.in = sp::from_fd(in.get()), .capture_output = true}).out, "into a file\nand more\n");
}

// ---------------------------------------------------------------------------------------
// Popen

TEST_F(SubprocessTest, CommunicatesSixtyFourMiBBothWaysThroughCat) {
  const std::string data = pattern(std::size_t{64} << 20);
  sp::Popen cat({"cat"}, {.in = PIPE, .out = PIPE});
  auto [out, err] = cat.communicate(data);
  EXPECT_EQ(out.size(), data.size());
  EXPECT_TRUE(out == data) << "the bytes came back different";
  EXPECT_EQ(err, "");
  EXPECT_EQ(cat.returncode(), 0);
  EXPECT_EQ(cat.stdin_fd(), -1);  // communicate() closed them all
  EXPECT_EQ(cat.stdout_fd(), -1);
}

// Three pipes at once, each carrying 64 MiB.
TEST_F(SubprocessTest, CommunicatesSixtyFourMiBOnStdoutAndStderrAtOnce) {
  const std::string data = pattern(std::size_t{64} << 20);
  sp::Popen tee({"tee", "/dev/stderr"}, {.in = PIPE, .out = PIPE, .err = PIPE});
  auto [out, err] = tee.communicate(data);
  EXPECT_EQ(out.size(), data.size());
  EXPECT_EQ(err.size(), data.size());
  EXPECT_TRUE(out == data);
  EXPECT_TRUE(err == data);
  EXPECT_EQ(tee.wait(), 0);
}

// A timed communicate() throws with what came so far; the next one carries on and
// returns everything, including what the first one read.
TEST_F(SubprocessTest, CommunicateTimeoutThenTheRest) {
  auto [gate, gate_writer] = make_pipe();
  sp::Popen p({"echo first; read word </proc/self/fd/$1; echo \"second $word\"", "sh", std::to_string(gate.get())},
              {.out = PIPE, .shell = true, .pass_fds = {gate.get()}});
  gate.reset();
  // Until "first" has come, each timed call times out with nothing.
  for (;;) {
    try {
      p.communicate({}, 20ms);
      FAIL() << "communicate() returned while the child waits at the gate";
    } catch (const sp::TimeoutExpired& e) {
      EXPECT_EQ(e.timeout(), 20ms);
      if (!e.out().empty()) {
        EXPECT_EQ(e.out(), "first\n");
        break;
      }
    }
  }
  EXPECT_EQ(p.poll(), std::nullopt);
  write_all(gate_writer.get(), "go\n");
  auto [out, err] = p.communicate();
  EXPECT_EQ(out, "first\nsecond go\n");
  EXPECT_EQ(err, "");
  EXPECT_EQ(p.returncode(), 0);
}

// The input went out and stdin was closed before the timeout: calling again with the same
// input is no error, and the output comes whole.
TEST_F(SubprocessTest, CommunicateAgainAfterAllInputWentOut) {
  auto [gate, gate_writer] = make_pipe();
  sp::Popen p({"cat; read word </proc/self/fd/$1; echo \"$word\"", "sh", std::to_string(gate.get())},
              {.in = PIPE, .out = PIPE, .shell = true, .pass_fds = {gate.get()}});
  gate.reset();
  EXPECT_THROW(p.communicate("input\n", 50ms), sp::TimeoutExpired);  // the child waits at the gate
  write_all(gate_writer.get(), "done\n");
  auto [out, err] = p.communicate("input\n");
  EXPECT_EQ(out, "input\ndone\n");
  EXPECT_EQ(p.returncode(), 0);
}

// A timeout while input is still being written (the child takes one block, then stops
// reading until the gate opens): called again with the same input, communicate() sends
// the rest, not the whole again, and returns all the output.
TEST_F(SubprocessTest, CommunicateTimeoutMidInputResumesTheInput) {
  const std::string data = pattern(std::size_t{16} << 20);
  auto [gate, gate_writer] = make_pipe();
  sp::Popen p({"dd bs=1000 count=1 status=none; read word </proc/self/fd/$1; exec cat", "sh", std::to_string(gate.get())},
              {.in = PIPE, .out = PIPE, .shell = true, .pass_fds = {gate.get()}});
  gate.reset();
  try {
    p.communicate(data, 100ms);
    FAIL() << "communicate() returned while the child waits at the gate";
  } catch (const sp::TimeoutExpired& e) {
    EXPECT_LE(e.out().size(), 1000u);
    EXPECT_TRUE(data.starts_with(e.out()));
  }
  EXPECT_GE(p.stdin_fd(), 0);  // the input is not all sent yet
  write_all(gate_writer.get(), "go\n");
  auto [out, err] = p.communicate(data);
  EXPECT_EQ(out.size(), data.size());
  EXPECT_TRUE(out == data);
  EXPECT_EQ(p.returncode(), 0);
}

TEST_F(SubprocessTest, PollWaitAndTimedWait) {
  sp::Popen cat({"cat"}, {.in = PIPE});
  EXPECT_GT(cat.pid(), 0);
  EXPECT_EQ(cat.poll(), std::nullopt);  // blocked on its stdin
  EXPECT_EQ(cat.returncode(), std::nullopt);
  const auto start = Clock::now();
  try {
    cat.wait(100ms);
    FAIL() << "no TimeoutExpired";
  } catch (const sp::TimeoutExpired& e) {
    EXPECT_EQ(e.timeout(), 100ms);
    EXPECT_EQ(e.args(), (std::vector<std::string>{"cat"}));
  }
  EXPECT_GE(ms_since(start), 90);
  EXPECT_LT(ms_since(start), 20000);
  EXPECT_THROW(cat.wait(0ms), sp::TimeoutExpired);
  EXPECT_EQ(cat.poll(), std::nullopt);
  cat.close_stdin();  // cat sees the end of its input and exits
  EXPECT_EQ(cat.wait(20s), 0);
  EXPECT_EQ(cat.wait(), 0);  // known from now on
  EXPECT_EQ(cat.poll(), 0);
  EXPECT_EQ(cat.returncode(), 0);
  EXPECT_EQ(cat.wait(0ms), 0);

  sp::Popen fails({"sh", "-c", "exit 5"});
  EXPECT_EQ(fails.wait(), 5);
  EXPECT_EQ(fails.poll(), 5);
}

TEST_F(SubprocessTest, SignalsGiveNegativeReturncodes) {
  {
    sp::Popen p({"cat"}, {.in = PIPE});
    p.send_signal(SIGUSR1);
    EXPECT_EQ(p.wait(), -SIGUSR1);
  }
  {
    sp::Popen p({"cat"}, {.in = PIPE});
    p.terminate();
    EXPECT_EQ(p.wait(), -SIGTERM);
  }
  {
    sp::Popen p({"cat"}, {.in = PIPE});
    p.kill();
    EXPECT_EQ(p.wait(), -SIGKILL);
    EXPECT_EQ(p.returncode(), -SIGKILL);
    // Once reaped, signals are no-ops.
    EXPECT_NO_THROW(p.kill());
    EXPECT_NO_THROW(p.terminate());
    EXPECT_EQ(p.poll(), -SIGKILL);
  }
  {
    sp::Popen p({"/bin/true"});
    EXPECT_EQ(p.wait(), 0);
    EXPECT_NO_THROW(p.send_signal(SIGKILL));
    EXPECT_EQ(p.returncode(), 0);
  }
}

// kill() from one thread ends a child another thread waits for.
TEST_F(SubprocessTest, KillFromAnotherThreadEndsAWait) {
  sp::Popen cat({"cat"}, {.in = PIPE});
  int waited = 0;
  std::thread waiter([&] { waited = cat.wait(); });
  cat.kill();
  waiter.join();
  EXPECT_EQ(waited, -SIGKILL);
}

TEST_F(SubprocessTest, KillGroupReachesTheChildsChildren) {
  sp::Popen p({"sh", "-c", "sleep 120 & echo $!; wait"}, {.out = PIPE, .new_process_group = true});
  std::string line;
  while (!line.ends_with("\n")) {
    char c;
    ASSERT_EQ(::read(p.stdout_fd(), &c, 1), 1);
    line += c;
  }
  p.kill_group(SIGKILL);
  EXPECT_EQ(p.wait(), -SIGKILL);
  EXPECT_TRUE(ends_within(std::stoi(line), 20s));
  EXPECT_EQ(p.communicate().first, "");  // the pipe has ended: the grandchild is gone

  sp::Popen alone({"/bin/true"});
  EXPECT_THROW(alone.kill_group(SIGKILL), ipckit::ValueError);
  EXPECT_EQ(alone.wait(), 0);
}

// A socketpair end passed to a python3 child, which echoes on it.
TEST_F(SubprocessTest, PassFdsHandsASocketToTheChild) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  Fd mine(pair[0]);
  Fd theirs(pair[1]);
  const char* echo = R"(
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
s.sendall(b'echo: ' + data)
s.close()
)";
  sp::Popen server({IPCKIT_PYTHON, "-c", echo, std::to_string(theirs.get())}, {.pass_fds = {theirs.get()}});
  EXPECT_TRUE(is_cloexec(theirs.get()));  // this process's fd is left as it was
  theirs.reset();
  write_all(mine.get(), "ping over a passed socket");
  ::shutdown(mine.get(), SHUT_WR);
  EXPECT_EQ(read_all(mine.get()), "echo: ping over a passed socket");
  EXPECT_EQ(server.wait(), 0);
}

// The child gets 0, 1, 2 and pass_fds, nothing else: not this process's fds without
// close-on-exec (below, between and above the passed one), nor Popen's own pipe ends.
TEST_F(SubprocessTest, NoOtherFdLeaksIntoTheChild) {
  Fd inheritable(::open("/dev/null", O_RDONLY));  // no O_CLOEXEC
  ASSERT_GE(inheritable.get(), 0);
  auto [pipe_read, pipe_write] = make_pipe(false);
  Fd passed(::fcntl(inheritable.get(), F_DUPFD_CLOEXEC, 60));
  Fd between(::fcntl(inheritable.get(), F_DUPFD, 40));
  Fd high(::fcntl(inheritable.get(), F_DUPFD, 200));
  ASSERT_GE(passed.get(), 60);
  ASSERT_GE(between.get(), 40);
  ASSERT_GE(high.get(), 200);
  ASSERT_FALSE(is_cloexec(high.get()));

  const auto alone = sp::run({IPCKIT_PYTHON, "-c", kListFds}, {.in = PIPE, .capture_output = true});
  EXPECT_EQ(alone.out, "0 1 2\n") << alone.err;
  const auto with_passed = sp::run({IPCKIT_PYTHON, "-c", kListFds},
                                   {.in = PIPE, .capture_output = true, .pass_fds = {passed.get()}});
  EXPECT_EQ(with_passed.out, "0 1 2 " + std::to_string(passed.get()) + "\n") << with_passed.err;
  const auto two_passed = sp::run({IPCKIT_PYTHON, "-c", kListFds},
                                  {.capture_output = true, .pass_fds = {high.get(), passed.get()}});
  EXPECT_EQ(two_passed.out, "0 1 2 " + std::to_string(passed.get()) + " " + std::to_string(high.get()) + "\n")
      << two_passed.err;
  // The same seen by ls, through a shell.
  const auto ls = sp::run({"ls /proc/self/fd | sort -n | tr '\\n' ' '"}, {.capture_output = true, .shell = true});
  EXPECT_EQ(ls.out, "0 1 2 3 ") << "ls's own directory fd is 3";
}

TEST_F(SubprocessTest, CloseStdinEndsTheChildsInput) {
  sp::Popen cat({"cat"}, {.in = PIPE, .out = PIPE});
  ASSERT_GE(cat.stdin_fd(), 0);
  write_all(cat.stdin_fd(), "written directly\n");
  cat.close_stdin();
  EXPECT_EQ(cat.stdin_fd(), -1);
  cat.close_stdin();  // a second time is harmless
  EXPECT_THROW(cat.communicate("more"), ipckit::ValueError);  // no stdin left to send it on
  EXPECT_EQ(cat.communicate().first, "written directly\n");
  EXPECT_EQ(cat.returncode(), 0);
}

TEST_F(SubprocessTest, StdoutFdIsReadDirectly) {
  sp::Popen p({"sh", "-c", "echo line one; echo line two; echo err >&2"}, {.out = PIPE, .err = PIPE});
  EXPECT_EQ(p.stdin_fd(), -1);
  ASSERT_GE(p.stdout_fd(), 0);
  ASSERT_GE(p.stderr_fd(), 0);
  EXPECT_EQ(read_all(p.stdout_fd()), "line one\nline two\n");
  EXPECT_EQ(read_all(p.stderr_fd()), "err\n");
  EXPECT_EQ(p.wait(), 0);
}

// The child stops reading (exits) while input is still being sent: EPIPE ends the input,
// it is no error, and this process is not killed by SIGPIPE.
TEST_F(SubprocessTest, ChildExitingWithoutReadingItsInputIsNoError) {
  const std::string data = pattern(std::size_t{8} << 20);
  const auto head = sp::run({"head", "-c", "10"}, {.input = data, .capture_output = true});
  EXPECT_EQ(head.returncode, 0);
  EXPECT_EQ(head.out, data.substr(0, 10));
  EXPECT_EQ(sp::run({"/bin/true"}, {.input = data}).returncode, 0);
  sp::Popen p({"sh", "-c", "exit 3"}, {.in = PIPE, .out = PIPE});
  EXPECT_EQ(p.communicate(data).first, "");
  EXPECT_EQ(p.returncode(), 3);
}

// ---------------------------------------------------------------------------------------
// Lifetime

// Destroying a Popen closes its pipes and waits for its child: cat ends at the end of its
// input, and the fixture finds no child and no zombie.
TEST_F(SubprocessTest, DestroyingAPopenReapsTheChild) {
  int pid = -1;
  {
    sp::Popen cat({"cat"}, {.in = PIPE, .out = PIPE});
    pid = cat.pid();
    write_all(cat.stdin_fd(), "unread");
  }
  EXPECT_TRUE(ipckit::test::child_pids().empty());
  EXPECT_TRUE(ends_within(pid, 0ms));
  {
    sp::Popen done({"/bin/true"});  // exits unwaited: a zombie until the destructor
    ipckit::test::wait_until_state(done.pid(), 'Z');
  }
  EXPECT_TRUE(ipckit::test::child_pids().empty());
  {
    sp::Popen killed({"sleep", "120"});
    killed.kill();
  }
  EXPECT_TRUE(ipckit::test::child_pids().empty());
}

TEST_F(SubprocessTest, AMovedPopenKeepsItsChild) {
  std::vector<sp::Popen> children;
  for (int i = 0; i < 3; ++i) children.emplace_back(std::vector<std::string>{"sh", "-c", "exit " + std::to_string(i)});
  sp::Popen moved(std::move(children[1]));
  EXPECT_EQ(children[1].pid(), -1);
  EXPECT_EQ(moved.wait(), 1);
  EXPECT_EQ(children[0].wait(), 0);
  EXPECT_EQ(children[2].wait(), 2);
}

TEST_F(SubprocessTest, BadArgumentsAreValueError) {
  EXPECT_THROW(sp::Popen({}), ipckit::ValueError);
  EXPECT_THROW(sp::run({}), ipckit::ValueError);
  EXPECT_THROW(sp::Popen({"/bin/true"}, {.in = STDOUT}), ipckit::ValueError);
  EXPECT_THROW(sp::Popen({"/bin/true"}, {.out = STDOUT}), ipckit::ValueError);
  EXPECT_THROW(sp::Popen({"/bin/true"}, {.out = sp::from_fd(-1)}), ipckit::ValueError);
  sp::Popen no_stdin({"/bin/true"}, {.out = PIPE});
  EXPECT_THROW(no_stdin.communicate("input"), ipckit::ValueError);
  EXPECT_EQ(no_stdin.wait(), 0);
}

// ---------------------------------------------------------------------------------------
// Move-assigning over a Popen must reap the child it held, as its destructor does.
TEST_F(SubprocessTest, MoveAssignmentReapsTheReplacedChild) {
  sp::Popen p({"/bin/true"});
  const int first = p.pid();
  ipckit::test::wait_until_state(first, 'Z');
  p = sp::Popen({"/bin/true"});
  EXPECT_EQ(p.wait(), 0);
  const auto children = ipckit::test::child_pids();
  EXPECT_TRUE(children.empty()) << "pid " << first << " left a zombie";
}

// A timed communicate() ends at its timeout even while data keeps flowing (here two
// producers faster than this process reads): the time is checked on every round, not
// only when a poll finds nothing ready.
TEST_F(SubprocessTest, CommunicateTimeoutHoldsWhileDataFlows) {
  for (int round = 0; round < 8; ++round) {
    sp::Popen p({"yes & exec yes >&2"}, {.out = PIPE, .err = PIPE, .shell = true, .new_process_group = true});
    const auto start = Clock::now();
    EXPECT_THROW(p.communicate({}, 10ms), sp::TimeoutExpired);
    EXPECT_LT(ms_since(start), 500) << "a 10 ms timeout";
    p.kill_group(SIGKILL);
    p.wait();
  }
}

// from_fd(0) for stdout names this process's fd 0, even when the child's own 0 is
// redirected too (here to /dev/null).
TEST_F(SubprocessTest, FromFdOfAStandardStreamIsThisProcesssFd) {
  auto [read_end, write_end] = make_pipe();
  Fd saved(::fcntl(0, F_DUPFD_CLOEXEC, 3));
  ASSERT_GE(saved.get(), 0) << "this test needs an fd 0";
  ::dup2(write_end.get(), 0);
  int returncode = -1;
  try {
    returncode = sp::run({"echo", "to our fd 0"}, {.in = DEVNULL, .out = sp::from_fd(0)}).returncode;
  } catch (...) {
  }
  ::dup2(saved.get(), 0);
  write_end.reset();
  EXPECT_EQ(returncode, 0);
  EXPECT_EQ(read_all(read_end.get()), "to our fd 0\n");
}

}  // namespace
