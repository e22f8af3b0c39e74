"""Task.Supervisor: start tasks under a supervisor (docs/semantics.md §10.7).

A `TaskSupervisor` is a `DynamicSupervisor` whose children are tasks. Starting tasks
through it instead of `Task.async_` keeps them out of the caller's failure domain when
you want that (`async_nolink`: a crashing task only sends a DOWN), gives a place to
look them up (`children`) and to stop them all at shutdown, and bounds how many run at
once (`max_children`).

When to use it: for tasks started from long-lived processes (a GenServer firing off a
request it must not crash with), for fire-and-forget work that must still be stopped
cleanly when the application shuts down (`start_child`), and for `async_stream`s whose
tasks should belong to the tree.

Examples:

    children = [TaskSupervisor.child_spec(name="tasks")]
    await Supervisor.start_link(children)

    task = await TaskSupervisor.async_nolink("tasks", fetch, url)
    match await Task.yield_(task, 5.0):
        case ("ok", body): ...
        case ("exit", reason): ...          # the task crashed; we did not
        case None: await Task.shutdown(task)

The `Task` values returned by `async_` / `async_nolink` are ordinary tasks: collect them
with `Task.await_`, `Task.yield_`, `Task.shutdown` (only from the owner, the caller).

Edge cases:

* Tasks are `temporary` children: never restarted (unless `start_child(...,
  restart="transient"/"permanent")`), and a restart reruns the function with the same
  arguments.
* At `max_children`, `async_` and `async_nolink` raise `MaxChildren` (Elixir raises);
  `start_child` raises it as well (Elixir returns `{:error, :max_children}`).
* `async_` links the task to the caller *after* the supervisor started it; the task does
  nothing until it gets its work, and exits `(shutdown, reason)` if its owner dies
  first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from typing import Any, Final, Literal

from beamlet import _core as api
from beamlet._core import NORMAL, SHUTDOWN, TIMEOUT, Atom, Down, Pid, ProcessExit
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec, Restart, Shutdown
from beamlet.behaviours.dynamic_supervisor import (
    DynamicServer,
    DynamicSupervisor,
    MaxChildren,
    _DynServer,
)
from beamlet.behaviours.supervisor import UNDEF, SupName, _shutdown_of
from beamlet.behaviours.task import (
    Task,
    TaskStream,
    _callers,
    _describe,
    _Go,
    _run_detached,
    _stream,
    _stream_worker,
)

__all__ = ["TaskSupervisor"]

_MAX_TASKS_MESSAGE = (
    "reached the maximum number of tasks for this task supervisor. The maximum number of "
    "tasks that are allowed to run at the same time under this supervisor can be "
    "configured with the max_children option of TaskSupervisor.start_link"
)


log = logging.getLogger("beamlet")

# Elixir's Task.Supervisor protocol (task/supervisor.ex, task/supervised.ex): a caller on
# another node sends {start_task, Args, Restart, Shutdown}; the task runs {M, F, A}.
START_TASK: Final = Atom("start_task")
MONITOR: Final = Atom("monitor")
ERLANG: Final = Atom("erlang")
APPLY: Final = Atom("apply")
BADFUN: Final = Atom("badfun")


async def _run_mfa(mfa: Any) -> Any:
    """Run `{M, F, A}` from another node: the Python function registered as `M:F`. A
    fun (`{erlang, apply, [Fun, Args]}`) cannot run in Python: the task exits
    `{badfun, Fun}`; an unknown function exits `{undef, [{M, F, A, []}]}`, as in Erlang.
    Either way the caller gets the task's DOWN at once, never a hang."""
    m, f, a = mfa
    args = gen.arg_list(a)
    if m == ERLANG and f == APPLY and args and not callable(args[0]):
        log.error("Task.Supervisor: a fun from another node cannot run in Python: %r", args[0])
        raise ProcessExit((BADFUN, args[0]))
    fn = gen.lookup_function(m, f)
    if fn is None:
        raise ProcessExit((UNDEF, [(m, f, a, [])]))
    return await gen.run_callback(fn, *args)


async def _elixir_task(owner: Any, monitor: Any) -> None:
    """Task.Supervised.reply/2: wait for `{OwnerPid, Ref, ReplyTo, Callers, MFA}` (the
    owner monitored meanwhile, 5 s at most), run the MFA, send `{Ref, Result}`."""
    owner_pid = owner[2]
    mref = api.monitor(owner_pid) if monitor == MONITOR else None

    def go(m: Any) -> bool:
        if type(m) is Down:
            return m.ref == mref
        return type(m) is tuple and len(m) == 5 and m[0] == owner_pid

    msg = await api.receive(go, timeout=5.0 if mref is not None else None, default=None)
    if msg is None:
        raise ProcessExit(TIMEOUT)
    if type(msg) is Down:
        raise ProcessExit((SHUTDOWN, msg.reason))
    if mref is not None:
        api.demonitor(mref, flush=True)
    _, ref, reply_to, _callers, mfa = msg
    result = await _run_mfa(mfa)
    api.send(reply_to, (ref, result))


