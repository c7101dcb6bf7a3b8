// codec/codec.cpp — the non-template half of ipckit/codec.hpp, on msgpack-cxx.
//
// msgpack-cxx stays behind this file: the header sees an Encoder that appends bytes and a
// ValueView holding an opaque `const msgpack::object*`. Format: docs/formats/codec.md.
//
// Why parsing is safe on hostile input:
// * check_input() first walks the bytes once, allocating nothing: exactly one complete
//   value, no reserved byte, every str/bin/ext and every array/map within DecodeLimits,
//   and no header announcing more values than the bytes left can hold (each value takes
//   at least one byte). Its messages give the offset.
// * Only then does msgpack::unpack parse, with unpack_limit as a second line of defence
//   (the caller's limits capped by the input size) and the depth limit. Its parser is
//   iterative (no recursion) and allocates one 24-byte msgpack::object per announced
//   element up front; after check_input those are real elements, so the total is bounded
//   by 24 times the input size. Without the check, every open container of a truncated
//   input could announce the whole input size, nested up to max_depth deep.
// * str/bin/ext are referenced in place (always_reference), never copied.
// * Typed decoding then walks the parsed tree; its recursion follows the static nesting
//   of T, and a recursive user type cannot be deeper than max_depth.
#include "ipckit/codec.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include <msgpack.hpp>

