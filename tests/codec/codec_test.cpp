// Tests of ipckit/codec.hpp: round trips, pinned bytes (docs/formats/codec.md), errors
// with their messages, limits on hostile input. Python interop: python_interop_test.cpp.
#include "ipckit/codec.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "ipckit_test.hpp"

namespace {

using ipckit::Bytes;
using ipckit::DecodeError;
using ipckit::DecodeLimits;
using CodecTest = ipckit::test::Test;

// ------------------------------------------------------------------ types under test

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  IPCKIT_CODABLE(x, y, label)
  bool operator==(const Point&) const = default;
};

struct Item {
  std::string name;
  double price = 0;
  std::optional<std::string> note = "default";  // a missing note must still become nullopt
  std::vector<int> tags;
  IPCKIT_CODABLE(name, price, note, tags)
  bool operator==(const Item&) const = default;
};

struct Order {
  std::uint64_t id = 0;
  std::vector<Item> items;
  std::map<std::string, Point> places;
  std::optional<Point> origin;
  IPCKIT_CODABLE(id, items, places, origin)
  bool operator==(const Order&) const = default;
};

// Order with the price as a str: encodes what Order must reject.
struct BadItem {
  std::string name;
  std::string price;
  IPCKIT_CODABLE(name, price)
};
struct BadOrder {
  std::uint64_t id = 0;
  std::vector<BadItem> items;
  std::map<std::string, Point> places;
  IPCKIT_CODABLE(id, items, places)
};

class Account {
 public:
  Account() = default;
  Account(std::string owner, std::int64_t cents) : owner_(std::move(owner)), cents_(cents) {}
  const std::string& owner() const { return owner_; }
  std::int64_t cents() const { return cents_; }

 private:
  std::string owner_;
  std::int64_t cents_ = 0;
  IPCKIT_CODABLE(owner_, cents_)  // in a private section
};

struct Wide {  // 33 fields
  int f00 = 0, f01 = 1, f02 = 2, f03 = 3, f04 = 4, f05 = 5, f06 = 6, f07 = 7, f08 = 8, f09 = 9,
      f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15, f16 = 16, f17 = 17, f18 = 18,
      f19 = 19, f20 = 20, f21 = 21, f22 = 22, f23 = 23, f24 = 24, f25 = 25, f26 = 26, f27 = 27,
      f28 = 28, f29 = 29, f30 = 30, f31 = 31;
  std::string f32 = "last";
  IPCKIT_CODABLE(f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, f12, f13, f14, f15,
                 f16, f17, f18, f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31,
                 f32)
  bool operator==(const Wide&) const = default;
};

struct Nothing {
  IPCKIT_CODABLE()
};

enum class Color : std::uint8_t { Red, Green, Blue };
enum Plain { kLow = -5, kHigh = 100000 };

// A user type with its own Codec: degrees as a float64.
struct Celsius {
  double degrees = 0;
};

// A recursive user type: nested arrays of any depth, through ValueView.
struct Tree {
  std::vector<Tree> children;
};

// A user Codec that itself calls decode() (nested decode on one thread).
struct Envelope {
  Point inner;
};

// Writes one element, then throws: encode_into must undo the partial write.
struct Failing {};

// Its constructor from int throws, which leaves a variant valueless.
struct Boom {
  Boom() = default;
  explicit Boom(int) { throw std::runtime_error("boom"); }
  std::string text;  // not trivially copyable, so std::variant cannot stay never-valueless
};

}  // namespace

template <>
struct ipckit::Codec<Celsius> {
  static void encode(Encoder& out, const Celsius& value) { out.write_float64(value.degrees); }
  static Celsius decode(const ValueView& in) { return Celsius{in.get_float64()}; }
};

template <>
struct ipckit::Codec<Tree> {
  static void encode(Encoder& out, const Tree& tree) {
    out.write_array_header(tree.children.size());
    for (const auto& child : tree.children) encode(out, child);
  }
  static Tree decode(const ValueView& in) {
    Tree tree;
    const std::size_t n = in.array_size();
    for (std::size_t i = 0; i < n; ++i) tree.children.push_back(decode(in.element(i)));
    return tree;
  }
};

template <>
struct ipckit::Codec<Envelope> {
  static void encode(Encoder& out, const Envelope& value) {
    out.write_bin(ipckit::encode(value.inner));
  }
  static Envelope decode(const ValueView& in) {
    return Envelope{ipckit::decode<Point>(in.get_bin())};
  }
};

template <>
struct ipckit::Codec<Boom> {
  static void encode(Encoder& out, const Boom&) { out.write_nil(); }
};

template <>
struct ipckit::Codec<Failing> {
  static void encode(Encoder& out, const Failing&) {
    out.write_array_header(1);
    throw std::runtime_error("failing codec");
  }
};

namespace {

// ------------------------------------------------------------------ helpers

Bytes hex(std::string_view text) {
  Bytes out;
  auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < text.size();) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    out.push_back(static_cast<std::byte>(digit(text[i]) * 16 + digit(text[i + 1])));
    i += 2;
  }
  return out;
}

std::string to_hex(const Bytes& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::byte b : bytes) {
    out += kDigits[std::to_integer<int>(b) >> 4];
    out += kDigits[std::to_integer<int>(b) & 0xf];
  }
  return out;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

template <class T>
T round_trip(const T& value) {
  return ipckit::decode<T>(ipckit::encode(value));
}

