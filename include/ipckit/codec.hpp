// ipckit/codec.hpp — typed values <-> bytes, in MessagePack, so that Python, Go or JS
// peers can read and write them. The byte format is in docs/formats/codec.md.
//
//   struct Point { int x; double y; std::string label; IPCKIT_CODABLE(x, y, label) };
//
//   ipckit::Bytes bytes = ipckit::encode(Point{1, 2.5, "a"});   // {"x": 1, "y": 2.5, "label": "a"}
//   Point p = ipckit::decode<Point>(bytes);
//
//   thread_local ipckit::Bytes buffer;     // reuse one buffer on a hot path
//   buffer.clear();
//   ipckit::encode_into(buffer, p);        // appends
//
// Types that work out of the box (docs/formats/codec.md has the bytes of each):
//   bool; every integer type (range-checked on decode); float, double; std::string (str);
//   std::string_view, const char* (encode only); Bytes = std::vector<std::byte> (bin);
//   std::array<std::byte, N> (bin of exactly N bytes); sequence containers (std::vector,
//   std::deque, std::list, std::set, std::unordered_set, ...) as arrays; std::array<T, N>
//   (array of exactly N); std::map, std::unordered_map as maps; std::optional (nil <->
//   nullopt); std::pair and std::tuple (arrays of fixed length); std::variant (array
//   [index, value]); enums (their underlying integer); std::monostate and std::nullptr_t
//   (nil); structs marked with IPCKIT_CODABLE (a map from field name to value).
// Any other type becomes codable by specialising ipckit::Codec (below).
//
// Decoding is strict: each C++ type accepts the MessagePack forms listed in
// docs/formats/codec.md and nothing else. The one widening is into float and double, which
// also accept an integer that they represent exactly (and float accepts a float64, rounded
// to the nearest float). Anything else throws DecodeError, whose message says what was
// expected, what was found and where: "$.items[3].price: expected float64, found str "abc"".
//
// Threads: every function here may be called from any number of threads at once, on
// different buffers. Decoding never allocates more than the input justifies: the input is
// checked to be one complete value, with every size a header announces within
// DecodeLimits and within the bytes that follow, before anything is allocated; nesting is
// bounded by DecodeLimits::max_depth; and no input, however malformed, causes undefined
// behaviour.
//
// Lifetime: encode/decode keep nothing. A ValueView handed to Codec<T>::decode is valid
// only during that call (it points into the input bytes and a per-thread parse arena).
//
// Memory ordering and crash safety: not applicable; this layer touches no shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "ipckit/error.hpp"

namespace ipckit {

// A MessagePack bin: raw bytes, untouched by the codec.
using Bytes = std::vector<std::byte>;

// Bounds on what decode() accepts, checked before anything is allocated for the value.
struct DecodeLimits {
  // How many arrays/maps may nest inside each other; 0 allows only scalars at the top.
  std::size_t max_depth = 64;
  // Elements of one array, or entries of one map. Whatever this says, a header may not
  // announce more values than the bytes after it can hold.
  std::size_t max_elements = std::size_t{1} << 24;
  // Bytes of one str, bin or ext.
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
};

// ---------------------------------------------------------------------------------------
// Encoder: appends MessagePack values to a Bytes, always in the smallest form that holds
// the value (as every MessagePack writer does; docs/formats/codec.md). Used by
// Codec<T>::encode. Not thread-safe (it writes to one buffer); cheap to construct.
//
// write_str, write_bin, write_array_header and write_map_header throw MessageTooLarge for
// a size above 2^32 - 1, which MessagePack cannot express.
class Encoder {
 public:
  explicit Encoder(Bytes& out) noexcept : out_(&out) {}

  void write_nil();
  void write_bool(bool value);
  void write_int(std::int64_t value);  // a value >= 0 takes the unsigned forms, as in Python
  void write_uint(std::uint64_t value);
  void write_float32(float value);        // always float32 (0xca)
  void write_float64(double value);       // always float64 (0xcb)
  void write_str(std::string_view utf8);  // the bytes as they are; not checked for UTF-8
  void write_bin(std::span<const std::byte> bytes);
  // A header announces `size` values (a map: `size` key/value pairs) that the caller
  // then writes.
  void write_array_header(std::size_t size);
  void write_map_header(std::size_t size);

