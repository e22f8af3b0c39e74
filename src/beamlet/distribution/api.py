"""The distribution API for processes: other nodes, remote spawn, rpc.

Every function here is called from inside a beamlet process and acts for it; the node
is the caller's node, which must be distributed (`beamlet.run(main, name="a@host")`,
`python -m beamlet node --name ...` or `start_distribution`), else `NotDistributed` is
raised. Node names are `name@host` strings or atoms.

Pids, references and registered names of other nodes work with the ordinary process API
(`send`, `link`, `monitor`, `exit`...): the first signal to a node connects to it. When
a connection is lost, links and monitors across it fire with `noconnection`
(docs/semantics.md §1.5).

Examples:
    >>> from beamlet import distribution as dist
    >>> async def main() -> None:
    ...     print(dist.node(), await dist.rpc.call(dist.node(), "erlang", "node", []))
    >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
    a@127.0.0.1 a@127.0.0.1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from beamlet._core import (
    NOCONNECTION,
    TIMEOUT,
    Atom,
    BadArgument,
    Caller,
    Down,
    Pid,
    Ref,
    caller,
    check_timeout,
    receive,
)
from beamlet.distribution.distribution import Distribution
from beamlet.distribution.erpc import ERPC, EXECUTE_CALL, EXECUTE_CAST, SpawnReply
from beamlet.distribution.net_kernel import DistributionError, NodeDown

__all__ = [
    "NodeDown",
    "NotDistributed",
    "RpcError",
    "SpawnError",
    "connect",
    "disconnect",
    "get_distribution",
    "monitor_node",
    "node",
    "nodes",
    "register_function",
    "rpc_call",
    "rpc_cast",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "unregister_function",
]

_RETURN = Atom("return")
_THROW = Atom("throw")
_EXIT = Atom("exit")
_ERROR = Atom("error")


class NotDistributed(DistributionError):
    """A distribution function was called on a node that is not distributed."""


class SpawnError(DistributionError):
    """A remote spawn failed: the other node refused it (`badarg`, `notsup`...) or could
    not be reached (`noconnection`). `reason` is Erlang's error atom."""

    def __init__(self, node: Atom, module: str, function: str, reason: Any) -> None:
        super().__init__(f"cannot spawn {module}:{function} on {node}: {reason}")
        self.node = node
        self.reason = reason


class RpcError(DistributionError):
    """A remote call failed. `kind` says how, as erpc does:

    * ``"error"``, ``"exit"``, ``"throw"`` — the called function raised (its Erlang class);
      `reason` is the error term, `stacktrace` its stack for ``"error"``. A Python
      function's exception arrives as ``(python, TypeName, Message)``; an undefined
      function as ``undef``.
    * ``"erpc"`` — the call could not complete: `reason` is ``noconnection``,
      ``timeout``, ``notsup`` or ``badarg``.
    * ``"signal"`` — the process running the call was killed by an exit signal `reason`.

    Examples:
        >>> from beamlet.distribution import RpcError, node, rpc
        >>> async def main() -> None:
        ...     try:
        ...         await rpc.call(node(), "lists", "nope", [])
        ...     except RpcError as e:
        ...         print(e.kind, e.reason)
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        error undef
    """

    def __init__(self, kind: str, reason: Any, stacktrace: Any = None) -> None:
        super().__init__(f"rpc failed: {kind} {reason!r}")
        self.kind = kind
        self.reason = reason
        self.stacktrace = stacktrace


# --- finding the caller's distribution ---------------------------------------------------


def _me() -> Caller:
    return caller()


def _dist_of(p: Caller) -> Distribution:
    d = p.node.dist
    if not isinstance(d, Distribution):
        raise NotDistributed(
            f"node {p.node.name} is not distributed: give it a name@host "
            "(beamlet.run(main, name=..., cookie=...)) or call start_distribution"
        )
    return d


def _node_name(node: Any) -> Atom:
    if type(node) is Atom:
        return node
    if type(node) is str:
        return Atom(node)
    raise BadArgument(f"a node name is a str or Atom, not {node!r}")


def _fn_name(name: Any, what: str) -> Atom:
    if type(name) is Atom:
        return name
    if type(name) is str:
        return Atom(name)
    raise BadArgument(f"{what} must be a str or Atom, not {name!r}")


def _args(args: Any) -> list[Any]:
    if isinstance(args, list | tuple):
        return list(args)
    raise BadArgument(f"args must be a list or tuple, not {args!r}")


