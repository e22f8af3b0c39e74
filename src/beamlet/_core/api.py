"""The process API: module-level functions that act for the calling process.

Each finds the caller through the context variable set in every process's context
(`current.py`) and raises `NotInProcess` when there is none. A dead process that keeps
running (it caught the `Terminated` thrown into it) gets `Terminated` again from every
call with side effects, so nothing it does after its death is visible (§3.8).
"""

from __future__ import annotations

import functools
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, NamedTuple, TypeVar, TypeVarTuple

from beamlet._core.current import get_current
from beamlet._core.errors import NotInProcess, ProcessExit
from beamlet._core.isolation import IMMUTABLE_TYPES, isolate
from beamlet._core.node import EXPLICIT_UNALIAS, Node, ProcessInfo, check_timeout
from beamlet._core.process import RUNNABLE, WAIT_ANY, WAIT_RECV, Proc, Terminated
from beamlet._core.receive import receive, wait
from beamlet._core.scheduler import WAKE
from beamlet._core.terms import Atom, Pid, Ref

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_MISSING: Any = object()


def _me() -> Proc:
    p: Proc | None = get_current()
    if p is None:
        raise NotInProcess("this function must be called from inside a beamlet process")
    if not p.alive:
        raise Terminated(p.reason)
    return p


def _peek() -> Proc:
    """The caller, dead or alive (for read-only calls)."""
    p: Proc | None = get_current()
    if p is None:
        raise NotInProcess("this function must be called from inside a beamlet process")
    return p


def self() -> Pid:
    """The pid of the calling process.

    Examples:
        >>> me = beamlet.self()
        >>> beamlet.send(me, "hi")
        >>> await beamlet.receive()
        'hi'
    """
    return _peek().pid


def current_node() -> Node:
    """The `Node` the calling process runs on (for embedding and behaviours).

    Examples:
        >>> node = beamlet.current_node()
        >>> beamlet.self() in node.processes()
        True
    """
    return _peek().node


class Caller(NamedTuple):
    """The calling process, for layers above the kernel that act for it."""

    node: Node
    pid: Pid


def caller() -> Caller:
    """The calling process's node and pid. Raises `NotInProcess` outside a process and
    `Terminated` in a process that is already dead (it must have no side effects).

    Examples:
        >>> node, me = caller()
    """
    p = _me()
    return Caller(p.node, p.pid)


def node_name() -> Atom:
    """The name of the node the caller runs on (`nonode@nohost` when not distributed).

    Examples:
        >>> beamlet.node_name()
        Atom('nonode@nohost')
    """
    return _peek().node.name


def spawn(fn: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts) -> Pid:
    """Start `fn(*args)` as a new process; `fn` is an async function. Returns its pid.

    Examples:
        >>> async def greet(to, name):
        ...     beamlet.send(to, f"hello {name}")
        >>> pid = beamlet.spawn(greet, beamlet.self(), "joe")
        >>> await beamlet.receive()
        'hello joe'
    """
    return _me().node.spawn(fn, *args)


def spawn_link(fn: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts) -> Pid:
    """Spawn and link atomically: the link exists before the child runs (§1.3).

    Examples:
        >>> async def worker():
        ...     beamlet.exit("failed")
        >>> beamlet.process_flag(trap_exit=True)
        False
        >>> pid = beamlet.spawn_link(worker)
        >>> (await beamlet.receive(beamlet.Exit)).reason
        'failed'
    """
    return _me().node.spawn(fn, *args, link=True)


def spawn_monitor(fn: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts) -> tuple[Pid, Ref]:
    """Spawn and monitor atomically; an immediate crash still gives the real reason.

    Examples:
        >>> async def worker():
        ...     beamlet.exit("done")
        >>> pid, ref = beamlet.spawn_monitor(worker)
        >>> down = await beamlet.receive(beamlet.Down)
        >>> down.ref == ref, down.reason
        (True, 'done')
    """
    p = _me()
    return p.node.spawn_monitor(fn, *args)


