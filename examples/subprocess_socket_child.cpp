// The socket example of seeds/004 ("sub process", Sockets): a socket made in this process
// and handed to a child program, which serves on it.
//
// This program is both sides. Run without arguments it is the parent: it makes a socket
// pair (Pipe(duplex, shared_memory = false): two connected Unix sockets carrying Python's
// framing, which any program can use), starts itself again as the child with one end open
// under the same number (pass_fds) and that number in its arguments, and closes its own
// copy of that end. It sends requests and prints the answers, then closes its end: the
// child sees the end of the stream, stops serving and exits with 0, which the parent
// checks. Run as `subprocess_socket_child serve FD` it is the child: a Connection on the
// socket FD, answering each request (a string) with it in capitals.
//
// No wait is unbounded: an answer or the child's exit that takes over 20 s is an error,
// and the parent then kills the child (Popen's destructor would wait for it).
#include <cctype>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ipckit/connection.hpp"
#include "ipckit/subprocess.hpp"

namespace sp = ipckit::subprocess;
using namespace std::chrono_literals;

namespace {

int serve(int fd) {
  ipckit::Connection parent(fd, /*readable=*/true, /*writable=*/true);
  std::cout << "Child: serving on the socket it was given" << std::endl;
  try {
    for (;;) {
      std::string request = parent.recv<std::string>();
      for (char& c : request) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      parent.send(request);
    }
  } catch (const ipckit::ConnectionClosed&) {
    std::cout << "Child: the parent closed the socket, exiting" << std::endl;
  }
  return 0;
}

int parent() {
  auto [parent_end, child_end] = ipckit::Pipe(true, {.shared_memory = false});
  const int fd = child_end.fileno();
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  sp::Popen child({self, "serve", std::to_string(fd)}, {.pass_fds = {fd}});
  child_end.close();  // the child has its own copy
  try {
    for (const std::string request : {"hello", "how are you?", "goodbye"}) {
      parent_end.send(request);
      const std::optional<std::string> answer = parent_end.recv<std::string>(20s);
      if (!answer) throw std::runtime_error("the child has not answered within 20 s");
      std::cout << "Parent: sent '" << request << "', got '" << *answer << "'" << std::endl;
    }
    parent_end.close();  // the end of the child's stream
    const int code = child.wait(20s);
    std::cout << "Parent: the child exited with " << code << std::endl;
    return code == 0 ? 0 : 1;
  } catch (...) {
    child.kill();
    throw;
  }
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc == 3 && std::string_view(argv[1]) == "serve") return serve(std::stoi(argv[2]));
  return parent();
} catch (const std::exception& error) {
  std::cerr << "subprocess_socket_child" << (argc == 3 ? " (child)" : "") << ": " << error.what() << "\n";
  return 1;
}