def get_distribution() -> Distribution:
    """The `Distribution` of the caller's node (for lower-level use).

    Examples:
        >>> from beamlet.distribution import get_distribution
        >>> async def main() -> None:
        ...     print(get_distribution().name, get_distribution().hidden)
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        a@127.0.0.1 True
    """
    return _dist_of(_me())


# --- nodes -----------------------------------------------------------------------------------


def node() -> Atom:
    """The caller's node name (Erlang's `node()`).

    Examples:
        >>> from beamlet.distribution import node
        >>> async def main() -> None:
        ...     print(repr(node()))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        Atom('a@127.0.0.1')
    """
    return _me().node.name


def nodes() -> list[Atom]:
    """The nodes this node is connected to, sorted (hidden and visible alike).

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import connect, nodes, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         print(nodes(), await connect("b@127.0.0.1"), nodes())
        ...         await b_dist.stop()
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        [] True [Atom('b@127.0.0.1')]
    """
    return _dist_of(_me()).nodes()


async def connect(node: str | Atom) -> bool:
    """Connect to `node` (Erlang's `net_kernel:connect_node/1`): True once connected,
    False if it cannot be reached or refuses us (unknown name, wrong cookie...).

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import connect, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         print(await connect("b@127.0.0.1"), await connect("nobody@127.0.0.1"))
        ...         await b_dist.stop()
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        True False
    """
    return await _dist_of(_me()).connect(_node_name(node))


def disconnect(node: str | Atom) -> bool:
    """Close the connection to `node` (Erlang's `disconnect_node/1`); False if there was
    none. Links and monitors across it fire with `noconnection` on both sides.

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import connect, disconnect, nodes, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         await connect("b@127.0.0.1")
        ...         print(disconnect("b@127.0.0.1"), nodes(), disconnect("b@127.0.0.1"))
        ...         await b_dist.stop()
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        True [] False
    """
    return _dist_of(_me()).disconnect(_node_name(node))


def monitor_node(node: str | Atom, enable: bool = True) -> None:
    """Get `NodeDown(node)` when the connection to `node` is lost, or soon if it cannot
    be made (Erlang's `monitor_node/2`). Each call with `enable=True` adds one
    subscription, each delivers one `NodeDown`; `enable=False` removes one.

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import NodeDown, connect, monitor_node, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         await connect("b@127.0.0.1")
        ...         monitor_node("b@127.0.0.1")
        ...         await b_dist.stop()  # b goes away
        ...     print(await beamlet.receive(NodeDown, timeout=1))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        NodeDown(node=Atom('b@127.0.0.1'))
    """
    p = _me()
    d = _dist_of(p)
    if enable:
        d.monitor_node(p.pid, _node_name(node))
    else:
        d.demonitor_node(p.pid, _node_name(node))


# --- functions other nodes can call ----------------------------------------------------------


def register_function(module: str, name: str, fn: Callable[..., Any]) -> None:
    """Make `fn` callable from other nodes as `module:name`: by Erlang's `rpc:call/4`,
    `erpc:call/4`, `spawn/4` and by `rpc.call`/`spawn` from other beamlet nodes.

    `fn` may be sync or async; each call runs in a fresh process of this node, so it may
    use the process API. Its arguments arrive as decoded terms (binaries as `bytes`); its
    return value must be encodable. An exception reaches an Erlang caller as
    `error({python, TypeName, Message})`; `beamlet.exit(reason)` as `exit(reason)`.

    Examples:
        >>> from beamlet.distribution import node, register_function, rpc
        >>> async def main() -> None:
        ...     register_function("math", "add", lambda a, b: a + b)
        ...     # from erl: rpc:call('a@127.0.0.1', math, add, [1, 2]).
        ...     print(await rpc.call(node(), "math", "add", [1, 2]))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        3
    """
    _dist_of(_me()).register_function(module, name, fn)


def unregister_function(module: str, name: str) -> bool:
    """Remove a function registered with `register_function`; True if it was there.

    Examples:
        >>> from beamlet.distribution import register_function, unregister_function
        >>> async def main() -> None:
        ...     register_function("math", "add", lambda a, b: a + b)
        ...     print(unregister_function("math", "add"), unregister_function("math", "add"))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        True False
    """
    return _dist_of(_me()).unregister_function(module, name)


# --- remote spawn ------------------------------------------------------------------------


