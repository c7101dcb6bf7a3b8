// The "Basic Pipe Example" of seeds/002 (§1 Pipes), with ipckit.
//
// A sender process sends five messages, then None (an empty std::optional) to say that
// nothing more follows, and closes its end. A receiver process waits for each message with
// a one-second poll, prints it, and stops at None, or when the sender's end closes without
// one. The main process joins both and reports a child that failed.
//
// After fork every process holds both ends of the pipe. Each child closes its copy of the
// end it does not use, and the main process closes both once the children run: then the
// sender's end is truly closed when the sender closes it, and the receiver sees end of
// stream instead of waiting for a message that cannot come.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"

using namespace std::chrono_literals;

namespace {

// A message, or None (std::nullopt): no more messages follow.
using Message = std::optional<std::string>;

// Every line is flushed (std::endl) so that the lines of the processes interleave whole.
void sender_process(ipckit::Connection& connection) {
  std::cout << "Sender: Starting to send messages" << std::endl;
  for (int i = 0; i < 5; ++i) {
    const std::string message = "Message " + std::to_string(i);
    connection.send(Message(message));
    std::cout << "Sender: Sent '" << message << "'" << std::endl;
    std::this_thread::sleep_for(5ms);  // simulated work
  }
  connection.send(Message());  // None: the end of the messages
  std::cout << "Sender: Done sending" << std::endl;
  connection.close();
}

void receiver_process(ipckit::Connection& connection) {
  std::cout << "Receiver: Starting to receive" << std::endl;
  try {
    for (;;) {
      if (!connection.poll(1s)) {
        std::cout << "Receiver: No message received in the last second" << std::endl;
        continue;
      }
      const Message message = connection.recv<Message>();
      if (!message) break;
      std::cout << "Receiver: Got '" << *message << "'" << std::endl;
    }
  } catch (const ipckit::ConnectionClosed&) {
    std::cout << "Receiver: The sender closed the connection without None" << std::endl;
  }
  std::cout << "Receiver: Done receiving" << std::endl;
  connection.close();
}

}  // namespace

int main() {
  auto [sender_end, receiver_end] = ipckit::Pipe();

  ipckit::Process sender([&] {
    receiver_end.close();
    sender_process(sender_end);
  }, "Sender");
  ipckit::Process receiver([&] {
    sender_end.close();
    receiver_process(receiver_end);
  }, "Receiver");

  sender.start();
  receiver.start();
  sender_end.close();  // the children have their own copies now
  receiver_end.close();

  sender.join();
  receiver.join();
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (sender.exitcode() != 0 || receiver.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