// The message of the DecodeError that decoding `bytes` as T throws.
template <class T>
std::string decode_error(const Bytes& bytes, const DecodeLimits& limits = {}) {
  try {
    (void)ipckit::decode<T>(bytes, limits);
  } catch (const DecodeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "decoding " << to_hex(bytes) << " did not throw DecodeError";
  return {};
}

template <class T>
void expect_integer_round_trips() {
  using L = std::numeric_limits<T>;
  const std::vector<std::int64_t> probes = {0,
                                            1,
                                            -1,
                                            31,
                                            32,
                                            -32,
                                            -33,
                                            127,
                                            128,
                                            -128,
                                            -129,
                                            255,
                                            256,
                                            32767,
                                            32768,
                                            -32768,
                                            -32769,
                                            65535,
                                            65536,
                                            INT32_MAX,
                                            INT32_MIN,
                                            1LL << 32,
                                            -(1LL << 31) - 1,
                                            INT64_MAX,
                                            INT64_MIN};
  for (std::int64_t p : probes) {
    if constexpr (std::is_signed_v<T>) {
      if (p < static_cast<std::int64_t>(L::min()) || p > static_cast<std::int64_t>(L::max()))
        continue;
    } else {
      if (p < 0 || static_cast<std::uint64_t>(p) > static_cast<std::uint64_t>(L::max())) continue;
    }
    EXPECT_EQ(round_trip(static_cast<T>(p)), static_cast<T>(p)) << p;
  }
  EXPECT_EQ(round_trip(L::min()), L::min());
  EXPECT_EQ(round_trip(L::max()), L::max());
}

// ------------------------------------------------------------------ round trips

TEST_F(CodecTest, BoolRoundTrips) {
  EXPECT_TRUE(round_trip(true));
  EXPECT_FALSE(round_trip(false));
}

TEST_F(CodecTest, EveryIntegerTypeRoundTripsItsBoundaries) {
  expect_integer_round_trips<std::int8_t>();
  expect_integer_round_trips<std::uint8_t>();
  expect_integer_round_trips<std::int16_t>();
  expect_integer_round_trips<std::uint16_t>();
  expect_integer_round_trips<std::int32_t>();
  expect_integer_round_trips<std::uint32_t>();
  expect_integer_round_trips<std::int64_t>();
  expect_integer_round_trips<std::uint64_t>();
  expect_integer_round_trips<char>();
  expect_integer_round_trips<signed char>();
  expect_integer_round_trips<unsigned char>();
  expect_integer_round_trips<short>();
  expect_integer_round_trips<long>();
  expect_integer_round_trips<unsigned long long>();
  expect_integer_round_trips<char8_t>();
  expect_integer_round_trips<char16_t>();
  expect_integer_round_trips<char32_t>();
  expect_integer_round_trips<wchar_t>();
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint64_t>::max()), UINT64_MAX);
  EXPECT_EQ(round_trip(std::numeric_limits<std::int64_t>::min()), INT64_MIN);
}

TEST_F(CodecTest, IntegersDecodeIntoAnyTypeThatHoldsThem) {
  EXPECT_EQ(ipckit::decode<std::int8_t>(ipckit::encode(std::uint64_t{127})), 127);
  EXPECT_EQ(ipckit::decode<std::uint8_t>(ipckit::encode(std::int64_t{255})), 255);
  EXPECT_EQ(ipckit::decode<std::int64_t>(ipckit::encode(std::uint64_t{INT64_MAX})), INT64_MAX);
  EXPECT_EQ(ipckit::decode<std::int16_t>(ipckit::encode(std::int64_t{-32768})), -32768);
}

TEST_F(CodecTest, FloatsRoundTripIncludingSpecialValues) {
  for (double d :
       {0.0, 1.5, -2.25, 3.141592653589793, 1e308, -1e-308, 5e-324,
        std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()})
    EXPECT_EQ(round_trip(d), d);
  for (float f : {0.0f, 1.5f, -2.25f, 0.1f, std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity()})
    EXPECT_EQ(round_trip(f), f);
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::signbit(round_trip(-0.0)));
  EXPECT_TRUE(std::signbit(round_trip(-0.0f)));
}

TEST_F(CodecTest, FloatingTypesAcceptExactIntegersAndFloatRoundsFloat64) {
  EXPECT_EQ(ipckit::decode<double>(ipckit::encode(3)), 3.0);
  EXPECT_EQ(ipckit::decode<double>(ipckit::encode(-(1LL << 53))), -9007199254740992.0);
  EXPECT_EQ(ipckit::decode<double>(ipckit::encode(INT64_MIN)), -9223372036854775808.0);
  EXPECT_EQ(ipckit::decode<double>(ipckit::encode(1ULL << 63)), 9223372036854775808.0);
  EXPECT_EQ(ipckit::decode<float>(ipckit::encode(16777216)), 16777216.0f);
  EXPECT_EQ(ipckit::decode<double>(ipckit::encode(1.5f)), 1.5);
  EXPECT_EQ(ipckit::decode<float>(ipckit::encode(0.1)), 0.1f);  // rounded to nearest
  EXPECT_EQ(ipckit::decode<float>(ipckit::encode(std::numeric_limits<double>::infinity())),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(ipckit::decode<float>(ipckit::encode(std::nan("")))));
}

TEST_F(CodecTest, StringsRoundTripAtEveryLengthForm) {
  using namespace std::string_literals;
  for (const std::string& s :
       {""s, "a"s, "h\u00e9llo \u2713 \U0001F600"s, "embedded\0nul\0"s, std::string(31, 'x'),
        std::string(32, 'x'), std::string(255, 'y'), std::string(256, 'y'), std::string(65535, 'z'),
        std::string(65536, 'z'), std::string(1 << 20, '\0')})
    EXPECT_EQ(round_trip(s), s) << s.size();
  EXPECT_EQ(ipckit::decode<std::string>(ipckit::encode(std::string_view("view"))), "view");
  EXPECT_EQ(ipckit::decode<std::string>(ipckit::encode("literal")), "literal");
  const char* c_string = "c string";
  EXPECT_EQ(ipckit::decode<std::string>(ipckit::encode(c_string)), "c string");
}

