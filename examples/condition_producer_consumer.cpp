// The condition part of seeds/002 §5 ("Other Synchronization Primitives"), with ipckit.
//
// A producer process puts nine items, one every 5 ms, on a shelf that holds two; three
// consumer processes take them off and spend 30 ms on each, so the shelf fills up. A consumer waits while the
// shelf is empty, the producer while it is full, each with Condition::wait_for and a
// predicate over the shelf. When the producer has put its last item it closes the shelf;
// a consumer that finds the shelf closed and empty stops. The main process joins them all
// and checks that every item was taken exactly once.
//
// Where the Python is loose, this is strict: its list is not shared (each consumer waits
// on its own empty copy for ever), and one item for three consumers would leave two
// waiting for ever even if it were. Here the shelf lives in shared memory (a Value of a
// plain struct), the producer says when it is done, and every wait has a ten-second
// limit, so a process that died shows up as an error instead of a hang.
//
// Both conditions use the shelf's lock: a Condition made with a lock waits and notifies
// under that lock, so the predicate is always checked on a shelf nobody is changing.
#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/sync.hpp"
#include "ipckit/value.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kItems = 9;
constexpr int kConsumers = 3;
constexpr int kCapacity = 2;
constexpr auto kPatience = 10s;  // longer than any wait of a healthy run

// What lives in shared memory: a small FIFO of items, guarded by its Value's lock.
struct Shelf {
  int items[kCapacity];
  int first;  // index of the oldest item
  int count;
  bool closed;  // the producer will put nothing more

  void put(int item) {
    items[(first + count) % kCapacity] = item;
    ++count;
  }
  int take() {
    const int item = items[first];
    first = (first + 1) % kCapacity;
    --count;
    return item;
  }
};

void producer(ipckit::Value<Shelf>& shelf, ipckit::Condition& not_empty, ipckit::Condition& not_full) {
  for (int item = 1; item <= kItems; ++item) {
    std::this_thread::sleep_for(5ms);  // simulated work: preparing the item
    {
      auto s = shelf.access();  // holds the shelf's lock; wait_for releases it while asleep
      if (s->count == kCapacity) std::cout << "Producer: shelf full, waiting" << std::endl;
      if (!not_full.wait_for([&] { return s->count < kCapacity; }, kPatience))
        throw std::runtime_error("the shelf stayed full for 10 s");
      s->put(item);
      not_empty.notify();
    }
    std::cout << "Producer added item " << item << std::endl;
  }
  {
    auto s = shelf.access();
    s->closed = true;
    not_empty.notify_all();  // every consumer must see it
  }
  std::cout << "Producer: no more items; shelf closed" << std::endl;
}

void consumer(ipckit::Value<Shelf>& shelf, ipckit::Condition& not_empty, ipckit::Condition& not_full,
              ipckit::Array<int>& taken, int consumer_id) {
  std::cout << "Consumer " << consumer_id << " waiting for data" << std::endl;
  for (;;) {
    int item = 0;
    {
      auto s = shelf.access();
      if (!not_empty.wait_for([&] { return s->count > 0 || s->closed; }, kPatience))
        throw std::runtime_error("no item and no end for 10 s");
      if (s->count == 0) break;  // closed and empty: the end
      item = s->take();
      not_full.notify();
    }
    taken.fetch_add(static_cast<std::size_t>(item - 1), 1);
    std::cout << "Consumer " << consumer_id << " got item " << item << std::endl;
    std::this_thread::sleep_for(30ms);  // simulated work: using the item
  }
  std::cout << "Consumer " << consumer_id << ": shelf closed and empty; stopping" << std::endl;
}

}  // namespace

int main() {
  ipckit::Value<Shelf> shelf(Shelf{});  // with its own lock
  ipckit::Condition not_empty(shelf.get_lock());
  ipckit::Condition not_full(shelf.get_lock());
  ipckit::Array<int> taken(kItems, false);  // how often each item was taken (atomic adds)

  std::vector<ipckit::Process> consumers;
  for (int i = 0; i < kConsumers; ++i)
    consumers.emplace_back([&, i] { consumer(shelf, not_empty, not_full, taken, i); },
                           "Consumer-" + std::to_string(i));
  ipckit::Process producer_process([&] { producer(shelf, not_empty, not_full); }, "Producer");

  for (auto& c : consumers) c.start();
  producer_process.start();

  producer_process.join();
  bool ok = producer_process.exitcode() == 0;
  for (auto& c : consumers) {
    c.join();
    ok = ok && c.exitcode() == 0;
  }
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok) return 1;

  for (int item = 1; item <= kItems; ++item) {
    if (const int times = taken.load(static_cast<std::size_t>(item - 1)); times != 1) {
      std::cerr << "item " << item << " was taken " << times << " times" << std::endl;
      return 1;
    }
  }
  std::cout << "Main process: all " << kItems << " items were taken exactly once" << std::endl;
}
