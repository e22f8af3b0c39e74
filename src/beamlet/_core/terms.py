"""Erlang-shaped values every layer shares: atoms, pids and references.

`Atom` is a `str` subclass that compares equal only to other atoms (docs/semantics.md
§0.2), so an atom and a string with the same text stay distinct, as `ok` and `<<"ok">>`
are in Erlang. `Pid` and `Ref` carry the node name and creation from the start, so a pid
that crossed the wire needs no translation (docs/architecture.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "CALLING_SELF",
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NODE_NOHOST",
    "NOPROC",
    "NORMAL",
    "PROCESS",
    "SHUTDOWN",
    "TIMEOUT",
    "UNDEFINED",
    "Atom",
    "ImproperList",
    "Pid",
    "Ref",
]

_new = object.__new__


class Atom(str):
    """An Erlang atom: a symbolic constant, distinct from the string with the same text.

    Examples:
        >>> from beamlet import Atom
        >>> Atom("ok") == Atom("ok"), Atom("ok") == "ok"
        (True, False)
    """

    __slots__ = ()
    # `case Atom("ok"):` matches the atom ok (a class pattern compares `.text`).
    __match_args__: ClassVar = ("text",)

    @property
    def text(self) -> str:
        """The atom's name as a plain `str`."""
        return str.__str__(self)

    def __eq__(self, other: object) -> bool:
        return type(other) is Atom and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    # The same hash as the string: still correct (equality keeps them apart) and it keeps
    # hashing in C, which every atom-keyed dict and map decode benefits from.
    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Atom, (str(self),))

    def __copy__(self) -> Atom:
        return self

    def __deepcopy__(self, memo: Any) -> Atom:
        return self


NORMAL: Final = Atom("normal")
KILL: Final = Atom("kill")
KILLED: Final = Atom("killed")
SHUTDOWN: Final = Atom("shutdown")
NOPROC: Final = Atom("noproc")
NOCONNECTION: Final = Atom("noconnection")
TIMEOUT: Final = Atom("timeout")
CALLING_SELF: Final = Atom("calling_self")
UNDEFINED: Final = Atom("undefined")
PROCESS: Final = Atom("process")
NODE_NOHOST: Final = Atom("nonode@nohost")


class Pid:
    """A process identifier: `Pid(node, id, serial, creation)`, immutable and hashable.

    Pids are ordered as Erlang orders them (serial, number, node, creation) and print like
    Erlang's `<0.42.0>` when they belong to the node that prints them. The public fields
    are read-only properties (the private slots are the runtime's).

    Examples:
        >>> from beamlet import Atom, Pid
        >>> Pid(Atom("a@host"), 42)
        <a@host.42.0>
        >>> beamlet.self().node
        Atom('nonode@nohost')
    """

    __slots__ = ("_creation", "_exit_reason", "_id", "_node", "_proc", "_serial")
    __match_args__: ClassVar = ("node", "id", "serial", "creation")

    _node: Atom
    _id: int
    _serial: int
    _creation: int
    _proc: Any  # the local process object, or None (not part of identity)
    _exit_reason: Any  # once that process ended: its exit reason (set only then; see Node.wait)

    def __init__(self, node: Atom, id: int, serial: int = 0, creation: int = 0) -> None:
        if type(node) is not Atom:
            node = Atom(node)
        for field in (id, serial, creation):
            if type(field) is not int or not 0 <= field <= 0xFFFFFFFF:
                raise ValueError(f"pid field out of range: {field!r}")
        self._node = node
        self._id = id
        self._serial = serial
        self._creation = creation
        self._proc = None

    @classmethod
    def _local(cls, node: Atom, id: int, serial: int, creation: int, proc: Any) -> Pid:
        """Fast constructor used by spawn: the pid of a process of this node."""
        pid = _new(cls)
        pid._node = node
        pid._id = id
        pid._serial = serial
        pid._creation = creation
        pid._proc = proc
        return pid

    @property
    def node(self) -> Atom:
        return self._node

    @property
    def id(self) -> int:
        return self._id

    @property
    def serial(self) -> int:
        return self._serial

    @property
    def creation(self) -> int:
        return self._creation

    def sort_key(self) -> tuple[int, int, str, int]:
        """A tuple that orders pids as Erlang's term order does (checked on OTP 25:
        serial, number, node, creation)."""
        return (self._serial, self._id, self._node, self._creation)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not Pid:
            return NotImplemented
        return (
            self._id == other._id
            and self._serial == other._serial
            and self._creation == other._creation
            and self._node == other._node
        )

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return self._id ^ (self._serial << 28)

    def __lt__(self, other: Pid) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: Pid) -> bool:
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: Pid) -> bool:
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: Pid) -> bool:
        return self.sort_key() >= other.sort_key()

    def __repr__(self) -> str:
        if self._proc is not None or self._node == _local_node_name():
            return f"<0.{self._id}.{self._serial}>"
        return f"<{self._node}.{self._id}.{self._serial}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pid, (str(self._node), self._id, self._serial, self._creation))

    def __copy__(self) -> Pid:
        return self

    def __deepcopy__(self, memo: Any) -> Pid:
        return self


