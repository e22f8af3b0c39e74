"""GenStage: ports of elixir-lang/gen_stage test/gen_stage_test.exs, named after the
upstream tests (docs/gen_stage.md G16), grouped by its `describe` blocks."""

from __future__ import annotations

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


async def forward_from(producer: Any, max_demand: int = 4) -> Pid:
    """A Forwarder subscribed (async) to `producer` with `max_demand` and min 0."""
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer, max_demand=max_demand, min_demand=0)
    return consumer


async def subscribe_temporary(producer: Any) -> tuple[Pid, Ref]:
    """A Forwarder with a temporary subscription to `producer`: (consumer, tag)."""
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    return consumer, await GenStage.sync_subscribe(consumer, to=producer, cancel="temporary")


def kill(pid: Pid) -> None:
    beamlet.unlink(pid)
    beamlet.exit(pid, beamlet.KILL)


async def assert_info_delivered_at_once(stage: Any) -> None:
    await GenStage.sync_info(stage, "sync")
    await assert_receive("sync")
    GenStage.async_info(stage, "async")
    await assert_receive("async")


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


async def shared_broadcast_demand(producer: Pid, batch: list[int], synchronizer: bool) -> None:
    """Two consumers (max_demand 10 and 20) of a broadcasting stage both get `batch`;
    with a `synchronizer`, a raw subscriber that never asks holds everything back until
    it cancels."""
    me = beamlet.self()
    c1 = await Forwarder.start_link(Consumer(me))
    c2 = await Forwarder.start_link(Consumer(me))
    ref = beamlet.make_ref()
    if synchronizer:
        beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    for consumer, max_demand in ((c1, 10), (c2, 20)):
        if synchronizer:  # upstream subscribes synchronously here, asynchronously otherwise
            await GenStage.sync_subscribe(
                consumer, to=producer, max_demand=max_demand, min_demand=0
            )
        else:
            GenStage.async_subscribe(consumer, to=producer, max_demand=max_demand, min_demand=0)
    if synchronizer:
        await refute_receive(("consumed", ANY))
        beamlet.send(producer, (GEN_PRODUCER, (me, ref), (CANCEL, KILLED)))
    await assert_receive(("consumed", batch), timeout=5)
    await assert_receive(("consumed", batch), timeout=5)


async def test_with_shared_broadcast_demand() -> None:
    producer = await Counter.start_link(Producer(0, dispatcher=BroadcastDispatcher))
    await shared_broadcast_demand(producer, list(range(1000, 1010)), synchronizer=False)


async def test_with_shared_broadcast_demand_and_synchronizer_subscriber() -> None:
    producer = await Counter.start_link(Producer(0, dispatcher=BroadcastDispatcher))
    await shared_broadcast_demand(producer, list(range(1000, 1010)), synchronizer=True)


async def test_with_shared_broadcast_demand_does_not_duplicate_upstream_demand() -> None:
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


async def producer_pc_consumer(pc: type[GenStage[Any]], pc_min: int, late: bool) -> None:
    """Counter -> `pc` (max 100, min `pc_min`) -> Forwarder (max 100, min 50), subscribed
    in `init` or, if `late`, afterwards from the consumer end."""
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    upstream = {"max_demand": 100, "min_demand": pc_min}
    downstream = {"max_demand": 100, "min_demand": 50}
    if late:
        stage = await pc.start_link(ProducerConsumer(me))
        consumer = await Forwarder.start_link(Consumer(me))
        await GenStage.sync_subscribe(consumer, to=stage, **downstream)
        await GenStage.sync_subscribe(stage, to=producer, **upstream)
    else:
        stage = await pc.start_link(ProducerConsumer(me, subscribe_to=[(producer, upstream)]))
        await Forwarder.start_link(Consumer(me, subscribe_to=[(stage, downstream)]))


