// The README's first example: a value to a child process and an answer back.
#include <ipckit/ipckit.hpp>
#include <iostream>

struct Job { int id; std::string text; IPCKIT_CODABLE(id, text) };

int main() {
  auto [parent_end, child_end] = ipckit::Pipe();
  ipckit::Process worker([&] {
    auto job = child_end.recv<Job>();
    child_end.send("job " + std::to_string(job.id) + " done: " + job.text);
  }, "worker");
  worker.start();
  parent_end.send(Job{1, "resize photo.jpg"});
  std::cout << parent_end.recv<std::string>() << "\n";
  worker.join();
}
