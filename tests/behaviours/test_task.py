"""Task: ports of elixir-lang/elixir lib/elixir/test/elixir/task_test.exs
(docs/semantics.md §12.6: §10.1-§10.6). Each test is named after the upstream test (and
its describe block); times are in seconds, upstream's milliseconds divided by 1000, and
timing-dependent tests run on virtual time."""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gen_helpers import wait_down

import beamlet
from beamlet import (
    ANY,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    TIMEOUT,
    Atom,
    BadArgument,
    Crash,
    Down,
    Exit,
    InvalidTimeout,
    Pid,
    Ref,
)
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import NODEDOWN, CallExit
from beamlet.behaviours.task import Task, TaskOwnerError
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")
OOPS = Atom("oops")


async def wait_and_send(caller: Pid, atom: Any) -> Any:
    beamlet.send(caller, "ready")
    await beamlet.receive(True)
    beamlet.send(caller, atom)
    return atom


async def create_task_in_other_process() -> Task[Any]:
    caller = beamlet.self()

    async def other() -> None:
        beamlet.send(caller, Task.async_(lambda: None))
        await beamlet.receive()  # stay alive: the task is linked to us

    beamlet.spawn(other)
    return await beamlet.receive(Task)  # type: ignore[no-any-return]


async def create_dummy_task(reason: Any) -> Task[Any]:
    async def die() -> None:
        beamlet.exit(reason)

    pid, ref = beamlet.spawn_monitor(die)
    await beamlet.receive(lambda m: type(m) is Down and m.ref == ref)
    return Task(pid, ref, beamlet.self(), "create_dummy_task/1")


def fake_task(pid: Pid | None = None) -> Task[Any]:
    return Task(pid, beamlet.make_ref(), beamlet.self(), "test/1")


async def sleep(n: Any) -> Any:
    """Upstream's sleep/1: n milliseconds (or "infinity"), returns n."""
    if n == "infinity":
        await beamlet.receive(lambda m: False)
    await beamlet.sleep(n / 1000)
    return n


async def exit_with(reason: Any) -> None:
    beamlet.exit(reason)


async def wait_until_down(task: Task[Any]) -> None:
    assert task.pid is not None
    await wait_down(task.pid)


def down_of(ref: Ref) -> Any:
    return lambda m: type(m) is Down and m.ref == ref


def reply_of(ref: Ref) -> Any:
    return lambda m: type(m) is tuple and len(m) == 2 and m[0] == ref


async def call_exit(aw: Any) -> Any:
    with pytest.raises(CallExit) as ei:
        await aw
    return ei.value.reason


def links() -> tuple[Pid, ...]:
    info = beamlet.process_info(beamlet.self())
    assert info is not None
    return info.links


async def to_list(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


async def take(stream: Any, n: int) -> list[Any]:
    """Enum.take: stop after n items; `async with` closes the stream."""
    out: list[Any] = []
    async with stream as s:
        async for r in s:
            out.append(r)
            if len(out) == n:
                break
    return out


# --- creating tasks (§10.1) -------------------------------------------------------------


async def test_generates_child_spec() -> None:
    spec = Task.child_spec(wait_and_send, "x")
    assert spec == ChildSpec(
        id=Task,
        start=Task.start_link,
        args=(wait_and_send, "x"),
        restart="temporary",
        shutdown=5.0,
    )
    custom = Task.child_spec(sleep, id="id", restart="permanent", shutdown="infinity")
    assert (custom.id, custom.restart, custom.shutdown) == ("id", "permanent", "infinity")


async def test_can_be_supervised_directly() -> None:
    """The start function follows child_spec.py's contract: a linked pid."""
    spec = Task.child_spec(lambda: None)
    pid = await spec.start(*spec.args)
    assert isinstance(pid, Pid)


async def test_async_1() -> None:
    parent = beamlet.self()
    task = Task.async_(wait_and_send, parent, "done")
    assert isinstance(task, Task)
    assert isinstance(task.pid, Pid) and isinstance(task.ref, Ref)
    assert task.owner == parent
    assert "wait_and_send" in task.mfa
    assert task.pid in links()
    await assert_receive("ready")
    beamlet.send(task.pid, True)
    await assert_receive((task.ref, "done"))
    down = await assert_receive(down_of(task.ref))
    assert down.reason == NORMAL


async def test_async_3() -> None:
    task = Task.async_(wait_and_send, beamlet.self(), "done")
    assert task.pid in links()
    await assert_receive("ready")
    beamlet.send(task.pid, True)
    assert await Task.await_(task) == "done"
    await assert_receive("done")


async def test_async_with_callers() -> None:
    grandparent = beamlet.self()

    async def outer() -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        def inner() -> None:
            assert Task.callers() == (parent, grandparent)

        await Task.await_(Task.async_(inner))

    await Task.await_(Task.async_(outer))


async def test_start_1() -> None:
    parent = beamlet.self()
    pid = await Task.start(wait_and_send, parent, "done")
    assert pid not in links()
    await assert_receive("ready")
    beamlet.send(pid, True)
    await assert_receive("done")


async def test_completed_1() -> None:
    task = Task.completed("done")
    assert task.pid is None
    assert await Task.await_(task) == "done"


async def test_start_link_1() -> None:
    parent = beamlet.self()
    pid = await Task.start_link(wait_and_send, parent, "done")
    assert pid in links()
    await assert_receive("ready")
    beamlet.send(pid, True)
    await assert_receive("done")


async def test_start_link_with_callers() -> None:
    grandparent = beamlet.self()

    async def outer() -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        def inner() -> None:
            assert Task.callers() == (parent, grandparent)
            beamlet.send(grandparent, "done")

        await Task.start_link(inner)
        await beamlet.receive(lambda m: False, timeout=1, default=None)

    await Task.start_link(outer)
    await assert_receive("done")


# --- ignore/1 (§10.5) -------------------------------------------------------------------


async def test_ignore_discards_on_time_replies() -> None:
    task = Task.async_(lambda: "ok")
    await wait_until_down(task)
    assert Task.ignore(task) == ("ok", "ok")
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))


