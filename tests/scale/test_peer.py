"""beamlet.peer: nodes as child OS processes (OTP's peer_SUITE, in spirit: start,
stop, link, the peer dying with its parent and with its controlling process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from scale_nodes import COOKIE, LOOPBACK, DistNode, os_process_gone, require_erl, unique, wait_gone

import beamlet
from beamlet import Atom, Exit, peer
from beamlet import distribution as dist
from beamlet.distribution import rpc


async def test_start_stop(node: DistNode) -> None:
    p = await peer.start(name=unique("p"))
    assert p.node == Atom(f"{p.node.partition('@')[0]}@{LOOPBACK}")
    assert p.node in dist.nodes()
    assert await rpc.call(p.node, "os", "getpid", []) == p.os_pid
    assert peer.which_peers() == [p]
    dist.monitor_node(p.node)
    assert await peer.stop(p)
    assert await beamlet.receive(dist.NodeDown, timeout=10) == dist.NodeDown(p.node)
    assert await os_process_gone(p.os_pid)
    assert not await peer.stop(p)  # not running any more
    assert peer.which_peers() == []


async def test_options_env_visible_and_cookie(node: DistNode) -> None:
    p = await peer.start(hidden=False, env={"BEAMLET_T": "x1"}, args=["-X", "utf8"])
    assert await rpc.call(p.node, "os", "getenvb", [b"BEAMLET_T"]) == b"x1"
    # The peer's cookie is not ours: the handshake fails, the peer runs on.
    q = await peer.start(cookie="another", connect=False)
    assert not await dist.connect(q.node)
    assert await peer.stop(q)
    assert await peer.stop(p.node)  # by node name


async def test_start_failure_is_a_start_error(node: DistNode) -> None:
    with pytest.raises(peer.PeerStartError) as e:
        await peer.start(args=["-c", "import sys; print('early'); sys.exit(3)"])
    assert e.value.reason == (Atom("exit_status"), 3)
    assert "early" in e.value.output
    with pytest.raises(beamlet.BadArgument):
        await peer.start(timeout=0)


async def test_start_link_exit_status_when_killed(node: DistNode) -> None:
    beamlet.process_flag(trap_exit=True)
    p = await peer.start_link()
    os.kill(p.os_pid, signal.SIGKILL)
    msg = await beamlet.receive(Exit, timeout=10)
    assert msg == Exit(p.pid, (Atom("exit_status"), -signal.SIGKILL))


async def _start_linked(owner: beamlet.Pid) -> None:
    p = await peer.start_link()
    beamlet.send(owner, (Atom("peer"), p.os_pid))
    await beamlet.receive(lambda m: False)


async def test_start_link_peer_dies_with_its_caller(node: DistNode) -> None:
    caller = beamlet.spawn(_start_linked, beamlet.self())
    _, os_pid = await beamlet.receive((Atom("peer"), beamlet.ANY), timeout=20)
    beamlet.exit(caller, beamlet.KILL)
    assert await os_process_gone(os_pid)


async def test_peer_dies_with_its_controller(node: DistNode) -> None:
    p = await peer.start()
    beamlet.exit(p.pid, beamlet.KILL)
    assert await os_process_gone(p.os_pid)


async def test_start_erl_peer(node: DistNode) -> None:
    require_erl()
    p = await peer.start_erl(name=unique("erl"))
    assert await rpc.call(p.node, "erlang", "node", []) == p.node
    assert await rpc.call(p.node, "os", "getpid", []) == beamlet.distribution.etf.Charlist(
        str(p.os_pid)
    )
    assert await peer.stop(p)
    assert await os_process_gone(p.os_pid)


PARENT = textwrap.dedent(
    """
    import os, sys, beamlet
    from beamlet import peer

    async def main():
        ps = [await peer.start(), await peer.start()]
        if sys.argv[2] == "erl":
            ps.append(await peer.start_erl())
        print(" ".join(str(p.os_pid) for p in ps), flush=True)
        await beamlet.receive(lambda m: False)

    beamlet.run(main, name=sys.argv[1], cookie="c", epmd_port=int(sys.argv[3]))
    """
)


@pytest.mark.parametrize("kind", ["beamlet", "erl"])
def test_no_orphans_when_the_parent_is_killed(kind: str, epmd_port: int) -> None:
    """SIGKILL of the parent: its peers (and an erl peer) exit on their own."""
    if kind == "erl":
        require_erl()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, f"{unique('parent')}@{LOOPBACK}", kind, str(epmd_port)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().decode()
        pids = [int(x) for x in line.split()]
        assert len(pids) == (3 if kind == "erl" else 2), line
        parent.kill()
        parent.wait(10)
        assert all(wait_gone(pid, 10) for pid in pids)
    finally:
        parent.kill()
        parent.wait(10)


async def test_peer_start_time_is_measured(node: DistNode) -> None:
    """Not a timed test: shows the start time (the benchmark records it)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    p = await peer.start()
    elapsed = loop.time() - t0
    print(f"peer start: {elapsed * 1000:.0f} ms")
    assert await peer.stop(p)
    assert COOKIE  # the parent's cookie was used: the peer connected
