// The authentication handshake (docs/formats/handshake.md) as a state machine without I/O:
// two Handshake objects wired back to back, every byte pinned against MACs computed with
// Python's hmac module, both challenge generations, and peers that break the protocol.
//
// The expected MACs were computed once with /usr/bin/python3, e.g.
//   hmac.new(b"ipckit handshake key", b"{sha256}" + bytes(range(1, 41)), "sha256").hexdigest()
#include "transport/handshake.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "ipckit/error.hpp"
#include "ipckit_test.hpp"

namespace {

using ipckit::AuthenticationError;
using ipckit::transport::ChallengeForm;
using ipckit::transport::Handshake;
using ipckit::transport::HandshakeRole;
using ipckit::transport::hmac_digest;
using Bytes = std::vector<std::byte>;
using HandshakeTest = ipckit::test::Test;

Bytes ascii(std::string_view text) {
  const auto b = std::as_bytes(std::span(text));
  return {b.begin(), b.end()};
}

Bytes from_hex(std::string_view hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  Bytes out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::byte>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  return out;
}

std::string to_hex(const Bytes& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const std::byte b : bytes) {
    out += kDigits[std::to_integer<int>(b) >> 4];
    out += kDigits[std::to_integer<int>(b) & 15];
  }
  return out;
}

Bytes range(int first, int count) {
  Bytes out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<std::byte>(first + i));
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

// A frame in the short form: 4-byte big-endian length, payload.
Bytes frame(const Bytes& payload) {
  const auto n = static_cast<std::uint32_t>(payload.size());
  return cat({{std::byte(n >> 24), std::byte(n >> 16), std::byte(n >> 8), std::byte(n)}, payload});
}

// The fixed inputs every known-answer test uses.
const Bytes kKey = ascii("ipckit handshake key");
const Bytes kWrongKey = ascii("a different key");
const Bytes kDeliverNonce = range(0x01, 40);  // Current form
const Bytes kAnswerNonce = range(0x41, 40);
const Bytes kDeliverLegacyNonce = range(0x81, 20);  // Legacy form
const Bytes kAnswerLegacyNonce = range(0xc1, 20);
const Bytes kSha256Prefix = ascii("{sha256}");
const Bytes kWelcome = frame(ascii("#WELCOME#"));
const Bytes kFailure = frame(ascii("#FAILURE#"));

// The challenge messages (after #CHALLENGE#) the fixed nonces make.
const Bytes kDeliverMessage = cat({kSha256Prefix, kDeliverNonce});
const Bytes kAnswerMessage = cat({kSha256Prefix, kAnswerNonce});

Bytes challenge_frame(const Bytes& message) { return frame(cat({ascii("#CHALLENGE#"), message})); }

// hmac.new(kKey, message, digest) for the messages above.
const Bytes kSha256OfDeliver =
    from_hex("7c0cd76024df535593114dcea77f00c15107f24ae3b1c1a5bbe8501a7f1e8e29");
const Bytes kSha256OfAnswer =
    from_hex("77139f575e91dc9d4ff395cec3d7220bcc967e15f8ecbbee4b18176e1e5760e8");
const Bytes kMd5OfDeliverLegacy = from_hex("35248d578eb13d67f87ab1c66d520ca8");
const Bytes kMd5OfAnswerLegacy = from_hex("eb1c011ad66282a1b96a893448b4f1b3");
const Bytes kMd5OfDeliver = from_hex("d0963f4d27923c60e2e148dbe0047ba3");
const Bytes kMd5OfAnswer = from_hex("239052ebd2d679d3b718a0302617b57a");
const Bytes kSha256OfDeliverLegacy =
    from_hex("9cd833544edab4ab8659e7b44d2f761ed8ddf80fd198870b033f3f3514773054");
const Bytes kSha384OfDeliver = from_hex(
    "ca56a0e9119499267071c1ebf5452ffa89ba1555dbf1812c2c551d6bc4c3633ce08d154ad2e2bca1d4af9c8be976afa0");
const Bytes kSha3_256OfDeliver =
    from_hex("9bf2828c01daf547921462374056184b2a6b1f8d4025e610e1c22f8eee0861a5");
