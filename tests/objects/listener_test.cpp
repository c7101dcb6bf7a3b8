// Listener and Client across real processes: addresses, authentication, the hardening a
// network listener needs (strangers, garbage, silence, floods, kills), and fds passed
// between unrelated processes.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/shared_memory.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using ListenerTest = ipckit::test::Test;
using ipckit::test::text;

const std::string kKey = "secret key";

std::string socket_path() { return "/tmp/" + ipckit::test::unique_name("ipckit-listener") + ".sock"; }

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The port of a "tcp://HOST:PORT" address.
int port_of(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// A raw TCP socket connected to 127.0.0.1:port, for peers that do not follow the protocol.
int raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<std::uint16_t>(port));
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until end of stream; returns the bytes read (the listener's challenge, say).
std::string read_to_end(int fd) {
  std::string out;
  char buffer[512];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

// Collects the reasons a listener gives for the peers it turns away.
struct Rejections {
  std::shared_ptr<std::vector<std::string>> reasons = std::make_shared<std::vector<std::string>>();
  std::function<void(const ipckit::Error&)> callback() const {
    return [r = reasons](const ipckit::Error& e) { r->push_back(e.what()); };
  }
  bool any_containing(std::string_view what) const {
    for (const auto& r : *reasons)
      if (r.find(what) != std::string::npos) return true;
    return false;
  }
};

// A child that connects with `key`, sends "ping", expects "pong", and exits.
std::unique_ptr<ipckit::Process> pinger(const std::string& address, std::optional<std::string> key) {
  return ipckit::test::spawn([address, key] {
    auto conn = ipckit::Client(address, key, 20s);
    conn.send_bytes("ping");
    if (text(conn.recv_bytes()) != "pong") std::exit(3);
  });
}

void serve_one_ping(ipckit::Listener& listener) {
  auto conn = listener.accept();
  EXPECT_EQ(text(conn.recv_bytes()), "ping");
  conn.send_bytes("pong");
}

void expect_clean_exit(ipckit::Process& p) {
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << p.error().value_or("");
}

TEST_F(ListenerTest, TcpPortZeroPicksAFreePortAndValuesTravelBothWays) {
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey);
  const std::string address = listener.address();
  ASSERT_TRUE(address.starts_with("tcp://127.0.0.1:")) << address;
  EXPECT_GT(port_of(address), 0);
  auto child = ipckit::test::spawn([address] {
    auto conn = ipckit::Client(address, kKey, 20s);
    auto numbers = conn.recv<std::vector<int>>();
    for (auto& n : numbers) n *= 10;
    conn.send(numbers);
    conn.send_bytes(std::string(100000, 'x'));
  });
  auto conn = listener.accept();
  EXPECT_TRUE(listener.last_accepted().starts_with("tcp://127.0.0.1:")) << listener.last_accepted();
  conn.send(std::vector<int>{1, 2, 3});
  EXPECT_EQ(conn.recv<std::vector<int>>(), (std::vector<int>{10, 20, 30}));
  EXPECT_EQ(conn.recv_bytes().size(), 100000u);
  EXPECT_THROW(conn.recv_bytes(), ipckit::ConnectionClosed);
  expect_clean_exit(*child);
}

TEST_F(ListenerTest, Ipv6LoopbackInBrackets) {
  std::unique_ptr<ipckit::Listener> listener;
  try {
    listener = std::make_unique<ipckit::Listener>("tcp://[::1]:0");
  } catch (const ipckit::OSError& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  ASSERT_TRUE(listener->address().starts_with("tcp://[::1]:")) << listener->address();
  auto child = pinger(listener->address(), std::nullopt);
  serve_one_ping(*listener);
  expect_clean_exit(*child);
}

TEST_F(ListenerTest, UnixSocketFileIsRemovedAtClose) {
  const std::string path = socket_path();
  ipckit::Listener listener("unix://" + path, kKey);
  EXPECT_EQ(listener.address(), "unix://" + path);
  EXPECT_TRUE(file_exists(path));
  auto child = pinger("unix://" + path, kKey);
  serve_one_ping(listener);
  expect_clean_exit(*child);
  EXPECT_EQ(listener.last_accepted(), "unix:");  // an unnamed client
  listener.close();
  EXPECT_FALSE(file_exists(path));
  EXPECT_THROW(ipckit::Client("unix://" + path), ipckit::FileNotFoundError);
}

TEST_F(ListenerTest, AbstractNamesAndAKernelPickedOne) {
  const std::string name = "unix:@" + ipckit::test::unique_name("ipckit-abstract");
  ipckit::Listener named(name);
  EXPECT_EQ(named.address(), name);
  ipckit::Listener picked("unix:@", kKey);
  ASSERT_TRUE(picked.address().starts_with("unix:@")) << picked.address();
  EXPECT_GT(picked.address().size(), std::string("unix:@").size());
  auto a = pinger(name, std::nullopt);
  serve_one_ping(named);
  auto b = pinger(picked.address(), kKey);
  serve_one_ping(picked);
  expect_clean_exit(*a);
  expect_clean_exit(*b);
  EXPECT_THROW(ipckit::Listener{name}, ipckit::FileExistsError);  // taken while `named` lives
}

TEST_F(ListenerTest, SocketFileLeftByAKilledListenerIsReplacedButALiveOneIsNot) {
  const std::string address = "unix://" + socket_path();
  auto [ready_reader, ready_writer] = ipckit::Pipe(false);
  auto holder = ipckit::test::spawn([&, address] {
    ipckit::Listener listener(address);
    ready_writer.send_bytes("listening");
    for (;;) ::pause();  // until killed
  });
  EXPECT_EQ(text(ready_reader.recv_bytes()), "listening");
  EXPECT_THROW(ipckit::Listener{address}, ipckit::FileExistsError);  // a live listener uses it
  holder->kill();
  holder->join();
  EXPECT_TRUE(file_exists(address.substr(7)));  // SIGKILL left the file behind
  ipckit::Listener listener(address);             // ...and the new listener takes its place
  auto child = pinger(address, std::nullopt);
  serve_one_ping(listener);
  expect_clean_exit(*child);
}

TEST_F(ListenerTest, AForkedChildClosingItsCopyLeavesTheSocketFile) {
  const std::string path = socket_path();
  ipckit::Listener listener("unix://" + path);
  auto child = ipckit::test::spawn([&] { listener.close(); });
  expect_clean_exit(*child);
  EXPECT_TRUE(file_exists(path));
  auto client = pinger("unix://" + path, std::nullopt);
  serve_one_ping(listener);
  expect_clean_exit(*client);
}

TEST_F(ListenerTest, WrongKeyIsRefusedOnBothSidesAndTheListenerServesTheNext) {
  Rejections rejected;
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey, {.on_reject = rejected.callback()});
  const std::string address = listener.address();
  auto wrong_client = ipckit::test::spawn([address] {
    std::string error;
    try {
      ipckit::Client(address, "not the key", 20s);
    } catch (const ipckit::AuthenticationError& e) {
      error = e.what();
    }
    if (error.find("rejected") == std::string::npos) throw std::runtime_error("not rejected: " + error);
  });
  // Accepting runs the handshakes: the wrong client is dropped, not returned, and the
  // good one (started once the wrong one has been turned away) is served.
  while (rejected.reasons->empty()) EXPECT_FALSE(listener.accept(100ms).has_value());
  expect_clean_exit(*wrong_client);
  auto good = pinger(address, kKey);
  serve_one_ping(listener);
  expect_clean_exit(*good);
  EXPECT_TRUE(rejected.any_containing("does not know the authentication key")) << rejected.reasons->size();
}

TEST_F(ListenerTest, NoKeyOnEitherSideIsAPlainConnection) {
  ipckit::Listener listener("tcp://127.0.0.1:0");
  auto child = pinger(listener.address(), std::nullopt);
  serve_one_ping(listener);
  expect_clean_exit(*child);
}

// A peer that connects and says nothing must not hold up the others, and is dropped when
// its handshake time runs out.
TEST_F(ListenerTest, SilentPeerDoesNotHoldTheListenerAndIsDroppedInTime) {
  Rejections rejected;
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey,
                            {.handshake_timeout = 500ms, .on_reject = rejected.callback()});
  const int port = port_of(listener.address());
  auto [told, tell] = ipckit::Pipe(false);
  auto silent = ipckit::test::spawn([&, port] {
    const int fd = raw_connect(port);
    char header[4];
    if (fd < 0 || ::read(fd, header, sizeof header) != 4) std::exit(4);
    tell.send_bytes("got the challenge");
    read_to_end(fd);  // the rest of the challenge, then the listener hangs up
  });
  // The silent peer's handshake is under way (it has the challenge) when the good one comes.
  while (!told.poll()) EXPECT_FALSE(listener.accept(10ms).has_value());
  auto good = pinger(listener.address(), kKey);
  serve_one_ping(listener);
  expect_clean_exit(*good);
  while (!rejected.any_containing("in time")) EXPECT_FALSE(listener.accept(100ms).has_value());
  expect_clean_exit(*silent);
}

