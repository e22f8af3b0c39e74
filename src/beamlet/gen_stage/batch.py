"""`Batch`: a producer_consumer that groups events into lists of up to `max_size`,
emitting a partial batch once its oldest event has waited `max_wait` seconds
(docs/gen_stage.md G17).

Downstream stages receive lists of events as their events. Demand stays bounded: the
stage asks upstream for `max_size`-sized chunks only as batches are taken downstream.
"""

from __future__ import annotations

from typing import Any

from beamlet import _core as api
from beamlet._core import Atom, BadArgument
from beamlet.gen_stage.stage import GenStage, NoReply, ProducerConsumer

__all__ = ["Batch"]

_FLUSH = Atom("$beamlet_batch_flush")


class Batch(GenStage[Any]):
    """Start with `Batch.start_link({"max_size": n, "max_wait": seconds, **opts})`;
    other keys are `ProducerConsumer` options (`subscribe_to`, `dispatcher`, ...).

    Examples:
        >>> from beamlet.gen_stage import Batch, GenStage, from_iterable
        >>> source = (await from_iterable(range(5)), {"cancel": "temporary"})
        >>> opts = {"max_size": 2, "max_wait": 0.05, "subscribe_to": [source]}
        >>> batch = await Batch.start_link(opts)
        >>> batches = []
        >>> async for b in GenStage.stream([batch]):
        ...     batches.append(b)                   # [4] waits max_wait for company
        ...     if len(batches) == 3:
        ...         break
        >>> batches
        [[0, 1], [2, 3], [4]]
    """

    def init(self, arg: Any) -> Any:
        if type(arg) is not dict:
            raise BadArgument(f"Batch expects a dict of options, not {arg!r}")
        opts = dict(arg)
        size = opts.pop("max_size", 100)
        wait = opts.pop("max_wait", 1.0)
        if type(size) is not int or size < 1:
            raise BadArgument(f"max_size must be an integer >= 1, not {size!r}")
        if type(wait) not in (int, float) or wait <= 0:
            raise BadArgument(f"max_wait must be a number of seconds > 0, not {wait!r}")
        self.max_size = size
        self.max_wait = float(wait)
        self.pending: list[Any] = []
        self.timer: Any = None
        self.generation = 0
        return ProducerConsumer(None, **opts)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        pending = self.pending
        pending.extend(events)
        out = []
        size = self.max_size
        while len(pending) >= size:
            out.append(pending[:size])
            del pending[:size]
        if out or not pending:
            self._cancel_timer()
        if pending and self.timer is None:
            self.generation += 1
            self.timer = api.send_after(self.max_wait, api.self(), (_FLUSH, self.generation))
        return NoReply(out, state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == _FLUSH:
            if msg[1] == self.generation and self.pending:
                self.timer = None
                batch, self.pending = self.pending, []
                return NoReply([batch], state)
            return NoReply([], state)
        return super().handle_info(msg, state)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            api.cancel_timer(self.timer)
            self.timer = None
            self.generation += 1
