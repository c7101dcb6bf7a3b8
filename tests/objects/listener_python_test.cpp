// Listener and Client against Python's multiprocessing.connection (python_listener_peer.py):
// Python's Client with ipckit's Listener and ipckit's Client with Python's Listener, over
// TCP, a socket file and an abstract socket; with the right key, a wrong one and none;
// CPython <= 3.11's HMAC-MD5 handshake (the interpreter's own) and CPython 3.12's
// {digest}-prefixed one (restated in the peer script); fds passed both ways with
// multiprocessing.reduction's send_handle/recv_handle.
#include "ipckit/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"
#include "ipckit_test.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::test::text;
using ipckit::test::unique_name;

class ListenerPythonTest : public ipckit::test::Test {};

constexpr auto kPeerTimeout = 20s;  // the peer gives up after 30 s (signal.alarm)

// write() that fails with EPIPE instead of raising SIGPIPE when the reader is gone.
ssize_t write_without_sigpipe(int fd, std::string_view data) {
  sigset_t pipe_signal, old;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &old);
  const ssize_t n = ::write(fd, data.data(), data.size());
  if (n < 0 && errno == EPIPE) {
    const timespec zero{};
    while (sigtimedwait(&pipe_signal, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return n;
}

// python_listener_peer.py ARGS... running in a child, its stdout and stderr in one pipe,
// its stdin another.
class PythonPeer {
 public:
  explicit PythonPeer(std::vector<std::string> args) {
    args.insert(args.begin(), {IPCKIT_PYTHON, IPCKIT_TEST_DIR "/python_listener_peer.py"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    int in[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 for the Python peer failed");
    if (::pipe2(in, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      throw std::runtime_error("pipe2 for the Python peer failed");
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);  // dup2 clears close-on-exec on the copies
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::execv(IPCKIT_PYTHON, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    if (pid_ < 0) {
      ::close(out[0]);
      ::close(in[1]);
      throw std::runtime_error("fork for the Python peer failed");
    }
    out_ = out[0];
    in_ = in[1];
  }
  PythonPeer(const PythonPeer&) = delete;
  PythonPeer& operator=(const PythonPeer&) = delete;
  ~PythonPeer() {
    if (pid_ > 0) {  // a test that stopped early: do not leave the child behind
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
  }

  // The address the peer printed ("ADDRESS <address>") once listening; empty when it
  // ended (or went silent) before printing one.
  std::string address() {
    for (;;) {
      const auto at = output_.find("ADDRESS ");
      const auto end = at == std::string::npos ? at : output_.find('\n', at);
      if (end != std::string::npos) return output_.substr(at + 8, end - at - 8);
      if (!read_some()) return {};
    }
  }

  // Returns once the peer has printed `line` (true), or false when it ended or went silent.
  bool wait_for_line(std::string_view line) {
    while (!printed(line))
      if (!read_some()) return false;
    return true;
  }
  bool printed(std::string_view line) const {
    const std::string whole = std::string(line) + "\n";
    return output_.rfind(whole, 0) == 0 || output_.find("\n" + whole) != std::string::npos;
  }

  // A line on the peer's stdin.
  void send_line(std::string_view line) {
    const std::string whole = std::string(line) + "\n";
    EXPECT_EQ(write_without_sigpipe(in_, whole), static_cast<ssize_t>(whole.size()));
  }

  // The read end of the peer's output, for wait().
  int output_fd() const { return out_; }

  // Appends what the peer printed next to output(). False at the end of the output, or
  // when nothing comes within `patience` (by default: longer than the peer lives).
  bool read_some(std::chrono::milliseconds patience = 40s) {
    if (eof_) return false;
    pollfd p{out_, POLLIN, 0};
    int ready = 0;
    while ((ready = ::poll(&p, 1, static_cast<int>(patience.count()))) < 0 && errno == EINTR) {
    }
    if (ready <= 0) return false;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(out_, buffer, sizeof buffer)) < 0 && errno == EINTR) {
    }
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    output_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  // Reads the rest of the output and reaps the peer: its exit code, or minus the signal
  // that ended it. A peer still running after `patience` without a word (it waits for
  // something the test will not do) gets SIGINT, so that its traceback shows where.
  int finish(std::chrono::milliseconds patience = 40s) {
    while (read_some(patience)) {
    }
    if (!eof_) {
      ::kill(pid_, SIGINT);
      while (read_some(10s)) {
      }
    }
    if (!eof_) ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    ::close(out_);
    out_ = -1;
    ::close(in_);
    in_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  bool eof_ = false;
  std::string output_;
};

std::size_t count(const std::string& haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Ends the peer and expects it to have exited 0 after refusing (or being refused)
// `refusals` times with AuthenticationError. Shows its output on any failure of the test.
void expect_peer_succeeded(PythonPeer& peer, std::size_t refusals = 0) {
  const bool failed_before = ::testing::Test::HasFailure();
  const int code = peer.finish(failed_before ? std::chrono::milliseconds(5s) : std::chrono::milliseconds(40s));
  const std::string& out = peer.output();
  EXPECT_EQ(code, 0) << "python_listener_peer.py failed; its output:\n" << out;
  EXPECT_EQ(count(out, "rejected: AuthenticationError"), refusals)
      << "expected " << refusals << " refused authentication(s) in the peer's output:\n" << out;
  if (failed_before && code == 0) ADD_FAILURE() << "the Python peer's output, for the failure above:\n" << out;
}

ipckit::Bytes pattern(std::size_t n, unsigned seed) {
  ipckit::Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return out;
}
ipckit::Bytes python_pattern(std::size_t n) {  // the peer's own messages
  ipckit::Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 11 + 5) & 0xff);
  return out;
}

void expect_message(ipckit::Connection& conn, std::string_view want) {
  const auto got = conn.recv_bytes(kPeerTimeout);
  ASSERT_TRUE(got.has_value()) << "no message from the peer; expected \"" << want << "\"";
  EXPECT_EQ(text(*got), want);
}

// The peer's "converse": messages both ways — empty, small, across Python's 16 KiB
// header-joining limit and ~100 KB — then the peer's own, then its end of stream.
void converse(ipckit::Connection conn) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{16384},
                        std::size_t{100000}}) {
    auto data = pattern(n, static_cast<unsigned>(n));
    conn.send_bytes(data);
    std::reverse(data.begin(), data.end());
    const auto echo = conn.recv_bytes(kPeerTimeout);
    ASSERT_TRUE(echo.has_value()) << "no echo of the " << n << "-byte message";
    EXPECT_TRUE(*echo == data) << "the echo of the " << n << "-byte message differs (" << echo->size()
                               << " bytes came back)";
  }
  conn.send_bytes("bye");
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{100000}}) {
    const auto message = conn.recv_bytes(kPeerTimeout);
    ASSERT_TRUE(message.has_value()) << "no " << n << "-byte message from the peer";
    EXPECT_TRUE(*message == python_pattern(n))
        << "the peer's " << n << "-byte message differs (" << message->size() << " bytes came)";
  }
  EXPECT_THROW((void)conn.recv_bytes(kPeerTimeout), ipckit::ConnectionClosed);
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Reads `fd` until end of file (every write end closed), for at most kPeerTimeout.
std::string read_to_end(int fd) {
  std::string out;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kPeerTimeout).count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ADD_FAILURE() << "the pipe did not reach its end; read so far: \"" << out << "\"";
      return out;
    }
    char buffer[256];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

// The peer's "handles": each side passes the other the write end of a pipe, with messages
// on either side of the handle, and the receiver writes through it.
void exchange_handles(ipckit::Connection conn) {
  // Python -> ipckit: the write end of the peer's pipe; the peer reads what comes.
  expect_message(conn, "handle follows");
  if (::testing::Test::HasFailure()) return;
  Fd received(conn.recv_handle());
  expect_message(conn, "handle sent");
  if (::testing::Test::HasFailure()) return;
  EXPECT_NE(::fcntl(received.fd, F_GETFD) & FD_CLOEXEC, 0) << "a received fd must be close-on-exec";
  struct stat st {};
  ASSERT_EQ(::fstat(received.fd, &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the received fd is not the peer's pipe";
  constexpr std::string_view kMine = "written by ipckit";
  EXPECT_EQ(write_without_sigpipe(received.fd, kMine), static_cast<ssize_t>(kMine.size()));
  received.reset();  // the peer reads to the end of its pipe
  expect_message(conn, "python read: written by ipckit");

  // ipckit -> Python: the write end of a pipe of ours; the peer writes through it.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  conn.send_bytes("handle follows");
  conn.send_handle(write_end.fd);
  write_end.reset();  // the peer's copy is now the only one
  conn.send_bytes("handle sent");
  EXPECT_EQ(read_to_end(read_end.fd), "written by python");
  expect_message(conn, "done");
  EXPECT_THROW((void)conn.recv_bytes(kPeerTimeout), ipckit::ConnectionClosed);
}

using Body = std::function<void(ipckit::Connection)>;

// Runs `step`, reporting an exception as a failure, so that the test still ends the peer
// and shows its output.
void guarded(const std::function<void()>& step) {
  try {
    step();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "ipckit threw: " << e.what();
  }
}

// The next connection `listener` hands out; nullopt when the peer ends first (or nothing
// happens for kPeerTimeout).
std::optional<ipckit::Connection> accept_from(ipckit::Listener& listener, PythonPeer& peer) {
  for (;;) {
    const auto ready = ipckit::wait({listener, peer.output_fd()}, kPeerTimeout);
    if (ready.empty()) return std::nullopt;
    if (std::find(ready.begin(), ready.end(), ipckit::Waitable(listener)) != ready.end())
      return listener.accept(kPeerTimeout);
    if (!peer.read_some()) return listener.accept(0s);  // the peer has ended
  }
}

// An ipckit Listener at `address` serves python_listener_peer.py run with `peer_args`
// (role first; the listener's address is put after it). The peer's `refused` attempts
// must be dropped and reported to on_reject as AuthenticationError, never handed out;
// each of the `connections` that follow is accepted and talked to with `body`.
void serve_python_client(const std::string& address, const std::optional<std::string>& authkey,
                         std::vector<std::string> peer_args, std::size_t refused = 0,
                         const Body& body = converse, int connections = 1) {
  std::vector<std::string> reasons;
  std::size_t authentication_errors = 0;
  ipckit::ListenerOptions options;
  options.on_reject = [&](const ipckit::Error& why) {
    reasons.emplace_back(why.what());
    if (dynamic_cast<const ipckit::AuthenticationError*>(&why) != nullptr) ++authentication_errors;
  };
  ipckit::Listener listener(address, authkey, options);
  if (!address.ends_with(":0")) {
    EXPECT_EQ(listener.address(), address);
  }
  peer_args.insert(peer_args.begin() + 1, listener.address());
  if (connections != 1) {
    peer_args.push_back("--connections");
    peer_args.push_back(std::to_string(connections));
  }
  PythonPeer peer(std::move(peer_args));
  for (int i = 0; i < connections && !::testing::Test::HasFailure(); ++i) {
    SCOPED_TRACE("connection " + std::to_string(i + 1) + " of " + std::to_string(connections));
    guarded([&] {
      auto conn = accept_from(listener, peer);
      ASSERT_TRUE(conn.has_value()) << "the listener accepted nothing from the Python client";
      EXPECT_EQ(reasons.size(), refused) << "peers turned away: " << testing::PrintToString(reasons);
      EXPECT_EQ(authentication_errors, refused) << testing::PrintToString(reasons);
      body(std::move(*conn));
    });
  }
  guarded([&] { EXPECT_FALSE(listener.accept(0s).has_value()) << "a refused peer was handed out after all"; });
  expect_peer_succeeded(peer, refused);
  EXPECT_EQ(reasons.size(), refused) << testing::PrintToString(reasons);
}

// python_listener_peer.py listens (`peer_args`: role, address, options); ipckit Clients
// connect to the address it prints: with each of `bad_keys` first, each of which must
// fail with AuthenticationError, then with `authkey`, talking with `body`.
void talk_to_python_listener(std::vector<std::string> peer_args, const std::optional<std::string>& authkey,
                             const std::vector<std::string>& bad_keys = {}, const Body& body = converse) {
  PythonPeer peer(std::move(peer_args));
  const std::string address = peer.address();
  if (address.empty()) {
    ADD_FAILURE() << "the Python listener printed no address";
  } else {
    guarded([&] {
      for (const auto& key : bad_keys)
        EXPECT_THROW((void)ipckit::Client(address, key, kPeerTimeout), ipckit::AuthenticationError)
            << "key " << key;
      body(ipckit::Client(address, authkey, kPeerTimeout));
    });
  }
  expect_peer_succeeded(peer, bad_keys.size());
}

std::string socket_file() { return "/tmp/" + unique_name("ipl") + ".sock"; }
std::string abstract_name() { return "unix:@" + unique_name("ipl"); }
bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

// --- Python's Client (CPython 3.11: HMAC-MD5 answers) and ipckit's Listener ----------

TEST_F(ListenerPythonTest, PythonClientOverTcp) {
  ipckit::Listener listener("tcp://127.0.0.1:0", "tcp secret");
  const std::string address = listener.address();
  ASSERT_EQ(address.rfind("tcp://127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "tcp://127.0.0.1:0");
  PythonPeer peer({"client", address, "--authkey", "tcp secret"});
  guarded([&] {
    auto conn = accept_from(listener, peer);
    ASSERT_TRUE(conn.has_value()) << "the listener accepted nothing";
    EXPECT_EQ(listener.last_accepted().rfind("tcp://127.0.0.1:", 0), 0u) << listener.last_accepted();
    converse(std::move(*conn));
  });
  expect_peer_succeeded(peer);
}

TEST_F(ListenerPythonTest, PythonClientOverUnixSocketFile) {
  const std::string path = socket_file();
  {
    ipckit::Listener listener("unix://" + path, "unix secret");
    EXPECT_EQ(listener.address(), "unix://" + path);
    PythonPeer peer({"client", listener.address(), "--authkey", "unix secret"});
    guarded([&] {
      auto conn = accept_from(listener, peer);
      ASSERT_TRUE(conn.has_value()) << "the listener accepted nothing";
      converse(std::move(*conn));
    });
    expect_peer_succeeded(peer);
    EXPECT_TRUE(exists(path));
  }
  EXPECT_FALSE(exists(path)) << "the closed listener left its socket file";
}

TEST_F(ListenerPythonTest, PythonClientOverAbstractUnixSocket) {
  serve_python_client(abstract_name(), "abstract secret", {"client", "--authkey", "abstract secret"});
}

// The wrong key: Python's Client raises AuthenticationError, and the listener drops that
// connection (telling on_reject) and hands out the next client's.
TEST_F(ListenerPythonTest, PythonClientWithWrongKeyIsDroppedOverTcp) {
  serve_python_client("tcp://127.0.0.1:0", "right key",
                      {"client", "--authkey", "right key", "--bad-key", "wrong key"}, 1);
}

TEST_F(ListenerPythonTest, PythonClientWithWrongKeyIsDroppedOverUnix) {
  serve_python_client("unix://" + socket_file(), "right key",
                      {"client", "--authkey", "right key", "--bad-key", "wrong key"}, 1);
}

TEST_F(ListenerPythonTest, PythonClientWithoutKeyOverTcp) {
  serve_python_client("tcp://127.0.0.1:0", std::nullopt, {"client"});
}

TEST_F(ListenerPythonTest, PythonClientWithoutKeyOverUnix) {
  serve_python_client(abstract_name(), std::nullopt, {"client"});
}

// --- ipckit's Client and Python's Listener (CPython 3.11: a 20-byte MD5 challenge) ----

TEST_F(ListenerPythonTest, ClientOfPythonListenerOverTcp) {
  talk_to_python_listener({"listener", "tcp://127.0.0.1:0", "--authkey", "tcp secret"}, "tcp secret");
}

TEST_F(ListenerPythonTest, ClientOfPythonListenerOverUnixSocketFile) {
  const std::string path = socket_file();
  talk_to_python_listener({"listener", "unix://" + path, "--authkey", "unix secret"}, "unix secret");
  EXPECT_FALSE(exists(path));
}

TEST_F(ListenerPythonTest, ClientOfPythonListenerOverAbstractUnixSocket) {
  talk_to_python_listener({"listener", abstract_name(), "--authkey", "abstract secret"}, "abstract secret");
}

// The wrong key: ipckit's Client throws AuthenticationError and Python's accept() raises
// it; the Python listener then accepts the right key.
TEST_F(ListenerPythonTest, ClientWithWrongKeyFailsAgainstPythonListenerOverTcp) {
  talk_to_python_listener({"listener", "tcp://127.0.0.1:0", "--authkey", "right key", "--rejections", "1"},
                          "right key", {"wrong key"});
}

TEST_F(ListenerPythonTest, ClientWithWrongKeyFailsAgainstPythonListenerOverUnix) {
  talk_to_python_listener({"listener", "unix://" + socket_file(), "--authkey", "right key", "--rejections", "2"},
                          "right key", {"wrong key", "right ke"});
}

TEST_F(ListenerPythonTest, ClientWithoutKeyOfPythonListenerOverTcp) {
  talk_to_python_listener({"listener", "tcp://127.0.0.1:0"}, std::nullopt);
}

TEST_F(ListenerPythonTest, ClientWithoutKeyOfPythonListenerOverUnix) {
  talk_to_python_listener({"listener", "unix://" + socket_file()}, std::nullopt);
}

// --- CPython 3.12's handshake: {sha256} challenges, answers naming their digest ------

TEST_F(ListenerPythonTest, Python312ClientOverTcp) {
  serve_python_client("tcp://127.0.0.1:0", "secret", {"client312", "--authkey", "secret"});
}

TEST_F(ListenerPythonTest, Python312ClientWithWrongKeyIsDropped) {
  serve_python_client("unix://" + socket_file(), "right key",
                      {"client312", "--authkey", "right key", "--bad-key", "wrong key"}, 1);
}

TEST_F(ListenerPythonTest, ClientOfPython312ListenerOverUnix) {
  talk_to_python_listener({"listener312", "unix://" + socket_file(), "--authkey", "secret"}, "secret");
}

TEST_F(ListenerPythonTest, ClientWithWrongKeyFailsAgainstPython312Listener) {
  talk_to_python_listener({"listener312", "tcp://127.0.0.1:0", "--authkey", "right key", "--rejections", "1"},
                          "right key", {"wrong key"});
}

// The answer to a {sha256} challenge may name another allowed digest (CPython 3.12's
// verifier uses whichever the answer names), and a challenge naming another digest is
// answered in that digest. One listener serves the clients one after another.
TEST_F(ListenerPythonTest, ListenerAcceptsAnswersInOtherAllowedDigests) {
  std::vector<std::string> reasons;
  ipckit::ListenerOptions options;
  options.on_reject = [&](const ipckit::Error& why) { reasons.emplace_back(why.what()); };
  ipckit::Listener listener(abstract_name(), "secret", options);
  for (const std::string digest : {"sha384", "md5", "sha3_256", "sha3_384"}) {
    SCOPED_TRACE("digest " + digest);
    PythonPeer peer({"client312", listener.address(), "--authkey", "secret", "--digest", digest,
                     "--challenge-digest", digest});
    guarded([&] {
      auto conn = accept_from(listener, peer);
      ASSERT_TRUE(conn.has_value()) << "the listener accepted nothing";
      converse(std::move(*conn));
    });
    expect_peer_succeeded(peer);
  }
  EXPECT_TRUE(reasons.empty()) << testing::PrintToString(reasons);
}

// {sha1} is not among the allowed digests: the answer is refused (#FAILURE#, Python's
// AuthenticationError), and the listener goes on to the next client.
TEST_F(ListenerPythonTest, ListenerRefusesAnswerInSha1) {
  serve_python_client("tcp://127.0.0.1:0", "secret",
                      {"client312", "--authkey", "secret", "--bad-digest", "sha1"}, 1);
}

TEST_F(ListenerPythonTest, ClientAnswersInTheDigestThePython312ListenerNames) {
  for (const std::string digest : {"sha384", "md5", "sha3_256", "sha3_384"}) {
    SCOPED_TRACE("digest " + digest);
    talk_to_python_listener({"listener312", abstract_name(), "--authkey", "secret", "--challenge-digest", digest},
                            "secret");
  }
}

// --- fds passed with multiprocessing.reduction.send_handle / recv_handle ------------

// The client sends its handle right after authenticating, so it may arrive together with
// the end of the handshake: the listener must not lose it. Several connections, because
// whether it arrives so is a matter of timing.
TEST_F(ListenerPythonTest, HandlesBothWaysWithPythonClient) {
  serve_python_client("unix://" + socket_file(), "secret", {"client", "--authkey", "secret", "--then", "handles"},
                      0, exchange_handles, 8);
}

// The same, made certain: the client holds back its #WELCOME# until the listener has
// answered its challenge, then sends the verdict, a message and the handle, and only then
// does the listener read: its last handshake read finds all three waiting.
TEST_F(ListenerPythonTest, HandleSentWithTheEndOfTheHandshakeIsKept) {
  ipckit::Listener listener("unix://" + socket_file(), "secret");
  PythonPeer peer({"client312", listener.address(), "--authkey", "secret", "--then", "handles", "--hold-welcome"});
  guarded([&] {
    // wait() moves the handshake on until the client has verified the listener's answer.
    while (!peer.printed("verified")) {
      const auto ready = ipckit::wait({listener, peer.output_fd()}, kPeerTimeout);
      ASSERT_FALSE(ready.empty()) << "neither the listener nor the peer moved";
      ASSERT_EQ(std::find(ready.begin(), ready.end(), ipckit::Waitable(listener)), ready.end())
          << "a connection was ready before the client's verdict";
      ASSERT_TRUE(peer.read_some()) << "the peer ended before verifying the listener's answer";
    }
    peer.send_line("go");
    ASSERT_TRUE(peer.wait_for_line("handle sent"));
    auto conn = listener.accept(kPeerTimeout);
    ASSERT_TRUE(conn.has_value()) << "the listener accepted nothing";
    exchange_handles(std::move(*conn));
  });
  expect_peer_succeeded(peer);
}

TEST_F(ListenerPythonTest, HandlesBothWaysWithPythonClientWithoutKey) {
  serve_python_client(abstract_name(), std::nullopt, {"client", "--then", "handles"}, 0, exchange_handles, 8);
}

TEST_F(ListenerPythonTest, HandlesBothWaysWithPythonListener) {
  talk_to_python_listener({"listener", abstract_name(), "--authkey", "secret", "--then", "handles"}, "secret", {},
                          exchange_handles);
}

TEST_F(ListenerPythonTest, HandlesBothWaysWithPython312ListenerWithoutKey) {
  talk_to_python_listener({"listener312", "unix://" + socket_file(), "--then", "handles"}, std::nullopt, {},
                          exchange_handles);
}
