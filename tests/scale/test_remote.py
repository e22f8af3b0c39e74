"""beamlet.remote: processes on other nodes named by import path, and Supervisor
children on other nodes (with OTP's `noconnection` behaviour)."""

from __future__ import annotations

import os
import signal

import pytest
from scale_nodes import DistNode

import beamlet
from beamlet import Atom, Down, Exit, GenServer, Supervisor, peer, remote
from beamlet.distribution import SpawnError

STARTED, ECHO = Atom("started"), Atom("echo")


async def test_spawn_monitor_and_link_by_path(node: DistNode) -> None:
    p = await peer.start()
    me = beamlet.self()
    pid, ref = await remote.spawn_monitor(p.node, "scale_work:echo_body", [me])
    assert pid.node == p.node
    assert await beamlet.receive((STARTED, pid, p.node), timeout=10)
    beamlet.send(pid, ("hi", 1))
    assert await beamlet.receive((ECHO, beamlet.ANY), timeout=10) == (ECHO, ("hi", 1))
    beamlet.exit(pid, beamlet.KILL)
    down = await beamlet.receive(Down, timeout=10)
    assert (down.ref, down.reason) == (ref, beamlet.KILLED)

    # An unknown function: the process starts and exits with undef, as in Erlang.
    _, ref = await remote.spawn_monitor(p.node, "scale_work:nope", [])
    down = await beamlet.receive(Down, timeout=10)
    assert down.ref == ref and down.reason[0] == Atom("undef")

    # spawn_link: losing the node is an exit signal `noconnection`.
    beamlet.process_flag(trap_exit=True)
    pid = await remote.spawn_link(p.node, "scale_work:echo_body", [me])
    await beamlet.receive((STARTED, pid, p.node), timeout=10)
    os.kill(p.os_pid, signal.SIGKILL)
    assert await beamlet.receive(lambda m: type(m) is Exit and m.pid == pid, timeout=10) == Exit(
        pid, beamlet.NOCONNECTION
    )
    with pytest.raises(SpawnError):
        await remote.spawn(p.node, "scale_work:echo_body", [me])


async def test_bad_paths(node: DistNode) -> None:
    for bad in ["nocolon", "a.b:", ":f", "a b:c", 42]:
        with pytest.raises(beamlet.BadArgument):
            remote.split_path(bad)  # type: ignore[arg-type]
    with pytest.raises(beamlet.BadArgument):
        remote.resolve("scale_work:nope")
    assert remote.resolve("os.path:join")("a", "b") == os.path.join("a", "b")
    with pytest.raises(beamlet.BadArgument):
        await remote.spawn("x@127.0.0.1", "m:f", "not a list")  # type: ignore[arg-type]


async def test_remote_child_restarts_on_the_next_node(node: DistNode) -> None:
    """A GenServer started on node A by a local supervisor; A is killed: the child
    exits with noconnection (abnormal), so the supervisor restarts it - on B, the next
    listed node that answers."""
    a, b = await peer.start(), await peer.start()
    spec = remote.child_spec([a.node, b.node], "scale_work:Counter.start_link", (5,), id="c")
    sup = await Supervisor.start_link([spec], strategy="one_for_one")
    [(cid, pid, _, _)] = await Supervisor.which_children(sup)
    assert cid == "c" and pid.node == a.node
    assert await GenServer.call(pid, "next") == 5
    assert await GenServer.call(pid, Atom("where")) == (a.node, a.os_pid)
    mref = beamlet.monitor(pid)
    os.kill(a.os_pid, signal.SIGKILL)
    down = await beamlet.receive(Down, timeout=10)
    assert (down.ref, down.reason) == (mref, beamlet.NOCONNECTION)
    restarted = pid
    while restarted == pid:  # the restart is asynchronous to our DOWN
        [(_, restarted, _, _)] = await Supervisor.which_children(sup)
    assert restarted.node == b.node
    assert await GenServer.call(restarted, "next") == 5  # a fresh server

    # The supervisor shuts the remote child down like a local one.
    mref = beamlet.monitor(restarted)
    await Supervisor.stop(sup)
    down = await beamlet.receive(Down, timeout=10)
    assert (down.ref, down.reason) == (mref, beamlet.SHUTDOWN)


async def test_remote_child_gives_up_when_its_node_is_gone(node: DistNode) -> None:
    """One node only: after noconnection every restart fails, and the supervisor exits
    once its intensity is spent (OTP: reached_max_restart_intensity -> shutdown)."""
    a = await peer.start()
    spec = remote.child_spec(a.node, "scale_work:echo_body", (beamlet.self(),), body=True)
    beamlet.process_flag(trap_exit=True)
    sup = await Supervisor.start_link([spec], max_restarts=2, max_seconds=60)
    [(_, pid, _, _)] = await Supervisor.which_children(sup)
    assert pid.node == a.node
    await beamlet.receive((STARTED, pid, a.node), timeout=10)
    os.kill(a.os_pid, signal.SIGKILL)
    msg = await beamlet.receive(lambda m: type(m) is Exit and m.pid == sup, timeout=20)
    assert msg.reason == beamlet.SHUTDOWN


async def test_remote_child_that_traps_exits_terminates_on_shutdown(node: DistNode) -> None:
    """A remote child that traps exits (a Supervisor here) is shut down as a local one
    is: its supervisor's `shutdown` ends it at once, it is not killed after the
    `shutdown` seconds."""
    p = await peer.start()
    spec = remote.child_spec(p.node, "beamlet:Supervisor.start_link", ([],), id="sub")
    sup = await Supervisor.start_link([spec.with_overrides(shutdown=30.0)])
    [(_, pid, _, _)] = await Supervisor.which_children(sup)
    assert pid.node == p.node
    mref = beamlet.monitor(pid)
    beamlet.spawn(Supervisor.terminate_child, sup, "sub")
    down = await beamlet.receive(lambda m: type(m) is Down and m.ref == mref, timeout=5)
    assert down.reason == beamlet.SHUTDOWN
