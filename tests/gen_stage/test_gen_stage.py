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


# --- demand (G6) -----------------------------------------------------------------------


async def test_demand_can_be_set_to_accumulate_on_init() -> None:
    producer = await Counter.start_link(Producer(0, demand="accumulate"))
    assert await GenStage.demand(producer) == "accumulate"
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await refute_receive(("consumed", [0, 1, 2, 3]), timeout=0.05)
    await GenStage.demand(producer, "forward")
    assert await GenStage.demand(producer) == "forward"
    await assert_receive(("consumed", [0, 1, 2, 3]))


async def test_demand_can_be_set_to_accumulate_via_api_using_broadcast() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, dispatcher=BroadcastDispatcher))
    assert await GenStage.demand(producer) == "forward"
    c1 = await Forwarder.start_link(Consumer(me, subscribe_to=[producer]))
    c2 = await Forwarder.start_link(Consumer(me, subscribe_to=[producer]))
    await GenStage.demand(producer, "accumulate")
    assert await GenStage.demand(producer) == "accumulate"
    await GenStage.stop(c1)
    await GenStage.stop(c2)
    for i in (1, 2, 3, 4):
        GenStage.cast(producer, ("queue", [i]))
    await GenStage.sync_info(producer, "flushed")  # the casts were handled
    await assert_receive("flushed")
    await Forwarder.start_link(Consumer(me, subscribe_to=[producer]))
    await Forwarder.start_link(Consumer(me, subscribe_to=[producer]))
    await refute_receive(("consumed", ANY), timeout=0.05)
    await GenStage.demand(producer, "forward")
    assert await GenStage.demand(producer) == "forward"
    assert await GenStage.estimate_buffered_count(producer) == 0
    for i in (1, 2, 3, 4):
        await assert_receive(("consumed", [i]))


async def test_demand_can_be_set_to_accumulate_via_api() -> None:
    producer = await Counter.start_link(Producer(0))
    assert await GenStage.demand(producer) == "forward"
    await GenStage.demand(producer, "accumulate")
    assert await GenStage.demand(producer) == "accumulate"
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await refute_receive(("consumed", [0, 1, 2, 3]), timeout=0.05)
    await GenStage.demand(producer, "forward")
    await assert_receive(("consumed", [0, 1, 2, 3]))


async def test_demand_can_be_set_to_forward_via_api_before_subscriptions() -> None:
    producer = await Counter.start_link(Producer(0, demand="accumulate"))
    await GenStage.demand(producer, "forward")
    assert await GenStage.demand(producer) == "forward"
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [0, 1, 2, 3]))


async def test_demand_is_not_reset_when_set_to_accumulate_and_is_already_accumulating() -> None:
    producer = await Counter.start_link(Producer(0, demand="accumulate"))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await refute_receive(("consumed", [0, 1, 2, 3]), timeout=0.05)
    await GenStage.demand(producer, "accumulate")
    await GenStage.demand(producer, "forward")
    await assert_receive(("consumed", [0, 1, 2, 3]))


async def test_demand_does_not_combine_demands_when_accumulating() -> None:
    producer = await DemandProducer.start_link(Producer([], demand="accumulate"))
    c1 = await Forwarder.start_link(Consumer(beamlet.self()))
    c2 = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(c1, to=producer, max_demand=2)
    await GenStage.sync_subscribe(c2, to=producer, max_demand=2)
    await refute_receive(("consumed", [4]), timeout=0.05)
    await GenStage.demand(producer, "forward")
    await assert_receive(("consumed", [2]))
    await assert_receive(("consumed", [2]))
    await assert_receive(("consumed", [1]))


# --- buffer (G5) -----------------------------------------------------------------------

A, B, C, D, E, F, G, H = (Atom(x) for x in "abcdefgh")


async def test_buffer_stores_events_when_there_is_no_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    beamlet.send(producer, ("queue", [A, B, C]))
    GenStage.cast(producer, ("queue", [D, E]))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))
    await assert_receive(("consumed", [0, 1, 2]))
    await assert_receive(("consumed", [3, 4, 5, 6]))


async def test_buffer_emits_warning_and_keeps_first_when_it_exceeds_configured_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = await Counter.start_link(Producer(0, buffer_size=5, buffer_keep="first"))
    assert await GenStage.call(producer, ("queue", [A, B, C, D, E])) == 0
    assert await GenStage.call(producer, ("queue", [F, G, H])) == 0
    assert f"GenStage producer {producer!r} has discarded 3 events from buffer" in caplog.text
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))


