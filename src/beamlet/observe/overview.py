"""The node overview: process count, run queue, loop lag, memory, connections.

Loop lag is how late the event loop runs a callback scheduled for a known time: a
process that computes without awaiting shows here first. `LagMonitor` measures it
continuously (started on demand, one loop timer per interval; state hangs off the Node).

Examples:
    >>> from beamlet import observe
    >>> _ = observe.start_lag_monitor(interval=0.01)
    >>> await beamlet.sleep(0.05)
    >>> ov = observe.node_overview()
    >>> ov.process_count, ov.run_queue, ov.loop_lag_max >= 0
    (1, 0, True)
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from beamlet._core import Atom, BadArgument, Node, NodeVar, await_chain
from beamlet.observe.info import _memory, live_procs, node_of

__all__ = ["Connection", "LagMonitor", "NodeOverview", "node_overview", "start_lag_monitor"]

_KEY = ("beamlet.observe", "lag_monitor")
_STATE: NodeVar[dict[Any, Any]] = NodeVar("beamlet.observe.overview", dict)


class LagMonitor:
    """Measures event-loop lag every `interval` seconds; keeps the last `keep` values.

    Examples:
        >>> from beamlet import observe
        >>> mon = observe.LagMonitor(beamlet.current_node(), interval=0.01, keep=10)
        >>> mon.start()
        >>> await beamlet.sleep(0.05)
        >>> 0 < len(mon.samples) <= 10, mon.last >= 0, mon.max >= mon.last
        (True, True, True)
        >>> mon.stop()
    """

    def __init__(self, node: Node, interval: float = 0.25, keep: int = 240) -> None:
        if not (isinstance(interval, int | float) and 0 < interval <= 60):
            raise BadArgument(f"interval must be a number of seconds in (0, 60], not {interval!r}")
        self.node = node
        self.interval = float(interval)
        self.samples: deque[float] = deque(maxlen=keep)
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        loop = self.node.loop
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        self.samples.append(max(0.0, self.node.loop.time() - self._due))
        if getattr(self.node, "_started", True):
            self._schedule()
        else:
            self._handle = None

    @property
    def last(self) -> float | None:
        return self.samples[-1] if self.samples else None

    @property
    def max(self) -> float | None:
        return max(self.samples) if self.samples else None


def start_lag_monitor(node: Node | None = None, interval: float = 0.25) -> LagMonitor:
    """Start (or return) the node's loop-lag monitor.

    Examples:
        >>> from beamlet import observe
        >>> mon = observe.start_lag_monitor(interval=0.01)
        >>> observe.start_lag_monitor() is mon, mon.interval
        (True, 0.01)
    """
    n = node_of(node)
    mon = _STATE.get(n).get(_KEY)
    if mon is None:
        mon = _STATE.get(n)[_KEY] = LagMonitor(n, interval)
        mon.start()
    return mon


def lag_monitor(node: Node) -> LagMonitor | None:
    m = _STATE.get(node).get(_KEY)
    return m if isinstance(m, LagMonitor) else None


@dataclass(frozen=True, slots=True)
class Connection:
    """A distribution connection (from the distribution layer's `nodes_info()`):
    `type` is "normal" or "hidden", `beamlet` whether the peer is a beamlet node (else
    Erlang, Elixir or a C node); None where the layer does not tell.

    Examples:
        >>> from beamlet import Node, observe
        >>> from beamlet.distribution import start_distribution
        >>> async with Node("a@127.0.0.1") as a, Node("b@127.0.0.1") as b:
        ...     a_dist = await start_distribution(a, cookie="secret")
        ...     b_dist = await start_distribution(b, cookie="secret")
        ...     _ = await a_dist.connect(b.name)
        ...     [c] = observe.node_overview(a).connections
        ...     await b_dist.stop()
        ...     await a_dist.stop()
        >>> c.node, c.type, c.beamlet, c.bytes_in > 0, c.bytes_out > 0
        (Atom('b@127.0.0.1'), 'hidden', True, True, True)
    """

    node: Atom
    bytes_in: int | None
    bytes_out: int | None
    type: str | None = None
    beamlet: bool | None = None


@dataclass(frozen=True, slots=True)
class NodeOverview:
    """A snapshot of the node. `process_limit` is None: beamlet has no process limit.
    `loop_lag`/`loop_lag_max` (seconds) are None until `start_lag_monitor()` runs.
    `rss` is the OS process's resident memory, `heap_blocks` the Python allocator's
    live blocks, `gc_counts` the collector's generation counts, `per_process` the
    average memory estimate of a process (over up to 1,000 of them).

    Examples:
        >>> from beamlet import observe
        >>> ov = observe.node_overview()
        >>> ov.name, ov.process_limit, ov.loop_lag, ov.connections, ov.per_process > 0
        (Atom('nonode@nohost'), None, None, (), True)
    """

    name: Atom
    uptime: float  # seconds since the node was first observed
    process_count: int
    process_limit: int | None
    run_queue: int
    loop_lag: float | None
    loop_lag_max: float | None
    rss: int | None
    heap_blocks: int
    gc_counts: tuple[int, int, int]
    per_process: int
    registered: int
    connections: tuple[Connection, ...]
    python: str


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return int(r if sys.platform == "darwin" else r * 1024)
        except Exception:
            return None


def connections(node: Node) -> tuple[Connection, ...]:
    """The node's distribution connections, sorted by peer, through the distribution
    layer's public `nodes_info()` (only the names, from `nodes()`, if it lacks it)."""
    dist: Any = node.dist
    if dist is None:
        return ()
    info = getattr(dist, "nodes_info", None)
    if info is not None:
        return tuple(Connection(i.node, i.bytes_in, i.bytes_out, i.type, i.beamlet) for i in info())
    return tuple(Connection(Atom(n), None, None) for n in sorted(dist.nodes()))


def node_overview(node: Node | None = None) -> NodeOverview:
    """A snapshot of the node (bounded work: memory is estimated from a sample).

    Examples:
        >>> from beamlet import observe
        >>> for _ in range(3):
        ...     _ = beamlet.spawn(beamlet.receive)
        >>> ov = observe.node_overview()
        >>> ov.process_count, ov.registered
        (4, 0)
    """
    n = node_of(node)
    count = 0
    est = 0
    for p in live_procs(n):
        count += 1
        if count <= 1000:
            est += _memory(p, await_chain(p)[0])
    mon = lag_monitor(n)
    started = _STATE.get(n).setdefault(("beamlet.observe", "started"), time.time())
    return NodeOverview(
        name=n.name,
        uptime=time.time() - started,
        process_count=count,
        process_limit=None,
        run_queue=n.run_queue_length(),
        loop_lag=mon.last if mon else None,
        loop_lag_max=mon.max if mon else None,
        rss=_rss(),
        heap_blocks=sys.getallocatedblocks(),
        gc_counts=gc.get_count(),
        per_process=est // min(count, 1000) if count else 0,
        registered=len(n.registered()),
        connections=connections(n),
        python=sys.version.split()[0],
    )
