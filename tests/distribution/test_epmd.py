"""EPMD client and built-in server (docs/protocol.md §1).

The first half runs against the built-in `EpmdServer` on an ephemeral port; the
`interop` half checks the client against the real `epmd` and `erl`, and the server
against real Erlang nodes (registration, lookup, and a `net_adm:ping` through it).

No test sleeps to wait for something: unregistration is awaited through
`Registration.close()` (which returns only once EPMD has closed its side, i.e. after it
dropped the name) or `EpmdServer.wait_unregistered`, and idle timeouts through the EOF
the server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import ipaddress
import itertools
import logging
import os
import random
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from beamlet._core.errors import BeamletError
from beamlet.distribution.epmd import (
    ALIVE2_REQ,
    ALIVE2_RESP,
    ALIVE2_X_RESP,
    NAMES_REQ,
    NODE_TYPE_HIDDEN,
    NODE_TYPE_NORMAL,
    PORT2_RESP,
    PORT_PLEASE2_REQ,
    EpmdAddressInUse,
    EpmdBadArgument,
    EpmdClient,
    EpmdError,
    EpmdProtocolError,
    EpmdServer,
    EpmdTimeout,
    EpmdUnavailable,
    NameInUse,
    NodeAddress,
    _is_local,
    default_epmd_port,
    ensure_epmd,
)

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- helpers


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, failing the test if anything reaches the loop's exception handler
    (an exception escaping a server callback, a task error never retrieved, ...)."""
    errors: list[dict[str, Any]] = []

    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        async with asyncio.timeout(40):
            return await coro

    result = asyncio.run(main())
    assert errors == [], errors
    return result


@contextlib.asynccontextmanager
async def built_in(**kwargs: Any) -> AsyncIterator[EpmdServer]:
    server = EpmdServer(**kwargs)
    await server.start(LOOPBACK, 0)
    try:
        yield server
    finally:
        await server.stop()


