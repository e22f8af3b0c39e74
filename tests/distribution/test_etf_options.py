"""Values on the wire: `CodecOptions` and its presets (issue 11 item 5).

The mapping is the table "Values on the wire" in docs/distribution.md: between two
beamlet nodes (`LOSSLESS`) a round trip of Python values is the identity; towards Erlang
(`DEFAULT_OPTIONS`) and Elixir (`ELIXIR`) values read as each side expects.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dist_nodes import require_erl
from hypothesis import given, settings
from hypothesis import strategies as st

from beamlet._core.terms import Atom, ImproperList, Pid, Ref
from beamlet.distribution.etf import (
    DEFAULT_OPTIONS,
    ELIXIR,
    LOSSLESS,
    AtomCache,
    Charlist,
    CodecOptions,
    DecodeError,
    EncodeError,
    ErlMap,
    FrozenList,
    FrozenMap,
    decode,
    decode_prefix,
    encode,
    encode_into,
)

A = Atom


def exact(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (== says 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | FrozenMap):
        return len(a) == len(b) and all(
            any(exact(k, k2) and exact(v, b[k2]) for k2 in b if k2 == k) for k, v in a.items()
        )
    return bool(a == b)


IDENTITY: list[Any] = [
    "text",
    b"bytes",
    "",
    b"",
    None,
    A("undefined"),
    A("nil"),
    True,
    (1, "two", b"three"),
    [1, 2, 3],
    {"x": 1, b"x": 2, None: 3, A("undefined"): 4, ("k", b"k"): [None]},
    Charlist("abc"),
    Charlist("日本"),
    Charlist("x" * 70_000),
    [Charlist("é✓"), [300, 400], [26085, 26412]],
    ImproperList(("a", b"b"), None),
    {FrozenList(["a", None]): {"k": b"v"}, FrozenMap({"k": None}): Charlist("")},
    ErlMap([(1, "a"), (1.0, b"b")], lossless=True),
    Pid(A("a@b"), 1, 2, 3),
    Ref(A("a@b"), (1, 2, 3), 4),
    -(2**100),
    -0.0,
]


@pytest.mark.parametrize("value", IDENTITY, ids=[repr(v)[:30] for v in IDENTITY])
def test_lossless_round_trip_is_the_identity(value: Any) -> None:
    back = decode(encode(value, options=LOSSLESS), options=LOSSLESS)
    assert exact(back, value)
    assert exact(decode(encode(value, options=LOSSLESS, compressed=True), options=LOSSLESS), value)


scalars = st.one_of(
    st.text(max_size=5),
    st.binary(max_size=5),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([A("undefined"), A("nil"), A("ok")]),
    st.text(max_size=5).map(Charlist),
)
keys = st.recursive(scalars, lambda kids: st.tuples(kids, kids), max_leaves=4)
values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=4).map(tuple),
        st.dictionaries(keys, kids, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_property_lossless_round_trip(value: Any) -> None:
    try:
        wire = encode(value, options=LOSSLESS)
    except EncodeError:  # a dict whose keys are one Erlang term even losslessly (1, 1.0)
        return
    assert exact(decode(wire, options=LOSSLESS), value)


def test_default_options_are_erlangs_view() -> None:
    assert decode(encode({"x": None})) == {b"x": A("undefined")}
    assert decode(encode(Charlist("日本"))) == [26085, 26412]
    assert type(decode(encode(Charlist("日本")))) is list
    assert type(decode(encode([1, 2, 3]))) is list  # LIST_EXT: only erl writes STRING_EXT
    assert type(decode(b"\x83k\x00\x03\x01\x02\x03")) is Charlist  # [1,2,3] from erl
    # A lossless bytes (BIT_BINARY_EXT, 8 bits) is an ordinary binary to anyone else.
    assert decode(encode(b"ab", options=LOSSLESS)) == b"ab"
    assert decode(encode(None, options=LOSSLESS)) == A("undefined")


def test_elixir_options() -> None:
    assert decode(encode({"name": None}), options=ELIXIR) == {"name": A("undefined")}
    assert decode(encode({"name": None}, options=ELIXIR), options=ELIXIR) == {"name": None}
    assert encode(None, options=ELIXIR) == encode(A("nil"))
    assert decode(encode(b"\xff\xfe"), options=ELIXIR) == b"\xff\xfe"  # not UTF-8: bytes
    assert decode(encode(b"caf\xc3\xa9"), options=ELIXIR) == "café"
    # Pid nodes stay atoms, whatever the options.
    pid = Pid(A("nil"), 1)
    assert decode(encode(pid), options=ELIXIR) == pid
    # None and nil are one key for Elixir.
    with pytest.raises(EncodeError, match="one Erlang term"):
        encode({None: 1, A("nil"): 2}, options=ELIXIR)
    assert len(decode(encode({None: 1, A("nil"): 2}))) == 2


def test_codec_options_validation_and_custom() -> None:
    with pytest.raises(ValueError, match="binaries"):
        CodecOptions(binaries="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="none_atom"):
        CodecOptions(none_atom="nil")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="true or false"):
        CodecOptions(none_atom=A("false"))
    custom = CodecOptions(none_atom=A("null"), atom_to_none=True)
    assert decode(encode([None, A("null")], options=custom), options=custom) == [None, None]
    assert decode(b"\x83d\x00\x04null", options=custom) is None  # Latin-1 atoms too
    assert CodecOptions() == DEFAULT_OPTIONS


def test_atom_cache_follows_the_options() -> None:
    cache = AtomCache()
    assert decode(encode(A("nil")), atom_cache=cache) == A("nil")
    assert decode(encode(A("nil")), atom_cache=cache, options=ELIXIR) is None
    assert decode(encode(A("nil")), atom_cache=cache) == A("nil")


def test_lossless_frame_helpers() -> None:
    buf = bytearray(b"p")
    encode_into(buf, ("x", b"y"), options=LOSSLESS)
    term, end = decode_prefix(bytes(buf), 1, options=LOSSLESS)
    assert exact(term, ("x", b"y")) and end == len(buf)


def test_lossless_markers_are_strict() -> None:
    # A list whose first element is a SMALL_BIG_EXT is a Charlist only if it is a proper
    # list of code points; anything else decodes as the list it is.
    odd = b"\x83l\x00\x00\x00\x02n\x03\x00\x61\x00\x00w\x01aj"
    assert decode(odd, options=LOSSLESS) == [97, A("a")]
    big = b"\x83l\x00\x00\x00\x01n\x03\x00\xff\xff\xffj"  # above 0x10FFFF
    assert decode(big, options=LOSSLESS) == [0xFFFFFF]
    with pytest.raises(DecodeError):
        decode(b"\x83l\x00\x00\x00\x01n\x03", options=LOSSLESS)


def test_charlist_is_a_sequence() -> None:
    c = decode(b"\x83k\x00\x03abc")
    assert c[0] == 97 and c[-1] == 99 and c[1:] == Charlist("bc")
    assert list(c) == [97, 98, 99] and 98 in c and "b" not in c
    assert c.index(99) == 2 and list(reversed(c)) == [99, 98, 97]
    match c:
        case [97, *rest]:
            assert rest == [98, 99]
        case _:
            pytest.fail("a Charlist matches a sequence pattern")


@pytest.mark.interop
def test_lossless_bytes_are_valid_etf_for_erlang(tmp_path: Path) -> None:
    # Lossless frames go only to beamlet peers, but they stay ETF erl reads as expected.
    # (Not b"": OTP 28.5's binary_to_term crashes the VM on a 0-byte BIT_BINARY_EXT.)
    value = ("text", b"bytes", None, A("undefined"), Charlist("日本"), Charlist("ab"))
    wire = encode(value, options=LOSSLESS)
    src = (
        '{ok, B} = file:read_file(os:getenv("IN")), '
        'T = {<<"text">>, <<"bytes">>, undefined, undefined, "日本", "ab"}, '
        'io:format("~p", [binary_to_term(B) =:= T]), halt().'
    )
    (tmp_path / "in").write_bytes(wire)
    out = subprocess.run(
        [require_erl(), "-noshell", "-eval", src],
        env=dict(os.environ, IN=str(tmp_path / "in")),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout == "true", out
