"""Server names (docs/semantics.md §5.5): a pid, a local name, `(name, node)`, or `Via`.

`Via(registry, key)` names a process through any object with the via protocol
(`register_name`, `unregister_name`, `whereis_name`, `send`), e.g. a `Registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from beamlet import _core as api
from beamlet._core import Atom, Pid

__all__ = ["ServerRef", "Via", "ViaRegistry", "resolve", "register_name", "unregister_name"]


class ViaRegistry(Protocol):
    """What a `Via` name needs from its registry (Erlang's via module)."""

    def register_name(self, key: Any, pid: Pid) -> bool: ...

    def unregister_name(self, key: Any) -> None: ...

    def whereis_name(self, key: Any) -> Pid | None: ...

    def send(self, key: Any, msg: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Via:
    """A name kept by a registry: `Via(registry, key)`; `value` is stored with it."""

    registry: ViaRegistry
    key: Any
    value: Any = None


ServerRef = Pid | str | Atom | tuple[Any, Any] | Via


def resolve(server: ServerRef) -> Pid | tuple[Atom, Atom] | None:
    """The pid (or remote `(name, node)`) a server name stands for now, or None."""
    if type(server) is Pid:
        return server
    if type(server) is str or type(server) is Atom:
        return api.whereis(server)
    if type(server) is Via:
        return server.registry.whereis_name(server.key)
    if type(server) is tuple and len(server) == 2:
        name, node = Atom(server[0]), Atom(server[1])
        if node == api.node_name():
            return api.whereis(name)
        return (name, node)
    raise TypeError(f"not a server reference: {server!r}")


def register_name(name: str | Atom | Via, pid: Pid) -> Pid | None:
    """Register `pid` under `name`; returns None on success, else the current holder
    (or the pid itself when the holder is unknown) — for `already_started` errors."""
    if type(name) is Via:
        if name.registry.register_name(name.key, pid):
            return None
        return name.registry.whereis_name(name.key) or pid
    holder = api.whereis(name)  # type: ignore[arg-type]
    if holder is not None:
        return holder
    api.register(name, pid)  # type: ignore[arg-type]
    return None


def unregister_name(name: str | Atom | Via) -> None:
    if type(name) is Via:
        name.registry.unregister_name(name.key)
    else:
        try:
            api.unregister(name)  # type: ignore[arg-type]
        except Exception:
            pass
