"""beamlet demo: a ring of 100,000 processes, a crash caught by a monitor, and a
supervised service that keeps answering while a chaos monkey kills its workers.

Run it with `./dev demo`.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from typing import Any

import beamlet
from beamlet import CallExit, Crash, Down, GenServer, Pid, Reply, Supervisor

RING_SIZE = 100_000
LAPS = 3
WORKERS = 8
CHAOS_KILLS = 12


# --- part 1: a ring ------------------------------------------------------------------


async def ring_member(nxt: Pid | None) -> None:
    """Forward a countdown to the next member; report to the owner at zero.

    `("stop", owner, n)` travels once round the ring and ends every member; the n-th
    tells the owner that the whole ring is gone.
    """
    if nxt is None:
        nxt = await beamlet.receive()
    while True:
        match await beamlet.receive():
            case ("stop", owner, 1):
                beamlet.send(owner, "ring stopped")
                return
            case ("stop", owner, n):
                beamlet.send(nxt, ("stop", owner, n - 1))
                return
            case (owner, 0):
                beamlet.send(owner, "ring done")
            case (owner, count):
                beamlet.send(nxt, (owner, count - 1))


async def ring() -> None:
    print(f"1. A ring of {RING_SIZE:,} processes")
    t0 = time.perf_counter()
    first = beamlet.spawn(ring_member, None)
    nxt = first
    for i in range(RING_SIZE - 1):
        nxt = beamlet.spawn(ring_member, nxt)
        if i % 1000 == 0:
            await beamlet.sleep(0)  # yield: 100k spawns in one step would block the loop
    beamlet.send(first, nxt)
    t1 = time.perf_counter()
    print(f"   spawned in {t1 - t0:.2f} s ({(t1 - t0) / RING_SIZE * 1e6:.1f} µs per process)")
    hops = RING_SIZE * LAPS
    beamlet.send(nxt, (beamlet.self(), hops))
    await beamlet.receive("ring done")
    t2 = time.perf_counter()
    print(f"   {hops:,} messages passed in {t2 - t1:.2f} s ({hops / (t2 - t1):,.0f} hops/s)")
    beamlet.send(first, ("stop", beamlet.self(), RING_SIZE))
    await beamlet.receive("ring stopped")
    print(f"   the ring stopped; processes left on the node: {len(beamlet.processes()):,}")


# --- part 2: let it crash ----------------------------------------------------------


async def fragile_worker(job: int) -> int:
    """Divides by zero when asked to."""
    await beamlet.receive()
    return 100 // job


async def monitored_crash() -> None:
    print("\n2. Let it crash: a worker divides by zero while we monitor it")
    pid, ref = beamlet.spawn_monitor(fragile_worker, 0)
    beamlet.send(pid, "go")
    match await beamlet.receive(Down(ref, beamlet.ANY, beamlet.ANY, beamlet.ANY), timeout=5):
        case Down(pid=p, reason=Crash(exception=exc)):
            print(f"   the monitor saw {p!r} die: {type(exc).__name__}: {exc}")
            print("   ...and this process carries on, untouched")


# --- part 3: a supervised service under chaos ---------------------------------------


class Squarer(GenServer[int]):
    """A worker that squares numbers and counts how many it served."""

    async def init(self, worker_id: int) -> int:
        return 0

    async def handle_call(self, request: Any, from_: Any, served: int) -> Reply:
        return Reply(request * request, served + 1)


class RestartCounter(logging.Handler):
    """Prints the supervisor's restart reports as they happen."""

    def __init__(self) -> None:
        super().__init__()
        self.restarts = 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "beamlet_context", None) == "child_restarted":
            self.restarts += 1
            print(f"   ↻ supervisor restarted {record.beamlet_child_id}")  # type: ignore[attr-defined]


async def client(n: int, owner: Pid) -> None:
    ok = failed = 0
    for i in range(200):
        worker = f"squarer_{(n + i) % WORKERS}"
        try:
            assert await GenServer.call(worker, i, timeout=1.0) == i * i
            ok += 1
        except CallExit:
            failed += 1  # the worker died under us: a clean, typed failure
        await beamlet.sleep(0.002)
    beamlet.send(owner, ("client done", ok, failed))


async def chaos(owner: Pid) -> None:
    rng = random.Random(42)
    for _ in range(CHAOS_KILLS):
        await beamlet.sleep(0.03)
        victim = beamlet.whereis(f"squarer_{rng.randrange(WORKERS)}")
        if victim is not None:
            print(f"   ✗ chaos kills {victim!r}")
            beamlet.exit(victim, beamlet.KILL)
    beamlet.send(owner, "chaos done")


async def supervised_service() -> None:
    print(f"\n3. A supervised service: {WORKERS} workers, 4 clients, a chaos monkey")
    reports = RestartCounter()
    logging.getLogger("beamlet").addHandler(reports)
    children = [
        Squarer.child_spec(i, name=f"squarer_{i}", id=f"squarer_{i}") for i in range(WORKERS)
    ]
    sup = await Supervisor.start_link(children, strategy="one_for_one", max_restarts=50)
    me = beamlet.self()
    for n in range(4):
        beamlet.spawn(client, n, me)
    beamlet.spawn(chaos, me)
    ok = failed = 0
    for _ in range(5):
        match await beamlet.receive(timeout=30):
            case ("client done", o, f):
                ok, failed = ok + o, failed + f
            case "chaos done":
                pass
    counts = await Supervisor.count_children(sup)
    print(f"   calls answered: {ok}, failed cleanly while a worker was down: {failed}")
    print(f"   restarts: {reports.restarts}; workers running now: {counts.active}/{WORKERS}")
    logging.getLogger("beamlet").removeHandler(reports)
    await Supervisor.stop(sup)


async def main() -> None:
    await ring()
    await monitored_crash()
    await supervised_service()
    # only this main process is left: everything it started has been stopped
    print(f"\nDone: {len(beamlet.processes()):,} process left on the node (this one).")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # keep the story in order when piped
    # Crash reports are the point of part 2 and 3; keep the console to the story.
    logging.getLogger("beamlet").setLevel(logging.INFO)
    logging.getLogger("beamlet").propagate = False
    beamlet.run(main)
