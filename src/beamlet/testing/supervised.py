"""`start_supervised`: start processes for a test under a per-test supervisor that is torn
down when the test ends (ExUnit's `start_supervised!/2`).

Starting a server with `start_link` from a test links it to the test process: a crash
kills the test with an unrelated reason, and whatever is still running when the test
ends is killed without its shutdown protocol. `start_supervised` instead starts the
child under a supervisor owned by the test. When the test ends (pass or fail) that
supervisor stops its children **in reverse start order, each within its shutdown
time** (§8.5), before the node goes away — so `terminate` callbacks run, names are
released, and the next test starts clean.

Examples:

    async def test_cache_expires():
        cache = await start_supervised(Cache.child_spec({"ttl": 1}))
        clock = await start_supervised((Clock, None), id="clock")
        ...

The per-test supervisor is `one_for_one` with a very high restart intensity (as
ExUnit's), so a child that crashes is restarted and the supervisor itself never gives
up during the test. It is not linked to the test process.

Outside the pytest plugin, wrap the code in `async with supervised_scope(): ...`.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from beamlet import _core as api
from beamlet._core import NOPROC, SHUTDOWN, Node, Pid

# The behaviours are imported inside the functions: the pytest plugin imports this
# module for every test, and tests/core must not depend on the behaviours layer.

__all__ = ["start_supervised", "stop_supervised", "supervised_scope"]


class _TestSupervision:
    """The per-test state: the test supervisor, started on first use."""

    __slots__ = ("sup",)

    def __init__(self) -> None:
        self.sup: Pid | None = None


_CURRENT: contextvars.ContextVar[_TestSupervision | None] = contextvars.ContextVar(
    "beamlet_supervised_scope", default=None
)


def _holder() -> _TestSupervision:
    holder = _CURRENT.get()
    if holder is None:
        raise RuntimeError(
            "start_supervised works inside a beamlet test (the pytest plugin) or inside "
            "`async with supervised_scope():`"
        )
    return holder


async def start_supervised(child: Any, **overrides: Any) -> Pid | None:
    """Start `child` (anything a supervisor accepts: a `ChildSpec`, `cls`, `(cls, arg)`,
    a mapping) under the test's supervisor and return its pid (None if its start
    function said ignore). `overrides` change spec fields, e.g. `id=` to start two
    children of the same kind.

    Raises what `Supervisor.start_child` raises: `StartError` if the start failed,
    `AlreadyStarted` / `AlreadyPresent` for an id in use.

    Examples:
        >>> from beamlet import Agent
        >>> from beamlet.testing import start_supervised, supervised_scope
        >>> async with supervised_scope():  # the plugin opens one for every test
        ...     a = await start_supervised(Agent.child_spec(lambda: 1))
        ...     b = await start_supervised(Agent.child_spec(lambda: 2), id="second")
        ...     print(await Agent.get(a, lambda n: n), await Agent.get(b, lambda n: n))
        1 2
    """
    from beamlet.behaviours.supervisor import Supervisor, child_spec

    holder = _holder()
    if holder.sup is None or not api.is_alive(holder.sup):
        sup = await Supervisor.start_link(
            [], strategy="one_for_one", max_restarts=1_000_000, max_seconds=1
        )
        assert sup is not None
        api.unlink(sup)  # the test's fate and the supervisor's are independent
        holder.sup = sup
    return await Supervisor.start_child(holder.sup, child_spec(child, **overrides))


async def stop_supervised(child_id: Any) -> None:
    """Stop a child started with `start_supervised` (by its id) and forget it, so the
    id can be used again. Raises `ChildNotFound` if there is no such child.

    Examples:
        >>> from beamlet import Agent
        >>> from beamlet.testing import start_supervised, stop_supervised, supervised_scope
        >>> async with supervised_scope():
        ...     pid = await start_supervised(Agent.child_spec(dict), id="cache")
        ...     await stop_supervised("cache")
        ...     print(beamlet.is_alive(pid))
        ...     pid = await start_supervised(Agent.child_spec(dict), id="cache")  # the id is free
        False
    """
    from beamlet.behaviours.supervisor import ChildNotFound, Supervisor

    holder = _holder()
    if holder.sup is None:
        raise ChildNotFound(child_id)
    await Supervisor.terminate_child(holder.sup, child_id)
    await Supervisor.delete_child(holder.sup, child_id)


def begin_test() -> contextvars.Token[_TestSupervision | None]:
    """Plugin hook: give the processes of the test that is starting a fresh
    supervision holder (processes inherit it through their context)."""
    return _CURRENT.set(_TestSupervision())


async def end_test(node: Node, token: contextvars.Token[_TestSupervision | None]) -> None:
    """Plugin hook, after the test body: stop the test supervisor (children in
    reverse order, within their shutdown times) from a process of `node`."""
    holder = _CURRENT.get()
    _CURRENT.reset(token)
    if holder is not None and holder.sup is not None and node.is_alive(holder.sup):
        await node.run(_teardown, holder.sup)


async def _teardown(sup: Pid) -> None:
    from beamlet.behaviours.gen_server import CallExit
    from beamlet.behaviours.supervisor import Supervisor

    try:
        await Supervisor.stop(sup, SHUTDOWN)
    except CallExit as e:
        if e.cause != NOPROC:  # it died on its own meanwhile: nothing left to stop
            raise


@asynccontextmanager
async def supervised_scope() -> AsyncIterator[None]:
    """`start_supervised` outside the pytest plugin: children started inside the block
    are stopped (reverse order, within their shutdown times) when it exits. Use it
    inside a process.

    Examples:
        >>> from beamlet import Agent
        >>> from beamlet.testing import start_supervised, supervised_scope
        >>> async with supervised_scope():
        ...     pid = await start_supervised(Agent.child_spec(dict))
        ...     print(beamlet.is_alive(pid))
        True
        >>> beamlet.is_alive(pid)  # stopped when the block ended
        False
    """
    token = _CURRENT.set(_TestSupervision())
    try:
        yield
    finally:
        holder = _CURRENT.get()
        _CURRENT.reset(token)
        if holder is not None and holder.sup is not None and api.is_alive(holder.sup):
            await _teardown(holder.sup)
