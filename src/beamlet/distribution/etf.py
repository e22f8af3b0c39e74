"""Erlang External Term Format (ETF): the codec of `term_to_binary`/`binary_to_term`.

Every term on an Erlang distribution connection is in this format. The encoder and the
decoder are iterative (an explicit stack, no recursion), so a term nested 100,000 deep
round-trips; the encoder validates the whole term before any byte is returned, and the
decoder turns every malformed input into `DecodeError` - and nothing else.

For the connection layer (the interface, in short):

* Control message: `decode_prefix(frame, 1, max_depth=CONTROL_MAX_DEPTH, atom_cache=c)`.
  A control term is then safe to hash and compare (`ctl[0] in ...`): at most 16 deep, and
  a 1,000,000-deep tuple is a `DecodeError` at once. A `DecodeError` here is a malformed
  frame: log and close.
* Payload: `decode_prefix(frame, off, options=opts, atom_cache=c)`; no depth bound (a
  deep message is legal Erlang and goes to a process). A `DecodeError` here costs that one
  message (drop and log); every valid Erlang term decodes (maps a dict cannot hold arrive
  as `ErlMap`; any number of atoms), so this is a lying or hostile peer.
* Sending: `encode_into(buf, term, options=opts)`; `EncodeError` leaves `buf` as it was.
* `opts` per connection: `LOSSLESS` when both ends are beamlet (identity round trip),
  else the node's configured `CodecOptions` (`DEFAULT_OPTIONS`, or `ELIXIR`). Use one
  `AtomCache` per connection and direction, with the same options on every call.
* Cost: decoding is linear in time and memory per input byte (< 100 B of objects per
  byte uncompressed; a compressed term is bounded by `max_uncompressed` and a term budget,
  `TERMS_PER_COMPRESSED_BYTE`). It runs at ~5-20 MB/s: a 128 MiB frame blocks the loop for
  seconds (docs/reliability.md, "Codec").

Values (the full table, with the options, is "Values on the wire" in docs/distribution.md):

=============================  =================================  ==========================
Python value                   ETF (tag)                          decodes back as
=============================  =================================  ==========================
`Atom`                         SMALL_ATOM_UTF8 119 / ATOM_UTF8    `Atom`
                               118 (decodes ATOM 100 and
                               SMALL_ATOM 115, Latin-1, too)
`True` / `False`               atoms `true` / `false`             `True` / `False`
`None`                         atom `undefined` (`none_atom`)     `Atom("undefined")` (!)
`int`                          SMALL_INTEGER 97, INTEGER 98,      `int`
                               SMALL_BIG 110, LARGE_BIG 111
`float` (finite only)          NEW_FLOAT 70 (decodes FLOAT 99)    `float`
`str`                          BINARY 109, UTF-8                  `bytes` (!) (`str` with
                                                                  `binaries="str"`)
`bytes`, `bytearray`           BINARY 109                         `bytes`
`BitString(data, bits)`        BIT_BINARY 77                      `BitString`
`tuple`                        SMALL_TUPLE 104 / LARGE_TUPLE 105  `tuple`
`list`                         LIST 108 + NIL 106 / NIL 106       `list`
`Charlist(text)`               STRING 107 (code points < 256,     `Charlist` (from STRING);
                               < 65536 long) or LIST of ints      a LIST of ints stays `list`
`ImproperList(items, tail)`    LIST 108 with a non-nil tail       `ImproperList`
`dict`                         MAP 116                            `dict` (or `ErlMap`)
`ErlMap(pairs)`                MAP 116                            `ErlMap`
`Pid`                          NEW_PID 88 (decodes PID 103)       `Pid`
`Ref`                          NEWER_REFERENCE 90 (decodes        `Ref`
                               REFERENCE 101, NEW_REFERENCE 114)
`Port(node, id, creation)`     NEW_PORT 89 / V4_PORT 120          `Port`
                               (decodes PORT 102)
`Export(module, fun, arity)`   EXPORT 113                         `Export`
`Fun(data)` (opaque)           NEW_FUN 112 (or FUN 117), the      `Fun`, byte-identical
                               raw bytes written back as they came
`FrozenList`, `FrozenMap`      LIST 108 / MAP 116                 see below
=============================  =================================  ==========================

Asymmetries of the default options, on purpose (`LOSSLESS` has none):

* `None` encodes as `undefined` (Erlang's "no value"), but `undefined` decodes as the atom,
  because an Erlang peer cannot tell the two apart and a real atom must survive a round trip.
* `str` encodes as a UTF-8 binary (Elixir's strings are binaries), but a binary decodes as
  `bytes`: the wire does not say whether the bytes are text.
* Map keys must be hashable in Python. Inside a decoded map *key*, lists become `FrozenList`
  (a tuple subclass that is not equal to a tuple and re-encodes as a list) and maps become
  `FrozenMap`; values stay `list`/`dict`. A map a dict cannot hold - keys distinct in
  Erlang but equal in Python (`1` and `1.0`), a key nested deeper than `MAX_KEY_DEPTH`, or
  keys flooding one hash - decodes as an `ErlMap`, losslessly. A map holding one Erlang
  term twice (`[97]` and `"a"`) is a `DecodeError`, as for `binary_to_term`.
* `set`/`frozenset` and other Python objects have no ETF form: `EncodeError` names the
  type and where in the term it was found. So does a dict whose keys are distinct in
  Python but one Erlang term (`"a"` and `b"a"`, `None` and `Atom("undefined")`), which
  the peer's `binary_to_term` would reject.
* Subclasses of `int`, `float`, `str`, `tuple`, `list`, `dict` (IntEnum, StrEnum,
  namedtuple, OrderedDict...) encode as their base type.

Limits on untrusted input (each breach is a `DecodeError`): `max_depth` (none by
default), `max_terms` (by default only for compressed terms), `max_atoms` distinct atoms
per call (none by default), atoms of at most 255 characters, a compressed term inflating
to at most `max_uncompressed` bytes (default 64 MiB). Lengths are checked against the
bytes left before anything is allocated. Nothing the decoder does with a decoded term
recurses in C: keys are hashed only up to `MAX_KEY_DEPTH` deep, and deeper ones are
compared through an iterative canonical form.

Examples:
    >>> from beamlet import Atom
    >>> from beamlet.distribution.etf import LOSSLESS, decode, encode
    >>> decode(encode((Atom("ok"), [1, 2.5], {"k": None})))
    (Atom('ok'), [1, 2.5], {b'k': Atom('undefined')})
    >>> decode(encode(("ok", None), options=LOSSLESS), options=LOSSLESS)  # beamlet to beamlet
    ('ok', None)
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import chain
from typing import Any, ClassVar, Final, Literal, TypeVar, overload

from beamlet._core import UNDEFINED, Atom, BeamletError, ImproperList, Pid, Ref

__all__ = [
    "CONTROL_MAX_DEPTH",
    "DEFAULT_MAX_ATOMS",
    "DEFAULT_MAX_UNCOMPRESSED",
    "DEFAULT_OPTIONS",
    "ELIXIR",
    "LOSSLESS",
    "MAX_KEY_DEPTH",
    "TERMS_PER_COMPRESSED_BYTE",
    "TERMS_PER_COMPRESSED_TERM",
    "VERSION",
    "AtomCache",
    "BitString",
    "Charlist",
    "CodecOptions",
    "DecodeError",
    "EncodeError",
    "ErlMap",
    "Export",
    "FrozenList",
    "FrozenMap",
    "Fun",
    "ImproperList",
    "Port",
    "decode",
    "decode_body_prefix",
    "decode_prefix",
    "encode",
    "encode_body",
    "encode_into",
]

_T = TypeVar("_T")

VERSION: Final = 131
"""The version byte that starts every term outside the distribution header."""

DEFAULT_MAX_ATOMS: Final = 65_536
"""A suggested cap on the distinct atoms of one `decode` call (the default is no cap).

