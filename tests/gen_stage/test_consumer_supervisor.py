"""ConsumerSupervisor: ports of elixir-lang/gen_stage test/consumer_supervisor_test.exs
(docs/gen_stage.md G14), named after the upstream tests.

Left out: `throw` (Python has none), `{:ok, pid, info}` starts (a Python start returns a
pid), code_change, and "child triggers maximum seconds" (max_seconds=0: beamlet, like
its Supervisor, wants max_seconds > 0)."""

from __future__ import annotations

from typing import Any

import pytest
from stages import QueueProducer

import beamlet
from beamlet import ANY, KILL, KILLED, SHUTDOWN, Atom, ChildSpec, Down, Exit, Pid, ProcessExit
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.supervisor import RESTARTING, ChildCounts, ChildInfo, ChildNotFound
from beamlet.gen_stage import BadOpts, ConsumerSupervisor, GenStage, Producer, from_iterable
from beamlet.gen_stage.protocol import ASK, GEN_PRODUCER, NIL, SUBSCRIBE
from beamlet.testing import assert_receive, refute_receive


async def _sleep_forever() -> None:
    await beamlet.receive(lambda m: False)


class Starts:
    """The start functions of the upstream test modules, run in the supervisor; `memo`
    plays the supervisor's process dictionary, `test` gets the notifications of the
    upstream `Consumer` module (None: the plain `start_link/1,2` of the test module)."""

    def __init__(self, test: Pid | None = None) -> None:
        self.test = test
        self.memo: dict[Any, Any] = {}

    def tell(self, msg: Any) -> None:
        if self.test is not None:
            beamlet.send(self.test, msg)

    async def start(self, *args: Any) -> Any:
        what = args[0] if len(args) == 1 else args
        match what:
            case "ok2":
                child = beamlet.spawn_link(_sleep_forever)
                self.tell(("child_started", child))
                return child
            case "error":
                self.tell("child_start_error")
                raise StartError(Atom("found"))
            case "ignore":
                self.tell("child_ignore")
                return None
            case "unknown":
                self.tell("child_start_unknown")
                return Atom("unknown")
            case ("non_local", kind):
                self.tell(("child_non_local", kind))
                if kind == "exit":
                    raise ProcessExit(Atom("oops"))
                raise RuntimeError("oops")
            case ("restart", value):
                if self.memo.get(("restart", value)):  # retried at mailbox speed: quiet
                    test, self.test = self.test, None
                    try:
                        return await self.start(value)
                    finally:
                        self.test = test
                self.memo[("restart", value)] = True
                return await self.start("ok2")
            case ("try_again", notify):
                if self.memo.get("try_again"):
                    self.memo["try_again"] = False
                    beamlet.send(notify, ("try_again", False))
                    raise StartError(Atom("try_again"))
                self.memo["try_again"] = True
                beamlet.send(notify, ("try_again", True))
                return await self.start("ok2")
        raise AssertionError(args)


def worker(starts: Starts, restart: str = "transient", **extra: Any) -> ChildSpec:
    return ChildSpec(id="worker", start=starts.start, restart=restart, **extra)  # type: ignore[arg-type]


async def start_consumer(restart: str = "temporary", **opts: Any) -> tuple[Pid, Starts]:
    """The upstream `Consumer.start_link`: max_restarts 0 unless given."""
    starts = Starts(beamlet.self())
    opts.setdefault("max_restarts", 0)
    sup = await ConsumerSupervisor.start_link(worker(starts, restart), **opts)
    assert sup is not None
    return sup, starts


async def assert_kill(pid: Pid, reason: Any) -> None:
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, reason)
    await assert_receive(Down(ref, ANY, ANY, ANY))


async def counts(sup: Pid) -> tuple[int, int]:
    c = await ConsumerSupervisor.count_children(sup)
    return c.workers, c.active


async def sync_queue(producer: Pid, events: list[Any]) -> None:
    await GenStage.call(producer, ("queue", events))


# --- start_link / init ---------------------------------------------------------------


