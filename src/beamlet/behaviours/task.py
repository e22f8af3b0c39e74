"""Task: run a function in its own process and (usually) wait for its result
(docs/semantics.md §10).

The most common use is running work concurrently and collecting the answers::

    t1 = Task.async_(fetch, "a")          # starts now, linked to us
    t2 = Task.async_(fetch, "b")
    a, b = await Task.await_many([t1, t2])

or mapping a function over many inputs with bounded concurrency::

    async for kind, value in Task.async_stream(urls, fetch, max_concurrency=8):
        ...                                 # ("ok", result) or ("exit", reason)

A task started with `async_` is **linked** to its owner (the caller) and **monitored**
through an alias: the task sends `(task.ref, result)` to the alias and exits `normal`.
Because the reply is sent before the task exits, a task that finished always yields its
reply, never its DOWN (§3.5). Only the owner may `await_`, `yield_`, `shutdown` or
`ignore` a task (anyone else gets `TaskOwnerError`).

Failures follow Elixir: if the task crashes, the link ends an owner that does not trap
exits with the same reason; an owner that traps exits sees `await_` raise `CallExit`
with the task's exit reason. `await_` also raises `CallExit(TIMEOUT)` after `timeout`
seconds — the task keeps running, but its late reply can never reach the owner (the
alias is gone). Use `yield_` to poll without giving up, `shutdown` to stop a task and
get whatever it produced.

For fire-and-forget work use `Task.start` (unlinked) or, under a supervisor,
`Task.start_link` / `Task.child_spec` (restart "temporary").
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

from beamlet import _core as api
from beamlet._core import (
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    SHUTDOWN,
    TIMEOUT,
    BadArgument,
    BeamletError,
    Down,
    Exit,
    NotInProcess,
    Pid,
    Ref,
    Terminated,
)
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen import CallExit
from beamlet.behaviours.gen import check_timeout as _timeout
from beamlet.behaviours.gen import down_cause as _down_cause

__all__ = ["SpawnFn", "Task", "TaskOwnerError", "TaskStream", "async_stream"]

T = TypeVar("T")

Result = tuple[Literal["ok", "exit"], Any]
"""`("ok", value)` or `("exit", reason)`, as Elixir's `{:ok, value}` / `{:exit, reason}`."""

SpawnFn = Callable[[Callable[[], Coroutine[Any, Any, None]]], "Pid | Awaitable[Pid]"]
"""How a stream starts one task: given a zero-argument async body, start a process that
runs it and return its pid (linked to the caller when the stream is linked)."""


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


_NOTHING: Final[Any] = _Nothing()

# `$callers` (§10.1): the processes that started this one through Task, newest first.
_callers: contextvars.ContextVar[tuple[Pid, ...]] = contextvars.ContextVar(
    "beamlet_task_callers", default=()
)


class TaskOwnerError(BeamletError, ValueError):
    """A task was awaited, yielded, shut down or ignored by a process that does not own
    it (Elixir's ArgumentError)."""


@dataclass(frozen=True, slots=True)
class _Go:
    """First message to a task: where to reply and what to run."""

    ref: Ref
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    callers: tuple[Pid, ...]


def _describe(fn: Any, nargs: int) -> str:
    mod = getattr(fn, "__module__", None) or "?"
    return f"{mod}.{getattr(fn, '__qualname__', repr(fn))}/{nargs}"


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    r = fn(*args)
    if inspect.isawaitable(r):
        r = await r
    return r


def _is_go(m: Any) -> bool:
    return type(m) is _Go


async def _task_main() -> None:
    """Body of an `async_` task: wait for the go message, run, reply, exit normal."""
    go = await api.receive(_is_go)
    _callers.set(go.callers)
    result = await _invoke(go.fn, go.args)
    api.send(go.ref, (go.ref, result))


