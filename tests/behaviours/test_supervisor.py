"""Supervisor (docs/semantics.md §8): ports of lib/stdlib/test/supervisor_SUITE.erl and
lib/elixir/test/elixir/supervisor_test.exs. Each test is named after its upstream case.

Erlang `{ok, Pid}` / `{error, R}` results map to a return value / a typed exception;
`undefined` maps to None. The children are the tiny workers of supervision_helpers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from supervision_helpers import (
    DIED,
    check_exit,
    check_exit_reason,
    fail_after_first,
    ignore_start,
    spec,
    start_worker,
    terminate,
    toggled_start,
    wait_down,
    worker,
)

import beamlet
from beamlet import KILLED, NORMAL, SHUTDOWN, Atom, Crash, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec, StartError
from beamlet.behaviours.gen_server import CallExit
from beamlet.behaviours.supervisor import (
    RESTARTING,
    AlreadyPresent,
    AlreadyStarted,
    ChildCounts,
    ChildInfo,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    InvalidSupervisorFlags,
    Supervisor,
    SupFlags,
    check_childspecs,
    child_spec,
)
from beamlet.testing import (
    assert_receive,
    refute_receive,
    start_supervised,
    stop_supervised,
    supervised_scope,
)

FAILED_TO_START_CHILD = Atom("failed_to_start_child")
ERROR = Atom("error")


async def start_sup(
    strategy: str = "one_for_one",
    intensity: int = 2,
    period: float = 3600,
    children: list[Any] | None = None,
    **kw: Any,
) -> Pid:
    """supervisor_SUITE's start_link/1: a supervisor registered as sup_test."""
    pid = await Supervisor.start_link(
        children or [],
        name="sup_test",
        strategy=strategy,  # type: ignore[arg-type]
        max_restarts=intensity,
        max_seconds=period,
        **kw,
    )
    assert pid is not None
    return pid


async def counts(sup: Any = "sup_test") -> list[int]:
    return list(await Supervisor.count_children(sup))


async def pid_of(sup: Any, child_id: Any) -> Any:
    for info in await Supervisor.which_children(sup):
        if info.id == child_id:
            return info.pid
    raise AssertionError(f"no child {child_id!r}")


class InitSup(Supervisor):
    """supervisor_SUITE's callback module: init(Arg) returns Arg (or fails)."""

    async def init(self, arg: Any) -> Any:
        if arg == "fail":
            raise ValueError("badmatch")
        return arg


# --- group sup_start ---------------------------------------------------------------


async def test_sup_start_normal() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await start_sup()
    assert beamlet.whereis("sup_test") == pid
    beamlet.exit(pid, SHUTDOWN)
    await check_exit_reason(pid, SHUTDOWN)


async def test_sup_start_ignore_init() -> None:
    beamlet.process_flag(trap_exit=True)
    assert await InitSup.start_link(None, name="sup_test") is None
    assert beamlet.whereis("sup_test") is None
    await refute_receive(Exit)  # §7.1.3: the EXIT of the ignored start is consumed


async def test_sup_start_ignore_child() -> None:
    beamlet.process_flag(trap_exit=True)
    await start_sup()
    assert await Supervisor.start_child("sup_test", spec("child1", ignore_start)) is None
    cpid2 = await Supervisor.start_child("sup_test", spec("child2"))
    assert isinstance(cpid2, Pid)
    assert await Supervisor.which_children("sup_test") == [
        ("child2", cpid2, "worker", ()),
        ("child1", None, "worker", ()),
    ]
    assert await counts() == [2, 1, 0, 2]


async def test_sup_start_ignore_temporary_child() -> None:
    beamlet.process_flag(trap_exit=True)
    child1 = spec("child1", ignore_start, restart="temporary")
    child2 = spec("child2", restart="temporary")
    await start_sup(children=[child1, child2])
    [info] = await Supervisor.which_children("sup_test")
    assert info.id == "child2" and isinstance(info.pid, Pid)
    assert await counts() == [1, 1, 0, 1]


async def test_sup_start_ignore_temporary_child_start_child() -> None:
    beamlet.process_flag(trap_exit=True)
    await start_sup()
    child1 = spec("child1", ignore_start, restart="temporary")
    assert await Supervisor.start_child("sup_test", child1) is None
    cpid2 = await Supervisor.start_child("sup_test", spec("child2", restart="temporary"))
    assert await Supervisor.which_children("sup_test") == [("child2", cpid2, "worker", ())]
    assert await counts() == [1, 1, 0, 1]


async def test_sup_start_error_return() -> None:
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError) as e:
        await InitSup.start_link("invalid", name="sup_test")
    assert e.value.reason == (Atom("bad_return"), (InitSup, Atom("init"), "invalid"))
    await refute_receive(Exit)


async def test_sup_start_fail() -> None:
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError) as e:
        await InitSup.start_link("fail", name="sup_test")
    assert isinstance(e.value.reason, Crash)
    assert isinstance(e.value.reason.exception, ValueError)
    await refute_receive(Exit)  # §7.1.3: no EXIT is left behind
    assert beamlet.whereis("sup_test") is None


async def test_sup_start_fail_kills_non_trapping_caller() -> None:
    """§7.1.2: a linked caller that does not trap exits dies with the start reason."""
    me = beamlet.self()

    async def starter() -> None:
        await Supervisor.start_link([spec("c1"), spec("c2", ignore_start), spec("c3", bad)])
        beamlet.send(me, "not reached")

    async def bad() -> Pid:
        raise StartError(ERROR)

    beamlet.spawn_monitor(starter)
    down = await assert_receive(Down)
    assert down.reason == (SHUTDOWN, (FAILED_TO_START_CHILD, "c3", ERROR))
    await refute_receive("not reached")