async def test_start_link_3_with_bad_child_spec() -> None:
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start(worker(Starts(), "permanent"))
    assert e.value.reason[0] == Atom("bad_opts")
    assert ":permanent is not supported" in e.value.reason[1]
    with pytest.raises(StartError, match="max_restarts"):
        await ConsumerSupervisor.start(worker(Starts()), max_restarts=-1)
    with pytest.raises(TypeError, match="unknown options"):
        await ConsumerSupervisor.start(worker(Starts()), strategy="one_for_all")  # type: ignore[call-arg]


async def test_start_link_3_with_registered_process() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()), name="my_consumer_sup")
    assert beamlet.whereis("my_consumer_sup") == sup
    assert await ConsumerSupervisor.count_children("my_consumer_sup") == ChildCounts(1, 0, 0, 0)


# --- start_child/2 ---------------------------------------------------------------------


async def test_start_child_2() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()))
    assert type(await ConsumerSupervisor.start_child(sup, ["ok2"])) is Pid
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start_child(sup, ["error"])
    assert e.value.reason == Atom("found")
    assert await ConsumerSupervisor.start_child(sup, ["ignore"]) is None
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start_child(sup, ["unknown"])
    assert e.value.reason == Atom("unknown")
    assert await counts(sup) == (1, 1)


async def test_start_child_2_with_throw_error_exit() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()))
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start_child(sup, ["non_local", "error"])
    assert isinstance(e.value.reason, beamlet.Crash)  # Elixir's {%RuntimeError{}, stack}
    with pytest.raises(StartError) as e:
        await ConsumerSupervisor.start_child(sup, ["non_local", "exit"])
    assert e.value.reason == Atom("oops")
    assert await ConsumerSupervisor.which_children(sup) == []


async def test_temporary_child_is_not_restarted_regardless_of_reason() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts(), "temporary"))
    child = await ConsumerSupervisor.start_child(sup, ["ok2"])
    assert child is not None
    await assert_kill(child, SHUTDOWN)
    assert await counts(sup) == (0, 0)
    child = await ConsumerSupervisor.start_child(sup, ["ok2"])
    assert child is not None
    await assert_kill(child, Atom("whatever"))
    assert await counts(sup) == (0, 0)


async def test_transient_child_is_restarted_unless_normal_shutdown_shutdown_tuple() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts(), "transient"))
    for reason, left in ((SHUTDOWN, 0), ((SHUTDOWN, Atom("signal")), 0), (Atom("whatever"), 1)):
        child = await ConsumerSupervisor.start_child(sup, ["ok2"])
        assert child is not None
        await assert_kill(child, reason)
        assert await counts(sup) == (left, left)


async def test_child_is_restarted_with_different_values() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()), max_restarts=100_000)

    async def kinds() -> list[Any]:
        return [c.pid if c.pid == RESTARTING else "pid" for c in await which(sup)]

    child1 = await ConsumerSupervisor.start_child(sup, ["restart", "ok2"])
    assert await ConsumerSupervisor.which_children(sup) == [ChildInfo(None, child1, "worker", ())]
    await assert_kill(child1, KILL)
    assert await counts(sup) == (1, 1)
    child2 = await ConsumerSupervisor.start_child(sup, ["restart", "ok2"])
    assert (await ConsumerSupervisor.which_children(sup))[1].pid == child2
    await assert_kill(child2, KILL)
    assert await counts(sup) == (2, 2)
    child3 = await ConsumerSupervisor.start_child(sup, ["restart", "ignore"])
    assert await kinds() == ["pid", "pid", "pid"]
    await assert_kill(child3, KILL)  # restarted with ignore: gone
    assert await counts(sup) == (2, 2)
    child4 = await ConsumerSupervisor.start_child(sup, ["restart", "error"])
    await assert_kill(child4, KILL)  # restarted with an error: retried, RESTARTING
    assert await counts(sup) == (3, 2)
    assert await kinds() == ["pid", "pid", RESTARTING]


async def which(sup: Pid) -> list[ChildInfo]:
    return await ConsumerSupervisor.which_children(sup)