// Bytes that are not the handshake: each gets a closed socket and a reason, and the
// listener serves the next peer.
TEST_F(ListenerTest, GarbageAndOversizedHandshakeFramesAreRejected) {
  Rejections rejected;
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey, {.on_reject = rejected.callback()});
  const int port = port_of(listener.address());
  const std::vector<std::string> garbage = {
      std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),  // "GET " is a 1.2 GB length
      std::string("\xff\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 12),  // -1 escape, 9 EB
      std::string("\x80\x00\x00\x00", 4),                 // a negative length
      std::string("\x00\x00\x00\x05hello", 9),            // a frame, but not a MAC
  };
  for (const auto& bytes : garbage) {
    auto peer = ipckit::test::spawn([port, bytes] {
      const int fd = raw_connect(port);
      if (fd < 0) std::exit(4);
      if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) std::exit(5);
      read_to_end(fd);  // the listener closes the connection
    });
    const std::size_t before = rejected.reasons->size();
    while (rejected.reasons->size() == before) EXPECT_FALSE(listener.accept(100ms).has_value());
    expect_clean_exit(*peer);
  }
  EXPECT_TRUE(rejected.any_containing("1195725856 bytes")) << (*rejected.reasons)[0];  // "GET "
  EXPECT_TRUE(rejected.any_containing("malformed frame header"));
  EXPECT_TRUE(rejected.any_containing("names no digest")) << (*rejected.reasons)[3];
  auto good = pinger(listener.address(), kKey);
  serve_one_ping(listener);
  expect_clean_exit(*good);
}