async def assert_doubled_with_80_percent_min_demand() -> None:
    await assert_receive(("producer_consumed", list(range(0, 20))))
    await assert_receive(("consumed", doubled(range(0, 20))))
    await assert_receive(("consumed", doubled(range(20, 40))))
    await assert_receive(("producer_consumed", list(range(100, 120))))
    await assert_receive(("consumed", doubled(range(120, 125))))
    await assert_receive(("consumed", doubled(range(125, 140))))


async def assert_doubled_with_20_percent_min_demand() -> None:
    await assert_receive(("producer_consumed", list(range(0, 80))))
    await assert_receive(("consumed", doubled(range(0, 25))))
    await assert_receive(("consumed", doubled(range(25, 50))))
    await assert_receive(("consumed", doubled(range(50, 75))))
    await assert_receive(("producer_consumed", list(range(100, 180))))


async def test_with_80_percent_min_demand_with_init_subscription() -> None:
    await producer_pc_consumer(Doubler, 80, late=False)
    await assert_doubled_with_80_percent_min_demand()


async def test_with_20_percent_min_demand_with_init_subscription() -> None:
    await producer_pc_consumer(Doubler, 20, late=False)
    await assert_doubled_with_20_percent_min_demand()


async def test_with_80_percent_min_demand_with_late_subscription() -> None:
    await producer_pc_consumer(Doubler, 80, late=True)
    await assert_doubled_with_80_percent_min_demand()


async def test_with_20_percent_min_demand_with_later_subscription() -> None:
    await producer_pc_consumer(Doubler, 20, late=True)
    await assert_doubled_with_20_percent_min_demand()


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
    await producer_pc_consumer(Discarder, 80, late=False)
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
    await shared_broadcast_demand(doubler, doubled(range(200, 205)), synchronizer=False)


async def test_pc_with_shared_broadcast_demand_and_synchronizer_subscriber() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(
        ProducerConsumer(me, dispatcher=BroadcastDispatcher, subscribe_to=[producer])
    )
    await shared_broadcast_demand(doubler, doubled(range(200, 205)), synchronizer=True)


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


async def test_demand_is_not_reset_when_set_to_accumulate_and_already_accumulating() -> None:
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
    await forward_from(producer)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))
    await assert_receive(("consumed", [0, 1, 2]))
    await assert_receive(("consumed", [3, 4, 5, 6]))


async def queue_eight_then_forward(caplog: pytest.LogCaptureFixture, **options: Any) -> str:
    """A Counter with `options` gets A..E and then F..H queued, then a forwarder; what it
    logged about discarding, if anything."""
    producer = await Counter.start_link(Producer(0, **options))
    assert await GenStage.call(producer, ("queue", [A, B, C, D, E])) == 0
    assert await GenStage.call(producer, ("queue", [F, G, H])) == 0
    discarded = f"GenStage producer {producer!r} has discarded 3 events from buffer"
    await forward_from(producer)
    return discarded if discarded in caplog.text else ""


async def test_buffer_emits_warning_and_keeps_first_when_it_exceeds_configured_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await queue_eight_then_forward(caplog, buffer_size=5, buffer_keep="first")
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))


async def test_buffer_emits_warning_and_keeps_last_when_it_exceeds_configured_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await queue_eight_then_forward(caplog, buffer_size=5)
    await assert_receive(("consumed", [D, E, F, G]))
    await assert_receive(("consumed", [H]))


async def test_buffer_may_have_limit_set_to_infinity(caplog: pytest.LogCaptureFixture) -> None:
    assert not await queue_eight_then_forward(caplog, buffer_size=math.inf)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E, F, G, H]))


async def test_buffer_size_0_keeps_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """G1.3: upstream crashes on buffer_size 0; beamlet keeps no events (and warns)."""
    producer = await Counter.start_link(Producer(0, buffer_size=0))
    await GenStage.call(producer, ("queue", [A, B]))
    assert "has discarded 2 events" in caplog.text
    assert await GenStage.estimate_buffered_count(producer) == 0


