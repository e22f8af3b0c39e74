"""Erlang's portable term hash, `erlang:phash2/1,2`, bit for bit.

The same term hashes to the same value here and on any 64-bit BEAM, so a choice made
by hashing (GenStage's PartitionDispatcher, a consistent-hash ring, a shard key) agrees
across beamlet and Erlang/Elixir nodes. It is ERTS's `make_hash2`: Bob Jenkins' 96-bit
mix over 32-bit words, with a constant per term type, and atoms by the `hashpjw` value
the atom table keeps.

Python values hash as the term they travel as (docs/protocol.md §2): `str` as its UTF-8
binary, `bytes` as a binary, `None` as the atom `undefined`, `True`/`False` as the atoms
`true`/`false`, `Atom` as an atom, `int` as an integer (any size), `float` as a float,
`tuple` as a tuple, `list` as a list, `ImproperList` as an improper list, `dict` (any
`Mapping`) as a map, `Pid` and `Ref` as pids and refs (Erlang hashes only a pid's number
and a ref's first word). Other values raise `TypeError`.

Examples:
    >>> from beamlet import Atom
    >>> from beamlet.phash2 import phash2
    >>> phash2(Atom("ok")), phash2((1, 2, 3), 8)
    (1883, 7)
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from beamlet._core import Atom, BadArgument, ImproperList, Pid, Ref

__all__ = ["make_hash2", "phash2"]

_M: Final = 0xFFFFFFFF

# HCONST (the golden ratio) times n, mod 2**32: one constant per kind of term.
HCONST: Final = 0x9E3779B9
_HC = [(HCONST * n) & _M for n in range(23)]
HCONST_2, HCONST_3, HCONST_4, HCONST_5, HCONST_6, HCONST_7 = _HC[2:8]
HCONST_9, HCONST_10, HCONST_11, HCONST_12, HCONST_13 = _HC[9:14]
HCONST_16, HCONST_19 = _HC[16], _HC[19]
del _HC

_NIL_DEF: Final = 2  # ERTS's tag number of [] (what a non-leading [] mixes in)
_NIL_FIRST: Final = 3468870702  # a leading []: the mix of _NIL_DEF into 0, precomputed
_SMALL28: Final = 1 << 27
_double = struct.Struct("<d")
_words = struct.Struct("<3I")


def _mix3(a: int, b: int, c: int) -> tuple[int, int, int]:
    """Bob Jenkins' mix of three 32-bit words."""
    a = (a - b - c) & _M
    a ^= c >> 13
    b = (b - c - a) & _M
    b ^= (a << 8) & _M
    c = (c - a - b) & _M
    c ^= b >> 13
    a = (a - b - c) & _M
    a ^= c >> 12
    b = (b - c - a) & _M
    b ^= (a << 16) & _M
    c = (c - a - b) & _M
    c ^= b >> 5
    a = (a - b - c) & _M
    a ^= c >> 3
    b = (b - c - a) & _M
    b ^= (a << 10) & _M
    c = (c - a - b) & _M
    c ^= b >> 15
    return a, b, c


def _mix(a: int, b: int, c: int) -> int:
    """The mix of a word pair (a, b) into the hash c; only c is kept."""
    return _mix3(a, b, c)[2]


def _hash2(x: int, y: int, const: int, h: int) -> int:
    """UINT32_HASH_2: two 32-bit words mixed into h."""
    return _mix((const + x) & _M, (const + y) & _M, h)


def _block_hash(data: bytes, initval: int) -> int:
    """Jenkins' lookup2 over the bytes, 12 at a time, little-endian words."""
    a = b = HCONST
    c = initval
    n = len(data)
    full = n - n % 12
    for off in range(0, full, 12):
        x, y, z = _words.unpack_from(data, off)
        a, b, c = _mix3((a + x) & _M, (b + y) & _M, (c + z) & _M)
    c = (c + n) & _M
    rest = data[full:]
    if rest:
        tail = rest + bytes(12 - len(rest))
        x, y, z = _words.unpack(tail)
        # the first byte of the last word is the length's (already added above)
        a, b, c = (a + x) & _M, (b + y) & _M, (c + (z << 8)) & _M
    return _mix(a, b, c)


def atom_hash(name: str) -> int:
    """The atom table's hash of an atom's text (hashpjw over its UTF-8 bytes, with
    two-byte Latin-1 characters folded back to one byte, as ERTS has done since R16)."""
    p = name.encode()
    h = 0
    i = 0
    n = len(p)
    while i < n:
        v = p[i]
        i += 1
        if i < n and (v & 0xFE) == 0xC2 and (p[i] & 0xC0) == 0x80:
            v = ((v << 6) | (p[i] & 0x3F)) & 0xFF
            i += 1
        h = ((h << 4) + v) & _M
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
            h ^= g
    return h


class _ListRest:
    """What is left of a list after an element that is not a byte."""

    __slots__ = ("items", "start", "tail")

    def __init__(self, items: Any, start: int, tail: Any) -> None:
        self.items = items
        self.start = start
        self.tail = tail


_MAP_TAIL: Final[Any] = object()  # then the saved hash and xor of the enclosing map
_MAP_PAIR: Final[Any] = object()
_TRUE: Final = Atom("true")
_FALSE: Final = Atom("false")
_UNDEFINED: Final = Atom("undefined")


