// Running the other example programs from a scenario program (echo_three_clients,
// greeting): a child ipckit::Process execs the program, as Python's subprocess.Popen does,
// and a pipe brings back what it prints, line by line as it comes. This stands in until
// ipckit has a subprocess API. Nothing waits more than 20 s for the next event, so a
// program that hangs is a failure, not a hang.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "ipckit/process.hpp"
#include "ipckit/wait.hpp"

namespace run {

inline constexpr std::chrono::seconds kTimeout{20};

// Throws the error (errno) of the system call `what` that just failed.
[[noreturn]] inline void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// A pipe for a child's stdout (see start()), read here line by line.
class Output {
 public:
  Output() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail("pipe2");
    fd_ = fds[0];
    write_fd_ = fds[1];
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  ~Output() {
    ::close(fd_);
    close_write_end();
  }

  int fd() const { return fd_; }         // readable: read_lines() has something
  bool ended() const { return ended_; }  // the child's stdout is closed: nothing more comes
  int write_end() const { return write_fd_; }  // for start(), which closes it here
  void close_write_end() {
    if (write_fd_ >= 0) ::close(std::exchange(write_fd_, -1));
  }

  // Reads what the pipe holds (waiting if it holds nothing yet); returns the lines this
  // completes (and the last one, unfinished, once the output has ended).
  std::vector<std::string> read_lines() {
    char chunk[4096];
    ssize_t n;
    do n = ::read(fd_, chunk, sizeof chunk);
    while (n < 0 && errno == EINTR);
    if (n < 0) fail("read");
    ended_ = n == 0;
    partial_.append(chunk, static_cast<std::size_t>(n));
    if (ended_ && !partial_.empty()) partial_ += '\n';
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t end; (end = partial_.find('\n', start)) != std::string::npos; start = end + 1)
      lines.push_back(partial_.substr(start, end - start));
    partial_.erase(0, start);
    return lines;
  }

  // Every line still to come, once the child has ended (a pipe holds far more than these
  // programs print, so it cannot have blocked writing).
  std::vector<std::string> read_to_end() {
    std::vector<std::string> lines;
    while (!ended_)
      for (std::string& line : read_lines()) lines.push_back(std::move(line));
    return lines;
  }

 private:
  int fd_ = -1;
  int write_fd_ = -1;
  bool ended_ = false;
  std::string partial_;  // the start of a line still to come
};

// Starts `program`, a file in this program's directory, with `args`, in a child process
// whose stdout is `output` (this process's stdout when null); `before_exec` runs in the
// child just before the program replaces it. A daemon child: if this program is killed,
// the kernel kills it too, so no server is left listening.
inline ipckit::Process start(const std::string& program, std::vector<std::string> args,
                             Output* output = nullptr, std::function<void()> before_exec = {}) {
  std::string path = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / program).string();
  const int stdout_fd = output != nullptr ? output->write_end() : -1;
  ipckit::Process child([=]() mutable {
    if (stdout_fd >= 0 && ::dup2(stdout_fd, STDOUT_FILENO) < 0) fail("dup2");
    if (before_exec) before_exec();
    std::vector<char*> argv{path.data()};
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    fail("execv " + path);  // the child ends with 1 and this on stderr
  }, ipckit::ProcessOptions{program, /*daemon=*/true});
  child.start();
  if (output != nullptr) output->close_write_end();  // the output now ends when the child does
  return child;
}

// Relays a server's lines up to the one that says where it listens; returns the address.
inline std::string read_address(Output& output) {
  constexpr std::string_view kListeningOn = "listening on ";
  std::string address;
  while (address.empty()) {
    if (output.ended()) throw std::runtime_error("the server ended without listening");
    if (ipckit::wait({output.fd()}, kTimeout).empty())
      throw std::runtime_error("the server has not said where it listens within 20 s");
    for (const std::string& line : output.read_lines()) {
      std::cout << line << std::endl;
      if (const auto at = line.find(kListeningOn); at != std::string::npos && address.empty())
        address = line.substr(at + kListeningOn.size());
    }
  }
  return address;
}

// Relays `output`'s lines as they come until every process of `processes` has ended (and
// is reaped).
inline void relay_until_ended(Output& output, std::vector<ipckit::Process*> processes) {
  while (!processes.empty()) {
    std::vector<ipckit::Waitable> watched;
    for (ipckit::Process* process : processes) watched.emplace_back(*process);
    if (!output.ended()) watched.emplace_back(output.fd());
    const std::vector<ipckit::Waitable> ready = ipckit::wait(watched, kTimeout);
    if (ready.empty()) throw std::runtime_error("nothing happened for 20 s");
    if (std::ranges::find(ready, ipckit::Waitable(output.fd())) != ready.end())
      for (const std::string& line : output.read_lines()) std::cout << line << std::endl;
    std::erase_if(processes, [](ipckit::Process* process) { return !process->is_alive(); });
  }
}

// Whether an ended process exited with 0; says so on stderr when not.
inline bool succeeded(ipckit::Process& process) {
  if (process.exitcode() == 0) return true;
  std::cerr << std::filesystem::read_symlink("/proc/self/exe").filename().string() << ": "
            << process.name() << " failed (exit status " << process.exitcode().value_or(-1)
            << ")\n";
  return false;
}

}  // namespace run
