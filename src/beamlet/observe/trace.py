"""Message tracing that is safe in production (recon_trace's rules).

* A limit is required: a total `limit` of events, or a `rate=(n, seconds)`; when it is
  reached the trace stops by itself ("rate limit tripped", as recon says).
* The tracer is a process linked to whoever started it: when the starter goes (a remote
  shell disconnects, a test ends), tracing stops and every hook is removed.
* `clear()` stops every trace of the node in one call.
* Over-broad requests are refused (`TooBroad`): tracing all processes needs a message
  pattern that is not `ANY`, and at most `MAX_TARGETS` processes can be named.

A traced process is never blocked: its hook formats the event (a bounded repr) into a
bounded buffer and the tracer process does the output; events past the buffer are
counted as dropped. Events: "send", "receive", "call" (a send of a call request),
"spawn", "link", "exit".

Outputs: "log" (the `beamlet.trace` logger), a callable (run in the tracer process), or
`perfetto(path)`: a Chrome/Perfetto trace file (one track per process, an arrow per
message from sender to receiver) that ui.perfetto.dev and chrome://tracing open.

Examples:
    >>> from beamlet import ANY
    >>> from beamlet.observe import trace
    >>> async def echo():
    ...     sender, msg = await beamlet.receive((ANY, ANY))
    ...     beamlet.send(sender, msg)
    >>> pid = beamlet.spawn(echo)
    >>> seen = []
    >>> t = trace.start([pid], ["receive", "send"], limit=2, output=seen.append)
    >>> beamlet.send(pid, (beamlet.self(), "hi"))
    >>> await beamlet.receive("hi", timeout=5)
    'hi'
    >>> _ = beamlet.monitor(t.pid)
    >>> _ = await beamlet.receive(timeout=5)   # the tracer ends at its limit
    >>> [str(ev) for ev in seen], t.stopped_by
    (["<0.2.0> receive <- <0.1.0>: (<0.1.0>, 'hi')", "<0.2.0> send -> <0.1.0>: 'hi'"], 'limit')
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamlet._core import (
    ANY,
    Atom,
    BadArgument,
    Node,
    NodeVar,
    Pid,
    Shared,
    compile_patterns,
    receive,
    spawn_link,
)
from beamlet._core import ProcessView as Proc
from beamlet.observe.errors import TooBroad
from beamlet.observe.info import live_procs, node_of, short_repr

__all__ = ["EVENTS", "MAX_TARGETS", "TraceEvent", "Tracer", "clear", "perfetto", "start"]

EVENTS = frozenset({"send", "receive", "call", "spawn", "link", "exit"})
MAX_TARGETS = 10_000
BUFFER = 10_000  # events buffered for the tracer process; more are dropped and counted
_KEY = ("beamlet.observe", "tracers")
_STATE: NodeVar[dict[Any, Any]] = NodeVar("beamlet.observe.trace", dict)
_GEN_CALL = Atom("$gen_call")
_WAKE = Atom("$beamlet_trace_wake")
log = logging.getLogger("beamlet.trace")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One traced event. `pid` is the traced process, `peer` the other side (the
    destination of a send, the sender of a received message, the spawned or linked
    pid), `message` a bounded repr. `ts` is `time.perf_counter()` seconds; `flow`
    pairs a send with its receive (the same number on both).

    Examples:
        >>> from beamlet.observe import trace
        >>> ev = trace.TraceEvent(0.0, "send", beamlet.self(), beamlet.self(), "'hi'")
        >>> print(ev)
        <0.1.0> send -> <0.1.0>: 'hi'
    """

    ts: float
    kind: str
    pid: Pid
    peer: Any
    message: str
    flow: int = 0

    def __str__(self) -> str:
        arrow = {"send": "->", "call": "=>", "receive": "<-"}.get(self.kind, "")
        return f"{self.pid!r} {self.kind} {arrow} {self.peer!r}: {self.message}"


