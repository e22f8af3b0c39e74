"""How a producer hands events to its consumers (docs/gen_stage.md G7): the
`Dispatcher` interface and the default `DemandDispatcher`.

A dispatcher is an object owned by one producer (or producer_consumer) process, created
from the stage's `dispatcher=` option: a `Dispatcher` subclass, or `(subclass, options)`
with the options as a dict of keyword arguments. The stage calls it on every
subscription event; the demand each method returns is what reaches `handle_demand` (or,
in a producer_consumer, what lets it process more upstream events).

Write your own by subclassing `Dispatcher`::

    class RoundRobin(Dispatcher):
        def __init__(self) -> None:
            self.subs: list[list[Any]] = []        # [demand, pid, tag]
        def subscribe(self, opts, from_):
            self.subs.append([0, *from_]); return 0
        def cancel(self, from_):
            self.subs = [s for s in self.subs if s[2] != from_[1]]; return 0
        def ask(self, demand, from_):
            for s in self.subs:
                if s[2] == from_[1]: s[0] += demand
            return demand
        def dispatch(self, events, length):
            ...  # send_events(pid, tag, some_events) for subscribers with demand
            return leftover                          # buffered by the stage
"""

from __future__ import annotations

import logging
import random
from typing import Any

from beamlet import _core as api
from beamlet.gen_stage.protocol import SubscriptionFrom, events_sender, send_events

__all__ = ["DemandDispatcher", "Dispatcher", "SubscriptionRefused"]

log = logging.getLogger("beamlet")


class SubscriptionRefused(Exception):
    """Raised by `Dispatcher.subscribe` to refuse a consumer: the stage cancels the
    subscription with `reason` (M5) and logs it (G3.3)."""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class Dispatcher:
    """The dispatcher interface (Elixir's `GenStage.Dispatcher` behaviour, G7.1).

    Each method runs in the producer process. `from_` is the subscription's
    `(consumer_pid, tag)`; events are sent with `send_events(pid, tag, events,
    share=self.share_events)` (`share_events` is set from the stage's option of that
    name; without `share=` batches are checked and copied as usual).

    Examples:
        >>> from beamlet.gen_stage import Dispatcher, GenStage, SubscriptionRefused
        >>> from beamlet.gen_stage import from_iterable, send_events
        >>> class Single(Dispatcher):                   # one consumer at a time
        ...     def __init__(self):
        ...         self.sub = None                     # [demand, pid, tag]
        ...     def subscribe(self, opts, from_):
        ...         if self.sub is not None:
        ...             raise SubscriptionRefused(beamlet.Atom("busy"))
        ...         self.sub = [0, *from_]
        ...         return 0
        ...     def cancel(self, from_):
        ...         self.sub = None
        ...         return 0
        ...     def ask(self, demand, from_):
        ...         self.sub[0] += demand
        ...         return demand                       # pass it all on to handle_demand
        ...     def dispatch(self, events, length):
        ...         n = self.sub[0] if self.sub else 0
        ...         if n:
        ...             send_events(self.sub[1], self.sub[2], events[:n])
        ...             self.sub[0] -= min(n, length)
        ...         return events[n:]                   # the stage buffers the rest
        >>> producer = await from_iterable("abc", dispatcher=Single)
        >>> [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
        ['a', 'b', 'c']
    """

    share_events: bool = False

    def subscribe(self, opts: dict[str, Any], from_: SubscriptionFrom) -> int:
        """A consumer subscribed (`opts`: what it passed). Returns the demand to add
        upstream; raise `SubscriptionRefused(reason)` to refuse it."""
        raise NotImplementedError

    def cancel(self, from_: SubscriptionFrom) -> int:
        """A subscription ended (cancel or the consumer's death); returns new demand."""
        raise NotImplementedError

    def ask(self, demand: int, from_: SubscriptionFrom) -> int:
        """A consumer asked for `demand` (> 0) more; returns the demand to pass on."""
        raise NotImplementedError

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        """Send what consumers asked for; return the events nobody can take now (the
        stage buffers them). `events` is non-empty and `length == len(events)`."""
        raise NotImplementedError

    def info(self, msg: Any) -> None:
        """Deliver `msg` to the stage itself once the events queued before it are sent
        (a dispatcher without queues sends it at once)."""
        api.send(api.self(), msg)


