#!/usr/bin/python3
"""The Python side of ipckit's codec interop test (tests/codec/python_interop_test.cpp).

Run with Debian's /usr/bin/python3 and its python3-msgpack:

  msgpack_interop.py check < records   reads values ipckit encoded and checks each against
                                       CHECKED[name] with msgpack.unpackb(raw=False); where
                                       the form is the one Python writes too, the bytes must
                                       also equal msgpack.packb(expected, use_bin_type=True)
  msgpack_interop.py emit > records    writes msgpack.packb(value, use_bin_type=True) of each
                                       value of EMITTED, for the test to decode in C++

A record is a name and a value, each as a 4-byte big-endian length and that many bytes.
Exit status: 0 all good; 1 a check failed (each failure on stdout); 2 bad usage or input;
3 the msgpack module is missing.
"""
import math
import struct
import sys

try:
    import msgpack
except ImportError as error:
    sys.stderr.write(
        f"msgpack_interop.py: cannot import msgpack ({error}) in {sys.executable}: "
        "install python3-msgpack (scripts/install-deps)\n")
    sys.exit(3)

FLOAT32_ONLY = object()  # marks a value ipckit writes as float32: compare values, not bytes

POINT = {"x": 1, "y": 2.5, "label": "p"}
ORDER = {
    "id": 7,
    "items": [
        {"name": "pen", "price": 1.25, "note": None, "tags": [1, 2]},
        {"name": "ink", "price": 3.0, "note": "blue", "tags": []},
    ],
    "places": {"home": {"x": -1, "y": 0.5, "label": "h"}},
    "origin": None,
}

# name -> (expected value, bytes must equal packb(expected)); the C++ side encodes the
# matching C++ values under the same names.
CHECKED = {
    "int_fixint": (7, True),
    "int_negative_fixint": (-5, True),
    "int8": (-100, True),
    "uint8": (200, True),
    "int16": (-30000, True),
    "uint16": (60000, True),
    "int32": (-2_000_000_000, True),
    "uint32": (4_000_000_000, True),
    "int64_min": (-2**63, True),
    "uint64_max": (2**64 - 1, True),
    "int64_positive": (2**40, True),
    "double": (3.141592653589793, True),
    "double_negative_zero": (-0.0, True),
    "double_inf": (math.inf, True),
    "double_nan": (math.nan, False),  # NaN payloads may differ
    "float32": (1.5, False),
    "bool_true": (True, True),
    "bool_false": (False, True),
    "str_unicode": ("h\u00e9llo \u2713 \U0001F600", True),
    "str_embedded_nul": ("a\0b\0", True),
    "str_empty": ("", True),
    "str_long": ("x" * 70000, True),
    "bytes": (b"\x00\x01\xfe\xff", True),
    "bytes_empty": (b"", True),
    "list_int": ([1, -2, 3], True),
    "list_str": (["a", "bc"], True),
    "list_long": (list(range(70000)), True),
    "dict_str_int": ({"a": 1, "b": 2}, True),
    "dict_int_str": ({1: "one", 2: "two"}, True),
    "none": (None, True),
    "optional_set": (5, True),
    "list_of_optional": ([1, None, 3], True),
    "nested": ({"xs": [[1.5, None], []], "ys": [[2.5]]}, True),
    "struct": (POINT, True),
    "struct_nested": (ORDER, True),
    "variant_int": ([0, 42], True),
    "variant_str": ([1, "abc"], True),
    "tuple": ([1, "x", True], True),
    "enum": (2, True),
    "monostate": (None, True),
}