async def test_ignore_discards_late_replies() -> None:
    async def body() -> str:
        await beamlet.receive("go")
        return "ok"

    task = Task.async_(body)
    assert Task.ignore(task) is None
    assert task.pid is not None
    beamlet.send(task.pid, "go")
    await wait_until_down(task)
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))


async def test_ignore_discards_on_time_failures() -> None:
    beamlet.process_flag(trap_exit=True)
    task = Task.async_(exit_with, OOPS)
    await wait_until_down(task)
    assert Task.ignore(task) == ("exit", OOPS)
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))


async def test_ignore_discards_late_failures() -> None:
    async def body() -> None:
        await beamlet.receive("go")
        beamlet.exit(OOPS)

    task = Task.async_(body)
    assert Task.ignore(task) is None  # unlinked: its failure does not reach us
    assert task.pid is not None
    beamlet.send(task.pid, "go")
    await wait_until_down(task)
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))


async def test_ignore_exits_on_noconnection() -> None:
    task = fake_task(beamlet.self())
    beamlet.send(beamlet.self(), Down(task.ref, PROCESS, beamlet.self(), NOCONNECTION))
    with pytest.raises(CallExit) as ei:
        Task.ignore(task)
    assert ei.value.cause == (NODEDOWN, beamlet.node_name())


async def test_ignore_can_ignore_completed_tasks() -> None:
    assert Task.ignore(Task.completed("done")) == ("ok", "done")


# --- await/2 (§10.2) --------------------------------------------------------------------


async def test_await_demonitors_and_unalias_on_timeout() -> None:
    async def body() -> str:
        await beamlet.receive("go")
        return "done"

    task = Task.async_(body)
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))
    assert task.pid is not None
    beamlet.send(task.pid, "go")
    await wait_until_down(task)
    await refute_receive(reply_of(task.ref), timeout=0.05)
    await refute_receive(down_of(task.ref), timeout=0.05)


async def test_await_exits_on_timeout() -> None:
    task = fake_task()
    assert await call_exit(Task.await_(task, 0)) == (TIMEOUT, ("Task.await", task, 0))


async def test_await_exits_on_normal_exit() -> None:
    task = Task.async_(exit_with, NORMAL)
    assert await call_exit(Task.await_(task)) == (NORMAL, ("Task.await", task, 5.0))


async def test_await_exits_on_task_throw() -> None:
    """Python has no throw: an exception of another class stands in for it."""
    beamlet.process_flag(trap_exit=True)

    def body() -> None:
        raise LookupError("unknown")

    task = Task.async_(body)
    cause, mfa = await call_exit(Task.await_(task))
    assert isinstance(cause, Crash) and isinstance(cause.exception, LookupError)
    assert mfa == ("Task.await", task, 5.0)


async def test_await_exits_on_task_error() -> None:
    beamlet.process_flag(trap_exit=True)

    def body() -> None:
        raise RuntimeError("oops")

    task = Task.async_(body)
    cause, mfa = await call_exit(Task.await_(task))
    assert isinstance(cause, Crash) and isinstance(cause.exception, RuntimeError)
    assert isinstance(cause.stacktrace, tuple)
    assert mfa == ("Task.await", task, 5.0)


async def test_await_exits_on_task_undef_function_error() -> None:
    beamlet.process_flag(trap_exit=True)

    def body() -> None:
        undefined_function()  # type: ignore[name-defined]  # noqa: F821

    task = Task.async_(body)
    cause, _ = await call_exit(Task.await_(task))
    assert isinstance(cause.exception, NameError)


async def test_await_exits_on_task_exit() -> None:
    beamlet.process_flag(trap_exit=True)
    task = Task.async_(exit_with, Atom("unknown"))
    assert await call_exit(Task.await_(task)) == (Atom("unknown"), ("Task.await", task, 5.0))


async def test_await_exits_on_noconnection() -> None:
    task = fake_task(beamlet.self())
    beamlet.send(beamlet.self(), Down(task.ref, PROCESS, beamlet.self(), NOCONNECTION))
    cause, _ = await call_exit(Task.await_(task))
    assert cause == (NODEDOWN, beamlet.node_name())


async def test_await_exits_on_noconnection_from_named_monitor() -> None:
    task = fake_task()
    beamlet.send(
        beamlet.self(), Down(task.ref, PROCESS, (Atom("name"), Atom("node")), NOCONNECTION)
    )
    cause, _ = await call_exit(Task.await_(task))
    assert cause == (NODEDOWN, Atom("node"))


