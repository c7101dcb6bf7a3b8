// transport/handshake.hpp — the authentication handshake of Python's
// multiprocessing.connection (deliver_challenge / answer_challenge), as a state machine
// that does no I/O: bytes go in through feed(), bytes to send come out of output().
// Byte layout and rules: docs/formats/handshake.md.
//
// The deliverer (a Listener) challenges first, then answers; the answerer (a Client)
// answers, then challenges. Each handshake message is a frame (docs/formats/framing.md)
// whose payload is at most kMaxHandshakeMessage bytes; nothing is decoded beyond that.
//
// The answerer sends its own challenge together with its answer, without waiting for the
// deliverer's verdict: the deliverer reads one frame at a time whatever it is (CPython
// reads exactly one frame per recv_bytes), so this is wire-compatible and saves a round
// trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ipckit::transport {

inline constexpr std::size_t kMaxHandshakeMessage = 256;
inline constexpr std::size_t kChallengeRandomBytes = 40;  // CPython's MESSAGE_LENGTH

enum class HandshakeRole {
  Deliver,  // challenges first (a Listener)
  Answer,   // answers first (a Client)
};

// How this side challenges: the current form ("{sha256}" + 40 random bytes, CPython >=
// 3.12) or the legacy one (20 random bytes, answered with bare HMAC-MD5, CPython <= 3.11).
enum class ChallengeForm { Current, Legacy };

class Handshake {
 public:
  // `subject` names the peer in error messages. `nonce`: the random bytes of this side's
  // challenge (40 for Current, 20 for Legacy); empty: drawn from the OS's generator.
  Handshake(HandshakeRole role, std::span<const std::byte> authkey, std::string subject,
            ChallengeForm form = ChallengeForm::Current, std::span<const std::byte> nonce = {});

  // Bytes to send now, in order; after writing some, report them with sent().
  std::span<const std::byte> output() const noexcept { return std::span(out_).subspan(out_sent_); }
  void sent(std::size_t bytes) noexcept;

  // Takes received bytes. Returns how many it used: it stops at the end of the
  // handshake, and what follows belongs to the connection. Throws AuthenticationError
  // when the peer fails: a wrong MAC, a rejection, a malformed or oversized message; a
  // #FAILURE# owed to the peer is then in output(), for the caller to send (best effort)
  // before closing. Once failed, every call throws.
  std::size_t feed(std::span<const std::byte> bytes);

  // How many bytes complete the header or the frame in progress: read no more than this,
  // so that nothing past the handshake (a message, a passed fd) is taken from the socket.
  std::size_t wanted() const noexcept;

  // Both directions are proven and everything this side must send has been sent.
  bool done() const noexcept { return stage_ == Stage::Done && output().empty(); }

 private:
  // What the next message from the peer must be. Deliverer: AwaitAnswer, AwaitChallenge,
  // AwaitVerdict, Done. Answerer: AwaitChallenge, AwaitVerdict, AwaitAnswer, Done.
  enum class Stage {
    AwaitAnswer,     // our challenge is out: the peer's MAC of it is next
    AwaitChallenge,  // the peer's challenge is next
    AwaitVerdict,    // our MAC is out: #WELCOME# or #FAILURE# is next
    Done,
    Failed,
  };
  void send_message(std::span<const std::byte> payload);
  void send_challenge();
  void on_message(std::span<const std::byte> message);
  [[noreturn]] void fail(const std::string& why, bool tell_peer);

  HandshakeRole role_;
  std::vector<std::byte> key_;
  std::string subject_;
  ChallengeForm form_;
  Stage stage_;
  std::vector<std::byte> nonce_;      // the random part of our challenge
  std::vector<std::byte> challenge_;  // the message we sent, after #CHALLENGE#
  std::vector<std::byte> out_;
  std::size_t out_sent_ = 0;
  std::vector<std::byte> in_;  // a partly received frame
};

// HMAC of `message` under `key` with the named digest (md5, sha256, sha384, sha3_256,
// sha3_384). Empty when the name is not one of these.
std::vector<std::byte> hmac_digest(std::string_view digest, std::span<const std::byte> key,
                                   std::span<const std::byte> message);

}  // namespace ipckit::transport