class Tracer:
    """A running trace; `clear()` stops it. `count` is the events taken, `dropped`
    those lost to a full buffer, `stopped_by` why it ended ("limit", "rate", "clear",
    "starter exited").

    Examples:
        >>> from beamlet.observe import trace
        >>> pid = beamlet.spawn(beamlet.receive)
        >>> t = trace.start(pid, ["receive"], limit=10, output=print)
        >>> t.active, t.count
        (True, 0)
        >>> t.clear()
        >>> t.active, t.stopped_by
        (False, 'clear')
    """

    def __init__(
        self,
        node: Node,
        kinds: frozenset[str],
        match: Callable[[Any], bool] | None,
        limit: int | None,
        rate: tuple[int, float] | None,
    ) -> None:
        self.node = node
        self.kinds = kinds
        self.match = match
        self.limit = limit
        self.rate = rate
        self.window_start = time.monotonic()
        self.window_count = 0
        self.count = 0
        self.dropped = 0
        self.buffer: deque[TraceEvent] = deque()
        self.procs: list[Proc] = []
        self.pid: Pid | None = None
        self.active = True
        self.stopped_by: str | None = None
        self.woken = False
        self._flows = 0
        self._last_send: tuple[Pid, Pid, int] | None = None

    # --- the hook: runs in the traced process (or the runtime); cheap, never blocks ---

    def hook(self, kind: str, p: Proc, peer: Any, msg: Any) -> None:
        if not self.active or (peer == self.pid and peer is not None):
            return  # never trace the tracer's own output (a callback that sends)
        if kind == "send" and type(msg) is tuple and len(msg) == 3 and msg[0] == _GEN_CALL:
            kind = "call"
        if kind not in self.kinds and not (kind == "call" and "send" in self.kinds):
            return
        if self.match is not None and kind in ("send", "call", "receive"):
            try:
                if not self.match(msg):
                    return
            except Exception:
                return
        if not self._admit():
            return
        flow = 0
        if kind in ("send", "call"):
            self._flows += 1
            flow = self._flows
            if type(peer) is Pid:
                self._last_send = (p.pid, peer, flow)
        elif kind == "receive":
            last = self._last_send
            if last is not None and last[0] == peer and last[1] == p.pid:
                flow = last[2]
                self._last_send = None
            else:
                self._flows += 1
                flow = -self._flows  # only the receiver is traced: an arrow from its sender
        shown = short_repr(msg) if kind not in ("spawn", "link") else _fn(msg)
        ev = TraceEvent(time.perf_counter(), kind, p.pid, peer, shown, flow)
        if len(self.buffer) >= BUFFER:
            self.dropped += 1
        else:
            self.buffer.append(ev)
        if not self.woken and self.pid is not None:
            self.woken = True
            self.node.send(self.pid, _WAKE)
        if kind == "exit":
            self._forget(p)
        if self.limit is not None and self.count >= self.limit:
            self.stop("limit")

    def own_hook(self, kind: str, p: Proc, peer: Any, msg: Any) -> None:
        """The tracer process's own hook: only its exit matters."""
        if kind == "exit":
            self.node.clear_trace(p.pid)
            self.stop("starter exited" if self.active else (self.stopped_by or "clear"))

    def _admit(self) -> bool:
        if self.rate is not None:
            n, per = self.rate
            now = time.monotonic()
            if now - self.window_start >= per:
                self.window_start = now
                self.window_count = 0
            if self.window_count >= n:
                log.warning("beamlet trace rate limit tripped (%d events in %gs)", n, per)
                self.stop("rate")
                return False
            self.window_count += 1
        self.count += 1
        return True

    # --- lifecycle ---

    def install(self, procs: Iterable[Proc]) -> None:
        for p in procs:
            if self.node.set_trace(p.pid, self.hook, receive="receive" in self.kinds):
                self.procs.append(p)

    def _forget(self, p: Proc) -> None:
        self.node.clear_trace(p.pid, self.hook)

    def stop(self, why: str = "clear") -> None:
        """Remove every hook this trace installed (idempotent)."""
        if not self.active and self.stopped_by is not None:
            return
        self.active = False
        self.stopped_by = self.stopped_by or why
        for p in self.procs:
            self._forget(p)
        self.procs = []
        tracers = _STATE.get(self.node).get(_KEY)
        if tracers is not None and self in tracers:
            tracers.remove(self)
        if self.pid is not None and not self.woken:
            self.woken = True
            try:
                self.node.send(self.pid, _WAKE)
            except Exception:
                pass

    def clear(self) -> None:
        """Stop this trace."""
        self.stop("clear")