namespace ipckit {
namespace {

constexpr std::uint64_t kMaxMsgpackSize = 0xffffffffu;  // 32-bit lengths in MessagePack

// ------------------------------------------------------------------ encoding

// The Stream msgpack::packer writes to.
struct BytesStream {
  Bytes& out;
  void write(const char* data, std::size_t size) {
    if (size == 0) return;  // memcpy from a null pointer is undefined even for 0 bytes
    const std::size_t old_size = out.size();
    out.resize(old_size + size);  // measured faster than insert() for these 1-9 byte writes
    std::memcpy(out.data() + old_size, data, size);
  }
};

using Packer = msgpack::packer<BytesStream>;

void check_size(std::size_t size, const char* what) {
  if (size > kMaxMsgpackSize)
    throw MessageTooLarge(std::string("cannot encode ") + what + " of " + std::to_string(size) +
                              ": MessagePack lengths stop at 4294967295",
                          size, kMaxMsgpackSize);
}

// ------------------------------------------------------------------ parsed values

const msgpack::object& object_of(const void* object) {
  return *static_cast<const msgpack::object*>(object);
}

std::string format_double(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

// At most kShown bytes of `text`, quoted and escaped, cut on a UTF-8 character boundary.
std::string quote(std::string_view text) {
  constexpr std::size_t kShown = 40;
  std::size_t cut = text.size();
  if (cut > kShown) {
    cut = kShown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  }
  std::string out = "\"";
  for (std::size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (cut < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool is_identifier(std::string_view text) {
  if (text.empty() || std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A DecodeError message is "<path>: <detail>" once a path is known, the path starting
// with '$'; a detail alone before that. This puts `segment` right after the '$'.
[[noreturn]] void rethrow_with_segment(const DecodeError& error, std::string_view segment) {
  const std::string_view message = error.what();
  std::string next;
  next.reserve(message.size() + segment.size() + 3);
  next += '$';
  next += segment;
  if (!message.empty() && message[0] == '$') {
    next += message.substr(1);
  } else {
    next += ": ";
    next += message;
  }
  DecodeError rethrown(next);
  rethrown.set_payload(error.payload());
  throw rethrown;
}

// ------------------------------------------------------------------ the parse arena

// The zone msgpack allocates parsed objects in. Each thread keeps one and clears it after
// each decode (clear() keeps the first 8 KiB chunk), so a small message costs no malloc
// for the zone. A decode nested inside another on the same thread (a Codec that calls
// decode()) gets its own zone.
struct CachedZone {
  msgpack::zone zone;
  bool busy = false;
};

CachedZone& cached_zone() {
  thread_local CachedZone cached;
  return cached;
}

bool always_reference(msgpack::type::object_type, std::size_t, void*) { return true; }

// ------------------------------------------------------------------ the input check

std::uint64_t read_be(const std::byte* p, std::size_t n) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n; ++i) value = value << 8 | std::to_integer<std::uint64_t>(p[i]);
  return value;
}

std::string hex_byte(unsigned value) {
  constexpr char kHex[] = "0123456789abcdef";
  return {'0', 'x', kHex[(value >> 4) & 0xf], kHex[value & 0xf]};
}

// See the top of this file. MessagePack forms: docs/formats/codec.md and the spec.
void check_input(std::span<const std::byte> bytes, const DecodeLimits& limits) {
  const std::size_t size = bytes.size();
  if (size == 0) throw DecodeError("empty input: no MessagePack value");
  const std::byte* data = bytes.data();
  auto truncated = [&](std::size_t at) -> DecodeError {
    return DecodeError("truncated MessagePack: the " + std::to_string(size) +
                       "-byte input ends inside the value at offset " + std::to_string(at));
  };
  std::size_t offset = 0;
  std::uint64_t pending = 1;  // values still to read; never more than the bytes left
  while (pending > 0) {
    if (offset >= size) throw truncated(offset);
    const unsigned type = std::to_integer<unsigned>(data[offset]);
    std::size_t header = 1;      // type byte and length field (and ext type)
    std::size_t length_size = 0; // bytes of the length field after the type byte
    std::uint64_t payload = 0;   // bytes after the header
    std::uint64_t children = 0;  // values a container adds
    const char* sized = nullptr; // "str", "bin", "ext": payload checked against max_bytes
    const char* container = nullptr;  // "array", "map"
    if (type <= 0x7f || type >= 0xe0 || type == 0xc0 || type == 0xc2 || type == 0xc3) {
      // fixint, nil, bool
    } else if (type <= 0x8f) {
      container = "map";
      children = type & 0x0f;
    } else if (type <= 0x9f) {
      container = "array";
      children = type & 0x0f;
    } else if (type <= 0xbf) {
      sized = "str";
      payload = type & 0x1f;
    } else {
      switch (type) {
        case 0xc4: case 0xc5: case 0xc6:  // bin 8/16/32
          sized = "bin";
          length_size = std::size_t{1} << (type - 0xc4);
          break;
        case 0xc7: case 0xc8: case 0xc9:  // ext 8/16/32, then a type byte
          sized = "ext";
          length_size = std::size_t{1} << (type - 0xc7);
          header = 1 + length_size + 1;
          break;
        case 0xca: payload = 4; break;  // float 32
        case 0xcb: payload = 8; break;  // float 64
        case 0xcc: case 0xcd: case 0xce: case 0xcf:  // uint 8/16/32/64
          payload = std::uint64_t{1} << (type - 0xcc);
          break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3:  // int 8/16/32/64
          payload = std::uint64_t{1} << (type - 0xd0);
          break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:  // fixext 1..16, type byte first
          sized = "ext";
          header = 2;
          payload = std::uint64_t{1} << (type - 0xd4);
          break;
        case 0xd9: case 0xda: case 0xdb:  // str 8/16/32
          sized = "str";
          length_size = std::size_t{1} << (type - 0xd9);
          break;
        case 0xdc: case 0xdd:  // array 16/32
          container = "array";
          length_size = type == 0xdc ? 2 : 4;
          break;
        case 0xde: case 0xdf:  // map 16/32
          container = "map";
          length_size = type == 0xde ? 2 : 4;
          break;
        default:  // 0xc1, the one reserved byte
          throw DecodeError("malformed MessagePack: the reserved byte " + hex_byte(type) +
                            " at offset " + std::to_string(offset) + " where a value starts");
      }
    }
    if (length_size != 0) {
      if (header == 1) header = 1 + length_size;
      if (size - offset < 1 + length_size) throw truncated(offset);
      const std::uint64_t length = read_be(data + offset + 1, length_size);
      if (container != nullptr)
        children = length;
      else
        payload = length;
    }
    if (container != nullptr) {
      if (children > limits.max_elements)
        throw DecodeError("the " + std::string(container) + " at offset " + std::to_string(offset) +
                          " announces " + std::to_string(children) +
                          (*container == 'm' ? " entries" : " elements") +
                          ", over DecodeLimits::max_elements " +
                          std::to_string(limits.max_elements));
      if (*container == 'm') children *= 2;  // a key and a value per entry
    }
    if (sized != nullptr && payload > limits.max_bytes)
      throw DecodeError("the " + std::string(sized) + " at offset " + std::to_string(offset) +
                        " has " + std::to_string(payload) +
                        " bytes, over DecodeLimits::max_bytes " + std::to_string(limits.max_bytes));
    if (size - offset < header || size - offset - header < payload) throw truncated(offset);
    const std::size_t start = offset;
    offset += header + static_cast<std::size_t>(payload);
    pending = pending - 1 + children;
    if (pending > size - offset && container == nullptr) throw truncated(start);  // unreachable
    if (pending > size - offset)
      throw DecodeError("truncated MessagePack: the " + std::string(container) + " at offset " +
                        std::to_string(start) + " announces " +
                        std::to_string(*container == 'm' ? children / 2 : children) +
                        (*container == 'm' ? " entries" : " elements") + " but only " +
                        std::to_string(size - offset) + " bytes follow");
  }
  if (offset != size)
    throw DecodeError(std::to_string(size - offset) +
                      " trailing bytes after the MessagePack value (it ends at offset " +
                      std::to_string(offset) + " of " + std::to_string(size) + ")");
}


}  // namespace

// ------------------------------------------------------------------ Encoder

void Encoder::write_nil() {
  BytesStream stream{*out_};
  Packer(stream).pack_nil();
}

void Encoder::write_bool(bool value) {
  BytesStream stream{*out_};
  Packer packer(stream);
  if (value)
    packer.pack_true();
  else
    packer.pack_false();
}

void Encoder::write_int(std::int64_t value) {
  BytesStream stream{*out_};
  Packer(stream).pack_int64(value);
}

void Encoder::write_uint(std::uint64_t value) {
  BytesStream stream{*out_};
  Packer(stream).pack_uint64(value);
}

// Floats are written here, not with packer::pack_float/pack_double: since cpp-4.1.2 those
// write a float with an integral value as an integer (msgpack/msgpack-c#1017, #1111), so
// 3.0 would reach Python as int 3 and -0.0 as 0, and the type would depend on the value.
namespace {

// Appends `tag` and then `bits` in big-endian order.
template <class Bits>
void append_big_endian(Bytes& out, std::byte tag, Bits bits) {
  std::byte bytes[1 + sizeof(Bits)];
  bytes[0] = tag;
  for (std::size_t i = 0; i < sizeof(Bits); ++i)
    bytes[1 + i] = static_cast<std::byte>(bits >> (8 * (sizeof(Bits) - 1 - i)));
  out.insert(out.end(), std::begin(bytes), std::end(bytes));
}

}  // namespace

void Encoder::write_float32(float value) {
  append_big_endian(*out_, std::byte{0xca}, std::bit_cast<std::uint32_t>(value));
}

void Encoder::write_float64(double value) {
  append_big_endian(*out_, std::byte{0xcb}, std::bit_cast<std::uint64_t>(value));
}

void Encoder::write_str(std::string_view utf8) {
  check_size(utf8.size(), "a str");
  BytesStream stream{*out_};
  Packer packer(stream);
  const auto size = static_cast<std::uint32_t>(utf8.size());
  packer.pack_str(size);
  packer.pack_str_body(utf8.data(), size);
}

void Encoder::write_bin(std::span<const std::byte> bytes) {
  check_size(bytes.size(), "a bin");
  BytesStream stream{*out_};
  Packer packer(stream);
  const auto size = static_cast<std::uint32_t>(bytes.size());
  packer.pack_bin(size);
  packer.pack_bin_body(reinterpret_cast<const char*>(bytes.data()), size);
}

void Encoder::write_array_header(std::size_t size) {
  check_size(size, "an array");
  BytesStream stream{*out_};
  Packer(stream).pack_array(static_cast<std::uint32_t>(size));
}

void Encoder::write_map_header(std::size_t size) {
  check_size(size, "a map");
  BytesStream stream{*out_};
  Packer(stream).pack_map(static_cast<std::uint32_t>(size));
}

// ------------------------------------------------------------------ ValueView

ValueView::Kind ValueView::kind() const noexcept {
  switch (object_of(object_).type) {
    case msgpack::type::NIL: return Kind::Nil;
    case msgpack::type::BOOLEAN: return Kind::Bool;
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return Kind::Integer;
    case msgpack::type::FLOAT32: return Kind::Float32;
    case msgpack::type::FLOAT64: return Kind::Float64;
    case msgpack::type::STR: return Kind::Str;
    case msgpack::type::BIN: return Kind::Bin;
    case msgpack::type::ARRAY: return Kind::Array;
    case msgpack::type::MAP: return Kind::Map;
    case msgpack::type::EXT: return Kind::Ext;
  }
  return Kind::Nil;  // unreachable: the parser makes no other type
}

bool ValueView::is_negative() const noexcept {
  return object_of(object_).type == msgpack::type::NEGATIVE_INTEGER;
}

bool ValueView::get_bool() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::BOOLEAN) fail("bool");
  return o.via.boolean;
}

std::int64_t ValueView::get_int(std::int64_t min, std::int64_t max,
                                std::string_view expected) const {
  const auto& o = object_of(object_);
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (max >= 0 && o.via.u64 <= static_cast<std::uint64_t>(max))
      return static_cast<std::int64_t>(o.via.u64);
    fail(expected, "out of range");
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    if (o.via.i64 >= min && o.via.i64 <= max) return o.via.i64;
    fail(expected, "out of range");
  }
  fail(expected);
}

std::uint64_t ValueView::get_uint(std::uint64_t max, std::string_view expected) const {
  const auto& o = object_of(object_);
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 <= max) return o.via.u64;
    fail(expected, "out of range");
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) fail(expected, "out of range");
  fail(expected);
}

