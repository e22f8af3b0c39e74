"""EPMD (Erlang Port Mapper Daemon): an asyncio client and a built-in compatible server.

Every Erlang node registers its short name and distribution port with the EPMD of its
host (TCP 4369, or `ERL_EPMD_PORT`); peers ask that EPMD where a node listens before
connecting. This module speaks the protocol of docs/protocol.md §1:

* `EpmdClient` registers a node (`register`, the socket stays open for the node's
  lifetime), looks nodes up (`port_please`) and lists them (`names`).
* `EpmdServer` is a small EPMD-compatible name server, so Python-only clusters (and
  Erlang nodes, see the interop tests) work on machines without `epmd`.
* `ensure_epmd` starts the built-in server only when nothing answers on the port.

Examples:
    >>> import asyncio
    >>> async def demo() -> tuple[int, bool]:
    ...     server = EpmdServer()
    ...     await server.start(port=0)          # ephemeral port, loopback only
    ...     client = EpmdClient()
    ...     reg = await client.register("demo", 9100, epmd_port=server.port)
    ...     addr = await client.port_please("demo", "127.0.0.1", epmd_port=server.port)
    ...     await reg.close()
    ...     await server.stop()
    ...     return addr.port if addr else 0, reg.creation != 0
    >>> asyncio.run(demo())
    (9100, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from beamlet._core import BeamletError

__all__ = [
    "DEFAULT_EPMD_PORT",
    "NODE_TYPE_HIDDEN",
    "NODE_TYPE_NORMAL",
    "EpmdAddressInUse",
    "EpmdBadArgument",
    "EpmdClient",
    "EpmdError",
    "EpmdProtocolError",
    "EpmdServer",
    "EpmdTimeout",
    "EpmdUnavailable",
    "NameInUse",
    "NodeAddress",
    "Registration",
    "default_epmd_port",
    "ensure_epmd",
]

logger = logging.getLogger("beamlet.distribution.epmd")

T = TypeVar("T")

DEFAULT_EPMD_PORT = 4369
DEFAULT_TIMEOUT = 5.0

NODE_TYPE_NORMAL = 77  # 'M'
NODE_TYPE_HIDDEN = 72  # 'H'
PROTOCOL_TCP_IPV4 = 0

# The versions a Python node registers with (§1: "A Python node should register 6, 6").
DIST_VERSION_HIGH = 6
DIST_VERSION_LOW = 6

ALIVE2_REQ = 120  # 'x'
ALIVE2_X_RESP = 118  # 'v'
ALIVE2_RESP = 121  # 'y'
PORT_PLEASE2_REQ = 122  # 'z'
PORT2_RESP = 119  # 'w'
NAMES_REQ = 110  # 'n'
DUMP_REQ = 100  # 'd'
KILL_REQ = 107  # 'k'
STOP_REQ = 115  # 's'

# epmd's own limits (epmd.h): names are at most 255 characters of UTF-8 (MAXSYMLEN bytes),
# and a request never exceeds its input buffer (INBUF_SIZE = 3 * MAXSYMLEN).
MAX_NAME_CHARS = 255
MAXSYMLEN = 255 * 4
MAX_REQUEST_LEN = 3 * MAXSYMLEN

_ALIVE2_FIXED = struct.Struct(">HBBHHH")  # port, type, protocol, high, low, name length
_PORT2_FIXED = struct.Struct(">HBBHHH")  # same layout after the result byte


def default_epmd_port() -> int:
    """The EPMD port: `ERL_EPMD_PORT` when set (as `erl` and `epmd` read it), else 4369.

    Examples:
        >>> 0 < default_epmd_port() < 65536
        True
    """
    raw = os.environ.get("ERL_EPMD_PORT", "").strip()
    if not raw:
        return DEFAULT_EPMD_PORT
    try:
        port = int(raw)
    except ValueError:
        raise EpmdBadArgument(f"ERL_EPMD_PORT is not a port number: {raw!r}") from None
    _check_port(port, "ERL_EPMD_PORT")
    return port


# --------------------------------------------------------------------------- errors


class EpmdError(BeamletError):
    """Base class of every EPMD error (client and server)."""


class EpmdUnavailable(EpmdError, ConnectionError):
    """No EPMD answers at that address (connection refused, reset or unreachable)."""


class EpmdTimeout(EpmdError, TimeoutError):
    """An EPMD request did not complete within the client's timeout."""