async def test_sup_start_failed_to_start_child() -> None:
    """§8.3: started children are stopped in reverse order, the failure is reported as
    (shutdown, (failed_to_start_child, Id, Detail)) and nothing is left running."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()

    async def crash() -> Pid:
        raise RuntimeError("undef")

    children = [
        spec("c1", start_worker, args=(me, "c1")),
        spec("c2", start_worker, args=(me, "c2")),
        spec("c3", crash),
        spec("c4", start_worker, args=(me, "c4")),
    ]
    before = set(beamlet.processes())
    with pytest.raises(StartError) as e:
        await Supervisor.start_link(children, name="sup_test")
    shutdown, (tag, child_id, (exit_tag, crash_reason)) = e.value.reason
    assert (shutdown, tag, child_id, exit_tag) == (
        SHUTDOWN,
        FAILED_TO_START_CHILD,
        "c3",
        Atom("EXIT"),
    )
    assert isinstance(crash_reason, Crash) and isinstance(crash_reason.exception, RuntimeError)
    _, _, c1 = await assert_receive(("started", "c1", Pid))
    _, _, c2 = await assert_receive(("started", "c2", Pid))
    await refute_receive(("started", "c4", Pid))
    assert not beamlet.is_alive(c1) and not beamlet.is_alive(c2)
    assert set(beamlet.processes()) == before
    await refute_receive(Exit)


async def test_sup_start_map() -> None:
    beamlet.process_flag(trap_exit=True)
    child1 = {"id": "child1", "start": start_worker}
    child2 = {"id": "child2", "start": start_worker, "shutdown": "brutal_kill"}
    child3 = {"id": "child3", "start": start_worker, "type": "supervisor"}
    pid = await InitSup.start_link(([child1, child2, child3], {}), name="sup_test")
    s1 = await Supervisor.get_childspec(pid, "child1")
    assert (s1.id, s1.start, s1.restart, s1.shutdown, s1.type) == (
        "child1",
        start_worker,
        "permanent",
        5.0,
        "worker",
    )
    s2 = await Supervisor.get_childspec(pid, "child2")
    assert (s2.restart, s2.shutdown, s2.type) == ("permanent", "brutal_kill", "worker")
    s3 = await Supervisor.get_childspec(pid, "child3")
    assert (s3.restart, s3.shutdown, s3.type) == ("permanent", "infinity", "supervisor")
    with pytest.raises(ChildNotFound):
        await Supervisor.get_childspec(pid, "child4")
    beamlet.exit(pid, SHUTDOWN)
    await check_exit_reason(pid, SHUTDOWN)


async def test_sup_start_map_faulty_specs() -> None:
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(InvalidChildSpec, match="missing_id"):
        await Supervisor.start_link([{"start": start_worker}])
    with pytest.raises(InvalidChildSpec, match="missing_start"):
        await Supervisor.start_link([{"id": "child2"}])
    pid = await Supervisor.start_link([{"id": "child3", "start": start_worker, "silly_flag": 1}])
    assert [i.id for i in await Supervisor.which_children(pid)] == ["child3"]
    with pytest.raises(InvalidChildSpec, match="invalid_child_spec"):
        await Supervisor.start_link(["child4"])
    # the class-based form reports the same errors (init runs in the supervisor)
    with pytest.raises(InvalidChildSpec, match="missing_id"):
        await InitSup.start_link(([{"start": start_worker}], {}))
    await refute_receive(Exit, timeout=0.05)


async def test_sup_start_child_returns_error() -> None:
    beamlet.process_flag(trap_exit=True)
    await start_sup()
    with pytest.raises(StartError) as e:
        await Supervisor.start_child("sup_test", spec("child1", fail_after_first_failing()))
    assert e.value.reason == ERROR
    assert await Supervisor.which_children("sup_test") == []  # the spec is not kept


def fail_after_first_failing() -> Any:
    async def start() -> Pid:
        raise StartError(ERROR)

    return start


async def test_sup_start_restart_child_returns_error() -> None:
    beamlet.process_flag(trap_exit=True)
    await start_sup()
    await Supervisor.start_child("sup_test", spec("child1", fail_after_first()))
    await Supervisor.terminate_child("sup_test", "child1")
    with pytest.raises(StartError) as e:
        await Supervisor.restart_child("sup_test", "child1")
    assert e.value.reason == ERROR
    assert await Supervisor.which_children("sup_test") == [("child1", None, "worker", ())]


# --- group sup_stop ----------------------------------------------------------------


async def test_sup_stop_infinity() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await start_sup()
    c1 = await Supervisor.start_child(
        "sup_test", spec("child1", shutdown="infinity", type="supervisor")
    )
    c2 = await Supervisor.start_child("sup_test", spec("child2", shutdown="infinity"))
    assert c1 is not None and c2 is not None
    beamlet.link(c1)
    beamlet.link(c2)
    beamlet.exit(pid, SHUTDOWN)
    await check_exit_reason(c2, SHUTDOWN)  # reverse start order
    await check_exit_reason(c1, SHUTDOWN)
    await check_exit_reason(pid, SHUTDOWN)


@pytest.mark.virtual_time
async def test_sup_stop_timeout() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await start_sup()
    c1 = await Supervisor.start_child("sup_test", spec("child1", shutdown=1.0))
    c2 = await Supervisor.start_child("sup_test", spec("child2", shutdown=1.0))
    assert c1 is not None and c2 is not None
    beamlet.link(c1)
    beamlet.link(c2)
    beamlet.send(c2, ("sleep", 200.0))
    beamlet.exit(pid, SHUTDOWN)
    await check_exit_reason(c2, KILLED)
    await check_exit_reason(c1, SHUTDOWN)


async def test_sup_stop_brutal_kill() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await start_sup()
    c1 = await Supervisor.start_child("sup_test", spec("child1", shutdown=1.0))
    c2 = await Supervisor.start_child("sup_test", spec("child2", shutdown="brutal_kill"))
    assert c1 is not None and c2 is not None
    beamlet.link(c1)
    beamlet.link(c2)
    beamlet.exit(pid, SHUTDOWN)
    await check_exit_reason(c2, KILLED)
    await check_exit_reason(c1, SHUTDOWN)


async def test_sup_stop_race() -> None:
    """A child that exits on its own while the supervisor is stopping it: the real
    reason is taken from its EXIT (unlink_flush) and the supervisor does not hang."""
    beamlet.process_flag(trap_exit=True)
    pid = await start_sup()
    c1 = await Supervisor.start_child("sup_test", spec("child1", shutdown="infinity"))
    assert c1 is not None
    beamlet.send(c1, ("exit", Atom("on_its_own")))
    await Supervisor.stop(pid)
    await check_exit_reason(pid, NORMAL)


# --- child_adm, child_specs, sup_flags ------------------------------------------------


async def test_child_adm() -> None:
    beamlet.process_flag(trap_exit=True)
    child = spec("child1")
    await start_sup(children=[child])
    [(cid, cpid, ctype, _mods)] = await Supervisor.which_children("sup_test")
    assert (cid, ctype) == ("child1", "worker") and isinstance(cpid, Pid)
    assert await counts() == [1, 1, 0, 1]
    beamlet.link(cpid)

    with pytest.raises(AlreadyStarted) as e:
        await Supervisor.start_child("sup_test", child)
    assert e.value.pid == cpid and e.value.reason == (Atom("already_started"), cpid)

    # termination
    with pytest.raises(ChildNotFound):
        await Supervisor.terminate_child("sup_test", "hej")
    with pytest.raises(CallExit) as x:
        await Supervisor.terminate_child("foo", "child1")
    assert x.value.cause == beamlet.NOPROC and x.value.mfa[0] == "GenServer.call"
    await Supervisor.terminate_child("sup_test", "child1")
    await check_exit_reason(cpid, SHUTDOWN)
    assert await Supervisor.which_children("sup_test") == [("child1", None, "worker", ())]
    assert await counts() == [1, 0, 0, 1]
    await Supervisor.terminate_child("sup_test", "child1")  # not running: fine

    with pytest.raises(AlreadyPresent):
        await Supervisor.start_child("sup_test", child)

    # restart
    cpid2 = await Supervisor.restart_child("sup_test", "child1")
    assert await Supervisor.which_children("sup_test") == [("child1", cpid2, "worker", ())]
    assert await counts() == [1, 1, 0, 1]
    with pytest.raises(ChildRunning):
        await Supervisor.restart_child("sup_test", "child1")
    with pytest.raises(ChildNotFound):
        await Supervisor.restart_child("sup_test", "child2")

    # deletion
    with pytest.raises(ChildRunning):
        await Supervisor.delete_child("sup_test", "child1")
    with pytest.raises(ChildNotFound):
        await Supervisor.delete_child("sup_test", "hej")
    with pytest.raises(beamlet.ProcessExit):
        await Supervisor.delete_child("foo", "child1")
    await Supervisor.terminate_child("sup_test", "child1")
    await Supervisor.delete_child("sup_test", "child1")
    with pytest.raises(ChildNotFound):
        await Supervisor.restart_child("sup_test", "child1")
    assert await Supervisor.which_children("sup_test") == []
    assert await counts() == [0, 0, 0, 0]

    # start
    with pytest.raises(beamlet.ProcessExit):
        await Supervisor.start_child("foo", child)
    cpid3 = await Supervisor.start_child("sup_test", child)
    assert await Supervisor.which_children("sup_test") == [("child1", cpid3, "worker", ())]

    # a pid is not an id for a static supervisor
    with pytest.raises(ChildNotFound):
        await Supervisor.terminate_child("sup_test", cpid3)
    assert await counts() == [1, 1, 0, 1]

    with pytest.raises(CallExit) as x:
        await Supervisor.which_children("foo")
    assert x.value.reason == (
        beamlet.NOPROC,
        ("GenServer.call", "foo", Atom("which_children"), None),
    )
    with pytest.raises(CallExit) as x:
        await Supervisor.count_children("foo")
    assert x.value.cause == beamlet.NOPROC


async def test_extra_return() -> None:
    """The API error cases of extra_return (the `{ok, Pid, Info}` start result itself
    has no equivalent: a start function returns the pid)."""
    beamlet.process_flag(trap_exit=True)
    await start_sup(children=[spec("child1")])
    for api_fn in (Supervisor.terminate_child, Supervisor.delete_child, Supervisor.restart_child):
        with pytest.raises(ChildNotFound):
            await api_fn("sup_test", "hej")
    with pytest.raises(ChildRunning):
        await Supervisor.delete_child("sup_test", "child1")
    with pytest.raises(ChildRunning):
        await Supervisor.restart_child("sup_test", "child1")
    await Supervisor.terminate_child("sup_test", "child1")
    await Supervisor.terminate_child("sup_test", "child1")
    await Supervisor.delete_child("sup_test", "child1")
    assert await counts() == [0, 0, 0, 0]


async def test_child_specs() -> None:
    beamlet.process_flag(trap_exit=True)
    await start_sup()
    with pytest.raises(InvalidChildSpec):
        await Supervisor.start_child("sup_test", "hej")
    with pytest.raises(InvalidChildSpec, match="start must be callable"):
        ChildSpec("child", "mfa")  # type: ignore[arg-type]
    with pytest.raises(InvalidChildSpec, match="restart"):
        await Supervisor.start_child(
            "sup_test", {"id": "c", "start": start_worker, "restart": "prmanent"}
        )
    with pytest.raises(InvalidChildSpec, match="shutdown"):
        await Supervisor.start_child(
            "sup_test", {"id": "c", "start": start_worker, "shutdown": -10}
        )
    with pytest.raises(InvalidChildSpec, match="type"):
        await Supervisor.start_child(
            "sup_test", {"id": "c", "start": start_worker, "type": "wrker"}
        )
    # correct specs
    for ok in (
        spec("child", shutdown="infinity", type="supervisor"),
        spec("child", shutdown=1.0, type="supervisor"),
        spec("child", restart="temporary", modules="dynamic"),
        spec("child", restart="transient"),
        spec("child", shutdown="infinity"),
    ):
        assert check_childspecs([ok]) == [ok]
    with pytest.raises(InvalidChildSpec, match=r"duplicate_child_name.*'child'"):
        check_childspecs([spec("child"), spec("child", restart="temporary")])
    with pytest.raises(InvalidChildSpec, match="duplicate_child_name"):
        await Supervisor.start_link([spec("child"), spec("child")])


async def test_sup_flags() -> None:
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(InvalidSupervisorFlags, match="strategy"):
        await Supervisor.start_link([], strategy="none_for_one")  # type: ignore[arg-type]
    with pytest.raises(InvalidSupervisorFlags, match="strategy"):
        await InitSup.start_link(([], {"strategy": "none_for_one"}))
    with pytest.raises(InvalidSupervisorFlags, match="max_restarts"):
        await Supervisor.start_link([], max_restarts=-1)
    with pytest.raises(InvalidSupervisorFlags, match="max_seconds"):
        await Supervisor.start_link([], max_seconds=0)
    with pytest.raises(InvalidSupervisorFlags, match="max_seconds"):
        await InitSup.start_link(([], {"max_seconds": 0}))
    with pytest.raises(InvalidSupervisorFlags, match="auto_shutdown"):
        await Supervisor.start_link([], auto_shutdown="sometimes")  # type: ignore[arg-type]
    # unexpected flags are ignored
    pid = await InitSup.start_link(([], {"silly_flag": True}))
    assert pid is not None
    await refute_receive(Exit, timeout=0.05)


# --- normal / shutdown / abnormal termination -----------------------------------------


async def _one_child(restart: str) -> Pid:
    await start_sup()
    cpid = await Supervisor.start_child("sup_test", spec("child1", restart=restart))
    assert cpid is not None
    return cpid


async def test_permanent_normal() -> None:
    cpid = await _one_child("permanent")
    await terminate(cpid, "normal")
    [(_, pid, _, _)] = await Supervisor.which_children("sup_test")
    assert isinstance(pid, Pid) and pid != cpid
    assert await counts() == [1, 1, 0, 1]


async def test_transient_normal() -> None:
    cpid = await _one_child("transient")
    await terminate(cpid, "normal")
    assert await Supervisor.which_children("sup_test") == [("child1", None, "worker", ())]
    assert await counts() == [1, 0, 0, 1]


async def test_temporary_normal() -> None:
    cpid = await _one_child("temporary")
    await terminate(cpid, "normal")
    assert await Supervisor.which_children("sup_test") == []
    assert await counts() == [0, 0, 0, 0]


async def test_permanent_shutdown() -> None:
    cpid = await _one_child("permanent")
    await terminate(cpid, SHUTDOWN)
    cpid2 = await pid_of("sup_test", "child1")
    assert isinstance(cpid2, Pid) and cpid2 != cpid
    assert await counts() == [1, 1, 0, 1]
    await terminate(cpid2, (SHUTDOWN, "some_info"))
    cpid3 = await pid_of("sup_test", "child1")
    assert isinstance(cpid3, Pid) and cpid3 != cpid2
    assert await counts() == [1, 1, 0, 1]


async def test_transient_shutdown() -> None:
    cpid = await _one_child("transient")
    await terminate(cpid, SHUTDOWN)
    assert await Supervisor.which_children("sup_test") == [("child1", None, "worker", ())]
    assert await counts() == [1, 0, 0, 1]
    cpid2 = await Supervisor.restart_child("sup_test", "child1")
    assert cpid2 is not None
    await terminate(cpid2, (SHUTDOWN, "some_info"))
    assert await Supervisor.which_children("sup_test") == [("child1", None, "worker", ())]
    assert await counts() == [1, 0, 0, 1]


async def test_temporary_shutdown() -> None:
    cpid = await _one_child("temporary")
    await terminate(cpid, SHUTDOWN)
    assert await Supervisor.which_children("sup_test") == []
    cpid2 = await Supervisor.start_child("sup_test", spec("child1", restart="temporary"))
    assert cpid2 is not None
    await terminate(cpid2, (SHUTDOWN, "some_info"))
    assert await Supervisor.which_children("sup_test") == []
    assert await counts() == [0, 0, 0, 0]


async def test_permanent_abnormal() -> None:
    cpid = await _one_child("permanent")
    await terminate(cpid, "abnormal")
    pid = await pid_of("sup_test", "child1")
    assert isinstance(pid, Pid) and pid != cpid
    assert await counts() == [1, 1, 0, 1]


async def test_transient_abnormal() -> None:
    cpid = await _one_child("transient")
    await terminate(cpid, "abnormal")
    pid = await pid_of("sup_test", "child1")
    assert isinstance(pid, Pid) and pid != cpid
    assert await counts() == [1, 1, 0, 1]


async def test_temporary_abnormal() -> None:
    cpid = await _one_child("temporary")
    await terminate(cpid, "abnormal")
    assert await Supervisor.which_children("sup_test") == []
    assert await counts() == [0, 0, 0, 0]


async def test_temporary_bystander() -> None:
    """A temporary child stopped as collateral of one_for_all/rest_for_one is not
    restarted (its spec is dropped), so the supervisor does not die trying."""
    child1 = spec("child1", shutdown=0.1)
    child2 = spec("child2", shutdown=0.1, restart="temporary")
    sup1 = await Supervisor.start_link([], strategy="one_for_all", max_restarts=2, max_seconds=300)
    sup2 = await Supervisor.start_link([], strategy="rest_for_one", max_restarts=2, max_seconds=300)
    assert sup1 is not None and sup2 is not None
    cpid1 = await Supervisor.start_child(sup1, child1)
    cpid2 = await Supervisor.start_child(sup1, child2)
    cpid3 = await Supervisor.start_child(sup2, child1)
    cpid4 = await Supervisor.start_child(sup2, child2)
    assert cpid1 and cpid2 and cpid3 and cpid4
    await terminate(cpid1, "normal")
    await terminate(cpid3, "normal")
    assert [i.id for i in await Supervisor.which_children(sup1)] == ["child1"]
    assert [i.id for i in await Supervisor.which_children(sup2)] == ["child1"]
    assert beamlet.is_alive(sup1) and beamlet.is_alive(sup2)
    assert not beamlet.is_alive(cpid2) and not beamlet.is_alive(cpid4)


# --- restarts ------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_multiple_restarts() -> None:
    beamlet.process_flag(trap_exit=True)
    child1 = spec("child1", shutdown="brutal_kill")
    sup = await InitSup.start_link(([], SupFlags("one_for_one", 1, 1)), name="sup_test")
    assert sup is not None
    cpid1 = await Supervisor.start_child("sup_test", child1)
    assert cpid1 is not None
    await terminate(cpid1, "abnormal")
    for _ in range(3):
        await beamlet.sleep(2.1)
        [(_, pid, _, _)] = await Supervisor.which_children("sup_test")
        await terminate(pid, "abnormal")
    await Supervisor.terminate_child(sup, "child1")
    await Supervisor.delete_child(sup, "child1")
    assert beamlet.is_alive(sup)


async def test_one_for_one() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("one_for_one", 2)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1"))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2"))
    assert cpid1 and cpid2
    await terminate(cpid1, "abnormal")
    children = await Supervisor.which_children("sup_test")
    assert len(children) == 2 and any(i.pid == cpid2 for i in children)
    assert await counts() == [2, 2, 0, 2]
    # restart intensity: the third restart within the period is one too many
    await terminate(cpid2, "abnormal")
    [(_, pid4, _, _), *_] = await Supervisor.which_children("sup_test")
    await terminate(pid4, "abnormal")
    await check_exit(sup)


async def test_one_for_one_escalation() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("one_for_one", 4)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1", fail_after_first()))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2"))
    assert cpid1 and cpid2
    beamlet.link(cpid2)
    await terminate(cpid1, "abnormal")
    # 1 restart + 4 failed retries > intensity 4: the supervisor gives up
    await check_exit_reason(sup, SHUTDOWN)
    await check_exit_reason(cpid2, SHUTDOWN)


async def test_one_for_all() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("one_for_all", 2)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1"))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2"))
    assert cpid1 and cpid2
    beamlet.link(cpid2)
    await terminate(cpid1, "abnormal")
    await check_exit(cpid2)
    children = await Supervisor.which_children("sup_test")
    assert len(children) == 2
    pids = [i.pid for i in children]
    assert cpid1 not in pids and cpid2 not in pids
    assert await counts() == [2, 2, 0, 2]
    [(_, pid3, _, _), *_] = await Supervisor.which_children("sup_test")
    await terminate(pid3, "abnormal")
    [(_, pid4, _, _), *_] = await Supervisor.which_children("sup_test")
    await terminate(pid4, "abnormal")
    await check_exit(sup)


async def test_one_for_all_escalation() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("one_for_all", 4)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1"))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2", fail_after_first()))
    assert cpid1 and cpid2
    beamlet.link(cpid2)
    await terminate(cpid1, "abnormal")
    await check_exit(cpid2, sup)


def controlled_start(name: str, caller: Pid) -> Any:
    """supervisor_3: the child announces itself to `caller` and waits for "ok" or
    "fail"; the start function returns only when it has the answer."""

    async def start() -> Pid:
        sup = beamlet.self()

        async def child() -> None:
            beamlet.send(caller, (name, beamlet.self()))
            decision = await beamlet.receive(lambda m: m in ("ok", "fail"))
            beamlet.send(sup, ("ack", beamlet.self(), decision))
            if decision == "ok":
                await beamlet.receive("never")  # does not trap exits, like supervisor_3

        pid = beamlet.spawn_link(child)
        ack = await beamlet.receive(
            lambda m: type(m) is tuple and len(m) == 3 and m[0] == "ack" and m[1] == pid
        )
        if ack[2] == "fail":
            await beamlet.receive(lambda m: type(m) is Exit and m.pid == pid)
            raise StartError(NORMAL)
        return pid

    return start


async def _other_child_fails_restart(strategy: str) -> tuple[Pid, Pid]:
    me = beamlet.self()
    children = [
        spec("child1", controlled_start("child1", me)),
        spec("child2", controlled_start("child2", me)),
    ]

    async def starter() -> None:
        sup = await Supervisor.start_link(
            children,
            strategy=strategy,
            max_restarts=3,
            max_seconds=3600,  # type: ignore[arg-type]
        )
        beamlet.send(me, ("sup_pid", sup))
        await beamlet.receive("stop")

    starter_pid = beamlet.spawn_link(starter)
    _, c1 = await assert_receive(("child1", Pid))
    beamlet.send(c1, "ok")
    _, c2 = await assert_receive(("child2", Pid))
    beamlet.send(c2, "ok")
    _, sup = await assert_receive(("sup_pid", Pid))
    beamlet.link(sup)
    beamlet.exit(c1, Atom("die"))
    # let child1 restart but not child2
    _, c1b = await assert_receive(("child1", Pid))
    return starter_pid, c1b


async def test_one_for_all_other_child_fails_restart() -> None:
    beamlet.process_flag(trap_exit=True)
    starter, c1b = await _other_child_fails_restart("one_for_all")
    ref = beamlet.monitor(c1b)
    beamlet.send(c1b, "ok")
    _, c2b = await assert_receive(("child2", Pid))
    beamlet.send(c2b, "fail")
    # the retry restarts the whole group: the restarted child1 is stopped first
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert down.reason == SHUTDOWN
    _, c1c = await assert_receive(("child1", Pid))
    beamlet.send(c1c, "ok")
    _, c2c = await assert_receive(("child2", Pid))
    beamlet.send(c2c, "ok")
    beamlet.send(starter, "stop")
    await check_exit(starter)


async def test_rest_for_one() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("rest_for_one", 2)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1"))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2"))
    cpid3 = await Supervisor.start_child("sup_test", spec("child3"))
    assert cpid1 and cpid2 and cpid3
    beamlet.link(cpid1)
    beamlet.link(cpid3)
    assert await counts() == [3, 3, 0, 3]
    await terminate(cpid2, "abnormal")
    await check_exit(cpid3)  # started after child2: restarted too
    children = await Supervisor.which_children("sup_test")
    pids = [i.pid for i in children]
    assert len(children) == 3 and cpid1 in pids
    assert cpid2 not in pids and cpid3 not in pids
    assert await counts() == [3, 3, 0, 3]
    [(cid3, pid3, _, _), *_] = await Supervisor.which_children("sup_test")
    assert cid3 == "child3"
    await terminate(pid3, "abnormal")
    [_, (cid2, pid4, _, _), *_] = await Supervisor.which_children("sup_test")
    assert cid2 == "child2"
    await terminate(pid4, "abnormal")
    await check_exit(sup)


async def test_rest_for_one_escalation() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup("rest_for_one", 4)
    cpid1 = await Supervisor.start_child("sup_test", spec("child1"))
    cpid2 = await Supervisor.start_child("sup_test", spec("child2", fail_after_first()))
    assert cpid1 and cpid2
    beamlet.link(cpid2)
    await terminate(cpid1, "abnormal")
    await check_exit(cpid2, sup)


async def test_rest_for_one_other_child_fails_restart() -> None:
    beamlet.process_flag(trap_exit=True)
    starter, c1b = await _other_child_fails_restart("rest_for_one")
    beamlet.send(c1b, "ok")
    _, c2b = await assert_receive(("child2", Pid))
    beamlet.send(c2b, "fail")
    # the retry restarts child2 only (it is the first of its group)
    msg = await assert_receive(("child2", Pid), ("child1", Pid))
    assert msg[0] == "child2", "restarted an already started child"
    beamlet.send(msg[1], "ok")
    assert beamlet.is_alive(c1b)
    beamlet.send(starter, "stop")
    await check_exit(starter)


# --- significant children (§8.9) ------------------------------------------------------


async def _significant(
    auto_shutdown: str, restart: str, significant: bool, strategy: str = "one_for_one"
) -> tuple[Pid, Pid]:
    sup = await Supervisor.start_link(
        [spec("child1", restart=restart, significant=significant)],
        strategy=strategy,  # type: ignore[arg-type]
        auto_shutdown=auto_shutdown,  # type: ignore[arg-type]
    )
    assert sup is not None
    [(_, cpid, _, _)] = await Supervisor.which_children(sup)
    return sup, cpid


@pytest.mark.parametrize("auto", ["any_significant", "all_significant"])
async def test_nonsignificant_temporary(auto: str) -> None:
    beamlet.process_flag(trap_exit=True)
    sup, cpid = await _significant(auto, "temporary", False)
    await terminate(cpid, "normal")
    assert await Supervisor.which_children(sup) == []
    await refute_receive(Exit, timeout=0.05)


@pytest.mark.parametrize("auto", ["any_significant", "all_significant"])
async def test_nonsignificant_transient(auto: str) -> None:
    beamlet.process_flag(trap_exit=True)
    sup, cpid = await _significant(auto, "transient", False)
    await terminate(cpid, "normal")
    assert await Supervisor.which_children(sup) == [("child1", None, "worker", ())]
    await refute_receive(Exit, timeout=0.05)


@pytest.mark.parametrize("auto", ["any_significant", "all_significant"])
async def test_significant_temporary(auto: str) -> None:
    beamlet.process_flag(trap_exit=True)
    sup, cpid = await _significant(auto, "temporary", True)
    await terminate(cpid, "abnormal")  # any reason: a temporary child is not restarted
    await check_exit_reason(sup, SHUTDOWN)


@pytest.mark.parametrize("auto", ["any_significant", "all_significant"])
async def test_significant_transient(auto: str) -> None:
    beamlet.process_flag(trap_exit=True)
    sup, cpid = await _significant(auto, "transient", True)
    await terminate(cpid, "abnormal")  # restarted: no auto shutdown
    cpid2 = await pid_of(sup, "child1")
    assert isinstance(cpid2, Pid) and cpid2 != cpid
    await terminate(cpid2, SHUTDOWN)  # clean exit: not restarted, shut down
    await check_exit_reason(sup, SHUTDOWN)


async def test_significant_all_significant_waits_for_the_last() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await Supervisor.start_link(
        [
            spec("a", restart="transient", significant=True),
            spec("b", restart="transient", significant=True),
            spec("c"),
        ],
        auto_shutdown="all_significant",
    )
    assert sup is not None
    await terminate(await pid_of(sup, "a"), "normal")
    assert [i.id for i in await Supervisor.which_children(sup)] == ["c", "b", "a"]
    await terminate(await pid_of(sup, "b"), "normal")
    await check_exit_reason(sup, SHUTDOWN)


async def test_significant_bystander() -> None:
    """A significant child stopped by the supervisor itself (strategy collateral or
    terminate_child) does not trigger the auto shutdown."""
    beamlet.process_flag(trap_exit=True)
    sup = await Supervisor.start_link(
        [spec("child1"), spec("child2", restart="transient", significant=True)],
        strategy="one_for_all",
        auto_shutdown="any_significant",
    )
    assert sup is not None
    await terminate(await pid_of(sup, "child1"), "abnormal")
    await Supervisor.terminate_child(sup, "child2")
    assert beamlet.is_alive(sup)
    assert len(await Supervisor.which_children(sup)) == 2
    await refute_receive(Exit, timeout=0.05)


async def test_significant_escalation() -> None:
    """An auto shutdown of a significant sub-supervisor is itself a significant child
    ending cleanly: the parent shuts down too."""
    beamlet.process_flag(trap_exit=True)
    inner = Supervisor.child_spec(
        [spec("w", restart="temporary", significant=True)],
        id="inner",
        restart="transient",
        significant=True,
        auto_shutdown="any_significant",
    )
    sup = await Supervisor.start_link([inner], auto_shutdown="any_significant")
    assert sup is not None
    inner_pid = await pid_of(sup, "inner")
    await terminate(await pid_of(inner_pid, "w"), "normal")
    await check_exit_reason(sup, SHUTDOWN)


async def test_significant_with_auto_shutdown_never_is_invalid() -> None:
    with pytest.raises(InvalidChildSpec, match="bad_combination"):
        await Supervisor.start_link([spec("c", restart="transient", significant=True)])
    with pytest.raises(InvalidChildSpec, match="permanent"):
        spec("c", significant=True)
    sup = await Supervisor.start_link([])
    with pytest.raises(InvalidChildSpec, match="bad_combination"):
        await Supervisor.start_child(sup, spec("c", restart="temporary", significant=True))


# --- misc ------------------------------------------------------------------------------


async def test_child_unlink() -> None:
    """A child that unlinks from its supervisor is still stopped: the supervisor
    monitors before it stops a child, so it never hangs."""
    sup = await start_sup()

    async def naughty(parent: Pid) -> None:
        beamlet.unlink(parent)
        beamlet.process_flag(trap_exit=False)
        await beamlet.receive("never")

    async def start_naughty(parent: Pid) -> Pid:
        return beamlet.spawn_link(naughty, parent)

    cpid = await Supervisor.start_child(sup, spec("naughty_child", start_naughty, args=(sup,)))
    assert cpid is not None
    await Supervisor.terminate_child(sup, "naughty_child")
    assert not beamlet.is_alive(cpid)
    assert await Supervisor.which_children(sup) == [("naughty_child", None, "worker", ())]


async def test_tree() -> None:
    beamlet.process_flag(trap_exit=True)
    child1, child2 = spec("child1"), spec("child2")
    child3 = spec("child3", fail_after_first())
    child4 = spec("child4")
    chsup1 = Supervisor.child_spec(
        [child1, child2], id="supchild1", strategy="one_for_one", max_restarts=4
    )
    chsup2 = Supervisor.child_spec([], id="supchild2", strategy="one_for_one", max_restarts=4)
    top = await start_sup("one_for_all", 4)
    sup1 = await Supervisor.start_child(top, chsup1)
    sup2 = await Supervisor.start_child(top, chsup2)
    assert sup1 and sup2
    assert await counts(top) == [2, 2, 2, 0]
    [(_, cpid2, _, _), (_, cpid1, _, _)] = await Supervisor.which_children(sup1)
    assert await counts(sup1) == [2, 2, 0, 2]
    assert await counts(sup2) == [0, 0, 0, 0]

    # dynamic children of sup2
    cpid3 = await Supervisor.start_child(sup2, child3)
    cpid4 = await Supervisor.start_child(sup2, child4)
    assert cpid3 and cpid4
    assert await counts(sup2) == [2, 2, 0, 2]

    # only the process that dies is restarted
    await terminate(cpid4, "abnormal")
    assert [i.pid for i in await Supervisor.which_children(sup1)] == [cpid2, cpid1]
    [(_, new_cpid4, _, _), (_, same_cpid3, _, _)] = await Supervisor.which_children(sup2)
    assert new_cpid4 != cpid4 and same_cpid3 == cpid3

    # child3 cannot restart: sup2 gives up, the top restarts the whole tree, without
    # the children added to sup2 at run time
    await terminate(cpid3, "abnormal")
    await wait_down(sup2)
    [(sid2, new_sup2, _, _), (sid1, new_sup1, _, _)] = await Supervisor.which_children(top)
    assert (sid2, sid1) == ("supchild2", "supchild1")
    assert new_sup1 != sup1 and new_sup2 != sup2
    assert await counts(top) == [2, 2, 2, 0]
    assert [i.id for i in await Supervisor.which_children(new_sup1)] == ["child2", "child1"]
    assert await counts(new_sup1) == [2, 2, 0, 2]
    assert await Supervisor.which_children(new_sup2) == []


async def test_count_children_supervisor() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup()
    await Supervisor.start_child(sup, Supervisor.child_spec([spec("w")], id="s1"))
    await Supervisor.start_child(sup, spec("w1"))
    await Supervisor.start_child(sup, spec("w2", ignore_start))
    assert await Supervisor.count_children(sup) == ChildCounts(
        specs=3, active=2, supervisors=1, workers=2
    )


async def test_count_restarting_children() -> None:
    beamlet.process_flag(trap_exit=True)
    state = {"fail": False}
    sup = await start_sup("one_for_one", 1000)
    cpid = await Supervisor.start_child(sup, spec("c", toggled_start(state)))
    assert cpid is not None
    state["fail"] = True
    await terminate(cpid, "abnormal")
    assert await Supervisor.which_children(sup) == [("c", RESTARTING, "worker", ())]
    assert await counts(sup) == [1, 0, 0, 1]
    state["fail"] = False
    # the pending retry succeeds: wait for it through a synchronous call
    while (await Supervisor.which_children(sup))[0].pid == RESTARTING:
        pass
    assert await counts(sup) == [1, 1, 0, 1]


@pytest.mark.parametrize("strategy", ["one_for_all", "one_for_one", "rest_for_one"])
@pytest.mark.parametrize("how", ["kill", "normal", "abnormal", "supervisor"])
async def test_do_not_save_child_specs_for_temporary_children(strategy: str, how: str) -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await Supervisor.start_link([], strategy=strategy)  # type: ignore[arg-type]
    assert sup is not None

    async def end(child_id: str, pid: Pid) -> None:
        if how == "supervisor":
            await Supervisor.terminate_child(sup, child_id)
        else:
            await terminate(pid, how)

    # permanent: restarted (or kept as already_present after terminate_child)
    permanent = spec("child1")
    pid = await Supervisor.start_child(sup, permanent)
    assert pid is not None
    await end("child1", pid)
    if how == "supervisor":
        with pytest.raises(AlreadyPresent):
            await Supervisor.start_child(sup, permanent)
        await Supervisor.restart_child(sup, "child1")
    else:
        with pytest.raises(AlreadyStarted):
            await Supervisor.start_child(sup, permanent)

    # transient: kept
    transient = spec("child2", restart="transient")
    pid = await Supervisor.start_child(sup, transient)
    assert pid is not None
    await end("child2", pid)
    if how in ("supervisor", "normal"):
        with pytest.raises(AlreadyPresent):
            await Supervisor.start_child(sup, transient)
        await Supervisor.restart_child(sup, "child2")
    else:
        with pytest.raises(AlreadyStarted):
            await Supervisor.start_child(sup, transient)

    # temporary: forgotten, so it can be started again under the same id
    temporary = spec("child3", restart="temporary")
    pid = await Supervisor.start_child(sup, temporary)
    assert pid is not None
    await end("child3", pid)
    assert await Supervisor.start_child(sup, temporary) is not None


@pytest.mark.virtual_time
async def test_hanging_restart_loop() -> None:
    """A child whose restart keeps failing (each attempt takes 2 s) leaves the
    supervisor responsive: calls interleave with the retries (OTP-9549)."""
    beamlet.process_flag(trap_exit=True)
    state = {"fail": False}

    async def slow_start() -> Pid:
        if state["fail"]:
            await beamlet.sleep(2.0)  # "so the supervisor will not hit max intensity"
            raise StartError(ERROR)
        return await start_worker()

    sup = await start_sup("one_for_one", 8, 10)
    child1 = spec("child1", slow_start, shutdown="brutal_kill")
    cpid1 = await Supervisor.start_child(sup, child1)
    assert cpid1 is not None
    beamlet.link(cpid1)
    state["fail"] = True
    beamlet.send(cpid1, ("exit", ERROR))
    await wait_down(cpid1)

    with pytest.raises(AlreadyPresent):
        await Supervisor.start_child(sup, child1)
    with pytest.raises(ChildRestarting):
        await Supervisor.restart_child(sup, "child1")
    with pytest.raises(ChildRestarting):
        await Supervisor.delete_child(sup, "child1")
    assert await Supervisor.which_children(sup) == [("child1", RESTARTING, "worker", ())]
    assert await counts(sup) == [1, 0, 0, 1]

    await Supervisor.terminate_child(sup, "child1")
    await check_exit_reason(cpid1, ERROR)
    assert await Supervisor.which_children(sup) == [("child1", None, "worker", ())]

    state["fail"] = False
    cpid2 = await Supervisor.restart_child(sup, "child1")
    assert cpid2 is not None
    beamlet.link(cpid2)
    state["fail"] = True
    beamlet.send(cpid2, ("exit", ERROR))
    await check_exit_reason(cpid2, ERROR)

    # stopping the supervisor while it hangs in the restart loop
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)
    assert beamlet.whereis("sup_test") is None


@pytest.mark.virtual_time
async def test_hanging_restart_loop_rest_for_one() -> None:
    beamlet.process_flag(trap_exit=True)
    state = {"fail": False}

    async def slow_start() -> Pid:
        if state["fail"]:
            await beamlet.sleep(2.0)
            raise StartError(ERROR)
        return await start_worker()

    sup = await start_sup("rest_for_one", 8, 10)
    child1 = spec("child1", slow_start, shutdown="brutal_kill")
    child2 = spec("child2")
    cpid1 = await Supervisor.start_child(sup, child1)
    cpid2 = await Supervisor.start_child(sup, child2)
    assert cpid1 and cpid2
    state["fail"] = True
    await terminate(cpid1, "abnormal")
    assert await Supervisor.which_children(sup) == [
        ("child2", None, "worker", ()),
        ("child1", RESTARTING, "worker", ()),
    ]
    await Supervisor.terminate_child(sup, "child1")
    state["fail"] = False
    cpid3 = await Supervisor.restart_child(sup, "child1")
    assert cpid3 is not None
    beamlet.exit(sup, SHUTDOWN)
    await check_exit_reason(sup, SHUTDOWN)


async def test_order_of_children() -> None:
    """Children are restarted in start order, stopped in reverse order, and
    which_children keeps the reverse start order across restarts and additions."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    children = [spec(f"c{i}", start_worker, args=(me, f"c{i}")) for i in range(1, 6)]
    sup = await Supervisor.start_link(children, strategy="rest_for_one", max_restarts=10)
    assert sup is not None
    for i in range(1, 6):
        await assert_receive(("started", f"c{i}", Pid))
    ids = [i.id for i in await Supervisor.which_children(sup)]
    assert ids == ["c5", "c4", "c3", "c2", "c1"]
    pids = {i.id: i.pid for i in await Supervisor.which_children(sup)}
    refs = {beamlet.monitor(pids[c]): c for c in ("c3", "c4", "c5")}
    await terminate(pids["c2"], "abnormal")
    stopped = [refs[(await assert_receive(Down)).ref] for _ in range(3)]
    assert stopped == ["c5", "c4", "c3"]  # reverse start order
    assert [(await assert_receive(("started", ANYSTR, Pid)))[1] for _ in range(4)] == [
        "c2",
        "c3",
        "c4",
        "c5",
    ]
    assert [i.id for i in await Supervisor.which_children(sup)] == ids
    await Supervisor.terminate_child(sup, "c3")
    await Supervisor.delete_child(sup, "c3")
    await Supervisor.start_child(sup, spec("c3", start_worker, args=(me, "c3")))
    assert [i.id for i in await Supervisor.which_children(sup)] == ["c3", "c5", "c4", "c2", "c1"]