async def raw_exchange(port: int, data: bytes, *, eof: bool = True) -> bytes:
    """Send raw bytes to an EPMD and return everything it sends before closing."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    received = b""
    try:
        writer.write(data)
        if eof:
            writer.write_eof()
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        # Closing a socket with unread input sends RST instead of FIN: still "closed".
        pass
    finally:
        writer.close()
    return received


def alive2_body(
    name: bytes,
    port: int = 9100,
    *,
    node_type: int = NODE_TYPE_NORMAL,
    high: int = 6,
    low: int = 5,
    extra: bytes = b"",
) -> bytes:
    return (
        bytes([ALIVE2_REQ])
        + struct.pack(">HBBHHH", port, node_type, 0, high, low, len(name))
        + name
        + struct.pack(">H", len(extra))
        + extra
    )


def frame(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


async def assert_round_trip(server: EpmdServer, name: str = "probe") -> None:
    """A normal register / look-up / unregister still works."""
    client = EpmdClient(timeout=5)
    reg = await client.register(name, 9999, epmd_port=server.port)
    addr = await client.port_please(name, LOOPBACK, epmd_port=server.port)
    assert addr is not None and addr.port == 9999
    await reg.close()
    assert await client.port_please(name, LOOPBACK, epmd_port=server.port) is None


# --------------------------------------------------------------------------- built-in server


def test_register_port_please_names_round_trip() -> None:
    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient(timeout=5)
            reg = await client.register("alpha", 9100, hidden=False, epmd_port=server.port)
            assert reg.creation != 0 and reg.active
            hidden = await client.register("beta", 9200, epmd_port=server.port)

            alpha = await client.port_please("alpha", LOOPBACK, epmd_port=server.port)
            assert alpha == NodeAddress("alpha", 9100, NODE_TYPE_NORMAL, 0, 6, 6, b"")
            assert not alpha.hidden and alpha.supports(6) and not alpha.supports(5)
            beta = await client.port_please("beta@somehost", LOOPBACK, epmd_port=server.port)
            assert beta is not None and beta.port == 9200 and beta.node_type == NODE_TYPE_HIDDEN
            assert await client.port_please("nobody", LOOPBACK, epmd_port=server.port) is None

            assert sorted(await client.names(LOOPBACK, epmd_port=server.port)) == [
                ("alpha", 9100),
                ("beta", 9200),
            ]
            assert set(server.registrations()) == {"alpha", "beta"}

            # close() returns once the server dropped the name: no polling needed.
            await reg.close()
            assert not reg.active
            assert await client.port_please("alpha", LOOPBACK, epmd_port=server.port) is None
            assert await client.names(LOOPBACK, epmd_port=server.port) == [("beta", 9200)]
            await hidden.close()
            assert await client.names(LOOPBACK, epmd_port=server.port) == []

    run(main())


def test_unicode_name_round_trip() -> None:
    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient()
            async with await client.register("nœud_é", 9100, epmd_port=server.port):
                addr = await client.port_please("nœud_é", LOOPBACK, epmd_port=server.port)
                assert addr is not None and addr.name == "nœud_é"
                assert await client.names(LOOPBACK, epmd_port=server.port) == [("nœud_é", 9100)]

    run(main())


def test_registration_dropped_when_socket_dies_abruptly() -> None:
    async def main() -> None:
        async with built_in() as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(frame(alive2_body(b"crashy")))
            reply = await reader.readexactly(6)
            assert reply[:2] == bytes([ALIVE2_X_RESP, 0])
            assert "crashy" in server.registrations()
            writer.transport.abort()  # like a node killed with SIGKILL
            async with asyncio.timeout(5):
                await server.wait_unregistered("crashy")
            assert await EpmdClient().names(LOOPBACK, epmd_port=server.port) == []

    run(main())


def test_second_live_registration_is_refused() -> None:
    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient()
            first = await client.register("dup", 9100, epmd_port=server.port)
            with pytest.raises(NameInUse) as info:
                await client.register("dup", 9200, epmd_port=server.port)
            assert isinstance(info.value, BeamletError)
            # The refusal does not disturb the live registration...
            addr = await client.port_please("dup", LOOPBACK, epmd_port=server.port)
            assert addr is not None and addr.port == 9100 and first.active
            # ...and once it is gone the name is free again.
            await first.close()
            again = await client.register("dup", 9200, epmd_port=server.port)
            await again.close()

    run(main())


def test_creation_differs_from_previous_registration() -> None:
    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient()
            creations = []
            for _ in range(20):
                reg = await client.register("phoenix", 9100, epmd_port=server.port)
                creations.append(reg.creation)
                await reg.close()
            assert all(0 < c < 2**32 for c in creations)
            assert all(a != b for a, b in itertools.pairwise(creations))

    run(main())


def test_alive2_reply_format_follows_requested_version() -> None:
    async def main() -> None:
        async with built_in() as server:
            # OTP 25 registers with (6, 5): 32-bit creation in ALIVE2_X_RESP.
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(frame(alive2_body(b"modern", high=6, low=5)))
            tag, result, creation = struct.unpack(">BBI", await reader.readexactly(6))
            assert (tag, result) == (ALIVE2_X_RESP, 0) and creation != 0
            # A refused registration answers in the same format, non-zero result.
            dup = await raw_exchange(server.port, frame(alive2_body(b"modern")))
            assert len(dup) == 6 and dup[0] == ALIVE2_X_RESP and dup[1] != 0
            writer.close()

            # Pre-version-6 nodes get the legacy ALIVE2_RESP with a small creation.
            legacy = []
            for _ in range(4):
                reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
                writer.write(frame(alive2_body(b"old", high=5, low=5)))
                tag, result, creation = struct.unpack(">BBH", await reader.readexactly(4))
                assert (tag, result) == (ALIVE2_RESP, 0) and 1 <= creation <= 3
                legacy.append(creation)
                writer.write_eof()
                assert await reader.read() == b""  # server closed: "old" is unregistered
                writer.close()
            assert all(a != b for a, b in itertools.pairwise(legacy))

    run(main())


def test_port2_and_names_wire_format() -> None:
    async def main() -> None:
        async with built_in() as server:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            writer.write(frame(alive2_body(b"b", port=38059, extra=b"xy")))
            await reader.readexactly(6)

            unknown = await raw_exchange(server.port, frame(bytes([PORT_PLEASE2_REQ]) + b"zz"))
            assert unknown == bytes([PORT2_RESP, 1])
            known = await raw_exchange(server.port, frame(bytes([PORT_PLEASE2_REQ]) + b"b"))
            assert known == bytes.fromhex("77 00 94AB 4D 00 0006 0005 0001 62 0002") + b"xy"
            # epmd accepts a NUL-terminated name in PORT_PLEASE2_REQ.
            nul = await raw_exchange(server.port, frame(bytes([PORT_PLEASE2_REQ]) + b"b\0"))
            assert nul == known

            names = await raw_exchange(server.port, frame(bytes([NAMES_REQ])))
            assert names == struct.pack(">I", server.port) + b"name b at port 38059\n"
            writer.close()

    run(main())


MALFORMED = {
    "garbage": b"hello, world\r\n",
    "zero length": b"\x00\x00",
    "oversized length": b"\xff\xff" + b"x" * 4000,
    "one byte header": b"\x00",
    "truncated body": b"\x00\x20z",
    "unknown tag": frame(b"Q" + b"\x00" * 10),
    "dump": frame(b"d"),
    "kill": frame(b"k"),
    "stop": frame(b"sname"),
    "alive2 too short": frame(bytes([ALIVE2_REQ]) + b"\x00\x01"),
    "alive2 name length past end": frame(alive2_body(b"n")[:-3] + b"\xff\xff"),
    "alive2 extra length past end": frame(alive2_body(b"n")[:-2] + b"\x40\x00"),
    "alive2 trailing bytes": frame(alive2_body(b"n") + b"junk"),
    "alive2 empty name": frame(alive2_body(b"")),
    "alive2 NUL in name": frame(alive2_body(b"a\0b")),
    "alive2 invalid utf-8": frame(alive2_body(b"\xff\xfe")),
    "alive2 name too long": frame(alive2_body("é".encode() * 300)),
    "alive2 port 0": frame(alive2_body(b"n", port=0)),
    "port_please empty": frame(bytes([PORT_PLEASE2_REQ])),
    "port_please invalid utf-8": frame(bytes([PORT_PLEASE2_REQ]) + b"\xc3"),
    "random bytes": random.Random(1234).randbytes(3000),
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_request_is_dropped_and_server_survives(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient()
            async with await client.register("bystander", 9100, epmd_port=server.port):
                assert await raw_exchange(server.port, payload) == b""
                assert list(server.registrations()) == ["bystander"]
                await assert_round_trip(server)

    with caplog.at_level(logging.DEBUG, logger="beamlet.distribution.epmd"):
        run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_silent_clients_are_timed_out_but_registrations_are_not() -> None:
    async def main() -> None:
        async with built_in(idle_timeout=0.2) as server:
            client = EpmdClient()
            reg = await client.register("patient", 9100, epmd_port=server.port)
            # Silent and half-sent clients: the server closes them after idle_timeout.
            for data in (b"", b"\x00", b"\x00\x10abc"):
                reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
                writer.write(data)
                async with asyncio.timeout(5):
                    assert await reader.read() == b""
                writer.close()
            # The registration predates those clients, so it has been idle longer than
            # idle_timeout: registration sockets must not be timed out.
            assert reg.active and list(server.registrations()) == ["patient"]
            assert server.connection_count == 1
            await assert_round_trip(server)
            await reg.close()

    run(main())


def test_many_connections_and_connection_limit() -> None:
    async def main() -> None:
        async with built_in() as server:
            conns = [await asyncio.open_connection(LOOPBACK, server.port) for _ in range(200)]
            await assert_round_trip(server)  # 200 idle connections do not starve others
            for _, writer in conns:
                writer.transport.abort()

        async with built_in(max_connections=3) as server:
            conns = [await asyncio.open_connection(LOOPBACK, server.port) for _ in range(3)]
            for _, writer in conns:  # make sure the server accepted all three
                writer.write(b"\x00")
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            async with asyncio.timeout(5):
                # The server may accept the 4th before the others' first read: either way,
                # with three handlers running, it must be shut at once.
                assert await reader.read() == b""
            writer.close()
            # Finish the three: truncated request + EOF; the server's EOF means their
            # handlers are done, so a normal request fits under the limit again.
            for reader, writer in conns:
                writer.write_eof()
                async with asyncio.timeout(5):
                    assert await reader.read() == b""
                writer.close()
            await assert_round_trip(server)

    run(main())


def test_registrations_per_client_are_bounded() -> None:
    # issue 10 §7: 1,023 held registrations used to fill max_connections and lock out
    # new nodes and look-ups. One client address holds at most
    # max_registrations_per_client of them; look-ups still get through.
    async def main() -> None:
        async with built_in(max_registrations_per_client=3) as server:
            client = EpmdClient()
            regs = [
                await client.register(f"n{i}", 9100 + i, epmd_port=server.port) for i in range(3)
            ]
            with pytest.raises(NameInUse):
                await client.register("n3", 9103, epmd_port=server.port)
            addr = await client.port_please("n0", LOOPBACK, epmd_port=server.port)
            assert addr is not None and addr.port == 9100
            await regs[0].close()
            await server.wait_unregistered("n0")
            again = await client.register("n3", 9103, epmd_port=server.port)
            assert sorted(server.registrations()) == ["n1", "n2", "n3"]
            for r in (*regs[1:], again):
                await r.close()
        with pytest.raises(EpmdBadArgument):
            EpmdServer(max_registrations_per_client=0)

    run(main())


def test_refusals_are_logged_at_powers_of_ten(caplog: pytest.LogCaptureFixture) -> None:
    # A flood of refused registrations used to log one warning each: now the 1st, 10th,
    # 100th... of a kind, with the count.
    async def main() -> None:
        async with built_in(max_registrations_per_client=1) as server:
            client = EpmdClient()
            held = await client.register("held", 9100, epmd_port=server.port)
            for i in range(25):
                with pytest.raises(NameInUse):
                    await client.register(f"n{i}", 9101 + i, epmd_port=server.port)
            await held.close()

    caplog.set_level(logging.WARNING, logger="beamlet")
    run(main())
    lines = [r.getMessage() for r in caplog.records if "registrations already" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].endswith("(1 such refusals so far)")
    assert lines[1].endswith("(10 such refusals so far)")


def test_stop_drops_registrations_and_is_idempotent() -> None:
    async def main() -> None:
        server = EpmdServer()
        await server.start(LOOPBACK, 0)
        port = server.port
        reg = await EpmdClient().register("orphan", 9100, epmd_port=port)
        waiter = asyncio.ensure_future(server.wait_unregistered("orphan"))
        await server.stop()
        await server.stop()
        assert not server.serving and server.registrations() == {}
        async with asyncio.timeout(5):
            await waiter
            await reg.wait_lost()  # the client notices EPMD going away
        assert not reg.active
        await reg.close()
        await reg.close()
        with pytest.raises(EpmdUnavailable):
            await EpmdClient().names(LOOPBACK, epmd_port=port)

    run(main())


def test_registration_close_is_idempotent_and_concurrent() -> None:
    async def main() -> None:
        async with built_in() as server:
            reg = await EpmdClient().register("twice", 9100, epmd_port=server.port)
            await asyncio.gather(reg.close(), reg.close())
            await reg.close()
            assert server.registrations() == {}

    run(main())


def test_server_start_errors() -> None:
    async def main() -> None:
        async with built_in() as server:
            other = EpmdServer()
            with pytest.raises(EpmdError, match="already in use"):
                await other.start(LOOPBACK, server.port)
            with pytest.raises(EpmdError, match="already started"):
                await server.start(LOOPBACK, 0)
        with pytest.raises(EpmdError, match="not started"):
            _ = EpmdServer().port

    run(main())


def test_registration_only_from_local_peers() -> None:
    class FakeWriter:
        def __init__(self, peer: tuple[str, int], sock: tuple[str, int]) -> None:
            self.info = {"peername": peer, "sockname": sock}

        def get_extra_info(self, key: str) -> object:
            return self.info[key]

    def local(peer: str, sock: str) -> bool:
        return _is_local(FakeWriter((peer, 1), (sock, 2)))  # type: ignore[arg-type]

    assert local("127.0.0.1", "127.0.0.1")
    assert local("127.1.2.3", "10.0.0.1")
    assert local("::1", "::1")
    assert local("::ffff:127.0.0.1", "::")
    assert local("10.0.0.1", "10.0.0.1")  # this host's own address
    assert not local("10.0.0.2", "10.0.0.1")


# --------------------------------------------------------------------------- client errors


def test_connection_refused_is_epmd_unavailable() -> None:
    async def main() -> None:
        port = free_port()
        client = EpmdClient(timeout=2)
        for call in (
            lambda: client.names(LOOPBACK, epmd_port=port),
            lambda: client.port_please("x", LOOPBACK, epmd_port=port),
            lambda: client.register("x", 9100, epmd_port=port),
        ):
            with pytest.raises(EpmdUnavailable, match="connection refused") as info:
                await call()
            assert isinstance(info.value, BeamletError)

    run(main())


@contextlib.asynccontextmanager
async def fake_epmd(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_silent_epmd_times_out() -> None:
    async def main() -> None:
        never = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await never.wait()

        async with fake_epmd(silent) as port:
            client = EpmdClient(timeout=0.2)
            with pytest.raises(EpmdTimeout):
                await client.names(LOOPBACK, epmd_port=port)
            with pytest.raises(EpmdTimeout):
                await client.register("x", 9100, epmd_port=port)
            never.set()

    run(main())


@pytest.mark.parametrize(
    ("reply", "call"),
    [
        (b"\x00", "port_please"),  # closed mid-reply
        (b"\x42\x00", "port_please"),  # wrong tag
        (b"\x77\x00\x12", "port_please"),  # truncated PORT2_RESP
        (b"\x42\x00", "register"),
        (b"\x76\x00\x00\x00\x00\x00", "register"),  # creation 0 is reserved
        (b"\x00\x00\x11\x11garbage line\n", "names"),
        (b"\x00\x00", "names"),
    ],
)
def test_malformed_replies_are_protocol_errors(reply: bytes, call: str) -> None:
    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            await reader.readexactly(length)
            writer.write(reply)
            await writer.drain()

        async with fake_epmd(answer) as port:
            client = EpmdClient(timeout=2)
            with pytest.raises(EpmdProtocolError):
                if call == "port_please":
                    await client.port_please("x", LOOPBACK, epmd_port=port)
                elif call == "register":
                    await client.register("x", 9100, epmd_port=port)
                else:
                    await client.names(LOOPBACK, epmd_port=port)

    run(main())


@pytest.mark.parametrize(
    ("name", "port"),
    [("", 9100), ("a@b", 9100), ("nul\0", 9100), ("x" * 256, 9100), ("x", 0), ("x", 65536)],
)
def test_bad_arguments(name: str, port: int) -> None:
    async def main() -> None:
        with pytest.raises(EpmdBadArgument) as info:
            await EpmdClient().register(name, port, epmd_port=1)
        assert isinstance(info.value, BeamletError) and isinstance(info.value, ValueError)

    run(main())
    with pytest.raises(EpmdBadArgument):
        EpmdClient(timeout=0)


def test_erl_epmd_port_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERL_EPMD_PORT", raising=False)
    assert default_epmd_port() == 4369
    monkeypatch.setenv("ERL_EPMD_PORT", "nope")
    with pytest.raises(EpmdBadArgument):
        default_epmd_port()

    async def main() -> None:
        async with built_in() as server:
            monkeypatch.setenv("ERL_EPMD_PORT", str(server.port))
            client = EpmdClient()
            async with await client.register("envy", 9100):
                assert await client.names(LOOPBACK) == [("envy", 9100)]

    run(main())


def test_ensure_epmd() -> None:
    async def main() -> None:
        # Something already answers: leave it alone.
        async with built_in() as server:
            assert await ensure_epmd(LOOPBACK, server.port) is None

        # Nothing there: start the built-in server.
        port = free_port()
        started = await ensure_epmd(LOOPBACK, port)
        assert started is not None and started.serving and started.port == port
        try:
            await assert_round_trip(started)
        finally:
            await started.stop()

        # The port is held by a bound socket that never listens (issue 10 §7): the bind
        # error is reported, not "connection refused" later.
        with socket.socket() as squatter:
            squatter.bind((LOOPBACK, 0))
            with pytest.raises(EpmdAddressInUse, match="does not accept connections"):
                await ensure_epmd(LOOPBACK, squatter.getsockname()[1])

        # The race: the probe is refused, then the bind fails because another EPMD took
        # the port meanwhile; it listens a moment later, and that one is used.
        with socket.socket() as racer:
            racer.bind((LOOPBACK, 0))
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, racer.listen)
            assert await ensure_epmd(LOOPBACK, racer.getsockname()[1]) is None

    run(main())


# --------------------------------------------------------------------------- interop


def require_erlang() -> tuple[str, str]:
    """Paths of `erl` and `epmd`; skip (or fail under CI=true) when they are missing."""
    erl = shutil.which("erl")
    epmd = shutil.which("epmd")
    if erl is not None and epmd is None:
        root = os.path.dirname(os.path.realpath(erl))
        found = sorted(glob.glob(os.path.join(root, "..", "erts-*", "bin", "epmd")))
        epmd = found[-1] if found else None
    if erl is None or epmd is None:
        if os.environ.get("CI") == "true":
            pytest.fail("erl/epmd not found, and CI=true forbids skipping interop tests")
        pytest.skip("erl/epmd not installed")
    return erl, epmd


def node_name(alive: str) -> tuple[list[str], str]:
    """`erl` arguments and full node name; -sname unless the short host is not loopback
    (our server listens on 127.0.0.1 only, and peers look nodes up at their host part)."""
    host = socket.gethostname().split(".")[0]
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if loopback:
        return ["-sname", alive], f"{alive}@{host}"
    return ["-name", f"{alive}@127.0.0.1"], f"{alive}@127.0.0.1"


async def read_until(
    stream: asyncio.StreamReader, marker: bytes, proc: asyncio.subprocess.Process
) -> bytes:
    seen = b""
    async with asyncio.timeout(30):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"process {proc.pid} exited early; output: {seen!r}")
            seen += line
    return seen


async def drain(stream: asyncio.StreamReader | None) -> None:
    if stream is not None:
        while await stream.read(65536):
            pass


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


@contextlib.asynccontextmanager
async def real_epmd(epmd: str) -> AsyncIterator[int]:
    """A foreground `epmd` on a free port; `-d -d` makes it say when it is listening."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ERL_EPMD_PORT"}
    proc = await asyncio.create_subprocess_exec(
        epmd, "-port", str(port), "-relaxed_command_check", "-d", "-d",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    drainer: asyncio.Task[None] | None = None
    try:
        assert proc.stderr is not None
        await read_until(proc.stderr, b"entering the main select() loop", proc)
        drainer = asyncio.ensure_future(drain(proc.stderr))
        yield port
    finally:
        await kill(proc)
        if drainer is not None:
            await drainer


@contextlib.asynccontextmanager
async def erl_node(
    erl: str, alive: str, epmd_port: int, *, dist_port: int | None = None, evaluate: str = ""
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, bytes]]:
    """A real Erlang node using the EPMD on `epmd_port`; yields once it is registered
    (distribution starts before -eval runs) with its output so far."""
    args, full_name = node_name(alive)
    if dist_port is not None:
        args += ["-kernel", "inet_dist_listen_min", str(dist_port)]
        args += ["inet_dist_listen_max", str(dist_port)]
    env = dict(os.environ, ERL_EPMD_PORT=str(epmd_port))
    proc = await asyncio.create_subprocess_exec(
        erl, "-noshell", "-start_epmd", "false", "-setcookie", "beamlet_test", *args,
        "-eval", evaluate + 'io:format("ready~n")',
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    drainer: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None
        output = await read_until(proc.stdout, b"ready\n", proc)
        drainer = asyncio.ensure_future(drain(proc.stdout))
        yield full_name, proc, output
    finally:
        await kill(proc)
        if drainer is not None:
            await drainer


@pytest.mark.interop
def test_client_against_real_epmd() -> None:
    _, epmd = require_erlang()

    async def main() -> None:
        async with real_epmd(epmd) as port:
            client = EpmdClient(timeout=5)
            reg = await client.register("pyclient", 9100, epmd_port=port)
            assert reg.creation != 0
            addr = await client.port_please("pyclient", LOOPBACK, epmd_port=port)
            assert addr == NodeAddress("pyclient", 9100, NODE_TYPE_HIDDEN, 0, 6, 6, b"")
            assert await client.names(LOOPBACK, epmd_port=port) == [("pyclient", 9100)]
            assert await client.port_please("nobody", LOOPBACK, epmd_port=port) is None
            with pytest.raises(NameInUse):
                await client.register("pyclient", 9200, epmd_port=port)
            # close() waits for the real epmd's side of the shutdown, which comes only
            # after it dropped the name.
            await reg.close()
            assert await client.port_please("pyclient", LOOPBACK, epmd_port=port) is None
            again = await client.register("pyclient", 9100, epmd_port=port)
            assert again.creation not in (0, reg.creation)
            await again.close()

    run(main())


@pytest.mark.interop
def test_client_finds_real_erlang_node_via_real_epmd() -> None:
    erl, epmd = require_erlang()

    async def main() -> None:
        async with real_epmd(epmd) as port:
            dist_port = free_port()
            async with erl_node(erl, "erlnode", port, dist_port=dist_port):
                client = EpmdClient(timeout=5)
                addr = await client.port_please("erlnode", LOOPBACK, epmd_port=port)
                assert addr is not None
                assert addr.port == dist_port and addr.node_type == NODE_TYPE_NORMAL
                assert addr.protocol == 0 and addr.supports(6)
                assert ("erlnode", dist_port) in await client.names(LOOPBACK, epmd_port=port)

    run(main())


@pytest.mark.interop
def test_real_erlang_nodes_use_built_in_server() -> None:
    erl, _ = require_erlang()

    async def main() -> None:
        async with built_in() as server:
            client = EpmdClient(timeout=5)
            dist_port = free_port()
            async with erl_node(erl, "pong_a", server.port, dist_port=dist_port) as (a, _, _):
                addr = await client.port_please("pong_a", LOOPBACK, epmd_port=server.port)
                assert addr is not None and addr.port == dist_port and addr.supports(6)
                assert addr.node_type == NODE_TYPE_NORMAL
                assert ("pong_a", dist_port) in await client.names(LOOPBACK, epmd_port=server.port)

                # Node b registers with our server, finds a through it (PORT_PLEASE2_REQ)
                # and connects; net_adm:names/0 parses our NAMES reply.
                probe = f"io:format(\"~p~n~p~n\", [net_adm:ping('{a}'), net_adm:names()]), "
                async with erl_node(erl, "ping_b", server.port, evaluate=probe) as (_, _, out):
                    assert b"pong\n" in out, out
                    assert f'{{"pong_a",{dist_port}}}'.encode() in out, out
                    assert b'{"ping_b",' in out, out

            # a is killed: its registration socket dies and the server drops the name.
            async with asyncio.timeout(10):
                await server.wait_unregistered("pong_a")
            assert await client.port_please("pong_a", LOOPBACK, epmd_port=server.port) is None

    run(main())
