// The "Basic Queue Example" of seeds/002 (§2 Queues), with ipckit.
//
// Three producer processes each put a random number (3 to 7) of items on one shared
// Queue, pausing a random few milliseconds between them, then a DONE message. A consumer
// process takes the items with a one-second timeout, pausing to simulate processing, until
// every producer has said it is done. The main process joins them all.
//
// Where the Python is loose, this is strict:
//   - An item is a struct (IPCKIT_CODABLE), not a string the consumer has to parse; the
//     DONE message says how many items its producer put, and the consumer checks that it
//     got exactly those, in order.
//   - get(1s) returns std::nullopt on a timeout, an outcome, instead of the Python's
//     `except Exception`, which also swallows any bug as "no item received".
//   - A producer that fails never sends DONE, and the Python consumer then waits for ever.
//     Here the main process closes the queue when a producer failed: the consumer takes
//     what is left, then get throws QueueClosed and it stops.
//   - When put returns, the item is in shared memory: a producer exits at once (Python's
//     feeder thread makes it wait until the consumer has drained the pipe).
#include <chrono>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/codec.hpp"
#include "ipckit/error.hpp"
#include "ipckit/process.hpp"
#include "ipckit/queue.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kProducers = 3;

// Item `index` of `producer`; or, when `done`, the end of that producer's `index` items.
struct Item {
  int producer = 0;
  int index = 0;
  bool done = false;
  IPCKIT_CODABLE(producer, index, done)
};

std::string describe(const Item& item) {
  return "Producer " + std::to_string(item.producer) + " - Item " + std::to_string(item.index);
}

// A pause of up to `most`, at random (Python's time.sleep(random.random() * most)).
void random_pause(std::mt19937& random, std::chrono::milliseconds most) {
  std::uniform_int_distribution<long> micros(0, std::chrono::microseconds(most).count());
  std::this_thread::sleep_for(std::chrono::microseconds(micros(random)));
}

// Every line is flushed (std::endl) so that the lines of the processes interleave whole.
void producer(ipckit::Queue<Item>& queue, int items_to_produce, int id) {
  std::mt19937 random(std::random_device{}());
  for (int i = 0; i < items_to_produce; ++i) {
    const Item item{id, i, false};
    queue.put(item);
    std::cout << "Producer " << id << " added: " << describe(item) << std::endl;
    random_pause(random, 10ms);
  }
  queue.put(Item{id, items_to_produce, true});  // this producer is done
  std::cout << "Producer " << id << " finished" << std::endl;
}

void consumer(ipckit::Queue<Item>& queue, int num_producers) {
  std::mt19937 random(std::random_device{}());
  std::vector<int> received(num_producers, 0);  // items taken, per producer
  int producers_done = 0;
  try {
    while (producers_done < num_producers) {
      const std::optional<Item> item = queue.get(1s);
      if (!item) {
        std::cout << "Consumer: No item received in the last second" << std::endl;
        continue;
      }
      if (item->done) {
        if (received[item->producer] != item->index)
          throw std::runtime_error("Consumer: producer " + std::to_string(item->producer) + " put " +
                                   std::to_string(item->index) + " items, got " +
                                   std::to_string(received[item->producer]));
        ++producers_done;
        std::cout << "Consumer: Producer " << item->producer << " is done (" << item->index << " items)"
                  << std::endl;
        continue;
      }
      if (item->index != received[item->producer])
        throw std::runtime_error("Consumer: got " + describe(*item) + " out of order");
      ++received[item->producer];
      std::cout << "Consumer: Got " << describe(*item) << std::endl;
      random_pause(random, 20ms);  // simulated processing
    }
  } catch (const ipckit::QueueClosed&) {
    throw std::runtime_error("Consumer: the queue was closed before every producer was done");
  }
  std::cout << "Consumer: All producers are done, exiting" << std::endl;
}

}  // namespace

int main() {
  ipckit::Queue<Item> queue;

  ipckit::Process consumer_process([&] { consumer(queue, kProducers); }, "Consumer");
  consumer_process.start();

  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> item_count(3, 7);
  std::vector<ipckit::Process> producers;
  for (int i = 0; i < kProducers; ++i) {
    const int items = item_count(random);
    producers.emplace_back([&queue, items, i] { producer(queue, items, i); }, "Producer-" + std::to_string(i));
    producers.back().start();
  }

  bool ok = true;
  for (auto& p : producers) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  if (!ok) queue.close();  // no DONE will come from a failed producer: end the consumer's wait
  consumer_process.join();
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok || consumer_process.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
