"""Large-scale behaviour: big mailboxes, many processes, exit-signal storms (slow).

Each test asserts behaviour (order, reaping, no leaks, no recursion), not speed; they
are sized to run in a few seconds and stay well under 20 s on a loaded 2-core machine.
"""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any

import pytest

import beamlet
from beamlet import ANY, Crash, Down, Node
from beamlet.testing import assert_receive

pytestmark = pytest.mark.slow

N = 100_000


def assert_node_tables_clean(node: Node, live: int) -> None:
    """Only `live` processes remain, and nothing else is left in the node's tables."""
    assert len(node.processes()) == live
    assert len(node._procs) == live
    assert not node._dying
    assert all(p.alive for p in node._exit_waiters)  # (the plugin waits for the test)
    assert not node._timers
    assert not node._aliases
    assert not node.registered()


async def test_mailbox_of_100k_messages_received_in_order(node: Node) -> None:
    me = beamlet.self()

    async def producer(n: int) -> None:
        for i in range(n):
            beamlet.send(me, ("m", i))

    beamlet.spawn(producer, N // 2)
    for i in range(N // 2):
        beamlet.send(me, ("self", i))
    # the self-sends all precede the producer's (it has not run yet); each sender's
    # messages are in its own order (§0.3)
    for i in range(N // 2):
        assert await beamlet.receive() == ("self", i)
    for i in range(N // 2):
        assert await beamlet.receive() == ("m", i)
    assert await beamlet.receive(timeout=0, default=None) is None
    info = beamlet.process_info(me)
    assert info is not None and info.message_queue_len == 0


async def test_100k_message_mailbox_in_receiving_process() -> None:
    """A process that is sent 100k messages while busy gets them all, in order."""
    me = beamlet.self()

    async def counter() -> None:
        await beamlet.receive("start")
        expected = 0
        while True:
            m = await beamlet.receive()
            if m == "end":
                break
            assert m == expected, (m, expected)
            expected += 1
        beamlet.send(me, ("count", expected))

    pid = beamlet.spawn(counter)
    for i in range(N):
        beamlet.send(pid, i)
    info = beamlet.process_info(pid)
    assert info is not None and info.message_queue_len == N
    beamlet.send(pid, "end")
    beamlet.send(pid, "start")  # selectively received first, behind 100,001 others
    assert await assert_receive(("count", ANY), timeout=15) == ("count", N)


async def test_100k_processes_spawned_and_all_reaped(node: Node) -> None:
    me = beamlet.self()
    baseline = len(node._procs)
    assert baseline == 1  # the test process

    async def child(i: int) -> None:
        if i % 2:
            await beamlet.receive()  # half of them wait for a message first
        beamlet.send(me, 1)

    samples: list[weakref.ref[Any]] = []
    waiting = []
    for i in range(N):
        pid = beamlet.spawn(child, i)
        if i % 2:
            waiting.append(pid)
        if i % 997 == 0:
            samples.append(weakref.ref(pid._proc))
    assert len(node.processes()) == N + 1
    for pid in waiting:
        beamlet.send(pid, "go")
    del pid, waiting
    for _ in range(N):
        await beamlet.receive()
    # each child sent its message and returned in the same step: all are reaped now
    assert_node_tables_clean(node, live=baseline)
    assert node.processes() == [beamlet.self()]
    gc.collect()
    assert all(ref() is None for ref in samples), "dead processes are still referenced"


async def test_100k_processes_killed_at_once_are_reaped(node: Node) -> None:
    baseline = len(node._procs)

    async def idle() -> None:
        await beamlet.receive()

    pids = [beamlet.spawn(idle) for _ in range(N)]
    last, ref = pids[-1], beamlet.monitor(pids[-1])
    for pid in pids:
        beamlet.exit(pid, beamlet.KILL)
    assert not any(beamlet.is_alive(p) for p in pids)
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)
    assert down.pid == last
    assert_node_tables_clean(node, live=baseline)


async def test_exit_storm_through_a_chain_of_10k_links(node: Node) -> None:
    me = beamlet.self()
    length = 10_000
    assert length > sys.getrecursionlimit()  # a recursive propagation would overflow

    async def link_chain(n: int) -> None:
        if n > 0:
            beamlet.spawn_link(link_chain, n - 1)
        else:
            beamlet.send(me, ("tail", beamlet.self()))
        beamlet.send(me, ("member", beamlet.self()))
        if await beamlet.receive() == "crash":
            raise RuntimeError("the one crash")

    head, head_ref = beamlet.spawn_monitor(link_chain, length - 1)
    _, tail = await assert_receive(("tail", ANY), timeout=10)
    members = [(await assert_receive(("member", ANY)))[1] for _ in range(length)]
    assert len(set(members)) == length and head in members
    assert len(node._procs) == length + 1
    tail_ref = beamlet.monitor(tail)
    beamlet.send(tail, "crash")
    tail_down = await assert_receive(lambda m: type(m) is Down and m.ref == tail_ref)
    head_down = await assert_receive(lambda m: type(m) is Down and m.ref == head_ref)
    assert isinstance(tail_down.reason, Crash)
    assert isinstance(tail_down.reason.exception, RuntimeError)
    # the crash travelled the whole chain: the head died with the same reason
    assert isinstance(head_down.reason, Crash)
    assert isinstance(head_down.reason.exception, RuntimeError)
    assert str(head_down.reason.exception) == "the one crash"
    assert not any(beamlet.is_alive(p) for p in members)
    assert_node_tables_clean(node, live=1)


async def test_exit_storm_fan_out_to_trapping_supervisor(node: Node) -> None:
    """10,000 linked workers die at once; a trapping parent gets every EXIT."""
    beamlet.process_flag(trap_exit=True)
    count = 10_000

    async def worker() -> None:
        await beamlet.receive()

    workers = [beamlet.spawn_link(worker) for _ in range(count)]
    for w in workers:
        beamlet.exit(w, "shutdown-all")
    exits = set()
    for _ in range(count):
        msg = await assert_receive(beamlet.Exit)
        assert msg.reason == "shutdown-all"
        exits.add(msg.pid)
    assert exits == set(workers)
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.links == ()
    assert_node_tables_clean(node, live=1)


async def test_selective_receive_of_one_tagged_message_behind_100k() -> None:
    me = beamlet.self()
    for i in range(N):
        beamlet.send(me, ("noise", i))
    ref = beamlet.make_ref()
    beamlet.send(me, ("reply", ref, "found"))
    assert await beamlet.receive(("reply", ref, ANY), timeout=5) == ("reply", ref, "found")
    # nothing was lost or reordered by the scan
    for i in (0, 1, 2):
        assert await beamlet.receive() == ("noise", i)
    info = beamlet.process_info(me)
    assert info is not None and info.message_queue_len == N - 3


async def test_reply_wait_behind_100k_only_scans_new_messages() -> None:
    """With `since=ref` (the receive marker, §2.4), waiting for a reply tagged with a
    fresh ref never looks at the 100,000 older messages, however many calls are made."""
    me = beamlet.self()
    for i in range(N):
        beamlet.send(me, ("noise", i))

    async def server() -> None:
        while True:
            caller, tag, n = await beamlet.receive()
            beamlet.send(caller, ("noise", "newer"))  # one unrelated message first
            beamlet.send(caller, (tag, n * 2))

    srv = beamlet.spawn(server)
    shown = 0

    for n in range(1000):
        ref = beamlet.make_ref()
        beamlet.send(srv, (me, ref, n))

        def is_reply(m: Any, ref: Any = ref) -> bool:
            nonlocal shown
            shown += 1
            return type(m) is tuple and len(m) == 2 and m[0] == ref

        assert await beamlet.receive(is_reply, since=ref, timeout=5) == (ref, 2 * n)
    # each wait looked only at the messages newer than its ref (the call's own two),
    # never at the 100k, nor at the leftovers of earlier calls, already queued
    assert shown <= 2 * 1000
    assert await beamlet.receive() == ("noise", 0)