async def test_child_is_restarted_when_trying_again() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()), max_restarts=2)
    child = await ConsumerSupervisor.start_child(sup, ["try_again", beamlet.self()])
    await assert_receive(("try_again", True))
    assert child is not None
    await assert_kill(child, KILL)
    await assert_receive(("try_again", False))
    await assert_receive(("try_again", True))
    assert await counts(sup) == (1, 1)


async def test_child_triggers_maximum_restarts() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await ConsumerSupervisor.start_link(worker(Starts()), max_restarts=1)
    child = await ConsumerSupervisor.start_child(sup, ["restart", "error"])
    assert child is not None
    await assert_kill(child, KILL)
    await assert_receive(Exit(sup, SHUTDOWN))


async def test_child_triggers_maximum_intensity_when_trying_again() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await ConsumerSupervisor.start_link(worker(Starts()), max_restarts=10)
    child = await ConsumerSupervisor.start_child(sup, ["restart", "error"])
    assert child is not None
    await assert_kill(child, KILL)
    await assert_receive(Exit(sup, SHUTDOWN))


# --- terminate/2 -------------------------------------------------------------------


async def _task(fn: Any) -> Pid:
    return beamlet.spawn_link(fn)


async def _trapping_until_message() -> None:
    beamlet.process_flag(trap_exit=True)
    await beamlet.receive()
    beamlet.exit((SHUTDOWN, Atom("oops")))


async def _trapping_forever() -> None:
    beamlet.process_flag(trap_exit=True)
    await _sleep_forever()


async def _terminates_children(shutdown: Any, funs: list[Any], reasons: list[Any]) -> None:
    beamlet.process_flag(trap_exit=True)
    spec = ChildSpec(id="task", start=_task, restart="transient", shutdown=shutdown)
    sup = await ConsumerSupervisor.start_link(spec)
    children = [await ConsumerSupervisor.start_child(sup, [fn]) for fn in funs]
    refs = [beamlet.monitor(c) for c in children if c is not None]
    await assert_kill(sup, SHUTDOWN)
    for ref, reason in zip(refs, reasons, strict=True):
        await assert_receive(Down(ref, ANY, ANY, reason))


async def test_terminates_children_with_brutal_kill() -> None:
    await _terminates_children("brutal_kill", [_sleep_forever] * 3, [KILLED] * 3)


async def test_terminates_children_with_infinity_shutdown() -> None:
    await _terminates_children("infinity", [_sleep_forever] * 3, [SHUTDOWN] * 3)


async def test_terminates_children_with_infinity_shutdown_and_abnormal_reason() -> None:
    oops = (SHUTDOWN, Atom("oops"))
    await _terminates_children("infinity", [_trapping_until_message] * 3, [oops] * 3)


async def test_terminates_children_with_integer_shutdown() -> None:
    await _terminates_children(1.0, [_sleep_forever] * 3, [SHUTDOWN] * 3)


async def test_terminates_children_with_integer_shutdown_and_abnormal_reason() -> None:
    oops = (SHUTDOWN, Atom("oops"))
    await _terminates_children(1.0, [_trapping_until_message] * 3, [oops] * 3)


async def test_terminates_children_with_expired_integer_shutdown() -> None:
    funs = [_sleep_forever, _trapping_forever, _sleep_forever]
    await _terminates_children(0.001, funs, [SHUTDOWN, KILLED, SHUTDOWN])


# --- terminate_child/2 -------------------------------------------------------------


async def _terminates_child(shutdown: Any, reason: Any) -> None:
    spec = ChildSpec(id="task", start=_task, restart="transient", shutdown=shutdown)
    sup = await ConsumerSupervisor.start_link(spec)
    child = await ConsumerSupervisor.start_child(sup, [_sleep_forever])
    assert child is not None
    ref = beamlet.monitor(child)
    await ConsumerSupervisor.terminate_child(sup, child)
    await assert_receive(Down(ref, ANY, ANY, reason))
    with pytest.raises(ChildNotFound):
        await ConsumerSupervisor.terminate_child(sup, child)
    assert await counts(sup) == (0, 0)


