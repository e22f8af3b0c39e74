"""telemetry-style events: named events with measurements and metadata, handlers attached
by id, spans; and the events the runtime emits.

As in Erlang's `telemetry`: `execute(event, measurements, metadata)` calls every handler
attached to that event name synchronously, in the emitting process; a handler that raises
is detached and a `("telemetry", "handler", "failure")` event is emitted. `span` emits
`prefix + ("start",)`, then `("stop",)` with the duration or `("exception",)`. Handlers
live per node (`_STATE.get(Node)`), so a fresh node starts with none.

Runtime events (after `attach_runtime_events()`; names are tuples of str):

* `("beamlet", "process", "crash")` — metadata `pid`, `reason`, `initial_call`;
* `("beamlet", "supervisor", "restart")` / `("beamlet", "supervisor", "report")` — a
  child restarted (or any other supervisor report), metadata `supervisor`, `child_id`,
  `child_pid`, `reason`, `context`;
* `("beamlet", "process", "mailbox_high")` — a message queue crossed a high-water mark
  (1,000, 10,000, 100,000; measurement `message_queue_len`), from the sampler;
* `("beamlet", "vm", "summary")` — every sampler interval: `process_count`,
  `run_queue`, `loop_lag`;
* `("beamlet", "distribution", "connect" | "disconnect")` — metadata `node`.

Handlers of runtime events run in the sampler process (the runtime often logs from
outside any process), so they may use the process API.

Crashes and supervisor reports are taken from the runtime's structured log records, and
the rest from a sampling process: nothing is added to the kernel's paths.

Examples:
    >>> from beamlet.observe import telemetry
    >>> me = beamlet.self()
    >>> def on_crash(event, measurements, metadata, config):
    ...     beamlet.send(me, ("crashed", metadata["initial_call"], metadata["reason"]))
    >>> telemetry.attach("my-crash-logger", ("beamlet", "process", "crash"), on_crash)
    >>> _ = telemetry.attach_runtime_events()
    >>> async def doomed():
    ...     raise ValueError("boom")
    >>> _ = beamlet.spawn(doomed)
    >>> tag, initial_call, reason = await beamlet.receive(timeout=5)
    >>> tag, initial_call.rsplit(".", 1)[-1], reason.exception
    ('crashed', 'doomed', ValueError('boom'))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import beamlet._core as api
from beamlet._core import Atom, BadArgument, Node, NodeVar, Pid, Shared
from beamlet.observe.info import live_procs, node_of

__all__ = [
    "EventName",
    "Handler",
    "HandlerInfo",
    "attach",
    "attach_many",
    "attach_runtime_events",
    "detach",
    "detach_runtime_events",
    "execute",
    "list_handlers",
    "span",
]

EventName = tuple[str, ...]
Handler = Callable[[EventName, Mapping[str, Any], Mapping[str, Any], Any], None]
FAILURE: EventName = ("telemetry", "handler", "failure")
_KEY = ("beamlet.observe", "telemetry")
_STATE: NodeVar[dict[Any, Any]] = NodeVar("beamlet.observe.telemetry", dict)
HIGH_WATER = (1_000, 10_000, 100_000)
_EVENT = Atom("$beamlet_telemetry_event")
_MAX_BACKLOG = 10_000  # runtime events queued for the sampler before new ones are dropped

log = logging.getLogger("beamlet.observe")


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """An attached handler, as `list_handlers` returns it.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach("h", ("app", "done"), print, {"level": 1})
        >>> [info] = telemetry.list_handlers()
        >>> info.id, info.event_name, info.function is print, info.config
        ('h', ('app', 'done'), True, {'level': 1})
    """

    id: Any
    event_name: EventName
    function: Handler
    config: Any


class _Registry:
    def __init__(self) -> None:
        self.by_event: dict[EventName, list[HandlerInfo]] = {}
        self.ids: dict[Any, list[HandlerInfo]] = {}
        self.runtime: _RuntimeEvents | None = None


def _registry(node: Node) -> _Registry:
    r = _STATE.get(node).get(_KEY)
    if r is None:
        r = _STATE.get(node)[_KEY] = _Registry()
    return r


def _check_name(name: Any) -> EventName:
    if type(name) is tuple and name and all(type(x) is str or type(x) is Atom for x in name):
        return tuple(str(x) for x in name)
    raise BadArgument(f"an event name is a non-empty tuple of str, not {name!r}")


def attach(
    handler_id: Any,
    event_name: EventName,
    function: Handler,
    config: Any = None,
    *,
    node: Node | None = None,
) -> None:
    """Attach `function(event, measurements, metadata, config)` to one event.

    Raises `ValueError` if `handler_id` is already attached (telemetry's
    `{error, already_exists}`).

    Examples:
        >>> from beamlet.observe import telemetry
        >>> def handler(event, measurements, metadata, config):
        ...     print(event, measurements, metadata, config)
        >>> telemetry.attach("log-done", ("app", "done"), handler, "my config")
        >>> telemetry.execute(("app", "done"), {"n": 1}, {"by": "me"})
        ('app', 'done') {'n': 1} {'by': 'me'} my config
        >>> telemetry.attach("log-done", ("app", "other"), handler)
        Traceback (most recent call last):
        ...
        ValueError: a handler with id 'log-done' is already attached
    """
    attach_many(handler_id, [event_name], function, config, node=node)


def attach_many(
    handler_id: Any,
    event_names: Iterable[EventName],
    function: Handler,
    config: Any = None,
    *,
    node: Node | None = None,
) -> None:
    """Attach one handler to several events under one id.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach_many("h", [("app", "start"), ("app", "stop")],
        ...                       lambda event, m, md, config: print(event[-1]))
        >>> telemetry.execute(("app", "start"), {})
        start
        >>> telemetry.execute(("app", "stop"), {})
        stop
    """
    if not callable(function):
        raise BadArgument(f"a handler must be callable, not {function!r}")
    names = [_check_name(e) for e in event_names]
    if not names:
        raise BadArgument("attach_many needs at least one event name")
    reg = _registry(node_of(node))
    if handler_id in reg.ids:
        raise ValueError(f"a handler with id {handler_id!r} is already attached")
    infos = [HandlerInfo(handler_id, n, function, config) for n in names]
    reg.ids[handler_id] = infos
    for info in infos:
        reg.by_event.setdefault(info.event_name, []).append(info)


def detach(handler_id: Any, *, node: Node | None = None) -> bool:
    """Detach a handler; False if no handler has that id.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach("h", ("app", "done"), print)
        >>> telemetry.detach("h"), telemetry.detach("h")
        (True, False)
        >>> telemetry.execute(("app", "done"), {})   # no handler: nothing printed
    """
    reg = _registry(node_of(node))
    infos = reg.ids.pop(handler_id, None)
    if infos is None:
        return False
    for info in infos:
        lst = reg.by_event.get(info.event_name)
        if lst is not None:
            lst[:] = [h for h in lst if h.id != handler_id]
            if not lst:
                del reg.by_event[info.event_name]
    return True


def list_handlers(prefix: tuple[str, ...] = (), *, node: Node | None = None) -> list[HandlerInfo]:
    """Handlers attached to events that start with `prefix`.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach("a", ("app", "db", "query"), print)
        >>> telemetry.attach("b", ("app", "http"), print)
        >>> [h.id for h in telemetry.list_handlers(("app", "db"))]
        ['a']
        >>> sorted(h.id for h in telemetry.list_handlers())
        ['a', 'b']
    """
    reg = _registry(node_of(node))
    k = len(prefix)
    return [h for name, hs in reg.by_event.items() if name[:k] == prefix for h in hs]


def execute(
    event_name: EventName,
    measurements: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    node: Node | None = None,
) -> None:
    """Emit an event: call each handler attached to `event_name`, here and now.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach("h", ("app", "request", "done"),
        ...                  lambda event, m, md, config: print(m["duration"], md["path"]))
        >>> telemetry.execute(("app", "request", "done"), {"duration": 0.01}, {"path": "/"})
        0.01 /
    """
    n = node_of(node)
    reg = _STATE.get(n).get(_KEY)
    if reg is None:
        return
    handlers = reg.by_event.get(event_name)
    if not handlers:
        return
    md: Mapping[str, Any] = metadata if metadata is not None else {}
    for h in list(handlers):
        try:
            h.function(event_name, measurements, md, h.config)
        except Exception as e:
            detach(h.id, node=n)
            log.error("telemetry handler %r failed on %r and was detached: %r", h.id, event_name, e)
            if event_name != FAILURE:
                execute(
                    FAILURE,
                    {"monotonic_time": time.monotonic(), "system_time": time.time()},
                    {
                        "event_name": event_name,
                        "handler_id": h.id,
                        "handler_config": h.config,
                        "kind": "error",
                        "reason": e,
                        "stacktrace": e.__traceback__,
                    },
                    node=n,
                )


@contextmanager
def span(
    prefix: EventName, metadata: Mapping[str, Any] | None = None, *, node: Node | None = None
) -> Iterator[dict[str, Any]]:
    """Emit `prefix + ("start",)`, run the block, then `("stop",)` with `duration`
    (seconds) or `("exception",)` with `kind`, `reason`, `stacktrace`. The yielded dict
    becomes extra stop metadata; all three share a `telemetry_span_context`.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> telemetry.attach_many("h", [("app", "query", "start"), ("app", "query", "stop")],
        ...     lambda event, m, md, config: print(event[-1], md["table"], md.get("rows")))
        >>> with telemetry.span(("app", "query"), {"table": "users"}) as extra:
        ...     extra["rows"] = 3
        start users None
        stop users 3
    """
    n = node_of(node)
    prefix = _check_name(prefix)
    md = dict(metadata or {})
    md.setdefault("telemetry_span_context", n.unique_ref())
    t0 = time.monotonic()
    execute((*prefix, "start"), {"monotonic_time": t0, "system_time": time.time()}, md, node=n)
    extra: dict[str, Any] = {}
    try:
        yield extra
    except BaseException as e:
        t1 = time.monotonic()
        execute(
            (*prefix, "exception"),
            {"duration": t1 - t0, "monotonic_time": t1},
            {**md, "kind": type(e).__name__, "reason": e, "stacktrace": e.__traceback__},
            node=n,
        )
        raise
    t1 = time.monotonic()
    execute((*prefix, "stop"), {"duration": t1 - t0, "monotonic_time": t1}, {**md, **extra}, node=n)


# --- runtime events ------------------------------------------------------------------------


class _LogBridge(logging.Handler):
    """Turns the runtime's structured log records into events for one node."""

    def __init__(self, node: Node) -> None:
        super().__init__(logging.DEBUG)
        self.node = node
        self.sampler: Pid | None = None
        self.dropped = 0

    def forward(self, event: EventName, measurements: dict[str, Any], md: dict[str, Any]) -> None:
        """Log records come from wherever the runtime logs (often outside any process):
        the sampler process runs the handlers, so they may use the process API."""
        if self.sampler is None:
            return
        q = self.node.lookup(self.sampler)
        if q is not None and q.message_queue_len >= _MAX_BACKLOG:
            self.dropped += 1  # a storm of crashes: bounded, never a stalled node
            return
        self.node.send(self.sampler, Shared((_EVENT, event, measurements, md)))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:  # an event handler's failure is handled in execute
            pass

    def _emit(self, record: logging.LogRecord) -> None:
        d = record.__dict__
        now = {"monotonic_time": time.monotonic(), "system_time": time.time()}
        pid = d.get("beamlet_pid")
        if type(pid) is Pid and "beamlet_reason" in d:
            if self.node.lookup(pid) is None:
                return  # another node's process
            q = self.node.lookup(pid)
            fn = getattr(q, "fn", None)
            initial = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
            md = {"pid": pid, "reason": d["beamlet_reason"], "initial_call": initial}
            self.forward(("beamlet", "process", "crash"), {"count": 1, **now}, md)
            return
        report = d.get("beamlet_report")
        if isinstance(report, dict) and type(report.get("pid")) is Pid:  # a GenServer's
            if self.node.lookup(report["pid"]) is None:
                return
            module = report.get("module")
            md = {
                "pid": report["pid"],
                "reason": report.get("reason"),
                "initial_call": getattr(module, "__qualname__", repr(module)),
            }
            self.forward(("beamlet", "process", "crash"), {"count": 1, **now}, md)
            return
        if report == "supervisor_report":
            sup = d.get("beamlet_supervisor")
            spid = sup if type(sup) is Pid else self.node.whereis(sup) if _is_name(sup) else None
            if spid is None or self.node.lookup(spid) is None:
                return
            md = {
                "supervisor": sup,
                "context": d.get("beamlet_context"),
                "child_id": d.get("beamlet_child_id"),
                "child_pid": d.get("beamlet_child_pid"),
                "reason": d.get("beamlet_reason"),
            }
            self.forward(("beamlet", "supervisor", "report"), {"count": 1, **now}, md)
            if md["context"] == "child_terminated":  # a restart follows, or the give-up
                self.forward(("beamlet", "supervisor", "restart"), {"count": 1, **now}, md)


