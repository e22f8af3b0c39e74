"""DynamicSupervisor (docs/semantics.md §9): ports of
lib/elixir/test/elixir/dynamic_supervisor_test.exs (test names are the Elixir test names,
snake_cased) and of the simple_one_for_one cases of supervisor_SUITE.erl."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from supervision_helpers import (
    ERROR,
    check_exit_reason,
    ignore_start,
    start_worker,
    terminate,
    toggled_start,
    wait_down,
)

import beamlet
from beamlet import KILLED, NORMAL, SHUTDOWN, Atom, Crash, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec, StartError
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor, DynamicSupFlags, MaxChildren
from beamlet.behaviours.gen_server import CallExit
from beamlet.behaviours.registry import Registry
from beamlet.behaviours.supervisor import (
    RESTARTING,
    AlreadyStarted,
    ChildCounts,
    ChildInfo,
    ChildNotFound,
    InvalidSupervisorFlags,
    Supervisor,
)
from beamlet.testing import assert_receive, refute_receive

DS = DynamicSupervisor


# --- workers (the Elixir test's Task children and current_module_worker) ----------------


async def sleepy(parent: Pid) -> None:
    """Task.start_link(Process.sleep(:infinity)): does not trap exits."""
    await beamlet.receive("never")


async def start_sleepy(*_: Any) -> Pid:
    return beamlet.spawn_link(sleepy, beamlet.self())


def sleepy_worker(**kw: Any) -> ChildSpec:
    return ChildSpec(id="Task", start=start_sleepy, **kw)


def fun_worker(fn: Any, **kw: Any) -> ChildSpec:
    """{Task, fun}: runs `fn` in a linked process."""

    async def start() -> Pid:
        return beamlet.spawn_link(fn)

    return ChildSpec(id="Task", start=start, **kw)


async def start_value(value: str) -> Any:
    """current_module_worker's start_link/1."""
    match value:
        case "ok2":
            return await start_sleepy()
        case "error":
            raise StartError(Atom("found"))
        case "ignore":
            return None
        case "unknown":
            return Atom("unknown")
    raise AssertionError(value)


def restart_worker(value: str, **kw: Any) -> ChildSpec:
    """current_module_worker([:restart, value]): the first start succeeds, later ones
    (the restarts) behave as `value`."""
    started = [False]

    async def start() -> Any:
        if started[0]:
            return await start_value(value)
        started[0] = True
        return await start_sleepy()

    return ChildSpec(id="DynamicSupervisorTest", start=start, **kw)


def value_worker(value: str, **kw: Any) -> ChildSpec:
    return ChildSpec(id="DynamicSupervisorTest", start=start_value, args=(value,), **kw)


async def assert_kill(pid: Pid, reason: Any) -> None:
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, reason)
    await assert_receive(lambda m: type(m) is Down and m.ref == ref)


async def start_ds(**kw: Any) -> Pid:
    pid = await DS.start_link(**kw)
    assert pid is not None
    return pid


class Simple(DynamicSupervisor):
    async def init(self, arg: Any) -> Any:
        return arg


# --- top-level tests ----------------------------------------------------------------


async def test_can_be_supervised_directly() -> None:
    children = [DS.child_spec(name="dyn_sup_spec_test")]
    sup = await Supervisor.start_link(children, strategy="one_for_one")
    assert sup is not None
    assert await DS.which_children("dyn_sup_spec_test") == []
    [info] = await Supervisor.which_children(sup)
    assert (info.id, info.type) == ("dyn_sup_spec_test", "supervisor")


async def test_multiple_supervisors_can_be_supervised_and_identified_with_simple_child_spec() -> (
    None
):
    await Registry.start_link(keys="unique", name="DynSup.Registry")
    via = Registry.via("DynSup.Registry", "via_name")
    children = [DS.child_spec(name="simple_name"), DS.child_spec(name=via)]
    supsup = await Supervisor.start_link(children, strategy="one_for_one")
    assert supsup is not None
    no_name_dynsup = await Supervisor.start_child(supsup, DS.child_spec())
    assert await DS.which_children("simple_name") == []
    assert await DS.which_children(via) == []
    assert await DS.which_children(no_name_dynsup) == []
    with pytest.raises(AlreadyStarted) as e:
        await Supervisor.start_child(supsup, DS.child_spec())
    assert e.value.pid == no_name_dynsup