def send(dest: Pid | str | Atom | Ref | tuple[Any, Any], msg: Any) -> None:
    """Send `msg` to a pid, registered name, `(name, node)` or alias (§2.1).

    Never blocks and never fails for a dead pid; raises `NotRegistered` for a name no
    process holds. Mutable messages are copied (§2.2).

    Examples:
        >>> async def echo():
        ...     sender, msg = await beamlet.receive()
        ...     beamlet.send(sender, msg)
        >>> pid = beamlet.spawn(echo)
        >>> beamlet.send(pid, (beamlet.self(), "ping"))
        >>> await beamlet.receive()
        'ping'
    """
    p = get_current()
    if p is None or not p.alive:
        if p is None:
            raise NotInProcess("send must be called from inside a beamlet process")
        raise Terminated(p.reason)
    if p.trace is not None:  # a traced sender (beamlet.observe)
        p.trace("send", p, dest, msg)
    node = p.node
    if type(dest) is Pid:
        q = dest._proc  # set for pids of this OS process's nodes: no table lookup
        if q is not None and q.node is node:  # another node's: the route node.send takes
            if q.alive:
                if type(msg) not in IMMUTABLE_TYPES:
                    if type(msg) is tuple:  # the common shape: a flat tuple of immutables
                        for item in msg:
                            if type(item) not in IMMUTABLE_TYPES:
                                msg = isolate(msg)
                                break
                    else:
                        msg = isolate(msg)
                st = q.state
                if st == WAIT_ANY:  # hand over directly, the mailbox stays empty
                    # Scheduler._make_runnable(q, msg), inlined: the call would cost a
                    # tenth of a ring hop (docs/performance.md). Its invariants are
                    # checked for this copy too (tests/core/test_run_queue.py).
                    q.resume = msg
                    q.state = RUNNABLE
                    node._runq.append(q)
                    if not node._pending:
                        node._kick()
                    return
                if q.call is not None:  # waiting on a call: this may be its reply
                    node._deliver(q, msg)
                    return
                mb = q.mb
                if mb is None:
                    mb = q.mb = deque()
                mb.append(msg)
                if st == WAIT_RECV:  # a selective receive: let it look at the new message
                    node._make_runnable(q, WAKE)
            return
    node.send(dest, msg)


def sleep(seconds: float) -> Awaitable[None]:
    """Suspend the caller for `seconds`, leaving its mailbox untouched (§6.3).

    `sleep(0)` yields, as `asyncio.sleep(0)` does: the caller goes to the back of the
    run queue, so the other runnable processes (and, past the batch, the event loop)
    run before it continues; it never waits on a timer.

    Examples:
        >>> await beamlet.sleep(0.01)
        >>> async def worker():
        ...     beamlet.send(me, "ran")
        >>> me = beamlet.self()
        >>> pid = beamlet.spawn(worker)
        >>> await beamlet.sleep(0)        # the worker runs before the caller goes on
        >>> await beamlet.receive(timeout=0)
        'ran'
    """
    p = _me()
    t = check_timeout(seconds)
    if t == 0:
        return _yield_once()
    return _as_awaitable(wait(p, _never, t, 0, None))


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    yield None  # the scheduler puts the process at the back of the run queue


def _never(m: Any) -> bool:
    return False


@types.coroutine
def _as_awaitable(gen: Generator[Any, Any, T]) -> Generator[Any, Any, T]:
    return (yield from gen)


def exit(target: Any, reason: Any = _MISSING) -> None:
    """`exit(reason)` ends the caller with `reason` (raises `ProcessExit`);
    `exit(pid, reason)` sends an exit signal to `pid` (§3.2, §3.3).

    Examples:
        >>> async def worker():
        ...     await beamlet.receive()
        >>> pid, ref = beamlet.spawn_monitor(worker)
        >>> beamlet.exit(pid, beamlet.KILL)    # untrappable
        >>> (await beamlet.receive(beamlet.Down)).reason
        Atom('killed')
    """
    if reason is _MISSING:
        raise ProcessExit(target)
    p = _me()
    p.node.exit(target, reason)
    if not p.alive:  # the signal (or its echo through a link) ended the caller (E9)
        raise Terminated(p.reason)


def is_alive(pid: Pid) -> bool:
    """True if the local process `pid` has not started exiting (§1.1.4).

    Examples:
        >>> beamlet.is_alive(beamlet.self())
        True
    """
    return _peek().node.is_alive(pid)


