// The greeting server of seeds/003 (§5 "Sockets"), with ipckit's Listener.
//
//   greeting_server ADDRESS        (tcp://HOST:PORT, unix:///PATH or unix:@NAME)
//
// Listens at ADDRESS, accepts one client, sends it "Thank you for connecting to the
// server!", prints the message the client sends back, closes the connection and ends.
// With IPCKIT_AUTHKEY set in the environment, the client must know that key.
//
// Its first line is "Server listening on ADDRESS", with the port the system picked for
// port 0, so that a program starting it can read where to connect.
//
// Where the Python is loose, this is strict: the Python sends and receives raw bytes on a
// stream, where one send may arrive as two recvs or two sends as one; here each is one
// whole message (Connection framing, as Python's Listener/Client). Like the Python's
// recv(1024), it takes at most 1024 bytes from the client — a longer message is refused
// (MessageTooLarge) rather than cut. A failure is a message on stderr and exit status 1.
#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "ipckit/connection.hpp"
#include "ipckit/error.hpp"

namespace {

constexpr std::size_t kMaxClientMessage = 1024;

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: greeting_server ADDRESS   (tcp://HOST:PORT, unix:///PATH, unix:@NAME;"
                 " a key in IPCKIT_AUTHKEY)\n";
    return 2;
  }
  std::optional<std::string> authkey;
  if (const char* key = std::getenv("IPCKIT_AUTHKEY")) authkey = key;

  ipckit::Listener listener(argv[1], authkey);
  // Flushed (std::endl): a program reading this output needs the address at once.
  std::cout << "Server listening on " << listener.address() << std::endl;

  ipckit::Connection client = listener.accept();
  std::cout << "Got connection from " << listener.last_accepted() << std::endl;
  listener.close();  // one client only, as in the Python

  client.send_bytes("Thank you for connecting to the server!");
  const ipckit::Bytes data = client.recv_bytes(kMaxClientMessage);
  std::cout << "Client sent: " << std::string(reinterpret_cast<const char*>(data.data()), data.size())
            << std::endl;
  client.close();
  return 0;
} catch (const ipckit::Error& error) {
  std::cerr << "greeting_server: " << error.what() << "\n";
  return 1;
}
