"""`stream`, `from_iterable`, `from_async_iterable`: ports of the "stream" and
"from_enumerable/2" groups of gen_stage_test.exs (docs/gen_stage.md G13)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stages import Counter, Forwarder

import beamlet
from beamlet import ANY, NOPROC, NORMAL, Atom, BadArgument, Down, Exit, ProcessExit
from beamlet.gen_stage import (
    Consumer,
    GenStage,
    Producer,
    from_async_iterable,
    from_iterable,
    stream,
)
from beamlet.testing import assert_receive, refute_receive


async def take(n: int, it: AsyncIterator[Any]) -> list[Any]:
    out = []
    async for e in it:
        out.append(e)
        if len(out) == n:
            break
    return out


async def test_stream_may_consume_10_events_out_of_demand_of_1000() -> None:
    producer = await Counter.start_link(Producer(0))
    s = stream([producer])
    assert await take(10, s) == list(range(10))
    await s.aclose()  # cancels and drains: the mailbox is left clean
    await refute_receive(ANY, timeout=0.05)


async def test_stream_may_consume_300_events_out_of_demand_of_100() -> None:
    producer = await Counter.start_link(Producer(0))
    s = stream([(producer, {"max_demand": 100})])
    assert await take(300, s) == list(range(300))
    await s.aclose()
    await refute_receive(ANY, timeout=0.05)


async def test_stream_does_not_remove_unknown_gen_consumer_and_down_messages() -> None:
    producer = await Counter.start_link(Producer(0))
    ref = beamlet.make_ref()
    foreign = (Atom("$gen_consumer"), (beamlet.self(), ref), [1, 2])
    down = Down(ref, Atom("process"), beamlet.self(), NORMAL)
    beamlet.send(beamlet.self(), foreign)
    beamlet.send(beamlet.self(), down)
    s = stream([producer])
    assert await take(10, s) == list(range(10))
    await s.aclose()
    await assert_receive(foreign)
    await assert_receive(down)


@pytest.mark.parametrize("mode", ["permanent", "transient"])
async def test_stream_exits_when_there_is_no_named_producer_and_subscription_is_permanent_transient(
    mode: str,
) -> None:
    with pytest.raises(ProcessExit) as e:
        await take(10, stream([("unknown", {"cancel": mode})]))
    assert e.value.reason[0] == NOPROC


@pytest.mark.parametrize("mode", ["permanent", "transient"])
async def test_stream_exits_when_producer_is_dead_and_subscription_is_permanent_transient(
    mode: str,
) -> None:
    producer = await Counter.start_link(Producer(0))
    await GenStage.stop(producer)
    with pytest.raises(ProcessExit) as e:
        await take(10, stream([(producer, {"cancel": mode})]))
    assert e.value.reason[0] == NOPROC


async def test_stream_exits_when_there_is_no_named_producer_and_subscription_is_temporary() -> None:
    assert await take(10, stream([("unknown", {"cancel": "temporary"})])) == []


async def test_stream_exits_when_producer_is_dead_and_subscription_is_temporary() -> None:
    producer = await Counter.start_link(Producer(0))
    await GenStage.stop(producer)
    assert await take(10, stream([(producer, {"cancel": "temporary"})])) == []


async def test_stream_raises_on_bad_options() -> None:
    with pytest.raises(BadArgument, match="max_demand"):
        stream([(beamlet.self(), {"max_demand": 0})]).__aiter__()
        await take(1, stream([(beamlet.self(), {"max_demand": 0})]))
    with pytest.raises(BadArgument):
        await take(1, stream(beamlet.self()))  # type: ignore[arg-type]


async def test_stream_sends_termination_message_on_done() -> None:
    producer = await from_iterable(itertools.count())
    assert await take(10, stream([(producer, {"cancel": "transient"})])) == list(range(10))
    assert beamlet.is_alive(producer)


async def test_stream_sends_termination_message_on_halt() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await from_iterable(range(10))
    s = stream([(producer, {"cancel": "transient"})])
    assert [e async for e in s] == list(range(10))
    await assert_receive(Exit(producer, NORMAL))


async def test_stream_exits_with_the_reason_when_the_subscription_is_permanent() -> None:
    producer = await from_iterable([1, 2, 3])
    got = []
    with pytest.raises(ProcessExit) as e:
        async for x in stream([producer]):
            got.append(x)
    assert got == [1, 2, 3] and e.value.reason[0] == NORMAL


async def test_from_iterable_accepts_a_link_option() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await from_iterable(range(3), link=False)
    assert producer is not None
    assert [e async for e in stream([(producer, {"cancel": "temporary"})])] == [0, 1, 2]
    await refute_receive(Exit, timeout=0.05)


async def test_from_iterable_accepts_a_name_option() -> None:
    await from_iterable([1, 2], name="iterable")
    assert [e async for e in stream([("iterable", {"cancel": "transient"})])] == [1, 2]


async def test_from_iterable_accepts_an_on_cancel_option() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await from_iterable(iter(range(1000)), on_cancel="stop")
    assert await take(5, stream([(producer, {"max_demand": 10})])) == [0, 1, 2, 3, 4]
    await assert_receive(Exit(producer, NORMAL))


async def test_from_iterable_stops_normal_and_a_permanent_consumer_follows() -> None:
    """G13.2: 1..4 with an ask of 10 -> [1, 2, 3, 4], then the producer exits normal."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    producer = await from_iterable([1, 2, 3, 4])
    consumer = await Forwarder.start_link(
        Consumer(me, subscribe_to=[(producer, {"max_demand": 10})])
    )
    await assert_receive(("consumed", [1, 2, 3, 4]))
    await assert_receive(Exit(producer, NORMAL))
    await assert_receive(Exit(consumer, NORMAL))


async def test_from_async_iterable_emits_on_demand() -> None:
    async def gen() -> AsyncIterator[int]:
        for i in range(25):
            yield i

    producer = await from_async_iterable(gen())
    assert [
        e async for e in stream([(producer, {"max_demand": 10, "cancel": "transient"})])
    ] == list(range(25))


async def test_from_iterable_bad_options() -> None:
    with pytest.raises(BadArgument):
        await from_iterable([1], on_cancel="sometimes")
    with pytest.raises(BadArgument):
        await from_iterable([1], subscribe_to=[])
