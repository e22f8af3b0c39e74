"""Work items for bench/bench_pool.py, importable by every kind of worker (beamlet
worker nodes by import path `bench.pool_work:NAME`, ProcessPoolExecutor and
multiprocessing.Pool by pickled reference)."""

from __future__ import annotations

import beamlet

MASK = (1 << 64) - 1
PRIME = 0x100000001B3


def fnv(rounds: int) -> int:
    """CPU-bound pure Python: `rounds` steps of a 64-bit FNV-1a style hash."""
    h = 0xCBF29CE484222325
    for i in range(rounds):
        h = ((h ^ (i & 0xFF)) * PRIME) & MASK
    return h & 0xFFFF


def identity(x: int) -> int:
    return x


async def sink(owner: beamlet.Pid, n: int) -> None:
    """Receive `n` messages, then tell `owner` `(done, n)`."""
    beamlet.send(owner, (beamlet.Atom("ready"), beamlet.self()))
    for _ in range(n):
        await beamlet.receive()
    beamlet.send(owner, (beamlet.Atom("done"), n))