async def _stream_worker(owner: Pid) -> None:
    """Body of a stream task. It may have been started by someone else (a task
    supervisor), so it watches the owner until the go message arrives."""
    mon = api.monitor(owner)

    def go_or_down(m: Any) -> bool:
        return type(m) is _Go or (type(m) is Down and m.ref == mon)

    go = await api.receive(go_or_down)
    if type(go) is Down:
        api.exit((SHUTDOWN, go.reason))
    api.demonitor(mon, flush=True)
    _callers.set(go.callers)
    result = await _invoke(go.fn, go.args)
    api.send(go.ref, (go.ref, result))


async def _run_detached(fn: Callable[..., Any], args: tuple[Any, ...], callers: Any) -> None:
    _callers.set(callers)
    await _invoke(fn, args)


def _check_owner(task: Task[Any]) -> None:
    me = api.self()
    if task.owner != me:
        raise TaskOwnerError(
            f"task {task!r} must be queried from the owner but was queried from {me!r}"
        )


def _reply_or_down(ref: Ref) -> Callable[[Any], bool]:
    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and m[0] == ref
        return t is Down and m.ref == ref

    return match


def _reply_of(ref: Ref) -> Callable[[Any], bool]:
    def match(m: Any) -> bool:
        return type(m) is tuple and len(m) == 2 and m[0] == ref

    return match


def _refs_match(refs: dict[Ref, Any] | set[Ref]) -> Callable[[Any], bool]:
    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and type(m[0]) is Ref and m[0] in refs
        return t is Down and m.ref in refs

    return match


