"""ConsumerSupervisor: ports of elixir-lang/gen_stage test/consumer_supervisor_test.exs
(docs/gen_stage.md G14), named after the upstream tests (a subset)."""

from __future__ import annotations

from typing import Any

import pytest
from stages import Counter

import beamlet
from beamlet import ANY, NORMAL, SHUTDOWN, Atom, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.gen_stage import ConsumerSupervisor, GenStage, Producer
from beamlet.gen_stage.protocol import ASK, GEN_PRODUCER, NIL, SUBSCRIBE
from beamlet.testing import assert_receive, refute_receive


async def _worker(test: Pid, event: Any) -> None:
    beamlet.send(test, ("started", beamlet.self(), event))
    msg = await beamlet.receive()
    if msg == "crash":
        raise RuntimeError("boom")
    if msg == "exit_normal":
        return


async def start_worker(test: Pid, event: Any) -> Pid:
    return beamlet.spawn_link(_worker, test, event)


def spec(restart: str = "temporary") -> ChildSpec:
    return ChildSpec(id="worker", start=start_worker, args=(beamlet.self(),), restart=restart)  # type: ignore[arg-type]


async def test_start_link_3_with_bad_child_spec() -> None:
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start(spec("permanent"))  # type: ignore[arg-type]
    assert (
        e.value.reason[0] == Atom("bad_opts") and ":permanent is not supported" in e.value.reason[1]
    )


async def test_start_child_limited_by_max_demand() -> None:
    producer = await Counter.start_link(Producer(0))
    sup = await ConsumerSupervisor.start_link(
        spec(), subscribe_to=[(producer, {"max_demand": 3, "min_demand": 2})]
    )
    started = [await assert_receive(("started", ANY, ANY)) for _ in range(3)]
    assert [e for _, _, e in started] == [0, 1, 2]
    await refute_receive(("started", ANY, ANY), timeout=0.05)
    assert (await ConsumerSupervisor.count_children(sup))["active"] == 3
    # G14.3: first completion -> no ask (pending 1 < min 2); second -> ask 2
    beamlet.send(started[0][1], "exit_normal")
    await refute_receive(("started", ANY, ANY), timeout=0.05)
    beamlet.send(started[1][1], "exit_normal")
    got = [await assert_receive(("started", ANY, ANY)) for _ in range(2)]
    assert [e for _, _, e in got] == [3, 4]


async def test_ask_for_more_events_when_count_reaches_min_demand_with_a_raw_producer() -> None:
    me = beamlet.self()
    sup = await ConsumerSupervisor.start_link(spec())
    # the raw producer is the test process: the subscription and asks come to us
    GenStage.async_subscribe(sup, to=me, max_demand=3, min_demand=2)
    m1 = await assert_receive((GEN_PRODUCER, ANY, (SUBSCRIBE, NIL, ANY)))
    frm = m1[1]
    await assert_receive((GEN_PRODUCER, frm, (ASK, 3)))
    beamlet.send(sup, (Atom("$gen_consumer"), (me, frm[1]), [1, 2, 3]))
    workers = [(await assert_receive(("started", ANY, ANY)))[1] for _ in range(3)]
    beamlet.send(workers[0], "exit_normal")
    await refute_receive((GEN_PRODUCER, ANY, ANY), timeout=0.05)
    beamlet.send(workers[1], "exit_normal")
    await assert_receive((GEN_PRODUCER, frm, (ASK, 2)))
    beamlet.send(workers[2], "crash")  # temporary: done, pending 1: no ask
    await refute_receive((GEN_PRODUCER, ANY, ANY), timeout=0.05)


async def test_temporary_child_is_not_restarted_regardless_of_reason() -> None:
    producer = await Counter.start_link(Producer(0))
    await ConsumerSupervisor.start_link(
        spec(), subscribe_to=[(producer, {"max_demand": 1, "min_demand": 0})]
    )
    _, pid, e = await assert_receive(("started", ANY, ANY))
    beamlet.send(pid, "crash")
    _, _, e2 = await assert_receive(("started", ANY, ANY))
    assert e2 == e + 1  # the next event, not a restart


async def test_transient_child_is_restarted_unless_normal() -> None:
    producer = await Counter.start_link(Producer(0))
    await ConsumerSupervisor.start_link(
        spec("transient"), subscribe_to=[(producer, {"max_demand": 1, "min_demand": 0})]
    )
    _, pid, e = await assert_receive(("started", ANY, ANY))
    beamlet.send(pid, "crash")
    _, pid2, again = await assert_receive(("started", ANY, ANY))
    assert again == e and pid2 != pid  # restarted with the same event, same slot
    beamlet.send(pid2, "exit_normal")
    _, _, nxt = await assert_receive(("started", ANY, ANY))
    assert nxt == e + 1


async def test_child_triggers_maximum_restarts() -> None:
    beamlet.process_flag(trap_exit=True)
    producer = await Counter.start_link(Producer(0))
    sup = await ConsumerSupervisor.start_link(
        spec("transient"),
        subscribe_to=[(producer, {"max_demand": 1, "min_demand": 0})],
        max_restarts=2,
    )
    for _ in range(3):
        _, pid, _ = await assert_receive(("started", ANY, ANY))
        beamlet.send(pid, "crash")
    await assert_receive(Exit(sup, SHUTDOWN))


async def test_children_remain_after_producer_down() -> None:
    producer = await Counter.start(Producer(0))
    sup = await ConsumerSupervisor.start_link(
        spec(), subscribe_to=[(producer, {"max_demand": 2, "cancel": "temporary"})]
    )
    _, pid, _ = await assert_receive(("started", ANY, ANY))
    await assert_receive(("started", ANY, ANY))
    beamlet.exit(producer, beamlet.KILL)
    await refute_receive(ANY, timeout=0.05)
    assert beamlet.is_alive(pid) and beamlet.is_alive(sup)
    assert len(await ConsumerSupervisor.which_children(sup)) == 2


async def test_start_child_with_throw_error_exit_counts_as_done() -> None:
    async def failing(test: Pid, event: Any) -> Pid:
        raise StartError(Atom("oops"))

    producer = await Counter.start_link(Producer(0))
    bad = ChildSpec(id="w", start=failing, args=(beamlet.self(),), restart="temporary")
    sup = await ConsumerSupervisor.start_link(
        bad, subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})]
    )
    info = await GenStage.info(sup)
    assert beamlet.is_alive(sup) and info["role"] == "consumer"


async def test_supervisor_terminates_children_on_shutdown() -> None:
    producer = await Counter.start_link(Producer(0))
    sup = await ConsumerSupervisor.start_link(spec(), subscribe_to=[(producer, {"max_demand": 2})])
    _, pid, _ = await assert_receive(("started", ANY, ANY))
    mref = beamlet.monitor(pid)
    await GenStage.stop(sup)
    await assert_receive(beamlet.Down(mref, ANY, ANY, SHUTDOWN))


_ = NORMAL