TEST_F(CodecTest, BytesRoundTripAsBin) {
  for (std::size_t n : {0u, 1u, 255u, 256u, 65535u, 65536u, 100000u}) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(i * 7);
    EXPECT_EQ(round_trip(b), b) << n;
  }
  const std::array<std::byte, 4> key{std::byte{1}, std::byte{0}, std::byte{0xff}, std::byte{7}};
  EXPECT_EQ(round_trip(key), key);
  const Bytes raw{std::byte{9}, std::byte{8}};
  EXPECT_EQ(ipckit::decode<Bytes>(ipckit::encode(std::span<const std::byte>(raw))), raw);
}

TEST_F(CodecTest, SequencesRoundTrip) {
  EXPECT_EQ(round_trip(std::vector<int>{}), std::vector<int>{});
  EXPECT_EQ(round_trip(std::vector<int>{1, -2, 3}), (std::vector<int>{1, -2, 3}));
  std::vector<std::uint64_t> large(200000);
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = i * i;
  EXPECT_EQ(round_trip(large), large);
  EXPECT_EQ(round_trip(std::deque<std::string>{"a", "b"}), (std::deque<std::string>{"a", "b"}));
  EXPECT_EQ(round_trip(std::list<double>{1.5, 2.5}), (std::list<double>{1.5, 2.5}));
  EXPECT_EQ(round_trip(std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
  EXPECT_EQ(round_trip(std::multiset<int>{1, 1, 2}), (std::multiset<int>{1, 1, 2}));
  EXPECT_EQ(round_trip(std::unordered_set<std::string>{"x", "y"}),
            (std::unordered_set<std::string>{"x", "y"}));
  EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}),
            (std::vector<bool>{true, false, true}));
  const std::vector<std::vector<std::string>> nested{{}, {"a"}, {"b", "c"}};
  EXPECT_EQ(round_trip(nested), nested);
  EXPECT_EQ(round_trip(std::array<int, 3>{7, 8, 9}), (std::array<int, 3>{7, 8, 9}));
  EXPECT_EQ(round_trip(std::array<std::string, 0>{}), (std::array<std::string, 0>{}));
  // a set keeps one of equal elements
  EXPECT_EQ(ipckit::decode<std::set<int>>(ipckit::encode(std::vector<int>{2, 2, 1})),
            (std::set<int>{1, 2}));
}

TEST_F(CodecTest, MapsRoundTrip) {
  const std::map<std::string, int> m{{"a", 1}, {"b", -2}};
  EXPECT_EQ(round_trip(m), m);
  const std::unordered_map<int, std::vector<std::string>> u{{1, {"x"}}, {-7, {}}};
  EXPECT_EQ(round_trip(u), u);
  EXPECT_EQ(round_trip(std::map<std::string, int>{}), (std::map<std::string, int>{}));
  std::map<std::uint32_t, std::uint32_t> big;
  for (std::uint32_t i = 0; i < 70000; ++i) big[i] = i * 3;
  EXPECT_EQ(round_trip(big), big);
  // A repeated key: the last value wins, as in a Python dict.
  EXPECT_EQ((ipckit::decode<std::map<std::string, int>>(hex("82 a161 01 a161 02"))),
            (std::map<std::string, int>{{"a", 2}}));
}

TEST_F(CodecTest, OptionalPairTupleVariantRoundTrip) {
  EXPECT_EQ(round_trip(std::optional<int>{}), std::nullopt);
  EXPECT_EQ(round_trip(std::optional<int>{5}), 5);
  EXPECT_EQ(round_trip(std::vector<std::optional<std::string>>{"a", std::nullopt}),
            (std::vector<std::optional<std::string>>{"a", std::nullopt}));
  EXPECT_EQ(round_trip(std::pair<int, std::string>{1, "one"}),
            (std::pair<int, std::string>{1, "one"}));
  const std::tuple<bool, double, std::string, std::vector<int>> t{true, 0.5, "s", {1}};
  EXPECT_EQ(round_trip(t), t);
  EXPECT_EQ(round_trip(std::tuple<>{}), std::tuple<>{});
  using V = std::variant<std::monostate, int, std::string, Point>;
  for (const V& v : {V{}, V{42}, V{"str"}, V{Point{1, 2, "p"}}}) EXPECT_EQ(round_trip(v), v);
  using Same = std::variant<int, int>;
  EXPECT_EQ(round_trip(Same{std::in_place_index<1>, 3}).index(), 1u);
}

TEST_F(CodecTest, EnumsAndNilTypesRoundTrip) {
  EXPECT_EQ(round_trip(Color::Blue), Color::Blue);
  EXPECT_EQ(round_trip(kLow), kLow);
  EXPECT_EQ(round_trip(kHigh), kHigh);
  EXPECT_EQ(ipckit::decode<int>(ipckit::encode(Color::Green)), 1);
  // An enum accepts any value of its underlying type, named or not.
  EXPECT_EQ(static_cast<int>(ipckit::decode<Color>(ipckit::encode(200))), 200);
  EXPECT_EQ(round_trip(std::monostate{}), std::monostate{});
  EXPECT_EQ(round_trip(nullptr), nullptr);
  EXPECT_EQ(ipckit::decode<std::optional<int>>(ipckit::encode(nullptr)), std::nullopt);
}