async def test_await_raises_when_invoked_from_a_non_owner_process() -> None:
    task = await create_task_in_other_process()
    with pytest.raises(TaskOwnerError, match="must be queried from the owner"):
        await Task.await_(task, 1)


async def test_await_crash_of_linked_task_kills_a_non_trapping_owner() -> None:
    async def owner() -> None:
        await Task.await_(Task.async_(exit_with, OOPS))

    _, ref = beamlet.spawn_monitor(owner)
    assert (await assert_receive(down_of(ref))).reason == OOPS


async def test_await_invalid_timeout() -> None:
    with pytest.raises(InvalidTimeout):
        await Task.await_(Task.completed(1), -1)


# --- await_many/2 (§10.2) ---------------------------------------------------------------


async def test_await_many_returns_list_of_replies() -> None:
    tasks = [Task.async_(lambda v=v: v) for v in (1, 3, 9)]
    assert await Task.await_many(tasks) == [1, 3, 9]


async def test_await_many_returns_replies_in_input_order_ignoring_response_order() -> None:
    tasks = [fake_task() for _ in range(3)]
    me = beamlet.self()
    beamlet.send(me, (tasks[1].ref, 3))
    beamlet.send(me, (tasks[2].ref, 9))
    beamlet.send(me, (tasks[0].ref, 1))
    assert await Task.await_many(tasks) == [1, 3, 9]


async def test_await_many_returns_an_empty_list_immediately() -> None:
    assert await Task.await_many([]) == []


async def test_await_many_ignores_messages_from_other_processes() -> None:
    other = beamlet.make_ref()
    tasks = [Task.async_(lambda v=v: v) for v in ("a", "b")]
    me = beamlet.self()
    beamlet.send(me, other)
    beamlet.send(me, (other, "z"))
    beamlet.send(me, Down(other, PROCESS, me, Atom("goodbye")))
    assert await Task.await_many(tasks) == ["a", "b"]
    assert await beamlet.receive(timeout=0) == other
    assert await beamlet.receive(timeout=0) == (other, "z")
    assert (await beamlet.receive(timeout=0)).ref == other


async def test_await_many_ignores_additional_messages_after_reply() -> None:
    tasks = [fake_task() for _ in range(2)]
    me = beamlet.self()
    beamlet.send(me, (tasks[1].ref, "b"))
    beamlet.send(me, (tasks[1].ref, "other"))
    beamlet.send(me, (tasks[0].ref, "a"))
    assert await Task.await_many(tasks) == ["a", "b"]
    assert await beamlet.receive(timeout=0) == (tasks[1].ref, "other")


async def test_await_many_exits_on_timeout() -> None:
    tasks = [Task.async_(sleep, "infinity")]
    assert await call_exit(Task.await_many(tasks, 0)) == (
        TIMEOUT,
        ("Task.await_many", tasks, 0),
    )


async def test_await_many_exits_with_same_reason_when_task_exits() -> None:
    tasks = [Task.async_(exit_with, NORMAL)]
    assert await call_exit(Task.await_many(tasks)) == (
        NORMAL,
        ("Task.await_many", tasks, 5.0),
    )


async def test_await_many_exits_immediately_when_any_task_exits() -> None:
    tasks = [Task.async_(sleep, "infinity"), Task.async_(exit_with, NORMAL)]
    assert await call_exit(Task.await_many(tasks)) == (
        NORMAL,
        ("Task.await_many", tasks, 5.0),
    )


async def test_await_many_exits_immediately_when_any_task_crashes() -> None:
    beamlet.process_flag(trap_exit=True)
    tasks = [Task.async_(sleep, "infinity"), Task.async_(exit_with, Atom("unknown"))]
    assert await call_exit(Task.await_many(tasks)) == (
        Atom("unknown"),
        ("Task.await_many", tasks, 5.0),
    )
    # all monitors are cleared up afterwards too
    for t in tasks:
        assert t.pid is not None
        beamlet.exit(t.pid, beamlet.KILL)
    await refute_receive(Down, timeout=0.05)


async def test_await_many_exits_immediately_on_any_task_error() -> None:
    beamlet.process_flag(trap_exit=True)

    def oops() -> None:
        raise RuntimeError("oops")

    tasks = [Task.async_(sleep, "infinity"), Task.async_(oops)]
    cause, mfa = await call_exit(Task.await_many(tasks))
    assert isinstance(cause.exception, RuntimeError)
    assert mfa == ("Task.await_many", tasks, 5.0)


async def test_await_many_exits_immediately_on_noconnection() -> None:
    me = beamlet.self()
    tasks = [Task.async_(sleep, "infinity"), fake_task(me)]
    beamlet.send(me, Down(tasks[1].ref, PROCESS, me, NOCONNECTION))
    cause, _ = await call_exit(Task.await_many(tasks))
    assert cause == (NODEDOWN, beamlet.node_name())


async def test_await_many_exits_immediately_on_noconnection_from_named_monitor() -> None:
    me = beamlet.self()
    tasks = [Task.async_(sleep, "infinity"), fake_task()]
    beamlet.send(me, Down(tasks[1].ref, PROCESS, (Atom("name"), Atom("node")), NOCONNECTION))
    cause, _ = await call_exit(Task.await_many(tasks))
    assert cause == (NODEDOWN, Atom("node"))


async def test_await_many_raises_when_invoked_from_a_non_owner_process() -> None:
    tasks = [Task.async_(sleep, "infinity"), await create_task_in_other_process()]
    with pytest.raises(TaskOwnerError):
        await Task.await_many(tasks, 1)