// A client killed in the middle of its handshake: the listener learns it and goes on.
TEST_F(ListenerTest, ClientKilledDuringTheHandshake) {
  Rejections rejected;
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey, {.on_reject = rejected.callback()});
  const int port = port_of(listener.address());
  auto [told, tell] = ipckit::Pipe(false);
  auto victim = ipckit::test::spawn([&, port] {
    const int fd = raw_connect(port);
    char header[4];
    if (fd < 0 || ::read(fd, header, sizeof header) != 4) std::exit(4);
    tell.send_bytes("got the challenge");
    for (;;) ::pause();
  });
  // The listener must have sent the challenge: step it until the victim says so.
  while (!told.poll()) EXPECT_FALSE(listener.accept(10ms).has_value());
  victim->kill();
  victim->join();
  while (rejected.reasons->empty()) EXPECT_FALSE(listener.accept(100ms).has_value());
  // It died with the rest of the challenge unread: the kernel resets the connection.
  EXPECT_TRUE(rejected.any_containing("reset by peer") || rejected.any_containing("hung up")) << (*rejected.reasons)[0];
  auto good = pinger(listener.address(), kKey);
  serve_one_ping(listener);
  expect_clean_exit(*good);
}

// After authentication a peer can announce any size: the receiver's limit stops it
// before anything of that size is allocated.
TEST_F(ListenerTest, AnnouncedSizeAboveTheLimitIsRefusedAfterAuthentication) {
  ipckit::ListenerOptions options;
  options.connection.max_message_size = 1 << 20;
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey, options);
  const std::string address = listener.address();
  auto child = ipckit::test::spawn([address] {
    auto conn = ipckit::Client(address, kKey, 20s);
    const char huge[12] = {'\xff', '\xff', '\xff', '\xff', 0, 0, 0, 1, 0, 0, 0, 0};  // 4 GiB
    if (::write(conn.fileno(), huge, sizeof huge) != sizeof huge) std::exit(5);
    conn.recv_bytes();  // until the listener hangs up
  });
  auto conn = listener.accept();
  try {
    conn.recv_bytes();
    ADD_FAILURE() << "a 4 GiB announcement was accepted";
  } catch (const ipckit::MessageTooLarge& e) {
    EXPECT_EQ(e.size(), std::uint64_t{1} << 32);
    EXPECT_EQ(e.limit(), std::uint64_t{1} << 20);
  }
  EXPECT_FALSE(conn.readable());
  conn.close();
  child->join();
}

