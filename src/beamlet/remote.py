"""Processes on other nodes, named by import path: remote spawn and remote children.

A function on another node is named by its import path, `"package.module:function"`
(or `"package.module:Class.method"`), never by a Python object: only the Erlang term
format crosses the wire (no pickles), and the other node imports the module itself. The
other node must allow it: a peer started by `beamlet.peer` does (`allow_import=True`);
another beamlet node needs `allow_import=True` or the function registered under that
module and name (`beamlet.distribution.register_function`). Arguments must be terms
(numbers, `str`, bytes, tuples, lists, dicts, atoms, pids; a `str` stays a `str` between
beamlet nodes, an Erlang node sees a binary).

`spawn`, `spawn_link` and `spawn_monitor` start a process whose body is that function
(sync or async) on a node; `child_spec` makes a Supervisor child that is started on
another node. When the connection to the node is lost, the child exits with reason
`noconnection`, as in OTP: the supervisor restarts it if its restart type says so,
which fails (counted toward the restart intensity) until a listed node is reachable.

Examples:
    A process on a peer node sends a message back (its body is `beamlet.send`):

    >>> from beamlet import peer, remote
    >>> async def main() -> None:
    ...     p = await peer.start()
    ...     await remote.spawn(p.node, "beamlet:send", [beamlet.self(), "hi from the peer"])
    ...     print(await beamlet.receive(timeout=5))
    ...     await peer.stop(p)
    >>> beamlet.run(main, name="remote_doc@127.0.0.1", cookie="secret")
    hi from the peer
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import beamlet
from beamlet import Atom, Pid, Ref
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.distribution import api as dist
from beamlet.distribution import rpc

__all__ = [
    "child_spec",
    "resolve",
    "run_start",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "split_path",
]

_SELF = "beamlet.remote"


def split_path(path: str) -> tuple[str, str]:
    """`"pkg.mod:fn"` as `("pkg.mod", "fn")`; raises `BadArgument` for anything else.

    Examples:
        >>> from beamlet.remote import split_path
        >>> split_path("os.path:join")
        ('os.path', 'join')
        >>> split_path("os.path.join")
        Traceback (most recent call last):
        beamlet.BadArgument: a function path is 'package.module:function', not 'os.path.join'
    """
    if type(path) is not str:
        raise beamlet.BadArgument(f"a function path is a 'package.module:function' str: {path!r}")
    module, sep, name = path.partition(":")
    parts = [*module.split("."), *name.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        raise beamlet.BadArgument(f"a function path is 'package.module:function', not {path!r}")
    return module, name


def resolve(path: str) -> Callable[..., Any]:
    """Import the function named by `path` here (`"pkg.mod:fn"`, `"pkg.mod:Cls.meth"`).
    Raises `BadArgument` when the path is malformed or names nothing callable.

    Examples:
        >>> from beamlet.remote import resolve
        >>> resolve("math:factorial")(5)
        120
        >>> resolve("beamlet:Supervisor.start_link").__qualname__
        'Supervisor.start_link'
    """
    module, name = split_path(path)
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise beamlet.BadArgument(f"cannot resolve {path!r}: {e}") from None
    if not callable(obj):
        raise beamlet.BadArgument(f"{path!r} is not callable")
    fn: Callable[..., Any] = obj
    return fn


def _text(x: Any) -> str:
    return x.decode() if type(x) is bytes else str(x)


async def apply(path: Any, args: Any) -> Any:
    """Call the function named by `path` with `args`, awaiting it if async (the body a
    remote spawn of a dotted path runs on the other node)."""
    result = resolve(_text(path))(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_start(path: Any, args: Any, parent: Pid | None = None) -> Pid:
    """Run a start function (`"pkg.mod:Server.start_link"`) here, for a supervisor on
    another node: it must return the started pid, which is unlinked from this temporary
    process so that the supervisor can link to it. The server records `parent` (the
    supervisor) as its parent, so that the supervisor's shutdown stops it as a local
    child's would, even when it traps exits.

    Examples:
        >>> from beamlet.remote import run_start
        >>> pid = await run_start("beamlet:Supervisor.start_link", [[]], beamlet.self())
        >>> beamlet.is_alive(pid), pid in beamlet.process_info(beamlet.self()).links
        (True, False)
        >>> await run_start("math:factorial", [3])
        Traceback (most recent call last):
        beamlet.StartError: start failed: (Atom('bad_start_return'), 6)
    """
    with gen.starting_for(beamlet.self() if parent is None else parent):
        pid = await apply(path, args)
    if type(pid) is not Pid:
        raise StartError((Atom("bad_start_return"), pid))
    beamlet.unlink(pid)
    return pid


def _target(path: str, args: Sequence[Any]) -> tuple[str, str, list[Any]]:
    module, name = split_path(path)
    if not isinstance(args, list | tuple):
        raise beamlet.BadArgument(f"args must be a list or tuple, not {args!r}")
    if "." in name:  # getattr of one name on the other side: go through apply
        return _SELF, "apply", [path, list(args)]
    return module, name, list(args)


async def spawn(
    node: str | Atom, path: str, args: Sequence[Any] = (), *, timeout: float | None = 10.0
) -> Pid:
    """Start the function at `path` with `args` as a new process on `node` (a pid;
    Erlang's `spawn/4`). Raises `SpawnError` if the node refuses or is unreachable. A
    name the node cannot import makes the new process exit with `undef`.

    Examples:
        >>> from beamlet import Down, peer, remote
        >>> async def main() -> None:
        ...     p = await peer.start()
        ...     pid = await remote.spawn(p.node, "beamlet:receive", [])  # waits for a message
        ...     ref = beamlet.monitor(pid)
        ...     beamlet.exit(pid, "stop")
        ...     down = await beamlet.receive(Down, timeout=5)
        ...     print(pid.node == p.node, down.ref == ref, down.reason)
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="remote_spawn@127.0.0.1", cookie="secret")
        True True stop
    """
    module, name, arglist = _target(path, args)
    return await dist.spawn(node, module, name, arglist, timeout=timeout)


async def spawn_link(
    node: str | Atom, path: str, args: Sequence[Any] = (), *, timeout: float | None = 10.0
) -> Pid:
    """As `spawn`, linked to the caller before the process runs (`spawn_link/4`); the
    link fires with `noconnection` when the connection is lost.

    Examples:
        >>> from beamlet import Exit, peer, remote
        >>> async def main() -> None:
        ...     beamlet.process_flag(trap_exit=True)
        ...     p = await peer.start()
        ...     pid = await remote.spawn_link(p.node, "beamlet:exit", ["bye"])
        ...     exit = await beamlet.receive(Exit, timeout=5)
        ...     print(exit.pid == pid, exit.reason)
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="remote_link@127.0.0.1", cookie="secret")
        True bye
    """
    module, name, arglist = _target(path, args)
    return await dist.spawn_link(node, module, name, arglist, timeout=timeout)


async def spawn_monitor(
    node: str | Atom, path: str, args: Sequence[Any] = (), *, timeout: float | None = 10.0
) -> tuple[Pid, Ref]:
    """As `spawn`, monitored by the caller (`spawn_monitor/4`): a `Down` with the ref
    arrives when the process ends, with reason `noconnection` if the node is lost.

    Examples:
        >>> from beamlet import Down, peer, remote
        >>> async def main() -> None:
        ...     p = await peer.start()
        ...     for path in ["math:factorial", "nosuchmodule:f"]:
        ...         pid, ref = await remote.spawn_monitor(p.node, path, [3])
        ...         down = await beamlet.receive(Down, timeout=5)
        ...         print(down.ref == ref, down.reason)
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="remote_monitor@127.0.0.1", cookie="secret")
        True normal
        True (Atom('undef'), [(Atom('nosuchmodule'), Atom('f'), [3], [])])
    """
    module, name, arglist = _target(path, args)
    return await dist.spawn_monitor(node, module, name, arglist, timeout=timeout)


def _nodes(node: str | Atom | Sequence[str | Atom]) -> list[Atom]:
    if isinstance(node, str):
        return [Atom(node)]
    nodes = [Atom(str(n)) for n in node]
    if not nodes:
        raise beamlet.BadArgument("child_spec needs at least one node")
    return nodes


async def _start_body(nodes: list[Atom], path: str, args: tuple[Any, ...], timeout: float) -> Pid:
    last: Any = beamlet.NOCONNECTION
    for node in nodes:
        try:
            return await spawn_link(node, path, args, timeout=timeout)
        except dist.SpawnError as e:
            last = e.reason
    raise StartError(last)


async def _start_server(nodes: list[Atom], path: str, args: tuple[Any, ...], timeout: float) -> Pid:
    last: Any = beamlet.NOCONNECTION
    for node in nodes:
        try:
            pid = await rpc.call(
                node, _SELF, "run_start", [path, list(args), beamlet.self()], timeout=timeout
            )
        except dist.RpcError as e:
            last = e.reason
            if e.kind != "erpc":  # the start function itself failed: do not try elsewhere
                raise StartError(e.reason) from None
            continue
        beamlet.link(pid)  # a pid that died meanwhile gives an Exit noproc: a restart
        return pid  # type: ignore[no-any-return]
    raise StartError(last)


def child_spec(
    node: str | Atom | Sequence[str | Atom],
    path: str,
    args: tuple[Any, ...] = (),
    *,
    body: bool = False,
    id: Any = None,
    timeout: float = 10.0,
    **overrides: Any,
) -> ChildSpec:
    """A Supervisor child started on another node: the first of `node` (one name or a
    list tried in order) that answers.

    By default `path` names a start function that returns the child's pid, such as
    `"pkg.mod:Server.start_link"`: it runs on that node in a temporary process, and the
    supervisor links to the pid it returns. With `body=True`, `path` is the process
    body itself, spawned linked to the supervisor. `id` defaults to `path`; the other
    keyword arguments are `ChildSpec` fields (`restart`, `shutdown`...).

    A lost connection ends the child with `noconnection` (abnormal: a permanent or
    transient child is restarted, on the first listed node that answers).

    The started server takes the supervisor as its parent (`run_start`), so one that
    traps exits (a Supervisor, a GenServer with `trap_exit`) terminates on the
    supervisor's shutdown as a local child does.

    Examples:
        A supervisor here, its child on a peer node (a process body: `beamlet.receive`
        waits for a message):

        >>> from beamlet import Supervisor, peer, remote
        >>> async def main() -> None:
        ...     p = await peer.start()
        ...     spec = remote.child_spec(p.node, "beamlet:receive", body=True, id="waiter")
        ...     sup = await Supervisor.start_link([spec], strategy="one_for_one")
        ...     [child] = await Supervisor.which_children(sup)
        ...     print(child.id, child.pid.node == p.node)
        ...     await Supervisor.stop(sup)
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="remote_child@127.0.0.1", cookie="secret")
        waiter True
    """
    nodes = _nodes(node)
    split_path(path)
    start = _start_body if body else _start_server
    spec = ChildSpec(id=path if id is None else id, start=start, args=(nodes, path, args, timeout))
    return spec.with_overrides(**overrides) if overrides else spec
