"""Helpers for the OTP-behaviour benchmark workers (bench/bench_behaviours.py).

Standard library only: the Pykka and otpylib workers run in throwaway environments that
hold nothing but that library. A worker is run as `python -m bench.behaviours_<system>
[loop] <workload> <ints...>`, prints one `RESULT {"metric": ..., "value": ...}` line per
metric, and exits at once with `finish()` (no teardown is measured).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

now = time.perf_counter

WARMUP = 1_000  # calls made before any timed loop


def emit(metric: str, value: float) -> None:
    print("RESULT " + json.dumps({"metric": metric, "value": value}), flush=True)


def emit_latencies(prefix: str, samples_s: list[float]) -> None:
    """Median and 90th percentile of latencies given in seconds, as µs."""
    s = sorted(samples_s)
    emit(f"{prefix}_us", statistics.median(s) * 1e6)
    emit(f"{prefix}_p90_us", s[int(len(s) * 0.9)] * 1e6)


def finish() -> None:
    """Exit now, skipping teardown (results are already printed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def ints(argv: list[str]) -> list[int]:
    return [int(a) for a in argv]
