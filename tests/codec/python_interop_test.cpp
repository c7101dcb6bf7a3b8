// Interop of ipckit's codec with Python's msgpack package: ipckit's bytes read by
// msgpack.unpackb(raw=False), and msgpack.packb(use_bin_type=True) bytes read by ipckit.
// The Python side is tests/codec/msgpack_interop.py, run with Debian's /usr/bin/python3
// (python3-msgpack, from scripts/install-deps); a missing one is a failure, not a skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "ipckit/codec.hpp"
#include "ipckit_test.hpp"

#ifndef IPCKIT_MSGPACK_INTEROP_SCRIPT
#error "tests/codec/CMakeLists.txt defines IPCKIT_MSGPACK_INTEROP_SCRIPT"
#endif

namespace {

using ipckit::Bytes;
using CodecPythonInteropTest = ipckit::test::Test;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kScript = IPCKIT_MSGPACK_INTEROP_SCRIPT;
constexpr int kScriptMsgpackMissing = 3;  // msgpack_interop.py's exit status

struct InteropPoint {
  int x = 0;
  double y = 0;
  std::string label;
  IPCKIT_CODABLE(x, y, label)
  bool operator==(const InteropPoint&) const = default;
};

struct InteropItem {
  std::string name;
  double price = 0;
  std::optional<std::string> note;
  std::vector<int> tags;
  IPCKIT_CODABLE(name, price, note, tags)
  bool operator==(const InteropItem&) const = default;
};

struct InteropOrder {
  std::uint64_t id = 0;
  std::vector<InteropItem> items;
  std::map<std::string, InteropPoint> places;
  std::optional<InteropPoint> origin;
  IPCKIT_CODABLE(id, items, places, origin)
  bool operator==(const InteropOrder&) const = default;
};

enum class Color : std::uint8_t { Red, Green, Blue };

// ------------------------------------------------------------------ records

// name and value, each a 4-byte big-endian length and its bytes (msgpack_interop.py).
void append_field(Bytes& out, std::span<const std::byte> field) {
  const auto size = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::byte>((size >> shift) & 0xff));
  out.insert(out.end(), field.begin(), field.end());
}

template <class T>
void add_record(Bytes& out, std::string_view name, const T& value) {
  append_field(out, std::as_bytes(std::span(name.data(), name.size())));
  append_field(out, ipckit::encode(value));
}

std::map<std::string, Bytes> parse_records(const Bytes& in) {
  std::map<std::string, Bytes> records;
  std::size_t offset = 0;
  auto field = [&]() -> Bytes {
    if (in.size() - offset < 4) throw std::runtime_error("truncated record from Python");
    std::uint32_t size = 0;
    for (int i = 0; i < 4; ++i) size = size << 8 | std::to_integer<std::uint32_t>(in[offset + i]);
    offset += 4;
    if (in.size() - offset < size) throw std::runtime_error("truncated record from Python");
    Bytes out(in.begin() + static_cast<std::ptrdiff_t>(offset),
              in.begin() + static_cast<std::ptrdiff_t>(offset + size));
    offset += size;
    return out;
  };
  while (offset < in.size()) {
    const Bytes name = field();
    records[std::string(reinterpret_cast<const char*>(name.data()), name.size())] = field();
  }
  return records;
}

// ------------------------------------------------------------------ running Python

struct PythonRun {
  int exit_code = -1;  // negative: killed by that signal; 127: exec failed
  Bytes out;
  std::string err;
};

