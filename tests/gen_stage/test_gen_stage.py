"""GenStage: ports of elixir-lang/gen_stage test/gen_stage_test.exs, named after the
upstream tests (docs/gen_stage.md G16), grouped by its `describe` blocks."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from stages import (
    Counter,
    DemandProducer,
    DiscardedBufferLogger,
    Discarder,
    Doubler,
    Forwarder,
    NothingProducer,
    Postponer,
    Sleeper,
)

import beamlet
from beamlet import ANY, NOPROC, NORMAL, SHUTDOWN, Atom, Down, Exit, Pid, Ref
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.behaviours.gen_server import CallExit
from beamlet.gen_stage import (
    BadOpts,
    BroadcastDispatcher,
    Consumer,
    GenStage,
    NoReply,
    Producer,
    ProducerConsumer,
    SubscribeError,
)
from beamlet.gen_stage.protocol import GEN_CONSUMER, GEN_PRODUCER, NIL
from beamlet.testing import assert_receive, refute_receive

SUBSCRIBE, ASK, CANCEL = Atom("subscribe"), Atom("ask"), Atom("cancel")
KILLED = beamlet.KILLED
BAD_OPTS = Atom("bad_opts")
BAD_RETURN_VALUE = Atom("bad_return_value")


def doubled(r: range) -> list[int]:
    return [x for e in r for x in (e, e)]


async def test_generates_child_spec() -> None:
    spec = Counter.child_spec(["hello"])
    assert spec == ChildSpec(id=Counter, start=Counter.start_link, args=(["hello"],), shutdown=5.0)

    class Custom(GenStage[Any], id="id", restart="temporary", shutdown="infinity"):
        def init(self, arg: Any) -> Any:
            return Producer(arg)

    custom = Custom.child_spec(["hello"])
    assert (custom.id, custom.restart, custom.shutdown) == ("id", "temporary", "infinity")


# --- producer-to-consumer demand (G4.1) ------------------------------------------------


async def test_with_default_max_and_min_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    await Forwarder.start_link(Consumer(beamlet.self(), subscribe_to=[producer]))
    await assert_receive(("consumed", list(range(0, 500))))
    await assert_receive(("consumed", list(range(500, 1000))))


async def test_with_80_percent_min_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    sub = (producer, {"min_demand": 80, "max_demand": 100})
    await Forwarder.start_link(Consumer(beamlet.self(), subscribe_to=[sub]))
    await assert_receive(("consumed", list(range(0, 20))))
    await assert_receive(("consumed", list(range(20, 40))))
    await assert_receive(("consumed", list(range(1000, 1020))))


async def test_with_20_percent_min_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    sub = (producer, {"min_demand": 20, "max_demand": 100})
    await Forwarder.start_link(Consumer(beamlet.self(), subscribe_to=[sub]))
    for r in (range(0, 80), range(80, 100), range(100, 180), range(180, 260), range(260, 280)):
        await assert_receive(("consumed", list(r)))


async def test_with_1_max_and_0_min_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=1, min_demand=0)
    for i in range(3):
        await assert_receive(("consumed", [i]))


async def test_with_shared_broadcast_demand() -> None:
    producer = await Counter.start_link(Producer(0, dispatcher=BroadcastDispatcher))
    c1 = await Forwarder.start_link(Consumer(beamlet.self()))
    c2 = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(c1, to=producer, max_demand=10, min_demand=0)
    GenStage.async_subscribe(c2, to=producer, max_demand=20, min_demand=0)
    batch = list(range(1000, 1010))
    await assert_receive(("consumed", batch), timeout=5)
    await assert_receive(("consumed", batch), timeout=5)


async def test_with_shared_broadcast_demand_and_synchronizer_subscriber() -> None:
    producer = await Counter.start_link(Producer(0, dispatcher=BroadcastDispatcher))
    c1 = await Forwarder.start_link(Consumer(beamlet.self()))
    c2 = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (beamlet.self(), ref), (SUBSCRIBE, NIL, [])))
    await GenStage.sync_subscribe(c1, to=producer, max_demand=10, min_demand=0)
    await GenStage.sync_subscribe(c2, to=producer, max_demand=20, min_demand=0)
    await refute_receive(("consumed", ANY))
    beamlet.send(producer, (GEN_PRODUCER, (beamlet.self(), ref), (CANCEL, KILLED)))
    batch = list(range(1000, 1010))
    await assert_receive(("consumed", batch), timeout=5)
    await assert_receive(("consumed", batch), timeout=5)


async def test_with_shared_broadcast_demand_does_not_result_in_duplicate_upstream_demand() -> None:
    producer = await NothingProducer.start_link(
        Producer(beamlet.self(), dispatcher=BroadcastDispatcher)
    )
    c1 = await Sleeper.start_link(Consumer(beamlet.self()))
    c2 = await Sleeper.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(c1, to=producer, max_demand=10, min_demand=0)
    await GenStage.sync_subscribe(c2, to=producer, max_demand=20, min_demand=0)
    await assert_receive(("demand", 10))
    await refute_receive(("demand", ANY))


# --- producer-producer_consumer-consumer demand (G4.5) ---------------------------------


async def test_with_80_percent_min_demand_with_init_subscription() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(
        ProducerConsumer(me, subscribe_to=[(producer, {"max_demand": 100, "min_demand": 80})])
    )
    await Forwarder.start_link(
        Consumer(me, subscribe_to=[(doubler, {"max_demand": 100, "min_demand": 50})])
    )
    await assert_receive(("producer_consumed", list(range(0, 20))))
    await assert_receive(("consumed", doubled(range(0, 20))))
    await assert_receive(("consumed", doubled(range(20, 40))))
    await assert_receive(("producer_consumed", list(range(100, 120))))
    await assert_receive(("consumed", doubled(range(120, 125))))
    await assert_receive(("consumed", doubled(range(125, 140))))


async def test_with_20_percent_min_demand_with_init_subscription() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(
        ProducerConsumer(me, subscribe_to=[(producer, {"max_demand": 100, "min_demand": 20})])
    )
    await Forwarder.start_link(
        Consumer(me, subscribe_to=[(doubler, {"max_demand": 100, "min_demand": 50})])
    )
    await assert_receive(("producer_consumed", list(range(0, 80))))
    await assert_receive(("consumed", doubled(range(0, 25))))
    await assert_receive(("consumed", doubled(range(25, 50))))
    await assert_receive(("consumed", doubled(range(50, 75))))
    await assert_receive(("producer_consumed", list(range(100, 180))))


async def test_with_80_percent_min_demand_with_late_subscription() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(ProducerConsumer(me))
    consumer = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(consumer, to=doubler, min_demand=50, max_demand=100)
    await GenStage.sync_subscribe(doubler, to=producer, min_demand=80, max_demand=100)
    await assert_receive(("producer_consumed", list(range(0, 20))))
    await assert_receive(("consumed", doubled(range(0, 20))))
    await assert_receive(("consumed", doubled(range(20, 40))))
    await assert_receive(("producer_consumed", list(range(100, 120))))
    await assert_receive(("consumed", doubled(range(120, 125))))
    await assert_receive(("consumed", doubled(range(125, 140))))


async def test_with_20_percent_min_demand_with_later_subscription() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(ProducerConsumer(me))
    consumer = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(consumer, to=doubler, min_demand=50, max_demand=100)
    await GenStage.sync_subscribe(doubler, to=producer, min_demand=20, max_demand=100)
    await assert_receive(("producer_consumed", list(range(0, 80))))
    await assert_receive(("consumed", doubled(range(0, 25))))
    await assert_receive(("consumed", doubled(range(25, 50))))
    await assert_receive(("consumed", doubled(range(50, 75))))
    await assert_receive(("producer_consumed", list(range(100, 180))))


async def test_stops_asking_when_consumer_stops_asking() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    pc = await Postponer.start_link(
        ProducerConsumer(me, subscribe_to=[(producer, {"max_demand": 10, "min_demand": 8})])
    )
    await Sleeper.start_link(Consumer(me, subscribe_to=[(pc, {"max_demand": 10, "min_demand": 5})]))
    await assert_receive(("postponed", [0, 1]))
    await assert_receive(("sleep", [0, 1]))
    for i in (2, 4, 6, 8):
        await assert_receive(("postponed", [i, i + 1]))
    await refute_receive(("sleep", [2, 3]), timeout=0.05)
    await refute_receive(("postponed", [10, 11]), timeout=0.05)


async def test_keeps_emitting_events_even_when_discarded() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    pc = await Discarder.start_link(
        ProducerConsumer(me, subscribe_to=[(producer, {"max_demand": 100, "min_demand": 80})])
    )
    await Forwarder.start_link(Consumer(me, subscribe_to=[(pc, {"max_demand": 100, "min_demand": 50})]))
    await assert_receive(("discarded", list(range(0, 20))))
    await assert_receive(("discarded", list(range(100, 120))))
    await assert_receive(("discarded", list(range(1000, 1020))))


async def test_pc_with_shared_broadcast_demand() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(
        ProducerConsumer(
            me, dispatcher=BroadcastDispatcher, subscribe_to=[(producer, {"max_demand": 10})]
        )
    )
    c1 = await Forwarder.start_link(Consumer(me))
    c2 = await Forwarder.start_link(Consumer(me))
    GenStage.async_subscribe(c1, to=doubler, max_demand=10, min_demand=0)
    GenStage.async_subscribe(c2, to=doubler, max_demand=20, min_demand=0)
    batch = doubled(range(200, 205))
    await assert_receive(("consumed", batch), timeout=5)
    await assert_receive(("consumed", batch), timeout=5)


async def test_pc_with_shared_broadcast_demand_and_synchronizer_subscriber() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(
        ProducerConsumer(me, dispatcher=BroadcastDispatcher, subscribe_to=[producer])
    )
    c1 = await Forwarder.start_link(Consumer(me))
    c2 = await Forwarder.start_link(Consumer(me))
    ref = beamlet.make_ref()
    beamlet.send(doubler, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    await GenStage.sync_subscribe(c1, to=doubler, max_demand=10, min_demand=0)
    await GenStage.sync_subscribe(c2, to=doubler, max_demand=20, min_demand=0)
    await refute_receive(("consumed", ANY))
    beamlet.send(doubler, (GEN_PRODUCER, (me, ref), (CANCEL, KILLED)))
    batch = doubled(range(200, 205))
    await assert_receive(("consumed", batch), timeout=5)
    await assert_receive(("consumed", batch), timeout=5)


async def test_queued_events_with_lost_producer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(ProducerConsumer(me))
    ref = await GenStage.sync_subscribe(
        doubler, to=producer, cancel="temporary", min_demand=50, max_demand=100
    )
    await assert_receive(("producer_consumer_subscribed", "producer", (producer, ref)))
    GenStage.cancel((producer, ref), Atom("done"))
    await refute_receive(("producer_consumer_cancelled", ANY, ANY), timeout=0.05)
    consumer = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(consumer, to=doubler, min_demand=50, max_demand=100)
    first = await assert_receive(("producer_consumed", ANY))
    if first[1] != list(range(100)):  # the events may come as one batch or two
        assert first[1] == list(range(50))
        await assert_receive(("producer_consumed", list(range(50, 100))))
    await assert_receive(("consumed", doubled(range(0, 25))))
    await assert_receive(("consumed", doubled(range(25, 50))))
    await assert_receive(("producer_consumer_cancelled", (producer, ref), ("cancel", Atom("done"))))
    await refute_receive(("producer_consumed", ANY), timeout=0.05)