// A burst of connects while nobody accepts: the default backlog holds them all (a
// backlog of 1 drops SYNs, which costs the client a second each).
TEST_F(ListenerTest, ABurstOfConnectsWaitsInTheBacklog) {
  constexpr int kClients = 300;
  ipckit::Listener listener("tcp://127.0.0.1:0");
  const std::string address = listener.address();
  auto burst = ipckit::test::spawn([address] {
    std::vector<ipckit::Connection> connections;
    for (int i = 0; i < kClients; ++i) connections.push_back(ipckit::Client(address, std::nullopt, 20s));
    for (int i = 0; i < kClients; ++i) connections[static_cast<std::size_t>(i)].send(i);
    for (auto& c : connections) c.recv_bytes();  // wait until the listener has read them all
  });
  std::vector<ipckit::Connection> accepted;
  std::vector<bool> seen(kClients);
  for (int i = 0; i < kClients; ++i) {
    accepted.push_back(listener.accept());
    const int n = accepted.back().recv<int>();
    ASSERT_TRUE(n >= 0 && n < kClients && !seen[static_cast<std::size_t>(n)]) << n;
    seen[static_cast<std::size_t>(n)] = true;
  }
  for (auto& c : accepted) c.send_bytes("done");
  expect_clean_exit(*burst);
}

TEST_F(ListenerTest, WaitReportsTheListenerOnlyWhenAConnectionIsReady) {
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey);
  const int port = port_of(listener.address());
  const int silent = raw_connect(port);  // connects but never answers the challenge
  ASSERT_GE(silent, 0);
  EXPECT_TRUE(ipckit::wait({listener}, 200ms).empty());
  auto good = pinger(listener.address(), kKey);
  const auto ready = ipckit::wait({listener}, 20s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == listener);
  auto conn = listener.accept(0s);
  ASSERT_TRUE(conn.has_value());
  EXPECT_EQ(text(conn->recv_bytes()), "ping");
  conn->send_bytes("pong");
  expect_clean_exit(*good);
  ::close(silent);
}

TEST_F(ListenerTest, ClientErrorsNameTheAddress) {
  std::string address;
  {
    ipckit::Listener gone("tcp://127.0.0.1:0");
    address = gone.address();
  }
  try {
    ipckit::Client(address);
    ADD_FAILURE() << "connected to a closed port";
  } catch (const ipckit::ConnectionRefusedError& e) {
    EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
  }
  EXPECT_THROW(ipckit::Client("unix:///nonexistent/dir/sock"), ipckit::FileNotFoundError);
  for (const char* bad : {"127.0.0.1:80", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://:80",
                          "tcp://::1:80", "tcp://[::1:80", "unix:", "udp://x:1"}) {
    EXPECT_THROW(ipckit::Client(bad), ipckit::ValueError) << bad;
    EXPECT_THROW(ipckit::Listener{bad}, ipckit::ValueError) << bad;
  }
  EXPECT_THROW(ipckit::Listener("unix:///tmp/" + std::string(200, 'x')), ipckit::ValueError);
}

// A listener that never accepts: the client's connect succeeds (the backlog) but the
// challenge never comes, and its timeout ends the wait.
TEST_F(ListenerTest, ClientTimeoutCoversTheHandshake) {
  ipckit::Listener listener("tcp://127.0.0.1:0", kKey);
  EXPECT_THROW(ipckit::Client(listener.address(), kKey, 200ms), ipckit::TimeoutError);
}

// close() from another thread wakes a thread blocked in accept() (ValueError) and one in
// wait() (which reports the listener), and stops listening at once.
TEST_F(ListenerTest, CloseWakesThreadsBlockedInAcceptAndWait) {
  const std::string path = socket_path();
  ipckit::Listener listener("unix://" + path, kKey);
  std::atomic<int> woken{0};
  std::atomic<int> accepting_tid{0};
  std::atomic<int> waiting_tid{0};
  std::thread accepting([&] {
    accepting_tid = static_cast<int>(::gettid());
    try {
      listener.accept();
    } catch (const ipckit::ValueError&) {
      ++woken;
    }
  });
  std::thread waiting([&] {
    waiting_tid = static_cast<int>(::gettid());
    if (ipckit::wait({listener}).size() == 1) ++woken;
  });
  // Both threads block (nothing else would wake them), then close() must.
  while (accepting_tid == 0 || waiting_tid == 0) std::this_thread::yield();
  ipckit::test::wait_until_sleeping(accepting_tid);
  ipckit::test::wait_until_sleeping(waiting_tid);
  listener.close();
  accepting.join();
  waiting.join();
  EXPECT_EQ(woken, 2);
  EXPECT_TRUE(listener.closed());
  EXPECT_FALSE(file_exists(path));
  EXPECT_THROW(ipckit::Client("unix://" + path), ipckit::FileNotFoundError);
  EXPECT_THROW(listener.accept(0s), ipckit::ValueError);
}