// An integer converts to a floating type only when the conversion is exact. The range
// checks come first: converting back a value that rounded up to 2^63 or 2^64 would be
// undefined.
double ValueView::get_float64() const {
  const auto& o = object_of(object_);
  switch (o.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::POSITIVE_INTEGER: {
      const auto d = static_cast<double>(o.via.u64);
      if (d < 18446744073709551616.0 && static_cast<std::uint64_t>(d) == o.via.u64) return d;
      fail("float64", "not exactly representable");
    }
    case msgpack::type::NEGATIVE_INTEGER: {
      const auto d = static_cast<double>(o.via.i64);  // in [-2^63, 0): converts back safely
      if (static_cast<std::int64_t>(d) == o.via.i64) return d;
      fail("float64", "not exactly representable");
    }
    default: fail("float64");
  }
}

float ValueView::get_float32() const {
  const auto& o = object_of(object_);
  switch (o.type) {
    case msgpack::type::FLOAT32: return static_cast<float>(o.via.f64);  // exact: it was a float
    case msgpack::type::FLOAT64: {
      const double d = o.via.f64;
      // Converting a finite double outside float's range is undefined: reject it first.
      if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
        fail("float32", "out of range");
      return static_cast<float>(d);
    }
    case msgpack::type::POSITIVE_INTEGER: {
      const auto f = static_cast<float>(o.via.u64);
      if (f < 18446744073709551616.0f && static_cast<std::uint64_t>(f) == o.via.u64) return f;
      fail("float32", "not exactly representable");
    }
    case msgpack::type::NEGATIVE_INTEGER: {
      const auto f = static_cast<float>(o.via.i64);
      if (static_cast<std::int64_t>(f) == o.via.i64) return f;
      fail("float32", "not exactly representable");
    }
    default: fail("float32");
  }
}

