// SharedMemory across real processes: names and views; round trips with unrelated
// (re-exec'd) and forked processes and with Python's multiprocessing.shared_memory;
// anonymous and file mappings; and the tracking of named segments through SIGKILL.
//
// The tracker socket: every process that creates a tracked segment holds one fd to its
// tracker from then on. The fixture's leak check compares fds before and after each test,
// so the environment below starts this process's tracker (shm::ensure_tracker(), the
// documented internal call) before the first test of this binary runs — whichever suite:
// named objects of other suites (sync.hpp's) create tracked segments too. Every test then
// finds the fd already there; the check stays exact for every other fd.
#include "ipckit/shared_memory.hpp"

#include <sys/syscall.h>
#include <unistd.h>
#include <poll.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit_test.hpp"
#include "objects/shm_tracker.hpp"
#include "objects/shm_trailer.hpp"
#include "shm_support.hpp"
#include "sys/file_ops.hpp"
#include "sys/mapping.hpp"
#include "sys/proc.hpp"
#include "sys/robust_mutex.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::SharedMemory;
using ipckit::SharedMemoryOptions;
using ipckit::test::kChildBadArguments;
using ipckit::test::kChildCheckFailed;
using ipckit::test::kChildOk;
using ipckit::test::shm_path;
using ipckit::test::Spawned;
using ipckit::test::unique_name;
using ipckit::test::wait_until_removed;
using SharedMemoryTest = ipckit::test::Test;
using ShmTrackingTest = ipckit::test::Test;

// Bounded anyway by the watchdog; the tracker takes milliseconds.
constexpr auto kRemoval = std::chrono::milliseconds(30s);

class TrackerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ipckit::shm::ensure_tracker(); }
};
[[maybe_unused]] const auto* const tracker_environment =
    ::testing::AddGlobalTestEnvironment(new TrackerEnvironment);

std::byte pattern(std::size_t i, int seed) {
  return static_cast<std::byte>((i * 7 + static_cast<std::size_t>(seed)) & 0xFF);
}

void fill(std::span<std::byte> bytes, int seed) {
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = pattern(i, seed);
}

bool matches(std::span<const std::byte> bytes, int seed) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] != pattern(i, seed)) return false;
  return true;
}

using ipckit::test::text;

using ipckit::test::wait_for_gate;

std::string read_line_or_fail(Spawned& child) {
  auto line = child.read_line();
  return line ? *line : "<end of output>";
}

// Waits until process `pid` (not our child) has ended, through a pidfd.
bool wait_for_end(int pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return true;  // no such process any more
  pollfd p{fd, POLLIN, 0};
  const int n = poll(&p, 1, static_cast<int>(timeout.count()));
  close(fd);
  return n == 1;
}

// The numbers of this process's open fds (what they refer to may change).
std::set<std::string> fd_numbers() {
  std::set<std::string> numbers;
  for (const auto& fd : ipckit::test::open_fds()) numbers.insert(fd.substr(0, fd.find(' ')));
  return numbers;
}

// Returns once the tracker has acted on every process end that happened before the call:
// a forked child creates a tracked segment and returns, and its removal is awaited. The
// tracker handles ended creators in the order it heard of them, so any creator that ended
// earlier has been handled by then.
// A child that creates a tracked 64-byte segment and tells its name; then it returns, or
// (`stay`) waits to be killed.
struct Creator {
  std::unique_ptr<ipckit::Process> process;
  std::string name;
};
Creator start_creator(bool stay) {
  auto [parent_end, child_end] = ipckit::Pipe();
  auto process = std::make_unique<ipckit::Process>([&child_end, stay] {
    auto shm = SharedMemory::create(64);
    child_end.send_bytes(shm.name());
    while (stay) pause();
  });
  process->start();
  return {std::move(process), text(parent_end.recv_bytes())};
}

void tracker_barrier() {
  auto creator = start_creator(false);
  creator.process->join();
  ASSERT_EQ(creator.process->exitcode(), 0);
  ASSERT_TRUE(wait_until_removed(shm_path(creator.name), kRemoval)) << "the barrier segment was not removed";
}

// --- Child scenarios (unrelated processes: this binary, re-exec'd) ------------------------

