"""Observing another beamlet node over distribution, and the cheap top-N both use.

`serve()` (on the observed node) registers `beamlet_observe:top/2` and friends (and
Erlang's tools, `serve_erlang_tools`); `top(node, ...)` (on the observer) calls them with
`rpc.call`. The rows are plain terms (tuples of ints, atoms, pids and strings), so the
observer may also be an Erlang node: `rpc:call(Py, beamlet_observe, top, [20, msg_q])`.

`top_rows` ranks every process by a cheap key (queue length, work), then takes the full
snapshot (frames, why waiting) of the top N only: bounded work with 100,000 processes.

Examples:
    On the observer, with a node `py@127.0.0.1` that called `serve()` (see its example):

    >>> from beamlet.observe import remote
    >>> overview, rows = await remote.top("py@127.0.0.1", 20, "mailbox")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamlet._core import Atom, BadArgument, Node, Pid
from beamlet._core import ProcessView as Proc
from beamlet.observe.info import _Deadlines, live_procs, node_of, snapshot
from beamlet.observe.overview import _rss, lag_monitor, start_lag_monitor

__all__ = ["SORTS", "TopOverview", "TopRow", "serve", "top", "top_rows"]

SORTS = ("mailbox", "work", "memory")
MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class TopRow:
    """One row of `beamlet top` and the dashboard's process table."""

    pid: Pid
    label: str
    status: str
    message_queue_len: int
    work: int
    memory: int
    waiting: str
    current: str


@dataclass(frozen=True, slots=True)
class TopOverview:
    node: Atom
    process_count: int
    run_queue: int
    loop_lag: float | None
    rss: int | None


def _key(sort: str) -> Any:
    if sort == "mailbox":
        return lambda p: p.message_queue_len
    if sort == "work":
        return lambda p: p.taken
    return None


def top_rows(
    limit: int = 20, sort: str = "mailbox", node: Node | None = None, search: str = ""
) -> tuple[TopOverview, list[TopRow]]:
    """The overview and the top `limit` processes by `sort` ("mailbox", "work",
    "memory"); `search` keeps processes whose pid, name or initial call contains it."""
    n = node_of(node)
    if type(limit) is not int or not 0 < limit <= MAX_ROWS:
        raise BadArgument(f"limit must be an int in 1..{MAX_ROWS}, not {limit!r}")
    if sort not in SORTS:
        raise BadArgument(f"sort must be one of {SORTS}, not {sort!r}")
    procs: list[Proc] = list(live_procs(n))
    count = len(procs)
    if search:
        s = search.lower()
        procs = [p for p in procs if s in _haystack(p)]
    key = _key(sort)
    dl = _Deadlines(n)
    if key is not None:
        procs.sort(key=key, reverse=True)
        snaps = [snapshot(p, dl) for p in procs[:limit]]
    else:  # memory needs the estimate of each: bounded by a sample of the largest queues
        procs.sort(key=lambda p: p.message_queue_len, reverse=True)
        snaps = sorted(
            (snapshot(p, dl) for p in procs[: max(limit * 10, 1000)]),
            key=lambda s: s.memory,
            reverse=True,
        )[:limit]
    rows = [
        TopRow(
            s.pid,
            s.label,
            s.status,
            s.message_queue_len,
            s.work,
            s.memory,
            str(s.waiting) if s.waiting is not None else "",
            s.current or "",
        )
        for s in snaps
    ]
    mon = lag_monitor(n)
    ov = TopOverview(n.name, count, n.run_queue_length(), mon.last if mon else None, _rss())
    return ov, rows


def _haystack(p: Proc) -> str:
    fn = p.fn
    return f"{p.pid!r} {p.name or ''} {getattr(fn, '__qualname__', '')}".lower()


# --- the wire ----------------------------------------------------------------------------


def _wire_top(limit: int, sort: Any, search: Any = b"") -> tuple[Any, list[Any]]:
    s = sort.decode() if isinstance(sort, bytes) else str(sort)
    q = search.decode() if isinstance(search, bytes) else str(search)
    ov, rows = top_rows(int(limit), {"msg_q": "mailbox", "reductions": "work"}.get(s, s), search=q)
    lag = ov.loop_lag if ov.loop_lag is not None else -1.0
    wire_ov = (ov.node, ov.process_count, ov.run_queue, lag, ov.rss or 0)
    wire_rows = [
        (r.pid, r.label, r.status, r.message_queue_len, r.work, r.memory, r.waiting, r.current)
        for r in rows
    ]
    return wire_ov, wire_rows


def serve() -> None:
    """Let other nodes observe this one: `beamlet_observe:top/2,3` for `beamlet top`
    and the dashboard, and Erlang's own tools (`serve_erlang_tools`). Idempotent.

    Examples:
        Node `a` serves; node `b` asks for its top process by mailbox, as
        `beamlet top --node a@127.0.0.1 --cookie secret` would:

        >>> from beamlet import Node, observe
        >>> from beamlet.distribution import start_distribution
        >>> from beamlet.observe import remote
        >>> async def main():
        ...     observe.serve()
        ...     beamlet.register("hoarder", beamlet.spawn(beamlet.receive, "never"))
        ...     for i in range(5):
        ...         beamlet.send("hoarder", i)
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         overview, rows = await b.run(remote.top, "a@127.0.0.1", 1)
        ...         await b_dist.stop()
        ...     return overview.node, [(r.label, r.message_queue_len) for r in rows]
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        (Atom('a@127.0.0.1'), [('hoarder', 5)])
    """
    from beamlet.distribution.api import register_function
    from beamlet.observe.erlang_tools import serve_erlang_tools

    start_lag_monitor()
    serve_erlang_tools()
    register_function("beamlet_observe", "top", _wire_top)


def _text(x: Any) -> str:
    return x.decode(errors="replace") if isinstance(x, bytes) else str(x)


async def top(
    node: str | Atom, limit: int = 20, sort: str = "mailbox", search: str = "", timeout: float = 5.0
) -> tuple[TopOverview, list[TopRow]]:
    """`top_rows` of another node (which called `serve()`), over `rpc.call`."""
    from beamlet.distribution import rpc

    if sort not in SORTS:
        raise BadArgument(f"sort must be one of {SORTS}, not {sort!r}")
    ov, rows = await rpc.call(node, "beamlet_observe", "top", [limit, sort, search], timeout)
    lag = float(ov[3])
    overview = TopOverview(Atom(ov[0]), ov[1], ov[2], lag if lag >= 0 else None, ov[4] or None)
    return overview, [
        TopRow(r[0], _text(r[1]), _text(r[2]), r[3], r[4], r[5], _text(r[6]), _text(r[7]))
        for r in rows
    ]
