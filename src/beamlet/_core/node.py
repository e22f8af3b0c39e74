"""The node: every piece of runtime state, and the signal semantics of §1-§6.

One `Node` object holds the process table, names, aliases, timers and the run queue; a
test makes a fresh one. Signals between local processes are handled synchronously at
send time, into one FIFO per receiver, which satisfies the ordering rule of §0.3 by
construction: a DOWN or EXIT is always enqueued after every message its sender sent
before dying (§3.5). Deaths are processed from a queue, not recursively, so a crash that
spreads through 100,000 links needs no stack depth.

Pids and names of other nodes go through the distribution layer's small interface,
`RemoteHook`, which that layer plugs in with `attach_distribution`; without it they are
unreachable (messages dropped, links and monitors get `noconnection`).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple

from beamlet._core.current import NEUTRAL, current_process, get_current
from beamlet._core.errors import (
    BadArgument,
    InvalidTimeout,
    NameTaken,
    NoProcError,
    NotRegistered,
    ProcessFailed,
    Unsendable,
)
from beamlet._core.isolation import IMMUTABLE_TYPES, isolate
from beamlet._core.messages import Crash, Down, Exit, TimerMsg
from beamlet._core.process import (
    DONE,
    WAIT_ANY,
    WAIT_RECV,
    Proc,
    Terminated,
)
from beamlet._core.request import CallProbe, call_owner, callers_down, drop_call, hand_over
from beamlet._core.scheduler import WAKE, Scheduler
from beamlet._core.terms import (
    KILL,
    KILLED,
    NOCONNECTION,
    NODE_NOHOST,
    NOPROC,
    NORMAL,
    PROCESS,
    UNDEFINED,
    Atom,
    Pid,
    Ref,
)

if TYPE_CHECKING:
    from beamlet._core.introspect import ProcessView, Resources, TraceHook

log = logging.getLogger("beamlet")
Ts = TypeVarTuple("Ts")
R = TypeVar("R")

# Alias modes (§4.4).
EXPLICIT_UNALIAS = "explicit_unalias"
REPLY = "reply"
DEMONITOR = "demonitor"
REPLY_DEMONITOR = "reply_demonitor"
_ALIAS_MODES = (EXPLICIT_UNALIAS, REPLY)
_MONITOR_ALIAS_MODES = (EXPLICIT_UNALIAS, DEMONITOR, REPLY_DEMONITOR)

_SCHEDULER = "beamlet._core.scheduler"
_MAX_TIMEOUT = 2**32 / 1000  # Erlang's limit on timer and receive timeouts, in seconds


class RemoteHook(Protocol):
    """What the kernel needs from a distribution layer, for pids and names of other
    nodes. Each call is asynchronous in effect (signals cross a connection); a lost or
    impossible connection results in `noconnection` exits and DOWNs (§1.5)."""

    def send(self, sender: Pid | None, dest: Pid | tuple[Atom, Atom] | Ref, msg: Any) -> None: ...

    def link(self, local: Pid, remote: Pid) -> None: ...

    def unlink(self, local: Pid, remote: Pid) -> None: ...

    def exit(self, sender: Pid, target: Pid, reason: Any) -> None: ...

    def link_exit(self, sender: Pid, target: Pid, reason: Any) -> None: ...

    def monitor(self, watcher: Pid, target: Pid | tuple[Atom, Atom], ref: Ref) -> None: ...

    def demonitor(self, watcher: Pid, target: Pid | tuple[Atom, Atom], ref: Ref) -> None: ...

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process, as `process_info(pid)` returns it.

    Examples:
        >>> beamlet.register("me")
        >>> info = beamlet.process_info(beamlet.self())
        >>> info.registered_name, info.status, info.trap_exit
        (Atom('me'), 'running', False)
    """

    pid: Pid
    status: str
    message_queue_len: int
    links: tuple[Pid, ...]
    monitors: tuple[Pid | tuple[Atom, Atom], ...]
    monitored_by: tuple[Pid, ...]
    trap_exit: bool
    registered_name: Atom | None
    current_function: str
    reductions: int
    tables: tuple[Any, ...] = ()  # the tables it owns (beamlet.ets), via Node.resources


def check_timeout(timeout: Any, what: str = "timeout") -> float | None:
    """Validate a timeout in seconds: a finite number >= 0, or None for infinity."""
    if timeout is None:
        return None
    if type(timeout) is bool or not isinstance(timeout, int | float):
        raise InvalidTimeout(f"{what} must be a number of seconds or None, not {timeout!r}")
    if not 0 <= timeout < _MAX_TIMEOUT or math.isnan(timeout):  # max 2**32-1 ms (§2.4, §6)
        raise InvalidTimeout(f"{what} must be between 0 and {_MAX_TIMEOUT:.0f} s: {timeout!r}")
    return float(timeout)


def _name(name: Any) -> Atom:
    if type(name) is Atom:
        return name
    if type(name) is str:
        return Atom(name)
    raise BadArgument(f"a registered name must be a str or Atom, not {name!r}")


