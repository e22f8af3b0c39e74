"""The workloads on the bare Task-per-process baseline (bench/baselines/task_per_process.py),
written like bench/beamlet_worker.py so the two differ only in the runtime underneath.

Usage: python -m bench.tpp_worker {asyncio,uvloop} <workload> <sizes...>
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bench.baselines.task_per_process import (
    Process,
    demonitor,
    link,
    monitor,
    receive,
    send,
    spawn,
    unlink,
)
from bench.common import args, done, emit, now, rss


async def idle(p: Process) -> None:
    await receive(p)


async def spawn_w(me: Process, n: int) -> None:
    r0 = rss()
    t0 = now()
    procs = [spawn(idle) for _ in range(n)]
    await asyncio.sleep(0)  # the ready queue is FIFO: every new task is now in receive
    t1 = now()
    r1 = rss()
    assert procs[-1].waiter is not None
    emit("us_per_spawn", (t1 - t0) / n * 1e6)
    emit("rss_per_proc", (r1 - r0) / n)


async def member(p: Process, nxt: Process | None, main: Process) -> None:
    if nxt is None:
        nxt = await receive(p)
    while True:
        k = await receive(p)
        if k == 0:
            send(main, "done")
        else:
            send(nxt, k - 1)


async def ring_w(me: Process, n: int, laps: int) -> None:
    last = nxt = spawn(member, None, me)
    procs = [last]
    for _ in range(n - 1):
        nxt = spawn(member, nxt, me)
        procs.append(nxt)
    send(last, nxt)
    await asyncio.sleep(0)
    t0 = now()
    send(nxt, n * laps)
    assert await receive(me) == "done"
    emit("hops_per_s", n * laps / (now() - t0))


async def receiver(p: Process, total: int, main: Process) -> None:
    for _ in range(total):
        await receive(p)
    send(main, "done")


async def sender(p: Process, dest: Process, k: int) -> None:
    for i in range(k):
        send(dest, ("msg", i))


async def fanin_w(me: Process, senders: int, k: int) -> None:
    t0 = now()
    rcv = spawn(receiver, senders * k, me)
    procs = [spawn(sender, rcv, k) for _ in range(senders)]
    assert await receive(me) == "done"
    emit("msgs_per_s", senders * k / (now() - t0))
    del procs


def tagged(ref: Any) -> Callable[[Any], bool]:
    return lambda m: m[0] is ref


async def selective_w(me: Process, fillers: int, k_since: int, k_scan: int) -> None:
    for i in range(fillers):
        send(me, ("filler", i))
    t0 = now()
    for i in range(k_scan):
        ref = object()
        send(me, (ref, i))
        await receive(me, tagged(ref))
    t1 = now()
    assert len(me.mailbox) == fillers
    emit("scan_us", (t1 - t0) / k_scan * 1e6)  # no receive marker in this design


async def head(p: Process) -> None:
    await receive(p)
    raise RuntimeError("boom")


async def chained(p: Process, prev: Process) -> None:
    link(p, prev)
    await receive(p)


async def storm_w(me: Process, n: int) -> None:
    first = last = spawn(head)
    procs = [first]
    for _ in range(n - 1):
        last = spawn(chained, last)
        procs.append(last)
    await asyncio.sleep(0)  # every process has linked to its predecessor
    ref = monitor(me, last)
    t0 = now()
    send(first, "crash")
    down = await receive(me)
    while not all(p.task.done() for p in procs):  # type: ignore[union-attr]
        await asyncio.sleep(0)
    t1 = now()
    assert down[:2] == ("DOWN", ref), down
    emit("reap_ms", (t1 - t0) * 1e3)


async def linkmon_w(me: Process, k: int) -> None:
    procs = [spawn(idle) for _ in range(k)]
    await asyncio.sleep(0)
    t0 = now()
    for p in procs:
        link(me, p)
    t1 = now()
    for p in procs:
        unlink(me, p)
    t2 = now()
    refs = [monitor(me, p) for p in procs]
    t3 = now()
    for r in refs:
        demonitor(r)
    t4 = now()
    for name, dt in (("link", t1 - t0), ("unlink", t2 - t1), ("monitor", t3 - t2)):
        emit(f"{name}_us", dt / k * 1e6)
    emit("demonitor_us", (t4 - t3) / k * 1e6)


WORKLOADS = {
    "spawn": spawn_w,
    "ring": ring_w,
    "fanin": fanin_w,
    "selective": selective_w,
    "storm": storm_w,
    "linkmon": linkmon_w,
}


def main() -> None:
    loop, workload, sizes = args()

    async def bench() -> None:
        # The benchmark's driver is itself a process (a handle with a mailbox) so it can
        # receive replies and DOWNs; it runs in asyncio's main task.
        await WORKLOADS[workload](Process(), *sizes)
        done()

    if loop == "uvloop":
        import uvloop

        uvloop.run(bench())
    else:
        asyncio.run(bench())


if __name__ == "__main__":
    main()