// args: name size seed track(0|1). Creates and fills the segment, prints "created <number
// of its own children> <its tracker's pid>", then holds it until a line (or end of input)
// arrives.
int create_and_hold_main(const std::vector<std::string>& args) {
  if (args.size() != 4) return kChildBadArguments;
  SharedMemoryOptions options;
  options.track = args[3] == "1";
  auto shm = SharedMemory::create(args[0], std::stoul(args[1]), options);
  fill(shm.buf(), std::stoi(args[2]));
  std::printf("created %zu %d\n", ipckit::test::child_pids().size(), ipckit::shm::ensure_tracker());
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);
  return kChildOk;
}
const ipckit::test::ChildScenario create_and_hold("shm-create-and-hold", create_and_hold_main);

// args: name seed_expected seed_written. Opens, checks, writes its own pattern.
int open_check_write_main(const std::vector<std::string>& args) {
  if (args.size() != 3) return kChildBadArguments;
  auto shm = SharedMemory::open(args[0]);
  if (shm.created() || !matches(shm.buf(), std::stoi(args[1]))) return kChildCheckFailed;
  fill(shm.buf(), std::stoi(args[2]));
  shm.close();
  return kChildOk;
}
const ipckit::test::ChildScenario open_check_write("shm-open-check-write", open_check_write_main);

// args: name. Opens, prints "opened", holds it until a line (or end of input) arrives.
int open_and_hold_main(const std::vector<std::string>& args) {
  if (args.size() != 1) return kChildBadArguments;
  auto shm = SharedMemory::open(args[0]);
  std::printf("opened\n");
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);
  return kChildOk;
}
const ipckit::test::ChildScenario open_and_hold("shm-open-and-hold", open_and_hold_main);

// args: fd seed. Maps an inherited fd and writes the pattern.
int from_fd_write_main(const std::vector<std::string>& args) {
  if (args.size() != 2) return kChildBadArguments;
  auto shm = SharedMemory::from_fd(std::stoi(args[0]));
  if (shm.size() != 4096) return kChildCheckFailed;
  fill(shm.buf(), std::stoi(args[1]));
  return kChildOk;
}
const ipckit::test::ChildScenario from_fd_write("shm-from-fd-write", from_fd_write_main);

// args: path seed_expected seed_written. Maps a file by path, checks it, writes.
int map_file_check_write_main(const std::vector<std::string>& args) {
  if (args.size() != 3) return kChildBadArguments;
  auto file = SharedMemory::map_file(args[0]);
  if (file.created() || file.name() != args[0] || !matches(file.buf(), std::stoi(args[1])))
    return kChildCheckFailed;
  fill(file.buf(), std::stoi(args[2]));
  return kChildOk;
}
const ipckit::test::ChildScenario map_file_check_write("shm-map-file-check-write", map_file_check_write_main);

// Creates and unlinks a tracked segment, then prints its tracker's pid and how many
// children it has (the tracker must not be one of them).
int tracker_pid_main(const std::vector<std::string>&) {
  SharedMemory::create(64).unlink();
  std::printf("%d %zu\n", ipckit::shm::ensure_tracker(), ipckit::test::child_pids().size());
  return kChildOk;
}
const ipckit::test::ChildScenario tracker_pid("shm-tracker-pid", tracker_pid_main);

// args: name. Kills its tracker, then creates a tracked segment (which must start another
// tracker, on the same fd number) and exits leaving it to the new tracker.
int tracker_restart_main(const std::vector<std::string>& args) {
  if (args.size() != 1) return kChildBadArguments;
  const int first = ipckit::shm::ensure_tracker();
  const auto fds = fd_numbers();
  kill(first, SIGKILL);
  if (!wait_for_end(first, 30s)) return kChildCheckFailed;
  SharedMemory::create(args[0], 64).close();
  const int second = ipckit::shm::ensure_tracker();
  std::printf("%d %d %s\n", first, second, fd_numbers() == fds ? "same-fds" : "fds-changed");
  return kChildOk;
}
const ipckit::test::ChildScenario tracker_restart("shm-tracker-restart", tracker_restart_main);

// --- Names, sizes, views, errors -----------------------------------------------------

