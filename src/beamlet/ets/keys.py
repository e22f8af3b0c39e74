"""Key equality and term order for tables (docs/ets.md, "Keys").

Two relations, as in ETS:

* *exact* equality (Erlang's `=:=`), used by `set`, `bag` and `duplicate_bag` keys and by
  match patterns: `1`, `1.0` and `True` are three different terms. `canon(term)` maps a
  term to a hashable Python value whose `==` is exact term equality; common keys (ints,
  strings, atoms, pids, refs and flat tuples of those) map to themselves, for speed.
* *arithmetic* equality and term order (Erlang's `==` and `<`), used by `ordered_set`
  keys and guard comparisons: `1 == 1.0`, and every number < atom < reference < pid <
  tuple < map < list < binary. `order_key(term)` maps a term to a Python value ordered
  that way.

Python values with no Erlang twin keep their own identity: `True`/`False` order as the
atoms `true`/`false` and `None` as `undefined`, and `str` orders as its UTF-8 binary,
but each stays distinct from the atom or `bytes` it resembles (a tie-break), so a table
never merges two keys that Python code tells apart.
"""

from __future__ import annotations

import math
from typing import Any, Final

from beamlet._core import Atom, ImproperList, Pid, Ref

__all__ = ["SAFE", "canon", "exact_eq", "order_key", "term_lt"]

#: Types whose Python `==` is already exact term equality against every other key type
#: (bool and float are not: `True == 1 == 1.0`).
SAFE: Final[frozenset[type]] = frozenset({int, str, bytes, Atom, Pid, Ref, type(None)})


class _Tag:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_FLOAT: Final = _Tag("float")
_BOOL: Final = _Tag("bool")
_TUPLE: Final = _Tag("tuple")
_LIST: Final = _Tag("list")
_MAP: Final = _Tag("map")
_SETT: Final = _Tag("frozenset")
_IMPROPER: Final = _Tag("improper")


def canon(term: Any) -> Any:
    """A hashable stand-in for `term` whose equality is exact term equality (`=:=`).

    Examples:
        >>> canon(1) == canon(1.0), canon((1, "a")) == canon((1, "a"))
        (False, True)
    """
    t = type(term)
    if t in SAFE:
        return term
    if t is tuple:
        for x in term:
            if type(x) not in SAFE:
                return (_TUPLE, tuple([canon(y) for y in term]))
        return term
    if t is float:
        return (_FLOAT, term)
    if t is bool:
        return (_BOOL, term)
    if t is list:
        return (_LIST, tuple([canon(y) for y in term]))
    if t is dict:
        return (_MAP, frozenset([(canon(k), canon(v)) for k, v in term.items()]))
    if getattr(term, "_erlang_list", False):  # FrozenList, Charlist: lists of the wire
        return (_LIST, tuple([canon(y) for y in term]))
    if isinstance(term, tuple):  # namedtuples (records)
        return (_TUPLE, t, tuple([canon(y) for y in term]))
    if t is frozenset:
        return (_SETT, frozenset([canon(y) for y in term]))
    if t is ImproperList:
        return (_IMPROPER, canon(term.items), canon(term.tail))
    hash(term)  # TypeError for an unhashable object: the caller reports it
    return (t, term)


def exact_eq(a: Any, b: Any) -> bool:
    """Erlang's `=:=`."""
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return False
    if ta in SAFE:
        return bool(a == b)
    return bool(canon(a) == canon(b))


def _atom_key(text: str, tie: int) -> tuple[Any, ...]:
    return (1, text, tie)


def order_key(term: Any) -> Any:
    """A Python value ordered as Erlang orders `term` (numbers compare by value).

    Examples:
        >>> order_key(1) == order_key(1.0), order_key(9) < order_key(Atom("a"))
        (True, True)
    """
    t = type(term)
    if t is int:
        return (0, term)
    if t is float:
        if not math.isfinite(term):
            raise ValueError("a float key must be finite")
        return (0, term)
    if t is Atom:
        return (1, str.__str__(term), 0)
    if t is tuple:
        return (6, len(term), tuple([order_key(x) for x in term]))
    if t is str:
        return (10, term.encode(), 0)
    if t is bytes:
        return (10, term, 1)
    if t is bool:
        return (1, "true" if term else "false", 1)
    if term is None:
        return (1, "undefined", 2)
    if t is Ref:
        return (2, term.sort_key())
    if t is Pid:
        return (5, term.sort_key())
    if t is list or getattr(term, "_erlang_list", False):
        return (8, tuple([order_key(x) for x in term]))
    if t is dict:
        ks = sorted([(order_key(k), k) for k in term], key=lambda kv: kv[0])
        return (
            7,
            len(term),
            tuple([k for k, _ in ks]),
            tuple([order_key(term[k]) for _, k in ks]),
        )
    if isinstance(term, tuple):  # namedtuples are tuples (records)
        return (6, len(term), tuple([order_key(x) for x in term]))
    if t is ImproperList:
        return (8, (*[order_key(x) for x in term.items], (9, order_key(term.tail))))
    if isinstance(term, int | float):  # IntEnum and friends: numbers
        return (0, term)
    # Anything else sorts after every Erlang term, by type name, then by its own order.
    return (11, t.__qualname__, term)


def term_lt(a: Any, b: Any) -> bool:
    """Erlang's `<` (term order)."""
    return bool(order_key(a) < order_key(b))
