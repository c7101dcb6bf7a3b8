// The echo server of seeds/002 (§6 "Message Passing with multiprocessing.connection"),
// which also covers the raw socket echo server of seeds/000, with ipckit.
//
//   IPCKIT_AUTHKEY=secret echo_server tcp://127.0.0.1:0
//
// Listens at ADDRESS (tcp://HOST:PORT, unix:///PATH or unix:@NAME) and sends every message
// a client sends straight back, byte for byte. The message "close" makes the server close
// that client's connection; "shutdown" makes it close every connection and stop. Clients
// must know the key in the environment variable IPCKIT_AUTHKEY when it is set (without it
// anybody who can reach the address may connect). Python's Client(address, authkey=...)
// talks to it with send_bytes/recv_bytes.
//
// Its first line is "Server: listening on ADDRESS", with the port the system picked for
// port 0, so that a program starting it can read where to connect. Then one line per event.
//
// Where the Python is loose, this is strict:
//   - It serves every client at once: wait() watches the Listener and each open
//     Connection, and the server only reads what is already there (accept(0s),
//     recv_bytes(0s)), so a slow client, or one that stops half-way through its handshake
//     or a message, does not hold up the others. The Python serves one client at a time,
//     and its poll-then-recv blocks on a half-sent message. (Replies are still sent with
//     a blocking send_bytes: a client that sends far more than it reads stalls the server
//     once the socket buffers are full; a server for untrusted clients would queue them.)
//   - A client that disappears, sends more than the limit, or breaks the framing is
//     dropped with a line saying why; the server goes on serving the others.
//   - Failing to listen (an address in use, a bad address), or any other failure of the
//     server itself, is a message on stderr and exit status 1.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/connection.hpp"
#include "ipckit/error.hpp"
#include "ipckit/wait.hpp"

using namespace std::chrono_literals;

namespace {

// Nobody can make the server hold more than this for one message.
constexpr std::size_t kMaxMessageSize = std::size_t{1} << 20;

std::string_view text(const ipckit::Bytes& message) {
  return {reinterpret_cast<const char*>(message.data()), message.size()};
}

// The connections being served, by number (in the order they were accepted).
using Clients = std::map<int, ipckit::Connection>;

enum class Next { Serve, Close, Shutdown };

// Handles what client `id` sent, if a whole message is there. Every line is flushed
// (std::endl) so that a program reading the server's output sees each event at once.
Next serve(int id, ipckit::Connection& connection) {
  const std::optional<ipckit::Bytes> message = connection.recv_bytes(0s);
  if (!message) return Next::Serve;  // only part of one so far: the rest comes later
  const std::string_view msg = text(*message);
  if (msg == "close") {
    std::cout << "Server: connection " << id << " asked to close, closing it" << std::endl;
    return Next::Close;
  }
  if (msg == "shutdown") {
    std::cout << "Server: connection " << id << " asked to shut down, shutting down" << std::endl;
    return Next::Shutdown;
  }
  std::cout << "Server: connection " << id << " received '" << msg << "', echoing back" << std::endl;
  connection.send_bytes(*message);
  return Next::Serve;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: echo_server ADDRESS   (tcp://HOST:PORT, unix:///PATH, unix:@NAME;"
                 " the key in IPCKIT_AUTHKEY)\n";
    return 2;
  }
  std::optional<std::string> authkey;
  if (const char* key = std::getenv("IPCKIT_AUTHKEY")) authkey = key;

  ipckit::ListenerOptions options;
  options.connection.max_message_size = kMaxMessageSize;
  options.on_reject = [](const ipckit::Error& why) {
    std::cout << "Server: turned a peer away: " << why.what() << std::endl;
  };
  ipckit::Listener listener(argv[1], authkey, std::move(options));
  std::cout << "Server: listening on " << listener.address() << std::endl;

  Clients clients;
  int accepted = 0;
  bool running = true;
  while (running) {
    std::vector<ipckit::Waitable> watched{listener};
    for (const auto& [id, connection] : clients) watched.emplace_back(connection);
    const std::vector<ipckit::Waitable> ready = ipckit::wait(watched);
    const auto is_ready = [&](const ipckit::Waitable& object) {
      return std::find(ready.begin(), ready.end(), object) != ready.end();
    };

    if (is_ready(listener)) {
      // nullopt when the peer has not finished its handshake yet (or was turned away).
      if (std::optional<ipckit::Connection> connection = listener.accept(0s)) {
        const int id = ++accepted;
        std::cout << "Server: connection " << id << " accepted from " << listener.last_accepted()
                  << std::endl;
        clients.emplace(id, std::move(*connection));
      }
    }

    for (auto it = clients.begin(); running && it != clients.end();) {
      auto& [id, connection] = *it;
      Next next = Next::Serve;
      if (is_ready(connection)) {
        try {
          next = serve(id, connection);
        } catch (const ipckit::ConnectionClosed&) {
          std::cout << "Server: connection " << id << " was closed by the client" << std::endl;
          next = Next::Close;
        } catch (const ipckit::Error& error) {  // over the limit, broken framing, a reset
          std::cout << "Server: connection " << id << " dropped: " << error.what() << std::endl;
          next = Next::Close;
        }
      }
      if (next == Next::Shutdown) running = false;
      it = next == Next::Close ? clients.erase(it) : std::next(it);  // erasing closes it
    }
  }

  std::cout << "Server: closing " << clients.size() << " open connection(s) and the listener"
            << std::endl;
  clients.clear();
  listener.close();
  std::cout << "Server: stopped" << std::endl;
  return 0;
} catch (const ipckit::Error& error) {
  std::cerr << "echo_server: " << error.what() << "\n";
  return 1;
}
