"""Tests of the external term format codec (beamlet.distribution.etf).

The golden vectors are byte-exact: OTP 25's `binary_to_term` then `term_to_binary(_,
[{minor_version, 2}])` gives them back unchanged (checked by the `interop` tests, except
`[1]`, which Erlang writes as a STRING_EXT). The `interop` tests cross-check everything
against a real `erl`, all in one invocation per module.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamlet._core.errors import BeamletError
from beamlet._core.terms import Atom, Pid, Ref
from beamlet.distribution.etf import (
    MAX_KEY_DEPTH,
    AtomCache,
    BitString,
    Charlist,
    DecodeError,
    EncodeError,
    ErlMap,
    Export,
    FrozenList,
    FrozenMap,
    Fun,
    ImproperList,
    Port,
    decode,
    decode_body_prefix,
    decode_prefix,
    encode,
    encode_body,
    encode_into,
)

A = Atom
NODE = A("a@b")
NODE_HEX = "7703614062"  # SMALL_ATOM_UTF8 'a@b'
LOCAL = A("nonode@nohost")

# A fun made by OTP 25: term_to_binary(fun(X) -> X + 1 end) in an `erl -eval`.
ERL_FUN = bytes.fromhex(
    "8370000000BD01065361AA461590D1BDF1EB62D1A6EB080000002A0000000164000865726C5F6576616C"
    "612A6200329B0D5864000D6E6F6E6F6465406E6F686F7374000000090000000000000000680661066A64"
    "00046E6F6E656400046E6F6E6574000000006C000000016805640006636C6175736561066C0000000168"
    "036400037661726106640001586A6A6C0000000168056400026F7061066400012B68036400037661726106"
    "640001586803640007696E7465676572610661016A6A"
)


# ------------------------------------------------------------------------ helpers


def same(a: Any, b: Any) -> bool:
    """Strict structural equality: types must match too (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | FrozenMap):
        if len(a) != len(b):
            return False
        keys_b = {k: k for k in b}
        for k, v in a.items():
            if k not in keys_b or not same(k, keys_b[k]) or not same(v, b[keys_b[k]]):
                return False
        return True
    if isinstance(a, ImproperList):
        return same(a.items, b.items) and same(a.tail, b.tail)
    return bool(a == b)


def expected(value: Any, *, erl: bool = False, key: bool = False) -> Any:
    """What decoding the encoding of `value` gives (after a trip through erl if `erl`)."""
    if value is None:
        return A("undefined")
    if isinstance(value, str) and type(value) is not A:
        return value.encode()
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, Charlist):
        if not value.text:
            return FrozenList() if key else []
        if all(ord(c) < 256 for c in value.text) and len(value.text) < 65536:
            return value
        return expected([ord(c) for c in value.text], erl=erl, key=key)
    if isinstance(value, list | FrozenList):
        if (
            erl
            and value
            and len(value) < 65536
            and all(type(x) is int and 0 <= x < 256 for x in value)
        ):
            return Charlist("".join(map(chr, value)))
        items = [expected(x, erl=erl, key=key) for x in value]
        return FrozenList(items) if key else items
    if type(value) is tuple:
        return tuple(expected(x, erl=erl, key=key) for x in value)
    if isinstance(value, ImproperList):
        return ImproperList(
            tuple(expected(x, erl=erl, key=key) for x in value.items),
            expected(value.tail, erl=erl, key=key),
        )
    if isinstance(value, dict | FrozenMap):
        d = {
            expected(k, erl=erl, key=True): expected(v, erl=erl, key=key) for k, v in value.items()
        }
        return FrozenMap(d) if key else d
    return value


def roundtrip(value: Any) -> Any:
    return decode(encode(value))


def nest_list(depth: int) -> list[Any]:
    x: list[Any] = []
    for _ in range(depth):
        x = [x]
    return x


def nest_tuple(depth: int) -> tuple[Any, ...]:
    x: tuple[Any, ...] = ()
    for _ in range(depth):
        x = (x,)
    return x


# ------------------------------------------------------------------ golden vectors

GOLDEN: list[tuple[str, Any, str]] = [
    ("small int 0", 0, "6100"),
    ("small int 255", 255, "61ff"),
    ("integer 256", 256, "6200000100"),
    ("integer -1", -1, "62ffffffff"),
    ("integer max", 2**31 - 1, "627fffffff"),
    ("integer min", -(2**31), "6280000000"),
    ("small big 2^31", 2**31, "6e040000000080"),
    ("small big -2^31-1", -(2**31) - 1, "6e040101000080"),
    ("small big 2^64", 2**64, "6e0900" + "00" * 8 + "01"),
    ("large big 2^2040", 2**2040, "6f0000010000" + "00" * 255 + "01"),
    ("new float 1.5", 1.5, "463ff8000000000000"),
    ("new float -0.0", -0.0, "468000000000000000"),
    ("small atom utf8", A("ok"), "77026f6b"),
    ("atom utf8 (>255 bytes)", A("é" * 200), "760190" + "c3a9" * 200),
    ("empty atom", A(""), "7700"),
    ("true", True, "770474727565"),
    ("false", False, "770566616c7365"),
    ("binary", b"ab", "6d000000026162"),
    ("empty binary", b"", "6d00000000"),
    ("bit binary", BitString(b"\xe0", 3), "4d0000000103e0"),
    ("small tuple", (1, 2), "680261016102"),
    ("empty tuple", (), "6800"),
    ("large tuple", (0,) * 256, "6900000100" + "6100" * 256),
    ("nil", [], "6a"),
    ("list", [1], "6c0000000161016a"),
    ("improper list", ImproperList((1,), 2), "6c0000000161016102"),
    ("string", Charlist("abc"), "6b0003616263"),
    ("charlist > 255", Charlist("✓"), "6c0000000162000027136a"),
    ("empty map", {}, "7400000000"),
    ("map", {A("a"): 1}, "74000000017701616101"),
    ("new pid", Pid(NODE, 1, 2, 3), "58" + NODE_HEX + "000000010000000200000003"),
    (
        "newer reference",
        Ref(NODE, (1, 2, 3), 4),
        "5a0003" + NODE_HEX + "00000004000000010000000200000003",
    ),
    ("new port", Port(NODE, 5, 6), "59" + NODE_HEX + "0000000500000006"),
    ("v4 port", Port(NODE, 2**32, 6), "78" + NODE_HEX + "000000010000000000000006"),
    ("export", Export(A("l"), A("m"), 2), "7177016c77016d6102"),
    ("new fun (opaque)", Fun(ERL_FUN[1:]), ERL_FUN[1:].hex()),
]


