#include "transport/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>

#include "ipckit/error.hpp"
#include "transport/stream_channel.hpp"

namespace ipckit::transport {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
constexpr std::size_t kLegacyChallengeBytes = 20;  // CPython <= 3.11's message
constexpr std::size_t kMd5Bytes = 16;
constexpr std::string_view kCurrentDigest = "sha256";
constexpr std::size_t kMaxDigestName = 8;  // the longest allowed name: sha3_256, sha3_384

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

bool starts_with(std::span<const std::byte> bytes, std::string_view prefix) {
  return bytes.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), bytes.begin(),
                                                     [](char c, std::byte b) { return static_cast<std::byte>(c) == b; });
}

bool equals(std::span<const std::byte> bytes, std::string_view text) {
  return bytes.size() == text.size() && starts_with(bytes, text);
}

const EVP_MD* digest_by_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

// CPython's _get_digest_name_and_payload: a message or answer of 16 or 20 bytes is the
// legacy form (MD5, no prefix); otherwise "{name}" must lead and name an allowed digest.
struct Named {
  std::string_view digest;  // empty: not a valid form
  std::span<const std::byte> payload;
};
Named split_digest(std::span<const std::byte> message) {
  if (message.size() == kLegacyChallengeBytes || message.size() == kMd5Bytes) return {"md5", message};
  if (message.empty() || message[0] != std::byte{'{'}) return {};
  const std::size_t search = std::min(message.size(), kMaxDigestName + 2);
  for (std::size_t i = 1; i < search; ++i) {
    if (message[i] != std::byte{'}'}) continue;
    const std::string_view name(reinterpret_cast<const char*>(message.data()) + 1, i - 1);
    if (digest_by_name(name) == nullptr) return {};
    return {name, message.subspan(i + 1)};
  }
  return {};
}

std::string printable(std::span<const std::byte> bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < 40; ++i) {
    const auto c = std::to_integer<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (bytes.size() > 40) out += "...";
  return out;
}

}  // namespace

std::vector<std::byte> hmac_digest(std::string_view digest, std::span<const std::byte> key,
                                   std::span<const std::byte> message) {
  const EVP_MD* md = digest_by_name(digest);
  if (md == nullptr) return {};
  std::array<unsigned char, EVP_MAX_MD_SIZE> out;
  unsigned length = 0;
  static const unsigned char kEmpty = 0;  // HMAC wants non-null pointers for empty inputs
  const auto* key_data = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  const auto* data = message.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(message.data());
  if (HMAC(md, key_data, static_cast<int>(key.size()), data, message.size(), out.data(), &length) == nullptr)
    return {};
  const auto* begin = reinterpret_cast<const std::byte*>(out.data());
  return {begin, begin + length};
}

Handshake::Handshake(HandshakeRole role, std::span<const std::byte> authkey, std::string subject,
                     ChallengeForm form, std::span<const std::byte> nonce)
    : role_(role),
      key_(authkey.begin(), authkey.end()),
      subject_(std::move(subject)),
      form_(form),
      stage_(role == HandshakeRole::Deliver ? Stage::AwaitAnswer : Stage::AwaitChallenge) {
  nonce_.assign(nonce.begin(), nonce.end());
  if (role == HandshakeRole::Deliver) send_challenge();
}

void Handshake::send_challenge() {
  const std::size_t random_bytes = form_ == ChallengeForm::Current ? kChallengeRandomBytes : kLegacyChallengeBytes;
  if (nonce_.empty()) {
    nonce_.resize(random_bytes);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce_.data()), static_cast<int>(random_bytes)) != 1)
      throw AuthenticationError("handshake with " + subject_ + ": the random generator failed");
  }
  challenge_.clear();
  if (form_ == ChallengeForm::Current) {
    const std::string prefix = "{" + std::string(kCurrentDigest) + "}";
    const auto p = bytes_of(prefix);
    challenge_.assign(p.begin(), p.end());
  }
  challenge_.insert(challenge_.end(), nonce_.begin(), nonce_.end());
  std::vector<std::byte> message(bytes_of(kChallenge).begin(), bytes_of(kChallenge).end());
  message.insert(message.end(), challenge_.begin(), challenge_.end());
  send_message(message);
}

void Handshake::send_message(std::span<const std::byte> payload) {
  FrameHeader header;
  const std::size_t header_size = encode_frame_header(payload.size(), header);
  out_.insert(out_.end(), header.begin(), header.begin() + static_cast<std::ptrdiff_t>(header_size));
  out_.insert(out_.end(), payload.begin(), payload.end());
}

void Handshake::sent(std::size_t bytes) noexcept {
  out_sent_ = std::min(out_.size(), out_sent_ + bytes);
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  }
}