async def _spawn(
    node: str | Atom,
    module: str | Atom,
    function: str | Atom,
    args: Sequence[Any],
    *,
    link: bool,
    monitor: bool,
    timeout: float | None,
) -> tuple[Pid, Ref | None]:
    p = _me()
    d = _dist_of(p)
    target = _node_name(node)
    mod, fn, arglist = _fn_name(module, "module"), _fn_name(function, "function"), _args(args)
    seconds = check_timeout(timeout)
    if target == p.node.name:
        body, body_args = d.spawn_body(mod, fn, arglist)
        if monitor:
            pid, mref = p.node.spawn_monitor(body, *body_args)
            return pid, mref
        return p.node.spawn(body, *body_args, link=link), None
    ref = d.spawn_request(p.pid, target, mod, fn, arglist, link=link, monitor=monitor)
    msg = await receive(
        lambda m: type(m) is SpawnReply and m.ref == ref, timeout=seconds, since=ref, default=None
    )
    if msg is None:
        if not d.abandon_spawn(ref):  # the reply raced in: take it
            msg = await receive(
                lambda m: type(m) is SpawnReply and m.ref == ref, timeout=0, default=None
            )
        if msg is None:
            raise SpawnError(target, str(mod), str(fn), TIMEOUT)
    if type(msg.result) is not Pid:
        raise SpawnError(target, str(mod), str(fn), msg.result)
    return msg.result, (ref if monitor else None)


async def spawn(
    node: str | Atom,
    module: str | Atom,
    function: str | Atom,
    args: Sequence[Any] = (),
    *,
    timeout: float | None = None,
) -> Pid:
    """Start `module:function(*args)` as a new process on `node` and return its pid
    (a SPAWN_REQUEST, as Erlang's `spawn/4`). On a beamlet node the function is one
    registered with `register_function`; an unknown one starts and exits with `undef`.
    Raises `SpawnError` if the node refuses or cannot be reached (`noconnection`), or
    gives no answer within `timeout` seconds (None: wait for the answer or the loss of
    the connection).

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import spawn, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         b_dist.register_function("demo", "hello", lambda to: beamlet.send(to, "hi"))
        ...         pid = await spawn("b@127.0.0.1", "demo", "hello", [beamlet.self()])
        ...         print(pid.node, await beamlet.receive(str, timeout=1))
        ...         await b_dist.stop()
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        b@127.0.0.1 hi
    """
    pid, _ = await _spawn(node, module, function, args, link=False, monitor=False,
                          timeout=timeout)  # fmt: skip
    return pid


async def spawn_link(
    node: str | Atom,
    module: str | Atom,
    function: str | Atom,
    args: Sequence[Any] = (),
    *,
    timeout: float | None = None,
) -> Pid:
    """As `spawn`, linked to the caller atomically: the link exists before the new
    process runs (Erlang's `spawn_link/4`).

    Examples:
        >>> from beamlet.distribution import node, register_function, spawn_link
        >>> async def main() -> None:
        ...     register_function("demo", "stop", lambda: beamlet.exit("boom"))
        ...     beamlet.process_flag(trap_exit=True)
        ...     pid = await spawn_link(node(), "demo", "stop", [])
        ...     print(await beamlet.receive(beamlet.Exit, timeout=1) == beamlet.Exit(pid, "boom"))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        True
    """
    pid, _ = await _spawn(node, module, function, args, link=True, monitor=False,
                          timeout=timeout)  # fmt: skip
    return pid


async def spawn_monitor(
    node: str | Atom,
    module: str | Atom,
    function: str | Atom,
    args: Sequence[Any] = (),
    *,
    timeout: float | None = None,
) -> tuple[Pid, Ref]:
    """As `spawn`, monitored by the caller atomically; returns `(pid, ref)` and a `Down`
    with that ref arrives when the process ends (Erlang's `spawn_monitor/4`).

    Examples:
        >>> from beamlet.distribution import node, spawn_monitor
        >>> async def main() -> None:
        ...     pid, ref = await spawn_monitor(node(), "no_such", "function", [])
        ...     down = await beamlet.receive(beamlet.Down, timeout=1)
        ...     print(down.ref == ref, down.reason[0])
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        True undef
    """
    pid, ref = await _spawn(node, module, function, args, link=False, monitor=True,
                            timeout=timeout)  # fmt: skip
    assert ref is not None
    return pid, ref


