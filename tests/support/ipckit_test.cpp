#include "ipckit_test.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ipckit::test {
namespace {

std::map<std::string, ChildScenario::Main>& scenarios() {
  static auto* registry = new std::map<std::string, ChildScenario::Main>;
  return *registry;
}

std::set<std::string> list_dir(const char* path, std::string_view prefix, bool with_target) {
  std::set<std::string> out;
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return out;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == ".." || name.rfind(prefix, 0) != 0) continue;
    if (with_target) {
      if (name == std::to_string(own)) continue;
      char target[512] = {};
      const std::string link = std::string(path) + "/" + name;
      const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n > 0) name += " -> " + std::string(target, static_cast<std::size_t>(n));
    }
    out.insert(std::move(name));
  }
  ::closedir(dir);
  return out;
}

std::string diff(const std::set<std::string>& before, const std::set<std::string>& after) {
  std::string text;
  for (const auto& a : after)
    if (!before.contains(a)) text += "\n  + " + a;
  for (const auto& b : before)
    if (!after.contains(b)) text += "\n  - " + b;
  return text;
}

// One watchdog thread per test binary. Armed at SetUp, disarmed at TearDown. On expiry it
// names the test, SIGKILLs this process's children and ends the process, so a hung test
// fails in bounded time instead of stalling CI. It never runs in forked children (fork
// copies only the calling thread).
class Watchdog {
 public:
  static Watchdog& instance() {
    static auto* dog = new Watchdog;
    return *dog;
  }
  void arm(std::string test, int seconds) {
    std::lock_guard lock(mutex_);
    test_ = std::move(test);
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    armed_ = true;
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr, "\nwatchdog: %s did not finish in time; killing children\n",
                     test_.c_str());
        for (int pid : child_pids()) ::kill(pid, SIGKILL);
        std::fflush(nullptr);
        ::_exit(kWatchdogExitCode);
      }
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  std::string test_;
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false;
};

std::atomic<unsigned> name_counter{0};

}  // namespace

std::string text(const ipckit::Bytes& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void wait_for_gate(ipckit::Connection& gate, ipckit::Connection& gate_writer) {
  gate_writer.close();
  try {
    gate.recv_bytes();
  } catch (const ipckit::ConnectionClosed&) {
  }
}

std::unique_ptr<ipckit::Process> spawn(std::function<void()> body, bool daemon) {
  auto p = std::make_unique<ipckit::Process>(std::move(body), ipckit::ProcessOptions{"", daemon});
  p->start();
  return p;
}

void wait_until_state(int tid, char state) {
  const std::string path = "/proc/" + std::to_string(tid) + "/task/" + std::to_string(tid) + "/stat";
  for (;;) {
    std::ifstream stat(path);
    std::string line;
    if (!std::getline(stat, line)) throw std::runtime_error("cannot read " + path);
    const auto close = line.rfind(')');  // pid (comm) state ...
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == state) return;
    std::this_thread::yield();
  }
}

int watchdog_seconds() {
  if (const char* env = std::getenv("IPCKIT_TEST_TIMEOUT")) {
    const int s = std::atoi(env);
    if (s > 0) return s;
  }
  return 60;
}

std::set<std::string> open_fds() { return list_dir("/proc/self/fd", "", true); }
std::set<std::string> shm_entries() {
  // Only this process's: names from unique_name() and unnamed create() carry its pid, and
  // tests of other binaries run at the same time (ctest -j) make and remove their own.
  const std::string mine = "-" + std::to_string(::getpid()) + "-";
  std::set<std::string> out;
  for (const auto& entry : list_dir("/dev/shm", "ipckit", false))
    if (entry.find(mine) != std::string::npos) out.insert(entry);
  return out;
}

std::vector<int> child_pids() {
  std::vector<int> pids;
  const int self = ::getpid();
  for (const auto& entry : list_dir("/proc", "", false)) {
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + entry + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...; comm may contain spaces and parentheses.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == self) pids.push_back(std::stoi(entry));
  }
  return pids;
}

void Test::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  Watchdog::instance().arm(std::string(info->test_suite_name()) + "." + info->name(),
                           watchdog_seconds());
  fds_before_ = open_fds();
  shm_before_ = shm_entries();
}

void Test::TearDown() {
  Watchdog::instance().disarm();
  const auto children = child_pids();
  EXPECT_TRUE(children.empty()) << "the test left " << children.size()
                                << " child process(es) behind, e.g. pid " << children[0];
  for (int pid : children) {  // do not let one leak cascade into the next test
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  const auto fds = open_fds();
  EXPECT_EQ(fds, fds_before_) << "fds leaked or closed by the test:" << diff(fds_before_, fds);
  const auto shm = shm_entries();
  EXPECT_EQ(shm, shm_before_) << "/dev/shm entries left by the test:" << diff(shm_before_, shm);
}

ChildScenario::ChildScenario(std::string name, Main main) {
  scenarios().emplace(std::move(name), std::move(main));
}

ChildResult run_child(std::string_view scenario, const std::vector<std::string>& args,
                      const std::vector<int>& keep_fds) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  std::vector<std::string> argv_storage{"/proc/self/exe",
                                        "--ipckit-child=" + std::string(scenario)};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    for (int fd : keep_fds) ::fcntl(fd, F_SETFD, 0);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ChildResult result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n > 0) {
      result.output.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return result;
}

std::string unique_name(std::string_view stem) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = info != nullptr ? info->name() : "none";
  for (char& c : test)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return std::string(stem) + "-" + std::to_string(::getpid()) + "-" + test + "-" +
         std::to_string(name_counter.fetch_add(1));
}

// The main() of every test binary: a child scenario when asked for one, else the tests.
int run_main(int argc, char** argv) {
  constexpr std::string_view kFlag = "--ipckit-child=";
  if (argc >= 2 && std::string_view(argv[1]).rfind(kFlag, 0) == 0) {
    const std::string name(std::string_view(argv[1]).substr(kFlag.size()));
    const auto it = scenarios().find(name);
    if (it == scenarios().end()) {
      std::fprintf(stderr, "unknown child scenario '%s'\n", name.c_str());
      return kChildUnknownScenario;
    }
    return it->second(std::vector<std::string>(argv + 2, argv + argc));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace ipckit::test

int main(int argc, char** argv) { return ipckit::test::run_main(argc, argv); }