Erlang bounds atoms because its atom table is never collected; an `Atom` is an ordinary
collected `str`, so a term's atoms cost memory in proportion to its bytes like any value.
"""

CONTROL_MAX_DEPTH: Final = 16
"""A `max_depth` for the fixed part of control messages: flat tuples of pids, refs and
small tuples/lists (SPAWN_REQUEST's option list is the deepest). A node's connections
bound whole control terms at `dist_ctrl.CTL_MAX_DEPTH` (256) instead, since an exit
reason or a trace token inside one may nest; the fuzzer decodes with this one."""

TERMS_PER_COMPRESSED_TERM: Final = 1_000_000
TERMS_PER_COMPRESSED_BYTE: Final = 16
"""A compressed term may decode to at most `TERMS_PER_COMPRESSED_TERM +
TERMS_PER_COMPRESSED_BYTE * (its compressed size)` terms unless `max_terms` says otherwise:
a 65 KB stream of `[]`s inflating to 64 MiB would otherwise build 64 million lists (4.7 GB).
An uncompressed term needs no such bound: it holds at most one term per byte."""

DEFAULT_MAX_UNCOMPRESSED: Final = 64 * 1024 * 1024
"""Default cap, in bytes, on the declared size of a compressed (tag 80) term."""

# Tags (erl_ext_dist).
_NEW_FLOAT: Final = 70
_BIT_BINARY: Final = 77
_COMPRESSED: Final = 80
_ATOM_CACHE_REF: Final = 82
_NEW_PID: Final = 88
_NEW_PORT: Final = 89
_NEWER_REFERENCE: Final = 90
_SMALL_INTEGER: Final = 97
_INTEGER: Final = 98
_FLOAT: Final = 99
_ATOM: Final = 100
_REFERENCE: Final = 101
_PORT: Final = 102
_PID: Final = 103
_SMALL_TUPLE: Final = 104
_LARGE_TUPLE: Final = 105
_NIL: Final = 106
_STRING: Final = 107
_LIST: Final = 108
_BINARY: Final = 109
_SMALL_BIG: Final = 110
_LARGE_BIG: Final = 111
_NEW_FUN: Final = 112
_EXPORT: Final = 113
_NEW_REFERENCE: Final = 114
_SMALL_ATOM: Final = 115
_MAP: Final = 116
_FUN: Final = 117
_ATOM_UTF8: Final = 118
_SMALL_ATOM_UTF8: Final = 119
_V4_PORT: Final = 120
_LOCAL: Final = 121

_MAX_ATOM_CHARS: Final = 255
# Encoder mode bits. _CANONICAL: the form that compares map keys as Erlang does (no key
# check, charlists as lists, maps sorted); _LOSSLESS: CodecOptions.lossless.
_CANONICAL: Final = 1
_LOSSLESS: Final = 2
# Hashing a key recurses (in C for tuples: a 1,000,000-deep tuple key segfaults CPython),
# so containers inside a map key may nest only this deep.
MAX_KEY_DEPTH: Final = 100
_MAX_REF_WORDS: Final = 5
_U32_MAX: Final = 0xFFFFFFFF
_U64_MAX: Final = 0xFFFFFFFFFFFFFFFF
_I32_MIN: Final = -(2**31)
_I32_MAX: Final = 2**31 - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_F64 = struct.Struct(">d")
_U32U8 = struct.Struct(">IB")
_U32x2 = struct.Struct(">II")
_U32x3 = struct.Struct(">III")
_U32x4 = struct.Struct(">IIII")
_U32x2U8 = struct.Struct(">IIB")
_U64U32 = struct.Struct(">QI")
_TAG_U16 = struct.Struct(">BH")
_TAG_U32 = struct.Struct(">BI")
_TAG_I32 = struct.Struct(">Bi")
_TAG_F64 = struct.Struct(">Bd")
_TAG_U8U8 = struct.Struct(">BBB")
_TAG_U32U8 = struct.Struct(">BIB")
_VERSION_TAG_U32 = struct.Struct(">BBI")
_REF_WORDS = [struct.Struct(">" + "I" * n) for n in range(_MAX_REF_WORDS + 1)]

# Precomputed headers: one `out +=` per small int, atom or tuple on the hot path.
_SMALL_INT_BYTES: Final = tuple(bytes((_SMALL_INTEGER, i)) for i in range(256))
_SMALL_TUPLE_HDR: Final = tuple(bytes((_SMALL_TUPLE, i)) for i in range(256))
_ATOM_HDR: Final = tuple(bytes((_SMALL_ATOM_UTF8, i)) for i in range(256))
_TRUE_BYTES: Final = b"\x77\x04true"
_FALSE_BYTES: Final = b"\x77\x05false"
_UNDEFINED_BYTES: Final = b"\x77\x09undefined"
# Chained after a list's items, so the encoder's loop writes the NIL_EXT tail itself.
_NIL_TAIL: Final[tuple[list[Any]]] = ([],)
_DONE: Final = object()


class DecodeError(BeamletError, ValueError):
    """The bytes are not a valid external term (or break a decoding limit).

    Examples:
        >>> from beamlet.distribution.etf import DecodeError, decode
        >>> try:
        ...     decode(b"\\x83\\x6a\\x00")
        ... except DecodeError as e:
        ...     print(e)
        trailing bytes after the term (offset 2, 1 left)
    """


class EncodeError(BeamletError, ValueError):
    """The term cannot be encoded; the message says what and where (`path`).

    Examples:
        >>> from beamlet.distribution.etf import EncodeError, encode
        >>> try:
        ...     encode([1, {2.0: float("nan")}])
        ... except EncodeError as e:
        ...     print(e.path)
        term[1][2.0]
    """

    def __init__(self, message: str, path: str = "term") -> None:
        super().__init__(message)
        self.path = path


# ------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class CodecOptions:
    """How Python values map to Erlang terms on one connection (or one `encode`/`decode`).

    * `binaries`: what a binary decodes to: `"bytes"` (the default: the wire does not say
      whether bytes are text) or `"str"` (a binary that is valid UTF-8 becomes `str`, any
      other stays `bytes`; natural for Elixir, whose strings are UTF-8 binaries).
    * `none_atom`: the atom `None` is sent as (`undefined`, Erlang's "no value"; Elixir's is
      `nil`); `atom_to_none`: whether that atom decodes back to `None` (default False: a
      real atom `undefined` must survive a round trip).
    * `lossless`: the mode for two beamlet nodes: every Python value comes back as it was
      sent (`str` and `bytes`, `None` and `Atom("undefined")`, any `Charlist`), using
      encodings that are valid ETF but that Erlang itself never writes; it overrides the
      other fields. See "Values on the wire" in docs/distribution.md.

    Examples:
        >>> decode(encode({"x": None}, options=LOSSLESS), options=LOSSLESS)
        {'x': None}
        >>> decode(encode({"x": None}, options=ELIXIR), options=ELIXIR)
        {'x': None}
        >>> decode(encode({"x": None}))
        {b'x': Atom('undefined')}
    """

    binaries: Literal["bytes", "str"] = "bytes"
    none_atom: Atom = UNDEFINED
    atom_to_none: bool = False
    lossless: bool = False
    # Derived once (validated in __post_init__): the encoder's mode bits and None's bytes.
    _mode: int = field(default=0, init=False, repr=False, compare=False)
    _none_bytes: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.binaries not in ("bytes", "str"):
            raise ValueError(f"binaries must be 'bytes' or 'str', not {self.binaries!r}")
        if type(self.none_atom) is not Atom or not 0 < len(self.none_atom) <= _MAX_ATOM_CHARS:
            raise ValueError(f"none_atom must be an Atom of 1..255 characters: {self.none_atom!r}")
        if self.none_atom in (Atom("true"), Atom("false")):
            raise ValueError("none_atom cannot be true or false")
        raw = self.none_atom.encode()
        if self.lossless:
            # None is `undefined` in ATOM_UTF8_EXT (118), which erts writes only for atoms
            # over 255 bytes: a marker Erlang never sends, read by Erlang as `undefined`.
            mode, none = _LOSSLESS, b"\x76\x00\x09undefined"
        else:
            mode, none = 0, _ATOM_HDR[len(raw)] + raw if len(raw) <= 255 else b""
            if not none:
                none = _TAG_U16.pack(_ATOM_UTF8, len(raw)) + raw
        object.__setattr__(self, "_mode", mode)
        object.__setattr__(self, "_none_bytes", none)


DEFAULT_OPTIONS: Final = CodecOptions()
"""Erlang's view: binaries are `bytes`, `None` is sent as `undefined`, which stays an atom."""

ELIXIR: Final = CodecOptions(binaries="str", none_atom=Atom("nil"), atom_to_none=True)
"""Elixir's view: UTF-8 binaries are `str`, `None` is `nil` both ways."""

LOSSLESS: Final = CodecOptions(lossless=True)
"""Between two beamlet nodes: every Python value round-trips as itself."""


# --------------------------------------------------------------------------- types


def _freeze(cls: type[_T], **fields: Any) -> _T:
    # The decoder's constructor: skips __init__/__post_init__ for values it already checked.
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


@dataclass(frozen=True, slots=True)
class BitString:
    """A bitstring whose length is not a multiple of 8 (Erlang's `<<1:3>>`).

    `bits` is the number of bits used in the last byte of `data` (1-7), counted from the
    most significant bit; the unused low bits are cleared so equal bitstrings compare equal.
    Whole-byte bitstrings are plain `bytes`.

    Examples:
        >>> from beamlet.distribution.etf import BitString, decode, encode
        >>> BitString(b"\\xff", 3)
        BitString(data=b'\\xe0', bits=3)
        >>> decode(encode(BitString(b"\\xff", 3)))  # Erlang's <<7:3>>
        BitString(data=b'\\xe0', bits=3)
    """

    data: bytes
    bits: int

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes | bytearray) or not self.data:
            raise ValueError("BitString.data must be non-empty bytes")
        if type(self.bits) is not int or not 1 <= self.bits <= 7:
            raise ValueError("BitString.bits must be 1..7 (8 would be plain bytes)")
        object.__setattr__(self, "data", _mask_tail(bytes(self.data), self.bits))

    @property
    def bit_length(self) -> int:
        """The total number of bits."""
        return (len(self.data) - 1) * 8 + self.bits


def _mask_tail(data: bytes, bits: int) -> bytes:
    last = data[-1] & (0xFF << (8 - bits)) & 0xFF
    return data if last == data[-1] else data[:-1] + bytes((last,))


@dataclass(frozen=True, slots=True)
class Port:
    """An Erlang port identifier, `#Port<node.id>`; echo it back, never invent one.

    Examples:
        >>> Port(Atom("a@host"), 7, 1).id
        7
    """

    node: Atom
    id: int
    creation: int = 0

    def __post_init__(self) -> None:
        if type(self.node) is not Atom:
            object.__setattr__(self, "node", Atom(self.node))
        if type(self.id) is not int or not 0 <= self.id <= _U64_MAX:
            raise ValueError(f"port id out of range: {self.id!r}")
        if type(self.creation) is not int or not 0 <= self.creation <= _U32_MAX:
            raise ValueError(f"port creation out of range: {self.creation!r}")


@dataclass(frozen=True, slots=True)
class Export:
    """An external fun, Erlang's `fun Module:Function/Arity`.

    Examples:
        >>> Export(Atom("lists"), Atom("map"), 2)
        Export(module=Atom('lists'), function=Atom('map'), arity=2)
    """

    module: Atom
    function: Atom
    arity: int

    def __post_init__(self) -> None:
        if type(self.module) is not Atom or type(self.function) is not Atom:
            raise ValueError("Export module and function must be Atom")
        if type(self.arity) is not int or not 0 <= self.arity <= 255:
            raise ValueError(f"Export arity must be 0..255, not {self.arity!r}")


@dataclass(frozen=True, slots=True)
class Fun:
    """A local fun received from Erlang, kept opaque: `data` is its raw ETF, tag included.

    Python cannot run it, but can store it and send it back byte-identically. Equality is
    equality of those bytes: the same fun encoded another way (OTP 25's default Latin-1
    atom tags versus UTF-8 ones) gives an unequal `Fun`.

    Examples:
        >>> f = Fun(b"p" + bytes(4) + b"\x02" + bytes(24))  # raw NEW_FUN_EXT from a peer
        >>> f.arity, encode_body(f) == f.data
        (2, True)
    """

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes) or not self.data:
            raise ValueError("Fun.data must be non-empty bytes")
        if self.data[0] not in (_NEW_FUN, _FUN):
            raise ValueError("Fun.data must start with NEW_FUN_EXT (112) or FUN_EXT (117)")

    @property
    def arity(self) -> int | None:
        """The fun's arity (None for the pre-OTP-23 FUN_EXT, which does not store it)."""
        return self.data[5] if self.data[0] == _NEW_FUN and len(self.data) > 5 else None


