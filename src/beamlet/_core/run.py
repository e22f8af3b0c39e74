"""The kernel's `run`: a node, a first process, and start-up hooks of the upper layers.

The kernel knows nothing of distribution: `beamlet.run` (src/beamlet/_run.py, above the
kernel) turns `name=`/`cookie=` into a `setup` that starts it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar, TypeVarTuple

from beamlet._core.node import Node

#: Young-generation GC threshold while `run` runs (the interpreter's default is 700).
GC_THRESHOLD = 50_000

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

#: Called with the started node before the first process; returns the clean-up, awaited
#: after the first process ends (before the node stops).
Setup: TypeAlias = Callable[[Node], Awaitable[Callable[[], Awaitable[None]]]]


def run(
    main: Callable[[*Ts], Coroutine[Any, Any, R]],
    *args: *Ts,
    name: str | None = None,
    setup: Setup | None = None,
    use_uvloop: bool = False,
    gc_threshold: int | None = GC_THRESHOLD,
) -> R:
    """Start a node named `name`, run `setup(node)` (if given), run `main(*args)` as its
    first process, and return what it returns (see `beamlet.run`).

    Raises `ProcessFailed` if `main` ends with an abnormal exit reason. When `main`
    ends, `setup`'s clean-up runs, then the node stops: processes still running are
    killed. `gc_threshold`: Python's young-generation GC threshold while it runs
    (docs/architecture.md, "Interpreter-wide settings"); `None` leaves it alone.
    Ctrl-C (SIGINT) stops the node the same way and raises `SystemExit(130)`: the
    program ends without a traceback.

    Examples:
        >>> async def main() -> int:
        ...     return 42
        >>> run(main)
        42
    """

    async def _main() -> R:
        async with Node(name) as node:
            if setup is None:
                return await node.run(main, *args)
            cleanup = await setup(node)
            try:
                return await node.run(main, *args)
            finally:
                await cleanup()

    old = gc.get_threshold()
    if gc_threshold is not None:
        gc.set_threshold(gc_threshold, *old[1:])
    try:
        if use_uvloop:
            import uvloop

            result: R = uvloop.run(_main())
            return result
        return asyncio.run(_main())
    except KeyboardInterrupt:
        # Ctrl-C: asyncio.run cancelled main and the node stopped (connections closed
        # first); end as a program stopped by SIGINT does, without a traceback.
        raise SystemExit(130) from None
    finally:
        gc.set_threshold(*old)