# --- yield/2, yield_many/2 (§10.3) ------------------------------------------------------


async def test_yield_returns_ok_result_when_reply_and_down_in_message_queue() -> None:
    task = fake_task()
    me = beamlet.self()
    beamlet.send(me, (task.ref, "result"))
    beamlet.send(me, Down(task.ref, PROCESS, me, Atom("abnormal")))
    assert await Task.yield_(task, 0) == ("ok", "result")
    await refute_receive(Down, timeout=0.01)


async def test_yield_returns_nil_on_timeout() -> None:
    assert await Task.yield_(fake_task(), 0) is None


async def test_yield_return_exit_on_normal_exit() -> None:
    task = Task.async_(exit_with, NORMAL)
    assert await Task.yield_(task) == ("exit", NORMAL)


async def test_yield_exits_on_noconnection() -> None:
    me = beamlet.self()
    task = fake_task(me)
    beamlet.send(me, Down(task.ref, PROCESS, me, NOCONNECTION))
    cause, _ = await call_exit(Task.yield_(task))
    assert cause == (NODEDOWN, beamlet.node_name())


async def test_yield_raises_when_invoked_from_a_non_owner_process() -> None:
    task = await create_task_in_other_process()
    with pytest.raises(TaskOwnerError):
        await Task.yield_(task, 1)


@pytest.mark.virtual_time
async def test_yield_keeps_the_monitor_on_timeout() -> None:
    task = Task.async_(sleep, 100)
    assert await Task.yield_(task, 0.05) is None
    assert await Task.yield_(task, 0.2) == ("ok", 100)


async def test_yield_many_returns_ok_result_when_reply_and_down_in_message_queue() -> None:
    task = fake_task()
    me = beamlet.self()
    beamlet.send(me, (task.ref, "result"))
    beamlet.send(me, Down(task.ref, PROCESS, me, Atom("abnormal")))
    assert await Task.yield_many([task], 0) == [(task, ("ok", "result"))]
    await refute_receive(Down, timeout=0.01)


async def test_yield_many_returns_nil_on_timeout_by_default() -> None:
    task = fake_task()
    assert await Task.yield_many([task], 0) == [(task, None)]


async def test_yield_many_shuts_down_on_timeout_when_configured() -> None:
    beamlet.process_flag(trap_exit=True)
    task = Task.async_(sleep, "infinity")
    assert await Task.yield_many([task], timeout=0, on_timeout="kill_task") == [(task, None)]
    assert task.pid is not None and not beamlet.is_alive(task.pid)


async def test_yield_many_ignores_on_timeout_when_configured() -> None:
    async def body() -> str:
        await beamlet.receive("done")
        return "ok"

    task = Task.async_(body)
    assert await Task.yield_many([task], timeout=0, on_timeout="ignore") == [(task, None)]
    assert task.pid is not None and beamlet.is_alive(task.pid)
    ref = beamlet.monitor(task.pid)
    beamlet.send(task.pid, "done")
    await assert_receive(down_of(ref))
    assert await Task.yield_(task, 0) is None


async def test_yield_many_return_exit_on_normal_exit() -> None:
    task = Task.async_(exit_with, NORMAL)
    assert await Task.yield_many([task]) == [(task, ("exit", NORMAL))]


async def test_yield_many_exits_on_noconnection() -> None:
    me = beamlet.self()
    task = fake_task(me)
    beamlet.send(me, Down(task.ref, PROCESS, me, NOCONNECTION))
    cause, _ = await call_exit(Task.yield_many([task]))
    assert cause == (NODEDOWN, beamlet.node_name())


async def test_yield_many_raises_when_invoked_from_a_non_owner_process() -> None:
    task = await create_task_in_other_process()
    with pytest.raises(TaskOwnerError):
        await Task.yield_many([task], 1)


async def test_yield_many_returns_results_from_multiple_tasks() -> None:
    t1, t2, t3 = fake_task(), fake_task(), fake_task()
    me = beamlet.self()
    beamlet.send(me, (t1.ref, "result"))
    beamlet.send(me, Down(t3.ref, PROCESS, me, NORMAL))
    assert await Task.yield_many([t1, t2, t3], 0) == [
        (t1, ("ok", "result")),
        (t2, None),
        (t3, ("exit", NORMAL)),
    ]


async def test_yield_many_returns_results_from_multiple_tasks_with_limit() -> None:
    t1, t2, t3 = fake_task(), fake_task(), fake_task()
    me = beamlet.self()
    beamlet.send(me, (t1.ref, "result"))
    beamlet.send(me, Down(t3.ref, PROCESS, me, NORMAL))
    assert await Task.yield_many([t1, t2, t3], None, limit=1) == [
        (t1, ("ok", "result")),
        (t2, None),
        (t3, None),
    ]
    assert await Task.yield_many([t2, t3], None, limit=1) == [(t2, None), (t3, ("exit", NORMAL))]


async def test_yield_many_returns_once_all_tasks_have_replied_below_limit() -> None:
    task = Task.async_(lambda: "done")
    [(t, result)] = await Task.yield_many([task], None, limit=2)
    assert t == task and result == ("ok", "done")