async def test_generates_child_spec() -> None:
    spec = Simple.child_spec(["hello"])
    assert (spec.id, spec.start, spec.args, spec.type) == (
        Simple,
        Simple.start_link,
        (["hello"],),
        "supervisor",
    )
    custom = Simple.child_spec(["hello"], id="id", restart="temporary", shutdown="infinity")
    assert (custom.id, custom.restart, custom.shutdown, custom.type) == (
        "id",
        "temporary",
        "infinity",
        "supervisor",
    )


async def test_init_set_default_options() -> None:
    assert DynamicSupFlags() == DynamicSupFlags("one_for_one", 3, 5.0, None, ())


async def test_start_link_with_non_ok_init() -> None:
    beamlet.process_flag(trap_exit=True)
    for bad, what in [
        ({"strategy": "unknown"}, "strategy"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"max_children": -1}, "max_children"),
        ({"extra_arguments": -1}, "extra_arguments"),
        ({"auto_shutdown": "any_significant"}, "auto_shutdown"),
    ]:
        with pytest.raises(InvalidSupervisorFlags, match=what):
            await Simple.start_link(bad)
    with pytest.raises(StartError) as e:
        await Simple.start_link("unknown")
    assert e.value.reason == (Atom("bad_return"), (Simple, Atom("init"), "unknown"))
    assert await Simple.start_link(None) is None
    with pytest.raises(InvalidSupervisorFlags, match="strategy"):
        await DS.start_link(strategy="one_for_all")
    await refute_receive(Exit, timeout=0.05)


async def test_start_link_with_registered_process() -> None:
    pid = await Simple.start_link({}, name="DynamicSupervisorTest")
    assert pid is not None
    info = beamlet.process_info(beamlet.self())
    assert info is not None and pid in info.links
    assert beamlet.whereis("DynamicSupervisorTest") == pid
    await DS.stop("DynamicSupervisorTest")
    assert beamlet.whereis("DynamicSupervisorTest") is None


# --- describe "start_child/2" -------------------------------------------------------


async def test_start_child_supports_new_child_spec_as_tuple() -> None:
    sup = await start_ds()
    child = {"id": "Task", "restart": "temporary", "start": start_sleepy}
    assert isinstance(await DS.start_child(sup, child), Pid)


async def test_start_child_supports_new_child_spec() -> None:
    class Sleeper:
        @classmethod
        def child_spec(cls, arg: Any) -> ChildSpec:
            return ChildSpec(id=cls, start=start_sleepy, args=(arg,))

    sup = await start_ds()
    assert isinstance(await DS.start_child(sup, (Sleeper, "x")), Pid)


async def test_start_child_supports_extra_arguments() -> None:
    parent = beamlet.self()

    async def fun() -> None:
        beamlet.send(parent, "from_child")

    async def task_start_link(fn: Any) -> Pid:
        return beamlet.spawn_link(fn)

    sup = await start_ds(extra_arguments=[fun])
    child = {"id": "Task", "restart": "temporary", "start": task_start_link}
    assert isinstance(await DS.start_child(sup, child), Pid)
    await assert_receive("from_child")


async def test_start_child_with_invalid_child_spec() -> None:
    with pytest.raises(InvalidChildSpec, match="missing_id"):
        await DS.start_child("not_used", {})
    with pytest.raises(InvalidChildSpec, match="start must be callable"):
        await DS.start_child("not_used", {"id": 1, "start": ("Task", "foo", "bar")})
    with pytest.raises(InvalidChildSpec, match="shutdown"):
        await DS.start_child("not_used", {"id": 1, "start": start_sleepy, "shutdown": -1})
    with pytest.raises(InvalidChildSpec, match="invalid_significant"):
        await DS.start_child(
            "not_used",
            {"id": 1, "start": start_sleepy, "significant": True, "restart": "temporary"},
        )


