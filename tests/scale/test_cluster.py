"""Cluster formation: monitor_nodes, the Static / EpmdScan / LocalEpmd / Dns strategies
(DNS against a server this test starts on 127.0.0.1), reconnection after a loss, and a
cluster of several nodes on loopback that forms itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from scale_nodes import LOOPBACK, DistNode, free_port, unique

import beamlet
from beamlet import Atom, peer, remote
from beamlet import distribution as dist
from beamlet.cluster import (
    Cluster,
    Dns,
    EpmdScan,
    LocalEpmd,
    NodeDown,
    NodeUp,
    Static,
    monitor_nodes,
)


def _name(n: Atom) -> str:
    return str(n).partition("@")[0]


async def test_monitor_nodes_up_and_down(node: DistNode) -> None:
    monitor_nodes()
    p = await peer.start()
    assert await beamlet.receive(NodeUp, timeout=10) == NodeUp(p.node)
    await peer.stop(p)
    assert await beamlet.receive(NodeDown, timeout=10) == NodeDown(p.node)
    monitor_nodes(False)
    q = await peer.start()
    await peer.stop(q)
    assert await beamlet.receive(NodeUp, NodeDown, timeout=0.2, default=None) is None


async def test_static_strategy_connects_and_reconnects(node: DistNode) -> None:
    a, b = await peer.start(connect=False), await peer.start(connect=False)
    assert a.node not in dist.nodes()
    monitor_nodes()
    server = await Cluster.start_link([Static([a.node, b.node, "gone@127.0.0.1"])], interval=60)
    assert await Cluster.poll(server) == sorted([a.node, b.node])
    assert set(dist.nodes()) >= {a.node, b.node}
    ups = {(await beamlet.receive(NodeUp, timeout=10)).node for _ in range(2)}
    assert ups == {a.node, b.node}
    # Lost: the cluster connects again by itself (reconnect delay, not the interval).
    dist.disconnect(a.node)
    assert await beamlet.receive(NodeDown, timeout=10) == NodeDown(a.node)
    assert await beamlet.receive(NodeUp, timeout=10) == NodeUp(a.node)
    assert a.node in await Cluster.members(server)
    with pytest.raises(beamlet.BadArgument):
        Static(["no-at-sign"])
    with pytest.raises(beamlet.InvalidTimeout):
        await Cluster.start_link([], interval=0)


async def test_cluster_child_spec_starts_under_a_supervisor(node: DistNode) -> None:
    """`Cluster.child_spec(strategies, ...)` starts `Cluster.start_link(strategies, ...)`
    (it used to hand the supervisor's start its internal state dict as the strategies)."""
    a = await peer.start(connect=False)
    spec = Cluster.child_spec([Static([a.node])], interval=60, name="cluster")
    assert (spec.id, spec.restart) == (Cluster, "permanent")
    await beamlet.Supervisor.start_link([spec], strategy="one_for_one")
    assert await Cluster.poll("cluster") == [a.node]
    assert await Cluster.members("cluster") == [a.node]
    with pytest.raises(beamlet.BadArgument):  # bad input fails here, not in the supervisor
        Cluster.child_spec([object()])
    assert Cluster.child_spec(restart="transient", id="c").restart == "transient"


async def test_epmd_scan_and_local_epmd(node: DistNode, epmd_port: int) -> None:
    prefix = unique("scan")
    a = await peer.start(name=f"{prefix}a", connect=False)
    b = await peer.start(name=f"{prefix}b", connect=False)
    other = await peer.start(connect=False)  # not ours: another prefix
    found = await EpmdScan([LOOPBACK], prefix=prefix).discover()
    assert sorted(found) == sorted([a.node, b.node])
    everyone = await LocalEpmd().discover()
    assert {a.node, b.node, other.node, node.name} <= set(everyone)
    # No EPMD there: nothing found, no error.
    assert await EpmdScan([LOOPBACK], epmd_port=free_port()).discover() == []
    server = await Cluster.start_link([LocalEpmd(prefix=prefix)], interval=60)
    assert await Cluster.poll(server) == sorted([a.node, b.node])
    assert other.node not in dist.nodes()


@pytest.fixture
def dns_server() -> Iterator[tuple[Any, int]]:
    """A DNS server on 127.0.0.1 (dnslib), answering from a dict the test fills."""
    from dnslib import QTYPE, RR, A, DNSLabel, DNSRecord, server

    records: dict[tuple[str, str], list[Any]] = {}

    class Resolver(server.BaseResolver):  # type: ignore[misc]
        def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
            reply = request.reply()
            q = request.q
            for rdata in records.get((str(DNSLabel(q.qname)), QTYPE[q.qtype]), []):
                reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=1))
            return reply

    port = free_port()
    srv = server.DNSServer(Resolver(), address=LOOPBACK, port=port, logger=_Quiet())
    srv.start_thread()
    try:
        yield records, port
    finally:
        srv.stop()
    assert A  # keep the import for the record type the tests use


class _Quiet:
    def __getattr__(self, _: str) -> Any:
        return lambda *args: None


async def test_dns_a_and_srv_records(node: DistNode, dns_server: tuple[Any, int]) -> None:
    from dnslib import SRV, A

    records, port = dns_server
    ns = (LOOPBACK, port)
    a = await peer.start(connect=False)
    b = await peer.start(connect=False)
    # A records: basename@address (one node per address; here the loopback one, and an
    # address where nothing runs).
    records[("nodes.test.", "A")] = [A("127.0.0.1"), A("127.0.0.9")]
    strategy = Dns("nodes.test", basename=_name(a.node), nameserver=ns)
    assert await strategy.discover() == [a.node, Atom(f"{_name(a.node)}@127.0.0.9")]
    # SRV records, as a StatefulSet's headless service: one target per pod.
    records[("_dist._tcp.nodes.test.", "SRV")] = [
        SRV(0, 0, 4369, f"{_name(a.node)}.nodes.test."),
        SRV(0, 0, 4369, f"{_name(b.node)}.nodes.test."),
    ]
    srv = Dns("_dist._tcp.nodes.test", kind="SRV", node_name="{label}@127.0.0.1", nameserver=ns)
    assert await srv.discover() == sorted([a.node, b.node])
    server = await Cluster.start_link([srv], interval=60)
    assert await Cluster.poll(server) == sorted([a.node, b.node])
    # A name with no records, and the system resolver for A records.
    assert await Dns("missing.test", nameserver=ns, timeout=1).discover() == []
    assert await Dns("localhost", basename=_name(a.node)).discover() == [a.node]
    with pytest.raises(beamlet.BadArgument):
        Dns("x", kind="MX")


async def test_several_nodes_form_a_cluster(node: DistNode) -> None:
    """Three peers, each running a Cluster with the static list of all: each ends up
    connected to the two others (hidden nodes do not mesh on their own)."""
    peers = [await peer.start(connect=True) for _ in range(3)]
    names = [str(p.node) for p in peers]
    me = beamlet.self()
    for p in peers:
        await remote.spawn(p.node, "scale_work:form", [me, names])
    formed = {}
    for _ in peers:
        _, who, connected = await beamlet.receive((Atom("formed"), beamlet.ANY, beamlet.ANY),
                                                  timeout=20)  # fmt: skip
        formed[who] = set(connected)
    for p in peers:
        assert formed[p.node] >= {q.node for q in peers if q != p}
