"""The workloads on beamlet, run by bench/run.py (one workload per fresh interpreter).

Usage: python -m bench.beamlet_worker {asyncio,uvloop} <workload> <sizes...>
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import beamlet
from beamlet import (
    ANY,
    Crash,
    Down,
    Pid,
    demonitor,
    link,
    make_ref,
    monitor,
    process_info,
    processes,
    receive,
    send,
    spawn,
    unlink,
)
from bench.common import args, done, emit, now, rss


async def idle() -> None:
    await receive()


async def spawn_w(n: int) -> None:
    r0 = rss()
    t0 = now()
    pids = [spawn(idle) for _ in range(n)]
    await asyncio.sleep(0)  # the run queue is FIFO: every new process is now in receive
    t1 = now()
    r1 = rss()
    info = process_info(pids[-1])
    assert info is not None and info.status == "waiting", info
    emit("us_per_spawn", (t1 - t0) / n * 1e6)
    emit("rss_per_proc", (r1 - r0) / n)


async def member(nxt: Pid | None, main: Pid) -> None:
    if nxt is None:
        nxt = await receive()
    while True:
        k = await receive()
        if k == 0:
            send(main, "done")
        else:
            send(nxt, k - 1)


async def ring_w(n: int, laps: int) -> None:
    me = beamlet.self()
    last = nxt = spawn(member, None, me)
    for _ in range(n - 1):
        nxt = spawn(member, nxt, me)
    send(last, nxt)
    await asyncio.sleep(0)
    t0 = now()
    send(nxt, n * laps)
    assert await receive() == "done"
    emit("hops_per_s", n * laps / (now() - t0))


async def receiver(total: int, main: Pid) -> None:
    for _ in range(total):
        await receive()
    send(main, "done")


async def sender(dest: Pid, k: int) -> None:
    for i in range(k):
        send(dest, ("msg", i))


async def fanin_w(senders: int, k: int) -> None:
    t0 = now()
    rcv = spawn(receiver, senders * k, beamlet.self())
    for _ in range(senders):
        spawn(sender, rcv, k)
    assert await receive() == "done"
    emit("msgs_per_s", senders * k / (now() - t0))


def tagged(ref: Any) -> Callable[[Any], bool]:
    return lambda m: m[0] is ref


async def selective_w(fillers: int, k_since: int, k_scan: int) -> None:
    me = beamlet.self()
    for i in range(fillers):
        send(me, ("filler", i))
    t0 = now()
    for i in range(k_since):
        ref = make_ref()
        send(me, (ref, i))
        await receive((ref, ANY), since=ref)
    t1 = now()
    for i in range(k_scan):
        ref = make_ref()
        send(me, (ref, i))
        await receive(tagged(ref))
    t2 = now()
    info = process_info(me)
    assert info is not None and info.message_queue_len == fillers
    emit("since_us", (t1 - t0) / k_since * 1e6)
    emit("scan_us", (t2 - t1) / k_scan * 1e6)


async def head() -> None:
    await receive()
    raise RuntimeError("boom")


async def chained(prev: Pid) -> None:
    link(prev)
    await receive()


async def storm_w(n: int) -> None:
    base = len(processes())
    first = last = spawn(head)
    for _ in range(n - 1):
        last = spawn(chained, last)
    await asyncio.sleep(0)  # every process has linked to its predecessor
    assert len(processes()) == base + n
    ref = monitor(last)
    t0 = now()
    send(first, "crash")
    down = await receive(Down)
    while len(processes()) > base:
        await asyncio.sleep(0)
    t1 = now()
    assert down.ref == ref and isinstance(down.reason, Crash), down
    emit("reap_ms", (t1 - t0) * 1e3)


async def linkmon_w(k: int) -> None:
    pids = [spawn(idle) for _ in range(k)]
    await asyncio.sleep(0)
    t0 = now()
    for p in pids:
        link(p)
    t1 = now()
    for p in pids:
        unlink(p)
    t2 = now()
    refs = [monitor(p) for p in pids]
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
        await WORKLOADS[workload](*sizes)
        done()

    beamlet.run(bench, use_uvloop=loop == "uvloop")


if __name__ == "__main__":
    main()