const Bytes kSha3_384OfDeliver = from_hex(
    "a8d760a1ab9b624e28778c9f6f38572820c6608ce297ce487b1fe9252d9fa831a9178aa941b53cd93d17025e94821e33");
// hmac.new(kWrongKey, kDeliverMessage, "sha256")
const Bytes kSha256OfDeliverWrongKey =
    from_hex("b8875b732b9036aee39ba3501517ea8dd4a3f93becf38679147039421c5a2f0c");

Handshake deliverer(ChallengeForm form = ChallengeForm::Current, const Bytes& key = kKey) {
  return Handshake(HandshakeRole::Deliver, key, "the answerer", form,
                   form == ChallengeForm::Current ? kDeliverNonce : kDeliverLegacyNonce);
}

Handshake answerer(ChallengeForm form = ChallengeForm::Current, const Bytes& key = kKey) {
  return Handshake(HandshakeRole::Answer, key, "the deliverer", form,
                   form == ChallengeForm::Current ? kAnswerNonce : kAnswerLegacyNonce);
}

Bytes pending(const Handshake& side) { return {side.output().begin(), side.output().end()}; }

// Takes everything `side` has to send, as a caller does after writing it.
Bytes drain(Handshake& side) {
  Bytes out = pending(side);
  side.sent(out.size());
  return out;
}

// Two handshakes joined by in-memory pipes; `chunk` bounds both how much a side reports
// sent at once and how much the other is fed at once. Records each direction's bytes.
struct Wire {
  Wire(Handshake& d, Handshake& a, std::size_t max_chunk = std::numeric_limits<std::size_t>::max())
      : deliver(d), answer(a), chunk(max_chunk) {}

  Handshake& deliver;
  Handshake& answer;
  std::size_t chunk;
  Bytes to_answer;   // everything the deliverer sent
  Bytes to_deliver;  // everything the answerer sent

  // Moves what `from` has to send into `to`. Fails the test if `to` leaves any unused.
  void move(Handshake& from, Handshake& to, Bytes& record) {
    while (!from.output().empty()) {
      const std::size_t n = std::min(chunk, from.output().size());
      const Bytes part(from.output().begin(), from.output().begin() + static_cast<std::ptrdiff_t>(n));
      from.sent(n);
      record.insert(record.end(), part.begin(), part.end());
      ASSERT_EQ(to.feed(part), n) << "a side stopped taking bytes in the middle of the handshake";
    }
  }

  // Runs both sides until neither has anything to send. Throws what a side throws.
  void run() {
    for (int round = 0; round < 10; ++round) {
      if (deliver.output().empty() && answer.output().empty()) return;
      move(deliver, answer, to_answer);
      if (::testing::Test::HasFatalFailure()) return;
      move(answer, deliver, to_deliver);
      if (::testing::Test::HasFatalFailure()) return;
    }
    ADD_FAILURE() << "the handshake did not settle in 10 rounds";
  }
};

// --- both sides ipckit --------------------------------------------------------------------

TEST_F(HandshakeTest, CurrentFormBothWaysIsCPython312sBytes) {
  Handshake d = deliverer();
  Handshake a = answerer();
  EXPECT_TRUE(a.output().empty()) << "the answerer speaks only after the challenge";
  EXPECT_FALSE(d.done());
  EXPECT_FALSE(a.done());
  Wire wire{d, a};
  wire.run();
  EXPECT_TRUE(d.done());
  EXPECT_TRUE(a.done());
  EXPECT_EQ(wire.to_answer, cat({challenge_frame(kDeliverMessage), kWelcome,
                                 frame(cat({kSha256Prefix, kSha256OfAnswer}))}));
  EXPECT_EQ(wire.to_deliver, cat({frame(cat({kSha256Prefix, kSha256OfDeliver})),
                                  challenge_frame(kAnswerMessage), kWelcome}));
}

