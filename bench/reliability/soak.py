"""Soak: steady message traffic on one node for a long time; msgs/s and RSS sampled.

    python -m bench.reliability soak --seconds 600      # the full run
    python -m bench.reliability soak --seconds 20       # the quick run

The workload mixes what a long-running node does all day: `TOKENS` tokens circulate
around a ring of `RING` processes (plain send/receive), `CALLERS` processes call a
GenServer in a loop, and a spawner spawns short-lived linked-and-monitored workers
(spawn, link, exit, Down). The main process samples the message count and the RSS
every second. RSS is "flat" when the median of the last window is within `max_growth`
(5 %) of the median of the first window after a warm-up (windows of a minute in a run
of 5 minutes or more, a fifth of the run when shorter; the warm-up is one window).
After the run every process is stopped and none may be left.

The processes count into one `Tally` passed as `beamlet.Shared` (arguments are
otherwise copied into each process, docs/semantics.md §2.2): shared on purpose, a
counter only the bench reads.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

import beamlet
from beamlet import Down, Exit, GenServer, Pid, Reply, Shared

RING, TOKENS, CALLERS = 1000, 50, 20


@dataclass
class Tally:
    messages: int = 0
    stop: bool = False


@dataclass
class SoakResult:
    seconds: float = 0.0
    messages: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # t, msgs, rss
    window: float = 0.0
    first_rss: float = 0.0
    last_rss: float = 0.0
    max_growth: float = 0.05
    processes_before: int = 0
    processes_after: int = 0
    stuck: int = 0  # workload processes that did not stop when told

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def growth(self) -> float:
        return self.last_rss / self.first_rss - 1.0 if self.first_rss else 0.0

    @property
    def flat(self) -> bool:
        return self.growth < self.max_growth

    @property
    def ok(self) -> bool:
        return self.flat and not self.stuck and self.processes_after <= self.processes_before


class Counter(GenServer[int]):
    async def init(self, start: int) -> int:
        return start

    async def handle_call(self, request: Any, from_: Any, n: int) -> Reply[int]:
        return Reply(n + 1, n + 1)


async def _member(tally: Shared[Tally]) -> None:
    t = tally.value
    nxt: Pid = await beamlet.receive()
    while True:
        token = await beamlet.receive()
        t.messages += 1
        beamlet.send(nxt, token)


async def _caller(server: Pid, tally: Shared[Tally]) -> None:
    t = tally.value
    while not t.stop:
        await GenServer.call(server, "incr")
        t.messages += 2  # the request and the reply


async def _worker() -> None:
    await beamlet.receive()


async def _spawner(tally: Shared[Tally]) -> None:
    t = tally.value
    beamlet.process_flag(trap_exit=True)
    while not t.stop:
        pid = beamlet.spawn_link(_worker)
        ref = beamlet.monitor(pid)
        beamlet.send(pid, "go")
        await beamlet.receive(lambda m, ref=ref: type(m) is Down and m.ref == ref)
        await beamlet.receive(lambda m, pid=pid: type(m) is Exit and m.pid == pid)
        t.messages += 3  # the message, the exit signal, the Down


async def _soak(seconds: float, window: float, progress: bool) -> SoakResult:
    proc = psutil.Process()
    tally = Tally()
    shared = Shared(tally)
    result = SoakResult(window=window, processes_before=len(beamlet.processes()))
    ring = [beamlet.spawn(_member, shared) for _ in range(RING)]
    for i, pid in enumerate(ring):
        beamlet.send(pid, ring[(i + 1) % RING])
    for i in range(TOKENS):
        beamlet.send(ring[i * RING // TOKENS], ("token", i))
    server = await Counter.start(0)
    assert isinstance(server, Pid)
    others = [beamlet.spawn_monitor(_caller, server, shared) for _ in range(CALLERS)]
    others.append(beamlet.spawn_monitor(_spawner, shared))
    start = time.perf_counter()
    next_report = start + 60
    while time.perf_counter() - start < seconds:
        await beamlet.sleep(1.0)
        now = time.perf_counter()
        result.samples.append((now - start, tally.messages, proc.memory_info().rss))
        if progress and now >= next_report:
            t, n, rss = result.samples[-1]
            print(f"  {t:6.0f} s {n / t:12,.0f} msgs/s  RSS {rss / 2**20:7.1f} MB", flush=True)
            next_report += 60
    result.seconds = time.perf_counter() - start
    result.messages = tally.messages
    # Stop everything; nothing may be left behind.
    tally.stop = True
    for _pid, ref in others:
        down = await beamlet.receive(
            lambda m, ref=ref: type(m) is Down and m.ref == ref, timeout=10, default=None
        )
        result.stuck += down is None
    for pid in ring:
        beamlet.exit(pid, beamlet.KILL)
    await GenServer.stop(server)
    for pid in ring:  # the kills have been handled once each is gone
        ref = beamlet.monitor(pid)
        await beamlet.receive(lambda m, ref=ref: type(m) is Down and m.ref == ref, timeout=10)
    result.processes_after = len(beamlet.processes())
    return result


def soak(seconds: float, *, window: float | None = None, progress: bool = False) -> SoakResult:
    """Run the soak for `seconds` on a fresh node; the result holds every sample."""
    if window is None:
        window = 60.0 if seconds >= 300 else max(1.0, seconds / 5)
    result = beamlet.run(_soak, seconds, window, progress)
    samples = result.samples
    first = [rss for t, _, rss in samples if window <= t < 2 * window]
    last = [rss for t, _, rss in samples if t >= result.seconds - window]
    result.first_rss = statistics.median(first or [samples[0][2]])
    result.last_rss = statistics.median(last or [samples[-1][2]])
    return result


def print_soak(r: SoakResult) -> None:
    w = r.window
    print(f"\nsoak, {r.seconds:.0f} s: a ring of {RING} processes x {TOKENS} tokens, {CALLERS}")
    print("GenServer callers, a spawn/link/monitor/exit loop; RSS sampled every second")
    print(f"  {'t (s)':>7} {'msgs/s (since last row)':>24} {'RSS MB':>8}")
    step = max(1, len(r.samples) // 10)
    prev_t, prev_n = 0.0, 0
    for t, n, rss in r.samples[step - 1 :: step]:
        rate = (n - prev_n) / (t - prev_t) if t > prev_t else 0.0
        print(f"  {t:7.0f} {rate:24,.0f} {rss / 2**20:8.1f}")
        prev_t, prev_n = t, n
    print(f"{'messages':<40} {r.messages:>14,}")
    print(f"{'msgs/s (whole run)':<40} {r.msgs_per_s:>14,.0f}")
    print(
        f"{f'RSS, median of {w:.0f} s after {w:.0f} s warm-up':<40} {r.first_rss / 2**20:>11.1f} MB"
    )
    print(f"{f'RSS, median of the last {w:.0f} s':<40} {r.last_rss / 2**20:>11.1f} MB")
    verdict = "flat" if r.flat else "GROWING"
    print(f"{'RSS growth':<40} {r.growth:>+14.1%}  ({verdict}: < {r.max_growth:.0%})")
    print(f"{'stuck after stop (must be 0)':<40} {r.stuck:>14}")
    print(f"{'processes after stop (before)':<40} {r.processes_after:>14} ({r.processes_before})")
