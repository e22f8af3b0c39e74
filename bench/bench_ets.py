"""beamlet.ets against a dict in a function, cachetools.LRUCache and ETS on the BEAM.

Run: `uv run python bench/bench_ets.py [N]` (default N = 100,000 random keys). Prints
operations per second, best of 5, all measured in this run, and the ratio of each
`beamlet.ets` row to its dict baseline. The second table compares the ordered_set index
(sortedcontainers.SortedList against a plain bisect list) at growing sizes. The BEAM rows
need `escript` (bench/ets_beam.escript); they are skipped when it is missing.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import beamlet
from beamlet import Atom, ets
from beamlet.ets import api as ets_api
from beamlet.ets.sorted_keys import ListKeys, SortedKeys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def each(fn: Callable[..., Any], first: Any, items: list[Any]) -> Callable[[], None]:
    """A loop calling `fn(first, item)` for every item, results dropped (no garbage)."""

    def run() -> None:
        for x in items:
            fn(first, x)

    return run


def interleaved(*fns: Callable[[], Any], repeat: int = 7) -> list[float]:
    """Best time of each of `fns`, run in turn `repeat` times (load on a shared machine
    then hits every row alike)."""
    times = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i] = min(times[i], time.perf_counter() - t0)
    return times


def best(fn: Callable[[], Any], repeat: int = 5) -> float:
    t = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def dict_get(d: Any, k: Any) -> Any:  # also LRUCache's get (the same call shape)
    return d.get(k)


def dict_put(d: Any, obj: tuple[Any, ...]) -> None:
    d[obj[0]] = obj


def beam_rows() -> dict[str, float]:
    escript = shutil.which("escript")
    if escript is None:
        return {}
    script = Path(__file__).with_name("ets_beam.escript")
    out = subprocess.run(
        [escript, str(script), str(N)], capture_output=True, text=True, check=True
    ).stdout
    rows = {}
    for line in out.splitlines():
        name, _, value = line.rpartition(" ")
        rows[name] = float(value)
    return rows


def row(name: str, ops: float, base: float | None, beam: float | None) -> None:
    ratio = f"{base / ops:5.2f}x" if base else ""
    beam_s = f"{beam:>12,.0f}" if beam else f"{'-':>12}"
    print(f"{name:<40} {ops:>12,.0f} {ratio:>9} {beam_s}")


async def main() -> None:
    rng = random.Random(1)
    keys = [rng.randrange(N * 10) for _ in range(N)]
    objs = [(k, k) for k in keys]
    beam = beam_rows()

    print(
        f"N = {N:,} random int keys; ops/s (set rows: best of 7, run in turn; others: best "
        "of 5); ratio: time vs the dict row"
    )
    print(f"{'operation':<40} {'ops/s':>12} {'vs dict':>9} {'BEAM ets':>12}")

    d: dict[Any, Any] = {}
    from cachetools import LRUCache  # dev dependency

    c: Any = LRUCache(maxsize=N * 2)
    tid = ets.new("bench", access="public")
    ets.new("named", named_table=True, access="public")
    name = Atom("named")
    insert, lookup = ets.insert, ets.lookup
    puts = interleaved(
        each(dict_put, d, objs),
        each(dict_put, c, objs),
        each(insert, tid, objs),
        each(insert, name, objs),
    )
    gets = interleaved(
        each(dict_get, d, keys),
        each(dict_get, c, keys),
        each(lookup, tid, keys),
        each(lookup, name, keys),
    )
    t_put, t_get = N / puts[0], N / gets[0]
    row("dict in a function: insert", t_put, None, None)
    row("dict in a function: lookup", t_get, None, None)
    row("cachetools.LRUCache: insert", N / puts[1], t_put, None)
    row("cachetools.LRUCache: lookup", N / gets[1], t_get, None)
    row("ets set: insert", N / puts[2], t_put, beam.get("set insert"))
    row("ets set: lookup", N / gets[2], t_get, beam.get("set lookup"))
    row("ets set: insert by name", N / puts[3], t_put, None)
    row("ets set: lookup by name", N / gets[3], t_get, None)

    o_tid = ets.new("ordered", type="ordered_set", access="public")
    row(
        "ets ordered_set: insert",
        N / best(each(insert, o_tid, objs)),
        t_put,
        beam.get("ordered_set insert"),
    )
    row(
        "ets ordered_set: lookup",
        N / best(each(lookup, o_tid, keys)),
        t_get,
        beam.get("ordered_set lookup"),
    )
    size = ets.info(o_tid, "size")

    def walk() -> None:
        k = ets.first(o_tid)
        nxt = ets.next
        while k != ets.END_OF_TABLE:
            k = nxt(o_tid, k)

    row(
        "ets ordered_set: next (per step)",
        size / best(walk),
        None,
        beam.get("ordered_set next (per step)"),
    )
    lo, hi = N, N + 1000
    spec = [
        (
            (Atom("$1"), Atom("_")),
            [(Atom(">="), Atom("$1"), lo), (Atom("<"), Atom("$1"), hi)],
            [Atom("$_")],
        )
    ]
    row(
        "ets ordered_set: range select (1000 keys)",
        100 / best(lambda: [ets.select(o_tid, spec) for _ in range(100)]),
        None,
        beam.get("ordered_set range select (1000 keys)"),
    )

    print()
    print("ordered_set index: random inserts, then deletes, µs per operation")
    print(
        f"{'keys':>10} {'SortedList ins':>15} {'bisect list ins':>16} {'SortedList del':>15} "
        f"{'bisect list del':>16}"
    )
    for n in (10_000, 100_000, 1_000_000):
        ks = [(0, rng.random()) for _ in range(n)]
        cells = []
        for cls in (SortedKeys, ListKeys):
            if cls is ListKeys and n > 300_000:
                cells.append(("-", "-"))
                continue
            idx = cls()
            t0 = time.perf_counter()
            for k in ks:
                idx.add(k)
            t_ins = (time.perf_counter() - t0) / n * 1e6
            t0 = time.perf_counter()
            for k in ks:
                idx.remove(k)
            t_del = (time.perf_counter() - t0) / n * 1e6
            cells.append((f"{t_ins:.2f}", f"{t_del:.2f}"))
        print(f"{n:>10,} {cells[0][0]:>15} {cells[1][0]:>16} {cells[0][1]:>15} {cells[1][1]:>16}")
    print(f"(this run's ordered_set index: {ets_api.new_keys().__class__.__name__})")


if __name__ == "__main__":
    beamlet.run(main)