TEST_F(CodecTest, StructsRoundTrip) {
  const Point p{-3, 2.5, "h\u00e9"};
  EXPECT_EQ(round_trip(p), p);
  Order order{7, {{"pen", 1.25, std::nullopt, {1, 2}}, {"ink", 3, "blue", {}}}, {}, std::nullopt};
  order.places["home"] = Point{1, 2, "h"};
  EXPECT_EQ(round_trip(order), order);
  order.origin = Point{0, 0, "o"};
  EXPECT_EQ(round_trip(order), order);
  const Order const_order = order;  // encoding works on const objects
  EXPECT_EQ(ipckit::decode<Order>(ipckit::encode(const_order)), order);

  const Account account("ann", -5);
  const auto back = round_trip(account);
  EXPECT_EQ(back.owner(), "ann");
  EXPECT_EQ(back.cents(), -5);

  Wide wide;
  wide.f31 = -31;
  EXPECT_EQ(round_trip(wide), wide);
  EXPECT_EQ(ipckit::encode(Nothing{}), hex("80"));
  (void)round_trip(Nothing{});
}

TEST_F(CodecTest, StructDecodingIgnoresUnknownKeysAndOrderAndDefaultsOptionals) {
  // {"tags": [], "extra": [1, 2], 5: nil, "price": 2.0, "name": "n"}: keys out of order,
  // unknown str and non-str keys, no "note".
  Bytes bytes;
  ipckit::Encoder out(bytes);
  out.write_map_header(5);
  out.write_str("tags");
  out.write_array_header(0);
  out.write_str("extra");
  ipckit::encode_into(bytes, std::vector<int>{1, 2});
  out.write_int(5);
  out.write_nil();
  out.write_str("price");
  out.write_float64(2.0);
  out.write_str("name");
  out.write_str("n");
  const Item item = ipckit::decode<Item>(bytes);
  EXPECT_EQ(item, (Item{"n", 2.0, std::nullopt, {}}));
}

TEST_F(CodecTest, UserCodecsWork) {
  EXPECT_EQ(ipckit::encode(Celsius{21.5}), ipckit::encode(21.5));
  EXPECT_EQ(round_trip(Celsius{-4}).degrees, -4);
  EXPECT_EQ(round_trip(std::vector<Celsius>{{1}, {2}})[1].degrees, 2);
  Tree tree;
  tree.children.resize(2);
  tree.children[1].children.resize(3);
  EXPECT_EQ(round_trip(tree).children[1].children.size(), 3u);
  // A Codec that decodes inside a decode.
  const auto envelopes = round_trip(std::vector<Envelope>{{Point{1, 1, "a"}}, {Point{2, 2, "b"}}});
  EXPECT_EQ(envelopes[1].inner, (Point{2, 2, "b"}));
}

TEST_F(CodecTest, EncodeIntoAppendsAndUndoesAFailedEncode) {
  Bytes buffer = hex("aa");
  ipckit::encode_into(buffer, 1);
  ipckit::encode_into(buffer, std::string("x"));
  EXPECT_EQ(buffer, hex("aa 01 a178"));
  EXPECT_THROW(ipckit::encode_into(buffer, std::vector<Failing>(1)), std::runtime_error);
  EXPECT_EQ(buffer, hex("aa 01 a178"));
}

TEST_F(CodecTest, EncoderRefusesSizesMessagePackCannotHold) {
  Bytes buffer;
  ipckit::Encoder out(buffer);
  EXPECT_THROW(out.write_array_header(std::size_t{1} << 32), ipckit::MessageTooLarge);
  EXPECT_THROW(out.write_map_header(std::size_t{1} << 32), ipckit::MessageTooLarge);
  EXPECT_TRUE(buffer.empty());
  out.write_array_header(0xffffffffu);
  EXPECT_EQ(buffer, hex("dd ffffffff"));
}

TEST_F(CodecTest, ValuelessVariantIsNotEncoded) {
  std::variant<int, Boom> v;
  EXPECT_THROW(v.emplace<1>(1), std::runtime_error);
  ASSERT_TRUE(v.valueless_by_exception());
  Bytes buffer = hex("aa");
  EXPECT_THROW(ipckit::encode_into(buffer, v), ipckit::ValueError);
  EXPECT_EQ(buffer, hex("aa"));
}

// ------------------------------------------------------------------ pinned bytes

TEST_F(CodecTest, ExactBytesOfScalars) {
  EXPECT_EQ(to_hex(ipckit::encode(0)), "00");
  EXPECT_EQ(to_hex(ipckit::encode(127)), "7f");
  EXPECT_EQ(to_hex(ipckit::encode(128)), "cc80");
  EXPECT_EQ(to_hex(ipckit::encode(256)), "cd0100");
  EXPECT_EQ(to_hex(ipckit::encode(65536)), "ce00010000");
  EXPECT_EQ(to_hex(ipckit::encode(std::int64_t{1} << 32)), "cf0000000100000000");
  EXPECT_EQ(to_hex(ipckit::encode(-1)), "ff");
  EXPECT_EQ(to_hex(ipckit::encode(-32)), "e0");
  EXPECT_EQ(to_hex(ipckit::encode(-33)), "d0df");
  EXPECT_EQ(to_hex(ipckit::encode(-129)), "d1ff7f");
  EXPECT_EQ(to_hex(ipckit::encode(-32769)), "d2ffff7fff");
  EXPECT_EQ(to_hex(ipckit::encode(INT64_MIN)), "d38000000000000000");
  EXPECT_EQ(to_hex(ipckit::encode(UINT64_MAX)), "cfffffffffffffffff");
  EXPECT_EQ(to_hex(ipckit::encode(std::uint8_t{5})), "05");  // smallest form, whatever the type
  EXPECT_EQ(to_hex(ipckit::encode(std::int64_t{5})), "05");
  EXPECT_EQ(to_hex(ipckit::encode(true)), "c3");
  EXPECT_EQ(to_hex(ipckit::encode(false)), "c2");
  EXPECT_EQ(to_hex(ipckit::encode(std::optional<int>{})), "c0");
  EXPECT_EQ(to_hex(ipckit::encode(1.5)), "cb3ff8000000000000");
  EXPECT_EQ(to_hex(ipckit::encode(1.5f)), "ca3fc00000");
  // A float with an integral value stays a float (msgpack-cxx's packer would write 3).
  EXPECT_EQ(to_hex(ipckit::encode(3.0)), "cb4008000000000000");
  EXPECT_EQ(to_hex(ipckit::encode(-0.0)), "cb8000000000000000");
  EXPECT_EQ(to_hex(ipckit::encode(2.0f)), "ca40000000");
  EXPECT_EQ(to_hex(ipckit::encode(Color::Blue)), "02");
}

