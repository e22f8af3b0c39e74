"""The errors of `beamlet.observe`'s API boundary."""

from __future__ import annotations

from typing import Any

from beamlet._core import BeamletError, NoProcError

__all__ = ["NodeUnreachable", "NoProcError", "ObserveError", "TooBroad"]


class ObserveError(BeamletError):
    """Base class of the errors `beamlet.observe` raises."""


class NodeUnreachable(ObserveError, LookupError):
    """Introspecting a pid (or node) of another node that is not connected.

    Examples:
        >>> from beamlet import observe
        >>> observe.process_info(beamlet.Pid("gone@host", 42, 0))
        Traceback (most recent call last):
        ...
        beamlet.observe.errors.NodeUnreachable: <...> is on node 'gone@host', which is not connected
    """

    def __init__(self, node: Any, what: Any = None) -> None:
        shown = f"{what!r} is on node {str(node)!r}, which" if what is not None else str(node)
        super().__init__(f"{shown} is not connected")
        self.node = node


class TooBroad(ObserveError, ValueError):
    """A trace request that would match (nearly) everything, or has no limit."""
