"""A web dashboard of a beamlet node, served by a beamlet process.

Needs the `dashboard` extra (`pip install beamlet[dashboard]`: aiohttp). Pages: the node
overview with live charts (server-sent events), the process table (sortable by mailbox,
work or memory, searchable, paged on the server, with *why each process waits*), a
process's detail (its links and monitors as a graph, its state via `sys`, a kill button
behind a confirmation), the supervision trees, the ETS tables, and the cluster's nodes,
Python and Erlang side by side. It watches its own node, or another one over
distribution (which called `serve_api()`):

    beamlet dashboard --port 8080                                  # a node of its own
    beamlet dashboard --node py@127.0.0.1 --cookie secret          # another node

Examples:
    >>> async def main():
    ...     pid, port = await dashboard.serve_dashboard(port=0)
    ...     # open http://127.0.0.1:{port}/
"""

from __future__ import annotations

import asyncio
import os
import sys

from beamlet import _core as api
from beamlet._core import Atom, BadArgument, Node, Pid
from beamlet.observe.dashboard.data import DashboardError, attach_counters, parse_pid, serve_api
from beamlet.observe.dashboard.server import Source, create_app, local_source, remote_source
from beamlet.observe.overview import start_lag_monitor
from beamlet.observe.serving import check_port, serve_app

__all__ = [
    "DashboardError",
    "Source",
    "create_app",
    "local_source",
    "main",
    "parse_pid",
    "remote_source",
    "serve_api",
    "serve_dashboard",
]


async def serve_dashboard(
    port: int = 8080,
    host: str = "127.0.0.1",
    *,
    interval: float = 1.0,
    target: str | Atom | None = None,
) -> tuple[Pid, int]:
    """Serve the dashboard from a new process linked to the caller; returns its pid and
    the port (`port=0` picks a free one). It shows the caller's node, or the node
    `target` over distribution (started on the caller's node; `target` called
    `serve_api()`). `interval` is the seconds between live updates. Call it from a process.

    Examples:
        >>> from beamlet.observe import dashboard
        >>> pid, port = await dashboard.serve_dashboard(port=0, interval=0.5)
        >>> beamlet.is_alive(pid), port > 0
        (True, True)
    """
    check_port(port)
    if type(interval) not in (int, float) or not 0.05 <= interval <= 3600:
        raise BadArgument(f"interval must be seconds in [0.05, 3600], not {interval!r}")
    node = api.current_node()
    if target is None:
        start_lag_monitor(node)
        attach_counters(node)
        source, title = local_source(node), str(node.name)
    else:
        if node.dist is None:
            raise BadArgument("watching another node needs distribution on this one")
        source, title = remote_source(node, Atom(target)), str(target)
    return await serve_app(
        lambda: create_app(source, interval=float(interval), title=title), host, port, "dashboard"
    )


async def _run(target: str | None, host: str, port: int, interval: float) -> None:
    _pid, bound = await serve_dashboard(port, host, interval=interval, target=target)
    print(f"beamlet: dashboard of {target or api.current_node().name} on "
          f"http://{host}:{bound}/", file=sys.stderr, flush=True)  # fmt: skip
    await api.receive("$never")


async def _main(target: str | None, cookie: str | None, epmd_port: int | None, host: str,
                port: int, interval: float) -> None:  # fmt: skip
    name = f"beamlet_dashboard{os.getpid()}@{(target or '@127.0.0.1').partition('@')[2]}"
    node = Node(name if target else "nonode@nohost")
    await node.start()
    d = None
    try:
        if target is not None:
            from beamlet.distribution import start_distribution

            d = await start_distribution(node, cookie=cookie, epmd_port=epmd_port, hidden=True)
        await node.run(_run, target, host, port, interval)
    finally:
        if d is not None:
            await d.stop()
        await node.stop()


def main(target: str | None, *, cookie: str | None, epmd_port: int | None, host: str,
         port: int, interval: float) -> int:  # fmt: skip
    """`beamlet dashboard [--node NAME]`: the CLI entry point (until Ctrl-C)."""
    if target is not None and "@" not in target:
        raise SystemExit("beamlet dashboard: --node needs a full name@host")
    try:
        asyncio.run(_main(target, cookie, epmd_port, host, port, interval))
    except KeyboardInterrupt:
        pass
    return 0