def _now() -> float:
    return asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class Task(Generic[T]):
    """A running (or finished) task: `pid` (None for `Task.completed`), `ref` (the
    monitor that doubles as the reply alias), `owner` and `mfa` (what it runs).

    The functions to create and use tasks are static methods of this class:
    `Task.async_`, `Task.await_`, `Task.yield_`, `Task.shutdown`, ...

    Examples:
        >>> from beamlet import Task
        >>> task = Task.async_(lambda: 6 * 7)
        >>> await Task.await_(task)
        42
    """

    pid: Pid | None
    ref: Ref
    owner: Pid
    mfa: str = ""

    # --- creating tasks (§10.1) ---

    @staticmethod
    def async_(fn: Callable[..., Any], *args: Any) -> Task[Any]:
        """Run `fn(*args)` (plain or async) in a new process linked to the caller;
        collect the result with `await_` / `yield_`.

        Always await (or shut down) the tasks you start: the reply message stays in
        your mailbox until you do.

        Examples:
            >>> from beamlet import Task
            >>> async def compute(n):
            ...     await beamlet.sleep(0.01)
            ...     return n * n
            >>> task = Task.async_(compute, 10)
            >>> # ... other work meanwhile ...
            >>> await Task.await_(task)
            100
        """
        owner = api.self()
        pid = api.spawn_link(_task_main)
        ref = api.monitor(pid, alias="demonitor")
        api.send(pid, _Go(ref, fn, args, (owner, *_callers.get())))
        return Task(pid, ref, owner, _describe(fn, len(args)))

    @staticmethod
    def completed(value: Any) -> Task[Any]:
        """A task that has already finished with `value` (no process; `pid` is None)."""
        owner = api.self()
        ref = api.make_ref()
        api.send(owner, (ref, value))
        return Task(None, ref, owner, "Task.completed/1")

    @staticmethod
    async def start(fn: Callable[..., Any], *args: Any) -> Pid:
        """Run `fn(*args)` in a new, unlinked process; nothing is sent back."""
        return api.spawn(_run_detached, fn, args, (api.self(), *_callers.get()))

    @staticmethod
    async def start_link(fn: Callable[..., Any], *args: Any) -> Pid:
        """Run `fn(*args)` in a new process linked to the caller; nothing is sent back.
        The start function of `Task.child_spec` (for supervision trees)."""
        return api.spawn_link(_run_detached, fn, args, (api.self(), *_callers.get()))

    @staticmethod
    def child_spec(fn: Callable[..., Any], *args: Any, **overrides: Any) -> ChildSpec:
        """Supervise `Task.start_link(fn, *args)`: restart "temporary", 5 s shutdown."""
        spec = ChildSpec(
            id=Task, start=Task.start_link, args=(fn, *args), restart="temporary", shutdown=5.0
        )
        return spec.with_overrides(**overrides) if overrides else spec

    @staticmethod
    def callers() -> tuple[Pid, ...]:
        """The processes that started the current task, newest first (Elixir's
        `$callers`); empty outside tasks."""
        return _callers.get()

    # --- collecting results (§10.2-§10.5) ---

    @staticmethod
    async def await_(task: Task[T], timeout: float | None = 5.0) -> T:
        """Wait for the task's result (§10.2).

        Raises `CallExit` with `.cause`: `TIMEOUT` after `timeout` seconds (the task
        keeps running; its late reply is dropped), or the task's exit reason if it
        died before replying — including `NORMAL`. Raises `TaskOwnerError` if the
        caller does not own the task. Await a task only once.

        Examples:
            >>> from beamlet import Task
            >>> await Task.await_(Task.async_(lambda: 1), timeout=1.0)
            1
        """
        _check_owner(task)
        mfa = ("Task.await", task, timeout)
        t = _timeout(timeout, "await timeout", allow_zero=True)
        msg = await api.receive(_reply_or_down(task.ref), timeout=t, default=_NOTHING)
        if type(msg) is tuple:
            api.demonitor(task.ref, flush=True)
            return msg[1]  # type: ignore[no-any-return]
        if msg is _NOTHING:
            api.demonitor(task.ref, flush=True)  # also deactivates the alias
            raise CallExit(TIMEOUT, mfa)
        raise CallExit(_down_cause(msg), mfa)

    @staticmethod
    async def await_many(tasks: list[Task[Any]], timeout: float | None = 5.0) -> list[Any]:
        """Wait for all `tasks`; return their results in input order (§10.2).

        Raises `CallExit` as soon as one task dies (its reason) or when `timeout`
        seconds have passed overall (`TIMEOUT`); the remaining monitors are removed
        either way. Unrelated messages stay in the mailbox.

        Examples:
            >>> from beamlet import Task
            >>> tasks = [Task.async_(lambda i=i: i * 10) for i in range(3)]
            >>> await Task.await_many(tasks, timeout=1.0)
            [0, 10, 20]
        """
        mfa = ("Task.await_many", tasks, timeout)
        for task in tasks:
            _check_owner(task)
        t = _timeout(timeout, "await timeout", allow_zero=True)
        awaiting: dict[Ref, Task[Any]] = {task.ref: task for task in tasks}
        replies: dict[Ref, Any] = {}
        deadline = None if t is None else _now() + t
        match = _refs_match(awaiting)
        while awaiting:
            left = None if deadline is None else max(0.0, deadline - _now())
            msg = await api.receive(match, timeout=left, default=_NOTHING)
            if type(msg) is tuple:
                ref = msg[0]
                api.demonitor(ref, flush=True)
                del awaiting[ref]
                replies[ref] = msg[1]
                continue
            for ref in awaiting:
                api.demonitor(ref, flush=True)
            if msg is _NOTHING:
                raise CallExit(TIMEOUT, mfa)
            raise CallExit(_down_cause(msg), mfa)
        return [replies[task.ref] for task in tasks]

    @staticmethod
    async def yield_(task: Task[Any], timeout: float | None = 5.0) -> Result | None:
        """Wait up to `timeout` seconds for the task (§10.3): `("ok", value)`,
        `("exit", reason)` if it died, or None if it is still running (it stays
        monitored: yield again, await it or shut it down).

        Examples:
            >>> from beamlet import Task
            >>> async def slow():
            ...     await beamlet.sleep(10)
            >>> task = Task.async_(slow)
            >>> match await Task.yield_(task, 0.01) or await Task.shutdown(task):
            ...     case ("ok", value):
            ...         print("done", value)
            ...     case ("exit", reason):
            ...         print("exited", reason)
            ...     case None:
            ...         print("still running: shut down")
            still running: shut down
        """
        _check_owner(task)
        t = _timeout(timeout, "yield timeout", allow_zero=True)
        msg = await api.receive(_reply_or_down(task.ref), timeout=t, default=_NOTHING)
        if msg is _NOTHING:
            return None
        if type(msg) is tuple:
            api.demonitor(task.ref, flush=True)
            return ("ok", msg[1])
        if msg.reason == NOCONNECTION:
            raise CallExit(_down_cause(msg), ("Task.yield", task, timeout))
        return ("exit", msg.reason)

    @staticmethod
    async def yield_many(
        tasks: list[Task[Any]],
        timeout: float | None = 5.0,
        *,
        limit: int | None = None,
        on_timeout: Literal["nothing", "ignore", "kill_task"] = "nothing",
    ) -> list[tuple[Task[Any], Result | None]]:
        """Wait for several tasks for up to `timeout` seconds overall (§10.3); return
        `[(task, result_or_None), ...]` in input order.

        `limit`: return as soon as that many results are in. `on_timeout` decides what
        happens to the tasks without a result when the time is up: "nothing" (they
        stay monitored), "ignore" (`ignore`) or "kill_task" (`shutdown(task,
        "brutal_kill")`).
        """
        if on_timeout not in ("nothing", "ignore", "kill_task"):
            raise BadArgument(
                f"on_timeout must be 'nothing', 'ignore' or 'kill_task', not {on_timeout!r}"
            )
        for task in tasks:
            _check_owner(task)
        t = _timeout(timeout, "yield timeout", allow_zero=True)
        results: dict[Ref, Result | None] = {task.ref: None for task in tasks}
        left_to_get = len(results) if limit is None else min(limit, len(results))
        waiting = set(results)
        match = _refs_match(waiting)
        deadline = None if t is None else _now() + t
        timed_out = False
        while left_to_get > 0:
            left = None if deadline is None else max(0.0, deadline - _now())
            msg = await api.receive(match, timeout=left, default=_NOTHING)
            if msg is _NOTHING:
                timed_out = True
                break
            if type(msg) is tuple:
                ref = msg[0]
                api.demonitor(ref, flush=True)
                results[ref] = ("ok", msg[1])
            else:
                ref = msg.ref
                if msg.reason == NOCONNECTION:
                    raise CallExit(_down_cause(msg), ("Task.yield_many", tasks, timeout))
                results[ref] = ("exit", msg.reason)
            waiting.discard(ref)
            left_to_get -= 1
        out: list[tuple[Task[Any], Result | None]] = []
        for task in tasks:
            value = results[task.ref]
            if value is None and timed_out:
                if on_timeout == "kill_task":
                    value = await Task.shutdown(task, "brutal_kill")
                elif on_timeout == "ignore":
                    value = Task.ignore(task)
            out.append((task, value))
        return out

    @staticmethod
    def ignore(task: Task[Any]) -> Result | None:
        """Stop caring about the task (§10.5): unlink and demonitor it; it keeps running.
        Returns `("ok", value)` / `("exit", reason)` if that was already in the mailbox,
        else None."""
        _check_owner(task)
        match = _reply_or_down(task.ref)
        msg = _poll_now(match)
        if type(msg) is tuple or msg is _NOTHING:
            if task.pid is not None:
                api.unlink(task.pid)
            api.demonitor(task.ref, flush=True)
            return None if msg is _NOTHING else ("ok", msg[1])
        if msg.reason == NOCONNECTION:
            raise CallExit(_down_cause(msg), ("Task.ignore", task))
        return ("exit", msg.reason)

    @staticmethod
    async def shutdown(
        task: Task[Any], shutdown: float | Literal["brutal_kill"] | None = 5.0
    ) -> Result | None:
        """Stop the task and return what it produced (§10.4).

        Unlinks, sends exit `SHUTDOWN` and waits up to `shutdown` seconds (None: for
        ever) before killing it; "brutal_kill" kills it at once. Returns `("ok",
        value)` if its reply arrived meanwhile, None if it stopped as asked, or
        `("exit", reason)` if it died otherwise (`("exit", NOPROC)` if its DOWN was
        already consumed). Unlink and exit are atomic here (the caller cannot die in
        between), so no helper process is needed.
        """
        if task.pid is None:
            return Task.ignore(task)
        _check_owner(task)
        brutal = shutdown == "brutal_kill"
        t = None if brutal else _timeout(shutdown, "shutdown timeout", allow_zero=True)
        mfa = ("Task.shutdown", task, shutdown)
        pid = task.pid
        mon = api.monitor(pid)
        api.unlink(pid)
        api.exit(pid, KILL if brutal else SHUTDOWN)
        kind = "brutal_kill" if brutal else "shutdown"

        def is_down(m: Any) -> bool:
            return type(m) is Down and m.ref == mon

        down = await api.receive(is_down, timeout=t, default=_NOTHING)
        if down is _NOTHING:
            api.exit(pid, KILL)
            kind = "timeout_kill"
            down = await api.receive(is_down)
        reason = down.reason
        if (reason == SHUTDOWN and kind != "brutal_kill") or (
            reason == KILLED and kind == "brutal_kill"
        ):
            api.demonitor(task.ref, flush=True)
            return _flush_reply(task.ref)
        if reason == NOPROC:  # already dead: look for its own DOWN
            found = _poll_now(lambda m: type(m) is Down and m.ref == task.ref)
            if found is _NOTHING:
                api.demonitor(task.ref, flush=True)
                outcome: Any = ("down", down, NOPROC)
            elif (found.reason == SHUTDOWN and kind != "brutal_kill") or (
                found.reason == KILLED and kind == "brutal_kill"
            ):
                outcome = None
            else:
                outcome = ("down", found, found.reason)
            got = _flush_reply(task.ref)
            if got is not None:
                return got
            if outcome is None:
                return None
            down, reason = outcome[1], outcome[2]
        else:
            api.demonitor(task.ref, flush=True)
            got = _flush_reply(task.ref)
            if got is not None:
                return got
        if reason == NOCONNECTION:
            raise CallExit(_down_cause(down), mfa)
        return ("exit", reason)

    # --- streams (§10.6) ---

    @staticmethod
    def async_stream(
        items: Iterable[Any] | AsyncIterable[Any],
        fn: Callable[..., Any],
        *,
        max_concurrency: int | None = None,
        ordered: bool = True,
        timeout: float | None = 5.0,
        on_timeout: Literal["exit", "kill_task"] = "exit",
        zip_input_on_exit: bool = False,
    ) -> TaskStream:
        """Map `fn` over `items` concurrently; see `async_stream`.

        Examples:
            >>> from beamlet import Task
            >>> async def square(n):
            ...     return n * n
            >>> async with Task.async_stream(range(5), square, max_concurrency=2) as s:
            ...     [value async for kind, value in s]
            [0, 1, 4, 9, 16]
        """
        return async_stream(
            items,
            fn,
            max_concurrency=max_concurrency,
            ordered=ordered,
            timeout=timeout,
            on_timeout=on_timeout,
            zip_input_on_exit=zip_input_on_exit,
        )


