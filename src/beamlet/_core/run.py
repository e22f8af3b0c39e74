"""`beamlet.run`: the entry point of a program."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

from beamlet._core.errors import BadArgument
from beamlet._core.node import Node

#: Young-generation GC threshold while `run` runs (the interpreter's default is 700).
GC_THRESHOLD = 50_000


def run(
    main: Callable[..., Coroutine[Any, Any, Any]],
    *args: Any,
    name: str | None = None,
    sname: str | None = None,
    cookie: str | None = None,
    use_uvloop: bool = False,
    gc_threshold: int | None = GC_THRESHOLD,
    **dist_options: Any,
) -> Any:
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
    `noconnection`, as when an Erlang node halts. Ctrl-C (SIGINT) stops the node the
    same way and raises `SystemExit(130)`: the program ends without a traceback.

    Example:
        >>> async def main() -> int:
        ...     return 42
        >>> beamlet.run(main)
        42
        >>> beamlet.run(main, name="py@127.0.0.1", cookie="secret")  # distributed
        42
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

    async def _main() -> Any:
        async with Node(node_name) as node:
            if not distributed:
                return await node.run(main, *args)
            from beamlet.distribution.distribution import start_distribution

            dist = await start_distribution(node, cookie=cookie, **dist_options)
            try:
                return await node.run(main, *args)
            finally:
                await dist.stop()

    old = gc.get_threshold()
    if gc_threshold is not None:
        gc.set_threshold(gc_threshold, *old[1:])
    try:
        if use_uvloop:
            import uvloop

            return uvloop.run(_main())
        return asyncio.run(_main())
    except KeyboardInterrupt:
        # Ctrl-C: asyncio.run cancelled main and the node stopped (connections closed
        # first); end as a program stopped by SIGINT does, without a traceback.
        raise SystemExit(130) from None
    finally:
        gc.set_threshold(*old)