async def test_terminates_child_with_brutal_kill() -> None:
    await _terminates_child("brutal_kill", KILLED)


async def test_terminates_child_with_integer_shutdown() -> None:
    await _terminates_child(1.0, SHUTDOWN)


async def test_terminates_restarting_child() -> None:
    sup = await ConsumerSupervisor.start_link(worker(Starts()), max_restarts=100_000)
    child = await ConsumerSupervisor.start_child(sup, ["restart", "error"])
    assert child is not None
    await assert_kill(child, KILL)
    await ConsumerSupervisor.terminate_child(sup, child)
    with pytest.raises(ChildNotFound):
        await ConsumerSupervisor.terminate_child(sup, child)
    assert await counts(sup) == (0, 0)


# --- sync_subscribe ----------------------------------------------------------------


async def test_sync_subscribe_returns_ok_with_reference() -> None:
    sup, _ = await start_consumer()
    producer = await QueueProducer.start_link(Producer(None))
    assert type(await GenStage.sync_subscribe(sup, to=producer)) is beamlet.Ref


async def test_sync_subscribe_returns_errors_on_bad_options() -> None:
    sup, _ = await start_consumer()
    with pytest.raises(BadOpts) as e:
        await GenStage.sync_subscribe(sup, to="whatever", max_demand=0)
    assert str(e.value) == "expected :max_demand to be equal to or greater than 1, got: 0"
    with pytest.raises(BadOpts) as e:
        await GenStage.sync_subscribe(sup, to="whatever", min_demand=2000)
    assert str(e.value) == "expected :min_demand to be equal to or less than 999, got: 2000"


async def test_sync_subscribe_supervisor_exits_when_there_is_no_named_producer_and_subscription_is_permanent() -> (  # noqa: E501
    None
):
    beamlet.process_flag(trap_exit=True)
    sup, _ = await start_consumer()
    await GenStage.sync_subscribe(sup, to="unknown")
    await assert_receive(Exit(sup, beamlet.NOPROC))


async def test_sync_subscribe_supervisor_exits_when_producer_is_dead_and_subscription_is_permanent() -> (  # noqa: E501
    None
):
    beamlet.process_flag(trap_exit=True)
    producer = await QueueProducer.start_link(Producer(None))
    await GenStage.stop(producer)
    sup, _ = await start_consumer()
    await GenStage.sync_subscribe(sup, to=producer)
    await assert_receive(Exit(sup, beamlet.NOPROC))


async def test_sync_subscribe_supervisor_does_not_exit_when_producer_is_missing_and_temporary() -> (
    None
):
    producer = await QueueProducer.start_link(Producer(None))
    await GenStage.stop(producer)
    sup, _ = await start_consumer()
    await GenStage.sync_subscribe(sup, to="unknown", cancel="temporary")
    await GenStage.sync_subscribe(sup, to=producer, cancel="temporary")
    assert await counts(sup) == (0, 0) and beamlet.is_alive(sup)


# --- supervisor consuming start args -------------------------------------------------


async def _subscribed(**opts: Any) -> tuple[Pid, Pid]:
    producer = await QueueProducer.start_link(Producer(None))
    sup, _ = await start_consumer(**opts.pop("sup", {}))
    await GenStage.sync_subscribe(sup, to=producer, cancel="temporary", **opts)
    return producer, sup


async def test_start_child() -> None:
    producer, sup = await _subscribed()
    await sync_queue(producer, ["ok2"])
    _, ok2 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, ok2, "worker", ())]
    await sync_queue(producer, ["ok2"])
    await assert_receive(("child_started", ANY))
    assert await counts(sup) == (2, 2)
    for event, note in (("error", "child_start_error"), ("ignore", "child_ignore")):
        await sync_queue(producer, [event])
        await assert_receive(note)
        assert await counts(sup) == (2, 2) and len(await which(sup)) == 2
    await sync_queue(producer, ["unknown"])
    await assert_receive("child_start_unknown")
    assert await counts(sup) == (2, 2)


