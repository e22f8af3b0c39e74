"""The bare asyncio baselines of bench/bench_behaviours.py, one workload per interpreter.

Usage: python -m bench.behaviours_asyncio {asyncio,uvloop} {future,queue} <workload> <ints>

A server is one asyncio Task with a mailbox; a request carries a fresh Future that the
server resolves with the reply (the prototypes' request/reply, `bench_asyncio.py call
future|queue`). No monitors, no names, no isolation: the floor for what a call costs.

  future   mailbox = a deque + a Future to wake the server when it is empty
  queue    mailbox = an asyncio.Queue

  call K        one client, K sequential requests: calls/s
  callc C K     C client Tasks x K requests each: total calls/s
  cast N        N fire-and-forget messages, then one request answered with the count
  stream N      asyncio.gather of N trivial coroutines (µs per item), and a plain loop
                calling the identity function over N items (µs per item)
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any

from bench.behaviours_common import WARMUP, emit, finish, ints, now


class DequeServer:
    """Mailbox = deque; the server parks on a Future only when it is empty."""

    __slots__ = ("box", "count", "loop", "waiter")

    def __init__(self) -> None:
        self.box: deque[tuple[asyncio.Future[Any] | None, Any]] = deque()
        self.loop = asyncio.get_running_loop()
        self.waiter: asyncio.Future[None] | None = None
        self.count = 0

    def send(self, msg: tuple[asyncio.Future[Any] | None, Any]) -> None:
        self.box.append(msg)
        w = self.waiter
        if w is not None:
            self.waiter = None
            w.set_result(None)

    async def run(self) -> None:
        box = self.box
        while True:
            while box:
                fut, req = box.popleft()
                if fut is None:  # a cast
                    self.count += 1
                else:
                    fut.set_result(self.count if req == "count" else req)
            self.waiter = self.loop.create_future()
            await self.waiter


class QueueServer:
    """Mailbox = asyncio.Queue."""

    __slots__ = ("count", "q")

    def __init__(self) -> None:
        self.q: asyncio.Queue[tuple[asyncio.Future[Any] | None, Any]] = asyncio.Queue()
        self.count = 0

    def send(self, msg: tuple[asyncio.Future[Any] | None, Any]) -> None:
        self.q.put_nowait(msg)

    async def run(self) -> None:
        get = self.q.get
        while True:
            fut, req = await get()
            if fut is None:
                self.count += 1
            else:
                fut.set_result(self.count if req == "count" else req)


async def request(srv: Any, req: Any) -> Any:
    fut = asyncio.get_running_loop().create_future()
    srv.send((fut, req))
    return await fut


async def call_loop(srv: Any, k: int) -> None:
    loop = asyncio.get_running_loop()
    send = srv.send
    for i in range(k):
        fut = loop.create_future()
        send((fut, i))
        if await fut != i:
            raise AssertionError("wrong reply")


def start(variant: str) -> tuple[Any, asyncio.Task[None]]:
    srv: Any = DequeServer() if variant == "future" else QueueServer()
    return srv, asyncio.get_running_loop().create_task(srv.run())


async def call_w(variant: str, k: int) -> None:
    srv, _task = start(variant)
    await call_loop(srv, WARMUP)
    t0 = now()
    await call_loop(srv, k)
    emit("calls_per_s", k / (now() - t0))


async def callc_w(variant: str, c: int, k: int) -> None:
    srv, _task = start(variant)
    await call_loop(srv, WARMUP)
    t0 = now()
    await asyncio.gather(*[call_loop(srv, k) for _ in range(c)])
    emit("calls_per_s", c * k / (now() - t0))


async def cast_w(variant: str, n: int) -> None:
    srv, _task = start(variant)
    send = srv.send
    for i in range(WARMUP):
        send((None, i))
    assert await request(srv, "count") == WARMUP
    t0 = now()
    for i in range(n):
        send((None, i))
    count = await request(srv, "count")
    t1 = now()
    assert count == WARMUP + n, count
    emit("casts_per_s", n / (t1 - t0))


def identity(x: Any) -> Any:
    return x


async def trivial(x: Any) -> Any:
    return x


async def stream_w(variant: str, n: int) -> None:
    await asyncio.gather(*[trivial(i) for i in range(WARMUP)])
    t0 = now()
    out = await asyncio.gather(*[trivial(i) for i in range(n)])
    emit("gather_us_per_item", (now() - t0) / n * 1e6)
    assert len(out) == n
    t0 = now()
    results = []
    for i in range(n):
        results.append(identity(i))
    emit("loop_us_per_item", (now() - t0) / n * 1e6)
    assert len(results) == n


WORKLOADS = {"call": call_w, "callc": callc_w, "cast": cast_w, "stream": stream_w}


def main() -> None:
    loop, variant, workload, *sizes = sys.argv[1:]
    if loop not in ("asyncio", "uvloop") or variant not in ("future", "queue"):
        raise SystemExit(__doc__)
    coro = WORKLOADS[workload](variant, *ints(sizes))
    if loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
    finish()


if __name__ == "__main__":
    main()