@pytest.mark.parametrize(("value", "body"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_golden_encode_and_decode(value: Any, body: str) -> None:
    wire = bytes([131]) + bytes.fromhex(body)
    assert encode(value) == wire
    assert encode_body(value) == wire[1:]
    assert same(decode(wire), expected(value))


# Mapping asymmetries and decode-only (legacy / Erlang-produced) encodings.
DECODE_ONLY: list[tuple[str, str, Any]] = [
    ("None -> undefined", "7709756e646566696e6564", A("undefined")),
    ("str is a binary", "6d00000002c3a9", b"\xc3\xa9"),
    ("ATOM_EXT latin-1", "640001e9", A("é")),
    ("ATOM_EXT true", "64000474727565", True),
    ("SMALL_ATOM_EXT", "73026f6b", A("ok")),
    ("ATOM_UTF8_EXT short", "7600026f6b", A("ok")),
    ("FLOAT_EXT", "63" + b"1.50000000000000000000e+00".ljust(31, b"\0").hex(), 1.5),
    ("PID_EXT", "67" + NODE_HEX + "000000010000000203", Pid(NODE, 1, 2, 3)),
    ("PORT_EXT", "66" + NODE_HEX + "0000000506", Port(NODE, 5, 6)),
    ("REFERENCE_EXT", "65" + NODE_HEX + "0000000702", Ref(NODE, (7,), 2)),
    (
        "NEW_REFERENCE_EXT",
        "720003" + NODE_HEX + "02000000010000000200000003",
        Ref(NODE, (1, 2, 3), 2),
    ),
    (
        "NEWER_REFERENCE_EXT 5 words",
        "5a0005" + NODE_HEX + "00000000" + "".join(f"{i:08x}" for i in range(1, 6)),
        Ref(NODE, (1, 2, 3, 4, 5), 0),
    ),
    ("pid with ATOM_EXT node (OTP 25)", "5864000161" + "00" * 11 + "01", Pid(A("a"), 0, 0, 1)),
    ("empty STRING_EXT is []", "6b0000", []),
    ("list with string tail", "6c00000001610a6b000162", [10, 98]),
    ("list with list tail", "6c000000016101" + "6c0000000161026a", [1, 2]),
    (
        "list with improper tail",
        "6c000000016101" + "6c0000000161026103",
        ImproperList((1, 2), 3),
    ),
    ("LIST_EXT of length 0 is its tail", "6c000000006101", 1),
    ("BIT_BINARY of 8 bits is a binary", "4d0000000108ff", b"\xff"),
    ("empty BIT_BINARY", "4d0000000000", b""),
    ("BIT_BINARY unused bits cleared", "4d00000001037f", BitString(b"\x60", 3)),
    ("SMALL_BIG zero digits", "6e0000", 0),
    ("SMALL_BIG not normalised", "6e02000100", 1),
    ("LARGE_BIG small value", "6f000000010107", -7),
    ("LARGE_TUPLE small arity", "69000000016101", (1,)),
    ("list map key -> FrozenList", "74000000016c0000000161016a6102", {FrozenList([1]): 2}),
    ("map map key -> FrozenMap", "7400000001740000000161016102" + "6103", {FrozenMap({1: 2}): 3}),
    ("nil map key", "74000000016a6101", {FrozenList(): 1}),
    ("empty map key", "74000000017400000000" + "6101", {FrozenMap(): 1}),
    ("map value stays a list", "74000000016101" + "6c0000000161016a", {1: [1]}),
    (
        "nested key containers frozen",
        "7400000001" + "6801" + "6c00000001" + "7400000000" + "6a" + "6100",
        {(FrozenList([FrozenMap()]),): 0},
    ),
    ("string map key stays Charlist", "74000000016b000161" + "6100", {Charlist("a"): 0}),
]


@pytest.mark.parametrize(
    ("body", "value"), [d[1:] for d in DECODE_ONLY], ids=[d[0] for d in DECODE_ONLY]
)
def test_golden_decode_only(body: str, value: Any) -> None:
    assert same(decode(bytes([131]) + bytes.fromhex(body)), value)


def test_new_fun_reencodes_byte_identically() -> None:
    fun = decode(ERL_FUN)
    assert isinstance(fun, Fun)
    assert fun.arity == 1
    assert encode(fun) == ERL_FUN
    assert (
        encode((fun, [fun]))
        == b"\x83h\x02" + ERL_FUN[1:] + b"l\x00\x00\x00\x01" + ERL_FUN[1:] + b"j"
    )


def test_old_fun_ext_is_kept_opaque() -> None:
    pid = "58" + NODE_HEX + "000000010000000200000003"
    body = bytes.fromhex("7500000001" + pid + "77016d" + "6101" + "6102" + "6c0000000161016a")
    fun = decode(b"\x83" + body)
    assert fun == Fun(body)
    assert fun.arity is None
    assert encode(fun) == b"\x83" + body


def test_new_fun_size_must_match_contents() -> None:
    bad = bytearray(ERL_FUN)
    struct.pack_into(">I", bad, 2, struct.unpack_from(">I", bad, 2)[0] - 1)
    with pytest.raises(DecodeError):
        decode(bytes(bad))


# term_to_binary(lists:duplicate(100, hello), [compressed]) by OTP 25: ATOM_EXT atoms;
# then with {minor_version, 2}, which is byte for byte what we produce.
ERL_COMPRESSED = "835000000326789CCB61606048496160CD48CDC9C91FA547E9511A93CE02003410FA0F"
ERL_COMPRESSED_V2 = "8350000002C2789CCB616060482967CD48CDC9C91FA546A92147650100E323018A"


def test_compressed_golden_from_erl() -> None:
    hellos = [A("hello")] * 100
    assert decode(bytes.fromhex(ERL_COMPRESSED)) == hellos
    assert decode(bytes.fromhex(ERL_COMPRESSED_V2)) == hellos
    assert encode(hellos, compressed=True) == bytes.fromhex(ERL_COMPRESSED_V2)
    body = encode_body(list(range(1, 301)))
    wire = b"\x83P" + struct.pack(">I", len(body)) + zlib.compress(body, 9)
    assert decode(wire) == list(range(1, 301))


def test_compressed_encode() -> None:
    term = [A("hello")] * 500
    wire = encode(term, compressed=True)
    assert wire[:2] == b"\x83P"
    assert struct.unpack(">I", wire[2:6])[0] == len(encode_body(term))
    assert decode(wire) == term
    assert len(wire) < len(encode(term))
    assert encode(term, compressed=9) != encode(term)
    # Not smaller: Erlang sends it uncompressed, so do we.
    assert encode(1, compressed=True) == encode(1)
    assert encode(term, compressed=0) == encode(term)
    with pytest.raises(ValueError):
        encode(term, compressed=10)


# ------------------------------------------------------------------ mapping rules


def test_bool_none_and_atoms() -> None:
    assert roundtrip(True) is True
    assert roundtrip(False) is False
    assert roundtrip(None) == A("undefined")
    assert type(roundtrip(A("true"))) is bool
    assert roundtrip(A("nil")) == A("nil")


def test_str_encodes_as_utf8_binary_and_decodes_as_bytes() -> None:
    assert roundtrip("héllo ✓") == "héllo ✓".encode()
    assert roundtrip(bytearray(b"ab")) == b"ab"
    assert roundtrip(memoryview(b"ab")) == b"ab"


def test_subclasses_of_builtins_encode_as_their_base() -> None:
    import enum
    from collections import OrderedDict, namedtuple

    class Color(enum.IntEnum):
        RED = 1

    class Mode(enum.StrEnum):
        FAST = "fast"

    point = namedtuple("point", "x y")
    assert encode(Color.RED) == encode(1)
    assert encode(Mode.FAST) == encode("fast")
    assert encode(point(1, 2)) == encode((1, 2))
    assert encode(OrderedDict(a=1)) == encode({"a": 1})


def test_charlist_type() -> None:
    c = Charlist("hi")
    assert c == [104, 105]
    assert [104, 105] == c  # noqa: SIM300 - the reflected comparison is the point
    assert c != [104, 105.0]
    assert c != "hi"
    assert c == Charlist("hi")
    assert hash(c) == hash(Charlist("hi"))
    assert list(c) == [104, 105]
    assert c.codes() == [104, 105]
    assert str(c) == "hi"
    assert len(c) == 2
    match c:
        case Charlist(text):
            assert text == "hi"
    assert roundtrip(Charlist("")) == []
    assert roundtrip(Charlist("é")) == Charlist("é")
    assert roundtrip(Charlist("✓")) == [0x2713]
    long = Charlist("a" * 70000)
    assert encode(long)[1] == 108  # too long for STRING_EXT
    assert roundtrip(long) == [97] * 70000
    with pytest.raises(ValueError):
        Charlist(A("x"))


def test_frozen_list_type() -> None:
    f = FrozenList([1, 2])
    assert f == [1, 2]
    assert [1, 2] == f  # noqa: SIM300
    assert f != (1, 2)
    assert (1, 2) != f  # noqa: SIM300
    assert len({f, (1, 2)}) == 2
    assert hash(f) == hash(FrozenList((1, 2)))
    match f:
        case [a, b]:
            assert (a, b) == (1, 2)
    assert encode(f) == encode([1, 2])
    assert encode(FrozenList()) == encode([])
    assert repr(f) == "FrozenList([1, 2])"


def test_frozen_map_type() -> None:
    m = FrozenMap({1: 2})
    assert m == {1: 2}
    assert m == FrozenMap({1: 2})
    assert hash(m) == hash(FrozenMap({1: 2}))
    assert m[1] == 2
    assert list(m) == [1]
    assert encode(m) == encode({1: 2})
    with pytest.raises(AttributeError):
        m._d = {}  # type: ignore[misc]


def test_map_keys_are_made_hashable() -> None:
    wire = encode({FrozenList([1, 2]): A("list"), (1, 2): A("tuple")})
    d = decode(wire)
    assert d[FrozenList([1, 2])] == A("list")
    assert d[(1, 2)] == A("tuple")
    assert len(d) == 2
    nested = decode(encode({(FrozenList([FrozenMap({A("k"): FrozenList([3])})]),): 1}))
    (key,) = nested
    assert same(key, (FrozenList([FrozenMap({A("k"): FrozenList([3])})]),))


def test_map_keys_equal_in_python_become_an_erlmap() -> None:
    # #{1 => a, 1.0 => b} is a valid Erlang map; a dict cannot hold both keys, an ErlMap can.
    wire = b"\x83t\x00\x00\x00\x02" + encode_body(1) + encode_body(A("a"))
    wire += encode_body(1.0) + encode_body(A("b"))
    m = decode(wire)
    assert type(m) is ErlMap
    assert m[1] == A("a") and m[1.0] == A("b")
    assert encode(m) == wire


def test_bitstring_type() -> None:
    b = BitString(b"\xff\xff", 1)
    assert b.data == b"\xff\x80"
    assert b.bit_length == 9
    assert BitString(bytearray(b"\x01"), 7).data == b"\x00"
    assert hash(b) == hash(BitString(b"\xff\x80", 1))
    for bad in [(b"", 1), (b"a", 0), (b"a", 8), (b"a", True)]:
        with pytest.raises(ValueError):
            BitString(*bad)


def test_improper_list_type() -> None:
    il = ImproperList([1, 2], A("t"))  # type: ignore[arg-type]
    assert il.items == (1, 2)
    assert hash(il) == hash(ImproperList((1, 2), A("t")))
    match il:
        case ImproperList(items, tail):
            assert items == (1, 2) and tail == A("t")
    with pytest.raises(ValueError):
        ImproperList((), 1)
    with pytest.raises(ValueError):
        ImproperList((1,), [2])
    nested = ImproperList((1,), ImproperList((2,), 3))
    assert roundtrip(nested) == ImproperList((1, 2), 3)


def test_port_export_fun_validation() -> None:
    assert Port("n@h", 1).node == A("n@h")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Port(NODE, -1)
    with pytest.raises(ValueError):
        Port(NODE, 2**64)
    with pytest.raises(ValueError):
        Export("m", A("f"), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Export(A("m"), A("f"), 256)
    with pytest.raises(ValueError):
        Fun(b"")
    with pytest.raises(ValueError):
        Fun(b"a")
    match Export(A("m"), A("f"), 1):
        case Export(module, function, arity):
            assert (module, function, arity) == (A("m"), A("f"), 1)
    match Port(NODE, 1, 2):
        case Port(node, id_, creation):
            assert (node, id_, creation) == (NODE, 1, 2)


def test_pids_refs_keep_all_fields() -> None:
    pid = Pid(NODE, 2**32 - 1, 2**32 - 1, 2**32 - 1)
    ref = Ref(NODE, (2**32 - 1, 0, 1, 2, 3), 2**32 - 1)
    back = roundtrip((pid, ref))
    assert back == (pid, ref)
    assert back[0].creation == pid.creation and back[1].ids == ref.ids


# ------------------------------------------------------------------- API shapes


def test_decode_prefix_reads_consecutive_terms() -> None:
    frame = b"p" + encode((6, A(""), Pid(NODE, 1))) + encode([1, "x"], compressed=False)
    frame += encode([A("zz")] * 50, compressed=True) + b"rest"
    control, off = decode_prefix(frame, 1)
    payload, off = decode_prefix(frame, off)
    big, off = decode_prefix(frame, off)
    assert control == (6, A(""), Pid(NODE, 1))
    assert payload == [1, b"x"]
    assert big == [A("zz")] * 50
    assert frame[off:] == b"rest"
    with pytest.raises(ValueError):
        decode_prefix(frame, -1)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    wire = encode([b"x"])
    assert decode(bytearray(wire)) == [b"x"]
    assert type(decode(memoryview(wire))[0]) is bytes
    with pytest.raises(TypeError):
        decode("text")  # type: ignore[arg-type]


def test_body_variants() -> None:
    body = encode_body({A("a"): [1]})
    assert decode_body_prefix(body) == ({A("a"): [1]}, len(body))
    assert decode_body_prefix(b"xx" + body, 2) == ({A("a"): [1]}, len(body) + 2)


def test_encode_into_appends_or_leaves_buffer_alone() -> None:
    buf = bytearray(b"hdr")
    encode_into(buf, A("ok"))
    assert bytes(buf) == b"hdr" + encode(A("ok"))
    before = bytes(buf)
    with pytest.raises(EncodeError):
        encode_into(buf, [1, float("nan")])
    assert bytes(buf) == before


# ------------------------------------------------------------------ encode errors


@pytest.mark.parametrize(
    ("term", "path", "words"),
    [
        (float("nan"), "term", "nan"),
        ([1, (2, float("inf"))], "term[1][1]", "inf"),
        ({A("k"): -float("inf")}, "term[Atom('k')]", "inf"),
        (A("x" * 256), "term", "255"),
        ([A("é" * 256)], "term[0]", "255"),
        ({1, 2}, "term", "set"),
        ([frozenset()], "term[0]", "set"),
        ((object(),), "term[0]", "builtins.object"),
        ({object(): 1}, "term<key <object object", "object"),
        ("\ud800", "term", "surrogate"),
        (A("\ud800"), "term", "surrogate"),
        (ImproperList((1,), 1.0j), "term.tail", "complex"),
        (Pid(A("x" * 256), 1), "term", "255"),
        (Ref(NODE, (1, 2, 3), 2**32), "term", "creation"),
        (Ref(NODE, (1,) * 6), "term", "words"),
        (Ref(NODE, ()), "term", "words"),
        ([[[[1, 2, 3, {4: [type]}]]]], "term[0][0][0][3][4][0]", "builtins.type"),
    ],
)
def test_encode_errors_name_type_and_place(term: Any, path: str, words: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode(term)
    assert info.value.path.startswith(path)
    assert words in str(info.value)
    assert isinstance(info.value, BeamletError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("term", "path"),
    [
        ({"a": 1, b"a": 2}, "term"),
        ({None: 1, A("undefined"): 2}, "term"),
        ({True: 1, A("true"): 2}, "term"),
        ({False: 1, A("false"): 2}, "term"),
        ([{("a",): 1, (b"a",): 2}], "term[0]"),
        ({FrozenList([1]): 1, Charlist("\x01"): 2}, "term"),
        ({FrozenList(): 1, Charlist(""): 2}, "term"),
        ({A("k"): FrozenMap({"a": 1, b"a": 2})}, "term[Atom('k')]"),
    ],
)
def test_map_keys_that_are_one_erlang_term_raise(term: Any, path: str) -> None:
    # binary_to_term rejects a map with duplicate keys: the peer would drop the connection.
    with pytest.raises(EncodeError, match="one Erlang term") as info:
        encode(term)
    assert info.value.path == path


def test_map_keys_of_mixed_types_that_differ_are_fine() -> None:
    term = {"a": 1, b"b": 2, None: 3, A("x"): 4, True: 5, (1,): 6, FrozenList([2]): 7}
    assert len(decode(encode(term))) == 7
    assert len(decode(encode({FrozenList([1]): 1, Charlist("\x02"): 2}))) == 2


def test_atom_of_255_chars_is_fine() -> None:
    assert roundtrip(A("é" * 255)) == A("é" * 255)


def test_cyclic_terms_are_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(EncodeError, match="cyclic"):
        encode(loop)
    d: dict[str, Any] = {}
    d["self"] = (d,)
    with pytest.raises(EncodeError, match="cyclic"):
        encode(d)


def test_shared_subterms_are_not_cycles() -> None:
    shared = [1, 2]
    assert roundtrip([shared, shared, (shared,)]) == [[1, 2], [1, 2], ([1, 2],)]


# ------------------------------------------------------------------ deep nesting


def test_deep_list_roundtrip() -> None:
    deep = nest_list(100_000)
    wire = encode(deep)
    assert len(wire) == 1 + 100_000 * 6 + 1
    back = decode(wire)
    assert encode(back) == wire
    assert decode(encode(deep, compressed=True)) is not None


def test_deep_tuple_roundtrip() -> None:
    deep = nest_tuple(100_000)
    wire = encode(deep)
    back = decode(wire)
    assert encode(back) == wire


def test_deep_map_and_improper_roundtrip() -> None:
    x: Any = 0
    for i in range(50_000):
        x = {A("k"): x} if i % 2 else ImproperList((x,), i)
    wire = encode(x)
    assert encode(decode(wire)) == wire


def map_with_key_depth(depth: int, container: str) -> bytes:
    """#{Key => 1} where Key nests `depth` containers around 0 (built as bytes: fast)."""
    opening = {"list": b"l\x00\x00\x00\x01", "tuple": b"h\x01", "map": b"t\x00\x00\x00\x01w\x01k"}
    closing = b"j" if container == "list" else b""
    key = opening[container] * depth + b"a\x00" + closing * depth
    return b"\x83t\x00\x00\x00\x01" + key + b"a\x01"


@pytest.mark.parametrize("container", ["list", "tuple", "map"])
def test_map_key_depth_is_bounded(container: str) -> None:
    # Hashing a deep key recurses (a 1,000,000-deep tuple key segfaults CPython's hash):
    # up to MAX_KEY_DEPTH a map is a dict; deeper, an ErlMap, which never hashes its keys.
    wire = map_with_key_depth(MAX_KEY_DEPTH, container)
    d = decode(wire)
    assert type(d) is dict
    (k,) = d
    hash(k)
    assert encode(d) == wire
    for depth in (MAX_KEY_DEPTH + 1, 20_000):
        deep = map_with_key_depth(depth, container)
        m = decode(deep)
        assert type(m) is ErlMap and len(m) == 1
        assert encode(m) == deep
        hash(m)  # iterative: the canonical bytes
        assert m == decode(deep)
    # Deep values are fine: only keys get hashed.
    deep_value = b"\x83t\x00\x00\x00\x01a\x01" + map_with_key_depth(5000, container)[6:-2]
    assert decode(deep_value) is not None


def test_deep_error_path_is_found() -> None:
    x: Any = [float("nan")]
    for _ in range(100_000):
        x = [x]
    with pytest.raises(EncodeError) as info:
        encode(x)
    assert info.value.path == "term" + "[0]" * 100_001


# ------------------------------------------------------------------ decode errors


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (b"", "truncated"),
        (b"\x83", "truncated"),
        (b"\x82a\x01", "version"),
        (b"\x83\x01", "unknown tag"),
        (b"\x83R\x00", "atom cache"),
        (b"\x83y\x00", "LOCAL_EXT"),
        (b"\x83l\x00\x00\x00\x01P\x00\x00\x00\x00j", "compressed"),
        (b"\x83a", "truncated"),
        (b"\x83b\x00\x00", "truncated"),
        (b"\x83m\x00\x00\x00\x05abc", "exceeds"),
        (b"\x83l\xff\xff\xff\xff\x6a\x6a\x6a\x6a\x6a", "exceeds"),
        (b"\x83i\xff\xff\xff\xffa", "exceeds"),
        (b"\x83t\xff\xff\xff\xffa", "exceeds"),
        (b"\x83o\xff\xff\xff\xff\x00", "exceeds"),
        (b"\x83k\xff\xffab", "exceeds"),
        (b"\x83j\x6a", "trailing"),
        (b"\x83w\x02\xc3\x28", "UTF-8"),
        (b"\x83v\x02\x00" + "é".encode() * 256, "255"),
        (b"\x83d\x01\x00" + b"a" * 256, "255"),
        (b"\x83w\x03ab", "truncated"),
        (b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00", "non-finite"),
        (b"\x83F\x7f\xf8\x00\x00\x00\x00\x00\x00", "non-finite"),
        (b"\x83c" + b"inf".ljust(31, b"\0"), "non-finite"),
        (b"\x83c" + b"x".ljust(31, b"\0"), "FLOAT_EXT"),
        (b"\x83M\x00\x00\x00\x01\x09\xff", "bit count"),
        (b"\x83M\x00\x00\x00\x01\x00\xff", "bit count"),
        (b"\x83M\x00\x00\x00\x00\x01", "bit count"),
        (b"\x83n\x01\x02\x01", "sign"),
        (b"\x83Z\x00\x06" + bytes.fromhex(NODE_HEX) + bytes(28), "words"),
        (b"\x83Z\x00\x00" + bytes.fromhex(NODE_HEX) + bytes(4), "words"),
        (b"\x83X" + b"a\x01" + bytes(12), "expected an atom"),
        (b"\x83qw\x01mw\x01fb\x00\x00\x00\x01", "arity"),
        (b"\x83t\x00\x00\x00\x02a\x01a\x01a\x01a\x02", "duplicate"),
        (b"\x83p\x00\x00\x00\x05", "NEW_FUN_EXT"),
        (b"\x83u\xff\xff\xff\xff", "free variables"),
    ],
)
def test_malformed_input_raises_decode_error(wire: bytes, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(wire)
    assert words in str(info.value)
    assert isinstance(info.value, BeamletError)
    assert isinstance(info.value, ValueError)


def test_huge_list_claim_fails_fast() -> None:
    # 2**32 - 1 elements claimed in a 10-byte buffer: refused before any allocation.
    with pytest.raises(DecodeError, match="exceeds"):
        decode(b"\x83l\xff\xff\xff\xff\x61\x01\x6a\x6a")


def test_fun_fields_are_checked() -> None:
    # A NEW_FUN_EXT whose "module" is an integer.
    body = bytearray(ERL_FUN[1:])
    module_at = 1 + 4 + 1 + 16 + 4 + 4
    assert body[module_at] == 100  # ATOM_EXT 'erl_eval'
    bad = body[:module_at] + b"a\x01" + body[module_at + 3 + 8 :]
    struct.pack_into(">I", bad, 1, len(bad) - 1)
    with pytest.raises(DecodeError):
        decode(b"\x83" + bytes(bad))


def test_max_atoms_bounds_distinct_atoms() -> None:
    distinct = [A(f"a{i}") for i in range(100)]
    wire = encode(distinct)
    assert decode(wire, max_atoms=100) == distinct
    assert decode(wire, max_atoms=None) == distinct
    with pytest.raises(DecodeError, match="distinct atoms"):
        decode(wire, max_atoms=99)
    # Repeats do not count, and neither do true/false.
    assert decode(encode([A("x")] * 1000 + [True, False]), max_atoms=1)[0] == A("x")
    with pytest.raises(DecodeError, match="distinct atoms"):
        decode(encode(Pid(NODE, 1)), max_atoms=0)
    with pytest.raises(DecodeError, match="distinct atoms"):
        decode(encode(A("x")), max_atoms=0)


def test_atom_cache_is_reused_and_bounded() -> None:
    cache = AtomCache(max_size=10)
    first = decode(encode([A("a"), A("b"), Pid(NODE, 1)]), atom_cache=cache)
    again = decode(encode([A("a"), A("b")]), atom_cache=cache)
    assert again[0] is first[0]  # the cached object itself
    assert len(cache) == 3
    # Cached atoms are not created again, so they do not count against max_atoms.
    assert decode(encode([A("a"), A("b"), A("c")]), atom_cache=cache, max_atoms=1)[2] == A("c")
    with pytest.raises(DecodeError, match="distinct atoms"):
        decode(encode([A("x"), A("y")]), atom_cache=cache, max_atoms=1)
    # Latin-1 and UTF-8 encodings of one atom are cached apart; true/false stay bools.
    assert decode(b"\x83d\x00\x01a", atom_cache=cache) == A("a")
    assert decode(b"\x83d\x00\x04true", atom_cache=cache) is True
    # Full: starts over rather than grow.
    decode(encode([A(f"n{i}") for i in range(25)]), atom_cache=cache)
    assert len(cache) <= 10
    assert decode(encode([A(f"n{i}") for i in range(25)]), atom_cache=cache)[24] == A("n24")
    cache.clear()
    assert len(cache) == 0
    assert decode(encode(True), atom_cache=cache) is True


def test_atom_cache_with_prefix_and_body_variants() -> None:
    cache = AtomCache()
    frame = encode(A("ctl")) + encode([A("ctl")] * 30, compressed=True)
    ctl, off = decode_prefix(frame, atom_cache=cache)
    payload, _ = decode_prefix(frame, off, atom_cache=cache)
    assert payload[0] is ctl
    assert decode_body_prefix(encode_body(A("ctl")), atom_cache=cache)[0] is ctl


def test_compressed_limits() -> None:
    body = encode_body(b"\0" * 100_000)
    packed = zlib.compress(body)

    def wire(size: int, data: bytes = packed) -> bytes:
        return b"\x83P" + struct.pack(">I", size) + data

    assert decode(wire(len(body))) == b"\0" * 100_000
    with pytest.raises(DecodeError, match="limit"):
        decode(wire(len(body)), max_uncompressed=len(body) - 1)
    with pytest.raises(DecodeError, match="limit"):
        decode(wire(0xFFFFFFFF))
    with pytest.raises(DecodeError, match="declared"):
        decode(wire(len(body) - 1))
    with pytest.raises(DecodeError, match="declared"):
        decode(wire(len(body) + 1))
    with pytest.raises(DecodeError, match="truncated"):
        decode(wire(len(body), packed[:-10]))
    with pytest.raises(DecodeError, match="zlib"):
        decode(wire(len(body), b"garbage!" * 4))
    with pytest.raises(DecodeError, match="truncated"):
        decode(b"\x83P\x00\x00")
    two_terms = b"\x83P" + struct.pack(">I", 4) + zlib.compress(b"a\x01a\x02")
    with pytest.raises(DecodeError, match="trailing"):
        decode(two_terms)
    # decode_prefix finds the end of the zlib stream.
    _, end = decode_prefix(wire(len(body)) + b"next")
    assert end == len(wire(len(body)))


# -------------------------------------------------------------- property tests

u32 = st.integers(0, 2**32 - 1)
atom_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
atoms = st.one_of(
    atom_text.map(A),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=250, max_size=255).map(A),
)
nodes = st.sampled_from([A("a@b"), A("nonode@nohost"), A("py@höst")])
ints = st.one_of(
    st.integers(-300, 300),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**64, -(2**64)]),
    st.integers(),
    st.integers(-(2**3000), 2**3000),
)
leaves = st.one_of(
    ints,
    st.floats(allow_nan=False, allow_infinity=False),
    atoms,
    st.booleans(),
    st.none(),
    st.binary(max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.text(st.characters(max_codepoint=0x3000, blacklist_categories=("Cs",)), max_size=20).map(
        Charlist
    ),
    st.builds(BitString, st.binary(min_size=1, max_size=8), st.integers(1, 7)),
    st.builds(Pid, nodes, u32, u32, u32),
    st.builds(Ref, nodes, st.lists(u32, min_size=1, max_size=5).map(tuple), u32),
    st.builds(Port, nodes, st.integers(0, 2**64 - 1), u32),
    st.builds(Export, atoms, atoms, st.integers(0, 255)),
)

# [a | "bc"] is the proper list [a, 98, 99]: ImproperList refuses list-like tails.
tails = leaves.filter(lambda x: not isinstance(x, Charlist))


def _key_bytes_unique(d: dict[Any, Any]) -> bool:
    # "a" and b"a" (and None and atom undefined) are distinct in Python, one key on the wire:
    # encode refuses such maps (tested apart).
    try:
        encode(d)
    except EncodeError:
        return False
    return True


hashable_terms = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.tuples(kids, kids),
        st.lists(kids, max_size=4).map(FrozenList),
    ),
    max_leaves=6,
)
terms = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=6),
        st.lists(kids, max_size=6).map(tuple),
        st.dictionaries(hashable_terms, kids, max_size=4).filter(_key_bytes_unique),
        st.builds(ImproperList, st.lists(kids, min_size=1, max_size=3).map(tuple), tails),
    ),
    max_leaves=30,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(terms)
