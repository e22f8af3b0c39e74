"""One distribution connection: handshake, framing, ticks (docs/protocol.md §2-§4).

An `asyncio.Protocol`, not a reader task: complete frames are parsed and dispatched
synchronously inside `data_received`, so a message from the network reaches a process
without an extra loop round trip. During the handshake, 2-byte-framed messages are
handed to the handshake coroutine one at a time; after it, 4-byte frames (length 0 is a
tick) go to `on_frame`.

Limits protect the node from a bad peer: a frame over `max_frame` bytes, a handshake
message over 64 KiB, or more than `max_write_buffer` bytes queued for a peer that does
not read close the connection with a log line (links and monitors across it then get
`noconnection`). Nothing here raises into the event loop.

`on_lost` is called exactly once per connection: at once when this side decides to
close it (`abort`, `close`), so that `noconnection` is delivered before anything else
can use the connection, or from `connection_lost` when the peer or the OS closed it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

from beamlet.distribution import handshake as hs

log = logging.getLogger("beamlet.distribution")

_U32 = struct.Struct(">I")
TICK = b"\x00\x00\x00\x00"
MAX_HANDSHAKE_MSG = 65535


class DistProtocol(asyncio.Protocol):
    """Transport side of one connection; `Distribution` drives the handshake."""

    def __init__(
        self,
        *,
        max_frame: int,
        max_write_buffer: int,
        on_frame: Callable[[DistProtocol, bytes], None],
        on_lost: Callable[[DistProtocol, BaseException | None], None],
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.connected = False  # handshake done: 4-byte framing
        self.closed = False  # this side stopped using the connection
        self.max_frame = max_frame
        self.max_write_buffer = max_write_buffer
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.peer: str | None = None  # node name once the handshake is done
        self.flags = 0  # the connection's: ours & the peer's
        self.legacy = False  # the peer lacks a modern flag: signals are rewritten for it
        # Per-connection codec options (see peer_kind.py): None is the codec's default.
        # `encode_options` for frames we send, `decode_options` for frames we receive.
        self.beamlet = False  # the peer said it is a beamlet node
        self.encode_options: Any = None
        self.decode_options: Any = None
        # Until the peer's kind is known (its answer to `probe`), frames wait here in
        # each encoding they may need (see DistCtrl._write_queued); None once known.
        self.pending: list[tuple[bytes | None, bytes | None]] | None = None
        self.probe: Any = None  # the Ref of that question
        self.probe_timer: asyncio.TimerHandle | None = None
        self.wrote = False  # since the last tick interval
        self.wrote_since_tick = False  # since the last tick we received
        self.read = False
        self.idle_ticks = 0
        self.bytes_in = 0  # counted per chunk read/written (beamlet.observe shows them)
        self.bytes_out = 0
        self._hs_waiter: asyncio.Future[None] | None = None
        self._made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost_reported = False
        # The last SEND control term received, raw and decoded: a peer process sending
        # many messages repeats the same control bytes, and ETF is prefix-free, so equal
        # bytes are the same term and need no second decode.
        self.ctl_raw: bytes | None = None
        self.ctl: tuple[Any, ...] = ()

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self._made.done():
            self._made.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._wake_handshake()
        self._report_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf += data
        self.read = True
        self.bytes_in += len(data)
        if not self.connected:
            self._wake_handshake()
            if len(self.buf) > MAX_HANDSHAKE_MSG + 2 + 64 * 1024:
                self.abort("handshake flood")
            return
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        n = len(buf)
        if n < 4:
            return
        size = _U32.unpack_from(buf, 0)[0]
        if size > self.max_frame:
            self.abort(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
            return
        if size and n < 4 + size:
            return  # the first frame is incomplete: wait for more, copy nothing
        data = bytes(buf)  # a snapshot: the frames handed out below are slices of it
        buf.clear()
        pos = 0
        try:
            while n - pos >= 4:
                size = _U32.unpack_from(data, pos)[0]
                if size == 0:
                    # A tick. Answer it unless we wrote since the last one: a peer with a
                    # short net_ticktime still hears from us, and two beamlet nodes
                    # never bounce ticks back and forth.
                    pos += 4
                    if not self.wrote_since_tick:
                        self.tick()
                    self.wrote_since_tick = False
                    continue
                if size > self.max_frame:
                    self.abort(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
                    return
                if n - pos - 4 < size:
                    break
                frame = data[pos + 4 : pos + 4 + size]
                pos += 4 + size
                self.on_frame(self, frame)
                if self.closed:
                    return
        finally:
            if pos < n and not self.closed:
                self.buf[:0] = data[pos:]

    # --- handshake I/O ----------------------------------------------------------------

    def _wake_handshake(self) -> None:
        w = self._hs_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait_made(self) -> None:
        await self._made

    async def read_hs(self, timeout: float) -> bytes:
        """The next 2-byte-framed handshake message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if len(self.buf) >= 2:
                size = int.from_bytes(self.buf[:2], "big")
                if len(self.buf) >= 2 + size:
                    msg = bytes(self.buf[2 : 2 + size])
                    del self.buf[: 2 + size]
                    return msg
            if self.closed:
                raise ConnectionError("connection closed during handshake")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("handshake step timed out")
            self._hs_waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._hs_waiter, remaining)
            finally:
                self._hs_waiter = None

    def write_hs(self, msg: bytes) -> None:
        self.write(hs.frame16(msg))

    def set_flags(self, flags: int) -> None:
        """The connection's flags; `legacy` if any of the optional ones beamlet uses
        (`handshake.MODERN`) is missing."""
        self.flags = flags
        self.legacy = flags & hs.MODERN != hs.MODERN

    def start_connected(self, peer: str, flags: int) -> None:
        """Switch to 4-byte framing; frames already buffered are dispatched now."""
        self.peer = peer
        self.set_flags(flags)
        self.connected = True
        self.wrote_since_tick = False  # handshake messages are not traffic
        if self.buf and not self.closed:
            self._frames()

    # --- output -------------------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        t = self.transport
        if t is None or self.closed or t.is_closing():
            return  # writing to a closed socket only floods the log
        t.write(data)
        self.bytes_out += len(data)
        self.wrote = True
        self.wrote_since_tick = True
        if t.get_write_buffer_size() > self.max_write_buffer:
            # Called from inside a send: stop writing now, and report the loss from the
            # loop rather than from under the sender's feet.
            self.closed = True
            log.warning(
                "beamlet.distribution: closing connection to %s: peer does not read, more than "
                "%d bytes queued",
                self.peer or "?",
                self.max_write_buffer,
            )
            t.abort()
            asyncio.get_running_loop().call_soon(
                self._report_lost, ConnectionAbortedError("peer does not read")
            )

    def write_frame(self, body: bytes | bytearray) -> None:
        self.write(_U32.pack(len(body)) + body)

    def tick(self) -> None:
        self.write(TICK)

    def abort(self, why: str, *, quiet: bool = False) -> None:
        """Drop the connection now (a protocol error, a timeout): logged as a warning
        unless `quiet` (the caller logged it already)."""
        if self.closed:
            return
        if not quiet:
            log.warning("beamlet.distribution: closing connection to %s: %s", self.peer or "?", why)
        self.closed = True
        self._wake_handshake()
        if self.transport is not None:
            self.transport.abort()
        self._report_lost(ConnectionAbortedError(why))

    def close(self) -> None:
        """Close the connection in an orderly way (disconnect, node stop)."""
        if self.closed:
            return
        self.closed = True
        self._wake_handshake()
        if self.transport is not None:
            self.transport.close()
        self._report_lost(None)

    def _report_lost(self, exc: BaseException | None) -> None:
        if self._lost_reported:
            return
        self._lost_reported = True
        try:
            self.on_lost(self, exc)
        except Exception:
            log.exception("beamlet.distribution: connection-lost handler failed")


def describe(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}" if exc else "closed"
