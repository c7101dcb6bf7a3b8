// fuzz/codec_decode_fuzz.cpp — decodes arbitrary bytes with ipckit's codec.
//
// Every input must either decode or throw ipckit::DecodeError: any other exception, a
// crash, a sanitizer report or an allocation sized by the input's claims is a bug. Each
// input is decoded as:
// * Dynamic, which walks every value through ValueView (the "any" decode), and re-encodes
//   what it read, checking that re-encoding and decoding again gives the same bytes;
// * Order, a struct with nested containers, optionals, a variant and a fixed array;
// * a few container types with tight DecodeLimits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "ipckit/codec.hpp"

namespace {

// Any MessagePack value, as read through ValueView.
struct Dynamic {
  ipckit::ValueView::Kind kind = ipckit::ValueView::Kind::Nil;
  bool negative = false;      // Integer: held in `integer` as int64 (else as uint64)
  std::uint64_t integer = 0;  // Bool: 0 or 1
  double real = 0;            // Float32, Float64
  std::int8_t ext_type = 0;
  std::string data;            // Str, Bin, Ext
  std::vector<Dynamic> items;  // Array: elements; Map: keys and values, interleaved
};

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  IPCKIT_CODABLE(x, y, label)
};

enum class Status : std::uint8_t { Open, Paid, Shipped };

struct Item {
  std::string name;
  double price = 0;
  std::optional<std::string> note;
  std::vector<std::int16_t> tags;
  IPCKIT_CODABLE(name, price, note, tags)
};

struct Order {
  std::uint64_t id = 0;
  Status status = Status::Open;
  std::vector<Item> items;
  std::map<std::string, Point> places;
  std::optional<Point> origin;
  std::variant<std::monostate, std::int32_t, std::string, ipckit::Bytes> extra;
  std::array<float, 3> weights{};
  std::tuple<bool, std::uint8_t, std::deque<std::string>> flags;
  std::unordered_map<std::int64_t, std::set<std::uint32_t>> groups;
  IPCKIT_CODABLE(id, status, items, places, origin, extra, weights, flags, groups)
};

}  // namespace

template <>
struct ipckit::Codec<Dynamic> {
  using Kind = ValueView::Kind;

  static void encode(Encoder& out, const Dynamic& d) {
    switch (d.kind) {
      case Kind::Nil: return out.write_nil();
      case Kind::Bool: return out.write_bool(d.integer != 0);
      case Kind::Integer:
        return d.negative ? out.write_int(static_cast<std::int64_t>(d.integer))
                          : out.write_uint(d.integer);
      case Kind::Float32: return out.write_float32(static_cast<float>(d.real));
      case Kind::Float64: return out.write_float64(d.real);
      case Kind::Str: return out.write_str(d.data);
      case Kind::Bin: return out.write_bin(std::as_bytes(std::span(d.data)));
      case Kind::Array:
        out.write_array_header(d.items.size());
        for (const auto& item : d.items) encode(out, item);
        return;
      case Kind::Map:
        out.write_map_header(d.items.size() / 2);
        for (const auto& item : d.items) encode(out, item);
        return;
      case Kind::Ext:  // the codec has no ext writer: [type, bin]
        out.write_array_header(2);
        out.write_int(d.ext_type);
        out.write_bin(std::as_bytes(std::span(d.data)));
        return;
    }
  }

  static Dynamic decode(const ValueView& in) {
    Dynamic d;
    d.kind = in.kind();
    auto text = [](std::span<const std::byte> bytes) {
      return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    };
    switch (d.kind) {
      case Kind::Nil: break;
      case Kind::Bool: d.integer = in.get_bool() ? 1 : 0; break;
      case Kind::Integer:
        d.negative = in.is_negative();
        d.integer = d.negative ? static_cast<std::uint64_t>(in.get_int(INT64_MIN, -1, "int64"))
                               : in.get_uint(UINT64_MAX, "uint64");
        break;
      case Kind::Float32: d.real = in.get_float32(); break;
      case Kind::Float64: d.real = in.get_float64(); break;
      case Kind::Str: d.data = std::string(in.get_str()); break;
      case Kind::Bin: d.data = text(in.get_bin()); break;
      case Kind::Array:
        d.items.reserve(in.array_size());
        for (std::size_t i = 0; i < in.array_size(); ++i) d.items.push_back(decode(in.element(i)));
        break;
      case Kind::Map:
        d.items.reserve(2 * in.map_size());
        for (std::size_t i = 0; i < in.map_size(); ++i) {
          d.items.push_back(decode(in.key(i)));
          d.items.push_back(decode(in.value(i)));
        }
        break;
      case Kind::Ext:
        d.ext_type = in.ext_type();
        d.data = text(in.ext_data());
        break;
    }
    return d;
  }
};

namespace {

// Whatever decodes must encode and decode again. For Dynamic, which keeps every value and
// its order, the second encoding must also equal the first.
template <class T>
void try_decode(std::span<const std::byte> bytes, const ipckit::DecodeLimits& limits = {}) {
  ipckit::Bytes once;
  try {
    once = ipckit::encode(ipckit::decode<T>(bytes, limits));
  } catch (const ipckit::DecodeError&) {
    return;
  }
  // Dynamic writes an ext as [type, bin], one level deeper: allow that level.
  ipckit::DecodeLimits again = limits;
  again.max_depth += 1;
  const ipckit::Bytes twice = ipckit::encode(ipckit::decode<T>(once, again));
  if (std::is_same_v<T, Dynamic> && once != twice) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try_decode<Dynamic>(bytes);
  try_decode<Order>(bytes);
  try_decode<std::vector<std::optional<std::variant<std::int8_t, std::string>>>>(bytes);
  try_decode<std::map<std::string, std::vector<double>>>(
      bytes, {.max_depth = 3, .max_elements = 8, .max_bytes = 16});
  return 0;
}
