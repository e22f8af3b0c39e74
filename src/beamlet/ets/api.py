"""The ETS operations, with OTP's names and semantics (docs/ets.md).

Every function takes the table as its first argument: the `Tid` that `new` returned, or
the table's name (an `Atom`, or a `str` turned into one) for a `named_table`. Misuse
raises `EtsError` (a `BadArgument`, Erlang's `badarg`) naming the argument.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

from beamlet._core import IMMUTABLE_TYPES, Atom, NotInProcess, Pid, isolate
from beamlet._core import current_process as get_current
from beamlet.ets.keys import SAFE, canon, exact_eq, order_key
from beamlet.ets.matchspec import ALL, ALL_VARS, NO_MATCH, WILD, Clause, compile_spec
from beamlet.ets.sorted_keys import new_keys
from beamlet.ets.table import (
    BAG,
    DUPLICATE_BAG,
    END_OF_TABLE,
    ETS_TRANSFER,
    K_BAG,
    K_DBAG,
    K_ORDERED,
    K_SET,
    KINDS,
    ORDERED_SET,
    PRIVATE,
    PROTECTED,
    PUBLIC,
    SET,
    EtsError,
    Mut,
    Table,
    Tables,
    Tid,
    no_access,
    no_table,
    out,
    pid_proc,
    val,
)

# The package's face (`beamlet.ets` re-exports these): the operations and the table
# constants.
__all__ = [
    "BAG",
    "DUPLICATE_BAG",
    "END_OF_TABLE",
    "ETS_TRANSFER",
    "ORDERED_SET",
    "PRIVATE",
    "PROTECTED",
    "PUBLIC",
    "SET",
    "WILD",
    "Continuation",
    "TableInfo",
    "all",
    "delete",
    "delete_all_objects",
    "delete_object",
    "first",
    "foldl",
    "foldr",
    "give_away",
    "info",
    "insert",
    "insert_new",
    "last",
    "lookup",
    "lookup_element",
    "match",
    "match_delete",
    "match_object",
    "member",
    "new",
    "next",
    "prev",
    "rename",
    "select",
    "select_count",
    "select_delete",
    "select_replace",
    "select_reverse",
    "setopts",
    "tab2list",
    "take",
    "update_counter",
    "update_element",
    "whereis",
]

A = TypeVar("A")
TableRef = Tid | Atom | str
TableType = Literal["set", "ordered_set", "bag", "duplicate_bag"]
Access = Literal["public", "protected", "private"]

_MISSING: Final[Any] = object()
_NONE: Final = Atom("none")


# --- finding the table ------------------------------------------------------------------


def _tables_of_caller() -> Tables:
    p = get_current()
    if p is None:
        raise NotInProcess("a table name is resolved on the caller's node: call from a process")
    res = p.node.resources
    if type(res) is not Tables:
        res = p.node.resources = Tables(p.node)
    return res


def _tables(t: Table) -> Tables:
    """The node's tables, for a table of it (its node's resources are a `Tables`)."""
    return cast(Tables, t.node.resources)


def _named(tab: Any, arg: int = 1) -> Table:
    if type(tab) is Tid:
        t = tab._t
        if t is None:
            raise no_table(arg)
        return t
    if type(tab) is str:
        tab = Atom(tab)
    elif type(tab) is not Atom:
        raise EtsError(arg, f"not a table identifier or name: {tab!r}", "type")
    t2 = _tables_of_caller().by_name.get(tab)
    if t2 is None:
        raise no_table(arg)
    return t2


def _tid_of(name: Any) -> Tid:
    """The id of the named table `name` (the fast paths' way to a name)."""
    p = get_current()
    if p is not None and type(name) is Atom:
        try:
            return p.node.resources.by_name[name].tid  # type: ignore[union-attr,no-any-return]
        except (AttributeError, KeyError):
            pass
    return _named(name).tid


def _read(tab: Any) -> Table:
    t = tab._t if type(tab) is Tid else None
    if t is None:
        t = _named(tab)
    if t.reader is not None and t.reader is not get_current():
        raise no_access()
    return t


def _write(tab: Any) -> Table:
    t = tab._t if type(tab) is Tid else None
    if t is None:
        t = _named(tab)
    if t.writer is not None and t.writer is not get_current():
        raise no_access()
    return t


def _okey(key: Any, arg: int) -> Any:
    try:
        return order_key(key)
    except (ValueError, TypeError) as e:
        raise EtsError(arg, f"an ordered_set key must be orderable: {key!r} ({e})") from None


def _ckey(t: Table, key: Any, arg: int = 2) -> Any:
    """The dict key of `key` in `t`."""
    if t.kind == K_ORDERED:
        return _okey(key, arg)
    if type(key) in SAFE:
        return key
    try:
        return canon(key)
    except TypeError:
        raise EtsError(arg, f"a key must be hashable or a list/dict of such: {key!r}") from None


def _check_obj(t: Table, obj: Any, arg: int = 2) -> None:
    if not isinstance(obj, tuple) or getattr(obj, "_erlang_list", False):
        raise EtsError(arg, f"not a tuple: {obj!r}")
    if len(obj) <= t.kp:
        raise EtsError(arg, f"the tuple has fewer than {t.keypos} elements (keypos): {obj!r}")


def _stored(obj: Any) -> Any:
    c = isolate(obj)
    return obj if c is obj else Mut(c)


# --- creating and deleting ----------------------------------------------------------------


def new(
    name: Atom | str,
    *,
    type: TableType | Atom = "set",
    access: Access | Atom = "protected",
    named_table: bool = False,
    keypos: int = 1,
    heir: Pid | None = None,
    heir_data: Any = None,
    read_concurrency: bool = False,
    write_concurrency: bool | Literal["auto"] = False,
    decentralized_counters: bool = False,
    compressed: bool = False,
) -> Any:
    """Create a table owned by the calling process (`ets:new/2`). Returns its `Tid`, or
    its name (an `Atom`) with `named_table=True`. The concurrency and compression
    options are accepted and reported by `info`; they change nothing here (every call is
    atomic on the node's thread).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("users", type="ordered_set", access="public")
        >>> ets.insert(tid, [(2, "bob"), (1, "ann")])
        True
        >>> ets.tab2list(tid)
        [(1, 'ann'), (2, 'bob')]
        >>> ets.new("config", named_table=True)  # the name is the handle
        Atom('config')
        >>> ets.lookup("config", "missing")
        []
    """
    p = get_current()
    if p is None:
        raise NotInProcess("ets.new must be called from a process: the process owns the table")
    if builtins_type(name) is str:
        name = Atom(name)
    if builtins_type(name) is not Atom:
        raise EtsError(1, f"a table name is an Atom (or str), not {name!r}")
    kind = _option(type, KINDS, "type")
    acc = _option(access, (PUBLIC, PROTECTED, PRIVATE), "access")
    if builtins_type(keypos) is not int or keypos < 1:
        raise EtsError(2, f"invalid options: keypos must be an int >= 1, not {keypos!r}")
    if write_concurrency not in (True, False, "auto") or read_concurrency not in (True, False):
        raise EtsError(2, "invalid options: read/write_concurrency")
    tables = _tables_of_caller()
    heir_proc = None
    if heir is not None and heir != _NONE:
        heir_proc = pid_proc(p.node, heir, 2)
    if named_table and name in tables.by_name:
        raise EtsError(2, f"invalid options: a table named {name} already exists", "name")
    t = Table()
    tables.counter += 1
    t.tid = Tid(t, tables.counter)
    t.name = name
    t.named = bool(named_table)
    t.kind = KINDS.index(kind)
    t.keypos = keypos
    t.kp = keypos - 1
    t.access = acc
    t.data = {}
    t.has_mut = False
    t.set_owner(p)
    t.heir = heir_proc
    t.heir_data = isolate(heir_data) if heir_proc is not None else None
    t.keys = new_keys() if t.kind == K_ORDERED else None
    t.size = 0
    t.node = p.node
    t.it = None
    t.read_concurrency = read_concurrency
    t.write_concurrency = write_concurrency
    t.decentralized_counters = decentralized_counters
    t.compressed = compressed
    tables.add(t)
    return name if t.named else t.tid


builtins_type = type


def _option(v: Any, allowed: tuple[Atom, ...], what: str) -> Atom:
    for a in allowed:
        if v == a or (builtins_type(v) is str and str.__eq__(v, a)):
            return a
    raise EtsError(2, f"invalid options: {what} must be one of {[str(a) for a in allowed]}")


def delete(tab: TableRef, key: Any = _MISSING) -> bool:
    """`delete(tab)` deletes the table (owner only, unless public); `delete(tab, key)`
    deletes the objects with `key`. Returns True.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.insert(tid, [("k", 1), ("j", 2)])
        True
        >>> ets.delete(tid, "k"), ets.tab2list(tid)
        (True, [('j', 2)])
        >>> ets.delete(tid), ets.info(tid)  # the table itself
        (True, None)
    """
    t = _write(tab)
    if key is _MISSING:
        _tables(t).drop(t)
        return True
    ck = _ckey(t, key)
    if t.kind == K_SET:
        t.data.pop(ck, None)
    elif t.kind == K_ORDERED:
        if t.data.pop(ck, _MISSING) is not _MISSING:
            t.keys.remove(ck)
    else:
        lst = t.data.pop(ck, None)
        if lst is not None:
            t.size -= len(lst)
    return True


def delete_all_objects(tab: TableRef) -> bool:
    """Empty the table.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.insert(tid, [("a", 1), ("b", 2)])
        True
        >>> ets.delete_all_objects(tid), ets.info(tid, "size")
        (True, 0)
    """
    t = _write(tab)
    t.data.clear()  # the same dict: the id's fast paths hold it
    t.size = 0
    if t.has_mut:
        t.has_mut = False
        t.refresh_fast()
    t.it = None
    if t.keys is not None:
        t.keys.clear()
    return True


def delete_object(tab: TableRef, obj: tuple[Any, ...]) -> bool:
    """Delete exactly `obj` (every copy of it in a duplicate_bag).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="bag")
        >>> ets.insert(tid, [("k", 1), ("k", 2)])
        True
        >>> ets.delete_object(tid, ("k", 1)), ets.lookup(tid, "k")
        (True, [('k', 2)])
    """
    t = _write(tab)
    _check_obj(t, obj)
    ck = _ckey(t, obj[t.kp])
    cur = t.data.get(ck)
    if cur is None:
        return True
    if t.kind <= K_ORDERED:
        if exact_eq(val(cur), obj):
            del t.data[ck]
            if t.kind == K_ORDERED:
                t.keys.remove(ck)
        return True
    keep = [s for s in cur if not exact_eq(val(s), obj)]
    t.size -= len(cur) - len(keep)
    if keep:
        t.data[ck] = keep
    else:
        del t.data[ck]
    return True


# --- writing -----------------------------------------------------------------------------


def insert(tab: TableRef, objects: tuple[Any, ...] | list[tuple[Any, ...]]) -> bool:
    """Insert an object (a tuple) or a list of them. In a set or ordered_set an object
    replaces the one with the same key; a bag skips an identical object; a
    duplicate_bag keeps every copy. Returns True.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, ("ann", 31))
        True
        >>> ets.insert(tid, [("ann", 32), ("bob", 40)])  # same key: replaced
        True
        >>> sorted(ets.tab2list(tid))
        [('ann', 32), ('bob', 40)]
    """
    if type(tab) is not Tid:  # a name (no exception: raising one costs ~0.5 µs)
        tab = _tid_of(tab)
    d = tab._wd
    if d is not None and type(objects) is tuple:
        w = tab._w
        if w is None or w is get_current():
            # A flat object of immutables with a plain key is stored as it is: each
            # check here is a measurable share of the call (bench/bench_ets.py).
            if len(objects) == 2:
                key, v = objects
                if type(key) in SAFE and type(v) in IMMUTABLE_TYPES:
                    d[key] = objects
                    return True
            elif objects:
                key = objects[0]
                if type(key) in SAFE:
                    for x in objects:
                        if type(x) not in IMMUTABLE_TYPES:
                            break
                    else:
                        d[key] = objects
                        return True
    return _insert(tab, objects)


def _insert(tab: Any, objects: Any) -> bool:
    t = _write(tab)
    if type(objects) is list:
        for obj in objects:
            _check_obj(t, obj)
        items = [(_ckey(t, o[t.kp]), _stored(o)) for o in objects]
    else:
        _check_obj(t, objects)
        items = [(_ckey(t, objects[t.kp]), _stored(objects))]
    _put(t, items)
    return True


def _put(t: Table, items: list[tuple[Any, Any]]) -> None:
    data = t.data
    kind = t.kind
    if kind == K_SET:
        for ck, s in items:
            data[ck] = s
            if type(s) is Mut and not t.has_mut:
                t.has_mut = True
                t.refresh_fast()  # reads now copy: off the fast path
    elif kind == K_ORDERED:
        for ck, s in items:
            if ck not in data:
                t.keys.add(ck)
            data[ck] = s
    else:
        for ck, s in items:
            lst = data.get(ck)
            if lst is None:
                data[ck] = [s]
            elif kind == K_DBAG or not any(exact_eq(val(x), val(s)) for x in lst):
                lst.append(s)
            else:
                continue
            t.size += 1


def insert_new(tab: TableRef, objects: tuple[Any, ...] | list[tuple[Any, ...]]) -> bool:
    """Like `insert`, but only if no key is in the table yet; for a list, all or
    nothing. Returns whether it inserted.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.insert_new(tid, ("k", 1)), ets.insert_new(tid, ("k", 2))
        (True, False)
        >>> ets.lookup(tid, "k")
        [('k', 1)]
    """
    t = _write(tab)
    objs = objects if type(objects) is list else [objects]
    for obj in objs:
        _check_obj(t, obj)
    items = [(_ckey(t, o[t.kp]), _stored(o)) for o in objs]
    if any(ck in t.data for ck, _ in items):
        return False
    if t.kind <= K_ORDERED:  # a list with a repeated key inserts the last one, as insert
        seen: dict[Any, Any] = dict(items)
        items = list(seen.items())
    _put(t, items)
    return True


def update_counter(tab: TableRef, key: Any, op: Any, default: Any = _MISSING) -> Any:
    """Add to integer counters in the object with `key` (set and ordered_set), atomically.

    `op` is an increment (of the element after the key), `(pos, incr)`,
    `(pos, incr, threshold, set_value)` (if the result passes the threshold it becomes
    `set_value`), or a list of those (returns a list). `default` is inserted first (with
    its key replaced by `key`) if the key is missing.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("counters")
        >>> ets.update_counter(tid, "hits", 1, ("hits", 0))  # inserted with 0, then + 1
        1
        >>> ets.update_counter(tid, "hits", 10)
        11
        >>> ets.update_counter(tid, "hits", [(2, 1), (2, -5)])
        [12, 7]
    """
    t = _write(tab)
    if t.kind > K_ORDERED:
        raise EtsError(1, "update_counter needs a set or ordered_set table", "table_type")
    ck = _ckey(t, key)
    cur = t.data.get(ck)
    if cur is None:
        if default is _MISSING:
            raise EtsError(2, f"the key does not exist in the table: {key!r}", "badkey")
        _check_obj(t, default, 4)
        obj = list(default)
        obj[t.kp] = key
    else:
        obj = list(val(cur))
    ops = op if type(op) is list else [op]
    results = []
    for o in ops:
        if type(o) is int:
            pos, incr, thr = t.kp + 2, o, None
        elif type(o) is tuple and len(o) == 2:
            pos, incr, thr = o[0], o[1], None
        elif type(o) is tuple and len(o) == 4:
            pos, incr, thr = o[0], o[1], (o[2], o[3])
        else:
            raise EtsError(3, f"not a valid update operation: {o!r}")
        for n in (pos, incr, *(thr or ())):
            if type(n) is not int:
                raise EtsError(3, f"not a valid update operation (integers only): {o!r}")
        if pos == t.keypos:
            raise EtsError(3, "the counter cannot be the key", "keypos")
        if not 1 <= pos <= len(obj):
            raise EtsError(3, f"the position {pos} is outside the object", "position")
        v = obj[pos - 1]
        if type(v) is not int:
            raise EtsError(3, f"the element at {pos} is not an integer: {v!r}", "value")
        v += incr
        if thr is not None and ((incr >= 0 and v > thr[0]) or (incr < 0 and v < thr[0])):
            v = thr[1]
        obj[pos - 1] = v
        results.append(v)
    new_obj = tuple(obj)
    _put(t, [(ck, _stored(new_obj))])
    return results if type(op) is list else results[0]


def update_element(tab: TableRef, key: Any, element: Any, default: Any = _MISSING) -> bool:
    """Replace elements of the object with `key` (set and ordered_set): `element` is
    `(pos, value)` or a list of those. Returns False if the key is missing (unless a
    `default` object is given, OTP 27).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("users")
        >>> ets.insert(tid, ("ann", "admin", 31))
        True
        >>> ets.update_element(tid, "ann", (3, 32)), ets.update_element(tid, "bob", (3, 1))
        (True, False)
        >>> ets.lookup(tid, "ann")
        [('ann', 'admin', 32)]
    """
    t = _write(tab)
    if t.kind > K_ORDERED:
        raise EtsError(1, "update_element needs a set or ordered_set table", "table_type")
    ck = _ckey(t, key)
    cur = t.data.get(ck)
    specs = element if type(element) is list else [element]
    if cur is None:
        if default is _MISSING:
            return False
        _check_obj(t, default, 4)
        obj = list(default)
        obj[t.kp] = key
    else:
        obj = list(val(cur))
    for e in specs:
        if type(e) is not tuple or len(e) != 2 or type(e[0]) is not int:
            raise EtsError(3, f"not a (position, value) tuple: {e!r}")
        pos = e[0]
        if pos == t.keypos:
            raise EtsError(3, "the key cannot be updated", "keypos")
        if not 1 <= pos <= len(obj):
            raise EtsError(3, f"the position {pos} is outside the object", "position")
        obj[pos - 1] = e[1]
    _put(t, [(ck, _stored(tuple(obj)))])
    return True


# --- reading -----------------------------------------------------------------------------


def lookup(tab: TableRef, key: Any) -> list[Any]:
    """The objects with `key`: `[]` or `[obj]` in a set, insertion order in a bag.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, ("ann", 31))
        True
        >>> ets.lookup(tid, "ann"), ets.lookup(tid, "bob")
        ([('ann', 31)], [])
    """
    if type(tab) is not Tid:  # a name
        tab = _tid_of(tab)
    d = tab._rd
    if d is not None and type(key) in SAFE:
        s = d.get(key)
        return [] if s is None else [s]
    return _lookup(tab, key)


def _lookup(tab: Any, key: Any) -> list[Any]:
    t = _read(tab)
    s = t.data.get(_ckey(t, key))
    if s is None:
        return []
    if t.kind <= K_ORDERED:
        return [out(s)]
    return [out(x) for x in s]


def member(tab: TableRef, key: Any) -> bool:
    """Whether an object with `key` exists.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.insert(tid, ("k", 1))
        True
        >>> ets.member(tid, "k"), ets.member(tid, "j")
        (True, False)
    """
    t = _read(tab)
    return _ckey(t, key) in t.data


def lookup_element(tab: TableRef, key: Any, pos: int, default: Any = _MISSING) -> Any:
    """The `pos`-th element (1-based) of the object with `key` (a list of them for a
    bag). A missing key raises `EtsError` unless `default` is given (OTP 26).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("users")
        >>> ets.insert(tid, ("ann", "admin", 31))
        True
        >>> ets.lookup_element(tid, "ann", 3), ets.lookup_element(tid, "bob", 3, default=0)
        (31, 0)
    """
    t = _read(tab)
    s = t.data.get(_ckey(t, key))
    if s is None:
        if default is _MISSING:
            raise EtsError(2, f"the key does not exist in the table: {key!r}", "badkey")
        return default
    if type(pos) is not int or pos < 1:
        raise EtsError(3, f"not a valid position: {pos!r}", "position")
    objs = [val(s)] if t.kind <= K_ORDERED else [val(x) for x in s]
    for o in objs:
        if pos > len(o):
            raise EtsError(3, f"the position {pos} is outside the object", "position")
    got = [isolate(o[pos - 1]) for o in objs]
    return got[0] if t.kind <= K_ORDERED else got


def take(tab: TableRef, key: Any) -> list[Any]:
    """Remove and return the objects with `key`.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("jobs")
        >>> ets.insert(tid, ("j1", "resize"))
        True
        >>> ets.take(tid, "j1"), ets.take(tid, "j1")
        ([('j1', 'resize')], [])
    """
    t = _write(tab)
    ck = _ckey(t, key)
    s = t.data.pop(ck, None)
    if s is None:
        return []
    if t.kind == K_ORDERED:
        t.keys.remove(ck)
    if t.kind <= K_ORDERED:
        return [out(s)]
    t.size -= len(s)
    return [out(x) for x in s]


def _key_of(t: Table, s: Any) -> Any:
    if t.kind >= K_BAG:
        s = s[0]
    return isolate(val(s)[t.kp])


def first(tab: TableRef) -> Any:
    """The first key (ordered_set: the smallest), or `END_OF_TABLE`.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.first(tid) == ets.END_OF_TABLE
        True
        >>> ets.insert(tid, [(3, "c"), (1, "a"), (2, "b")])
        True
        >>> ets.first(tid)
        1
    """
    t = _read(tab)
    if not t.data:
        return END_OF_TABLE
    if t.kind == K_ORDERED:
        return _key_of(t, t.data[t.keys[0]])
    it = iter(t.data)
    ck = next_(it)
    t.it = (ck, it)
    return _key_of(t, t.data[ck])


def last(tab: TableRef) -> Any:
    """The last key (ordered_set: the largest; other types: as `first`).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(3, "c"), (1, "a"), (2, "b")])
        True
        >>> ets.last(tid)
        3
    """
    t = _read(tab)
    if t.kind != K_ORDERED:
        return first(tab)
    if not t.data:
        return END_OF_TABLE
    return _key_of(t, t.data[t.keys[-1]])


next_ = next


def next(tab: TableRef, key: Any) -> Any:
    """The key after `key`, or `END_OF_TABLE`. In an ordered_set `key` need not exist;
    in other types it must (else `EtsError`), as in an unfixed ETS table.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(1, "a"), (5, "e")])
        True
        >>> ets.next(tid, 1), ets.next(tid, 2), ets.next(tid, 5)  # 2 need not exist
        (5, 5, Atom('$end_of_table'))
    """
    t = _read(tab)
    ck = _ckey(t, key)
    if t.kind == K_ORDERED:
        i = t.keys.bisect_right(ck)
        return END_OF_TABLE if i >= len(t.keys) else _key_of(t, t.data[t.keys[i]])
    if ck not in t.data:
        raise EtsError(2, f"the key does not exist in the table: {key!r}", "badkey")
    nk: Any = _MISSING
    cached = t.it
    if cached is not None and cached[0] == ck:
        try:
            nk = next_(cached[1], END_OF_TABLE)
        except RuntimeError:  # the table changed size: find the key again
            nk = _MISSING
    if nk is _MISSING:
        it = iter(t.data)
        for k in it:
            if k == ck:
                nk = next_(it, END_OF_TABLE)
                break
        cached = (None, it)
    if nk is END_OF_TABLE:
        t.it = None
        return END_OF_TABLE
    t.it = (nk, cached[1])
    return _key_of(t, t.data[nk])


def prev(tab: TableRef, key: Any) -> Any:
    """The key before `key` (ordered_set), or `END_OF_TABLE`; other types: as `next`.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(1, "a"), (5, "e")])
        True
        >>> ets.prev(tid, 5), ets.prev(tid, 1)
        (1, Atom('$end_of_table'))
    """
    t = _read(tab)
    if t.kind != K_ORDERED:
        return next(tab, key)
    i = t.keys.bisect_left(_ckey(t, key))
    return END_OF_TABLE if i == 0 else _key_of(t, t.data[t.keys[i - 1]])


def _stored_objects(t: Table, reverse: bool = False) -> Iterator[Any]:
    """The stored objects in table order (a snapshot of the keys: safe under writes)."""
    data = t.data
    if t.kind == K_ORDERED:
        keys: Iterable[Any] = list(reversed(t.keys)) if reverse else list(t.keys)
    else:
        keys = list(reversed(data)) if reverse else list(data)
    bag = t.kind >= K_BAG
    for k in keys:
        s = data.get(k)
        if s is None:
            continue
        if bag:
            yield from (reversed(s) if reverse else list(s))
        else:
            yield s


def tab2list(tab: TableRef) -> list[Any]:
    """Every object, in table order (ordered_set: key order).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [("b", 2), ("a", 1)])
        True
        >>> ets.tab2list(tid)
        [('a', 1), ('b', 2)]
    """
    t = _read(tab)
    return [out(s) for s in _stored_objects(t)]


def foldl(fn: Callable[[Any, A], A], acc: A, tab: TableRef) -> A:
    """`fn(obj, acc)` over the objects, first to last.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(1, 10), (2, 20)])
        True
        >>> ets.foldl(lambda obj, acc: acc + [obj[0]], [], tid)
        [1, 2]
    """
    t = _read(tab)
    for s in _stored_objects(t):
        acc = fn(out(s), acc)
    return acc


def foldr(fn: Callable[[Any, A], A], acc: A, tab: TableRef) -> A:
    """`fn(obj, acc)` over the objects, last to first.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(1, 10), (2, 20)])
        True
        >>> ets.foldr(lambda obj, acc: acc + [obj[0]], [], tid)
        [2, 1]
    """
    t = _read(tab)
    for s in _stored_objects(t, reverse=True):
        acc = fn(out(s), acc)
    return acc


# --- match and select ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Continuation:
    """Where a `select(..., limit=n)` (or `match`) left off; pass it to `select(cont)`.

    Opaque: `tid`, the compiled spec, and a position (the last order key of an
    ordered_set, else the remaining keys of a snapshot).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(n, n * n) for n in range(5)])
        True
        >>> X, Y = ets.vars("X", "Y")
        >>> first, cont = ets.select(tid, ets.query((X, Y), select=Y), limit=3)
        >>> rest, cont = ets.select(cont)  # the last chunk: no continuation
        >>> first, rest, cont
        ([0, 1, 4], [9, 16], Atom('$end_of_table'))
    """

    tid: Tid
    clauses: list[Clause]
    limit: int
    position: Any
    reverse: bool
    shape: Any  # None: the spec's value; "match": the bindings of a pattern


def _run(clauses: list[Clause], obj: Any) -> Any:
    for c in clauses:
        r = c.run(obj)
        if r is not NO_MATCH:
            return r
    return NO_MATCH


def _candidates(t: Table, clauses: list[Clause]) -> list[Any] | None:
    """The stored objects that can match if every clause names a literal key (one
    lookup per key instead of a scan), else None."""
    keys = []
    for c in clauses:
        if c.key is None:
            return None
        keys.append(c.key[0])
    out_: list[Any] = []
    seen: list[Any] = []
    for k in keys:
        try:
            ck = _ckey(t, k)
        except EtsError:
            continue
        if ck in seen:
            continue
        seen.append(ck)
        s = t.data.get(ck)
        if s is None:
            continue
        if t.kind >= K_BAG:
            out_.extend(s)
        else:
            out_.append(s)
    return out_


def _bounds(clauses: list[Clause]) -> tuple[Any, Any] | None:
    """The order-key envelope of every clause's range (None: unbounded)."""
    lo: Any = None
    hi: Any = None
    for i, c in enumerate(clauses):
        r = c.range
        if r is None:
            return None
        if i == 0:
            lo, hi = r
            continue
        lo = None if lo is None or r[0] is None else min(lo, r[0])
        hi = None if hi is None or r[1] is None else max(hi, r[1])
    return (lo, hi)


def _range_indexes(t: Table, clauses: list[Clause]) -> tuple[int, int]:
    """[start, stop) in the ordered_set index that can hold matching keys: O(log n)."""
    keys = t.keys
    b = _bounds(clauses)
    if b is None:
        return 0, len(keys)
    lo, hi = b
    start = 0 if lo is None else keys.bisect_left(lo)
    stop = len(keys) if hi is None else keys.bisect_right(hi)
    return start, max(start, stop)


def _ordered_objects(t: Table, clauses: list[Clause], reverse: bool) -> Iterator[Any]:
    start, stop = _range_indexes(t, clauses)
    keys = t.keys
    snapshot = [
        keys[i] for i in (range(stop - 1, start - 1, -1) if reverse else range(start, stop))
    ]
    data = t.data
    for k in snapshot:
        s = data.get(k)
        if s is not None:
            yield s


def _scan(t: Table, clauses: list[Clause], reverse: bool = False) -> Iterator[tuple[Any, Any]]:
    """(stored object, result) for every object the spec matches, in table order."""
    cands = _candidates(t, clauses)
    objs: Iterable[Any]
    if cands is not None:
        objs = cands
    elif t.kind == K_ORDERED:
        objs = _ordered_objects(t, clauses, reverse)
    else:
        objs = _stored_objects(t, reverse)
    for s in objs:
        r = _run(clauses, val(s))
        if r is not NO_MATCH:
            yield s, r


def _spec(t: Table, spec: Any) -> list[Clause]:
    return compile_spec(spec, t.kp)


def _result(r: Any, s: Any) -> Any:
    # The whole object comes out as a copy if it is mutable; a built value is the
    # caller's own already except for the parts it took from the object.
    if type(s) is Mut:
        return isolate(r)
    return r


def _pattern_spec(pattern: Any, what: Literal["match", "object"]) -> list[Any]:
    return [(pattern, [], [ALL_VARS if what == "match" else ALL])]


def select(tab: TableRef | Continuation, spec: Any = None, limit: int | None = None) -> Any:
    """The values of the match specification `spec` for the matching objects (ordered_set:
    in key order). With `limit`, returns `(results, continuation)` for up to `limit` of
    them (or `END_OF_TABLE`); `select(continuation)` returns the next chunk.

    Examples:
        >>> from beamlet import ets
        >>> from beamlet import Atom
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, [("ann", 31), ("bob", 25)])
        True
        >>> spec = [((Atom("$1"), Atom("$2")), [(Atom(">"), Atom("$2"), 30)], [Atom("$1")])]
        >>> ets.select(tid, spec)
        ['ann']
        >>> Name, Age = ets.vars("Name", "Age")  # the same spec, built by query
        >>> ets.select(tid, ets.query((Name, Age), where=Age > 30, select=Name))
        ['ann']
    """
    if type(tab) is Continuation or (type(tab) is Atom and tab == END_OF_TABLE):
        return _resume(tab)
    t = _read(tab)
    clauses = _spec(t, spec)
    if limit is None:
        return [_result(r, s) for s, r in _scan(t, clauses)]
    return _chunk(t, clauses, limit, None, False)


def select_reverse(tab: TableRef | Continuation, spec: Any = None, limit: int | None = None) -> Any:
    """`select` from the last object to the first (ordered_set; other types: as select).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="ordered_set")
        >>> ets.insert(tid, [(1, "a"), (2, "b"), (3, "c")])
        True
        >>> K, V = ets.vars("K", "V")
        >>> ets.select_reverse(tid, ets.query((K, V), select=V))
        ['c', 'b', 'a']
    """
    if type(tab) is Continuation or (type(tab) is Atom and tab == END_OF_TABLE):
        return _resume(tab)
    t = _read(tab)
    clauses = _spec(t, spec)
    rev = t.kind == K_ORDERED
    if limit is None:
        return [_result(r, s) for s, r in _scan(t, clauses, rev)]
    return _chunk(t, clauses, limit, None, rev)


def _check_limit(limit: Any) -> int:
    if type(limit) is not int or limit < 1:
        raise EtsError(3, f"the limit must be a positive int, not {limit!r}")
    return limit


def _chunk(t: Table, clauses: list[Clause], limit: int, position: Any, reverse: bool) -> Any:
    _check_limit(limit)
    results: list[Any] = []
    if t.kind == K_ORDERED:
        keys = t.keys
        start, stop = _range_indexes(t, clauses)
        if position is None:
            i = stop - 1 if reverse else start
        else:
            i = keys.bisect_left(position) - 1 if reverse else keys.bisect_right(position)
            i = min(i, stop - 1) if reverse else max(i, start)
        step = -1 if reverse else 1
        last_key = position
        while start <= i < stop and len(results) < limit:
            ck = keys[i]
            s = t.data[ck]
            r = _run(clauses, val(s))
            if r is not NO_MATCH:
                results.append(_result(r, s))
            last_key = ck
            i += step
        more = start <= i < stop
        pos: Any = last_key
    else:
        snapshot = list(t.data) if position is None else position
        j = 0
        bag = t.kind >= K_BAG
        while j < len(snapshot) and len(results) < limit:
            s = t.data.get(snapshot[j])
            j += 1
            if s is None:
                continue
            for x in s if bag else (s,):
                r = _run(clauses, val(x))
                if r is not NO_MATCH:
                    results.append(_result(r, x))
        more = j < len(snapshot)
        pos = snapshot[j:]
    if not results:
        return END_OF_TABLE
    if not more:
        return (results, END_OF_TABLE)
    return (results, Continuation(t.tid, clauses, limit, pos, reverse, None))


def _resume(c: Continuation | Atom) -> Any:
    # As OTP: select/1 and match/1 of the last chunk's '$end_of_table' return it again.
    if type(c) is not Continuation:
        return END_OF_TABLE
    t = c.tid._t
    if t is None:
        raise no_table()
    if t.reader is not None and t.reader is not get_current():
        raise no_access()
    return _chunk(t, c.clauses, c.limit, c.position, c.reverse)


def select_count(tab: TableRef, spec: Any) -> int:
    """How many objects the spec returns `True` for.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, [("ann", 31), ("bob", 25), ("cy", 40)])
        True
        >>> Name, Age = ets.vars("Name", "Age")
        >>> ets.select_count(tid, ets.query((Name, Age), where=Age > 30, select=True))
        2
    """
    t = _read(tab)
    return sum(1 for _, r in _scan(t, _spec(t, spec)) if r is True)


def select_delete(tab: TableRef, spec: Any) -> int:
    """Delete the objects the spec returns `True` for; returns how many.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, [("ann", 31), ("bob", 25), ("cy", 40)])
        True
        >>> Name, Age = ets.vars("Name", "Age")
        >>> ets.select_delete(tid, ets.query((Name, Age), where=Age > 30, select=True))
        2
        >>> ets.tab2list(tid)
        [('bob', 25)]
    """
    t = _write(tab)
    doomed = [s for s, r in _scan(t, _spec(t, spec)) if r is True]
    for s in doomed:
        _remove_stored(t, s)
    return len(doomed)


def _remove_stored(t: Table, s: Any) -> None:
    ck = _ckey(t, val(s)[t.kp])
    if t.kind <= K_ORDERED:
        if t.data.pop(ck, None) is not None and t.kind == K_ORDERED:
            t.keys.remove(ck)
        return
    lst = t.data.get(ck)
    if lst is None:
        return
    for i, x in enumerate(lst):
        if x is s:
            del lst[i]
            t.size -= 1
            break
    if not lst:
        del t.data[ck]


def select_replace(tab: TableRef, spec: Any) -> int:
    """Replace each matching object by the spec's value, which must keep the key (a
    compare-and-swap when the head is the old object and the body `(const, new)`);
    returns how many were replaced. Not for bags (duplicate_bags are fine, as in ETS).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, [("ann", 31), ("bob", 25)])
        True
        >>> Name, Age = ets.vars("Name", "Age")
        >>> ets.select_replace(tid, ets.query((Name, Age), where=Age < 30, select=(Name, Age + 1)))
        1
        >>> ets.lookup(tid, "bob")
        [('bob', 26)]
    """
    t = _write(tab)
    if t.kind == K_BAG:
        raise EtsError(1, "select_replace does not work on a bag table", "table_type")
    clauses = _spec(t, spec)
    repl = []
    for s, r in _scan(t, clauses):
        old = val(s)
        if not isinstance(r, tuple) or len(r) <= t.kp or not exact_eq(r[t.kp], old[t.kp]):
            raise EtsError(2, f"the replacement must be a tuple with the same key: {r!r}")
        repl.append((s, r))
    if t.kind == K_DBAG:
        for s, r in repl:
            lst = t.data[_ckey(t, r[t.kp])]
            for i, x in enumerate(lst):
                if x is s:
                    lst[i] = _stored(r)
                    break
    else:
        _put(t, [(_ckey(t, r[t.kp]), _stored(r)) for _, r in repl])
    return len(repl)


def match(tab: TableRef | Continuation, pattern: Any = None, limit: int | None = None) -> Any:
    """The bindings of `pattern`'s variables (`Atom("$1")`...) for every matching
    object, each a list ordered by variable number. With `limit`: chunks, as `select`.

    Examples:
        >>> from beamlet import ets
        >>> from beamlet import Atom
        >>> tid = ets.new("users", type="ordered_set")
        >>> ets.insert(tid, [("ann", "admin", 31), ("bob", "user", 25)])
        True
        >>> ets.match(tid, (Atom("$1"), "admin", Atom("$2")))
        [['ann', 31]]
    """
    if type(tab) is Continuation or (type(tab) is Atom and tab == END_OF_TABLE):
        return _resume(tab)
    t = _read(tab)
    return select(t.tid, _pattern_spec(pattern, "match"), limit)


def match_object(
    tab: TableRef | Continuation, pattern: Any = None, limit: int | None = None
) -> Any:
    """The objects that match `pattern` (`Atom("_")` matches anything).

    Examples:
        >>> from beamlet import ets
        >>> from beamlet import Atom
        >>> tid = ets.new("users", type="ordered_set")
        >>> ets.insert(tid, [("ann", "admin", 31), ("bob", "user", 25)])
        True
        >>> ets.match_object(tid, (Atom("_"), "user", Atom("_")))
        [('bob', 'user', 25)]
    """
    if type(tab) is Continuation or (type(tab) is Atom and tab == END_OF_TABLE):
        return _resume(tab)
    t = _read(tab)
    return select(t.tid, _pattern_spec(pattern, "object"), limit)


def match_delete(tab: TableRef, pattern: Any) -> bool:
    """Delete the objects that match `pattern`.

    Examples:
        >>> from beamlet import ets
        >>> from beamlet import Atom
        >>> tid = ets.new("users")
        >>> ets.insert(tid, [("ann", "admin"), ("bob", "user")])
        True
        >>> ets.match_delete(tid, (Atom("_"), "user")), ets.tab2list(tid)
        (True, [('ann', 'admin')])
    """
    select_delete(tab, [(pattern, [], [True])])
    return True


# --- ownership, names, info --------------------------------------------------------------


def give_away(tab: TableRef, pid: Pid, gift: Any) -> bool:
    """Make `pid` (a live local process, not the owner) the owner; it receives
    `(ETS_TRANSFER, tab, from_pid, gift)`. Only the owner may call it.

    Examples:
        >>> from beamlet import ets
        >>> async def heir():
        ...     transfer = await beamlet.receive(lambda m: m[0] == ets.ETS_TRANSFER)
        ...     owner = ets.info(transfer[1], "owner")
        ...     print("got", transfer[3], "owner is me:", owner == beamlet.self())
        >>> tid = ets.new("t")
        >>> pid, ref = beamlet.spawn_monitor(heir)
        >>> ets.give_away(tid, pid, "a gift")
        True
        >>> _ = await beamlet.receive(beamlet.Down, timeout=1)
        got a gift owner is me: True
    """
    t = _named(tab)
    p = get_current()
    if p is not t.owner:
        raise EtsError(1, "only the owner can give the table away", "not_owner")
    q = pid_proc(t.node, pid, 2)
    if q is p:
        raise EtsError(2, "the process already owns the table", "owner")
    gift = isolate(gift)
    _tables(t).move(t, q)
    t.node.send(pid, (ETS_TRANSFER, t.ref(), p.pid, gift))
    return True


def setopts(tab: TableRef, *, heir: Pid | None, heir_data: Any = None) -> bool:
    """Set the heir (the only option that can change; owner only). `heir=None`: none.

    Examples:
        >>> from beamlet import ets
        >>> async def keeper():
        ...     await beamlet.receive(str)
        >>> keeper_pid = beamlet.spawn(keeper)
        >>> tid = ets.new("t")
        >>> ets.setopts(tid, heir=keeper_pid, heir_data="yours when I die")
        True
        >>> ets.info(tid, "heir") == keeper_pid
        True
    """
    t = _named(tab)
    if get_current() is not t.owner:
        raise EtsError(1, "only the owner can set options", "not_owner")
    if heir is None or heir == _NONE:
        t.heir, t.heir_data = None, None
    else:
        t.heir = pid_proc(t.node, heir, 2)
        t.heir_data = isolate(heir_data)
    return True


def whereis(name: Atom | str) -> Tid | None:
    """The id of the table named `name`, or None (OTP 21's `ets:whereis/1`).

    Examples:
        >>> from beamlet import ets
        >>> ets.new("config", named_table=True)
        Atom('config')
        >>> isinstance(ets.whereis("config"), ets.Tid), ets.whereis("nothing")
        (True, None)
    """
    if type(name) is str:
        name = Atom(name)
    if type(name) is not Atom:
        raise EtsError(1, f"not a table name: {name!r}")
    t = _tables_of_caller().by_name.get(name)
    return None if t is None else t.tid


def all() -> list[Tid | Atom]:
    """Every table of the caller's node: names for named tables, ids otherwise.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.new("config", named_table=True)
        Atom('config')
        >>> tid in ets.all(), ets.Atom("config") in ets.all()
        (True, True)
    """
    return [t.ref() for t in _tables_of_caller().live.values()]


def rename(tab: TableRef, name: Atom | str) -> Atom:
    """Give a named table a new name (owner only, unless public).

    Examples:
        >>> from beamlet import ets
        >>> ets.new("old", named_table=True)
        Atom('old')
        >>> ets.rename("old", "new"), ets.whereis("old")
        (Atom('new'), None)
    """
    t = _write(tab)
    if type(name) is str:
        name = Atom(name)
    if type(name) is not Atom:
        raise EtsError(2, f"a table name is an Atom: {name!r}")
    tables = _tables(t)
    if t.named:
        if name in tables.by_name and tables.by_name[name] is not t:
            raise EtsError(2, f"a table named {name} already exists", "name")
        del tables.by_name[t.name]
        tables.by_name[name] = t
    t.name = name
    return name


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What `info(tab)` reports, with OTP's item names. `memory` is an estimate in
    words (8 bytes), as ETS reports it; `heir` is None for none.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t", type="bag")
        >>> ets.insert(tid, ("k", 1))
        True
        >>> i = ets.info(tid)
        >>> i.type, i.size, i.owner == beamlet.self(), i.protection
        (Atom('bag'), 1, True, Atom('protected'))
    """

    id: Tid
    name: Atom
    named_table: bool
    type: Atom
    keypos: int
    protection: Atom
    owner: Pid
    heir: Pid | None
    size: int
    memory: int
    node: Atom
    read_concurrency: bool
    write_concurrency: bool | str
    decentralized_counters: bool
    compressed: bool


def _memory(t: Table) -> int:
    size = sys.getsizeof(t.data) + (sys.getsizeof(t.keys) if t.keys is not None else 0)
    getsizeof = sys.getsizeof
    for s in t.data.values():
        for x in s if t.kind >= K_BAG else (s,):
            o = val(x)
            size += getsizeof(o) + sum([getsizeof(e) for e in o])
    return size // 8


def info(tab: TableRef, item: str | None = None) -> Any:
    """A `TableInfo` for the table, or one item of it (`info(tab, "size")`); None if
    the table was deleted (Erlang's `undefined`).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> ets.insert(tid, [("a", 1), ("b", 2)])
        True
        >>> ets.info(tid, "size"), ets.info(tid, "type")
        (2, Atom('set'))
    """
    if type(tab) is Tid:
        t = tab._t
        if t is None:
            return None
    else:
        try:
            t = _named(tab)
        except EtsError as e:
            if e.cause == "id":
                return None
            raise
    i = TableInfo(
        id=t.tid,
        name=t.name,
        named_table=t.named,
        type=KINDS[t.kind],
        keypos=t.keypos,
        protection=t.access,
        owner=t.owner.pid,
        heir=None if t.heir is None else t.heir.pid,
        size=len(t.data) if t.kind <= K_ORDERED else t.size,
        memory=_memory(t) if item is None or item == "memory" else 0,
        node=t.node.name,
        read_concurrency=bool(t.read_concurrency),
        write_concurrency=t.write_concurrency,
        decentralized_counters=bool(t.decentralized_counters),
        compressed=bool(t.compressed),
    )
    if item is None:
        return i
    if item not in TableInfo.__slots__:
        raise EtsError(2, f"not an info item: {item!r}")
    return getattr(i, str(item))