class DemandDispatcher(Dispatcher):
    """Sends each batch to the consumers with the largest outstanding demand first
    (ties in subscription order); the default dispatcher (G7.2).

    Options: `max_demand` (default: the first ask seen; larger asks log a warning) and
    `shuffle_demands_on_first_dispatch` (shuffle the consumers once, so the first batch
    does not always go to the first subscriber).

    Examples:
        >>> from beamlet.gen_stage import DemandDispatcher, GenStage, from_iterable
        >>> opts = {"shuffle_demands_on_first_dispatch": True}
        >>> producer = await from_iterable(range(3), dispatcher=(DemandDispatcher, opts))
        >>> [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
        [0, 1, 2]
    """

    def __init__(
        self, *, max_demand: int | None = None, shuffle_demands_on_first_dispatch: bool = False
    ) -> None:
        # [counter, pid, tag, events_sender], largest counter first
        self.demands: list[list[Any]] = []
        self.pending = 0
        self.max_demand = max_demand
        self.shuffle = shuffle_demands_on_first_dispatch
        self.direct = type(self).send is DemandDispatcher.send  # `send` not overridden

    def subscribe(self, opts: dict[str, Any], from_: SubscriptionFrom) -> int:
        pid, tag = from_
        self.demands.append([0, pid, tag, events_sender(pid, tag, share=self.share_events)])
        return 0

    def cancel(self, from_: SubscriptionFrom) -> int:
        current = self._pop(from_[1])
        self.pending += current  # already asked upstream once: subtract from later asks
        return 0

    def ask(self, demand: int, from_: SubscriptionFrom) -> int:
        if self.max_demand is None:
            self.max_demand = demand
        elif demand > self.max_demand:
            log.warning(
                "GenStage producer DemandDispatcher expects a maximum demand of %r. Using "
                "different maximum demands will overload greedy consumers. Got demand for "
                "%r events from %r",
                self.max_demand,
                demand,
                from_[0],
            )
        demands = self.demands
        tag = from_[1]
        i = len(demands) - 1  # most often the last: it was served and asks again
        if i < 0 or (entry := demands[i])[2] is not tag:
            i = 0
            for entry in demands:  # by identity first: Ref.__eq__ runs in Python
                if entry[2] is tag:
                    break
                i += 1
            else:
                found = self._take(tag)
                if found is None:
                    found = [0, from_[0], tag, events_sender(*from_, share=self.share_events)]
                demands.append(found)
                i, entry = len(demands) - 1, found
        counter = entry[0] = entry[0] + demand
        while i and demands[i - 1][0] < counter:  # to its place: before smaller demands
            demands[i] = demands[i - 1]
            i -= 1
            demands[i] = entry
        if not self.pending:
            return demand
        already_sent = min(self.pending, demand)
        self.pending -= already_sent
        return demand - already_sent

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        demands = self.demands
        if self.shuffle:
            random.shuffle(demands)
            self.shuffle = False
        if demands and demands[0][0] >= length:  # the largest demand takes it all
            entry = demands[0]
            entry[0] -= length
            if self.direct:
                entry[3](events)
            else:
                self.send(entry[1], entry[2], events)
            if len(demands) > 1 and entry[0] <= demands[1][0]:  # as _insert places it
                del demands[0]
                self._insert(entry)
            return []
        while events and demands and demands[0][0] > 0:
            entry = demands.pop(0)
            counter = entry[0]
            if length <= counter:
                now, events = events, []
                entry[0] = counter - length
                length = 0
            else:
                now, events = events[:counter], events[counter:]
                length -= counter
                entry[0] = 0
            if self.direct:
                entry[3](now)
            else:
                self.send(entry[1], entry[2], now)
            self._insert(entry)
        self.pending = max(self.pending - length, 0)
        return events

    def send(self, pid: Any, tag: Any, events: list[Any]) -> None:
        """Send one batch (M4); override to observe or wrap what is sent."""
        send_events(pid, tag, events, share=self.share_events)

    def _pop(self, tag: Any) -> int:
        entry = self._take(tag)
        counter: int = entry[0] if entry is not None else 0
        return counter

    def _take(self, tag: Any) -> list[Any] | None:
        demands = self.demands
        for i, entry in enumerate(demands):  # by identity first: Ref.__eq__ runs in Python
            if entry[2] is tag:
                del demands[i]
                return entry
        for i, entry in enumerate(demands):
            if entry[2] == tag:
                del demands[i]
                return entry
        return None

    def _insert(self, entry: list[Any]) -> None:
        demands = self.demands
        counter = entry[0]
        if not demands or counter <= demands[-1][0]:  # the common case (one consumer)
            demands.append(entry)
            return
        for i, other in enumerate(demands):
            if counter > other[0]:
                demands.insert(i, entry)
                return
        demands.append(entry)
