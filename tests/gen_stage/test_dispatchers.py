"""Dispatchers: ports of elixir-lang/gen_stage test/gen_stage/{demand,broadcast,
partition}_dispatcher_test.exs (docs/gen_stage.md G7), named after the upstream tests.
Dispatchers run in the calling process and send M4 to the pids they were given (the
test process itself), so `assert_receive` sees what a consumer would."""

from __future__ import annotations

from typing import Any

import pytest

import beamlet
from beamlet import ANY, Atom, BadArgument
from beamlet.gen_stage import BroadcastDispatcher, DemandDispatcher, PartitionDispatcher
from beamlet.gen_stage.partition_dispatcher import NONE
from beamlet.gen_stage.protocol import GEN_CONSUMER, GEN_PRODUCER
from beamlet.testing import assert_receive, refute_receive

a, b, c, d, e, f, g, h, i, j = (Atom(x) for x in "abcdefghij")


def got(ref: Any, events: Any) -> tuple[Any, ...]:
    return (GEN_CONSUMER, (ANY, ref), events if events is ANY else tuple(events))


def dd(disp: DemandDispatcher) -> tuple[Any, ...]:
    return ([(e[0], e[2]) for e in disp.demands], disp.pending, disp.max_demand)


# --- DemandDispatcher (G7.2) -----------------------------------------------------------


async def test_demand_subscribes_and_cancels() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = DemandDispatcher()
    assert disp.subscribe({}, (pid, ref)) == 0
    assert dd(disp) == ([(0, ref)], 0, None)
    assert disp.cancel((pid, ref)) == 0
    assert dd(disp) == ([], 0, None)


async def test_demand_subscribes_asks_and_cancels() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = DemandDispatcher()
    disp.subscribe({}, (pid, ref))
    assert disp.ask(10, (pid, ref)) == 10
    assert dd(disp) == ([(10, ref)], 0, 10)
    assert disp.cancel((pid, ref)) == 0
    assert dd(disp) == ([], 10, 10)
    disp.subscribe({}, (pid, ref))
    assert disp.ask(5, (pid, ref)) == 0
    assert dd(disp) == ([(5, ref)], 5, 10)
    assert disp.cancel((pid, ref)) == 0
    assert dd(disp) == ([], 10, 10)
    assert disp.dispatch([a, b, c], 3) == [a, b, c]
    assert dd(disp) == ([], 7, 10)
    disp.dispatch(list(range(10)), 10)
    assert dd(disp) == ([], 0, 10)


async def test_demand_subscribes_twice_asks_twice_and_cancel_one() -> None:
    pid, r1, r2 = beamlet.self(), beamlet.make_ref(), beamlet.make_ref()
    disp = DemandDispatcher()
    disp.subscribe({}, (pid, r1))
    assert disp.ask(3, (pid, r1)) == 3
    disp.subscribe({}, (pid, r2))
    assert disp.ask(3, (pid, r2)) == 3
    assert dd(disp) == ([(3, r1), (3, r2)], 0, 3)
    disp.cancel((pid, r1))
    assert dd(disp) == ([(3, r2)], 3, 3)
    assert disp.dispatch([a, b, c, d, e], 5) == [d, e]
    assert dd(disp) == ([(0, r2)], 1, 3)


async def test_demand_subscribes_asks_and_dispatches() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = DemandDispatcher()
    disp.subscribe({}, (pid, ref))
    disp.ask(3, (pid, ref))
    assert disp.dispatch([a], 1) == []
    assert dd(disp) == ([(2, ref)], 0, 3)
    await assert_receive(got(ref, [a]))
    disp.ask(3, (pid, ref))
    assert dd(disp) == ([(5, ref)], 0, 3)
    assert disp.dispatch([b, c, d, e, f, g, h], 7) == [g, h]
    await assert_receive(got(ref, [b, c, d, e, f]))
    assert disp.dispatch([i, j], 2) == [i, j]
    await refute_receive(got(ref, ANY), timeout=0.01)


async def test_demand_subscribes_asks_multiple_consumers() -> None:
    pid = beamlet.self()
    r1, r2, r3 = (beamlet.make_ref() for _ in range(3))
    disp = DemandDispatcher()
    for r in (r1, r2, r3):
        disp.subscribe({}, (pid, r))
    disp.ask(4, (pid, r1))
    disp.ask(2, (pid, r2))
    disp.ask(3, (pid, r3))
    assert dd(disp) == ([(4, r1), (3, r3), (2, r2)], 0, 4)
    disp.ask(2, (pid, r3))
    assert dd(disp) == ([(5, r3), (4, r1), (2, r2)], 0, 4)
    disp.ask(4, (pid, r2))
    assert dd(disp) == ([(6, r2), (5, r3), (4, r1)], 0, 4)