ANYSTR: Any = beamlet.ANY


async def test_order_of_children_shutdown() -> None:
    """Shutdown stops children in reverse start order, one at a time."""
    beamlet.process_flag(trap_exit=True)
    sup = await Supervisor.start_link([spec(f"c{i}") for i in range(1, 5)])
    assert sup is not None
    order: list[str] = []
    refs = {}
    for info in await Supervisor.which_children(sup):
        refs[beamlet.monitor(info.pid)] = info.id  # type: ignore[arg-type]
    await Supervisor.stop(sup)
    for _ in range(4):
        order.append(refs[(await assert_receive(Down)).ref])
    assert order == ["c4", "c3", "c2", "c1"]


async def test_already_started_outside_supervisor() -> None:
    beamlet.process_flag(trap_exit=True)

    async def start_named() -> Pid:
        holder = beamlet.whereis("child_name")
        if holder is not None:
            raise StartError((Atom("already_started"), holder))
        pid = beamlet.spawn_link(worker, beamlet.self())
        beamlet.register("child_name", pid)
        return pid

    outside = beamlet.spawn(worker, beamlet.self())
    beamlet.register("child_name", outside)
    sup = await start_sup()
    with pytest.raises(AlreadyStarted) as e:
        await Supervisor.start_child(sup, spec("child", start_named))
    assert e.value.pid == outside
    assert await Supervisor.which_children(sup) == []


