"""A beamlet node against misbehaving peers, over raw sockets.

A `RawPeer` speaks just enough of the protocol (the initiator's handshake, framing) to
reach the connected state and then breaks the rules: garbage before or after the
handshake, a frame cut off by a disconnect, a frame over `max_frame`, malformed control
messages, an unknown opcode, a peer that never reads. In every case the node must drop
that connection with a log line, deliver `noconnection` to the links and monitors that
crossed it (and `NodeDown`), and keep working: a round trip on another connection
succeeds afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct

import pytest
from dist_nodes import DistNode, beamlet_node
from raw_peer import TIMEOUT, RawPeer

import beamlet
from beamlet import NOCONNECTION, Atom, Down, Exit, Pid, Ref
from beamlet.distribution import NodeDown, etf, monitor_node, nodes, rpc
from beamlet.distribution import handshake as hs

TRAPPED, TRAPPED_EXIT = Atom("trapped"), Atom("trapped_exit")
LINK, REG_SEND, MONITOR_P, SEND_SENDER = 1, 6, 19, 22


async def trapper(me: Pid) -> None:
    beamlet.process_flag(trap_exit=True)
    beamlet.send(me, (TRAPPED, beamlet.self(), None))
    ex = await beamlet.receive(Exit, timeout=30)
    beamlet.send(me, (TRAPPED_EXIT, ex.pid, ex.reason))


async def arm(raw: RawPeer) -> tuple[Pid, Ref, Pid]:
    """Links and monitors across the raw connection, in both directions."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    fake = raw.pid(1)
    beamlet.link(fake)
    ref = beamlet.monitor(fake)
    assert (await raw.read_ctl())[0] == (LINK, me, fake)
    assert (await raw.read_ctl())[0] == (MONITOR_P, me, fake, ref)
    local = beamlet.spawn(trapper, me)
    await beamlet.receive((TRAPPED, local, None), timeout=TIMEOUT)
    await raw.send_ctl((LINK, raw.pid(2), local))
    await raw.send_ctl((MONITOR_P, raw.pid(2), local, Ref(raw.name, (1, 2, 3), raw.creation)))
    # A round trip on the raw connection: the LINK and MONITOR_P above were handled
    # before this call (signals are handled in order).
    tag = Ref(raw.name, (4, 5, 6), raw.creation)
    call = (Atom("$gen_call"), (raw.pid(3), tag), (Atom("is_auth"), raw.name))
    await raw.send_ctl((REG_SEND, raw.pid(3), Atom(""), Atom("net_kernel")), call)
    ctl, payload = await raw.read_ctl()
    assert ctl[0] == SEND_SENDER and payload == (tag, Atom("yes"))
    assert beamlet.process_info(local).links == (raw.pid(2),)
    monitor_node(raw.name)
    return fake, ref, local


async def expect_noconnection(raw: RawPeer, fake: Pid, ref: Ref, local: Pid) -> None:
    assert await beamlet.receive(Exit, timeout=TIMEOUT) == Exit(fake, NOCONNECTION)
    down = await beamlet.receive(Down, timeout=TIMEOUT)
    assert (down.ref, down.reason) == (ref, NOCONNECTION)
    assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(raw.name)
    assert await beamlet.receive((TRAPPED_EXIT, beamlet.ANY, beamlet.ANY), timeout=TIMEOUT) == (
        TRAPPED_EXIT,
        raw.pid(2),
        NOCONNECTION,
    )
    assert not beamlet.is_alive(local) or beamlet.process_info(local).links == ()
    assert raw.name not in nodes()


async def round_trip(b: DistNode) -> None:
    assert await rpc.call(b.name, "erlang", "node", []) == b.name


# --------------------------------------------------------------------------- handshake