async def test_start_child_with_different_returns() -> None:
    sup = await start_ds()
    assert isinstance(await DS.start_child(sup, value_worker("ok2")), Pid)
    assert await DS.start_child(sup, value_worker("ignore")) is None
    with pytest.raises(StartError) as e:
        await DS.start_child(sup, value_worker("error"))
    assert e.value.reason == Atom("found")
    with pytest.raises(StartError) as e:
        await DS.start_child(sup, value_worker("unknown"))
    assert e.value.reason == Atom("unknown")


async def test_start_child_with_throw_error_exit() -> None:
    async def raising() -> Pid:
        raise RuntimeError("oops")

    async def exiting() -> Pid:
        beamlet.exit(Atom("oops"))
        raise AssertionError

    sup = await start_ds()
    with pytest.raises(StartError) as e:
        await DS.start_child(sup, ChildSpec("c", raising))
    assert isinstance(e.value.reason, Crash) and isinstance(e.value.reason.exception, RuntimeError)
    assert isinstance(e.value.reason.stacktrace, tuple) and e.value.reason.stacktrace
    with pytest.raises(StartError) as e:
        await DS.start_child(sup, ChildSpec("c", exiting))
    assert e.value.reason == Atom("oops")
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_start_child_with_max_children() -> None:
    sup = await start_ds(max_children=0)
    with pytest.raises(MaxChildren) as e:
        await DS.start_child(sup, value_worker("ok2"))
    assert e.value.reason == Atom("max_children")


async def test_temporary_child_is_not_restarted_regardless_of_reason() -> None:
    child = value_worker("ok2", restart="temporary")
    sup = await start_ds()
    pid = await DS.start_child(sup, child)
    assert pid is not None
    await assert_kill(pid, SHUTDOWN)
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)
    pid = await DS.start_child(sup, child)
    assert pid is not None
    await assert_kill(pid, Atom("whatever"))
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_transient_child_is_restarted_unless_normal_shutdown_shutdown_tuple() -> None:
    child = value_worker("ok2", restart="transient")
    sup = await start_ds()
    for reason in (SHUTDOWN, (SHUTDOWN, Atom("signal"))):
        pid = await DS.start_child(sup, child)
        assert pid is not None
        await assert_kill(pid, reason)
        assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)
    pid = await DS.start_child(sup, child)
    assert pid is not None
    await assert_kill(pid, Atom("whatever"))
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_permanent_child_is_restarted_regardless_of_reason() -> None:
    child = value_worker("ok2", restart="permanent")
    sup = await start_ds(max_restarts=100_000)
    for n, reason in enumerate((SHUTDOWN, (SHUTDOWN, Atom("signal")), Atom("whatever")), 1):
        pid = await DS.start_child(sup, child)
        assert pid is not None
        await assert_kill(pid, reason)
        assert await DS.count_children(sup) == ChildCounts(n, n, 0, n)


async def test_child_is_restarted_with_different_values() -> None:
    sup = await start_ds(max_restarts=100_000)
    child1 = await DS.start_child(sup, restart_worker("ok2"))
    assert await DS.which_children(sup) == [ChildInfo(None, child1, "worker", ())]
    assert child1 is not None
    await assert_kill(child1, SHUTDOWN)
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)

    child2 = await DS.start_child(sup, restart_worker("ok2"))
    [c1, c2] = await DS.which_children(sup)
    assert isinstance(c1.pid, Pid) and c2.pid == child2
    assert child2 is not None
    await assert_kill(child2, SHUTDOWN)
    assert await DS.count_children(sup) == ChildCounts(2, 2, 0, 2)

    child3 = await DS.start_child(sup, restart_worker("ignore"))
    assert len(await DS.which_children(sup)) == 3
    assert child3 is not None
    await assert_kill(child3, SHUTDOWN)  # its restart says ignore: it is dropped
    assert await DS.count_children(sup) == ChildCounts(2, 2, 0, 2)

    child4 = await DS.start_child(sup, restart_worker("error"))
    assert len(await DS.which_children(sup)) == 3
    assert child4 is not None
    await assert_kill(child4, SHUTDOWN)  # its restarts fail: retried
    assert (await DS.count_children(sup))[:2] == (3, 2)

    child5 = await DS.start_child(sup, restart_worker("unknown"))
    infos = await DS.which_children(sup)
    assert [i.id for i in infos] == [None] * 4
    assert [i.pid for i in infos][2] == RESTARTING
    assert child5 is not None
    await assert_kill(child5, SHUTDOWN)
    assert (await DS.count_children(sup))[:2] == (4, 2)


