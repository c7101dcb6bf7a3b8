// The "Custom Communication Protocol" of seeds/002 (§10), with ipckit.
//
// A client and a server process talk over one Pipe. Every message is a Message struct
// (type, id, timestamp, action, data), which IPCKIT_CODABLE sends through the codec as a
// MessagePack map: no hand-written serialize/deserialize. The server answers each request
// from its small users/products "database" with a response or an error; a request id it
// has already seen gets a duplicate warning instead (requests are idempotent); an unknown
// action gets an error. The client waits up to five seconds for each answer and prints it.
// The last request is a shutdown, which the server acknowledges before both sides close.
//
// Where the Python is loose, this is strict: the server blocks in recv() instead of
// polling, a client that vanishes ends the server with an error instead of leaving it
// polling for ever, and a client that gets no answer in time stops (and fails) instead
// of sending on and mistaking a late answer for the next one.
#include <chrono>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipckit/codec.hpp"
#include "ipckit/connection.hpp"
#include "ipckit/process.hpp"

using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------- the protocol

// On the wire a Type is its number, 0 to 3; name() gives the word the Python sends.
enum class Type { Request, Response, Notification, Error };

std::string_view name(Type type) {
  switch (type) {
    case Type::Request: return "request";
    case Type::Response: return "response";
    case Type::Notification: return "notification";
    case Type::Error: return "error";
  }
  return "unknown";  // a number that names no Type (the codec does not check enums)
}

using Data = std::map<std::string, std::string>;

struct Message {
  Type type = Type::Request;
  std::string id;
  double timestamp = 0;  // seconds since the epoch, as Python's time.time()
  std::string action;
  Data data;
  IPCKIT_CODABLE(type, id, timestamp, action, data)
};

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Message create_message(Type type, std::string id, std::string action, Data data = {}) {
  return Message{type, std::move(id), now(), std::move(action), std::move(data)};
}

// {'email': 'bob@example.com', 'name': 'Bob'}, as Python prints a dict.
std::string repr(const Data& data) {
  std::string out = "{";
  for (const auto& [key, value] : data) {
    if (out.size() > 1) out += ", ";
    out += "'" + key + "': '" + value + "'";
  }
  return out + "}";
}

// ---------------------------------------------------------------------- the server

using Table = std::map<std::string, Data>;

// The answer to get_user / get_product: the record whose id is data[key], or an error.
Message look_up(const Message& request, const Table& table, const std::string& key,
                const std::string& what) {
  const auto id = request.data.find(key);
  if (id != request.data.end()) {
    if (const auto record = table.find(id->second); record != table.end())
      return create_message(Type::Response, "resp-" + request.id, what + "_data", record->second);
  }
  return create_message(Type::Error, "err-" + request.id, what + "_not_found", request.data);
}

void server_process(ipckit::Connection& connection) {
  std::cout << "Server: Started" << std::endl;
  const Table users = {
      {"1", {{"name", "Alice"}, {"email", "alice@example.com"}}},
      {"2", {{"name", "Bob"}, {"email", "bob@example.com"}}},
      {"3", {{"name", "Charlie"}, {"email", "charlie@example.com"}}},
  };
  const Table products = {
      {"101", {{"name", "Laptop"}, {"price", "999.99"}}},
      {"102", {{"name", "Phone"}, {"price", "499.99"}}},
      {"103", {{"name", "Tablet"}, {"price", "299.99"}}},
  };
  std::set<std::string> processed_ids;

  for (;;) {
    // Blocks until the next request. ConnectionClosed (the client vanished without a
    // shutdown) escapes: the server ends with an error that the main process reports.
    const auto message = connection.recv<Message>();
    std::cout << "Server: Received " << name(message.type) << " - " << message.action << std::endl;

    if (!processed_ids.insert(message.id).second) {
      connection.send(create_message(Type::Notification, "dup-" + message.id, "duplicate_warning",
                                     {{"original_id", message.id}}));
      continue;
    }
    if (message.action == "get_user") {
      connection.send(look_up(message, users, "user_id", "user"));
    } else if (message.action == "get_product") {
      connection.send(look_up(message, products, "product_id", "product"));
    } else if (message.action == "shutdown") {
      connection.send(create_message(Type::Response, "resp-" + message.id, "shutdown_acknowledged",
                                     {{"shutdown_time", std::to_string(now())}}));
      std::cout << "Server: Shutting down" << std::endl;
      break;
    } else {
      connection.send(create_message(Type::Error, "err-" + message.id, "unknown_action",
                                     {{"action", message.action}}));
    }
  }
  connection.close();
  std::cout << "Server: Stopped" << std::endl;
}

// ---------------------------------------------------------------------- the client

void client_process(ipckit::Connection& connection) {
  std::cout << "Client: Started" << std::endl;
  std::mt19937 random(2250);  // seeded: the same request ids on every run
  auto random_id = [&] {
    return "req-" + std::to_string(std::uniform_int_distribution(1000, 9999)(random));
  };
  const std::vector<Message> requests = {
      create_message(Type::Request, random_id(), "get_user", {{"user_id", "2"}}),
      create_message(Type::Request, random_id(), "get_user", {{"user_id", "99"}}),
      create_message(Type::Request, random_id(), "get_product", {{"product_id", "101"}}),
      create_message(Type::Request, "req-duplicate", "get_product", {{"product_id", "103"}}),
      create_message(Type::Request, "req-duplicate", "get_product", {{"product_id", "103"}}),
      create_message(Type::Request, random_id(), "invalid_action"),
      create_message(Type::Request, random_id(), "shutdown"),
  };

  for (const Message& request : requests) {
    std::cout << "Client: Sending " << request.action << " request" << std::endl;
    connection.send(request);

    const std::optional<Message> response = connection.recv<Message>(5s);
    if (!response) throw std::runtime_error("Client: No response received for " + request.action);
    std::cout << "Client: Received " << name(response->type) << " - " << response->action << std::endl;
    switch (response->type) {
      case Type::Response:
        std::cout << "  Success: " << repr(response->data) << std::endl;
        break;
      case Type::Error:
        std::cout << "  Error: " << response->action << " - " << repr(response->data) << std::endl;
        break;
      case Type::Notification:
        std::cout << "  Notification: " << response->action << " - " << repr(response->data) << std::endl;
        break;
      case Type::Request:  // not an answer, nor is a number that names no Type
      default:
        throw std::runtime_error("Client: Received a " + std::string(name(response->type)) +
                                 " message as the answer to " + request.id);
    }
  }
  connection.close();
  std::cout << "Client: Stopped" << std::endl;
}

}  // namespace

int main() {
  auto [client_end, server_end] = ipckit::Pipe();

  ipckit::Process server([&] {
    client_end.close();
    server_process(server_end);
  }, "Server");
  server.start();

  ipckit::Process client([&] {
    server_end.close();
    client_process(client_end);
  }, "Client");
  client.start();

  client_end.close();  // the children have their own copies now
  server_end.close();

  client.join();
  server.join();
  // A child that failed has said why on stderr (ipckit prints an escaping exception).
  if (client.exitcode() != 0 || server.exitcode() != 0) return 1;
  std::cout << "Main process: All done!" << std::endl;
}