TEST_F(HandshakeTest, LegacyFormBothWaysIsCPython311sBytes) {
  Handshake d = deliverer(ChallengeForm::Legacy);
  Handshake a = answerer(ChallengeForm::Legacy);
  Wire wire{d, a};
  wire.run();
  EXPECT_TRUE(d.done());
  EXPECT_TRUE(a.done());
  // A 20-byte challenge is answered with the bare 16-byte HMAC-MD5.
  EXPECT_EQ(wire.to_answer, cat({challenge_frame(kDeliverLegacyNonce), kWelcome,
                                 frame(kMd5OfAnswerLegacy)}));
  EXPECT_EQ(wire.to_deliver, cat({frame(kMd5OfDeliverLegacy),
                                  challenge_frame(kAnswerLegacyNonce), kWelcome}));
}

TEST_F(HandshakeTest, MixedFormsEachAnswerFollowsTheChallenge) {
  {
    Handshake d = deliverer(ChallengeForm::Current);
    Handshake a = answerer(ChallengeForm::Legacy);
    Wire wire{d, a};
    wire.run();
    EXPECT_TRUE(d.done());
    EXPECT_TRUE(a.done());
    EXPECT_EQ(wire.to_answer, cat({challenge_frame(kDeliverMessage), kWelcome,
                                   frame(kMd5OfAnswerLegacy)}));
    EXPECT_EQ(wire.to_deliver, cat({frame(cat({kSha256Prefix, kSha256OfDeliver})),
                                    challenge_frame(kAnswerLegacyNonce), kWelcome}));
  }
  {
    Handshake d = deliverer(ChallengeForm::Legacy);
    Handshake a = answerer(ChallengeForm::Current);
    Wire wire{d, a};
    wire.run();
    EXPECT_TRUE(d.done());
    EXPECT_TRUE(a.done());
    EXPECT_EQ(wire.to_answer, cat({challenge_frame(kDeliverLegacyNonce), kWelcome,
                                   frame(cat({kSha256Prefix, kSha256OfAnswer}))}));
    EXPECT_EQ(wire.to_deliver, cat({frame(kMd5OfDeliverLegacy),
                                    challenge_frame(kAnswerMessage), kWelcome}));
  }
}

TEST_F(HandshakeTest, OneByteAtATimeGivesTheSameBytes) {
  for (const auto form : {ChallengeForm::Current, ChallengeForm::Legacy}) {
    Handshake d1 = deliverer(form);
    Handshake a1 = answerer(form);
    Wire whole{d1, a1};
    whole.run();
    Handshake d2 = deliverer(form);
    Handshake a2 = answerer(form);
    Wire bytewise{d2, a2, 1};
    bytewise.run();
    EXPECT_TRUE(d2.done());
    EXPECT_TRUE(a2.done());
    EXPECT_EQ(bytewise.to_answer, whole.to_answer);
    EXPECT_EQ(bytewise.to_deliver, whole.to_deliver);
  }
}

TEST_F(HandshakeTest, DoneOnlyOnceEverythingOwedIsSent) {
  Handshake d = deliverer();
  Handshake a = answerer();
  ASSERT_EQ(a.feed(drain(d)), challenge_frame(kDeliverMessage).size());
  ASSERT_EQ(d.feed(drain(a)), frame(cat({kSha256Prefix, kSha256OfDeliver})).size() +
                                  challenge_frame(kAnswerMessage).size());
  const Bytes last = cat({kWelcome, frame(cat({kSha256Prefix, kSha256OfAnswer}))});
  ASSERT_EQ(a.feed(drain(d)), last.size());
  // The answerer has proven both directions but still owes its #WELCOME#.
  EXPECT_EQ(pending(a), kWelcome);
  EXPECT_FALSE(a.done());
  a.sent(3);
  EXPECT_FALSE(a.done());
  EXPECT_EQ(pending(a), Bytes(kWelcome.begin() + 3, kWelcome.end()));
  a.sent(kWelcome.size() - 3);
  EXPECT_TRUE(a.done());
  EXPECT_FALSE(d.done());
  EXPECT_EQ(d.feed(kWelcome), kWelcome.size());
  EXPECT_TRUE(d.done());
}

