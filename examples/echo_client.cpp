// The echo client of seeds/002 (§6 "Message Passing with multiprocessing.connection"),
// which also covers the raw socket echo client of seeds/000, with ipckit.
//
//   IPCKIT_AUTHKEY=secret echo_client [--name NAME] ADDRESS MESSAGE...
//
// Connects to the echo server at ADDRESS (echo_server, or a Python Listener doing the
// same), with the key in IPCKIT_AUTHKEY when it is set, sends each MESSAGE and prints the
// reply. "close" and "shutdown" get no reply (the server closes the connection, and on
// "shutdown" stops); either may only be the last MESSAGE. NAME starts each line (default
// "Client").
//
// Where the Python is loose, this is strict:
//   - It checks that every reply is its message, byte for byte.
//   - After "close" or "shutdown" it waits until the server has closed the connection,
//     so that when the client ends, the server has acted on it.
//   - A failure — nothing listening, a wrong key, a server that goes away or answers
//     wrongly — is a message on stderr and exit status 1 (the Python prints that it
//     "couldn't connect" and exits with 0).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/connection.hpp"
#include "ipckit/error.hpp"

using namespace std::chrono_literals;

namespace {

// Connecting and authenticating give up after this (a TCP connect to a host that does not
// answer would otherwise take minutes).
constexpr auto kConnectTimeout = 10s;

bool ends_connection(std::string_view message) { return message == "close" || message == "shutdown"; }

std::string_view text(const ipckit::Bytes& message) {
  return {reinterpret_cast<const char*>(message.data()), message.size()};
}

int usage() {
  std::cerr << "usage: echo_client [--name NAME] ADDRESS MESSAGE...   (the key in IPCKIT_AUTHKEY;"
               " \"close\" or \"shutdown\" only last)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string name = "Client";
  if (args.size() >= 2 && args[0] == "--name") {
    name = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.size() < 2) return usage();
  const std::string address = args[0];
  const std::vector<std::string> messages(args.begin() + 1, args.end());
  for (std::size_t i = 0; i + 1 < messages.size(); ++i)
    if (ends_connection(messages[i])) return usage();
  std::optional<std::string> authkey;
  if (const char* key = std::getenv("IPCKIT_AUTHKEY")) authkey = key;

  // Every line is flushed (std::endl) so that the lines of several clients interleave whole.
  std::cout << name << " connecting to " << address << std::endl;
  try {
    ipckit::Connection connection = ipckit::Client(address, authkey, kConnectTimeout);
    std::cout << name << " connected" << std::endl;

    for (const std::string& message : messages) {
      connection.send_bytes(message);
      std::cout << name << " sent: " << message << std::endl;
      if (ends_connection(message)) {
        try {  // no reply comes: the server closes the connection
          const ipckit::Bytes unexpected = connection.recv_bytes();
          std::cerr << "echo_client: " << name << ": the server answered '" << message << "' with '"
                    << text(unexpected) << "' instead of closing the connection\n";
          return 1;
        } catch (const ipckit::ConnectionClosed&) {
          std::cout << name << ": the server closed the connection" << std::endl;
        }
        break;
      }
      const ipckit::Bytes reply = connection.recv_bytes();
      std::cout << name << " received: " << text(reply) << std::endl;
      if (text(reply) != message) {
        std::cerr << "echo_client: " << name << ": the server echoed '" << message << "' as '"
                  << text(reply) << "'\n";
        return 1;
      }
    }
  } catch (const ipckit::ConnectionRefusedError& error) {
    std::cerr << "echo_client: " << name << " couldn't connect: nothing listens at " << address << " ("
              << error.what() << ")\n";
    return 1;
  } catch (const ipckit::FileNotFoundError& error) {  // a unix:///PATH that does not exist
    std::cerr << "echo_client: " << name << " couldn't connect: nothing listens at " << address << " ("
              << error.what() << ")\n";
    return 1;
  } catch (const ipckit::AuthenticationError& error) {
    std::cerr << "echo_client: " << name << ": authentication with " << address
              << " failed (is IPCKIT_AUTHKEY the server's key?): " << error.what() << "\n";
    return 1;
  } catch (const ipckit::ConnectionClosed& error) {
    std::cerr << "echo_client: " << name << ": the server closed the connection: " << error.what()
              << "\n";
    return 1;
  } catch (const ipckit::Error& error) {
    std::cerr << "echo_client: " << name << ": " << error.what() << "\n";
    return 1;
  }
  std::cout << name << " finished" << std::endl;
}