def _is_name(x: Any) -> bool:
    return type(x) is str or type(x) is Atom


class _RuntimeEvents:
    def __init__(self, node: Node, interval: float) -> None:
        self.node = node
        self.bridge = _LogBridge(node)
        self.interval = interval
        self.sampler: Pid | None = None
        self.marks: dict[Pid, int] = {}
        self.peers: set[Atom] = set()


def attach_runtime_events(interval: float = 1.0, *, node: Node | None = None) -> Pid:
    """Start emitting the runtime's events on this node (idempotent); returns the pid of
    the sampler process (mailbox high-water marks, summaries, connections), which is
    linked to the caller.

    Examples:
        >>> from beamlet.observe import telemetry
        >>> me = beamlet.self()
        >>> telemetry.attach("vm", ("beamlet", "vm", "summary"),
        ...                  lambda event, m, md, config: beamlet.send(me, m["process_count"]))
        >>> sampler = telemetry.attach_runtime_events(interval=0.05)
        >>> telemetry.attach_runtime_events() == sampler   # idempotent
        True
        >>> await beamlet.receive(timeout=5)   # this process and the sampler
        2
    """
    n = node_of(node)
    if type(interval) not in (int, float) or not 0.01 <= interval <= 3600:
        raise BadArgument(f"interval must be seconds in [0.01, 3600], not {interval!r}")
    reg = _registry(n)
    rt = reg.runtime
    if rt is not None and rt.sampler is not None and n.is_alive(rt.sampler):
        return rt.sampler
    rt = reg.runtime = _RuntimeEvents(n, float(interval))
    logging.getLogger("beamlet").addHandler(rt.bridge)
    rt.sampler = rt.bridge.sampler = api.spawn_link(_sampler, Shared(rt))
    return rt.sampler


