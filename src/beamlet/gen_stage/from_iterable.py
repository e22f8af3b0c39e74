"""Producers over a Python iterable or async iterable (docs/gen_stage.md G13.2)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, Iterable
from typing import Any

from beamlet import _core as api
from beamlet._core import NORMAL, Atom, BadArgument, Pid, Shared
from beamlet.behaviours.gen_server import Stop
from beamlet.behaviours.names import Via
from beamlet.gen_stage.stage import Automatic, GenStage, NoReply, Producer

__all__ = ["from_async_iterable", "from_iterable"]

_DONE = Atom("$beamlet_iterable_done")


class IterableProducer(GenStage[Any]):
    """Emits exactly the number of items asked for, then stops `normal` once the
    iterable is exhausted and what it emitted has been dispatched (G13.2)."""

    def init(self, arg: Any) -> Any:
        source, on_cancel, opts = arg
        it = source.value
        self.sync = not isinstance(it, AsyncIterable)
        self.it: Any = iter(it) if self.sync else aiter(it)
        self.on_cancel = on_cancel
        self.consumers: set[Any] = set()
        self.done = False
        return Producer(None, **opts)

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
        self.consumers.add(from_[1])
        return Automatic(state)

    def handle_cancel(self, reason: Any, from_: Any, state: Any) -> Any:
        self.consumers.discard(from_[1])
        if self.on_cancel == "stop" and not self.consumers:
            return Stop(NORMAL, state)
        return NoReply([], state)

    async def handle_demand(self, demand: int, state: Any) -> Any:
        if self.done:
            return NoReply([], state)
        if self.sync:
            events = list(itertools.islice(self.it, demand))
        else:
            events = []
            try:
                while len(events) < demand:
                    events.append(await anext(self.it))
            except StopAsyncIteration:
                pass
        if len(events) < demand:
            self.done = True
            GenStage.async_info(api.self(), _DONE)  # after these events are dispatched
        return NoReply(events, state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        if msg == _DONE:
            return Stop(NORMAL, state)
        return NoReply([], state)


async def _start(
    source: Any, link: bool, name: Any, on_cancel: str, opts: dict[str, Any]
) -> Pid | None:
    if on_cancel not in ("continue", "stop"):
        raise BadArgument(f"on_cancel must be 'continue' or 'stop', not {on_cancel!r}")
    unknown = set(opts) - {"dispatcher", "demand", "buffer_size", "buffer_keep", "share_events"}
    if unknown:
        raise BadArgument(f"unknown options {sorted(unknown)}")
    arg = (Shared(source), on_cancel, opts)  # an iterator is not copied: it moves
    start = IterableProducer.start_link if link else IterableProducer.start
    return await start(arg, name=name)


async def from_iterable(
    items: Iterable[Any],
    *,
    link: bool = True,
    name: str | Atom | Via | None = None,
    on_cancel: str = "continue",
    **opts: Any,
) -> Pid | None:
    """Start a producer that emits `items` on demand and stops `normal` when they run
    out (Elixir's `GenStage.from_enumerable`, G13.2). `on_cancel="stop"` stops it when
    its last consumer cancels; `dispatcher`, `demand`, `buffer_size`, `buffer_keep` and
    `share_events` are producer options. The iterable is handed to the new process, not
    copied: do not use it afterwards. A blocking iterator blocks the producer.

    Examples:
        >>> from beamlet.gen_stage import GenStage, from_iterable
        >>> producer = await from_iterable(range(10))
        >>> [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        >>> beamlet.is_alive(producer)
        False
    """
    return await _start(items, link, name, on_cancel, opts)


async def from_async_iterable(
    items: AsyncIterable[Any],
    *,
    link: bool = True,
    name: str | Atom | Via | None = None,
    on_cancel: str = "continue",
    **opts: Any,
) -> Pid | None:
    """`from_iterable` for an async iterable (an async generator, a stream reader...);
    the producer awaits it inside `handle_demand`, so while it waits the producer
    handles no other message.

    Examples:
        >>> from beamlet.gen_stage import GenStage, from_async_iterable
        >>> async def ticks():
        ...     for i in range(3):
        ...         await beamlet.sleep(0)
        ...         yield i
        >>> producer = await from_async_iterable(ticks(), on_cancel="stop")
        >>> [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
        [0, 1, 2]
    """
    return await _start(items, link, name, on_cancel, opts)
