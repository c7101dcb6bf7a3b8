// bench/connection_bench.cpp — Listener and Client: round trips over a Unix socket and
// over TCP loopback, the authenticated handshake, and the message rate over TCP.
//
// The floors are the bare sockets any implementation needs: socket(), bind(), listen(),
// accept(), connect() (Nagle's algorithm left on, as ipckit leaves it), and the same 4-byte
// big-endian length frames (docs/formats/framing.md) written with one write() per
// message and read back. Python's sides are in peers/multiprocessing_peer.py under the
// same workload names (multiprocessing.connection's Listener and Client).
//
// The two processes of every run are put on two CPUs (TwoCpus). The child is started and
// connected before the clock starts.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "child.hpp"
#include "ipckit/connection.hpp"
#include "workload.hpp"

namespace ipckit::bench {
namespace {

using benchmark::IterationCount;
using benchmark::State;

// A Connection message on the wire is a 4-byte big-endian length, then the payload
// (docs/formats/framing.md): the floors move these same frames.
constexpr std::size_t kHeaderSize = 4;

// connection.handshake.tcp: the key both sides prove they know.
constexpr const char* kAuthkey = "ipckit-bench-authkey";

// The one-byte message with which a receiver says it has every message.
constexpr std::byte kAck{'a'};

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

[[noreturn]] void wrong_size(std::size_t got, std::size_t expected) {
  throw std::runtime_error("got a " + std::to_string(got) + "-byte message, expected " + std::to_string(expected));
}

[[noreturn]] void throw_errno(const char* call) { throw std::system_error(errno, std::generic_category(), call); }

// A socket file path of its own for each run: /tmp/ipckit-bench-<pid>-<run>.sock.
std::string socket_path() {
  static std::atomic<unsigned> runs{0};
  return (std::filesystem::temp_directory_path() /
          ("ipckit-bench-" + std::to_string(getpid()) + "-" + std::to_string(runs++) + ".sock"))
      .string();
}

enum class Transport { Unix, Tcp };

// Where ipckit's Listener of a run listens.
std::string listener_address(Transport transport) {
  return transport == Transport::Unix ? "unix://" + socket_path() : "tcp://127.0.0.1:0";
}

// --- the floors' sockets --------------------------------------------------------------------

// An owned fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }

  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

// A bare listening socket: a socket file (removed again when done) or 127.0.0.1 on a port
// the kernel picks. Made before the fork, so the child knows its address.
class FloorListener {
 public:
  explicit FloorListener(Transport transport) {
    std::memset(&address_, 0, sizeof address_);
    if (transport == Transport::Unix) {
      path_ = socket_path();
      auto& un = reinterpret_cast<sockaddr_un&>(address_);
      un.sun_family = AF_UNIX;
      if (path_.size() >= sizeof un.sun_path) throw std::runtime_error("socket path too long: " + path_);
      std::memcpy(un.sun_path, path_.c_str(), path_.size() + 1);
      length_ = sizeof un;
    } else {
      auto& in = reinterpret_cast<sockaddr_in&>(address_);
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      in.sin_port = 0;
      length_ = sizeof in;
    }
    fd_ = Fd(socket(address_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd_.get() < 0) throw_errno("socket");
    if (!path_.empty()) ::unlink(path_.c_str());
    if (bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address_), length_) != 0) throw_errno("bind");
    if (listen(fd_.get(), SOMAXCONN) != 0) throw_errno("listen");
    // The port the kernel picked.
    if (getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address_), &length_) != 0) throw_errno("getsockname");
  }
  FloorListener(const FloorListener&) = delete;
  FloorListener& operator=(const FloorListener&) = delete;
  ~FloorListener() { close(); }

  Fd accept() const {
    Fd fd;
    do {
      fd = Fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    } while (fd.get() < 0 && errno == EINTR);
    if (fd.get() < 0) throw_errno("accept4");
    return fd;
  }

  Fd connect() const {
    Fd fd(socket(address_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address_), length_) != 0) throw_errno("connect");
    return fd;
  }

  // Stops listening and removes the socket file (in the process that made it).
  void close() {
    fd_.reset();
    if (!path_.empty() && owner_ == getpid()) ::unlink(path_.c_str());
    path_.clear();
  }

 private:
  Fd fd_;
  sockaddr_storage address_;
  socklen_t length_ = 0;
  std::string path_;
  pid_t owner_ = getpid();
};