async def discard_three(log_discarded: bool) -> Pid:
    """A DiscardedBufferLogger (buffer 5, keep first) after 8 events were queued."""
    state = {"pid": beamlet.self(), "log_discarded": log_discarded}
    producer = await DiscardedBufferLogger.start_link(
        Producer(state, buffer_size=5, buffer_keep="first")
    )
    await GenStage.call(producer, ("queue", [A, B, C, D, E, F, G, H]))
    await assert_receive(("discarded", 3))
    return producer


async def test_buffer_calls_optional_format_discarded_callback_with_discarded_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = await discard_three(log_discarded=False)
    assert "has discarded" not in caplog.text
    await forward_from(producer)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E]))


async def test_buffer_format_discarded_can_allow_printing_the_default_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = await discard_three(log_discarded=True)
    assert f"GenStage producer {producer!r} has discarded 3 events from buffer" in caplog.text
    await forward_from(producer, max_demand=5)
    await assert_receive(("consumed", [A, B, C, D, E]))


async def test_buffer_returns_the_correct_buffer_count_when_polled() -> None:
    producer = await Counter.start_link(Producer(0, buffer_size=math.inf))
    await GenStage.call(producer, ("queue", [A, B, C, D, E]))
    assert await GenStage.estimate_buffered_count(producer) == 5
    await GenStage.call(producer, ("queue", [F, G, H]))
    assert await GenStage.estimate_buffered_count(producer) == 8
    await forward_from(producer)
    await assert_receive(("consumed", [A, B, C, D]))
    await assert_receive(("consumed", [E, F, G, H]))
    assert await GenStage.estimate_buffered_count(producer) == 0


# --- info (G5.3) -----------------------------------------------------------------------


async def test_info_delivers_info_to_consumer() -> None:
    await assert_info_delivered_at_once(await Forwarder.start_link(Consumer(beamlet.self())))


async def test_info_delivers_info_to_producer_consumer_immediately_without_incoming_buffer() -> (
    None
):
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    doubler = await Doubler.start_link(ProducerConsumer(me, subscribe_to=[producer]))
    await Forwarder.start_link(Consumer(me, subscribe_to=[doubler]))
    await assert_info_delivered_at_once(doubler)


async def test_info_delivers_info_to_producer_consumer_when_there_is_incoming_buffer() -> None:
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
    await assert_info_delivered_at_once(await Counter.start_link(Producer(beamlet.self())))


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


async def test_sync_subscribe_consumer_exits_when_no_named_producer_and_permanent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    beamlet.process_flag(trap_exit=True)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    assert type(await GenStage.sync_subscribe(consumer, to="unknown")) is Ref
    await assert_receive(Exit(consumer, NOPROC))
    assert (
        "was not able to subscribe to the process 'unknown' because that process is not alive"
        in caplog.text
    )


async def test_sync_subscribe_consumer_exits_when_producer_is_dead_and_permanent() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await Counter.start_link(Producer(0))
    await GenStage.stop(producer)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=producer)
    await assert_receive(Exit(consumer, NOPROC))


async def test_sync_subscribe_consumer_does_not_exit_when_no_named_producer_and_temporary() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to="unknown", cancel="temporary")
    assert beamlet.is_alive(consumer)


async def test_sync_subscribe_consumer_does_not_exit_when_producer_is_dead_and_temporary() -> None:
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


async def test_sync_resubscribe_returns_ok_even_if_previous_subscription_does_not_exist() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = await GenStage.sync_resubscribe(
        consumer, beamlet.make_ref(), Atom("resubscribe"), to=producer
    )
    await assert_receive(("consumer_subscribed", (producer, ref)))


async def test_sync_resubscribe_returns_errors_on_bad_options() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    with pytest.raises(BadOpts):
        await GenStage.sync_resubscribe(
            consumer, beamlet.make_ref(), Atom("r"), to="x", max_demand=0
        )


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


