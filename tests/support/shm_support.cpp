#include "shm_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <utility>

namespace ipckit::test {

std::string shm_path(std::string_view ipckit_name) { return "/dev/shm/ipckit-" + std::string(ipckit_name); }

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool wait_until_removed(const std::string& path, std::chrono::milliseconds timeout) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = path.substr(slash + 1);
  const int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) throw std::runtime_error("inotify_init1 failed");
  if (::inotify_add_watch(fd, dir.c_str(), IN_DELETE | IN_MOVED_FROM) < 0) {
    ::close(fd);
    throw std::runtime_error("inotify_add_watch(" + dir + ") failed");
  }
  // Watch first, then look: a removal between the two is still seen as an event.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool removed = !path_exists(path);
  alignas(inotify_event) char events[4096];
  while (!removed) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (;;) {
      const ssize_t got = ::read(fd, events, sizeof events);
      if (got <= 0) break;
      for (ssize_t at = 0; at < got;) {
        const auto* e = reinterpret_cast<const inotify_event*>(events + at);
        if (e->len > 0 && base == e->name) removed = true;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    removed = removed || !path_exists(path);
  }
  ::close(fd);
  return removed;
}

namespace {

std::pair<int, int> cloexec_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  return {fds[0], fds[1]};
}

}  // namespace

Spawned Spawned::scenario(std::string_view name, const std::vector<std::string>& args,
                          const std::vector<int>& keep_fds) {
  std::vector<std::string> argv{"/proc/self/exe", "--ipckit-child=" + std::string(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  return start(argv, keep_fds);
}

Spawned Spawned::program(const std::vector<std::string>& argv) { return start(argv, {}); }

Spawned Spawned::start(std::vector<std::string> argv, const std::vector<int>& keep_fds) {
  auto [in_read, in_write] = cloexec_pipe();
  auto [out_read, out_write] = cloexec_pipe();
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(in_read, 0);
    ::dup2(out_write, 1);
    ::dup2(out_write, 2);
    for (int fd : keep_fds) ::fcntl(fd, F_SETFD, 0);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  ::close(in_read);
  ::close(out_write);
  return Spawned(pid, in_write, out_read);
}

Spawned::Spawned(Spawned&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      in_(std::exchange(other.in_, -1)),
      out_(std::exchange(other.out_, -1)),
      buffer_(std::move(other.buffer_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

Spawned::~Spawned() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> Spawned::read_line() {
  for (;;) {
    const auto newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    char chunk[4096];
    const ssize_t n = ::read(out_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      if (buffer_.empty()) return std::nullopt;
      return std::exchange(buffer_, {});
    }
  }
}

std::string Spawned::read_rest() {
  std::string text = std::exchange(buffer_, {});
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(out_, chunk, sizeof chunk);
    if (n > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return text;
    }
  }
}

void Spawned::write_line(std::string_view line) {
  std::string text(line);
  text += '\n';
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(in_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("write to a spawned child failed");
    done += static_cast<std::size_t>(n);
  }
}

void Spawned::close_stdin() {
  if (in_ >= 0) ::close(std::exchange(in_, -1));
}

void Spawned::kill() {
  if (pid_ > 0 && !status_) ::kill(pid_, SIGKILL);
}

int Spawned::wait() {
  if (status_) return *status_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  }
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return *status_;
}

}  // namespace ipckit::test