async def test_yield_many_returns_results_from_multiple_tasks_with_limit_and_on_timeout() -> None:
    beamlet.process_flag(trap_exit=True)
    t1 = Task.async_(sleep, "infinity")
    t2 = Task.async_(lambda: "done")
    assert await Task.yield_many([t1, t2], None, on_timeout="kill_task", limit=1) == [
        (t1, None),
        (t2, ("ok", "done")),
    ]
    assert t1.pid is not None and beamlet.is_alive(t1.pid)
    assert await Task.yield_many([t1], 0, on_timeout="kill_task", limit=1) == [(t1, None)]
    assert not beamlet.is_alive(t1.pid)


async def test_yield_many_returns_results_on_infinity_timeout() -> None:
    t1, t2, t3 = fake_task(), fake_task(), fake_task()
    me = beamlet.self()
    beamlet.send(me, (t1.ref, "result"))
    beamlet.send(me, (t2.ref, "result"))
    beamlet.send(me, Down(t3.ref, PROCESS, me, NORMAL))
    assert await Task.yield_many([t1, t2, t3], None) == [
        (t1, ("ok", "result")),
        (t2, ("ok", "result")),
        (t3, ("exit", NORMAL)),
    ]


# --- shutdown/2 (§10.4) -----------------------------------------------------------------


@pytest.mark.parametrize("mode", [5.0, "brutal_kill"], ids=["shutdown", "brutal_kill"])
@pytest.mark.parametrize("reason", ["abnormal", "normal", "shutdown"])
async def test_shutdown_returns_ok_result_when_reply_and_down_in_message_queue(
    mode: Any, reason: str
) -> None:
    task = await create_dummy_task(Atom(reason))
    me = beamlet.self()
    beamlet.send(me, (task.ref, "result"))
    beamlet.send(me, Down(task.ref, PROCESS, task.pid, Atom(reason)))  # type: ignore[arg-type]
    assert await Task.shutdown(task, mode) == ("ok", "result")
    await refute_receive(Down, timeout=0.01)


async def test_shutdown_returns_nil_on_shutting_down_task() -> None:
    task = Task.async_(sleep, "infinity")
    assert await Task.shutdown(task) is None


@pytest.mark.parametrize(
    ("mode", "reason", "expected"),
    [
        (5.0, "abnormal", ("exit", Atom("abnormal"))),
        (5.0, "normal", ("exit", NORMAL)),
        (5.0, "shutdown", None),
        (5.0, "killed", ("exit", KILLED)),
        ("brutal_kill", "killed", None),
        ("brutal_kill", "abnormal", ("exit", Atom("abnormal"))),
        ("brutal_kill", "normal", ("exit", NORMAL)),
        ("brutal_kill", "shutdown", ("exit", SHUTDOWN)),
    ],
)
async def test_shutdown_returns_for_down_in_message_queue(
    mode: Any, reason: str, expected: Any
) -> None:
    """'returns exit on abnormal/normal :DOWN', 'returns nil on shutdown :DOWN', 'returns
    exit on killed :DOWN' and their brutal_kill counterparts."""
    task = await create_dummy_task(Atom(reason))
    beamlet.send(beamlet.self(), Down(task.ref, PROCESS, task.pid, Atom(reason)))  # type: ignore[arg-type]
    assert await Task.shutdown(task, mode) == expected


@pytest.mark.parametrize("mode", [5.0, "brutal_kill"])
async def test_shutdown_exits_on_noconnection_down_in_message_queue(mode: Any) -> None:
    task = await create_dummy_task(NOCONNECTION)
    beamlet.send(beamlet.self(), Down(task.ref, PROCESS, task.pid, NOCONNECTION))  # type: ignore[arg-type]
    assert await call_exit(Task.shutdown(task, mode)) == (
        (NODEDOWN, beamlet.node_name()),
        ("Task.shutdown", task, mode),
    )


async def test_shutdown_ignores_if_task_pid_is_nil() -> None:
    ref = beamlet.make_ref()
    me = beamlet.self()
    beamlet.send(me, (ref, "done"))
    assert await Task.shutdown(Task(None, ref, me)) == ("ok", "done")
    ref = beamlet.make_ref()
    beamlet.send(me, Down(ref, PROCESS, me, Atom("done")))
    assert await Task.shutdown(Task(None, ref, me)) == ("exit", Atom("done"))


async def test_shutdown_raises_when_invoked_from_a_non_owner_process() -> None:
    task = await create_task_in_other_process()
    with pytest.raises(TaskOwnerError):
        await Task.shutdown(task)


async def test_shutdown_returns_nil_on_killing_task() -> None:
    caller = beamlet.self()

    async def body() -> None:
        beamlet.process_flag(trap_exit=True)
        await wait_and_send(caller, "ready")
        await sleep("infinity")

    task = Task.async_(body)
    await assert_receive("ready")
    assert await Task.shutdown(task, "brutal_kill") is None
    await refute_receive(Down, timeout=0.01)


@pytest.mark.virtual_time
async def test_shutdown_returns_exit_on_killing_task_after_shutdown_timeout() -> None:
    caller = beamlet.self()

    async def body() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(caller, "ready")
        await sleep("infinity")

    task = Task.async_(body)
    await assert_receive("ready")
    assert await Task.shutdown(task, 0.001) == ("exit", KILLED)