async def test_start_child_with_stream() -> None:
    producer = await from_iterable(["ok2", "ok2", "ok2"])
    sup, _ = await start_consumer()
    await GenStage.sync_subscribe(sup, to=producer, cancel="temporary")
    for _ in range(3):
        await assert_receive(("child_started", ANY))


async def test_start_child_with_throw_error_exit() -> None:
    producer, sup = await _subscribed()
    for kind in ("error", "exit"):
        await sync_queue(producer, [("non_local", kind)])
        await assert_receive(("child_non_local", kind))
        assert await which(sup) == []


async def test_start_child_limited_by_max_demand() -> None:
    producer, sup = await _subscribed(max_demand=1, min_demand=0)
    await sync_queue(producer, ["ok2", "error", "ignore", "ok2", "ok2", "ok2"])
    _, child1 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, child1, "worker", ())]
    assert await counts(sup) == (1, 1)
    await refute_receive("child_start_error", timeout=0.01)
    await assert_kill(child1, SHUTDOWN)
    await assert_receive("child_start_error")
    await assert_receive("child_ignore")
    _, child2 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, child2, "worker", ())]
    await refute_receive(("child_started", ANY), timeout=0.01)
    await ConsumerSupervisor.terminate_child(sup, child2)  # gives its demand back
    _, child3 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, child3, "worker", ())]
    await refute_receive(("child_started", ANY), timeout=0.01)


async def test_restarting_children_counted_in_max_demand() -> None:
    opts = {"restart": "transient", "max_restarts": 100_000}
    producer, sup = await _subscribed(max_demand=1, min_demand=0, sup=opts)
    await sync_queue(producer, [("restart", "error"), "ok2", "ok2", "ok2"])
    _, child1 = await assert_receive(("child_started", ANY))
    assert await counts(sup) == (1, 1)
    await assert_kill(child1, KILL)
    assert await counts(sup) == (1, 0)
    assert await which(sup) == [ChildInfo(None, RESTARTING, "worker", ())]
    await refute_receive(("child_started", ANY), timeout=0.01)
    await ConsumerSupervisor.terminate_child(sup, child1)
    _, child2 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, child2, "worker", ())]
    await assert_kill(child2, KILL)  # an ok2 restarted: same slot, no new event
    _, child3 = await assert_receive(("child_started", ANY))
    assert await which(sup) == [ChildInfo(None, child3, "worker", ())]
    await refute_receive(("child_started", ANY), timeout=0.01)


async def test_children_remain_after_producer_down() -> None:
    beamlet.process_flag(trap_exit=True)
    producer, sup = await _subscribed(max_demand=2, min_demand=0)
    await sync_queue(producer, ["ok2", "ok2"])
    _, child1 = await assert_receive(("child_started", ANY))
    _, child2 = await assert_receive(("child_started", ANY))
    assert await counts(sup) == (2, 2)
    await assert_kill(producer, SHUTDOWN)
    assert await counts(sup) == (2, 2)
    await assert_kill(child1, SHUTDOWN)
    assert await which(sup) == [ChildInfo(None, child2, "worker", ())]
    await ConsumerSupervisor.terminate_child(sup, child2)
    assert await counts(sup) == (0, 0) and await which(sup) == []


async def test_ask_for_more_events_when_count_reaches_min_demand_high() -> None:
    beamlet.process_flag(trap_exit=True)
    producer, sup = await _subscribed(max_demand=3, min_demand=2)
    await sync_queue(producer, ["ok2", "ok2", "ok2"])
    started = [(await assert_receive(("child_started", ANY)))[1] for _ in range(3)]
    assert await counts(sup) == (3, 3)
    await assert_kill(started[0], SHUTDOWN)
    await assert_kill(started[1], SHUTDOWN)
    assert await counts(sup) == (1, 1)
    await sync_queue(producer, ["ok2"])
    await assert_receive(("child_started", ANY))
    await sync_queue(producer, ["ok2"])
    await assert_receive(("child_started", ANY))
    assert await counts(sup) == (3, 3)
    await sync_queue(producer, ["ok2"])  # no demand left: it waits in the producer
    await refute_receive(("child_started", ANY), timeout=0.02)


