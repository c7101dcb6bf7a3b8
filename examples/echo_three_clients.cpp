// The whole scenario of seeds/002 §6 ("Message Passing with multiprocessing.connection")
// in one run: an echo server and its clients, each its own program.
//
// It starts echo_server (next to this program) at tcp://127.0.0.1:0 and reads from the
// server's first line the port it got. All the programs share a random key
// (IPCKIT_AUTHKEY), so every connection is authenticated. Then it runs echo_client:
//   - once with another key, which the server turns away while it goes on serving;
//   - with the seed's messages: clients 0 and 1 together (the server serves both at
//     once), then client 2, which asks the server to shut down;
//   - once more after the server has stopped, which cannot connect (the Python's
//     "couldn't connect to server").
// Each client checks that every reply is its message (echo_client exits with 1
// otherwise). This program relays the server's lines as they come, joins every process,
// and exits with 1 if one of them did not end as it should.
//
// Where the Python is loose, this is strict: the Python sleeps one second hoping the
// server is listening by then, and half a second between clients; here the clients start
// once the server has said where it listens, and client 2 once clients 0 and 1 are done,
// so its "shutdown" cannot cut them short. Nothing waits more than 20 s for the next
// event: a program that hangs is a failure, not a hang.
#include <charconv>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "ipckit/process.hpp"
#include "run_program.hpp"

namespace {

std::string random_key() {
  std::random_device random;
  std::string key;
  for (int i = 0; i < 4; ++i) {
    char digits[8];
    const auto end = std::to_chars(digits, digits + sizeof digits, random(), 16).ptr;
    key.append(digits, end);
  }
  return key;
}

ipckit::Process start_client(int id, const std::string& address, std::vector<std::string> messages) {
  std::vector<std::string> args{"--name", "Client " + std::to_string(id), address};
  args.insert(args.end(), messages.begin(), messages.end());
  ipckit::Process client = run::start("echo_client", std::move(args));
  client.set_name("Client " + std::to_string(id));
  return client;
}

// Runs echo_client as `name` with `key`, expecting it to fail (exit status 1); returns its
// complaint, which goes to a pipe rather than stderr.
std::string failing_client(run::Output& server_output, const std::string& name,
                           const std::string& address, const std::string& key) {
  run::Output output;
  ipckit::Process client =
      run::start("echo_client", {"--name", name, address, "Hello"}, &output, [key] {
        if (::setenv("IPCKIT_AUTHKEY", key.c_str(), 1) != 0) run::fail("setenv");
        if (::dup2(STDOUT_FILENO, STDERR_FILENO) < 0) run::fail("dup2");
      });
  run::relay_until_ended(server_output, {&client});
  std::string complaint;
  for (const std::string& line : output.read_to_end())
    if (line.starts_with("echo_client: ")) complaint = line;
  if (client.exitcode() != 1 || complaint.empty())
    throw std::runtime_error(name + " should have failed saying why, but exited with status " +
                             std::to_string(client.exitcode().value_or(-1)));
  return complaint;
}

}  // namespace

int main() try {
  const std::string key = random_key();
  // The children inherit the environment: the server and the clients share the key.
  if (::setenv("IPCKIT_AUTHKEY", key.c_str(), 1) != 0) run::fail("setenv");

  run::Output server_output;
  ipckit::Process server = run::start("echo_server", {"tcp://127.0.0.1:0"}, &server_output);
  const std::string address = run::read_address(server_output);

  // A client with another key is turned away, and the server goes on.
  const std::string stranger = failing_client(server_output, "Stranger", address, "not the key");
  std::cout << "Main process: a client with the wrong key failed: " << stranger << std::endl;

  ipckit::Process client0 = start_client(0, address, {"Hello", "How are you?", "close"});
  ipckit::Process client1 = start_client(1, address, {"Testing", "Another message", "close"});
  run::relay_until_ended(server_output, {&client0, &client1});
  ipckit::Process client2 = start_client(2, address, {"Final message", "shutdown"});
  run::relay_until_ended(server_output, {&client2});
  bool ok = run::succeeded(client0);
  ok = run::succeeded(client1) && ok;
  ok = run::succeeded(client2) && ok;

  if (!ok) server.terminate();  // a failed client may not have stopped it
  run::relay_until_ended(server_output, {&server});
  for (const std::string& line : server_output.read_to_end()) std::cout << line << std::endl;
  ok = run::succeeded(server) && ok;
  if (!ok) return 1;

  // Nobody listens now: a late client cannot connect (the Python's "couldn't connect").
  const std::string late = failing_client(server_output, "Client 3", address, key);
  std::cout << "Main process: a client after the shutdown failed: " << late << std::endl;
  std::cout << "Main process: All done!" << std::endl;
  return 0;
} catch (const std::exception& error) {  // the daemon children are ended on the way out
  std::cerr << "echo_three_clients: " << error.what() << "\n";
  return 1;
}
