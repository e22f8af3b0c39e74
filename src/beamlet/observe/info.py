"""Process introspection: `processes()`, `process_info(pid, keys)`, and *why* a process waits.

Everything here is read from the kernel's `Proc` objects and from the suspended
coroutine frames, synchronously, without the observed process's help: a stuck process
(one that never reads its mailbox) is described as well as a healthy one, and nothing is
added to the kernel's hot paths. The frames give the current await point (file:line),
the patterns a selective receive waits for, and a behaviour's state.

Examples:
    >>> from beamlet import observe
    >>> observe.KEYS[:6]
    ('pid', 'label', 'registered_name', 'initial_call', 'current', 'status')
"""

from __future__ import annotations

import reprlib
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from types import FrameType
from typing import Any

from beamlet._core import (
    Atom,
    BadArgument,
    Node,
    NoProcError,
    NotInProcess,
    Pid,
    ProcessView,
    await_chain,
    current_node,
    receive_wait,
)
from beamlet.behaviours.dynamic_supervisor import DynamicServer
from beamlet.behaviours.supervisor import SupervisorServer
from beamlet.observe.errors import NodeUnreachable

__all__ = [
    "ProcessSnapshot",
    "RestartBudget",
    "WaitReason",
    "ancestors",
    "node_of",
    "process_info",
    "processes",
    "snapshot",
]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 3
_repr.maxtuple = _repr.maxlist = _repr.maxdict = _repr.maxset = 6

_CORE = "beamlet._core."
_SAMPLE = 1000  # queued messages looked at to summarise a mailbox's shapes


def short_repr(value: Any, limit: int = 200) -> str:
    """A bounded repr that never raises (user `__repr__`s may)."""
    try:
        s = _repr.repr(value)
    except Exception as e:  # a broken __repr__ must not break introspection
        s = f"<unrepresentable {type(value).__name__}: {type(e).__name__}>"
    return s if len(s) <= limit else s[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class WaitReason:
    """Why a waiting process waits.

    `kind` is "receive" (a selective receive: `pattern` is what it waits for),
    "message" (any message), "call" (a reply from `target`), "future" (an asyncio
    awaitable, `pattern` its repr) or "sleep". `deadline` is the seconds left before its
    timeout (None: no timeout). `unmatched` counts the queued messages the wait will
    not take — every queued message, for a parked receive — and `shapes` summarises
    them (the most common first), the "mailbox nobody matches" bug made visible.

    Examples:
        >>> from beamlet import ANY, observe
        >>> async def worker():
        ...     await beamlet.receive(("job", ANY), timeout=60)
        >>> w = beamlet.spawn(worker)
        >>> beamlet.send(w, ("work", 1))
        >>> await beamlet.sleep(0)
        >>> why = observe.process_info(w, ["waiting"])["waiting"]
        >>> why.kind, why.pattern, why.unmatched, why.shapes, 59 < why.deadline <= 60
        ('receive', "('job', ANY)", 1, (("('work', …)/2", 1),), True)
    """

    kind: str
    pattern: str | None
    deadline: float | None
    unmatched: int
    shapes: tuple[tuple[str, int], ...] = ()
    target: Pid | None = None

    def __str__(self) -> str:
        what = {"call": f"call to {self.target!r}", "message": "any message"}.get(
            self.kind, f"{self.kind} {self.pattern or ''}".strip()
        )
        when = "forever" if self.deadline is None else f"{self.deadline:.3f}s left"
        out = f"{what}, {when}"
        if self.unmatched:
            shown = ", ".join(f"{s} x{n}" for s, n in self.shapes[:3])
            out += f"; {self.unmatched} queued not matching ({shown})"
        return out


@dataclass(frozen=True, slots=True)
class RestartBudget:
    """A supervisor's restart intensity (§8.6): `used` restarts within the last
    `period` seconds, out of `intensity` tolerated.

    Examples:
        >>> from beamlet import Supervisor, observe
        >>> sup = await Supervisor.start_link([], strategy="one_for_one")
        >>> budget = observe.process_info(sup, ["restarts"])["restarts"]
        >>> budget.used, str(budget)
        (0, '0/3 in 5s')
    """

    used: int
    intensity: int
    period: float

    def __str__(self) -> str:
        return f"{self.used}/{self.intensity} in {self.period:g}s"


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """One process, as `processes()` and `process_info()` show it.

    `label` is its registered name, else its behaviour module, else its initial call.
    `work` counts the messages it has taken (beamlet's reductions-like count). `memory`
    is an estimate in bytes (the process, its mailbox and its coroutine frames).

    Examples:
        >>> from beamlet import observe
        >>> [me] = [row for row in observe.processes() if row.pid == beamlet.self()]
        >>> me.status, me.message_queue_len, me.memory > 0, me.as_dict()["trap_exit"]
        ('running', 0, True, False)
    """

    pid: Pid
    label: str
    registered_name: Atom | None
    initial_call: str
    current: str | None  # "file:line in function" of the await it is suspended at
    status: str  # running, runnable, waiting, exiting
    message_queue_len: int
    memory: int
    work: int
    links: tuple[Pid, ...]
    monitors: tuple[Any, ...]
    monitored_by: tuple[Pid, ...]
    trap_exit: bool
    parent: Pid | None
    ancestors: tuple[Pid, ...]
    behaviour: str | None  # GenServer, Supervisor, DynamicSupervisor, Task, Agent...
    module: str | None  # the behaviour's callback class
    state: str | None  # a bounded repr of the behaviour's state (format_status applies)
    waiting: WaitReason | None
    restarts: RestartBudget | None  # supervisors only
    children: int | None  # supervisors only

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


KEYS: tuple[str, ...] = tuple(f.name for f in fields(ProcessSnapshot))


# --- frames ------------------------------------------------------------------------------


def _where(f: FrameType) -> str:
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_qualname}"