  Bytes& buffer() const noexcept { return *out_; }

 private:
  Bytes* out_;
};

namespace detail {
class ParsedMessage;
}

// ---------------------------------------------------------------------------------------
// ValueView: a read-only view of one parsed MessagePack value, handed to
// Codec<T>::decode. Copy it freely (it is one pointer); it is valid only during the
// decode() call that made it.
//
// The get_* accessors check the form and throw DecodeError "expected <what>, found
// <this value>" when it differs; element()/key()/value() throw std::out_of_range for an
// index past the end (a bug in the caller, not bad input).
class ValueView {
 public:
  enum class Kind : std::uint8_t {
    Nil, Bool, Integer, Float32, Float64, Str, Bin, Array, Map, Ext
  };

  Kind kind() const noexcept;
  bool is_nil() const noexcept { return kind() == Kind::Nil; }
  // An Integer below zero (fits int64); an Integer that is not fits uint64.
  bool is_negative() const noexcept;

  bool get_bool() const;
  // An integer within [min, max]; `expected` names the target for the message ("int8").
  // Outside the range: "expected int8, found integer 300 (out of range)".
  std::int64_t get_int(std::int64_t min, std::int64_t max, std::string_view expected) const;
  std::uint64_t get_uint(std::uint64_t max, std::string_view expected) const;
  // A float32 or float64, or an integer that converts exactly.
  double get_float64() const;
  // Also a float64 within float's range, rounded to the nearest float.
  float get_float32() const;
  std::string_view get_str() const;
  std::span<const std::byte> get_bin() const;
  std::int8_t ext_type() const;
  std::span<const std::byte> ext_data() const;

  // Number of elements of an array / entries of a map; throws DecodeError for any other
  // form.
  std::size_t array_size() const;
  std::size_t map_size() const;
  ValueView element(std::size_t index) const;
  ValueView key(std::size_t index) const;
  ValueView value(std::size_t index) const;

  // A short description for messages: `integer 300`, `str "abc"`, `array of 3`, `nil`.
  std::string describe() const;
  // Throws DecodeError "expected <expected>, found <describe()>[ (<note>)]".
  [[noreturn]] void fail(std::string_view expected, std::string_view note = {}) const;

 private:
  friend class detail::ParsedMessage;
  explicit ValueView(const void* object) noexcept : object_(object) {}

  const void* object_;  // a msgpack::object (src/codec), kept opaque here
};

// ---------------------------------------------------------------------------------------
// Codec<T>: how T is written and read. The customisation point: specialise it for your
// own type, in namespace ipckit, with
//
//   template <> struct ipckit::Codec<Celsius> {
//     static void encode(Encoder& out, const Celsius& value) { out.write_float64(value.degrees); }
//     static Celsius decode(const ValueView& in) { return Celsius{in.get_float64()}; }
//   };
//
// decode throws DecodeError (use in.fail(...) or the get_* accessors) on a value it does
// not accept; the path in the message is added by the containers around it. The second
// parameter is for enable_if-style partial specialisations.
template <class T, class = void>
struct Codec;

namespace detail {

// ------------------------------------------------------------- error paths (codec.cpp)
// Each rethrows `error` with one more segment at the front of its path; called from a
// catch block, on the error path only.
[[noreturn]] void rethrow_at_index(const DecodeError& error, std::size_t index);
[[noreturn]] void rethrow_at_field(const DecodeError& error, std::string_view field);
[[noreturn]] void rethrow_at_key(const DecodeError& error, const ValueView& key);
[[noreturn]] void rethrow_in_key(const DecodeError& error, std::size_t entry);
// Gives a path-less message the root path "$".
[[noreturn]] void rethrow_at_root(const DecodeError& error);
[[noreturn]] void fail_length(const ValueView& value, std::size_t expected_length);
[[noreturn]] void fail_not_struct(const ValueView& value, const std::type_info& type);
[[noreturn]] void fail_missing_field(std::string_view field, const std::type_info& type);
[[noreturn]] void fail_valueless_variant();
// "Point", "ns::Item": the demangled name of a type.
std::string type_name(const std::type_info& type);

// Parses bytes into ValueViews, checking DecodeLimits, malformed input and trailing
// bytes (all DecodeError). The parsed tree lives in a per-thread arena that is reused, so
// a small message costs no arena allocation (msgpack's parser still makes two small
// allocations for its stacks).
class ParsedMessage {
 public:
  ParsedMessage(std::span<const std::byte> bytes, const DecodeLimits& limits);
  ~ParsedMessage();
  ParsedMessage(const ParsedMessage&) = delete;
  ParsedMessage& operator=(const ParsedMessage&) = delete;

