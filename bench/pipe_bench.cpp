// bench/pipe_bench.cpp — Pipe(): round trips, message rate and bandwidth to a child.
//
// Each ipckit benchmark has a floor beside it: the same bytes moved between the same two
// processes over a socketpair(AF_UNIX, SOCK_STREAM) with bare write() and read(), without
// framing logic, buffering or allocation. Python's side is in peers/multiprocessing_peer.py
// under the same workload names.
#include <cstdint>
#include <vector>

#include "child.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::IterationCount;
using benchmark::State;

// A Connection message on the wire is a 4-byte big-endian length, then the payload
// (docs/formats/framing.md): the stream floor moves these same frames.
constexpr std::size_t kHeaderSize = 4;

std::vector<std::byte> payload(std::size_t size) { return std::vector<std::byte>(size, std::byte{0x5a}); }

std::vector<std::byte> frame(std::size_t size) {
  std::vector<std::byte> bytes(kHeaderSize, std::byte{0});
  for (std::size_t i = 0; i < kHeaderSize; ++i)
    bytes[i] = static_cast<std::byte>((size >> (8 * (kHeaderSize - 1 - i))) & 0xFFU);
  bytes.resize(kHeaderSize + size, std::byte{0x5a});
  return bytes;
}

// Messages and payload bytes moved, for the msg/s and MB/s figures.
void count_messages(State& state, std::size_t size) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// pipe.rtt: the parent sends `size` bytes, a child echoes them back; one iteration is one
// round trip.
void BM_Pipe_RoundTrip(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  IpckitChild echo([n](ipckit::Connection& parent) {
    for (IterationCount i = 0; i < n; ++i) parent.send_bytes(parent.recv_bytes());
  });
  ipckit::Connection& child = echo.connection();
  const auto message = payload(size);
  for (auto _ : state) {
    child.send_bytes(message);
    auto reply = child.recv_bytes();
    benchmark::DoNotOptimize(reply.data());
  }
  echo.join();
  count_messages(state, size);
}

void BM_Floor_SocketpairRoundTrip(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  ForkedChild echo([n, size](int parent) {
    std::vector<std::byte> buffer(size);
    for (IterationCount i = 0; i < n; ++i) {
      read_exactly(parent, buffer);
      write_all(parent, buffer);
    }
  });
  const auto message = payload(size);
  std::vector<std::byte> reply(size);
  for (auto _ : state) {
    write_all(echo.fd(), message);
    read_exactly(echo.fd(), reply);
  }
  echo.join();
  count_messages(state, size);
}

// pipe.throughput and pipe.bandwidth: a child sends messages of `size` bytes as fast as it
// can; the parent receives each — with recv_bytes, a new vector per message, for the
// message rate; into one reused buffer with recv_bytes_into for bandwidth, as the floor
// and the Python peer do. One iteration is one message received.
void BM_Pipe_Stream(State& state, std::size_t size, bool into_buffer) {
  const IterationCount n = state.max_iterations;
  IpckitChild sender([n, size](ipckit::Connection& parent) {
    const auto message = payload(size);
    for (IterationCount i = 0; i < n; ++i) parent.send_bytes(message);
  });
  ipckit::Connection& child = sender.connection();
  if (into_buffer) {
    std::vector<std::byte> buffer(size);
    for (auto _ : state) benchmark::DoNotOptimize(child.recv_bytes_into(buffer));
  } else {
    for (auto _ : state) {
      auto message = child.recv_bytes();
      benchmark::DoNotOptimize(message.data());
    }
  }
  sender.join();
  count_messages(state, size);
}

void BM_Pipe_StreamNew(State& state, std::size_t size) { BM_Pipe_Stream(state, size, false); }
void BM_Pipe_StreamInto(State& state, std::size_t size) { BM_Pipe_Stream(state, size, true); }

// The same frames, one write() per message and reads of exactly one frame into a reused
// buffer: one system call per message on each side while the frame fits in the socket
// buffer, write()/read() loops beyond.
void BM_Floor_SocketpairStream(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  ForkedChild sender([n, size](int parent) {
    const auto message = frame(size);
    for (IterationCount i = 0; i < n; ++i) write_all(parent, message);
  });
  std::vector<std::byte> message(kHeaderSize + size);
  for (auto _ : state) {
    read_exactly(sender.fd(), message);
    benchmark::DoNotOptimize(message.data());
  }
  sender.join();
  count_messages(state, size);
}

}  // namespace

void register_pipe_workloads(Registry& registry) {
  registry.add({.name = "pipe.rtt.64B",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_Pipe_RoundTrip", BM_Pipe_RoundTrip, 64),
                .floor = sized("BM_Floor_SocketpairRoundTrip", BM_Floor_SocketpairRoundTrip, 64),
                .python = "pipe.rtt.64B"});
  registry.add({.name = "pipe.throughput.64B",
                .metric = Metric::ItemsPerSecond,
                .ipckit = sized("BM_Pipe_Stream", BM_Pipe_StreamNew, 64),
                .floor = sized("BM_Floor_SocketpairStream", BM_Floor_SocketpairStream, 64),
                .python = "pipe.throughput.64B"});
  registry.add({.name = "pipe.bandwidth.1MiB",
                .metric = Metric::MegabytesPerSecond,
                .ipckit = sized("BM_Pipe_StreamInto", BM_Pipe_StreamInto, std::size_t{1} << 20),
                .floor = sized("BM_Floor_SocketpairStream", BM_Floor_SocketpairStream, std::size_t{1} << 20),
                .python = "pipe.bandwidth.1MiB"});
}

}  // namespace ipckit::bench