def current_frame(frames: list[FrameType]) -> FrameType | None:
    """The innermost frame outside the kernel: where the process's own code awaits."""
    for f in reversed(frames):
        if not f.f_globals.get("__name__", "").startswith(_CORE):
            return f
    return frames[-1] if frames else None


def stack(pid: Pid, node: Node | None = None) -> list[str]:
    """The await chain of a process, outermost first, as "file:line in function".

    Examples:
        >>> from beamlet import observe
        >>> async def worker():
        ...     await beamlet.receive()
        >>> w = beamlet.spawn(worker)
        >>> await beamlet.sleep(0)
        >>> [line.rsplit(" in ", 1)[1] for line in observe.stack(w)][:1]
        ['worker']
    """
    p = _proc(pid, node)
    return [_where(f) for f in await_chain(p)[0]]


# --- why waiting -------------------------------------------------------------------------


def _pattern_repr(pat: Any) -> str:
    if callable(pat) and not isinstance(pat, type):
        code = getattr(pat, "__code__", None)
        name = getattr(pat, "__qualname__", type(pat).__name__)
        if code is not None:
            return f"<predicate {name} at {code.co_filename}:{code.co_firstlineno}>"
        return f"<predicate {short_repr(pat)}>"
    if isinstance(pat, type):
        return pat.__qualname__
    return short_repr(pat)


def _shape(m: Any) -> str:
    t = type(m)
    if t is tuple:
        if m and type(m[0]) in (Atom, str, int, bytes):
            return f"({m[0]!r}, …)/{len(m)}" if len(m) > 1 else f"({m[0]!r},)"
        return f"tuple/{len(m)}"
    if t in (Atom, str, int, float, bool, bytes) or m is None:
        return short_repr(m, 40)
    return t.__qualname__


def mailbox_shapes(p: ProcessView, sample: int = _SAMPLE) -> tuple[tuple[str, int], ...]:
    """The most common message shapes among the first `sample` queued messages."""
    msgs = p.peek_messages(sample)
    if not msgs:
        return ()
    return tuple(Counter(_shape(m) for m in msgs).most_common(5))