// Runs `/usr/bin/python3 -I msgpack_interop.py <mode>`, feeding `input` to its stdin while
// reading its stdout and stderr (poll, so no pipe fills up), and reaps it. stdin is a
// socket so that a child that exits early gives EPIPE (MSG_NOSIGNAL), not SIGPIPE.
PythonRun run_python(const std::string& mode, const Bytes& input) {
  int in[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
    throw std::runtime_error("socketpair");
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2");
  std::vector<std::string> args{kPython, "-I", kScript, mode};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {  // async-signal-safe calls only until exec
    ::dup2(in[1], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execv(kPython, argv.data());
    ::_exit(127);
  }
  ::close(in[1]);
  ::close(out[1]);
  ::close(err[1]);

  PythonRun run;
  std::size_t written = 0;
  bool writing = true, out_open = true, err_open = true;
  if (input.empty()) {
    ::shutdown(in[0], SHUT_WR);
    writing = false;
  }
  while (writing || out_open || err_open) {
    pollfd fds[3] = {{writing ? in[0] : -1, POLLOUT, 0},
                     {out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("poll");
    }
    if (writing && fds[0].revents != 0) {
      const ssize_t n = ::send(in[0], input.data() + written, input.size() - written,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) written += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        ::shutdown(in[0], SHUT_WR);
        writing = false;
      }
    }
    char buf[65536];
    if (out_open && fds[1].revents != 0) {
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n > 0) {
        const auto* b = reinterpret_cast<const std::byte*>(buf);
        run.out.insert(run.out.end(), b, b + n);
      } else if (n == 0 || errno != EINTR) {
        out_open = false;
      }
    }
    if (err_open && fds[2].revents != 0) {
      const ssize_t n = ::read(err[0], buf, sizeof buf);
      if (n > 0)
        run.err.append(buf, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR)
        err_open = false;
    }
  }
  ::close(in[0]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return run;
}

// Fails the test with a clear reason when Python or msgpack is not there.
::testing::AssertionResult python_ran(const PythonRun& run) {
  if (run.exit_code == 127)
    return ::testing::AssertionFailure()
           << kPython << " could not be executed: install python3 and python3-msgpack "
           << "(scripts/install-deps). " << run.err;
  if (run.exit_code == kScriptMsgpackMissing)
    return ::testing::AssertionFailure()
           << "msgpack is missing from " << kPython << ": " << run.err;
  return ::testing::AssertionSuccess();
}

std::string text(const Bytes& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// ------------------------------------------------------------------ tests

TEST_F(CodecPythonInteropTest, PythonIsThere) {
  ASSERT_EQ(::access(kPython, X_OK), 0)
      << kPython << " is missing: install python3 and python3-msgpack (scripts/install-deps)";
  ASSERT_EQ(::access(kScript, R_OK), 0) << kScript << " is missing";
}

TEST_F(CodecPythonInteropTest, PythonReadsWhatIpckitWrites) {
  const InteropPoint point{1, 2.5, "p"};
  InteropOrder order{7,
                     {{"pen", 1.25, std::nullopt, {1, 2}}, {"ink", 3.0, "blue", {}}},
                     {{"home", InteropPoint{-1, 0.5, "h"}}},
                     std::nullopt};
  std::vector<std::int64_t> long_list(70000);
  for (std::size_t i = 0; i < long_list.size(); ++i) long_list[i] = static_cast<std::int64_t>(i);
  using Variant = std::variant<int, std::string>;

  Bytes records;
  add_record(records, "int_fixint", std::uint8_t{7});
  add_record(records, "int_negative_fixint", std::int64_t{-5});
  add_record(records, "int8", std::int8_t{-100});
  add_record(records, "uint8", std::uint8_t{200});
  add_record(records, "int16", std::int16_t{-30000});
  add_record(records, "uint16", std::uint16_t{60000});
  add_record(records, "int32", std::int32_t{-2000000000});
  add_record(records, "uint32", std::uint32_t{4000000000u});
  add_record(records, "int64_min", std::numeric_limits<std::int64_t>::min());
  add_record(records, "uint64_max", std::numeric_limits<std::uint64_t>::max());
  add_record(records, "int64_positive", std::int64_t{1} << 40);
  add_record(records, "double", 3.141592653589793);
  add_record(records, "double_negative_zero", -0.0);
  add_record(records, "double_inf", std::numeric_limits<double>::infinity());
  add_record(records, "double_nan", std::numeric_limits<double>::quiet_NaN());
  add_record(records, "float32", 1.5f);
  add_record(records, "bool_true", true);
  add_record(records, "bool_false", false);
  add_record(records, "str_unicode", std::string("h\u00e9llo \u2713 \U0001F600"));
  add_record(records, "str_embedded_nul", std::string("a\0b\0", 4));
  add_record(records, "str_empty", std::string());
  add_record(records, "str_long", std::string(70000, 'x'));
  add_record(records, "bytes", Bytes{std::byte{0}, std::byte{1}, std::byte{0xfe}, std::byte{0xff}});
  add_record(records, "bytes_empty", Bytes{});
  add_record(records, "list_int", std::vector<int>{1, -2, 3});
  add_record(records, "list_str", std::vector<std::string>{"a", "bc"});
  add_record(records, "list_long", long_list);
  add_record(records, "dict_str_int", std::map<std::string, int>{{"a", 1}, {"b", 2}});
  add_record(records, "dict_int_str", std::map<int, std::string>{{1, "one"}, {2, "two"}});
  add_record(records, "none", std::optional<int>{});
  add_record(records, "optional_set", std::optional<int>{5});
  add_record(records, "list_of_optional", std::vector<std::optional<int>>{1, std::nullopt, 3});
  add_record(records, "nested",
             std::map<std::string, std::vector<std::vector<std::optional<double>>>>{
                 {"xs", {{1.5, std::nullopt}, {}}}, {"ys", {{2.5}}}});
  add_record(records, "struct", point);
  add_record(records, "struct_nested", order);
  add_record(records, "variant_int", Variant{42});
  add_record(records, "variant_str", Variant{"abc"});
  add_record(records, "tuple", std::tuple<int, std::string, bool>{1, "x", true});
  add_record(records, "enum", Color::Blue);
  add_record(records, "monostate", std::monostate{});

  const PythonRun run = run_python("check", records);
  ASSERT_TRUE(python_ran(run));
  EXPECT_EQ(run.exit_code, 0) << "msgpack_interop.py check:\n" << text(run.out) << run.err;
}

TEST_F(CodecPythonInteropTest, IpckitReadsWhatPythonWrites) {
  const PythonRun run = run_python("emit", {});
  ASSERT_TRUE(python_ran(run));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto records = parse_records(run.out);
  std::set<std::string> checked;
  auto value = [&](const std::string& name) -> const Bytes& {
    checked.insert(name);
    const auto it = records.find(name);
    if (it == records.end()) throw std::runtime_error("Python did not send " + name);
    return it->second;
  };
  using ipckit::decode;

  EXPECT_EQ(decode<std::int8_t>(value("int_fixint")), 7);
  EXPECT_EQ(decode<std::int8_t>(value("int8")), -100);
  EXPECT_EQ(decode<std::uint8_t>(value("uint8")), 255);
  EXPECT_EQ(decode<std::int16_t>(value("int16")), -32768);
  EXPECT_EQ(decode<std::uint16_t>(value("uint16")), 65535);
  EXPECT_EQ(decode<std::int32_t>(value("int32")), std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(decode<std::uint32_t>(value("uint32")), std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(decode<std::int64_t>(value("int64_min")), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(decode<std::uint64_t>(value("uint64_max")), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(decode<double>(value("double")), 0.1);
  EXPECT_EQ(decode<double>(value("double_from_int")), 3.0);
  EXPECT_EQ(decode<float>(value("float_rounded")), 0.1f);
  EXPECT_EQ(decode<double>(value("double_inf")), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(decode<double>(value("double_nan"))));
  EXPECT_TRUE(decode<bool>(value("bool")));
  EXPECT_EQ(decode<std::string>(value("str_unicode")), "h\u00e9llo \u2713 \U0001F600");
  EXPECT_EQ(decode<std::string>(value("str_embedded_nul")), std::string("a\0b\0", 4));
  EXPECT_EQ(decode<std::string>(value("str_long")), std::string(70000, 'y'));
  EXPECT_EQ(decode<Bytes>(value("bytes")),
            (Bytes{std::byte{0}, std::byte{1}, std::byte{0xfe}, std::byte{0xff}}));
  EXPECT_EQ(decode<Bytes>(value("bytearray")), (Bytes{std::byte{'a'}, std::byte{'b'}}));
  EXPECT_EQ(decode<std::vector<int>>(value("list_int")), (std::vector<int>{1, -2, 3}));
  EXPECT_EQ((decode<std::tuple<int, std::string, bool>>(value("tuple"))),
            (std::tuple<int, std::string, bool>{1, "x", true}));
  EXPECT_EQ(decode<std::set<int>>(value("set_from_list")), (std::set<int>{1, 2, 3}));
  EXPECT_EQ((decode<std::array<int, 3>>(value("array3"))), (std::array<int, 3>{1, 2, 3}));
  EXPECT_EQ((decode<std::map<std::string, int>>(value("dict_str_int"))),
            (std::map<std::string, int>{{"a", 1}, {"b", 2}}));
  EXPECT_EQ((decode<std::map<int, std::vector<double>>>(value("dict_int_list"))),
            (std::map<int, std::vector<double>>{{1, {1.5}}, {2, {}}}));
  EXPECT_EQ(decode<std::optional<int>>(value("none")), std::nullopt);
  EXPECT_EQ(decode<std::optional<int>>(value("optional_set")), 5);
  EXPECT_EQ(decode<std::vector<std::optional<int>>>(value("list_of_optional")),
            (std::vector<std::optional<int>>{std::nullopt, 4}));
  EXPECT_EQ((decode<std::map<std::string, std::vector<std::vector<std::optional<double>>>>>(
                value("nested"))),
            (std::map<std::string, std::vector<std::vector<std::optional<double>>>>{
                {"xs", {{1.5, std::nullopt}, {}}}}));
  EXPECT_EQ(decode<InteropPoint>(value("struct")), (InteropPoint{1, 2.5, "p"}));
  EXPECT_EQ(decode<InteropOrder>(value("struct_nested")),
            (InteropOrder{7, {{"pen", 2.0, std::nullopt, {}}}, {}, std::nullopt}));
  EXPECT_EQ((decode<std::variant<int, std::string>>(value("variant_str"))),
            (std::variant<int, std::string>{"abc"}));
  EXPECT_EQ(decode<Color>(value("enum")), Color::Blue);

  std::set<std::string> sent;
  for (const auto& [name, bytes] : records) sent.insert(name);
  EXPECT_EQ(sent, checked) << "msgpack_interop.py EMITTED and this test disagree on the cases";
}

}  // namespace
