// Uses an installed ipckit through its umbrella header only, as a user's program does: a
// value goes through a Pipe() to a child Process, which checks it and answers.
// Exit code 0 when every check passes; each failing check is printed.
#include <ipckit/ipckit.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

struct Order {
  std::string customer;
  std::vector<std::int64_t> items;
  IPCKIT_CODABLE(customer, items)
};

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: check failed: %s\n", what);
    ++failures;
  }
}

constexpr int kChildSawWrongOrder = 3;

}  // namespace

int main() {
  const ipckit::OSError error(std::make_error_code(std::errc::no_such_file_or_directory),
                              "shm_open", "/ipckit-consumer");
  const std::string message = error.what();
  check(message.find("shm_open") != std::string::npos, "OSError names the call");
  check(message.find("/ipckit-consumer") != std::string::npos, "OSError names the subject");
  check(error.code() == std::errc::no_such_file_or_directory, "OSError keeps the error code");
  check(ipckit::cpu_count() >= 1, "cpu_count() >= 1");

  auto pipe = ipckit::Pipe();
  ipckit::Connection& parent_end = pipe.first;
  ipckit::Connection& child_end = pipe.second;
  ipckit::Process child([&child_end] {
    const auto order = child_end.recv<Order>();
    std::int64_t total = 0;
    for (const std::int64_t item : order.items) total += item;
    child_end.send(total);
    if (order.customer != "ada" || order.items.size() != 3) throw ipckit::SystemExit{kChildSawWrongOrder};
  });
  child.start();
  parent_end.send(Order{"ada", {1, 20, 300}});
  check(parent_end.recv<std::int64_t>() == 321, "the child answers the sum of the items");
  child.join();
  check(child.exitcode() == 0, "the child received the order intact and exited 0");

  if (failures != 0) return 1;
  std::printf("consumer: ok\n");
  return 0;
}