# --- producer / consumer / producer_consumer callbacks (G1, G8, G10) -------------------

from beamlet.behaviours import gen_server as gs  # noqa: E402
from beamlet.gen_stage import Ignore, Stop  # noqa: E402


@pytest.mark.parametrize("stage", [Counter, Forwarder, Doubler])
async def test_init_1(stage: type[GenStage[Any]]) -> None:
    """Upstream "init/1" of the producer, consumer and producer_consumer groups."""
    role = {Counter: Producer, Forwarder: Consumer, Doubler: ProducerConsumer}[stage]
    assert await stage.start(Ignore()) is None
    with pytest.raises(StartError) as e:
        await stage.start(Stop(Atom("oops")))
    assert e.value.reason == Atom("oops")
    with pytest.raises(StartError) as e:
        await stage.start(Atom("unknown"))
    assert e.value.reason == (BAD_RETURN_VALUE, Atom("unknown"))
    with pytest.raises(StartError) as e:
        await stage.start(role(0, unknown=Atom("value")))
    assert e.value.reason == (BAD_OPTS, "unknown options [unknown: Atom('value')]")
    if role is not Consumer:
        with pytest.raises(StartError) as e:
            await stage.start(role(0, buffer_size=-1))
        assert e.value.reason == (
            BAD_OPTS,
            "expected :buffer_size to be equal to or greater than 0, got: -1",
        )
        with pytest.raises(StartError) as e:
            await stage.start(role(0, dispatcher=0))
        assert e.value.reason[0] == BAD_OPTS and "expected :dispatcher" in e.value.reason[1]
    else:  # G1.2: a producer option on a consumer is an unknown option
        with pytest.raises(StartError) as e:
            await stage.start(role(0, buffer_size=1))
        assert e.value.reason == (BAD_OPTS, "unknown options [buffer_size: 1]")
    if role is Producer:
        with pytest.raises(StartError) as e:
            await stage.start(role(0, subscribe_to=[]))
        assert e.value.reason == (BAD_OPTS, "unknown options [subscribe_to: []]")
    else:
        with pytest.raises(StartError) as e:
            await stage.start(role(0, demand="accumulate"))
        assert e.value.reason[0] == BAD_OPTS
    pid = await stage.start_link(role(beamlet.self()), name="init_test")
    with pytest.raises(StartError) as e:
        await stage.start_link(role(beamlet.self()), name="init_test")
    assert e.value.reason == (Atom("already_started"), pid)


async def test_producer_handle_subscribe_4() -> None:
    producer = await Counter.start_link(Producer(beamlet.self()))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = await GenStage.sync_subscribe(consumer, to=producer)
    await assert_receive(("producer_subscribed", (consumer, ref)))


async def subscribe_asking_for_manual(stage: Pid, option: str) -> tuple[Pid, Ref, Any]:
    """Subscribe a Forwarder to `stage` with `option="manual"`, which makes the stage's
    handle_subscribe return Manual (G1.4: consumers only): (consumer, tag, the stage's
    exit reason)."""
    beamlet.process_flag(trap_exit=True)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = await GenStage.sync_subscribe(consumer, to=stage, **{option: "manual"})
    return consumer, ref, (await assert_receive(Exit(stage, ANY))).reason


async def test_producer_handle_subscribe_4_does_not_accept_manual_demand() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me))
    consumer, ref, reason = await subscribe_asking_for_manual(producer, "producer_demand")
    await assert_receive(("producer_subscribed", (consumer, ref)))
    assert reason[0] == BAD_RETURN_VALUE and reason[1].state == me


async def test_producer_handle_cancel_3() -> None:
    producer = await Counter.start_link(Producer(beamlet.self()))
    consumer, ref = await subscribe_temporary(producer)
    await assert_receive(("producer_subscribed", (consumer, ref)))
    GenStage.cancel((producer, ref), Atom("oops"))
    await assert_receive(("producer_cancelled", (consumer, ref), ("cancel", Atom("oops"))))


