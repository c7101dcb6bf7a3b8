#include "sys/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "ipckit/error.hpp"
#include "sys/proc.hpp"
#include "sys/sys_error.hpp"

extern char** environ;

namespace ipckit::sys {
namespace {

// Owners of the posix_spawn attribute objects.
struct Actions {
  posix_spawn_file_actions_t value;
  Actions() { posix_spawn_file_actions_init(&value); }
  ~Actions() { posix_spawn_file_actions_destroy(&value); }
};
struct Attributes {
  posix_spawnattr_t value;
  Attributes() { posix_spawnattr_init(&value); }
  ~Attributes() { posix_spawnattr_destroy(&value); }
};

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// `program` looked up in the PATH of `env` (its default when unset, as execvp's);
// empty when no directory has it executable.
std::string find_in_path(const std::string& program, const std::vector<std::string>& env) {
  std::string dirs = "/bin:/usr/bin";
  for (const auto& entry : env)
    if (entry.starts_with("PATH=")) dirs = entry.substr(5);
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) return {};
    start = end + 1;
  }
}

}  // namespace

std::vector<std::string> environment() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

UniqueFd open_dev_null() {
  UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!fd) throw_last_error("open", "/dev/null");
  return fd;
}

Spawned spawn(const SpawnRequest& request) {
  const std::string& program = request.argv.at(0);
  Actions actions;
  Attributes attributes;
  auto* fa = &actions.value;
  // The standard streams first: dup2 clears close-on-exec on the copy (and on the fd
  // itself when it already has the number, as POSIX asks and glibc does). A source that
  // is itself 0, 1 or 2 of this process (say stdout to this process's stdin) is copied
  // above 2 first, so that an earlier dup2 in the child cannot have replaced it.
  std::vector<UniqueFd> copies;
  const auto source = [&](int fd, int target) {
    if (fd < 0 || fd > 2 || fd == target) return fd;
    copies.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!copies.back()) throw_last_error("fcntl(F_DUPFD_CLOEXEC)", "fd " + std::to_string(fd));
    return copies.back().get();
  };
  const int stdin_fd = source(request.stdin_fd, 0);
  const int stdout_fd = source(request.stdout_fd, 1);
  const int stderr_fd = source(request.stderr_fd, 2);
  if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(fa, stdin_fd, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(fa, stdout_fd, 1);
  if (request.stderr_to_stdout) {
    posix_spawn_file_actions_adddup2(fa, 1, 2);
  } else if (stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(fa, stderr_fd, 2);
  }
  // Then every other fd goes, but those passed on, which lose close-on-exec.
  int highest_passed = 2;
  for (const int fd : request.pass_fds) {
    if (fd < 3) continue;
    posix_spawn_file_actions_adddup2(fa, fd, fd);
    highest_passed = std::max(highest_passed, fd);
  }
  for (int fd = 3; fd < highest_passed; ++fd)
    if (std::find(request.pass_fds.begin(), request.pass_fds.end(), fd) == request.pass_fds.end())
      posix_spawn_file_actions_addclose(fa, fd);  // an fd that is not open is no error
  posix_spawn_file_actions_addclosefrom_np(fa, highest_passed + 1);
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(fa, request.cwd.c_str());

  sigset_t empty;
  sigset_t defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  posix_spawnattr_setsigmask(&attributes.value, &empty);
  posix_spawnattr_setsigdefault(&attributes.value, &defaults);
  if (request.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attributes.value, 0);
  }
  posix_spawnattr_setflags(&attributes.value, flags);

  const auto argv = pointers(request.argv);
  std::vector<char*> envp;
  if (request.env) envp = pointers(*request.env);
  char* const* env = request.env ? envp.data() : environ;

  pid_t pid = -1;
  const bool search = program.find('/') == std::string::npos;
  // posix_spawnp searches this process's PATH; with an environment of its own, the
  // child's PATH decides, as for Python's subprocess.
  std::string path = program;
  if (search && request.env) path = find_in_path(program, *request.env);
  const int rc = search && !request.env
                     ? ::posix_spawnp(&pid, program.c_str(), fa, &attributes.value, argv.data(), env)
                     : path.empty() ? ENOENT
                                    : ::posix_spawn(&pid, path.c_str(), fa, &attributes.value, argv.data(), env);
  if (rc != 0) {
    const std::error_code code(rc, std::generic_category());
    const std::string subject = "'" + program + "'" + (request.cwd.empty() ? "" : " in " + request.cwd);
    if (rc == ENOENT) throw FileNotFoundError(code, "posix_spawn", subject);
    throw OSError(code, "posix_spawn", subject);
  }
  return Spawned{pid, open_pidfd(pid, program)};
}

}  // namespace ipckit::sys
