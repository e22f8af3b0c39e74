"""Pykka baseline of bench/bench_behaviours.py (ThreadingActor: one OS thread per actor).

Usage: python -m bench.behaviours_pykka <workload> <ints...>   (in an env with pykka)

  call K        one client thread, K sequential ActorRef.ask: calls/s
  callc C K     C client threads x K asks each to one actor: total calls/s
  cast N        N ActorRef.tell, then one ask answered with the count: casts/s
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pykka

from bench.behaviours_common import WARMUP, emit, finish, ints, now


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class Counter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return self.count
        self.count += 1
        return None


def call_loop(ref: Any, k: int) -> None:
    ask = ref.ask
    for i in range(k):
        if ask(i) != i:
            raise AssertionError("wrong reply")


def call_w(k: int) -> None:
    ref = Echo.start()
    call_loop(ref, WARMUP)
    t0 = now()
    call_loop(ref, k)
    emit("calls_per_s", k / (now() - t0))


def callc_w(c: int, k: int) -> None:
    ref = Echo.start()
    call_loop(ref, WARMUP)
    threads = [threading.Thread(target=call_loop, args=(ref, k)) for _ in range(c)]
    t0 = now()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit("calls_per_s", c * k / (now() - t0))


def cast_w(n: int) -> None:
    ref = Counter.start()
    tell = ref.tell
    for i in range(WARMUP):
        tell(i)
    assert ref.ask("count") == WARMUP
    t0 = now()
    for i in range(n):
        tell(i)
    count = ref.ask("count")
    t1 = now()
    assert count == WARMUP + n, count
    emit("casts_per_s", n / (t1 - t0))


WORKLOADS = {"call": call_w, "callc": callc_w, "cast": cast_w}


def main() -> None:
    workload, *sizes = sys.argv[1:]
    WORKLOADS[workload](*ints(sizes))
    finish()


if __name__ == "__main__":
    main()