async def test_which_children() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await start_sup(
        children=[
            spec("w1"),
            spec("w2", ignore_start),
            Supervisor.child_spec([], id="s1"),
        ]
    )
    infos = await Supervisor.which_children(sup)
    assert [tuple(i)[0::2] for i in infos] == [
        ("s1", "supervisor"),
        ("w2", "worker"),
        ("w1", "worker"),
    ]
    assert infos[1].pid is None
    assert isinstance(infos[0], ChildInfo) and isinstance(infos[0].pid, Pid)


async def test_reports_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """One structured report per event: child_terminated, child_restarted, start_error,
    shutdown (max intensity)."""
    beamlet.process_flag(trap_exit=True)
    caplog.set_level(logging.INFO, logger="beamlet")
    sup = await start_sup("one_for_one", 1)
    cpid = await Supervisor.start_child(sup, spec("c", fail_after_first()))
    assert cpid is not None
    await terminate(cpid, "abnormal")
    await check_exit_reason(sup, SHUTDOWN)
    reports = [r for r in caplog.records if getattr(r, "beamlet_report", None)]
    assert [
        (r.beamlet_context, r.beamlet_child_id, r.beamlet_reason)  # type: ignore[attr-defined]
        for r in reports
    ] == [
        ("child_terminated", "c", DIED),
        ("start_error", "c", ERROR),
        ("shutdown", "c", Atom("reached_max_restart_intensity")),
    ]
    assert all(r.beamlet_supervisor == "sup_test" for r in reports)  # type: ignore[attr-defined]