class EpmdProtocolError(EpmdError):
    """EPMD sent a reply that does not follow the protocol (or closed mid-reply)."""


class NameInUse(EpmdError):
    """EPMD refused a registration: the name is already registered by a live node."""


class EpmdBadArgument(EpmdError, ValueError):
    """An invalid node name or port was passed to the client or the server."""


class EpmdAddressInUse(EpmdError):
    """`EpmdServer.start` could not bind because the address is already in use."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """What EPMD knows about a registered node (a `PORT2_RESP`).

    Examples:
        >>> a = NodeAddress("x", 9100, NODE_TYPE_NORMAL, 0, 6, 5)
        >>> a.hidden, a.supports(6)
        (False, True)
    """

    name: str
    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    extra: bytes = b""

    @property
    def hidden(self) -> bool:
        """True when the node registered as hidden (`NodeType` 72)."""
        return self.node_type == NODE_TYPE_HIDDEN

    def supports(self, version: int = DIST_VERSION_HIGH) -> bool:
        """Whether the node's advertised version range contains `version`."""
        return self.lowest_version <= version <= self.highest_version


def _check_port(port: int, what: str = "port") -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise EpmdBadArgument(f"{what} must be an integer in 1..65535, got {port!r}")


def _alive_name(name: str) -> bytes:
    """Validate a node's short name (the part before `@`) and encode it as epmd does."""
    if not isinstance(name, str) or not name:
        raise EpmdBadArgument(f"node name must be a non-empty str, got {name!r}")
    if "@" in name or "\x00" in name or len(name) > MAX_NAME_CHARS:
        raise EpmdBadArgument(f"invalid node name {name!r} (no '@' or NUL, <= 255 chars)")
    return name.encode("utf-8")


def _frame(request: bytes) -> bytes:
    return struct.pack(">H", len(request)) + request


