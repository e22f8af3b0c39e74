"""The pipeline builder and the Batch stage (docs/gen_stage.md G17), and the
bounded-memory check with a slow consumer."""

from __future__ import annotations

from typing import Any

import pytest

import beamlet
from beamlet import ANY, Down
from beamlet.gen_stage import (
    Batch,
    Consumer,
    GenStage,
    NoReply,
    Pipeline,
    Producer,
    ProducerConsumer,
    Stage,
    from_iterable,
)
from beamlet.testing import assert_receive, refute_receive


class Source(GenStage[Any]):
    def init(self, n: int) -> Any:
        return Producer(0)

    def handle_demand(self, demand: int, count: int) -> Any:
        return NoReply(list(range(count, count + demand)), count + demand)


class Encrypt(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        return ProducerConsumer(None)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        return NoReply([("enc", e) for e in events], state)


class Store(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        return ProducerConsumer(None)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        return NoReply([(beamlet.self(), e) for e in events], state)


class Notify(GenStage[Any]):
    def init(self, test: Any) -> Any:
        return Consumer(test)

    def handle_events(self, events: list[Any], from_: Any, test: Any) -> Any:
        beamlet.send(test, ("notified", events))
        return NoReply([], test)


def upload(test: Any) -> Pipeline:
    return Pipeline(
        "upload",
        [
            Stage("source", Source, arg=0),
            Stage("encrypt", Encrypt, count=4, max_demand=10),
            Stage("store", Store, count=2, max_demand=10, partition_by=lambda e: e[1] % 2),
            Stage("notify", Notify, arg=test, max_demand=10),
        ],
    )


async def test_pipeline_runs_the_upload_shape_with_partitioning() -> None:
    p = upload(beamlet.self())
    await p.start_link()
    seen: dict[int, Any] = {}
    while len(seen) < 200:
        _, events = await assert_receive(("notified", ANY), timeout=5)
        for store, (_, n) in events:
            seen.setdefault(n, store)
    stores = {beamlet.whereis(n) for n in p.names("store")}
    by_parity = {n % 2: seen[n] for n in seen}
    assert all(seen[n] == by_parity[n % 2] for n in seen)  # one store per key parity
    assert set(by_parity.values()) == stores


async def test_pipeline_restarts_a_crashed_stage_and_what_depends_on_it() -> None:
    p = upload(beamlet.self())
    await p.start_link(max_restarts=10)
    await assert_receive(("notified", ANY), timeout=5)
    source = beamlet.whereis("upload.source.0")
    enc = beamlet.whereis("upload.encrypt.1")
    notify = beamlet.whereis("upload.notify.0")
    assert source and enc and notify
    mref = beamlet.monitor(notify)
    beamlet.exit(enc, beamlet.KILL)
    await assert_receive(Down(mref, ANY, ANY, ANY), timeout=5)  # downstream restarted too
    while beamlet.whereis("upload.notify.0") in (None, notify):
        await assert_receive(("notified", ANY), timeout=5)
    assert beamlet.whereis("upload.source.0") == source  # upstream untouched
    await assert_receive(("notified", ANY), timeout=5)


async def test_pipeline_bad_input() -> None:
    with pytest.raises(beamlet.BadArgument):
        Pipeline("p", [])
    with pytest.raises(beamlet.BadArgument):
        Pipeline("p", [Stage("a", Source, count=0)])
    with pytest.raises(beamlet.BadArgument):
        Pipeline("p", [Stage("a", Source), Stage("a", Notify)])
    with pytest.raises(beamlet.BadArgument):
        Pipeline("p", [Stage("a", Source, partition_by=lambda e: 0)])


class Collect(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        test, to = arg
        return Consumer(test, subscribe_to=[(to, {"max_demand": 10, "min_demand": 0})])

    def handle_events(self, events: list[Any], from_: Any, test: Any) -> Any:
        beamlet.send(test, ("batches", events))
        return NoReply([], test)


async def test_batch_groups_by_size() -> None:
    source = await from_iterable(range(25))
    b = await Batch.start_link({"max_size": 10, "max_wait": 5.0, "subscribe_to": [source]})
    await Collect.start_link((beamlet.self(), b))
    _, first = await assert_receive(("batches", ANY))
    assert first[0] == list(range(10))


@pytest.mark.virtual_time
async def test_batch_emits_a_partial_batch_after_max_wait() -> None:
    from stages import Counter

    source = await Counter.start_link(Producer(beamlet.self()))  # emits only what is queued
    b = await Batch.start_link({"max_size": 100, "max_wait": 0.5, "subscribe_to": [source]})
    await Collect.start_link((beamlet.self(), b))
    await GenStage.call(source, ("queue", [0, 1, 2, 3, 4]))
    await refute_receive(("batches", ANY), timeout=0.4)
    _, batches = await assert_receive(("batches", ANY), timeout=1)
    assert batches == [[0, 1, 2, 3, 4]]


class Slow(GenStage[Any]):
    """A consumer 100x slower than its producer: it sleeps per batch."""

    def init(self, arg: Any) -> Any:
        test, to = arg
        return Consumer(test, subscribe_to=[(to, {"max_demand": 100})])

    async def handle_events(self, events: list[Any], from_: Any, test: Any) -> Any:
        await beamlet.sleep(0.01)  # sleep-ok: the slowness under test
        beamlet.send(test, ("slow", len(events)))
        return NoReply([], test)


class Flood(GenStage[Any]):
    """A producer that also pushes events on its own (a cast per tick), 100x faster."""

    def init(self, arg: Any) -> Any:
        return Producer(0, buffer_size=1000)

    def handle_demand(self, demand: int, n: int) -> Any:
        return NoReply(list(range(n, n + demand)), n + demand)

    def handle_cast(self, req: Any, n: int) -> Any:
        return NoReply(list(range(n, n + 500)), n + 500)


async def test_memory_stays_bounded_with_a_100x_slower_consumer() -> None:
    producer = await Flood.start_link()
    consumer = await Slow.start_link((beamlet.self(), producer))
    for _ in range(20):
        for _ in range(10):
            GenStage.cast(producer, "push")
        await assert_receive(("slow", ANY), timeout=5)
        info = await GenStage.info(producer)
        assert info["buffered"] <= 1000  # buffer_size
        pi = beamlet.process_info(consumer)
        assert pi is not None and pi.message_queue_len <= 100 + 1000  # max_demand + buffer
        mine = (await GenStage.info(consumer))["producers"]
        assert all(0 <= s["demand"] <= 100 for s in mine.values())
