"""A beamlet node under attack from peers that reach its distribution port.

Each test is one attack from docs/reliability.md "Distribution attacks": it runs the
attack over a raw socket (`raw_peer.RawPeer`) and checks the outcome the table states,
then that the node is alive (a round trip on another connection).
"""

from __future__ import annotations

from conftest import DistNode
from raw_peer import TIMEOUT, RawPeer
from test_dist_faults import arm, expect_noconnection

import beamlet
from beamlet import NOCONNECTION, Atom, Down, Exit, Ref
from beamlet.distribution import NodeDown, nodes
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
