"""The process object: per-process state (docs/semantics.md §1.2) and a task-like face.

A process is not an asyncio Task: the scheduler steps its coroutine directly
(docs/architecture.md). While it runs a step, the `Proc` itself is registered as asyncio's
current task, so `asyncio.current_task()`, `asyncio.timeout()`, `wait_for` and task
groups work inside processes. `cancel()` interrupts the process at its await, whether it
waits on an asyncio future or in `receive`.

Everything a process rarely uses (links, monitors, aliases, timers, a mailbox) is
allocated on first use: an idle process is a coroutine plus this object.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from itertools import islice
from typing import TYPE_CHECKING, Any

from beamlet._core.terms import Atom, Pid

if TYPE_CHECKING:
    from beamlet._core.node import Node

# Scheduling states. "alive" is a separate flag: a process that was killed while waiting
# stays in its waiting state until the scheduler unwinds its coroutine.
RUNNABLE = 0  # in the run queue
RUNNING = 1  # stepping now
WAIT_RECV = 2  # suspended in receive
WAIT_FUT = 3  # suspended on an asyncio future
DONE = 4  # coroutine finished
WAIT_ANY = 5  # suspended in a receive of any message: a sender hands it over directly
WAIT_CALL = 6  # suspended in a call: only its reply or its server's death wakes it
NEW = 7  # just made by spawn, which queues it at once

STATE_NAMES = {
    RUNNABLE: "runnable",
    RUNNING: "running",
    WAIT_RECV: "waiting",
    WAIT_FUT: "waiting",
    WAIT_ANY: "waiting",
    WAIT_CALL: "waiting",
    DONE: "exiting",
    NEW: "runnable",
}
_WAITS = {WAIT_RECV: "receive", WAIT_ANY: "message", WAIT_CALL: "call", WAIT_FUT: "future"}


class Terminated(asyncio.CancelledError):
    """Thrown into a process's coroutine when an exit signal has ended it.

    The process is already dead when this is raised (its exit reason is decided, its
    links and monitors have fired); it is a `CancelledError` so asyncio code unwinds and
    cleans up as it does on task cancellation. Catching it does not revive the process.

    Examples:
        >>> import asyncio
        >>> issubclass(beamlet.Terminated, asyncio.CancelledError)
        True
        >>> beamlet.Terminated("killed").reason
        'killed'
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class Proc:
    """One process. Private: user code sees its `Pid` (and, inside the process, this
    object as `asyncio.current_task()`)."""

    __slots__ = (
        "__weakref__",
        "_cancel_msg",
        "_cancel_requests",
        "aliases",
        "alive",
        "call",
        "callbits",
        "callee",
        "callers",
        "calltimeout",
        "co",
        "ctx",
        "fn",
        "fut",
        "kill_tries",
        "links",
        "mark",
        "mb",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "parent",
        "pid",
        "reason",
        "resume",
        "rtimer",
        "state",
        "taken",
        "throw",
        "timers",
        "trace",
        "trap_exit",
    )

    node: Node
    pid: Pid
    resume: Any  # the value the next step sends into the coroutine
    throw: BaseException | None  # or the exception it throws into it
    reason: Any  # the exit reason, once dead
    name: Atom | None  # registered name
    co: Coroutine[Any, Any, Any] | None
    ctx: contextvars.Context | None
    mb: deque[Any] | None
    links: set[Pid] | None
    # ref -> (shown, target, alias mode, tag) for monitors we hold: `shown` is what the
    # DOWN names (a pid or (name, node)), `target` the pid or (name, node) monitored
    monitors: dict[Any, Any] | None
    monitored_by: dict[Any, Any] | None  # ref -> watcher Proc/Pid for monitors on us
    aliases: set[Any] | None
    timers: set[Any] | None
    rtimer: int | None  # the token of the receive timeout armed for this process
    fut: asyncio.Future[Any] | None
    mark: tuple[Any, int, int] | None
    call: Any  # the Ref of the call this process waits on (request.py), or None
    callee: Proc | None  # the server of that call
    callbits: int  # the caller half of this process's call refs (request.py), or 0
    callers: set[Proc] | None  # processes waiting on a call to this one
    calltimeout: float | None  # that call's timeout, until its timer is armed
    parent: Pid | None  # the spawner, for introspection (ancestors)
    # A trace hook `hook(kind, proc, peer, msg)` that beamlet.observe sets on a traced
    # process; it must not raise or block. "send" is checked in the send paths of the
    # traced sender; "receive" in `Node._deliver` only: tracing a receiver also clears
    # its pid's `_proc`, so every send to it takes the table lookup and `_deliver`
    # (the fast paths pay nothing for it). Also "spawn", "link" and "exit".
    trace: Callable[[str, Proc, Any, Any], None] | None

    def __init__(self, node: Node, fn: Any, co: Coroutine[Any, Any, Any]) -> None:
        self.node = node
        self.fn = fn
        self.co = co
        self.ctx = contextvars.copy_context()
        self.mb = None
        self.state = NEW
        self.alive = True
        self.reason = None
        self.resume = None
        self.throw = None
        self.rtimer = None
        self.fut = None
        self.links = None
        self.monitors = None
        self.monitored_by = None
        self.aliases = None
        self.timers = None
        self.trap_exit = False
        self.name = None
        self.taken = 0
        self.mark = None
        self.kill_tries = 0
        self.call = None
        self.callee = None
        self.callers = None
        self.callbits = 0
        self.calltimeout = None
        self.parent = None
        self.trace = None
        self._cancel_requests = 0
        self._cancel_msg = None

    def __repr__(self) -> str:
        return f"<Proc {self.pid!r} {getattr(self.fn, '__qualname__', self.fn)!r}>"

    # --- the asyncio Task surface used by asyncio.timeout, wait_for, TaskGroup, aiohttp ---

    def cancel(self, msg: Any = None) -> bool:
        """Request cancellation, as `Task.cancel` does: `CancelledError` is raised at the
        process's current await (an asyncio future or `receive`)."""
        if self.state == DONE or self.co is None:
            return False
        self._cancel_requests += 1
        fut = self.fut
        if fut is not None and fut.cancel(msg=msg):
            return True
        if self.throw is None:  # thrown at the next step, like Task's _must_cancel
            self.throw = asyncio.CancelledError(msg)
            self._cancel_msg = msg
        if self.state in (WAIT_RECV, WAIT_ANY, WAIT_CALL):
            self.node._wake_cancelled(self)
        return True

    def cancelling(self) -> int:
        return self._cancel_requests

    def uncancel(self) -> int:
        if self._cancel_requests > 0:
            self._cancel_requests -= 1
            t = self.throw
            if self._cancel_requests == 0 and t is not None and type(t) is asyncio.CancelledError:
                self.throw = None  # a pending cancel() is withdrawn, as Task does
        return self._cancel_requests

    def done(self) -> bool:
        return self.state == DONE

    def cancelled(self) -> bool:
        return False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.node.loop

    def get_coro(self) -> Coroutine[Any, Any, Any] | None:
        return self.co

    def get_context(self) -> contextvars.Context | None:
        return self.ctx

    def get_name(self) -> str:
        return f"beamlet-process-{self.pid!r}"

    def set_name(self, value: object) -> None:
        """Ignored: a process is named by its pid (and `register`)."""

    # --- read-only introspection (`_core/introspect.py`'s ProcessView) ---

    @property
    def status(self) -> str:
        """ "running", "runnable", "waiting" or "exiting"."""
        return STATE_NAMES[self.state] if self.alive else "exiting"

    @property
    def waiting(self) -> str | None:
        """What a parked live process waits for: "receive" (a selective receive, a sleep),
        "message" (any message), "call" (a reply) or "future" (an asyncio awaitable)."""
        return _WAITS.get(self.state) if self.alive else None

    @property
    def awaited_future(self) -> asyncio.Future[Any] | None:
        return self.fut

    @property
    def call_target(self) -> Pid | None:
        """The server of the call this process waits on (the fused call), or None."""
        callee = self.callee
        return callee.pid if self.call is not None and callee is not None else None

    @property
    def message_queue_len(self) -> int:
        mb = self.mb
        return len(mb) if mb else 0

    def peek_messages(self, limit: int) -> list[Any]:
        """The oldest `limit` queued messages (not copied: do not change them)."""
        mb = self.mb
        return list(islice(mb, limit)) if mb else []

    def linked(self) -> tuple[Pid, ...]:
        """The linked pids, in Erlang's term order."""
        return tuple(sorted(self.links or ()))

    def monitoring(self) -> tuple[Any, ...]:
        """What it monitors (pids, or (name, node)), the server of its call last."""
        callee = self.call_target
        return tuple(e[0] for e in (self.monitors or {}).values()) + (
            (callee,) if callee is not None else ()
        )

    def watchers(self) -> tuple[Pid, ...]:
        """The pids that monitor it (callers waiting on a call to it last)."""
        return tuple(
            w.pid if type(w) is Proc else w for w in (self.monitored_by or {}).values()
        ) + tuple(c.pid for c in self.callers or ())

    def footprint(self, sample: int = 100) -> int:
        """Bytes of the process object, its mailbox (estimated from the first `sample`
        messages) and its link and monitor tables; not its coroutine frames."""
        size = sys.getsizeof(self)
        mb = self.mb
        if mb:
            size += sys.getsizeof(mb)
            k = min(len(mb), sample)
            if k:
                size += sum(sys.getsizeof(mb[i]) for i in range(k)) * len(mb) // k
        for table in (self.links, self.monitors, self.monitored_by):
            if table:
                size += sys.getsizeof(table)
        return size

    # --- wake-ups from asyncio ---

    def _wakeup(self, fut: asyncio.Future[Any]) -> None:
        if self.fut is fut:
            self.fut = None
            self.node._make_runnable(self, None)