@pytest.mark.parametrize("mode", [5.0, "brutal_kill"])
async def test_shutdown_returns_exit_noproc_if_task_handled(mode: Any) -> None:
    task = await create_dummy_task(NOPROC)
    assert await Task.shutdown(task, mode) == ("exit", NOPROC)


# --- async_stream (§10.6) ---------------------------------------------------------------


async def test_async_stream_timeout() -> None:
    reason = await call_exit(to_list(Task.async_stream(["infinity"], sleep, timeout=0)))
    assert reason == (TIMEOUT, ("Task.async_stream", 0))
    await refute_receive(ANY, timeout=0.05)


@pytest.mark.virtual_time
async def test_async_stream_streams_an_enumerable_with_ordered_false() -> None:
    got = await to_list(
        Task.async_stream(
            range(4, 0, -1), lambda n: sleep(n * 100), max_concurrency=1, ordered=False
        )
    )
    assert got == [("ok", 400), ("ok", 300), ("ok", 200), ("ok", 100)]
    got = await to_list(
        Task.async_stream(
            range(4, 0, -1), lambda n: sleep(n * 100), max_concurrency=4, ordered=False
        )
    )
    assert got == [("ok", 100), ("ok", 200), ("ok", 300), ("ok", 400)]


@pytest.mark.virtual_time
async def test_async_stream_streams_an_enumerable_with_ordered_false_on_timeout_kill_task() -> None:
    stream = Task.async_stream(
        [100, 1, 100, 1],
        sleep,
        max_concurrency=4,
        ordered=False,
        on_timeout="kill_task",
        timeout=0.05,
    )
    assert await to_list(stream) == [
        ("ok", 1),
        ("ok", 1),
        ("exit", TIMEOUT),
        ("exit", TIMEOUT),
    ]
    await refute_receive(ANY, timeout=0.05)


async def test_async_stream_streams_an_enumerable_with_infinite_timeout() -> None:
    assert await to_list(Task.async_stream([1], lambda _: "ok", timeout=None)) == [("ok", "ok")]


async def test_async_stream_does_not_allow_streaming_with_max_concurrency_0() -> None:
    with pytest.raises(BadArgument, match="max_concurrency must be an integer greater than zero"):
        Task.async_stream([1], lambda _: "ok", max_concurrency=0)


async def test_async_stream_does_not_allow_streaming_with_invalid_on_timeout() -> None:
    with pytest.raises(BadArgument, match="on_timeout must be either 'exit' or 'kill_task'"):
        Task.async_stream([1], lambda _: "ok", on_timeout="unknown")  # type: ignore[arg-type]


async def test_async_stream_does_not_allow_streaming_with_invalid_timeout() -> None:
    with pytest.raises(InvalidTimeout):
        Task.async_stream([1], lambda _: "ok", timeout="unknown")  # type: ignore[arg-type]


async def test_async_stream_is_lazy() -> None:
    started: list[int] = []

    def record(n: int) -> None:
        started.append(n)  # a closure: functions travel by reference

    stream = Task.async_stream([1, 2], record)
    await refute_receive(ANY, timeout=0.01)
    assert started == [] and links() == ()
    assert await to_list(stream) == [("ok", None), ("ok", None)]


async def test_async_stream_streams_with_fake_down_messages_on_the_inbox() -> None:
    parent = beamlet.self()

    def body(_: Any) -> str:
        info = beamlet.process_info(beamlet.self())
        assert info is not None
        for link in info.links:
            beamlet.send(link, Down(beamlet.make_ref(), PROCESS, parent, OOPS))
        return "ok"

    assert await to_list(Task.async_stream(["ok"], body)) == [("ok", "ok")]


async def test_async_stream_with_callers() -> None:
    grandparent = beamlet.self()

    async def outer(_: Any) -> None:
        parent = beamlet.self()
        assert Task.callers() == (grandparent,)

        def inner(_: Any) -> None:
            assert Task.callers() == (parent, grandparent)
            beamlet.send(grandparent, "done")

        await to_list(Task.async_stream([1], inner))

    await to_list(Task.async_stream([1], outer))
    await assert_receive("done")


async def test_async_stream_consuming_from_another_process() -> None:
    parent = beamlet.self()
    stream = Task.async_stream([1, 2, 3], lambda n: beamlet.send(parent, n))
    await Task.start(to_list, stream)
    for n in (1, 2, 3):
        await assert_receive(n)


async def test_async_stream_wrapping_a_flat_map_concat_with_a_haltable_stream() -> None:
    items = itertools.chain(itertools.islice(["foo", "bar"], 1), [1, 2])
    assert await to_list(Task.async_stream(items, lambda x: x)) == [
        ("ok", "foo"),
        ("ok", 1),
        ("ok", 2),
    ]


async def test_async_stream_accepts_async_iterables() -> None:
    async def gen() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    assert await to_list(Task.async_stream(gen(), lambda x: x * 2)) == [
        ("ok", 0),
        ("ok", 2),
        ("ok", 4),
    ]


async def test_async_stream_input_that_raises_stops_the_tasks() -> None:
    def items() -> Any:
        yield "infinity"
        raise ValueError("bad input")

    stream = Task.async_stream(items(), sleep, max_concurrency=2)
    with pytest.raises(ValueError, match="bad input"):
        await to_list(stream)
    assert links() == ()
    await refute_receive(ANY, timeout=0.05)


