"""beamlet.phash2 against the real `erlang:phash2/1,2`: a few hundred random terms,
hashed by one `erl` subprocess (fails under CI=true when erl is missing)."""

from __future__ import annotations

import random
import subprocess
from typing import Any

import pytest
from dist_nodes import require_erl

from beamlet import Atom, BadArgument, Pid, Ref
from beamlet._core import ImproperList
from beamlet.distribution.etf import encode
from beamlet.phash2 import atom_hash, make_hash2, phash2

# Reads "HEX RANGE" lines, prints "phash2(T, Range) phash2(T)" for each.
_ERL_LOOP = """
Loop = fun Loop() ->
    case io:get_line("") of
        eof -> halt();
        Line ->
            [Hex, R] = string:split(string:trim(Line), " "),
            T = binary_to_term(binary:decode_hex(list_to_binary(Hex))),
            io:format("~b ~b~n", [erlang:phash2(T, list_to_integer(R)), erlang:phash2(T)]),
            Loop()
    end
end,
Loop().
"""

_ATOM_TEXTS = [
    "ok",
    "a",
    "",
    "undefined",
    "nil",
    "Elixir.Foo",
    "café",
    "ñandú",
    "Ω",
    "日本",
    "x" * 40,
]
_EDGES = [0, 1, -1, 255, 256, 2**27 - 1, 2**27, -(2**27), -(2**27) - 1, 2**31, 2**32, 2**59 - 1]
_EDGES += [2**59, -(2**59), -(2**59) - 1, 2**63, 2**64, -(2**64), 2**64 + 1, 3**100, -(7**90)]


def _term(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "atom", "str", "bytes", "float", "special", "pid", "ref"]
    if depth < 3:
        kinds += ["tuple", "list", "bytelist", "improper", "map"]
    kind = rng.choice(kinds)
    if kind == "int":
        if rng.random() < 0.4:
            return rng.choice(_EDGES)
        return rng.randint(-(2 ** rng.randint(1, 200)), 2 ** rng.randint(1, 200))
    if kind == "atom":
        return Atom(rng.choice(_ATOM_TEXTS))
    if kind == "str":
        return "".join(rng.choice("abcé€😀 \x00") for _ in range(rng.randint(0, 30)))
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 1, 3, 4, 5, 8, 11, 12, 13, 24, 25, 40, 100]))
    if kind == "float":
        return rng.choice([0.0, -0.0, 1.5, -2.25, 1e300, -1e-300, rng.uniform(-1e6, 1e6)])
    if kind == "special":
        return rng.choice([None, True, False, [], ()])
    if kind == "pid":
        return Pid(Atom("peer@host"), rng.randrange(2**15), rng.randrange(2**13), 1)
    if kind == "ref":
        return Ref(Atom("peer@host"), tuple(rng.randrange(2**32) for _ in range(3)), 1)
    n = rng.randint(0, 6)
    if kind == "tuple":
        return tuple(_term(rng, depth + 1) for _ in range(n))
    if kind == "list":
        return [_term(rng, depth + 1) for _ in range(n)]
    if kind == "bytelist":  # Erlang's string optimisation, with other terms mixed in
        return [rng.randrange(256) if rng.random() < 0.8 else _term(rng, 3) for _ in range(n * 3)]
    if kind == "improper":
        return ImproperList(tuple(_term(rng, depth + 1) for _ in range(n + 1)), Atom("tail"))
    size = rng.choice([0, 1, 3, 40]) if depth == 0 else rng.randint(0, 3)  # 40: a HAMT map
    return {rng.randrange(10**6) if i % 2 else f"k{i}": _term(rng, depth + 1) for i in range(size)}


def _erl_hashes(terms: list[Any], ranges: list[int]) -> list[tuple[int, int]]:
    erl = require_erl()
    lines = "".join(f"{encode(t).hex()} {r}\n" for t, r in zip(terms, ranges, strict=True))
    out = subprocess.run(
        [erl, "-noshell", "-eval", _ERL_LOOP],
        input=lines,
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    ).stdout.split("\n")
    return [(int(a), int(b)) for a, b in (line.split() for line in out if line)]


@pytest.mark.timeout(60)
def test_phash2_matches_erlang_for_random_terms() -> None:
    rng = random.Random(20261207)
    terms: list[Any] = [*map(Atom, _ATOM_TEXTS), *_EDGES, "", "héllo", [], {}, ()]
    terms += [[1, 2, 3], [1, [2], 3], [256, 1], list(range(300)), [[]], [[], []]]
    terms += [ImproperList((1,), 2), ImproperList((1, 2, 3, 4, 5), b"x"), {(): []}]
    terms += [_term(rng) for _ in range(400)]
    ranges = [rng.choice([1, 2, 3, 4, 7, 10, 1000, 2**27, 2**32 - 1, 2**32]) for _ in terms]
    expected = _erl_hashes(terms, ranges)
    assert len(expected) == len(terms)
    got = [(phash2(t, r), phash2(t)) for t, r in zip(terms, ranges, strict=True)]
    wrong = [(t, g, e) for t, g, e in zip(terms, got, expected, strict=True) if g != e]
    assert not wrong, wrong[:5]


def test_phash2_known_values() -> None:
    # From OTP 25 and 28 (`erlang:phash2(T, 1 bsl 32)`).
    assert make_hash2([]) == 3468870702
    assert make_hash2(b"") == 147926629
    assert phash2(Atom("ok")) == 1883 and phash2((1, 2, 3), 8) == 7
    assert atom_hash("café") == atom_hash("caf\xe9")  # Latin-1 folded, as ERTS does


def test_phash2_python_values_hash_as_their_wire_terms() -> None:
    assert phash2("ok", 2**32) == phash2(b"ok", 2**32)
    assert phash2(None) == phash2(Atom("undefined"))
    assert phash2(True) == phash2(Atom("true")) and phash2(False) == phash2(Atom("false"))
    assert phash2({1: 2, 3: 4}) == phash2({3: 4, 1: 2})  # order of a map does not count
    assert phash2(-0.0) == phash2(0.0)


def test_phash2_bad_range_and_non_terms() -> None:
    for bad in (0, -1, 2**32 + 1, 1.5, "4"):
        with pytest.raises(BadArgument):
            phash2(1, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an Erlang term"):
        phash2({1, 2})
    with pytest.raises(TypeError, match="not an Erlang term"):
        phash2([object()])