TEST_F(SharedMemoryTest, CreateOpenUnlinkInOneProcess) {
  const auto name = unique_name("basic");
  auto shm = SharedMemory::create(name, 1000);
  EXPECT_EQ(shm.name(), name);
  EXPECT_EQ(shm.size(), 1000u);
  EXPECT_TRUE(shm.created());
  EXPECT_FALSE(shm.closed());
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  for (std::byte b : shm.buf()) ASSERT_EQ(b, std::byte{0});
  fill(shm.buf(), 1);

  auto same = SharedMemory::open(name);
  EXPECT_FALSE(same.created());
  EXPECT_EQ(same.size(), 1000u);
  EXPECT_TRUE(matches(same.buf(), 1));

  shm.unlink();
  EXPECT_FALSE(ipckit::test::path_exists(shm_path(name)));
  EXPECT_THROW(shm.unlink(), ipckit::FileNotFoundError);
  EXPECT_THROW(SharedMemory::open(name), ipckit::FileNotFoundError);
  same.buf()[0] = std::byte{42};  // handles keep working after the name is gone
  EXPECT_EQ(shm.buf()[0], std::byte{42});
  same.close();
  EXPECT_TRUE(same.closed());
  EXPECT_NO_THROW(same.close());
  EXPECT_THROW(same.buf(), ipckit::ValueError);
  EXPECT_THROW(same.fd(), ipckit::ValueError);
}

TEST_F(SharedMemoryTest, CloseThenUnlinkAsPythonDoes) {
  const auto name = unique_name("closefirst");
  auto shm = SharedMemory::create(name, 64);
  shm.close();
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  shm.unlink();
  EXPECT_FALSE(ipckit::test::path_exists(shm_path(name)));
  EXPECT_THROW(shm.unlink(), ipckit::FileNotFoundError);
}

TEST_F(SharedMemoryTest, NamesAreCheckedAndTakenNamesRefused) {
  for (const char* bad : {"", "a/b", "has space", "ü", "/", "/a/b", "/ipckit-x"})
    EXPECT_THROW(SharedMemory::create(bad, 64), ipckit::ValueError) << bad;
  EXPECT_THROW(SharedMemory::create(std::string(201, 'a'), 64), ipckit::ValueError);
  EXPECT_THROW(SharedMemory::open("a/b"), ipckit::ValueError);
  EXPECT_THROW(SharedMemory::create(unique_name("zero"), 0), ipckit::ValueError);
  EXPECT_THROW(SharedMemory::create(0), ipckit::ValueError);
  EXPECT_THROW(SharedMemory::anonymous(0), ipckit::ValueError);

  const auto name = unique_name("taken");
  auto shm = SharedMemory::create(name, 64);
  EXPECT_THROW(SharedMemory::create(name, 64), ipckit::FileExistsError);
  EXPECT_THROW(SharedMemory::open(unique_name("missing")), ipckit::FileNotFoundError);
  try {
    SharedMemory::open("missing-" + name);
    ADD_FAILURE();
  } catch (const ipckit::FileNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("/ipckit-missing-" + name), std::string::npos) << e.what();
  }
  shm.unlink();
}

TEST_F(SharedMemoryTest, UnnamedCreateGetsAUniqueName) {
  auto a = SharedMemory::create(64);
  auto b = SharedMemory::create(64);
  EXPECT_NE(a.name(), b.name());
  const std::string prefix = std::to_string(getpid()) + "-";
  EXPECT_EQ(a.name().rfind(prefix, 0), 0u) << a.name();
  const auto last = a.name().rfind('-');
  EXPECT_EQ(a.name().size() - last - 1, 8u) << a.name();
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(a.name())));
  auto again = SharedMemory::open(a.name());
  EXPECT_EQ(again.size(), 64u);
  a.unlink();
  b.unlink();
}

TEST_F(SharedMemoryTest, ViewsCheckSizeAndAlignment) {
  auto shm = SharedMemory::create(unique_name("views"), 4096);
  auto all = shm.as<std::int64_t>();
  EXPECT_EQ(all.size(), 512u);
  all[511] = -5;
  EXPECT_EQ(shm.as<std::int64_t>(4088, 1)[0], -5);
  EXPECT_EQ(shm.as<std::int32_t>(4, 3).size(), 3u);
  EXPECT_EQ(shm.as<std::int32_t>(4096).size(), 0u);                 // the end: an empty view
  EXPECT_THROW(shm.as<std::int64_t>(4), ipckit::ValueError);        // misaligned
  EXPECT_THROW(shm.as<std::int64_t>(0, 513), ipckit::ValueError);   // too many
  EXPECT_THROW(shm.as<std::int64_t>(4096, 1), ipckit::ValueError);  // past the end
  EXPECT_THROW(shm.as<std::byte>(4097), ipckit::ValueError);
  struct Point {
    double x, y;
  };
  auto points = shm.as<Point>(64, 10);
  points[9] = {1.5, 2.5};
  EXPECT_EQ(shm.as<double>(64 + 9 * 16 + 8, 1)[0], 2.5);
  // A size that is not a multiple of the element: what fits.
  auto odd = SharedMemory::create(unique_name("odd"), 13);
  EXPECT_EQ(odd.as<std::int32_t>().size(), 3u);
  odd.unlink();
  shm.unlink();
}

