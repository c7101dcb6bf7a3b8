#include "transport/stream_channel.hpp"

#include <algorithm>
#include <cstring>

#include "ipckit/error.hpp"
#include "sys/socket.hpp"

namespace ipckit::transport {
namespace {

// Big enough that a burst of small messages arrives in one read, small enough to stay in
// cache. Frames that do not fit are read straight into their own vector.
constexpr std::size_t kBufferSize = 64 * 1024;
constexpr std::size_t kLargeStep = std::size_t{16} << 20;  // first allocation for a big frame
constexpr std::size_t kMaxSendParts = 7;  // plus the header: sys::write_some takes 8
constexpr std::size_t kCoalesceLimit = 4096;  // payloads up to this are copied behind the header

void store_be(std::byte* out, std::uint64_t value, int bytes) noexcept {
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<std::byte>(value & 0xff);
    value >>= 8;
  }
}

std::uint64_t load_be(const std::byte* in, int bytes) noexcept {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | std::to_integer<std::uint64_t>(in[i]);
  return value;
}

}  // namespace

std::size_t encode_frame_header(std::uint64_t size, FrameHeader& out) noexcept {
  if (size <= kMaxShortFrame) {
    store_be(out.data(), size, 4);
    return kShortHeaderSize;
  }
  store_be(out.data(), 0xffffffff, 4);  // -1 as a 32-bit signed length
  store_be(out.data() + 4, size, 8);
  return kLongHeaderSize;
}

ParsedHeader parse_frame_header(std::span<const std::byte> bytes) noexcept {
  using Status = ParsedHeader::Status;
  if (bytes.size() < kShortHeaderSize) return {Status::NeedMore, kShortHeaderSize, 0};
  const auto first = static_cast<std::int32_t>(static_cast<std::uint32_t>(load_be(bytes.data(), 4)));
  if (first >= 0) return {Status::Ok, kShortHeaderSize, static_cast<std::uint64_t>(first)};
  if (first != -1) return {Status::Invalid, kShortHeaderSize, 0};
  if (bytes.size() < kLongHeaderSize) return {Status::NeedMore, kLongHeaderSize, 0};
  return {Status::Ok, kLongHeaderSize, load_be(bytes.data() + 4, 8)};
}

StreamChannel::StreamChannel(sys::UniqueFd fd, std::string subject)
    : fd_(std::move(fd)),
      socket_(sys::is_socket(fd_.get())),
      unix_socket_(socket_ && sys::is_unix_socket(fd_.get())),
      tcp_(socket_ && !unix_socket_ && sys::is_tcp_socket(fd_.get())),
      subject_(std::move(subject)) {}

void StreamChannel::before_waiting() const noexcept {
  if (tcp_) sys::before_waiting_for_input(fd_.get());
}

bool StreamChannel::handle_is_next() noexcept {
  const std::uint64_t next = next_offset();
  // An fd whose byte was taken as part of a message came from a peer that broke the
  // protocol: close it rather than keep it.
  while (!fds_.empty() && fds_.front().offset < next) fds_.pop_front();
  return !fds_.empty() && !large_pending_ && fds_.front().offset == next && begin_ < end_;
}

void StreamChannel::send_handle(int fd) {
  if (!unix_socket_) throw ValueError("send_handle on " + subject_ + ": handles travel only over Unix sockets");
  const auto r = sys::send_fd(fd_.get(), std::byte{1}, fd);
  if (r.ok()) return;
  if (sys::is_peer_gone(r.error)) throw ConnectionClosed("send_handle on " + subject_ + ": the peer has closed the connection");
  sys::throw_os_error(r.error, "sendmsg(SCM_RIGHTS) of fd " + std::to_string(fd), subject_);
}

sys::UniqueFd StreamChannel::recv_handle() {
  if (!unix_socket_) throw ValueError("recv_handle on " + subject_ + ": handles travel only over Unix sockets");
  if (buffer_.empty()) buffer_.resize(kBufferSize);
  while (!handle_is_next()) {
    if (begin_ < end_ || large_pending_)
      throw ProtocolError("recv_handle on " + subject_ + ": a message is next, not a handle (take it with recv)");
    begin_ = end_ = 0;
    std::size_t got = 0;
    fill(std::span(buffer_), got, sys::Deadline::never());
    end_ = got;
  }
  sys::UniqueFd fd = std::move(fds_.front().fd);
  fds_.pop_front();
  ++begin_;  // the byte that carried it
  update_buffered_flag();
  return fd;
}