async def test_buffer_emits_warning_and_keeps_last_when_it_exceeds_configured_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = await Counter.start_link(Producer(0, buffer_size=5))
    assert await GenStage.call(producer, ("queue", [A, B, C, D, E])) == 0
    assert await GenStage.call(producer, ("queue", [F, G, H])) == 0
    assert f"GenStage producer {producer!r} has discarded 3 events from buffer" in caplog.text
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [D, E, F, G]))
    await assert_receive(("consumed", [H]))


async def test_buffer_may_have_limit_set_to_infinity() -> None:
    producer = await Counter.start_link(Producer(0, buffer_size=math.inf))
    await GenStage.call(producer, ("queue", [A, B, C, D, E]))
    await GenStage.call(producer, ("queue", [F, G, H]))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E, F, G, H]))


async def test_buffer_size_0_keeps_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """G1.3: upstream crashes on buffer_size 0; beamlet keeps no events (and warns)."""
    producer = await Counter.start_link(Producer(0, buffer_size=0))
    await GenStage.call(producer, ("queue", [A, B]))
    assert "has discarded 2 events" in caplog.text
    assert await GenStage.estimate_buffered_count(producer) == 0


async def test_buffer_calls_optional_format_discarded_callback_with_discarded_count_when_it_exceeds_configured_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = beamlet.self()
    producer = await DiscardedBufferLogger.start_link(
        Producer({"pid": me, "log_discarded": False}, buffer_size=5, buffer_keep="first")
    )
    await GenStage.call(producer, ("queue", [A, B, C, D, E, F, G, H]))
    await assert_receive(("discarded", 3))
    assert "has discarded" not in caplog.text
    consumer = await Forwarder.start_link(Consumer(me))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))


async def test_buffer_format_discarded_can_allow_printing_the_default_log_when_items_are_discarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = beamlet.self()
    producer = await DiscardedBufferLogger.start_link(
        Producer({"pid": me, "log_discarded": True}, buffer_size=5, buffer_keep="first")
    )
    await GenStage.call(producer, ("queue", [A, B, C, D, E, F, G, H]))
    assert f"GenStage producer {producer!r} has discarded 3 events from buffer" in caplog.text
    consumer = await Forwarder.start_link(Consumer(me))
    GenStage.async_subscribe(consumer, to=producer, max_demand=5, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D, E]))


async def test_buffer_returns_the_correct_buffer_count_when_polled() -> None:
    producer = await Counter.start_link(Producer(0, buffer_size=math.inf))
    await GenStage.call(producer, ("queue", [A, B, C, D, E]))
    assert await GenStage.estimate_buffered_count(producer) == 5
    await GenStage.call(producer, ("queue", [F, G, H]))
    assert await GenStage.estimate_buffered_count(producer) == 8
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=4, min_demand=0)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E, F, G, H]))
    assert await GenStage.estimate_buffered_count(producer) == 0


# --- info (G5.3) -----------------------------------------------------------------------


async def test_info_delivers_info_to_consumer() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_info(consumer, "sync")
    await assert_receive("sync")
    GenStage.async_info(consumer, "async")
    await assert_receive("async")


async def test_info_delivers_info_to_producer_consumer_immediately_when_there_is_no_incoming_buffer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(ProducerConsumer(me, subscribe_to=[producer]))
    await Forwarder.start_link(Consumer(me, subscribe_to=[doubler]))
    await GenStage.sync_info(doubler, "sync")
    await assert_receive("sync")
    GenStage.async_info(doubler, "async")
    await assert_receive("async")


async def test_info_delivers_info_to_producer_consumer_immediately_when_there_is_incoming_buffer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me))
    doubler = await Doubler.start_link(ProducerConsumer(me, subscribe_to=[producer]))
    await assert_receive(("producer_subscribed", ANY))
    await GenStage.call(producer, ("queue", list(range(10))))
    await GenStage.sync_info(doubler, "sync")
    await refute_receive("sync", timeout=0.05)
    GenStage.async_info(doubler, "async")
    await refute_receive("async", timeout=0.05)
    await Forwarder.start_link(Consumer(me, subscribe_to=[doubler]))
    await assert_receive("sync")
    await assert_receive("async")


async def test_info_delivers_info_to_producer_immediately_when_there_is_no_buffer() -> None:
    producer = await Counter.start_link(Producer(beamlet.self()))
    await GenStage.sync_info(producer, "sync")
    await assert_receive("sync")
    GenStage.async_info(producer, "async")
    await assert_receive("async")