TEST_F(SharedMemoryTest, DefaultAndMovedFromHandlesAreClosed) {
  SharedMemory none;
  EXPECT_TRUE(none.closed());
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.name(), "");
  EXPECT_THROW(none.buf(), ipckit::ValueError);
  EXPECT_NO_THROW(none.close());
  auto shm = SharedMemory::create(unique_name("moved"), 64);
  SharedMemory moved = std::move(shm);
  EXPECT_FALSE(moved.closed());
  none = std::move(moved);
  EXPECT_FALSE(none.closed());
  none.unlink();
}

TEST_F(SharedMemoryTest, NonIpckitSegmentUnderAnIpckitNameIsRefused) {
  const auto name = unique_name("foreignfile");
  const std::string os_name = "/ipckit-" + name;
  auto fd = ipckit::sys::shm_create(os_name, 0600);
  ipckit::sys::set_file_size(fd.get(), 100, os_name);  // too small for a trailer: at once
  EXPECT_THROW(SharedMemory::open(name), ipckit::ValueError);
  // Large enough but never initialised: refused after the bounded wait for a creator.
  ipckit::sys::set_file_size(fd.get(), ipckit::shm::file_size_for(64), os_name);
  EXPECT_THROW(SharedMemory::open(name), ipckit::ValueError);
  ipckit::sys::shm_remove(os_name);
}

TEST_F(SharedMemoryTest, LockLeftByAKilledHolderIsTakenOver) {
  const auto name = unique_name("ownerdied");
  auto shm = SharedMemory::create(name, 64);
  ipckit::Process holder([&] {
    auto segment = ipckit::shm::open_segment("/ipckit-" + name, ipckit::sys::Deadline::after(1s));
    ipckit::sys::robust_mutex_lock(segment.trailer->mutex, ipckit::sys::Deadline::never());
    ipckit::sys::signal_pid(ipckit::sys::current_pid(), SIGKILL);  // dies holding it
  });
  holder.start();
  holder.join();
  EXPECT_EQ(holder.exitcode(), -SIGKILL);
  auto other = SharedMemory::open(name);  // takes the lock over, marks it consistent
  other.close();
  shm.unlink();
}

TEST_F(SharedMemoryTest, FullAttachTableStillOpens) {
  const auto name = unique_name("full");
  auto shm = SharedMemory::create(name, 64);
  {
    // Every slot names a running process (init), so none can be reclaimed.
    auto segment = ipckit::shm::open_segment("/ipckit-" + name, ipckit::sys::Deadline::after(1s));
    const auto init_start = ipckit::sys::process_start_time(1);
    ASSERT_TRUE(init_start.has_value());
    ipckit::shm::TrailerLock lock(*segment.trailer);
    for (auto& slot : segment.trailer->slots) slot = {1, 1, *init_start};
  }
  auto other = SharedMemory::open(name);
  other.buf()[0] = std::byte{7};
  EXPECT_EQ(shm.buf()[0], std::byte{7});
  other.close();
  shm.unlink();
}

// --- Round trips between processes ------------------------------------------------------

TEST_F(SharedMemoryTest, UnrelatedProcessOpensWhatWeCreated) {
  const auto name = unique_name("toexec");
  auto shm = SharedMemory::create(name, 10000);
  fill(shm.buf(), 1);
  const auto result = ipckit::test::run_child("shm-open-check-write", {name, "1", "2"});
  ASSERT_EQ(result.exit_code, kChildOk) << result.output;
  EXPECT_TRUE(matches(shm.buf(), 2));
  shm.unlink();
}

TEST_F(SharedMemoryTest, WeOpenWhatAnUnrelatedProcessCreated) {
  const auto name = unique_name("fromexec");
  auto creator = Spawned::scenario("shm-create-and-hold", {name, "5000", "3", "1"});
  const auto line = read_line_or_fail(creator);
  int tracker = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "created 0 %d", &tracker), 1) << line << creator.read_rest();
  auto shm = SharedMemory::open(name);
  EXPECT_FALSE(shm.created());
  EXPECT_EQ(shm.size(), 5000u);
  EXPECT_TRUE(matches(shm.buf(), 3));
  creator.close_stdin();
  ASSERT_EQ(creator.wait(), kChildOk);
  // The creator has ended; we are its last user, so our close removes the name at once.
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  shm.close();
  EXPECT_FALSE(ipckit::test::path_exists(shm_path(name)));
  // Its tracker waited for us to end; it sees the name go and ends instead.
  EXPECT_TRUE(wait_for_end(tracker, kRemoval));
}