def detach_runtime_events(*, node: Node | None = None) -> None:
    """Stop the runtime's events (the log bridge and the sampler).

    Examples:
        >>> from beamlet.observe import telemetry
        >>> sampler = telemetry.attach_runtime_events()
        >>> telemetry.detach_runtime_events()
        >>> await beamlet.sleep(0)
        >>> beamlet.is_alive(sampler)
        False
    """
    n = node_of(node)
    reg = _registry(n)
    rt = reg.runtime
    reg.runtime = None
    if rt is None:
        return
    logging.getLogger("beamlet").removeHandler(rt.bridge)
    if rt.sampler is not None:
        api.unlink(rt.sampler)
        api.exit(rt.sampler, Atom("kill"))


async def _sampler(shared: Shared[_RuntimeEvents]) -> None:
    rt = shared.value
    loop = rt.node.loop
    try:
        while True:
            sample_once(rt)
            due = loop.time() + rt.interval
            while (left := due - loop.time()) > 0:
                msg = await api.receive(timeout=left, default=None)
                if type(msg) is Shared and type(msg.value) is tuple and msg.value[0] is _EVENT:
                    _, event, measurements, md = msg.value
                    execute(event, measurements, md, node=rt.node)
    finally:
        logging.getLogger("beamlet").removeHandler(rt.bridge)


