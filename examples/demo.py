"""beamlet demo: a ring of 100,000 processes, and a crash caught by a monitor.

Run it with `./dev demo`.
"""

from __future__ import annotations

import time

import beamlet
from beamlet import Crash, Down, Pid

RING_SIZE = 100_000
LAPS = 3


async def ring_member(nxt: Pid | None) -> None:
    """Forward a countdown to the next member; report to the owner at zero."""
    if nxt is None:
        nxt = await beamlet.receive()
    while True:
        owner, count = await beamlet.receive()
        if count == 0:
            beamlet.send(owner, "ring done")
            return
        beamlet.send(nxt, (owner, count - 1))


async def fragile_worker(job: int) -> int:
    """Divides by zero when asked to."""
    await beamlet.receive()
    return 100 // job


async def main() -> None:
    print(f"beamlet demo: spawning a ring of {RING_SIZE:,} processes...")
    t0 = time.perf_counter()
    first = beamlet.spawn(ring_member, None)
    nxt = first
    for _ in range(RING_SIZE - 1):
        nxt = beamlet.spawn(ring_member, nxt)
    beamlet.send(first, nxt)
    t1 = time.perf_counter()
    print(f"  spawned in {t1 - t0:.2f} s ({(t1 - t0) / RING_SIZE * 1e6:.1f} µs per process)")

    hops = RING_SIZE * LAPS
    beamlet.send(nxt, (beamlet.self(), hops))
    await beamlet.receive("ring done")
    t2 = time.perf_counter()
    print(f"  {hops:,} messages around the ring in {t2 - t1:.2f} s "
          f"({hops / (t2 - t1):,.0f} hops/s)")

    print("\nLet it crash: a worker divides by zero while we monitor it...")
    pid, ref = beamlet.spawn_monitor(fragile_worker, 0)
    beamlet.send(pid, "go")
    match await beamlet.receive(Down, timeout=5):
        case Down(ref=r, pid=p, reason=Crash(exception=exc)) if r == ref:
            print(f"  monitor saw {p!r} die: {type(exc).__name__}: {exc}")
            print("  ...and this process carries on, untouched.")
    print(f"\n{len(beamlet.processes()):,} processes still alive; the node stops with main.")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # the crash report is the demo's point
    beamlet.run(main)
