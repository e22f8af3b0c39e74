"""Services a distributed node runs for its peers, and how they answer.

`net_kernel` (answers `net_adm:ping`), `rex` (serves `rpc:call`) and the group leader
of processes this node spawns on other nodes are started with the distribution by one
supervising process, restarted when they die, and killed with it when the distribution
stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from beamlet._core import Atom, Exit, Node, Pid, current_node, process_flag, receive, spawn_link
from beamlet.distribution import etf
from beamlet.distribution.reasons import brief

log = logging.getLogger("beamlet.distribution")

_ALIAS = Atom("alias")


def gen_reply(node: Node, from_: Any, reply: Any) -> None:
    """Reply to an Erlang-style `From = {Pid, Tag}` (gen:reply/2 semantics)."""
    to, tag = from_
    dest: Any = to
    if type(tag) is etf.ImproperList and tag.items[:1] == (_ALIAS,):
        dest = tag.tail
    node.send(dest, (tag, reply))


def safe_reply(node: Node, from_: Any, reply: Any) -> None:
    """`gen_reply`, logging instead of raising when `From` is malformed or the reply
    cannot be sent."""
    try:
        gen_reply(node, from_, reply)
    except Exception as e:
        log.info("beamlet.distribution: cannot reply to %s: %s", brief(from_), e)


#: A service: its registered name (None: unregistered), its body, and a callback told
#: the pid of each incarnation.
Service = tuple[Atom | None, Callable[[], Coroutine[Any, Any, None]], Callable[[Pid], None]]

#: More restarts than this within `_WINDOW` seconds: the service stays down (as a
#: supervisor's intensity), so a service that cannot run does not spin.
MAX_RESTARTS = 10
_WINDOW = 5.0


async def supervise(services: list[Service]) -> None:
    """The body of the process that starts the node's distribution services, linked,
    and restarts one that dies (a one_for_one supervisor, as OTP's `kernel_sup`).
    Killing it kills them all."""
    node = current_node()
    process_flag(trap_exit=True)
    children: dict[Pid, Service] = {}
    restarts: dict[Atom | None, list[float]] = {}
    loop = asyncio.get_running_loop()

    def start(service: Service) -> None:
        name, body, started = service
        pid = spawn_link(body)
        if name is not None and node.whereis(name) is None:
            node.register(name, pid)
        children[pid] = service
        started(pid)

    for service in services:
        start(service)
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
        start(service)
