"""`RawPeer`: a hand-driven distribution peer on a raw socket, for fault and attack tests.

It speaks just enough of the protocol (the initiator's handshake, framing) to reach the
connected state, and lets a test break any rule on the way.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from dist_nodes import COOKIE, LOOPBACK, DistNode, unique

from beamlet import Atom, Pid
from beamlet.distribution import etf
from beamlet.distribution import handshake as hs

TIMEOUT = 5.0


class RawPeer:
    """A hand-driven peer node `rawN@127.0.0.1` on a non-blocking socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = Atom(name)
        self.creation = 7
        self.buf = bytearray()

    @classmethod
    async def open(cls, node: DistNode, name: str | None = None) -> RawPeer:
        """A socket to `node`'s distribution port; the peer's name is `name` or new."""
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up quickly
        await asyncio.get_running_loop().sock_connect(s, (LOOPBACK, node.d.port))
        return cls(s, name or f"{unique('raw')}@{LOOPBACK}")

    def pid(self, n: int) -> Pid:
        return Pid(self.name, n, 0, self.creation)

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _fill(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(TIMEOUT):
            while len(self.buf) < n:
                chunk = await loop.sock_recv(self.sock, 65536)
                if not chunk:
                    raise ConnectionError("closed by the node")
                self.buf += chunk

    async def _take(self, n: int) -> bytes:
        await self._fill(n)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_hs(self) -> bytes:
        (size,) = struct.unpack(">H", await self._take(2))
        return await self._take(size)

    async def handshake(
        self,
        cookie: str = COOKIE,
        *,
        status: str = "ok",
        flags: int = hs.OUR_FLAGS,
        answer_probe: bool = True,
    ) -> None:
        """The initiator's handshake; `status` is the one the node must answer (after
        `alive` this peer says `true`: it claims to replace the node's connection).
        `answer_probe=False` leaves the node's peer-kind probe unanswered."""
        await self.send(hs.frame16(hs.send_name(self.name, flags, self.creation)))
        assert hs.parse_status(await self.read_hs()) == status
        if status == "alive":
            await self.send(hs.frame16(hs.status("true")))
        challenge = hs.parse_challenge(await self.read_hs())
        mine = 0x1234_5678
        reply = hs.challenge_reply(mine, hs.digest(cookie, challenge.challenge))
        await self.send(hs.frame16(reply))
        assert hs.parse_challenge_ack(await self.read_hs()) == hs.digest(cookie, mine)
        if flags & hs.MODERN == hs.MODERN:
            # A beamlet node says hello first and asks what we are, with a monitor of
            # the name `beamlet_dist` (peer_kind.py); answer as Erlang does: noproc.
            ctl, _hello = await self.read_ctl()
            assert ctl[0] == 6 and ctl[3] == Atom("beamlet_dist"), ctl
            ctl, _ = await self.read_ctl()
            assert ctl[0] == 19 and ctl[2] == Atom("beamlet_dist"), ctl
            if answer_probe:
                await self.send_ctl((28, ctl[2], ctl[1], ctl[3]), Atom("noproc"))

    async def send_frame(self, body: bytes) -> None:
        await self.send(struct.pack(">I", len(body)) + body)

    async def send_ctl(self, ctl: tuple[Any, ...], *payload: Any) -> None:
        body = b"p" + etf.encode(ctl) + b"".join(etf.encode(p) for p in payload)
        await self.send_frame(body)

    async def read_ctl(self) -> tuple[Any, Any]:
        """The next control message (and payload, or None), skipping ticks."""
        while True:
            (size,) = struct.unpack(">I", await self._take(4))
            if size:
                break
        frame = await self._take(size)
        ctl, off = etf.decode_prefix(frame, 1)
        payload = etf.decode_prefix(frame, off)[0] if off < len(frame) else None
        return ctl, payload

    async def wait_closed(self) -> None:
        """Read (and drop) until the node closes the connection."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    if not await loop.sock_recv(self.sock, 65536):
                        return
                except ConnectionError:
                    return

    def close(self) -> None:
        self.sock.close()