def process_flag(*, trap_exit: bool) -> bool:
    """Set the caller's `trap_exit` flag; returns the previous value (§3.4).

    Examples:
        >>> beamlet.process_flag(trap_exit=True)
        False
        >>> beamlet.process_flag(trap_exit=False)
        True
    """
    p = _me()
    return p.node._set_trap_exit(p, trap_exit)


def link(pid: Pid) -> None:
    """Link the caller to `pid` (§3.1). A dead `pid` raises `NoProcError`, or delivers
    `Exit(pid, NOPROC)` when the caller traps exits (§3.6).

    Examples:
        >>> async def worker():
        ...     await beamlet.receive()
        >>> beamlet.process_flag(trap_exit=True)
        False
        >>> pid = beamlet.spawn(worker)
        >>> beamlet.link(pid)
        >>> beamlet.exit(pid, "stop")
        >>> await beamlet.receive(beamlet.Exit)
        Exit(pid=<0.2.0>, reason='stop')
    """
    p = _me()
    p.node._link(p, pid)


def unlink(pid: Pid) -> None:
    """Remove the link to `pid`; afterwards the old link has no effect (§3.7). A trapped
    `Exit` already in the mailbox stays there.

    Examples:
        >>> async def worker():
        ...     await beamlet.receive()
        >>> pid = beamlet.spawn_link(worker)
        >>> beamlet.unlink(pid)
        >>> beamlet.exit(pid, "stop")    # no longer reaches the caller
        >>> beamlet.is_alive(beamlet.self())
        True
    """
    p = _me()
    p.node._unlink(p, pid)


def monitor(
    target: Pid | str | Atom | tuple[Any, Any], *, alias: str | None = None, tag: Any = None
) -> Ref:
    """Monitor a pid or registered name; a `Down` arrives when it ends (§4.1).

    `alias` ("explicit_unalias", "demonitor", "reply_demonitor") makes the ref an alias
    too (§4.4); `tag` is copied into the `Down` message.

    Examples:
        >>> async def worker():
        ...     beamlet.exit("done")
        >>> pid = beamlet.spawn(worker)
        >>> ref = beamlet.monitor(pid)
        >>> down = await beamlet.receive(beamlet.Down)
        >>> down.ref == ref, down.reason
        (True, 'done')
    """
    p = _me()
    return p.node._monitor(p, target, alias=alias, tag=tag)


def demonitor(ref: Ref, *, flush: bool = False) -> bool:
    """Remove monitor `ref`; True if it was active (no DOWN was or will be delivered).
    With `flush`, also remove its DOWN from the mailbox (§4.3).

    Examples:
        >>> async def worker():
        ...     await beamlet.receive()
        >>> ref = beamlet.monitor(beamlet.spawn(worker))
        >>> beamlet.demonitor(ref)
        True
        >>> beamlet.demonitor(ref)
        False
    """
    p = _me()
    return p.node._demonitor(p, ref, flush=flush)


def register(name: str | Atom, pid: Pid | None = None) -> None:
    """Register `pid` (default: the caller) under `name` (§5).

    Examples:
        >>> beamlet.register("me")
        >>> beamlet.send("me", "hi")
        >>> await beamlet.receive()
        'hi'
    """
    p = _me()
    p.node.register(name, p.pid if pid is None else pid)


def unregister(name: str | Atom) -> None:
    """Remove a registered name; raises `NotRegistered` if no process holds it.

    Examples:
        >>> beamlet.register("me")
        >>> beamlet.unregister("me")
        >>> beamlet.whereis("me") is None
        True
    """
    _me().node.unregister(name)


def whereis(name: str | Atom) -> Pid | None:
    """The pid registered as `name`, or None.

    Examples:
        >>> beamlet.register("me")
        >>> beamlet.whereis("me") == beamlet.self()
        True
    """
    return _peek().node.whereis(name)


def registered() -> list[Atom]:
    """All registered names on this node.

    Examples:
        >>> beamlet.register("me")
        >>> beamlet.registered()
        [Atom('me')]
    """
    return _peek().node.registered()