  ValueView root() const noexcept { return ValueView(root_); }

 private:
  void* zone_ = nullptr;  // msgpack::zone: this thread's cached one, or an own one
  bool own_zone_ = false;
  const void* root_ = nullptr;  // msgpack::object inside *zone_
};

template <class T>
T decode_element(const ValueView& element, std::size_t index) {
  try {
    return Codec<T>::decode(element);
  } catch (const DecodeError& error) {
    rethrow_at_index(error, index);
  }
}

template <class T>
constexpr std::string_view integer_name() {
  constexpr bool s = std::is_signed_v<T>;
  switch (sizeof(T)) {
    case 1: return s ? "int8" : "uint8";
    case 2: return s ? "int16" : "uint16";
    case 4: return s ? "int32" : "uint32";
    default: return s ? "int64" : "uint64";
  }
}

template <class T>
inline constexpr bool is_integer_v =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= 8;

template <class T>
inline constexpr bool is_optional_v = false;
template <class T>
inline constexpr bool is_optional_v<std::optional<T>> = true;

// ------------------------------------------------------------- IPCKIT_CODABLE support
// The macro befriends this class, so the generated members may be private.
struct CodableAccess {
  template <class T>
  static constexpr bool is_codable = requires(T& t, const T& ct) {
    t.ipckit_fields();
    ct.ipckit_fields();
    { T::ipckit_field_names() } -> std::same_as<std::string_view>;
  };
  template <class T>
  static auto fields(T& value) noexcept { return value.ipckit_fields(); }
  template <class T>
  static auto fields(const T& value) noexcept { return value.ipckit_fields(); }
  template <class T>
  static constexpr std::string_view names() noexcept { return T::ipckit_field_names(); }
};

constexpr bool is_name_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

constexpr std::string_view trim_name(std::string_view s) {
  while (!s.empty() && is_name_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_name_space(s.back())) s.remove_suffix(1);
  return s;
}

constexpr std::size_t count_names(std::string_view all) {
  if (trim_name(all).empty()) return 0;
  std::size_t n = 1;
  for (char c : all) n += c == ',' ? 1 : 0;
  return n;
}

// "x, y, label" -> {"x", "y", "label"}, at compile time.
template <std::size_t N>
constexpr std::array<std::string_view, N> split_names(std::string_view all) {
  std::array<std::string_view, N> names{};
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t comma = all.find(',');
    names[i] = trim_name(all.substr(0, comma));
    all = comma == std::string_view::npos ? std::string_view{} : all.substr(comma + 1);
  }
  return names;
}

template <class T>
using fields_t = decltype(CodableAccess::fields(std::declval<T&>()));

template <class T>
inline constexpr std::size_t field_count_v = std::tuple_size_v<fields_t<T>>;

template <class T>
inline constexpr auto field_names_v = split_names<field_count_v<T>>(CodableAccess::names<T>());

template <class T>
struct CheckedFieldNames {
  static_assert(count_names(CodableAccess::names<T>()) == field_count_v<T>,
                "IPCKIT_CODABLE: the field list does not split into one name per field");
  static constexpr bool ok = [] {
    for (std::string_view name : field_names_v<T>)
      if (name.empty()) return false;
    return true;
  }();
  static_assert(ok, "IPCKIT_CODABLE: an empty field name");
};

template <class Tuple, std::size_t... I>
void decode_field(Tuple& fields, std::size_t which, const ValueView& value,
                  std::index_sequence<I...>) {
  ((which == I ? (void)(std::get<I>(fields) =
                            Codec<std::remove_cvref_t<std::tuple_element_t<I, Tuple>>>::decode(
                                value))
               : void()),
   ...);
}

}  // namespace detail

