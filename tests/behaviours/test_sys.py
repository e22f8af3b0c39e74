"""`beamlet.behaviours.sys` (Erlang's `sys`) on every behaviour, and the gen layer's
crash reasons. Ports of lib/stdlib/test/sys_SUITE.erl (log, stats, trace, suspend),
named after them; the interop half is tests/distribution/test_sys_interop.py.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import beamlet
from beamlet import Atom, Exit, Pid
from beamlet.behaviours import gen, sys
from beamlet.behaviours.agent import Agent
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor
from beamlet.behaviours.gen import CallExit
from beamlet.behaviours.gen_server import GenServer, NoReply, Reply
from beamlet.behaviours.registry import Registry, _table
from beamlet.behaviours.supervisor import Supervisor
from beamlet.behaviours.task_supervisor import TaskSupervisor
from beamlet.testing import assert_receive

IN, OUT, NOREPLY = Atom("in"), Atom("out"), Atom("noreply")


class Echo(GenServer[int]):
    async def init(self, n: int) -> int:
        return n

    async def handle_call(self, request: Any, from_: Any, n: int) -> Reply[int]:
        return Reply(request, n + 1)

    async def handle_cast(self, request: Any, n: int) -> NoReply[int]:
        return NoReply(n + 10)


async def test_log() -> None:
    pid = await Echo.start_link(0)
    assert await sys.log(pid, True) is None
    assert await GenServer.call(pid, "a") == "a"
    GenServer.cast(pid, "b")
    events = await sys.log(pid, "get")
    me = beamlet.self()
    assert events[0][0] == IN and events[0][1][2] == "a"
    assert events[1] == (OUT, "a", me, 1)
    assert events[2][0] == IN and events[3] == (NOREPLY, 11)
    await sys.log(pid, False)
    assert await sys.log(pid, "get") == []  # logging is off: nothing kept
    await sys.log(pid, 2)
    for i in range(5):
        await GenServer.call(pid, i)
    assert len(await sys.log(pid, "get")) == 2  # the last N events only


async def test_stats() -> None:
    pid = await Echo.start_link(0)
    assert await sys.statistics(pid, "get") == Atom("no_statistics")
    await sys.statistics(pid, True)
    for i in range(3):
        await GenServer.call(pid, i)
    stats = dict(await sys.statistics(pid, "get"))
    # erl 25 (application_controller, 3 calls): [{messages_in,3},{messages_out,3}]: the
    # system messages (statistics true, get) are not counted
    assert (stats[Atom("messages_in")], stats[Atom("messages_out")]) == (3, 3)
    (year, _, _), (hour, _, _) = stats[Atom("start_time")]
    assert year >= 2024 and 0 <= hour < 24
    await sys.no_debug(pid)
    assert await sys.statistics(pid, "get") == Atom("no_statistics")


async def test_trace(capsys: pytest.CaptureFixture[str]) -> None:
    pid = await Echo.start_link(0, name="traced")
    await sys.trace(pid, True)
    await GenServer.call(pid, "ping")
    await sys.trace(pid, False)
    await GenServer.call(pid, "quiet")
    out = capsys.readouterr().out
    assert "*DBG* 'traced' got call 'ping' from" in out
    assert "*DBG* 'traced' sent 'ping' to" in out and "new state 1" in out
    assert "quiet" not in out


async def test_suspend() -> None:
    """A suspended server answers only system messages; calls wait until `resume`."""
    pid = await Echo.start_link(5)
    await sys.suspend(pid)
    status = await sys.get_status(pid)
    assert status[3][1] == Atom("suspended")
    assert await sys.get_state(pid) == 5  # system messages are served
    with pytest.raises(CallExit) as e:
        await GenServer.call(pid, "x", timeout=0.05)
    assert e.value.cause == beamlet.TIMEOUT
    await sys.resume(pid)
    assert await GenServer.call(pid, "y") == "y"
    assert (await sys.get_status(pid))[3][1] == Atom("running")


async def test_suspended_server_stops_with_its_parent() -> None:
    beamlet.process_flag(trap_exit=True)

    async def parent(me: Pid) -> None:
        pid = await Echo.start_link(0)
        beamlet.send(me, pid)
        await beamlet.receive()

    p = beamlet.spawn_link(parent, beamlet.self())
    server = await beamlet.receive(lambda m: type(m) is Pid)
    await sys.suspend(server)
    ref = beamlet.monitor(server)
    beamlet.exit(p, Atom("bye"))
    down = await assert_receive(beamlet.Down, timeout=5)
    assert down.ref == ref and down.reason == Atom("bye")


async def test_replace_state_and_terminate() -> None:
    pid = await Echo.start(1)
    assert await sys.replace_state(pid, lambda n: n * 100) == 100
    assert await GenServer.call(pid, "r") == "r"
    assert await sys.get_state(pid) == 101
    ref = beamlet.monitor(pid)
    await sys.terminate(pid, Atom("done"))
    down = await assert_receive(beamlet.Down, timeout=5)
    assert down.ref == ref and down.reason == Atom("done")


async def test_unknown_system_message() -> None:
    pid = await Echo.start_link(0)
    answer = await gen.system_call(pid, Atom("nonsense"), 5.0)
    assert answer == (Atom("error"), (Atom("unknown_system_msg"), Atom("nonsense")))
    assert await GenServer.call(pid, "still") == "still"


async def test_sys_on_every_behaviour() -> None:
    """get_state and get_status on an Agent, a Supervisor, a DynamicSupervisor, a
    Task.Supervisor and a Registry partition: all are GenServers underneath."""
    agent = await Agent.start_link(lambda: {"k": 1})
    assert await sys.get_state(agent) == {"k": 1}
    sup = await Supervisor.start_link([Echo.child_spec(0, id="e")])
    assert sup is not None
    assert list((await sys.get_state(sup)).children) == ["e"]
    dyn = await DynamicSupervisor.start_link()
    assert dyn is not None
    assert (await sys.get_state(dyn)).children == {}
    tasks = await TaskSupervisor.start_link()
    assert (await sys.get_status(tasks))[0] == Atom("status")
    await Registry.start_link(keys="unique", name="sys_reg")
    part = _table("sys_reg").partitions[0]
    assert part.pid is not None
    assert (await sys.get_state(part.pid)).index == part.index  # a copy, as replies are
    for server in (agent, sup, dyn, tasks):
        await sys.suspend(server)
        await sys.resume(server)
    assert await Agent.get(agent, lambda s: s["k"]) == 1
    assert len(await Supervisor.which_children(sup)) == 1


class Holder:
    """Something a crashed process had in its locals."""


async def test_crashed_process_locals_are_collectable() -> None:
    """The crash reason keeps the traceback's text, not its frames: the locals of a
    crashed server (and of a crashed start function) can be freed while the reason
    lives on in an EXIT message or a StartError."""
    beamlet.process_flag(trap_exit=True)
    refs: list[weakref.ref[Holder]] = []

    class Crasher(GenServer[None]):
        async def init(self, _: Any) -> None:
            return None

        async def handle_call(self, request: Any, from_: Any, state: None) -> Any:
            held = Holder()
            refs.append(weakref.ref(held))
            raise RuntimeError("crash")

    pid = await Crasher.start_link(None)
    with pytest.raises(CallExit):
        await GenServer.call(pid, "go")
    exit_msg = await assert_receive(Exit(pid, beamlet.ANY))

    async def bad_start() -> Pid:
        held = Holder()
        refs.append(weakref.ref(held))
        raise ValueError("no start")

    sup = await Supervisor.start_link([])
    with pytest.raises(StartError) as e:
        await Supervisor.start_child(sup, ChildSpec(id="bad", start=bad_start))
    gc.collect()
    assert len(refs) == 2 and all(r() is None for r in refs)
    assert "RuntimeError" in exit_msg.reason.formatted  # the reasons are still there
    assert e.value.reason[1].exception.args == ("no start",)