# --- rpc ---------------------------------------------------------------------------------


def _result(res: Ref, reason: Any) -> Any:
    """erpc's result/4: the DOWN reason of the process that ran the call."""
    if type(reason) is tuple and len(reason) >= 3 and reason[0] == res:
        kind = reason[1]
        if kind == _RETURN and len(reason) == 3:
            return reason[2]
        if kind == _THROW and len(reason) == 3:
            raise RpcError("throw", reason[2])
        if kind == _EXIT and len(reason) == 3:
            raise RpcError("exit", reason[2])
        if kind == _ERROR and len(reason) == 4:
            raise RpcError("error", reason[2], reason[3])
        if (
            kind == _ERROR
            and len(reason) == 3
            and type(reason[2]) is tuple
            and len(reason[2]) == 2
            and reason[2][0] == ERPC
        ):
            raise RpcError("erpc", reason[2][1])
    if reason == NOCONNECTION:
        raise RpcError("erpc", NOCONNECTION)
    raise RpcError("signal", reason)


async def rpc_call(
    node: str | Atom,
    module: str | Atom,
    function: str | Atom,
    args: Sequence[Any] = (),
    timeout: float | None = 5.0,
) -> Any:
    """Call `module:function(*args)` on `node` and return its result, as Erlang's
    `erpc:call/5`: a process is spawned there (erpc:execute_call) and the result comes
    back as its exit reason, so a lost connection or a crash can never leave the caller
    waiting. Raises `RpcError` (see its `kind`) when the function raises, when `node`
    cannot be reached (``noconnection``), or after `timeout` seconds (``timeout``; the
    remote process is left to finish, as erpc does). Works on the caller's own node too.

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import rpc, start_distribution
        >>> async def main() -> None:
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         print(repr(await rpc.call("b@127.0.0.1", "erlang", "node", [])))
        ...         await b_dist.stop()
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        Atom('b@127.0.0.1')
    """
    p = _me()
    d = _dist_of(p)
    target = _node_name(node)
    mod, fn, arglist = _fn_name(module, "module"), _fn_name(function, "function"), _args(args)
    seconds = check_timeout(timeout)
    res = p.node.make_ref()
    if target == p.node.name:
        _pid, ref = p.node.spawn_monitor(d.erpc_call_local, res, mod, fn, arglist)
        since = p.node.make_ref()  # a mark: the answer can only come after it
    else:
        ref = d.spawn_request(p.pid, target, ERPC, EXECUTE_CALL, [res, mod, fn, arglist],
                              monitor=True, reply="error_only")  # fmt: skip
        since = ref

    def answer(m: Any) -> bool:
        return (type(m) is Down or type(m) is SpawnReply) and m.ref == ref

    msg = await receive(answer, timeout=seconds, since=since, default=None)
    if msg is None:
        if d.abandon_spawn(ref) or p.node.demonitor(p.pid, ref):
            raise RpcError("erpc", TIMEOUT)
        msg = await receive(answer, timeout=0, default=None)  # it raced in
        if msg is None:  # pragma: no cover - the monitor fired, so a message is there
            raise RpcError("erpc", TIMEOUT)
    if type(msg) is SpawnReply:
        raise RpcError("erpc", msg.result)
    return _result(res, msg.reason)


def rpc_cast(
    node: str | Atom, module: str | Atom, function: str | Atom, args: Sequence[Any] = ()
) -> None:
    """Run `module:function(*args)` on `node` in a new process and do not wait, as
    Erlang's `erpc:cast/4`; nothing is reported back, even failures.

    Examples:
        >>> from beamlet.distribution import node, register_function, rpc
        >>> async def main() -> None:
        ...     register_function("demo", "notify", lambda to: beamlet.send(to, "done"))
        ...     rpc.cast(node(), "demo", "notify", [beamlet.self()])
        ...     print(await beamlet.receive(str, timeout=1))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        done
    """
    p = _me()
    d = _dist_of(p)
    target = _node_name(node)
    mod, fn, arglist = _fn_name(module, "module"), _fn_name(function, "function"), _args(args)
    if target == p.node.name:
        body, body_args = d.spawn_body(ERPC, EXECUTE_CAST, [mod, fn, arglist])
        p.node.spawn(body, *body_args)
        return
    d.spawn_request(p.pid, target, ERPC, EXECUTE_CAST, [mod, fn, arglist], reply="no")