class Ref:
    """A unique reference, `Ref(node, ids, creation)`; never reused within a node run.

    `ids` are the 32-bit words of Erlang's NEWER_REFERENCE (3 to 5 of them). Refs double
    as process aliases and timer handles.

    Examples:
        >>> from beamlet import Atom, Ref
        >>> Ref(Atom("a@host"), (1, 2, 3))
        #Ref<a@host.3.2.1>
    """

    __slots__ = ("_creation", "_len", "_n", "_node")
    __match_args__: ClassVar = ("node", "ids", "creation")

    _node: Atom
    _n: int  # the words packed little-endian: ids[0] | ids[1] << 32 | ...
    _len: int
    _creation: int

    def __init__(self, node: Atom, ids: tuple[int, ...], creation: int = 0) -> None:
        if type(node) is not Atom:
            node = Atom(node)
        n = 0
        for i, word in enumerate(ids):
            if not 0 <= word <= 0xFFFFFFFF:
                raise ValueError(f"reference word out of range: {word!r}")
            n |= word << (32 * i)
        self._node = node
        self._n = n
        self._len = len(ids)
        self._creation = creation

    @classmethod
    def _local(cls, node: Atom, n: int, creation: int) -> Ref:
        """Fast constructor for a fresh local reference numbered `n` (3 words)."""
        ref = _new(cls)
        ref._node = node
        ref._n = n
        ref._len = 3
        ref._creation = creation
        return ref

    @property
    def node(self) -> Atom:
        return self._node

    @property
    def ids(self) -> tuple[int, ...]:
        n = self._n
        return tuple((n >> (32 * i)) & 0xFFFFFFFF for i in range(self._len))

    @property
    def creation(self) -> int:
        return self._creation

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not Ref:
            return NotImplemented
        return (
            self._n == other._n
            and self._node == other._node
            and self._creation == other._creation
            and self._len == other._len
        )

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._n)

    def sort_key(self) -> tuple[str, int, int, int]:
        """A tuple that orders refs as `<` does."""
        return (self._node, self._creation, self._len, self._n)

    def __lt__(self, other: Ref) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: Ref) -> bool:
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: Ref) -> bool:
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: Ref) -> bool:
        return self.sort_key() >= other.sort_key()

    def __repr__(self) -> str:
        words = ".".join(str(w) for w in reversed(self.ids))
        node = "0" if self._node == _local_node_name() else str(self._node)
        return f"#Ref<{node}.{words}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (str(self._node), self.ids, self._creation))

    def __copy__(self) -> Ref:
        return self

    def __deepcopy__(self, memo: Any) -> Ref:
        return self


@dataclass(frozen=True, slots=True)
class ImproperList:
    """A list whose tail is not `[]`, like Erlang's `[a, b | c]`.

    Examples:
        >>> ImproperList((Atom("alias"),), Atom("b"))   # Erlang's [alias | b]
        ImproperList(items=(Atom('alias'),), tail=Atom('b'))
    """

    items: tuple[Any, ...]
    tail: Any

    def __post_init__(self) -> None:
        if type(self.items) is not tuple:
            object.__setattr__(self, "items", tuple(self.items))
        if not self.items:
            raise ValueError("ImproperList needs at least one item before the tail")
        if isinstance(self.tail, list) or getattr(self.tail, "_erlang_list", False):
            raise ValueError("the tail of an ImproperList cannot be a list; extend the items")


def _local_node_name() -> Atom | None:
    # Printing only: the node of the process that is running now, if any.
    from beamlet._core.current import current_node_name

    return current_node_name()
