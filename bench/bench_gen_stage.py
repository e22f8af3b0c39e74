"""GenStage throughput: events/s through producer -> producer_consumer -> consumer(s),
max_demand 1000, against the same pipeline on bounded asyncio.Queues, in the same run.

    uv run python bench/bench_gen_stage.py            # 1,000,000 events, 3 runs each
    uv run python bench/bench_gen_stage.py --quick    # 200,000 events, 1 run
    uv run python bench/bench_gen_stage.py --cpu      # CPU time of this process, not wall

`--cpu` times the Python rows with `time.process_time()`: on a machine shared with other
work, wall-clock time also counts the time other processes held the CPU (every row here
runs in this one thread, so CPU time is their cost); the BEAM row stays wall-clock.

Work per event is the same everywhere: the producer makes ints, the middle stage doubles
them, the consumer(s) sum them; the consumers count what they got in one shared counter
and the last one signals the end (no message per batch to the bench). Rows:

* gen_stage: max_demand 1000, min_demand 0, so every `handle_events` gets a batch of
  1,000 events (G4.1: chunks of max - min) -- the "batches of 1,000 events" of issue 12;
* gen_stage share: the same with `share_events=True` on the producer and the
  producer_consumer: batches passed by reference, unchecked (docs/gen_stage.md G3.8);
* gen_stage min 500: the default min_demand (chunks of 500, an ask after each);
* processes: the floor under the stages, plain beamlet processes passing the same four
  messages per batch (no GenServer loop, no demand bookkeeping), batches in `Shared`;
* asyncio.Queue: tasks passing lists of 1,000 events through `asyncio.Queue(maxsize=1)`
  (one queue shared by the consumers, as DemandDispatcher shares work): the target;
* Queue/event: the same tasks, one event per item, `asyncio.Queue(maxsize=1000)`.

Runs alternate between systems; the median is shown. The BEAM rows run
bench/gen_stage_beam.erl (plain Erlang processes speaking the same messages, max 1000 /
min 0, compiled with erlc into a temporary directory) when erl/erlc are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import beamlet
from beamlet.gen_stage import Consumer, GenStage, NoReply, Producer, ProducerConsumer

BATCH = 1000


class Source(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        n, share = arg
        return Producer([0, n], share_events=share)

    def handle_demand(self, demand: int, state: list[int]) -> Any:
        i, n = state
        j = min(i + demand, n)
        return NoReply(list(range(i, j)), [j, n])


class Double(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        producer, min_demand, share = arg
        sub = {"max_demand": BATCH, "min_demand": min_demand}
        return ProducerConsumer(None, subscribe_to=[(producer, sub)], share_events=share)

    def handle_events(self, events: list[int], from_: Any, state: Any) -> Any:
        return NoReply([e * 2 for e in events], state)


class Sum(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        pc, min_demand, test, count, n = arg
        self.test, self.count, self.n = test, count.value, n
        sub = {"max_demand": BATCH, "min_demand": min_demand}
        return Consumer(0, subscribe_to=[(pc, sub)])

    def handle_events(self, events: list[int], from_: Any, total: int) -> Any:
        total += sum(events)
        count = self.count
        count[0] += len(events)
        if count[0] >= self.n:
            beamlet.send(self.test, "done")
        return NoReply([], total)


Clock = Callable[[], float]


async def gen_stage_run(
    n: int,
    consumers: int,
    min_demand: int = 0,
    share: bool = False,
    clock: Clock = time.perf_counter,
) -> float:
    me = beamlet.self()
    count = beamlet.Shared([0])  # shared on purpose, as the Queue side's counter
    t0 = clock()
    source = await Source.start_link((n, share))
    pc = await Double.start_link((source, min_demand, share))
    for _ in range(consumers):
        await Sum.start_link((pc, min_demand, me, count, n))
    await beamlet.receive()
    return clock() - t0


async def processes_run(n: int, consumers: int, clock: Clock = time.perf_counter) -> float:
    """The floor under the stages: plain beamlet processes (no GenServer, no GenStage)
    with the same four messages per batch (events down, an ask back, on each hop), the
    batches passed by reference in `Shared`, as `share_events` does."""
    me = beamlet.self()
    count = [0]

    async def source() -> None:
        i = 0
        while True:
            to = (await beamlet.receive()).value
            j = min(i + BATCH, n)
            beamlet.send(to, beamlet.Shared((None, list(range(i, j)))))
            i = j

    async def double(src: beamlet.Pid) -> None:
        waiting: list[beamlet.Pid] = []  # consumers that asked
        ready: list[list[int]] = []  # doubled batches nobody asked for yet
        ask = beamlet.Shared(beamlet.self())
        beamlet.send(src, ask)
        while True:
            frm, events = (await beamlet.receive()).value
            if frm is None:  # from the source
                out = [e * 2 for e in events]
                if waiting:
                    beamlet.send(waiting.pop(0), beamlet.Shared(out))
                else:
                    ready.append(out)
                beamlet.send(src, ask)
            elif ready:
                beamlet.send(frm, beamlet.Shared(ready.pop(0)))
            else:
                waiting.append(frm)

    async def consume(pc: beamlet.Pid) -> None:
        total = 0
        ask = beamlet.Shared((beamlet.self(), None))
        while True:
            beamlet.send(pc, ask)
            events = (await beamlet.receive()).value
            total += sum(events)
            count[0] += len(events)
            if count[0] >= n:
                beamlet.send(me, "done")

    t0 = clock()
    src = beamlet.spawn(source)
    pc = beamlet.spawn(double, src)
    pids = [src, pc, *(beamlet.spawn(consume, pc) for _ in range(consumers))]
    await beamlet.receive()
    elapsed = clock() - t0
    for pid in pids:
        beamlet.exit(pid, beamlet.KILL)
    return elapsed


async def queue_run(n: int, consumers: int, clock: Clock = time.perf_counter) -> float:
    """Lists of BATCH events through Queue(maxsize=1)."""
    t0 = clock()
    q1: asyncio.Queue[list[int] | None] = asyncio.Queue(maxsize=1)
    q2: asyncio.Queue[list[int] | None] = asyncio.Queue(maxsize=1)
    done = asyncio.Event()
    count = [0]

    async def source() -> None:
        for i in range(0, n, BATCH):
            await q1.put(list(range(i, min(i + BATCH, n))))
        await q1.put(None)

    async def double() -> None:
        while (events := await q1.get()) is not None:
            await q2.put([e * 2 for e in events])
        for _ in range(consumers):
            await q2.put(None)

    async def consume() -> None:
        total = 0
        while (events := await q2.get()) is not None:
            total += sum(events)
            count[0] += len(events)
            if count[0] >= n:
                done.set()

    tasks = [
        asyncio.ensure_future(c)
        for c in (source(), double(), *(consume() for _ in range(consumers)))
    ]
    await done.wait()
    await asyncio.gather(*tasks)
    return clock() - t0


async def queue_event_run(n: int, consumers: int, clock: Clock = time.perf_counter) -> float:
    """One event per item through Queue(maxsize=BATCH)."""
    t0 = clock()
    q1: asyncio.Queue[int | None] = asyncio.Queue(maxsize=BATCH)
    q2: asyncio.Queue[int | None] = asyncio.Queue(maxsize=BATCH)
    done = asyncio.Event()
    count = [0]

    async def source() -> None:
        for i in range(n):
            await q1.put(i)
        await q1.put(None)

    async def double() -> None:
        while (e := await q1.get()) is not None:
            await q2.put(e * 2)
        for _ in range(consumers):
            await q2.put(None)

    async def consume() -> None:
        total = 0
        while (e := await q2.get()) is not None:
            total += e
            count[0] += 1
            if count[0] >= n:
                done.set()

    tasks = [
        asyncio.ensure_future(c)
        for c in (source(), double(), *(consume() for _ in range(consumers)))
    ]
    await done.wait()
    await asyncio.gather(*tasks)
    return clock() - t0


SYSTEMS = (
    "gen_stage",
    "gen_stage share",
    "gen_stage min 500",
    "processes",
    "asyncio.Queue",
    "Queue/event",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--events", type=int)
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--cpu", action="store_true", help="time the Python rows in CPU time")
    args = ap.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    n = args.events or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 3)
    results: dict[tuple[str, int], list[float]] = {}

    async def body() -> None:
        for _ in range(repeat):
            for consumers in (1, 4):
                runs = (
                    gen_stage_run(n, consumers, clock=clock),
                    gen_stage_run(n, consumers, share=True, clock=clock),
                    gen_stage_run(n, consumers, BATCH // 2, clock=clock),
                    processes_run(n, consumers, clock=clock),
                    queue_run(n, consumers, clock=clock),
                    queue_event_run(n, consumers, clock=clock),
                )
                for system, run in zip(SYSTEMS, runs, strict=True):
                    results.setdefault((system, consumers), []).append(await run)

    beamlet.run(body)
    timing = "CPU time (BEAM: wall clock)" if args.cpu else "wall clock"
    print(f"GenStage throughput, {n:,} events, median of {repeat} (max_demand {BATCH}), {timing}")
    print(f"  {'system':<20}{'consumers':>10}{'events/s':>14}{'vs Queue':>10}")
    for consumers in (1, 4):
        base = n / statistics.median(results[("asyncio.Queue", consumers)])
        for system in SYSTEMS:
            rate = n / statistics.median(results[(system, consumers)])
            print(f"  {system:<20}{consumers:>10}{rate:>14,.0f}{rate / base:>9.2f}x")
        rates = beam(n, consumers, repeat)
        if rates is None:
            print(f"  {'BEAM':<20}{consumers:>10}{'(no erl)':>14}")
        else:
            rate = statistics.median(rates)
            print(f"  {'BEAM':<20}{consumers:>10}{rate:>14,.0f}{rate / base:>9.2f}x")


def beam(n: int, consumers: int, repeat: int) -> list[float] | None:
    erl, erlc = shutil.which("erl"), shutil.which("erlc")
    if erl is None or erlc is None:
        return None
    src = pathlib.Path(__file__).with_name("gen_stage_beam.erl")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([erlc, "-o", out, str(src)], check=True)
        rates = []
        for _ in range(repeat):
            cmd = [
                erl,
                "-noshell",
                "-pa",
                out,
                "-run",
                "gen_stage_beam",
                "main",
                str(n),
                str(consumers),
            ]
            text = subprocess.run(
                cmd, check=True, capture_output=True, text=True, timeout=300
            ).stdout
            line = next(x for x in text.splitlines() if x.startswith("RESULT "))
            rates.append(float(json.loads(line[7:])["value"]))
    return rates


if __name__ == "__main__":
    main()