async def test_producer_handle_cancel_3_on_consumer_down() -> None:
    producer = await Counter.start_link(Producer(beamlet.self()))
    consumer, ref = await subscribe_temporary(producer)
    await assert_receive(("producer_subscribed", (consumer, ref)))
    kill(consumer)
    await assert_receive(("producer_cancelled", (consumer, ref), ("down", KILLED)))


async def queue_by_raw_call(request: str) -> tuple[list[Any], Any, Any]:
    """Subscribe to a Counter by hand, ask 3, queue [1, 2, 3] with a raw `$gen_call`
    `request`; (the three messages received, the events message, the reply)."""
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me))
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (ASK, 3)))
    call_ref = ("call", beamlet.make_ref())  # a non-Ref tag: the reply goes to the pid
    beamlet.send(producer, (Atom("$gen_call"), (me, call_ref), (request, [1, 2, 3])))
    await GenStage.stop(producer)
    got = [await assert_receive(ANY) for _ in range(3)]
    assert got[0] == ("producer_subscribed", (me, ref))
    return got[1:], (GEN_CONSUMER, (producer, ref), (1, 2, 3)), (call_ref, me)


async def test_handle_call_3_sends_events_before_reply() -> None:
    got, events, reply = await queue_by_raw_call("queue")
    assert got == [events, reply]


async def test_handle_call_3_allows_replies_before_sending_events() -> None:
    got, events, reply = await queue_by_raw_call("early_reply_queue")
    assert got == [reply, events]


async def test_handle_call_3_may_shut_stage_down() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await Counter.start_link(Producer(beamlet.self()))
    assert await GenStage.call(producer, "stop") == "ok"
    await assert_receive(Exit(producer, SHUTDOWN))


@pytest.mark.parametrize("role", ["producer", "consumer"])
async def test_handle_info_2_is_called_for_unmatched_down_messages(role: str) -> None:
    me = beamlet.self()
    stage = await (
        Counter.start_link(Producer(me))
        if role == "producer"
        else Forwarder.start_link(Consumer(me))
    )
    ref = beamlet.make_ref()
    beamlet.send(stage, Down(ref, beamlet.Atom("process"), me, Atom("oops")))
    await assert_receive(Down(ref, ANY, me, Atom("oops")))


@pytest.mark.parametrize("role", [Producer, Consumer])
async def test_terminate_2(role: Any) -> None:
    pid = await Forwarder.start_link(role(beamlet.self()))
    await GenStage.stop(pid)
    await assert_receive(("terminated", NORMAL))


async def test_format_status_2() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me))
    pc = await Doubler.start_link(ProducerConsumer(me, subscribe_to=[producer]))
    consumer = await Forwarder.start_link(Consumer(me, subscribe_to=[pc]))
    status = await gs.get_status(pc)
    assert status.state["state"] == me
    assert status.state["role"] == "producer_consumer"
    assert status.state["dispatcher"] == "DemandDispatcher"
    assert [p["pid"] for p in status.state["producers"].values()] == [producer]
    assert list(status.state["consumers"].values()) == [consumer]
    assert status.state["buffered"] == 0
    assert status.module.__qualname__ == "Doubler"


async def test_consumer_handle_subscribe_4() -> None:
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = await GenStage.sync_subscribe(consumer, to=producer)
    await assert_receive(("consumer_subscribed", (producer, ref)))


@pytest.mark.parametrize("stage", [Forwarder, Doubler])
async def test_consumer_handle_subscribe_4_with_invalid_demand(stage: Any) -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await Counter.start_link(Producer(0))
    role = Consumer if stage is Forwarder else ProducerConsumer

    class Bad(stage):  # type: ignore[misc, valid-type]
        def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
            return (Atom("unknown"), state)

    consumer = await Bad.start_link(role(beamlet.self()))
    GenStage.async_subscribe(consumer, to=producer)
    await assert_receive(Exit(consumer, (BAD_RETURN_VALUE, (Atom("unknown"), beamlet.self()))))


