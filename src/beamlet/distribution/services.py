"""Services a distributed node runs for its peers.

`net_kernel` (answers `net_adm:ping`), `rex` (serves `rpc:call`) and the group leader
of processes this node spawns on other nodes are started with the distribution by one
supervising process, restarted when they die, and killed with it when the distribution
stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from beamlet._core import Atom, BeamletError, Exit, Pid, ProcessExit, process_flag, receive
from beamlet.distribution.reasons import brief

log = logging.getLogger("beamlet.distribution")

#: A service: its name (for the log), how to start it linked to the caller (it
#: registers itself if it has a name; `rex` and `net_kernel` are GenServers), and a
#: callback told the pid of each incarnation.
Service = tuple[Atom | None, Callable[[], Awaitable[Pid | None]], Callable[[Pid], None]]

#: More restarts than this within `_WINDOW` seconds: the service stays down (as a
#: supervisor's intensity), so a service that cannot run does not spin.
MAX_RESTARTS = 10
_WINDOW = 5.0


async def supervise(services: list[Service], ready: Callable[[], object]) -> None:
    """The body of the process that starts the node's distribution services, linked,
    and restarts one that dies (a one_for_one supervisor, as OTP's `kernel_sup`);
    `ready()` once all have started.
    Killing it kills them all."""
    process_flag(trap_exit=True)
    children: dict[Pid, Service] = {}
    restarts: dict[Atom | None, list[float]] = {}
    loop = asyncio.get_running_loop()

    async def start(service: Service) -> None:
        name, start_link, started = service
        try:
            pid = await start_link()
        except (BeamletError, ProcessExit) as e:  # e.g. a user's process took the name
            log.error("beamlet.distribution: cannot start service %s: %s", name, e)
            return
        if pid is not None:
            children[pid] = service
            started(pid)

    for service in services:
        await start(service)
    ready()
    while True:
        ex = await receive(Exit)
        if ex.pid not in children:
            continue
        service = children.pop(ex.pid)
        name = service[0]
        now = loop.time()
        recent = [t for t in restarts.get(name, ()) if now - t < _WINDOW]
        recent.append(now)
        restarts[name] = recent
        if len(recent) > MAX_RESTARTS:
            log.error(
                "beamlet.distribution: service %s died %d times in %g s; not restarting it",
                *(name or "group_leader", len(recent), _WINDOW),
            )
            continue
        log.error(
            "beamlet.distribution: service %s died (%s); restarting it",
            *(name or "group_leader", brief(ex.reason)),
        )
        await start(service)