TEST_F(CodecTest, ExactBytesOfStringsBinsAndContainers) {
  EXPECT_EQ(to_hex(ipckit::encode(std::string("abc"))), "a3616263");
  EXPECT_EQ(to_hex(ipckit::encode(std::string(32, 'a'))).substr(0, 4), "d920");
  EXPECT_EQ(to_hex(ipckit::encode(std::string(256, 'a'))).substr(0, 6), "da0100");
  EXPECT_EQ(to_hex(ipckit::encode(std::string(65536, 'a'))).substr(0, 10), "db00010000");
  EXPECT_EQ(to_hex(ipckit::encode(hex("010203"))), "c403010203");
  EXPECT_EQ(to_hex(ipckit::encode(Bytes(256))).substr(0, 6), "c50100");
  EXPECT_EQ(to_hex(ipckit::encode(std::vector<int>{1, 2, 3})), "93010203");
  EXPECT_EQ(to_hex(ipckit::encode(std::vector<int>(16))).substr(0, 6), "dc0010");
  EXPECT_EQ(to_hex(ipckit::encode(std::map<std::string, int>{{"a", 1}})), "81a16101");
  std::map<int, int> sixteen;
  for (int i = 0; i < 16; ++i) sixteen[i] = i;
  EXPECT_EQ(to_hex(ipckit::encode(sixteen)).substr(0, 6), "de0010");
  EXPECT_EQ(to_hex(ipckit::encode(std::pair<int, bool>{1, true})), "9201c3");
  EXPECT_EQ(to_hex(ipckit::encode(std::tuple<>{})), "90");
  EXPECT_EQ(to_hex(ipckit::encode(std::variant<int, std::string>{"x"})), "9201a178");
  EXPECT_EQ(to_hex(ipckit::encode(std::variant<std::monostate, int>{})), "9200c0");
  EXPECT_EQ(to_hex(ipckit::encode(Point{1, 2.5, "p"})),
            "83a17801a179cb4004000000000000a56c6162656ca170");
  EXPECT_EQ(to_hex(ipckit::encode(Item{"pen", 1.25, std::nullopt, {1, 2}})),
            "84a46e616d65a370656ea57072696365cb3ff4000000000000a46e6f7465c0a474616773920102");
  EXPECT_EQ(to_hex(ipckit::encode(std::map<int, std::string>{{-1, "a"}})), "81ffa161");
  EXPECT_EQ(to_hex(ipckit::encode(std::array<std::byte, 2>{std::byte{1}, std::byte{2}})),
            "c4020102");
}

// ------------------------------------------------------------------ errors

TEST_F(CodecTest, EveryTruncationIsADecodeError) {
  Order order{UINT64_MAX, {{"pen", 1.25, "n", {1, 300, -70000}}}, {}, Point{1, -2, "o"}};
  order.places["a long key of more than thirty-one bytes"] = Point{65536, 0.5, "p"};
  const Bytes full = ipckit::encode(order);
  ASSERT_EQ(ipckit::decode<Order>(full), order);
  for (std::size_t n = 0; n < full.size(); ++n) {
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string message = decode_error<Order>(prefix);
    EXPECT_TRUE(message.starts_with("truncated MessagePack: ") ||
                message == "empty input: no MessagePack value")
        << n << ": " << message;
  }
  EXPECT_EQ(decode_error<int>({}), "empty input: no MessagePack value");
  EXPECT_EQ(decode_error<std::string>(hex("a3 6162")),
            "truncated MessagePack: the 3-byte input ends inside the value at offset 0");
  EXPECT_EQ(decode_error<std::vector<int>>(hex("93 01 cd 01")),
            "truncated MessagePack: the 4-byte input ends inside the value at offset 2");
  EXPECT_EQ((decode_error<std::map<int, int>>(hex("82 01 02 03"))),
            "truncated MessagePack: the map at offset 0 announces 2 entries but only 3 bytes "
            "follow");
}

TEST_F(CodecTest, GarbageAndMutationsAreDecodeErrorsOrValues) {
  std::mt19937 random(12345);  // fixed seed: reproducible
  Order order{
      42, {{"pen", 1.25, "n", {1, 2}}, {"cap", -1, std::nullopt, {}}}, {}, Point{1, 2, "o"}};
  order.places["k"] = Point{3, 4, "p"};
  const Bytes valid = ipckit::encode(order);
  auto attempt = [](const Bytes& bytes) {
    try {
      (void)ipckit::decode<Order>(bytes);
    } catch (const DecodeError&) {
    }
    try {
      (void)ipckit::decode<Tree>(bytes);
    } catch (const DecodeError&) {
    }
    try {
      (void)ipckit::decode<std::vector<std::variant<int, std::string, Bytes>>>(bytes);
    } catch (const DecodeError&) {
    }
    try {
      (void)ipckit::decode<std::map<std::string, std::optional<double>>>(bytes);
    } catch (const DecodeError&) {
    }
  };
  for (int round = 0; round < 20000; ++round) {
    Bytes bytes;
    if (round % 2 == 0) {
      bytes.resize(random() % 64);
      for (auto& b : bytes) b = static_cast<std::byte>(random());
    } else {
      bytes = valid;
      for (int flips = 1 + static_cast<int>(random() % 4); flips > 0; --flips)
        bytes[random() % bytes.size()] = static_cast<std::byte>(random());
    }
    attempt(bytes);
  }
}