# --- Elixir supervisor_test.exs --------------------------------------------------------


class Stack:
    """A tiny server with child_spec(arg), standing in for a GenServer module."""

    @classmethod
    def child_spec(cls, arg: Any) -> ChildSpec:
        return ChildSpec(id=cls, start=cls.start_link, args=(arg,))

    @staticmethod
    async def start_link(arg: Any) -> Pid:
        state, name = arg
        pid = beamlet.spawn_link(Stack.loop, list(state))
        if name is not None:
            beamlet.register(name, pid)
        return pid

    @staticmethod
    async def loop(stack: list[Any]) -> None:
        while True:
            match await beamlet.receive():
                case ("pop", sender):
                    beamlet.send(sender, ("popped", stack.pop(0)))
                case ("push", x):
                    stack.insert(0, x)
                case "stop":
                    return


class StackSup(Supervisor):
    async def init(self, pair: Any) -> Any:
        return [(Stack, pair)], SupFlags(strategy="one_for_one")


async def pop(server: Any) -> Any:
    beamlet.send(server, ("pop", beamlet.self()))
    return (await assert_receive(("popped", beamlet.ANY)))[1]


async def test_generates_child_spec() -> None:
    spec1 = StackSup.child_spec(["hello"])
    assert (spec1.id, spec1.args, spec1.type, spec1.shutdown_value) == (
        StackSup,
        (["hello"],),
        "supervisor",
        "infinity",
    )
    custom = StackSup.child_spec(["hello"], id="id", restart="temporary")
    assert (custom.id, custom.restart, custom.type) == ("id", "temporary", "supervisor")


