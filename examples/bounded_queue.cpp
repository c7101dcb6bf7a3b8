// The "Queue Advanced Features" example of seeds/002 (§2 Queues), with ipckit.
//
// A queue that holds at most three items: its state (empty(), full(), qsize()) before,
// four puts that each wait at most 0.1 s (the fourth finds the queue full and gives up),
// its state when full, then gets that each wait at most 0.1 s until one finds the queue
// empty, and its state at the end. One process, as in the Python; a queue made like this
// before Process::start() is shared with the children.
//
// A timeout is an outcome, not an error: put(item, timeout) returns false and
// get(timeout) returns std::nullopt (the Python catches queue.Full and queue.Empty with a
// bare `except:`, which also hides any other failure). The Python gets three items, so
// its "Get timed out" branch never runs; this gets four, and the last one times out.
// qsize(), empty() and full() are exact here, but with other processes using the queue
// they are snapshots, as in Python.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>

#include "ipckit/queue.hpp"

using namespace std::chrono_literals;

int main() {
  ipckit::Queue<std::string> bounded_q(3);  // maxsize=3

  std::cout << std::boolalpha;
  std::cout << "Queue empty: " << bounded_q.empty() << std::endl;
  std::cout << "Queue full: " << bounded_q.full() << std::endl;
  std::cout << "Approximate size: " << bounded_q.qsize() << std::endl;

  std::cout << "Adding items until queue is full..." << std::endl;
  for (int i = 0; i < 4; ++i) {
    const std::string item = "Item " + std::to_string(i);
    if (bounded_q.put(item, 100ms))
      std::cout << "Added " << item << std::endl;
    else
      std::cout << "Couldn't add " << item << ", queue is full" << std::endl;
  }
  std::cout << "Queue full now: " << bounded_q.full() << " (size " << bounded_q.qsize() << ")" << std::endl;

  std::cout << "Getting items..." << std::endl;
  for (int i = 0; i < 4; ++i) {
    if (const std::optional<std::string> item = bounded_q.get(100ms))
      std::cout << "Got: " << *item << std::endl;
    else
      std::cout << "Get timed out" << std::endl;
  }
  std::cout << "Queue empty now: " << bounded_q.empty() << std::endl;
}
