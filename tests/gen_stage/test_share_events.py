"""`share_events=True` (docs/gen_stage.md G3.8): batches passed by reference between
stages of one node, in a `Shared` envelope; the default still isolates them."""

from __future__ import annotations

from typing import Any

import pytest
from stages import Counter, Doubler, Forwarder

import beamlet
from beamlet import ANY, Atom, ChildSpec, Shared, StartError
from beamlet.gen_stage import (
    BroadcastDispatcher,
    Consumer,
    ConsumerSupervisor,
    GenStage,
    NoReply,
    PartitionDispatcher,
    Producer,
    ProducerConsumer,
    from_iterable,
)
from beamlet.testing import assert_receive


class Emitter(GenStage[Any]):
    """Emits the objects it was started with (passed by reference), once."""

    def init(self, arg: Any) -> Any:
        box, options = arg
        return Producer(box.value, **options)

    def handle_demand(self, demand: int, events: list[Any]) -> Any:
        return NoReply(events, [])


class Keeper(GenStage[Any]):
    """A consumer that hands each batch to the test process by reference."""

    def init(self, test: Any) -> Any:
        return Consumer(test)

    def handle_events(self, events: list[Any], from_: Any, test: Any) -> Any:
        beamlet.send(test, ("kept", Shared(events)))
        return NoReply([], test)


async def kept_batches(consumers: int, **options: Any) -> tuple[list[Any], list[list[Any]]]:
    """Start an Emitter of two dicts with `options` and `consumers` Keepers subscribed
    before it emits; (what it emitted, the batch each Keeper got)."""
    events = [{"a": 1}, {"b": 2}]
    producer = await Emitter.start_link((Shared(events), {"demand": "accumulate", **options}))
    for _ in range(consumers):
        keeper = await Keeper.start_link(beamlet.self())
        await GenStage.sync_subscribe(keeper, to=producer)
    await GenStage.demand(producer, "forward")
    got = [(await assert_receive(("kept", ANY)))[1].value for _ in range(consumers)]
    return events, got


async def test_shared_events_reach_the_consumer_by_reference() -> None:
    events, [got] = await kept_batches(1, share_events=True)
    assert got == events and all(g is e for g, e in zip(got, events, strict=True))


async def test_events_are_copied_by_default() -> None:
    events, [got] = await kept_batches(1)
    assert got == events and not any(g is e for g, e in zip(got, events, strict=True))


async def test_shared_events_through_a_broadcast_dispatcher() -> None:
    events, got = await kept_batches(2, share_events=True, dispatcher=BroadcastDispatcher)
    for batch in got:
        assert batch == events and batch[0] is events[0]


async def test_shared_events_through_a_partition_dispatcher() -> None:
    me = beamlet.self()
    parity = (PartitionDispatcher, {"partitions": 2, "hash": lambda e: (e, e % 2)})
    producer = await Counter.start_link(Producer(0, share_events=True, dispatcher=parity))
    for partition in (0, 1):
        sub = (producer, {"partition": partition, "max_demand": 4, "min_demand": 0})
        await Forwarder.start_link(Consumer(me, subscribe_to=[sub]))
    seen: dict[int, list[int]] = {0: [], 1: []}
    while len(seen[0]) < 4 or len(seen[1]) < 4:
        batch = (await assert_receive(("consumed", ANY)))[1]
        assert {e % 2 for e in batch} == {batch[0] % 2}
        seen[batch[0] % 2] += batch
    assert (seen[0][:4], seen[1][:4]) == ([0, 2, 4, 6], [1, 3, 5, 7])


async def test_a_sharing_pipeline_keeps_the_demand_rules() -> None:
    """Producer and producer_consumer share: the asks back to them travel as Shared
    envelopes too, and G4.1/G4.5 still hold (same batches as without sharing)."""
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0, share_events=True))
    sub = {"max_demand": 4, "min_demand": 0}
    doubler = await Doubler.start_link(
        ProducerConsumer(me, subscribe_to=[(producer, sub)], share_events=True)
    )
    await Forwarder.start_link(Consumer(me, subscribe_to=[(doubler, sub)]))
    await assert_receive(("producer_consumed", [0, 1, 2, 3]))
    await assert_receive(("consumed", [0, 0, 1, 1]))
    await assert_receive(("consumed", [2, 2, 3, 3]))
    await assert_receive(("producer_consumed", [4, 5, 6, 7]))
    await assert_receive(("consumed", [4, 4, 5, 5]))


async def test_stream_takes_shared_batches() -> None:
    producer = await from_iterable(range(5), share_events=True)
    events = [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
    assert events == [0, 1, 2, 3, 4]


async def test_a_shared_info_message_is_not_unwrapped() -> None:
    """Only stage messages (M1-M5) are taken out of a Shared envelope."""
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    box = Shared(("not", "a", "stage message"))
    beamlet.send(consumer, box)
    assert await assert_receive(Shared) is box


@pytest.mark.parametrize("role", [Producer, ProducerConsumer])
async def test_share_events_must_be_a_boolean(role: Any) -> None:
    with pytest.raises(StartError) as e:
        await Counter.start(role(0, share_events=Atom("yes")))
    assert e.value.reason == (
        Atom("bad_opts"),
        "expected :share_events to be a boolean, got: Atom('yes')",
    )


async def test_share_events_is_not_a_consumer_option() -> None:
    with pytest.raises(StartError) as e:
        await Forwarder.start(Consumer(0, share_events=True))
    assert e.value.reason == (Atom("bad_opts"), "unknown options [share_events: True]")


async def test_consumer_supervisor_takes_shared_batches() -> None:
    """A ConsumerSupervisor asks by hand (Manual): its asks stay plain M2."""
    me = beamlet.self()

    async def work(event: int) -> None:
        beamlet.send(me, ("worked", event))

    async def start_worker(event: int) -> Any:
        return beamlet.spawn_link(work, event)

    spec = ChildSpec(id="worker", start=start_worker, restart="temporary")
    producer = await from_iterable(range(6), share_events=True)
    sub = (producer, {"max_demand": 2, "cancel": "transient"})
    await ConsumerSupervisor.start_link(spec, subscribe_to=[sub])
    got = sorted([(await assert_receive(("worked", ANY)))[1] for _ in range(6)])
    assert got == [0, 1, 2, 3, 4, 5]