async def test_child_spec_2() -> None:
    s = child_spec((Stack, "foo"))
    assert (s.id, s.start, s.args) == (Stack, Stack.start_link, ("foo",))
    s2 = child_spec(Stack, id="foo", restart="permanent", shutdown="infinity")
    assert (s2.id, s2.args, s2.restart, s2.shutdown) == ("foo", (None,), "permanent", "infinity")
    with pytest.raises(InvalidChildSpec, match="supervisors expect each child"):
        child_spec("other")
    with pytest.raises(InvalidChildSpec, match="unknown child spec field"):
        child_spec(Stack, colour="blue")


async def test_init_2() -> None:
    assert SupFlags() == SupFlags("one_for_one", 3, 5.0, "never")
    assert SupFlags.coerce({"strategy": "one_for_all", "max_restarts": 1, "max_seconds": 2}) == (
        SupFlags("one_for_all", 1, 2)
    )


async def test_start_link_2() -> None:
    sup = await Supervisor.start_link([(Stack, (["hello"], "dyn_stack"))], strategy="one_for_one")
    assert sup is not None
    assert await pop("dyn_stack") == "hello"
    old = beamlet.whereis("dyn_stack")
    assert old is not None
    await terminate(old, "normal")  # permanent: restarted with its initial state
    assert await pop("dyn_stack") == "hello"
    await Supervisor.stop(sup)
    assert beamlet.whereis("dyn_stack") is None
    with pytest.raises(TypeError, match="name"):
        await Supervisor.start_link([], name=("invalid_tuple", "x"))  # type: ignore[arg-type]