async def test_async_stream_one_consumer_only() -> None:
    stream = Task.async_stream([1, 2], lambda x: x, max_concurrency=1)
    assert await stream.__anext__() == ("ok", 1)

    async def other() -> None:
        with pytest.raises(beamlet.BeamletError):
            await stream.__anext__()
        beamlet.send(parent, "checked")

    parent = beamlet.self()
    beamlet.spawn(other)
    await assert_receive("checked")
    await stream.aclose()


CONCURRENCY = pytest.mark.parametrize("max_concurrency", [4, 2, 8], ids=["==4", "<4", ">4"])


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_streams_an_enumerable_with_fun(
    max_concurrency: int,
) -> None:
    got = await to_list(Task.async_stream(range(1, 5), sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_streams_an_enumerable_with_mfa(
    max_concurrency: int,
) -> None:
    async def sleep_then(n: int, add: int) -> int:
        return await sleep(n) + add

    fn = functools.partial(sleep_then, add=0)
    got = await to_list(Task.async_stream(range(1, 5), fn, max_concurrency=max_concurrency))
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_streams_an_enumerable_without_leaking_tasks(
    max_concurrency: int,
) -> None:
    got = await to_list(Task.async_stream(range(1, 5), sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    await refute_receive(ANY, timeout=0.05)
    assert links() == ()


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_streams_an_enumerable_with_slowest_first(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    got = await to_list(Task.async_stream(range(4, 0, -1), sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 4), ("ok", 3), ("ok", 2), ("ok", 1)]


@CONCURRENCY
async def test_async_stream_with_max_concurrency_streams_an_enumerable_with_exits(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    got = await to_list(Task.async_stream(range(1, 5), exit_with, max_concurrency=max_concurrency))
    assert got == [("exit", 1), ("exit", 2), ("exit", 3), ("exit", 4)]
    await refute_receive(Exit, timeout=0.05)


@CONCURRENCY
async def test_async_stream_with_max_concurrency_shuts_down_unused_tasks(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(
        [0, "infinity", "infinity", "infinity"], sleep, max_concurrency=max_concurrency
    )
    assert await take(stream, 1) == [("ok", 0)]
    assert links() == ()


@CONCURRENCY
async def test_async_stream_with_max_concurrency_shuts_down_unused_tasks_without_leaking_messages(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(
        [0, "infinity", "infinity", "infinity"], sleep, max_concurrency=max_concurrency
    )
    assert await take(stream, 1) == [("ok", 0)]
    await refute_receive(ANY, timeout=0.05)


@CONCURRENCY
async def test_async_stream_with_max_concurrency_shuts_down_unused_tasks_on_bare_break(
    max_concurrency: int,
) -> None:
    """`break` without `async with`: the dropped stream is finalized at once."""
    got = []
    async for r in Task.async_stream(
        [0, "infinity", "infinity", "infinity"], sleep, max_concurrency=max_concurrency
    ):
        got.append(r)
        break
    assert got == [("ok", 0)]
    assert links() == ()
    await refute_receive(ANY, timeout=0.05)


async def zip_streams(a: Any, b: Any) -> list[tuple[Any, Any]]:
    out = []
    async for x in a:
        out.append((x[1], (await b.__anext__())[1]))
    return out


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_is_zippable_on_success(
    max_concurrency: int,
) -> None:
    a = Task.async_stream(range(1, 5), sleep, max_concurrency=max_concurrency)
    b = Task.async_stream(range(1, 5), sleep, max_concurrency=max_concurrency)
    assert await zip_streams(a, b) == [(1, 1), (2, 2), (3, 3), (4, 4)]


@CONCURRENCY
async def test_async_stream_with_max_concurrency_is_zippable_on_failure(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    a = Task.async_stream(range(1, 5), exit_with, max_concurrency=max_concurrency)
    b = Task.async_stream(range(1, 5), exit_with, max_concurrency=max_concurrency)
    assert await zip_streams(a, b) == [(1, 1), (2, 2), (3, 3), (4, 4)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_is_zippable_with_slowest_first(
    max_concurrency: int,
) -> None:
    a = Task.async_stream(range(4, 0, -1), sleep, max_concurrency=max_concurrency)
    b = Task.async_stream(range(4, 0, -1), sleep, max_concurrency=max_concurrency)
    assert await zip_streams(a, b) == [(4, 4), (3, 3), (2, 2), (1, 1)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_inner_halt_on_success(
    max_concurrency: int,
) -> None:
    items = itertools.islice(range(1, 9), 4)
    got = await to_list(Task.async_stream(items, sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]


@CONCURRENCY
async def test_async_stream_with_max_concurrency_with_inner_halt_on_failure(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    items = itertools.islice(range(1, 9), 4)
    got = await to_list(Task.async_stream(items, exit_with, max_concurrency=max_concurrency))
    assert got == [("exit", 1), ("exit", 2), ("exit", 3), ("exit", 4)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_inner_halt_and_slowest_first(
    max_concurrency: int,
) -> None:
    items = itertools.islice(range(8, 0, -1), 4)
    got = await to_list(Task.async_stream(items, sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 8), ("ok", 7), ("ok", 6), ("ok", 5)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_outer_halt_on_success(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(range(1, 9), sleep, max_concurrency=max_concurrency)
    assert await take(stream, 4) == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    assert links() == ()


@CONCURRENCY
async def test_async_stream_with_max_concurrency_with_outer_halt_on_failure(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    stream = Task.async_stream(range(1, 9), exit_with, max_concurrency=max_concurrency)
    assert await take(stream, 4) == [("exit", 1), ("exit", 2), ("exit", 3), ("exit", 4)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_outer_halt_and_slowest_first(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(range(8, 0, -1), sleep, max_concurrency=max_concurrency)
    assert await take(stream, 4) == [("ok", 8), ("ok", 7), ("ok", 6), ("ok", 5)]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_terminates_inner_effect(
    max_concurrency: int,
) -> None:
    done = []

    async def transform(stream: Any) -> AsyncIterator[Any]:
        try:
            async for x in stream:
                yield x
        finally:
            done.append(True)

    got = await to_list(
        transform(Task.async_stream(range(1, 5), sleep, max_concurrency=max_concurrency))
    )
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    assert done == [True]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_terminates_outer_effect(
    max_concurrency: int,
) -> None:
    done = []

    def items() -> Any:
        try:
            yield from range(1, 5)
        finally:
            done.append(True)

    got = await to_list(Task.async_stream(items(), sleep, max_concurrency=max_concurrency))
    assert got == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    assert done == [True]


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_on_timeout_set_to_kill_task(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(
        [100, 1, 100, 1],
        sleep,
        max_concurrency=max_concurrency,
        on_timeout="kill_task",
        timeout=0.05,
    )
    assert await to_list(stream) == [("exit", TIMEOUT), ("ok", 1), ("exit", TIMEOUT), ("ok", 1)]
    await refute_receive(ANY, timeout=0.05)


@CONCURRENCY
@pytest.mark.virtual_time
async def test_async_stream_with_max_concurrency_with_timeout_and_zip_input_on_exit_set_to_true(
    max_concurrency: int,
) -> None:
    stream = Task.async_stream(
        [1, 100],
        sleep,
        max_concurrency=max_concurrency,
        zip_input_on_exit=True,
        on_timeout="kill_task",
        timeout=0.05,
    )
    assert await to_list(stream) == [("ok", 1), ("exit", (100, TIMEOUT))]


@CONCURRENCY
async def test_async_stream_with_max_concurrency_with_outer_halt_on_failure_and_zip_input_on_exit(
    max_concurrency: int,
) -> None:
    beamlet.process_flag(trap_exit=True)
    stream = Task.async_stream(
        range(1, 9), exit_with, max_concurrency=max_concurrency, zip_input_on_exit=True
    )
    assert await take(stream, 4) == [
        ("exit", (1, 1)),
        ("exit", (2, 2)),
        ("exit", (3, 3)),
        ("exit", (4, 4)),
    ]


@pytest.mark.virtual_time
async def test_async_stream_respects_max_concurrency() -> None:
    """Back-pressure: never more than max_concurrency tasks at once, and the input is
    pulled only when a slot is free."""
    running = [0]
    peak = [0]
    pulled: list[int] = []

    async def work(n: int) -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await beamlet.sleep(0.01 * (n % 3 + 1))
        running[0] -= 1
        return n

    def items() -> Any:
        for i in range(20):
            pulled.append(i)
            yield i

    stream = Task.async_stream(items(), work, max_concurrency=3)
    first = await stream.__anext__()
    assert first == ("ok", 0)
    assert len(pulled) <= 4  # 3 running + at most one more after a slot freed
    rest = await to_list(stream)
    assert [v for _, v in [first, *rest]] == list(range(20))
    assert peak[0] == 3


async def test_async_stream_crash_ends_a_non_trapping_consumer() -> None:
    async def consumer() -> None:
        await to_list(Task.async_stream([1], exit_with))

    _, ref = beamlet.spawn_monitor(consumer)
    assert (await assert_receive(down_of(ref))).reason == 1


async def test_async_via_custom_spawn_nolink() -> None:
    """The hook Task.Supervisor reuses: an unlinked task (async_nolink) whose crash
    reaches the owner only as a DOWN."""
    from beamlet.behaviours.task import _async_via, _stream

    task = await _async_via(beamlet.spawn, exit_with, (OOPS,))
    assert task.pid not in links()
    assert await Task.yield_(task) == ("exit", OOPS)
    ok = await _async_via(beamlet.spawn, lambda: 42, ())
    assert await Task.await_(ok) == 42

    async def spawn_later(body: Any) -> Pid:  # an async spawn, as a supervisor call is
        await beamlet.sleep(0)
        return beamlet.spawn(body)

    stream = _stream([1, OOPS, 3], exit_with, spawn=spawn_later, link=False)
    assert await to_list(stream) == [("exit", 1), ("exit", OOPS), ("exit", 3)]
    await refute_receive(ANY, timeout=0.05)


async def test_stream_worker_exits_when_the_owner_dies_before_go() -> None:
    """A task started for the stream by another process does not wait for ever."""
    from beamlet.behaviours.task import _stream_worker

    async def owner() -> None:
        await beamlet.receive("never")

    o = beamlet.spawn(owner)
    worker = beamlet.spawn(_stream_worker, o)
    ref = beamlet.monitor(worker)
    beamlet.exit(o, beamlet.KILL)
    reason = (await assert_receive(down_of(ref))).reason
    # killed, or noproc if the worker had not started watching yet
    assert reason[0] == SHUTDOWN and reason[1] in (KILLED, NOPROC)