TEST_F(HandshakeTest, BytesAfterTheEndAreLeftForTheConnection) {
  const Bytes extra = frame(ascii("first message"));
  Handshake d = deliverer();
  Handshake a = answerer();
  a.feed(drain(d));
  d.feed(drain(a));
  // The answerer's last input is the deliverer's MAC; a message right behind it is not its.
  const Bytes last = drain(d);
  EXPECT_EQ(a.feed(cat({last, extra})), last.size());
  EXPECT_EQ(drain(a), kWelcome);
  EXPECT_TRUE(a.done());
  EXPECT_EQ(a.feed(extra), 0u);
  // The deliverer's last input is the #WELCOME#.
  EXPECT_EQ(d.feed(cat({kWelcome, extra})), kWelcome.size());
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.feed(extra), 0u);
  EXPECT_EQ(d.feed(Bytes{std::byte{0}}), 0u);
}

TEST_F(HandshakeTest, RandomNoncesDifferAndStillAgree) {
  Handshake d1(HandshakeRole::Deliver, kKey, "peer");
  Handshake d2(HandshakeRole::Deliver, kKey, "peer");
  const Bytes c1 = pending(d1);
  const Bytes c2 = pending(d2);
  const Bytes head = cat({Bytes{std::byte{0}, std::byte{0}, std::byte{0}, std::byte{59}},
                          ascii("#CHALLENGE#{sha256}")});
  ASSERT_EQ(c1.size(), 4u + 59u);
  EXPECT_TRUE(std::equal(head.begin(), head.end(), c1.begin()));
  EXPECT_TRUE(std::equal(head.begin(), head.end(), c2.begin()));
  EXPECT_NE(c1, c2);
  Handshake legacy(HandshakeRole::Deliver, kKey, "peer", ChallengeForm::Legacy);
  EXPECT_EQ(pending(legacy).size(), 4u + 11u + 20u);

  Handshake a(HandshakeRole::Answer, kKey, "peer");
  Wire wire{d1, a};
  wire.run();
  EXPECT_TRUE(d1.done());
  EXPECT_TRUE(a.done());
}

TEST_F(HandshakeTest, EmptyAndLongKeysWork) {
  for (const Bytes& key : {Bytes{}, range(0, 200)}) {
    for (const auto form : {ChallengeForm::Current, ChallengeForm::Legacy}) {
      Handshake d = deliverer(form, key);
      Handshake a = answerer(form, key);
      Wire wire{d, a};
      wire.run();
      EXPECT_TRUE(d.done()) << key.size();
      EXPECT_TRUE(a.done()) << key.size();
    }
  }
}

// --- wrong keys ---------------------------------------------------------------------------

TEST_F(HandshakeTest, WrongKeyFailsTheDelivererThenItsFailureFailsTheAnswerer) {
  for (const auto form : {ChallengeForm::Current, ChallengeForm::Legacy}) {
    Handshake d = deliverer(form);
    Handshake a = answerer(form, kWrongKey);
    a.feed(drain(d));
    const Bytes answer_and_challenge = drain(a);
    EXPECT_THROW(d.feed(answer_and_challenge), AuthenticationError);
    // The deliverer owes the answerer a #FAILURE#, and nothing else: it never answers the
    // challenge of a peer that failed its own.
    EXPECT_EQ(pending(d), kFailure);
    EXPECT_FALSE(d.done());
    EXPECT_THROW(d.feed(kWelcome), AuthenticationError) << "once failed, every call throws";
    EXPECT_THROW(a.feed(drain(d)), AuthenticationError);
    EXPECT_TRUE(a.output().empty()) << "nobody is owed anything after a rejection";
    EXPECT_FALSE(a.done());
    EXPECT_THROW(a.feed(kWelcome), AuthenticationError);
  }
}

TEST_F(HandshakeTest, WrongKeyMessagesNameThePeer) {
  Handshake d = deliverer();
  Handshake a = answerer(ChallengeForm::Current, kWrongKey);
  a.feed(drain(d));
  try {
    d.feed(drain(a));
    FAIL() << "a wrong MAC was accepted";
  } catch (const AuthenticationError& e) {
    EXPECT_NE(std::string(e.what()).find("the answerer"), std::string::npos) << e.what();
  }
  try {
    a.feed(drain(d));
    FAIL() << "#FAILURE# was not an error";
  } catch (const AuthenticationError& e) {
    EXPECT_NE(std::string(e.what()).find("the deliverer"), std::string::npos) << e.what();
  }
}