def test_property_roundtrip(term: Any) -> None:
    wire = encode(term)
    back = decode(wire)
    assert same(back, expected(term))
    assert encode(back) == encode(expected(term))
    assert same(decode(encode(term, compressed=True)), back)


@PROPERTY
@given(terms, st.binary(max_size=20))
def test_property_prefix_and_trailing(term: Any, junk: bytes) -> None:
    wire = encode(term)
    _, end = decode_prefix(wire + junk)
    assert end == len(wire)
    if junk:
        with pytest.raises(DecodeError):
            decode(wire + junk)


def _decode_or_error(wire: bytes) -> None:
    try:
        decode(wire)
    except DecodeError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_error(b"\x83" + data)
    _decode_or_error(data)
    try:
        decode_prefix(data, 0)
    except DecodeError:
        pass


@PROPERTY
@given(terms, st.data())
def test_fuzz_truncations_and_mutations(term: Any, data: st.DataObject) -> None:
    wire = encode(term)
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(DecodeError):
        decode(wire[:cut])
    pos = data.draw(st.integers(0, len(wire) - 1))
    byte = data.draw(st.integers(0, 255))
    _decode_or_error(wire[:pos] + bytes([byte]) + wire[pos + 1 :])
    _decode_or_error(wire[:pos] + wire[pos + 1 :])
    _decode_or_error(wire[:pos] + bytes([byte]) + wire[pos:])


