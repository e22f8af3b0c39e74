"""A beamlet node under attack from peers that reach its distribution port.

Each test is one attack from docs/reliability.md "Distribution attacks": it runs the
attack over a raw socket (`raw_peer.RawPeer`) and checks the outcome the table states,
then that the node is alive (a round trip on another connection).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from dist_nodes import LOOPBACK, DistNode, unique
from raw_peer import TIMEOUT, RawPeer
from test_dist_faults import arm, expect_noconnection

import beamlet
from beamlet import KILL, NOCONNECTION, Atom, Down, Exit, Node, Pid, Ref
from beamlet.distribution import (
    DistributionError,
    NodeDown,
    etf,
    monitor_node,
    nodes,
    start_distribution,
)
from beamlet.distribution import handshake as hs

REG_SEND, SEND_SENDER = 6, 22


async def is_auth(raw: RawPeer) -> None:
    """A round trip on `raw`'s connection (net_adm:ping's call)."""
    tag = Ref(raw.name, (7, 8, 9), raw.creation)
    call = (Atom("$gen_call"), (raw.pid(3), tag), (Atom("is_auth"), raw.name))
    await raw.send_ctl((REG_SEND, raw.pid(3), Atom(""), Atom("net_kernel")), call)
    ctl, payload = await raw.read_ctl()
    assert ctl[0] == SEND_SENDER and payload == (tag, Atom("yes"))


# --------------------------------------------------------------------------- handshake


async def test_alive_without_the_cookie_keeps_the_connection(
    node: DistNode, epmd_port: int
) -> None:
    # issue 10 §2: a second send_name for a connected peer's name, then `true`: the node
    # challenges the newcomer and keeps the old connection until the cookie is proved.
    raw = await RawPeer.open(node)
    intruder = await RawPeer.open(node, name=str(raw.name))
    try:
        await raw.handshake()
        fake, ref, local = await arm(raw)
        await intruder.send(hs.frame16(hs.send_name(raw.name, hs.OUR_FLAGS, 99)))
        assert hs.parse_status(await intruder.read_hs()) == "alive"
        await intruder.send(hs.frame16(hs.status("true")))
        challenge = hs.parse_challenge(await intruder.read_hs())
        assert challenge.name == str(node.name)
        # The intruder has no cookie: any digest is wrong.
        await intruder.send(hs.frame16(hs.challenge_reply(1, bytes(16))))
        await intruder.wait_closed()
        await is_auth(raw)  # the old connection still works...
        assert raw.name in nodes()
        assert beamlet.process_info(local).links == (raw.pid(2),)  # ...with its links
        assert await beamlet.receive(Exit, timeout=0, default=None) is None
        raw.close()
        await expect_noconnection(raw, fake, ref, local)
    finally:
        raw.close()
        intruder.close()


async def test_reconnect_with_the_cookie_replaces_the_connection(node: DistNode) -> None:
    # The legitimate case: the peer restarted and its new incarnation knows the cookie.
    raw = await RawPeer.open(node)
    again = await RawPeer.open(node, name=str(raw.name))
    try:
        await raw.handshake()
        fake, ref, _local = await arm(raw)
        again.creation = raw.creation + 1
        await again.handshake(status="alive")
        # The old connection's links and monitors fire, the new one is up.
        assert await beamlet.receive(Exit, timeout=TIMEOUT) == Exit(fake, NOCONNECTION)
        down = await beamlet.receive(Down, timeout=TIMEOUT)
        assert (down.ref, down.reason) == (ref, NOCONNECTION)
        assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(raw.name)
        await raw.wait_closed()
        await is_auth(again)
        assert nodes() == [raw.name]
    finally:
        raw.close()
        again.close()


# --------------------------------------------------------------------------- signals

LINK, MONITOR_P = 1, 19


async def idle() -> None:
    beamlet.process_flag(trap_exit=True)
    await beamlet.receive(Atom("never"))


async def test_signals_forged_for_another_node_are_refused(
    node: DistNode, caplog: pytest.LogCaptureFixture
) -> None:
    # issue 10 §6: MONITOR_P/LINK with a from-pid (or a monitor ref) of a third node used
    # to be accepted and to outlive the peer's connection: entries piled up over
    # reconnects. erts refuses them (the connection is closed); so does beamlet.
    target = beamlet.spawn(idle)
    third = Atom("third@127.0.0.1")
    forgeries = [
        (LINK, Pid(third, 5, 0, 1), target),
        (MONITOR_P, Pid(third, 5, 0, 1), target, Ref(third, (1, 2, 3), 1)),
        (MONITOR_P, None, target, Ref(third, (1, 2, 3), 1)),  # our pid, another's ref
    ]
    for round_ in range(3):
        for forged in forgeries:
            raw = await RawPeer.open(node)
            try:
                await raw.handshake()
                ctl = tuple(raw.pid(1) if f is None else f for f in forged)
                for _ in range(50):
                    await raw.send_ctl(ctl)
                await raw.wait_closed()
            finally:
                raw.close()
            info = beamlet.process_info(target)
            assert (round_, info.links, info.monitored_by) == (round_, (), ())
    assert "a process of another node" in caplog.text
    assert "a reference of another node" in caplog.text


async def test_deep_reason_from_the_peers_own_process_is_refused(
    node: DistNode, caplog: pytest.LogCaptureFixture
) -> None:
    # issue 10 §3: a control field nested past the bound closes the connection before
    # anything hashes it. test_dist_faults' "deep-reason" frame names another node's
    # pids, so the sender check refuses it first; here the sender is the peer's own.
    target = beamlet.spawn(idle)
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        await raw.send_ctl((LINK, raw.pid(1), target))
        deep = b"h\x01" * 5_000 + b"j"
        head = b"p\x83h\x04a\x03" + etf.encode_body(raw.pid(1)) + etf.encode_body(target)
        await raw.send_frame(head + deep)  # EXIT {3, From, To, Reason}
        await raw.wait_closed()
    finally:
        raw.close()
    assert "malformed distribution message" in caplog.text
    assert "nested deeper" in caplog.text or "nests too deep" in caplog.text
    assert beamlet.process_info(target) is not None  # it traps: noconnection, not the reason


async def test_signals_for_the_peers_own_processes_are_kept(node: DistNode) -> None:
    target = beamlet.spawn(idle)
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        await raw.send_ctl((LINK, raw.pid(1), target))
        await raw.send_ctl((MONITOR_P, raw.pid(1), target, Ref(raw.name, (1, 2, 3), 7)))
        await is_auth(raw)
        info = beamlet.process_info(target)
        assert (info.links, info.monitored_by) == ((raw.pid(1),), (raw.pid(1),))
        monitor_node(raw.name)
    finally:
        raw.close()
    assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(raw.name)
    info = beamlet.process_info(target)  # the connection took its entries with it
    assert (info.links, info.monitored_by) == ((), ())


# --------------------------------------------------------------------------- services

IO_REQUEST, IO_REPLY = Atom("io_request"), Atom("io_reply")
PUT_CHARS = (Atom("put_chars"), Atom("unicode"), b"")


async def io_round_trip(raw: RawPeer, gl: Pid, request: Any) -> Any:
    tag = beamlet.make_ref()
    await raw.send_ctl((SEND_SENDER, raw.pid(4), gl), (IO_REQUEST, raw.pid(4), tag, request))
    ctl, payload = await raw.read_ctl()
    assert ctl[0] == SEND_SENDER and payload[:2] == (IO_REPLY, tag)
    return payload[2]


async def test_group_leader_survives_odd_io_requests(node: DistNode) -> None:
    # issue 10 §5: a reply_as that cannot be re-encoded, or a 3000-deep {requests, ...},
    # used to kill the distribution group leader for good.
    gl = node.d.group_leader
    assert gl is not None
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        assert await io_round_trip(raw, gl, PUT_CHARS) == Atom("ok")
        beamlet.send(gl, (IO_REQUEST, raw.pid(4), 1.5j, PUT_CHARS))  # no Erlang form
        deep: Any = PUT_CHARS
        for _ in range(3000):
            deep = (Atom("requests"), [deep])
        assert await io_round_trip(raw, gl, deep) == (Atom("error"), Atom("enotsup"))
        assert await io_round_trip(raw, gl, PUT_CHARS) == Atom("ok")
        assert node.d.group_leader == gl
    finally:
        raw.close()


async def test_services_are_restarted(node: DistNode) -> None:
    for name in ("rex", "net_kernel"):
        old = beamlet.whereis(name)
        assert old is not None
        beamlet.exit(old, KILL)
        for _ in range(1000):  # the supervisor runs when the scheduler gets to it
            new = beamlet.whereis(name)
            if new is not None and new != old:
                break
            await asyncio.sleep(0)  # sleep-ok: a yield, not a wait for time
        assert new is not None and new != old
    old_gl = node.d.group_leader
    assert old_gl is not None
    beamlet.exit(old_gl, KILL)
    for _ in range(1000):
        if node.d.group_leader != old_gl:
            break
        await asyncio.sleep(0)  # sleep-ok: a yield, not a wait for time
    assert node.d.group_leader != old_gl
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        await is_auth(raw)  # net_kernel answers
        tag = Ref(raw.name, (3, 3, 3), raw.creation)
        call = (Atom("call"), Atom("erlang"), Atom("node"), [], Atom("user"))
        msg = (Atom("$gen_call"), (raw.pid(3), tag), call)
        await raw.send_ctl((REG_SEND, raw.pid(3), Atom(""), Atom("rex")), msg)
        _ctl, payload = await raw.read_ctl()
        assert payload == (tag, node.name)  # rex answers
        assert await io_round_trip(raw, node.d.group_leader, PUT_CHARS) == Atom("ok")
    finally:
        raw.close()


# --------------------------------------------------------------------------- names, epmd


async def test_overlong_node_name_is_refused_at_handshake(
    node: DistNode, caplog: pytest.LogCaptureFixture
) -> None:
    # issue 10 §7: a 300-character name was accepted, then nothing could be encoded to
    # that peer. Node names are validated as Erlang does.
    raw = await RawPeer.open(node, name="x" * 300 + "@127.0.0.1")
    try:
        await raw.send(hs.frame16(hs.send_name(raw.name, hs.OUR_FLAGS, 1)))
        await raw.wait_closed()
    finally:
        raw.close()
    assert "at most 255" in caplog.text
    assert nodes() == []


@pytest.mark.parametrize("name", ["x" * 300 + "@127.0.0.1", "a@b@c", "nohost@", "@nolocal"])
async def test_invalid_node_name_is_refused_at_start(epmd_port: int, name: str) -> None:
    n = Node(name)
    await n.start()
    try:
        with pytest.raises(DistributionError, match="invalid node name"):
            await start_distribution(n, cookie="c", epmd_port=epmd_port)
    finally:
        await n.stop()


async def test_epmd_port_held_by_a_non_listening_socket(epmd_port: int) -> None:
    # issue 10 §7: start-up said "no EPMD ... connection refused"; it names the bind error.
    n = Node(f"{unique('sq')}@{LOOPBACK}")
    await n.start()
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, epmd_port))
        try:
            with pytest.raises(DistributionError, match="does not accept connections"):
                await start_distribution(n, cookie="c", epmd_port=epmd_port)
        finally:
            await n.stop()
