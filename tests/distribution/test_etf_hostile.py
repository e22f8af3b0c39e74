"""The ETF decoder under hostile or unusual input (issue 10 §3, §4, §7; issue 11 item 2).

Each case here once stalled, exhausted, crashed or cost a connection: decoding is now
linear in time, bounded in memory per input byte, bounded in depth on request, and every
valid Erlang map arrives (as an `ErlMap` when a dict cannot hold it).
"""

from __future__ import annotations

import copy
import pickle
import time
import tracemalloc
import zlib
from typing import Any

import pytest

from beamlet._core.terms import Atom, ImproperList, Pid
from beamlet.distribution.etf import (
    CONTROL_MAX_DEPTH,
    LOSSLESS,
    TERMS_PER_COMPRESSED_BYTE,
    TERMS_PER_COMPRESSED_TERM,
    Charlist,
    DecodeError,
    ErlMap,
    FrozenList,
    FrozenMap,
    decode,
    decode_prefix,
    encode,
    encode_body,
)

A = Atom


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def wire_map(*pairs: tuple[bytes, bytes]) -> bytes:
    """MAP_EXT from already-encoded keys and values (any encoding, lying ones too)."""
    return b"\x83t" + len(pairs).to_bytes(4, "big") + b"".join(k + v for k, v in pairs)


# ------------------------------------------------------------------ linear time


def test_nested_list_tails_decode_in_linear_time() -> None:
    # [1 | [1 | [1 | ...]]] written with one LIST_EXT per element: it took 20.5 s for
    # 1.1 MB (each tail was copied into its list); it is one flat list now.
    n = 160_000
    wire = b"\x83" + b"l\x00\x00\x00\x01a\x01" * n + b"j"
    term, seconds = timed(lambda: decode(wire))
    assert term == [1] * n
    assert seconds < 2.0
    assert encode(term) == encode([1] * n)
    # An improper end and a string tail are kept.
    improper = b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02a\x03"
    assert decode(improper) == ImproperList((1, 2), 3)
    assert decode(b"\x83l\x00\x00\x00\x01a\x01k\x00\x02ab") == [1, 97, 98]


def test_hash_flooding_map_keys_decode_in_linear_time() -> None:
    # Integer keys i * (2**61 - 1) all hash to 0 in CPython: 80,000 of them took 31.5 s.
    n = 80_000
    keys = [i * (2**61 - 1) for i in range(n)]
    wire = b"\x83t" + n.to_bytes(4, "big")
    wire += b"".join(encode_body(k) + b"a\x01" for k in keys)
    m, seconds = timed(lambda: decode(wire))
    assert seconds < 3.0
    assert type(m) is ErlMap and len(m) == n
    assert m[keys[12345]] == 1
    assert keys[12345] in m and 12345 not in m
    assert encode(m) == wire
    # A big map whose keys hash well is still a dict.
    assert type(decode(encode(dict.fromkeys(range(n), 1)))) is dict


def test_hash_flooding_inside_a_key_map() -> None:
    n = 2000
    inner = b"t" + n.to_bytes(4, "big")
    inner += b"".join(encode_body(i * (2**61 - 1)) + b"a\x01" for i in range(n))
    wire = b"\x83t\x00\x00\x00\x01" + inner + b"a\x02"
    m, seconds = timed(lambda: decode(wire))
    assert seconds < 2.0
    (key,) = m
    assert type(key) is ErlMap and len(key) == n
    assert encode(m) == wire


# ------------------------------------------------------------------ memory bounds


def test_compression_bomb_is_refused_before_building_terms() -> None:
    # A 65 KB stream of []s inflating to 64 MiB reached 4.7 GB RSS: 67 million lists.
    size = 64 * 1024 * 1024
    body = b"l" + (size - 6).to_bytes(4, "big") + b"j" * (size - 5)
    wire = b"\x83P" + size.to_bytes(4, "big") + zlib.compress(body, 9)
    assert len(wire) < 70_000
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="max_terms"):
            decode(wire)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * size  # the inflated bytes, never the terms
    # The same bytes decode when the caller allows that many terms.
    small = 1000
    body = b"l" + (small - 6).to_bytes(4, "big") + b"j" * (small - 5)
    wire = b"\x83P" + small.to_bytes(4, "big") + zlib.compress(body)
    assert decode(wire) == [[]] * (small - 6)
    with pytest.raises(DecodeError, match="max_terms"):
        decode(wire, max_terms=100)