def _fn_name(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or "?"
    return f"{mod}.{getattr(fn, '__qualname__', repr(fn))}"


class Node(Scheduler):
    """A beamlet node: the runtime that processes live in, inside one asyncio loop.

    Use `beamlet.run(main)` for a program; use a `Node` directly to embed beamlet in an
    existing asyncio program or to get a fresh runtime per test:

        async with Node() as node:
            result = await node.run(main, 42)

    Methods named like the process API (`send`, `exit`, `whereis`...) also work from
    plain asyncio code outside any process; those that act for a process (`link`,
    `monitor`, `alias`, `set_trap_exit`...) take its pid first: `node.link(a, b)`.

    Examples:
        >>> from beamlet import Node
        >>> async def main(n):
        ...     return n * 2
        >>> async with Node() as node:
        ...     await node.run(main, 21)
        42
    """

    def __init__(self, name: str | Atom | None = None, *, creation: int = 0) -> None:
        self.name: Atom = _name(name) if name is not None else NODE_NOHOST
        self.creation = creation
        self._dist: RemoteHook | None = None
        self._procs: dict[int, Proc] = {}
        self._names: dict[Atom, Proc] = {}
        self._aliases: dict[Ref, tuple[Proc, str]] = {}
        self._timers: dict[Ref, tuple[asyncio.TimerHandle, float, Proc | None]] = {}
        self._next_id = itertools.count(1).__next__
        self._next_ref = itertools.count(1).__next__
        self._dying: deque[Proc] = deque()
        self._reaping = False
        self._exit_waiters: dict[Proc, list[asyncio.Future[Any]]] = {}
        self._results: dict[Proc, Any] = {}
        self._started = False
        self._stopping = False
        self._watchdog: Any = None
        self._vars: dict[Any, Any] = {}  # NodeVar values: the upper layers' node state
        # What processes own besides themselves (beamlet.ets tables): freed or passed on at
        # a death before links and monitors fire (the BEAM frees tables first).
        self.resources: Resources | None = None
        self.block_warning: float | None = 0.1
        # Times sampled calls (request.py); None: calls pay one attribute test.
        self.call_probe: CallProbe | None = None
        # The runtime's own pid: the sender of signals from code outside any process.
        self._system = Pid(self.name, 0, 0, creation)

    # --- lifecycle --------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._started

    @property
    def system_pid(self) -> Pid:
        """The runtime's own pid: the sender of signals from code outside any process."""
        return self._system

    @property
    def dist(self) -> RemoteHook | None:
        """The distribution layer attached with `attach_distribution`, or None."""
        return self._dist

    def attach_distribution(self, hook: RemoteHook, creation: int) -> None:
        """Plug a distribution layer in: pids, names and aliases of other nodes go
        through `hook` from now on. `creation` (from epmd) becomes part of every pid and
        ref this node makes, so this must come before the first spawn.

        Examples:
            >>> from beamlet import Node
            >>> from beamlet.distribution import start_distribution
            >>> async with Node("py@127.0.0.1") as node:
            ...     dist = await start_distribution(node, cookie="secret")   # attaches itself
            ...     node.dist is not None
            ...     await dist.stop()
            True
        """
        if self._dist is not None:
            raise BadArgument(f"{self.name} already has a distribution layer")
        if self._procs:
            raise BadArgument("attach distribution before spawning processes")
        if type(creation) is not int or not 0 <= creation <= 0xFFFFFFFF:
            raise BadArgument(f"creation must be a u32, not {creation!r}")
        self.creation = creation
        self._system = Pid(self.name, 0, 0, creation)
        self._dist = hook

    def detach_distribution(self, hook: RemoteHook) -> None:
        """Unplug `hook` (if it is the one attached): other nodes become unreachable."""
        if self._dist is hook:
            self._dist = None

    async def start(self) -> Node:
        """Attach to the running loop. Processes can be spawned after this."""
        if self._started:
            return self
        self._init_scheduler(asyncio.get_running_loop())
        self._started = True
        if self.block_warning:
            from beamlet._core.watchdog import Watchdog

            self._watchdog = Watchdog(self, self.block_warning)
            self._watchdog.start()
        return self

    async def stop(self, timeout: float = 5.0) -> None:
        """Kill every process (reason `killed`), let their coroutines unwind, detach."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        try:
            for p in list(self._procs.values()):
                self._terminate(p, KILLED)
            deadline = self.loop.time() + timeout
            while self._runq and self.loop.time() < deadline:
                await asyncio.sleep(0)
            for t in list(self._timers.values()):
                t[0].cancel()
            self._timers.clear()
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
                self._deadline_timer = None
        finally:
            if self._watchdog is not None:
                self._watchdog.stop()
                self._watchdog = None
            self._started = False
            self._stopping = False

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, fn: Callable[[*Ts], Coroutine[Any, Any, R]], *args: *Ts) -> R:
        """Run `fn(*args)` as a process and wait for it; return its return value, or raise
        `ProcessFailed` if it ends with an abnormal reason."""
        pid = self.spawn(fn, *args)
        p = pid._proc
        self._results[p] = None
        reason = await self.wait(pid)
        value: R = self._results.pop(p, None)
        if reason != NORMAL:
            raise ProcessFailed(reason)
        return value

    async def wait(self, pid: Pid, timeout: float | None = None) -> Any:
        """Wait (from outside any process) until a local process ends; return its reason."""
        if type(pid) is not Pid:
            raise BadArgument(f"wait needs a pid, not {pid!r}")
        seconds = check_timeout(timeout)  # before registering: a bad timeout leaves no waiter
        p = pid._proc if pid._proc is not None and pid._proc.node is self else None
        p = p or self._local_proc(pid)
        if p is None:  # ended (its pid remembers why), or never of this node
            return getattr(pid, "_exit_reason", NOPROC) if pid._node == self.name else NOPROC
        if not p.alive:
            return p.reason
        fut: asyncio.Future[Any] = self.loop.create_future()
        waiters = self._exit_waiters.setdefault(p, [])
        waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, seconds)
        except BaseException:  # timed out or cancelled: forget this waiter
            if fut in waiters:
                waiters.remove(fut)
                if not waiters and self._exit_waiters.get(p) is waiters:
                    del self._exit_waiters[p]
            raise

    # --- spawning ---------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[[*Ts], Coroutine[Any, Any, Any]],
        *args: *Ts,
        link: bool = False,
    ) -> Pid:
        """Start `fn(*args)` as a new process; return its pid. With `link`, the link to
        the calling process exists before the child runs (§1.3)."""
        if not self._started:
            raise BadArgument("the node is not started: use `async with Node()` or run()")
        if not callable(fn):
            raise BadArgument(f"spawn needs an async function, got {fn!r}")
        if args:
            args = tuple(a if type(a) in IMMUTABLE_TYPES else isolate(a) for a in args)  # type: ignore[assignment]
        co: Any = fn(*args)
        if not inspect.iscoroutine(co):
            if inspect.isawaitable(co):
                co = _await(co)
            else:
                raise BadArgument(
                    f"spawn needs an async function; {fn!r} returned {type(co).__name__}"
                )
        p = Proc(self, fn, co)
        n = self._next_id()
        pid = Pid._local(self.name, n & 0x0FFFFFFF, n >> 28, self.creation, p)
        p.pid = pid
        p.ctx.run(current_process.set, p)  # type: ignore[union-attr]
        self._procs[n] = p
        parent = get_current()
        if parent is not None and parent.node is self:
            p.parent = parent.pid
            if link:
                self._link_procs(parent, p)
            if parent.trace is not None:
                parent.trace("spawn", parent, pid, fn)
        self._make_runnable(p, None)
        return pid

    def spawn_monitor(
        self, fn: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts
    ) -> tuple[Pid, Ref]:
        """Spawn and monitor atomically (§1.3); only from inside a process."""
        parent = self._caller()
        pid = self.spawn(fn, *args)
        ref = self._new_ref()
        self._add_monitor(parent, pid._proc, ref, None, None, pid)
        return pid, ref

    # --- messages ---------------------------------------------------------------------

    def send(self, dest: Any, msg: Any) -> None:
        """Send `msg` to a pid, a registered name, `(name, node)` or an alias (§2.1).

        Never fails for a dead pid; raises `NotRegistered` for an unknown local name."""
        if type(dest) is Pid:
            q = self._proc_of(dest)
            if q is None:
                if dest._node != self.name:  # encoding for the wire isolates it
                    self._remote().send(self._sender(), dest, msg)
                return
            if q.alive:
                if type(msg) not in IMMUTABLE_TYPES:
                    msg = isolate(msg)
                self._deliver(q, msg)
            return
        self._send_slow(dest, msg, True)

    def _send_slow(self, dest: Any, msg: Any, copy: bool) -> None:
        if copy and type(msg) not in IMMUTABLE_TYPES:
            msg = _isolate_if_local(self, dest, msg)
        if type(dest) is Ref:
            entry = self._aliases.get(dest)
            if entry is None:
                if dest._node != self.name:
                    self._remote().send(self._sender(), dest, msg)
                    return
                caller = call_owner(self, dest)  # a call's alias (request.py)
                if caller is not None:
                    self._deliver(caller, msg)
                return
            q, mode = entry
            if mode == REPLY:
                self._drop_alias(q, dest)
            elif mode == REPLY_DEMONITOR:
                self._drop_alias(q, dest)
                self._remove_monitor(q, dest)
            self._deliver(q, msg)
            return
        if type(dest) is tuple and len(dest) == 2:
            name, node = dest
            name = _name(name)
            node = _name(node)
            if node == self.name:
                holder = self._names.get(name)
                if holder is not None and holder.alive:
                    self._deliver(holder, msg)
                return  # unknown {Name, Node}: dropped, no error (§2.1)
            self._remote().send(self._sender(), (name, node), msg)
            return
        if type(dest) is str or type(dest) is Atom:
            named = self._names.get(_name(dest))
            if named is None or not named.alive:
                raise NotRegistered(f"no process is registered as {str(dest)!r}")
            self._deliver(named, msg)
            return
        raise BadArgument(f"cannot send to {dest!r}: not a pid, name, (name, node) or alias")

    def _deliver(self, q: Proc, msg: Any) -> None:
        """Append to the mailbox, or hand straight to a process waiting for any message."""
        if q.trace is not None:
            r = self.running
            q.trace("receive", q, r.pid if r is not None else None, msg)
        st = q.state
        if st == WAIT_ANY:
            self._make_runnable(q, msg)
            return
        c = q.call  # waiting on a call (even one that just timed out): is this its reply?
        if c is not None and type(msg) is tuple and len(msg) == 2 and type(msg[0]) is Ref:
            tag = msg[0]
            if tag is c or tag == c:  # `{Tag, Reply}`, already the receiver's own copy
                hand_over(q, c, msg[1], False)
                return
        mb = q.mb
        if mb is None:
            mb = q.mb = deque()
        mb.append(msg)
        if st == WAIT_RECV:
            self._make_runnable(q, WAKE)

    # --- exit signals (§3) ------------------------------------------------------------

    def exit(self, pid: Any, reason: Any) -> None:
        """Send an exit signal to `pid` (Erlang's exit/2); the sender is the caller, or
        the runtime when called outside a process. Always succeeds (§3.2)."""
        if type(pid) is not Pid:
            raise BadArgument(f"exit/2 needs a pid, not {pid!r}")
        if type(reason) not in IMMUTABLE_TYPES:
            reason = isolate(reason)
        sender = self._sender()
        q = self._proc_of(pid)
        if q is None:
            if pid._node != self.name:
                self._remote().exit(sender, pid, reason)
            return
        self.exit_signal(q, sender, reason, link=False)

    def exit_signal(self, q: Proc, sender: Pid, reason: Any, *, link: bool) -> None:
        """Handle an exit signal at receiver `q` per the table of §3.3."""
        if not q.alive:
            return
        if link:
            links = q.links
            if links is None or sender not in links:
                return  # no active link: the signal is discarded (§3.7.2)
            links.discard(sender)
        elif reason == KILL:
            self._terminate(q, KILLED)  # E4: untrappable
            return
        if q.trap_exit:
            self._deliver(q, Exit(sender, reason))
        elif reason == NORMAL:
            if not link and sender == q.pid:
                self._terminate(q, NORMAL)  # E3: exit(self(), normal)
            # E1/E2: ignored
        else:
            self._terminate(q, reason)

    def _terminate(self, p: Proc, reason: Any) -> None:
        """Decide that `p` dies with `reason`; the §1.4 steps run from the death queue."""
        if not p.alive:
            return
        p.alive = False
        p.reason = reason
        self._interrupt(p)
        self._dying.append(p)
        if not self._reaping:
            self._reap()

    def _reap(self) -> None:
        self._reaping = True
        try:
            dying = self._dying
            while dying:
                self._cleanup(dying.popleft())
        finally:
            self._reaping = False

    def _cleanup(self, p: Proc) -> None:
        """§1.4 steps 1-7, in order, for a process that has just died."""
        reason: Any = p.reason
        pid = p.pid
        if p.trace is not None:
            p.trace("exit", p, None, reason)
        shared = type(reason) in IMMUTABLE_TYPES or type(reason) is Crash  # else: copy each
        if p.name is not None and self._names.get(p.name) is p:  # 1. name first (§5.3)
            del self._names[p.name]
        if self.resources is not None:  # 1b. its tables (ETS-TRANSFER or deleted)
            self.resources.process_exited(p)
        if p.aliases:  # 2. deactivate aliases
            for a in p.aliases:
                self._aliases.pop(a, None)
            p.aliases = None
        if p.call is not None:  # 3. ... including the monitor of a call it waited on
            drop_call(p)
        if p.monitors:  # 3. monitors held by p are gone, no DOWN will reach it
            for ref, entry in list(p.monitors.items()):
                self._unhook_monitor(p, ref, entry)
            p.monitors = None
        if p.links:  # 4. link exit signals
            for other in p.links:
                q = self._proc_of(other)
                if q is not None:
                    self.exit_signal(q, pid, reason if shared else _own_copy(reason), link=True)
                elif other._node != self.name and self._dist is not None:
                    self._safely(self._dist.link_exit, pid, other, reason)
            p.links = None
        if p.monitored_by:  # 5. DOWN messages
            for ref, watcher in p.monitored_by.items():
                if type(watcher) is Proc:
                    entry = watcher.monitors.pop(ref, None) if watcher.monitors else None
                    if entry is not None and watcher.alive:
                        shown, _tpid, mode, tag = entry
                        if mode in (DEMONITOR, REPLY_DEMONITOR):
                            self._drop_alias(watcher, ref)
                        r = reason if shared else _own_copy(reason)
                        self._deliver(watcher, Down(ref, PROCESS, shown, r, tag))
                elif self._dist is not None:
                    self._safely(self._dist.down, pid, watcher, ref, reason)
            p.monitored_by = None
        if p.callers:  # 5. ... and the callers waiting on a call to p (request.py)
            callers_down(p, reason, _keep if shared else _own_copy)
        if p.timers:  # 6. timers to p are cancelled
            for ref in p.timers:
                t = self._timers.pop(ref, None)
                if t is not None:
                    t[0].cancel()
            p.timers = None
        p.mb = None  # 7. the mailbox is discarded
        if p.state == DONE:
            self._release(p)
        del self._procs[(pid._serial << 28) | pid._id]
        # Break the pid <-> process cycle: a dead process is then freed by reference
        # counting when its last pid goes, not by a (rare) full garbage collection. The
        # pid keeps only the reason, for Node.wait.
        pid._proc = None
        pid._exit_reason = reason
        waiters = self._exit_waiters.pop(p, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(reason)

    def _release(self, p: Proc) -> None:
        """Drop what a finished coroutine held (pids of dead processes stay valid)."""
        p.state = DONE
        p.co = None
        p.ctx = None
        p.resume = None
        p.throw = None

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("beamlet: distribution hook %s failed", getattr(fn, "__name__", fn))

    # --- process ends (called by the scheduler) ---------------------------------------

    def _proc_returned(self, p: Proc, value: Any) -> None:
        if p in self._results:
            self._results[p] = value
        if p.alive:
            self._terminate(p, NORMAL)
        else:
            self._release(p)

    def _proc_raised(self, p: Proc, exc: BaseException) -> None:
        from beamlet._core.errors import ProcessExit

        if p.alive:
            reason = exc.reason if isinstance(exc, ProcessExit) else self._crash_reason(p, exc)
            self._terminate(p, reason)
        else:
            self._release(p)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc

    def _crash_reason(self, p: Proc, exc: BaseException) -> Crash:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_globals.get("__name__") == _SCHEDULER:
            tb = tb.tb_next  # the scheduler's own frame is not part of the process's story
        frames = traceback.extract_tb(tb)
        formatted = "".join(traceback.format_exception(type(exc), exc, tb))
        stack = tuple((f.filename, f.name, f.lineno or 0) for f in frames)
        exc.__traceback__ = None  # frames would keep the dead process's locals alive
        reason = Crash(exc, stack, formatted)
        try:
            log.error(
                "Error in process %r (%s) with exit value: %r\n%s",
                p.pid,
                _fn_name(p.fn),
                exc,
                formatted.rstrip(),
                extra={"beamlet_pid": p.pid, "beamlet_reason": reason},
            )
        except Exception:  # a failing handler (or repr) must not leave p half-dead
            pass
        return reason

    # --- links (§3.1, §3.6, §3.7) -----------------------------------------------------

    def _link_procs(self, a: Proc, b: Proc) -> None:
        if a.links is None:
            a.links = set()
        if b.links is None:
            b.links = set()
        a.links.add(b.pid)
        b.links.add(a.pid)

    def _link(self, p: Proc, pid: Any) -> None:
        if type(pid) is not Pid:
            raise BadArgument(f"link needs a pid, not {pid!r}")
        if pid == p.pid:
            return
        if p.trace is not None:
            p.trace("link", p, pid, None)
        q = self._proc_of(pid)
        if q is not None and q.alive:
            self._link_procs(p, q)
            return
        if q is None and pid._node != self.name:
            if self._dist is None:
                self._noconnection_link(p, pid)
                return
            if p.links is None:
                p.links = set()
            p.links.add(pid)
            self._dist.link(p.pid, pid)
            return
        if p.trap_exit:  # §3.6: a dead or unknown local pid
            self._deliver(p, Exit(pid, NOPROC))
        else:
            raise NoProcError(pid)

    def _noconnection_link(self, p: Proc, pid: Pid) -> None:
        if p.links is None:
            p.links = set()
        p.links.add(pid)
        self.exit_signal(p, pid, NOCONNECTION, link=True)

    def _unlink(self, p: Proc, pid: Any) -> None:
        if type(pid) is not Pid:
            raise BadArgument(f"unlink needs a pid, not {pid!r}")
        if p.links is None or pid not in p.links:
            return
        p.links.discard(pid)
        q = self._proc_of(pid)
        if q is not None:
            if q.links is not None:
                q.links.discard(p.pid)
        elif pid._node != self.name and self._dist is not None:
            self._dist.unlink(p.pid, pid)

    # --- monitors (§4.1-§4.3) ---------------------------------------------------------

    def _monitor(self, p: Proc, target: Any, *, alias: str | None = None, tag: Any = None) -> Ref:
        if alias is not None and alias not in _MONITOR_ALIAS_MODES:
            raise BadArgument(f"monitor alias must be one of {_MONITOR_ALIAS_MODES}: {alias!r}")
        if type(target) is tuple and len(target) == 2:
            name, node = _name(target[0]), _name(target[1])
        elif type(target) is str or type(target) is Atom:
            name, node = _name(target), self.name
        elif type(target) is not Pid:
            raise BadArgument(f"cannot monitor {target!r}: not a pid, name or (name, node)")
        ref = self._new_ref()  # only now: a rejected target must leave no alias behind
        p.mark = (ref, len(p.mb) if p.mb else 0, p.taken)
        if alias is not None:
            self._add_alias(p, ref, alias)
        if type(target) is Pid:
            q = self._proc_of(target)
            if q is None and target._node != self.name:
                self._remote_monitor(p, target, ref, alias, tag, target)
                return ref
            self._add_monitor(p, q, ref, alias, tag, target)
            return ref
        if node != self.name:
            self._remote_monitor(p, (name, node), ref, alias, tag, (name, node))
            return ref
        self._add_monitor(p, self._names.get(name), ref, alias, tag, (name, node))
        return ref

    def _add_monitor(
        self,
        p: Proc,
        q: Proc | None,
        ref: Ref,
        alias: str | None,
        tag: Any,
        shown: Pid | tuple[Atom, Atom],
    ) -> None:
        if q is None or not q.alive:  # §4.1.4: immediate DOWN with noproc
            if alias in (DEMONITOR, REPLY_DEMONITOR):
                self._drop_alias(p, ref)
            self._deliver(p, Down(ref, PROCESS, shown, NOPROC, tag))
            return
        if q is p:
            return  # §4.1.5: a monitor on oneself never fires and is not recorded
        if p.monitors is None:
            p.monitors = {}
        p.monitors[ref] = (shown, q.pid, alias, tag)
        if q.monitored_by is None:
            q.monitored_by = {}
        q.monitored_by[ref] = p

    def _remote_monitor(
        self,
        p: Proc,
        target: Pid | tuple[Atom, Atom],
        ref: Ref,
        alias: str | None,
        tag: Any,
        shown: Pid | tuple[Atom, Atom],
    ) -> None:
        if self._dist is None:
            self._deliver(p, Down(ref, PROCESS, shown, NOCONNECTION, tag))
            return
        if p.monitors is None:
            p.monitors = {}
        p.monitors[ref] = (shown, target, alias, tag)
        self._dist.monitor(p.pid, target, ref)

    def _unhook_monitor(self, p: Proc, ref: Ref, entry: tuple[Any, Any, Any, Any]) -> None:
        """Remove the target side of monitor `ref` held by `p`."""
        target = entry[1]  # the pid actually monitored, or (name, node) on another node
        if type(target) is Pid:
            q = self._proc_of(target)
            if q is not None:
                if q.monitored_by is not None:
                    q.monitored_by.pop(ref, None)
                return
        if self._dist is not None:
            self._safely(self._dist.demonitor, p.pid, target, ref)

    def _remove_monitor(self, p: Proc, ref: Ref) -> bool:
        entry = p.monitors.pop(ref, None) if p.monitors else None
        if entry is None:
            return False
        self._unhook_monitor(p, ref, entry)
        mode = entry[2]
        if mode in (DEMONITOR, REPLY_DEMONITOR):
            self._drop_alias(p, ref)
        return True

    def _demonitor(self, p: Proc, ref: Any, *, flush: bool = False) -> bool:
        if type(ref) is not Ref:
            raise BadArgument(f"demonitor needs a reference, not {ref!r}")
        found = self._remove_monitor(p, ref)
        if flush and not found and p.mb:
            mb = p.mb
            for i, m in enumerate(mb):
                if type(m) is Down and m.ref == ref:
                    del mb[i]
                    p.taken += 1
                    break
        return found

    # --- aliases (§4.4) -----------------------------------------------------------------

    def _add_alias(self, p: Proc, ref: Ref, mode: str) -> None:
        self._aliases[ref] = (p, mode)
        if p.aliases is None:
            p.aliases = set()
        p.aliases.add(ref)

    def _drop_alias(self, p: Proc, ref: Ref) -> bool:
        if p.aliases is None or ref not in p.aliases:
            return False
        p.aliases.discard(ref)
        self._aliases.pop(ref, None)
        return True

    def _alias(self, p: Proc, mode: str = EXPLICIT_UNALIAS) -> Ref:
        if mode not in _ALIAS_MODES:
            raise BadArgument(f"alias mode must be one of {_ALIAS_MODES}: {mode!r}")
        ref = self._new_ref()
        p.mark = (ref, len(p.mb) if p.mb else 0, p.taken)
        self._add_alias(p, ref, mode)
        return ref

    def _unalias(self, p: Proc, ref: Any) -> bool:
        if type(ref) is not Ref:
            raise BadArgument(f"unalias needs a reference, not {ref!r}")
        return self._drop_alias(p, ref)

    # --- names (§5) -------------------------------------------------------------------

    def register(self, name: Any, pid: Any) -> None:
        """Register `pid` under `name`; raises `NameTaken` if either is already taken."""
        atom = _name(name)
        if atom == UNDEFINED:
            raise BadArgument("'undefined' cannot be registered")
        if type(pid) is not Pid:
            raise BadArgument(f"register needs a pid, not {pid!r}")
        q = self._proc_of(pid)
        if q is None or not q.alive:
            raise BadArgument(f"cannot register {pid!r}: not a live local process")
        holder = self._names.get(atom)
        if holder is not None and holder.alive:
            raise NameTaken(f"{str(atom)!r} is already registered to {holder.pid!r}")
        if q.name is not None:
            raise NameTaken(f"{pid!r} is already registered as {str(q.name)!r}")
        self._names[atom] = q
        q.name = atom

    def unregister(self, name: Any) -> None:
        atom = _name(name)
        q = self._names.get(atom)
        if q is None or not q.alive:
            raise NotRegistered(f"no process is registered as {str(atom)!r}")
        del self._names[atom]
        q.name = None

    def whereis(self, name: Any) -> Pid | None:
        q = self._names.get(_name(name))
        return q.pid if q is not None and q.alive else None

    def registered(self) -> list[Atom]:
        return [n for n, q in self._names.items() if q.alive]

    # --- timers (§6) --------------------------------------------------------------------

    def send_after(self, delay: Any, dest: Any, msg: Any, *, wrap: bool = False) -> Ref:
        """Send `msg` to `dest` after `delay` seconds; with `wrap`, send
        `TimerMsg(ref, msg)` instead (Erlang's start_timer)."""
        seconds = check_timeout(delay, "timer delay")
        if seconds is None:
            raise InvalidTimeout("a timer needs a finite delay")
        if type(msg) not in IMMUTABLE_TYPES:
            msg = isolate(msg)
        ref = self._new_ref()
        q: Proc | None = None
        if type(dest) is Pid:
            q = self._proc_of(dest)
            if q is None and dest._node == self.name:
                return ref  # a dead local pid: the timer never runs (§6.1)
            if q is not None and not q.alive:
                return ref
        elif type(dest) is str or type(dest) is Atom:
            dest = _name(dest)
        elif not (type(dest) is tuple and len(dest) == 2):
            raise BadArgument(f"timer destination must be a pid or name, not {dest!r}")
        if wrap:
            msg = TimerMsg(ref, msg)
        when = self.loop.time() + seconds
        handle = self.loop.call_at(when, self._timer_fired, ref, dest, msg, context=NEUTRAL)
        self._timers[ref] = (handle, when, q)
        if q is not None:
            if q.timers is None:
                q.timers = set()
            q.timers.add(ref)
        return ref

    def _timer_fired(self, ref: Ref, dest: Any, msg: Any) -> None:
        entry = self._timers.pop(ref, None)
        if entry is None:
            return
        q = entry[2]
        if q is not None:
            if q.timers is not None:
                q.timers.discard(ref)
            if q.alive:
                self._deliver(q, msg)
            return
        if type(dest) is Atom:
            q = self._names.get(dest)
            if q is not None and q.alive:  # an unregistered name: dropped (§6)
                self._deliver(q, msg)
            return
        try:
            self.send(dest, msg)
        except Exception:
            log.exception("beamlet: timer message to %r failed", dest)

    def cancel_timer(self, ref: Any) -> float | None:
        """Cancel a timer; return the seconds it had left, or None if it was not active."""
        remaining = self.read_timer(ref)
        entry = self._timers.pop(ref, None)
        if entry is not None:
            entry[0].cancel()
            q = entry[2]
            if q is not None and q.timers is not None:
                q.timers.discard(ref)
        return remaining

    def read_timer(self, ref: Any) -> float | None:
        """Seconds left on an active timer (rounded to ms), or None (§6)."""
        if type(ref) is not Ref:
            raise BadArgument(f"a timer reference is a Ref, not {ref!r}")
        entry = self._timers.get(ref)
        if entry is None:
            return None
        return round(max(0.0, entry[1] - self.loop.time()), 3)

    # --- introspection ----------------------------------------------------------------

    def is_alive(self, pid: Any) -> bool:
        if type(pid) is not Pid:
            raise BadArgument(f"is_alive needs a pid, not {pid!r}")
        if pid._node != self.name:
            raise BadArgument(f"is_alive needs a local pid, not {pid!r}")
        q = self._proc_of(pid)
        return q is not None and q.alive

    def processes(self) -> list[Pid]:
        """Pids of all live processes, oldest first."""
        return [p.pid for p in self._procs.values() if p.alive]

    def process_info(self, pid: Any) -> ProcessInfo | None:
        """A snapshot of a live local process, or None if it is not alive."""
        if type(pid) is not Pid:
            raise BadArgument(f"process_info needs a pid, not {pid!r}")
        q = self._proc_of(pid)
        if q is None or not q.alive:
            return None
        return ProcessInfo(
            pid=q.pid,
            status=q.status,
            message_queue_len=q.message_queue_len,
            links=q.linked(),
            monitors=q.monitoring(),
            monitored_by=q.watchers(),
            trap_exit=q.trap_exit,
            registered_name=q.name,
            current_function=_fn_name(q.fn),
            reductions=q.taken,
            tables=self.resources.owned_by(q) if self.resources is not None else (),
        )

    # --- introspection (`_core/introspect.py`): read-only, for observe and ets ----------

    def lookup(self, pid: Pid) -> ProcessView | None:
        """The process of this node that `pid` names, read-only (check `.alive`: it may
        be exiting), or None.

        Examples:
            >>> view = beamlet.current_node().lookup(beamlet.self())
            >>> view.status, view.message_queue_len, view.pid == beamlet.self()
            ('running', 0, True)
        """
        return self._proc_of(pid) if type(pid) is Pid else None

    def live_processes(self) -> list[ProcessView]:
        """Every live process of the node, oldest first, read-only.

        Examples:
            >>> node = beamlet.current_node()
            >>> beamlet.self() in [view.pid for view in node.live_processes()]
            True
        """
        return [p for p in list(self._procs.values()) if p.alive]

    def run_queue_length(self) -> int:
        """Processes ready to run (Erlang's `statistics(run_queue)`).

        Examples:
            >>> async def idle():
            ...     await beamlet.receive()
            >>> node = beamlet.current_node()
            >>> before = node.run_queue_length()
            >>> pid = beamlet.spawn(idle)         # queued until the caller yields
            >>> node.run_queue_length() - before
            1
        """
        return len(self._runq)

    def timeouts(self) -> dict[Pid, float]:
        """Seconds left before the receive or call timeout of each process that has one
        armed (read from the deadline heap in one pass).

        Examples:
            >>> async def waiter():
            ...     await beamlet.receive(timeout=5.0, default=None)
            >>> pid = beamlet.spawn(waiter)
            >>> await beamlet.sleep(0.01)
            >>> 4.0 < beamlet.current_node().timeouts()[pid] <= 5.0
            True
        """
        now = self.loop.time()
        out = {
            p.pid: max(0.0, when - now) for when, token, p in self._deadlines if p.rtimer == token
        }
        for p in self._unarmed:  # calls whose timer is armed at the end of the batch
            if p.rtimer is None and p.calltimeout is not None:
                out[p.pid] = p.calltimeout
        return out

    def set_trace(self, pid: Pid, hook: TraceHook, *, receive: bool) -> bool:
        """Install a trace hook on a live local process that has none (False
        otherwise): `hook(kind, process, peer, message)` (`introspect.TraceHook`).
        With `receive`, every message delivered to it is reported too (its sends then
        take the slower path that reports them). `clear_trace` removes it.

        Examples:
            >>> async def echo():
            ...     await beamlet.receive()
            >>> seen = []
            >>> node = beamlet.current_node()
            >>> pid = beamlet.spawn(echo)
            >>> node.set_trace(pid, lambda kind, p, peer, m: seen.append((kind, m)), receive=True)
            True
            >>> beamlet.send(pid, "hi")
            >>> seen[0]
            ('receive', 'hi')
            >>> node.clear_trace(pid)
        """
        q = self._proc_of(pid) if type(pid) is Pid else None
        if q is None or not q.alive or q.trace is not None:
            return False
        q.trace = hook
        if receive:
            q.pid._proc = None  # sends to it take Node._deliver (see Proc.trace)
        return True

    def clear_trace(self, pid: Pid, hook: TraceHook | None = None) -> None:
        """Remove the trace hook of `pid`'s process (only if it is `hook`, when given).

        Examples:
            >>> beamlet.current_node().clear_trace(beamlet.self())   # none: nothing to do
        """
        q = self._proc_of(pid) if type(pid) is Pid else None
        if q is None or (hook is not None and q.trace != hook):
            return
        q.trace = None
        if q.pid._proc is None:  # sends to it take the fast paths again
            q.pid._proc = q

    def unique_ref(self) -> Ref:
        """A new unique reference that, unlike `make_ref`, is no `since=` mark for the
        caller's receive (an id, such as a telemetry span's).

        Examples:
            >>> node = beamlet.current_node()
            >>> node.unique_ref() != node.unique_ref()
            True
        """
        return self._new_ref()

    # --- helpers ----------------------------------------------------------------------

    def _proc_of(self, pid: Pid) -> Proc | None:
        """The process of this node that `pid` names, or None. A pid's cached process
        is trusted only if it belongs to this node (several nodes may share an OS
        process; another node's pid goes through distribution)."""
        q: Proc | None = pid._proc
        if q is not None:  # a process of some node of this OS process: is it ours?
            return q if q.node is self else None
        return self._local_proc(pid)

    def _local_proc(self, pid: Pid) -> Proc | None:
        if pid._node != self.name or pid._creation != self.creation:
            return None
        return self._procs.get((pid._serial << 28) | pid._id)

    def _new_ref(self) -> Ref:
        return Ref._local(self.name, self._next_ref(), self.creation)

    def make_ref(self) -> Ref:
        """A new unique reference."""
        p = get_current()
        ref = self._new_ref()
        if p is not None:
            p.mark = (ref, len(p.mb) if p.mb else 0, p.taken)
        return ref

    def _sender(self) -> Pid:
        p = get_current()
        return p.pid if p is not None and p.node is self else self._system

    def _caller(self) -> Proc:
        from beamlet._core.errors import NotInProcess

        p: Proc | None = get_current()
        if p is None or p.node is not self:
            raise NotInProcess("this must be called from a process of this node")
        if not p.alive:
            raise Terminated(p.reason)
        return p

    def _remote(self) -> RemoteHook:
        if self._dist is None:
            return _NoDistribution()
        return self._dist

    def _set_trap_exit(self, p: Proc, value: bool) -> bool:
        if type(value) is not bool:
            raise BadArgument(f"trap_exit must be a bool, not {value!r}")
        old = p.trap_exit
        p.trap_exit = value
        return old

    # --- the process API on behalf of a given process (from outside it) ---------------

    def _live(self, pid: Any, what: str) -> Proc:
        q = self._proc_of(pid) if type(pid) is Pid else None
        if q is None or not q.alive:
            raise BadArgument(f"{what}: {pid!r} is not a live process of this node")
        return q

    def link(self, a: Pid, b: Pid) -> None:
        """Link the process `a` of this node to `b`, as `a` calling `link(b)` would (§3.1).

        Examples:
            >>> from beamlet import Node
            >>> async def worker():
            ...     await beamlet.receive()
            >>> async with Node() as node:
            ...     a, b = node.spawn(worker), node.spawn(worker)
            ...     node.link(a, b)
            ...     node.exit(a, "stop")          # the link takes b down too
            ...     await node.wait(b)
            'stop'
        """
        self._link(self._live(a, "link"), b)

    def unlink(self, a: Pid, b: Pid) -> None:
        """Remove the link between the process `a` of this node and `b` (§3.7)."""
        self._unlink(self._live(a, "unlink"), b)

    def monitor(
        self,
        watcher: Pid,
        target: Pid | str | Atom | tuple[Any, Any],
        *,
        alias: str | None = None,
        tag: Any = None,
    ) -> Ref:
        """Make the process `watcher` of this node monitor `target` (§4.1); the `Down`
        goes to `watcher`.

        Examples:
            >>> from beamlet import Node
            >>> async def worker():
            ...     await beamlet.receive()
            >>> async with Node() as node:
            ...     watcher, target = node.spawn(worker), node.spawn(worker)
            ...     ref = node.monitor(watcher, target)
            ...     node.process_info(watcher).monitors == (target,)
            True
        """
        return self._monitor(self._live(watcher, "monitor"), target, alias=alias, tag=tag)

    def demonitor(self, watcher: Pid, ref: Ref, *, flush: bool = False) -> bool:
        """Remove the monitor `ref` held by `watcher`; True if it was active (§4.3)."""
        return self._demonitor(self._live(watcher, "demonitor"), ref, flush=flush)

    def alias(self, owner: Pid, mode: str = EXPLICIT_UNALIAS) -> Ref:
        """Create an alias for the process `owner` of this node (§4.4)."""
        return self._alias(self._live(owner, "alias"), mode)

    def unalias(self, owner: Pid, ref: Ref) -> bool:
        """Deactivate one of `owner`'s aliases; True if it was active."""
        return self._unalias(self._live(owner, "unalias"), ref)

    def set_trap_exit(self, pid: Pid, value: bool) -> bool:
        """Set the `trap_exit` flag of the process `pid`; returns the old value (§3.4)."""
        return self._set_trap_exit(self._live(pid, "set_trap_exit"), value)

    # --- the distribution layer's entry points ---------------------------------------

    def deliver_remote(self, dest: Pid | Atom | Ref, msg: Any) -> None:
        """A message from another node (already decoded) for a local pid/name/alias."""
        if type(dest) is Pid:
            q = self._local_proc(dest)
            if q is not None and q.alive:
                self._deliver(q, msg)
        elif type(dest) is Atom:
            q = self._names.get(dest)
            if q is not None and q.alive:
                self._deliver(q, msg)
        elif type(dest) is Ref:
            if dest in self._aliases:
                self._send_slow(dest, msg, False)
            else:
                caller = call_owner(self, dest)  # a call's alias (request.py)
                if caller is not None:
                    self._deliver(caller, msg)

    def remote_down(self, watcher: Pid, ref: Ref, reason: Any) -> None:
        """A monitor this node's process holds on a remote target fired."""
        q = self._local_proc(watcher)
        if q is None or not q.alive or not q.monitors:
            return
        entry = q.monitors.pop(ref, None)
        if entry is None:
            return
        shown, _target, mode, tag = entry
        if mode in (DEMONITOR, REPLY_DEMONITOR):
            self._drop_alias(q, ref)
        self._deliver(q, Down(ref, PROCESS, shown, reason, tag))

    def _target_proc(self, target: Pid | Atom) -> Proc | None:
        if type(target) is Pid:
            return self._local_proc(target)
        if type(target) is Atom:
            return self._names.get(target)
        return None

    def remote_monitored(self, target: Pid | Atom, watcher: Pid, ref: Ref) -> Pid | None:
        """A remote process monitors a local one; returns the local pid, or None after
        answering at once with noproc through `dist.down`."""
        q = self._target_proc(target)
        if q is None or not q.alive:
            return None
        if q.monitored_by is None:
            q.monitored_by = {}
        q.monitored_by[ref] = watcher
        return q.pid

    def remote_link(self, local: Pid, remote: Pid) -> bool:
        """A remote process links to a local one; False if the local one is gone."""
        q = self._local_proc(local)
        if q is None or not q.alive:
            return False
        if q.links is None:
            q.links = set()
        q.links.add(remote)
        return True

    def remote_exit(self, target: Pid, sender: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal from a remote process (link exit or exit/2) for a local one."""
        q = self._local_proc(target)
        if q is not None:
            self.exit_signal(q, sender, reason, link=link)

    def expect_remote_down(self, watcher: Pid, ref: Ref, target: Pid) -> None:
        """Record a monitor that a remote node set up for us (spawn with `monitor`):
        its DOWN will arrive through `remote_down`."""
        q = self._local_proc(watcher)
        if q is None or not q.alive:
            return
        if q.monitors is None:
            q.monitors = {}
        q.monitors[ref] = (target, target, None, None)

    def remote_unlink(self, local: Pid, remote: Pid) -> None:
        q = self._local_proc(local)
        if q is not None and q.links is not None:
            q.links.discard(remote)

    def remote_demonitor(self, target: Pid | Atom, ref: Ref) -> None:
        q = self._target_proc(target)
        if q is not None and q.monitored_by is not None:
            q.monitored_by.pop(ref, None)

    def node_down(self, node: Atom) -> None:
        """A connection was lost: `noconnection` to every link and monitor across it."""
        for p in list(self._procs.values()):
            if not p.alive:
                continue
            if p.links:
                for other in [x for x in p.links if x._node == node]:
                    self.exit_signal(p, other, NOCONNECTION, link=True)
            if p.monitored_by:
                for ref, w in list(p.monitored_by.items()):
                    if type(w) is Pid and w._node == node:
                        del p.monitored_by[ref]
            if p.monitors and p.alive:
                for ref, entry in list(p.monitors.items()):
                    target = entry[1]
                    tnode = target._node if type(target) is Pid else target[1]
                    if tnode == node:
                        self.remote_down(p.pid, ref, NOCONNECTION)


class _NoDistribution:
    """Stand-in for a node without distribution: remote sends are dropped, as Erlang
    drops messages to a node it cannot reach."""

    def send(self, sender: Pid | None, dest: Any, msg: Any) -> None:
        return None

    def link(self, local: Pid, remote: Pid) -> None:  # pragma: no cover - guarded
        return None

    def unlink(self, local: Pid, remote: Pid) -> None:
        return None

    def exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        return None

    def link_exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        return None

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:  # pragma: no cover
        return None

    def demonitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        return None

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Any) -> None:
        return None


def _own_copy(reason: Any) -> Any:
    """A watcher's own copy of a mutable exit reason, so that no two watchers share it
    (§2.2). A process may exit with anything: an uncopyable reason is passed as it is."""
    try:
        return isolate(reason)
    except Unsendable:
        return reason


async def _await(aw: Any) -> Any:
    return await aw


def _isolate_if_local(node: Node, dest: Any, msg: Any) -> Any:
    """Copy a mutable message bound for a local process; leave one for another node
    alone (encoding it for the wire already isolates it)."""
    if type(dest) is tuple and len(dest) == 2 and _name(dest[1]) != node.name:
        return msg
    if type(dest) is Ref and dest._node != node.name:
        return msg
    return isolate(msg)


def _keep(reason: Any) -> Any:
    return reason
