"""Python-to-Python clusters over the real distribution protocol (built-in EPMD on a
private port per test): connections, messages, links and monitors across nodes with
`noconnection` on disconnect, remote spawn, rpc, simultaneous connect, `beamlet.run`
with a node name, and the `beamlet node` command.

Each `async def` test runs as a process of the distributed `node` fixture (dist_nodes);
more nodes run in the same loop (`beamlet_node`). Nothing sleeps to wait for an event:
tests wait on messages, `Down`/`Exit`/`NodeDown` and process exits, with timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from dist_nodes import COOKIE, LOOPBACK, DistNode, beamlet_node, free_port, on, unique, wire

import beamlet
from beamlet import (
    ANY,
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    Atom,
    Down,
    Exit,
    Pid,
    ProcessExit,
)
from beamlet.distribution import (
    NodeDown,
    NotDistributed,
    RpcError,
    SpawnError,
    connect,
    disconnect,
    monitor_node,
    nodes,
    register_function,
    rpc,
)
from beamlet.distribution import api as dist
from beamlet.distribution.etf import EncodeError, ImproperList

TIMEOUT = 5.0
# Tags of messages between nodes are atoms: a str would arrive as bytes.
RELAYED, SEEN, ARMED, WATCHED = Atom("relayed"), Atom("seen"), Atom("armed"), Atom("watched")
B_SAW, B_SAW_NODEDOWN, B_READY = Atom("b_saw"), Atom("b_saw_nodedown"), Atom("b_ready")
NM_READY, SUBSCRIBED, STARTED, NOTED = (
    Atom("nm_ready"),
    Atom("subscribed"),
    Atom("started"),
    Atom("noted"),
)


async def echo() -> None:
    """Registered as `echo` by the caller: answers `(from, msg)` with `(echo, msg)`."""
    while True:
        frm, msg = await beamlet.receive()
        beamlet.send(frm, (Atom("echo"), msg))


async def waiter(reason_box: list[Any] | None = None) -> None:
    """Exits with whatever reason it is sent (`("exit", R)`), or crashes on `"crash"`."""
    msg = await beamlet.receive()
    if msg in ("crash", b"crash"):
        raise ValueError("boom")
    _, reason = msg
    if reason == NORMAL:
        return
    raise ProcessExit(reason)


def down_for(ref: Any) -> Any:
    return lambda m: type(m) is Down and m.ref == ref


def exit_from(pid: Pid) -> Any:
    return lambda m: type(m) is Exit and m.pid == pid


# --------------------------------------------------------------------------- connections


async def test_connect_nodes_and_disconnect(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        assert nodes() == []
        assert await connect(b.name) is True
        assert await connect(b.name) is True  # idempotent
        assert await connect(node.name) is True  # ourselves
        assert nodes() == [b.name]
        assert b.d.nodes() == [node.name]

        async def watch_a() -> Any:
            monitor_node(node.name)
            beamlet.send(("probe", node.name), "watching")
            return await beamlet.receive(NodeDown, timeout=TIMEOUT)

        beamlet.register("probe")
        watcher = wire(b.spawn(watch_a))
        # A str stays a str between beamlet nodes (etf.LOSSLESS, the default).
        assert await beamlet.receive(timeout=TIMEOUT) == "watching"
        assert disconnect(b.name) is True
        assert disconnect(b.name) is False
        assert nodes() == []
        assert await b.wait(watcher, timeout=TIMEOUT) == NORMAL  # it got NodeDown
        assert b.d.nodes() == []


async def test_unreachable_node(node: DistNode) -> None:
    nobody = f"{unique('nobody')}@{LOOPBACK}"
    assert await connect(nobody) is False
    monitor_node(nobody)
    assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(Atom(nobody))
    # Links and monitors towards it fire with noconnection; sends are dropped.
    ghost = Pid(Atom(nobody), 1, 0, 1)
    beamlet.process_flag(trap_exit=True)
    beamlet.link(ghost)
    ref = beamlet.monitor(ghost)
    beamlet.send(ghost, "lost")
    assert await beamlet.receive(exit_from(ghost), timeout=TIMEOUT) == Exit(ghost, NOCONNECTION)
    down = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
    assert down.reason == NOCONNECTION
    with pytest.raises(SpawnError) as e:
        await dist.spawn(nobody, "m", "f", [])
    assert e.value.reason == NOCONNECTION
    with pytest.raises(RpcError) as r:
        await rpc.call(nobody, "m", "f", [])
    assert (r.value.kind, r.value.reason) == ("erpc", NOCONNECTION)
    assert await connect("not-a-node-name") is False


async def test_messages_between_three_nodes(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b, beamlet_node(epmd_port) as c:
        b.register("echo", b.spawn(echo))
        c.register("echo", c.spawn(echo))
        me = wire(beamlet.self())
        terms = [
            Atom("ok"),
            2**100,
            -1.5,
            b"\x00\xff",
            "text",
            [1, [2, (3,)]],
            ImproperList((1,), Atom("t")),
            {"k": [1], (1, 2): {Atom("x"): None}},
            me,
            None,
            Atom("undefined"),
            "",
            b"",
        ]
        # Between beamlet nodes every term comes back as it left (etf.LOSSLESS, the
        # default), from the very first message on a new connection.
        for peer in (b, c):  # order holds per pair of processes
            for t in terms:
                beamlet.send((Atom("echo"), peer.name), (me, t))
            got = [(await beamlet.receive(timeout=TIMEOUT))[1] for _ in terms]
            assert got == terms
            assert [type(x) for x in got] == [type(t) for t in terms]
            assert type(next(iter(got[7]))) is str and got[7][(1, 2)][Atom("x")] is None

        # b talks to c directly: a full mesh is not required, connections are per pair.
        async def relay() -> None:
            beamlet.send((Atom("echo"), c.name), (beamlet.self(), "via b"))
            _, msg = await beamlet.receive(timeout=TIMEOUT)
            beamlet.send(me, (RELAYED, msg))

        b.spawn(relay)
        assert await beamlet.receive((RELAYED, ANY), timeout=TIMEOUT) == (RELAYED, "via b")
        assert sorted(nodes()) == sorted([b.name, c.name])
        assert sorted(b.d.nodes()) == sorted([node.name, c.name])
        assert sorted(c.d.nodes()) == sorted([node.name, b.name])


async def test_unencodable_message_raises_locally(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        b.register("echo", b.spawn(echo))
        with pytest.raises(EncodeError):
            beamlet.send((Atom("echo"), b.name), (beamlet.self(), {1, 2}))
        with pytest.raises(EncodeError):
            beamlet.send((Atom("echo"), b.name), (beamlet.self(), float("nan")))
        beamlet.send((Atom("echo"), b.name), (beamlet.self(), "still fine"))
        assert await beamlet.receive(timeout=TIMEOUT) == (Atom("echo"), "still fine")


# --------------------------------------------------------------------------- links, monitors

REASONS: list[tuple[Any, Any]] = [
    (NORMAL, NORMAL),
    (SHUTDOWN, SHUTDOWN),
    ((SHUTDOWN, Atom("x")), (SHUTDOWN, Atom("x"))),
    ((Atom("custom"), [1, 2]), (Atom("custom"), [1, 2])),
]


async def test_links_and_monitors_across_nodes_every_reason(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    async with beamlet_node(epmd_port) as b:
        # Remote processes die; we watch (link + monitor) from here.
        for sent, seen in [*REASONS, ("kill", KILLED), ("crash", None)]:
            pid = wire(b.spawn(waiter))
            beamlet.link(pid)
            ref = beamlet.monitor(pid)
            await connect(b.name)
            # Make sure the link and monitor reached b before the target dies: a round
            # trip through the same connection orders them.
            assert await rpc.call(b.name, "erlang", "is_process_alive", [pid]) is True
            if sent == "kill":
                beamlet.exit(pid, KILL)
            elif sent == "crash":
                beamlet.send(pid, "crash")
            else:
                beamlet.send(pid, ("exit", sent))
            ex = await beamlet.receive(exit_from(pid), timeout=TIMEOUT)
            dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
            if seen is None:  # a Python crash crosses the wire as {{python, T, M}, Stack}
                (err, stack) = ex.reason
                assert err == (Atom("python"), "ValueError", "boom")
                assert isinstance(stack, list) and stack
                assert dn.reason == ex.reason
            else:
                assert ex.reason == seen and dn.reason == seen, (sent, ex, dn)

        # Our processes die; processes of b watch them.
        me = wire(beamlet.self())

        async def watch(target: Pid) -> None:
            beamlet.process_flag(trap_exit=True)
            beamlet.link(target)
            ref = beamlet.monitor(target)
            beamlet.send(target, WATCHED)  # after the link and monitor, same connection
            ex = await beamlet.receive(exit_from(target), timeout=TIMEOUT)
            dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
            beamlet.send(me, (SEEN, ex.reason, dn.reason))

        async def victim() -> None:
            await beamlet.receive(WATCHED, timeout=TIMEOUT)
            beamlet.send(me, (ARMED, beamlet.self()))
            await waiter()

        for sent, seen in [*REASONS, ("kill", KILLED), ("crash", None)]:
            pid = beamlet.spawn(victim)
            b.spawn(watch, wire(pid))
            await beamlet.receive((ARMED, pid), timeout=TIMEOUT)
            if sent == "kill":
                beamlet.exit(pid, KILL)
            else:
                beamlet.send(pid, "crash" if sent == "crash" else ("exit", sent))
            _, r1, r2 = await beamlet.receive((SEEN, ANY, ANY), timeout=TIMEOUT)
            if seen is None:
                assert r1[0] == (Atom("python"), "ValueError", "boom") and r2 == r1
            else:
                assert (r1, r2) == (seen, seen), sent


async def test_monitor_by_name_and_noproc(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        ref = beamlet.monitor((Atom("nobody"), b.name))
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert (dn.pid, dn.reason) == ((Atom("nobody"), b.name), NOPROC)

        pid = wire(b.spawn(waiter))
        b.register("named", pid)
        ref = beamlet.monitor((Atom("named"), b.name))
        await rpc.call(b.name, "erlang", "node", [])  # the monitor is set up on b
        beamlet.send((Atom("named"), b.name), ("exit", Atom("bye")))
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert (dn.pid, dn.reason) == ((Atom("named"), b.name), Atom("bye"))

        # A link to a dead remote pid: noproc (trapped).
        beamlet.process_flag(trap_exit=True)
        beamlet.link(pid)
        assert await beamlet.receive(exit_from(pid), timeout=TIMEOUT) == Exit(pid, NOPROC)

        # demonitor: no Down after it, even when the target dies.
        pid2 = wire(b.spawn(waiter))
        ref2 = beamlet.monitor(pid2)
        assert beamlet.demonitor(ref2) is True
        ref3 = beamlet.monitor(pid2)
        beamlet.send(pid2, ("exit", Atom("x")))
        assert (await beamlet.receive(down_for(ref3), timeout=TIMEOUT)).reason == Atom("x")
        assert await beamlet.receive(down_for(ref2), timeout=0, default=None) is None


async def test_unlink_across_nodes(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    async with beamlet_node(epmd_port) as b:
        pid = wire(b.spawn(waiter))
        beamlet.link(pid)
        await rpc.call(b.name, "erlang", "node", [])
        assert b.process_info(pid).links == (beamlet.self(),)
        beamlet.unlink(pid)
        await rpc.call(b.name, "erlang", "node", [])  # the UNLINK_ID has been handled
        assert b.process_info(pid).links == ()
        ref = beamlet.monitor(pid)
        beamlet.send(pid, ("exit", Atom("x")))
        await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert await beamlet.receive(exit_from(pid), timeout=0, default=None) is None


async def test_disconnect_gives_noconnection_both_ways(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    me = wire(beamlet.self())
    async with beamlet_node(epmd_port) as b, beamlet_node(epmd_port) as c:
        on_b = wire(b.spawn(waiter))
        on_c = wire(c.spawn(waiter))
        beamlet.link(on_b)
        rb = beamlet.monitor(on_b)
        beamlet.link(on_c)
        rc = beamlet.monitor(on_c)

        async def b_watches_us() -> None:
            beamlet.process_flag(trap_exit=True)
            beamlet.link(me)
            ref = beamlet.monitor(me)
            beamlet.send(me, B_READY)
            ex = await beamlet.receive(exit_from(me), timeout=TIMEOUT)
            dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
            nd = await beamlet.receive(NodeDown, timeout=0, default=None)
            beamlet.send(me, (B_SAW, ex.reason, dn.reason, nd))

        async def b_node_watcher() -> None:
            monitor_node(node.name)
            beamlet.send(me, NM_READY)
            nd = await beamlet.receive(NodeDown, timeout=TIMEOUT)
            # The connection is gone: this reconnects, and the message arrives.
            beamlet.send(me, (B_SAW_NODEDOWN, nd.node))

        b.spawn(b_watches_us)
        b.spawn(b_node_watcher)
        await beamlet.receive(B_READY, timeout=TIMEOUT)
        await beamlet.receive(NM_READY, timeout=TIMEOUT)
        monitor_node(b.name)
        monitor_node(b.name)  # two subscriptions, two NodeDowns
        await rpc.call(c.name, "erlang", "node", [])  # link/monitor to c are set up
        assert disconnect(b.name)

        assert await beamlet.receive(exit_from(on_b), timeout=TIMEOUT) == Exit(on_b, NOCONNECTION)
        assert (await beamlet.receive(down_for(rb), timeout=TIMEOUT)).reason == NOCONNECTION
        assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(b.name)
        assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(b.name)
        assert await beamlet.receive((B_SAW, ANY, ANY, ANY), timeout=TIMEOUT) == (
            B_SAW,
            NOCONNECTION,
            NOCONNECTION,
            None,  # None crossed the wire, and stayed None (etf.LOSSLESS)
        )
        assert await beamlet.receive((B_SAW_NODEDOWN, ANY), timeout=TIMEOUT) == (
            B_SAW_NODEDOWN,
            node.name,
        )
        # The links and the monitor to c are untouched.
        beamlet.send(on_c, ("exit", Atom("done")))
        assert await beamlet.receive(exit_from(on_c), timeout=TIMEOUT) == Exit(on_c, Atom("done"))
        assert (await beamlet.receive(down_for(rc), timeout=TIMEOUT)).reason == Atom("done")
        assert await beamlet.receive(NodeDown, timeout=0, default=None) is None


async def test_node_stop_gives_noconnection(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    b = DistNode(f"{unique('b')}@{LOOPBACK}", epmd_port=epmd_port)
    await b.start()
    try:
        pid = wire(b.spawn(waiter))
        beamlet.link(pid)
        ref = beamlet.monitor(pid)
        await rpc.call(b.name, "erlang", "node", [])
    finally:
        await b.stop()
    assert await beamlet.receive(exit_from(pid), timeout=TIMEOUT) == Exit(pid, NOCONNECTION)
    assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == NOCONNECTION


async def test_simultaneous_connect_leaves_one_connection(node: DistNode, epmd_port: int) -> None:
    # Both names orders: the greater name's attempt wins on both sides (§2.2).
    for alive in (unique("a"), unique("zz")):
        async with beamlet_node(epmd_port, alive=alive) as b:
            for _ in range(5):
                mine = asyncio.ensure_future(node.d.connect(b.name))
                theirs = asyncio.ensure_future(b.d.connect(node.name))
                assert await asyncio.wait_for(asyncio.gather(mine, theirs), TIMEOUT) == [
                    True,
                    True,
                ]
                ours, peer = node.d.conns[b.name], b.d.conns[node.name]
                assert ours.transport is not None and peer.transport is not None
                assert ours.transport.get_extra_info("sockname") == peer.transport.get_extra_info(
                    "peername"
                )
                assert await rpc.call(b.name, "erlang", "node", []) == b.name
                # Disconnect, and wait until b has noticed too.
                watcher = await node_down_watcher(b, node.name)
                disconnect(b.name)
                assert await b.wait(watcher, timeout=TIMEOUT) == NORMAL
                assert b.d.nodes() == []


async def node_down_watcher(on_node: DistNode, peer: Atom) -> Pid:
    """A process of `on_node` that exits normally on `NodeDown(peer)`; subscribed when
    this returns (the connection must be up, or monitor_node would connect)."""
    me = wire(beamlet.self())

    async def watch() -> None:
        monitor_node(peer)
        beamlet.send(me, (SUBSCRIBED, beamlet.self()))
        await beamlet.receive(NodeDown, timeout=TIMEOUT)

    pid = on_node.spawn(watch)
    await beamlet.receive((SUBSCRIBED, pid), timeout=TIMEOUT)
    return pid


# --------------------------------------------------------------------------- spawn, rpc


async def test_remote_spawn_of_registered_functions(node: DistNode, epmd_port: int) -> None:
    me = wire(beamlet.self())
    beamlet.register("home")
    async with beamlet_node(epmd_port) as b:

        async def worker(tag: str, mode: Atom) -> None:
            beamlet.send((Atom("home"), node.name), (tag, beamlet.self(), beamlet.node_name()))
            if mode == Atom("wait"):
                await waiter()
            elif mode == Atom("crash"):
                raise RuntimeError("worker crashed")

        b.d.register_function("jobs", "worker", worker)
        b.d.register_function("jobs", "sync", lambda tag: beamlet.send(me, (tag, "sync ran")))

        pid = await dist.spawn(b.name, "jobs", "worker", ["plain", Atom("return")])
        assert await beamlet.receive(("plain", ANY, ANY), timeout=TIMEOUT) == (
            "plain",
            pid,
            b.name,
        )
        await dist.spawn(b.name, "jobs", "sync", ["s"])
        assert await beamlet.receive(("s", ANY), timeout=TIMEOUT) == ("s", "sync ran")

        pid, ref = await dist.spawn_monitor(b.name, "jobs", "worker", ["mon", Atom("crash")])
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert dn.pid == pid
        assert dn.reason[0] == (Atom("python"), "RuntimeError", "worker crashed")

        beamlet.process_flag(trap_exit=True)
        pid = await dist.spawn_link(b.name, "jobs", "worker", ["lnk", Atom("wait")])
        await beamlet.receive(("lnk", ANY, ANY), timeout=TIMEOUT)
        beamlet.send(pid, ("exit", Atom("linked bye")))
        assert await beamlet.receive(exit_from(pid), timeout=TIMEOUT) == Exit(
            pid, Atom("linked bye")
        )

        # An unknown function: the process starts and exits with undef.
        pid, ref = await dist.spawn_monitor(b.name, "jobs", "nope", [1])
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert dn.reason == (Atom("undef"), [(Atom("jobs"), Atom("nope"), [1], [])])

        # On our own node, the same call spawns locally.
        node.d.register_function("jobs", "worker", worker)
        pid, ref = await dist.spawn_monitor(node.name, "jobs", "worker", ["here", Atom("return")])
        assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == NORMAL


async def test_rpc_between_beamlet_nodes(node: DistNode, epmd_port: int) -> None:
    me = wire(beamlet.self())
    async with beamlet_node(epmd_port) as b:

        async def slow_double(x: int) -> int:
            await beamlet.sleep(0)
            return 2 * x

        async def forever() -> None:
            beamlet.send(me, (STARTED, beamlet.self()))
            await beamlet.receive(lambda m: False)

        def fail(kind: str) -> None:
            if kind == "exit":
                beamlet.exit((Atom("gave_up"), 1))
            raise KeyError("missing")

        b.d.register_function("m", "add", lambda x, y: x + y)
        b.d.register_function("m", "double", slow_double)
        b.d.register_function("m", "forever", forever)
        b.d.register_function("m", "fail", fail)
        b.d.register_function("m", "self", lambda: {1, 2})
        b.d.register_function("m", "note", lambda x: beamlet.send(me, (NOTED, x)))

        assert await rpc.call(b.name, "m", "add", [1, 2]) == 3
        assert await rpc.call(b.name, Atom("m"), Atom("double"), (21,)) == 42
        assert await rpc.call(b.name, "erlang", "node", []) == b.name
        assert await rpc.call(b.name, "erlang", "whereis", [Atom("rex")]) == b.whereis("rex")

        with pytest.raises(RpcError) as e:
            await rpc.call(b.name, "m", "fail", ["error"])
        assert e.value.kind == "error"
        assert e.value.reason == (Atom("python"), "KeyError", "'missing'")
        assert isinstance(e.value.stacktrace, list)
        with pytest.raises(RpcError) as e:
            await rpc.call(b.name, "m", "fail", ["exit"])
        assert (e.value.kind, e.value.reason) == ("exit", (Atom("gave_up"), 1))
        with pytest.raises(RpcError) as e:
            await rpc.call(b.name, "m", "nope", [])
        assert (e.value.kind, e.value.reason) == ("error", Atom("undef"))
        with pytest.raises(RpcError) as e:
            await rpc.call(b.name, "m", "self", [])  # a set has no Erlang form
        assert e.value.kind == "error" and e.value.reason[1] == "EncodeError"

        with pytest.raises(RpcError) as e:
            await rpc.call(b.name, "m", "forever", [], timeout=0.2)
        assert (e.value.kind, e.value.reason) == ("erpc", Atom("timeout"))
        _, runner = await beamlet.receive((STARTED, ANY), timeout=TIMEOUT)
        assert b.is_alive(runner)  # erpc leaves it running after a timeout

        # The connection is lost during the call.
        call = asyncio.ensure_future(_call_in_process(node, b.name, "m", "forever"))
        _, runner = await beamlet.receive((STARTED, ANY), timeout=TIMEOUT)
        disconnect(b.name)
        err = await asyncio.wait_for(call, TIMEOUT)
        assert (err.kind, err.reason) == ("erpc", NOCONNECTION)

        rpc.cast(b.name, "m", "note", ["cast"])
        assert await beamlet.receive((NOTED, ANY), timeout=TIMEOUT) == (NOTED, "cast")
        rpc.cast(b.name, "m", "nope", [])  # failures are not reported

        # On our own node.
        node.d.register_function("m", "add", lambda x, y: x + y)
        assert await rpc.call(node.name, "m", "add", [[1], [2]]) == [1, 2]
        with pytest.raises(RpcError) as e:
            await rpc.call(node.name, "m", "nope", [])
        assert e.value.reason == Atom("undef")


async def _call_in_process(node: DistNode, peer: Atom, module: str, fn: str) -> RpcError:
    async def call() -> RpcError:
        try:
            await rpc.call(peer, module, fn, [], timeout=None)
        except RpcError as e:
            return e
        raise AssertionError("the call returned")

    return await node.run(call)


async def test_register_function_from_a_process(node: DistNode, epmd_port: int) -> None:
    register_function("mine", "hello", lambda who: b"hello " + who)
    async with beamlet_node(epmd_port) as b:
        assert await on(b, rpc.call, node.name, "mine", "hello", [b"b"]) == b"hello b"
        assert dist.unregister_function("mine", "hello") is True
        with pytest.raises(beamlet.ProcessFailed) as e:
            await on(b, rpc.call, node.name, "mine", "hello", [b"b"])
        assert e.value.reason.exception.reason == Atom("undef")


def test_api_needs_a_distributed_node() -> None:
    async def main() -> None:
        with pytest.raises(NotDistributed):
            dist.nodes()
        with pytest.raises(NotDistributed):
            await rpc.call("x@y", "m", "f", [])

    beamlet.run(main)


# --------------------------------------------------------------------------- run, CLI


def test_run_with_a_node_name() -> None:
    port = free_port()
    name = f"{unique('run')}@{LOOPBACK}"

    async def main(x: int) -> tuple[Any, ...]:
        register_function("m", "inc", lambda v: v + x)
        return (dist.node(), await rpc.call(name, "m", "inc", [1]), nodes())

    assert beamlet.run(main, 41, name=name, cookie=COOKIE, epmd_port=port) == (
        Atom(name),
        42,
        [],
    )
    with pytest.raises(beamlet.BadArgument):
        beamlet.run(main, 1, name="plain", cookie=COOKIE)


def test_run_with_a_short_name() -> None:
    port = free_port()
    alive = unique("short")

    async def main() -> Atom:
        return dist.node()

    name = beamlet.run(main, sname=alive, cookie=COOKIE, epmd_port=port, listen_host=LOOPBACK)
    local, _, host = name.partition("@")
    assert local == alive and host and "." not in host


def _cli(*args: str, cwd: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(Path(beamlet.__file__).parent.parent))
    return subprocess.Popen(
        [sys.executable, "-m", "beamlet", "node", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )


async def _banner(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 20)
    assert line.startswith(b"beamlet: node "), line
    return line.decode()


async def test_cli_serving_node(node: DistNode, epmd_port: int) -> None:
    name = f"{unique('cli')}@{LOOPBACK}"
    proc = _cli("--name", name, "--cookie", COOKIE, "--epmd-port", str(epmd_port))
    try:
        assert f"node {name} up (hidden)" in await _banner(proc)
        assert await rpc.call(name, "erlang", "node", []) == Atom(name)
        monitor_node(name)
        proc.send_signal(signal.SIGTERM)
        assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(Atom(name))
        assert await asyncio.wait_for(asyncio.to_thread(proc.wait), 10) == 0
    finally:
        proc.kill()
        proc.wait()


async def test_cli_runs_a_function(node: DistNode, epmd_port: int, tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(
        textwrap.dedent(
            """
            import beamlet
            from beamlet import Atom
            from beamlet.distribution import rpc

            async def main(peer, word):
                return await rpc.call(peer, "test", "shout", [word])  # a str, both ways

            async def crash(peer):
                raise RuntimeError("nope")
            """
        )
    )
    node.d.register_function("test", "shout", lambda w: w.upper() + "!")
    name = f"{unique('cli')}@{LOOPBACK}"
    common = ["--cookie", COOKIE, "--epmd-port", str(epmd_port), "--visible"]
    proc = _cli("--name", name, *common, "cliapp:main", str(node.name), "hi", cwd=str(tmp_path))
    try:
        assert "(visible)" in await _banner(proc)
        out, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 20)
        assert proc.returncode == 0, err
        assert out.strip() == b"HI!"
    finally:
        proc.kill()
        proc.wait()
    proc = _cli("--name", name, *common, "cliapp:crash", str(node.name), cwd=str(tmp_path))
    try:
        out, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 20)
        assert proc.returncode == 1
        assert b"the main process failed" in err and b"nope" in err
    finally:
        proc.kill()
        proc.wait()


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from beamlet.__main__ import main

    with pytest.raises(SystemExit):
        main(["node", "--name", "noat", "--cookie", "c"])
    with pytest.raises(SystemExit):
        main(["node", "--name", "a@127.0.0.1", "--cookie", "c", "no_colon"])
    with pytest.raises(SystemExit):
        main(["node", "--name", "a@127.0.0.1", "--sname", "b"])


async def test_wrong_cookie_between_beamlet_nodes(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="beamlet.distribution")
    async with beamlet_node(epmd_port, cookie="other") as b, beamlet_node(epmd_port) as c:
        assert await connect(b.name) is False
        assert await on(b, connect, node.name) is False
        assert "wrong cookie" in caplog.text
        assert await connect(c.name) is True
        assert nodes() == [c.name]
