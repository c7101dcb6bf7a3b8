// The greeting exchange of seeds/003 (§5 "Sockets") in one run: greeting_server and
// greeting_client, each its own program.
//
// It starts greeting_server (next to this program) at tcp://127.0.0.1:0, reads from the
// server's first line the port it got, runs greeting_client against it, relays the
// server's lines, joins both, and exits with 1 if one of them failed. The Python runs the
// two by hand, the client after the server is up; here the client starts once the server
// has said where it listens. Nothing waits more than 20 s for the next event.
#include <exception>
#include <iostream>
#include <string>

#include "ipckit/process.hpp"
#include "run_program.hpp"

int main() try {
  run::Output server_output;
  ipckit::Process server = run::start("greeting_server", {"tcp://127.0.0.1:0"}, &server_output);
  const std::string address = run::read_address(server_output);

  ipckit::Process client = run::start("greeting_client", {address});
  run::relay_until_ended(server_output, {&client});
  bool ok = run::succeeded(client);
  if (!ok) server.terminate();  // it may still be waiting for a client
  run::relay_until_ended(server_output, {&server});
  for (const std::string& line : server_output.read_to_end()) std::cout << line << std::endl;
  ok = run::succeeded(server) && ok;
  if (!ok) return 1;
  std::cout << "Main process: All done!" << std::endl;
  return 0;
} catch (const std::exception& error) {  // the daemon children are ended on the way out
  std::cerr << "greeting: " << error.what() << "\n";
  return 1;
}