def test_every_truncation_of_a_rich_term_is_an_error() -> None:
    term = rich_term()
    for wire in (encode(term), encode(term, compressed=True), ERL_FUN):
        for cut in range(len(wire)):
            with pytest.raises(DecodeError):
                decode(wire[:cut])


def test_every_single_byte_mutation_of_a_rich_term() -> None:
    wire = encode(rich_term())
    for pos in range(1, len(wire)):
        for byte in (0, 1, 0x7F, 0x80, 0xFF, wire[pos] ^ 0x01, 97, 104, 106, 108, 116):
            _decode_or_error(wire[:pos] + bytes([byte]) + wire[pos + 1 :])


def rich_term() -> Any:
    return (
        A("ok"),
        [1, -1, 2**40, 1.5, b"bin", Charlist("str"), ImproperList((1,), A("t"))],
        {A("k"): (Pid(NODE, 1, 2, 3), Ref(NODE, (1, 2, 3), 4)), FrozenList([1]): {}},
        Port(NODE, 1, 2),
        Export(A("m"), A("f"), 1),
        BitString(b"\x80", 1),
    )


# ------------------------------------------------------------ interop with erl


def require_erl() -> str:
    erl = shutil.which("erl")
    if erl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("erl is required when CI=true")
        pytest.skip("erl not found on PATH")
    return erl


