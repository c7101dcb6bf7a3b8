// The whole scenario of seeds/002 §6 ("Message Passing with multiprocessing.connection")
// in one run: an echo server and its clients, each its own program, started with
// subprocess::Popen and run().
//
// It starts echo_server (next to this program) at tcp://127.0.0.1:0 with its stdout a
// pipe, and reads from the server's first line the port it got. All the programs share a
// random key (IPCKIT_AUTHKEY), so every connection is authenticated. Then it runs
// echo_client:
//   - once with another key, which the server turns away while it goes on serving;
//   - with the seed's messages: clients 0 and 1 together (the server serves both at
//     once), then client 2, which asks the server to shut down;
//   - once more after the server has stopped, which cannot connect (the Python's
//     "couldn't connect to server").
// Each client checks that every reply is its message (echo_client exits with 1
// otherwise). Once the server has stopped, this program relays the rest of its lines, and
// it exits with 1 if a program did not end as it should.
//
// Where the Python is loose, this is strict: the Python sleeps one second hoping the
// server is listening by then, and half a second between clients; here the clients start
// once the server has said where it listens, and client 2 once clients 0 and 1 are done,
// so its "shutdown" cannot cut them short. Nothing waits more than 20 s: a program that
// hangs is a failure (it is killed), not a hang.
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "ipckit/subprocess.hpp"
#include "ipckit/wait.hpp"

namespace sp = ipckit::subprocess;
using namespace std::chrono_literals;

namespace {

constexpr auto kTimeout = 20s;

// A program next to this one.
std::string next_to_me(const std::string& program) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / program).string();
}

// A Popen killed if it still runs when it goes out of scope (after an error): Popen's
// destructor waits for it, and a server waits for clients for ever.
struct Program : sp::Popen {
  using Popen::Popen;
  ~Program() { kill(); }
};

// Relays the server's first line, which says where it listens, and returns the address.
// Byte by byte, so that what follows stays in the pipe for communicate().
std::string read_address(sp::Popen& server) {
  std::string line;
  while (!line.ends_with('\n')) {
    char c;
    if (ipckit::wait({server.stdout_fd()}, kTimeout).empty() ||
        ::read(server.stdout_fd(), &c, 1) != 1)
      throw std::runtime_error("the server has not said where it listens");
    line += c;
  }
  std::cout << line << std::flush;
  constexpr std::string_view kListeningOn = "listening on ";
  const auto at = line.find(kListeningOn);
  if (at == std::string::npos) throw std::runtime_error("no address in the server's first line");
  return line.substr(at + kListeningOn.size(), line.size() - 1 - at - kListeningOn.size());
}

// Waits for `program`; throws CalledProcessError if it failed.
void check(sp::Popen& program) {
  if (const int code = program.wait(kTimeout); code != 0)
    throw sp::CalledProcessError(program.args(), code, {}, {});
}

std::string random_key() {
  std::random_device random;
  std::string key;
  for (int i = 0; i < 4; ++i) {
    char digits[8];
    key.append(digits, std::to_chars(digits, digits + sizeof digits, random(), 16).ptr);
  }
  return key;
}

// echo_client's command line.
std::vector<std::string> client_args(const std::string& name, const std::string& address,
                                     const std::vector<std::string>& messages) {
  std::vector<std::string> args{next_to_me("echo_client"), "--name", name, address};
  args.insert(args.end(), messages.begin(), messages.end());
  return args;
}

// Runs echo_client as `name` with `key`, expecting it to fail (exit status 1); returns its
// complaint, which it writes to stderr, captured here.
std::string failing_client(const std::string& name, const std::string& address, const std::string& key) {
  const sp::CompletedProcess done = sp::run(
      client_args(name, address, {"Hello"}),
      {.out = sp::PIPE, .err = sp::STDOUT, .timeout = kTimeout, .extra_env = {{"IPCKIT_AUTHKEY", key}}});
  const auto at = done.out.find("echo_client: ");
  if (done.returncode != 1 || at == std::string::npos)
    throw std::runtime_error(name + " should have failed saying why, but exited with status " +
                             std::to_string(done.returncode));
  return done.out.substr(at, done.out.find('\n', at) - at);
}

}  // namespace

int main() try {
  const std::string key = random_key();
  // The children inherit the environment: the server and the clients share the key.
  if (::setenv("IPCKIT_AUTHKEY", key.c_str(), 1) != 0) throw std::runtime_error("setenv failed");

  Program server({next_to_me("echo_server"), "tcp://127.0.0.1:0"}, {.out = sp::PIPE});
  const std::string address = read_address(server);

  // A client with another key is turned away, and the server goes on.
  const std::string stranger = failing_client("Stranger", address, "not the key");
  std::cout << "Main process: a client with the wrong key failed: " << stranger << std::endl;

  Program client0(client_args("Client 0", address, {"Hello", "How are you?", "close"}));
  Program client1(client_args("Client 1", address, {"Testing", "Another message", "close"}));
  check(client0);
  check(client1);
  sp::run(client_args("Client 2", address, {"Final message", "shutdown"}),
          {.timeout = kTimeout, .check = true});
  // The server has stopped: all it said after its address.
  std::cout << server.communicate({}, kTimeout).first << std::flush;
  check(server);

  // Nobody listens now: a late client cannot connect (the Python's "couldn't connect").
  const std::string late = failing_client("Client 3", address, key);
  std::cout << "Main process: a client after the shutdown failed: " << late << std::endl;
  std::cout << "Main process: All done!" << std::endl;
  return 0;
} catch (const std::exception& error) {  // the programs still running are killed on the way out
  std::cerr << "echo_three_clients: " << error.what() << "\n";
  return 1;
}
