"""Virtual time for tests: an event loop whose clock jumps ahead when it would sleep.

`virtual_time_loop()` builds a selector event loop with a `VirtualClock`. Whenever the
loop has nothing ready and would wait for its next timer, the clock jumps straight to
that timer instead (trio's "autojump"): a test of a 30 s timeout runs in microseconds,
deterministically. Real I/O still works: the loop polls the selector before jumping, and
blocks for real when there is no timer to jump to.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class VirtualClock:
    """A monotonic clock that only moves when the loop is idle (or by `advance`).

    Examples:
        >>> from beamlet.testing import VirtualClock
        >>> clock = VirtualClock(start=10.0)
        >>> clock.advance(30); clock.time()
        40.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds


class _JumpingSelector:
    def __init__(self, real: selectors.BaseSelector, clock: VirtualClock) -> None:
        self._real = real
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            return self._real.select(None)
        self._clock.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def virtual_time_loop(clock: VirtualClock | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop running on virtual time.

    Examples:
        An hour of `beamlet.sleep` in no time, on a node started on the loop:

        >>> import asyncio
        >>> from beamlet.testing import virtual_time_loop
        >>> async def main():
        ...     await beamlet.sleep(3600)
        ...     return asyncio.get_running_loop().time()
        >>> async def on_a_node():
        ...     async with beamlet.Node() as node:
        ...         return await node.run(main)
        >>> loop = virtual_time_loop()
        >>> loop.run_until_complete(on_a_node())
        3600.0
        >>> loop.close()
    """
    clock = clock or VirtualClock()
    selector = _JumpingSelector(selectors.DefaultSelector(), clock)
    loop = asyncio.SelectorEventLoop(selector)  # type: ignore[arg-type]
    loop.time = clock.time  # type: ignore[method-assign]
    return loop
