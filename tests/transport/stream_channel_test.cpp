// Stream framing (docs/formats/framing.md): pinned header bytes, every size class, the
// long-length escape, timeouts that keep partial frames, and hostile headers.
#include "transport/stream_channel.hpp"

#include <numeric>
#include <thread>

#include "ipckit/error.hpp"
#include "ipckit_test.hpp"
#include "sys/io.hpp"

namespace {

using namespace std::chrono_literals;
using ipckit::sys::Deadline;
using ipckit::transport::StreamChannel;
using FramingTest = ipckit::test::Test;

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed = 1) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return out;
}

void write_raw(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    const ipckit::sys::ConstBytes part = data;
    const auto r = ipckit::sys::write_some(fd, std::span(&part, 1), true);
    ASSERT_TRUE(r.ok()) << ipckit::sys::error_text(r.error);
    data = data.subspan(r.bytes);
  }
}

struct ChannelPair {
  ChannelPair() {
    auto [x, y] = ipckit::sys::socket_pair("test");
    raw_peer = y.get();
    reader = std::make_unique<StreamChannel>(std::move(x), "reader");
    writer = std::make_unique<StreamChannel>(std::move(y), "writer");
  }
  std::unique_ptr<StreamChannel> reader;
  std::unique_ptr<StreamChannel> writer;
  int raw_peer = -1;  // the writer's fd, for hand-made bytes
};

TEST_F(FramingTest, HeaderBytesArePythonsFormat) {
  ipckit::transport::FrameHeader h;
  ASSERT_EQ(ipckit::transport::encode_frame_header(0, h), 4u);
  EXPECT_EQ(std::vector(h.begin(), h.begin() + 4), bytes({0, 0, 0, 0}));
  ASSERT_EQ(ipckit::transport::encode_frame_header(0x01020304, h), 4u);
  EXPECT_EQ(std::vector(h.begin(), h.begin() + 4), bytes({1, 2, 3, 4}));
  ASSERT_EQ(ipckit::transport::encode_frame_header(0x7fffffff, h), 4u);
  EXPECT_EQ(std::vector(h.begin(), h.begin() + 4), bytes({0x7f, 0xff, 0xff, 0xff}));
  ASSERT_EQ(ipckit::transport::encode_frame_header(0x80000000, h), 12u);
  EXPECT_EQ(std::vector(h.begin(), h.end()),
            bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0}));
}

TEST_F(FramingTest, ParseNeedsWholeHeaderAndRejectsNegativeLengths) {
  using Status = ipckit::transport::ParsedHeader::Status;
  EXPECT_EQ(ipckit::transport::parse_frame_header(bytes({0, 0, 1})).status, Status::NeedMore);
  const auto ok = ipckit::transport::parse_frame_header(bytes({0, 0, 1, 0}));
  EXPECT_EQ(ok.status, Status::Ok);
  EXPECT_EQ(ok.payload_size, 256u);
  EXPECT_EQ(ipckit::transport::parse_frame_header(bytes({0xff, 0xff, 0xff, 0xff, 0})).status,
            Status::NeedMore);
  const auto escaped = ipckit::transport::parse_frame_header(
      bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(escaped.status, Status::Ok);
  EXPECT_EQ(escaped.header_size, 12u);
  EXPECT_EQ(escaped.payload_size, std::uint64_t{1} << 32);
  EXPECT_EQ(ipckit::transport::parse_frame_header(bytes({0xff, 0xff, 0xff, 0xfe})).status,
            Status::Invalid);
  EXPECT_EQ(ipckit::transport::parse_frame_header(bytes({0x80, 0, 0, 0})).status, Status::Invalid);
}

TEST_F(FramingTest, EverySizeClassRoundTrips) {
  ChannelPair p;
  // Sizes around the 64 KiB receive buffer and the 16 MiB first allocation of big frames.
  const std::vector<std::size_t> sizes = {0,         1,         63,        65536 - 4, 65536 - 3,
                                          65536,     65537,     1 << 20,   (16 << 20) + 5};
  std::thread writer([&] {
    unsigned seed = 0;
    for (std::size_t n : sizes) {
      const auto data = pattern(n, ++seed);
      const ipckit::sys::ConstBytes part = data;
      p.writer->send(std::span(&part, 1));
    }
  });
  unsigned seed = 0;
  for (std::size_t n : sizes) {
    const auto got = p.reader->recv(Deadline::never(), std::uint64_t(-1));
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), n);
    EXPECT_TRUE(std::equal(got->begin(), got->end(), pattern(n, ++seed).begin())) << "size " << n;
  }
  writer.join();
}

TEST_F(FramingTest, BurstOfSmallFramesIsReadWhole) {
  ChannelPair p;
  for (int i = 0; i < 100; ++i) {
    const auto data = pattern(static_cast<std::size_t>(i % 100), static_cast<unsigned>(i));
    const ipckit::sys::ConstBytes part = data;
    p.writer->send(std::span(&part, 1));
  }
  for (int i = 0; i < 100; ++i) {
    const auto got = p.reader->recv(Deadline::never(), 1 << 20);
    ASSERT_TRUE(got.has_value());
    const auto want = pattern(static_cast<std::size_t>(i % 100), static_cast<unsigned>(i));
    ASSERT_TRUE(std::equal(got->begin(), got->end(), want.begin(), want.end())) << i;
    // After the first read the rest of the burst is buffered in user space.
    if (i < 99) {
      EXPECT_TRUE(p.reader->has_buffered_frame()) << i;
    }
  }
  EXPECT_FALSE(p.reader->has_buffered_frame());
}