TEST_F(HandshakeTest, AnswererRejectsADelivererThatWelcomesWithoutKnowingTheKey) {
  // A listener that does not know the key cannot prove it, even if it says #WELCOME# to
  // everyone: the answerer checks the MAC of its own challenge and owes it a #FAILURE#.
  for (const Bytes& wrong_mac : {cat({kSha256Prefix, Bytes(32, std::byte{0})}),
                                 cat({kSha256Prefix, kSha256OfDeliverWrongKey}), Bytes(16),
                                 kMd5OfAnswerLegacy, Bytes{}}) {
    SCOPED_TRACE(to_hex(wrong_mac));
    Handshake a = answerer();
    a.feed(challenge_frame(kDeliverMessage));
    drain(a);
    EXPECT_THROW(a.feed(cat({kWelcome, frame(wrong_mac)})), AuthenticationError);
    EXPECT_EQ(pending(a), kFailure);
    EXPECT_FALSE(a.done());
  }
}

// --- what a verifier accepts ------------------------------------------------------------

// A deliverer (Current form, kDeliverNonce) given `answer` as the MAC of its challenge.
void expect_answer_accepted(const Bytes& answer) {
  Handshake d = deliverer();
  drain(d);
  const Bytes input = frame(answer);
  EXPECT_EQ(d.feed(input), input.size());
  EXPECT_EQ(pending(d), kWelcome);
}

void expect_answer_rejected(const Bytes& answer) {
  SCOPED_TRACE("answer " + to_hex(answer));
  Handshake d = deliverer();
  drain(d);
  EXPECT_THROW(d.feed(frame(answer)), AuthenticationError);
  EXPECT_EQ(pending(d), kFailure);
}

TEST_F(HandshakeTest, VerifierAcceptsEveryAllowedDigest) {
  expect_answer_accepted(cat({ascii("{sha256}"), kSha256OfDeliver}));
  expect_answer_accepted(cat({ascii("{md5}"), kMd5OfDeliver}));
  expect_answer_accepted(cat({ascii("{sha384}"), kSha384OfDeliver}));
  expect_answer_accepted(cat({ascii("{sha3_256}"), kSha3_256OfDeliver}));
  expect_answer_accepted(cat({ascii("{sha3_384}"), kSha3_384OfDeliver}));
}

TEST_F(HandshakeTest, VerifierAcceptsCPython311sBareMd5OfTheWholeChallenge) {
  // CPython <= 3.11 answers any challenge with the bare HMAC-MD5 of all of it, prefix
  // included; a 16-byte answer is that form.
  expect_answer_accepted(kMd5OfDeliver);
}

TEST_F(HandshakeTest, LegacyVerifierAcceptsBareMd5AndNamedDigests) {
  for (const Bytes& answer : {kMd5OfDeliverLegacy, cat({kSha256Prefix, kSha256OfDeliverLegacy})}) {
    Handshake d = deliverer(ChallengeForm::Legacy);
    drain(d);
    EXPECT_EQ(d.feed(frame(answer)), frame(answer).size());
    EXPECT_EQ(pending(d), kWelcome);
  }
}

TEST_F(HandshakeTest, VerifierRejectsWrongAndMalformedAnswers) {
  Bytes flipped = cat({kSha256Prefix, kSha256OfDeliver});
  flipped.back() ^= std::byte{1};
  expect_answer_rejected(flipped);
  expect_answer_rejected(cat({kSha256Prefix, kSha256OfDeliverWrongKey}));
  // A MAC of another challenge, and MACs of the nonce without the prefix it came with.
  expect_answer_rejected(cat({kSha256Prefix, kSha256OfAnswer}));
  expect_answer_rejected(from_hex("92adca1ea921bbfa440f5af27fc37464"));
  expect_answer_rejected(
      cat({kSha256Prefix, from_hex("20494f277d118d768bd2e3aa14a5f1fb3da324466d2e799b9c015c6b8c9fa312")}));
  // A digest named but with another's length, or truncated.
  expect_answer_rejected(cat({ascii("{sha384}"), kSha256OfDeliver}));
  expect_answer_rejected(cat({kSha256Prefix, Bytes(kSha256OfDeliver.begin(), kSha256OfDeliver.end() - 1)}));
  expect_answer_rejected(cat({ascii("{md5}"), kMd5OfDeliver, Bytes{std::byte{0}}}));
  // Digests CPython does not allow, and prefixes that are not one.
  expect_answer_rejected(cat({ascii("{sha1}"), Bytes(20)}));
  expect_answer_rejected(cat({ascii("{sha512}"), Bytes(64)}));
  expect_answer_rejected(cat({ascii("{SHA256}"), kSha256OfDeliver}));
  expect_answer_rejected(cat({ascii("{}"), kSha256OfDeliver}));
  expect_answer_rejected(cat({ascii("{sha256"), kSha256OfDeliver}));
  expect_answer_rejected(cat({ascii("sha256}"), kSha256OfDeliver}));
  expect_answer_rejected(kSha256OfDeliver);  // 32 bytes, no prefix
  expect_answer_rejected(Bytes{});
  expect_answer_rejected(Bytes(20));  // 20 bytes: MD5 form, wrong length for MD5
  expect_answer_rejected(ascii("#WELCOME#"));
}