async def subscribed_under_test(stage: Any, mode: str) -> tuple[Pid, Pid, Ref, str]:
    """A Counter and a `stage` (a Forwarder, or a Doubler with a Forwarder after it)
    subscribed with cancel `mode`, exits trapped: (producer, stage, tag, the name of the
    stage's cancel message)."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    if stage is Forwarder:
        consumer = await Forwarder.start_link(Consumer(me))
    else:
        consumer = await Doubler.start_link(ProducerConsumer(me))
        await Forwarder.start_link(Consumer(me, subscribe_to=[consumer]))
    ref = await GenStage.sync_subscribe(consumer, to=producer, cancel=mode)
    tag = "consumer_cancelled" if stage is Forwarder else "producer_consumer_cancelled"
    return producer, consumer, ref, tag


async def assert_exits_or_not(pid: Pid, reason: Any, exits: bool) -> None:
    if exits:
        await assert_receive(Exit(pid, reason))
    else:
        await refute_receive(Exit(pid, ANY), timeout=0.05)


@pytest.mark.parametrize(
    ("mode", "reason", "exits"),
    [
        ("temporary", Atom("oops"), False),  # "handle_cancel/3 with temporary subscription"
        ("transient", NORMAL, False),  # "... with normal transient subscription"
        ("transient", "self", True),  # "... with non-normal transient subscription"
        ("permanent", "self", True),  # "... with permanent subscription"
    ],
)
@pytest.mark.parametrize("stage", [Forwarder, Doubler])
async def test_consumer_handle_cancel_3(mode: str, reason: Any, exits: bool, stage: Any) -> None:
    reason = beamlet.self() if reason == "self" else reason
    producer, consumer, ref, cancelled = await subscribed_under_test(stage, mode)
    GenStage.cancel((producer, ref), reason)
    await assert_receive((cancelled, (producer, ref), ("cancel", reason)))
    await assert_exits_or_not(consumer, reason, exits)  # G10.1: the reason, not wrapped


@pytest.mark.parametrize(
    ("mode", "signal", "exits"),
    [
        ("temporary", KILLED, False),
        ("transient", SHUTDOWN, False),  # "on producer normal down with transient"
        ("transient", KILLED, True),
        ("permanent", KILLED, True),
    ],
)
@pytest.mark.parametrize("stage", [Forwarder, Doubler])
async def test_consumer_handle_cancel_3_on_producer_down(
    mode: str, signal: Any, exits: bool, stage: Any
) -> None:
    producer, consumer, ref, cancelled = await subscribed_under_test(stage, mode)
    beamlet.unlink(producer)
    beamlet.exit(producer, beamlet.KILL if signal == KILLED else signal)
    await assert_receive((cancelled, (producer, ref), ("down", signal)))
    await assert_exits_or_not(consumer, signal, exits)


async def test_emit_warning_if_trying_to_dispatch_events_from_a_consumer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = await Counter.start_link(Consumer(0), name="gen_stage_error")
    assert await GenStage.call(consumer, ("queue", [F, G, H])) == 0
    assert "cannot dispatch events (an empty list must be returned)" in caplog.text
    assert beamlet.is_alive(consumer)


async def test_pc_producer_handle_subscribe_4_does_not_accept_manual_demand() -> None:
    pc = await Doubler.start_link(ProducerConsumer(beamlet.self()))
    consumer, ref, reason = await subscribe_asking_for_manual(pc, "producer_consumer_demand")
    await assert_receive(("producer_consumer_subscribed", "consumer", (consumer, ref)))
    assert reason[0] == BAD_RETURN_VALUE


async def test_pc_producer_handle_cancel_3_on_consumer_down() -> None:
    me = beamlet.self()
    pc = await Doubler.start_link(ProducerConsumer(me))
    consumer, ref = await subscribe_temporary(pc)
    await assert_receive(("producer_consumer_subscribed", "consumer", (consumer, ref)))
    kill(consumer)
    await assert_receive(("producer_consumer_cancelled", (consumer, ref), ("down", KILLED)))


# --- $gen_producer / $gen_consumer message errors (G3.3, G3.4) -------------------------


async def test_gen_producer_duplicated_subscriptions() -> None:
    producer = await Counter.start_link(Producer(0))
    ref = beamlet.make_ref()
    me = beamlet.self()
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), (SUBSCRIBE, NIL, [])))
    await assert_receive((GEN_CONSUMER, (producer, ref), (CANCEL, Atom("duplicated_subscription"))))


async def test_gen_producer_unknown_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (beamlet.self(), ref), (ASK, 10)))
    await assert_receive((GEN_CONSUMER, (producer, ref), (CANCEL, Atom("unknown_subscription"))))


async def test_gen_producer_not_a_producer(caplog: pytest.LogCaptureFixture) -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    beamlet.send(
        consumer, (GEN_PRODUCER, (beamlet.self(), beamlet.make_ref()), (SUBSCRIBE, NIL, []))
    )
    await GenStage.sync_info(consumer, "after")
    await assert_receive("after")
    assert "received $gen_producer message" in caplog.text


async def test_subscribing_to_a_consumer_is_refused() -> None:
    """Bad input: a consumer answers M1 with M5 `not_a_producer` (beamlet addition to
    G3.3's log), so a permanent subscriber exits instead of waiting forever."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    target = await Forwarder.start_link(Consumer(me))
    subscriber = await Forwarder.start_link(Consumer(me))
    await GenStage.sync_subscribe(subscriber, to=target)
    await assert_receive(Exit(subscriber, Atom("not_a_producer")))
    assert beamlet.is_alive(target)


async def test_gen_consumer_unknown_events() -> None:
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    ref = beamlet.make_ref()
    beamlet.send(consumer, (GEN_CONSUMER, (beamlet.self(), ref), [1, 2, 3]))
    await assert_receive((GEN_PRODUCER, (consumer, ref), (CANCEL, Atom("unknown_subscription"))))


async def test_gen_consumer_not_a_consumer(caplog: pytest.LogCaptureFixture) -> None:
    producer = await Counter.start_link(Producer(beamlet.self()))
    beamlet.send(
        producer, (GEN_CONSUMER, (beamlet.self(), beamlet.make_ref()), (Atom("events"), []))
    )
    await GenStage.sync_info(producer, "after")
    await assert_receive("after")
    assert "received $gen_consumer message" in caplog.text


async def test_sync_subscribe_to_a_producer_is_not_a_consumer() -> None:
    p1 = await Counter.start_link(Producer(0))
    p2 = await Counter.start_link(Producer(0))
    with pytest.raises(SubscribeError) as e:
        await GenStage.sync_subscribe(p1, to=p2)
    assert e.value.reason == Atom("not_a_consumer")


async def test_subscribing_to_a_non_stage_process_does_not_hang() -> None:
    """Bad input: the non-stage ignores M1; a temporary subscription just stays idle and
    a permanent one ends when the process does (DOWN)."""
    beamlet.process_flag(trap_exit=True)

    async def plain() -> None:
        await beamlet.receive(lambda m: m == "stop")

    other = beamlet.spawn(plain)
    consumer = await Forwarder.start_link(Consumer(beamlet.self()))
    await GenStage.sync_subscribe(consumer, to=other)
    beamlet.send(other, "stop")
    await assert_receive(Exit(consumer, NORMAL))


@pytest.mark.parametrize(
    "body",
    [
        (SUBSCRIBE, Atom("undefined"), []),  # Current must be nil or {Tag, Reason} (G3.7)
        (SUBSCRIBE, NIL, {"max_demand": 1}),  # options must be a keyword list
        (SUBSCRIBE, NIL, [("max_demand", 1)]),  # keys must be atoms
        (ASK, -1),
        (ASK, "ten"),
        (Atom("what"), 1),
        "garbage",
    ],
)
async def test_malformed_gen_producer_messages_do_not_crash_the_producer(body: Any) -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    ref = beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, ref), body))
    beamlet.send(producer, (GEN_PRODUCER, "not a from", body))
    consumer = await Forwarder.start_link(
        Consumer(me, subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})])
    )
    await assert_receive(("consumed", [0, 1]))
    assert beamlet.is_alive(producer) and beamlet.is_alive(consumer)