TEST_F(FramingTest, LongHeaderFormIsAcceptedForSmallPayloads) {
  ChannelPair p;
  write_raw(p.raw_peer, bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}));
  const auto got = p.reader->recv(Deadline::never(), 100);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::vector(got->begin(), got->end()), bytes({'a', 'b', 'c'}));
}

TEST_F(FramingTest, TimeoutKeepsPartialFrameForTheNextCall) {
  ChannelPair p;
  const auto whole = bytes({0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'});
  write_raw(p.raw_peer, std::span(whole).first(2));
  EXPECT_FALSE(p.reader->recv(Deadline::after(1ms), 100).has_value());
  write_raw(p.raw_peer, std::span(whole).subspan(2, 4));
  EXPECT_FALSE(p.reader->recv(Deadline::after(1ms), 100).has_value());
  write_raw(p.raw_peer, std::span(whole).subspan(6));
  const auto got = p.reader->recv(Deadline::after(10s), 100);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::vector(got->begin(), got->end()), bytes({'h', 'e', 'l', 'l', 'o'}));
}

TEST_F(FramingTest, TimeoutInsideLargeFrameKeepsWhatArrived) {
  ChannelPair p;
  const auto payload = pattern(200000);
  ipckit::transport::FrameHeader h;
  const std::size_t hn = ipckit::transport::encode_frame_header(payload.size(), h);
  write_raw(p.raw_peer, std::span<const std::byte>(h).first(hn));
  write_raw(p.raw_peer, std::span(payload).first(100000));
  EXPECT_FALSE(p.reader->recv(Deadline::after(1ms), 1 << 20).has_value());
  write_raw(p.raw_peer, std::span(payload).subspan(100000));
  const auto got = p.reader->recv(Deadline::never(), 1 << 20);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(std::equal(got->begin(), got->end(), payload.begin(), payload.end()));
  EXPECT_EQ(p.reader->take_payload(*got), payload);
}

TEST_F(FramingTest, OversizedAnnouncementIsRejectedBeforeReadingIt) {
  ChannelPair p;
  // 2^62 bytes announced; nothing follows.
  write_raw(p.raw_peer, bytes({0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0}));
  try {
    p.reader->recv(Deadline::never(), 1 << 20);
    FAIL() << "expected MessageTooLarge";
  } catch (const ipckit::MessageTooLarge& e) {
    EXPECT_EQ(e.size(), std::uint64_t{1} << 62);
    EXPECT_EQ(e.limit(), 1u << 20);
    EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
  }
}

TEST_F(FramingTest, HugeAnnouncementUnderNoLimitGrowsOnlyAsBytesArrive) {
  ChannelPair p;
  // With no limit at all, a liar announcing 2^40 bytes and sending 10 gets at most the
  // first 16 MiB step, then end of stream — not a terabyte allocation.
  write_raw(p.raw_peer, bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0}));
  write_raw(p.raw_peer, pattern(10));
  p.writer->close();
  EXPECT_THROW(p.reader->recv(Deadline::never(), std::uint64_t(-1)), ipckit::ConnectionClosed);
}

TEST_F(FramingTest, NegativeLengthIsAProtocolError) {
  ChannelPair p;
  write_raw(p.raw_peer, bytes({0xff, 0xff, 0xff, 0xf0, 1, 2, 3}));
  try {
    p.reader->recv(Deadline::never(), 100);
    FAIL() << "expected ProtocolError";
  } catch (const ipckit::ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("negative length -16"), std::string::npos) << e.what();
  }
}

TEST_F(FramingTest, EndOfStreamBetweenAndInsideFrames) {
  {
    ChannelPair p;
    p.writer->close();
    try {
      p.reader->recv(Deadline::never(), 100);
      FAIL();
    } catch (const ipckit::ConnectionClosed& e) {
      EXPECT_NE(std::string(e.what()).find("has closed the connection"), std::string::npos);
    }
  }
  {
    ChannelPair p;
    write_raw(p.raw_peer, bytes({0, 0, 0, 9, 'x'}));
    p.writer->close();
    try {
      p.reader->recv(Deadline::never(), 100);
      FAIL();
    } catch (const ipckit::ConnectionClosed& e) {
      EXPECT_NE(std::string(e.what()).find("in the middle of a message"), std::string::npos);
    }
  }
}

TEST_F(FramingTest, SendToClosedPeerIsConnectionClosed) {
  ChannelPair p;
  p.reader->close();
  const auto data = pattern(10);
  const ipckit::sys::ConstBytes part = data;
  EXPECT_THROW(p.writer->send(std::span(&part, 1)), ipckit::ConnectionClosed);
}

TEST_F(FramingTest, MultiPartSendIsOneFrame) {
  ChannelPair p;
  const auto a = bytes({'a', 'b'});
  const auto b = bytes({});
  const auto c = bytes({'c'});
  const ipckit::sys::ConstBytes parts[] = {a, b, c};
  p.writer->send(parts);
  const auto got = p.reader->recv(Deadline::never(), 100);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::vector(got->begin(), got->end()), bytes({'a', 'b', 'c'}));
}

}  // namespace