std::string_view ValueView::get_str() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::STR) fail("str");
  return {o.via.str.ptr, o.via.str.size};
}

std::span<const std::byte> ValueView::get_bin() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::BIN) fail("bin");
  return {reinterpret_cast<const std::byte*>(o.via.bin.ptr), o.via.bin.size};
}

std::int8_t ValueView::ext_type() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::EXT) fail("ext");
  return o.via.ext.type();
}

std::span<const std::byte> ValueView::ext_data() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::EXT) fail("ext");
  return {reinterpret_cast<const std::byte*>(o.via.ext.data()), o.via.ext.size};
}

std::size_t ValueView::array_size() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::ARRAY) fail("array");
  return o.via.array.size;
}

std::size_t ValueView::map_size() const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::MAP) fail("map");
  return o.via.map.size;
}

ValueView ValueView::element(std::size_t index) const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::ARRAY || index >= o.via.array.size)
    throw std::out_of_range("ValueView::element(" + std::to_string(index) + ") of " + describe());
  return ValueView(&o.via.array.ptr[index]);
}

ValueView ValueView::key(std::size_t index) const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::MAP || index >= o.via.map.size)
    throw std::out_of_range("ValueView::key(" + std::to_string(index) + ") of " + describe());
  return ValueView(&o.via.map.ptr[index].key);
}

