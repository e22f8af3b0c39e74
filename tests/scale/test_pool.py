"""NodePool: map/stream over worker nodes; failures are reported or retried, never
lost (a worker node SIGKILLed mid-map), back-pressure on the input, timeouts."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from scale_nodes import DistNode, os_process_gone

import beamlet
from beamlet import Atom, Pid
from beamlet.distribution import rpc
from beamlet.pool import ItemFailed, NodePool

STARTED, RELEASE = Atom("started"), Atom("release")
PY_VALUE_ERROR = (Atom("python"), "ValueError", "three")  # str: between beamlet nodes


async def test_map_stream_errors_and_stop(node: DistNode) -> None:
    pool = await NodePool.start_link(2)
    nodes = await pool.nodes()
    assert len(nodes) == 2 and len(set(nodes)) == 2
    assert await pool.map("scale_work:square", range(50)) == [x * x for x in range(50)]
    got = await pool.map("scale_work:square", range(500), chunksize=64, ordered=False)
    assert sorted(got) == [x * x for x in range(500)]
    # Both nodes did some of the work.
    where = await pool.map("scale_work:where", range(40), chunksize=2)
    assert len({pid for _, pid in where}) == 2
    # Per item: an exception is that item's exit; the others go on.
    results = [r async for r in pool.stream("scale_work:fail_on", range(6), chunksize=4)]
    assert results == [
        ("ok", 0),
        ("ok", 1),
        ("ok", 2),
        ("exit", PY_VALUE_ERROR),
        ("ok", 4),
        ("ok", 5),
    ]
    with pytest.raises(ItemFailed) as e:
        await pool.map("scale_work:fail_on", range(6))
    assert (e.value.item, e.value.reason) == (3, PY_VALUE_ERROR)
    # async functions, unordered; Task.async_stream's shape.
    got = [r async for r in pool.async_stream(range(5), "scale_work:async_double", ordered=False)]
    assert sorted(got) == [("ok", 2 * x) for x in range(5)]
    # A result with no term form is that item's error, not a crash of the worker.
    [(kind, reason)] = [r async for r in pool.stream("builtins:set", [[1]])]
    assert kind == "exit" and reason[0] == Atom("unencodable")
    # Bad arguments are refused before anything runs.
    for bad in [{"chunksize": 0}, {"max_in_flight": 0}, {"retries": -1}, {"timeout": 0}]:
        with pytest.raises((beamlet.BadArgument, beamlet.InvalidTimeout)):
            pool.stream("scale_work:square", [1], **bad)
    with pytest.raises(beamlet.BadArgument):
        pool.stream("no path", [1])
    os_pids = [await rpc.call(n, "os", "getpid", []) for n in nodes]
    await pool.stop()
    for pid in os_pids:
        assert await os_process_gone(pid)


async def _consume(pool: NodePool, items: Any, owner: Pid, options: dict[str, Any]) -> None:
    if isinstance(items, beamlet.Shared):
        items = items.value
    async with pool.stream("scale_work:hold", items, **options) as s:
        results = [r async for r in s]
    beamlet.send(owner, (Atom("done"), results, s.retried))


async def _drive(killed: list[int], victim: int | None = None) -> tuple[list[Any], int, set[int]]:
    """Release every held item (except on a killed node) until the consumer is done;
    kill the OS process `victim` once it has started an item."""
    seen: set[int] = set()
    while True:
        msg = await beamlet.receive((Atom("done"), beamlet.ANY, beamlet.ANY),
                                    (STARTED, beamlet.ANY, beamlet.ANY, beamlet.ANY),
                                    timeout=30)  # fmt: skip
        if msg[0] == Atom("done"):
            return msg[1], msg[2], seen
        _, x, ex, os_pid = msg
        seen.add(x)
        if victim is not None and os_pid == victim and not killed:
            os.kill(os_pid, signal.SIGKILL)
            killed.append(os_pid)
        elif os_pid not in killed:
            beamlet.send(ex, RELEASE)


async def test_worker_killed_mid_map_is_replaced_and_items_retried(node: DistNode) -> None:
    pool = await NodePool.start_link(2)
    before = await pool.nodes()
    victim = await rpc.call(before[0], "os", "getpid", [])
    me = beamlet.self()
    items = [(me, i) for i in range(12)]
    beamlet.spawn(_consume, pool, items, me, {"max_in_flight": 2})
    killed: list[int] = []
    results, retried, _ = await _drive(killed, victim)
    assert killed == [victim]
    # Every item has exactly one result, in order, and the dead node's ones ran again.
    assert results == [("ok", 10 * i) for i in range(12)]
    assert retried >= 1
    await pool.wait_ready(timeout=20)  # the worker was restarted, on a fresh node
    after = await pool.nodes()
    assert len(after) == 2 and before[0] not in after and before[1] in after
    assert await os_process_gone(victim)
    await pool.stop()


async def test_worker_killed_with_no_retries_reports_the_items(node: DistNode) -> None:
    pool = await NodePool.start_link(1)
    [worker] = await pool.nodes()
    victim = await rpc.call(worker, "os", "getpid", [])
    me = beamlet.self()
    beamlet.spawn(
        _consume, pool, [(me, i) for i in range(4)], me, {"retries": 0, "max_in_flight": 2}
    )
    results, retried, _ = await _drive([], victim)
    assert retried == 0
    # Items 0 and 1 were in flight on the killed node: reported, not lost; 2 and 3 ran
    # on its replacement.
    assert results[:2] == [("exit", beamlet.NOCONNECTION)] * 2
    assert results[2:] == [("ok", 20), ("ok", 30)]
    await pool.stop()


async def test_back_pressure_on_the_input(node: DistNode) -> None:
    pool = await NodePool.start_link(1)
    me = beamlet.self()
    pulled: list[int] = []

    def items() -> Iterator[tuple[Pid, int]]:
        for i in range(1000):
            pulled.append(i)
            yield (me, i)

    consumer = beamlet.spawn(
        _consume, pool, beamlet.Shared(items()), me, {"max_in_flight": 3, "ordered": False}
    )
    held = []
    for _ in range(3):  # the executor runs one chunk at a time: let two go
        msg = await beamlet.receive((STARTED, beamlet.ANY, beamlet.ANY, beamlet.ANY), timeout=20)
        held.append(msg)
        if len(held) < 3:
            beamlet.send(msg[2], RELEASE)
    # One worker, 3 chunks of 1 in flight, 2 finished: the input was read 5 times, not 1000.
    assert len(pulled) <= 6
    beamlet.exit(consumer, beamlet.KILL)
    await pool.stop()


async def test_timeout_kills_the_node_and_reports_the_item(node: DistNode) -> None:
    pool = await NodePool.start_link(1)
    [worker] = await pool.nodes()
    results = [r async for r in pool.stream("scale_work:slow", [1, 5000, 2], timeout=0.5)]
    assert results == [("ok", 1), ("exit", beamlet.TIMEOUT), ("ok", 2)]
    await pool.wait_ready(timeout=20)
    assert await pool.nodes() != [worker]
    with pytest.raises(ItemFailed):
        await pool.map("scale_work:slow", [5000], timeout=0.3)
    await pool.stop()


async def test_pool_under_a_supervisor_by_name(node: DistNode) -> None:
    sup = await beamlet.Supervisor.start_link([NodePool.child_spec(1, name="workers")])
    pool = NodePool("workers")
    await pool.wait_ready()
    assert await pool.map("scale_work:square", [3]) == [9]
    await beamlet.Supervisor.stop(sup)
    assert beamlet.whereis("workers") is None