_CHARLIST_SALT: Final = 0x2C4A1B3F
_FROZEN_SALT: Final = 0x6A09E667


@dataclass(frozen=True, slots=True, eq=False)
class Charlist(Sequence[int]):
    """An Erlang string: a list of code points (`"abc"` in Erlang, `'abc'` in Elixir).

    Encodes as STRING_EXT when every code point is below 256 and there are fewer than
    65,536 of them, otherwise as a list of integers. STRING_EXT decodes to `Charlist` - and
    Erlang sends *any* proper list of 1..65,535 integers 0..255 that way, so `[1, 2]` from
    Erlang is `Charlist("\\x01\\x02")`, while `"日本"` (code points over 255) arrives as a
    `list`. A `Charlist` is therefore a sequence of integers: it compares equal to a
    `list` of the same integers, indexes and iterates as integers (a slice is a
    `Charlist`), matches `case [104, 105]:`, and `str()` gives the text.

    Examples:
        >>> from beamlet.distribution.etf import Charlist, decode, encode
        >>> c = decode(encode(Charlist("hi")))
        >>> c, str(c), c == [104, 105], c[0], c[-1:]
        (Charlist(text='hi'), 'hi', True, 104, Charlist(text='i'))
    """

    _erlang_list = True  # an ImproperList tail cannot be one of these

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or type(self.text) is Atom:
            raise ValueError("Charlist.text must be a str")

    def __eq__(self, other: object) -> bool:
        if type(other) is Charlist:
            return self.text == other.text
        if isinstance(other, list):
            return len(other) == len(self.text) and all(
                type(c) is int and c == ord(t) for c, t in zip(other, self.text, strict=True)
            )
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.text) ^ _CHARLIST_SALT

    def __str__(self) -> str:
        return self.text

    def __len__(self) -> int:
        return len(self.text)

    def __iter__(self) -> Iterator[int]:
        return map(ord, self.text)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Charlist: ...
    def __getitem__(self, index: int | slice) -> int | Charlist:
        if isinstance(index, slice):
            return _freeze(Charlist, text=self.text[index])
        return ord(self.text[index])

    def __contains__(self, value: object) -> bool:
        return type(value) is int and 0 <= value <= 0x10FFFF and chr(value) in self.text

    def __reversed__(self) -> Iterator[int]:
        return map(ord, reversed(self.text))

    def codes(self) -> list[int]:
        """The code points as a plain list."""
        return list(map(ord, self.text))


class FrozenList(tuple[Any, ...]):
    """A list found inside a decoded map key, made hashable.

    A `tuple` subclass that is equal only to other `FrozenList`s and to `list`s with the
    same items (never to a tuple: `#{[1] => a, {1} => b}` keeps both keys), and that
    encodes back as a list.

    Examples:
        >>> from beamlet.distribution.etf import FrozenList, decode, encode
        >>> key = next(iter(decode(encode({FrozenList([1, 2]): 0}))))
        >>> key, key == [1, 2], key == (1, 2)
        (FrozenList([1, 2]), True, False)
    """

    _erlang_list = True  # an ImproperList tail cannot be one of these

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is FrozenList:
            return tuple.__eq__(self, other)
        if isinstance(other, list):
            return len(other) == len(self) and tuple.__eq__(self, tuple(other))
        if isinstance(other, tuple):
            return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return tuple.__hash__(self) ^ _FROZEN_SALT

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"