// --- hostile or broken frames ------------------------------------------------------------

// Feeds `input` to a fresh answerer, expecting AuthenticationError and no reply to it.
void expect_answerer_fails(const Bytes& input) {
  SCOPED_TRACE("input " + to_hex(input));
  Handshake a = answerer();
  EXPECT_THROW(a.feed(input), AuthenticationError);
  EXPECT_TRUE(a.output().empty()) << "a broken challenge gets no answer";
  EXPECT_FALSE(a.done());
  EXPECT_THROW(a.feed(challenge_frame(kDeliverMessage)), AuthenticationError);
}

TEST_F(HandshakeTest, OversizedFramesFailBeforeThePayloadArrives) {
  // 257 bytes announced: the header alone is enough to fail.
  expect_answerer_fails({std::byte{0}, std::byte{0}, std::byte{1}, std::byte{1}});
  expect_answerer_fails({std::byte{0x7f}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}});
  // The -1 escape with an 8-byte length near 2^64, and with 2^31.
  expect_answerer_fails(Bytes(12, std::byte{0xff}));
  expect_answerer_fails(cat({Bytes(4, std::byte{0xff}),
                             from_hex("0000000080000000")}));
  // The deliverer's reader is the same: an oversized answer.
  Handshake d = deliverer();
  drain(d);
  EXPECT_THROW(d.feed(cat({from_hex("00000101"), Bytes(257)})), AuthenticationError);
  EXPECT_FALSE(d.done());
}

TEST_F(HandshakeTest, AFrameIsTakenAsSoonAsItsLastByteArrives) {
  // An empty frame is whole once its header is: a peer that sends one and then waits for
  // the verdict must get it at once, not when (if ever) another byte comes.
  Handshake d = deliverer();
  drain(d);
  EXPECT_THROW(d.feed(frame({})), AuthenticationError);
  EXPECT_EQ(pending(d), kFailure);
  Handshake a = answerer();
  EXPECT_THROW(a.feed(frame({})), AuthenticationError);
}

TEST_F(HandshakeTest, LargestAllowedMessageIsRead) {
  // A 256-byte challenge (CPython's recv_bytes(256) limit) is within bounds; it names no
  // allowed digest, so it fails, but only once all of it has been read.
  Handshake a = answerer();
  const Bytes big = challenge_frame(Bytes(256 - 11, std::byte{'x'}));
  EXPECT_EQ(a.feed(Bytes(big.begin(), big.end() - 1)), big.size() - 1);
  EXPECT_THROW(a.feed(Bytes(big.end() - 1, big.end())), AuthenticationError);
}

TEST_F(HandshakeTest, NegativeLengthsFail) {
  expect_answerer_fails(from_hex("80000000"));
  expect_answerer_fails(from_hex("fffffffe"));
  expect_answerer_fails(cat({from_hex("fffffff0"), challenge_frame(kDeliverMessage)}));
}

TEST_F(HandshakeTest, LongFormHeaderOfASmallMessageIsAccepted) {
  // Readers accept the -1 escape for any length (docs/formats/framing.md).
  const Bytes payload = cat({ascii("#CHALLENGE#"), kDeliverMessage});
  const Bytes escaped = cat({Bytes(4, std::byte{0xff}), Bytes(7, std::byte{0}),
                             Bytes{static_cast<std::byte>(payload.size())}, payload});
  Handshake a = answerer();
  EXPECT_EQ(a.feed(escaped), escaped.size());
  EXPECT_EQ(drain(a), cat({frame(cat({kSha256Prefix, kSha256OfDeliver})), challenge_frame(kAnswerMessage)}));
}