@pytest.mark.dist(connect_timeout=0.5)
@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(64),
        b"\x00\x05hello",  # a 2-byte frame that is no handshake message
        hs.frame16(b"n\x00\x05" + bytes(4) + b"old@127.0.0.1"),  # the pre-OTP-23 handshake
        hs.frame16(hs.send_name("no_at_sign", hs.OUR_FLAGS, 1)),  # a bad node name
        hs.frame16(hs.send_name("weak@127.0.0.1", 0x4, 1)),  # missing mandatory flags
        b"\xff\xff" + bytes(200_000),  # a handshake flood
        b"",  # silence: the handshake step times out
    ],
    ids=["random", "not-handshake", "old-handshake", "bad-name", "weak-flags", "flood", "silent"],
)
async def test_garbage_before_handshake(
    node: DistNode, epmd_port: int, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with beamlet_node(epmd_port) as b:
        await round_trip(b)
        raw = await RawPeer.open(node)
        try:
            if garbage:
                try:
                    await raw.send(garbage)
                except ConnectionError:
                    pass  # the node may close while we still write
            await raw.wait_closed()
        finally:
            raw.close()
        assert "beamlet.distribution" in caplog.text and "WARNING" in caplog.text
        await round_trip(b)
        assert nodes() == [b.name]


async def test_wrong_digest_is_refused(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    raw = await RawPeer.open(node)
    try:
        with pytest.raises((ConnectionError, AssertionError)):
            await raw.handshake(cookie="not the cookie")
        await raw.wait_closed()
    finally:
        raw.close()
    assert "wrong cookie" in caplog.text
    async with beamlet_node(epmd_port) as b:
        await round_trip(b)


# --------------------------------------------------------------------------- after it

MALFORMED = {
    "not-pass-through": b"h" + etf.encode(Atom("x")),
    "bad-etf": b"p\x83\xff\x00",
    "truncated-etf": b"p\x83h\x03a\x16",
    "not-a-tuple": b"p" + etf.encode([22, 1, 2]),
    "wrong-arity": b"p" + etf.encode((22, Atom("x"))) + etf.encode(1),
    "wrong-field-type": b"p" + etf.encode((22, 1, 2)) + etf.encode(Atom("m")),
    "missing-payload": b"p" + etf.encode((22, Pid(Atom("a@b"), 1), Pid(Atom("a@b"), 2))),
    "unexpected-payload": b"p"
    + etf.encode((1, Pid(Atom("a@b"), 1), Pid(Atom("a@b"), 2)))
    + etf.encode(1),
    "trailing-bytes": b"p" + etf.encode((5,)) + etf.encode(1) + b"\x00",
    "unknown-opcode": b"p" + etf.encode((99, Atom("x"))),
    "empty-frame-body": b"p",
    # issue 10 §3/§5: each of these escaped _on_frame (TypeError, RecursionError) or
    # crashed the interpreter (hashing a 200,000-deep tuple recurses in C).
    "list-opcode": b"p" + etf.encode(([], 1)),
    "deep-control": b"p\x83" + b"h\x01" * 200_000 + b"a\x01",
    "huge-int-opcode": b"p" + etf.encode((2**40_000, 1)),
    "deep-reason": b"p\x83h\x04a\x03"
    + etf.encode_body(Pid(Atom("a@b"), 1))
    + etf.encode_body(Pid(Atom("a@b"), 2))
    + b"h\x01" * 5_000
    + b"j",
    "huge-frame-of-ints": b"p" + etf.encode((22, 2**100_000, 2**100_000)) + etf.encode(1),
}


@pytest.mark.parametrize("frame", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_frame_after_handshake(
    node: DistNode, epmd_port: int, frame: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with beamlet_node(epmd_port) as b:
        await round_trip(b)
        raw = await RawPeer.open(node)
        try:
            await raw.handshake()
            fake, ref, local = await arm(raw)
            await raw.send_frame(frame)
            await expect_noconnection(raw, fake, ref, local)
            await raw.wait_closed()
        finally:
            raw.close()
        assert "malformed distribution message" in caplog.text
        await round_trip(b)


async def test_truncated_frame_then_disconnect(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        raw = await RawPeer.open(node)
        try:
            await raw.handshake()
            fake, ref, local = await arm(raw)
            body = b"p" + etf.encode((22, raw.pid(1), beamlet.self())) + etf.encode(b"x" * 100)
            await raw.send(struct.pack(">I", len(body)) + body[: len(body) // 2])
        finally:
            raw.close()  # mid-message
        await expect_noconnection(raw, fake, ref, local)
        # The half message was never delivered.
        assert await beamlet.receive(bytes, timeout=0, default=None) is None
        await round_trip(b)


@pytest.mark.dist(max_frame=64 * 1024)
async def test_oversized_frame(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with beamlet_node(epmd_port) as b:
        raw = await RawPeer.open(node)
        try:
            await raw.handshake()
            fake, ref, local = await arm(raw)
            # A frame just under the limit is fine...
            ok = b"p" + etf.encode((22, raw.pid(1), beamlet.self())) + etf.encode(b"y" * 60_000)
            await raw.send_frame(ok)
            assert await beamlet.receive(bytes, timeout=TIMEOUT) == b"y" * 60_000
            # ...one over it is refused from its header alone.
            await raw.send(struct.pack(">I", 64 * 1024 + 1))
            await expect_noconnection(raw, fake, ref, local)
            await raw.wait_closed()
        finally:
            raw.close()
        assert "exceeds the limit" in caplog.text
        await round_trip(b)


@pytest.mark.dist(max_write_buffer=256 * 1024)
async def test_peer_that_never_reads(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with beamlet_node(epmd_port) as b:
        raw = await RawPeer.open(node)
        try:
            await raw.handshake()
            fake, ref, local = await arm(raw)
            # From now on the peer reads nothing; we write until the node gives up.
            conn = node.d.conns[raw.name]
            chunk = b"z" * (128 * 1024)
            for _ in range(10_000):
                if conn.closed:
                    break
                beamlet.send(raw.pid(9), chunk)
            assert conn.closed
            await expect_noconnection(raw, fake, ref, local)
        finally:
            raw.close()
        assert "does not read" in caplog.text
        await round_trip(b)


async def test_tick_is_answered_and_unknown_names_dropped(node: DistNode) -> None:
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        # A tick is answered with a tick, unless the node wrote since the last one (its
        # hello after the handshake): the second one is answered.
        await raw.send(b"\x00\x00\x00\x00" * 2)
        assert await raw._take(4) == b"\x00\x00\x00\x00"
        # A message to an unknown name and to a dead pid: dropped, connection stays.
        await raw.send_ctl((REG_SEND, raw.pid(1), Atom(""), Atom("nobody")), Atom("hi"))
        await raw.send_ctl((SEND_SENDER, raw.pid(1), Pid(node.name, 999_999, 0, 1)), 1)
        fake, ref, local = await arm(raw)
        assert raw.name in nodes()
        raw.close()
        await expect_noconnection(raw, fake, ref, local)
    finally:
        raw.close()


async def test_logs_name_the_peer(node: DistNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beamlet.distribution")
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        await raw.send_frame(MALFORMED["unknown-opcode"])
        await raw.wait_closed()
    finally:
        raw.close()
    assert str(raw.name) in caplog.text and "unknown control message opcode 99" in caplog.text


async def test_a_peer_that_hangs_up_before_its_name_is_no_refusal(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The loser of a simultaneous connect may close its socket before its send_name
    (Erlang's net_kernel kills its own attempt when ours wins): an INFO line, not a
    warning about a refused connection, and the node carries on."""
    caplog.set_level(logging.INFO, logger="beamlet.distribution")
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "connection from ?" in record.getMessage() or "send_name" in record.getMessage():
                seen.set()  # the accept ended, one way or the other

    watch = Watch()
    logging.getLogger("beamlet.distribution").addHandler(watch)
    try:
        async with beamlet_node(epmd_port) as b:
            raw = await RawPeer.open(node)
            raw.close()
            async with asyncio.timeout(TIMEOUT):
                await seen.wait()
            assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert "hung up before its send_name" in caplog.text
            await round_trip(b)
    finally:
        logging.getLogger("beamlet.distribution").removeHandler(watch)