async def test_start_link_3() -> None:
    sup = await StackSup.start_link((["hello"], "stat_stack"))
    assert sup is not None
    assert await pop("stat_stack") == "hello"
    await Supervisor.stop(sup)
    with pytest.raises(TypeError, match="flags come from"):
        await StackSup.start_link(None, strategy="one_for_all")


async def test_start_link_3_with_local_name() -> None:
    sup = await Supervisor.start_link([], name="my_sup")
    assert beamlet.whereis("my_sup") == sup
    assert await Supervisor.which_children("my_sup") == []
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(AlreadyStarted) as e:
        await Supervisor.start_link([], name="my_sup")
    assert e.value.pid == sup
    await refute_receive(Exit, timeout=0.05)


async def test_start_child_2() -> None:
    sup = await Supervisor.start_link([])
    pid = await Supervisor.start_child(
        sup, {"id": "task", "restart": "temporary", "start": start_worker}
    )
    assert isinstance(pid, Pid)
    pid2 = await Supervisor.start_child(sup, (Stack, ([1], None)))
    assert isinstance(pid2, Pid)
    with pytest.raises(InvalidChildSpec, match="missing_id"):
        await Supervisor.start_child(sup, {})
    with pytest.raises(InvalidChildSpec, match="start must be callable"):
        await Supervisor.start_child(sup, {"id": 1, "start": ("Task", "foo", "bar")})