async def test_restarting_on_init_children_counted_in_max_children() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds(max_children=1, max_restarts=100_000)
    child_pid = await DS.start_child(sup, restart_worker("error"))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    assert (await DS.count_children(sup)).workers == 1
    with pytest.raises(MaxChildren):
        await DS.start_child(sup, restart_worker("ok2"))


async def test_restarting_on_exit_children_counted_in_max_children() -> None:
    sup = await start_ds(max_children=1, max_restarts=100_000)
    child_pid = await DS.start_child(sup, value_worker("ok2"))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)
    with pytest.raises(MaxChildren):
        await DS.start_child(sup, value_worker("ok2"))


async def test_restarting_a_child_with_extra_arguments_successfully_restarts_child() -> None:
    parent = beamlet.self()

    async def fun() -> None:
        beamlet.send(parent, "from_child")
        await beamlet.receive("never")

    async def task_start_link(fn: Any) -> Pid:
        return beamlet.spawn_link(fn)

    sup = await start_ds(extra_arguments=[fun])
    child = await DS.start_child(
        sup, {"id": "Task", "restart": "transient", "start": task_start_link}
    )
    assert isinstance(child, Pid)
    await assert_receive("from_child")
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)
    await assert_kill(child, Atom("oops"))
    await assert_receive("from_child")
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_child_is_restarted_when_trying_again() -> None:
    me = beamlet.self()
    flag = [False]

    async def try_again() -> Pid:
        if flag[0]:
            flag[0] = False
            beamlet.send(me, ("try_again", False))
            raise StartError(Atom("try_again"))
        flag[0] = True
        beamlet.send(me, ("try_again", True))
        return await start_sleepy()

    sup = await start_ds(max_restarts=2)
    child_pid = await DS.start_child(sup, ChildSpec("c", try_again))
    await assert_receive(("try_again", True))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    await assert_receive(("try_again", False))
    await assert_receive(("try_again", True))
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_child_triggers_maximum_restarts() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds(max_restarts=1)
    child_pid = await DS.start_child(sup, restart_worker("error"))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)


async def test_child_triggers_maximum_intensity_when_trying_again() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds(max_restarts=10)
    child_pid = await DS.start_child(sup, restart_worker("error"))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)


async def test_start_child_with_valid_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    for n in (0.001, 1):
        pid = await DS.start_child(sup, sleepy_worker(shutdown=n))
        assert pid is not None
        await assert_kill(pid, SHUTDOWN)


# --- describe "terminate/2" -----------------------------------------------------------


async def _three(sup: Pid, child: ChildSpec) -> list[Pid]:
    pids = [await DS.start_child(sup, child) for _ in range(3)]
    assert all(isinstance(p, Pid) for p in pids)
    return pids  # type: ignore[return-value]


async def _kill_sup_and_collect(sup: Pid, pids: list[Pid]) -> list[Any]:
    refs = {beamlet.monitor(p): i for i, p in enumerate(pids)}
    await assert_kill(sup, SHUTDOWN)
    out: list[Any] = [None] * len(pids)
    for _ in pids:
        d = await assert_receive(lambda m: type(m) is Down and m.ref in refs, timeout=5)
        out[refs[d.ref]] = d.reason
    return out


