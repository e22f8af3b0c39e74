"""CPU instructions per ring hop and per sequential `GenServer.call`, under callgrind.

    uv run --frozen python bench/callgrind_kernel.py [--src DIR]

Each workload runs twice under `valgrind --tool=callgrind` (a small and a large count, in
fresh interpreters with a fixed hash seed, no watchdog thread); the difference of the
two totals divided by the difference of the counts is the cost of one unit, with
start-up, imports and node set-up cancelled out (docs/performance.md). `--src` measures
another checkout's `src/` (a before/after comparison in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# workload -> (small count, large count, unit)
WORKLOADS = {
    "ring": (20_000, 70_000, "hop"),  # a ring of 1,000 processes, hops of one token
    "call": (2_000, 7_000, "call"),  # one client, one GenServer, sequential calls
}


async def _ring(hops: int) -> None:
    import beamlet

    async def member(nxt: Any) -> None:
        while True:
            n = await beamlet.receive()
            beamlet.send(nxt, n - 1 if n > 0 else n)
            if n <= 0:
                return

    me = beamlet.self()

    async def last() -> None:
        while True:
            n = await beamlet.receive()
            if n <= 0:
                beamlet.send(me, "done")
                return
            beamlet.send(first, n - 1)

    tail = beamlet.spawn(last)
    nxt = tail
    for _ in range(999):
        nxt = beamlet.spawn(member, nxt)
    first = nxt
    beamlet.send(first, hops)
    await beamlet.receive()


async def _call(calls: int) -> None:
    from beamlet import GenServer, Reply

    class Echo(GenServer[int]):
        async def init(self, arg: Any) -> int:
            return 0

        async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
            return Reply(request, state)

    pid = await Echo.start_link(0)  # type: ignore[arg-type,unused-ignore]
    call = GenServer.call
    for i in range(calls):
        await call(pid, i)


def child(workload: str, count: int) -> None:
    import gc

    from beamlet import Node

    async def main() -> None:
        node = Node()
        node.block_warning = None  # no watchdog thread: its wake-ups are noise here
        async with node:
            fn = _ring if workload == "ring" else _call
            await node.run(fn, count)

    from beamlet._core import scheduler

    # callgrind runs ~50x slower than the CPU, so the scheduler's wall-clock slice would
    # end batches ~50x sooner than in a real run: switch the slice off (the count keeps the
    # cost of checking it, not batch ends that only callgrind causes).
    if hasattr(scheduler, "SLICE"):
        scheduler.SLICE = float("inf")  # type: ignore[misc]
    old = gc.get_threshold()
    gc.set_threshold(50_000, *old[1:])  # as beamlet.run does
    asyncio.run(main())


def instructions(src: Path, workload: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                workload,
                str(count),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        assert m is not None, "no total in the callgrind output"
        return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ to measure")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="ring,call")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    print(f"callgrind, instructions per unit ({args.src.resolve()})")
    for w in args.only.split(","):
        small, large, unit = WORKLOADS[w]
        a = instructions(args.src, w, small)
        b = instructions(args.src, w, large)
        print(f"  {w:5s} {(b - a) / (large - small):10,.0f} instructions / {unit}")


if __name__ == "__main__":
    main()