TEST_F(CodecTest, WrongTypesNameExpectedFoundAndPath) {
  EXPECT_EQ(decode_error<int>(ipckit::encode("abc")), "$: expected int32, found str \"abc\"");
  EXPECT_EQ(decode_error<bool>(ipckit::encode(1)), "$: expected bool, found integer 1");
  EXPECT_EQ(decode_error<std::string>(ipckit::encode(hex("00"))),
            "$: expected str, found bin of 1 bytes");
  EXPECT_EQ(decode_error<Bytes>(ipckit::encode("x")), "$: expected bin, found str \"x\"");
  EXPECT_EQ(decode_error<double>(ipckit::encode(true)), "$: expected float64, found bool true");
  EXPECT_EQ(decode_error<float>(ipckit::encode(nullptr)), "$: expected float32, found nil");
  EXPECT_EQ(decode_error<int>(ipckit::encode(1.5)), "$: expected int32, found float64 1.5");
  EXPECT_EQ(decode_error<std::vector<int>>(ipckit::encode(std::map<int, int>{{1, 2}})),
            "$: expected array, found map of 1");
  EXPECT_EQ((decode_error<std::map<int, int>>(ipckit::encode(std::vector<int>{1}))),
            "$: expected map, found array of 1");
  EXPECT_EQ(decode_error<std::monostate>(ipckit::encode(0)), "$: expected nil, found integer 0");
  EXPECT_EQ(decode_error<int>(hex("d4 01 00")), "$: expected int32, found ext type 1 of 1 bytes");
  EXPECT_EQ(decode_error<int>(ipckit::encode(std::string(100, 'q'))),
            "$: expected int32, found str \"" + std::string(40, 'q') + "\"... (100 bytes)");
  EXPECT_EQ(decode_error<int>(ipckit::encode(std::string("a\0\n\"\\\x7f", 6))),
            "$: expected int32, found str \"a\\x00\\n\\\"\\\\\\x7f\"");
  const std::string point_error = decode_error<Point>(ipckit::encode(std::vector<int>{1, 2, 3}));
  EXPECT_EQ(point_error, "$: expected map (struct (anonymous namespace)::Point), found array of 3");
}

TEST_F(CodecTest, ErrorPathsLeadToTheBadValue) {
  BadOrder bad{1, {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "abc"}}, {}};
  EXPECT_EQ(decode_error<Order>(ipckit::encode(bad)),
            "$.items[0].price: expected float64, found str \"1\"");
  // map values: identifier keys as .key, others quoted, integers in brackets
  EXPECT_EQ((decode_error<std::map<std::string, int>>(
                ipckit::encode(std::map<std::string, std::string>{{"k", "x"}}))),
            "$.k: expected int32, found str \"x\"");
  EXPECT_EQ((decode_error<std::map<std::string, int>>(
                ipckit::encode(std::map<std::string, std::string>{{"a \"b\"", "x"}}))),
            "$[\"a \\\"b\\\"\"]: expected int32, found str \"x\"");
  EXPECT_EQ(
      (decode_error<std::map<int, int>>(ipckit::encode(std::map<int, std::string>{{-7, "x"}}))),
      "$[-7]: expected int32, found str \"x\"");
  EXPECT_EQ(
      (decode_error<std::map<int, int>>(ipckit::encode(std::map<std::string, int>{{"a", 1}}))),
      "${key 0}: expected int32, found str \"a\"");
  // nested containers
  const std::vector<std::map<std::string, std::vector<int>>> nested{{{"xs", {1, 2}}},
                                                                    {{"ys", {3, 300}}}};
  EXPECT_EQ((decode_error<std::vector<std::map<std::string, std::vector<std::int8_t>>>>(
                ipckit::encode(nested))),
            "$[1].ys[1]: expected int8, found integer 300 (out of range)");
  EXPECT_EQ(
      (decode_error<std::tuple<int, std::string>>(ipckit::encode(std::tuple<int, int>{1, 2}))),
      "$[1]: expected str, found integer 2");
  EXPECT_EQ((decode_error<std::pair<std::string, int>>(ipckit::encode(std::pair<int, int>{1, 2}))),
            "$[0]: expected str, found integer 1");
  EXPECT_EQ(
      decode_error<std::optional<std::vector<int>>>(ipckit::encode(std::vector<std::string>{"a"})),
      "$[0]: expected int32, found str \"a\"");
  // variants
  using V = std::variant<int, std::string>;
  EXPECT_EQ(decode_error<V>(ipckit::encode(std::tuple<int, int>{5, 1})),
            "$[0]: expected variant index, found integer 5 (out of range)");
  EXPECT_EQ(decode_error<V>(ipckit::encode(std::tuple<int, int>{1, 1})),
            "$[1]: expected str, found integer 1");
  EXPECT_EQ(decode_error<V>(ipckit::encode(std::vector<int>{1})),
            "$: expected array of 2, found array of 1");
  // structs inside a map inside a struct
  Bytes places;
  ipckit::Encoder out(places);
  out.write_map_header(3);
  out.write_str("id");
  out.write_uint(1);
  out.write_str("items");
  out.write_array_header(0);
  out.write_str("places");
  out.write_map_header(1);
  out.write_str("home");
  ipckit::encode_into(places, std::map<std::string, int>{{"x", 1}, {"y", 2}, {"label", 3}});
  EXPECT_EQ(decode_error<Order>(places), "$.places.home.label: expected str, found integer 3");
}

