// Fuzz target: the authentication handshake (transport/handshake.hpp) fed arbitrary bytes,
// and the parser of listener/client addresses.
//
// Input: byte 0 picks the mode and its settings, byte 1 how the bytes are cut into the
// pieces fed at once (0: all at once; n: pieces of 1..n bytes from a generator seeded
// with n); the rest depends on the mode (byte0 & 3):
//   0, 1  one Handshake, Deliver (0) or Answer (1), fed the rest as the peer's bytes.
//         Bit 2: its challenge form (0 Current, 1 Legacy); bits 4-5: the key (kKeys).
//   2     a Deliver and an Answer handshake wired back to back, the rest being edits to
//         the bytes between them: 3-byte records (bit 7 of the first: the direction, 0 to
//         the answerer; bit 0 and the second byte: the offset in that direction's stream;
//         the third byte: XORed into the byte there). Bits 2 and 3: the deliverer's and the answerer's
//         form; bits 4-5: the key; bit 6: the answerer has another key.
//   3     the rest is an address string for sys::parse_address.
// The nonces are fixed (kDeliverNonce, kAnswerNonce, their first 20 bytes for the legacy
// form), so a seed can hold a valid transcript for its side.
//
// Every outcome must be progress, the end of the handshake or ipckit::AuthenticationError
// (ValueError for an address); anything else — another exception, a crash, a sanitizer
// report, a hang — is a bug, and so is a broken invariant (std::abort):
// * feed() never takes more than it is given, and takes less only once the handshake is
//   over; after that it takes nothing; after a failure every call throws;
// * a side that neither finished nor failed is inside a frame it may still take (a bad
//   header or a complete message it must refuse is an error at once, not when more bytes
//   come);
// * what a side sends is whole frames in the short form of at most kMaxHandshakeMessage
//   bytes;
// * two sides with the same key and untouched bytes both finish; with different keys both
//   fail; when a byte either side took was changed, they never both finish.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipckit/error.hpp"
#include "sys/socket.hpp"
#include "transport/handshake.hpp"

namespace {

using ipckit::transport::ChallengeForm;
using ipckit::transport::Handshake;
using ipckit::transport::HandshakeRole;
using Bytes = std::vector<std::byte>;

void check(bool ok) {
  if (!ok) std::abort();
}

Bytes ascii(std::string_view text) {
  const auto b = std::as_bytes(std::span(text));
  return {b.begin(), b.end()};
}

Bytes counting(int first, int count) {
  Bytes out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<std::byte>(first + i));
  return out;
}

const Bytes kKeys[4] = {ascii("ipckit fuzz key"), {}, ascii("another key"), counting(0, 200)};
const Bytes kDeliverNonce = counting(0x01, 40);  // legacy form: its first 20 bytes
const Bytes kAnswerNonce = counting(0x41, 40);

std::span<const std::byte> nonce(const Bytes& nonce40, ChallengeForm form) {
  return std::span(nonce40).first(form == ChallengeForm::Current ? 40 : 20);
}

ChallengeForm form_bit(std::uint8_t control, int bit) {
  return (control >> bit) & 1 ? ChallengeForm::Legacy : ChallengeForm::Current;
}

// Sizes of the pieces bytes are fed in.
class Pieces {
 public:
  explicit Pieces(std::uint8_t max) : max_(max), state_(max * 2654435761u + 1) {}
  std::size_t next(std::size_t available) {
    if (max_ == 0) return available;
    state_ = state_ * 1103515245u + 12345u;
    const std::size_t n = 1 + (state_ >> 16) % max_;
    return n < available ? n : available;
  }

 private:
  std::uint32_t max_;
  std::uint32_t state_;
};

// Everything `side` has to send, taken off it.
void drain(Handshake& side, Bytes& sent) {
  const auto out = side.output();
  sent.insert(sent.end(), out.begin(), out.end());
  side.sent(out.size());
}

// `stream` is whole frames, each short-form and within the handshake's limit.
void check_frames(std::span<const std::byte> stream) {
  while (!stream.empty()) {
    check(stream.size() >= 4);
    const std::uint32_t length = std::to_integer<std::uint32_t>(stream[0]) << 24 |
                                 std::to_integer<std::uint32_t>(stream[1]) << 16 |
                                 std::to_integer<std::uint32_t>(stream[2]) << 8 |
                                 std::to_integer<std::uint32_t>(stream[3]);
    check(length <= ipckit::transport::kMaxHandshakeMessage);
    check(stream.size() >= 4 + length);
    stream = stream.subspan(4 + length);
  }
}

