"""pytest plugin: an `async def` test runs as a beamlet process on a fresh node.

The plugin is installed with beamlet but opt-in, like anyio's: it takes only the `async def`
tests marked `@pytest.mark.beamlet` (or `virtual_time`), so the async tests of unrelated
projects in the same environment are left alone. A project whose async tests are all beamlet
tests makes that the default in its pytest configuration:

    [tool.pytest.ini_options]
    beamlet_mode = "auto"

* marker `beamlet` — run this `async def` test as a process of a fresh node;
* fixture `node` — the test's `Node` (started on the test's own loop);
* marker `virtual_time` — the loop runs on a `VirtualClock` (timers jump, no waiting);
* the test's exception is re-raised in pytest with its traceback; children started with
  `start_supervised` are stopped in reverse order within their shutdown times, then
  processes still alive are killed with the node.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from beamlet._core import Node
from beamlet.testing import supervised
from beamlet.testing.clock import virtual_time_loop

MODES = ("strict", "auto")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "beamlet_mode",
        "'strict' (default): only async tests marked beamlet or virtual_time run as beamlet "
        "processes; 'auto': every async def test does",
        default="strict",
    )


def pytest_configure(config: pytest.Config) -> None:
    mode = config.getini("beamlet_mode")
    if mode not in MODES:
        raise pytest.UsageError(f"beamlet_mode must be one of {MODES}, not {mode!r}")
    config.addinivalue_line(
        "markers", "beamlet: run this async def test as a process of a fresh beamlet node"
    )
    config.addinivalue_line(
        "markers", "virtual_time: run the async test on a loop with a jumping virtual clock"
    )


def _wanted(item: pytest.Function) -> bool:
    if item.config.getini("beamlet_mode") == "auto":
        return True
    return any(item.get_closest_marker(m) is not None for m in ("beamlet", "virtual_time"))


@pytest.fixture
def node() -> Iterator[Node]:
    """A fresh, not yet started node; the plugin starts it on the test's loop."""
    yield Node()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn) or not _wanted(pyfuncitem):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    node = kwargs.get("node")
    if not isinstance(node, Node):
        node = Node()
    virtual = pyfuncitem.get_closest_marker("virtual_time") is not None
    loop = virtual_time_loop() if virtual else asyncio.new_event_loop()
    try:
        loop.run_until_complete(_run_test(node, fn, kwargs))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return True


async def _run_test(node: Node, fn: Any, kwargs: dict[str, Any]) -> None:
    failure: list[tuple[BaseException, Any]] = []

    async def body() -> None:
        try:
            await fn(**kwargs)
        except BaseException as e:
            failure.append((e, e.__traceback__))  # the crash report clears it
            raise

    await node.start()
    token = supervised.begin_test()
    try:
        try:
            await node.run(body)
        finally:  # stop start_supervised children: reverse order, shutdown protocol
            await supervised.end_test(node, token)
    except Exception:
        if failure:
            exc, tb = failure[0]
            raise exc.with_traceback(tb) from None
        raise
    finally:
        await node.stop()