async def _elixir_detached(_owner: Any, _callers: Any, mfa: Any) -> None:
    await _run_mfa(mfa)


async def _start_elixir_task(args: list[Any]) -> Pid:
    if len(args) == 2:
        return api.spawn_link(_elixir_task, *args)
    return api.spawn_link(_elixir_detached, *args)


class _TaskSupState(_DynServer):
    def handle_other(self, request: Any) -> ChildSpec | None:
        """`{start_task, Args, Restart, Shutdown}` from Elixir's Task.Supervisor."""
        if type(request) is tuple and len(request) == 4 and request[0] == START_TASK:
            _, args, restart, shutdown = request
            if type(args) is not list or len(args) not in (2, 3):
                return None
            r = "temporary" if restart in (None, Atom("nil")) else str(restart)
            return ChildSpec(
                id=Task,
                start=_start_elixir_task,
                args=(args,),
                restart=r,  # type: ignore[arg-type]
                shutdown=_shutdown_of(shutdown) or 5.0,
            )
        return None


class _TaskSupServer(DynamicServer):
    kind = "Task.Supervisor"
    state_class = _TaskSupState


class _TaskSup(DynamicSupervisor):
    server = _TaskSupServer


async def _start_waiting_task(owner: Pid) -> Pid:
    """Start function (runs in the supervisor): a task that waits for its work."""
    return api.spawn_link(_stream_worker, owner)


async def _start_detached(fn: Callable[..., Any], args: tuple[Any, ...], callers: Any) -> Pid:
    """Start function of `start_child`: run `fn(*args)`, nothing is sent back."""
    return api.spawn_link(_run_detached, fn, args, callers)


async def _start_body(body: Callable[[], Coroutine[Any, Any, None]]) -> Pid:
    """Start function of a stream task: `body` waits for its go message itself."""
    return api.spawn_link(body)


def _task_spec(
    start: Any, args: tuple[Any, ...], restart: Restart, shutdown: Shutdown
) -> ChildSpec:
    return ChildSpec(id=Task, start=start, args=args, restart=restart, shutdown=shutdown)


async def _start_task_child(supervisor: Any, spec: ChildSpec) -> Pid:
    try:
        pid = await DynamicSupervisor.start_child(supervisor, spec)
    except MaxChildren:
        raise MaxChildren(_MAX_TASKS_MESSAGE) from None
    assert pid is not None  # our start functions never say ignore
    return pid


