// bench/subprocess_bench.cpp — running other programs: run() of /bin/true, and 64 MiB
// through `cat` with Popen::communicate().
//
// The floors are the bare system calls any implementation needs: posix_spawn() and
// waitpid(), and for communicate two pipes, non-blocking, written and read in a poll()
// loop. Python's sides are in peers/multiprocessing_peer.py under the same workload
// names (subprocess.run and subprocess.Popen.communicate).
//
// Every iteration starts a program: its start-up is what these workloads time.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ipckit/subprocess.hpp"
#include "workload.hpp"

extern char** environ;

namespace ipckit::bench {
namespace {

using benchmark::State;
namespace sp = ipckit::subprocess;

// subprocess.communicate: the bytes sent through cat (and read back) per iteration.
constexpr std::size_t kCommunicateSize = std::size_t{64} << 20;

[[noreturn]] void throw_errno(const char* call) { throw std::system_error(errno, std::generic_category(), call); }
[[noreturn]] void throw_error(int error, const char* call) {
  throw std::system_error(error, std::generic_category(), call);
}

// Waits for `pid`; throws unless it exited with 0.
void reap(pid_t pid) {
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (got < 0) throw_errno("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("floor: the child failed");
}

// --- subprocess.run.true ---------------------------------------------------------------------

// One iteration: run({"/bin/true"}), which starts it, waits for it and returns its status.
void BM_Subprocess_RunTrue(State& state) {
  for (auto _ : state) {
    const auto completed = sp::run({"/bin/true"});
    if (completed.returncode != 0) throw std::runtime_error("/bin/true exited with " + std::to_string(completed.returncode));
  }
  state.SetItemsProcessed(state.iterations());
}

// posix_spawn() of /bin/true, no file actions, then waitpid().
void BM_Floor_SpawnWaitTrue(State& state) {
  char program[] = "/bin/true";
  char* argv[] = {program, nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (const int error = ::posix_spawn(&pid, program, nullptr, nullptr, argv, environ); error != 0)
      throw_error(error, "posix_spawn");
    reap(pid);
  }
  state.SetItemsProcessed(state.iterations());
}

// --- subprocess.communicate.64MiB ------------------------------------------------------------

// One iteration: Popen({"cat"}, {.in = PIPE, .out = PIPE}).communicate(data) of 64 MiB,
// all of it read back (a new string each time, as communicate() returns it).
void BM_Subprocess_Communicate(State& state, std::size_t size) {
  const std::string data(size, 'x');
  for (auto _ : state) {
    sp::Popen cat({"cat"}, {.in = sp::PIPE, .out = sp::PIPE});
    auto [out, err] = cat.communicate(data);
    if (out.size() != size) throw std::runtime_error("cat gave back " + std::to_string(out.size()) + " bytes");
    if (cat.returncode() != 0) throw std::runtime_error("cat failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// posix_spawnp() of cat with its stdin and stdout on two pipes (dup2 file actions), the
// parent's ends non-blocking: a poll() loop writes the data and reads it back into one
// reused buffer, closing stdin once all is written; then waitpid().
void BM_Floor_SpawnPipeCat(State& state, std::size_t size) {
  const std::vector<char> data(size, 'x');
  std::vector<char> back(size);
  char program[] = "cat";
  char* argv[] = {program, nullptr};
  for (auto _ : state) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw_errno("pipe2");
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    pid_t pid = 0;
    const int error = ::posix_spawnp(&pid, program, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (error != 0) {
      ::close(in[1]);
      ::close(out[0]);
      throw_error(error, "posix_spawnp");
    }
    int to_child = in[1];
    const int from_child = out[0];
    ::fcntl(to_child, F_SETFL, O_NONBLOCK);
    ::fcntl(from_child, F_SETFL, O_NONBLOCK);
    std::size_t written = 0;
    std::size_t read = 0;
    bool eof = false;
    while (!eof) {
      pollfd fds[2] = {{from_child, POLLIN, 0}, {to_child, POLLOUT, 0}};
      const nfds_t count = to_child >= 0 ? 2 : 1;
      if (::poll(fds, count, -1) < 0) {
        if (errno == EINTR) continue;
        throw_errno("poll");
      }
      if (count == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
        const ssize_t n = ::write(to_child, data.data() + written, size - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR) throw_errno("write");
        if (written == size) {
          ::close(to_child);
          to_child = -1;
        }
      }
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        for (;;) {
          if (read == size) back.resize(size + 1);  // room to see anything past the end
          const ssize_t n = ::read(from_child, back.data() + read, back.size() - read);
          if (n > 0) {
            read += static_cast<std::size_t>(n);
            continue;
          }
          if (n == 0) eof = true;
          else if (errno != EAGAIN && errno != EINTR) throw_errno("read");
          break;
        }
      }
    }
    if (to_child >= 0) ::close(to_child);
    ::close(from_child);
    reap(pid);
    if (read != size) throw std::runtime_error("floor: cat gave back " + std::to_string(read) + " bytes");
    benchmark::DoNotOptimize(back.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

}  // namespace

void register_subprocess_workloads(Registry& registry) {
  registry.add({.name = "subprocess.run.true",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = BenchmarkFunction{"BM_Subprocess_RunTrue", BM_Subprocess_RunTrue},
                .floor = BenchmarkFunction{"BM_Floor_SpawnWaitTrue", BM_Floor_SpawnWaitTrue},
                .python = "subprocess.run.true"});
  registry.add({.name = "subprocess.communicate.64MiB",
                .metric = Metric::MegabytesPerSecond,
                .ipckit = sized("BM_Subprocess_Communicate", BM_Subprocess_Communicate, kCommunicateSize),
                .floor = sized("BM_Floor_SpawnPipeCat", BM_Floor_SpawnPipeCat, kCommunicateSize),
                .python = "subprocess.communicate.64MiB"});
}

}  // namespace ipckit::bench