# (name, Python value, Erlang source for the same term or None, byte-identical re-encode?)
# "canonical" means erl's term_to_binary(T, [{minor_version, 2}]) gives our exact bytes.
INTEROP: list[tuple[str, Any, str | None, bool]] = [
    ("ints", [0, 255, 256, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1], None, True),
    (
        "bigs",
        (2**64, -(2**64), 2**2040, -(2**2041)),
        "{1 bsl 64, -(1 bsl 64), 1 bsl 2040, -(1 bsl 2041)}",
        True,
    ),
    ("floats", (1.5, -0.25, 1e300, 5e-324), "{1.5, -0.25, 1.0e300, 5.0e-324}", True),
    ("atoms", (A("ok"), A("é"), A("✓"), A(""), A("x" * 255)), None, True),
    ("atom src", (A("ok"), A("héllo"), A("✓")), "{ok, 'héllo', '✓'}", True),
    ("bools and undefined", (True, False, None), "{true, false, undefined}", True),
    ("binaries", (b"", b"\x00\xff", "héllo"), '{<<>>, <<0, 255>>, <<"héllo"/utf8>>}', True),
    (
        "bitstrings",
        (BitString(b"\xe0", 3), BitString(b"\xff\x80", 1)),
        "{<<7:3>>, <<255, 1:1>>}",
        True,
    ),
    ("tuples", ((), (1,), tuple(range(300))), "{{}, {1}, list_to_tuple(lists:seq(0, 299))}", True),
    ("lists", ([], [A("a"), [A("b")]], [1000, 2000]), "{[], [a, [b]], [1000, 2000]}", True),
    ("int list becomes string", [1, 2, 3], "[1, 2, 3]", False),
    (
        "charlists",
        (Charlist("abc"), Charlist("héllo"), Charlist("✓ok"), Charlist("")),
        '{"abc", "héllo", "✓ok", ""}',
        True,
    ),
    (
        "improper",
        (ImproperList((1,), 2), ImproperList((A("a"), A("b")), A("c"))),
        "{[1 | 2], [a, b | c]}",
        True,
    ),
    ("maps", ({A("a"): 1}, {}), "{#{a => 1}, #{}}", True),
    (
        "map keys",
        {(1, 2): 1, FrozenList([1, 2]): 2, FrozenMap({A("x"): 1}): 3, A("a"): 4},
        "#{{1, 2} => 1, [1, 2] => 2, #{x => 1} => 3, a => 4}",
        False,
    ),
    (
        "nested map",
        {A("k"): {A("inner"): [1000, {A("deep"): b"v"}]}},
        '#{k => #{inner => [1000, #{deep => <<"v">>}]}}',
        True,
    ),
    ("local pid", Pid(LOCAL, 5, 0, 0), 'list_to_pid("<0.5.0>")', False),
    ("local ref", Ref(LOCAL, (3, 2, 1), 0), 'erlang:list_to_ref("#Ref<0.1.2.3>")', False),
    ("local port", Port(LOCAL, 5, 0), 'erlang:list_to_port("#Port<0.5>")', False),
    ("remote pid", Pid(A("other@host"), 2**31 + 5, 7, 2**32 - 1), None, True),
    ("remote ref 3", Ref(A("other@host"), (1, 2, 3), 9), None, True),
    ("remote ref 5", Ref(A("other@host"), (1, 2, 3, 4, 5), 9), None, True),
    ("remote port", Port(A("other@host"), 99, 3), None, True),
    ("remote v4 port", Port(A("other@host"), 2**40, 3), None, True),
    ("export", Export(A("lists"), A("map"), 2), "fun lists:map/2", True),
    ("unicode binary key", {"ключ": A("v")}, '#{<<"ключ"/utf8>> => v}', True),
    ("big string", Charlist("x" * 70000), "lists:duplicate(70000, $x)", False),
    ("long list", list(range(300, 1300)), "lists:seq(300, 1299)", True),
    ("compressible", [A("hello")] * 1000, "lists:duplicate(1000, hello)", True),
]