def test_compressed_term_budget_scales_with_its_compressed_size() -> None:
    n = TERMS_PER_COMPRESSED_TERM + 10
    wire = encode([A("x")] * n, compressed=True)
    budget = TERMS_PER_COMPRESSED_TERM + TERMS_PER_COMPRESSED_BYTE * len(wire)
    assert budget > n  # a million-element list of atoms still decodes
    assert len(decode(wire)) == n


def test_uncompressed_decoding_memory_per_input_byte_is_bounded() -> None:
    # The worst case: one new object per input byte (NIL_EXT in a list).
    n = 200_000
    for wire in (
        b"\x83l" + n.to_bytes(4, "big") + b"j" * n + b"j",
        b"\x83l" + n.to_bytes(4, "big") + b"t\x00\x00\x00\x00" * n + b"j",
        b"\x83" + b"l\x00\x00\x00\x01" * n + b"j" * (n + 1),
    ):
        tracemalloc.start()
        try:
            term = decode(wire)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del term
        assert peak / len(wire) < 100


def test_max_terms_bounds_uncompressed_terms_too() -> None:
    assert decode(encode(list(range(10))), max_terms=11) == list(range(10))
    with pytest.raises(DecodeError, match="max_terms"):
        decode(encode([(1, 2)] * 10), max_terms=20)


def test_many_distinct_atoms_decode_by_default() -> None:
    # More than 65,536 distinct atoms in one message: valid Erlang, and an Atom is an
    # ordinary collected str here (no atom table to exhaust). max_atoms still works.
    atoms = [A(f"a{i}") for i in range(70_000)]
    wire = encode(atoms)
    assert decode(wire) == atoms
    with pytest.raises(DecodeError, match="distinct atoms"):
        decode(wire, max_atoms=65_536)


# ------------------------------------------------------------------ depth


def test_deep_control_tuple_is_refused_cleanly() -> None:
    # Issue 10 §3: this frame's control tuple segfaulted the node when hashed.
    frame = b"p\x83" + b"h\x01" * 1_000_001 + b"a\x01"
    with pytest.raises(DecodeError, match="nested deeper than 16"):
        decode_prefix(frame, 1, max_depth=CONTROL_MAX_DEPTH)


def test_max_depth_counts_containers_not_list_tails() -> None:
    assert decode(encode((1, [2, 3], {A("k"): 4})), max_depth=2) == (1, [2, 3], {A("k"): 4})
    with pytest.raises(DecodeError, match="nested deeper than 1"):
        decode(encode((1, (2,))), max_depth=1)
    assert decode(encode(5), max_depth=0) == 5
    with pytest.raises(DecodeError, match="nested deeper than 0"):
        decode(encode([5]), max_depth=0)
    # A list written through its tails is one level, however long.
    tails = b"\x83" + b"l\x00\x00\x00\x01a\x01" * 1000 + b"j"
    assert decode(tails, max_depth=1) == [1] * 1000
    # Control messages of the real protocol fit CONTROL_MAX_DEPTH.
    pid = Pid(A("a@b"), 1)
    spawn_request = (29, 7, pid, pid, (A("m"), A("f"), 2), [A("link"), (A("monitor"), [])])
    assert decode(encode(spawn_request), max_depth=CONTROL_MAX_DEPTH) == spawn_request


def test_deep_map_keys_are_delivered_as_erlmap_without_hashing() -> None:
    # A key nested more than MAX_KEY_DEPTH deep: valid Erlang; hashing it would recurse.
    key = b"h\x01" * 300_000 + b"a\x00"
    wire = b"\x83t\x00\x00\x00\x02" + key + b"a\x01" + b"a\x05a\x02"
    m, seconds = timed(lambda: decode(wire))
    assert seconds < 5.0
    assert type(m) is ErlMap and m[5] == 2
    assert encode(m) == wire
    assert hash(m) == hash(decode(wire))


# ------------------------------------------------------------ maps: ErlMap and lies

# Keys distinct in Erlang but equal in Python (issue 11 item 2): (description, keys).
CLASHES: list[tuple[str, list[Any]]] = [
    ("1 and 1.0", [1, 1.0]),
    ("true and 1", [True, 1]),
    ("0, 0.0 and false", [0, 0.0, False]),
    ("{1} and {true}", [(1,), (True,)]),
    ("[1] and [1.0]", [FrozenList([1]), FrozenList([1.0])]),
    ("0.0 and -0.0 (two keys since OTP 27)", [0.0, -0.0]),
    ("#{1 => a} and #{1.0 => a}", [FrozenMap({1: A("a")}), FrozenMap({1.0: A("a")})]),
]