// ------------------------------------------------------------------ the entry points

// Appends the MessagePack encoding of `value` to `out`. On an exception (MessageTooLarge,
// or a throwing Codec) `out` is left as it was.
template <class T>
void encode_into(Bytes& out, const T& value) {
  const std::size_t old_size = out.size();
  Encoder encoder(out);
  try {
    Codec<T>::encode(encoder, value);
  } catch (...) {
    out.resize(old_size);
    throw;
  }
}

template <class T>
[[nodiscard]] Bytes encode(const T& value) {
  Bytes out;
  encode_into(out, value);
  return out;
}

// Decodes exactly one MessagePack value, which must span all of `bytes`, as a T.
// Throws DecodeError when the bytes are malformed, truncated, followed by trailing bytes,
// over a DecodeLimits bound, or of another type than T accepts.
template <class T>
[[nodiscard]] T decode(std::span<const std::byte> bytes, const DecodeLimits& limits = {}) {
  const detail::ParsedMessage message(bytes, limits);
  try {
    return Codec<T>::decode(message.root());
  } catch (const DecodeError& error) {
    detail::rethrow_at_root(error);
  }
}

// ------------------------------------------------------------------ scalars

template <>
struct Codec<bool> {
  static void encode(Encoder& out, bool value) { out.write_bool(value); }
  static bool decode(const ValueView& in) { return in.get_bool(); }
};

template <class T>
struct Codec<T, std::enable_if_t<detail::is_integer_v<T>>> {
  static void encode(Encoder& out, T value) {
    if constexpr (std::is_signed_v<T>)
      out.write_int(value);
    else
      out.write_uint(value);
  }
  static T decode(const ValueView& in) {
    if constexpr (std::is_signed_v<T>)
      return static_cast<T>(in.get_int(std::numeric_limits<T>::min(),
                                       std::numeric_limits<T>::max(), detail::integer_name<T>()));
    else
      return static_cast<T>(in.get_uint(std::numeric_limits<T>::max(), detail::integer_name<T>()));
  }
};

// An enum is its underlying integer; decoding checks the range of that integer, not
// that the value names an enumerator.
template <class T>
struct Codec<T, std::enable_if_t<std::is_enum_v<T>>> {
  using Underlying = std::underlying_type_t<T>;
  static void encode(Encoder& out, T value) {
    Codec<Underlying>::encode(out, static_cast<Underlying>(value));
  }
  static T decode(const ValueView& in) { return static_cast<T>(Codec<Underlying>::decode(in)); }
};

template <>
struct Codec<float> {
  static void encode(Encoder& out, float value) { out.write_float32(value); }
  static float decode(const ValueView& in) { return in.get_float32(); }
};

template <>
struct Codec<double> {
  static void encode(Encoder& out, double value) { out.write_float64(value); }
  static double decode(const ValueView& in) { return in.get_float64(); }
};

template <>
struct Codec<std::monostate> {
  static void encode(Encoder& out, std::monostate) { out.write_nil(); }
  static std::monostate decode(const ValueView& in) {
    if (!in.is_nil()) in.fail("nil");
    return {};
  }
};

template <>
struct Codec<std::nullptr_t> {
  static void encode(Encoder& out, std::nullptr_t) { out.write_nil(); }
  static std::nullptr_t decode(const ValueView& in) {
    if (!in.is_nil()) in.fail("nil");
    return nullptr;
  }
};

// ------------------------------------------------------------------ strings and bytes