TEST_F(HandshakeTest, GarbageInsteadOfAChallengeFails) {
  expect_answerer_fails(frame(ascii("HTTP/1.1 200 OK")));
  expect_answerer_fails(frame(cat({ascii("#CHALLENGX#"), kDeliverMessage})));
  expect_answerer_fails(frame(cat({ascii("#challenge#"), kDeliverMessage})));
  expect_answerer_fails(frame(ascii("#CHALLENGE")));
  expect_answerer_fails(frame({}));
  expect_answerer_fails(kWelcome);
  expect_answerer_fails(kFailure);
}

TEST_F(HandshakeTest, ShortChallengesFail) {
  expect_answerer_fails(challenge_frame(range(1, 19)));
  expect_answerer_fails(challenge_frame(range(1, 16)));  // an MD5's length, still too short
  expect_answerer_fails(challenge_frame({}));
  expect_answerer_fails(challenge_frame(ascii("{sha256}")));
}

TEST_F(HandshakeTest, ChallengesNamingNoAllowedDigestFail) {
  expect_answerer_fails(challenge_frame(cat({ascii("{sha1}"), kDeliverNonce})));
  expect_answerer_fails(challenge_frame(cat({ascii("{sha512}"), kDeliverNonce})));
  expect_answerer_fails(challenge_frame(cat({ascii("{}"), kDeliverNonce})));
  expect_answerer_fails(challenge_frame(cat({ascii("{sha256"), kDeliverNonce})));  // no '}'
  expect_answerer_fails(challenge_frame(cat({ascii("{SHA256}"), kDeliverNonce})));
  expect_answerer_fails(challenge_frame(kDeliverNonce));  // 40 bytes, no prefix
  expect_answerer_fails(challenge_frame(range(0x30, 21)));  // neither 20 bytes nor prefixed
}

TEST_F(HandshakeTest, ChallengesNamingAnotherAllowedDigestGetThatDigest) {
  // The answer follows the challenge's digest (CPython's _create_response).
  const Bytes message = cat({ascii("{sha384}"), kDeliverNonce});
  Handshake a = answerer();
  a.feed(challenge_frame(message));
  const Bytes expected_mac = hmac_digest("sha384", kKey, message);
  ASSERT_EQ(expected_mac.size(), 48u);
  EXPECT_EQ(drain(a), cat({frame(cat({ascii("{sha384}"), expected_mac})), challenge_frame(kAnswerMessage)}));
}

TEST_F(HandshakeTest, AnswererAcceptsOnlyWelcomeAsTheVerdict) {
  for (const Bytes& verdict : {frame(ascii("#WELCOME#x")), frame(ascii("#WELCOME")),
                               frame(ascii("#welcome#")), frame({}), kFailure,
                               challenge_frame(kDeliverMessage)}) {
    SCOPED_TRACE(to_hex(verdict));
    Handshake a = answerer();
    a.feed(challenge_frame(kDeliverMessage));
    drain(a);
    EXPECT_THROW(a.feed(verdict), AuthenticationError);
    EXPECT_FALSE(a.done());
  }
}

TEST_F(HandshakeTest, DelivererAcceptsOnlyWelcomeAsTheVerdict) {
  for (const Bytes& verdict : {frame(ascii("#WELCOME#\n")), kFailure, frame({})}) {
    SCOPED_TRACE(to_hex(verdict));
    Handshake d = deliverer();
    drain(d);
    d.feed(cat({frame(cat({kSha256Prefix, kSha256OfDeliver})), challenge_frame(kAnswerMessage)}));
    EXPECT_EQ(drain(d), cat({kWelcome, frame(cat({kSha256Prefix, kSha256OfAnswer}))}));
    EXPECT_THROW(d.feed(verdict), AuthenticationError);
    EXPECT_FALSE(d.done());
  }
}

