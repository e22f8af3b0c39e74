"""The bare Task-per-process design, the baseline of `./dev bench`.

A process = asyncio Task + deque mailbox + one Future used only for wake-up (the design
of the performance-notes prototype, copied here so the benchmarks need nothing outside
the repository). `receive(p)` pops the head; `receive(p, match)` scans the mailbox with
a predicate, remembering how far it scanned while it waits. `send` never blocks.

For the link/monitor workloads it has the smallest links and monitors that work: a
task's done-callback cancels its linked tasks (when it ended abnormally) and sends
`("DOWN", ref, proc, reason)` to its monitors. No trap_exit, no signal ordering: it is a
cost baseline, not a semantics.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Process", "demonitor", "link", "monitor", "receive", "send", "spawn", "unlink"]

_refs = itertools.count()


class Process:
    __slots__ = ("__weakref__", "links", "mailbox", "monitors", "task", "waiter")

    def __init__(self) -> None:
        self.mailbox: deque[Any] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.links: set[Process] | None = None
        self.monitors: dict[Any, Process] | None = None

    def _done(self, task: asyncio.Task[Any]) -> None:
        reason: Any = "killed" if task.cancelled() else (task.exception() or "normal")
        for q in self.links or ():
            q.links.discard(self)  # type: ignore[union-attr]
            if reason != "normal" and q.task is not None:
                q.task.cancel()
        for ref, w in (self.monitors or {}).items():
            send(w, ("DOWN", ref, self, reason))
        self.links = self.monitors = None


def spawn(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Process:
    """Start fn(proc, *args) as a process; returns the Process handle."""
    p = Process()
    p.task = asyncio.get_running_loop().create_task(fn(p, *args))
    p.task.add_done_callback(p._done)
    return p


def send(p: Process, msg: Any) -> None:
    p.mailbox.append(msg)
    w = p.waiter
    if w is not None:
        p.waiter = None
        if not w.done():
            w.set_result(None)


async def receive(p: Process, match: Callable[[Any], bool] | None = None) -> Any:
    mb = p.mailbox
    if match is None:
        while not mb:
            w = p.waiter = asyncio.get_running_loop().create_future()
            await w
        return mb.popleft()
    i = 0
    while True:
        n = len(mb)
        while i < n:
            m = mb[i]
            if match(m):
                del mb[i]
                return m
            i += 1
        w = p.waiter = asyncio.get_running_loop().create_future()
        await w


def link(a: Process, b: Process) -> None:
    if a.links is None:
        a.links = set()
    if b.links is None:
        b.links = set()
    a.links.add(b)
    b.links.add(a)


def unlink(a: Process, b: Process) -> None:
    if a.links:
        a.links.discard(b)
    if b.links:
        b.links.discard(a)


def monitor(watcher: Process, target: Process) -> tuple[Process, int]:
    ref = (target, next(_refs))
    if target.monitors is None:
        target.monitors = {}
    target.monitors[ref] = watcher
    return ref


def demonitor(ref: tuple[Process, int]) -> bool:
    mons = ref[0].monitors
    return mons is not None and mons.pop(ref, None) is not None