TEST_F(SharedMemoryTest, ForkedChildOpensByNameAndWrites) {
  const auto name = unique_name("fork");
  auto shm = SharedMemory::create(name, 4096);
  fill(shm.buf(), 4);
  ipckit::Process child([&] {
    auto same = SharedMemory::open(name);
    if (!matches(same.buf(), 4)) throw std::runtime_error("the child saw other bytes");
    fill(same.buf(), 5);
  });
  child.start();
  child.join();
  ASSERT_EQ(child.exitcode(), 0) << child.error().value_or("");
  EXPECT_TRUE(matches(shm.buf(), 5));
  shm.unlink();
}

TEST_F(SharedMemoryTest, ForkedChildSharesAnInheritedMapping) {
  auto shm = SharedMemory::create(unique_name("inherit"), 64);
  ipckit::Process child([&] { shm.as<std::int64_t>()[0] = 1234; });
  child.start();
  child.join();
  EXPECT_EQ(shm.as<std::int64_t>()[0], 1234);
  shm.unlink();
}

TEST_F(SharedMemoryTest, OpenOrCreateRaceHasExactlyOneCreator) {
  constexpr int kRacers = 4;
  const auto name = unique_name("race");
  auto [start_r, start_w] = ipckit::Pipe(false);
  auto [hold_r, hold_w] = ipckit::Pipe(false);
  auto [parent_end, child_end] = ipckit::Pipe();
  std::vector<ipckit::Process> racers;
  for (int i = 0; i < kRacers; ++i) {
    racers.emplace_back([&] {
      hold_w.close();
      wait_for_gate(start_r, start_w);  // all race from here
      auto shm = SharedMemory::open_or_create(name, 4096);
      const int count = std::atomic_ref<std::int32_t>(shm.as<std::int32_t>()[0]).fetch_add(1) + 1;
      child_end.send_bytes((shm.created() ? "created " : "opened ") + std::to_string(count));
      wait_for_gate(hold_r, hold_w);  // keep it until every racer has it
    });
  }
  for (auto& r : racers) r.start();
  start_w.close();
  int created = 0;
  std::set<int> counts;
  for (int i = 0; i < kRacers; ++i) {
    const auto report = text(parent_end.recv_bytes());
    created += report.rfind("created ", 0) == 0 ? 1 : 0;
    counts.insert(std::stoi(report.substr(report.find(' ') + 1)));
  }
  hold_w.close();
  for (auto& r : racers) {
    r.join();
    EXPECT_EQ(r.exitcode(), 0) << r.error().value_or("");
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(counts, (std::set<int>{1, 2, 3, 4}));
  // Creator and users have all ended: the tracker removes it.
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

TEST_F(SharedMemoryTest, OpenOrCreateInOneProcess) {
  const auto name = unique_name("ooc");
  auto first = SharedMemory::open_or_create(name, 128);
  auto second = SharedMemory::open_or_create(name, 128);
  EXPECT_TRUE(first.created());
  EXPECT_FALSE(second.created());
  first.buf()[5] = std::byte{9};
  EXPECT_EQ(second.buf()[5], std::byte{9});
  second.unlink();
}

// --- Python's multiprocessing.shared_memory on foreign names -----------------------------

// Python peers (run with -c; argv[1] is the name without its leading '/', as Python takes
// it). Python up to 3.12 registers a segment it only opens with its resource tracker and
// would unlink it at exit: the openers unregister it.
constexpr const char* kPythonOpensOurs = R"(
import sys
from multiprocessing import resource_tracker, shared_memory
shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")
n = int(sys.argv[2])
ok = shm.size == n and all(shm.buf[i] == (i * 7 + 1) & 0xFF for i in range(n))
for i in range(n):
    shm.buf[i] = (i * 7 + 2) & 0xFF
shm.close()
print("ok" if ok else "mismatch", flush=True)
)";

constexpr const char* kPythonCreates = R"(
import sys
from multiprocessing import shared_memory
n = int(sys.argv[2])
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=n)
for i in range(n):
    shm.buf[i] = (i * 7 + 3) & 0xFF