def _fn(x: Any) -> str:
    if type(x) is Pid or x is None:
        return ""
    return f"{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', short_repr(x))}"


# --- outputs -----------------------------------------------------------------------------


class perfetto:
    """A Chrome/Perfetto trace-event JSON file: a track per process (named after it),
    a 1 µs slice per event, and flow arrows from each send to its receive.

    Examples:
        >>> import json, pathlib, tempfile
        >>> from beamlet.observe import trace
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "trace.json"
        >>> pid = beamlet.spawn(beamlet.receive)
        >>> t = trace.start([pid], ["receive"], limit=1, output=trace.perfetto(path))
        >>> beamlet.send(pid, "hello")
        >>> _ = beamlet.monitor(t.pid)
        >>> _ = await beamlet.receive(timeout=5)   # the file is written when the trace ends
        >>> events = json.loads(path.read_text())["traceEvents"]
        >>> [e["name"] for e in events if e["ph"] == "X"]   # a slice per event
        ['receive']
        >>> sorted(e["ph"] for e in events if e["ph"] in "sf")   # the arrow from the sender
        ['f', 's']
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.events: list[dict[str, Any]] = []
        self.tracks: dict[Pid, int] = {}
        self.t0: float | None = None

    def _tid(self, pid: Pid, node: Node) -> int:
        tid = self.tracks.get(pid)
        if tid is None:
            tid = self.tracks[pid] = pid.serial << 28 | pid.id
            q = node.lookup(pid)
            name = str(q.name) if q is not None and q.name is not None else None
            if name is None and q is not None:
                name = getattr(q.fn, "__qualname__", None)
            label = f"{pid!r} {name}" if name else repr(pid)
            self.events.append(
                {"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": label}}
            )
        return tid

    def __call__(self, ev: TraceEvent, node: Node) -> None:
        if self.t0 is None:
            self.t0 = ev.ts
        ts = round((ev.ts - self.t0) * 1e6, 3)
        tid = self._tid(ev.pid, node)
        args = {"peer": repr(ev.peer), "message": ev.message}
        self.events.append(
            {
                "ph": "X",
                "name": ev.kind,
                "cat": "beamlet",
                "pid": 1,
                "tid": tid,
                "ts": ts,
                "dur": 1,
                "args": args,
            }
        )
        if ev.flow and ev.kind in ("send", "call"):
            self.events.append(
                {
                    "ph": "s",
                    "name": "message",
                    "cat": "msg",
                    "id": ev.flow,
                    "pid": 1,
                    "tid": tid,
                    "ts": ts,
                }
            )
        elif ev.flow and ev.kind == "receive":
            if ev.flow < 0 and type(ev.peer) is Pid:  # the sender is not traced
                stid = self._tid(ev.peer, node)
                self.events.append(
                    {
                        "ph": "s",
                        "name": "message",
                        "cat": "msg",
                        "id": -ev.flow,
                        "pid": 1,
                        "tid": stid,
                        "ts": ts,
                    }
                )
            self.events.append(
                {
                    "ph": "f",
                    "bp": "e",
                    "name": "message",
                    "cat": "msg",
                    "id": abs(ev.flow),
                    "pid": 1,
                    "tid": tid,
                    "ts": ts,
                }
            )

    def close(self, node: Node) -> None:
        meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": str(node.name)}}]
        data = {"traceEvents": meta + self.events, "displayTimeUnit": "ms"}
        self.path.write_text(json.dumps(data))


async def _tracer_main(shared: Shared[Tracer], output: Any) -> None:
    t = shared.value
    node = t.node
    try:
        while True:
            await receive(_WAKE)
            t.woken = False
            while t.buffer:
                ev = t.buffer.popleft()
                if output == "log":
                    log.info("%s", ev)
                elif isinstance(output, perfetto):
                    output(ev, node)
                else:
                    output(ev)
            if not t.active:
                return
    finally:
        t.stop("starter exited" if t.active else (t.stopped_by or "clear"))
        if isinstance(output, perfetto):
            output.close(node)


# --- the API -------------------------------------------------------------------------------


def _targets(node: Node, targets: Any) -> list[Proc]:
    if targets == "all":
        return list(live_procs(node))
    if isinstance(targets, str | Pid):
        targets = [targets]
    out: list[Proc] = []
    for t in targets:
        if type(t) is Pid:
            q = node.lookup(t)
        elif isinstance(t, str):
            pid = node.whereis(t)
            q = node.lookup(pid) if pid is not None else None
        else:
            raise BadArgument(f"a trace target is a pid or a registered name, not {t!r}")
        if q is None or not q.alive:
            raise BadArgument(f"cannot trace {t!r}: not a live local process")
        out.append(q)
        if len(out) > MAX_TARGETS:
            raise TooBroad(f"at most {MAX_TARGETS} processes can be traced at once")
    return out


def start(
    targets: Iterable[Pid | str] | Pid | str,
    events: Iterable[str] = ("send", "receive"),
    *,
    limit: int | None = None,
    rate: tuple[int, float] | None = None,
    message: Any = None,
    output: Any = "log",
    node: Node | None = None,
) -> Tracer:
    """Trace `events` of `targets` (pids or registered names, or "all" with a `message`
    pattern) until `limit` events or past `rate=(n, seconds)`. `message` filters
    sends/receives with a receive pattern. The tracer is linked to the caller.

    Examples:
        >>> from beamlet import ANY
        >>> from beamlet.observe import trace
        >>> trace.start("all", ["receive"], limit=10)
        Traceback (most recent call last):
        ...
        beamlet.observe.errors.TooBroad: tracing every process needs a message pattern (and not ANY)
        >>> beamlet.register("cache", beamlet.spawn(beamlet.receive, "never"))
        >>> seen = []
        >>> t = trace.start("cache", ["receive"], limit=5, message=("get", ANY), output=seen.append)
        >>> beamlet.send("cache", ("put", 1))
        >>> beamlet.send("cache", ("get", 1))
        >>> trace.clear()
        1
        >>> _ = beamlet.monitor(t.pid)
        >>> _ = await beamlet.receive(timeout=5)
        >>> [ev.message for ev in seen]
        ["('get', 1)"]
    """
    n = node_of(node)
    kinds = frozenset(events)
    if not kinds or not kinds <= EVENTS:
        raise BadArgument(f"events must be a non-empty subset of {sorted(EVENTS)}, not {events!r}")
    if limit is None and rate is None:
        raise TooBroad("a trace needs a limit: limit=N events or rate=(N, seconds)")
    if limit is not None and (type(limit) is not int or limit <= 0):
        raise BadArgument(f"limit must be an int > 0, not {limit!r}")
    if rate is not None and not (
        type(rate) is tuple
        and len(rate) == 2
        and type(rate[0]) is int
        and rate[0] > 0
        and isinstance(rate[1], int | float)
        and rate[1] > 0
    ):
        raise BadArgument(f"rate must be (events: int > 0, seconds > 0), not {rate!r}")
    if targets == "all" and (message is None or message is ANY):
        raise TooBroad("tracing every process needs a message pattern (and not ANY)")
    if not (output == "log" or callable(output)):
        raise BadArgument(
            f"output must be 'log', a callable or trace.perfetto(path), not {output!r}"
        )
    procs = _targets(n, targets)
    if len(procs) > MAX_TARGETS:
        raise TooBroad(f"at most {MAX_TARGETS} processes can be traced at once")
    match = compile_patterns((message,)) if message is not None else None
    t = Tracer(n, kinds, match, limit, rate)
    t.pid = spawn_link(_tracer_main, Shared(t), output)
    tracer_proc = n.lookup(t.pid)
    # its death (its starter's exit through the link, a kill) removes every hook at once
    n.set_trace(t.pid, t.own_hook, receive=False)
    t.install(q for q in procs if q is not tracer_proc)
    _STATE.get(n).setdefault(_KEY, []).append(t)
    return t


def clear(node: Node | None = None) -> int:
    """Stop every trace on the node; returns how many were running.

    Examples:
        >>> from beamlet.observe import trace
        >>> pid = beamlet.spawn(beamlet.receive)
        >>> _ = trace.start(pid, ["receive"], limit=10, output=print)
        >>> trace.clear(), trace.clear()
        (1, 0)
    """
    n = node_of(node)
    tracers = list(_STATE.get(n).get(_KEY, ()))
    for t in tracers:
        t.stop("clear")
    return len(tracers)