void Handshake::fail(const std::string& why, bool tell_peer) {
  if (tell_peer) send_message(bytes_of(kFailure));
  stage_ = Stage::Failed;
  throw AuthenticationError("authentication with " + subject_ + " failed: " + why);
}

std::size_t Handshake::wanted() const noexcept {
  if (stage_ == Stage::Done || stage_ == Stage::Failed) return 0;
  const ParsedHeader header = parse_frame_header(in_);
  const std::size_t want = header.status == ParsedHeader::Status::Ok
                               ? header.header_size + static_cast<std::size_t>(std::min<std::uint64_t>(header.payload_size, kMaxHandshakeMessage))
                               : header.header_size;
  return want > in_.size() ? want - in_.size() : 1;
}

std::size_t Handshake::feed(std::span<const std::byte> bytes) {
  if (stage_ == Stage::Failed) throw AuthenticationError("authentication with " + subject_ + " already failed");
  std::size_t used = 0;
  while (stage_ != Stage::Done) {
    // Take bytes up to the end of the current frame only: what follows is not ours yet.
    const ParsedHeader header = parse_frame_header(in_);
    if (header.status == ParsedHeader::Status::Invalid) fail("the peer sent a malformed frame header", false);
    std::size_t want = header.header_size;
    if (header.status == ParsedHeader::Status::Ok) {
      if (header.payload_size > kMaxHandshakeMessage)
        fail("the peer announced a handshake message of " + std::to_string(header.payload_size) +
                 " bytes (the limit is " + std::to_string(kMaxHandshakeMessage) + ")",
             false);
      want = header.header_size + static_cast<std::size_t>(header.payload_size);
      if (in_.size() == want) {
        const std::vector<std::byte> frame = std::exchange(in_, {});
        on_message(std::span(frame).subspan(header.header_size));
        continue;
      }
    }
    if (used == bytes.size()) break;
    const std::size_t take = std::min(want - in_.size(), bytes.size() - used);
    in_.insert(in_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(used),
               bytes.begin() + static_cast<std::ptrdiff_t>(used + take));
    used += take;
  }
  return used;
}

void Handshake::on_message(std::span<const std::byte> message) {
  switch (stage_) {
    case Stage::AwaitAnswer: {
      // The peer's MAC of our challenge, in whichever digest it names.
      const Named answer = split_digest(message);
      if (answer.digest.empty()) fail("the answer names no digest it may use: '" + printable(message) + "'", true);
      const std::vector<std::byte> expected = hmac_digest(answer.digest, key_, challenge_);
      if (expected.size() != answer.payload.size() ||
          CRYPTO_memcmp(expected.data(), answer.payload.data(), expected.size()) != 0)
        fail("the peer does not know the authentication key (wrong " + std::string(answer.digest) + " MAC)", true);
      send_message(bytes_of(kWelcome));
      stage_ = role_ == HandshakeRole::Deliver ? Stage::AwaitChallenge : Stage::Done;
      return;
    }
    case Stage::AwaitChallenge: {
      if (!starts_with(message, kChallenge)) fail("expected a challenge, got '" + printable(message) + "'", false);
      const auto challenge = message.subspan(kChallenge.size());
      if (challenge.size() < kLegacyChallengeBytes)
        fail("the challenge is too short (" + std::to_string(challenge.size()) + " bytes)", false);
      const Named named = split_digest(challenge);
      if (named.digest.empty()) fail("the challenge names no digest it may use: '" + printable(challenge) + "'", false);
      // The MAC covers the whole challenge, prefix included. A legacy (20-byte) challenge
      // gets the bare MD5; any other gets its digest's name in front.
      const std::vector<std::byte> mac = hmac_digest(named.digest, key_, challenge);
      std::vector<std::byte> answer;
      if (challenge.size() != kLegacyChallengeBytes) {
        const std::string prefix = "{" + std::string(named.digest) + "}";
        answer.assign(bytes_of(prefix).begin(), bytes_of(prefix).end());
      }
      answer.insert(answer.end(), mac.begin(), mac.end());
      send_message(answer);
      // The answerer challenges at once, without waiting for the verdict on its answer.
      if (role_ == HandshakeRole::Answer) send_challenge();
      stage_ = Stage::AwaitVerdict;
      return;
    }
    case Stage::AwaitVerdict:
      if (equals(message, kWelcome)) {
        stage_ = role_ == HandshakeRole::Deliver ? Stage::Done : Stage::AwaitAnswer;
        return;
      }
      if (equals(message, kFailure)) fail("the peer rejected our authentication key", false);
      fail("expected #WELCOME# or #FAILURE#, got '" + printable(message) + "'", false);
    case Stage::Done:
    case Stage::Failed:
      break;
  }
}

}  // namespace ipckit::transport
