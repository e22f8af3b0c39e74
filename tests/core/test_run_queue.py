"""The run queue's invariants, and the one function that makes a process runnable.

`Scheduler._make_runnable` is the only way into the run queue (issue 9 §2); the one
inlined copy, the message hand-over in `api.send` (a call there costs a tenth of a ring
hop), is held to the same invariants by checking the queue itself at every drain:

* a process entering the queue is parked, new or the one that just stepped — never
  already queued, never done;
* every runnable process is in the run queue (or deferred to the next batch) exactly
  once; any other entry is a stale one of a finished process;
* a drain is pending whenever the queue is not empty.
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import beamlet
from beamlet import ANY, KILL, Down, GenServer, Reply
from beamlet._core import process, scheduler
from beamlet._core.scheduler import BUDGET, Scheduler

CORE = Path(scheduler.__file__).parent


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Check the invariants at every enqueue and every drain; count what was seen."""
    seen: Counter[str] = Counter()
    make_runnable = Scheduler._make_runnable
    drain = Scheduler._drain

    def checked_make_runnable(self: Any, p: Any, resume: Any, later: bool = False) -> None:
        assert p.state not in (process.RUNNABLE, process.DONE), (p, p.state)
        assert p not in self._runq and p not in self._deferred, p
        make_runnable(self, p, resume, later)
        assert p.state == process.RUNNABLE
        if later:
            assert self._deferred.count(p) == 1
        else:
            assert self._runq.count(p) == 1 and self._pending
        seen["later" if later else type(resume).__name__] += 1

    def checked_drain(self: Any) -> None:
        queued = Counter(self._runq)
        for p in self._procs.values():
            if p.state == process.RUNNABLE:
                assert queued[p] + self._deferred.count(p) == 1, (p, queued[p])
        for p, n in queued.items():
            assert p.state in (process.RUNNABLE, process.DONE), (p, p.state)
            assert p.state == process.DONE or n == 1, (p, n)
        seen["drain"] += 1
        drain(self)
        assert not self._runq or self._pending

    monkeypatch.setattr(Scheduler, "_make_runnable", checked_make_runnable)
    monkeypatch.setattr(Scheduler, "_drain", checked_drain)
    return seen


class Echo(GenServer[int]):
    async def init(self, arg: int) -> int:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(request, state)


async def test_invariants_hold_on_every_path(checked: Counter[str]) -> None:
    """A ring, selective receives, timeouts, futures, yields, calls (inline, queued,
    past the batch's inline budget), cancellation and kills: every enqueue and every
    drain keeps the invariants."""
    me = beamlet.self()

    async def member(nxt: Any) -> None:  # receive-any: the inlined hand-over
        n = await beamlet.receive()
        beamlet.send(nxt, n)

    first = me
    for _ in range(50):
        first = beamlet.spawn(member, first)
    beamlet.send(first, "around")
    assert await beamlet.receive("around", timeout=5) == "around"

    async def selective() -> None:  # WAKE, then TIMEOUT
        await beamlet.receive(("wanted", ANY))
        await beamlet.receive(("never", ANY), timeout=0.01, default=None)
        await asyncio.sleep(0.001)  # sleep-ok: a future, not a wait for an event
        await asyncio.sleep(0)  # sleep-ok: a bare yield
        beamlet.send(me, "selective done")

    s = beamlet.spawn(selective)
    beamlet.send(s, "unwanted")
    beamlet.send(s, ("wanted", 1))
    assert await beamlet.receive("selective done", timeout=5) == "selective done"

    server = await Echo.start_link(0)
    for i in range(BUDGET + 10):  # inline, then past the batch's inline budget
        assert await GenServer.call(server, i) == i

    async def client(k: int) -> None:
        for i in range(k):
            await GenServer.call(server, i)
        beamlet.send(me, "client done")

    for _ in range(5):  # concurrent callers: the server is busy, calls queue
        beamlet.spawn(client, 20)
    for _ in range(5):
        await beamlet.receive("client done", timeout=5)

    async def sleeper() -> None:
        await beamlet.receive()

    victim, ref = beamlet.spawn_monitor(sleeper)
    beamlet.exit(victim, KILL)
    assert (await beamlet.receive(Down, timeout=5)).ref == ref

    async def cancelled() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await beamlet.receive(("never", ANY))
        except asyncio.CancelledError:
            beamlet.send(me, "cancelled")

    beamlet.spawn(cancelled)
    assert await beamlet.receive("cancelled", timeout=5) == "cancelled"
    # every kind of resume went through the one function
    for kind in ("NoneType", "_Sentinel", "int", "later", "drain"):
        assert checked[kind] > 0, (kind, checked)


def test_the_run_queue_is_entered_in_one_place() -> None:
    """Only `Scheduler._make_runnable` (and its one inlined copy in `api.send`) marks a
    process runnable or appends to the run queue."""
    found = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                runnable = (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Attribute) for t in node.targets)
                    and any(getattr(t, "attr", None) == "state" for t in node.targets)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "RUNNABLE"
                )
                append = (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("append", "extend", "appendleft")
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in ("_runq", "_deferred")
                )
                if runnable or append:
                    found.append((path.name, fn.name, "state" if runnable else "append"))
    assert sorted(set(found)) == [
        ("api.py", "send", "append"),
        ("api.py", "send", "state"),
        ("scheduler.py", "_make_runnable", "append"),
        ("scheduler.py", "_make_runnable", "state"),
    ]


async def test_long_steps_do_not_hold_off_the_event_loop() -> None:
    """A batch ends after about `SLICE` seconds as well as after BUDGET steps: four
    processes doing 5 ms of CPU work between awaits (a 2,000-step batch would be 10 s)
    let an asyncio callback, like a socket's, run within a few steps."""
    stop: list[bool] = []

    async def busy() -> None:
        while not stop:
            t = time.perf_counter()
            while time.perf_counter() - t < 0.005:
                pass
            await beamlet.sleep(0)

    for _ in range(4):
        beamlet.spawn(busy)
    await beamlet.sleep(0)  # they are running
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    t0 = time.perf_counter()
    loop.call_soon(fut.set_result, None)
    await asyncio.wait_for(fut, 5)
    waited = time.perf_counter() - t0
    stop.append(True)
    assert waited < 0.5, waited  # a few batches of 8 steps (2,000-step batches: 10 s)
    assert scheduler.SLICE <= 0.01
