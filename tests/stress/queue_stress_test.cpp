// Queue under SIGKILL: the producers and consumers of one queue are killed at random
// instants, over and over, and restarted; every message is accounted for by its producer
// and sequence number.
//
// The promise checked (queue.hpp, "Crash safety"): a put that had not returned either
// published its items or not; a get that had not returned either took its items (lost with
// the process) or left them for another consumer; everyone else carries on. Per round:
//   - no message is received twice, and none that was never put;
//   - a message whose put returned is received exactly once, unless a killed consumer had
//     taken it. Consumers name the messages they hold in shared memory, so such losses are
//     attributed by name; a message named by a consumer killed after its get returned must
//     not reach anyone else. Unnamed losses are allowed only to a consumer killed inside
//     get before naming what it got: at most the batch it asked for, and with get_to
//     (whose sink names each message while the queue still holds it) only a message that
//     travels in chunks, which the sink sees once whole;
//   - of a put that a kill interrupted, each message arrives at most once, and what arrived
//     is a prefix of the batch;
//   - each consumer sees each producer's messages in order, each with the length and
//     checksum its producer gave it;
//   - nobody hangs: producers stop when asked, consumers when the queue is closed; the queue
//     still carries the controller's probe messages after all the killing, and then reports
//     itself closed and empty.
//
// Rounds differ in ring size (4-16 KiB), message limit (one record; up to nearly the ring;
// up to three rings, streamed in chunks), item limit, and the numbers of producers and
// consumers; each incarnation of a producer or consumer uses one form of put or get.
// A producer that is killed is restarted from the first sequence it never handed to put,
// so every sequence number is put by one incarnation at most and "at most once" stays an
// exact check for the messages a kill interrupted.
//
// Knobs (environment): IPCKIT_STRESS_SEED (default random; printed, with the round, in
// every failure), IPCKIT_STRESS_ROUNDS (rounds per test, default 20), IPCKIT_STRESS_KILLS
// (kills per round, default 60). A test starts no new round once half of the watchdog's
// time (IPCKIT_TEST_TIMEOUT, default 60 s) has passed. A soak run (the binary itself, as
// ctest stops a test after 300 s):
//   IPCKIT_STRESS_ROUNDS=2000 IPCKIT_TEST_TIMEOUT=7200 build/release/bin/stress_test
// IPCKIT_STRESS_HOLD_ON_HANG=<seconds>: when a child hangs, print where the children are
// and keep them that long for a debugger (raise IPCKIT_TEST_TIMEOUT to match).
#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ipckit/process.hpp"
#include "ipckit/queue.hpp"
#include "ipckit/shared_memory.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::Bytes;
using ipckit::Timeout;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Knobs

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return std::strtoull(text, nullptr, 0);
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// ---------------------------------------------------------------------------------------
// The board: what producers and consumers say about themselves, in shared memory that
// outlives them. Every word is read and written through std::atomic_ref.

constexpr std::uint32_t kMaxProducers = 3;
constexpr std::uint32_t kMaxConsumers = 3;
constexpr std::uint32_t kProbeRow = kMaxProducers;  // the controller's probe messages
constexpr std::uint32_t kRows = kMaxProducers + 1;
constexpr std::uint64_t kSeqLimit = std::uint64_t{1} << 20;  // per producer and round
constexpr std::uint32_t kMaxBatch = 8;
constexpr std::uint64_t kNoId = ~std::uint64_t{0};

enum class ProducerMode : std::uint64_t { Put, PutMany, TimedPut, TimedPutMany };
enum class ConsumerMode : std::uint64_t { Get, TimedGet, GetInto, GetMany, Sink };
enum class Phase : std::uint64_t {
  Idle,
  Getting,  // inside get (with Sink: `held` fills while the queue still holds the messages)
  Took,     // get returned; `held` names what it took; held[0, recorded) are counted
};

const char* name_of(ProducerMode m) {
  constexpr const char* kNames[] = {"put", "put_many", "timed put", "timed put_many"};
  return kNames[static_cast<unsigned>(m)];
}
const char* name_of(ConsumerMode m) {
  constexpr const char* kNames[] = {"get", "timed get", "get_into", "get_many", "get_to"};
  return kNames[static_cast<unsigned>(m)];
}

struct ProducerSlot {
  std::uint64_t mode;
  std::uint64_t incarnation;
  std::uint64_t attempted_end;  // sequences below were handed to put
  std::uint64_t confirmed_end;  // sequences below: put returned them as in
  std::uint64_t found_full;     // a try_put that found no room
};

struct ConsumerSlot {
  std::uint64_t mode;
  std::uint64_t incarnation;
  std::uint64_t phase;
  std::uint64_t batch;  // most messages the get in progress may take
  std::uint64_t held_count;
  std::uint64_t held[kMaxBatch];
  std::uint64_t recorded;
  std::uint64_t found_empty;  // a try_get or timed get that came back empty
};

struct Board {
  std::uint64_t stop;
  std::uint64_t failures;
  char failure[1024];  // the first failure a child saw
  ProducerSlot producers[kMaxProducers];
  ConsumerSlot consumers[kMaxConsumers];
};

constexpr std::size_t kCountsOffset = (sizeof(Board) + 4095) & ~std::size_t{4095};
constexpr std::size_t kBoardBytes = kCountsOffset + kRows * kSeqLimit;

std::atomic_ref<std::uint64_t> word(std::uint64_t& w) { return std::atomic_ref<std::uint64_t>(w); }

// A message's name: its producer (or kProbeRow) and sequence.
constexpr std::uint64_t make_id(std::uint32_t producer, std::uint64_t seq) {
  return (std::uint64_t{producer} << 32) | seq;
}
constexpr std::uint32_t producer_of(std::uint64_t id) { return static_cast<std::uint32_t>(id >> 32); }
constexpr std::uint64_t seq_of(std::uint64_t id) { return id & 0xffffffffu; }
std::string id_text(std::uint64_t id) {
  return producer_of(id) == kProbeRow ? "probe #" + std::to_string(seq_of(id))
                                      : "P" + std::to_string(producer_of(id)) + "#" + std::to_string(seq_of(id));
}

// ---------------------------------------------------------------------------------------
// Messages. Two encodings of the same content: raw bytes (a Wire header, then the
// payload) through ByteQueue, or a Message through Queue<Message> and the codec. The
// payload's length follows from the round's seed, the producer and the sequence; its bytes
// from the producer and the sequence; the checksum covers all of it and the incarnation.

