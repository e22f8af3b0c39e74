"""No event silently lost (docs/gen_stage.md G10, "No event silently lost"): with random
consumer crashes and restarts under permanent and transient subscriptions, every event
a producer emits is handled exactly once, or was sent to a consumer that crashed before
handling it, or is still in the producer's buffer. A tracing dispatcher reports each
batch it sends, so the fate of every event is known."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamlet
from beamlet import Down, Node, Pid
from beamlet.gen_stage import Consumer, DemandDispatcher, GenStage, NoReply, Producer


class Tracing(DemandDispatcher):
    def __init__(self, *, trace: Pid) -> None:
        super().__init__()
        self.trace = trace

    def send(self, pid: Any, tag: Any, events: list[Any]) -> None:
        beamlet.send(self.trace, ("sent", pid, list(events)))
        super().send(pid, tag, events)


class Finite(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        n, trace, size = arg
        return Producer([0, n], dispatcher=(Tracing, {"trace": trace}), buffer_size=size)

    def handle_demand(self, demand: int, state: list[int]) -> Any:
        i, n = state
        j = min(i + demand, n)
        return NoReply(list(range(i, j)), [j, n])


class Crashy(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        test, producer, crash_at, mode, max_demand = arg
        self.crash_at = crash_at
        sub = {"cancel": mode, "max_demand": max_demand, "min_demand": max_demand // 2}
        return Consumer(test, subscribe_to=[(producer, sub)])

    def handle_events(self, events: list[Any], from_: Any, test: Any) -> Any:
        if self.crash_at in events:
            done = events[: events.index(self.crash_at)]
            beamlet.send(test, ("handled", beamlet.self(), done))
            raise RuntimeError("crash")
        beamlet.send(test, ("handled", beamlet.self(), events))
        return NoReply([], test)


async def scenario(
    n: int, crashes: list[int | None], mode: str, max_demand: int, size: int
) -> None:
    me = beamlet.self()
    producer = await Finite.start_link((n, me, size))
    sent: dict[Pid, list[int]] = {}
    handled: dict[Pid, list[int]] = {}
    crashed: set[Pid] = set()
    monitors: dict[Any, Pid] = {}

    async def start(crash_at: int | None) -> None:
        pid = await Crashy.start((me, producer, crash_at, mode, max_demand))
        assert pid is not None
        monitors[beamlet.monitor(pid)] = pid

    for c in crashes:
        await start(c)

    def accounted() -> set[int]:
        out: set[int] = set()
        for evs in handled.values():
            out.update(evs)
        for pid in crashed:
            out.update(sent.get(pid, ()))
        return out

    async with asyncio.timeout(10):
        while True:
            if len(accounted()) + await GenStage.estimate_buffered_count(producer) >= n:
                extra = await beamlet.receive(timeout=0.02, default=None)
                if extra is None:
                    break
                msg = extra
            else:
                msg = await beamlet.receive()
            if type(msg) is Down:
                pid = monitors.pop(msg.ref)
                crashed.add(pid)
                await start(None)  # the "supervisor" restarts it, without the bug
            elif msg[0] == "sent":
                sent.setdefault(msg[1], []).extend(msg[2])
            elif msg[0] == "handled":
                handled.setdefault(msg[1], []).extend(msg[2])

    all_sent = [e for evs in sent.values() for e in evs]
    assert len(all_sent) == len(set(all_sent)), "an event was sent twice"
    all_handled = [e for evs in handled.values() for e in evs]
    assert len(all_handled) == len(set(all_handled)), "an event was handled twice"
    for pid, evs in handled.items():
        assert set(evs) <= set(sent.get(pid, ())), "handled without being sent"
        if pid not in crashed:
            assert evs == sent.get(pid, []), "a live consumer lost or reordered events"
    buffered = await GenStage.estimate_buffered_count(producer)
    assert set(all_sent) | set(range(n - buffered, n)) >= set(range(n)), "an event vanished"


async def run(*args: Any) -> None:
    node = Node()
    node.block_warning = None
    async with node:
        await node.run(scenario, *args)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    n=st.integers(1, 300),
    crashes=st.lists(st.one_of(st.none(), st.integers(0, 300)), min_size=1, max_size=4),
    mode=st.sampled_from(["permanent", "transient"]),
    max_demand=st.integers(2, 50),
    size=st.sampled_from([5, 10_000]),
)
def test_no_event_is_silently_lost(
    n: int, crashes: list[int | None], mode: str, max_demand: int, size: int
) -> None:
    asyncio.run(run(n, crashes, mode, max_demand, size))