@pytest.mark.parametrize("keys", [c[1] for c in CLASHES], ids=[c[0] for c in CLASHES])
def test_keys_equal_in_python_only_give_an_erlmap(keys: list[Any]) -> None:
    pairs = [(k, i) for i, k in enumerate(keys)]
    wire = wire_map(*((encode_body(k), encode_body(v)) for k, v in pairs))
    m = decode(wire)
    assert type(m) is ErlMap
    assert [type(k) for k in m] == [type(k) for k in keys]
    for k, v in pairs:
        assert m[k] == v
    assert encode(m) == wire
    # Also inside a key, and inside lossless decoding.
    nested = b"\x83t\x00\x00\x00\x01" + wire[1:] + b"a\x07"
    (key,) = decode(nested)
    assert type(key) is ErlMap and encode(decode(nested)) == nested
    assert type(decode(wire, options=LOSSLESS)) is ErlMap


LIES: list[tuple[str, bytes]] = [
    ('[97] and "a"', wire_map((b"l\x00\x00\x00\x01aaj", b"a\x01"), (b"k\x00\x01a", b"a\x02"))),
    (
        '{[97]} and {"a"}',
        wire_map((b"h\x01l\x00\x00\x00\x01aaj", b"a\x01"), (b"h\x01k\x00\x01a", b"a\x02")),
    ),
    (
        "#{a => 1, b => 2} twice, in two orders",
        wire_map(
            (b"t\x00\x00\x00\x02w\x01aa\x01w\x01ba\x02", b"a\x01"),
            (b"t\x00\x00\x00\x02w\x01ba\x02w\x01aa\x01", b"a\x02"),
        ),
    ),
    (
        "1 as SMALL_INTEGER and INTEGER",
        wire_map((b"a\x01", b"a\x01"), (b"b\x00\x00\x00\x01", b"j")),
    ),
    ("an atom in UTF-8 and Latin-1", wire_map((b"w\x01x", b"a\x01"), (b"d\x00\x01x", b"a\x02"))),
]


@pytest.mark.parametrize("wire", [c[1] for c in LIES], ids=[c[0] for c in LIES])
def test_one_erlang_term_twice_in_a_map_is_refused(wire: bytes) -> None:
    # binary_to_term refuses these (issue 10 §7): decoding used to accept the first one,
    # and re-encoding it then raised.
    with pytest.raises(DecodeError, match="duplicate keys"):
        decode(wire)


def test_erlmap_type() -> None:
    m = ErlMap([(1, A("a")), (1.0, A("b"))])
    assert m[1] == A("a") and m[1.0] == A("b") and m.get(True) is None
    assert list(m) == [1, 1.0] and len(m) == 2 and m.pairs == ((1, A("a")), (1.0, A("b")))
    assert m == ErlMap([(1.0, A("b")), (1, A("a"))])  # order does not matter, as in Erlang
    assert hash(m) == hash(ErlMap([(1.0, A("b")), (1, A("a"))]))
    assert m != ErlMap([(1, A("a")), (1.0, A("c"))])
    assert m != {1: A("a")}
    assert ErlMap({A("k"): [1]})[A("k")] == [1]  # from a mapping; keys need not be hashable
    assert ErlMap([([1, 2], 3)])[[1, 2]] == 3
    assert ErlMap([(Charlist("a"), 1)])[[97]] == 1  # one Erlang term
    with pytest.raises(ValueError, match="distinct"):
        ErlMap([(1, A("a")), (1, A("b"))])
    with pytest.raises(ValueError, match="distinct"):
        ErlMap([("a", 1), (b"a", 2)])
    assert ErlMap([("a", 1), (b"a", 2)], lossless=True)[b"a"] == 2
    with pytest.raises(AttributeError):
        m._pairs = ()  # type: ignore[misc]
    assert copy.deepcopy(m) == m and pickle.loads(pickle.dumps(m)) == m
    assert repr(m) == "ErlMap([(1, Atom('a')), (1.0, Atom('b'))])"
    assert {m: 1}[ErlMap([(1.0, A("b")), (1, A("a"))])] == 1