struct Message {
  std::uint32_t producer = 0;
  std::uint32_t incarnation = 0;
  std::uint32_t seq = 0;
  Bytes payload;
  std::uint64_t checksum = 0;
  IPCKIT_CODABLE(producer, incarnation, seq, payload, checksum)
};

struct Wire {
  std::uint32_t magic;
  std::uint32_t producer;
  std::uint32_t incarnation;
  std::uint32_t seq;
  std::uint64_t checksum;
};
constexpr std::uint32_t kMagic = 0x51535452;
constexpr std::size_t kWireOverhead = sizeof(Wire);
constexpr std::size_t kTypedOverhead = 80;  // a Message's encoding beyond its payload, at most

struct RoundConfig {
  std::uint64_t seed;
  unsigned round;
  bool typed;
  std::size_t capacity;
  std::size_t max_message;  // of the queue as made
  std::size_t maxsize;
  std::uint32_t producers;
  std::uint32_t consumers;
  std::uint32_t max_batch;

  std::size_t overhead() const { return typed ? kTypedOverhead : kWireOverhead; }
  std::size_t most_payload() const { return max_message - overhead(); }
  // Whether message (producer, seq) may travel in chunks: longer than a quarter of the ring.
  bool chunked(std::uint32_t producer, std::uint64_t seq) const;
  std::string describe() const {
    return "round " + std::to_string(round) + " (round seed " + std::to_string(seed) + ", " +
           (typed ? "Queue<Message>" : "ByteQueue") + ", ring " + std::to_string(capacity) + " B, max message " +
           std::to_string(max_message) + " B, maxsize " + std::to_string(maxsize) + ", " + std::to_string(producers) +
           " producers, " + std::to_string(consumers) + " consumers)";
  }
};

// Mostly small messages, many that fill a good part of the ring, a few of nearly the
// largest size the queue takes: records wrap, and the ring is often full.
std::size_t payload_length(const RoundConfig& c, std::uint32_t producer, std::uint64_t seq) {
  const std::size_t most = c.most_payload();
  if (producer == kProbeRow) return seq == 0 ? 0 : seq == 1 ? most : most / 3;
  const std::uint64_t h = mix(c.seed ^ (std::uint64_t{producer} << 40) ^ seq);
  const std::uint64_t r = h >> 32;
  const std::uint64_t bucket = h % 100;
  std::size_t n = 0;
  if (bucket < 55)
    n = r % 41;
  else if (bucket < 85)
    n = 41 + r % (c.capacity / 8);
  else if (bucket < 98)
    n = r % (most / 2 + 1);
  else
    n = most - r % 16;
  return std::min(n, most);
}

bool RoundConfig::chunked(std::uint32_t producer, std::uint64_t seq) const {
  return payload_length(*this, producer, seq) + overhead() > capacity / 4;
}

void fill_payload(std::uint32_t producer, std::uint64_t seq, std::span<std::byte> out) {
  std::uint64_t x = mix((std::uint64_t{producer} << 32) ^ seq ^ 0x5851F42D4C957F2Dull);
  for (std::size_t i = 0; i < out.size(); i += 8) {
    x = mix(x);
    std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, out.size() - i));
  }
}

std::uint64_t checksum(std::uint32_t producer, std::uint32_t incarnation, std::uint64_t seq,
                       std::span<const std::byte> payload) {
  std::uint64_t h = mix((std::uint64_t{producer} << 48) ^ (std::uint64_t{incarnation} << 32) ^ seq ^
                        (std::uint64_t{payload.size()} << 24));
  for (std::size_t i = 0; i < payload.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, payload.data() + i, std::min<std::size_t>(8, payload.size() - i));
    h = std::rotl(h ^ w, 27) * 0x9E3779B97F4A7C15ull;
  }
  return mix(h);
}

void build(const RoundConfig& c, std::uint32_t producer, std::uint32_t incarnation, std::uint64_t seq, Bytes& out) {
  const std::size_t n = payload_length(c, producer, seq);
  out.resize(kWireOverhead + n);
  const std::span<std::byte> payload(out.data() + kWireOverhead, n);
  fill_payload(producer, seq, payload);
  const Wire w{kMagic, producer, incarnation, static_cast<std::uint32_t>(seq),
               checksum(producer, incarnation, seq, payload)};
  std::memcpy(out.data(), &w, sizeof w);
}

void build(const RoundConfig& c, std::uint32_t producer, std::uint32_t incarnation, std::uint64_t seq, Message& out) {
  out.producer = producer;
  out.incarnation = incarnation;
  out.seq = static_cast<std::uint32_t>(seq);
  out.payload.resize(payload_length(c, producer, seq));
  fill_payload(producer, seq, out.payload);
  out.checksum = checksum(producer, incarnation, seq, out.payload);
}

// The name of a received message, read before it is checked (kNoId if it has none).
std::uint64_t peek_id(const Bytes& m) {
  if (m.size() < kWireOverhead) return kNoId;
  Wire w;
  std::memcpy(&w, m.data(), sizeof w);
  if (w.magic != kMagic || w.producer >= kRows || w.seq >= kSeqLimit) return kNoId;
  return make_id(w.producer, w.seq);
}
std::uint64_t peek_id(const Message& m) {
  if (m.producer >= kRows || m.seq >= kSeqLimit) return kNoId;
  return make_id(m.producer, m.seq);
}

// What is wrong with a received message ("" if nothing).
std::string check_fields(const RoundConfig& c, std::uint64_t id, std::uint32_t incarnation, std::uint64_t sum,
                         std::span<const std::byte> payload) {
  if (id == kNoId) return "a message with no valid name";
  const std::size_t expected = payload_length(c, producer_of(id), seq_of(id));
  if (payload.size() != expected)
    return id_text(id) + " has a payload of " + std::to_string(payload.size()) + " bytes, not " +
           std::to_string(expected);
  if (checksum(producer_of(id), incarnation, seq_of(id), payload) != sum)
    return id_text(id) + " (incarnation " + std::to_string(incarnation) + ", " + std::to_string(payload.size()) +
           " bytes) fails its checksum";
  return {};
}
std::string check(const RoundConfig& c, const Bytes& m) {
  const std::uint64_t id = peek_id(m);
  if (id == kNoId) return "a " + std::to_string(m.size()) + "-byte message with no valid header";
  Wire w;
  std::memcpy(&w, m.data(), sizeof w);
  return check_fields(c, id, w.incarnation, w.checksum, std::span(m).subspan(kWireOverhead));
}
std::string check(const RoundConfig& c, const Message& m) {
  return check_fields(c, peek_id(m), m.incarnation, m.checksum, m.payload);
}

// ---------------------------------------------------------------------------------------
// What a test varies, and what it adds up over its rounds.