print("ready", flush=True)
sys.stdin.readline()
ok = all(shm.buf[i] == (i * 7 + 4) & 0xFF for i in range(n))
shm.close()
shm.unlink()
print("ok" if ok else "mismatch", flush=True)
)";

constexpr const char* kPythonReadsIpckit = R"(
import sys
from multiprocessing import resource_tracker, shared_memory
shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")
ok = all(shm.buf[i] == (i * 7 + 6) & 0xFF for i in range(100))
shm.close()
print("ok" if ok else "mismatch", flush=True)
)";

TEST_F(SharedMemoryTest, PythonOpensAForeignSegmentWeCreated) {
  const auto name = unique_name("ipckitpy");  // "/ipckitpy-...": the leak check sees it
  auto shm = SharedMemory::create("/" + name, 3000);
  EXPECT_EQ(shm.name(), "/" + name);
  EXPECT_TRUE(ipckit::test::path_exists("/dev/shm/" + name));
  fill(shm.buf(), 1);
  auto python = Spawned::program({IPCKIT_PYTHON, "-c", kPythonOpensOurs, name, "3000"});
  const std::string output = python.read_rest();
  EXPECT_EQ(python.wait(), 0) << output;
  EXPECT_NE(output.find("ok"), std::string::npos) << output;
  EXPECT_TRUE(matches(shm.buf(), 2));
  shm.unlink();
  EXPECT_FALSE(ipckit::test::path_exists("/dev/shm/" + name));
}

TEST_F(SharedMemoryTest, WeOpenASegmentPythonCreated) {
  const auto name = unique_name("ipckitpy");
  auto python = Spawned::program({IPCKIT_PYTHON, "-c", kPythonCreates, name, "2000"});
  ASSERT_EQ(read_line_or_fail(python), "ready") << python.read_rest();
  {
    auto shm = SharedMemory::open("/" + name);
    EXPECT_FALSE(shm.created());
    EXPECT_EQ(shm.size(), 2000u);
    EXPECT_TRUE(matches(shm.buf(), 3));
    fill(shm.buf(), 4);
  }
  python.write_line("go");
  const std::string output = python.read_rest();
  EXPECT_EQ(python.wait(), 0) << output;
  EXPECT_NE(output.find("ok"), std::string::npos) << output;
  EXPECT_FALSE(ipckit::test::path_exists("/dev/shm/" + name));
}

TEST_F(SharedMemoryTest, PythonReadsTheUserBytesOfAnIpckitSegment) {
  const auto name = unique_name("pyview");
  auto shm = SharedMemory::create(name, 100);
  fill(shm.buf(), 6);
  auto python = Spawned::program({IPCKIT_PYTHON, "-c", kPythonReadsIpckit, "ipckit-" + name});
  const std::string output = python.read_rest();
  EXPECT_EQ(python.wait(), 0) << output;
  EXPECT_NE(output.find("ok"), std::string::npos) << output;
  shm.unlink();
}

// --- Anonymous segments and files --------------------------------------------------------

TEST_F(SharedMemoryTest, AnonymousSegmentHandedToAnExecdChild) {
  auto shm = SharedMemory::anonymous(4096);
  EXPECT_EQ(shm.name(), "");
  EXPECT_EQ(shm.size(), 4096u);
  EXPECT_TRUE(shm.created());
  EXPECT_THROW(shm.unlink(), ipckit::ValueError);
  EXPECT_NO_THROW(shm.untrack());
  const auto result =
      ipckit::test::run_child("shm-from-fd-write", {std::to_string(shm.fd()), "7"}, {shm.fd()});
  ASSERT_EQ(result.exit_code, kChildOk) << result.output;
  EXPECT_TRUE(matches(shm.buf(), 7));
  ipckit::Process child([&] { fill(shm.buf(), 8); });  // and a forked one through the mapping
  child.start();
  child.join();
  EXPECT_TRUE(matches(shm.buf(), 8));
}

TEST_F(SharedMemoryTest, FromFdOfANamedSegmentShowsTheUserBytes) {
  const auto name = unique_name("fromfd");
  auto shm = SharedMemory::create(name, 100);
  auto view = SharedMemory::from_fd(ipckit::sys::duplicate_fd(shm.fd(), "test").release());
  EXPECT_EQ(view.size(), 100u);
  EXPECT_FALSE(view.created());
  view.buf()[99] = std::byte{1};
  EXPECT_EQ(shm.buf()[99], std::byte{1});
  EXPECT_THROW(SharedMemory::from_fd(-1), ipckit::ValueError);
  shm.unlink();
}

