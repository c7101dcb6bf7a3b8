// Socket and ServerSocket (socket.hpp) across real processes: plain bytes over TCP, socket
// files and abstract names; half-close, timeouts, killed peers, connect errors, wait(),
// closed sockets, and Python's own socket module on the other end.
#include "ipckit/socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/wait.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using SocketTest = ipckit::test::Test;
using ipckit::test::text;

std::string socket_path() { return "/tmp/" + ipckit::test::unique_name("ipckit-socket") + ".sock"; }

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The port of a "tcp://HOST:PORT" address.
int port_of(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

ipckit::Bytes pattern(std::size_t n, unsigned seed) {
  ipckit::Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return out;
}

// Reads until `n` bytes have come, one recv after another (each returns what has arrived,
// which may be less); fewer only when the stream ends first.
ipckit::Bytes recv_exactly(ipckit::Socket& conn, std::size_t n) {
  ipckit::Bytes out;
  while (out.size() < n) {
    const ipckit::Bytes part = conn.recv(n - out.size());
    if (part.empty()) break;
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

// Reads until end of stream.
ipckit::Bytes recv_to_end(ipckit::Socket& conn) {
  ipckit::Bytes out;
  for (;;) {
    const ipckit::Bytes part = conn.recv();
    if (part.empty()) return out;
    out.insert(out.end(), part.begin(), part.end());
  }
}

// Sends `data` from a second thread while this one reads the echo. A peer that echoes as
// it reads stops reading while its replies fill the buffers; a sender that did not read
// at the same time would wait for it for ever once the data outgrows them.
ipckit::Bytes echo_of(ipckit::Socket& conn, const ipckit::Bytes& data) {
  std::string send_error;
  std::thread sender([&] {
    try {
      conn.sendall(data);
    } catch (const std::exception& e) {
      send_error = e.what();
    }
  });
  ipckit::Bytes back = recv_exactly(conn, data.size());
  sender.join();
  EXPECT_EQ(send_error, "");
  return back;
}

// A child that accepts one connection on `server` and sends back every byte it receives
// until the peer ends its side; then it closes the connection and exits.
std::unique_ptr<ipckit::Process> echo_server(ipckit::ServerSocket& server) {
  return ipckit::test::spawn([&server] {
    ipckit::Socket conn = server.accept();
    for (;;) {
      const ipckit::Bytes data = conn.recv(65536);
      if (data.empty()) return;
      conn.sendall(data);
    }
  });
}

void expect_clean_exit(ipckit::Process& p) {
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << p.error().value_or("");
}

// Echoes of 1 byte to 1 MB through an echo_server child on `server`, then the end of
// stream both ways.
void expect_echo(ipckit::ServerSocket& server) {
  auto child = echo_server(server);
  auto conn = ipckit::create_connection(server.address(), 20s);
  EXPECT_EQ(conn.peer_address(), server.address());
  for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{1000}, std::size_t{65536},
                              std::size_t{65537}, std::size_t{1} << 20}) {
    const auto data = pattern(n, static_cast<unsigned>(n));
    const auto back = echo_of(conn, data);
    EXPECT_EQ(back.size(), n);
    EXPECT_TRUE(back == data) << n << " bytes came back different";
  }
  conn.shutdown_write();
  EXPECT_TRUE(conn.recv().empty());  // the server saw the end of stream and closed
  conn.close();
  expect_clean_exit(*child);
}

TEST_F(SocketTest, EchoOverTcpPortZero) {
  auto server = ipckit::create_server("tcp://127.0.0.1:0");
  ASSERT_TRUE(server.address().starts_with("tcp://127.0.0.1:")) << server.address();
  EXPECT_GT(port_of(server.address()), 0);
  expect_echo(server);
}

TEST_F(SocketTest, EchoOverASocketFile) {
  const std::string path = socket_path();
  auto server = ipckit::create_server("unix://" + path);
  EXPECT_EQ(server.address(), "unix://" + path);
  EXPECT_TRUE(file_exists(path));
  expect_echo(server);
}

TEST_F(SocketTest, EchoOverAbstractNames) {
  const std::string name = "unix:@" + ipckit::test::unique_name("ipckit-socket");
  auto named = ipckit::create_server(name);
  EXPECT_EQ(named.address(), name);
  expect_echo(named);
  auto picked = ipckit::create_server("unix:@");  // the kernel picks the name
  ASSERT_TRUE(picked.address().starts_with("unix:@")) << picked.address();
  EXPECT_GT(picked.address().size(), std::string("unix:@").size());
  expect_echo(picked);
}

TEST_F(SocketTest, PeerAddresses) {
  auto tcp = ipckit::create_server("tcp://127.0.0.1:0");
  auto client = ipckit::create_connection(tcp.address());
  auto accepted = tcp.accept();
  EXPECT_EQ(client.peer_address(), tcp.address());
  EXPECT_TRUE(accepted.peer_address().starts_with("tcp://127.0.0.1:")) << accepted.peer_address();
  EXPECT_NE(accepted.peer_address(), tcp.address());
  auto unix_server = ipckit::create_server("unix:@");
  auto unix_client = ipckit::create_connection(unix_server.address());
  EXPECT_EQ(unix_server.accept().peer_address(), "unix:");  // an unnamed client
}

// A recv returns what has arrived, up to its limit; the rest stays for the next.
TEST_F(SocketTest, RecvReturnsWhatHasArrivedNotAMessage) {
  auto server = ipckit::create_server("unix:@");
  auto client = ipckit::create_connection(server.address());
  auto conn = server.accept();
  client.sendall("abc");
  client.sendall("def");
  client.sendall("");  // nothing to send is not an error
  client.close();
  EXPECT_EQ(text(conn.recv(2)), "ab");
  EXPECT_EQ(text(recv_exactly(conn, 4)), "cdef");
  EXPECT_TRUE(conn.recv().empty());
  EXPECT_TRUE(conn.recv().empty());  // and again: the end of stream stays
}

// shutdown_write ends one direction: the peer's recv returns empty, and the other
// direction still carries bytes.
TEST_F(SocketTest, ShutdownWriteIsAHalfClose) {
  auto server = ipckit::create_server("tcp://127.0.0.1:0");
  auto child = ipckit::test::spawn([address = server.address()] {
    auto conn = ipckit::create_connection(address, 20s);
    conn.sendall("question");
    conn.shutdown_write();
    if (text(recv_to_end(conn)) != "answer to question") std::exit(3);
  });
  auto conn = server.accept();
  const auto question = recv_to_end(conn);  // ends because the child shut down its side
  EXPECT_EQ(text(question), "question");
  conn.sendall("answer to ");
  conn.sendall(question);
  conn.shutdown_write();
  conn.shutdown_write();  // a second time is harmless
  EXPECT_THROW(conn.sendall("more"), ipckit::ValueError);  // this side ended its sending
  EXPECT_THROW(conn.recv(0), ipckit::ValueError);
  EXPECT_TRUE(conn.recv().empty());  // the child read to the end and exited
  expect_clean_exit(*child);
}

TEST_F(SocketTest, TimedRecvReturnsNulloptWhenNothingComes) {
  auto server = ipckit::create_server("tcp://127.0.0.1:0");
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = ipckit::test::spawn([&, address = server.address()] {
    auto conn = ipckit::create_connection(address, 20s);
    ipckit::test::wait_for_gate(gate, gate_writer);
    conn.sendall("late");
    if (!recv_to_end(conn).empty()) std::exit(3);
  });
  gate.close();
  auto conn = server.accept();
  EXPECT_EQ(conn.recv(16, 50ms), std::nullopt);  // the child waits at the gate
  EXPECT_EQ(conn.recv(16, 0s), std::nullopt);
  EXPECT_EQ(conn.recv(16, -1s), std::nullopt);
  gate_writer.close();  // opens the gate
  const auto late = conn.recv(16, 20s);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(text(*late) + text(recv_exactly(conn, 4 - late->size())), "late");
  conn.shutdown_write();
  const auto end = conn.recv(16, 20s);  // the child saw the end and exited
  ASSERT_TRUE(end.has_value());
  EXPECT_TRUE(end->empty());  // the end of stream is empty, not nullopt
  expect_clean_exit(*child);
}

// A peer killed with SIGKILL: recv ends (a reset when it died with bytes unread), and
// sendall to it throws ConnectionClosed instead of raising SIGPIPE (which would end this
// test binary). Over TCP the first send may still go out: the kernel learns that the peer
// is gone from the reset that send provokes.
TEST_F(SocketTest, PeerKilledWithSigkill) {
  for (const std::string& address : std::vector<std::string>{"tcp://127.0.0.1:0", "unix://" + socket_path()}) {
    for (const bool unread : {false, true}) {
      SCOPED_TRACE(address + (unread ? ", with bytes unread" : ""));
      auto server = ipckit::create_server(address);
      auto peer = ipckit::test::spawn([where = server.address()] {
        auto conn = ipckit::create_connection(where, 20s);
        conn.sendall("ready");
        for (;;) ::pause();  // until killed
      });
      // Timed calls, so that a peer that never comes fails here instead of hanging.
      auto accepted = server.accept(20s);
      ASSERT_TRUE(accepted.has_value()) << "the peer did not connect";
      auto& conn = *accepted;
      const auto ready = conn.recv(5, 20s);
      ASSERT_TRUE(ready.has_value()) << "the peer sent nothing";
      EXPECT_EQ(text(*ready), "ready");  // 5 bytes in one send: they arrive together
      if (unread) conn.sendall("never read");
      peer->kill();
      peer->join();
      EXPECT_EQ(peer->exitcode(), -SIGKILL);
      try {
        const auto end = conn.recv(65536, 20s);
        ASSERT_TRUE(end.has_value()) << "no end of stream after the peer was killed";
        EXPECT_TRUE(end->empty());
      } catch (const ipckit::ConnectionClosed&) {
      }
      const ipckit::Bytes chunk(65536);
      EXPECT_THROW(
          {
            for (int i = 0; i < 1000; ++i) conn.sendall(chunk);
          },
          ipckit::ConnectionClosed);
    }
  }
}

TEST_F(SocketTest, ConnectErrors) {
  std::string closed_port;
  {
    auto gone = ipckit::create_server("tcp://127.0.0.1:0");
    closed_port = gone.address();
  }
  try {
    ipckit::create_connection(closed_port);
    ADD_FAILURE() << "connected to a closed port";
  } catch (const ipckit::ConnectionRefusedError& e) {
    EXPECT_NE(std::string(e.what()).find(closed_port), std::string::npos) << e.what();
  }
  EXPECT_THROW(ipckit::create_connection("unix://" + socket_path()), ipckit::FileNotFoundError);
  EXPECT_THROW(ipckit::create_connection("unix:///nonexistent/dir/sock", 1s), ipckit::FileNotFoundError);
  EXPECT_THROW(ipckit::create_connection("unix:@" + ipckit::test::unique_name("nobody")),
               ipckit::ConnectionRefusedError);
  for (const char* bad : {"127.0.0.1:80", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "unix:", "udp://x:1"}) {
    EXPECT_THROW(ipckit::create_connection(bad), ipckit::ValueError) << bad;
    EXPECT_THROW(ipckit::create_server(bad), ipckit::ValueError) << bad;
  }
  EXPECT_THROW(ipckit::create_server("tcp://127.0.0.1:0", 0), ipckit::ValueError);
}

TEST_F(SocketTest, ServerSocketCloseRemovesTheSocketFile) {
  const std::string path = socket_path();
  auto server = ipckit::create_server("unix://" + path);
  EXPECT_THROW(ipckit::create_server("unix://" + path), ipckit::FileExistsError);  // in use
  // A forked child closing its copy leaves the file: only its creator removes it.
  auto child = ipckit::test::spawn([&] { server.close(); });
  expect_clean_exit(*child);
  EXPECT_TRUE(file_exists(path));
  server.close();
  EXPECT_TRUE(server.closed());
  EXPECT_FALSE(file_exists(path));
  EXPECT_NO_THROW(server.close());
  EXPECT_THROW(ipckit::create_connection("unix://" + path), ipckit::FileNotFoundError);
  {
    auto scoped = ipckit::create_server("unix://" + path);
    EXPECT_TRUE(file_exists(path));
  }
  EXPECT_FALSE(file_exists(path));  // the destructor closes too
}

TEST_F(SocketTest, SocketFileLeftByAKilledServerIsReplaced) {
  const std::string address = "unix://" + socket_path();
  auto [ready_reader, ready_writer] = ipckit::Pipe(false);
  auto holder = ipckit::test::spawn([&, address] {
    auto server = ipckit::create_server(address);
    ready_writer.send_bytes("listening");
    for (;;) ::pause();  // until killed
  });
  EXPECT_EQ(text(ready_reader.recv_bytes()), "listening");
  holder->kill();
  holder->join();
  EXPECT_TRUE(file_exists(address.substr(7)));  // SIGKILL left the file behind
  auto server = ipckit::create_server(address);
  expect_echo(server);
}

TEST_F(SocketTest, AcceptWithATimeout) {
  auto server = ipckit::create_server("tcp://127.0.0.1:0");
  EXPECT_FALSE(server.accept(50ms).has_value());
  EXPECT_FALSE(server.accept(0s).has_value());
  EXPECT_FALSE(server.accept(-1s).has_value());
  auto child = ipckit::test::spawn([address = server.address()] {
    auto conn = ipckit::create_connection(address, 20s);
    conn.sendall("hello");
  });
  auto conn = server.accept(20s);
  ASSERT_TRUE(conn.has_value());
  EXPECT_EQ(text(recv_to_end(*conn)), "hello");
  expect_clean_exit(*child);
}

// wait() reports a ServerSocket when a connection is waiting to be accepted, and a Socket
// when bytes or the end of stream are waiting to be read.
TEST_F(SocketTest, WaitOnServerSocketsAndSockets) {
  auto server = ipckit::create_server("unix:@");
  auto other = ipckit::create_server("tcp://127.0.0.1:0");
  EXPECT_TRUE(ipckit::wait({server, other}, 0s).empty());
  EXPECT_TRUE(ipckit::wait({server, other}, 50ms).empty());
  auto [gate, gate_writer] = ipckit::Pipe(false);
  auto child = ipckit::test::spawn([&, address = server.address()] {
    auto conn = ipckit::create_connection(address, 20s);
    ipckit::test::wait_for_gate(gate, gate_writer);
    conn.sendall("x");
  });
  gate.close();
  auto ready = ipckit::wait({server, other}, 20s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == server);
  auto conn = server.accept(0s);
  ASSERT_TRUE(conn.has_value());
  EXPECT_TRUE(ipckit::wait({server, other}, 0s).empty());  // nothing more is waiting
  EXPECT_TRUE(ipckit::wait({*conn}, 50ms).empty());         // the child waits at the gate
  gate_writer.close();
  ready = ipckit::wait({server, *conn}, 20s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == *conn);
  EXPECT_EQ(text(conn->recv(16)), "x");
  expect_clean_exit(*child);
  ready = ipckit::wait({*conn}, 20s);  // the end of stream is ready too
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(conn->recv(16).empty());
}

TEST_F(SocketTest, ClosedSocketsRefuseEveryCall) {
  ipckit::Socket none;
  auto server = ipckit::create_server("unix:@");
  auto client = ipckit::create_connection(server.address());
  auto accepted = server.accept();
  EXPECT_FALSE(client.closed());
  client.close();
  EXPECT_NO_THROW(client.close());
  ipckit::Socket moved_to = std::move(accepted);
  EXPECT_FALSE(moved_to.closed());
  EXPECT_TRUE(moved_to.recv().empty());  // the client closed
  for (ipckit::Socket* s : {&none, &client, &accepted}) {
    EXPECT_TRUE(s->closed());
    EXPECT_THROW(s->sendall("x"), ipckit::ValueError);
    EXPECT_THROW(s->recv(), ipckit::ValueError);
    EXPECT_THROW(s->recv(16, 0s), ipckit::ValueError);
    EXPECT_THROW(s->shutdown_write(), ipckit::ValueError);
    EXPECT_THROW(s->peer_address(), ipckit::ValueError);
    EXPECT_THROW(s->fileno(), ipckit::ValueError);
    EXPECT_THROW(s->wait_handle(), ipckit::ValueError);
    EXPECT_NO_THROW(s->close());
  }
  ipckit::ServerSocket no_server;
  server.close();
  for (ipckit::ServerSocket* s : {&no_server, &server}) {
    EXPECT_TRUE(s->closed());
    EXPECT_THROW(s->accept(), ipckit::ValueError);
    EXPECT_THROW(s->accept(0s), ipckit::ValueError);
    EXPECT_THROW(s->address(), ipckit::ValueError);
    EXPECT_THROW(s->fileno(), ipckit::ValueError);
    EXPECT_THROW(s->wait_handle(), ipckit::ValueError);
    EXPECT_NO_THROW(s->close());
  }
}

// --- Python's socket module on the other end ------------------------------------------

// /usr/bin/python3 -c SCRIPT ARGS... in a child, its stdout a pipe this process reads.
class PythonScript {
 public:
  PythonScript(const char* script, std::vector<std::string> args) {
    args.insert(args.begin(), {IPCKIT_PYTHON, "-c", script});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 for the Python script failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);  // dup2 clears close-on-exec on the copy
      ::execv(IPCKIT_PYTHON, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    if (pid_ < 0) {
      ::close(out[0]);
      throw std::runtime_error("fork for the Python script failed");
    }
    out_ = out[0];
  }
  PythonScript(const PythonScript&) = delete;
  PythonScript& operator=(const PythonScript&) = delete;
  ~PythonScript() {
    if (pid_ > 0) {  // a test that stopped early: do not leave the child behind
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  // The script's first line of output, without the newline; empty when it ended (or said
  // nothing for 20 s) first.
  std::string first_line() {
    std::string line;
    char c = 0;
    for (;;) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) return {};
      const ssize_t n = ::read(out_, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return {};
      if (c == '\n') return line;
      line += c;
    }
  }

  // Waits for the script to end: its exit code, or minus the signal that ended it.
  int finish() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    ::close(out_);
    out_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

// Python's socket module as a client: it sends 300000 bytes (from a thread, reading the
// echo meanwhile), ends its side, reads to the end and exits 0 when all came back.
constexpr const char* kPythonClient = R"(
import socket, sys, threading
kind, where = sys.argv[1], sys.argv[2]
if kind == "tcp":
    s = socket.create_connection(("127.0.0.1", int(where)), timeout=20)
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(where)
data = bytes((i * 7 + 5) % 256 for i in range(300000))
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
back = bytearray()
while chunk := s.recv(65536):
    back += chunk
sender.join()
s.close()
sys.exit(0 if back == data else 3)
)";

// Serves one connection of kPythonClient with an echo, checking what went through.
void serve_python_client(ipckit::ServerSocket& server, const std::string& kind, const std::string& where) {
  PythonScript python(kPythonClient, {kind, where});
  auto conn = server.accept(20s);
  ASSERT_TRUE(conn.has_value()) << "the Python client did not connect";
  ipckit::Bytes received;
  for (;;) {
    const auto data = conn->recv(65536, 20s);
    ASSERT_TRUE(data.has_value()) << "the Python client went silent";
    if (data->empty()) break;
    received.insert(received.end(), data->begin(), data->end());
    conn->sendall(*data);
  }
  conn->close();
  EXPECT_TRUE(received == pattern(300000, 5)) << received.size() << " bytes";
  EXPECT_EQ(python.finish(), 0) << "the Python client failed";
}

TEST_F(SocketTest, PythonSocketModuleAsAClient) {
  auto tcp = ipckit::create_server("tcp://127.0.0.1:0");
  serve_python_client(tcp, "tcp", std::to_string(port_of(tcp.address())));
  const std::string path = socket_path();
  auto unix_server = ipckit::create_server("unix://" + path);
  serve_python_client(unix_server, "unix", path);
}

// Python's socket module as a server: it prints where it listens, reads one connection
// to the end and answers with the bytes reversed.
constexpr const char* kPythonServer = R"(
import socket, sys
if sys.argv[1] == "tcp":
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
else:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + sys.argv[2])
    server.listen()
    print("@" + sys.argv[2], flush=True)
server.settimeout(20)
conn, _ = server.accept()
conn.settimeout(20)
data = bytearray()
while chunk := conn.recv(65536):
    data += chunk
conn.sendall(bytes(reversed(data)))
conn.close()
)";

void talk_to_python_server(const std::string& kind, const std::string& address_prefix) {
  PythonScript python(kPythonServer, {kind, ipckit::test::unique_name("ipckit-python")});
  const std::string where = python.first_line();
  ASSERT_FALSE(where.empty()) << "the Python server did not say where it listens";
  auto conn = ipckit::create_connection(address_prefix + where, 20s);
  auto data = pattern(200000, 11);
  conn.sendall(data);  // the server reads it all before it answers
  conn.shutdown_write();
  std::reverse(data.begin(), data.end());
  const auto back = recv_to_end(conn);
  EXPECT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);
  EXPECT_EQ(python.finish(), 0) << "the Python server failed";
}

TEST_F(SocketTest, PythonSocketModuleAsAServer) {
  talk_to_python_server("tcp", "tcp://127.0.0.1:");
  talk_to_python_server("abstract", "unix:");
}

}  // namespace
