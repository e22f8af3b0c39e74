"""Task.Supervisor (docs/semantics.md §10.7): ports of
lib/elixir/test/elixir/task/supervisor_test.exs (test names snake_cased)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import beamlet
from beamlet import KILLED, NORMAL, SHUTDOWN, TIMEOUT, Atom, Crash, Down, Pid
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor, MaxChildren
from beamlet.behaviours.gen_server import CallExit
from beamlet.behaviours.registry import Registry
from beamlet.behaviours.supervisor import AlreadyStarted, ChildCounts, ChildNotFound, Supervisor
from beamlet.behaviours.task import Task
from beamlet.behaviours.task_supervisor import TaskSupervisor
from beamlet.testing import assert_receive, refute_receive

TS = TaskSupervisor


async def wait_and_send(caller: Pid, value: Any) -> Any:
    beamlet.send(caller, "ready")
    await beamlet.receive(True)
    beamlet.send(caller, value)
    return value


async def sleep(n: Any) -> Any:
    await beamlet.sleep(3600 if n == "infinity" else n / 1000)
    return n


def links() -> tuple[Pid, ...]:
    info = beamlet.process_info(beamlet.self())
    assert info is not None
    return info.links


async def to_list(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


async def take(stream: Any, n: int) -> list[Any]:
    out: list[Any] = []
    async with stream as s:
        async for r in s:
            out.append(r)
            if len(out) == n:
                break
    return out


async def test_can_be_supervised_directly() -> None:
    sup = await Supervisor.start_link([TS.child_spec(name="task_sup_test")])
    assert sup is not None
    assert beamlet.whereis("task_sup_test") is not None
    [info] = await Supervisor.which_children(sup)
    assert (info.id, info.type) == ("task_sup_test", "supervisor")


async def test_multiple_supervisors_can_be_supervised_and_identified_with_simple_child_spec() -> (
    None
):
    await Registry.start_link(keys="unique", name="TaskSup.Registry")
    via = Registry.via("TaskSup.Registry", "via_name")
    children = [TS.child_spec(name="simple_name"), TS.child_spec(name=via)]
    supsup = await Supervisor.start_link(children, strategy="one_for_one")
    assert supsup is not None
    no_name = await Supervisor.start_child(supsup, TS.child_spec())
    assert await TS.children("simple_name") == []
    assert await TS.children(via) == []
    assert await TS.children(no_name) == []
    with pytest.raises(AlreadyStarted) as e:
        await Supervisor.start_child(supsup, TS.child_spec())
    assert e.value.pid == no_name


async def test_counts_and_returns_children() -> None:
    sup = await TS.start_link()
    assert await TS.children(sup) == []
    assert await DynamicSupervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)


# --- describe "async/1" -------------------------------------------------------------


async def test_async_spawns_tasks_under_the_supervisor() -> None:
    sup = await TS.start_link()
    task = await TS.async_(sup, wait_and_send, beamlet.self(), "done")
    assert await TS.children(sup) == [task.pid]
    assert isinstance(task, Task) and isinstance(task.pid, Pid)
    assert task.pid in links()
    await assert_receive("ready")
    beamlet.send(task.pid, True)
    ref = task.ref
    await assert_receive((ref, "done"))
    down = await assert_receive(Down)
    assert down.ref == ref and down.reason == NORMAL


async def test_async_with_custom_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()
    task = await TS.async_(sup, wait_and_send, beamlet.self(), "done", shutdown="brutal_kill")
    beamlet.exit(sup, SHUTDOWN)
    down = await assert_receive(lambda m: type(m) is Down and m.pid == task.pid)
    assert down.reason == KILLED


async def test_async_raises_when_max_children_is_reached() -> None:
    sup = await TS.start_link(max_children=1)
    await TS.async_(sup, sleep, "infinity")
    with pytest.raises(MaxChildren, match="reached the maximum number of tasks"):
        await TS.async_(sup, sleep, 1)


async def test_async_with_callers() -> None:
    sup = await TS.start_link()
    grandparent = beamlet.self()

    async def outer() -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        async def inner() -> None:
            assert Task.callers() == (parent, grandparent)

        await Task.await_(await TS.async_(sup, inner))

    await Task.await_(await TS.async_(sup, outer))


async def test_async_3() -> None:
    sup = await TS.start_link()
    task = await TS.async_(sup, wait_and_send, beamlet.self(), "done")
    assert await TS.children(sup) == [task.pid]
    await assert_receive("ready")
    beamlet.send(task.pid, True)
    assert "wait_and_send/2" in task.mfa
    assert await Task.await_(task) == "done"


# --- describe "async_nolink/1" --------------------------------------------------------


async def test_async_nolink_spawns_a_task_under_the_supervisor_without_linking_to_the_caller() -> (
    None
):
    sup = await TS.start_link()
    task = await TS.async_nolink(sup, wait_and_send, beamlet.self(), "done")
    assert await TS.children(sup) == [task.pid]
    assert task.pid not in links()
    await assert_receive("ready")
    beamlet.send(task.pid, True)
    await assert_receive((task.ref, "done"))
    down = await assert_receive(Down)
    assert down.ref == task.ref and down.reason == NORMAL


async def test_async_nolink_with_custom_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()
    task = await TS.async_nolink(sup, wait_and_send, beamlet.self(), "done", shutdown="brutal_kill")
    beamlet.exit(sup, SHUTDOWN)
    down = await assert_receive(lambda m: type(m) is Down and m.pid == task.pid)
    assert down.reason == KILLED


async def test_async_nolink_raises_when_max_children_is_reached() -> None:
    sup = await TS.start_link(max_children=1)
    await TS.async_nolink(sup, sleep, "infinity")
    with pytest.raises(MaxChildren, match="reached the maximum number of tasks"):
        await TS.async_nolink(sup, sleep, 1)


async def test_async_nolink_crash_only_sends_down() -> None:
    sup = await TS.start_link()

    async def boom() -> None:
        raise RuntimeError("oops")

    task = await TS.async_nolink(sup, boom)
    kind, reason = await Task.yield_(task, 1.0)  # type: ignore[misc]
    assert kind == "exit" and isinstance(reason, Crash)
    assert isinstance(reason.exception, RuntimeError)
    assert beamlet.is_alive(sup)


# --- start_child ----------------------------------------------------------------------


async def test_start_child_1() -> None:
    sup = await TS.start_link()
    pid = await TS.start_child(sup, wait_and_send, beamlet.self(), "done")
    assert await TS.children(sup) == [pid]
    assert pid not in links()
    await assert_receive("ready")
    beamlet.send(pid, True)
    await assert_receive("done")


async def test_start_child_1_with_custom_shutdown() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()
    pid = await TS.start_child(sup, wait_and_send, beamlet.self(), "done", shutdown="brutal_kill")
    ref = beamlet.monitor(pid)
    beamlet.exit(sup, SHUTDOWN)
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert down.reason == KILLED


async def test_start_child_1_with_custom_restart() -> None:
    sup = await TS.start_link()
    pid = await TS.start_child(sup, wait_and_send, beamlet.self(), "done", restart="permanent")
    await assert_receive("ready")
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, SHUTDOWN)
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert down.reason == SHUTDOWN
    await assert_receive("ready")  # restarted with the same arguments


async def test_start_child_1_with_callers() -> None:
    sup = await TS.start_link()
    grandparent = beamlet.self()

    async def outer() -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        async def inner() -> None:
            assert Task.callers() == (parent, grandparent)
            beamlet.send(grandparent, "done")

        await TS.start_child(sup, inner)

    await TS.start_child(sup, outer)
    await assert_receive("done")


async def test_start_child_raises_when_max_children_is_reached() -> None:
    sup = await TS.start_link(max_children=1)
    await TS.start_child(sup, sleep, "infinity")
    with pytest.raises(MaxChildren):
        await TS.start_child(sup, sleep, 1)


async def test_terminate_child_2() -> None:
    sup = await TS.start_link()
    pid = await TS.start_child(sup, wait_and_send, beamlet.self(), "done")
    assert await TS.children(sup) == [pid]
    await TS.terminate_child(sup, pid)
    assert await TS.children(sup) == []
    with pytest.raises(ChildNotFound):
        await TS.terminate_child(sup, pid)


# --- describe "await/1" -----------------------------------------------------------------


async def test_await_demonitors_and_unalias_on_timeout() -> None:
    sup = await TS.start_link()

    async def wait_go() -> str:
        await beamlet.receive("go")
        return "done"

    task = await TS.async_(sup, wait_go)
    with pytest.raises(CallExit) as e:
        await Task.await_(task, 0)
    assert e.value.reason == (TIMEOUT, ("Task.await", task, 0))
    assert task.pid is not None
    new_ref = beamlet.monitor(task.pid)
    beamlet.send(task.pid, "go")
    await assert_receive(lambda m: type(m) is Down and m.ref == new_ref)
    await refute_receive(lambda m: type(m) is tuple and len(m) == 2 and m[0] == task.ref)
    await refute_receive(lambda m: type(m) is Down and m.ref == task.ref)


async def test_await_exits_on_task_error() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()

    async def boom() -> None:
        raise RuntimeError("oops")

    task = await TS.async_(sup, boom)
    with pytest.raises(CallExit) as e:
        await Task.await_(task)
    assert isinstance(e.value.cause, Crash) and isinstance(e.value.cause.exception, RuntimeError)
    assert e.value.mfa == ("Task.await", task, 5.0)


async def test_await_exits_on_task_exit() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()

    async def exiting() -> None:
        beamlet.exit(Atom("unknown"))

    task = await TS.async_(sup, exiting)
    with pytest.raises(CallExit) as e:
        await Task.await_(task)
    assert e.value.reason == (Atom("unknown"), ("Task.await", task, 5.0))


# --- describe "async_stream" --------------------------------------------------------------


async def test_async_stream_streams_an_enumerable_with_fun() -> None:
    sup = await TS.start_link()
    assert await to_list(TS.async_stream(sup, [1, 2, 3, 4], sleep)) == [
        ("ok", 1),
        ("ok", 2),
        ("ok", 3),
        ("ok", 4),
    ]


async def test_async_stream_streams_an_enumerable_without_leaking_tasks() -> None:
    sup = await TS.start_link()
    assert await to_list(TS.async_stream(sup, [1, 2, 3, 4], sleep)) == [
        ("ok", 1),
        ("ok", 2),
        ("ok", 3),
        ("ok", 4),
    ]
    await refute_receive()
    assert await TS.children(sup) == []


async def test_async_stream_streams_an_enumerable_with_slowest_first() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()
    assert await to_list(TS.async_stream(sup, [4, 3, 2, 1], sleep)) == [
        ("ok", 4),
        ("ok", 3),
        ("ok", 2),
        ("ok", 1),
    ]


async def test_async_stream_streams_an_enumerable_with_exits() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()

    async def yield_and_exit(n: int) -> None:
        await beamlet.sleep(0)
        beamlet.exit(str(n))

    assert await to_list(TS.async_stream(sup, [1, 2, 3, 4], yield_and_exit)) == [
        ("exit", "1"),
        ("exit", "2"),
        ("exit", "3"),
        ("exit", "4"),
    ]


async def test_async_stream_shuts_down_unused_tasks() -> None:
    sup = await TS.start_link()
    assert await take(TS.async_stream(sup, [0, "infinity", "infinity", "infinity"], sleep), 1) == [
        ("ok", 0)
    ]
    assert links() == (sup,)


async def test_async_stream_shuts_down_unused_tasks_without_leaking_messages() -> None:
    sup = await TS.start_link()
    assert await take(TS.async_stream(sup, [0, "infinity", "infinity", "infinity"], sleep), 1) == [
        ("ok", 0)
    ]
    await refute_receive()
    assert await TS.children(sup) == []


async def test_async_stream_raises_if_max_children_is_reached_with_clean_stream_shutdown() -> None:
    unused = await TS.start_link()
    sup = await TS.start_link(max_children=1)
    with pytest.raises(MaxChildren, match="reached the maximum number of tasks"):
        await to_list(
            TS.async_stream(sup, ["infinity", "infinity", "infinity"], sleep, max_concurrency=2)
        )
    assert set(links()) == {unused, sup}
    await refute_receive()


async def test_async_stream_with_callers() -> None:
    sup = await TS.start_link()
    grandparent = beamlet.self()

    async def outer(_: int) -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        async def inner(_: int) -> None:
            assert Task.callers() == (parent, grandparent)
            beamlet.send(grandparent, "done")

        await to_list(TS.async_stream(sup, [1], inner))

    await to_list(TS.async_stream(sup, [1], outer))
    await assert_receive("done")


async def test_async_stream_consuming_from_another_process() -> None:
    sup = await TS.start_link()
    parent = beamlet.self()

    async def send_parent(x: int) -> None:
        beamlet.send(parent, x)

    stream = TS.async_stream(sup, [1, 2, 3], send_parent)
    await Task.start(to_list, stream)
    for x in (1, 2, 3):
        await assert_receive(x)


@pytest.mark.virtual_time
async def test_async_stream_with_timeout_and_zip_input_on_exit_set_to_true() -> None:
    sup = await TS.start_link()
    stream = TS.async_stream(
        sup, [1, 100], sleep, zip_input_on_exit=True, on_timeout="kill_task", timeout=0.05
    )
    assert await to_list(stream) == [("ok", 1), ("exit", (100, TIMEOUT))]


async def test_async_stream_with_outer_halt_on_failure_and_zip_input_on_exit() -> None:
    beamlet.process_flag(trap_exit=True)
    sup = await TS.start_link()

    async def exit_with(n: int) -> None:
        beamlet.exit(n)

    stream = TS.async_stream(sup, range(1, 9), exit_with, zip_input_on_exit=True)
    assert await take(stream, 4) == [("exit", (i, i)) for i in range(1, 5)]


# --- describe "async_stream_nolink" --------------------------------------------------------


async def test_async_stream_nolink_streams_an_enumerable_with_exits() -> None:
    sup = await TS.start_link()

    async def boom(n: int) -> int:
        if n % 2:
            beamlet.exit(Atom("odd"))
        return n

    assert await to_list(TS.async_stream_nolink(sup, [1, 2, 3, 4], boom)) == [
        ("exit", Atom("odd")),
        ("ok", 2),
        ("exit", Atom("odd")),
        ("ok", 4),
    ]
    assert links() == (sup,)
    await refute_receive()


async def test_async_stream_nolink_shuts_down_unused_tasks_without_leaking_messages() -> None:
    sup = await TS.start_link()
    stream = TS.async_stream_nolink(sup, [0, "infinity", "infinity"], sleep)
    assert await take(stream, 1) == [("ok", 0)]
    await refute_receive()
    assert await TS.children(sup) == []