class _Deadlines:
    """Seconds left of the armed receive/call timeouts, read once per snapshot."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._by_pid: dict[Pid, float] | None = None

    def left(self, p: ProcessView) -> float | None:
        if self._by_pid is None:
            self._by_pid = self.node.timeouts()
        return self._by_pid.get(p.pid)


def why_waiting(
    p: ProcessView, frames: list[FrameType], awaited: Any, dl: _Deadlines
) -> WaitReason | None:
    st = p.waiting
    if st is None:
        return None
    n = p.message_queue_len
    shapes = mailbox_shapes(p) if n else ()
    if st == "call":
        return WaitReason("call", None, dl.left(p), n, shapes, p.call_target)
    if st == "future":
        fut = awaited if awaited is not None else p.awaited_future
        return WaitReason("future", short_repr(fut), None, n, shapes)
    # A receive: the kernel reads its patterns from the receive frames (none for
    # `next_message` and `sleep`, which wait with a never-matching predicate).
    rw = receive_wait(frames)
    kind = "sleep" if rw.sleep else st
    pattern: str | None = None
    if rw.matcher is not None:
        pattern = _pattern_repr(rw.matcher)
    if rw.patterns:
        pattern = " | ".join(_pattern_repr(x) for x in rw.patterns)
    if rw.since is not None:
        pattern = f"{pattern or 'any message'} since {rw.since!r}"
    return WaitReason(kind, pattern, dl.left(p), n if kind != "message" else 0, shapes)


# --- behaviours --------------------------------------------------------------------------


def _behaviour(p: ProcessView, frames: list[FrameType]) -> tuple[str | None, str | None, Any, Any]:
    """(kind, module, state summary, supervisor server object) of a behaviour process."""
    fn = p.fn
    owner: Any = getattr(fn, "__self__", None)
    modname = getattr(type(owner), "__module__", "") if owner is not None else ""
    if modname == "beamlet.behaviours.gen_server" and type(owner).__name__ == "_Server":
        cls = owner.cls
        if isinstance(cls, type) and issubclass(
            cls, SupervisorServer
        ):  # supervisors are GenServers
            kind = "DynamicSupervisor" if issubclass(cls, DynamicServer) else "Supervisor"
            server = getattr(owner, "state", None)
            user = getattr(server, "cls", None) or getattr(server, "module", None)
            return kind, getattr(user, "__qualname__", cls.__qualname__), None, server
        kind = "GenServer"
        if cls.__module__ == "beamlet.behaviours.agent":
            kind = "Agent"
        try:
            state = owner.formatted(None, None).get("state")
        except Exception:
            state = "<format_status failed>"
        return kind, cls.__qualname__, short_repr(state), None
    fmod = getattr(fn, "__module__", "")
    fname = getattr(fn, "__name__", "")
    if fmod == "beamlet.behaviours.supervisor" and fname == "_supervisor_main":
        return _sup_info("Supervisor", frames)
    if fmod == "beamlet.behaviours.dynamic_supervisor" and fname == "_dynamic_main":
        return _sup_info("DynamicSupervisor", frames)
    if fmod in ("beamlet.behaviours.task", "beamlet.behaviours.task_supervisor"):
        return "Task", None, None, None
    return None, None, None, None


def _sup_info(kind: str, frames: list[FrameType]) -> tuple[str | None, str | None, Any, Any]:
    server = frames[0].f_locals.get("server") if frames else None
    boot = frames[0].f_locals.get("boot") if frames else None
    cls = getattr(boot, "cls", None)
    mod = cls.__qualname__ if cls is not None else None
    if server is None:
        return kind, mod, "starting", None
    return kind, mod, None, server


def supervisor_server(p: ProcessView) -> Any:
    """The supervisor's internal server object, or None (not a supervisor, or starting)."""
    frames, _ = await_chain(p)
    return _behaviour(p, frames)[3]


def _budget(server: Any) -> RestartBudget | None:
    ri = getattr(server, "intensity", None)
    if ri is None:
        return None
    now = server_now()
    used = sum(1 for t in ri.stamps if t >= now - ri.period)
    return RestartBudget(used, ri.intensity, ri.period)


def server_now() -> float:
    import asyncio

    return asyncio.get_running_loop().time()


# --- snapshots ---------------------------------------------------------------------------


def node_of(node: Node | None) -> Node:
    """The node to observe: `node`, else the calling process's node."""
    if node is not None:
        if not isinstance(node, Node):
            raise BadArgument(f"node must be a beamlet Node, not {node!r}")
        return node
    try:
        return current_node()
    except NotInProcess:
        raise NotInProcess(
            "beamlet.observe needs node= when called from outside a beamlet process"
        ) from None


def _proc(pid: Any, node: Node | None) -> ProcessView:
    n = node_of(node)
    if type(pid) is not Pid:
        raise BadArgument(f"expected a pid, not {pid!r}")
    if pid.node != n.name:
        connected = False
        dist = n.dist
        if dist is not None:
            try:
                connected = Atom(pid.node) in dist.nodes()  # type: ignore[attr-defined]
            except Exception:
                connected = False
        if not connected:
            raise NodeUnreachable(pid.node, pid)
        raise BadArgument(
            f"{pid!r} is on node {str(pid.node)!r}: use beamlet.observe.remote to inspect it"
        )
    q = n.lookup(pid)
    if q is None or not q.alive:
        raise NoProcError(pid)
    return q


