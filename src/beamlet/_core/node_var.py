"""Per-node state for the layers above the kernel (as trio's `RunVar` is per run).

A `NodeVar` is a module-level key, not a value: each `Node` holds its own value for it,
made by the var's factory on first use. So a fresh node (and every test) starts empty,
two nodes in one OS process never share state, and no module keeps mutable state of its
own (Registry's tables, pg's scopes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from beamlet._core.current import get_current
from beamlet._core.errors import NotInProcess

if TYPE_CHECKING:
    from beamlet._core.node import Node

T = TypeVar("T")


class NodeVar(Generic[T]):
    """A slot every node has: `var.get(node)` is that node's value, made by `factory()`
    the first time it is read. `node` defaults to the calling process's node.

    Examples:
        >>> TABLES: NodeVar[dict[str, int]] = NodeVar("myapp.tables", dict)
        >>> TABLES.get()["hits"] = 1    # this node's dict; another node has its own
    """

    __slots__ = ("_factory", "name")

    def __init__(self, name: str, factory: Callable[[], T]) -> None:
        self.name = name
        self._factory = factory

    def __repr__(self) -> str:
        return f"<NodeVar {self.name}>"

    def get(self, node: Node | None = None) -> T:
        """This node's value (made now if it has none yet)."""
        values = _node(node)._vars
        try:
            value: T = values[self]
        except KeyError:
            value = values[self] = self._factory()
        return value

    def set(self, value: T, node: Node | None = None) -> None:
        """Replace this node's value."""
        _node(node)._vars[self] = value

    def is_set(self, node: Node | None = None) -> bool:
        """True if this node has a value (read or set) already."""
        return self in _node(node)._vars


def _node(node: Node | None) -> Node:
    if node is not None:
        return node
    p = get_current()
    if p is None:
        raise NotInProcess("a NodeVar needs a node: call it from a process, or pass node=")
    n: Node = p.node
    return n
