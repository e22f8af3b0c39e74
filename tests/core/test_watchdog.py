"""The node warns when a process blocks the event loop (docs/architecture.md §3, "blocking code").

Scheduling is cooperative: a process that runs blocking code stalls every other process,
timer and connection of its node. A watchdog thread notices and logs a warning naming
the process; code that awaits normally never triggers it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import beamlet
from beamlet import Down, Node

BLOCK = 0.3  # seconds a misbehaving process holds the loop (threshold is 0.1 s)


class Signal(logging.Handler):
    """Resolves a future (on the loop's thread) when the watchdog logs a warning."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.loop = asyncio.get_running_loop()
        self.fired: asyncio.Future[logging.LogRecord] = self.loop.create_future()

    def emit(self, record: logging.LogRecord) -> None:
        if "blocked the event loop" in record.getMessage():
            self.loop.call_soon_threadsafe(self._set, record)

    def _set(self, record: logging.LogRecord) -> None:
        if not self.fired.done():
            self.fired.set_result(record)


def blocked_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "beamlet" and "blocked the event loop" in r.getMessage()
    ]


async def blocker() -> None:
    time.sleep(BLOCK)  # sleep-ok: the blocking under test


async def polite() -> None:
    for _ in range(15):
        await asyncio.sleep(0.02)  # sleep-ok: the sleep is what is tested, or a yield
    await beamlet.receive(timeout=0.05, default=None)


async def test_blocking_process_is_reported_by_pid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamlet")
    signal = Signal()
    logging.getLogger("beamlet").addHandler(signal)
    try:
        pid, ref = beamlet.spawn_monitor(blocker)
        down = await beamlet.receive(Down, timeout=5)
        assert down.ref == ref
        record = await asyncio.wait_for(signal.fired, 2)
    finally:
        logging.getLogger("beamlet").removeHandler(signal)
    assert record.levelno == logging.WARNING
    assert record.beamlet_pid == pid  # type: ignore[attr-defined]
    message = record.getMessage()
    assert repr(pid) in message
    assert "blocker" in message
    assert "run_in_thread" in message  # it says what to do instead
    # one warning per stall, not one per watchdog sample
    assert [r.beamlet_pid for r in blocked_records(caplog)] == [pid]  # type: ignore[attr-defined]


async def test_process_that_awaits_produces_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamlet")
    refs = {beamlet.spawn_monitor(polite)[1] for _ in range(5)}
    while refs:
        down = await beamlet.receive(Down, timeout=5)
        refs.discard(down.ref)
    assert blocked_records(caplog) == []


async def test_blocking_in_run_in_thread_produces_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="beamlet")
    await beamlet.run_in_thread(time.sleep, BLOCK)  # the right way to block
    assert blocked_records(caplog) == []


def test_watchdog_can_be_disabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamlet")

    async def main() -> None:
        node = Node()
        node.block_warning = None
        async with node:
            await node.run(blocker)

    asyncio.run(main())
    assert blocked_records(caplog) == []


async def test_busy_caller_produces_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A process making calls back to back for longer than the threshold runs many short
    steps (and takes no message from its mailbox): no warning."""
    caplog.set_level(logging.WARNING, logger="beamlet")

    async def echo() -> None:
        while True:
            _, (_pid, tag), request = await beamlet.receive()
            beamlet.send(tag, (tag, request))

    server = beamlet.spawn_link(echo)

    async def caller() -> None:
        deadline = time.monotonic() + 3 * BLOCK
        while time.monotonic() < deadline:
            assert await beamlet.GenServer.call(server, 1) == 1

    _, ref = beamlet.spawn_monitor(caller)
    down = await beamlet.receive(Down, timeout=10)
    assert down.ref == ref and down.reason == beamlet.NORMAL
    assert blocked_records(caplog) == []