TEST_F(SharedMemoryTest, FileMappedByTwoProcesses) {
  const auto path = (std::filesystem::temp_directory_path() / unique_name("ipckit-file")).string();
  EXPECT_THROW(SharedMemory::map_file(path), ipckit::FileNotFoundError);
  auto file = SharedMemory::map_file(path, {.size = 4096, .create = true});
  EXPECT_TRUE(file.created());
  EXPECT_EQ(file.name(), path);
  EXPECT_EQ(file.size(), 4096u);
  fill(file.buf(), 1);
  const auto result = ipckit::test::run_child("shm-map-file-check-write", {path, "1", "2"});
  ASSERT_EQ(result.exit_code, kChildOk) << result.output;
  EXPECT_TRUE(matches(file.buf(), 2));

  auto reader = SharedMemory::map_file(path, {.read_only = true});
  EXPECT_TRUE(matches(reader.buf(), 2));
  EXPECT_THROW(SharedMemory::map_file(path, {.size = 8192, .read_only = true}), ipckit::ValueError);
  auto grown = SharedMemory::map_file(path, {.size = 8192});
  EXPECT_EQ(grown.size(), 8192u);
  EXPECT_EQ(std::filesystem::file_size(path), 8192u);
  grown.unlink();  // removes the file
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_THROW(file.unlink(), ipckit::FileNotFoundError);

  const auto empty = (std::filesystem::temp_directory_path() / unique_name("ipckit-empty")).string();
  EXPECT_THROW(SharedMemory::map_file(empty, {.create = true}), ipckit::ValueError);
  std::filesystem::remove(empty);
}

// --- Tracking -------------------------------------------------------------------------

TEST_F(ShmTrackingTest, KilledCreatorsSegmentIsRemoved) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process creator([&] {
    auto shm = SharedMemory::create(64);  // through the tracker this process inherited
    child_end.send_bytes(shm.name());
    for (;;) pause();
  });
  creator.start();
  const auto name = text(parent_end.recv_bytes());
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  creator.kill();
  creator.join();
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