def _memory(p: ProcessView, frames: list[FrameType]) -> int:
    return p.footprint() + sum(sys.getsizeof(f) for f in frames)


def ancestors(p: ProcessView) -> tuple[Pid, ...]:
    """The chain of spawners, nearest first, up to the first that is gone."""
    out: list[Pid] = []
    node = p.node
    cur: Pid | None = p.parent
    while cur is not None and len(out) < 32:
        out.append(cur)
        q = node.lookup(cur)
        cur = q.parent if q is not None else None
    return tuple(out)


def _initial_call(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or "?"
    return f"{mod}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def snapshot(p: ProcessView, dl: _Deadlines | None = None) -> ProcessSnapshot:
    """Everything `process_info` shows about one live process."""
    frames, awaited = await_chain(p)
    dl = dl or _Deadlines(p.node)
    kind, module, state, server = _behaviour(p, frames)
    cf = current_frame(frames)
    initial = _initial_call(p.fn)
    label = str(p.name) if p.name is not None else module or initial
    children = None
    if server is not None:
        ch = getattr(server, "children", None)
        children = len(ch) if ch is not None else None
    return ProcessSnapshot(
        pid=p.pid,
        label=label,
        registered_name=p.name,
        initial_call=initial,
        current=_where(cf) if cf is not None else None,
        status=p.status,
        message_queue_len=p.message_queue_len,
        memory=_memory(p, frames),
        work=p.taken,
        links=p.linked(),
        monitors=p.monitoring(),
        monitored_by=p.watchers(),
        trap_exit=p.trap_exit,
        parent=p.parent,
        ancestors=ancestors(p),
        behaviour=kind,
        module=module,
        state=state,
        waiting=why_waiting(p, frames, awaited, dl),
        restarts=_budget(server) if server is not None else None,
        children=children,
    )


def live_procs(node: Node) -> Iterator[ProcessView]:
    return iter(node.live_processes())


def processes(node: Node | None = None, *, limit: int | None = None) -> list[ProcessSnapshot]:
    """A snapshot of every live process of the node, oldest first (at most `limit`).

    Examples:
        >>> from beamlet import observe
        >>> pid = beamlet.spawn(beamlet.receive)
        >>> await beamlet.sleep(0)
        >>> [(row.pid == pid, row.status) for row in observe.processes()]
        [(False, 'running'), (True, 'waiting')]
        >>> len(observe.processes(limit=1))
        1
    """
    n = node_of(node)
    if limit is not None and (type(limit) is not int or limit < 0):
        raise BadArgument(f"limit must be an int >= 0 or None, not {limit!r}")
    dl = _Deadlines(n)
    out: list[ProcessSnapshot] = []
    for p in live_procs(n):
        if limit is not None and len(out) >= limit:
            break
        out.append(snapshot(p, dl))
    return out


def process_info(
    pid: Pid, keys: Iterable[str] | None = None, *, node: Node | None = None
) -> dict[str, Any]:
    """The columns of one process, as a dict: all of `KEYS`, or only `keys`.

    Raises `NoProcError` for a dead or unknown local pid, `NodeUnreachable` for a pid of
    a node that is not connected, `BadArgument` for an unknown key.

    Examples:
        >>> from beamlet import observe
        >>> async def worker():
        ...     await beamlet.receive("go")
        >>> w = beamlet.spawn(worker)
        >>> beamlet.send(w, "other")
        >>> await beamlet.sleep(0)
        >>> info = observe.process_info(w, ["status", "message_queue_len", "waiting"])
        >>> info["status"], info["message_queue_len"], info["waiting"].kind
        ('waiting', 1, 'receive')
        >>> observe.process_info(w, ["colour"])
        Traceback (most recent call last):
        ...
        beamlet.BadArgument: unknown process_info keys ['colour']; known: ...
    """
    wanted: list[str] | None = None
    if keys is not None:
        if isinstance(keys, str):
            raise BadArgument("keys must be a list of column names, not one string")
        wanted = list(keys)
        bad = [k for k in wanted if k not in KEYS]
        if bad:
            raise BadArgument(f"unknown process_info keys {bad!r}; known: {', '.join(KEYS)}")
    snap = snapshot(_proc(pid, node))
    if wanted is None:
        return {k: getattr(snap, k) for k in KEYS}
    return {k: getattr(snap, k) for k in wanted}
