// bench/child.cpp — children that serve a benchmark run (see child.hpp).
#include "child.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ipckit::bench {
namespace {

// What a child sends once it is ready to serve (a message for ipckit, a byte for the floor).
constexpr std::byte kReady{'r'};

[[noreturn]] void throw_errno(const char* call) { throw std::system_error(errno, std::generic_category(), call); }

}  // namespace

IpckitChild::IpckitChild(const Serve& serve) {
  auto ends = ipckit::Pipe();
  to_child_ = std::move(ends.first);
  ipckit::Connection& child_end = ends.second;
  // Fork copies this frame, so the child's target may use `serve` and `child_end` by
  // reference. A daemon child is ended by ~Process if the benchmark throws before join().
  process_.emplace(
      [this, &serve, &child_end] {
        to_child_.close();
        const std::byte ready[] = {kReady};
        child_end.send_bytes(ready);
        serve(child_end);
      },
      ipckit::ProcessOptions{"bench-child", true});
  process_->start();
  child_end.close();
  auto ready = to_child_.recv_bytes();
  if (ready.size() != 1 || ready[0] != kReady) throw std::runtime_error("bench child: bad ready message");
}

void IpckitChild::join() {
  process_->join();
  if (auto code = process_->exitcode(); code != 0)
    throw std::runtime_error("bench child exited with code " + std::to_string(code.value_or(-1)) + ": " +
                             process_->error().value_or("no error message"));
}

ForkedChild::ForkedChild(const Serve& serve) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("socketpair(AF_UNIX)");
  pid_ = fork();
  if (pid_ < 0) {
    close(fds[0]);
    close(fds[1]);
    throw_errno("fork");
  }
  if (pid_ == 0) {
    close(fds[0]);
    int code = 0;
    try {
      const std::byte ready[] = {kReady};
      write_all(fds[1], ready);
      serve(fds[1]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench floor child: %s\n", e.what());
      code = 1;
    }
    _exit(code);  // no atexit handlers, no static destructors of the parent's copy
  }
  close(fds[1]);
  fd_ = fds[0];
  std::byte ready[1];
  read_exactly(fd_, ready);  // throws at end of stream: the destructor reaps the child
}

ForkedChild::~ForkedChild() {
  if (fd_ >= 0) close(fd_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void ForkedChild::join() {
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid");
  }
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("bench floor child ended with status " + std::to_string(status));
}

void write_all(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

void read_exactly(int fd, std::span<std::byte> data) {
  while (!data.empty()) {
    ssize_t n = read(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read");
    }
    if (n == 0) throw std::runtime_error("read: end of stream (the other process ended)");
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

namespace {

// The CPUs this process may run on (its affinity mask).
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    throw std::system_error(errno, std::generic_category(), "sched_getaffinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    throw std::system_error(errno, std::generic_category(), "sched_setaffinity");
}

}  // namespace

TwoCpus::TwoCpus() : cpus_(allowed_cpus()) {
  CPU_ZERO(&saved_);
  if (sched_getaffinity(0, sizeof saved_, &saved_) != 0)
    throw std::system_error(errno, std::generic_category(), "sched_getaffinity");
}

TwoCpus::~TwoCpus() { sched_setaffinity(0, sizeof saved_, &saved_); }

void TwoCpus::pin_parent() const {
  if (cpus_.size() >= 2) pin_to(cpus_[0]);
}

void TwoCpus::pin_child() const {
  if (cpus_.size() >= 2) pin_to(cpus_[1]);
}

}  // namespace ipckit::bench