struct Family {
  bool typed;
  std::vector<ProducerMode> producer_modes;
  std::vector<ConsumerMode> consumer_modes;
  std::uint32_t max_batch;
  unsigned maxsize_percent;  // rounds with an item limit
};

struct Tally {
  unsigned rounds = 0;
  std::uint64_t producer_kills = 0;
  std::uint64_t producer_kills_in_put = 0;  // attempted but not confirmed: inside put
  std::uint64_t consumer_kills = 0;
  std::uint64_t consumer_kills_in_get = 0;   // inside get, holding nothing named
  std::uint64_t consumer_kills_holding = 0;  // with messages named in `held`
  std::uint64_t double_kills = 0;            // a producer and a consumer at once
  std::uint64_t aimed_kills = 0;             // kills that waited for the victim to be busy
  std::uint64_t aimed_hits = 0;              // ... and saw it so
  std::uint64_t received = 0;
  std::uint64_t in_flight_arrived = 0;     // messages of interrupted puts that arrived
  std::uint64_t in_flight_dropped = 0;     // ... that did not go in
  std::uint64_t held_lost = 0;             // taken by a killed consumer, lost with it
  std::uint64_t held_left = 0;             // named inside get by a killed consumer, then got by another
  std::uint64_t unnamed_lost = 0;          // lost in the window before naming
  std::uint64_t unnamed_lost_chunked = 0;  // ... of them, messages that travel in chunks
  std::uint64_t unnamed_allowed = 0;
  std::uint64_t chunked_charged = 0;
  std::uint64_t found_full = 0;
  std::uint64_t found_empty = 0;
};