async def test_terminates_children_with_brutal_kill() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    pids = await _three(sup, sleepy_worker(shutdown="brutal_kill"))
    assert await _kill_sup_and_collect(sup, pids) == [KILLED] * 3


async def test_terminates_children_with_infinity_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    pids = await _three(sup, sleepy_worker(shutdown="infinity"))
    assert await _kill_sup_and_collect(sup, pids) == [SHUTDOWN] * 3


def _trapping_fun(parent: Pid, reason: Any) -> Any:
    async def fun() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, "ready")
        await beamlet.receive()
        beamlet.exit(reason)

    return fun


async def test_terminates_children_with_infinity_shutdown_and_abnormal_reason() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    oops = (SHUTDOWN, Atom("oops"))
    pids = await _three(
        sup,
        fun_worker(_trapping_fun(beamlet.self(), oops), shutdown="infinity", restart="temporary"),
    )
    for _ in range(3):
        await assert_receive("ready")
    assert await _kill_sup_and_collect(sup, pids) == [oops] * 3


async def test_terminates_children_with_integer_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    pids = await _three(sup, sleepy_worker(shutdown=1.0))
    assert await _kill_sup_and_collect(sup, pids) == [SHUTDOWN] * 3


async def test_terminates_children_with_integer_shutdown_and_abnormal_reason() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    oops = (SHUTDOWN, Atom("oops"))
    pids = await _three(
        sup, fun_worker(_trapping_fun(beamlet.self(), oops), shutdown=1.0, restart="temporary")
    )
    for _ in range(3):
        await assert_receive("ready")
    assert await _kill_sup_and_collect(sup, pids) == [oops] * 3


@pytest.mark.virtual_time
async def test_terminates_children_with_expired_integer_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    parent = beamlet.self()

    async def tmt() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, "ready")
        await beamlet.receive("never")

    child1 = await DS.start_child(sup, sleepy_worker(shutdown=0.001))
    child2 = await DS.start_child(sup, fun_worker(tmt, shutdown=0.001))
    child3 = await DS.start_child(sup, sleepy_worker(shutdown=0.001))
    await assert_receive("ready")
    reasons = await _kill_sup_and_collect(sup, [child1, child2, child3])  # type: ignore[list-item]
    assert reasons == [SHUTDOWN, KILLED, SHUTDOWN]


async def test_terminates_children_with_permanent_restart_and_normal_reason() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    pids = await _three(
        sup,
        fun_worker(_trapping_fun(beamlet.self(), NORMAL), shutdown="infinity", restart="permanent"),
    )
    for _ in range(3):
        await assert_receive("ready")
    assert await _kill_sup_and_collect(sup, pids) == [NORMAL] * 3


async def test_terminates_with_mixed_children() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    c1 = await DS.start_child(sup, sleepy_worker(shutdown="infinity"))
    c2 = await DS.start_child(sup, sleepy_worker(shutdown="brutal_kill"))
    assert await _kill_sup_and_collect(sup, [c1, c2]) == [SHUTDOWN, KILLED]  # type: ignore[list-item]


@pytest.mark.virtual_time
async def test_terminates_children_concurrently() -> None:
    """§8.5: all children get the signal at once; the total time is the longest
    shutdown, not the sum."""
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    parent = beamlet.self()

    async def slow() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, "ready")
        await beamlet.receive()
        await beamlet.sleep(2.0)

    for _ in range(5):
        await DS.start_child(sup, fun_worker(slow, shutdown=10.0, restart="temporary"))
    for _ in range(5):
        await assert_receive("ready")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await DS.stop(sup)
    assert 2.0 <= loop.time() - t0 < 2.5


# --- describe "terminate_child/2" --------------------------------------------------------