void StreamChannel::send(std::span<const sys::ConstBytes> parts) {
  if (parts.size() > kMaxSendParts) throw ValueError("too many parts in one message on " + subject_);
  std::uint64_t total = 0;
  for (const auto& part : parts) total += part.size();
  FrameHeader header;
  const std::size_t header_size = encode_frame_header(total, header);

  std::array<sys::ConstBytes, kMaxSendParts + 1> pending;
  std::size_t count = 0;
  // A small message is copied behind its header and sent as one buffer (one send(), no
  // iovec); a large one goes out as header + parts in one sendmsg, without a copy.
  std::array<std::byte, kLongHeaderSize + kCoalesceLimit> joined;
  if (total <= kCoalesceLimit) {
    std::memcpy(joined.data(), header.data(), header_size);
    std::size_t at = header_size;
    for (const auto& part : parts) {
      if (part.empty()) continue;  // memcpy from an empty span's data() may be null
      std::memcpy(joined.data() + at, part.data(), part.size());
      at += part.size();
    }
    pending[count++] = std::span<const std::byte>(joined).first(at);
  } else {
    pending[count++] = std::span<const std::byte>(header).first(header_size);
    for (const auto& part : parts)
      if (!part.empty()) pending[count++] = part;
  }

  // One writev/sendmsg for header and payload; loop only on a partial write.
  std::size_t next = 0;
  while (next < count) {
    const auto r = sys::write_some(fd_.get(), std::span(pending).subspan(next, count - next), socket_);
    if (!r.ok()) {
      if (sys::is_would_block(r.error)) {  // the application made the fd non-blocking
        sys::wait_writable(fd_.get(), sys::Deadline::never());
        continue;
      }
      if (sys::is_peer_gone(r.error))
        throw ConnectionClosed("send on " + subject_ + ": the peer has closed the connection");
      sys::throw_os_error(r.error, "send", subject_);
    }
    std::size_t written = r.bytes;
    while (written > 0) {
      if (written >= pending[next].size()) {
        written -= pending[next].size();
        ++next;
      } else {
        pending[next] = pending[next].subspan(written);
        written = 0;
      }
    }
  }
}

bool StreamChannel::fill(std::span<std::byte> into, std::size_t& got, const sys::Deadline& deadline) {
  constexpr std::size_t kMaxHeldFds = 64;  // beyond this, a peer is flooding us with fds
  before_waiting();
  for (;;) {
    if (!deadline.is_never() && !sys::wait_readable(fd_.get(), deadline)) return false;
    sys::IoResult r;
    if (unix_socket_) {
      // The kernel ends a read after the byte that carries fds: they belong to its last byte.
      std::vector<sys::UniqueFd> fds;
      r = sys::read_some_with_fds(fd_.get(), into, fds);
      for (auto& fd : fds)
        if (r.ok() && r.bytes > 0 && fds_.size() < kMaxHeldFds) fds_.push_back({received_ + r.bytes - 1, std::move(fd)});
    } else {
      r = sys::read_some(fd_.get(), into);
    }
    if (r.ok()) {
      received_ += r.bytes;
      if (r.bytes == 0) {
        throw ConnectionClosed(has_partial_frame()
                                   ? "recv on " + subject_ + ": the peer closed the connection in the middle of a message"
                                   : "recv on " + subject_ + ": the peer has closed the connection");
      }
      got = r.bytes;
      return true;
    }
    if (sys::is_would_block(r.error)) {  // a non-blocking fd: wait as a blocking read would
      if (!sys::wait_readable(fd_.get(), deadline)) return false;
      continue;
    }
    if (sys::is_peer_gone(r.error))
      throw ConnectionClosed("recv on " + subject_ + ": the connection was reset by the peer");
    sys::throw_os_error(r.error, "recv", subject_);
  }
}

