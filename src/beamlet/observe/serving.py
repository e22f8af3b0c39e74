"""An aiohttp application served by a beamlet process (the dashboard, `/metrics`).

Needs aiohttp (the `dashboard` or `prometheus` extra). The process owns the listening
socket: it is linked to whoever started it, and the site is cleaned up when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import beamlet._core as api
from beamlet._core import BadArgument, Down, Pid, Shared

__all__ = ["check_port", "serve_app"]

SHUTDOWN_TIMEOUT = 0.5  # seconds open requests (a live feed) get when the server stops


def check_port(port: Any) -> int:
    """`port` if it is a TCP port (0: any free one), else BadArgument."""
    if type(port) is not int or not 0 <= port <= 65535:
        raise BadArgument(f"port must be an int in 0..65535, not {port!r}")
    return port


async def _serve(make_app: Shared[Callable[[], Any]], host: str, port: int, ready: Pid) -> None:
    from aiohttp import web

    runner = web.AppRunner(make_app.value(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        server: Any = site._server
        bound = server.sockets[0].getsockname()[1] if server is not None else port
        api.send(ready, (api.self(), bound))
        await api.receive("$never")
    finally:
        await asyncio.shield(runner.cleanup())


async def serve_app(
    make_app: Callable[[], Any], host: str, port: int, what: str
) -> tuple[Pid, int]:
    """Serve the aiohttp `Application` that `make_app()` builds, from a new process
    linked to the caller: its pid and the port it listens on. `what` names it in the
    `OSError` raised if it cannot listen. Call it from a process."""
    check_port(port)
    pid, ref = api.spawn_monitor(_serve, Shared(make_app), host, port, api.self())

    def ready(m: Any) -> bool:
        return (type(m) is tuple and len(m) == 2 and m[0] == pid) or (
            type(m) is Down and m.ref == ref
        )

    msg = await api.receive(ready, timeout=10)
    api.demonitor(ref, flush=True)
    if type(msg) is Down:
        raise OSError(f"the {what} could not start on {host}:{port}: {msg.reason!r}")
    api.link(pid)
    return pid, int(msg[1])