def sample_once(rt: _RuntimeEvents) -> None:
    from beamlet.observe.overview import lag_monitor

    n = rt.node
    now = {"monotonic_time": time.monotonic(), "system_time": time.time()}
    count = 0
    marks = rt.marks
    seen: dict[Pid, int] = {}
    for p in live_procs(n):
        count += 1
        q = p.message_queue_len
        if q < HIGH_WATER[0]:
            continue
        level = max(i for i, h in enumerate(HIGH_WATER) if q >= h)
        seen[p.pid] = level
        if marks.get(p.pid, -1) < level:
            execute(
                ("beamlet", "process", "mailbox_high"),
                {"message_queue_len": q, "threshold": HIGH_WATER[level], **now},
                {"pid": p.pid, "name": p.name},
                node=n,
            )
    rt.marks = seen
    mon = lag_monitor(n)
    execute(
        ("beamlet", "vm", "summary"),
        {
            "process_count": count,
            "run_queue": n.run_queue_length(),
            "loop_lag": mon.last if mon is not None and mon.last is not None else 0.0,
            **now,
        },
        {"node": n.name},
        node=n,
    )
    dist: Any = n.dist
    if dist is not None:
        try:
            peers = {Atom(x) for x in dist.nodes()}
        except Exception:
            peers = set()
        for up in sorted(peers - rt.peers):
            execute(
                ("beamlet", "distribution", "connect"), {"count": 1, **now}, {"node": up}, node=n
            )
        for down in sorted(rt.peers - peers):
            execute(
                ("beamlet", "distribution", "disconnect"),
                {"count": 1, **now},
                {"node": down},
                node=n,
            )
        rt.peers = peers