def send_after(delay: float, dest: Pid | str | Atom, msg: Any) -> Ref:
    """Send `msg` to `dest` after `delay` seconds; returns the timer ref (§6).

    A name is resolved when the timer fires. The timer is cancelled if `dest` dies.

    Examples:
        >>> ref = beamlet.send_after(0.01, beamlet.self(), "tick")
        >>> await beamlet.receive()
        'tick'
    """
    return _me().node.send_after(delay, dest, msg)


def start_timer(delay: float, dest: Pid | str | Atom, msg: Any) -> Ref:
    """Like `send_after`, but delivers `TimerMsg(ref, msg)` (Erlang's start_timer).

    Examples:
        >>> ref = beamlet.start_timer(0.01, beamlet.self(), "tick")
        >>> msg = await beamlet.receive(beamlet.TimerMsg)
        >>> msg.ref == ref, msg.msg
        (True, 'tick')
    """
    return _me().node.send_after(delay, dest, msg, wrap=True)


def cancel_timer(ref: Ref) -> float | None:
    """Cancel a timer; returns the seconds it had left, or None if it was not active
    (its message may already be in the mailbox).

    Examples:
        >>> ref = beamlet.send_after(10, beamlet.self(), "tick")
        >>> 9 < beamlet.cancel_timer(ref) <= 10    # the time that was left
        True
        >>> beamlet.cancel_timer(ref) is None
        True
    """
    return _peek().node.cancel_timer(ref)


def read_timer(ref: Ref) -> float | None:
    """Seconds left on a timer, or None if it is not active.

    Examples:
        >>> ref = beamlet.send_after(10, beamlet.self(), "tick")
        >>> 9 < beamlet.read_timer(ref) <= 10
        True
    """
    return _peek().node.read_timer(ref)


def make_ref() -> Ref:
    """A new unique reference. Also marks the mailbox, for `receive(..., since=ref)`.

    Examples:
        >>> beamlet.make_ref() == beamlet.make_ref()
        False
    """
    return _peek().node.make_ref()


def alias(mode: str = EXPLICIT_UNALIAS) -> Ref:
    """Create an alias: a ref that works as a send destination for the caller (§4.4).

    `mode="reply"` deactivates it after the first message received through it.

    Examples:
        >>> ref = beamlet.alias()
        >>> beamlet.send(ref, "via the alias")
        >>> await beamlet.receive()
        'via the alias'
    """
    p = _me()
    return p.node._alias(p, mode)


def unalias(ref: Ref) -> bool:
    """Deactivate one of the caller's aliases; True if it was active.

    Examples:
        >>> ref = beamlet.alias()
        >>> beamlet.unalias(ref)
        True
        >>> beamlet.send(ref, "dropped")
        >>> await beamlet.receive(timeout=0.01, default="nothing")
        'nothing'
    """
    p = _me()
    return p.node._unalias(p, ref)


def process_info(pid: Pid) -> ProcessInfo | None:
    """A snapshot of a local process (None if it is not alive).

    Examples:
        >>> beamlet.send(beamlet.self(), "hi")
        >>> beamlet.process_info(beamlet.self()).message_queue_len
        1
    """
    return _peek().node.process_info(pid)


def processes() -> list[Pid]:
    """Pids of all live processes on the caller's node.

    Examples:
        >>> beamlet.processes() == [beamlet.self()]
        True
    """
    return _peek().node.processes()


async def run_in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking or CPU-bound `fn(*args, **kwargs)` in a worker thread and await it,
    so the node keeps running. If the process is killed meanwhile the thread finishes
    on its own and its result is dropped.

    Examples:
        >>> import hashlib
        >>> digest = await beamlet.run_in_thread(hashlib.sha256, b"data")
        >>> digest.hexdigest()[:8]
        '3a6eb079'
    """
    loop = _me().node.loop
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


__all__ = [
    "Caller",
    "alias",
    "caller",
    "cancel_timer",
    "current_node",
    "demonitor",
    "exit",
    "is_alive",
    "link",
    "make_ref",
    "monitor",
    "node_name",
    "process_flag",
    "process_info",
    "processes",
    "read_timer",
    "receive",
    "register",
    "registered",
    "run_in_thread",
    "self",
    "send",
    "send_after",
    "sleep",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "start_timer",
    "unalias",
    "unlink",
    "unregister",
    "whereis",
]
