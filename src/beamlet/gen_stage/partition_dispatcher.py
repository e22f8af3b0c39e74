"""PartitionDispatcher (docs/gen_stage.md G7.4): each event to the one consumer that
owns its partition."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from beamlet import _core as api
from beamlet._core import Atom, BadArgument
from beamlet.gen_stage.dispatcher import Dispatcher
from beamlet.gen_stage.protocol import SubscriptionFrom, send_events
from beamlet.phash2 import phash2

__all__ = ["NONE", "PartitionDispatcher"]

NONE = Atom("none")
"""What a `hash` function returns to drop an event (Erlang's `none`)."""


class _Info:
    __slots__ = ("msg", "waiting")

    def __init__(self, msg: Any, waiting: set[Any]) -> None:
        self.msg = msg
        self.waiting = waiting


class _Partition:
    __slots__ = ("demand", "pid", "queue", "tag")

    def __init__(self) -> None:
        self.pid: Any = None
        self.tag: Any = None
        self.demand = 0
        self.queue: deque[Any] | None = None  # events (and _Info markers) waiting for demand


class PartitionDispatcher(Dispatcher):
    """Routes each event by `hash(event) -> (event, partition)` to the consumer that
    subscribed with `partition=P`; one consumer per partition (G7.4).

    `partitions` is a count (names `0..n-1`) or any iterable of names (names that are not
    integers need `hash`). The default hash is GenStage's, `(event, phash2(event, n))`
    with Erlang's `phash2` (`beamlet.phash2`), so an event lands in the partition an
    Elixir producer would pick; events that are not Erlang terms need `hash`. A hash may
    return `NONE` to drop an event. Events for a partition without demand wait in that
    partition's own queue; they are dropped if its consumer cancels, and the same number
    is asked upstream again.

    A bad `partition` at subscribe, an unknown partition or a malformed hash result
    raise in the producer, as in GenStage (G3.3).

    Examples:
        >>> from beamlet.gen_stage import GenStage, PartitionDispatcher, from_iterable
        >>> parity = (PartitionDispatcher, {"partitions": 2, "hash": lambda e: (e, e % 2)})
        >>> producer = await from_iterable(range(6), dispatcher=parity)
        >>> odd = []
        >>> async for e in GenStage.stream([(producer, {"partition": 1})]):
        ...     odd.append(e)
        ...     if len(odd) == 3:
        ...         break
        >>> odd
        [1, 3, 5]
    """

    def __init__(
        self,
        *,
        partitions: int | Iterable[Hashable] | None = None,
        hash: Callable[[Any], Any] | None = None,
    ) -> None:
        if partitions is None:
            raise BadArgument(
                "the :partitions option is required when using the partition dispatcher"
            )
        names: list[Hashable] = (
            list(range(partitions)) if type(partitions) is int else list(partitions)  # type: ignore[arg-type]
        )
        if hash is None and any(type(p) is not int for p in names):
            raise BadArgument(
                "when :partitions contains partitions that are not integers, you have to "
                "pass in the :hash option as well"
            )
        self.partitions: dict[Hashable, _Partition] = {p: _Partition() for p in names}
        size = len(names)
        self.hash: Callable[[Any], Any] = (
            hash if hash is not None else (lambda e: (e, phash2(e, size)))
        )
        self.waiting = 0
        self.pending = 0
        self.references: dict[Any, Hashable] = {}
        self.infos: list[_Info] = []

    def subscribe(self, opts: dict[str, Any], from_: SubscriptionFrom) -> int:
        partition = opts.get("partition")
        part = self.partitions.get(partition) if _hashable(partition) else None
        if part is None:
            if partition is None:
                raise BadArgument(
                    "the :partition option is required when subscribing to a producer with "
                    "partition dispatcher"
                )
            raise BadArgument(
                f":partition must be one of {list(self.partitions)}, got: {partition!r}"
            )
        if part.pid is not None:
            raise BadArgument(f"the partition {partition!r} is already taken by {part.pid!r}")
        part.pid, part.tag = from_
        self.references[from_[1]] = partition
        return 0

    def cancel(self, from_: SubscriptionFrom) -> int:
        partition = self.references.pop(from_[1], None)
        if partition is None:
            return 0
        part = self.partitions[partition]
        part.pid = part.tag = None
        if part.queue is None:
            self.pending += part.demand
            part.demand = 0
            return 0
        dropped = 0
        for e in part.queue:
            if type(e) is _Info:
                self._info_done(e, partition)
            else:
                dropped += 1
        part.queue = None
        part.demand = 0
        self.waiting += dropped
        return dropped

    def ask(self, demand: int, from_: SubscriptionFrom) -> int:
        partition = self.references[from_[1]]
        part = self.partitions[partition]
        if part.queue is None:
            part.demand += demand
        else:
            self._send_from_queue(part, partition, demand)
        already_sent = min(self.pending, demand)
        out = demand - already_sent
        self.pending -= already_sent
        self.waiting += out
        return out

    def _send_from_queue(self, part: _Partition, partition: Hashable, counter: int) -> None:
        queue = part.queue
        assert queue is not None
        batch: list[Any] = []
        while counter > 0 or (queue and type(queue[0]) is _Info):
            if not queue:
                break
            e = queue.popleft()
            if type(e) is _Info:
                if batch:
                    send_events(part.pid, part.tag, batch, share=self.share_events)
                    batch = []
                self._info_done(e, partition)
            else:
                batch.append(e)
                counter -= 1
        if batch:
            send_events(part.pid, part.tag, batch, share=self.share_events)
        if not queue:
            part.queue = None
            part.demand = counter

    def dispatch(self, events: list[Any], length: int) -> list[Any]:
        per: dict[Hashable, list[Any]] = {}
        hash_ = self.hash
        partitions = self.partitions
        i = 0
        n = len(events)
        while i < n and self.waiting > 0:
            r = hash_(events[i])
            i += 1
            if r == NONE:
                continue
            if type(r) is not tuple or len(r) != 2:
                raise BadArgument(
                    f"the :hash function should return (event, partition), got: {r!r}"
                )
            event, partition = r
            if not _hashable(partition) or partition not in partitions:
                raise BadArgument(
                    f"unknown partition {partition!r} computed for GenStage event {event!r}. The "
                    f"known partitions are {list(partitions)}. See the :partitions option to "
                    "set your own. This event has been discarded."
                )
            per.setdefault(partition, []).append(event)
            self.waiting -= 1
        for partition, evs in per.items():
            part = partitions[partition]
            if part.queue is None:
                if len(evs) <= part.demand:
                    now, rest = evs, []
                else:
                    now, rest = evs[: part.demand], evs[part.demand :]
                part.demand -= len(now)
                if rest:
                    part.queue = deque(rest)
            else:
                now = []
                part.queue.extend(evs)
            if now and part.pid is not None:
                send_events(part.pid, part.tag, now, share=self.share_events)
        return events[i:]

    def info(self, msg: Any) -> None:
        queued = set()
        for name, part in self.partitions.items():
            if part.queue is not None:
                queued.add(name)
        if not queued:
            api.send(api.self(), msg)
            return
        marker = _Info(msg, queued)
        for name in queued:
            q = self.partitions[name].queue
            assert q is not None
            q.append(marker)

    def _info_done(self, marker: _Info, partition: Hashable) -> None:
        marker.waiting.discard(partition)
        if not marker.waiting:
            api.send(api.self(), marker.msg)


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True