TEST_F(ListenerTest, ClosedListener) {
  ipckit::Listener listener;
  EXPECT_TRUE(listener.closed());
  EXPECT_THROW(listener.accept(), ipckit::ValueError);
  EXPECT_THROW(listener.address(), ipckit::ValueError);
  EXPECT_NO_THROW(listener.close());
}

// --- passing fds -----------------------------------------------------------------------

// The child of this scenario is a fresh program (exec), unrelated to the listener: it
// connects, makes an anonymous SharedMemory (a memfd), writes into it and hands it over.
ipckit::test::ChildScenario share_memory("send-memfd", [](const std::vector<std::string>& args) {
  auto conn = ipckit::Client(args.at(0), kKey, 20s);
  auto shm = ipckit::SharedMemory::anonymous(4096);
  std::memcpy(shm.buf().data(), "written by the sender", 22);
  conn.send_handle(shm.fd());
  conn.send_bytes("sent");
  // The receiver's answer, written into the same memory.
  if (text(conn.recv_bytes()) != "done") return ipckit::test::kChildCheckFailed;
  return std::memcmp(shm.buf().data(), "answered", 8) == 0 ? ipckit::test::kChildOk : ipckit::test::kChildCheckFailed;
});

TEST_F(ListenerTest, AnonymousSharedMemoryPassesToAnUnrelatedProcess) {
  ipckit::Listener listener("unix://" + socket_path(), kKey);
  std::optional<ipckit::test::ChildResult> result;
  std::thread child([&] { result = ipckit::test::run_child("send-memfd", {listener.address()}); });
  auto conn = listener.accept();
  const int fd = conn.recv_handle();
  EXPECT_EQ(text(conn.recv_bytes()), "sent");
  auto shm = ipckit::SharedMemory::from_fd(fd);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(shm.buf().data()), 21), "written by the sender");
  std::memcpy(shm.buf().data(), "answered", 8);
  conn.send_bytes("done");
  child.join();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->exit_code, ipckit::test::kChildOk) << result->output;
}

// A socket passes, and each wrong call (recv_handle where a message is next, recv where a
// handle is next) is a ProtocolError that leaves what is next in place.
TEST_F(ListenerTest, ASocketPassesAndTheWrongCallLeavesWhatIsNext) {
  ipckit::Listener listener("unix:@");
  auto child = ipckit::test::spawn([address = listener.address()] {
    auto conn = ipckit::Client(address, std::nullopt, 20s);
    const auto expect_protocol_error = [](auto call, const char* what) {
      try {
        call();
      } catch (const ipckit::ProtocolError&) {
        return;
      }
      throw std::runtime_error(std::string(what) + " was not refused");
    };
    expect_protocol_error([&] { conn.recv_handle(); }, "recv_handle before a message");
    if (text(conn.recv_bytes()) != "a message first") throw std::runtime_error("the message was lost");
    expect_protocol_error([&] { conn.recv_bytes(); }, "recv before a handle");
    ipckit::Connection socket(conn.recv_handle(), true, true);
    socket.send_bytes("through the passed socket");
    if (text(conn.recv_bytes()) != "after") throw std::runtime_error("the message after the handle was lost");
  });
  auto [kept, passed] = ipckit::Pipe(true, {.shared_memory = false});
  auto conn = listener.accept();
  conn.send_bytes("a message first");
  conn.send_handle(passed.fileno());
  passed.close();
  conn.send_bytes("after");
  EXPECT_EQ(text(kept.recv_bytes()), "through the passed socket");
  expect_clean_exit(*child);
}

TEST_F(ListenerTest, HandlesNeedAUnixSocket) {
  ipckit::Listener listener("tcp://127.0.0.1:0");
  auto child = pinger(listener.address(), std::nullopt);
  auto conn = listener.accept();
  EXPECT_THROW(conn.send_handle(0), ipckit::ValueError);
  EXPECT_THROW(conn.recv_handle(), ipckit::ValueError);
  EXPECT_EQ(text(conn.recv_bytes()), "ping");
  conn.send_bytes("pong");
  expect_clean_exit(*child);
  auto [a, b] = ipckit::Pipe();  // a shared-memory Pipe
  EXPECT_THROW(a.send_handle(0), ipckit::ValueError);
}

}  // namespace
