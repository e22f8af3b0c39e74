"""Functions the scale tests run on worker nodes, by import path (`scale_work:NAME`).

The test directory is on the parent's `sys.path`, which peers inherit."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import beamlet


def square(x: int) -> int:
    return x * x


def hash_loop(n: int) -> int:
    """CPU-bound pure Python: `n` rounds of sha256 over a small buffer."""
    h = b"beamlet"
    for _ in range(n):
        h = hashlib.sha256(h).digest()
    return h[0]


def fail_on(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def where(x: Any) -> tuple[Any, int]:
    return (x, os.getpid())


def slow(x: int) -> int:
    """Sleeps `x` ms (a stand-in for a long item)."""
    time.sleep(x / 1000)  # sleep-ok: the work itself
    return x


def block_on(path: bytes) -> int:
    """Block until the file at `path` exists: the item stays in flight until the test
    lets it go (no timing involved)."""
    while not os.path.exists(path):
        time.sleep(0.005)  # sleep-ok: polling a file the test creates
    return os.getpid()


async def async_double(x: int) -> int:
    await beamlet.sleep(0)
    return 2 * x


async def echo_body(owner: beamlet.Pid) -> None:
    """A process body: tells `owner` where it runs, then echoes messages back."""
    beamlet.send(owner, (beamlet.Atom("started"), beamlet.self(), beamlet.node_name()))
    while True:
        msg = await beamlet.receive()
        beamlet.send(owner, (beamlet.Atom("echo"), msg))


def crash_body() -> None:
    raise RuntimeError("boom")


async def hold(item: tuple[beamlet.Pid, int]) -> int:
    """Announce `(started, X, Executor, OsPid)` to the owner, then wait for `release`
    (sent to the executor, which runs async functions in its own process)."""
    owner, x = item
    beamlet.send(owner, (beamlet.Atom("started"), x, beamlet.self(), os.getpid()))
    await beamlet.receive(beamlet.Atom("release"))
    return 10 * x


class Counter(beamlet.GenServer[int]):
    async def init(self, start: int) -> int:
        return start

    async def handle_call(self, request: Any, from_: Any, count: int) -> Any:
        if request == beamlet.Atom("where"):
            return beamlet.Reply((beamlet.node_name(), os.getpid()), count)
        return beamlet.Reply(count, count + 1)


async def form(owner: beamlet.Pid, nodes: list[Any]) -> None:
    """Form a cluster from a static list here, then tell `owner` what we are connected
    to, and stay."""
    from beamlet.cluster import Cluster, Static
    from beamlet.distribution import nodes as connected

    names = [n.decode() if isinstance(n, bytes) else str(n) for n in nodes]
    server = await Cluster.start_link([Static(names)], interval=60)
    await Cluster.poll(server)
    beamlet.send(owner, (beamlet.Atom("formed"), beamlet.node_name(), connected()))
    await beamlet.receive(lambda m: False)
