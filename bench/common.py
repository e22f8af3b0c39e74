"""Helpers shared by the Python workers (one workload, one system, one fresh process).

A worker is run as `python -m bench.<worker> {asyncio,uvloop} <workload> <ints...>` and
prints one `RESULT {"metric": ..., "value": ...}` line per metric, then exits at once
(`os._exit`: tearing down a million processes is not part of any measurement).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

import psutil

now = time.perf_counter
_me = psutil.Process()


def rss() -> int:
    """Resident set size in bytes, after a full garbage collection."""
    gc.collect()
    time.sleep(0.05)
    return int(_me.memory_info().rss)


def emit(metric: str, value: float) -> None:
    print("RESULT " + json.dumps({"metric": metric, "value": value}), flush=True)


def args() -> tuple[str, str, list[int]]:
    """(loop, workload, sizes) from the command line."""
    loop, workload, *sizes = sys.argv[1:]
    if loop not in ("asyncio", "uvloop"):
        raise SystemExit(f"unknown loop {loop!r}")
    return loop, workload, [int(s) for s in sizes]


def done(*_: Any) -> None:
    """Exit now, skipping teardown (results are already printed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
