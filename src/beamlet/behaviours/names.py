"""Server names (docs/semantics.md §5.5): a pid, a local name, `(name, node)`, `Via` or
`Global`.

`Via(registry, key)` names a process through any object with the via protocol
(`register_name`, `unregister_name`, `whereis_name`, `send`), e.g. a `Registry`. A
registry's `register_name` may be a coroutine function (a cluster-wide registry must ask
other nodes): a start then awaits it in the new process, before `init`.
`Global(name)` is Erlang's `{global, Name}`: the same protocol, served by the node's
global name registry once one is installed (`install_global`, done by a visible
distributed node); until then a global name resolves to nothing and cannot be registered.
A `str` name is an atom, as for local names.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from beamlet import _core as api
from beamlet._core import Atom, BadArgument, Node, NodeVar, Pid

__all__ = [
    "Global",
    "ServerRef",
    "Via",
    "ViaRegistry",
    "install_global",
    "register_name",
    "resolve",
    "unregister_name",
]


class ViaRegistry(Protocol):
    """What a `Via` name needs from its registry (Erlang's via module)."""

    def register_name(self, key: Any, pid: Pid) -> bool | Awaitable[bool]: ...

    def unregister_name(self, key: Any) -> Awaitable[None] | None: ...

    def whereis_name(self, key: Any) -> Pid | None: ...

    def send(self, key: Any, msg: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Via:
    """A name kept by a registry: `Via(registry, key)`; `value` is stored with it.

    Examples:
        >>> from beamlet import Agent, Registry, Via
        >>> await Registry.start_link(keys="unique", name="reg")
        <...>
        >>> name = Registry.via("reg", ("user", 42))
        >>> isinstance(name, Via)
        True
        >>> pid = await Agent.start_link(lambda: "state", name=name)
        >>> Registry.whereis_name("reg", ("user", 42)) == pid
        True
    """

    registry: ViaRegistry
    key: Any
    value: Any = None


@dataclass(frozen=True, slots=True)
class Global:
    """Erlang's `{global, Name}`: a name kept by the node's global registry.

    Examples:
        >>> from beamlet import Global
        >>> Global("ledger")      # served on visible distributed nodes (beamlet.distribution)
        Global(name=Atom('ledger'))
    """

    name: Any

    def __post_init__(self) -> None:
        if type(self.name) is str:  # a str name is an atom, as for local names
            object.__setattr__(self, "name", Atom(self.name))


ServerRef = Pid | str | Atom | tuple[Any, Any] | Via | Global

# the registry serving this node's Global names (installed by a `global` implementation)
_GLOBAL_REGISTRY: NodeVar[ViaRegistry | None] = NodeVar("beamlet.global_registry", lambda: None)


def install_global(registry: ViaRegistry | None, node: Node | None = None) -> None:
    """Make `registry` serve `node`'s (default: this node's) `Global` names (None removes
    it). The hook a `global` implementation plugs into; per node."""
    _GLOBAL_REGISTRY.set(registry, node)


def _global() -> ViaRegistry | None:
    return _GLOBAL_REGISTRY.get()


def _as_via(name: Global) -> Via:
    reg = _global()
    if reg is None:
        raise BadArgument(f"no global name registry on this node for {name!r}")
    return Via(reg, name.name)


def resolve(server: ServerRef) -> Pid | tuple[Atom, Atom] | None:
    """The pid (or remote `(name, node)`) a server name stands for now, or None."""
    if type(server) is Pid:
        return server
    if type(server) is str or type(server) is Atom:
        return api.whereis(server)
    if type(server) is Via:
        return server.registry.whereis_name(server.key)
    if type(server) is Global:
        reg = _global()
        return reg.whereis_name(server.name) if reg is not None else None
    if type(server) is tuple and len(server) == 2:
        name, node = Atom(server[0]), Atom(server[1])
        if node == api.node_name():
            return api.whereis(name)
        return (name, node)
    raise TypeError(f"not a server reference: {server!r}")


async def register_name(name: str | Atom | Via | Global, pid: Pid) -> Pid | None:
    """Register `pid` under `name`; returns None on success, else the current holder
    (or the pid itself when the holder is unknown) — for `already_started` errors. An
    async registry's registration is awaited (global's is a call to every node)."""
    if type(name) is Global:
        name = _as_via(name)
    if type(name) is Via:
        done = name.registry.register_name(name.key, pid)
        if inspect.isawaitable(done):
            done = await done
        if done:
            return None
        return name.registry.whereis_name(name.key) or pid
    holder = api.whereis(name)  # type: ignore[arg-type]
    if holder is not None:
        return holder
    api.register(name, pid)  # type: ignore[arg-type]
    return None


def unregister_name(name: str | Atom | Via | Global) -> None:
    """Release `name`; an async registry's unregistration runs in a process of its own
    (the caller does not wait for it)."""
    done: Any = None
    if type(name) is Global:
        reg = _global()
        if reg is not None:
            done = reg.unregister_name(name.name)
    elif type(name) is Via:
        done = name.registry.unregister_name(name.key)
    else:
        try:
            api.unregister(name)  # type: ignore[arg-type]
        except Exception:
            pass
    if inspect.isawaitable(done):

        async def finish() -> None:
            await done

        api.spawn(finish)