TEST_F(CodecTest, OutOfRangeIntegersAreRejected) {
  EXPECT_EQ(decode_error<std::int8_t>(ipckit::encode(300)),
            "$: expected int8, found integer 300 (out of range)");
  EXPECT_EQ(decode_error<std::int8_t>(ipckit::encode(-129)),
            "$: expected int8, found integer -129 (out of range)");
  EXPECT_EQ(decode_error<std::uint8_t>(ipckit::encode(256)),
            "$: expected uint8, found integer 256 (out of range)");
  EXPECT_EQ(decode_error<std::uint64_t>(ipckit::encode(-1)),
            "$: expected uint64, found integer -1 (out of range)");
  EXPECT_EQ(decode_error<std::int64_t>(ipckit::encode(UINT64_MAX)),
            "$: expected int64, found integer 18446744073709551615 (out of range)");
  EXPECT_EQ(decode_error<std::int32_t>(ipckit::encode(1LL << 31)),
            "$: expected int32, found integer 2147483648 (out of range)");
  EXPECT_EQ(decode_error<std::uint16_t>(ipckit::encode(65536)),
            "$: expected uint16, found integer 65536 (out of range)");
  EXPECT_EQ(decode_error<Color>(ipckit::encode(256)),
            "$: expected uint8, found integer 256 (out of range)");
  EXPECT_EQ(decode_error<Plain>(ipckit::encode(INT64_MAX)).substr(0, 20), "$: expected int32, f");
}

TEST_F(CodecTest, InexactFloatConversionsAreRejected) {
  EXPECT_EQ(decode_error<double>(ipckit::encode((1LL << 53) + 1)),
            "$: expected float64, found integer 9007199254740993 (not exactly representable)");
  EXPECT_EQ(decode_error<double>(ipckit::encode(UINT64_MAX)),
            "$: expected float64, found integer 18446744073709551615 (not exactly representable)");
  EXPECT_EQ(decode_error<double>(ipckit::encode(INT64_MAX)),
            "$: expected float64, found integer 9223372036854775807 (not exactly representable)");
  EXPECT_EQ(decode_error<float>(ipckit::encode(16777217)),
            "$: expected float32, found integer 16777217 (not exactly representable)");
  EXPECT_EQ(decode_error<float>(ipckit::encode(1e300)),
            "$: expected float32, found float64 1e+300 (out of range)");
  EXPECT_EQ(decode_error<double>(ipckit::encode("abc")), "$: expected float64, found str \"abc\"");
}

TEST_F(CodecTest, FixedLengthsAreChecked) {
  EXPECT_EQ((decode_error<std::array<int, 3>>(ipckit::encode(std::vector<int>{1, 2}))),
            "$: expected array of 3, found array of 2");
  EXPECT_EQ((decode_error<std::array<int, 1>>(ipckit::encode(std::vector<int>{1, 2}))),
            "$: expected array of 1, found array of 2");
  EXPECT_EQ((decode_error<std::pair<int, int>>(ipckit::encode(std::vector<int>{1, 2, 3}))),
            "$: expected array of 2, found array of 3");
  EXPECT_EQ(decode_error<std::tuple<int>>(ipckit::encode(std::vector<int>{})),
            "$: expected array of 1, found array of 0");
  EXPECT_EQ((decode_error<std::array<std::byte, 4>>(ipckit::encode(hex("010203")))),
            "$: expected bin of 4 bytes, found bin of 3 bytes");
}

TEST_F(CodecTest, MissingFieldsAreNamed) {
  EXPECT_EQ(decode_error<Point>(ipckit::encode(std::map<std::string, int>{{"x", 1}, {"y", 2}})),
            "$: missing field \"label\" of struct (anonymous namespace)::Point");
  Bytes bytes;
  ipckit::Encoder out(bytes);
  out.write_map_header(2);
  out.write_str("id");
  out.write_uint(1);
  out.write_str("items");
  out.write_array_header(2);
  ipckit::encode_into(bytes, Item{"ok", 1, std::nullopt, {}});
  ipckit::encode_into(bytes, std::map<std::string, std::string>{{"name", "no price"}});
  EXPECT_EQ(decode_error<Order>(bytes),
            "$.items[1]: missing field \"price\" of struct (anonymous namespace)::Item");
}

TEST_F(CodecTest, TrailingBytesAreRejected) {
  EXPECT_EQ(decode_error<int>(ipckit::encode(1) + hex("c0")),
            "1 trailing bytes after the MessagePack value (it ends at offset 1 of 2)");
  EXPECT_NE(decode_error<Point>(ipckit::encode(Point{}) + ipckit::encode(Point{})).find("trailing"),
            std::string::npos);
}

TEST_F(CodecTest, MalformedBytesAreRejected) {
  EXPECT_EQ(decode_error<int>(hex("c1")),
            "malformed MessagePack: the reserved byte 0xc1 at offset 0 where a value starts");
  EXPECT_EQ(decode_error<std::vector<int>>(hex("92 01 c1")),
            "malformed MessagePack: the reserved byte 0xc1 at offset 2 where a value starts");
  // 0xc1 inside a str is just a byte
  EXPECT_EQ(ipckit::decode<std::string>(hex("a1 c1")), "\xc1");
}