async def test_terminates_child_with_brutal_kill() -> None:
    sup = await start_ds()
    child_pid = await DS.start_child(sup, sleepy_worker(shutdown="brutal_kill"))
    assert child_pid is not None
    ref = beamlet.monitor(child_pid)
    await DS.terminate_child(sup, child_pid)
    d = await assert_receive(Down)
    assert d.ref == ref and d.reason == KILLED
    with pytest.raises(ChildNotFound):
        await DS.terminate_child(sup, child_pid)
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_terminates_child_with_integer_shutdown() -> None:
    sup = await start_ds()
    child_pid = await DS.start_child(sup, sleepy_worker(shutdown=1.0))
    assert child_pid is not None
    ref = beamlet.monitor(child_pid)
    await DS.terminate_child(sup, child_pid)
    d = await assert_receive(Down)
    assert d.ref == ref and d.reason == SHUTDOWN
    with pytest.raises(ChildNotFound):
        await DS.terminate_child(sup, child_pid)
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_terminates_restarting_child() -> None:
    sup = await start_ds(max_restarts=100_000)
    child_pid = await DS.start_child(sup, restart_worker("error", restart="permanent"))
    assert child_pid is not None
    await assert_kill(child_pid, SHUTDOWN)
    await DS.terminate_child(sup, child_pid)
    with pytest.raises(ChildNotFound):
        await DS.terminate_child(sup, child_pid)
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


# --- supervisor_SUITE simple_one_for_one cases ------------------------------------------


async def test_sup_start_ignore_temporary_child_start_child_simple() -> None:
    sup = await start_ds()
    assert await DS.start_child(sup, ChildSpec("child1", ignore_start, restart="temporary")) is None
    cpid2 = await DS.start_child(sup, ChildSpec("child1", start_worker, restart="temporary"))
    assert await DS.which_children(sup) == [(None, cpid2, "worker", ())]
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_sup_start_ignore_permanent_child_start_child_simple() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    assert await DS.start_child(sup, ChildSpec("child1", ignore_start)) is None
    cpid2 = await DS.start_child(sup, ChildSpec("child1", start_worker))
    assert await DS.which_children(sup) == [(None, cpid2, "worker", ())]
    assert await DS.count_children(sup) == ChildCounts(1, 1, 0, 1)
    beamlet.exit(sup, SHUTDOWN)  # regression: terminates without error
    await check_exit_reason(sup, SHUTDOWN)


async def test_child_adm_simple() -> None:
    sup = await start_ds(name="sup_test")
    child = ChildSpec("child", start_worker, shutdown=1.0)
    assert await DS.which_children("sup_test") == []
    assert await DS.count_children("sup_test") == ChildCounts(0, 0, 0, 0)
    with pytest.raises(CallExit) as e:
        await DS.start_child("foo", child)
    assert e.value.cause == beamlet.NOPROC
    cpid1 = await DS.start_child("sup_test", child)
    assert await DS.which_children("sup_test") == [(None, cpid1, "worker", ())]
    cpid2 = await DS.start_child("sup_test", child)
    assert set(await DS.which_children("sup_test")) == {
        (None, cpid1, "worker", ()),
        (None, cpid2, "worker", ()),
    }
    assert await DS.count_children("sup_test") == ChildCounts(2, 2, 0, 2)
    with pytest.raises(ChildNotFound):  # an id is not a pid
        await DS.terminate_child("sup_test", "child1")  # type: ignore[arg-type]
    assert cpid1 is not None
    await DS.terminate_child("sup_test", cpid1)
    assert await DS.count_children("sup_test") == ChildCounts(1, 1, 0, 1)
    assert not beamlet.is_alive(cpid1)
    with pytest.raises(ChildNotFound):  # Elixir: a dead pid is not_found
        await DS.terminate_child("sup_test", cpid1)
    no_child = beamlet.spawn_link(sleepy, beamlet.self())
    with pytest.raises(ChildNotFound):
        await DS.terminate_child("sup_test", no_child)
    assert beamlet.is_alive(no_child)
    del sup