TEST_F(HandshakeTest, DelivererRejectsABrokenChallengeFromTheAnswerer) {
  Handshake d = deliverer();
  drain(d);
  EXPECT_THROW(d.feed(cat({frame(cat({kSha256Prefix, kSha256OfDeliver})), challenge_frame(range(1, 5))})),
               AuthenticationError);
  // The answer was good: its #WELCOME# went out before the challenge was read.
  EXPECT_EQ(pending(d), kWelcome);
  EXPECT_FALSE(d.done());
}

// --- hmac_digest ---------------------------------------------------------------------------

TEST_F(HandshakeTest, HmacMd5MatchesRfc2202) {
  EXPECT_EQ(hmac_digest("md5", Bytes(16, std::byte{0x0b}), ascii("Hi There")),
            from_hex("9294727a3638bb1c13f48ef8158bfc9d"));
  EXPECT_EQ(hmac_digest("md5", ascii("Jefe"), ascii("what do ya want for nothing?")),
            from_hex("750c783e6ab0b503eaa86e310a5db738"));
  EXPECT_EQ(hmac_digest("md5", Bytes(80, std::byte{0xaa}),
                        ascii("Test Using Larger Than Block-Size Key - Hash Key First")),
            from_hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"));
  EXPECT_EQ(hmac_digest("md5", Bytes(80, std::byte{0xaa}),
                        ascii("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data")),
            from_hex("6f630fad67cda0ee1fb1f562db3aa53e"));
}

TEST_F(HandshakeTest, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(hmac_digest("sha256", Bytes(20, std::byte{0x0b}), ascii("Hi There")),
            from_hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
  EXPECT_EQ(hmac_digest("sha256", ascii("Jefe"), ascii("what do ya want for nothing?")),
            from_hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  EXPECT_EQ(hmac_digest("sha256", Bytes(131, std::byte{0xaa}),
                        ascii("Test Using Larger Than Block-Size Key - Hash Key First")),
            from_hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
  EXPECT_EQ(hmac_digest("sha256", Bytes(131, std::byte{0xaa}),
                        ascii("This is a test using a larger than block-size key and a larger than "
                              "block-size data. The key needs to be hashed before being used by the "
                              "HMAC algorithm.")),
            from_hex("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
  EXPECT_EQ(hmac_digest("sha384", ascii("Jefe"), ascii("what do ya want for nothing?")),
            from_hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
                     "8e2240ca5e69e2c78b3239ecfab21649"));
}

TEST_F(HandshakeTest, HmacOtherDigestsMatchPython) {
  // Keys longer than every block size (sha3_256's is 136 bytes).
  const Bytes long_key = range(0, 200);
  const Bytes fox = ascii("The quick brown fox");
  EXPECT_EQ(hmac_digest("sha3_256", long_key, fox),
            from_hex("d8e8df093682e0cc5a646f2f05d2ed6431313e544496b707790f281578a1a99b"));
  EXPECT_EQ(hmac_digest("sha3_384", long_key, fox),
            from_hex("2354c8076543174e22275ed21e3f13f86332192c8d8b69cae9e89c34b63cf84d"
                     "af65460e783ecc3c29763457658135ce"));
  EXPECT_EQ(hmac_digest("sha384", long_key, fox),
            from_hex("b35714a02e5132224ebe8bc1175278acf34792fa1c2a26ff2cc4c328c41abccc"
                     "108899581aa2a1bd7c5aad56479e50b6"));
  EXPECT_EQ(hmac_digest("md5", {}, {}), from_hex("74e6f7298a9c2d168935f58c001bad88"));
  EXPECT_EQ(hmac_digest("sha256", {}, {}),
            from_hex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"));
  EXPECT_EQ(hmac_digest("sha3_256", {}, {}),
            from_hex("e841c164e5b4f10c9f3985587962af72fd607a951196fc92fb3a5251941784ea"));
}

TEST_F(HandshakeTest, HmacOfAnUnlistedDigestIsEmpty) {
  for (const std::string_view name : {"sha1", "sha512", "md4", "", "SHA256", "sha256 ", "sha3-256"})
    EXPECT_TRUE(hmac_digest(name, kKey, kDeliverMessage).empty()) << "'" << name << "'";
}

}  // namespace