TEST_F(CodecTest, DepthBombIsRejectedByTheLimit) {
  Bytes bomb(100000, std::byte{0x91});  // 100k arrays of one element, each inside the last
  bomb.push_back(std::byte{0xc0});
  EXPECT_EQ(decode_error<Tree>(bomb), "arrays/maps nested deeper than DecodeLimits::max_depth 64");
  Bytes map_bomb;  // {nil: {nil: ...}}
  for (int i = 0; i < 100000; ++i) {
    map_bomb.push_back(std::byte{0x81});
    map_bomb.push_back(std::byte{0xc0});
  }
  map_bomb.push_back(std::byte{0xc0});
  EXPECT_EQ(decode_error<Tree>(map_bomb),
            "arrays/maps nested deeper than DecodeLimits::max_depth 64");

  auto nested = [](int depth) {
    Tree tree;
    for (int i = 0; i < depth; ++i) {
      Tree outer;
      outer.children.push_back(std::move(tree));
      tree = std::move(outer);
    }
    return ipckit::encode(tree);  // depth + 1 arrays
  };
  EXPECT_NO_THROW((void)ipckit::decode<Tree>(nested(63)));
  EXPECT_NE(decode_error<Tree>(nested(64)).find("max_depth 64"), std::string::npos);
  EXPECT_NO_THROW((void)ipckit::decode<Tree>(nested(9), {.max_depth = 10}));
  EXPECT_NE(decode_error<Tree>(nested(10), {.max_depth = 10}).find("max_depth 10"),
            std::string::npos);
  EXPECT_EQ(ipckit::decode<int>(ipckit::encode(5), {.max_depth = 0}), 5);
  EXPECT_NE(decode_error<Tree>(hex("90"), {.max_depth = 0}).find("max_depth 0"), std::string::npos);
}

TEST_F(CodecTest, HugeAnnouncedSizesAreRejectedBeforeAllocating) {
  // An array header announcing 2^32 - 1 elements, in 5 bytes.
  EXPECT_EQ(decode_error<std::vector<int>>(hex("dd ffffffff")),
            "the array at offset 0 announces 4294967295 elements, over "
            "DecodeLimits::max_elements 16777216");
  // Even when the caller lifts the limits, a header may not announce more values than the
  // bytes after it can hold.
  const DecodeLimits unlimited{.max_depth = 64,
                               .max_elements = std::numeric_limits<std::size_t>::max(),
                               .max_bytes = std::numeric_limits<std::size_t>::max()};
  EXPECT_EQ(decode_error<std::vector<int>>(hex("dd ffffffff"), unlimited),
            "truncated MessagePack: the array at offset 0 announces 4294967295 elements but "
            "only 0 bytes follow");
  EXPECT_EQ((decode_error<std::map<int, int>>(hex("df ffffffff 00"), unlimited)),
            "truncated MessagePack: the map at offset 0 announces 4294967295 entries but only "
            "1 bytes follow");
  // Nested: each open container is checked against what is left, so a truncated input of
  // nested headers that each announce about the input size is rejected at the first one,
  // before the parser allocates anything for it.
  Bytes nested;
  for (int i = 0; i < 60; ++i)
    for (int b : {0xdd, 0x00, 0x01, 0x00, 0x00}) nested.push_back(static_cast<std::byte>(b));
  nested.resize(65536 + 5, std::byte{0});
  EXPECT_EQ(decode_error<Tree>(nested, unlimited),
            "truncated MessagePack: the array at offset 5 announces 65536 elements but only "
            "65531 bytes follow");
  // str and bin lengths beyond the input: nothing is read or allocated.
  EXPECT_EQ(decode_error<std::string>(hex("db ffffffff 41")),
            "truncated MessagePack: the 6-byte input ends inside the value at offset 0");
  EXPECT_EQ(decode_error<Bytes>(hex("c6 ffffffff 41"), unlimited),
            "truncated MessagePack: the 6-byte input ends inside the value at offset 0");
  EXPECT_EQ(decode_error<int>(hex("c9 00000001 05")),
            "truncated MessagePack: the 6-byte input ends inside the value at offset 0");
}

TEST_F(CodecTest, CallerLimitsApply) {
  const DecodeLimits tight{.max_depth = 64, .max_elements = 2, .max_bytes = 3};
  EXPECT_EQ(ipckit::decode<std::vector<int>>(ipckit::encode(std::vector<int>{1, 2}), tight).size(),
            2u);
  EXPECT_EQ(decode_error<std::vector<int>>(ipckit::encode(std::vector<int>{1, 2, 3}), tight),
            "the array at offset 0 announces 3 elements, over DecodeLimits::max_elements 2");
  EXPECT_EQ((decode_error<std::map<int, int>>(
                ipckit::encode(std::vector<std::map<int, int>>{{{1, 1}, {2, 2}, {3, 3}}}), tight)),
            "the map at offset 1 announces 3 entries, over DecodeLimits::max_elements 2");
  EXPECT_EQ(ipckit::decode<std::string>(ipckit::encode("abc"), tight), "abc");
  EXPECT_EQ(decode_error<std::string>(ipckit::encode("abcd"), tight),
            "the str at offset 0 has 4 bytes, over DecodeLimits::max_bytes 3");
  EXPECT_EQ(decode_error<Bytes>(ipckit::encode(hex("01020304")), tight),
            "the bin at offset 0 has 4 bytes, over DecodeLimits::max_bytes 3");
  EXPECT_EQ(decode_error<int>(hex("d8 01 00000000 00000000 00000000 00000000"), tight),
            "the ext at offset 0 has 16 bytes, over DecodeLimits::max_bytes 3");
}

TEST_F(CodecTest, DecodesInParallelThreads) {
  const Order order{9, {{"a", 1, "n", {1}}}, {{"p", Point{1, 2, "q"}}}, std::nullopt};
  const Bytes bytes = ipckit::encode(order);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) good += ipckit::decode<Order>(bytes) == order ? 1 : 0;
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good.load(), 8000);
}

}  // namespace