ValueView ValueView::value(std::size_t index) const {
  const auto& o = object_of(object_);
  if (o.type != msgpack::type::MAP || index >= o.via.map.size)
    throw std::out_of_range("ValueView::value(" + std::to_string(index) + ") of " + describe());
  return ValueView(&o.via.map.ptr[index].val);
}

std::string ValueView::describe() const {
  const auto& o = object_of(object_);
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return o.via.boolean ? "bool true" : "bool false";
    case msgpack::type::POSITIVE_INTEGER: return "integer " + std::to_string(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return "integer " + std::to_string(o.via.i64);
    case msgpack::type::FLOAT32: return "float32 " + format_double(o.via.f64);
    case msgpack::type::FLOAT64: return "float64 " + format_double(o.via.f64);
    case msgpack::type::STR: return "str " + quote({o.via.str.ptr, o.via.str.size});
    case msgpack::type::BIN: return "bin of " + std::to_string(o.via.bin.size) + " bytes";
    case msgpack::type::ARRAY: return "array of " + std::to_string(o.via.array.size);
    case msgpack::type::MAP: return "map of " + std::to_string(o.via.map.size);
    case msgpack::type::EXT:
      return "ext type " + std::to_string(o.via.ext.type()) + " of " +
             std::to_string(o.via.ext.size) + " bytes";
  }
  return "unknown";
}

void ValueView::fail(std::string_view expected, std::string_view note) const {
  std::string message = "expected ";
  message += expected;
  message += ", found ";
  message += describe();
  if (!note.empty()) {
    message += " (";
    message += note;
    message += ')';
  }
  throw DecodeError(message);
}