async def _async_via(spawn: SpawnFn, fn: Callable[..., Any], args: tuple[Any, ...]) -> Task[Any]:
    """`Task.async_` with a custom way to start the process, for reuse
    (Task.Supervisor.async / async_nolink).

    `spawn(body)` starts a process running the zero-argument async `body` and returns its
    pid (or an awaitable of it), linked to the caller or not as the variant requires.
    The body waits for a go message (watching the caller meanwhile), so nothing runs
    before the task is monitored; it then runs `fn(*args)` and replies to the alias.
    """
    owner = api.self()

    async def body() -> None:
        await _stream_worker(owner)

    pid = spawn(body)
    if inspect.isawaitable(pid):
        pid = await pid
    assert isinstance(pid, Pid)
    ref = api.monitor(pid, alias="demonitor")
    api.send(pid, _Go(ref, fn, args, (owner, *_callers.get())))
    return Task(pid, ref, owner, _describe(fn, len(args)))


def _flush_reply(ref: Ref) -> Result | None:
    msg = _poll_now(_reply_of(ref))
    return None if msg is _NOTHING else ("ok", msg[1])


def _poll_now(match: Callable[[Any], bool]) -> Any:
    """`receive(match, timeout=0)` run to completion right here, without awaiting.

    With a zero timeout `receive` never waits; at most it yields once to let other
    processes run (fairness), which is skipped here. Used where awaiting is not possible
    (`Task.ignore` is synchronous, a stream is finalized by `__del__`)."""
    gen = api.receive(match, timeout=0, default=_NOTHING)
    try:
        while True:
            gen.send(None)
    except StopIteration as e:
        return e.value