template <>
struct Codec<std::string> {
  static void encode(Encoder& out, const std::string& value) { out.write_str(value); }
  static std::string decode(const ValueView& in) { return std::string(in.get_str()); }
};

// Encode only: a view cannot own what it decodes; decode a std::string instead.
template <>
struct Codec<std::string_view> {
  static void encode(Encoder& out, std::string_view value) { out.write_str(value); }
};

// Encode only: a NUL-terminated string.
template <>
struct Codec<const char*> {
  static void encode(Encoder& out, const char* value) { out.write_str(value); }
};

// Encode only: a string literal or char buffer, up to its first NUL.
template <std::size_t N>
struct Codec<char[N]> {
  static void encode(Encoder& out, const char (&value)[N]) {
    std::size_t length = 0;
    while (length < N && value[length] != '\0') ++length;
    out.write_str(std::string_view(value, length));
  }
};

template <>
struct Codec<Bytes> {
  static void encode(Encoder& out, const Bytes& value) { out.write_bin(value); }
  static Bytes decode(const ValueView& in) {
    const auto bin = in.get_bin();
    return Bytes(bin.begin(), bin.end());
  }
};

// Encode only, as bin.
template <>
struct Codec<std::span<const std::byte>> {
  static void encode(Encoder& out, std::span<const std::byte> value) { out.write_bin(value); }
};

template <std::size_t N>
struct Codec<std::array<std::byte, N>> {
  static void encode(Encoder& out, const std::array<std::byte, N>& value) { out.write_bin(value); }
  static std::array<std::byte, N> decode(const ValueView& in) {
    const auto bin = in.get_bin();
    if (bin.size() != N) in.fail("bin of " + std::to_string(N) + " bytes");
    std::array<std::byte, N> out;
    for (std::size_t i = 0; i < N; ++i) out[i] = bin[i];
    return out;
  }
};

// ------------------------------------------------------------------ wrappers

template <class T>
struct Codec<std::optional<T>> {
  static void encode(Encoder& out, const std::optional<T>& value) {
    if (value)
      Codec<T>::encode(out, *value);
    else
      out.write_nil();
  }
  static std::optional<T> decode(const ValueView& in) {
    if (in.is_nil()) return std::nullopt;
    return Codec<T>::decode(in);
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void encode(Encoder& out, const std::pair<A, B>& value) {
    out.write_array_header(2);
    Codec<std::remove_cv_t<A>>::encode(out, value.first);
    Codec<std::remove_cv_t<B>>::encode(out, value.second);
  }
  static std::pair<A, B> decode(const ValueView& in) {
    if (in.array_size() != 2) detail::fail_length(in, 2);
    return std::pair<A, B>{detail::decode_element<std::remove_cv_t<A>>(in.element(0), 0),
                           detail::decode_element<std::remove_cv_t<B>>(in.element(1), 1)};
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static void encode(Encoder& out, const std::tuple<Ts...>& value) {
    out.write_array_header(sizeof...(Ts));
    std::apply([&](const auto&... item) {
      (Codec<std::remove_cvref_t<decltype(item)>>::encode(out, item), ...);
    }, value);
  }
  static std::tuple<Ts...> decode(const ValueView& in) {
    if (in.array_size() != sizeof...(Ts)) detail::fail_length(in, sizeof...(Ts));
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      // Braces evaluate left to right, so the first bad element is the one reported.
      return std::tuple<Ts...>{detail::decode_element<Ts>(in.element(I), I)...};
    }(std::index_sequence_for<Ts...>{});
  }
};

// A variant is the array [index, value]: the 0-based index of the alternative held, then
// that alternative's encoding.
template <class... Ts>
struct Codec<std::variant<Ts...>> {
  using Variant = std::variant<Ts...>;
  static void encode(Encoder& out, const Variant& value) {
    if (value.valueless_by_exception()) detail::fail_valueless_variant();
    out.write_array_header(2);
    out.write_uint(value.index());
    std::visit(
        [&](const auto& item) { Codec<std::remove_cvref_t<decltype(item)>>::encode(out, item); },
        value);
  }
  static Variant decode(const ValueView& in) {
    if (in.array_size() != 2) detail::fail_length(in, 2);
    std::size_t index = 0;
    try {
      index = static_cast<std::size_t>(in.element(0).get_uint(sizeof...(Ts) - 1, "variant index"));
    } catch (const DecodeError& error) {
      detail::rethrow_at_index(error, 0);
    }
    using Decoder = Variant (*)(const ValueView&);
    static constexpr auto decoders = []<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<Decoder, sizeof...(Ts)>{+[](const ValueView& v) {
        return Variant(std::in_place_index<I>,
                       Codec<std::variant_alternative_t<I, Variant>>::decode(v));
      }...};
    }(std::index_sequence_for<Ts...>{});
    try {
      return decoders[index](in.element(1));
    } catch (const DecodeError& error) {
      detail::rethrow_at_index(error, 1);
    }
  }
};

