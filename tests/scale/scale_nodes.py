"""Helpers for the scale tests: the test's node is distributed on a private EPMD port
(its built-in EPMD), so the peers a test starts register there and nowhere else. A
module of its own, not `conftest`: two directories' conftest modules would both be
imported as `conftest` (tests/scale/conftest.py re-exports the fixtures).

Starting an OS-process peer costs ~0.2-0.5 s, so each test starts only the peers it
needs; every wait is on a message, a monitor or an OS process, with a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import shutil
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from beamlet import Node
from beamlet.distribution import start_distribution

LOOPBACK = "127.0.0.1"
COOKIE = "beamlet_scale_test"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def require_erl() -> str:
    path = shutil.which("erl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("erl not found, and CI=true forbids skipping interop tests")
        pytest.skip("erl not installed")
    return path


class DistNode(Node):
    """A node that becomes distributed (private EPMD port) when the plugin starts it."""

    def __init__(self, name: str, epmd_port: int) -> None:
        super().__init__(name)
        self.epmd_port = epmd_port
        self._dist: Any = None

    async def start(self) -> DistNode:
        await super().start()
        if self._dist is None:
            self._dist = await start_distribution(
                self, cookie=COOKIE, epmd_port=self.epmd_port, listen_host=LOOPBACK
            )
        return self

    async def stop(self, timeout: float = 5.0) -> None:
        if self._dist is not None:
            await self._dist.stop()
            self._dist = None
        await super().stop(timeout)


@pytest.fixture
def epmd_port() -> int:
    return free_port()


@pytest.fixture
def node(epmd_port: int) -> Iterator[DistNode]:
    yield DistNode(f"{unique('scale')}@{LOOPBACK}", epmd_port)


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Block until OS process `pid` has exited (a pidfd becomes readable then; it
    works for any process, child or not, and never reaps it)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


async def os_process_gone(pid: int, timeout: float = 10.0) -> bool:
    """`wait_gone` in a thread, so the node keeps running meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, wait_gone, pid, timeout)