# --- async_stream ------------------------------------------------------------------------


def async_stream(
    items: Iterable[Any] | AsyncIterable[Any],
    fn: Callable[..., Any],
    *,
    max_concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = 5.0,
    on_timeout: Literal["exit", "kill_task"] = "exit",
    zip_input_on_exit: bool = False,
) -> TaskStream:
    """Run `fn(item)` for each item in its own task, with at most `max_concurrency`
    tasks at a time; an async iterator of `("ok", value)` / `("exit", reason)` (§10.6).

    Lazy: nothing starts until you iterate, and a new task starts only when a slot is
    free (back-pressure on `items`, which may be a sync or async iterable). Results come
    in input order (`ordered=True`) or as they finish. Each task has `timeout` seconds
    from its start; then `on_timeout="exit"` ends the stream with
    `CallExit(TIMEOUT, ...)` (after stopping all tasks) and `"kill_task"` kills that
    task and yields `("exit", TIMEOUT)`. With `zip_input_on_exit`, exits become
    `("exit", (item, reason))`.

    Tasks are linked to the consuming process: a task that crashes ends a consumer that
    does not trap exits; one that traps exits gets `("exit", reason)` and no stray
    `Exit` messages. Stopping early shuts the running tasks down and leaves nothing in
    the mailbox: use `async with` (or `await stream.aclose()`); a bare `break` out of
    `async for Task.async_stream(...)` also works because the dropped stream is
    finalized at once, in the consuming process.

    Raises `BadArgument`/`InvalidTimeout` at once for `max_concurrency < 1`, a bad
    `on_timeout` or a bad `timeout`.

    Examples:
        >>> from beamlet import Task
        >>> async def square(n):
        ...     return n * n
        >>> async with Task.async_stream(range(100), square, max_concurrency=4) as s:
        ...     async for kind, value in s:
        ...         if kind == "ok" and value > 50:
        ...             break
        >>> value
        64
    """
    return _stream(
        items,
        fn,
        spawn=api.spawn_link,
        link=True,
        max_concurrency=max_concurrency,
        ordered=ordered,
        timeout=timeout,
        on_timeout=on_timeout,
        zip_input_on_exit=zip_input_on_exit,
    )