// A side that took all of `stream` and neither finished nor failed must be waiting for
// the rest of a frame it may still take: a message it accepted ends every complete frame
// (never an empty one: no step accepts an empty message), and a complete header at the end
// is valid and within the limit. Else it sits on a message it should have refused, and a
// peer that then waits for the verdict leaves it hanging.
void check_waiting(std::span<const std::byte> stream) {
  auto load = [&](std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | std::to_integer<std::uint64_t>(stream[at + i]);
    return v;
  };
  while (stream.size() >= 4) {
    std::size_t header = 4;
    std::uint64_t length = load(0, 4);
    if (length >= 0x80000000u) {
      check(length == 0xffffffffu);  // a negative length other than -1 must have failed
      if (stream.size() < 12) return;
      header = 12;
      length = load(4, 8);
    }
    check(length > 0 && length <= ipckit::transport::kMaxHandshakeMessage);
    if (stream.size() - header < length) return;
    stream = stream.subspan(header + static_cast<std::size_t>(length));
  }
}

// After an AuthenticationError: failed for good.
void check_failed(Handshake& side) {
  check(!side.done());
  const std::byte more[1] = {std::byte{0}};
  try {
    side.feed(more);
  } catch (const ipckit::AuthenticationError&) {
    return;
  }
  std::abort();
}

void one_side(std::uint8_t control, Pieces pieces, std::span<const std::byte> peer) {
  const auto role = (control & 1) != 0 ? HandshakeRole::Answer : HandshakeRole::Deliver;
  const ChallengeForm form = form_bit(control, 2);
  Handshake side(role, kKeys[(control >> 4) & 3], "fuzz peer", form,
                 nonce(role == HandshakeRole::Deliver ? kDeliverNonce : kAnswerNonce, form));
  check(role == HandshakeRole::Answer ? side.output().empty() : !side.output().empty());
  Bytes sent;
  drain(side, sent);
  const std::span<const std::byte> all = peer;
  try {
    while (!peer.empty()) {
      const std::size_t n = pieces.next(peer.size());
      const std::size_t used = side.feed(peer.first(n));
      check(used <= n);
      drain(side, sent);
      peer = peer.subspan(used);
      if (used < n) break;
    }
    if (!peer.empty()) {
      // It stopped early: only the end of the handshake allows that, and then it takes
      // nothing more.
      check(side.done());
      check(side.feed(peer) == 0);
    } else if (!side.done()) {
      check_waiting(all);
    }
  } catch (const ipckit::AuthenticationError&) {
    drain(side, sent);
    check_failed(side);
  }
  check_frames(sent);
}

struct Edit {
  bool to_deliverer;
  std::size_t offset;
  std::byte mask;
};

struct End {
  explicit End(Handshake side) : hs(std::move(side)) {}
  Handshake hs;
  bool failed = false;
  bool stopped = false;  // feed() took less than it was given
  Bytes received;        // the bytes it took, as edited
  Bytes sent;
};

class Pair {
 public:
  Pair(std::uint8_t control, Pieces pieces, std::vector<Edit> edits)
      : pieces_(pieces),
        edits_(std::move(edits)),
        deliver_(Handshake(HandshakeRole::Deliver, kKeys[(control >> 4) & 3], "answerer",
                           form_bit(control, 2), nonce(kDeliverNonce, form_bit(control, 2)))),
        answer_(Handshake(HandshakeRole::Answer,
                          (control & 0x40) != 0 ? kKeys[((control >> 4) + 1) & 3]
                                                : kKeys[(control >> 4) & 3],
                          "deliverer", form_bit(control, 3),
                          nonce(kAnswerNonce, form_bit(control, 3)))) {}

  void run() {
    for (int round = 0; round < 16; ++round) {
      if (deliver_.hs.output().empty() && answer_.hs.output().empty()) return;
      move(deliver_, answer_, false);
      move(answer_, deliver_, true);
    }
    std::abort();  // the exchange should have settled long before
  }

