"""BroadcastDispatcher (docs/gen_stage.md G7.3): every event to every consumer."""

from __future__ import annotations

import logging
from typing import Any

from beamlet import _core as api
from beamlet._core import Atom, BadArgument
from beamlet.gen_stage.dispatcher import Dispatcher, SubscriptionRefused
from beamlet.gen_stage.protocol import ASK, GEN_PRODUCER, SubscriptionFrom, send_events

__all__ = ["ALREADY_SUBSCRIBED", "BroadcastDispatcher"]

log = logging.getLogger("beamlet")

ALREADY_SUBSCRIBED = Atom("already_subscribed")


class BroadcastDispatcher(Dispatcher):
    """Sends every event to every consumer; upstream demand is the smallest
    outstanding demand among them, so the slowest consumer sets the pace (G7.3).

    A consumer may subscribe with `selector=fn`: it then gets only the events for which
    `fn(event)` is true (the skipped ones are credited back to its demand). One
    subscription per consumer process: a second is refused with `already_subscribed`.
    A new consumer starts with no demand, so nothing flows until it asks.

    Examples:
        >>> from beamlet.gen_stage import BroadcastDispatcher, GenStage, from_iterable
        >>> producer = await from_iterable(range(5), dispatcher=BroadcastDispatcher)
        >>> evens = {"selector": lambda e: e % 2 == 0, "cancel": "transient"}
        >>> [e async for e in GenStage.stream([(producer, evens)])]
        [0, 2, 4]
    """

    def __init__(self) -> None:
        self.demands: list[list[Any]] = []  # [counter, pid, tag, selector], newest first
        self.waiting = 0  # events asked upstream that have not arrived yet
        self.requested = 0
        self.subscribed: set[Any] = set()

    def subscribe(self, opts: dict[str, Any], from_: SubscriptionFrom) -> int:
        selector = opts.get("selector")
        if selector is not None and not callable(selector):
            raise BadArgument(f"selector option must be passed a unary function, got: {selector!r}")
        pid, tag = from_
        if pid in self.subscribed:
            log.error(
                "%r is already registered with %r. This subscription has been discarded.",
                pid,
                api.self(),
            )
            raise SubscriptionRefused(ALREADY_SUBSCRIBED)
        self.subscribed.add(pid)
        self._adjust(-self.waiting)
        self.demands.insert(0, [0, pid, tag, selector])
        self.waiting = 0
        return 0

    def cancel(self, from_: SubscriptionFrom) -> int:
        pid, tag = from_
        self.subscribed.discard(pid)
        self.demands = [d for d in self.demands if d[2] != tag]
        if not self.demands:
            self.waiting = 0
            return 0
        return self._sync()

    def ask(self, demand: int, from_: SubscriptionFrom) -> int:
        pid, tag = from_
        entry = self._pop(tag)
        if entry is None:
            entry = [0, pid, tag, None]
        entry[0] += demand
        self.demands.insert(0, entry)
        return self._sync()

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        if self.waiting == 0:
            return events
        if length <= self.waiting:
            now, later = events, []
            self.waiting -= length
            count = length
        else:
            count = self.waiting
            now, later = events[:count], events[count:]
            self.waiting = 0
        me = api.self()
        share = self.share_events
        for _, pid, tag, selector in self.demands:
            selected = now
            if selector is not None:
                selected = [e for e in now if selector(e)]
                skipped = len(now) - len(selected)
                if skipped:  # credit the skipped events back to this consumer
                    api.send(me, (GEN_PRODUCER, (pid, tag), (ASK, skipped)))
            send_events(pid, tag, selected, share=share)  # may be empty (G3.4)
        self.requested -= count
        return later

    def _pop(self, tag: Any) -> list[Any] | None:
        for i, entry in enumerate(self.demands):
            if entry[2] == tag:
                del self.demands[i]
                return entry
        return None

    def _adjust(self, delta: int) -> None:
        if delta:
            for entry in self.demands:
                entry[0] -= delta

    def _sync(self) -> int:
        new_min = max(min(d[0] for d in self.demands), 0) if self.demands else 0
        self._adjust(new_min)
        self.waiting += new_min
        request = max(0, self.waiting - self.requested)
        self.requested += request
        return request