def make_hash2(term: Any) -> int:
    """The full 32-bit hash (`erlang:phash2(Term, 1 bsl 32)`).

    Examples:
        >>> from beamlet.phash2 import make_hash2
        >>> make_hash2([]), make_hash2(b"")
        (3468870702, 147926629)
    """
    h = 0
    xor_pairs = 0
    stack: list[Any] = []
    while True:
        t = type(term)
        if t is str:
            term = term.encode()
            t = bytes
        if t is bool:
            term = _TRUE if term else _FALSE
            t = Atom
        elif term is None:
            term = _UNDEFINED
            t = Atom
        if t is int:
            if -_SMALL28 <= term < _SMALL28:
                if term < 0:
                    h = _mix((HCONST - term) & _M, HCONST, h)
                h = _mix((HCONST + term) & _M, HCONST, h)
            else:
                const = HCONST_10 if term < 0 else HCONST_11
                n = -term if term < 0 else term
                while True:
                    h = _mix((const + (n & _M)) & _M, (const + ((n >> 32) & _M)) & _M, h)
                    n >>= 64
                    if not n:
                        break
        elif t is Atom:
            v = atom_hash(term)
            h = v if h == 0 else _mix((HCONST_3 + v) & _M, HCONST_3, h)
        elif t is bytes or t is bytearray or t is memoryview:
            con = (HCONST_13 + h) & _M
            h = _block_hash(bytes(term), con) if len(term) else con
        elif t is tuple:
            h = _mix((HCONST_9 + len(term)) & _M, HCONST_9, h)
            if term:
                stack.extend(reversed(term[1:]))
                term = term[0]
                continue
        elif t is float:
            bits = int.from_bytes(_double.pack(term or 0.0), "little")  # -0.0 is 0.0
            h = _hash2(bits >> 32, bits & _M, HCONST_12, h)
        elif t is list or t is _ListRest or t is ImproperList or _is_list(term):
            if t is _ListRest:
                items, i, tail = term.items, term.start, term.tail
            elif t is ImproperList:
                items, i, tail = term.items, 0, term.tail
            else:
                items, i, tail = term, 0, []
            n = len(items)
            if i == n:  # nothing (left) before the tail
                if type(tail) is list and not tail:
                    h = _NIL_FIRST if h == 0 else _mix((HCONST_2 + _NIL_DEF) & _M, HCONST_2, h)
                else:
                    term = tail
                    continue
            else:
                c = sh = 0
                while i < n:
                    x = items[i]
                    if type(x) is not int or not 0 <= x <= 255:
                        break
                    sh = ((sh << 8) + x) & _M
                    if c == 3:
                        h = _mix((HCONST_4 + sh) & _M, HCONST_4, h)
                        c = sh = 0
                    else:
                        c += 1
                    i += 1
                if c:
                    h = _mix((HCONST_4 + sh) & _M, HCONST_4, h)
                if i < n:
                    stack.append(_ListRest(items, i + 1, tail))
                    term = items[i]
                else:  # only the tail is left
                    term = _ListRest(items, n, tail)
                continue
        elif isinstance(term, Mapping):
            size = len(term)
            h = _mix((HCONST_16 + size) & _M, HCONST_16, h)
            if size:
                stack.extend((xor_pairs, h, _MAP_TAIL))
                h = xor_pairs = 0
                for k, v in term.items():
                    stack.extend((_MAP_PAIR, v, k))
        elif t is Pid:
            h = _mix((HCONST_5 + term.id) & _M, HCONST_5, h)
        elif t is Ref:
            h = _mix((HCONST_7 + term.ids[0]) & _M, HCONST_7, h)
        else:
            raise TypeError(f"phash2: {t.__name__} is not an Erlang term: {term!r}")
        while True:
            if not stack:
                return h
            term = stack.pop()
            if term is _MAP_TAIL:
                h = stack.pop()
                h = _mix((HCONST_19 + xor_pairs) & _M, HCONST_19, h)
                xor_pairs = stack.pop()
            elif term is _MAP_PAIR:
                xor_pairs ^= h
                h = 0
            else:
                break


def _is_list(term: Any) -> bool:
    # the wire's list types of beamlet.distribution.etf (FrozenList, Charlist)
    return getattr(term, "_erlang_list", False) is True


def phash2(term: Any, range: int | None = None, /) -> int:
    """`erlang:phash2(Term, Range)`: a hash in `0..range-1` (`1 <= range <= 2**32`);
    without a range, `erlang:phash2(Term)`, in `0..2**27-1`. Raises `BadArgument` for a
    bad range, `TypeError` for a value that is not a term.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.phash2 import phash2
        >>> phash2("event", 4), phash2(b"event", 4)     # a str is its UTF-8 binary
        (2, 2)
        >>> phash2(None) == phash2(Atom("undefined"))
        True
    """
    if range is None:
        return make_hash2(term) & ((1 << 27) - 1)
    if type(range) is not int or not 1 <= range <= 1 << 32:
        raise BadArgument(f"phash2: range must be an int in 1..2**32, not {range!r}")
    return make_hash2(term) % range