@pytest.mark.parametrize(
    ("size", "events"),
    [
        (math.inf, [A, B, C]),  # "... eventually with infinity buffer size"
        (3, [A]),  # "... with one-item filled buffer"
        (3, [A, B]),  # "... with mid filled buffer"
        (3, [A, B, C]),  # "... with filled buffer"
    ],
)
async def test_info_delivers_info_to_producer_eventually(size: float, events: list[Atom]) -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, buffer_size=size))
    consumer = await Forwarder.start_link(Consumer(me))
    await GenStage.call(producer, ("queue", events))
    await GenStage.sync_info(producer, "sync")
    await refute_receive("sync", timeout=0.05)
    await GenStage.sync_subscribe(consumer, to=producer)
    await assert_receive(("consumed", events))
    await assert_receive("sync")


async def test_info_delivers_info_to_producer_eventually_with_moving_buffer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, buffer_size=3))
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    await GenStage.call(producer, ("queue", [A, B, C]))
    await GenStage.sync_info(producer, "sync1")
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (ASK, 2)))
    await assert_receive((GEN_CONSUMER, (producer, ref), (A, B)))
    await refute_receive("sync1", timeout=0.05)
    await GenStage.call(producer, ("queue", [D, E]))
    await GenStage.sync_info(producer, "sync2")
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (ASK, 1)))
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (ASK, 2)))
    await assert_receive((GEN_CONSUMER, (producer, ref), (C,)))
    await assert_receive("sync1")
    await assert_receive((GEN_CONSUMER, (producer, ref), (D, E)))
    await assert_receive("sync2")


async def test_info_delivers_info_to_producer_eventually_when_dropping_buffer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, buffer_keep="last", buffer_size=3))
    await GenStage.call(producer, ("queue", [A, B]))
    await GenStage.sync_info(producer, "sync")
    await refute_receive("sync", timeout=0.05)
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    await GenStage.call(producer, ("queue", [C, D, E]))
    await assert_receive("sync")


async def test_info_delivers_multiple_info_to_producer_in_fifo_order() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, buffer_size=10))
    consumer = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(consumer, to=producer, consumer_demand="manual")
    await assert_receive(("producer_subscribed", ANY))
    _, sub = await assert_receive(("consumer_subscribed", ANY))
    await GenStage.call(producer, ("queue", [A, B, C]))
    for m in ("d", "e", "f"):
        await GenStage.sync_info(producer, m)
    await GenStage.call(producer, ("queue", [G, H]))
    await GenStage.sync_info(producer, "i")
    await refute_receive("d", timeout=0.05)
    await GenStage.call(consumer, ("ask", sub, 5))
    await assert_receive(("consumed", [A, B, C]))
    await assert_receive(("consumed", [G, H]))
    got = [await assert_receive(str) for _ in range(4)]
    assert got == ["d", "e", "f", "i"]


# --- sync_subscribe/2 (G9, G10.3) ------------------------------------------------------


async def test_sync_subscribe_returns_ok_with_reference() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    assert type(await GenStage.sync_subscribe(consumer, to=producer)) is Ref


async def test_sync_subscribe_caller_exits_when_the_consumer_is_dead() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.stop(consumer)
    with pytest.raises(CallExit) as e:
        await GenStage.sync_subscribe(consumer, to=producer)
    assert e.value.cause == NOPROC


async def test_sync_subscribe_returns_errors_on_bad_options() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    with pytest.raises(BadOpts) as e:
        await GenStage.sync_subscribe(consumer, to="whatever", max_demand=0)
    assert e.value.message == "expected :max_demand to be equal to or greater than 1, got: 0"
    with pytest.raises(BadOpts) as e:
        await GenStage.sync_subscribe(consumer, to="whatever", min_demand=2000)
    assert e.value.message == "expected :min_demand to be equal to or less than 999, got: 2000"
    with pytest.raises(BadOpts):  # min_demand >= max_demand
        await GenStage.sync_subscribe(consumer, to="whatever", min_demand=5, max_demand=5)
    with pytest.raises(BadOpts):
        await GenStage.sync_subscribe(consumer, to="whatever", min_demand=-1)
    with pytest.raises(BadOpts):
        await GenStage.sync_subscribe(consumer, to="whatever", cancel="sometimes")
    assert beamlet.is_alive(consumer)