TEST_F(ShmTrackingTest, KilledUnrelatedCreatorsSegmentIsRemoved) {
  const auto name = unique_name("killedexec");
  auto creator = Spawned::scenario("shm-create-and-hold", {name, "64", "1", "1"});
  // "created 0 ...": its tracker (started by this create) is not its child.
  ASSERT_EQ(read_line_or_fail(creator).rfind("created 0 ", 0), 0u) << creator.read_rest();
  creator.kill();
  EXPECT_EQ(creator.wait(), -SIGKILL);
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

TEST_F(ShmTrackingTest, NormalExitOfTheCreatorRemovesIt) {
  auto creator = start_creator(false);
  creator.process->join();
  EXPECT_EQ(creator.process->exitcode(), 0);
  EXPECT_TRUE(wait_until_removed(shm_path(creator.name), kRemoval));
}

TEST_F(ShmTrackingTest, NameStaysWhileAnUnrelatedUserLives) {
  auto creator = start_creator(true);
  const auto& name = creator.name;
  auto user = Spawned::scenario("shm-open-and-hold", {name});
  ASSERT_EQ(read_line_or_fail(user), "opened") << user.read_rest();
  creator.process->kill();
  creator.process->join();
  tracker_barrier();  // the tracker has seen the creator end
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  auto still = SharedMemory::open(name);  // and it can still be opened
  still.close();
  user.kill();
  EXPECT_EQ(user.wait(), -SIGKILL);
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

TEST_F(ShmTrackingTest, LastUserToCloseRemovesTheNameAtOnce) {
  auto creator = start_creator(true);
  const auto& name = creator.name;
  auto shm = SharedMemory::open(name);
  creator.process->kill();
  creator.process->join();
  tracker_barrier();
  EXPECT_TRUE(ipckit::test::path_exists(shm_path(name)));
  shm.close();
  EXPECT_FALSE(ipckit::test::path_exists(shm_path(name)));
}

TEST_F(ShmTrackingTest, UntrackedSegmentsOutliveTheirCreator) {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process creator([&] {
    auto untracked = SharedMemory::create(64);
    untracked.untrack();
    auto never_tracked = SharedMemory::create(64, {.track = false});
    child_end.send_bytes(untracked.name());
    child_end.send_bytes(never_tracked.name());
    for (;;) pause();
  });
  creator.start();
  const auto first = text(parent_end.recv_bytes());
  const auto second = text(parent_end.recv_bytes());
  creator.kill();
  creator.join();
  tracker_barrier();
  for (const auto& name : {first, second}) {
    EXPECT_TRUE(ipckit::test::path_exists(shm_path(name))) << name;
    auto shm = SharedMemory::open(name);
    shm.close();  // the last user, but the segment is untracked: it stays
    EXPECT_TRUE(ipckit::test::path_exists(shm_path(name))) << name;
    shm.unlink();
  }
}

TEST_F(ShmTrackingTest, AnyProcessMayUnlink) {
  auto [parent_end, child_end] = ipckit::Pipe();
  auto [gate_r, gate_w] = ipckit::Pipe(false);
  ipckit::Process creator([&] {
    auto shm = SharedMemory::create(64);
    child_end.send_bytes(shm.name());
    wait_for_gate(gate_r, gate_w);
    child_end.send_bytes(std::to_string(shm.as<std::int64_t>()[0]));  // still mapped
  });
  creator.start();
  const auto name = text(parent_end.recv_bytes());
  auto shm = SharedMemory::open(name);
  shm.unlink();
  EXPECT_FALSE(ipckit::test::path_exists(shm_path(name)));
  shm.as<std::int64_t>()[0] = 77;
  gate_w.close();
  EXPECT_EQ(text(parent_end.recv_bytes()), "77");
  creator.join();
  EXPECT_EQ(creator.exitcode(), 0);
}

TEST_F(ShmTrackingTest, CreatorKilledBeforeInitialisingIsCleanedUp) {
  const auto name = unique_name("halfmade");
  const std::string os_name = "/ipckit-" + name;
  ipckit::Process creator([&] {
    // What create() does up to its notice to the tracker, then death.
    auto fd = ipckit::sys::shm_create(os_name, 0600);
    const auto status = ipckit::sys::file_status(fd.get(), os_name);
    ipckit::shm::notify_created(
        {os_name, status.device, status.inode, ipckit::sys::current_pid(), ipckit::sys::own_start_time()});
    ipckit::sys::signal_pid(ipckit::sys::current_pid(), SIGKILL);
  });
  creator.start();
  creator.join();
  EXPECT_EQ(creator.exitcode(), -SIGKILL);
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

TEST_F(ShmTrackingTest, ForkedChildrenShareTheTracker) {
  const int mine = ipckit::shm::ensure_tracker();
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process child([&] { child_end.send_bytes(std::to_string(ipckit::shm::ensure_tracker())); });
  child.start();
  EXPECT_EQ(text(parent_end.recv_bytes()), std::to_string(mine));
  child.join();
  const int plain = fork();  // a plain fork() is another process too
  if (plain == 0) {
    child_end.send_bytes(std::to_string(ipckit::shm::ensure_tracker()));
    ipckit::sys::exit_immediately(0);
  }
  EXPECT_EQ(text(parent_end.recv_bytes()), std::to_string(mine));
  EXPECT_EQ(ipckit::sys::reap_child(plain, true, "plain fork"), 0);
}

TEST_F(ShmTrackingTest, TrackerIsNoChildAndEndsWithItsProcesses) {
  const auto result = ipckit::test::run_child("shm-tracker-pid");
  ASSERT_EQ(result.exit_code, kChildOk) << result.output;
  int pid = 0;
  std::size_t children = 99;
  ASSERT_EQ(std::sscanf(result.output.c_str(), "%d %zu", &pid, &children), 2) << result.output;
  EXPECT_GT(pid, 0);
  EXPECT_EQ(children, 0u);
  // Its only process has exited: the socket is at end of stream, its creator ended.
  EXPECT_TRUE(wait_for_end(pid, kRemoval));
}

TEST_F(ShmTrackingTest, ADeadTrackerIsReplaced) {
  const auto name = unique_name("restart");
  const auto result = ipckit::test::run_child("shm-tracker-restart", {name});
  ASSERT_EQ(result.exit_code, kChildOk) << result.output;
  int first = 0, second = 0;
  char verdict[32] = {};
  ASSERT_EQ(std::sscanf(result.output.c_str(), "%d %d %31s", &first, &second, verdict), 3) << result.output;
  EXPECT_NE(first, second);
  EXPECT_STREQ(verdict, "same-fds");
  // The new tracker removes the segment its creator left.
  EXPECT_TRUE(wait_until_removed(shm_path(name), kRemoval));
}

}  // namespace