namespace detail {

// ------------------------------------------------------------------ error paths

void rethrow_at_index(const DecodeError& error, std::size_t index) {
  rethrow_with_segment(error, "[" + std::to_string(index) + "]");
}

void rethrow_at_field(const DecodeError& error, std::string_view field) {
  rethrow_with_segment(error, "." + std::string(field));
}

void rethrow_at_key(const DecodeError& error, const ValueView& key) {
  switch (key.kind()) {
    case ValueView::Kind::Str: {
      const std::string_view text = key.get_str();
      if (is_identifier(text) && text.size() <= 64)
        rethrow_with_segment(error, "." + std::string(text));
      rethrow_with_segment(error, "[" + quote(text) + "]");
    }
    case ValueView::Kind::Integer: {
      std::string text = key.describe();  // "integer 5"
      rethrow_with_segment(error, "[" + text.substr(text.find(' ') + 1) + "]");
    }
    default: rethrow_with_segment(error, "[" + key.describe() + "]");
  }
}

void rethrow_in_key(const DecodeError& error, std::size_t entry) {
  rethrow_with_segment(error, "{key " + std::to_string(entry) + "}");
}

void rethrow_at_root(const DecodeError& error) {
  const std::string_view message = error.what();
  if (!message.empty() && message[0] == '$') throw;
  DecodeError rethrown("$: " + std::string(message));
  rethrown.set_payload(error.payload());
  throw rethrown;
}

void fail_length(const ValueView& value, std::size_t expected_length) {
  value.fail("array of " + std::to_string(expected_length));
}

void fail_not_struct(const ValueView& value, const std::type_info& type) {
  value.fail("map (struct " + type_name(type) + ")");
}

void fail_missing_field(std::string_view field, const std::type_info& type) {
  throw DecodeError("missing field \"" + std::string(field) + "\" of struct " + type_name(type));
}

void fail_valueless_variant() {
  throw ValueError("cannot encode a std::variant that is valueless by exception");
}

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

// ------------------------------------------------------------------ ParsedMessage

ParsedMessage::ParsedMessage(std::span<const std::byte> bytes, const DecodeLimits& limits) {
  check_input(bytes, limits);
  CachedZone& cached = cached_zone();
  msgpack::zone* zone = nullptr;
  std::unique_ptr<msgpack::zone> own;
  if (!cached.busy) {
    zone = &cached.zone;
    cached.busy = true;
  } else {
    own = std::make_unique<msgpack::zone>();
    zone = own.get();
  }
  // Until the constructor succeeds, the destructor will not run: give the zone back here.
  struct Release {
    CachedZone& cached;
    msgpack::zone* zone;
    bool armed = true;
    ~Release() {
      if (armed && zone == &cached.zone) {
        cached.zone.clear();
        cached.busy = false;
      }
    }
  } release{cached, zone};

  const std::size_t size = bytes.size();
  const std::size_t array_limit = std::min(limits.max_elements, size);
  const std::size_t map_limit = std::min(limits.max_elements, size / 2);
  const std::size_t bytes_limit = std::min(limits.max_bytes, size);
  const msgpack::unpack_limit limit(array_limit, map_limit, bytes_limit, bytes_limit, bytes_limit,
                                    limits.max_depth);
  const auto* data = reinterpret_cast<const char*>(bytes.data());
  std::size_t offset = 0;
  bool referenced = false;
  msgpack::object root;
  try {
    root =
        msgpack::unpack(*zone, data, size, offset, referenced, &always_reference, nullptr, limit);
  } catch (const msgpack::depth_size_overflow&) {
    throw DecodeError("arrays/maps nested deeper than DecodeLimits::max_depth " +
                      std::to_string(limits.max_depth));
  } catch (const msgpack::unpack_error& e) {
    // Not reached: check_input() rejects what msgpack would (truncation, 0xc1, sizes).
    throw DecodeError(std::string("malformed MessagePack: ") + e.what());
  } catch (const msgpack::type_error& e) {  // not thrown by unpack; kept for completeness
    throw DecodeError(std::string("malformed MessagePack: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw DecodeError("out of memory parsing " + std::to_string(size) + " bytes of MessagePack");
  }
  if (offset != size)
    throw DecodeError(std::to_string(size - offset) +
                      " trailing bytes after the MessagePack value (it ends at offset " +
                      std::to_string(offset) + " of " + std::to_string(size) + ")");

  auto* stored = static_cast<msgpack::object*>(
      zone->allocate_align(sizeof(msgpack::object), alignof(msgpack::object)));
  root_ = new (stored) msgpack::object(root);
  zone_ = zone;
  own_zone_ = own != nullptr;
  own.release();
  release.armed = false;
}

ParsedMessage::~ParsedMessage() {
  auto* zone = static_cast<msgpack::zone*>(zone_);
  if (own_zone_) {
    delete zone;
    return;
  }
  CachedZone& cached = cached_zone();
  cached.zone.clear();
  cached.busy = false;
}

}  // namespace detail
}  // namespace ipckit