# Erlang-only terms: made by erl, decoded by us, re-encoded byte-identically.
ERL_ONLY: list[tuple[str, str]] = [
    ("fun", "fun(X) -> X + 1 end"),
    ("fun with env", "begin Y = {captured, [1, 2]}, fun(X) -> {X, Y} end end"),
    ("funs in a list", "[fun erlang:self/0, fun() -> ok end]"),
    ("latin1 atoms (OTP 25 ATOM_EXT)", "{'é', node(), self()}"),
]

ERL_SCRIPT = r"""
Hex = fun(B) -> binary:encode_hex(B) end,
Try = fun(F) -> try F() catch C:E -> {error, C, E} end end,
{ok, In} = file:read_file(os:getenv("ETF_IN")),
Lines = binary:split(In, <<"\n">>, [global, trim_all]),
Eval = fun(<<>>) -> none;
          (Src) -> {ok, Toks, _} = erl_scan:string(unicode:characters_to_list(Src) ++ "."),
                   {ok, [Expr]} = erl_parse:parse_exprs(Toks),
                   {value, V, _} = erl_eval:expr(Expr, []),
                   {value, V} end,
Row = fun(Line) ->
    [Name, OursHex, OursZHex, Src] = binary:split(Line, <<"\t">>, [global]),
    Ours = binary:decode_hex(OursHex),
    Decoded = Try(fun() -> binary_to_term(Ours) end),
    DecodedZ = Try(fun() -> binary_to_term(binary:decode_hex(OursZHex)) end),
    {Match, T} = case Eval(Src) of
        none -> {na, Decoded};
        {value, E} -> {Decoded =:= E, E}
    end,
    Enc = fun(Opts) -> case T of {error, _, _} -> <<>>; _ -> term_to_binary(T, Opts) end end,
    ReEnc = fun(Opts) -> case Decoded of
                             {error, _, _} -> <<"error">>;
                             _ -> Hex(term_to_binary(Decoded, [{minor_version, 2} | Opts]))
                         end end,
    Re = ReEnc([]),
    ReZ = ReEnc([compressed]),
    io_lib:format("~s\t~s\t~s\t~s\t~s\t~s\t~s\t~s~n",
        [Name, Match, DecodedZ =:= Decoded, Re, ReZ, Hex(Enc([])), Hex(Enc([compressed])),
         Hex(Enc([{minor_version, 2}]))])
end,
ok = file:write_file(os:getenv("ETF_OUT"), [Row(L) || L <- Lines]),
halt().
"""


