"""A table, its id, its errors, and the per-node set of tables (docs/ets.md).

A `Table` is plain data; the operations are in `beamlet.ets.api`. Every operation runs
to completion on the node's event-loop thread without awaiting, so each call is atomic
and isolated, as ETS guarantees for its single-call operations.

Per-node state: `Tables` hangs off `Node.resources`, the kernel's hook for what a
process owns. The kernel calls `process_exited` at a death, before links and monitors
fire (as the BEAM frees tables first), and `owned_by` for `process_info`.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Final

from beamlet._core import Atom, BadArgument, Pid

if TYPE_CHECKING:
    from beamlet._core import Node
    from beamlet._core import ProcessView as Proc

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
    "EtsError",
    "Table",
    "Tables",
    "Tid",
]

SET: Final = Atom("set")
ORDERED_SET: Final = Atom("ordered_set")
BAG: Final = Atom("bag")
DUPLICATE_BAG: Final = Atom("duplicate_bag")
PUBLIC: Final = Atom("public")
PROTECTED: Final = Atom("protected")
PRIVATE: Final = Atom("private")
END_OF_TABLE: Final = Atom("$end_of_table")
ETS_TRANSFER: Final = Atom("ETS-TRANSFER")

KINDS: Final = (SET, ORDERED_SET, BAG, DUPLICATE_BAG)
K_SET, K_ORDERED, K_BAG, K_DBAG = 0, 1, 2, 3

log = logging.getLogger("beamlet")


class EtsError(BadArgument):
    """Erlang's `badarg` from an ETS call, naming the argument, as OTP 24+'s extended error
    info does: `EtsError(1, "the table identifier does not refer to an existing ETS
    table")`. `.argument` is the 1-based argument number (0: not about one argument),
    `.cause` a short tag (`id`, `access`, `keypos`, `badkey`, `position`, `table_type`...).

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("t")
        >>> try:
        ...     ets.insert(tid, "not a tuple")
        ... except ets.EtsError as e:
        ...     print(e.argument, e)
        2 argument 2: ...
    """

    def __init__(self, argument: int, message: str, cause: str = "") -> None:
        super().__init__(f"argument {argument}: {message}" if argument else message)
        self.argument = argument
        self.cause = cause
        self._message = message

    def __reduce__(self) -> Any:  # copied like any exit reason or message
        return (EtsError, (self.argument, self._message, self.cause))


def no_table(arg: int = 1) -> EtsError:
    return EtsError(arg, "the table identifier does not refer to an existing ETS table", "id")


def no_access(arg: int = 1) -> EtsError:
    return EtsError(
        arg, "the table identifier refers to an ETS table with insufficient access rights", "access"
    )


class Tid:
    """A table identifier, as `new` returns it for a table without `named_table` (and
    `whereis` for any table). It stays invalid after the table is deleted, even if a
    new table takes the same name. Passed by reference in messages.

    Examples:
        >>> from beamlet import ets
        >>> tid = ets.new("cache")
        >>> ets.insert(tid, ("k", 1))
        True
        >>> isinstance(tid, ets.Tid), ets.whereis("cache") is None  # unnamed: no lookup by name
        (True, True)
    """

    __slots__ = ("_rd", "_t", "_w", "_wd", "number")
    __match_args__: ClassVar = ("number",)

    _t: Table | None
    # The fast paths of lookup/insert on a set (api.py): the table's dict when anyone may
    # read it and it holds no mutable object (`_rd`: nothing to copy out), and when its
    # key is the first element (`_wd`, with `_w` the only writer or None); None sends the
    # call down the general path.
    _rd: dict[Any, Any] | None
    _wd: dict[Any, Any] | None
    _w: Any

    def __init__(self, table: Table, number: int) -> None:
        self._t = table
        self.number = number
        self._rd = self._wd = self._w = None

    def __repr__(self) -> str:
        return f"#Tid<{self.number}>"

    def __copy__(self) -> Tid:
        return self

    def __deepcopy__(self, memo: Any) -> Tid:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a table id is local to its node and cannot be pickled")


class Mut:
    """A stored object that holds mutable parts: copied on every read (§2.2)."""

    __slots__ = ("v",)

    def __init__(self, v: tuple[Any, ...]) -> None:
        self.v = v


def val(s: Any) -> Any:
    """The stored object, not copied (for matching inside the table)."""
    return s.v if type(s) is Mut else s


def out(s: Any) -> Any:
    """The stored object as the caller receives it: its own copy if it is mutable."""
    return copy.deepcopy(s.v) if type(s) is Mut else s


class Table:
    """One table. `reader`/`writer` are None when anyone may read/write, else the only
    process that may (the owner)."""

    __slots__ = (
        "access",
        "compressed",
        "data",
        "decentralized_counters",
        "has_mut",
        "heir",
        "heir_data",
        "it",
        "keypos",
        "keys",
        "kind",
        "kp",
        "name",
        "named",
        "node",
        "owner",
        "read_concurrency",
        "reader",
        "size",
        "tid",
        "write_concurrency",
        "writer",
    )

    name: Atom
    named: bool
    kind: int
    kp: int
    keypos: int
    access: Atom
    owner: Proc
    reader: Proc | None
    writer: Proc | None
    heir: Proc | None
    heir_data: Any
    data: dict[Any, Any]
    keys: Any  # ordered_set: the sorted index of order keys
    size: int  # objects in a bag (sets use len(data))
    node: Node
    tid: Tid
    it: Any  # set traversal: (canonical key, dict iterator) of the last next()
    read_concurrency: Any
    write_concurrency: Any
    decentralized_counters: Any
    compressed: bool
    has_mut: bool  # a set holds (or held) an object that must be copied on reads

    def set_owner(self, owner: Proc) -> None:
        self.owner = owner
        self.reader = owner if self.access is PRIVATE else None
        self.writer = None if self.access is PUBLIC else owner
        self.refresh_fast()

    def refresh_fast(self) -> None:
        tid = self.tid
        fast = self.kind == K_SET and self.reader is None
        tid._rd = self.data if fast and not self.has_mut else None
        tid._wd = self.data if fast and self.kp == 0 else None
        tid._w = self.writer

    def ref(self) -> Tid | Atom:
        """How `all()` and ETS-TRANSFER name the table: its name if named, else its id."""
        return self.name if self.named else self.tid


class Tables:
    """The tables of one node (`Node.resources`): by name, by owner, in creation order."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.by_name: dict[Atom, Table] = {}
        self.by_owner: dict[Proc, list[Table]] = {}
        self.live: dict[int, Table] = {}
        self.counter = 0

    def add(self, t: Table) -> None:
        self.live[t.tid.number] = t
        if t.named:
            self.by_name[t.name] = t
        self.by_owner.setdefault(t.owner, []).append(t)

    def drop(self, t: Table) -> None:
        """Delete `t`: every id and name of it is invalid from now on."""
        self.live.pop(t.tid.number, None)
        if t.named and self.by_name.get(t.name) is t:
            del self.by_name[t.name]
        owned = self.by_owner.get(t.owner)
        if owned is not None:
            owned.remove(t)
            if not owned:
                del self.by_owner[t.owner]
        t.tid._t = t.tid._rd = t.tid._wd = None
        t.data = {}
        t.keys = None
        t.it = None

    def move(self, t: Table, to: Proc) -> None:
        owned = self.by_owner.get(t.owner)
        if owned is not None:
            owned.remove(t)
            if not owned:
                del self.by_owner[t.owner]
        t.set_owner(to)
        self.by_owner.setdefault(to, []).append(t)

    # --- the kernel's resource hook -----------------------------------------------------

    def process_exited(self, p: Proc) -> None:
        """`p` died: its tables pass to their heirs (an ETS-TRANSFER message) or go."""
        tabs = self.by_owner.get(p)
        if not tabs:
            return
        for t in list(tabs):
            heir = t.heir
            try:
                if heir is not None and heir.alive and heir is not p:
                    self.move(t, heir)
                    self.node.send(heir.pid, (ETS_TRANSFER, t.ref(), p.pid, t.heir_data))
                else:
                    self.drop(t)
            except Exception:  # never let a table break the kernel's clean-up of `p`
                log.exception("beamlet.ets: passing on table %r of %r failed", t.ref(), p.pid)
                if t.tid._t is not None:
                    self.drop(t)

    def owned_by(self, p: Proc) -> tuple[Tid | Atom, ...]:
        return tuple(t.ref() for t in self.by_owner.get(p, ()))


def pid_proc(node: Node, pid: Any, arg: int) -> Proc:
    """The live local process `pid` names, or badarg for argument `arg`."""
    if type(pid) is not Pid:
        raise EtsError(arg, f"not a pid: {pid!r}")
    q = node.lookup(pid)
    if q is None or not q.alive:
        raise EtsError(arg, f"{pid!r} is not a live process of this node")
    return q