// Reads frames from a stream as a Connection does: as much as the socket holds into a
// 64 KiB buffer, then one frame at a time out of it (the short form only).
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd), buffer_(std::size_t{64} << 10) {}

  // The next frame's payload size; its bytes are skipped.
  std::size_t next() {
    fill(kHeaderSize);
    std::uint32_t length = 0;
    for (std::size_t i = 0; i < kHeaderSize; ++i)
      length = (length << 8) | std::to_integer<std::uint32_t>(buffer_[begin_ + i]);
    if (length > buffer_.size() - kHeaderSize) throw std::runtime_error("floor: frame too long");
    fill(kHeaderSize + length);
    benchmark::DoNotOptimize(buffer_.data() + begin_ + kHeaderSize);
    begin_ += kHeaderSize + length;
    return length;
  }

 private:
  // Until at least `count` unread bytes are buffered.
  void fill(std::size_t count) {
    if (end_ - begin_ >= count) return;
    if (buffer_.size() - begin_ < count) {  // move the unread bytes to the front
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    while (end_ - begin_ < count) {
      const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("read");
      }
      if (n == 0) throw std::runtime_error("read: end of stream (the other process ended)");
      end_ += static_cast<std::size_t>(n);
    }
  }

  int fd_;
  std::vector<std::byte> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// --- connection.rtt ----------------------------------------------------------------------

// A Listener in the parent, a child on the other CPU that connects with Client() and
// echoes each message back; one iteration is one round trip of `size` bytes.
void BM_Connection_RoundTrip(State& state, std::size_t size, Transport transport) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  ipckit::Listener listener(listener_address(transport));
  const std::string address = listener.address();
  IpckitChild echo([&placement, &address, n](ipckit::Connection&) {
    placement.pin_child();
    ipckit::Connection parent = ipckit::Client(address);
    for (IterationCount i = 0; i < n; ++i) parent.send_bytes(parent.recv_bytes());
  });
  placement.pin_parent();
  ipckit::Connection child = listener.accept();
  listener.close();
  const auto message = payload(size);
  for (auto _ : state) {
    child.send_bytes(message);
    auto reply = child.recv_bytes();
    if (reply.size() != size) wrong_size(reply.size(), size);
  }
  echo.join();
  count_messages(state, size);
}

void BM_Connection_RoundTripUnix(State& state, std::size_t size) {
  BM_Connection_RoundTrip(state, size, Transport::Unix);
}
void BM_Connection_RoundTripTcp(State& state, std::size_t size) {
  BM_Connection_RoundTrip(state, size, Transport::Tcp);
}

// The same frames between bare sockets: one write() of header and payload, one read of
// the whole frame, each way.
void BM_Floor_SocketRoundTrip(State& state, std::size_t size, Transport transport) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  FloorListener listener(transport);
  ForkedChild echo([&placement, &listener, n, size](int) {
    placement.pin_child();
    const Fd parent = listener.connect();
    std::vector<std::byte> buffer(kHeaderSize + size);
    for (IterationCount i = 0; i < n; ++i) {
      read_exactly(parent.get(), buffer);
      write_all(parent.get(), buffer);
    }
  });
  placement.pin_parent();
  const Fd child = listener.accept();
  listener.close();
  const auto message = frame(size);
  std::vector<std::byte> reply(kHeaderSize + size);
  for (auto _ : state) {
    write_all(child.get(), message);
    read_exactly(child.get(), reply);
  }
  echo.join();
  count_messages(state, size);
}

void BM_Floor_UnixSocketRoundTrip(State& state, std::size_t size) {
  BM_Floor_SocketRoundTrip(state, size, Transport::Unix);
}
void BM_Floor_TcpSocketRoundTrip(State& state, std::size_t size) {
  BM_Floor_SocketRoundTrip(state, size, Transport::Tcp);
}

// --- connection.handshake ----------------------------------------------------------------

// A child on the other CPU runs a Listener with an authkey on 127.0.0.1 and accepts (and
// closes) n connections; one iteration is one Client() to it with the same key — connect
// and both directions of the challenge-response — and its close().
void BM_Connection_Handshake(State& state) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  IpckitChild server([&placement, n](ipckit::Connection& parent) {
    placement.pin_child();
    ipckit::Listener listener("tcp://127.0.0.1:0", std::string(kAuthkey));
    parent.send_bytes(listener.address());
    for (IterationCount i = 0; i < n; ++i) listener.accept().close();
  });
  placement.pin_parent();
  const auto reply = server.connection().recv_bytes();
  const std::string address(reinterpret_cast<const char*>(reply.data()), reply.size());
  const std::string authkey(kAuthkey);
  for (auto _ : state) {
    ipckit::Connection connection = ipckit::Client(address, authkey);
    connection.close();
  }
  server.join();
  state.SetItemsProcessed(state.iterations());
}