def random_term(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(14 if depth < 4 else 9)
    if kind == 0:
        return rng.choice(
            [rng.randrange(256), rng.randrange(-(2**31), 2**31), rng.getrandbits(200) - 2**199]
        )
    if kind == 1:
        return rng.uniform(-1e9, 1e9)
    if kind == 2:
        return A("".join(rng.choice("abcé✓_@") for _ in range(rng.randrange(8))))
    if kind == 3:
        return rng.randbytes(rng.randrange(10))
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return "".join(rng.choice("xyzé✓") for _ in range(rng.randrange(6)))
    if kind == 6:
        return Pid(A("n@h"), rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32))
    if kind == 7:
        return Ref(A("n@h"), tuple(rng.getrandbits(32) for _ in range(rng.choice([3, 5]))), 1)
    if kind == 8:
        return Charlist("".join(rng.choice("ab✓") for _ in range(1 + rng.randrange(5))))
    if kind in (9, 10):
        return [random_term(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == 11:
        return tuple(random_term(rng, depth + 1) for _ in range(rng.randrange(5)))
    if kind == 12:
        keys = {A(f"k{i}"): random_term(rng, depth + 1) for i in range(rng.randrange(4))}
        keys[rng.randrange(100)] = random_term(rng, depth + 1)
        return keys
    return ImproperList((random_term(rng, depth + 1),), rng.randrange(10))


RANDOM_TERMS = [random_term(random.Random(seed)) for seed in range(200)]


@pytest.fixture(scope="module")
def erl_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Run every interop case through ONE erl: decode ours, re-encode, encode sources."""
    erl = require_erl()
    tmp = tmp_path_factory.mktemp("etf")
    rows = []
    for name, value, src, _ in INTEROP:
        rows.append((name, encode(value), encode(value, compressed=True), src or ""))
    for name, src in ERL_ONLY:
        rows.append((name, encode(0), encode(0), src))
    for i, value in enumerate(RANDOM_TERMS):
        rows.append((f"random {i}", encode(value), encode(value, compressed=True), ""))
    for name, _, body in GOLDEN:
        wire = bytes.fromhex("83" + body)
        rows.append((f"golden {name}", wire, wire, ""))
    infile, outfile = tmp / "in.txt", tmp / "out.txt"
    infile.write_text(
        "".join(f"{n}\t{w.hex()}\t{z.hex()}\t{s}\n" for n, w, z, s in rows), encoding="utf-8"
    )
    env = dict(os.environ, ETF_IN=str(infile), ETF_OUT=str(outfile))
    proc = subprocess.run(
        [erl, "-noshell", "-eval", ERL_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert outfile.exists(), f"erl failed: {proc.stdout}\n{proc.stderr}"
    results = {}
    for line in Path(outfile).read_text(encoding="utf-8").splitlines():
        name, *cols = line.split("\t")
        results[name] = cols
    assert len(results) == len(rows)
    return results


@pytest.mark.interop
@pytest.mark.parametrize(
    ("name", "value", "src", "canonical"), INTEROP, ids=[c[0] for c in INTEROP]
)
def test_interop_python_to_erl_and_back(
    erl_results: dict[str, list[str]], name: str, value: Any, src: str | None, canonical: bool
) -> None:
    match, z_same, reencoded, reencoded_z, erl_default, erl_z, erl_v2 = erl_results[name]
    assert reencoded != "error", "erl's binary_to_term rejected our bytes"
    if src is not None:
        assert match == "true", "erl decoded our bytes to a different term than the source"
    assert z_same == "true", "erl decoded our compressed bytes differently"
    want = expected(value, erl=True)
    assert same(decode(bytes.fromhex(reencoded)), want)
    assert same(decode(bytes.fromhex(reencoded_z)), want)
    if canonical:
        assert reencoded.lower() == encode(value).hex()
        # Same zlib, same level, same rule for when to compress: identical bytes.
        assert reencoded_z.lower() == encode(value, compressed=True).hex()
    if src is not None:
        assert same(decode(bytes.fromhex(erl_default)), want)  # OTP 25 default: ATOM_EXT
        assert same(decode(bytes.fromhex(erl_z)), want)
        assert same(decode(bytes.fromhex(erl_v2)), want)
        if canonical:
            assert erl_v2.lower() == encode(value).hex()


@pytest.mark.interop
@pytest.mark.parametrize(("name", "src"), ERL_ONLY, ids=[c[0] for c in ERL_ONLY])
def test_interop_erl_terms_echo_byte_identically(
    erl_results: dict[str, list[str]], name: str, src: str
) -> None:
    _, _, _, _, erl_default, erl_z, erl_v2 = erl_results[name]
    v2, default = bytes.fromhex(erl_v2), bytes.fromhex(erl_default)
    assert encode(decode(v2)) == v2
    if name.startswith("fun"):
        # A Fun keeps its raw bytes (OTP 25's ATOM_EXT atoms included), so it echoes
        # byte-identically; the same fun encoded another way is a different Fun.
        back = decode(default)
        assert any(isinstance(x, Fun) for x in (back if isinstance(back, list) else [back]))
        if name != "funs in a list":  # fun erlang:self/0 is an Export: atoms re-encoded
            assert encode(back) == default
            assert encode(decode(bytes.fromhex(erl_z))) == default
    else:
        assert same(decode(default), decode(v2))
        assert same(decode(bytes.fromhex(erl_z)), decode(v2))


@pytest.mark.interop
@pytest.mark.parametrize(
    ("name", "body"), [(g[0], g[2]) for g in GOLDEN], ids=[g[0] for g in GOLDEN]
)
def test_interop_golden_vectors_are_what_erl_writes(
    erl_results: dict[str, list[str]], name: str, body: str
) -> None:
    reencoded = erl_results[f"golden {name}"][2].lower()
    if name == "list":
        assert reencoded == "836b000101"  # [1] is a STRING_EXT for Erlang
    elif name == "new fun (opaque)":
        assert same(decode(bytes.fromhex(reencoded)).arity, 1)  # atoms now UTF-8
    else:
        assert reencoded == "83" + body


@pytest.mark.interop
def test_interop_random_terms(erl_results: dict[str, list[str]]) -> None:
    for i, value in enumerate(RANDOM_TERMS):
        _, z_same, reencoded, reencoded_z, _, _, _ = erl_results[f"random {i}"]
        assert reencoded != "error", f"erl rejected random term {i}: {value!r}"
        assert z_same == "true"
        want = expected(value, erl=True)
        assert same(decode(bytes.fromhex(reencoded)), want), (i, value)
        assert same(decode(bytes.fromhex(reencoded_z)), want), (i, value)
