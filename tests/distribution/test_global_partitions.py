"""OTP 25's prevention of overlapping partitions (`prevent_overlapping_partitions`,
default true; global_SUITE's `lost_connection` cases, OTP-17843), with beamlet in each
position an Erlang node can hold.

A, B and C are fully connected; B loses C while A still sees both. Between Erlang nodes
(checked on OTP 25): B's `global` multicasts `{lost_connection, B, _, _, C}`; A, which
is told, asks C to disconnect from it (`{remove_connection, A}`: A logs "requested
disconnect from node C", C logs "disconnected node A") and C's own report about B makes
A drop B too, so the cluster falls apart into fully connected partitions (here three
single nodes) instead of overlapping ones. The tests put a beamlet node in A's place
(told), in B's place (detects the loss), and in C's place (the node that was lost), and
check the same messages and the same end: B and C apart, every remaining connection
inside one fully connected partition.

The driver of each test is the hidden test node: Erlang ignores it in `global`, so
driving the peers from it changes nothing. The visible beamlet node under test is a
second node in the same loop.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from dist_nodes import DistNode, Peer, beamlet_node, erl_peer, on, within
from test_global import erl, until

import beamlet
from beamlet import Atom
from beamlet.distribution import connect, disconnect, global_
from beamlet.distribution.api import nodes

pytestmark = [pytest.mark.interop]
__all__ = ["erl"]  # the fixture (system OTP, second OTP), imported from test_global

OK = Atom("ok")
WARNING = "in order to prevent overlapping partitions"
CONNECTED = (
    "F = fun L(0) -> timeout; L(N) -> case lists:member(X, nodes()) of true -> ok; "
    "false -> timer:sleep(10), L(N - 1) end end, F(1000)."
)

Member = Peer | DistNode


def name(m: Member) -> Atom:
    return m.name if isinstance(m, Peer) else Atom(m.name)


async def view(m: Member) -> set[Atom]:
    """The visible nodes `m` is connected to (the hidden driver is not among them)."""
    if isinstance(m, Peer):
        return set(await m.eval("nodes()."))
    return set(m.d.nodes())


async def partitions(members: list[Member]) -> dict[Atom, set[Atom]]:
    """Each member's partition (itself and what it sees), once every connection is
    inside one fully connected partition (global's promise with the prevention on)."""
    views: dict[Atom, set[Atom]] = {}

    async def cliques() -> bool:
        for m in members:
            views[name(m)] = await view(m) | {name(m)}
        return all(views.get(y) == views[x] for x in views for y in views[x] if y in views)

    async with asyncio.timeout(15):
        while not await cliques():
            await beamlet.sleep(0.01)  # sleep-ok: polling the peers' views
    return views


async def mesh(p: DistNode, *peers: Peer) -> None:
    """`p` connects to each Erlang peer; `global` then connects the peers to each other."""
    for e in peers:
        assert await on(p, connect, e.name)
    for e in peers:
        assert await e.eval("global:sync().", timeout=15) == OK
        for other in peers:
            if other is not e:
                assert await e.eval(CONNECTED, X=other.name) == OK

    async def synced() -> None:
        await within(15, global_.sync())

    await on(p, synced)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "beamlet.global"]


async def test_lost_connection_beamlet_told(
    node: DistNode, epmd_port: int, erl: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """beamlet is A: B (Erlang) drops C (Erlang); beamlet asks C to disconnect, as an
    Erlang A does, and ends in a fully connected partition."""
    caplog.set_level(logging.WARNING, "beamlet.global")
    async with (
        beamlet_node(epmd_port, hidden=False) as a,
        erl_peer(epmd_port, erl=erl) as b,
        erl_peer(epmd_port, erl=erl) as c,
    ):
        await mesh(a, b, c)
        assert await b.eval("erlang:disconnect_node(C).", C=c.name) is True
        # (other warnings may come first: C may hear of its own loss, relayed)
        line = await c.expect_line(f"disconnected node '{a.name}'")
        assert line.strip().endswith(WARNING)
        asked = f"requested disconnect from node '{c.name}'"
        await until(lambda: any(asked in w for w in warnings(caplog)))
        views = await partitions([a, b, c])
        assert c.name not in views[b.name]
        assert c.name not in views[Atom(a.name)]


async def test_lost_connection_beamlet_detects(
    node: DistNode, epmd_port: int, erl: str | None
) -> None:
    """beamlet is B: it drops C; its `lost_connection` makes Erlang's A ask C to
    disconnect ("requested disconnect from node C"), as for an Erlang B."""
    async with (
        erl_peer(epmd_port, erl=erl) as a,
        beamlet_node(epmd_port, hidden=False) as b,
        erl_peer(epmd_port, erl=erl) as c,
    ):
        await mesh(b, a, c)

        async def drop() -> bool:
            return disconnect(c.name)

        assert await on(b, drop)
        line = await a.expect_line(f"requested disconnect from node '{c.name}'")
        assert line.strip().endswith(WARNING)
        views = await partitions([a, b, c])
        assert c.name not in views[Atom(b.name)]
        assert c.name not in views[a.name]


async def test_lost_connection_beamlet_lost(
    node: DistNode, epmd_port: int, erl: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """beamlet is C: Erlang's B drops it; beamlet reports the loss of B to A as B reports
    the loss of C, and A leaves an overlapping partition either way."""
    caplog.set_level(logging.WARNING, "beamlet.global")
    async with (
        erl_peer(epmd_port, erl=erl) as a,
        erl_peer(epmd_port, erl=erl) as b,
        beamlet_node(epmd_port, hidden=False) as c,
    ):
        await mesh(c, a, b)
        assert await b.eval("erlang:disconnect_node(C).", C=Atom(c.name)) is True
        assert WARNING in await a.expect_line(WARNING)
        views = await partitions([a, b, c])
        assert Atom(c.name) not in views[b.name]
        assert b.name not in views[Atom(c.name)]


async def test_lost_connection_python_only(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Three beamlet nodes behave as three Erlang nodes do: B drops C, A is told (by B
    about C, by C about B) and asks a node to disconnect; no node is left seeing two
    nodes that cannot see each other. (Which partitions form depends on which report
    A handles first, among Erlang nodes too.)"""
    caplog.set_level(logging.WARNING, "beamlet.global")
    async with (
        beamlet_node(epmd_port, hidden=False) as a,
        beamlet_node(epmd_port, hidden=False) as b,
        beamlet_node(epmd_port, hidden=False) as c,
    ):
        assert await on(a, connect, b.name)
        assert await on(a, connect, c.name)

        async def meshed() -> None:
            await within(15, global_.sync())
            await until(lambda: Atom(c.name) in nodes())

        await on(b, meshed)

        async def drop() -> bool:
            return disconnect(c.name)

        assert await on(b, drop)
        told = f"'global' at node '{a.name}' requested disconnect from node"
        await until(lambda: any(w.startswith(told) for w in warnings(caplog)))
        views = await partitions([a, b, c])
        assert Atom(c.name) not in views[Atom(b.name)]
        assert len(views[Atom(a.name)]) < 3
