// ipckit/error.hpp — the exceptions every ipckit call may throw.
//
// Every public failure is an exception derived from ipckit::Error whose message says what
// was attempted, on what (a name, path, address or pid) and why. Outcomes that a caller
// expects — a timeout, an empty poll — are return values, never exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace ipckit {

// The root of every exception ipckit throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A call into the operating system failed. `code()` holds errno; the message names the
// call and its subject: "socketpair(AF_UNIX) for Pipe(): Too many open files".
class OSError : public Error {
 public:
  OSError(std::error_code code, std::string call, std::string subject);
  const std::error_code& code() const noexcept { return code_; }
  const std::string& call() const noexcept { return call_; }
  const std::string& subject() const noexcept { return subject_; }

 private:
  std::error_code code_;
  std::string call_;
  std::string subject_;
};

// A name (of a shared memory segment, a file) does not exist (Python's FileNotFoundError).
class FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
};

// Nothing listens at the address a Client connects to (Python's ConnectionRefusedError).
class ConnectionRefusedError : public OSError {
 public:
  using OSError::OSError;
};

// A name that had to be new is taken (Python's FileExistsError).
class FileExistsError : public OSError {
 public:
  using OSError::OSError;
};

// An argument or the object's state does not allow the call (Python's ValueError):
// a closed connection, a process started twice.
class ValueError : public Error {
 public:
  using Error::Error;
};

// Bytes could not be decoded as the requested type: malformed, truncated, too deep, or a
// value of another type. The message says what was expected, what was found and where
// ("$.items[3]"). When the bytes came from a Connection, `payload()` holds the whole
// message, so nothing is lost.
class DecodeError : public Error {
 public:
  using Error::Error;
  const std::vector<std::byte>& payload() const noexcept { return payload_; }
  void set_payload(std::vector<std::byte> payload) { payload_ = std::move(payload); }

 private:
  std::vector<std::byte> payload_;
};

// A lock's holder died while holding it, and nobody has repaired what it guards since:
// thrown (without the lock held) by every acquire until someone calls the lock's
// recover(). `owner()` is the thread id of the holder that died — its process id when it
// was the process's main thread — or 0 if not known.
class OwnerDied : public Error {
 public:
  OwnerDied(const std::string& what, int owner) : Error(what), owner_(owner) {}
  int owner() const noexcept { return owner_; }

 private:
  int owner_;
};

// A Barrier is broken: aborted, reset while waiting, timed out, its action threw, or one
// of its parties died (Python's threading.BrokenBarrierError).
class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

// The peer of a connection is gone (Python's EOFError): end of stream, or a reset.
class ConnectionClosed : public Error {
 public:
  using Error::Error;
};

// The authentication handshake failed: a wrong key on either side, or a peer that does not
// follow the handshake (docs/formats/handshake.md) — Python's AuthenticationError.
class AuthenticationError : public Error {
 public:
  using Error::Error;
};

// A guard timeout passed where waiting longer would not help: connecting and
// authenticating a Client (Python's TimeoutError). Timed waits that a caller polls with
// return nullopt or false instead.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

// A queue was closed: put after close(), or get once it is closed and empty.
class QueueClosed : public Error {
 public:
  using Error::Error;
};

// The peer broke the wire format: a malformed frame header, an impossible length.
// The connection is no longer readable afterwards.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// A message is larger than the limit that applies to it. Raised before anything of that
// size is allocated.
class MessageTooLarge : public Error {
 public:
  MessageTooLarge(const std::string& what, std::uint64_t size, std::uint64_t limit)
      : Error(what), size_(size), limit_(limit) {}
  std::uint64_t size() const noexcept { return size_; }
  std::uint64_t limit() const noexcept { return limit_; }

 private:
  std::uint64_t size_;
  std::uint64_t limit_;
};

// recv_bytes_into() got a message longer than the buffer (Python's BufferTooShort).
// `message()` holds the whole message, so nothing is lost.
class BufferTooShort : public Error {
 public:
  BufferTooShort(const std::string& what, std::vector<std::byte> message)
      : Error(what), message_(std::move(message)) {}
  const std::vector<std::byte>& message() const noexcept { return message_; }

 private:
  std::vector<std::byte> message_;
};

}  // namespace ipckit