// A TCP connection alone, without authentication: connect() to a forked child that
// accept()s and closes each connection, then read() until that end of stream, so the
// time covers the accept, and close().
void BM_Floor_TcpConnectAccept(State& state) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  FloorListener listener(Transport::Tcp);
  ForkedChild server([&placement, &listener, n](int) {
    placement.pin_child();
    for (IterationCount i = 0; i < n; ++i) listener.accept().reset();
  });
  placement.pin_parent();
  for (auto _ : state) {
    Fd connection = listener.connect();
    std::byte byte[1];
    ssize_t got = 0;
    while ((got = ::read(connection.get(), byte, sizeof byte)) < 0 && errno == EINTR) {
    }
    if (got != 0) throw std::runtime_error("floor: expected the end of stream");
  }
  listener.close();
  server.join();
  state.SetItemsProcessed(state.iterations());
}

// --- connection.throughput ---------------------------------------------------------------

// The parent sends n messages of `size` bytes as fast as it can over a TCP connection from
// its Listener to a child on the other CPU, which receives each (recv_bytes, a new vector
// per message) and answers the last with an ack; one iteration is one message sent, and
// the last one waits for the ack, so the time covers the delivery of all.
void BM_Connection_Stream(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  ipckit::Listener listener(listener_address(Transport::Tcp));
  const std::string address = listener.address();
  IpckitChild receiver([&placement, &address, n, size](ipckit::Connection&) {
    placement.pin_child();
    ipckit::Connection parent = ipckit::Client(address);
    for (IterationCount i = 0; i < n; ++i) {
      auto message = parent.recv_bytes();
      if (message.size() != size) wrong_size(message.size(), size);
    }
    const std::byte ack[] = {kAck};
    parent.send_bytes(ack);
  });
  placement.pin_parent();
  ipckit::Connection child = listener.accept();
  listener.close();
  const auto message = payload(size);
  IterationCount i = 0;
  for (auto _ : state) {
    child.send_bytes(message);
    if (++i == n) {
      const auto ack = child.recv_bytes();
      if (ack.size() != 1 || ack[0] != kAck) throw std::runtime_error("bench child: bad ack");
    }
  }
  receiver.join();
  count_messages(state, size);
}

// The same frames over bare TCP sockets: one write() of header and payload per message; the
// reader takes what the socket holds into a 64 KiB buffer and parses the frames out of it
// (FrameReader), then writes a one-byte ack.
void BM_Floor_TcpSocketStream(State& state, std::size_t size) {
  const IterationCount n = state.max_iterations;
  TwoCpus placement;
  FloorListener listener(Transport::Tcp);
  ForkedChild receiver([&placement, &listener, n, size](int) {
    placement.pin_child();
    const Fd parent = listener.connect();
    FrameReader reader(parent.get());
    for (IterationCount i = 0; i < n; ++i) {
      if (const std::size_t got = reader.next(); got != size) wrong_size(got, size);
    }
    const std::byte ack[] = {kAck};
    write_all(parent.get(), ack);
  });
  placement.pin_parent();
  const Fd child = listener.accept();
  listener.close();
  const auto message = frame(size);
  IterationCount i = 0;
  for (auto _ : state) {
    write_all(child.get(), message);
    if (++i == n) {
      std::byte ack[1];
      read_exactly(child.get(), ack);
      if (ack[0] != kAck) throw std::runtime_error("floor child: bad ack");
    }
  }
  receiver.join();
  count_messages(state, size);
}

}  // namespace

void register_connection_workloads(Registry& registry) {
  registry.add({.name = "connection.rtt.unix.64B",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_Connection_RoundTripUnix", BM_Connection_RoundTripUnix, 64),
                .floor = sized("BM_Floor_UnixSocketRoundTrip", BM_Floor_UnixSocketRoundTrip, 64),
                .python = "connection.rtt.unix.64B"});
  registry.add({.name = "connection.rtt.tcp.64B",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = sized("BM_Connection_RoundTripTcp", BM_Connection_RoundTripTcp, 64),
                .floor = sized("BM_Floor_TcpSocketRoundTrip", BM_Floor_TcpSocketRoundTrip, 64),
                .python = "connection.rtt.tcp.64B"});
  registry.add({.name = "connection.handshake.tcp",
                .metric = Metric::MicrosecondsPerIteration,
                .ipckit = BenchmarkFunction{"BM_Connection_Handshake", BM_Connection_Handshake},
                .floor = BenchmarkFunction{"BM_Floor_TcpConnectAccept", BM_Floor_TcpConnectAccept},
                .python = "connection.handshake.tcp"});
  registry.add({.name = "connection.throughput.tcp.64B",
                .metric = Metric::ItemsPerSecond,
                .ipckit = sized("BM_Connection_Stream", BM_Connection_Stream, 64),
                .floor = sized("BM_Floor_TcpSocketStream", BM_Floor_TcpSocketStream, 64),
                .python = "connection.throughput.tcp.64B"});
}

}  // namespace ipckit::bench