async def _close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Close politely, but never hang on a peer that does not read: abort after `timeout`."""
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        pass


# --------------------------------------------------------------------------- client


class Registration:
    """A live EPMD registration; the node stays registered while this socket is open.

    Obtained from `EpmdClient.register`. `creation` is the node incarnation EPMD assigned
    (non-zero). `await close()` unregisters: it half-closes the socket and returns once
    EPMD has closed its side, which both the real epmd and `EpmdServer` do only after
    dropping the name — so a lookup made after `close()` returns no longer sees it.

    Examples:
        >>> async def demo(client: EpmdClient) -> None:
        ...     async with await client.register("worker", 9100) as reg:
        ...         print(reg.creation)
    """

    def __init__(
        self,
        *,
        name: str,
        port: int,
        creation: int,
        hidden: bool,
        host: str,
        epmd_port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
    ) -> None:
        self.name = name
        self.port = port
        self.creation = creation
        self.hidden = hidden
        self.host = host
        self.epmd_port = epmd_port
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._closer: asyncio.Task[None] | None = None
        # One reader for the socket's whole life: it notices EPMD going away and lets
        # close() wait for EPMD's side of the shutdown.
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def __repr__(self) -> str:
        state = "active" if self.active else "closed"
        return f"<Registration {self.name!r} port={self.port} creation={self.creation} {state}>"

    async def _watch(self) -> None:
        try:
            while await self._reader.read(4096):
                pass  # EPMD sends nothing after the reply; ignore anything that comes.
        except (OSError, RuntimeError) as exc:
            logger.debug("registration %r: socket error %r", self.name, exc)
        if self._closer is None:
            logger.warning("EPMD closed the registration of %r; the name is gone", self.name)

    @property
    def active(self) -> bool:
        """True while the registration socket is open and EPMD has not closed it."""
        return self._closer is None and not self._watcher.done()

    async def wait_lost(self) -> None:
        """Return when the registration socket is closed (by EPMD or by `close()`)."""
        await asyncio.shield(self._watcher)

    async def close(self) -> None:
        """Unregister: close the socket and wait (bounded) until EPMD has dropped the name.

        Idempotent; concurrent callers all wait for the same close.
        """
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closer)

    async def _close(self) -> None:
        if not self._watcher.done():
            try:
                if self._writer.can_write_eof():
                    self._writer.write_eof()
                async with asyncio.timeout(self._timeout):
                    await asyncio.shield(self._watcher)
            except (OSError, RuntimeError, TimeoutError) as exc:
                logger.debug("registration %r: unclean close %r", self.name, exc)
            self._watcher.cancel()
        await _close_writer(self._writer)

    async def __aenter__(self) -> Registration:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class EpmdClient:
    """Talks to an EPMD (the real one or `EpmdServer`).

    Every network operation is bounded by `timeout` seconds (`EpmdTimeout`); a refused or
    reset connection raises `EpmdUnavailable`. `epmd_port=None` means `ERL_EPMD_PORT` or
    4369, read at each call.

    Examples:
        >>> async def where(name: str) -> int | None:
        ...     addr = await EpmdClient(timeout=2.0).port_please(name, "127.0.0.1")
        ...     return addr.port if addr else None
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not timeout > 0:
            raise EpmdBadArgument(f"timeout must be > 0, got {timeout!r}")
        self.timeout = timeout

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_connection(host, port)
        # TimeoutError and ConnectionRefusedError are OSErrors: order matters.
        except TimeoutError:
            raise EpmdTimeout(f"connecting to EPMD at {host}:{port} timed out") from None
        except ConnectionRefusedError as exc:
            raise EpmdUnavailable(
                f"no EPMD at {host}:{port} (connection refused); start epmd, or use "
                "ensure_epmd() to run the built-in one"
            ) from exc
        except OSError as exc:
            raise EpmdUnavailable(f"cannot reach EPMD at {host}:{port}: {exc}") from exc

    async def _exchange(
        self,
        host: str,
        port: int,
        request: bytes,
        read_reply: Callable[[asyncio.StreamReader], Awaitable[T]],
        *,
        keep_open: bool = False,
    ) -> tuple[T, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._connect(host, port)
        ok = False
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(_frame(request))
                await writer.drain()
                result = await read_reply(reader)
            ok = True
            return result, reader, writer
        except TimeoutError:
            raise EpmdTimeout(f"EPMD at {host}:{port} did not answer in time") from None
        except asyncio.IncompleteReadError:
            raise EpmdProtocolError(
                f"EPMD at {host}:{port} closed the connection mid-reply"
            ) from None
        except OSError as exc:
            raise EpmdUnavailable(f"connection to EPMD at {host}:{port} failed: {exc}") from exc
        finally:
            if not (ok and keep_open):
                await _close_writer(writer)

    async def register(
        self,
        name: str,
        port: int,
        *,
        hidden: bool = True,
        host: str = "127.0.0.1",
        epmd_port: int | None = None,
    ) -> Registration:
        """Register `name` (the part before `@`) as listening on distribution `port`.

        Returns a `Registration` holding the socket open; the name is registered until it
        is closed. Raises `NameInUse` if a live node already holds the name.

        Examples:
            >>> async def start(client: EpmdClient) -> Registration:
            ...     reg = await client.register("py", 9100, hidden=False)
            ...     return reg          # reg.creation goes into pids and the handshake
        """
        raw_name = _alive_name(name)
        _check_port(port)
        epmd_port = default_epmd_port() if epmd_port is None else epmd_port
        _check_port(epmd_port, "epmd_port")
        node_type = NODE_TYPE_HIDDEN if hidden else NODE_TYPE_NORMAL
        request = (
            bytes([ALIVE2_REQ])
            + _ALIVE2_FIXED.pack(
                port,
                node_type,
                PROTOCOL_TCP_IPV4,
                DIST_VERSION_HIGH,
                DIST_VERSION_LOW,
                len(raw_name),
            )
            + raw_name
            + struct.pack(">H", 0)  # no extra
        )

        async def read_reply(reader: asyncio.StreamReader) -> tuple[int, int]:
            tag, result = await reader.readexactly(2)
            if tag == ALIVE2_X_RESP:
                size = 4
            elif tag == ALIVE2_RESP:
                size = 2
            else:
                raise EpmdProtocolError(f"unexpected reply tag {tag} to ALIVE2_REQ")
            if result != 0:
                return result, 0  # the creation bytes of a refusal carry nothing
            return result, int.from_bytes(await reader.readexactly(size), "big")

        (result, creation), reader, writer = await self._exchange(
            host, epmd_port, request, read_reply, keep_open=True
        )
        if result != 0 or creation == 0:
            await _close_writer(writer)
            if result != 0:
                raise NameInUse(
                    f"EPMD at {host}:{epmd_port} refused to register {name!r} "
                    f"(result {result}): the name is in use (or, on beamlet's built-in "
                    "EPMD, this address holds max_registrations_per_client names)"
                )
            raise EpmdProtocolError("EPMD assigned creation 0, which is reserved")
        logger.debug("registered %r port %d creation %d", name, port, creation)
        return Registration(
            name=name,
            port=port,
            creation=creation,
            hidden=hidden,
            host=host,
            epmd_port=epmd_port,
            reader=reader,
            writer=writer,
            timeout=self.timeout,
        )

    async def port_please(
        self, name: str, host: str, epmd_port: int | None = None
    ) -> NodeAddress | None:
        """Ask the EPMD on `host` where node `name` listens; None if it is not registered.

        `name` may be a full node name (`"x@host"`): only the part before `@` is sent.

        Examples:
            >>> async def lookup(client: EpmdClient) -> None:
            ...     addr = await client.port_please("x", "127.0.0.1")
            ...     if addr is not None and addr.supports(6):
            ...         print(addr.port)
        """
        raw_name = _alive_name(name.partition("@")[0] if isinstance(name, str) else name)
        epmd_port = default_epmd_port() if epmd_port is None else epmd_port
        _check_port(epmd_port, "epmd_port")

        async def read_reply(reader: asyncio.StreamReader) -> NodeAddress | None:
            tag, result = await reader.readexactly(2)
            if tag != PORT2_RESP:
                raise EpmdProtocolError(f"unexpected reply tag {tag} to PORT_PLEASE2_REQ")
            if result != 0:
                return None
            port, node_type, protocol, high, low, nlen = _PORT2_FIXED.unpack(
                await reader.readexactly(_PORT2_FIXED.size)
            )
            reply_name = await reader.readexactly(nlen)
            (elen,) = struct.unpack(">H", await reader.readexactly(2))
            extra = await reader.readexactly(elen)
            return NodeAddress(
                name=reply_name.decode("utf-8", errors="replace"),
                port=port,
                node_type=node_type,
                protocol=protocol,
                highest_version=high,
                lowest_version=low,
                extra=extra,
            )

        address, _, _ = await self._exchange(
            host, epmd_port, bytes([PORT_PLEASE2_REQ]) + raw_name, read_reply
        )
        return address

    async def names(self, host: str, epmd_port: int | None = None) -> list[tuple[str, int]]:
        """List `(name, port)` of every node registered with the EPMD on `host`.

        Examples:
            >>> async def show(client: EpmdClient) -> None:
            ...     for name, port in await client.names("127.0.0.1"):
            ...         print(name, port)
        """
        epmd_port = default_epmd_port() if epmd_port is None else epmd_port
        _check_port(epmd_port, "epmd_port")

        async def read_reply(reader: asyncio.StreamReader) -> bytes:
            await reader.readexactly(4)  # EPMD's own port number
            return await reader.read()  # then text lines until EPMD closes

        text, _, _ = await self._exchange(host, epmd_port, bytes([NAMES_REQ]), read_reply)
        return _parse_names(text)


def _parse_names(text: bytes) -> list[tuple[str, int]]:
    result: list[tuple[str, int]] = []
    for line in text.decode("utf-8", errors="replace").splitlines():
        # "name ~ts at port ~p"; rpartition copes with odd characters in the name.
        head, sep, port = line.rpartition(" at port ")
        if not sep or not head.startswith("name ") or not port.isdigit():
            raise EpmdProtocolError(f"malformed NAMES line {line!r}")
        result.append((head[len("name ") :], int(port)))
    return result


# --------------------------------------------------------------------------- server


@dataclass(slots=True)
class _Entry:
    address: NodeAddress
    creation: int
    gone: asyncio.Event


class EpmdServer:
    """A built-in EPMD-compatible name server (docs/protocol.md §1.2).

    Serves `ALIVE2_REQ` (answering `ALIVE2_X_RESP` to version-6 nodes, `ALIVE2_RESP` to
    older ones), `PORT_PLEASE2_REQ` and `NAMES_REQ`; `DUMP`/`KILL`/`STOP` and anything else
    just close the connection. A registration lives exactly as long as its socket. Like
    epmd, only peers on this host may register. Misbehaving clients (garbage, truncated or
    oversized requests, silence for `idle_timeout` seconds, more than `max_connections`
    connections) are logged and disconnected; nothing they send can stop the server.
    One client address may hold at most `max_registrations_per_client` registrations
    (each holds a connection), so registrations alone cannot fill `max_connections`
    and lock out look-ups.

    Examples:
        >>> async def serve() -> None:
        ...     server = EpmdServer()
        ...     await server.start(port=0)      # 127.0.0.1, ephemeral port
        ...     print(server.port)
        ...     await server.stop()
    """

    def __init__(
        self,
        *,
        idle_timeout: float = 10.0,
        max_connections: int = 1024,
        max_registrations_per_client: int = 256,
        creation_history: int = 4096,
    ) -> None:
        if not idle_timeout > 0:
            raise EpmdBadArgument(f"idle_timeout must be > 0, got {idle_timeout!r}")
        if max_connections < 1:
            raise EpmdBadArgument(f"max_connections must be >= 1, got {max_connections!r}")
        if max_registrations_per_client < 1:
            raise EpmdBadArgument(
                f"max_registrations_per_client must be >= 1, got {max_registrations_per_client!r}"
            )
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_registrations_per_client = max_registrations_per_client
        self._per_client: dict[str, int] = {}  # live registrations by peer address
        self._creation_history = max(1, creation_history)
        self._server: asyncio.Server | None = None
        self._host: str | None = None
        self._port: int | None = None
        self._registry: dict[str, _Entry] = {}
        # Last creation handed out per name, so a restarted node always gets a new one.
        # Bounded (oldest forgotten first) so clients cannot grow it without limit.
        self._last_creation: dict[str, int] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._random = random.Random()
        self._refusals: dict[str, int] = {}  # refusals so far, by kind (`_refused`)

    # -- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        """Listen on `host:port` (loopback by default; `port=None` means `ERL_EPMD_PORT` or
        4369; `port=0` picks a free port, read it back from `.port`).

        Raises `EpmdAddressInUse` when the port is taken, `EpmdError` on other bind errors.
        """
        if self._server is not None:
            raise EpmdError("EpmdServer is already started")
        port = default_epmd_port() if port is None else port
        if port != 0:
            _check_port(port)
        try:
            server = await asyncio.start_server(self._on_connect, host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EpmdAddressInUse(f"{host}:{port} is already in use") from exc
            raise EpmdError(f"cannot listen on {host}:{port}: {exc}") from exc
        self._server = server
        self._host = host
        self._port = server.sockets[0].getsockname()[1]
        logger.debug("built-in EPMD listening on %s:%d", host, self._port)

    async def stop(self) -> None:
        """Stop listening, drop every connection and registration. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        # Handlers swallow their own errors; gather only waits for them to unwind.
        await asyncio.gather(*handlers, return_exceptions=True)
        # Since 3.12 wait_closed() waits for open connections, which are gone by now.
        await server.wait_closed()
        for entry in self._registry.values():
            entry.gone.set()
        self._registry.clear()
        logger.debug("built-in EPMD on %s:%s stopped", self._host, self._port)

    async def __aenter__(self) -> EpmdServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- introspection (also the hooks tests wait on)

    @property
    def port(self) -> int:
        """The port actually bound (useful after `start(port=0)`)."""
        if self._port is None:
            raise EpmdError("EpmdServer is not started")
        return self._port

    @property
    def host(self) -> str:
        """The address the server was asked to listen on."""
        if self._host is None:
            raise EpmdError("EpmdServer is not started")
        return self._host

    @property
    def serving(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._server is not None

    @property
    def connection_count(self) -> int:
        """Open client connections, registrations included."""
        return len(self._handlers)

    def registrations(self) -> dict[str, NodeAddress]:
        """A snapshot of the registered nodes by name."""
        return {name: entry.address for name, entry in self._registry.items()}

    async def wait_unregistered(self, name: str) -> None:
        """Return once `name` is not registered (at once if it is not registered now)."""
        entry = self._registry.get(name)
        if entry is not None:
            await entry.gone.wait()

    def _refused(self, kind: str, message: str, *args: object) -> None:
        """Log the 1st, 10th, 100th... refusal of a kind, with the count: a flood of
        refused clients must not become a flood of log lines."""
        n = self._refusals[kind] = self._refusals.get(kind, 0) + 1
        if n == 10 ** (len(str(n)) - 1):
            logger.warning(message + " (%d such refusals so far)", *args, n)

    # -- connection handling

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if len(self._handlers) >= self.max_connections:
            self._refused(
                "connections", "built-in EPMD: %d connections open, refusing %s",
                len(self._handlers), peer,
            )  # fmt: skip
            writer.transport.abort()
            return
        self._handlers.add(task)
        clean = False
        try:
            clean = await self._serve(reader, writer, peer)
        except asyncio.CancelledError:
            pass  # stop(): end quietly, the loop must not log this as an error
        except Exception:
            # A bug here must cost one connection, never the server.
            logger.warning("built-in EPMD: error serving %s", peer, exc_info=True)
        finally:
            self._handlers.discard(task)
            if clean:
                writer.close()
            else:
                writer.transport.abort()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> bool:
        """Serve one request; return True if the connection may be closed gracefully."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                if length == 0 or length > MAX_REQUEST_LEN:
                    logger.debug("EPMD: bad request length %d from %s", length, peer)
                    return False
                body = await reader.readexactly(length)
        except TimeoutError:
            logger.debug("EPMD: %s sent no complete request in %.1fs", peer, self.idle_timeout)
            return False
        except asyncio.IncompleteReadError:
            logger.debug("EPMD: truncated request from %s", peer)
            return False
        except OSError as exc:
            logger.debug("EPMD: read error from %s: %r", peer, exc)
            return False

        tag = body[0]
        if tag == ALIVE2_REQ:
            return await self._alive2(body, reader, writer, peer)
        if tag == PORT_PLEASE2_REQ:
            reply = self._port2_reply(body, peer)
        elif tag == NAMES_REQ:
            reply = self._names_reply()
        else:
            # Includes DUMP/KILL/STOP, which a name server for beamlet does not need.
            logger.debug("EPMD: ignoring request tag %d from %s", tag, peer)
            return False
        if reply is None:
            return False
        return await self._send(writer, reply, peer)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, peer: object) -> bool:
        try:
            writer.write(data)
            async with asyncio.timeout(self.idle_timeout):
                await writer.drain()
        except (TimeoutError, OSError) as exc:
            logger.debug("EPMD: could not reply to %s: %r", peer, exc)
            return False
        return True

    def _port2_reply(self, body: bytes, peer: object) -> bytes | None:
        raw = body[1:]
        if raw.endswith(b"\x00"):  # epmd tolerates a NUL-terminated name
            raw = raw[:-1]
        name = _decode_name(raw)
        if name is None:
            logger.debug("EPMD: invalid name in PORT_PLEASE2_REQ from %s", peer)
            return None
        entry = self._registry.get(name)
        if entry is None:
            return bytes([PORT2_RESP, 1])
        a = entry.address
        raw_name = a.name.encode("utf-8")
        return (
            bytes([PORT2_RESP, 0])
            + _PORT2_FIXED.pack(
                a.port, a.node_type, a.protocol, a.highest_version, a.lowest_version, len(raw_name)
            )
            + raw_name
            + struct.pack(">H", len(a.extra))
            + a.extra
        )

    def _names_reply(self) -> bytes:
        lines = (
            f"name {name} at port {entry.address.port}\n" for name, entry in self._registry.items()
        )
        return struct.pack(">I", self._port or 0) + "".join(lines).encode("utf-8")

    async def _alive2(
        self,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: object,
    ) -> bool:
        address = _parse_alive2(body)
        if address is None:
            logger.debug("EPMD: malformed ALIVE2_REQ from %s", peer)
            return False
        x_resp = address.highest_version >= 6
        name = address.name
        if not _is_local(writer):
            self._refused(
                "non-local", "EPMD: refusing registration of %r from non-local %s", name, peer
            )
            return await self._send(writer, _alive2_reply(x_resp, 1, 99), peer)
        if name in self._registry:
            logger.debug("EPMD: %r is already registered, refusing %s", name, peer)
            return await self._send(writer, _alive2_reply(x_resp, 1, 99), peer)

        client = _client_address(writer)
        held = self._per_client.get(client, 0)
        if held >= self.max_registrations_per_client:
            self._refused(
                "per-client", "EPMD: %s holds %d registrations already, refusing %r",
                client, held, name,
            )  # fmt: skip
            return await self._send(writer, _alive2_reply(x_resp, 1, 99), peer)

        creation = self._next_creation(name, x_resp)
        entry = _Entry(address, creation, asyncio.Event())
        self._registry[name] = entry
        self._per_client[client] = held + 1
        logger.debug("EPMD: registered %r port %d creation %d", name, address.port, creation)
        try:
            if not await self._send(writer, _alive2_reply(x_resp, 0, creation), peer):
                return False
            # The registration lives as long as the socket: wait for EOF, with no timeout.
            # Registered nodes send nothing more; discard whatever arrives anyway.
            with contextlib.suppress(OSError):
                while await reader.read(4096):
                    pass
            return True
        finally:
            if self._registry.get(name) is entry:
                del self._registry[name]
            left = self._per_client.get(client, 1) - 1
            if left:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)
            entry.gone.set()
            logger.debug("EPMD: unregistered %r (creation %d)", name, creation)

    def _next_creation(self, name: str, x_resp: bool) -> int:
        last = self._last_creation.pop(name, 0)
        if x_resp:
            # 32-bit creation: random, non-zero, not the previous one.
            creation = last
            while creation in (0, last):
                creation = self._random.randrange(1, 1 << 32)
        else:
            # Pre-OTP-23 peers only understand creations 1..3; cycle through them.
            creation = last % 3 + 1
        self._last_creation[name] = creation
        while len(self._last_creation) > self._creation_history:
            del self._last_creation[next(iter(self._last_creation))]
        return creation


def _alive2_reply(x_resp: bool, result: int, creation: int) -> bytes:
    if x_resp:
        return struct.pack(">BBI", ALIVE2_X_RESP, result, creation)
    return struct.pack(">BBH", ALIVE2_RESP, result, creation & 0xFFFF)


def _decode_name(raw: bytes) -> str | None:
    if not raw or len(raw) > MAXSYMLEN or b"\x00" in raw:
        return None
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return name if len(name) <= MAX_NAME_CHARS else None


def _parse_alive2(body: bytes) -> NodeAddress | None:
    """Parse an `ALIVE2_REQ` body (tag included); None if it is inconsistent."""
    fixed_end = 1 + _ALIVE2_FIXED.size
    if len(body) < fixed_end + 1 + 2:  # at least a one-byte name and Elen
        return None
    port, node_type, protocol, high, low, nlen = _ALIVE2_FIXED.unpack_from(body, 1)
    name_end = fixed_end + nlen
    if name_end + 2 > len(body):
        return None
    (elen,) = struct.unpack_from(">H", body, name_end)
    if name_end + 2 + elen != len(body) or elen > MAXSYMLEN or port == 0:
        return None
    name = _decode_name(body[fixed_end:name_end])
    if name is None:
        return None
    return NodeAddress(
        name=name,
        port=port,
        node_type=node_type,
        protocol=protocol,
        highest_version=high,
        lowest_version=low,
        extra=bytes(body[name_end + 2 :]),
    )


def _client_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def _is_local(writer: asyncio.StreamWriter) -> bool:
    """epmd's rule: registrations only from loopback or from this host's own address."""
    peer = writer.get_extra_info("peername")
    sock = writer.get_extra_info("sockname")
    if not isinstance(peer, tuple) or not isinstance(sock, tuple):
        return False
    try:
        peer_ip = ipaddress.ip_address(peer[0])
        sock_ip = ipaddress.ip_address(sock[0])
    except ValueError:
        return False
    if isinstance(peer_ip, ipaddress.IPv6Address) and peer_ip.ipv4_mapped is not None:
        peer_ip = peer_ip.ipv4_mapped
    return peer_ip.is_loopback or peer_ip == sock_ip


# --------------------------------------------------------------------------- ensure_epmd


async def ensure_epmd(
    host: str = "127.0.0.1", port: int | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> EpmdServer | None:
    """Make sure an EPMD answers on `host:port`, starting the built-in one if needed.

    Returns the started `EpmdServer` (stop it when done), or None when an EPMD is already
    listening — including one that appeared between our probe and our bind.
    `port=None` means `ERL_EPMD_PORT` or 4369.

    Examples:
        >>> async def boot() -> None:
        ...     server = await ensure_epmd()
        ...     try:
        ...         ...                          # register, serve, ...
        ...     finally:
        ...         if server is not None:
        ...             await server.stop()
    """
    port = default_epmd_port() if port is None else port
    _check_port(port)
    if await _answers(host, port, timeout):
        logger.debug("an EPMD already listens on %s:%d", host, port)
        return None
    server = EpmdServer()
    try:
        await server.start(host, port)
    except EpmdAddressInUse as exc:
        # Either another EPMD won the race between our probe and our bind (it listens
        # a moment later: use it), or the port is held by a socket that does not listen.
        for _ in range(_RACE_PROBES):
            await asyncio.sleep(_RACE_DELAY)
            if await _answers(host, port, timeout):
                logger.debug("another EPMD bound %s:%d first; using it", host, port)
                return None
        raise EpmdAddressInUse(
            f"cannot start the built-in EPMD: {host}:{port} is in use by a socket that "
            "does not accept connections (not an EPMD)"
        ) from exc
    return server


_RACE_PROBES = 3
_RACE_DELAY = 0.05


async def _answers(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts connections on `host:port`."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise EpmdTimeout(f"probing EPMD at {host}:{port} timed out") from None
    except ConnectionRefusedError:
        return False
    except OSError as exc:
        raise EpmdUnavailable(f"cannot probe EPMD at {host}:{port}: {exc}") from exc
    await _close_writer(writer)
    return True
