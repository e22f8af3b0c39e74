"""Server names (docs/semantics.md §5.5): a pid, a local name, `(name, node)`, `Via` or
`Global`.

`Via(registry, key)` names a process through any object with the via protocol
(`register_name`, `unregister_name`, `whereis_name`, `send`), e.g. a `Registry`.
`Global(name)` is Erlang's `{global, Name}`, served by the node's global name registry
once one is installed (`install_global`; a visible distributed node installs
`beamlet.distribution.global_`). Registering one is a call to the cluster, so it is
asynchronous (`register_global`); looking one up reads the node's replica. Until a
registry is installed a global name resolves to nothing and cannot be registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from beamlet import _core as api
from beamlet._core import Atom, BadArgument, NodeVar, Pid

__all__ = [
    "Global",
    "ServerRef",
    "Via",
    "GlobalRegistry",
    "ViaRegistry",
    "install_global",
    "register_global",
    "register_name",
    "resolve",
    "unregister_name",
]


class ViaRegistry(Protocol):
    """What a `Via` name needs from its registry (Erlang's via module)."""

    def register_name(self, key: Any, pid: Pid) -> bool: ...

    def unregister_name(self, key: Any) -> None: ...

    def whereis_name(self, key: Any) -> Pid | None: ...

    def send(self, key: Any, msg: Any) -> None: ...


class GlobalRegistry(Protocol):
    """What `Global` names need from a cluster-wide registry (Erlang's `global`):
    registration agrees with every node, so it is awaited; lookups are local."""

    async def register_name(self, name: Any, pid: Pid) -> bool: ...

    def whereis_name(self, name: Any) -> Pid | None: ...


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
        Global(name='ledger')
    """

    name: Any


ServerRef = Pid | str | Atom | tuple[Any, Any] | Via | Global

# the registry serving this node's Global names (installed by a `global` implementation)
_GLOBAL_REGISTRY: NodeVar[GlobalRegistry | None] = NodeVar("beamlet.global_registry", lambda: None)


def install_global(registry: GlobalRegistry | None, node: api.Node | None = None) -> None:
    """Make `registry` serve `node`'s (default: this node's) `Global` names; None
    removes it. The hook a `global` implementation plugs into."""
    _GLOBAL_REGISTRY.set(registry, node)


def _global() -> GlobalRegistry | None:
    return _GLOBAL_REGISTRY.get()


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


def register_name(name: str | Atom | Via | Global, pid: Pid) -> Pid | None:
    """Register `pid` under `name`; returns None on success, else the current holder
    (or the pid itself when the holder is unknown) — for `already_started` errors.
    A `Global` name is registered with `register_global`."""
    if type(name) is Global:
        raise BadArgument(f"{name!r} is registered with await register_global(...)")
    if type(name) is Via:
        if name.registry.register_name(name.key, pid):
            return None
        return name.registry.whereis_name(name.key) or pid
    holder = api.whereis(name)  # type: ignore[arg-type]
    if holder is not None:
        return holder
    api.register(name, pid)  # type: ignore[arg-type]
    return None


async def register_global(name: Global, pid: Pid) -> Pid | None:
    """Register `pid` under the cluster-wide `name` (Erlang's `global:register_name/2`,
    as `gen` does for `{global, Name}`): None on success, else the holder (or `pid` when
    the name is refused for another reason, e.g. `pid` has a global name already)."""
    reg = _global()
    if reg is None:
        raise BadArgument(f"no global name registry on this node for {name!r}")
    if await reg.register_name(name.name, pid):
        return None
    return reg.whereis_name(name.name) or pid


def unregister_name(name: str | Atom | Via | Global) -> None:
    if type(name) is Global:
        pass  # the registry drops a global name when its process exits (global monitors it)
    elif type(name) is Via:
        name.registry.unregister_name(name.key)
    else:
        try:
            api.unregister(name)  # type: ignore[arg-type]
        except Exception:
            pass
