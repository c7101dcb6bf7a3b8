// Fuzz target: a Connection reading arbitrary bytes from its fd.
//
// Input: byte 0 picks the receive limit (2^(b % 28) bytes) and byte 1 how each message is
// taken (recv_bytes, recv_bytes_into a small buffer, recv<T> of a few types); the rest is
// the stream. The stream is served from a memfd, so it ends exactly where the input ends.
// Every outcome must be a message or one of ipckit's documented errors; anything else
// (a crash, a sanitizer report, another exception, a hang) is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "ipckit/connection.hpp"

namespace {

struct Sample {
  std::string name;
  std::vector<std::int64_t> values;
  std::optional<std::map<std::string, double>> extra;
  IPCKIT_CODABLE(name, values, extra)
};

void read_all(ipckit::Connection& conn, std::uint8_t mode) {
  std::byte small[64];
  for (int i = 0; i < 1000; ++i) {
    try {
      switch ((mode + i) % 4) {
        case 0: conn.recv_bytes(); break;
        case 1: conn.recv_bytes_into(small); break;
        case 2: conn.recv<Sample>(); break;
        default: conn.recv<std::variant<std::string, std::vector<int>>>(); break;
      }
    } catch (const ipckit::BufferTooShort&) {  // the message was taken; go on
    } catch (const ipckit::DecodeError&) {     // likewise
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int fd = memfd_create("frame_reader_fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  const std::size_t stream = size - 2;
  if (stream > 0 && write(fd, data + 2, stream) != static_cast<ssize_t>(stream)) {
    close(fd);
    return 0;
  }
  lseek(fd, 0, SEEK_SET);
  ipckit::Connection conn(fd, true, false, {.max_message_size = std::size_t{1} << (data[0] % 28)});
  try {
    read_all(conn, data[1]);
  } catch (const ipckit::ConnectionClosed&) {  // end of the input
  } catch (const ipckit::MessageTooLarge&) {
  } catch (const ipckit::ProtocolError&) {
  }
  return 0;
}