def _stream(
    items: Iterable[Any] | AsyncIterable[Any],
    fn: Callable[..., Any],
    *,
    spawn: SpawnFn,
    link: bool,
    max_concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = 5.0,
    on_timeout: str = "exit",
    zip_input_on_exit: bool = False,
    name: str = "Task.async_stream",
) -> TaskStream:
    """The engine of `async_stream`, for reuse (Task.Supervisor.async_stream[_nolink]).

    `spawn(body)` starts one task running the zero-argument async `body` and returns
    its pid (or an awaitable of it); it runs in the consuming process. It must link the
    task to the consumer iff `link` is true (the stream then unlinks tasks it kills and
    consumes their `Exit` messages). It may raise: the stream then stops its tasks and
    re-raises. The body waits for a go message, so a task started by another process
    (a supervisor) runs nothing before the stream monitors it.
    """
    if max_concurrency is None:
        max_concurrency = os.cpu_count() or 1
    if type(max_concurrency) is not int or max_concurrency < 1:
        raise BadArgument(
            f"max_concurrency must be an integer greater than zero, not {max_concurrency!r}"
        )
    if on_timeout not in ("exit", "kill_task"):
        raise BadArgument(f"on_timeout must be either 'exit' or 'kill_task', not {on_timeout!r}")
    t = _timeout(timeout, "timeout", allow_zero=True)
    return TaskStream(
        items,
        fn,
        spawn=spawn,
        link=link,
        max_concurrency=max_concurrency,
        ordered=ordered,
        timeout=t,
        on_timeout=on_timeout,
        zip_input=zip_input_on_exit,
        mfa=(name, timeout),
    )