  bool tampered() const noexcept { return tampered_; }
  const End& deliver() const noexcept { return deliver_; }
  const End& answer() const noexcept { return answer_; }

 private:
  // Passes what `from` sends to `to` (a failed side's last words included: its
  // #FAILURE#), applying the edits aimed at that direction.
  void move(End& from, End& to, bool to_deliverer) {
    while (!from.hs.output().empty()) {
      const std::size_t n = pieces_.next(from.hs.output().size());
      Bytes part(from.hs.output().begin(), from.hs.output().begin() + static_cast<std::ptrdiff_t>(n));
      from.hs.sent(n);
      from.sent.insert(from.sent.end(), part.begin(), part.end());
      if (to.failed) continue;  // closed: the bytes go nowhere
      Bytes edited = part;
      for (const Edit& edit : edits_) {
        const std::size_t at = to.received.size();
        if (edit.to_deliverer == to_deliverer && edit.offset >= at && edit.offset < at + n)
          edited[edit.offset - at] ^= edit.mask;
      }
      std::size_t used = 0;
      try {
        used = to.hs.feed(edited);
        check(used <= n);
      } catch (const ipckit::AuthenticationError&) {
        to.failed = true;
        check_failed(to.hs);
        used = n;  // it may have taken any of them: count every change as seen
      }
      if (used < n) to.stopped = true;
      for (std::size_t i = 0; i < used; ++i) tampered_ = tampered_ || edited[i] != part[i];
      to.received.insert(to.received.end(), edited.begin(),
                         edited.begin() + static_cast<std::ptrdiff_t>(used));
    }
  }

  Pieces pieces_;
  std::vector<Edit> edits_;
  End deliver_;
  End answer_;
  bool tampered_ = false;
};

void back_to_back(std::uint8_t control, Pieces pieces, std::span<const std::byte> rest) {
  std::vector<Edit> edits;
  for (std::size_t i = 0; i + 3 <= rest.size() && edits.size() < 16; i += 3) {
    const auto high = std::to_integer<std::size_t>(rest[i]);
    edits.push_back({(high & 0x80) != 0, (high & 1) << 8 | std::to_integer<std::size_t>(rest[i + 1]),
                     rest[i + 2]});
  }
  const bool same_key = (control & 0x40) == 0;
  Pair pair(control, pieces, std::move(edits));
  pair.run();
  const End& d = pair.deliver();
  const End& a = pair.answer();
  check_frames(d.sent);
  check_frames(a.sent);
  check(!(d.failed && d.hs.done()) && !(a.failed && a.hs.done()));
  // Stopping early is for the end of the handshake only (by now all is sent).
  check(!d.stopped || d.hs.done());
  check(!a.stopped || a.hs.done());
  if (!d.failed && !d.hs.done()) check_waiting(d.received);
  if (!a.failed && !a.hs.done()) check_waiting(a.received);
  if (pair.tampered()) {
    check(!(d.hs.done() && a.hs.done()));
  } else if (same_key) {
    check(d.hs.done() && a.hs.done());
  } else {
    check(d.failed && a.failed);
  }
}

void address(std::span<const std::byte> rest) {
  const std::string text(reinterpret_cast<const char*>(rest.data()), rest.size());
  ipckit::sys::SocketAddress parsed;
  try {
    parsed = ipckit::sys::parse_address(text);
  } catch (const ipckit::ValueError&) {
    return;
  }
  using Kind = ipckit::sys::SocketAddress::Kind;
  switch (parsed.kind) {
    case Kind::Tcp:
      // The host as written: a NUL would cut it short in the resolver.
      check(!parsed.host.empty() && parsed.host.find('\0') == std::string::npos);
      check(text.find(parsed.host) != std::string::npos);
      break;
    case Kind::Unix:
      check(!parsed.path.empty() && parsed.path.find('\0') == std::string::npos);
      break;
    case Kind::Abstract:  // any bytes, NULs too, as Linux allows
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t control = data[0];
  const Pieces pieces(data[1]);
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + 2, size - 2);
  switch (control & 3) {
    case 0:
    case 1: one_side(control, pieces, rest); break;
    case 2: back_to_back(control, pieces, rest); break;
    default: address(rest); break;
  }
  return 0;
}
