// The raw socket echo server and client of seeds/000 (§4 Sockets), in one program, with
// ipckit's plain sockets (socket.hpp: bytes as they come, no messages, no handshake).
//
// The server process listens, accepts one connection and sends back whatever it receives
// until the client closes. The client, the main process, connects, sends b'Hello, world',
// prints the echo and closes; then the server sees the end of the stream and ends.
//
// Where the Python is loose, this is strict: the Python's server listens on a fixed port
// that the client must know, and be started after; here the server listens on port 0 (the
// system picks a free port) and sends its address through a Pipe, so the client connects
// once the server listens. The Python's client reads once, but a recv returns what has
// arrived, which may be less than was sent: this client reads until it has all 12 bytes.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"
#include "ipckit/socket.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::string_view kMessage = "Hello, world";

// Bytes as Python prints them: b'Hello, world'.
std::string python_repr(const ipckit::Bytes& data) {
  std::string out = "b'";
  for (const std::byte b : data) {
    const auto c = static_cast<unsigned char>(b);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out + "'";
}

void server_process(ipckit::Connection& address_out) {
  ipckit::ServerSocket server = ipckit::create_server("tcp://127.0.0.1:0");
  std::cout << "Server: Listening on " << server.address() << std::endl;
  address_out.send(server.address());
  address_out.close();

  ipckit::Socket conn = server.accept();
  std::cout << "Server: Connected by " << conn.peer_address() << std::endl;
  for (;;) {
    const ipckit::Bytes data = conn.recv(1024);
    if (data.empty()) break;  // the client closed
    conn.sendall(data);
  }
  std::cout << "Server: The client closed the connection" << std::endl;
}

// True when the whole message came back.
bool client(const std::string& address) {
  ipckit::Socket s = ipckit::create_connection(address, 20s);
  s.sendall(kMessage);
  ipckit::Bytes data;
  while (data.size() < kMessage.size()) {
    const ipckit::Bytes part = s.recv(1024);
    if (part.empty()) break;  // the server closed early
    data.insert(data.end(), part.begin(), part.end());
  }
  s.close();
  std::cout << "Received " << python_repr(data) << std::endl;
  return std::string_view(reinterpret_cast<const char*>(data.data()), data.size()) == kMessage;
}

}  // namespace

int main() {
  auto [address_in, address_out] = ipckit::Pipe(false);
  ipckit::Process server([&] {
    address_in.close();
    server_process(address_out);
  }, "Server");
  server.start();
  address_out.close();  // the server has its own copy: if it dies, recv ends

  bool ok = false;
  try {
    ok = client(address_in.recv<std::string>());
  } catch (const ipckit::Error& e) {
    std::cerr << "Client: " << e.what() << std::endl;
    server.terminate();  // it may still wait for a connection that will not come
  }
  server.join();
  // A server that failed has said why on stderr (ipckit prints an escaping exception).
  if (!ok || server.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