class FrozenMap(Mapping[Any, Any]):
    """A map found inside a decoded map key, made hashable; encodes back as a map.

    Examples:
        >>> from beamlet.distribution.etf import FrozenMap, decode, encode
        >>> FrozenMap({1: 2}) == {1: 2}, hash(FrozenMap({1: 2})) == hash(FrozenMap({1: 2}))
        (True, True)
        >>> key = next(iter(decode(encode({FrozenMap({1: 2}): "v"}))))  # a map as a map key
        >>> type(key).__name__, key == {1: 2}
        ('FrozenMap', True)
    """

    __slots__ = ("_canon", "_d", "_hash")
    __match_args__: ClassVar = ()

    _d: dict[Any, Any]
    _hash: int | None
    _canon: tuple[int, bytes, bytes] | None

    def __init__(self, items: Mapping[Any, Any] | None = None) -> None:
        object.__setattr__(self, "_d", dict(items) if items is not None else {})
        object.__setattr__(self, "_hash", None)
        object.__setattr__(self, "_canon", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        # Added for pg: lets copy.deepcopy (message isolation between local processes)
        # and pickle rebuild it; without it a FrozenMap was unsendable.
        return (FrozenMap, (self._d,))

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._d == other._d
        if isinstance(other, dict):
            return self._d == other
        return NotImplemented

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            # A sum, not hash(frozenset(items)): building that set takes quadratic time when
            # the entries' hashes collide (integer keys are easy to make collide).
            h = hash(sum(map(hash, self._d.items()))) ^ _FROZEN_SALT
            object.__setattr__(self, "_hash", h)
        return h

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


class ErlMap(Mapping[Any, Any]):
    """An Erlang map that a `dict` cannot hold, kept whole as its (key, value) pairs.

    The decoder returns one instead of a `dict` (or `FrozenMap`) when keys distinct in
    Erlang are equal in Python (`#{1 => a, 1.0 => b}`, `#{true => 1, 1 => 2}`, `0`/`0.0`/
    `false`, `{1}`/`{true}`, `[1]`/`[1.0]`), when a key nests deeper than `MAX_KEY_DEPTH`
    (hashing it would recurse in C), and when many keys share one Python hash (a dict
    would take quadratic time to build). Lookups compare keys as Erlang's `=:=` does, so
    `m[1]` and `m[1.0]` are two entries; iteration keeps the wire order; it encodes back
    byte-identically. It equals only another `ErlMap` with the same entries (by `=:=`),
    and is hashable, so it can itself be a map key. Keys need not be hashable.

    Examples:
        >>> m = decode(encode(ErlMap([(1, Atom("a")), (1.0, Atom("b"))])))
        >>> m[1], m[1.0], len(m), m.pairs
        (Atom('a'), Atom('b'), 2, ((1, Atom('a')), (1.0, Atom('b'))))
    """

    __slots__ = ("_canon", "_index", "_keys", "_mode", "_pairs")
    __match_args__: ClassVar = ()

    _pairs: tuple[tuple[Any, Any], ...]
    _keys: list[bytes]
    _mode: int
    _index: dict[bytes, int] | None
    _canon: tuple[int, bytes, bytes] | None

    def __init__(
        self, pairs: Iterable[tuple[Any, Any]] | Mapping[Any, Any] = (), *, lossless: bool = False
    ) -> None:
        items = tuple(pairs.items() if isinstance(pairs, Mapping) else map(tuple, pairs))
        if any(len(p) != 2 for p in items):
            raise ValueError("ErlMap takes (key, value) pairs")
        mode = _LOSSLESS if lossless else 0
        keys = [_canon(k, mode) for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("ErlMap keys must be distinct Erlang terms")
        _init_erlmap(self, items, keys, mode)

    @property
    def pairs(self) -> tuple[tuple[Any, Any], ...]:
        """The entries, in order."""
        return self._pairs

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ErlMap is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_erlmap, (self._pairs, self._keys, self._mode))

    def __getitem__(self, key: Any) -> Any:
        index = self._index
        if index is None:
            index = {k: i for i, k in enumerate(self._keys)}
            object.__setattr__(self, "_index", index)
        try:
            i = index[_canon(key, self._mode)]
        except (KeyError, EncodeError):
            raise KeyError(key) from None
        return self._pairs[i][1]

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def _identity(self) -> bytes | None:
        try:
            return _canon(self, self._mode)
        except EncodeError:  # a value with no ETF form (only in an ErlMap built by hand)
            return None

    def __eq__(self, other: object) -> bool:
        if type(other) is not ErlMap:
            return NotImplemented
        a, b = self._identity(), other._identity()
        if a is None or b is None:
            return self._pairs == other._pairs
        return a == b

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        identity = self._identity()
        return hash(self._pairs if identity is None else identity)

    def __repr__(self) -> str:
        return f"ErlMap({list(self._pairs)!r})"


def _init_erlmap(
    m: ErlMap, pairs: tuple[tuple[Any, Any], ...], keys: list[bytes], mode: int
) -> None:
    setattr_ = object.__setattr__
    setattr_(m, "_pairs", pairs)
    setattr_(m, "_keys", keys)
    setattr_(m, "_mode", mode)
    setattr_(m, "_index", None)
    setattr_(m, "_canon", None)


def _erlmap(pairs: tuple[tuple[Any, Any], ...], keys: list[bytes], mode: int) -> ErlMap:
    # The decoder's (and unpickling's) constructor: the keys are known distinct.
    m = object.__new__(ErlMap)
    _init_erlmap(m, pairs, keys, mode)
    return m


_EMPTY_FROZEN_LIST: Final = FrozenList()
_EMPTY_CHARLIST: Final = Charlist("")


# ------------------------------------------------------------------------- encoding


class _Bad(Exception):
    """Internal: the fast encoder met something it cannot encode."""


def encode(
    term: Any, *, compressed: int | bool = False, options: CodecOptions = DEFAULT_OPTIONS
) -> bytes:
    """Encode `term` as `term_to_binary` does: version byte 131, then the term.

    `compressed` is False/0 (no compression), True (zlib level 6, Erlang's default) or a
    level 1-9; as in Erlang, the compressed form is used only when zlib saves 4 bytes or more.
    `options` maps Python values to terms (see `CodecOptions`). Raises `EncodeError` (and
    returns nothing) if any part of the term cannot be encoded.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution.etf import decode, encode
        >>> encode((Atom("ok"), 1))
        b'\\x83h\\x02w\\x02oka\\x01'
        >>> decode(encode((Atom("ok"), 1)))
        (Atom('ok'), 1)
    """
    level = _level(compressed)
    out = bytearray(b"\x83")
    _encode_checked(out, term, options)
    if level:
        body = memoryview(out)[1:]
        packed = zlib.compress(body, level)
        if len(packed) <= len(body) - 4:  # erts's rule, so our bytes match term_to_binary's
            return _VERSION_TAG_U32.pack(VERSION, _COMPRESSED, len(body)) + packed
    return bytes(out)


def encode_body(term: Any, *, options: CodecOptions = DEFAULT_OPTIONS) -> bytes:
    """Encode `term` without the version byte (for embedding in a larger ETF structure).

    Examples:
        >>> encode_body(Atom("ok"))
        b'w\\x02ok'
    """
    out = bytearray()
    _encode_checked(out, term, options)
    return bytes(out)


def encode_into(buf: bytearray, term: Any, *, options: CodecOptions = DEFAULT_OPTIONS) -> None:
    """Append `encode(term)` to `buf` (saves a copy when building a frame).

    On error `buf` is left exactly as it was and `EncodeError` is raised.

    Examples:
        >>> frame = bytearray(b"p")
        >>> encode_into(frame, Atom("a")); bytes(frame)
        b'p\\x83w\\x01a'
    """
    start = len(buf)
    buf.append(VERSION)
    try:
        _encode_checked(buf, term, options)
    except BaseException:
        del buf[start:]
        raise


def _level(compressed: int | bool) -> int:
    if compressed is True:
        return 6
    if compressed is False:
        return 0
    if type(compressed) is not int or not 0 <= compressed <= 9:
        raise ValueError(f"compressed must be a bool or a level 0..9, not {compressed!r}")
    return compressed


def _encode_checked(out: bytearray, term: Any, options: CodecOptions) -> None:
    start = len(out)
    try:
        _encode(out, term, options._mode, options._none_bytes)
    except Exception as exc:
        del out[start:]
        problem = _find_problem(term, options._mode, options._none_bytes)
        if problem is None:  # pragma: no cover - a bug, or the term changed while encoding
            raise EncodeError(f"cannot encode term: {exc!r}") from exc
        path, reason = problem
        raise EncodeError(f"{reason} at {path}", path) from None


def _encode(out: bytearray, term: Any, mode: int = 0, none: bytes = b"w\x09undefined") -> None:
    # One loop over an explicit stack of iterators: each container pushes an iterator over
    # its children (a list's ends with a [] so the same loop writes NIL_EXT). `path` holds
    # the containers themselves, to detect a reference cycle once the term gets deep.
    # Hot names are bound to locals and tags written as literals: this is the hot path.
    small_ints = _SMALL_INT_BYTES
    atom_hdr = _ATOM_HDR
    tuple_hdr = _SMALL_TUPLE_HDR
    pack_u32 = _TAG_U32.pack
    pack_i32 = _TAG_I32.pack
    pack_f64 = _TAG_F64.pack
    pack_pid = _U32x3.pack
    pack_ref3 = _U32x4.pack
    nil_tail = _NIL_TAIL
    from_iterable = chain.from_iterable
    int_, atom_, tuple_, bytes_, str_, list_, dict_ = int, Atom, tuple, bytes, str, list, dict
    float_, bool_, pid_, ref_ = float, bool, Pid, Ref
    stack: list[Iterator[Any]] = []
    path: list[Any] = []
    deep = 10_000
    done = _DONE
    it: Iterator[Any] = iter(())
    obj = term
    while True:
        t = type(obj)
        if t is int_:
            if 0 <= obj <= 255:
                out += small_ints[obj]
            elif -2147483648 <= obj <= 2147483647:
                out += pack_i32(98, obj)  # INTEGER_EXT
            else:
                _put_big(out, obj)
        elif t is atom_:
            raw = obj.encode()
            if len(raw) <= 255:
                out += atom_hdr[len(raw)]
                out += raw
            else:
                _put_atom(out, obj)
        elif t is tuple_:
            n = len(obj)
            if n <= 255:
                out += tuple_hdr[n]
            else:
                out += pack_u32(105, n)  # LARGE_TUPLE_EXT
            if n:
                stack.append(it)
                it = iter(obj)
                path.append(obj)
                if len(path) > deep:
                    deep = _deeper(path, deep)
        elif t is bytes_:
            if mode & 2:  # _LOSSLESS: BIT_BINARY_EXT with 8 bits tells bytes from str
                out += _TAG_U32U8.pack(77, len(obj), 8 if obj else 0)
            else:
                out += pack_u32(109, len(obj))  # BINARY_EXT
            out += obj
        elif t is str_:
            raw = obj.encode()
            out += pack_u32(109, len(raw))
            out += raw
        elif t is list_:
            if obj:
                out += pack_u32(108, len(obj))  # LIST_EXT
                stack.append(it)
                it = chain(obj, nil_tail)
                path.append(obj)
                if len(path) > deep:
                    deep = _deeper(path, deep)
            else:
                out.append(106)  # NIL_EXT
        elif t is dict_:
            out += pack_u32(116, len(obj))  # MAP_EXT
            if obj:
                if not mode & 1 and len(obj) > 1 and _keys_collide(obj, mode, none):
                    raise _Bad
                stack.append(it)
                it = from_iterable(obj.items())
                path.append(obj)
                if len(path) > deep:
                    deep = _deeper(path, deep)
        elif t is float_:
            if obj - obj != 0.0:  # inf - inf and nan - nan are nan: not finite
                raise _Bad
            out += pack_f64(70, obj)  # NEW_FLOAT_EXT
        elif t is bool_:
            out += _TRUE_BYTES if obj else _FALSE_BYTES
        elif obj is None:
            out += none
        elif t is pid_:
            out.append(88)  # NEW_PID_EXT
            raw = obj._node.encode()
            if len(raw) <= 255:
                out += atom_hdr[len(raw)]
                out += raw
            else:
                _put_atom(out, obj._node)
            out += pack_pid(obj._id, obj._serial, obj._creation)
        elif t is ref_ and obj._len == 3:
            out += b"\x5a\x00\x03"  # NEWER_REFERENCE_EXT, 3 words
            raw = obj._node.encode()
            if len(raw) <= 255:
                out += atom_hdr[len(raw)]
                out += raw
            else:
                _put_atom(out, obj._node)
            n = obj._n
            out += pack_ref3(obj._creation, n & 0xFFFFFFFF, (n >> 32) & 0xFFFFFFFF, n >> 64)
        else:
            children = _encode_other(out, obj, mode, none)
            if children is not None:
                stack.append(it)
                it = children
                path.append(obj)
                if len(path) > deep:
                    deep = _deeper(path, deep)
        # Next object: the next child of the innermost unfinished container.
        obj = next(it, done)
        while obj is done:
            if not stack:
                return
            it = stack.pop()
            path.pop()
            obj = next(it, done)


# Map keys of these types are one Erlang term only in these pairs: str/bytes (binaries),
# Atom/bool and Atom/None (atoms). Keys of other types (tuples...) are compared encoded.
_SCALAR_KEY_TYPES: Final = frozenset({Atom, int, float, str, bytes, bool, type(None)})


def _keys_collide(d: Mapping[Any, Any], mode: int, none: bytes) -> bool:
    """True if two keys of `d` are one Erlang term ("a" and b"a", None and undefined)."""
    types = set(map(type, d))
    binaries = str in types and bytes in types and not mode & _LOSSLESS
    atoms = Atom in types and (bool in types or type(None) in types)
    if types <= _SCALAR_KEY_TYPES and not binaries and not atoms:
        return False
    seen = set()
    for key in d:
        try:
            seen.add(_canon(key, mode, none))
        except Exception:
            return False  # the key itself is bad: reported as such
    return len(seen) < len(d)


def _canon(term: Any, mode: int, none: bytes = _UNDEFINED_BYTES) -> bytes:
    """Bytes that identify `term` as Erlang's `=:=` does: equal iff one Erlang term.

    A scalar gives its encoding in mode `_CANONICAL` (charlists written as lists); a
    container, a zero byte and a 128-bit BLAKE2b digest of its header and its children's
    results (a map's entries sorted), so each node is hashed once: linear time, however
    deep, and nothing recursive. Encodings are prefix-free and no tag is 0: concatenated
    results cannot be ambiguous. A map caches its result. Raises `EncodeError` if `term`
    has no ETF form.
    """
    mode |= _CANONICAL
    buf = bytearray()
    # Post-order walk: (container, header, children's bytes, children left, is a map).
    stack: list[tuple[Any, bytes, list[bytes], Iterator[Any], bool]] = []
    obj = term
    while True:
        t = type(obj)
        frame: tuple[Any, bytes, list[bytes], Iterator[Any], bool] | None = None
        v: bytes | None = None
        if t is ErlMap or t is FrozenMap:
            cached = obj._canon
            if cached is not None and cached[0] == mode and cached[1] == none:
                v = cached[2]
            elif len(obj):
                items = obj._pairs if t is ErlMap else obj._d.items()
                head = _TAG_U32.pack(_MAP, len(obj))
                frame = (obj, head, [], chain.from_iterable(items), True)
        elif t is Charlist:
            if obj.text:  # as the list of its code points
                head = _TAG_U32.pack(_LIST, len(obj.text))
                frame = (obj, head, [], chain(map(ord, obj.text), _NIL_TAIL), False)
        elif not obj:
            pass
        elif isinstance(obj, dict):
            frame = (obj, _TAG_U32.pack(_MAP, len(obj)), [], chain.from_iterable(obj.items()), True)
        elif isinstance(obj, list) or t is FrozenList:
            frame = (obj, _TAG_U32.pack(_LIST, len(obj)), [], chain(obj, _NIL_TAIL), False)
        elif isinstance(obj, tuple):
            head = _SMALL_TUPLE_HDR[len(obj)] if len(obj) <= 255 else _TAG_U32.pack(105, len(obj))
            frame = (obj, head, [], iter(obj), False)
        elif t is ImproperList:
            head = _TAG_U32.pack(_LIST, len(obj.items))
            frame = (obj, head, [], chain(obj.items, (obj.tail,)), False)
        if frame is not None:
            stack.append(frame)
            obj = next(frame[3])  # containers here are never empty
            continue
        if v is not None:
            pass
        elif t is Atom and len(obj) < 128:  # the usual keys, without _encode's set-up
            raw = obj.encode()
            v = _ATOM_HDR[len(raw)] + raw if len(raw) <= 255 else None
        elif t is int and 0 <= obj <= 255:
            v = _SMALL_INT_BYTES[obj]
        if v is None:
            del buf[:]
            try:
                _encode(buf, obj, mode, none)
            except Exception:
                raise EncodeError(f"cannot encode {type(obj).__name__}") from None
            v = bytes(buf)
        while True:  # hand v to its container; finish every container that is now full
            if not stack:
                return v
            top = stack[-1]
            top[2].append(v)
            nxt = next(top[3], _DONE)
            if nxt is not _DONE:
                obj = nxt
                break
            stack.pop()
            container, head, parts, _, is_map = top
            if is_map:
                entries = sorted(zip(parts[0::2], parts[1::2], strict=True))
                body = b"".join(chain.from_iterable(entries))
            else:
                body = b"".join(parts)
            v = b"\x00" + blake2b(head + body, digest_size=16).digest()
            if type(container) is ErlMap or type(container) is FrozenMap:
                object.__setattr__(container, "_canon", (mode, none, v))


def _deeper(path: list[Any], deep: int) -> int:
    # Only a reference cycle makes a term endlessly deep; look for one at doubling depths.
    if len(set(map(id, path))) < len(path):
        raise _Bad
    return deep * 2


def _encode_other(out: bytearray, obj: Any, mode: int, none: bytes) -> Iterator[Any] | None:
    """Encode the less common types; return an iterator over children, if any."""
    if isinstance(obj, FrozenList):
        if obj:
            out += _TAG_U32.pack(_LIST, len(obj))
            return chain(obj, _NIL_TAIL)
        out.append(_NIL)
    elif isinstance(obj, FrozenMap):
        if not mode & _CANONICAL and len(obj) > 1 and _keys_collide(obj, mode, none):
            raise _Bad
        out += _TAG_U32.pack(_MAP, len(obj))
        return chain.from_iterable(obj.items())
    elif type(obj) is ErlMap:
        out += _TAG_U32.pack(_MAP, len(obj._pairs))
        return chain.from_iterable(obj._pairs)
    elif isinstance(obj, Charlist):
        text = obj.text
        if not text:
            # Lossless: an empty STRING_EXT (erts writes NIL_EXT), to tell it from [].
            out += b"k\x00\x00" if mode == _LOSSLESS else b"j"
            return None
        if mode & _CANONICAL:
            pass
        elif len(text) < 65536:
            try:
                raw = text.encode("latin-1")
            except UnicodeEncodeError:
                pass
            else:
                out += _TAG_U16.pack(_STRING, len(raw))
                out += raw
                return None
        if mode == _LOSSLESS:
            # A list whose first element is a SMALL_BIG_EXT that fits in a small integer:
            # erts never writes that, so the peer knows this list is a Charlist.
            first = ord(text[0])
            out += _TAG_U32.pack(_LIST, len(text))
            out += _TAG_U8U8.pack(_SMALL_BIG, 3, 0) + first.to_bytes(3, "little")
            return chain(map(ord, text[1:]), _NIL_TAIL)
        out += _TAG_U32.pack(_LIST, len(text))
        return chain(map(ord, text), _NIL_TAIL)
    elif isinstance(obj, ImproperList):
        out += _TAG_U32.pack(_LIST, len(obj.items))
        return chain(obj.items, (obj.tail,))
    elif isinstance(obj, BitString):
        out += _TAG_U32U8.pack(_BIT_BINARY, len(obj.data), obj.bits)
        out += obj.data
    elif isinstance(obj, Port):
        if obj.id <= _U32_MAX:
            out.append(_NEW_PORT)
            _put_atom(out, obj.node)
            out += _U32x2.pack(obj.id, obj.creation)
        else:
            out.append(_V4_PORT)
            _put_atom(out, obj.node)
            out += _U64U32.pack(obj.id, obj.creation)
    elif isinstance(obj, Export):
        out.append(_EXPORT)
        _put_atom(out, obj.module)
        _put_atom(out, obj.function)
        out += _SMALL_INT_BYTES[obj.arity]
    elif isinstance(obj, Fun):
        out += obj.data
    elif type(obj) is Ref:
        n = len(obj.ids)
        if not 1 <= n <= _MAX_REF_WORDS:
            raise _Bad
        out += _TAG_U16.pack(_NEWER_REFERENCE, n)
        _put_atom(out, obj.node)
        out += _U32.pack(obj.creation)
        out += _REF_WORDS[n].pack(*obj.ids)
    # Subclasses of the built-in types (IntEnum, StrEnum, namedtuple, ...) encode as their
    # base type: hand a plain copy back to the main loop.
    elif isinstance(obj, int):
        return iter((int.__int__(obj),))
    elif isinstance(obj, float):
        return iter((float.__float__(obj),))
    elif isinstance(obj, str):
        return iter((str.__str__(obj),))
    elif isinstance(obj, tuple):
        return iter((tuple(obj),))
    elif isinstance(obj, list):
        return iter((list(obj),))
    elif isinstance(obj, dict):
        return iter((dict(obj),))
    elif isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        if mode & _LOSSLESS:  # as the main loop writes bytes: they arrive as bytes
            out += _TAG_U32U8.pack(_BIT_BINARY, len(raw), 8 if raw else 0)
        else:
            out += _TAG_U32.pack(_BINARY, len(raw))
        out += raw
    else:
        raise _Bad
    return None


def _put_atom(out: bytearray, atom: Atom) -> None:
    if type(atom) is not Atom:
        raise _Bad
    raw = atom.encode()
    n = len(raw)
    if n <= 255:
        out += _ATOM_HDR[n]
    elif len(atom) <= _MAX_ATOM_CHARS:
        out += _TAG_U16.pack(_ATOM_UTF8, n)
    else:
        raise _Bad
    out += raw


def _put_big(out: bytearray, value: int) -> None:
    sign = 0
    if value < 0:
        sign = 1
        value = -value
    n = (value.bit_length() + 7) >> 3
    if n <= 255:
        out += _TAG_U8U8.pack(_SMALL_BIG, n, sign)
    else:
        out += _TAG_U32U8.pack(_LARGE_BIG, n, sign)
    out += value.to_bytes(n, "little")


# Error reporting: a slow walk in the encoder's order that finds the first bad leaf (or a
# cycle) and its path. It runs only after the fast encoder failed (or went very deep).


def _leaf_problem(obj: Any, mode: int, none: bytes) -> str | None:
    t = type(obj)
    if t is Atom:
        return _atom_problem(obj)
    if t is bool or obj is None or isinstance(obj, BitString | Export | Fun | Charlist):
        return None
    if isinstance(obj, int):
        return "integer too large" if obj.bit_length() > 8 * _U32_MAX else None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else f"{obj!r} has no Erlang float form"
    if isinstance(obj, str):
        try:
            obj.encode()
        except UnicodeEncodeError:
            return "str is not valid Unicode (lone surrogate?)"
        return _length_problem(len(obj))
    if isinstance(obj, bytes | bytearray | memoryview):
        return _length_problem(len(bytes(obj)))
    if isinstance(obj, dict | FrozenMap) and len(obj) > 1 and _keys_collide(obj, mode, none):
        return "map keys that are one Erlang term (like 'a' and b'a', or None and undefined)"
    if isinstance(obj, tuple | list | dict | FrozenMap | ErlMap | ImproperList):
        return _length_problem(len(obj.items) if isinstance(obj, ImproperList) else len(obj))
    if t is Pid:
        return _atom_problem(obj.node)
    if t is Ref:
        if not 1 <= len(obj.ids) <= _MAX_REF_WORDS:
            return f"reference with {len(obj.ids)} words (1..{_MAX_REF_WORDS} allowed)"
        if not 0 <= obj.creation <= _U32_MAX:
            return "reference creation out of range"
        return _atom_problem(obj.node)
    if t is Port:
        return _atom_problem(obj.node)
    if isinstance(obj, set | frozenset):
        return f"cannot encode {t.__name__}: sets have no ETF form (send a list or a map)"
    return f"cannot encode an object of type {t.__module__}.{t.__qualname__}"


def _atom_problem(atom: Any) -> str | None:
    if type(atom) is not Atom:
        return f"node name must be an Atom, not {type(atom).__name__}"
    if len(atom) > _MAX_ATOM_CHARS:
        return f"atom longer than {_MAX_ATOM_CHARS} characters"
    try:
        atom.encode()
    except UnicodeEncodeError:
        return "atom is not valid Unicode (lone surrogate?)"
    return None


def _length_problem(n: int) -> str | None:
    return "too long for ETF (2**32 elements or more)" if n > _U32_MAX else None


def _children(obj: Any) -> Iterator[tuple[str, Any]] | None:
    if isinstance(obj, tuple | list):
        return ((f"[{i}]", x) for i, x in enumerate(obj))
    if type(obj) is ErlMap:
        return chain.from_iterable(
            ((f"<key {_short(k)}>", k), (f"[{_short(k)}]", v)) for k, v in obj.pairs
        )
    if isinstance(obj, dict | FrozenMap):
        return chain.from_iterable(
            ((f"<key {_short(k)}>", k), (f"[{_short(k)}]", v)) for k, v in obj.items()
        )
    if isinstance(obj, ImproperList):
        return chain(((f"[{i}]", x) for i, x in enumerate(obj.items)), ((".tail", obj.tail),))
    return None


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a deep key (an ErlMap's keys can be): Python's repr recurses
        text = f"<deep {type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _find_problem(term: Any, mode: int, none: bytes) -> tuple[str, str] | None:
    stack: list[Iterator[tuple[str, Any]]] = [iter((("", term),))]
    path = ["term"]
    ids: list[int] = [0]
    on_path: set[int] = set()
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            path.pop()
            on_path.discard(ids.pop())
            continue
        label, obj = item
        reason = _leaf_problem(obj, mode, none)
        if reason is not None:
            return "".join(path) + label, reason
        children = _children(obj)
        if children is not None:
            if id(obj) in on_path:
                return "".join(path) + label, "cyclic reference (a container contains itself)"
            on_path.add(id(obj))
            ids.append(id(obj))
            path.append(label)
            stack.append(children)
    return None


# ------------------------------------------------------------------------- decoding

# Frame kinds of the decoder's explicit stack (written as literals in the loop).
_ROOT: Final = 0
_TUPLE_F: Final = 1
_LIST_F: Final = 2
_MAP_F: Final = 3
_NEW_FUN_F: Final = 4
_OLD_FUN_F: Final = 5
_CHARLIST_F: Final = 7  # a list marked as a Charlist by a lossless encoder

# A map with more pairs than this checks how its keys' hashes collide before it becomes a
# dict; a smaller one costs at most this many comparisons per key in any case.
_SMALL_MAP: Final = 32
# More keys than this sharing one hash make the map an ErlMap (a dict would be quadratic).
_MAX_SHARED_HASH: Final = 16

_MISS: Final = object()


def _seeds(options: CodecOptions) -> tuple[dict[bytes, Any], dict[bytes, Any]]:
    # The atoms that decode to Python constants, per table (UTF-8 tags, Latin-1 tags).
    utf8: dict[bytes, Any] = {b"true": True, b"false": False}
    latin = dict(utf8)
    if options.atom_to_none and not options.lossless:
        utf8[options.none_atom.encode()] = None
        try:
            latin[options.none_atom.encode("latin-1")] = None
        except UnicodeEncodeError:
            pass
    return utf8, latin


_DEFAULT_SEEDS: Final = _seeds(DEFAULT_OPTIONS)


class AtomCache:
    """Atoms decoded so far, reused by later `decode` calls: give each connection one.

    Decoding an atom the cache knows costs a dictionary lookup instead of UTF-8 decoding
    and a new `Atom`. The cache holds at most `max_size` atoms (it starts over when full),
    so a peer cannot grow it without bound; atoms found in it do not count against a
    call's `max_atoms`. Use it from one thread at a time (one per connection reader), and
    with one `CodecOptions` (another one makes it start over).

    Examples:
        >>> cache = AtomCache()
        >>> decode(encode(Atom("ok")), atom_cache=cache), len(cache)
        (Atom('ok'), 1)
    """

    __slots__ = ("_latin", "_options", "_seed", "_utf8", "max_size")

    def __init__(self, max_size: int = 8192) -> None:
        self.max_size = max_size
        self._options: CodecOptions = DEFAULT_OPTIONS
        self._seed = _DEFAULT_SEEDS
        self._utf8: dict[bytes, Any] = dict(_DEFAULT_SEEDS[0])
        self._latin: dict[bytes, Any] = dict(_DEFAULT_SEEDS[1])

    def __len__(self) -> int:
        return len(self._utf8) + len(self._latin) - len(self._seed[0]) - len(self._seed[1])

    def clear(self) -> None:
        """Forget every cached atom."""
        for table, seed in zip((self._utf8, self._latin), self._seed, strict=True):
            table.clear()
            table.update(seed)

    def _use(self, options: CodecOptions) -> None:
        if options is not self._options:
            self._options = options
            seed = _seeds(options)
            if seed != self._seed:
                self._seed = seed
                self.clear()


class _Atoms:
    """One decode call's context: the atom tables (enforcing `max_atoms`) and options."""

    __slots__ = ("as_str", "cache", "latin", "limit", "lossless", "mode", "new", "none", "utf8")

    def __init__(self, limit: int | None, cache: AtomCache | None, options: CodecOptions) -> None:
        if cache is None:
            cache = AtomCache(max_size=1 << 62)  # private to this call: never starts over
        cache._use(options)
        self.cache = cache
        self.utf8 = cache._utf8
        self.latin = cache._latin
        self.limit = limit
        self.new = 0
        self.lossless = options.lossless
        self.as_str = options.lossless or options.binaries == "str"
        self.mode = options._mode
        self.none = options._none_bytes

    def make(self, raw: bytes, latin: bool, pos: int) -> Any:
        table = self.latin if latin else self.utf8
        value = table.get(raw, _MISS)
        if value is not _MISS:
            return value
        try:
            text = raw.decode("latin-1" if latin else "utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"atom is not valid UTF-8 (offset {pos})") from None
        if len(text) > _MAX_ATOM_CHARS:
            raise DecodeError(f"atom longer than {_MAX_ATOM_CHARS} characters (offset {pos})")
        self.new += 1
        if self.limit is not None and self.new > self.limit:
            raise DecodeError(f"more than {self.limit} distinct atoms in one term")
        if len(table) >= self.cache.max_size:
            # In place: the decode loop holds a reference to this dict.
            table.clear()
            table.update(self.cache._seed[1 if latin else 0])
        value = Atom(text)
        table[raw] = value
        return value

    def read(self, data: bytes, pos: int) -> tuple[Atom, int]:
        """Read an atom term at `pos` (for pid/ref/port nodes and export fields)."""
        start, end, latin = _atom_span(data, pos)
        value = self.make(data[start:end], latin, pos)
        if type(value) is not Atom:  # true, false, or the none atom: here an atom
            value = Atom(data[start:end].decode("latin-1" if latin else "utf-8"))
        return value, end


def decode(
    data: bytes | bytearray | memoryview,
    *,
    options: CodecOptions = DEFAULT_OPTIONS,
    max_depth: int | None = None,
    max_terms: int | None = None,
    max_atoms: int | None = None,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    atom_cache: AtomCache | None = None,
) -> Any:
    """Decode one complete term (version byte 131 first); trailing bytes are an error.

    `options` maps terms to Python values (see `CodecOptions`). Limits, each breach a
    `DecodeError`: `max_depth` bounds the nesting of containers (tuples, lists, maps,
    funs; a list's tail does not nest: `[1 | [2 | []]]` is depth 1), for terms about to be
    hashed or compared (`CONTROL_MAX_DEPTH` for control messages); `max_terms` bounds the
    number of elements of all containers (the default bounds only compressed terms, see
    `TERMS_PER_COMPRESSED_BYTE`); `max_atoms` bounds the distinct atoms this call may
    create (default: no bound); `max_uncompressed` bounds the inflated size of a compressed
    term. `atom_cache` reuses atoms decoded by earlier calls (see `AtomCache`).

    Decoding takes time and memory linear in the input (at most ~70 bytes of Python objects
    per input byte, uncompressed), whatever the input.

    Examples:
        >>> from beamlet.distribution.etf import decode, encode
        >>> decode(b"\\x83h\\x02w\\x02oka\\x01")
        (Atom('ok'), 1)
        >>> decode(encode([1, "two", b"three"]))  # str and bytes both travel as binaries
        [1, b'two', b'three']
    """
    data = _as_bytes(data)
    term, end = decode_prefix(
        data,
        0,
        options=options,
        max_depth=max_depth,
        max_terms=max_terms,
        max_atoms=max_atoms,
        max_uncompressed=max_uncompressed,
        atom_cache=atom_cache,
    )
    if end != len(data):
        raise DecodeError(f"trailing bytes after the term (offset {end}, {len(data) - end} left)")
    return term


def decode_prefix(
    data: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    options: CodecOptions = DEFAULT_OPTIONS,
    max_depth: int | None = None,
    max_terms: int | None = None,
    max_atoms: int | None = None,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    atom_cache: AtomCache | None = None,
) -> tuple[Any, int]:
    """Decode the versioned term at `offset`; return it and the offset just after it.

    For buffers holding several terms, such as a distribution frame (control message,
    then payload). Options and limits as in `decode`.

    Examples:
        >>> buf = encode(1) + encode(Atom("x"))
        >>> t1, off = decode_prefix(buf); t2, end = decode_prefix(buf, off)
        >>> t1, t2, end == len(buf)
        (1, Atom('x'), True)
    """
    data, atoms, depth = _start(data, offset, options, max_depth, max_atoms, atom_cache)
    if offset + 1 >= len(data):
        raise DecodeError(f"truncated input at offset {offset}")
    if data[offset] != VERSION:
        raise DecodeError(f"bad version byte {data[offset]} at offset {offset} (want 131)")
    if data[offset + 1] == _COMPRESSED:
        return _decode_compressed(data, offset + 1, atoms, max_uncompressed, depth, max_terms)
    terms = _MAX_INDEX if max_terms is None else max_terms
    return _decode_body(data, offset + 1, atoms, depth, terms)


def decode_body_prefix(
    data: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    options: CodecOptions = DEFAULT_OPTIONS,
    max_depth: int | None = None,
    max_terms: int | None = None,
    max_atoms: int | None = None,
    atom_cache: AtomCache | None = None,
) -> tuple[Any, int]:
    """Like `decode_prefix` for a term without the version byte (see `encode_body`).

    Examples:
        >>> decode_body_prefix(encode_body([1]))
        ([1], 8)
    """
    data, atoms, depth = _start(data, offset, options, max_depth, max_atoms, atom_cache)
    return _decode_body(data, offset, atoms, depth, _MAX_INDEX if max_terms is None else max_terms)


_MAX_INDEX: Final = 1 << 62


def _start(
    data: bytes | bytearray | memoryview,
    offset: int,
    options: CodecOptions,
    max_depth: int | None,
    max_atoms: int | None,
    atom_cache: AtomCache | None,
) -> tuple[bytes, _Atoms, int]:
    """The set-up of a decode call: the input as bytes, its atoms, its depth bound."""
    data = _as_bytes(data)
    if offset < 0:
        raise ValueError("offset must be >= 0")
    return (
        data,
        _Atoms(max_atoms, atom_cache, options),
        _MAX_INDEX if max_depth is None else max_depth,
    )


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected bytes, not {type(data).__name__}")


def _decode_compressed(
    data: bytes,
    pos: int,
    atoms: _Atoms,
    max_uncompressed: int,
    max_depth: int,
    max_terms: int | None,
) -> tuple[Any, int]:
    if pos + 5 > len(data):
        raise DecodeError(f"truncated compressed term at offset {pos}")
    size = _U32.unpack_from(data, pos + 1)[0]
    if size > max_uncompressed:
        raise DecodeError(f"compressed term declares {size} bytes (limit {max_uncompressed})")
    stream = data[pos + 5 :]
    inflater = zlib.decompressobj()
    try:
        # max_length bounds memory whatever the stream claims; one extra byte detects a
        # stream that inflates to more than declared.
        body = inflater.decompress(stream, size + 1)
        if not inflater.eof and len(body) <= size:
            body += inflater.decompress(inflater.unconsumed_tail, size + 1 - len(body))
    except zlib.error as exc:
        raise DecodeError(f"bad zlib data in compressed term: {exc}") from None
    if not inflater.eof:
        raise DecodeError("compressed term is truncated or larger than declared")
    if len(body) != size:
        raise DecodeError(f"compressed term inflates to {len(body)} bytes, declared {size}")
    used = len(stream) - len(inflater.unused_data)
    if max_terms is None:
        max_terms = TERMS_PER_COMPRESSED_TERM + TERMS_PER_COMPRESSED_BYTE * used
    term, end = _decode_body(body, 0, atoms, max_depth, max_terms)
    if end != size:
        raise DecodeError("compressed term holds trailing bytes")
    return term, pos + 5 + used


def _decode_body(
    data: bytes, pos: int, atoms: _Atoms, max_depth: int, max_terms: int
) -> tuple[Any, int]:
    try:
        return _decode_loop(data, pos, atoms, max_depth, max_terms)
    except DecodeError:
        raise
    except (IndexError, struct.error):
        raise DecodeError("truncated input") from None
    except RecursionError:  # pragma: no cover - nothing in the decoder recurses
        raise DecodeError("term too deep") from None
    except Exception as exc:  # bounded inputs only: every failure must be a DecodeError
        raise DecodeError(f"malformed term: {type(exc).__name__}: {exc}"[:200]) from None


def _decode_loop(
    data: bytes, pos: int, atoms: _Atoms, max_depth: int, budget: int
) -> tuple[Any, int]:
    # The frame being filled lives in locals (kind, items, remaining, ...); enclosing frames
    # wait on `stack`. Tags are literals and hot callables locals: this is the hot path.
    # `frozen` > 0 inside a map key (the nesting depth): lists and maps are built frozen.
    # `budget` counts down the container elements still allowed (max_terms).
    size = len(data)
    utf8 = atoms.utf8
    as_str = atoms.as_str
    lossless = atoms.lossless
    u32 = _U32.unpack_from
    i32 = _I32.unpack_from
    f64 = _F64.unpack_from
    u32x3 = _U32x3.unpack_from
    u32x4 = _U32x4.unpack_from
    new_pid = Pid._local  # skips validation: every field is a u32 read off the wire
    new_ref = Ref._local  # the same, for the usual 3-word reference
    scalars = _SCALARS
    atom_ = Atom
    miss = _MISS
    stack: list[tuple[int, list[Any], int, int, int]] = []
    kind = _ROOT
    items: list[Any] = []
    append = items.append
    remaining = 1
    frozen = 0
    start = 0
    # Maps (their `items` lists, by id) that must become ErlMaps: a key nests too deep.
    forced: set[int] = set()
    keystr = False  # a STRING_EXT was read inside a map key: a key may lie (see _close_map)
    v: Any
    while True:
        tag = data[pos]
        if tag == 119:  # SMALL_ATOM_UTF8_EXT
            end = pos + 2 + data[pos + 1]
            if end > size:
                raise DecodeError(f"truncated atom at offset {pos}")
            raw = data[pos + 2 : end]
            v = utf8.get(raw, miss)
            if v is miss:
                v = atoms.make(raw, False, pos)
            pos = end
        elif tag == 97:  # SMALL_INTEGER_EXT
            v = data[pos + 1]
            pos += 2
        elif tag in {104, 105}:  # SMALL_TUPLE_EXT, LARGE_TUPLE_EXT
            if tag == 104:
                n = data[pos + 1]
                pos += 2
            else:
                n = u32(data, pos + 1)[0]
                pos += 5
            if n:
                budget -= n
                if n > size - pos or budget < 0:
                    raise DecodeError(_size_message("tuple arity", n, pos, budget))
                stack.append((kind, items, remaining, frozen, start))
                if len(stack) > max_depth:
                    raise DecodeError(f"term nested deeper than {max_depth} (offset {pos})")
                if frozen:
                    frozen += 1
                    if frozen == MAX_KEY_DEPTH + 1:
                        _force_erlmaps(stack, forced)
                elif kind == 3 and not len(items) & 1:  # a key of the map being read
                    frozen = 1
                kind = 1
                items = []
                append = items.append
                remaining = n
                continue
            v = ()
        elif tag == 109:  # BINARY_EXT
            end = pos + 5 + u32(data, pos + 1)[0]
            if end > size:
                raise DecodeError(f"binary exceeds the input (offset {pos})")
            v = data[pos + 5 : end]
            if as_str:
                try:
                    v = v.decode()
                except UnicodeDecodeError:
                    pass
            pos = end
        elif tag == 98:  # INTEGER_EXT
            v = i32(data, pos + 1)[0]
            pos += 5
        elif tag == 106:  # NIL_EXT
            pos += 1
            v = _EMPTY_FROZEN_LIST if frozen or (kind == 3 and not len(items) & 1) else []
        elif tag == 108:  # LIST_EXT
            n = u32(data, pos + 1)[0]
            pos += 5
            budget -= n
            if n >= size - pos or budget < 0:  # n elements and a tail, one byte each at least
                raise DecodeError(_size_message("list length", n, pos, budget))
            if kind == 2 and remaining == 1:
                # The tail of the list being read is a list: the same list goes on (one
                # frame, no copy: `[1 | [2 | ...]]` nested a million times is linear).
                remaining = n + 1
                continue
            stack.append((kind, items, remaining, frozen, start))
            if len(stack) > max_depth:
                raise DecodeError(f"term nested deeper than {max_depth} (offset {pos})")
            if frozen:
                frozen += 1
                if frozen == MAX_KEY_DEPTH + 1:
                    _force_erlmaps(stack, forced)
            elif kind == 3 and not len(items) & 1:
                frozen = 1
            kind = 7 if lossless and data[pos] == 110 and data[pos + 1] == 3 else 2
            items = []
            append = items.append
            remaining = n + 1
            continue
        elif tag == 116:  # MAP_EXT
            n = u32(data, pos + 1)[0]
            pos += 5
            key = frozen + 1 if frozen else int(kind == 3 and not len(items) & 1)
            if n:
                budget -= 2 * n
                if n > (size - pos) >> 1 or budget < 0:
                    raise DecodeError(_size_message("map size", n, pos, budget))
                stack.append((kind, items, remaining, frozen, start))
                if len(stack) > max_depth:
                    raise DecodeError(f"term nested deeper than {max_depth} (offset {pos})")
                if key == MAX_KEY_DEPTH + 1:
                    _force_erlmaps(stack, forced)
                frozen = key
                kind = 3
                items = []
                append = items.append
                remaining = 2 * n
                continue
            v = FrozenMap() if key else {}
        elif tag == 70:  # NEW_FLOAT_EXT
            v = f64(data, pos + 1)[0]
            if v - v != 0.0:
                raise DecodeError(f"non-finite float at offset {pos}")
            pos += 9
        elif tag == 88 and data[pos + 1] == 119:  # NEW_PID_EXT, SMALL_ATOM_UTF8 node
            end = pos + 3 + data[pos + 2]
            if end + 12 > size:
                raise DecodeError(f"truncated pid at offset {pos}")
            node = utf8.get(data[pos + 3 : end])
            if type(node) is not atom_:
                node = atoms.read(data, pos + 1)[0]
            id_, serial, creation = u32x3(data, end)
            v = new_pid(node, id_, serial, creation, None)
            pos = end + 12
        elif tag == 90 and data[pos + 2] == 3 and data[pos + 1] == 0 and data[pos + 3] == 119:
            # NEWER_REFERENCE_EXT with 3 words and a SMALL_ATOM_UTF8 node
            end = pos + 5 + data[pos + 4]
            if end + 16 > size:
                raise DecodeError(f"truncated reference at offset {pos}")
            node = utf8.get(data[pos + 5 : end])
            if type(node) is not atom_:
                node = atoms.read(data, pos + 3)[0]
            creation, w0, w1, w2 = u32x4(data, end)
            v = new_ref(node, w0 | w1 << 32 | w2 << 64, creation)
            pos = end + 16
        elif tag == 107:  # STRING_EXT
            end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
            if end > size:
                raise DecodeError(f"string exceeds the input (offset {pos})")
            if end > pos + 3:
                v = _freeze(Charlist, text=data[pos + 3 : end].decode("latin-1"))
                if frozen or (kind == 3 and not len(items) & 1):
                    keystr = True
            elif lossless:
                v = _EMPTY_CHARLIST
            else:
                v = _EMPTY_FROZEN_LIST if frozen or (kind == 3 and not len(items) & 1) else []
            pos = end
        elif tag in {112, 117}:  # NEW_FUN_EXT, FUN_EXT
            # Decode the fun's fields to validate it and find its end; keep the raw bytes.
            if tag == 112:
                total = u32(data, pos + 1)[0]
                if total < 29 or pos + 1 + total > size:
                    raise DecodeError(f"bad NEW_FUN_EXT size {total} (offset {pos})")
                n = u32(data, pos + 26)[0]
                fields = pos + 30
            else:
                n = u32(data, pos + 1)[0]
                fields = pos + 5
            budget -= n
            if n > size - fields or budget < 0:
                raise DecodeError(_size_message("fun free variables", n, pos, budget))
            stack.append((kind, items, remaining, frozen, start))
            if len(stack) > max_depth:
                raise DecodeError(f"term nested deeper than {max_depth} (offset {pos})")
            kind = _NEW_FUN_F if tag == 112 else _OLD_FUN_F
            start = pos
            items = []
            append = items.append
            remaining = 4 + n
            pos = fields
            continue
        else:
            handler = scalars[tag]
            if handler is None:
                raise DecodeError(_bad_tag_message(tag, pos))
            v, pos = handler(data, pos, atoms)

        # Emit v into the current frame; close every frame that is now complete.
        append(v)
        remaining -= 1
        while not remaining:
            if kind == 1:
                v = tuple(items)
            elif kind == 2:
                v = _close_list(items, frozen)
            elif kind == 3:
                if len(items) <= 2 * _SMALL_MAP and not keystr and not forced:
                    it = iter(items)
                    v = dict(zip(it, it, strict=True))
                    if len(v) * 2 != len(items):
                        v = _close_map(items, frozen, atoms, False, False)
                    elif frozen:
                        v = FrozenMap(v)
                else:
                    force = id(items) in forced
                    forced.discard(id(items))
                    v = _close_map(items, frozen, atoms, force, keystr)
            elif kind == _ROOT:
                return items[0], pos
            elif kind == 7:
                v = _close_charlist(items, frozen)
            else:
                v = _close_fun(data, kind, start, pos, items)
            kind, items, remaining, frozen, start = stack.pop()
            append = items.append
            append(v)
            remaining -= 1


def _size_message(what: str, n: int, pos: int, budget: int) -> str:
    if budget < 0:
        return f"{what} {n} exceeds the term's max_terms (offset {pos})"
    return f"{what} {n} exceeds the input (offset {pos})"


def _force_erlmaps(stack: list[tuple[int, list[Any], int, int, int]], forced: set[int]) -> None:
    # A map key just nested past MAX_KEY_DEPTH: every map from here up to the map that owns
    # the key becomes an ErlMap, which never hashes its keys (hashing would recurse in C).
    for kind, items, _, frozen, _ in reversed(stack):
        if kind == _MAP_F:
            if id(items) in forced:
                return  # marked by an earlier deep branch, and so is everything above
            forced.add(id(items))
            if not frozen:
                return


def _close_map(items: list[Any], frozen: int, atoms: _Atoms, force: bool, lies: bool) -> Any:
    """Build a map the slow way: a dict if one can hold it, else an ErlMap; or refuse it.

    Erlang's `binary_to_term` refuses a map holding one term twice; so do we. Python tells
    such keys apart only in a lying encoding with a charlist in a key (`[97]` and `"a"`,
    `lies`: a STRING_EXT was read in a key); it merges keys that Erlang tells apart (1 and
    1.0). Those, keys too deep to hash (`force`) and keys flooding one hash give an ErlMap.
    """
    keys = items[0::2]
    n = len(keys)
    if not force and n > _SMALL_MAP:
        hashes = list(map(hash, keys))
        if len(set(hashes)) < n and max(Counter(hashes).values()) > _MAX_SHARED_HASH:
            force = True
    d: dict[Any, Any] | None = None
    if not force:
        it = iter(items)
        d = dict(zip(it, it, strict=True))
        if len(d) == n and not lies:
            return FrozenMap(d) if frozen else d
    canon = [_canon(k, atoms.mode, atoms.none) for k in keys]
    if len(set(canon)) != n:
        raise DecodeError("map has duplicate keys")
    if d is not None and len(d) == n:
        return FrozenMap(d) if frozen else d
    return _erlmap(tuple(zip(keys, items[1::2], strict=True)), canon, atoms.mode)


def _close_charlist(items: list[Any], frozen: int) -> Any:
    # A lossless encoder's Charlist: code points, the first as a SMALL_BIG_EXT.
    if type(items[-1]) in (list, FrozenList) and not items[-1]:
        codes = items[:-1]
        if all(type(c) is int and 0 <= c <= 0x10FFFF for c in codes):
            return _freeze(Charlist, text="".join(map(chr, codes)))
    return _close_list(items, frozen)


def _close_list(items: list[Any], frozen: int) -> Any:
    tail = items.pop()
    tt = type(tail)
    if tt is list or tt is FrozenList:
        items.extend(tail)
    elif tt is Charlist:
        items.extend(map(ord, tail.text))
    elif not items:
        return tail  # LIST_EXT of length 0: just the tail
    elif tt is ImproperList:
        return ImproperList(tuple(items) + tail.items, tail.tail)
    else:
        return _freeze(ImproperList, items=tuple(items), tail=tail)
    return FrozenList(items) if frozen else items


def _close_fun(data: bytes, kind: int, start: int, pos: int, items: list[Any]) -> Fun:
    if kind == _NEW_FUN_F:
        module, old_index, old_uniq, pid = items[:4]
        if pos != start + 1 + _U32.unpack_from(data, start + 1)[0]:
            raise DecodeError(f"NEW_FUN_EXT size does not match its contents (offset {start})")
    else:
        pid, module, old_index, old_uniq = items[:4]
    if (
        type(module) is not Atom
        or type(old_index) is not int
        or type(old_uniq) is not int
        or type(pid) is not Pid
    ):
        raise DecodeError(f"malformed fun at offset {start}")
    return _freeze(Fun, data=data[start:pos])


def _bad_tag_message(tag: int, pos: int) -> str:
    if tag == _ATOM_CACHE_REF:
        return f"ATOM_CACHE_REF at offset {pos}: atom cache is not negotiated"
    if tag == _LOCAL:
        return f"LOCAL_EXT at offset {pos}: private to the VM that produced it"
    if tag == _COMPRESSED:
        return f"compressed term nested inside a term (offset {pos})"
    return f"unknown tag {tag} at offset {pos}"


# Scalar decoders for the less common tags: (data, pos of tag, atoms) -> (value, new pos).


def _atom_span(data: bytes, pos: int) -> tuple[int, int, bool]:
    """(start, end, latin-1?) of the text of the atom term at `pos`."""
    tag = data[pos]
    if tag in (_SMALL_ATOM_UTF8, _SMALL_ATOM):
        n = data[pos + 1]
        start = pos + 2
    elif tag in (_ATOM_UTF8, _ATOM):
        n = _U16.unpack_from(data, pos + 1)[0]
        start = pos + 3
    else:
        raise DecodeError(f"expected an atom at offset {pos}, found tag {tag}")
    end = start + n
    if end > len(data):
        raise DecodeError(f"truncated atom at offset {pos}")
    return start, end, tag in (_SMALL_ATOM, _ATOM)


def _d_atom(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    begin, end, latin = _atom_span(data, pos)
    if data[pos] == _ATOM_UTF8 and atoms.lossless and data[begin:end] == b"undefined":
        return None, end  # a lossless encoder's None (see CodecOptions)
    return atoms.make(data[begin:end], latin, pos), end


def _d_float(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    end = pos + 32
    if end > len(data):
        raise DecodeError(f"truncated FLOAT_EXT at offset {pos}")
    text = data[pos + 1 : end].rstrip(b"\x00")
    try:
        v = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise DecodeError(f"bad FLOAT_EXT text at offset {pos}") from None
    if not math.isfinite(v):
        raise DecodeError(f"non-finite float at offset {pos}")
    return v, end


def _d_big(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    if data[pos] == _SMALL_BIG:
        n = data[pos + 1]
        sign = data[pos + 2]
        begin = pos + 3
    else:
        n, sign = _U32U8.unpack_from(data, pos + 1)
        begin = pos + 6
    end = begin + n
    if end > len(data):
        raise DecodeError(f"bignum of {n} bytes exceeds the input (offset {pos})")
    if sign > 1:
        raise DecodeError(f"bad bignum sign {sign} at offset {pos}")
    v = int.from_bytes(data[begin:end], "little")
    return (-v if sign else v), end


def _d_bit_binary(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    n, bits = _U32U8.unpack_from(data, pos + 1)
    begin = pos + 6
    end = begin + n
    if end > len(data):
        raise DecodeError(f"bitstring of {n} bytes exceeds the input (offset {pos})")
    if (n == 0) != (bits == 0) or bits > 8:
        raise DecodeError(f"bad bit count {bits} for {n} bytes at offset {pos}")
    raw = data[begin:end]
    if bits == 8 or n == 0:
        if atoms.as_str and not atoms.lossless:  # lossless: BIT_BINARY_EXT marks bytes
            try:
                return raw.decode(), end
            except UnicodeDecodeError:
                pass
        return raw, end
    return _freeze(BitString, data=_mask_tail(raw, bits), bits=bits), end


def _d_pid(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    node, p = atoms.read(data, pos + 1)
    if data[pos] == _NEW_PID:
        id_, serial, creation = _U32x3.unpack_from(data, p)
        return Pid(node, id_, serial, creation), p + 12
    id_, serial, creation = _U32x2U8.unpack_from(data, p)
    return Pid(node, id_, serial, creation), p + 9


def _d_port(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    tag = data[pos]
    node, p = atoms.read(data, pos + 1)
    if tag == _NEW_PORT:
        id_, creation = _U32x2.unpack_from(data, p)
        p += 8
    elif tag == _V4_PORT:
        id_, creation = _U64U32.unpack_from(data, p)
        p += 12
    else:
        id_, creation = _U32U8.unpack_from(data, p)
        p += 5
    return _freeze(Port, node=node, id=id_, creation=creation), p


def _d_ref(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    tag = data[pos]
    if tag == _REFERENCE:
        node, p = atoms.read(data, pos + 1)
        id_, creation = _U32U8.unpack_from(data, p)
        return Ref(node, (id_,), creation), p + 5
    n = _U16.unpack_from(data, pos + 1)[0]
    if not 1 <= n <= _MAX_REF_WORDS:
        raise DecodeError(f"reference with {n} words at offset {pos}")
    node, p = atoms.read(data, pos + 3)
    if tag == _NEWER_REFERENCE:
        creation = _U32.unpack_from(data, p)[0]
        p += 4
    else:
        creation = data[p]
        p += 1
    ids = _REF_WORDS[n].unpack_from(data, p)
    return Ref(node, ids, creation), p + 4 * n


def _d_export(data: bytes, pos: int, atoms: _Atoms) -> tuple[Any, int]:
    module, p = atoms.read(data, pos + 1)
    function, p = atoms.read(data, p)
    if data[p] != _SMALL_INTEGER:
        raise DecodeError(f"EXPORT_EXT arity is not a small integer (offset {p})")
    return _freeze(Export, module=module, function=function, arity=data[p + 1]), p + 2


_SCALARS: list[Any] = [None] * 256
for _tag, _fn in (
    (_ATOM_UTF8, _d_atom),
    (_ATOM, _d_atom),
    (_SMALL_ATOM, _d_atom),
    (_FLOAT, _d_float),
    (_SMALL_BIG, _d_big),
    (_LARGE_BIG, _d_big),
    (_BIT_BINARY, _d_bit_binary),
    (_NEW_PID, _d_pid),
    (_PID, _d_pid),
    (_NEW_PORT, _d_port),
    (_V4_PORT, _d_port),
    (_PORT, _d_port),
    (_NEWER_REFERENCE, _d_ref),
    (_NEW_REFERENCE, _d_ref),
    (_REFERENCE, _d_ref),
    (_EXPORT, _d_export),
):
    _SCALARS[_tag] = _fn
del _tag, _fn