async def test_ask_for_more_events_when_count_reaches_min_demand_low() -> None:
    """The raw producer is the test process: the subscription and asks come to us."""
    me = beamlet.self()
    sup, _ = await start_consumer()
    GenStage.async_subscribe(sup, to=me, max_demand=3, min_demand=0, cancel="temporary")
    _, frm, _ = await assert_receive((GEN_PRODUCER, ANY, (SUBSCRIBE, NIL, ANY)))
    await assert_receive((GEN_PRODUCER, frm, (ASK, 3)))
    beamlet.send(sup, (Atom("$gen_consumer"), (me, frm[1]), ["ok2", "ok2"]))
    await assert_receive(("child_started", ANY))
    await assert_receive(("child_started", ANY))
    await refute_receive(("child_started", ANY), timeout=0.02)
    await refute_receive((GEN_PRODUCER, ANY, ANY), timeout=0.02)  # no child ended yet


async def test_ask_for_more_events_when_count_reaches_min_demand_with_a_raw_producer() -> None:
    me = beamlet.self()
    sup, _ = await start_consumer()
    GenStage.async_subscribe(sup, to=me, max_demand=3, min_demand=2)
    _, frm, _ = await assert_receive((GEN_PRODUCER, ANY, (SUBSCRIBE, NIL, ANY)))
    await assert_receive((GEN_PRODUCER, frm, (ASK, 3)))
    beamlet.send(sup, (Atom("$gen_consumer"), (me, frm[1]), ["ok2", "ok2", "ok2"]))
    workers = [(await assert_receive(("child_started", ANY)))[1] for _ in range(3)]
    await assert_kill(workers[0], SHUTDOWN)
    await refute_receive((GEN_PRODUCER, ANY, ANY), timeout=0.02)  # 1 < min_demand 2
    await assert_kill(workers[1], SHUTDOWN)
    await assert_receive((GEN_PRODUCER, frm, (ASK, 2)))
    await assert_kill(workers[2], Atom("crash"))  # temporary: done, pending 1: no ask
    await refute_receive((GEN_PRODUCER, ANY, ANY), timeout=0.02)


async def test_supervisor_terminates_children_on_shutdown() -> None:
    sup, _ = await start_consumer()
    child = await ConsumerSupervisor.start_child(sup, ["ok2"])
    assert child is not None
    mref = beamlet.monitor(child)
    await GenStage.stop(sup)
    await assert_receive(Down(mref, ANY, ANY, SHUTDOWN))


async def test_child_spec_runs_under_a_supervisor() -> None:
    spec = ConsumerSupervisor.child_spec(worker(Starts()), name="jobs", max_restarts=5)
    assert spec.type == "supervisor" and spec.id == "jobs"
    top = await beamlet.Supervisor.start_link([spec], strategy="one_for_one")
    assert top is not None
    assert await ConsumerSupervisor.count_children("jobs") == ChildCounts(1, 0, 0, 0)


async def test_an_erlang_shaped_request_gets_otp_shaped_answers() -> None:
    """The requests as an Elixir node sends them (GenServer calls with atoms)."""
    sup = await ConsumerSupervisor.start_link(worker(Starts()))
    ok, pid = await GenStage.call(sup, (Atom("start_child"), ["ok2"]))
    assert ok == Atom("ok") and type(pid) is Pid
    assert await GenStage.call(sup, Atom("count_children")) == {
        Atom("specs"): 1,
        Atom("active"): 1,
        Atom("supervisors"): 0,
        Atom("workers"): 1,
    }
    assert await GenStage.call(sup, (Atom("terminate_child"), pid)) == Atom("ok")
    assert await GenStage.call(sup, (Atom("terminate_child"), pid)) == (
        Atom("error"),
        Atom("not_found"),
    )