async def test_child_life_cycle() -> None:
    sup = await Supervisor.start_link([])
    assert await Supervisor.which_children(sup) == []
    assert await Supervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)
    stack = await Supervisor.start_child(sup, child_spec((Stack, (["hello"], None))))
    assert stack is not None
    assert await pop(stack) == "hello"
    assert await Supervisor.which_children(sup) == [ChildInfo(Stack, stack, "worker", ())]
    assert await Supervisor.count_children(sup) == ChildCounts(1, 1, 0, 1)
    with pytest.raises(ChildRunning):
        await Supervisor.delete_child(sup, Stack)
    await Supervisor.terminate_child(sup, Stack)
    stack = await Supervisor.restart_child(sup, Stack)
    assert await pop(stack) == "hello"
    await Supervisor.terminate_child(sup, Stack)
    await Supervisor.delete_child(sup, Stack)
    await Supervisor.stop(sup)
    assert not beamlet.is_alive(sup)
    with pytest.raises(CallExit) as e:
        await Supervisor.stop(sup)
    assert e.value.cause == beamlet.NOPROC


# --- beamlet.testing.start_supervised ------------------------------------------------


def _reporting_spec(tag: str, observer: Pid, shutdown: Any = 1.0) -> ChildSpec:
    """A child that reports `("terminated", tag)` when told to shut down."""

    async def body(parent: Pid) -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, ("up", beamlet.self()))
        await beamlet.receive(Exit)
        beamlet.send(observer, ("terminated", tag))

    async def start() -> Pid:
        pid = beamlet.spawn_link(body, beamlet.self())
        await beamlet.receive(("up", pid))  # it traps exits now
        return pid

    return ChildSpec(tag, start, shutdown=shutdown)


async def test_start_supervised_scope_stops_children_in_reverse_order() -> None:
    me = beamlet.self()
    before = set(beamlet.processes())
    async with supervised_scope():
        pids = [await start_supervised(_reporting_spec(t, me)) for t in ("a", "b", "c")]
        assert all(isinstance(p, Pid) for p in pids)
        with pytest.raises(AlreadyStarted):
            await start_supervised(_reporting_spec("a", me))
        second = await start_supervised(_reporting_spec("a", me), id="a2")
        await stop_supervised("a2")
        assert (await assert_receive(("terminated", "a"))) and not beamlet.is_alive(second)  # type: ignore[arg-type]
    order = [(await assert_receive(("terminated", beamlet.ANY)))[1] for _ in range(3)]
    assert order == ["c", "b", "a"]
    assert set(beamlet.processes()) == before


async def test_start_supervised_needs_a_test() -> None:
    async def outside() -> None:
        from beamlet.testing import supervised

        supervised._CURRENT.set(None)
        with pytest.raises(RuntimeError, match="start_supervised"):
            await start_supervised(spec("x"))
        beamlet.send(parent, "checked")

    parent = beamlet.self()
    beamlet.spawn(outside)
    await assert_receive("checked")


INNER_TESTS = """
import beamlet
from beamlet import Exit
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.testing import start_supervised


async def body(parent, tag):
    beamlet.process_flag(trap_exit=True)
    beamlet.send(parent, ("up", beamlet.self()))
    try:
        await beamlet.receive(Exit)
        print(f"terminate {tag}", flush=True)
        beamlet.exit(beamlet.SHUTDOWN)
    finally:
        print(f"finally {tag}", flush=True)


async def stubborn(parent, tag):
    beamlet.process_flag(trap_exit=True)
    beamlet.send(parent, ("up", beamlet.self()))
    try:
        await beamlet.receive("never")
    finally:
        print(f"killed {tag}", flush=True)


async def start(fn, tag):
    pid = beamlet.spawn_link(fn, beamlet.self(), tag)
    await beamlet.receive(("up", pid))
    return pid


async def test_a():
    for tag in ("a1", "a2", "a3"):
        await start_supervised(ChildSpec(tag, start, args=(body, tag)))
    print("body a done", flush=True)


async def test_b_fails():
    await start_supervised(ChildSpec("b1", start, args=(body, "b1")))
    print("body b done", flush=True)
    assert False, "b fails"


async def test_c_stubborn():
    await start_supervised(ChildSpec("c1", start, args=(body, "c1")))
    await start_supervised(ChildSpec("c2", start, args=(stubborn, "c2"), shutdown=0.05))
    print("body c done", flush=True)
"""


AUTO = ("-o", "beamlet_mode=auto", "test_inner.py")  # the inner tests are unmarked


def test_start_supervised_teardown_in_the_plugin(tmp_path: Any) -> None:
    """The plugin stops start_supervised children when each test ends, in reverse
    order, within their shutdown times, whether the test passed or failed."""
    import subprocess
    import sys

    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *AUTO],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_output = proc.stdout.split(" FAILURES ")[0]  # the report repeats source lines
    events = re.findall(r"body \w done|terminate \w+|finally \w+|killed \w+", run_output)
    assert events == [
        "body a done",
        "terminate a3",
        "finally a3",
        "terminate a2",
        "finally a2",
        "terminate a1",
        "finally a1",
        "body b done",
        "terminate b1",
        "finally b1",
        "body c done",
        "killed c2",
        "terminate c1",
        "finally c1",
    ], proc.stdout
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout
    assert "b fails" in proc.stdout


async def test_supervisor_answers_gen_server_calls() -> None:
    """A supervisor is a GenServer speaking supervisor.erl's protocol: atoms and OTP's
    reply shapes, whoever calls (supervisor:count_children/1, which_children/1...)."""
    from beamlet.behaviours.gen_server import GenServer

    sup = await Supervisor.start_link([spec("c1")])
    counts = await GenServer.call(sup, Atom("count_children"))
    assert counts == [(Atom("specs"), 1), (Atom("active"), 1), (Atom("supervisors"), 0),
                      (Atom("workers"), 1)]  # fmt: skip
    [(cid, pid, kind, modules)] = await GenServer.call(sup, Atom("which_children"))
    assert (cid, kind, modules) == ("c1", Atom("worker"), []) and type(pid) is Pid
    nosuch = (Atom("terminate_child"), "nosuch")
    assert await GenServer.call(sup, nosuch) == (Atom("error"), Atom("not_found"))