async def test_simple_one_for_one() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds(max_restarts=2, max_seconds=3600)
    child = ChildSpec("child", start_worker, shutdown=1.0)
    cpid1 = await DS.start_child(sup, child)
    cpid2 = await DS.start_child(sup, child)
    assert cpid1 and cpid2
    await terminate(cpid1, "abnormal")
    children = await DS.which_children(sup)
    assert len(children) == 2 and any(c.pid == cpid2 for c in children)
    assert await DS.count_children(sup) == ChildCounts(2, 2, 0, 2)
    await terminate(cpid2, "abnormal")
    [first, *_] = await DS.which_children(sup)
    assert isinstance(first.pid, Pid)
    await terminate(first.pid, "abnormal")
    await check_exit_reason(sup, SHUTDOWN)


@pytest.mark.virtual_time
async def test_simple_one_for_one_shutdown() -> None:
    """Children are shut down concurrently within the spec's shutdown time."""
    beamlet.process_flag(trap_exit=True)
    shutdown_time = 1.0
    sup = await start_ds()

    def slow_stopper(delay: float) -> Any:
        async def body(parent: Pid) -> None:
            beamlet.process_flag(trap_exit=True)
            beamlet.send(parent, ("up", beamlet.self()))
            await beamlet.receive(Exit)
            await beamlet.sleep(delay)
            beamlet.exit(SHUTDOWN)

        async def start() -> Pid:
            pid = beamlet.spawn_link(body, beamlet.self())
            await beamlet.receive(("up", pid))  # it traps exits now
            return pid

        return start

    for delay in (shutdown_time, shutdown_time, 5 * shutdown_time):
        spec = ChildSpec("c", slow_stopper(delay), shutdown=2 * shutdown_time)
        await DS.start_child(sup, spec)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)
    elapsed = loop.time() - t0
    assert shutdown_time <= elapsed < 5 * shutdown_time


async def test_simple_one_for_one_escalation() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds(max_restarts=4, max_seconds=3600)
    calls = [0]

    async def error_after_first() -> Pid:
        calls[0] += 1
        if calls[0] > 1:
            raise StartError(ERROR)
        return await start_worker()

    cpid1 = await DS.start_child(sup, ChildSpec("child", error_after_first))
    cpid2 = await DS.start_child(sup, ChildSpec("child", start_worker))
    assert cpid1 and cpid2
    beamlet.link(cpid2)
    await terminate(cpid1, "abnormal")
    await check_exit_reason(sup, SHUTDOWN)
    await check_exit_reason(cpid2, SHUTDOWN)


async def test_simple_one_for_one_restart_ignore() -> None:
    """A restart whose start function says ignore drops the child."""
    sup = await start_ds()
    cpid = await DS.start_child(sup, restart_worker("ignore"))
    assert cpid is not None
    await assert_kill(cpid, Atom("oops"))
    assert await DS.which_children(sup) == []


async def test_count_children() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    child = ChildSpec("child", start_sleepy, restart="temporary")
    for _ in range(1000):
        await DS.start_child(sup, child)
    children = await DS.which_children(sup)
    assert await DS.count_children(sup) == ChildCounts(1000, 1000, 0, 1000)
    for _ in range(1000):
        await DS.start_child(sup, child)
    assert await DS.count_children(sup) == ChildCounts(2000, 2000, 0, 2000)
    children2 = await DS.which_children(sup)
    assert len(children) == 1000 and len(children2) == 2000
    assert children2 == await DS.which_children(sup)
    for info in children2:
        await terminate(info.pid, "kill")  # type: ignore[arg-type]
    assert await DS.count_children(sup) == ChildCounts(0, 0, 0, 0)


@pytest.mark.virtual_time
async def test_hanging_restart_loop_simple() -> None:
    beamlet.process_flag(trap_exit=True)
    state = {"fail": False}

    async def slow_start() -> Pid:
        if state["fail"]:
            await beamlet.sleep(2.0)
            raise StartError(ERROR)
        return await start_worker()

    sup = await start_ds(name="sup_test", max_restarts=8, max_seconds=10)
    child1 = ChildSpec("child1", slow_start, shutdown="brutal_kill")
    cpid1 = await DS.start_child(sup, child1)
    assert cpid1 is not None
    beamlet.link(cpid1)
    state["fail"] = True
    beamlet.send(cpid1, ("exit", ERROR))
    await wait_down(cpid1)
    assert await DS.which_children(sup) == [(None, RESTARTING, "worker", ())]
    assert (await DS.count_children(sup))[:2] == (1, 0)
    await DS.terminate_child(sup, cpid1)
    await check_exit_reason(cpid1, ERROR)
    assert await DS.which_children(sup) == []

    state["fail"] = False
    cpid2 = await DS.start_child(sup, child1)
    assert cpid2 is not None
    beamlet.link(cpid2)
    state["fail"] = True
    beamlet.send(cpid2, ("exit", ERROR))
    await check_exit_reason(cpid2, ERROR)
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)
    assert beamlet.whereis("sup_test") is None