async def test_malformed_gen_consumer_messages_do_not_crash_the_consumer() -> None:
    me = beamlet.self()
    producer = await Counter.start_link(Producer(0))
    consumer = await Forwarder.start_link(Consumer(me))
    ref = await GenStage.sync_subscribe(consumer, to=producer, max_demand=2, min_demand=0)
    await assert_receive(("consumed", [0, 1]))
    for body in ("garbage", 12, {"a": 1}):
        beamlet.send(consumer, (GEN_CONSUMER, (producer, ref), body))
    beamlet.send(consumer, (GEN_CONSUMER, "not a from", [1]))
    await GenStage.sync_info(consumer, "after")
    await assert_receive("after")
    assert beamlet.is_alive(consumer)


async def test_a_producer_returning_a_non_list_stops_with_bad_return_value() -> None:
    beamlet.process_flag(trap_exit=True)

    class Bad(GenStage[Any]):
        def init(self, arg: Any) -> Any:
            return Producer(0)

        def handle_demand(self, demand: int, state: Any) -> Any:
            return NoReply((1, 2), state)

    producer = await Bad.start_link()
    consumer = await Forwarder.start_link(
        Consumer(beamlet.self(), subscribe_to=[(producer, {"cancel": "temporary"})])
    )
    reason = (await assert_receive(Exit(producer, ANY))).reason
    assert reason[0] == BAD_RETURN_VALUE
    await assert_receive(("consumer_cancelled", ANY, ("down", reason)))
    assert beamlet.is_alive(consumer)


