// The greeting exchange of seeds/003 (§5 "Sockets") in one run: greeting_server and
// greeting_client, each its own program, started with subprocess::Popen and run().
//
// It starts greeting_server (next to this program) at tcp://127.0.0.1:0 with its stdout a
// pipe, reads from the server's first line the port it got, runs greeting_client against
// it, then reads the rest of the server's lines as it ends, and exits with 1 if either
// failed. The Python runs the two by hand, the client after the server is up; here the
// client starts once the server has said where it listens. Nothing waits more than 20 s.
#include <chrono>
#include <exception>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

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

}  // namespace

int main() try {
  Program server({next_to_me("greeting_server"), "tcp://127.0.0.1:0"}, {.out = sp::PIPE});
  const std::string address = read_address(server);
  sp::run({next_to_me("greeting_client"), address}, {.timeout = kTimeout, .check = true});
  // The server ends after its one client: its other lines.
  std::cout << server.communicate({}, kTimeout).first << std::flush;
  if (const int code = *server.returncode(); code != 0)
    throw sp::CalledProcessError(server.args(), code, {}, {});
  std::cout << "Main process: All done!" << std::endl;
  return 0;
} catch (const std::exception& error) {  // a server still running is killed on the way out
  std::cerr << "greeting: " << error.what() << "\n";
  return 1;
}