std::optional<std::span<const std::byte>> StreamChannel::recv(const sys::Deadline& deadline,
                                                              std::uint64_t max_size,
                                                              std::span<std::byte> direct) {
  if (buffer_.empty()) buffer_.resize(kBufferSize);
  while (!large_pending_) {
    if (handle_next())
      throw ProtocolError("recv on " + subject_ + ": a handle is next, not a message (take it with recv_handle)");
    const auto available = std::span<const std::byte>(buffer_).subspan(begin_, end_ - begin_);
    const ParsedHeader header = parse_frame_header(available);
    if (header.status == ParsedHeader::Status::Invalid) {
      throw ProtocolError("recv on " + subject_ + ": malformed frame header (negative length " +
                          std::to_string(static_cast<std::int32_t>(load_be(available.data(), 4))) + ")");
    }
    if (header.status == ParsedHeader::Status::Ok) {
      if (header.payload_size > max_size) {
        throw MessageTooLarge("recv on " + subject_ + ": incoming message of " +
                                  std::to_string(header.payload_size) + " bytes exceeds the limit of " +
                                  std::to_string(max_size) + " bytes",
                              header.payload_size, max_size);
      }
      if (header.payload_size <= buffer_.size() - header.header_size) {
        const std::size_t total = header.header_size + header.payload_size;
        if (available.size() >= total) {
          begin_ += total;
          update_buffered_flag();
          return available.subspan(header.header_size, header.payload_size);
        }
      } else {
        // Too big for the buffer: move in what is buffered, and read the rest straight
        // into the caller's buffer (a blocking call that brought one big enough: nothing
        // can interrupt it) or into a vector of its own. The vector grows as bytes
        // arrive, so a peer that announces much and sends little does not get memory it
        // never fills.
        const std::size_t have = std::min<std::size_t>(available.size() - header.header_size,
                                                       header.payload_size);
        if (deadline.is_never() && direct.size() >= header.payload_size) {
          const auto into = direct.first(header.payload_size);
          std::memcpy(into.data(), available.data() + header.header_size, have);
          begin_ += header.header_size + have;
          for (std::size_t filled = have; filled < into.size();) {
            std::size_t got = 0;
            fill(into.subspan(filled), got, deadline);
            filled += got;
          }
          if (begin_ == end_) begin_ = end_ = 0;
          update_buffered_flag();
          return into;
        }
        large_expected_ = header.payload_size;
        large_.resize(std::min<std::uint64_t>(large_expected_, kLargeStep));
        std::memcpy(large_.data(), available.data() + header.header_size, have);
        large_filled_ = have;
        large_pending_ = true;
        begin_ += header.header_size + have;
        break;
      }
    }
    // Need more bytes for this frame: make room at the end of the buffer, then read.
    if (begin_ == end_) {
      begin_ = end_ = 0;
    } else if (begin_ > 0 && buffer_.size() - begin_ < kLongHeaderSize + header.payload_size) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    std::size_t got = 0;
    if (!fill(std::span(buffer_).subspan(end_), got, deadline)) return std::nullopt;
    end_ += got;
  }
  while (large_filled_ < large_expected_) {
    if (large_filled_ == large_.size())
      large_.resize(std::min<std::uint64_t>(large_expected_, 2 * large_.size()));
    std::size_t got = 0;
    if (!fill(std::span(large_).subspan(large_filled_), got, deadline)) return std::nullopt;
    large_filled_ += got;
  }
  large_pending_ = false;
  large_filled_ = 0;
  if (begin_ == end_) begin_ = end_ = 0;
  update_buffered_flag();
  return std::span<const std::byte>(large_);
}

std::vector<std::byte> StreamChannel::take_payload(std::span<const std::byte> payload) {
  if (!large_.empty() && payload.data() == large_.data()) return std::move(large_);
  return {payload.begin(), payload.end()};
}

void StreamChannel::update_buffered_flag() noexcept {
  const auto available = std::span<const std::byte>(buffer_).subspan(begin_, end_ - begin_);
  const ParsedHeader header = parse_frame_header(available);
  const bool whole = (header.status != ParsedHeader::Status::NeedMore &&
                      (header.status == ParsedHeader::Status::Invalid ||
                       header.payload_size <= available.size() - header.header_size)) ||
                     handle_next();
  buffered_frame_.store(whole, std::memory_order_release);
}

}  // namespace ipckit::transport
