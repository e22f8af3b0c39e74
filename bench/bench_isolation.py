"""What message isolation (docs/semantics.md §2.2) costs per send, by message shape.

Immutable messages pass by reference (a type check); mutable ones are deep-copied.
Run: `uv run python bench/bench_isolation.py` (prints µs per send; same run, same
receiver, so compare rows with each other).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import beamlet

N = 20_000


@dataclass(frozen=True)
class Point:
    x: int
    y: int


SHAPES: list[tuple[str, Any]] = [
    ("int", 42),
    ("str (100 chars)", "x" * 100),
    ("flat tuple (3 items)", ("msg", 1, 2.5)),
    ("nested tuple", ("msg", (1, 2), ("a", ("b", 3)))),
    ("frozen dataclass", Point(1, 2)),
    ("list of 10 ints (copied)", list(range(10))),
    ("dict of 10 items (copied)", {i: str(i) for i in range(10)}),
    ("list of 100 ints (copied)", list(range(100))),
]


async def sink() -> None:
    while True:
        await beamlet.receive()


async def main() -> None:
    pid = beamlet.spawn(sink)
    print(f"{'message':<28} {'µs per send':>12}")
    for label, msg in SHAPES:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(N):
                beamlet.send(pid, msg)
            best = min(best, time.perf_counter() - t0)
            await beamlet.sleep(0.001)  # let the sink drain
        print(f"{label:<28} {best / N * 1e6:>12.2f}")


if __name__ == "__main__":
    beamlet.run(main)