// ------------------------------------------------------------------ containers

namespace detail {

template <class T>
concept MapContainer = requires(const T& c) {
  typename T::key_type;
  typename T::mapped_type;
  c.begin();
  c.end();
  c.size();
};

template <class T>
concept SequenceContainer =
    !MapContainer<T> && !CodableAccess::is_codable<T> &&
    requires(const T& c) {
      typename T::value_type;
      c.begin();
      c.end();
      c.size();
    } &&
    (requires(T& c, typename T::value_type&& x) { c.push_back(std::move(x)); } ||
     requires(T& c, typename T::value_type&& x) { c.insert(c.end(), std::move(x)); });

}  // namespace detail

// std::vector, std::deque, std::list, std::set, std::unordered_set, std::multiset, ...
// (anything with value_type, begin/end, size and push_back or insert): an array.
// A set keeps one of equal elements.
template <class T>
struct Codec<T, std::enable_if_t<detail::SequenceContainer<T>>> {
  using Element = typename T::value_type;
  static void encode(Encoder& out, const T& value) {
    out.write_array_header(value.size());
    for (const auto& item : value) Codec<Element>::encode(out, item);
  }
  static T decode(const ValueView& in) {
    const std::size_t size = in.array_size();
    T out;
    if constexpr (requires { out.reserve(size); }) out.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      if constexpr (requires(Element&& x) { out.push_back(std::move(x)); })
        out.push_back(detail::decode_element<Element>(in.element(i), i));
      else
        out.insert(out.end(), detail::decode_element<Element>(in.element(i), i));
    }
    return out;
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static void encode(Encoder& out, const std::array<T, N>& value) {
    out.write_array_header(N);
    for (const auto& item : value) Codec<T>::encode(out, item);
  }
  // T must be default-constructible.
  static std::array<T, N> decode(const ValueView& in) {
    if (in.array_size() != N) detail::fail_length(in, N);
    std::array<T, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = detail::decode_element<T>(in.element(i), i);
    return out;
  }
};

// std::map, std::unordered_map (anything with key_type, mapped_type, begin/end, size):
// a map. When a key repeats, the last value wins, as in a Python dict.
template <class T>
struct Codec<T,
             std::enable_if_t<detail::MapContainer<T> && !detail::CodableAccess::is_codable<T>>> {
  using Key = typename T::key_type;
  using Mapped = typename T::mapped_type;
  static void encode(Encoder& out, const T& value) {
    out.write_map_header(value.size());
    for (const auto& [key, mapped] : value) {
      Codec<Key>::encode(out, key);
      Codec<Mapped>::encode(out, mapped);
    }
  }
  static T decode(const ValueView& in) {
    const std::size_t size = in.map_size();
    T out;
    if constexpr (requires { out.reserve(size); }) out.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      const ValueView key_view = in.key(i);
      Key key = [&] {
        try {
          return Codec<Key>::decode(key_view);
        } catch (const DecodeError& error) {
          detail::rethrow_in_key(error, i);
        }
      }();
      Mapped mapped = [&] {
        try {
          return Codec<Mapped>::decode(in.value(i));
        } catch (const DecodeError& error) {
          detail::rethrow_at_key(error, key_view);
        }
      }();
      if constexpr (requires { out.insert_or_assign(std::move(key), std::move(mapped)); })
        out.insert_or_assign(std::move(key), std::move(mapped));
      else
        out.emplace(std::move(key), std::move(mapped));
    }
    return out;
  }
};

