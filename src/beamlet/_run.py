"""`beamlet.run`: the kernel's `run`, with distribution start-up when the node is named.

It lives above the kernel (it may import `beamlet.distribution`); the kernel's run only
takes a `setup` hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple

from beamlet import _core
from beamlet._core import GC_THRESHOLD, BadArgument, Node

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


def run(
    main: Callable[[*Ts], Coroutine[Any, Any, R]],
    *args: *Ts,
    name: str | None = None,
    sname: str | None = None,
    cookie: str | None = None,
    use_uvloop: bool = False,
    gc_threshold: int | None = GC_THRESHOLD,
    **dist_options: Any,
) -> R:
    """Start a node, run `main(*args)` as its first process, and return what it returns.

    Raises `ProcessFailed` (with `.reason`) if `main` ends with an abnormal exit reason.
    When `main` ends, the node stops: processes still running are killed.
    With `use_uvloop=True` the node runs on uvloop (install `beamlet[uvloop]`).

    `gc_threshold`: while the program runs, Python's cycle collector starts a young-
    generation pass every `gc_threshold` allocations instead of 700. Every process is a
    handful of GC-tracked objects, and at the default the collector doubles the cost of a
    spawn (docs/performance.md); cycles are still collected. `None` leaves the
    interpreter's setting alone; the previous thresholds are restored when `run` returns.

    Distribution: a `name` with an `@` (`"py@127.0.0.1"`, Erlang's `-name`), or an
    `sname` (`"py"` becomes `py@<this host's short name>`, Erlang's `-sname`), makes the
    node a distributed one before `main` runs: it registers with epmd (a built-in one
    is started if none runs) and other Erlang, Elixir and beamlet nodes can reach it.
    `cookie` defaults to `$ERLANG_COOKIE`, then `~/.erlang.cookie`; `dist_options` go to
    `beamlet.distribution.start_distribution` (`hidden`, `epmd_port`, `ticktime`,
    `listen_host`...). When `main` ends, connections are closed first: peers see
    `noconnection`, as when an Erlang node halts.

    Examples:
        >>> async def main(n):
        ...     return n * 2
        >>> beamlet.run(main, 21)
        42
        >>> beamlet.run(main, 1, name="py@127.0.0.1", cookie="secret")  # distributed
        2
    """
    node_name = name
    distributed = False
    if sname is not None:
        if name is not None:
            raise BadArgument("give name= or sname=, not both")
        if "@" not in sname:
            from beamlet.distribution.distribution import short_host

            sname = f"{sname}@{short_host()}"
        node_name, distributed = sname, True
    elif name is not None and "@" in name:
        distributed = True
    if not distributed and (cookie is not None or dist_options):
        raise BadArgument("cookie= and distribution options need name='x@host' or sname=")

    async def start_distribution(node: Node) -> Callable[[], Awaitable[None]]:
        from beamlet.distribution.distribution import start_distribution

        dist = await start_distribution(node, cookie=cookie, **dist_options)
        return dist.stop

    return _core.run(
        main,
        *args,
        name=node_name,
        setup=start_distribution if distributed else None,
        use_uvloop=use_uvloop,
        gc_threshold=gc_threshold,
    )