async def test_demand_subscribes_asks_and_dispatches_to_multiple_consumers() -> None:
    pid, r1, r2 = beamlet.self(), beamlet.make_ref(), beamlet.make_ref()
    disp = DemandDispatcher()
    disp.subscribe({}, (pid, r1))
    disp.subscribe({}, (pid, r2))
    disp.ask(3, (pid, r1))
    disp.ask(2, (pid, r2))
    assert disp.dispatch([a, b, c, d, e], 5) == []
    await assert_receive(got(r1, [a, b, c]))
    await assert_receive(got(r2, [d, e]))
    assert disp.dispatch([a, b, c], 3) == [a, b, c]
    assert dd(disp) == ([(0, r1), (0, r2)], 0, 3)
    disp.ask(3, (pid, r1))
    disp.ask(3, (pid, r2))
    assert disp.dispatch([a, b], 2) == []
    assert dd(disp) == ([(3, r2), (1, r1)], 0, 3)
    await assert_receive(got(r1, [a, b]))
    assert disp.dispatch([c, d], 2) == []
    assert dd(disp) == ([(1, r1), (1, r2)], 0, 3)
    await assert_receive(got(r2, [c, d]))
    assert disp.dispatch([e, f, g], 3) == [g]
    await assert_receive(got(r1, [e]))
    await assert_receive(got(r2, [f]))


async def test_demand_subscribes_asks_and_dispatches_to_multiple_consumers_shuffled() -> None:
    pid, r1, r2 = beamlet.self(), beamlet.make_ref(), beamlet.make_ref()
    disp = DemandDispatcher(shuffle_demands_on_first_dispatch=True)
    disp.subscribe({}, (pid, r1))
    disp.subscribe({}, (pid, r2))
    disp.ask(3, (pid, r1))
    disp.ask(2, (pid, r2))
    assert disp.dispatch([a, b, c, d, e], 5) == []
    assert disp.shuffle is False
    first = disp.demands[0][2]
    if first == r1:
        await assert_receive(got(r1, [a, b, c]))
        await assert_receive(got(r2, [d, e]))
    else:
        await assert_receive(got(r2, [a, b]))
        await assert_receive(got(r1, [c, d, e]))


async def test_demand_delivers_info_to_current_process() -> None:
    pid, r1 = beamlet.self(), beamlet.make_ref()
    disp = DemandDispatcher()
    disp.subscribe({}, (pid, r1))
    disp.ask(3, (pid, r1))
    disp.info("hello")
    await assert_receive("hello")


async def test_demand_warns_on_demand_mismatch(caplog: pytest.LogCaptureFixture) -> None:
    pid, r1, r2 = beamlet.self(), beamlet.make_ref(), beamlet.make_ref()
    disp = DemandDispatcher(max_demand=3)
    disp.subscribe({}, (pid, r1))
    disp.subscribe({}, (pid, r2))
    assert disp.ask(4, (pid, r2)) == 4
    assert "GenStage producer DemandDispatcher expects a maximum demand of 3" in caplog.text


# --- BroadcastDispatcher (G7.3) --------------------------------------------------------


def bd(disp: BroadcastDispatcher) -> tuple[Any, ...]:
    return (
        [(n, p, r) for n, p, r, _ in disp.demands],
        disp.waiting,
        disp.requested,
        disp.subscribed,
    )


async def _other() -> None:
    await beamlet.receive(lambda m: False)


async def test_broadcast_subscribes_and_cancels() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = BroadcastDispatcher()
    assert disp.subscribe({}, (pid, ref)) == 0
    assert bd(disp) == ([(0, pid, ref)], 0, 0, {pid})
    assert disp.cancel((pid, ref)) == 0
    assert bd(disp) == ([], 0, 0, set())


async def test_broadcast_subscribes_asks_and_cancels() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = BroadcastDispatcher()
    disp.subscribe({}, (pid, ref))
    assert disp.ask(10, (pid, ref)) == 10
    assert bd(disp) == ([(0, pid, ref)], 10, 10, {pid})
    assert disp.cancel((pid, ref)) == 0
    assert bd(disp) == ([], 0, 10, set())
    assert disp.dispatch([1, 2, 3], 3) == [1, 2, 3]


async def test_broadcast_multiple_subscriptions_with_early_demand() -> None:
    pid1, pid2 = beamlet.self(), beamlet.spawn(_other)
    r1, r2 = beamlet.make_ref(), beamlet.make_ref()
    disp = BroadcastDispatcher()
    disp.subscribe({}, (pid1, r1))
    assert disp.ask(10, (pid1, r1)) == 10
    assert bd(disp) == ([(0, pid1, r1)], 10, 10, {pid1})
    disp.subscribe({}, (pid2, r2))
    assert bd(disp) == ([(0, pid2, r2), (10, pid1, r1)], 0, 10, {pid1, pid2})
    assert disp.cancel((pid1, r1)) == 0
    assert bd(disp) == ([(0, pid2, r2)], 0, 10, {pid2})
    assert disp.ask(10, (pid2, r2)) == 0
    assert bd(disp) == ([(0, pid2, r2)], 10, 10, {pid2})