# name -> value; the C++ side decodes each into a C++ type and compares.
EMITTED = {
    "int_fixint": 7,
    "int8": -100,
    "uint8": 255,
    "int16": -32768,
    "uint16": 65535,
    "int32": -2**31,
    "uint32": 2**32 - 1,
    "int64_min": -2**63,
    "uint64_max": 2**64 - 1,
    "double": 0.1,
    "double_from_int": 3,
    "float_rounded": 0.1,
    "double_inf": -math.inf,
    "double_nan": math.nan,
    "bool": True,
    "str_unicode": "h\u00e9llo \u2713 \U0001F600",
    "str_embedded_nul": "a\0b\0",
    "str_long": "y" * 70000,
    "bytes": b"\x00\x01\xfe\xff",
    "bytearray": bytearray(b"ab"),
    "list_int": [1, -2, 3],
    "tuple": (1, "x", True),
    "set_from_list": [3, 1, 2, 3],
    "array3": [1, 2, 3],
    "dict_str_int": {"b": 2, "a": 1},
    "dict_int_list": {1: [1.5], 2: []},
    "none": None,
    "optional_set": 5,
    "list_of_optional": [None, 4],
    "nested": {"xs": [[1.5, None], []]},
    "struct": {"label": "p", "y": 2.5, "x": 1, "unknown": [1, 2]},
    "struct_nested": {
        "id": 7,
        "items": [{"name": "pen", "price": 2, "tags": []}],  # no note; an int price
        "places": {},
    },  # no origin
    "variant_str": [1, "abc"],
    "enum": 2,
}


def same(expected, got):
    """Equal values of equal types (True is not 1, 1 is not 1.0), dict order included."""
    if type(expected) is not type(got):
        return False
    if isinstance(expected, float):
        if math.isnan(expected):
            return math.isnan(got)
        return expected == got and math.copysign(1, expected) == math.copysign(1, got)
    if isinstance(expected, list):
        return len(expected) == len(got) and all(same(a, b) for a, b in zip(expected, got))
    if isinstance(expected, dict):
        return len(expected) == len(got) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(expected.items(), got.items()))
    return expected == got


def short(value):
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "..."


def read_records(data):
    records = []
    offset = 0
    while offset < len(data):
        fields = []
        for _ in range(2):
            if offset + 4 > len(data):
                raise ValueError(f"truncated record at offset {offset}")
            (size,) = struct.unpack_from(">I", data, offset)
            offset += 4
            if offset + size > len(data):
                raise ValueError(f"truncated record at offset {offset}")
            fields.append(data[offset:offset + size])
            offset += size
        records.append((fields[0].decode(), fields[1]))
    return records


def write_record(out, name, payload):
    encoded = name.encode()
    out.write(struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", len(payload)) + payload)


def check():
    try:
        records = read_records(sys.stdin.buffer.read())
    except ValueError as error:
        print(f"bad input: {error}")
        return 2
    failures = []
    seen = set()
    for name, raw in records:
        seen.add(name)
        if name not in CHECKED:
            failures.append(f"{name}: not a known case")
            continue
        expected, exact = CHECKED[name]
        try:
            got = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as error:  # any failure to read ipckit's bytes is a finding
            failures.append(f"{name}: msgpack.unpackb failed: {error!r} on {raw[:40].hex()}")
            continue
        if not same(expected, got):
            failures.append(f"{name}: expected {short(expected)}, got {short(got)}")
        elif exact and raw != msgpack.packb(expected, use_bin_type=True):
            failures.append(f"{name}: bytes {raw[:40].hex()} differ from Python's "
                            f"{msgpack.packb(expected, use_bin_type=True)[:40].hex()}")
    for name in CHECKED.keys() - seen:
        failures.append(f"{name}: not sent by the C++ side")
    for failure in failures:
        print(failure)
    if failures:
        return 1
    print(f"ok: {len(records)} values checked with msgpack {msgpack.version}")
    return 0


def emit():
    out = sys.stdout.buffer
    for name, value in EMITTED.items():
        write_record(out, name, msgpack.packb(value, use_bin_type=True))
    out.flush()
    return 0


def main(argv):
    if argv[1:] == ["check"]:
        return check()
    if argv[1:] == ["emit"]:
        return emit()
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