class _Running:
    __slots__ = ("deadline", "item", "pid", "pos", "ref", "reply", "timed_out")

    def __init__(self, pid: Pid, ref: Ref, pos: int, item: Any, deadline: float | None) -> None:
        self.pid = pid
        self.ref = ref
        self.pos = pos
        self.item = item
        self.deadline = deadline
        self.reply: Any = _NOTHING
        self.timed_out = False


class TaskStream(AsyncIterator[Result]):
    """The async iterator `Task.async_stream` returns; also an async context manager
    that closes it (stopping running tasks) on exit."""

    def __init__(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        fn: Callable[..., Any],
        *,
        spawn: SpawnFn,
        link: bool,
        max_concurrency: int,
        ordered: bool,
        timeout: float | None,
        on_timeout: str,
        zip_input: bool,
        mfa: tuple[Any, ...],
    ) -> None:
        self._items = items
        self._fn = fn
        self._spawn = spawn
        self._link = link
        self._max = max_concurrency
        self._ordered = ordered
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._zip = zip_input
        self._mfa = mfa
        self._owner: Pid | None = None
        self._it: Any = None
        self._aiter = False
        self._exhausted = False
        self._closed = False
        self._running: dict[Ref, _Running] = {}
        self._spawned = 0
        self._delivered = 0
        self._done: dict[int, Result] = {}
        self._ready: deque[Result] = deque()
        self._match: Callable[[Any], bool] | None = None  # made when consumption starts

    def __aiter__(self) -> TaskStream:
        return self

    async def __aenter__(self) -> TaskStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> Result:
        if self._closed:
            raise StopAsyncIteration
        me = api.self()
        if self._owner is None:
            self._owner = me
            self._match = _refs_match(self._running)
        elif me != self._owner:
            raise BeamletError("a task stream must be consumed by one process only")
        try:
            return await self._next()
        except StopAsyncIteration:
            self._closed = True
            raise
        except Terminated:  # the consumer was killed: its linked tasks die with it
            self._closed = True
            raise
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the running tasks and drop their pending messages; idempotent."""
        if self._closed and not self._running:
            return
        self._closed = True
        refs, pids = self._stop_running()
        if not refs or self._owner is None or api.self() != self._owner:
            return
        match = self._leftover(refs, pids)
        while await api.receive(match, timeout=0, default=_NOTHING) is not _NOTHING:
            pass

    def __del__(self) -> None:
        # A `break` out of `async for` drops the stream without closing it; finalize it
        # now, synchronously, if we are still in the consuming process.
        if self._closed or not self._running:
            return
        try:
            if self._owner is None or api.self() != self._owner:
                return
            self._closed = True
            refs, pids = self._stop_running()
            match = self._leftover(refs, pids)
            while _poll_now(match) is not _NOTHING:
                pass
        except (BeamletError, Terminated, NotInProcess):
            pass

    # --- internals ---

    def _stop_running(self) -> tuple[set[Ref], set[Pid]]:
        """Kill every running task. Demonitor first (the alias goes too): no DOWN and no
        late reply can arrive afterwards; unlink: no Exit either."""
        refs = set(self._running)
        pids = {r.pid for r in self._running.values()}
        for r in self._running.values():
            api.demonitor(r.ref, flush=True)
            if self._link:
                api.unlink(r.pid)
            api.exit(r.pid, KILL)
        self._running.clear()
        self._done.clear()
        self._ready.clear()
        return refs, pids

    def _leftover(self, refs: set[Ref], pids: set[Pid]) -> Callable[[Any], bool]:
        link = self._link

        def match(m: Any) -> bool:
            t = type(m)
            if t is tuple:
                return len(m) == 2 and type(m[0]) is Ref and m[0] in refs
            return link and t is Exit and m.pid in pids

        return match

    async def _next(self) -> Result:
        while True:
            if self._ordered:
                if self._delivered in self._done:
                    result = self._done.pop(self._delivered)
                    self._delivered += 1
                    return result
            elif self._ready:
                return self._ready.popleft()
            while len(self._running) < self._max and not self._exhausted:
                item = await self._pull()
                if item is _NOTHING:
                    self._exhausted = True
                    break
                await self._start(item)
            if not self._running:
                raise StopAsyncIteration
            await self._wait()

    async def _pull(self) -> Any:
        if self._it is None:
            if hasattr(self._items, "__aiter__"):
                self._it = self._items.__aiter__()
                self._aiter = True
            else:
                self._it = iter(self._items)
        if self._aiter:
            try:
                return await self._it.__anext__()
            except StopAsyncIteration:
                return _NOTHING
        return next(self._it, _NOTHING)

    async def _start(self, item: Any) -> None:
        owner = api.self()

        async def body() -> None:
            await _stream_worker(owner)

        pid = self._spawn(body)
        if inspect.isawaitable(pid):
            pid = await pid
        assert isinstance(pid, Pid)
        ref = api.monitor(pid, alias="demonitor")
        api.send(pid, _Go(ref, self._fn, (item,), (owner, *_callers.get())))
        deadline = None if self._timeout is None else _now() + self._timeout
        self._running[ref] = _Running(
            pid, ref, self._spawned, item if self._zip else None, deadline
        )
        self._spawned += 1

    async def _wait(self) -> None:
        """Handle one event: a reply, a DOWN, or the earliest deadline passing."""
        deadlines = [
            r.deadline
            for r in self._running.values()
            if r.deadline is not None and not r.timed_out and r.reply is _NOTHING
        ]
        left = None if not deadlines else max(0.0, min(deadlines) - _now())
        assert self._match is not None
        msg = await api.receive(self._match, timeout=left, default=_NOTHING)
        if msg is _NOTHING:
            now = _now()
            for r in list(self._running.values()):
                if r.deadline is None or r.timed_out or r.reply is not _NOTHING:
                    continue
                if r.deadline > now:
                    continue
                if self._on_timeout == "exit":
                    await self.aclose()
                    raise CallExit(TIMEOUT, self._mfa)
                r.timed_out = True  # kill_task: its DOWN yields ("exit", TIMEOUT)
                if self._link:
                    api.unlink(r.pid)
                api.exit(r.pid, KILL)
            return
        if type(msg) is tuple:
            # Keep the reply; act on the DOWN that follows (the task exits right after).
            self._running[msg[0]].reply = msg[1]
            return
        r = self._running.pop(msg.ref)
        if self._link:  # a trapping consumer got an Exit before the DOWN: consume it
            pid = r.pid
            await api.receive(lambda m: type(m) is Exit and m.pid == pid, timeout=0, default=None)
        if r.reply is not _NOTHING:
            result: Result = ("ok", r.reply)
        else:
            reason = TIMEOUT if r.timed_out else msg.reason
            result = ("exit", (r.item, reason) if self._zip else reason)
        if self._ordered:
            self._done[r.pos] = result
        else:
            self._ready.append(result)
