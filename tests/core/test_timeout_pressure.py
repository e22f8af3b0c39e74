"""Receive timeouts under run-queue pressure (issue 10 §1, docs/semantics.md §2.4, §6.3).

A deadline that comes due while its process sits in the run queue (woken by a message
that does not match) must still end the wait: before the fix, `Scheduler._deadlines_due`
cleared the timer without waking the process and the wait parked again with no timer,
forever. It hit `sleep()`, `receive(pattern, timeout=)` and the general-protocol
`GenServer.call`.

Every test runs on virtual time with its own clock, which a process advances to stand
for CPU time spent while others are queued (the reproducer's `time.sleep`), so the
interleaving is deterministic. The property test drives random run-queue pressure
(thousands of queued processes, busy steps that move the clock, unrelated and matching
messages, pauses) against a small model of what a timed wait must do: end; never time
out early; never miss a matching message sent before its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import beamlet
from beamlet import ANY, TIMEOUT, CallExit, Down, GenServer, Node
from beamlet._core.scheduler import BUDGET
from beamlet.testing.clock import VirtualClock, virtual_time_loop

TIMED_OUT = "timed out"
QUEUE_BEHIND = 2 * BUDGET + 10  # more than two batches: still queued when timers run


async def _noop() -> None:
    pass


def _run(main: Callable[[VirtualClock], Coroutine[Any, Any, Any]]) -> Any:
    """Run `main(clock)` as the first process of a fresh node on a fresh virtual clock.

    The outer bound is an asyncio timer, not a kernel one, so a kernel that loses its
    deadlines fails the test instead of hanging it."""
    clock = VirtualClock()
    loop = virtual_time_loop(clock)

    async def go() -> Any:
        node = Node()
        node.block_warning = None
        async with node:
            # a closure, not a spawn argument: arguments are copied (§2.2), the clock must not be
            return await asyncio.wait_for(node.run(lambda: main(clock)), 10_000)

    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


def _queue_behind_and_advance(clock: VirtualClock, pid: beamlet.Pid, seconds: float) -> None:
    """Fill the run queue, wake `pid` with an unrelated message (it goes to the back),
    and let `seconds` pass while it waits there: its deadline comes due while queued."""
    for _ in range(QUEUE_BEHIND):
        beamlet.spawn(_noop)
    beamlet.send(pid, "unrelated")
    clock.advance(seconds)


def test_sleep_ends_when_its_deadline_passes_in_the_run_queue() -> None:
    """The issue's reproducer: `sleep(0.2)` woken at 0.19 by an unrelated message and
    queued behind 6,000 processes while its deadline passes still ends."""

    async def sleeper() -> float:
        await beamlet.sleep(0.2)
        return 0.0

    async def main(clock: VirtualClock) -> Any:
        p, _ref = beamlet.spawn_monitor(sleeper)
        await beamlet.sleep(0.19)
        _queue_behind_and_advance(clock, p, 0.05)
        return await beamlet.receive(Down, timeout=3.0, default=None)

    down = _run(main)
    assert isinstance(down, Down)
    assert down.reason == beamlet.NORMAL


def test_receive_timeout_fires_when_its_deadline_passes_in_the_run_queue() -> None:
    """`receive(pattern, timeout=)`: times out (with the default) and leaves the
    unrelated message in the mailbox."""

    async def main(clock: VirtualClock) -> Any:
        me = beamlet.self()

        async def waiter() -> None:
            got = await beamlet.receive(("m", ANY), timeout=0.2, default=TIMED_OUT)
            rest = await beamlet.receive(timeout=0, default=None)
            beamlet.send(me, ("result", got, rest, beamlet.current_node().loop.time()))

        p = beamlet.spawn(waiter)
        await beamlet.sleep(0.19)
        _queue_behind_and_advance(clock, p, 0.05)
        return await beamlet.receive(("result", ANY, ANY, ANY), timeout=3.0, default=None)

    result = _run(main)
    assert result is not None, "the receive never timed out"
    _, got, rest, at = result
    assert got == TIMED_OUT
    assert rest == "unrelated"
    assert at >= 0.2


def test_match_that_arrived_before_the_deadline_wins_over_the_timeout() -> None:
    """The message that woke the process is scanned before the timeout is taken: a
    matching message sent before the deadline is received, even if the process runs
    after the deadline."""

    async def main(clock: VirtualClock) -> Any:
        me = beamlet.self()

        async def waiter() -> None:
            got = await beamlet.receive(("m", ANY), timeout=0.2, default=TIMED_OUT)
            beamlet.send(me, ("result", got))

        p = beamlet.spawn(waiter)
        await beamlet.sleep(0.19)
        for _ in range(QUEUE_BEHIND):
            beamlet.spawn(_noop)
        beamlet.send(p, "unrelated")
        beamlet.send(p, ("m", 1))
        clock.advance(0.05)
        return await beamlet.receive(("result", ANY), timeout=3.0, default=None)

    assert _run(main) == ("result", ("m", 1))


def test_general_protocol_call_times_out_when_its_deadline_passes_in_the_run_queue() -> None:
    """`GenServer.call` on the general protocol (a `(name, node)` reference takes it, as
    `Via` names and remote servers do) to a server that never answers fails with
    `timeout`."""

    async def silent() -> None:
        await beamlet.receive(("never", ANY))

    async def main(clock: VirtualClock) -> Any:
        me = beamlet.self()
        beamlet.register("silent", beamlet.spawn(silent))
        server = (beamlet.Atom("silent"), beamlet.node_name())

        async def caller() -> None:
            try:
                await GenServer.call(server, "hello", 1.0)
                beamlet.send(me, ("result", "answered"))
            except CallExit as e:
                beamlet.send(me, ("result", e.cause))

        p = beamlet.spawn(caller)
        await beamlet.sleep(0.99)
        _queue_behind_and_advance(clock, p, 0.05)
        return await beamlet.receive(("result", ANY), timeout=3.0, default=None)

    assert _run(main) == ("result", TIMEOUT)


# --- the property: timed waits under random run-queue pressure -------------------------

KINDS = ("sleep", "recv", "recv_any", "call")

worker_st = st.tuples(
    st.sampled_from(KINDS),
    st.integers(min_value=1, max_value=100).map(lambda n: n / 100),  # timeout, s
)
op_st = st.one_of(
    st.tuples(st.just("noops"), st.sampled_from([1, 50, BUDGET + 1, 2 * BUDGET + 1])),
    st.tuples(st.just("advance"), st.integers(1, 30).map(lambda n: n / 100)),
    st.tuples(st.just("busy"), st.integers(1, 30).map(lambda n: n / 100)),
    st.tuples(st.just("pause"), st.integers(0, 30).map(lambda n: n / 100)),
    st.tuples(st.just("unrelated"), st.integers(0, 5)),
    st.tuples(st.just("match"), st.integers(0, 5)),
    st.tuples(st.just("yield"), st.just(0)),
    # the shape that lost deadlines, in one step: wake worker i with an unrelated
    # message, queue it behind k processes, let dt pass
    st.tuples(
        st.just("burst"),
        st.tuples(
            st.integers(0, 5),
            st.sampled_from([0, 100, BUDGET + 1, 2 * BUDGET + 1]),
            st.integers(0, 50).map(lambda n: n / 100),
        ),
    ),
)


_FAR_BEHIND = 2 * BUDGET + 1


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    workers=st.lists(worker_st, min_size=1, max_size=6),
    ops=st.lists(op_st, max_size=25),
    parked=st.booleans(),
)
# The shape of issue 10 §1, for every kind of wait: each worker parked in its wait, woken
# by an unrelated message, queued far behind, its deadline passing while it waits there.
# Random runs rarely reach it (the workers must be parked first); without the fix in
# Scheduler._deadlines_due this example hangs every worker.
@example(
    workers=[(kind, 0.2) for kind in KINDS],
    ops=[("burst", (i, _FAR_BEHIND, 0.3)) for i in range(len(KINDS))],
    parked=True,
)
def test_timed_waits_under_random_run_queue_pressure(
    workers: list[tuple[str, float]], ops: list[tuple[str, Any]], parked: bool
) -> None:
    """Model: every timed wait ends; a timeout never comes before its deadline; a
    receive that a matching message reached before its deadline returns a message.
    `parked`: the workers reach their waits before the random operations start."""
    starts: dict[int, float] = {}
    results: dict[int, tuple[Any, float]] = {}
    sent: dict[int, list[tuple[str, float]]] = {i: [] for i in range(len(workers))}

    async def silent() -> None:
        await beamlet.receive(("never", ANY))

    async def main(clock: VirtualClock) -> None:
        loop = beamlet.current_node().loop
        beamlet.register("silent", beamlet.spawn(silent))
        server = (beamlet.Atom("silent"), beamlet.node_name())  # the general protocol

        def worker(i: int, kind: str, t: float) -> Callable[[], Coroutine[Any, Any, None]]:
            async def run() -> None:
                starts[i] = loop.time()
                got: Any
                if kind == "sleep":
                    await beamlet.sleep(t)
                    got = TIMED_OUT
                elif kind == "recv":
                    got = await beamlet.receive(("m", ANY), timeout=t, default=TIMED_OUT)
                elif kind == "recv_any":
                    got = await beamlet.receive(timeout=t, default=TIMED_OUT)
                else:
                    try:
                        await GenServer.call(server, "hello", t)
                        got = "answered"
                    except CallExit as e:
                        got = TIMED_OUT if e.cause == TIMEOUT else e.cause
                results[i] = (got, loop.time())

            return run

        refs = set()
        pids = []
        for i, (kind, t) in enumerate(workers):
            pid, ref = beamlet.spawn_monitor(worker(i, kind, t))
            pids.append(pid)
            refs.add(ref)

        async def busy(dt: float) -> None:
            clock.advance(dt)  # a step that holds the loop for dt (CPU work)

        if parked:
            await beamlet.sleep(0)  # to the back of the run queue: the workers run first

        for op, arg in ops:
            if op == "noops":
                for _ in range(arg):
                    beamlet.spawn(_noop)
            elif op == "advance":
                clock.advance(arg)
            elif op == "busy":
                beamlet.spawn(busy, arg)
            elif op == "pause":
                await beamlet.sleep(arg)
            elif op == "yield":
                await asyncio.sleep(0)  # sleep-ok: random load, not a wait
            elif op == "burst":
                i, k, dt = arg
                i %= len(workers)
                sent[i].append(("unrelated", loop.time()))
                beamlet.send(pids[i], "unrelated")
                for _ in range(k):
                    beamlet.spawn(_noop)
                clock.advance(dt)
            else:
                i = arg % len(workers)
                kind = "m" if op == "match" else "unrelated"
                sent[i].append((kind, loop.time()))
                beamlet.send(pids[i], ("m", 0) if op == "match" else "unrelated")
        while refs:
            d = await beamlet.receive(Down, timeout=1000.0, default=None)
            hung = sorted(set(range(len(workers))) - set(results))
            assert d is not None, f"timed waits never ended: {hung}"
            assert d.reason == beamlet.NORMAL, d.reason
            refs.discard(d.ref)

    _run(main)
    for i, (kind, t) in enumerate(workers):
        got, end = results[i]
        deadline = starts[i] + t
        if got == TIMED_OUT:
            assert end >= deadline, (i, kind, "timed out early", starts[i], end)
        early = [k for k, at in sent[i] if at < deadline]
        if kind == "recv":
            assert got in (TIMED_OUT, ("m", 0))
            if "m" in early:
                assert got == ("m", 0), (i, "missed a match sent before its deadline")
        elif kind == "recv_any":
            if early:
                assert got != TIMED_OUT, (i, "missed a message sent before its deadline")
        elif kind == "call":
            assert got == TIMED_OUT