async def test_integer_timeouts_are_bad_return_values() -> None:
    """G1.6: GenServer-style timeouts are not stage results."""
    beamlet.process_flag(trap_exit=True)

    class Bad(GenStage[Any]):
        def init(self, arg: Any) -> Any:
            return Producer(0)

        def handle_cast(self, req: Any, state: Any) -> Any:
            return NoReply([], state, 5000)

    producer = await Bad.start_link()
    GenStage.cast(producer, "x")
    reason = (await assert_receive(Exit(producer, ANY))).reason
    assert reason == (BAD_RETURN_VALUE, NoReply([], 0, 5000))


async def assert_subscribes_in_init(to: Any) -> None:
    sub = (to, {"max_demand": 2, "min_demand": 0})
    await Forwarder.start_link(Consumer(beamlet.self(), subscribe_to=[sub]))
    await assert_receive(("consumed", [0, 1]))


async def test_subscribe_to_names_can_be_an_atom_name() -> None:
    await Counter.start_link(Producer(0), name="counter_name")
    await assert_subscribes_in_init("counter_name")


async def test_subscribe_to_names_can_be_pid() -> None:
    await assert_subscribes_in_init(await Counter.start_link(Producer(0)))


async def test_subscribe_to_an_unregistered_name_fails_the_start() -> None:
    """G10.3: inside subscribe_to, a missing producer makes the start fail with noproc."""
    with pytest.raises(StartError) as e:
        await Forwarder.start(Consumer(beamlet.self(), subscribe_to=["no_such_name"]))
    assert e.value.reason == NOPROC
