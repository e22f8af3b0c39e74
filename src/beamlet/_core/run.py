"""`beamlet.run`: the entry point of a program."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from beamlet._core.node import Node


def run(
    main: Callable[..., Coroutine[Any, Any, Any]],
    *args: Any,
    name: str | None = None,
    use_uvloop: bool = False,
) -> Any:
    """Start a node, run `main(*args)` as its first process, and return what it returns.

    Raises `ProcessFailed` (with `.reason`) if `main` ends with an abnormal exit reason.
    When `main` ends, the node stops: processes still running are killed.
    With `use_uvloop=True` the node runs on uvloop (install `beamlet[uvloop]`).

    Example:
        >>> async def main() -> int:
        ...     return 42
        >>> beamlet.run(main)
        42
    """

    async def _main() -> Any:
        async with Node(name) as node:
            return await node.run(main, *args)

    if use_uvloop:
        import uvloop

        return uvloop.run(_main())
    return asyncio.run(_main())
