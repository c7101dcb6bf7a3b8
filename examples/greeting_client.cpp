// The greeting client of seeds/003 (§5 "Sockets"), with ipckit's Client.
//
//   greeting_client ADDRESS
//
// Connects to greeting_server at ADDRESS (with the key in IPCKIT_AUTHKEY when it is set),
// prints the server's welcome, answers "Hello from the client!" and closes the
// connection. A failure — nothing listening, a wrong key, a server that hangs up — is a
// message on stderr and exit status 1.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "ipckit/connection.hpp"
#include "ipckit/error.hpp"

using namespace std::chrono_literals;

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: greeting_client ADDRESS   (a key in IPCKIT_AUTHKEY)\n";
    return 2;
  }
  std::optional<std::string> authkey;
  if (const char* key = std::getenv("IPCKIT_AUTHKEY")) authkey = key;

  // Connecting and authenticating give up after 10 s rather than as late as the kernel.
  ipckit::Connection server = ipckit::Client(argv[1], authkey, 10s);
  const ipckit::Bytes message = server.recv_bytes();
  std::cout << "Server says: " << std::string(reinterpret_cast<const char*>(message.data()), message.size())
            << std::endl;
  server.send_bytes("Hello from the client!");
  server.close();
  return 0;
} catch (const ipckit::Error& error) {
  std::cerr << "greeting_client: " << error.what() << "\n";
  return 1;
}