@pytest.mark.virtual_time
async def test_sup_stop_timeout_dynamic() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    c1 = await DS.start_child(sup, ChildSpec("c", start_worker, shutdown=1.0))
    c2 = await DS.start_child(sup, ChildSpec("c", start_worker, shutdown=1.0))
    assert c1 and c2
    beamlet.link(c1)
    beamlet.link(c2)
    beamlet.send(c2, ("sleep", 200.0))
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(c1, SHUTDOWN)
    await check_exit_reason(c2, KILLED)


async def test_sup_stop_brutal_kill_dynamic() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    c1 = await DS.start_child(sup, ChildSpec("c", start_worker, shutdown="brutal_kill"))
    c2 = await DS.start_child(sup, ChildSpec("c", start_worker, shutdown="brutal_kill"))
    assert c1 and c2
    beamlet.link(c1)
    beamlet.link(c2)
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(c1, KILLED)
    await check_exit_reason(c2, KILLED)


async def test_sup_stop_non_shutdown_exit_dynamic() -> None:
    """A parent exit with another reason still shuts the children down, and the
    supervisor exits with that reason."""
    beamlet.process_flag(trap_exit=True)
    sup = await start_ds()
    c1 = await DS.start_child(sup, ChildSpec("c", start_worker, shutdown=1.0))
    assert c1 is not None
    beamlet.link(c1)
    beamlet.exit(sup, Atom("non_shutdown"))
    await check_exit_reason(c1, SHUTDOWN)
    await check_exit_reason(sup, Atom("non_shutdown"))


async def test_which_children_simple_one_for_one() -> None:
    sup = await start_ds()
    pids = [await DS.start_child(sup, ChildSpec("c", start_sleepy)) for _ in range(3)]
    await DS.start_child(sup, DS.child_spec())
    infos = await DS.which_children(sup)
    assert [i.pid for i in infos[:3]] == pids
    assert [(i.id, i.type) for i in infos] == [(None, "worker")] * 3 + [(None, "supervisor")]
    assert await DS.count_children(sup) == ChildCounts(4, 4, 1, 3)


async def test_already_started_outside_supervisor_dynamic() -> None:
    async def start_named() -> Pid:
        holder = beamlet.whereis("child_name")
        if holder is not None:
            raise StartError((Atom("already_started"), holder))
        pid = await start_sleepy()
        beamlet.register("child_name", pid)
        return pid

    sup = await start_ds()
    first = await DS.start_child(sup, ChildSpec("c", start_named))
    with pytest.raises(AlreadyStarted) as e:
        await DS.start_child(sup, ChildSpec("c", start_named))
    assert e.value.pid == first


async def test_toggled_restarts_eventually_succeed() -> None:
    """A failing restart retried through the mailbox succeeds once the cause is gone."""
    state = {"fail": False}
    sup = await start_ds(max_restarts=100_000)
    cpid = await DS.start_child(sup, ChildSpec("c", toggled_start(state)))
    assert cpid is not None
    state["fail"] = True
    await terminate(cpid, "abnormal")
    assert [i.pid for i in await DS.which_children(sup)] == [RESTARTING]
    state["fail"] = False
    while [i.pid for i in await DS.which_children(sup)] == [RESTARTING]:
        pass
    [info] = await DS.which_children(sup)
    assert isinstance(info.pid, Pid) and info.pid != cpid