async def test_sync_subscribe_consumer_exits_when_there_is_no_named_producer_and_subscription_is_permanent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    beamlet.process_flag(trap_exit=True)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    assert type(await GenStage.sync_subscribe(consumer, to="unknown")) is Ref
    await assert_receive(Exit(consumer, NOPROC))
    assert "was not able to subscribe to the process 'unknown' because that process is not alive" in caplog.text


async def test_sync_subscribe_consumer_exits_when_producer_is_dead_and_subscription_is_permanent() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await Counter.start_link(Producer(0))
    await GenStage.stop(producer)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer)
    await assert_receive(Exit(consumer, NOPROC))


async def test_sync_subscribe_consumer_does_not_exit_when_there_is_no_named_producer_and_subscription_is_temporary() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to="unknown", cancel="temporary")
    assert beamlet.is_alive(consumer)


async def test_sync_subscribe_consumer_does_not_exit_when_producer_is_dead_and_subscription_is_temporary() -> None:
    producer = await Counter.start_link(Producer(0))
    await GenStage.stop(producer)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer, cancel="temporary")
    await refute_receive(Exit, timeout=0.05)
    assert beamlet.is_alive(consumer)


async def test_sync_subscribe_handles_subscription_error_gracefully() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0, dispatcher=BroadcastDispatcher))
    consumer = await Forwarder.start_link(Consumer(me))
    consumer2 = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(consumer, to=producer)
    await GenStage.sync_subscribe(consumer, to=producer)  # refused: already_subscribed
    await assert_receive(("consumer_cancelled", ANY, ("cancel", Atom("already_subscribed"))))
    info = await GenStage.info(producer)
    assert list(info["consumers"].values()) == [consumer]
    assert [p["pid"] for p in (await GenStage.info(consumer))["producers"].values()] == [producer]
    GenStage.async_subscribe(consumer2, to=producer)
    GenStage.async_subscribe(consumer2, to=producer)
    await assert_receive(("consumer_cancelled", ANY, ("cancel", Atom("already_subscribed"))))
    info = await GenStage.info(producer)
    assert sorted(info["consumers"].values()) == sorted([consumer, consumer2])
    assert beamlet.is_alive(consumer) and beamlet.is_alive(consumer2)


# --- sync_resubscribe / async_resubscribe (G9.2) ---------------------------------------


async def test_sync_resubscribe_returns_ok_with_reference() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    old = await GenStage.sync_subscribe(consumer, to=producer, cancel="temporary")
    new = await GenStage.sync_resubscribe(consumer, old, Atom("resubscribe"), to=producer)
    await assert_receive(("consumer_subscribed", (producer, old)))
    await assert_receive(("consumer_subscribed", (producer, new)))
    await assert_receive(("consumer_cancelled", (producer, old), ("cancel", Atom("resubscribe"))))


async def test_sync_resubscribe_returns_ok_with_reference_even_if_previous_subscription_does_not_exist() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = await GenStage.sync_resubscribe(consumer, beamlet.make_ref(), Atom("resubscribe"), to=producer)
    await assert_receive(("consumer_subscribed", (producer, ref)))


async def test_sync_resubscribe_returns_errors_on_bad_options() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    with pytest.raises(BadOpts):
        await GenStage.sync_resubscribe(consumer, beamlet.make_ref(), Atom("r"), to="x", max_demand=0)


async def test_async_resubscribe_returns_ok_with_reference() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    old = await GenStage.sync_subscribe(consumer, to=producer, cancel="temporary")
    GenStage.async_resubscribe(consumer, old, Atom("resubscribe"), to=producer)
    await assert_receive(("consumer_subscribed", (producer, old)))
    _, (_, new) = await assert_receive(("consumer_subscribed", ANY))
    assert new != old


# --- manual demand (G4.4) --------------------------------------------------------------


async def test_manual_demand_can_be_set_on_subscribe() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, consumer_demand="manual")
    _, sub = await assert_receive(("consumer_subscribed", ANY))
    await GenStage.call(consumer, ("ask", sub, 50))
    await assert_receive(("consumed", list(range(50))))
    await GenStage.call(consumer, ("ask", sub, 50))
    await assert_receive(("consumed", list(range(50, 100))))


async def test_manual_demand_can_be_set_on_subscribe_on_init() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(
        Consumer(beamlet.self(), subscribe_to=[(producer, {"consumer_demand": "manual"})])
    )
    _, sub = await assert_receive(("consumer_subscribed", ANY))
    await GenStage.call(consumer, ("ask", sub, 50))
    await assert_receive(("consumed", list(range(50))))
