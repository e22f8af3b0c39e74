"""Agent: state in a process, read and changed by functions (docs/semantics.md §11.1).

An Agent is the shortest way to keep state that several processes share: it is a
`GenServer` whose state is changed only by functions you send to it. Each function
runs **inside** the agent process, one at a time, so updates never race.

    counter = await Agent.start_link(lambda: 0, name="counter")
    await Agent.update("counter", lambda n: n + 1)
    await Agent.get("counter", lambda n: n)                 # -> 1
    await Agent.get_and_update("counter", lambda n: (n, 0))  # -> 1, state is now 0
    Agent.cast("counter", lambda n: n + 10)                  # fire and forget

Functions may be plain or `async def`; extra positional arguments are passed after the
state (Elixir's `{module, function, args}` form): `Agent.get(pid, dict.get, "key")`
calls `dict.get(state, "key")`.

When to use it: a shared value with simple reads and updates (configuration, a cache,
counters). When the state needs its own logic, messages or timers, write a
`GenServer`. Keep the functions short: the agent runs one at a time, and an expensive
function blocks every other client (compute outside, then `update` with the result).

Edge cases: timeouts and dead agents behave exactly as `GenServer.call` (a `CallExit`
whose `.mfa` names `GenServer.call`). A function that raises crashes the agent, and the
caller's `CallExit.cause` is that crash. The start function raising makes `start_link`
fail with `StartError(Crash)` (a linked caller that does not trap exits is ended by the
link, §7.1.2).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from beamlet._core import NORMAL, Atom, Pid
from beamlet.behaviours import gen_server
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import From, GenServer, NoReply, Reply
from beamlet.behaviours.names import ServerRef, Via

__all__ = ["Agent"]


async def _apply(fn: Callable[..., Any], state: Any, args: tuple[Any, ...]) -> Any:
    r = fn(state, *args)
    if inspect.isawaitable(r):
        r = await r
    return r


class _AgentServer(GenServer[Any]):
    """The GenServer behind every Agent."""

    async def init(self, arg: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
        fn, args = arg
        r = fn(*args)
        if inspect.isawaitable(r):
            r = await r
        return gen_server.Ok(r)  # the state may be any value, even an Ok/Stop

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        kind, fn, args = request
        if kind == "get":
            return Reply(await _apply(fn, state, args), state)
        if kind == "update":
            return Reply(None, await _apply(fn, state, args))
        # get_and_update: fn returns (reply, new_state)
        result = await _apply(fn, state, args)
        if type(result) is not tuple or len(result) != 2:
            raise TypeError(
                f"Agent.get_and_update function must return (reply, new_state), got {result!r}"
            )
        return Reply(result[0], result[1])

    async def handle_cast(self, request: Any, state: Any) -> Any:
        _kind, fn, args = request
        return NoReply(await _apply(fn, state, args))


class Agent:
    """Functions to start and use agents. Subclass it to get a `child_spec` with your
    class as the id (Elixir's `use Agent`).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(dict)
        >>> await Agent.update(pid, lambda d: {**d, "hello": "world"})
        >>> await Agent.get(pid, lambda d: d["hello"])
        'world'
    """

    _child_spec_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **spec: Any) -> None:
        super().__init_subclass__()
        cls._child_spec_defaults = {**cls._child_spec_defaults, **spec}

    @classmethod
    async def start_link(
        cls,
        fn: Callable[..., Any],
        *args: Any,
        name: str | Atom | Via | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Start an agent linked to the caller; its state is `fn(*args)`, computed in the
        new process. Returns the pid; raises `StartError` as `GenServer.start_link`."""
        pid = await _AgentServer.start_link((fn, args), name=name, timeout=timeout)
        assert pid is not None  # an agent never ignores its start
        return pid

    @classmethod
    async def start(
        cls,
        fn: Callable[..., Any],
        *args: Any,
        name: str | Atom | Via | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Like `start_link`, without the link."""
        pid = await _AgentServer.start((fn, args), name=name, timeout=timeout)
        assert pid is not None
        return pid

    @classmethod
    def child_spec(
        cls, fn: Callable[..., Any], *args: Any, name: Any = None, **overrides: Any
    ) -> ChildSpec:
        """Supervise an agent: `Agent.start_link(fn, *args, name=name)`, permanent, id the
        class; other keyword arguments override ChildSpec fields.

        Examples:
            >>> from beamlet import Agent, Supervisor
            >>> sup = await Supervisor.start_link([Agent.child_spec(dict, name="cache")])
            >>> await Agent.update("cache", lambda s: {**s, "k": 1})
            >>> await Agent.get("cache", lambda s: s)
            {'k': 1}
        """
        start = cls.start_link if name is None else functools.partial(cls.start_link, name=name)
        spec = ChildSpec(id=cls, start=start, args=(fn, *args), shutdown=5.0)
        changes = {**cls._child_spec_defaults, **overrides}
        return spec.with_overrides(**changes) if changes else spec

    @staticmethod
    async def get(
        agent: ServerRef, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> Any:
        """Return `fn(state, *args)`; the state is unchanged."""
        return await gen_server.call(agent, ("get", fn, args), timeout)

    @staticmethod
    async def update(
        agent: ServerRef, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> None:
        """Replace the state with `fn(state, *args)` and wait until it is done."""
        await gen_server.call(agent, ("update", fn, args), timeout)

    @staticmethod
    async def get_and_update(
        agent: ServerRef, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> Any:
        """`fn(state, *args)` returns `(reply, new_state)`: store `new_state`, return
        `reply`."""
        return await gen_server.call(agent, ("get_and_update", fn, args), timeout)

    @staticmethod
    def cast(agent: ServerRef, fn: Callable[..., Any], *args: Any) -> None:
        """Replace the state with `fn(state, *args)` without waiting; never fails."""
        gen_server.cast(agent, ("update", fn, args))

    @staticmethod
    async def stop(agent: ServerRef, reason: Any = NORMAL, timeout: float | None = None) -> None:
        """Stop the agent with `reason` and wait until it is gone (as `GenServer.stop`)."""
        await gen_server.stop(agent, reason, timeout)