// ------------------------------------------------------------------ structs

// A struct marked IPCKIT_CODABLE is a map from field name (str) to value, in declaration
// order. Decoding ignores keys it does not know, takes the last of repeated keys, needs
// every field except std::optional ones (a missing optional becomes std::nullopt) and
// names a missing field in the error. The struct must be default-constructible, and its
// fields assignable (not const, not references, not bit-fields).
template <class T>
struct Codec<T, std::enable_if_t<detail::CodableAccess::is_codable<T>>> {
  static_assert(detail::CheckedFieldNames<T>::ok);
  static constexpr std::size_t kFieldCount = detail::field_count_v<T>;
  static constexpr const auto& kNames = detail::field_names_v<T>;
  using Fields = detail::fields_t<T>;

  static void encode(Encoder& out, const T& value) {
    const auto fields = detail::CodableAccess::fields(value);
    out.write_map_header(kFieldCount);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((out.write_str(kNames[I]),
        Codec<std::remove_cvref_t<std::tuple_element_t<I, decltype(fields)>>>::encode(
            out, std::get<I>(fields))),
       ...);
    }(std::make_index_sequence<kFieldCount>{});
  }

  static T decode(const ValueView& in) {
    if (in.kind() != ValueView::Kind::Map) [[unlikely]]
      detail::fail_not_struct(in, typeid(T));
    T out{};
    Fields fields = detail::CodableAccess::fields(out);
    std::array<bool, kFieldCount> seen{};
    const std::size_t size = in.map_size();
    std::size_t next = 0;  // fields usually come in declaration order: try that one first
    for (std::size_t i = 0; i < size; ++i) {
      const ValueView key = in.key(i);
      if (key.kind() != ValueView::Kind::Str) continue;
      const std::string_view name = key.get_str();
      std::size_t which = kFieldCount;
      if (next < kFieldCount && kNames[next] == name) {
        which = next;
      } else {
        for (std::size_t f = 0; f < kFieldCount; ++f)
          if (kNames[f] == name) {
            which = f;
            break;
          }
      }
      if (which == kFieldCount) continue;
      next = which + 1;
      seen[which] = true;
      try {
        detail::decode_field(fields, which, in.value(i), std::make_index_sequence<kFieldCount>{});
      } catch (const DecodeError& error) {
        detail::rethrow_at_field(error, kNames[which]);
      }
    }
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (check_present<I>(fields, seen[I]), ...);
    }(std::make_index_sequence<kFieldCount>{});
    return out;
  }

 private:
  template <std::size_t I>
  static void check_present(Fields& fields, bool seen) {
    if (seen) return;
    if constexpr (detail::is_optional_v<std::remove_cvref_t<std::tuple_element_t<I, Fields>>>)
      std::get<I>(fields) = std::nullopt;
    else
      detail::fail_missing_field(kNames[I], typeid(T));
  }
};

}  // namespace ipckit

// IPCKIT_CODABLE(field, ...): inside a struct or class, makes it codable as a map from
// field name to value (see Codec for structs above). List the data members by their plain
// names; any number of them. It may stand in a private section: it befriends ipckit's
// reader of the generated members.
//
//   struct Point { int x; double y; std::string label; IPCKIT_CODABLE(x, y, label) };
#define IPCKIT_CODABLE(...)                                                              \
  friend struct ::ipckit::detail::CodableAccess;                                         \
  static constexpr std::string_view ipckit_field_names() noexcept { return #__VA_ARGS__; } \
  auto ipckit_fields() noexcept { return std::tie(__VA_ARGS__); }                        \
  auto ipckit_fields() const noexcept { return std::tie(__VA_ARGS__); }
