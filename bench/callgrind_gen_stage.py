"""CPU instructions per event through the GenStage pipeline of bench_gen_stage.py, under
callgrind, against the asyncio.Queue pipeline and plain processes in the same run.

    uv run --frozen python bench/callgrind_gen_stage.py [--src DIR] [--consumers 1 4]
        [--rows isolated share processes queue]

Each row runs twice under `valgrind --tool=callgrind` (200,000 and 600,000 events, fresh
interpreters, fixed hash seed); the difference of the totals over the difference of the
counts is the cost of one event, start-up cancelled out. Counts, unlike seconds, do not
move with the load of a shared machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (200_000, 600_000)
ROWS = {
    "gen_stage, default": "isolated",
    "gen_stage, share_events": "share",
    "processes (same messages)": "processes",
    "asyncio.Queue (target)": "queue",
}


def workload(kind: str, n: int, consumers: int = 1) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_gen_stage as b

    import beamlet
    from beamlet._core import scheduler

    # callgrind runs ~50x slower than the CPU, so the scheduler's wall-clock slice would
    # end batches ~50x sooner than in a real run (and as the machine's load varies):
    # switch it off, as bench/callgrind_kernel.py does, so that a count repeats.
    scheduler.SLICE = float("inf")  # type: ignore[misc]
    if kind == "queue":
        asyncio.run(b.queue_run(n, consumers))
    elif kind == "processes":
        beamlet.run(lambda: b.processes_run(n, consumers))
    else:
        beamlet.run(lambda: b.gen_stage_run(n, consumers, share=kind == "share"))


def instructions(src: Path, kind: str, n: int, consumers: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(src)}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           __file__, "--run", kind, str(n), str(consumers)]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    assert m is not None, out
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--consumers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rows", nargs="+", choices=list(ROWS.values()), default=list(ROWS.values()))
    ap.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        workload(args.run[0], int(args.run[1]), int(args.run[2]))
        return
    kinds = {kind: label for label, kind in ROWS.items() if kind in args.rows or kind == "queue"}
    print(f"callgrind, instructions per event ({args.src})")
    print(f"  {'system':28} {'consumers':>9} {'instr/event':>12} {'vs Queue':>9}")
    for consumers in args.consumers:
        per: dict[str, float] = {}
        for kind in kinds:
            small, large = (instructions(args.src, kind, n, consumers) for n in SIZES)
            per[kind] = (large - small) / (SIZES[1] - SIZES[0])
        for kind, v in per.items():
            print(f"  {kinds[kind]:28} {consumers:9} {v:12,.0f} {per['queue'] / v:8.2f}x")


if __name__ == "__main__":
    main()
