// transport/stream_channel.hpp — whole messages over a stream fd, framed as Python's
// multiprocessing.connection frames them. Byte layout: docs/formats/framing.md.
//
// A frame is a 4-byte big-endian signed length followed by that many payload bytes; a
// payload longer than 2^31-1 bytes is announced by the length -1 followed by an 8-byte
// big-endian unsigned length.
//
// StreamChannel is not synchronised: Connection holds one lock per direction around it.
// Sending and receiving may run at the same time on two threads (they share only the fd).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sys/deadline.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

namespace ipckit::transport {

inline constexpr std::uint64_t kMaxShortFrame = 0x7fffffff;  // larger: the -1 escape
inline constexpr std::size_t kShortHeaderSize = 4;
inline constexpr std::size_t kLongHeaderSize = 12;

using FrameHeader = std::array<std::byte, kLongHeaderSize>;
// Writes the header for a payload of `size` bytes; returns how many header bytes it used.
std::size_t encode_frame_header(std::uint64_t size, FrameHeader& out) noexcept;

// What the first bytes of a stream announce.
struct ParsedHeader {
  enum class Status { NeedMore, Ok, Invalid } status = Status::NeedMore;
  std::size_t header_size = 0;
  std::uint64_t payload_size = 0;
};
// Parses the header at the start of `bytes`. Invalid: a negative length other than -1.
ParsedHeader parse_frame_header(std::span<const std::byte> bytes) noexcept;

class StreamChannel {
 public:
  // `subject` names the channel in error messages ("Connection fd 7").
  StreamChannel(sys::UniqueFd fd, std::string subject);

  int fd() const noexcept { return fd_.get(); }
  bool is_socket() const noexcept { return socket_; }
  const std::string& subject() const noexcept { return subject_; }
  void set_subject(std::string subject) { subject_ = std::move(subject); }
  // Closes the fd; the channel is then unusable.
  void close() noexcept { fd_.reset(); }

  // Sends one frame whose payload is the concatenation of `parts`, blocking until all of
  // it is written. Throws ConnectionClosed when the peer is gone, OSError otherwise.
  void send(std::span<const sys::ConstBytes> parts);

  // Receives the next frame. Returns nullopt when the deadline passes first; whatever was
  // read stays buffered for the next call. The returned span stays valid until the next
  // call to recv() or take_payload(). Throws MessageTooLarge (before allocating) for a
  // payload above `max_size`, ConnectionClosed at end of stream, OSError otherwise.
  // `direct`: where a blocking call (deadline never) wants a payload too big for the
  // receive buffer; if it fits there, it is read straight in and the span points into it.
  std::optional<std::span<const std::byte>> recv(const sys::Deadline& deadline,
                                                 std::uint64_t max_size,
                                                 std::span<std::byte> direct = {});
  // The payload recv() just returned, as an owned vector (moved, not copied, when large).
  std::vector<std::byte> take_payload(std::span<const std::byte> payload);

  // Passing fds over a Unix socket (docs/formats/framing.md, "Handles"): one byte, 0x01,
  // carrying the fd. send_handle throws ValueError on a channel that is not a Unix
  // socket. recv_handle blocks until the handle arrives; ProtocolError (nothing taken)
  // when a message is next instead.
  void send_handle(int fd);
  sys::UniqueFd recv_handle();
  // Before the owner blocks for input on this channel (a TCP socket's pending output goes).
  void before_waiting() const noexcept;

  // A handle is the next thing to take.
  bool handle_next() noexcept { return !fds_.empty() && handle_is_next(); }

  // A whole frame (or a handle) is already buffered (readable from any thread).
  bool has_buffered_frame() const noexcept { return buffered_frame_.load(std::memory_order_acquire); }
  // Some bytes are buffered but not yet a whole frame.
  bool has_partial_frame() const noexcept { return end_ > begin_ || large_filled_ > 0; }

 private:
  // Reads once into the buffer's free space (or into `large_`). False on timeout.
  bool fill(std::span<std::byte> into, std::size_t& got, const sys::Deadline& deadline);
  void update_buffered_flag() noexcept;
  // The stream offset of the first byte not yet taken (between frames).
  std::uint64_t next_offset() const noexcept { return received_ - (end_ - begin_); }
  // Closes fds that arrived with bytes already taken; whether a handle is next.
  bool handle_is_next() noexcept;

  sys::UniqueFd fd_;
  bool socket_;
  bool unix_socket_;  // reads take fds that arrive (recvmsg), so that none is lost
  bool tcp_;          // Nagle's algorithm is on: flush before blocking (sys::before_waiting_for_input)
  std::string subject_;

  // Receive buffer: bytes [begin_, end_) are read but not yet returned.
  std::vector<std::byte> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  // A frame too big for buffer_ is read straight into large_; its header is consumed.
  std::vector<std::byte> large_;
  std::uint64_t large_expected_ = 0;  // the frame's payload size
  std::size_t large_filled_ = 0;
  bool large_pending_ = false;
  std::atomic<bool> buffered_frame_{false};

  // Fds received, each with the stream offset of the byte that carried it.
  struct ReceivedFd {
    std::uint64_t offset;
    sys::UniqueFd fd;
  };
  std::deque<ReceivedFd> fds_;
  std::uint64_t received_ = 0;  // bytes read from the fd so far
};

}  // namespace ipckit::transport