std::chrono::nanoseconds random_delay(std::mt19937_64& rng) {
  const std::uint64_t bucket = rng() % 10;
  if (bucket < 4) return std::chrono::nanoseconds(rng() % 50'000);
  if (bucket < 8) return std::chrono::nanoseconds(50'000 + rng() % 950'000);
  return std::chrono::nanoseconds(1'000'000 + rng() % 3'000'000);
}

// What a consumer does with each message, for a few microseconds: with get_to while the
// queue still holds it, otherwise after get returned. Kills then find consumers in the
// middle of taking messages, not only waiting for them.
void work_on_message(std::mt19937_64& rng) {
  const auto end = Clock::now() + std::chrono::nanoseconds(rng() % 12'000);
  while (Clock::now() < end) {
  }
}

// Lets the children run for `d`: the delay picks the moment of the next kill; it orders
// nothing.
void let_run(std::chrono::nanoseconds d) {
  if (d < 200us) {
    const auto end = Clock::now() + d;
    while (Clock::now() < end) {
    }
  } else {
    std::this_thread::sleep_for(d);
  }
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A process asleep in futex_wait, as the kernel shows it: the word, the value it sleeps
// until the word no longer has, and the word now (read through /proc/<pid>/mem).
struct FutexSleep {
  unsigned long long address = 0;
  std::uint32_t expected = 0;
  std::uint32_t now = 0;
  bool stale() const { return now != expected; }  // changed, and nobody woke it
  bool operator==(const FutexSleep& o) const { return address == o.address && expected == o.expected; }
};

std::optional<FutexSleep> futex_sleep_of(int pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  // 202 is futex on x86-64: "202 <word> <op> <expected> ...".
  unsigned long long address = 0;
  unsigned long long op = 0;
  unsigned long long expected = 0;
  if (std::sscanf(first_line(proc + "/syscall").c_str(), "202 %llx %llx %llx", &address, &op, &expected) != 3)
    return std::nullopt;
  if ((op & 0x7f) != 0 && (op & 0x7f) != 9) return std::nullopt;  // FUTEX_WAIT, FUTEX_WAIT_BITSET
  std::ifstream mem(proc + "/mem", std::ios::binary);
  std::uint32_t now = 0;
  mem.seekg(static_cast<std::streamoff>(address));
  if (!mem.read(reinterpret_cast<char*>(&now), sizeof now)) return std::nullopt;
  return FutexSleep{address, static_cast<std::uint32_t>(expected), now};
}

std::string describe(const FutexSleep& f) {
  char text[160];
  std::snprintf(text, sizeof text, "asleep until the word at %#llx changes from %#x; it is %#x now%s", f.address,
                f.expected, f.now, f.stale() ? " (changed, not woken)" : "");
  return text;
}

// ---------------------------------------------------------------------------------------
// One round: a fresh queue, producers and consumers started, killed and restarted, then
// stopped, drained and checked.

class Round {
 public:
  Round(Board& board, std::span<std::uint8_t> counts, const RoundConfig& config, const Family& family, Tally& tally)
      : board_(board),
        counts_(counts),
        config_(config),
        family_(family),
        tally_(tally),
        queue_(ipckit::QueueOptions{
            .maxsize = config.maxsize, .capacity_bytes = config.capacity, .max_message_size = config.max_message}),
        rng_(mix(config.seed ^ 0xC0117201)) {
    std::memset(&board_, 0, sizeof board_);
    std::memset(counts_.data(), 0, counts_.size());
  }
  Round(const Round&) = delete;
  Round& operator=(const Round&) = delete;

  ~Round() {  // after a failure: end whoever is left
    for (auto* group : {&producers_, &consumers_})
      for (auto& p : *group) {
        if (!p) continue;
        try {
          p->kill();
          p->join(10s);
        } catch (...) {
        }
      }
  }

  void run(unsigned kills) {
    ASSERT_EQ(queue_.bytes().max_message_size(), config_.max_message);
    producers_.resize(config_.producers);
    consumers_.resize(config_.consumers);
    for (std::uint32_t i = 0; i < config_.producers; ++i) start_producer(i);
    for (std::uint32_t i = 0; i < config_.consumers; ++i) start_consumer(i);

    std::uint64_t producer_kills = 0;
    std::uint64_t consumer_kills = 0;
    for (unsigned k = 0; k < kills; ++k) {
      let_run(random_delay(rng_));
      if (!all_running()) return;
      const bool any_producer = std::ranges::any_of(producers_, [](auto& p) { return p != nullptr; });
      bool kill_producer = any_producer && (rng_() & 1) != 0;
      // Keep the two kinds about even.
      if (any_producer && producer_kills + 2 < consumer_kills) kill_producer = true;
      if (consumer_kills + 2 < producer_kills) kill_producer = false;
      const bool both = any_producer && rng_() % 8 == 0;
      std::optional<std::uint32_t> producer;
      std::optional<std::uint32_t> consumer;
      if (kill_producer || both) producer = random_live(producers_);
      if (!kill_producer || both) consumer = random_live(consumers_);
      // A third of the kills wait (a little) for the victim to be in the middle of
      // something: a producer inside put, a consumer naming messages inside get_to or
      // just back from get.
      if (rng_() % 3 == 0) {
        const auto until = Clock::now() + 3ms;
        auto busy = [&] {
          if (producer) {
            ProducerSlot& ps = board_.producers[*producer];
            return word(ps.attempted_end).load() > word(ps.confirmed_end).load();
          }
          ConsumerSlot& cs = board_.consumers[*consumer];
          const auto phase = static_cast<Phase>(word(cs.phase).load());
          return phase == Phase::Took || (phase == Phase::Getting && word(cs.held_count).load() != 0);
        };
        bool hit = busy();
        while (!hit && Clock::now() < until) hit = busy();
        tally_.aimed_kills += 1;
        tally_.aimed_hits += hit ? 1 : 0;
      }
      if (producer) producers_[*producer]->kill();
      if (consumer) consumers_[*consumer]->kill();
      if (producer && !after_producer_kill(*producer)) return;
      if (consumer && !after_consumer_kill(*consumer)) return;
      producer_kills += producer ? 1 : 0;
      consumer_kills += consumer ? 1 : 0;
      tally_.double_kills += both ? 1 : 0;
      if (k % 16 == 15 && !none_stranded()) return;
    }
    finish();
  }

 private:
  std::string where() const { return config_.describe(); }

  std::uint32_t random_live(const std::vector<std::unique_ptr<ipckit::Process>>& group) {
    std::vector<std::uint32_t> live;
    for (std::uint32_t i = 0; i < group.size(); ++i)
      if (group[i]) live.push_back(i);
    return live[rng_() % live.size()];
  }

  template <class Mode>
  Mode pick(const std::vector<Mode>& modes) {
    return modes[rng_() % modes.size()];
  }

  void start_producer(std::uint32_t i) {
    ProducerSlot& slot = board_.producers[i];
    word(slot.mode).store(static_cast<std::uint64_t>(pick(family_.producer_modes)));
    word(slot.incarnation).fetch_add(1);
    word(slot.confirmed_end).store(word(slot.attempted_end).load());
    producers_[i] = std::make_unique<ipckit::Process>([this, i] { produce(i); },
                                                      ipckit::ProcessOptions{"producer-" + std::to_string(i), true});
    producers_[i]->start();
    log_start(*producers_[i]);
  }

  void start_consumer(std::uint32_t i) {
    ConsumerSlot& slot = board_.consumers[i];
    word(slot.mode).store(static_cast<std::uint64_t>(pick(family_.consumer_modes)));
    word(slot.incarnation).fetch_add(1);
    word(slot.phase).store(static_cast<std::uint64_t>(Phase::Idle));
    word(slot.held_count).store(0);
    word(slot.recorded).store(0);
    consumers_[i] = std::make_unique<ipckit::Process>(
        [this, i] {
          if (config_.typed)
            consume<Message>(i);
          else
            consume<Bytes>(i);
        },
        ipckit::ProcessOptions{"consumer-" + std::to_string(i), true});
    consumers_[i]->start();
    log_start(*consumers_[i]);
  }

  // No child may sleep on a lock word that has changed without being woken. A waiter of a
  // glibc mutex sleeps until the word leaves the value it saw, the holder's thread id with
  // FUTEX_WAITERS (bit 31) set; when it has left it and the waiter still sleeps seconds
  // later, its wake-up was lost for good (the holder, or a waiter woken in its place, was
  // killed between the word's change and the wake-up). The queue's own waits sleep on
  // positions (bit 31 clear at these volumes), in slices of 100 ms.
  bool none_stranded() {
    std::vector<std::pair<ipckit::Process*, FutexSleep>> suspects;
    for (auto* group : {&producers_, &consumers_})
      for (auto& p : *group)
        if (p)
          if (const auto sleep = futex_sleep_of(p->pid());
              sleep && sleep->stale() && (sleep->expected & 0x80000000u) != 0)
            suspects.emplace_back(p.get(), *sleep);
    // Look again after any wake-up in flight has had time to land.
    for (const auto pause : {std::chrono::milliseconds(200), std::chrono::milliseconds(2000)}) {
      if (suspects.empty()) return true;
      std::this_thread::sleep_for(pause);
      std::erase_if(suspects, [](const auto& suspect) {
        const auto sleep = futex_sleep_of(suspect.first->pid());
        return !sleep || !(*sleep == suspect.second) || !sleep->stale();
      });
    }
    if (suspects.empty()) return true;
    auto& [p, sleep] = suspects.front();
    ADD_FAILURE() << p->name() << " (pid " << p->pid() << ") has been " << describe(sleep)
                  << " for over 2 s while the others go on: the wake-up it was owed was lost" << children_state()
                  << child_failures() << "\n  in " << where();
    return false;
  }

  // A child that ended by itself: a producer that ran out of sequence numbers is done; any
  // other end is a failure.
  bool all_running() {
    for (std::uint32_t i = 0; i < producers_.size(); ++i) {
      if (!producers_[i] || producers_[i]->is_alive()) continue;
      if (producers_[i]->exitcode() != 0) return ended_badly(*producers_[i]);
      producers_[i].reset();
    }
    for (auto& c : consumers_)
      if (!c->is_alive()) return ended_badly(*c);
    return true;
  }

  bool ended_badly(ipckit::Process& p) {
    ADD_FAILURE() << p.name() << " ended by itself with exit code " << p.exitcode().value_or(-999) << ": "
                  << p.error().value_or("(no error text)") << child_failures() << "\n  in " << where();
    return false;
  }

  // Waits for a killed child; false (a failure) if it does not end.
  bool reap(ipckit::Process& p, bool may_have_finished) {
    if (!p.join(20s)) {
      ADD_FAILURE() << p.name() << " did not end within 20 s of SIGKILL in " << where() << children_state();
      return false;
    }
    const int code = p.exitcode().value_or(-999);
    if (code == -9 || (may_have_finished && code == 0)) return true;
    return ended_badly(p);
  }

  bool after_producer_kill(std::uint32_t i) {
    if (!reap(*producers_[i], true)) return false;
    ProducerSlot& slot = board_.producers[i];
    if (producers_[i]->exitcode() == 0) {  // it had run out of sequence numbers
      producers_[i].reset();
      return true;
    }
    ++tally_.producer_kills;
    const std::uint64_t attempted = word(slot.attempted_end).load();
    const std::uint64_t confirmed = word(slot.confirmed_end).load();
    if (attempted > confirmed) {
      ++tally_.producer_kills_in_put;
      in_flight_[i].emplace_back(confirmed, attempted);
    }
    start_producer(i);
    return true;
  }

  bool after_consumer_kill(std::uint32_t i) {
    if (!reap(*consumers_[i], false)) return false;
    ++tally_.consumer_kills;
    ConsumerSlot& slot = board_.consumers[i];
    const auto phase = static_cast<Phase>(word(slot.phase).load());
    const auto mode = static_cast<ConsumerMode>(word(slot.mode).load());
    const std::uint64_t held = std::min<std::uint64_t>(word(slot.held_count).load(), kMaxBatch);
    const std::uint64_t recorded = word(slot.recorded).load();
    if (phase == Phase::Getting) {
      // With get_to the sink names each message before the queue lets it go; otherwise a
      // get may have returned, unnamed, its whole batch.
      if (held == 0 && mode != ConsumerMode::Sink) unnamed_allowed_ += word(slot.batch).load();
      // A message that travels in chunks is named only once whole; one killed while
      // taking it loses it (such a message only starts a batch).
      if (held == 0 && mode == ConsumerMode::Sink) ++chunked_allowed_;
      for (std::uint64_t h = 0; h < held; ++h) maybe_taken_.insert(word(slot.held[h]).load());
      if (held == 0) ++tally_.consumer_kills_in_get;
    } else if (phase == Phase::Took) {
      // held[0, recorded) were counted by it; held[recorded] may have been; the rest were
      // taken from the queue and not counted: nobody else may have them.
      if (recorded < held) maybe_counted_.insert(word(slot.held[recorded]).load());
      for (std::uint64_t h = recorded + 1; h < held; ++h) taken_.insert(word(slot.held[h]).load());
    }
    if (phase != Phase::Idle && held != 0) ++tally_.consumer_kills_holding;
    tally_.found_empty += word(slot.found_empty).load();
    start_consumer(i);
    return true;
  }

  void finish() {
    word(board_.stop).store(1);
    for (std::uint32_t i = 0; i < producers_.size(); ++i) {
      if (!producers_[i]) continue;
      if (!producers_[i]->join(20s)) {
        ADD_FAILURE() << "producer-" << i << " ("
                      << name_of(static_cast<ProducerMode>(word(board_.producers[i].mode).load()))
                      << ") did not stop within 20 s of being asked (queue holds " << queue_.qsize()
                      << " messages, full() " << queue_.full() << ", slot attempted "
                      << word(board_.producers[i].attempted_end).load() << " confirmed "
                      << word(board_.producers[i].confirmed_end).load() << ")" << children_state() << child_failures()
                      << "\n  in " << where();
        return;
      }
      if (producers_[i]->exitcode() != 0) return void(ended_badly(*producers_[i]));
      producers_[i].reset();
    }
    for (const ProducerSlot& slot : board_.producers) tally_.found_full += slot.found_full;
    if (!none_stranded()) return;

    // The queue still carries messages after all the killing: probes from this process.
    for (std::uint64_t seq = 0; seq < 3; ++seq) {
      bool in = false;
      if (config_.typed) {
        Message m;
        build(config_, kProbeRow, 0, seq, m);
        in = queue_.put(m, 20s);
      } else {
        Bytes m;
        build(config_, kProbeRow, 0, seq, m);
        in = queue_.bytes().put(m, 20s);
      }
      if (!in) {
        ADD_FAILURE() << "probe " << seq << " did not go in within 20 s after the kills (queue holds " << queue_.qsize()
                      << " messages)" << children_state() << child_failures() << "\n  in " << where();
        return;
      }
    }
    queue_.close();
    for (std::uint32_t i = 0; i < consumers_.size(); ++i) {
      if (!consumers_[i]->join(20s)) {
        ADD_FAILURE() << "consumer-" << i << " did not end within 20 s of close() (queue holds " << queue_.qsize()
                      << " messages; " << name_of(static_cast<ConsumerMode>(word(board_.consumers[i].mode).load()))
                      << ", phase " << word(board_.consumers[i].phase).load() << ")" << children_state()
                      << child_failures() << "\n  in " << where();
        return;
      }
      if (consumers_[i]->exitcode() != 0) return void(ended_badly(*consumers_[i]));
      tally_.found_empty += board_.consumers[i].found_empty;
      consumers_[i].reset();
    }
    EXPECT_EQ(queue_.qsize(), 0u) << where();
    EXPECT_THROW(queue_.bytes().try_get(), ipckit::QueueClosed) << where();
    EXPECT_THROW(queue_.bytes().put(Bytes(8)), ipckit::QueueClosed) << where();
    EXPECT_EQ(board_.failures, 0u) << child_failures() << "\n  in " << where();
    verify();
    ++tally_.rounds;
  }

  void log_start(ipckit::Process& p) {
    started_.push_back(p.name() + ":" + std::to_string(p.pid()));
    if (started_.size() > 16) started_.erase(started_.begin());
  }

  // Where each live child is: for a hang, the kernel's view (wchan, and the system call
  // with its arguments: a futex wait names the word it sleeps on).
  std::string children_state() {
    std::string out;
    for (auto* group : {&producers_, &consumers_})
      for (auto& p : *group) {
        if (!p || !p->is_alive()) continue;
        const std::string proc = "/proc/" + std::to_string(p->pid());
        out += "\n  " + p->name() + " pid " + std::to_string(p->pid()) + ": wchan " + first_line(proc + "/wchan") +
               ", syscall " + first_line(proc + "/syscall");
        if (const auto sleep = futex_sleep_of(p->pid())) out += "\n    " + describe(*sleep);
      }
    out += "\n  last started:";
    for (const auto& s : started_) out += " " + s;
    if (const char* hold = std::getenv("IPCKIT_STRESS_HOLD_ON_HANG")) {
      std::fprintf(stderr, "hang:%s\n", out.c_str());
      std::this_thread::sleep_for(std::chrono::seconds(std::atoi(hold)));
    }
    return out;
  }

  std::string child_failures() const {
    const std::uint64_t n = board_.failures;
    if (n == 0) return {};
    return "\n  children reported " + std::to_string(n) +
           " failure(s), the first: " + std::string(board_.failure, strnlen(board_.failure, sizeof board_.failure));
  }

  // Every message accounted for (see the top of this file). Runs when every child has
  // ended, so the counts are still.
  void verify() {
    std::vector<std::string> problems;
    auto problem = [&](std::string text) {
      if (problems.size() < 12) problems.push_back(std::move(text));
    };
    std::vector<std::string> unnamed;  // the first few
    std::uint64_t unnamed_count = 0;
    std::uint64_t chunked_count = 0;  // unnamed losses charged to chunked_allowed_
    auto named = [&](std::uint64_t id) {
      return taken_.contains(id) || maybe_counted_.contains(id) || maybe_taken_.contains(id);
    };
    for (std::uint32_t p = 0; p < kRows; ++p) {
      const std::uint8_t* row = counts_.data() + p * kSeqLimit;
      std::uint64_t end = 0;
      if (p == kProbeRow)
        end = 3;
      else if (p < config_.producers)
        end = board_.producers[p].attempted_end;
      // For each interrupted put, the end of the part that provably went in (up to the
      // last of its messages that someone got): what arrived must be a prefix of it, so a
      // message missing before that end was lost by a consumer, not left out by the put.
      std::vector<std::uint64_t> went_in;
      for (const auto& [first, past] : in_flight_[p]) {
        std::uint64_t end_in = first;
        for (std::uint64_t s = first; s < past; ++s)
          if (row[s] != 0 || named(make_id(p, s))) end_in = s + 1;
        went_in.push_back(end_in);
      }
      std::size_t range = 0;
      const auto& ranges = in_flight_[p];
      for (std::uint64_t s = 0; s < kSeqLimit; ++s) {
        const std::uint8_t c = row[s];
        const std::uint64_t id = make_id(p, s);
        if (c > 1) problem(id_text(id) + " was received " + std::to_string(c) + " times");
        if (s >= end) {
          if (c != 0) problem(id_text(id) + " was received but never put");
          continue;
        }
        while (range < ranges.size() && ranges[range].second <= s) ++range;
        const bool in_flight = range < ranges.size() && ranges[range].first <= s;
        if (c == 1 && taken_.contains(id))
          problem(id_text(id) +
                  " was taken by a consumer that was killed after its get returned, and received "
                  "by another consumer too");
        if (in_flight && c == 1) ++tally_.in_flight_arrived;
        if (c != 0) {
          ++tally_.received;
          if (maybe_taken_.contains(id)) ++tally_.held_left;
          continue;
        }
        if (in_flight && s >= went_in[range]) {
          ++tally_.in_flight_dropped;
          continue;
        }
        if (named(id)) {
          ++tally_.held_lost;
        } else if (config_.chunked(p, s) && chunked_count < chunked_allowed_) {
          ++chunked_count;
        } else {
          ++unnamed_count;
          if (config_.chunked(p, s)) ++tally_.unnamed_lost_chunked;
          if (unnamed.size() < 10)
            unnamed.push_back(id_text(id) + (in_flight ? " (of an interrupted put)" : "") +
                              (config_.chunked(p, s) ? " (in chunks)" : ""));
        }
      }
    }
    tally_.unnamed_lost += unnamed_count + chunked_count;
    tally_.chunked_charged += chunked_count;
    tally_.unnamed_allowed += unnamed_allowed_ + chunked_allowed_;
    if (unnamed_count > unnamed_allowed_) {
      std::string list;
      for (const auto& u : unnamed) list += " " + u;
      problem(std::to_string(unnamed_count) + " message(s) lost that no killed consumer named, more than the " +
              std::to_string(unnamed_allowed_) + " that consumers killed before naming what they got (and " +
              std::to_string(chunked_allowed_) + " in chunks) may account for:" + list);
    }
    for (const auto& text : problems) ADD_FAILURE() << text << "\n  in " << where();
  }

  // --- in the children ------------------------------------------------------------------

  void fail(const std::string& what) {
    if (word(board_.failures).fetch_add(1) != 0) return;
    std::snprintf(board_.failure, sizeof board_.failure, "%s", what.c_str());
  }

  void produce(std::uint32_t index) {
    ProducerSlot& slot = board_.producers[index];
    const auto mode = static_cast<ProducerMode>(word(slot.mode).load());
    const auto incarnation = static_cast<std::uint32_t>(word(slot.incarnation).load());
    std::mt19937_64 rng(mix(config_.seed ^ (std::uint64_t{index} << 56) ^ (std::uint64_t{incarnation} << 32)));
    const bool many = mode == ProducerMode::PutMany || mode == ProducerMode::TimedPutMany;
    const bool timed = mode == ProducerMode::TimedPut || mode == ProducerMode::TimedPutMany;
    std::vector<Bytes> raw(kMaxBatch);
    std::vector<Message> typed(kMaxBatch);
    std::vector<std::span<const std::byte>> spans;
    std::uint64_t next = word(slot.attempted_end).load();
    // Puts messages [next, next + n); how many went in.
    auto send = [&](std::size_t n, std::optional<Timeout> timeout) -> std::size_t {
      if (config_.typed) {
        const std::span<const Message> items(typed.data(), n);
        if (!many) {
          if (timeout) return queue_.put(items[0], *timeout) ? 1 : 0;
          queue_.put(items[0]);
          return 1;
        }
        if (timeout) return queue_.put_many(items, *timeout);
        queue_.put_many(items);
        return n;
      }
      spans.assign(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(n));
      auto& q = queue_.bytes();
      if (!many) {
        if (timeout) return q.put(spans[0], *timeout) ? 1 : 0;
        q.put(spans[0]);
        return 1;
      }
      if (timeout) return q.put_many(spans, *timeout);
      q.put_many(spans);
      return n;
    };
    while (word(board_.stop).load() == 0 && next + kMaxBatch <= kSeqLimit) {
      const std::size_t n = many ? 1 + rng() % family_.max_batch : 1;
      for (std::size_t k = 0; k < n; ++k) {
        if (config_.typed)
          build(config_, index, incarnation, next + k, typed[k]);
        else
          build(config_, index, incarnation, next + k, raw[k]);
      }
      word(slot.attempted_end).store(next + n);
      std::size_t in = 0;
      if (timed) {
        in = send(n, std::chrono::nanoseconds(rng() % 300'000));
      } else if (!many) {
        in = send(1, 0ns);
        if (in == 0) {
          word(slot.found_full).fetch_add(1);
          in = send(1, std::nullopt);
        }
      } else {
        in = send(n, std::nullopt);
      }
      word(slot.confirmed_end).store(next + in);
      if (in < n) word(slot.attempted_end).store(next + in);  // the rest never went in
      next += in;
    }
  }

  template <class Item>
  static Item item_of(std::span<const std::byte> message) {
    if constexpr (std::is_same_v<Item, Bytes>)
      return Bytes(message.begin(), message.end());
    else
      return ipckit::decode<Message>(message);
  }

  template <class Item>
  struct Sink {
    const RoundConfig* config;
    ConsumerSlot* slot;
    std::vector<Item>* out;
    std::vector<std::string>* problems;
    std::mt19937_64* rng;
    // Names the message in the slot while the queue still holds it, then checks it there
    // (so that kills often find a consumer in the middle of taking messages).
    static bool take(void* context, std::span<const std::byte> message) {
      auto& self = *static_cast<Sink*>(context);
      Item item = item_of<Item>(message);
      const std::uint64_t n = word(self.slot->held_count).load();
      if (n >= kMaxBatch) throw std::logic_error("get_to handed on more messages than asked for");
      word(self.slot->held[n]).store(peek_id(item));
      word(self.slot->held_count).store(n + 1);
      self.problems->push_back(check(*self.config, item));
      work_on_message(*self.rng);
      self.out->push_back(std::move(item));
      return true;
    }
  };

  template <class Item>
  void get(ConsumerMode mode, std::size_t batch, std::vector<Item>& got, std::vector<std::string>& problems,
           ConsumerSlot& slot, std::mt19937_64& rng, Bytes& buffer) {
    auto& q = queue_.bytes();
    switch (mode) {
      case ConsumerMode::Get: {
        std::optional<Item> item;
        if constexpr (std::is_same_v<Item, Bytes>)
          item = q.try_get();
        else
          item = queue_.try_get();
        if (!item) {
          word(slot.found_empty).fetch_add(1);
          if constexpr (std::is_same_v<Item, Bytes>)
            item = q.get();
          else
            item = queue_.get();
        }
        got.push_back(std::move(*item));
        break;
      }
      case ConsumerMode::TimedGet: {
        const auto timeout = std::chrono::nanoseconds(rng() % 200'000);
        std::optional<Item> item;
        if constexpr (std::is_same_v<Item, Bytes>)
          item = q.get(timeout);
        else
          item = queue_.get(timeout);
        if (item)
          got.push_back(std::move(*item));
        else
          word(slot.found_empty).fetch_add(1);
        break;
      }
      case ConsumerMode::GetInto: {
        const std::size_t n = q.get_into(buffer);
        got.push_back(item_of<Item>(std::span(buffer).first(n)));
        break;
      }
      case ConsumerMode::GetMany:
        if constexpr (std::is_same_v<Item, Bytes>)
          got = q.get_many(batch);
        else
          got = queue_.get_many(batch);
        break;
      case ConsumerMode::Sink: {
        Sink<Item> sink{&config_, &slot, &got, &problems, &rng};
        q.get_to(&Sink<Item>::take, &sink, batch, std::nullopt);
        break;
      }
    }
  }

  template <class Item>
  void consume(std::uint32_t index) {
    ConsumerSlot& slot = board_.consumers[index];
    const auto mode = static_cast<ConsumerMode>(word(slot.mode).load());
    const auto incarnation = word(slot.incarnation).load();
    std::mt19937_64 rng(mix(config_.seed ^ (std::uint64_t{index} << 48) ^ incarnation ^ 0xC0));
    const bool batched = mode == ConsumerMode::GetMany || mode == ConsumerMode::Sink;
    std::array<std::int64_t, kRows> last{};
    last.fill(-1);
    std::uint8_t* counts = counts_.data();
    Bytes buffer(config_.max_message);
    std::vector<Item> got;
    std::vector<std::uint64_t> ids;
    std::vector<std::string> problems;
    for (;;) {
      got.clear();
      problems.clear();
      const std::size_t batch = batched ? 1 + rng() % family_.max_batch : 1;
      word(slot.batch).store(batch);
      word(slot.phase).store(static_cast<std::uint64_t>(Phase::Getting));
      try {
        get(mode, batch, got, problems, slot, rng, buffer);
      } catch (const ipckit::QueueClosed&) {
        return;
      }
      ids.clear();
      for (const Item& item : got) ids.push_back(peek_id(item));
      if (mode != ConsumerMode::Sink) {
        for (std::size_t i = 0; i < ids.size(); ++i) word(slot.held[i]).store(ids[i]);
        word(slot.held_count).store(ids.size());
      }
      word(slot.phase).store(static_cast<std::uint64_t>(Phase::Took));
      for (std::size_t i = problems.size(); i < got.size(); ++i) problems.push_back(check(config_, got[i]));
      for (std::size_t i = 0; i < got.size(); ++i) {
        const std::uint64_t id = ids[i];
        if (mode != ConsumerMode::Sink) work_on_message(rng);
        if (!problems[i].empty())
          fail("consumer-" + std::to_string(index) + " (" + name_of(mode) + "): " + problems[i]);
        if (id != kNoId) {
          const std::uint32_t p = producer_of(id);
          const auto s = static_cast<std::int64_t>(seq_of(id));
          if (s <= last[p])
            fail("consumer-" + std::to_string(index) + " (" + name_of(mode) + ") received " + id_text(id) + " after " +
                 id_text(make_id(p, static_cast<std::uint64_t>(last[p]))) + ": out of order");
          last[p] = s;
          std::atomic_ref<std::uint8_t>(counts[p * kSeqLimit + seq_of(id)]).fetch_add(1);
        }
        word(slot.recorded).store(i + 1);
      }
      word(slot.phase).store(static_cast<std::uint64_t>(Phase::Idle));
      word(slot.held_count).store(0);
      word(slot.recorded).store(0);
    }
  }

  Board& board_;
  std::span<std::uint8_t> counts_;
  const RoundConfig config_;
  const Family& family_;
  Tally& tally_;
  ipckit::Queue<Message> queue_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<ipckit::Process>> producers_;
  std::vector<std::unique_ptr<ipckit::Process>> consumers_;
  // Sequences of each producer's puts that a kill interrupted: [first, past).
  std::array<std::vector<std::pair<std::uint64_t, std::uint64_t>>, kRows> in_flight_;
  std::unordered_set<std::uint64_t> taken_;          // taken by killed consumers, not counted
  std::unordered_set<std::uint64_t> maybe_counted_;  // ... perhaps counted just before the kill
  std::unordered_set<std::uint64_t> maybe_taken_;    // named inside get: taken, or left
  std::uint64_t unnamed_allowed_ = 0;
  std::uint64_t chunked_allowed_ = 0;  // ... of messages that travel in chunks only
  std::vector<std::string> started_;   // "name:pid" of the last children started
};

// ---------------------------------------------------------------------------------------
// The tests

class QueueStress : public ipckit::test::Test {
 protected:
  void run_family(const char* name, const Family& family) {
    const std::uint64_t seed =
        env_number("IPCKIT_STRESS_SEED", std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32));
    const auto rounds = static_cast<unsigned>(env_number("IPCKIT_STRESS_ROUNDS", 20));
    const auto kills = static_cast<unsigned>(env_number("IPCKIT_STRESS_KILLS", 60));
    std::printf("queue stress %s: IPCKIT_STRESS_SEED=%llu IPCKIT_STRESS_ROUNDS=%u IPCKIT_STRESS_KILLS=%u\n", name,
                static_cast<unsigned long long>(seed), rounds, kills);
    std::fflush(stdout);
    const auto budget = std::chrono::seconds(ipckit::test::watchdog_seconds()) / 2;
    const auto started = Clock::now();

    ipckit::SharedMemory memory = ipckit::SharedMemory::anonymous(kBoardBytes);
    Board& board = *reinterpret_cast<Board*>(memory.buf().data());
    const std::span<std::uint8_t> counts = memory.as<std::uint8_t>(kCountsOffset);
    Tally tally;
    std::mt19937_64 rng(seed);
    unsigned round = 0;
    for (; round < rounds; ++round) {
      if (Clock::now() - started > budget) {
        std::printf("queue stress %s: time budget (%lld s) spent after %u of %u rounds\n", name,
                    static_cast<long long>(budget.count()), round, rounds);
        break;
      }
      RoundConfig config{};
      config.seed = mix(seed + round);
      config.round = round;
      config.typed = family.typed;
      config.capacity = std::size_t{4096} << (rng() % 3);
      // Messages in one record only; up to nearly the ring (the long ones in chunks, the
      // whole message waiting for room); up to three rings (streamed in chunks).
      constexpr std::size_t kLimits[] = {4, 16, 48};
      config.max_message = config.capacity * kLimits[rng() % 3] / 16 - 16;
      constexpr std::size_t kMaxsizes[] = {1, 2, 3, 5, 8, 16};
      config.maxsize = rng() % 100 < family.maxsize_percent ? kMaxsizes[rng() % std::size(kMaxsizes)] : 0;
      config.producers = 1 + static_cast<std::uint32_t>(rng() % kMaxProducers);
      config.consumers = 1 + static_cast<std::uint32_t>(rng() % kMaxConsumers);
      config.max_batch = family.max_batch;
      Round(board, counts, config, family, tally).run(kills);
      if (HasFailure()) break;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    auto n = [](std::uint64_t v) { return std::to_string(v); };
    char elapsed[32];
    std::snprintf(elapsed, sizeof elapsed, "%.1f", seconds);
    const std::string summary =
        std::string("queue stress ") + name + ": seed " + n(seed) + ", " + n(tally.rounds) + " rounds in " + elapsed +
        " s; kills: " + n(tally.producer_kills) + " producers (" + n(tally.producer_kills_in_put) + " inside put), " +
        n(tally.consumer_kills) + " consumers (" + n(tally.consumer_kills_in_get) + " inside get, " +
        n(tally.consumer_kills_holding) + " holding messages), " + n(tally.double_kills) + " both at once, " +
        n(tally.aimed_hits) + " of " + n(tally.aimed_kills) + " aimed at a busy moment; " + n(tally.received) +
        " messages received; interrupted puts: " + n(tally.in_flight_arrived) + " arrived, " +
        n(tally.in_flight_dropped) + " did not go in; lost with killed consumers: " + n(tally.held_lost) + " named, " +
        n(tally.unnamed_lost) + " unnamed (allowed " + n(tally.unnamed_allowed) + "; " +
        n(tally.unnamed_lost_chunked + tally.chunked_charged) + " of them in chunks); " + n(tally.held_left) +
        " named inside get_to, then left for another consumer; ring found full " + n(tally.found_full) +
        " times, empty " + n(tally.found_empty) + " times";
    std::printf("%s\n", summary.c_str());
    std::fflush(stdout);
    if (HasFailure()) {
      std::printf("queue stress %s: to repeat: IPCKIT_STRESS_SEED=%llu, failed in round %u\n", name,
                  static_cast<unsigned long long>(seed), round);
      return;
    }
    // The test must have killed, and killed mid-operation, to mean anything.
    EXPECT_GE(tally.rounds, 1u);
    const std::uint64_t planned = std::uint64_t{tally.rounds} * kills;
    if (planned >= 20) {
      EXPECT_GE(tally.producer_kills, planned / 4);
      EXPECT_GE(tally.consumer_kills, planned / 4);
      EXPECT_GE(tally.producer_kills_in_put, tally.producer_kills / 10);
      EXPECT_GE(tally.consumer_kills_in_get + tally.consumer_kills_holding, tally.consumer_kills / 10);
      EXPECT_GE(tally.received, planned);
    }
    if (planned >= 200) {
      EXPECT_GE(tally.consumer_kills_holding, 1u) << "no consumer was killed holding messages";
    }
  }
};

TEST_F(QueueStress, ByteQueueSingleMessages) {
  run_family("ByteQueueSingleMessages",
             Family{false,
                    {ProducerMode::Put, ProducerMode::TimedPut},
                    {ConsumerMode::Get, ConsumerMode::TimedGet, ConsumerMode::GetInto, ConsumerMode::Sink},
                    1,
                    25});
}

TEST_F(QueueStress, ByteQueueBatchesAndMaxsize) {
  run_family("ByteQueueBatchesAndMaxsize",
             Family{false,
                    {ProducerMode::Put, ProducerMode::PutMany, ProducerMode::TimedPutMany},
                    {ConsumerMode::Get, ConsumerMode::GetMany, ConsumerMode::Sink},
                    kMaxBatch,
                    60});
}

TEST_F(QueueStress, TypedQueue) {
  run_family("TypedQueue",
             Family{true,
                    {ProducerMode::Put, ProducerMode::PutMany, ProducerMode::TimedPut, ProducerMode::TimedPutMany},
                    {ConsumerMode::Get, ConsumerMode::TimedGet, ConsumerMode::GetInto, ConsumerMode::GetMany,
                     ConsumerMode::Sink},
                    kMaxBatch,
                    30});
}

// Consumers that take messages only through get_to, whose sink names each one while the
// queue still holds it: every message a killed consumer lost is known by name (but for
// one that travels in chunks, named once whole), so the check is exact.
TEST_F(QueueStress, GetToNamesEveryLoss) {
  run_family("GetToNamesEveryLoss",
             Family{false,
                    {ProducerMode::Put, ProducerMode::PutMany, ProducerMode::TimedPut, ProducerMode::TimedPutMany},
                    {ConsumerMode::Sink},
                    kMaxBatch,
                    30});
}

}  // namespace