class TaskSupervisor:
    """Supervise tasks (Elixir's `Task.Supervisor`, §10.7). All functions are static;
    `supervisor` is a pid, a registered name or a `Via`.

    Examples:
        >>> from beamlet import Task, TaskSupervisor
        >>> sup = await TaskSupervisor.start_link()
        >>> task = await TaskSupervisor.async_(sup, lambda: 6 * 7)
        >>> await Task.await_(task)
        42
        >>> async def report(to):
        ...     beamlet.send(to, "done")
        >>> _ = await TaskSupervisor.start_child(sup, report, beamlet.self())  # fire and forget
        >>> await beamlet.receive(str, timeout=1)
        'done'
    """

    @staticmethod
    async def start_link(
        *,
        name: SupName | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
        max_children: int | None = None,
    ) -> Pid:
        """Start a task supervisor linked to the caller (a DynamicSupervisor)."""
        pid = await _TaskSup.start_link(
            name=name, max_restarts=max_restarts, max_seconds=max_seconds, max_children=max_children
        )
        assert pid is not None
        return pid

    @staticmethod
    def child_spec(**options: Any) -> ChildSpec:
        """Run a task supervisor in a supervision tree (type supervisor; id its `name`,
        else `TaskSupervisor`); `options` as for `start_link`, plus spec overrides.

        Examples:
            >>> from beamlet import Supervisor, TaskSupervisor
            >>> spec = TaskSupervisor.child_spec(name="tasks", max_children=100)
            >>> spec.id, spec.type
            ('tasks', 'supervisor')
            >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
            >>> beamlet.whereis("tasks") is not None
            True
        """
        if "name" not in options:
            options.setdefault("id", TaskSupervisor)
        return _TaskSup.child_spec(None, **options)

    @staticmethod
    async def async_(
        supervisor: Any, fn: Callable[..., Any], *args: Any, shutdown: Shutdown = 5.0
    ) -> Task[Any]:
        """Run `fn(*args)` as a child of `supervisor`, linked to and monitored by the
        caller, like `Task.async_`: await it with `Task.await_`. If the task crashes,
        the link ends a caller that does not trap exits. Raises `MaxChildren`."""
        return await TaskSupervisor._async(supervisor, fn, args, shutdown, link=True)

    @staticmethod
    async def async_nolink(
        supervisor: Any, fn: Callable[..., Any], *args: Any, shutdown: Shutdown = 5.0
    ) -> Task[Any]:
        """Like `async_` but not linked: a crash of the task reaches the caller only as
        the task's DOWN (`Task.yield_` returns `("exit", reason)`, `Task.await_` raises
        `CallExit`). The usual way to run risky work from a GenServer."""
        return await TaskSupervisor._async(supervisor, fn, args, shutdown, link=False)

    @staticmethod
    async def _async(
        supervisor: Any,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        shutdown: Shutdown,
        *,
        link: bool,
    ) -> Task[Any]:
        owner = api.self()
        spec = _task_spec(_start_waiting_task, (owner,), "temporary", shutdown)
        pid = await _start_task_child(supervisor, spec)
        if link:
            api.link(pid)
        ref = api.monitor(pid, alias="demonitor")
        api.send(pid, _Go(ref, fn, args, (owner, *_callers.get())))
        return Task(pid, ref, owner, _describe(fn, len(args)))

    @staticmethod
    async def start_child(
        supervisor: Any,
        fn: Callable[..., Any],
        *args: Any,
        restart: Restart = "temporary",
        shutdown: Shutdown = 5.0,
    ) -> Pid:
        """Run `fn(*args)` under `supervisor`, neither linked to nor monitored by the
        caller; nothing is sent back. `restart="transient"` reruns it (same arguments)
        after an abnormal exit. Raises `MaxChildren`."""
        callers = (api.self(), *_callers.get())
        spec = _task_spec(_start_detached, (fn, args, callers), restart, shutdown)
        return await _start_task_child(supervisor, spec)

    @staticmethod
    async def children(supervisor: Any) -> list[Pid]:
        """The pids of the running tasks."""
        return [
            i.pid for i in await DynamicSupervisor.which_children(supervisor) if type(i.pid) is Pid
        ]

    @staticmethod
    async def terminate_child(supervisor: Any, pid: Pid) -> None:
        """Stop task `pid`; `ChildNotFound` if it is not a child (anymore)."""
        await DynamicSupervisor.terminate_child(supervisor, pid)

    @staticmethod
    async def stop(supervisor: Any, reason: Any = NORMAL, timeout: float | None = None) -> None:
        """Stop the supervisor and all its tasks (concurrently)."""
        await DynamicSupervisor.stop(supervisor, reason, timeout)

    @staticmethod
    def async_stream(
        supervisor: Any,
        items: Iterable[Any] | AsyncIterable[Any],
        fn: Callable[..., Any],
        *,
        max_concurrency: int | None = None,
        ordered: bool = True,
        timeout: float | None = 5.0,
        on_timeout: Literal["exit", "kill_task"] = "exit",
        zip_input_on_exit: bool = False,
        shutdown: Shutdown = 5.0,
    ) -> TaskStream:
        """`Task.async_stream` with the tasks started under `supervisor` (and linked to
        the consumer). If the supervisor is full the stream stops its tasks and raises
        `MaxChildren`."""
        return TaskSupervisor._stream(
            supervisor,
            items,
            fn,
            True,
            "Task.Supervisor.async_stream",
            max_concurrency=max_concurrency,
            ordered=ordered,
            timeout=timeout,
            on_timeout=on_timeout,
            zip_input_on_exit=zip_input_on_exit,
            shutdown=shutdown,
        )

    @staticmethod
    def async_stream_nolink(
        supervisor: Any,
        items: Iterable[Any] | AsyncIterable[Any],
        fn: Callable[..., Any],
        *,
        max_concurrency: int | None = None,
        ordered: bool = True,
        timeout: float | None = 5.0,
        on_timeout: Literal["exit", "kill_task"] = "exit",
        zip_input_on_exit: bool = False,
        shutdown: Shutdown = 5.0,
    ) -> TaskStream:
        """Like `async_stream` but the tasks are not linked to the consumer: a crash
        becomes an `("exit", reason)` item instead of an exit signal."""
        return TaskSupervisor._stream(
            supervisor,
            items,
            fn,
            False,
            "Task.Supervisor.async_stream_nolink",
            max_concurrency=max_concurrency,
            ordered=ordered,
            timeout=timeout,
            on_timeout=on_timeout,
            zip_input_on_exit=zip_input_on_exit,
            shutdown=shutdown,
        )

    @staticmethod
    def _stream(
        supervisor: Any,
        items: Iterable[Any] | AsyncIterable[Any],
        fn: Callable[..., Any],
        link: bool,
        name: str,
        *,
        shutdown: Shutdown,
        **opts: Any,
    ) -> TaskStream:
        ChildSpec(id=Task, start=_start_body, shutdown=shutdown)  # validate now

        async def spawn(body: Callable[[], Coroutine[Any, Any, None]]) -> Pid:
            spec = _task_spec(_start_body, (body,), "temporary", shutdown)
            pid = await _start_task_child(supervisor, spec)
            if link:
                api.link(pid)
            return pid

        return _stream(items, fn, spawn=spawn, link=link, name=name, **opts)