async def test_broadcast_subscribes_asks_and_dispatches_to_multiple_consumers() -> None:
    pid1, pid2 = beamlet.self(), beamlet.spawn(_other)
    r1, r2 = beamlet.make_ref(), beamlet.make_ref()
    disp = BroadcastDispatcher()
    disp.subscribe({}, (pid1, r1))
    disp.subscribe({}, (pid2, r2))
    assert disp.ask(3, (pid1, r1)) == 0
    assert disp.ask(2, (pid2, r2)) == 2
    assert disp.dispatch([a, b, c], 3) == [c]
    await assert_receive(got(r1, [a, b]))
    assert bd(disp)[1:3] == (0, 0)
    assert disp.ask(3, (pid2, r2)) == 1  # min(1, 3) is now 1


async def test_broadcast_subscribing_with_a_selector_function() -> None:
    me = beamlet.self()
    r1, r2 = beamlet.make_ref(), beamlet.make_ref()
    other = beamlet.spawn(_other)
    disp = BroadcastDispatcher()
    disp.subscribe({"selector": lambda x: x % 2 == 0}, (me, r1))
    disp.subscribe({}, (other, r2))
    disp.ask(4, (me, r1))
    disp.ask(4, (other, r2))
    assert disp.dispatch([1, 2, 3, 4], 4) == []
    await assert_receive(got(r1, [2, 4]))
    await assert_receive((GEN_PRODUCER, (me, r1), (Atom("ask"), 2)))  # re-credited


async def test_broadcast_subscribing_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    from beamlet.gen_stage import SubscriptionRefused

    pid = beamlet.self()
    disp = BroadcastDispatcher()
    disp.subscribe({}, (pid, beamlet.make_ref()))
    with pytest.raises(SubscriptionRefused) as e:
        disp.subscribe({}, (pid, beamlet.make_ref()))
    assert e.value.reason == Atom("already_subscribed")
    assert "is already registered with" in caplog.text


async def test_broadcast_delivers_info_to_current_process() -> None:
    disp = BroadcastDispatcher()
    disp.info("hello")
    await assert_receive("hello")


async def test_broadcast_bad_selector_raises() -> None:
    with pytest.raises(BadArgument):
        BroadcastDispatcher().subscribe({"selector": 1}, (beamlet.self(), beamlet.make_ref()))


# --- PartitionDispatcher (G7.4) --------------------------------------------------------


def wp(disp: PartitionDispatcher) -> tuple[int, int]:
    return disp.waiting, disp.pending


async def test_partition_subscribes_asks_and_cancels() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=2)
    assert disp.subscribe({"partition": 0}, (pid, ref)) == 0
    assert disp.ask(10, (pid, ref)) == 10
    assert wp(disp) == (10, 0)
    assert disp.cancel((pid, ref)) == 0
    assert wp(disp) == (10, 10)
    disp.subscribe({"partition": 1}, (pid, ref))
    assert disp.ask(5, (pid, ref)) == 0
    assert wp(disp) == (10, 5)
    disp.cancel((pid, ref))
    assert wp(disp) == (10, 10)
    assert disp.dispatch([0, 1, 2, 3], 4) == []
    assert wp(disp) == (6, 10)


async def test_partition_subscribes_asks_and_dispatches() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=1)
    disp.subscribe({"partition": 0}, (pid, ref))
    assert disp.ask(3, (pid, ref)) == 3
    assert disp.dispatch([1], 1) == []
    assert wp(disp) == (2, 0)
    await assert_receive(got(ref, [1]))
    disp.ask(3, (pid, ref))
    assert wp(disp) == (5, 0)
    assert disp.dispatch([2, 5, 6, 7, 8, 9, 11], 7) == [9, 11]
    assert wp(disp) == (0, 0)
    await assert_receive(got(ref, [2, 5, 6, 7, 8]))


async def test_partition_subscribes_asks_and_dispatches_to_custom_partitions() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(
        partitions=["odd", "even"], hash=lambda e: (e, "even" if e % 2 == 0 else "odd")
    )
    disp.subscribe({"partition": "odd"}, (pid, ref))
    disp.ask(3, (pid, ref))
    assert disp.dispatch([1], 1) == []
    await assert_receive(got(ref, [1]))
    disp.ask(3, (pid, ref))
    assert disp.dispatch([5, 7, 9, 11, 13, 15, 17], 7) == [15, 17]
    await assert_receive(got(ref, [5, 7, 9, 11, 13]))


async def test_partition_subscribes_asks_and_dispatches_to_partitions_or_none() -> None:
    pid, even, odd = beamlet.self(), beamlet.make_ref(), beamlet.make_ref()

    def hash_(x: int) -> Any:
        if x % 3 == 0:
            return NONE
        return (x, "even" if x % 2 == 0 else "odd")

    disp = PartitionDispatcher(partitions=["odd", "even"], hash=hash_)
    disp.subscribe({"partition": "even"}, (pid, even))
    disp.subscribe({"partition": "odd"}, (pid, odd))
    disp.ask(4, (pid, even))
    disp.ask(4, (pid, odd))
    assert disp.dispatch(list(range(1, 13)), 12) == [12]
    await assert_receive(got(even, [2, 4, 8, 10]))
    await assert_receive(got(odd, [1, 5, 7, 11]))
    assert wp(disp) == (0, 0)


async def test_partition_buffers_events_before_subscription() -> None:
    pid = beamlet.self()
    disp = PartitionDispatcher(partitions=2, hash=lambda e: (e, 0 if e < 8 else 1))
    r1 = beamlet.make_ref()
    disp.subscribe({"partition": 1}, (pid, r1))
    assert disp.ask(5, (pid, r1)) == 5
    assert disp.dispatch([1, 2, 5, 6, 7], 5) == []
    await refute_receive(got(r1, ANY), timeout=0.01)
    assert disp.dispatch([8, 9], 2) == [8, 9]
    r0 = beamlet.make_ref()
    disp.subscribe({"partition": 0}, (pid, r0))
    assert disp.ask(5, (pid, r0)) == 5
    await assert_receive(got(r0, [1, 2, 5, 6, 7]))


async def test_partition_subscribes_asks_and_cancels_with_buffer() -> None:
    """Queued events of a cancelled partition are dropped and asked for again (G7.4)."""
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=2, hash=lambda e: (e, 0))
    disp.subscribe({"partition": 0}, (pid, ref))
    disp.ask(2, (pid, ref))
    other = beamlet.make_ref()
    disp.subscribe({"partition": 1}, (pid, other))
    disp.ask(3, (pid, other))
    assert disp.dispatch([1, 2, 3, 4, 5], 5) == []
    await assert_receive(got(ref, [1, 2]))
    assert disp.cancel((pid, ref)) == 3


async def test_partition_delivers_info_to_current_process() -> None:
    disp = PartitionDispatcher(partitions=2)
    disp.info("hello")
    await assert_receive("hello")


async def test_partition_queues_info_to_backed_up_consumers() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=2, hash=lambda e: (e, 0))
    disp.subscribe({"partition": 0}, (pid, ref))
    disp.ask(3, (pid, ref))
    assert disp.dispatch([1, 2, 3, 4, 5], 5) == [4, 5]  # waiting was 3
    await assert_receive(got(ref, [1, 2, 3]))
    disp.ask(1, (pid, ref))
    assert disp.dispatch([4, 5], 2) == [5]
    await assert_receive(got(ref, [4]))
    disp.info("hello")
    await assert_receive("hello")


async def test_partition_raises_on_unknown_partition() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=[0], hash=lambda e: (e, "oops"))
    disp.subscribe({"partition": 0}, (pid, ref))
    disp.ask(5, (pid, ref))
    with pytest.raises(BadArgument, match="unknown partition"):
        disp.dispatch([1], 1)


async def test_partition_errors_if_the_hash_function_returns_a_bad_value() -> None:
    pid, ref = beamlet.self(), beamlet.make_ref()
    disp = PartitionDispatcher(partitions=[0], hash=lambda e: Atom("oops"))
    disp.subscribe({"partition": 0}, (pid, ref))
    disp.ask(5, (pid, ref))
    with pytest.raises(BadArgument, match="should return"):
        disp.dispatch([1], 1)


async def test_partition_errors_on_init() -> None:
    with pytest.raises(BadArgument, match="partitions"):
        PartitionDispatcher()
    with pytest.raises(BadArgument, match="hash"):
        PartitionDispatcher(partitions=["a", "b"])


async def test_partition_errors_on_subscribe() -> None:
    pid = beamlet.self()
    disp = PartitionDispatcher(partitions=2)
    with pytest.raises(BadArgument, match="is required"):
        disp.subscribe({}, (pid, beamlet.make_ref()))
    with pytest.raises(BadArgument, match="must be one of"):
        disp.subscribe({"partition": 3}, (pid, beamlet.make_ref()))
    disp.subscribe({"partition": 0}, (pid, beamlet.make_ref()))
    with pytest.raises(BadArgument, match="already taken"):
        disp.subscribe({"partition": 0}, (pid, beamlet.make_ref()))
