"""A node's distribution: connections to other nodes, and the kernel's remote interface.

`Distribution` implements the kernel's `RemoteHook` (send, link, unlink, exit, monitor,
demonitor, down for pids and names of other nodes) by writing control messages on the
connection to that node, connecting on first use. Frames from peers are checked against
the shape of their control message, decoded and handed to the kernel's entry points
(`deliver_remote`, `remote_link`, `remote_down`...). When a connection goes down, or
cannot be made, every link and monitor across it gets `noconnection`
(docs/semantics.md §1.5), pending remote spawns fail with `noconnection`, and
`monitor_node` subscribers get `NodeDown`.

Connection set-up follows `dist_util` (docs/protocol.md §2): at most one
connection per peer; while an attempt is in progress in either direction, signals to the
peer are queued, in order, and written once it is up; when both nodes dial each other
at once, the greater node name wins on both sides, so exactly one connection survives.

Services that Erlang peers expect are built in: `net_kernel` answers `net_adm:ping`,
`rex` serves `rpc:call`/`rpc:block_call`, SPAWN_REQUEST serves `erpc:call`/`erpc:cast`
(Erlang's `rpc:call` since OTP 23) and remote `spawn` into Python functions registered
with `register_function`, and a group leader absorbs the output of Erlang processes
this node spawns remotely.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import itertools
import logging
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from beamlet._core import (
    KILL,
    NOCONNECTION,
    NOPROC,
    Atom,
    BeamletError,
    Crash,
    Node,
    Pid,
    ProcessExit,
    Ref,
)
from beamlet.distribution import etf
from beamlet.distribution import handshake as hs
from beamlet.distribution.connection import DistProtocol, describe
from beamlet.distribution.epmd import EpmdClient, EpmdServer, Registration, ensure_epmd

log = logging.getLogger("beamlet.distribution")

# Control message opcodes (docs/protocol.md §3.2).
LINK, SEND, EXIT, UNLINK, NODE_LINK, REG_SEND, GROUP_LEADER, EXIT2 = 1, 2, 3, 4, 5, 6, 7, 8
SEND_TT, EXIT_TT, REG_SEND_TT, EXIT2_TT = 12, 13, 16, 18
MONITOR_P, DEMONITOR_P, MONITOR_P_EXIT = 19, 20, 21
SEND_SENDER, SEND_SENDER_TT = 22, 23
PAYLOAD_EXIT, PAYLOAD_EXIT_TT, PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT = 24, 25, 26, 27
PAYLOAD_MONITOR_P_EXIT = 28
SPAWN_REQUEST, SPAWN_REQUEST_TT, SPAWN_REPLY, SPAWN_REPLY_TT = 29, 30, 31, 32
ALIAS_SEND, ALIAS_SEND_TT, UNLINK_ID, UNLINK_ID_ACK, ALTACT_SIG_SEND = 33, 34, 35, 36, 37

# ALTACT_SIG_SEND flag bits (§3.2).
_ALTACT_TOKEN, _ALTACT_ALIAS, _ALTACT_NAME, _ALTACT_EXIT = 2, 4, 8, 16

EMPTY = Atom("")
GEN_CALL = Atom("$gen_call")
GEN_CAST = Atom("$gen_cast")
ALIAS_ATOM = Atom("alias")
RETURN = Atom("return")
ERROR = Atom("error")
THROW = Atom("throw")
EXIT_ATOM = Atom("exit")
UNDEF = Atom("undef")
PYTHON = Atom("python")
ERPC = Atom("erpc")
EXECUTE_CALL = Atom("execute_call")
EXECUTE_CAST = Atom("execute_cast")
MONITOR_OPT = Atom("monitor")
LINK_OPT = Atom("link")
ABANDONED = Atom("abandoned")
BADARG = Atom("badarg")
OK = Atom("ok")
_FILE = Atom("file")
_LINE = Atom("line")

_REX_CALLS = (Atom("call"), Atom("block_call"))
_CACHED_OPS = frozenset({SEND_SENDER, REG_SEND})
_MAX_QUEUED = 100_000  # signals held for one peer while its connection is being set up


@dataclass(frozen=True, slots=True)
class NodeDown:
    """Sent to `monitor_node` subscribers when the connection to `node` is lost or cannot
    be made (Erlang's `{nodedown, Node}`)."""

    node: Atom


@dataclass(frozen=True, slots=True)
class SpawnReply:
    """The answer to a remote spawn request, delivered to the requesting process: the
    new `Pid`, or an error atom (`noconnection`, `badarg`, `notsup`...)."""

    ref: Ref
    result: Any


class DistributionError(BeamletError):
    """Distribution could not start, or a node could not be reached."""


class _Undefined(Exception):
    """Internal: no function is registered under module:name."""


@dataclass(slots=True)
class _SpawnRequest:
    caller: Pid
    node: Atom
    reply: str  # "yes", "error_only" (erpc) or "no" (casts)
    abandoned: bool = False


# --- exit reasons and errors as Erlang sees them -----------------------------------------


def python_stack(
    frames: tuple[tuple[str, str, int], ...] | list[tuple[str, str, int]],
) -> list[Any]:
    """Python frames as an Erlang stacktrace: `[{python, Function, 0, [{file, F}, {line, L}]}]`
    (innermost first, the shape `erl_error` and the shell can format)."""
    out: list[Any] = []
    for filename, function, lineno in reversed(frames):
        out.append(
            (
                PYTHON,
                Atom(function[:255]),
                0,
                [(_FILE, etf.Charlist(filename[:4096])), (_LINE, int(lineno))],
            )
        )
    return out


def _tb_frames(tb: TracebackType | None) -> list[tuple[str, str, int]]:
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def python_error(exc: BaseException) -> tuple[Atom, str, str]:
    """A Python exception as an Erlang error term: `{python, TypeName, Message}` (the two
    texts are UTF-8 binaries)."""
    return (PYTHON, type(exc).__name__, str(exc))


def wire_reason(reason: Any) -> Any:
    """An exit reason as Erlang can receive it: a Python crash becomes `{E, Stack}` with
    `E = {python, TypeName, Message}`; anything unencodable becomes `{python, Repr}`."""
    if type(reason) is Crash:
        return (python_error(reason.exception), python_stack(reason.stacktrace))
    try:
        etf.encode(reason)
        return reason
    except etf.EncodeError:
        return (PYTHON, repr(reason))


# --- control message shapes (§3.2) ----------------------------------------------------

_P, _A, _R, _I, _MFA, _L, _X, _PA = range(8)
_TYPE_CHECKS: dict[int, Callable[[Any], bool]] = {
    _P: lambda v: type(v) is Pid,
    _A: lambda v: type(v) is Atom,
    _R: lambda v: type(v) is Ref,
    _I: lambda v: type(v) is int,
    _MFA: lambda v: (
        type(v) is tuple
        and len(v) == 3
        and type(v[0]) is Atom
        and type(v[1]) is Atom
        and type(v[2]) is int
    ),
    _L: lambda v: type(v) is list,
    _X: lambda v: True,
    _PA: lambda v: type(v) is Pid or type(v) is Atom,
}
#: op -> (carries a payload, field kinds after the op)
_SHAPES: dict[int, tuple[bool, tuple[int, ...]]] = {
    LINK: (False, (_P, _P)),
    SEND: (True, (_X, _P)),
    EXIT: (False, (_P, _P, _X)),
    UNLINK: (False, (_P, _P)),
    NODE_LINK: (False, ()),
    REG_SEND: (True, (_P, _X, _A)),
    GROUP_LEADER: (False, (_P, _P)),
    EXIT2: (False, (_P, _P, _X)),
    SEND_TT: (True, (_X, _P, _X)),
    EXIT_TT: (False, (_P, _P, _X, _X)),
    REG_SEND_TT: (True, (_P, _X, _A, _X)),
    EXIT2_TT: (False, (_P, _P, _X, _X)),
    MONITOR_P: (False, (_P, _PA, _R)),
    DEMONITOR_P: (False, (_P, _PA, _R)),
    MONITOR_P_EXIT: (False, (_PA, _P, _R, _X)),
    SEND_SENDER: (True, (_P, _P)),
    SEND_SENDER_TT: (True, (_P, _P, _X)),
    PAYLOAD_EXIT: (True, (_P, _P)),
    PAYLOAD_EXIT_TT: (True, (_P, _P, _X)),
    PAYLOAD_EXIT2: (True, (_P, _P)),
    PAYLOAD_EXIT2_TT: (True, (_P, _P, _X)),
    PAYLOAD_MONITOR_P_EXIT: (True, (_PA, _P, _R)),
    SPAWN_REQUEST: (True, (_R, _P, _P, _MFA, _L)),
    SPAWN_REQUEST_TT: (True, (_R, _P, _P, _MFA, _L, _X)),
    SPAWN_REPLY: (False, (_R, _P, _I, _X)),
    SPAWN_REPLY_TT: (False, (_R, _P, _I, _X, _X)),
    ALIAS_SEND: (True, (_P, _R)),
    ALIAS_SEND_TT: (True, (_P, _R, _X)),
    UNLINK_ID: (False, (_I, _P, _P)),
    UNLINK_ID_ACK: (False, (_I, _P, _P)),
    ALTACT_SIG_SEND: (True, (_I, _P, _X)),
}


class _BadFrame(Exception):
    pass


def check_control(ctl: Any, has_payload: bool) -> int:
    """Check a decoded control message against its shape; return its op.

    Raises `_BadFrame` for a non-tuple, an unknown op, a wrong arity or field type, or a
    payload where none belongs (or none where one must be)."""
    if type(ctl) is not tuple or not ctl or type(ctl[0]) is not int:
        raise _BadFrame(f"control message is not a tuple starting with an opcode: {ctl!r:.200}")
    op = ctl[0]
    shape = _SHAPES.get(op)
    if shape is None:
        raise _BadFrame(f"unknown control message opcode {op}")
    payload, fields = shape
    n = len(ctl) - 1
    if op == ALTACT_SIG_SEND and n == 4 and type(ctl[1]) is int and ctl[1] & _ALTACT_TOKEN:
        fields = (*fields, _X)
    if n != len(fields):
        raise _BadFrame(f"control message {op} has {n} fields, expected {len(fields)}")
    for i, kind in enumerate(fields, 1):
        if not _TYPE_CHECKS[kind](ctl[i]):
            raise _BadFrame(f"control message {op}: bad field {i}: {ctl[i]!r:.100}")
    if payload != has_payload:
        raise _BadFrame(f"control message {op} {'needs' if payload else 'has no'} payload")
    return op


def _fresh_context() -> contextvars.Context:
    # Runtime tasks and callbacks must not run in the context of the process that
    # happened to trigger them: that process would look "current" to the kernel.
    return contextvars.Context()


class Distribution:
    """The distribution layer of one `Node`. Start it with `start_distribution`."""

    def __init__(
        self,
        node: Node,
        *,
        cookie: str,
        hidden: bool = True,
        ticktime: float = 60.0,
        max_frame: int = 128 * 1024 * 1024,
        max_write_buffer: int = 64 * 1024 * 1024,
        connect_timeout: float = 7.0,
        allow_import: bool = False,
    ) -> None:
        self.node = node
        self.name = str(node.name)
        self.cookie = cookie
        self.hidden = hidden
        self.flags = hs.OUR_FLAGS | (0 if hidden else hs.PUBLISHED)
        self.ticktime = ticktime
        self.max_frame = max_frame
        self.max_write_buffer = max_write_buffer
        self.connect_timeout = connect_timeout
        self.allow_import = allow_import
        self.conns: dict[Atom, DistProtocol] = {}
        self._ctl_cache: dict[tuple[Any, ...], bytes] = {}
        self._dials: dict[Atom, asyncio.Task[None]] = {}
        self._accepts: dict[Atom, int] = {}  # handshakes in progress from that peer
        self._accept_waiters: dict[Atom, list[asyncio.Future[None]]] = {}
        self._waiters: dict[Atom, list[asyncio.Future[bool]]] = {}
        self._queued: dict[Atom, list[bytes]] = {}
        self._going_down: set[Atom] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._node_monitors: dict[Atom, list[Pid]] = {}
        self._name_monitors: dict[Ref, Atom] = {}  # monitors by name from remote watchers
        self._spawns: dict[Ref, _SpawnRequest] = {}
        self._unlink_ids = itertools.count(1).__next__
        #: Called with the peer's name each time a connection comes up (pg uses it).
        self.on_nodeup: list[Callable[[Atom], None]] = []
        self.functions: dict[tuple[str, str], Callable[..., Any]] = {}
        self._server: asyncio.Server | None = None
        self._epmd_server: EpmdServer | None = None
        self._registration: Registration | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._services: list[Pid] = []
        self.group_leader: Pid | None = None
        self._stopping = False
        self.started = False
        self.port = 0
        self.epmd_port: int | None = None
        self.epmd = EpmdClient()
        self._builtin_functions()

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, *, listen_host: str | None = None, epmd_port: int | None = None) -> None:
        """Listen for peers, register with epmd (starting a built-in one if none answers)
        and plug into the kernel. `listen_host` defaults to loopback when the node's
        host is a loopback name or address, else to every interface (as `erl` does)."""
        hs.check_name(self.name)
        loop = asyncio.get_running_loop()
        if listen_host is None:
            listen_host = _default_listen_host(self.name.partition("@")[2])
        self._server = await loop.create_server(
            self._protocol, host=listen_host, port=0, start_serving=False
        )
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            self._epmd_server = await ensure_epmd(port=epmd_port)
            local = self.name.partition("@")[0]
            self._registration = await self.epmd.register(
                local, self.port, hidden=self.hidden, epmd_port=epmd_port
            )
        except Exception as e:
            await self.stop()
            raise DistributionError(f"cannot register {self.name} with epmd: {e}") from e
        self.epmd_port = epmd_port
        self.node.attach_distribution(self, self._registration.creation)
        self.started = True
        await self._server.start_serving()
        self._schedule_tick()
        for name, body in (("net_kernel", self._net_kernel), ("rex", self._rex)):
            if self.node.whereis(name) is None:
                pid = self.node.spawn(body)
                self.node.register(name, pid)
                self._services.append(pid)
        self.group_leader = self.node.spawn(self._group_leader)
        self._services.append(self.group_leader)
        log.info(
            "beamlet.distribution: node %s up (%s), listening on %s:%d",
            self.name,
            "hidden" if self.hidden else "visible",
            listen_host,
            self.port,
        )

    async def stop(self) -> None:
        """Close every connection (peers see `noconnection`), unregister from epmd and
        detach from the kernel. Processes keep running, as on a node that lost its
        network."""
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._server is not None:
            self._server.close()
        for conn in list(self.conns.values()):
            conn.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for node in list(self._waiters) + list(self._queued):
            self._node_down(node)
        if self._registration is not None:
            await self._registration.close()
            self._registration = None
        if self._epmd_server is not None:
            await self._epmd_server.stop()
            self._epmd_server = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.node.started:
            for pid in self._services:
                self.node.exit(pid, KILL)
        self._services.clear()
        self.node.detach_distribution(self)
        self.started = False

    def _task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, context=_fresh_context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _protocol(self) -> DistProtocol:
        """A protocol for an accepted connection (the server's factory)."""
        proto = self._new_protocol()
        self._task(self._accept(proto))
        return proto

    def _new_protocol(self) -> DistProtocol:
        return DistProtocol(
            max_frame=self.max_frame,
            max_write_buffer=self.max_write_buffer,
            on_frame=self._on_frame,
            on_lost=self._on_lost,
        )

    # --- ticks (§4) -------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(
            self.ticktime / 4, self._tick, context=_fresh_context()
        )

    def _tick(self) -> None:
        for conn in list(self.conns.values()):
            if conn.closed:
                continue
            if not conn.wrote:
                conn.tick()
            conn.wrote = False
            if conn.read:
                conn.idle_ticks = 0
            else:
                conn.idle_ticks += 1
                if conn.idle_ticks >= 4:
                    conn.abort(f"net_tick_timeout: nothing heard for {self.ticktime:g} s")
            conn.read = False
        self._schedule_tick()

    # --- connecting -------------------------------------------------------------------

    def nodes(self) -> list[Atom]:
        """The nodes this node has a live connection to, sorted."""
        return sorted(self.conns)

    async def connect(self, node: Atom) -> bool:
        """Connect to `node` unless connected; True once connected (also for our own
        name), False if the connection cannot be made."""
        if node == self.node.name or node in self.conns:
            return True
        if self._stopping or not self.started:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(node, []).append(fut)
        self._ensure_connecting(node)
        return await fut

    def _ensure_connecting(self, node: Atom) -> None:
        if node in self.conns or node in self._dials or self._accepts.get(node):
            return
        if self._stopping or not self.started:
            return
        self._dials[node] = self._task(self._dial(node))

    async def _dial(self, node: Atom) -> None:
        proto: DistProtocol | None = None
        try:
            hs.check_name(node)
            local, _, host = str(node).partition("@")
            addr = await self.epmd.port_please(local, host, epmd_port=self.epmd_port)
            if addr is None:
                raise DistributionError(f"not registered with epmd on {host}")
            if not addr.supports(6):
                raise DistributionError("does not speak distribution version 6")
            loop = asyncio.get_running_loop()
            _t, p = await asyncio.wait_for(
                loop.create_connection(self._new_protocol, host, addr.port),
                self.connect_timeout,
            )
            proto = p
            outcome = await self._initiate(p, node)
            if outcome == "nok":
                # Simultaneous connect, and the peer's attempt wins (§2.2): wait for it.
                p.close()
                await self._await_accept(node)
            elif outcome == "exists":
                p.close()
        except asyncio.CancelledError:
            if proto is not None:
                proto.close()
            raise
        except hs.HandshakeError as e:
            log.warning("beamlet.distribution: cannot connect to %s: %s", node, e)
            if proto is not None:
                proto.close()
        except Exception as e:
            log.info("beamlet.distribution: cannot connect to %s: %s", node, describe(e))
            if proto is not None:
                proto.close()
        finally:
            if self._dials.get(node) is asyncio.current_task():
                del self._dials[node]
            self._attempt_ended(node)

    async def _initiate(self, proto: DistProtocol, node: Atom) -> str:
        """The initiator's side of the handshake: "up", "nok" (the peer's own attempt
        wins) or "exists" (a connection came up the other way meanwhile)."""
        t = self.connect_timeout
        proto.write_hs(hs.send_name(self.name, self.flags, self.node.creation))
        status = hs.parse_status(await proto.read_hs(t))
        if status == "alive":
            if node in self.conns:
                proto.write_hs(hs.status("false"))
                return "exists"
            proto.write_hs(hs.status("true"))  # our old connection is gone: replace it
        elif status == "nok":
            return "nok"
        elif status not in ("ok", "ok_simultaneous"):
            raise hs.HandshakeError(f"refused by the peer: {status}")
        peer = hs.parse_challenge(await proto.read_hs(t))
        if peer.name != str(node):
            raise hs.HandshakeError(f"dialed {node} but {peer.name} answered")
        self._check_flags(peer.flags, node)
        my_challenge = hs.new_challenge()
        proto.write_hs(hs.challenge_reply(my_challenge, hs.digest(self.cookie, peer.challenge)))
        try:
            ack = hs.parse_challenge_ack(await proto.read_hs(t))
        except ConnectionError:
            raise hs.HandshakeError(
                "the peer closed the connection after our challenge reply (wrong cookie?)"
            ) from None
        if ack != hs.digest(self.cookie, my_challenge):
            raise hs.HandshakeError("wrong cookie (challenge_ack digest mismatch)")
        self._up(proto, node, peer.flags)
        return "up"

    async def _await_accept(self, node: Atom) -> None:
        """After `nok`: wait until the peer's own attempt (accepted here) ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while node not in self.conns:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("beamlet.distribution: %s answered nok but never connected", node)
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._accept_waiters.setdefault(node, []).append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                continue
            if node not in self.conns and not self._accepts.get(node):
                return  # the peer's attempt failed too

    async def _accept(self, proto: DistProtocol) -> None:
        peer_name: Atom | None = None
        counted = False
        try:
            await proto.wait_made()
            t = self.connect_timeout
            peer = hs.parse_send_name(await proto.read_hs(t))
            peer_name = Atom(peer.name)
            missing = hs.missing_flags(peer.flags)
            if missing:
                proto.write_hs(hs.status("not_allowed"))
                raise hs.HandshakeError(f"lacks required distribution flags {missing:#x}")
            if peer_name == self.node.name:
                proto.write_hs(hs.status("not_allowed"))
                raise hs.HandshakeError("the peer uses our own node name")
            if self._stopping:
                raise hs.HandshakeError("this node is stopping")
            self._accepts[peer_name] = self._accepts.get(peer_name, 0) + 1
            counted = True
            if peer_name in self.conns:
                proto.write_hs(hs.status("alive"))
                answer = hs.parse_status(await proto.read_hs(t))
                if answer != "true":
                    proto.close()
                    return
                old = self.conns.get(peer_name)
                if old is not None:
                    old.abort("the peer reconnected (it restarted, or lost the connection)")
            elif peer_name in self._dials:
                if str(peer_name) > self.name:  # their attempt wins (§2.2)
                    proto.write_hs(hs.status("ok_simultaneous"))
                else:
                    proto.write_hs(hs.status("nok"))
                    proto.close()
                    return
            else:
                proto.write_hs(hs.status("ok"))
            my_challenge = hs.new_challenge()
            proto.write_hs(hs.challenge(self.name, self.flags, my_challenge, self.node.creation))
            their_challenge, dig = hs.parse_challenge_reply(await proto.read_hs(t))
            if dig != hs.digest(self.cookie, my_challenge):
                raise hs.HandshakeError("wrong cookie (challenge_reply digest mismatch)")
            proto.write_hs(hs.challenge_ack(hs.digest(self.cookie, their_challenge)))
            self._up(proto, peer_name, peer.flags)
        except asyncio.CancelledError:
            proto.close()
            raise
        except Exception as e:
            log.warning(
                "beamlet.distribution: refused connection from %s: %s",
                peer_name or "?",
                describe(e),
            )
            proto.abort("handshake failed", quiet=True)
        finally:
            if counted and peer_name is not None:
                left = self._accepts.get(peer_name, 1) - 1
                if left:
                    self._accepts[peer_name] = left
                else:
                    self._accepts.pop(peer_name, None)
                for fut in self._accept_waiters.pop(peer_name, ()):
                    if not fut.done():
                        fut.set_result(None)
                self._attempt_ended(peer_name)

    def _check_flags(self, flags: int, node: Atom) -> None:
        missing = hs.missing_flags(flags)
        if missing:
            raise hs.HandshakeError(f"{node} lacks required distribution flags {missing:#x}")

    def _up(self, proto: DistProtocol, node: Atom, flags: int) -> None:
        old = self.conns.get(node)
        if old is not None and old is not proto:
            old.abort("replaced by a new connection")  # noconnection for the old one
        self.conns[node] = proto
        proto.peer = str(node)
        # Signals queued while connecting go first, before anything the peer already
        # sent can make us answer on the new connection.
        for frame in self._queued.pop(node, ()):
            proto.write_frame(frame)
        log.info("beamlet.distribution: connected to %s", node)
        proto.start_connected(str(node), self.flags & flags)
        if self.conns.get(node) is proto:
            for fut in self._waiters.pop(node, ()):
                if not fut.done():
                    fut.set_result(True)
            for hook in list(self.on_nodeup):
                try:
                    hook(node)
                except Exception:
                    log.exception("beamlet.distribution: nodeup hook %r failed", hook)

    def _attempt_ended(self, node: Atom) -> None:
        """A dial or an accepted handshake for `node` ended. If nothing else is in
        progress and no connection came up, whatever waited for it fails now."""
        if node in self.conns or node in self._dials or self._accepts.get(node):
            return
        if (
            node in self._queued
            or node in self._waiters
            or node in self._node_monitors
            or any(req.node == node for req in self._spawns.values())
        ):
            self._node_down(node)

    def _on_lost(self, proto: DistProtocol, exc: BaseException | None) -> None:
        peer = proto.peer
        if peer is None:
            return
        node = Atom(peer)
        if self.conns.get(node) is not proto:
            return
        del self.conns[node]
        log.info("beamlet.distribution: connection to %s lost (%s)", node, describe(exc))
        self._node_down(node)

    def _node_down(self, node: Atom) -> None:
        """`noconnection` for everything that crossed (or waited for) the connection."""
        self._going_down.add(node)
        try:
            self._queued.pop(node, None)
            for ref in [r for r in self._name_monitors if r.node == node]:
                del self._name_monitors[ref]
            for fut in self._waiters.pop(node, ()):
                if not fut.done():
                    fut.set_result(False)
            for ref, req in list(self._spawns.items()):
                if req.node == node:
                    del self._spawns[ref]
                    if req.reply != "no" and not req.abandoned:
                        self.node.deliver_remote(req.caller, SpawnReply(ref, NOCONNECTION))
            self.node.node_down(node)
            for pid in self._node_monitors.pop(node, ()):
                self.node.deliver_remote(pid, NodeDown(node))
        finally:
            self._going_down.discard(node)

    def disconnect(self, node: Atom) -> bool:
        """Close the connection to `node`; False if there was none. Links and monitors
        across it get `noconnection` at once, on both sides."""
        conn = self.conns.get(node)
        if conn is None:
            return False
        log.info("beamlet.distribution: disconnecting from %s", node)
        conn.close()
        return True

    def monitor_node(self, pid: Pid, node: Atom) -> None:
        """Deliver `NodeDown(node)` to `pid` when the connection to `node` is lost, or
        soon if it cannot be made. Each call adds one subscription; each fires once."""
        if node == self.node.name:
            return
        subs = self._node_monitors.setdefault(node, [])
        if len(subs) > 64:  # drop subscriptions of processes that are gone
            subs[:] = [p for p in subs if self.node.is_alive(p)]
        subs.append(pid)
        if node not in self.conns:
            if self._stopping or not self.started:
                self._node_down(node)
            else:
                self._ensure_connecting(node)

    def demonitor_node(self, pid: Pid, node: Atom) -> None:
        """Remove one `monitor_node` subscription of `pid` for `node`."""
        subs = self._node_monitors.get(node)
        if subs and pid in subs:
            subs.remove(pid)
            if not subs:
                del self._node_monitors[node]

    # --- output -------------------------------------------------------------------------

    def _emit(self, node: Atom, ctl: tuple[Any, ...], *payload: Any) -> bool:
        """Encode and send one control message (plus payload) to `node`, connecting
        first if needed. Raises `etf.EncodeError` (nothing sent) for an unencodable
        term; returns False if the signal was dropped (node going down, stopping)."""
        buf = bytearray(b"p")
        etf.encode_into(buf, ctl)
        if payload:
            etf.encode_into(buf, payload[0])
        conn = self.conns.get(node)
        if conn is not None:
            conn.write_frame(buf)
            return True
        if node == self.node.name or node in self._going_down or self._stopping:
            return False
        queue = self._queued.setdefault(node, [])
        if len(queue) >= _MAX_QUEUED:
            log.warning("beamlet.distribution: dropping a signal to %s: connection not up", node)
            return False
        queue.append(bytes(buf))
        self._ensure_connecting(node)
        return True

    def _emit_send(self, node: Atom, ctl: tuple[Any, ...], msg: Any) -> bool:
        """`_emit` for message sends, with the control term's encoding cached: a process
        sending to the same peer repeats it (encoding it is most of a small send)."""
        conn = self.conns.get(node)
        if conn is None:
            return self._emit(node, ctl, msg)
        enc = self._ctl_cache.get(ctl)
        if enc is None:
            if len(self._ctl_cache) >= 4096:
                self._ctl_cache.clear()
            enc = self._ctl_cache[ctl] = b"p" + etf.encode(ctl)
        buf = bytearray(enc)
        etf.encode_into(buf, msg)
        conn.write_frame(buf)
        return True

    # RemoteHook ------------------------------------------------------------------------

    def send(self, sender: Pid | None, dest: Any, msg: Any) -> None:
        frm = sender or self.node.system_pid
        if type(dest) is Pid:
            self._emit_send(dest.node, (SEND_SENDER, frm, dest), msg)
        elif type(dest) is Ref:
            self._emit(dest.node, (ALIAS_SEND, frm, dest), msg)
        else:
            name, node = dest
            self._emit_send(node, (REG_SEND, frm, EMPTY, name), msg)

    def link(self, local: Pid, remote: Pid) -> None:
        self._emit(remote.node, (LINK, local, remote))

    def unlink(self, local: Pid, remote: Pid) -> None:
        self._emit(remote.node, (UNLINK_ID, self._unlink_ids(), local, remote))

    def exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        self._emit(target.node, (PAYLOAD_EXIT2, sender, target), wire_reason(reason))

    def link_exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        self._emit(target.node, (PAYLOAD_EXIT, sender, target), wire_reason(reason))

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        if type(target) is Pid:
            self._emit(target.node, (MONITOR_P, watcher, target, ref))
        else:
            name, node = target
            self._emit(node, (MONITOR_P, watcher, name, ref))

    def demonitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        if type(target) is Pid:
            self._emit(target.node, (DEMONITOR_P, watcher, target, ref))
        else:
            name, node = target
            self._emit(node, (DEMONITOR_P, watcher, name, ref))

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Any) -> None:
        frm: Any = self._name_monitors.pop(ref, target)
        self._emit(watcher.node, (PAYLOAD_MONITOR_P_EXIT, frm, watcher, ref), wire_reason(reason))

    # --- input --------------------------------------------------------------------------

    def _on_frame(self, proto: DistProtocol, frame: bytes) -> None:
        try:
            if frame[0] != 112:  # 'p': pass-through; we never negotiate the atom cache
                raise _BadFrame(f"unexpected distribution header byte {frame[0]}")
            raw = proto.ctl_raw
            if raw is not None and frame.startswith(raw, 1):
                ctl, off = proto.ctl, 1 + len(raw)
            else:
                ctl, off = etf.decode_prefix(frame, 1)
                if type(ctl) is tuple and ctl and ctl[0] in _CACHED_OPS:
                    proto.ctl_raw, proto.ctl = bytes(frame[1:off]), ctl
            has_payload = off < len(frame)
            payload: Any = None
            if has_payload:
                payload, off = etf.decode_prefix(frame, off)
            if off != len(frame):
                raise _BadFrame("trailing bytes after the distribution message")
            op = check_control(ctl, has_payload)
        except (etf.DecodeError, _BadFrame) as e:
            proto.abort(f"malformed distribution message: {e}")
            return
        try:
            self._dispatch(proto, op, ctl, payload)
        except Exception:
            log.exception("beamlet.distribution: error handling a message from %s", proto.peer)
            proto.abort("internal error while handling a message")

    def _dispatch(self, proto: DistProtocol, op: int, ctl: tuple[Any, ...], payload: Any) -> None:
        node = self.node
        if op in (SEND_SENDER, SEND_SENDER_TT, SEND, SEND_TT):
            node.deliver_remote(ctl[2], payload)
        elif op in (REG_SEND, REG_SEND_TT):
            node.deliver_remote(ctl[3], payload)  # unknown names: dropped, as Erlang does
        elif op in (ALIAS_SEND, ALIAS_SEND_TT):
            node.deliver_remote(ctl[2], payload)
        elif op == LINK:
            _, frm, to = ctl
            if not node.remote_link(to, frm):
                self._emit(Atom(proto.peer or ""), (PAYLOAD_EXIT, to, frm), NOPROC)
        elif op == UNLINK_ID:
            _, uid, frm, to = ctl
            # The ack goes before any other signal from `to` (§3.3).
            self._emit(Atom(proto.peer or ""), (UNLINK_ID_ACK, uid, to, frm))
            node.remote_unlink(to, frm)
        elif op in (UNLINK_ID_ACK, UNLINK, NODE_LINK, GROUP_LEADER):
            pass  # our unlink took effect locally at once (§3.7)
        elif op in (PAYLOAD_EXIT, PAYLOAD_EXIT_TT):
            node.remote_exit(ctl[2], ctl[1], payload, link=True)
        elif op in (EXIT, EXIT_TT):
            node.remote_exit(ctl[2], ctl[1], ctl[3], link=True)
        elif op in (PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT):
            node.remote_exit(ctl[2], ctl[1], payload, link=False)
        elif op in (EXIT2, EXIT2_TT):
            node.remote_exit(ctl[2], ctl[1], ctl[3], link=False)
        elif op == MONITOR_P:
            _, frm, target, ref = ctl
            if node.remote_monitored(target, frm, ref) is None:
                self._emit(
                    Atom(proto.peer or ""), (PAYLOAD_MONITOR_P_EXIT, target, frm, ref), NOPROC
                )
            elif type(target) is Atom:
                self._name_monitors[ref] = target
        elif op == DEMONITOR_P:
            _, _frm, target, ref = ctl
            node.remote_demonitor(target, ref)
            self._name_monitors.pop(ref, None)
        elif op == PAYLOAD_MONITOR_P_EXIT:
            node.remote_down(ctl[2], ctl[3], payload)
        elif op == MONITOR_P_EXIT:
            node.remote_down(ctl[2], ctl[3], ctl[4])
        elif op in (SPAWN_REQUEST, SPAWN_REQUEST_TT):
            self._spawn_request(Atom(proto.peer or ""), ctl, payload)
        elif op in (SPAWN_REPLY, SPAWN_REPLY_TT):
            self._spawn_reply(Atom(proto.peer or ""), ctl)
        elif op == ALTACT_SIG_SEND:
            flags, sender, to = ctl[1], ctl[2], ctl[3]
            if flags & _ALTACT_EXIT:
                if type(to) is Pid:
                    node.remote_exit(to, sender, payload, link=False)
            elif (
                (flags & _ALTACT_ALIAS and type(to) is Ref)
                or (flags & _ALTACT_NAME and type(to) is Atom)
                or type(to) is Pid
            ):
                node.deliver_remote(to, payload)

    # --- remote spawn: our requests -----------------------------------------------------

    def spawn_request(
        self,
        caller: Pid,
        node: Atom,
        module: Atom,
        function: Atom,
        args: list[Any],
        *,
        link: bool = False,
        monitor: bool = False,
        reply: str = "yes",
    ) -> Ref:
        """Ask `node` to spawn `module:function(*args)` for `caller`; the answer arrives
        as `SpawnReply(ref, pid | error)` (only errors with `reply="error_only"`, nothing
        with `reply="no"`). With `monitor`, the returned ref is also the monitor's ref.
        The ref is made by the caller, so `receive(..., since=ref)` waits cheaply."""
        ref = self.node.make_ref()
        opts = [LINK_OPT] if link else []
        if monitor:
            opts.append(MONITOR_OPT)
        gl = self.group_leader or caller
        mfa = (module, function, len(args))
        self._spawns[ref] = _SpawnRequest(caller, node, reply)
        try:
            sent = self._emit(node, (SPAWN_REQUEST, ref, caller, gl, mfa, opts), list(args))
        except BaseException:
            del self._spawns[ref]
            raise
        if not sent and ref in self._spawns:
            del self._spawns[ref]
            if reply != "no":
                self.node.deliver_remote(caller, SpawnReply(ref, NOCONNECTION))
        return ref

    def abandon_spawn(self, ref: Ref) -> bool:
        """Give up on a spawn request whose reply has not arrived (True), as
        `spawn_request_abandon/1`: a process it creates gets exit signal `abandoned`."""
        req = self._spawns.get(ref)
        if req is None or req.abandoned:
            return False
        req.abandoned = True
        return True

    def _spawn_reply(self, peer: Atom, ctl: tuple[Any, ...]) -> None:
        _, req_id, to, flags, result = ctl[:5]
        req = self._spawns.pop(req_id, None)
        if type(result) is not Pid:
            if req is not None and not req.abandoned and req.reply != "no":
                self.node.deliver_remote(to, SpawnReply(req_id, result))
            return
        wanted = req is not None and not req.abandoned and req.caller == to
        if wanted and flags & 1 and not self.node.remote_link(to, result):
            wanted = False  # the caller died meanwhile
        if not wanted:
            # Nobody wants the new process any more: undo what the peer set up for us.
            # An abandoned request's process gets exit signal `abandoned`
            # (spawn_request_abandon/1); a dead caller's link breaks with `noproc`.
            abandoned = req is not None and req.abandoned
            if flags & 2:
                self._emit(peer, (DEMONITOR_P, to, result, req_id))
            if flags & 1:
                self._emit(peer, (PAYLOAD_EXIT, to, result), ABANDONED if abandoned else NOPROC)
            elif abandoned:
                self._emit(peer, (PAYLOAD_EXIT2, to, result), ABANDONED)
            return
        if flags & 2:
            self.node.expect_remote_down(to, req_id, result)
        assert req is not None
        if req.reply == "yes":
            self.node.deliver_remote(to, SpawnReply(req_id, result))

    # --- remote spawn: requests from peers ----------------------------------------------

    def _spawn_request(self, peer: Atom, ctl: tuple[Any, ...], args: Any) -> None:
        _, req_id, frm, _gl, mfa, opts = ctl[:6]
        module, fn_name, _arity = mfa
        link = LINK_OPT in opts
        monitor = any(
            o == MONITOR_OPT or (type(o) is tuple and len(o) == 2 and o[0] == MONITOR_OPT)
            for o in opts
        )
        arglist = _arglist(args)
        try:
            if arglist is None:
                raise ValueError(f"arguments are not a proper list: {args!r:.100}")
            body, body_args = self.spawn_body(module, fn_name, arglist)
            pid = self.node.spawn(body, *body_args)
        except Exception as e:
            log.info(
                "beamlet.distribution: spawn request %s:%s from %s refused: %s",
                *(module, fn_name, peer, e),
            )
            self._emit(peer, (SPAWN_REPLY, req_id, frm, 0, BADARG))
            return
        flags = 0
        if link and self.node.remote_link(pid, frm):
            flags |= 1
        if monitor and self.node.remote_monitored(pid, frm, req_id) is not None:
            flags |= 2
        self._emit(peer, (SPAWN_REPLY, req_id, frm, flags, pid))

    def spawn_body(
        self, module: Any, function: Any, args: list[Any]
    ) -> tuple[Callable[..., Coroutine[Any, Any, Any]], list[Any]]:
        """The coroutine function and arguments a spawn of `module:function(*args)` runs:
        erpc's helpers, a registered function, or one that exits with `undef`."""
        if module == ERPC:
            if function == EXECUTE_CALL and len(args) == 4:
                return self._erpc_call, args
            if function == EXECUTE_CAST and len(args) == 3:
                return self._erpc_cast, args
        fn = self.lookup_function(module, function)
        if fn is None:
            return _undef, [module, function, args]
        return functools.partial(_apply, fn), [args]

    async def _erpc_call(self, res: Any, module: Any, fn: Any, args: Any) -> None:
        # erpc:execute_call/4: the result travels as the exit reason (§6.1).
        await self.erpc_call(res, module, fn, args, wire=True)

    async def erpc_call_local(self, res: Any, module: Any, fn: Any, args: Any) -> None:
        """`erpc_call` for a caller on this node: results need not be encodable."""
        await self.erpc_call(res, module, fn, args, wire=False)

    async def erpc_call(self, res: Any, module: Any, fn: Any, args: Any, *, wire: bool) -> None:
        """Run `module:fn(*args)` and exit with erpc's `{Res, return, V}`,
        `{Res, exit, R}` or `{Res, error, E, Stack}`. With `wire`, the result must be
        encodable (for a caller on another node): if it is not, that is the error."""
        arglist = _arglist(args)
        try:
            if arglist is None:
                raise _Undefined
            value = await self.run_function(module, fn, arglist)
        except _Undefined:
            raise ProcessExit((res, ERROR, UNDEF, [(module, fn, args, [])])) from None
        except ProcessExit as e:
            reason = wire_reason(e.reason) if wire else e.reason
            raise ProcessExit((res, EXIT_ATOM, reason)) from None
        except Exception as e:
            stack = python_stack(_tb_frames(e.__traceback__))
            err = python_error(e) if wire else e
            raise ProcessExit((res, ERROR, err, stack)) from None
        if wire:
            try:
                etf.encode(value)
            except etf.EncodeError as e:
                raise ProcessExit((res, ERROR, python_error(e), [])) from None
        raise ProcessExit((res, RETURN, value))

    async def _erpc_cast(self, module: Any, fn: Any, args: Any) -> None:
        # erpc:execute_cast/3: no reply; a failure is logged like any crash.
        arglist = _arglist(args)
        try:
            if arglist is None:
                raise _Undefined
            await self.run_function(module, fn, arglist)
        except _Undefined:
            raise ProcessExit((UNDEF, [(module, fn, args, [])])) from None

    # --- the function registry -------------------------------------------------------------

    def register_function(self, module: str, name: str, fn: Callable[..., Any]) -> None:
        """Make `fn` callable from other nodes as `module:name` (rpc, erpc, spawn).

        `fn` may be a plain function or an async one; it runs in a fresh process of this
        node, so it may use the process API (`self()`, `receive`, ...)."""
        if not callable(fn):
            raise TypeError(f"register_function needs a callable, not {fn!r}")
        self.functions[(str(module), str(name))] = fn

    def unregister_function(self, module: str, name: str) -> bool:
        return self.functions.pop((str(module), str(name)), None) is not None

    def lookup_function(self, module: Any, name: Any) -> Callable[..., Any] | None:
        key = (_text(module), _text(name))
        fn = self.functions.get(key)
        if fn is None and self.allow_import and not key[1].startswith("_"):
            try:
                fn = getattr(importlib.import_module(key[0]), key[1], None)
            except ImportError:
                fn = None
        return fn if callable(fn) else None

    async def run_function(self, module: Any, name: Any, args: list[Any]) -> Any:
        """Call the function registered as `module:name` with `args`, awaiting it if it is
        async. Raises `_Undefined` when there is none."""
        fn = self.lookup_function(module, name)
        if fn is None:
            raise _Undefined
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _builtin_functions(self) -> None:
        # A few BIFs Erlang tools call on every node (rpc:call(N, erlang, node, [])).
        n = self.node
        self.functions.update(
            {
                ("erlang", "node"): lambda: n.name,
                ("erlang", "nodes"): lambda *_: [Atom(x) for x in self.nodes()],
                ("erlang", "whereis"): n.whereis,
                ("erlang", "registered"): n.registered,
                ("erlang", "processes"): n.processes,
                ("erlang", "is_process_alive"): n.is_alive,
            }
        )

    # --- built-in services -----------------------------------------------------------

    def gen_reply(self, from_: Any, reply: Any) -> None:
        """Reply to an Erlang-style `From = {Pid, Tag}` (gen:reply/2 semantics)."""
        to, tag = from_
        dest: Any = to
        if type(tag) is etf.ImproperList and tag.items[:1] == (ALIAS_ATOM,):
            dest = tag.tail
        self.node.send(dest, (tag, reply))

    async def _net_kernel(self) -> None:
        # net_adm:ping/1 calls {is_auth, Node}; the answer must be `yes` (§4).
        from beamlet._core import receive

        while True:
            msg = await receive()
            if type(msg) is tuple and len(msg) == 3 and msg[0] == GEN_CALL:
                req = msg[2]
                if type(req) is tuple and req[:1] == (Atom("is_auth"),):
                    self._safe_reply(msg[1], Atom("yes"))

    def _safe_reply(self, from_: Any, reply: Any) -> None:
        try:
            self.gen_reply(from_, reply)
        except Exception as e:
            log.info("beamlet.distribution: cannot reply to %r: %s", from_, e)

    async def _rex(self) -> None:
        # rpc:call through the rex server (§6.2); also answers features_request.
        from beamlet._core import receive

        while True:
            msg = await receive()
            if type(msg) is not tuple:
                continue
            if len(msg) == 2 and msg[1] == Atom("features_request") and type(msg[0]) is Pid:
                self.node.send(msg[0], (Atom("features_reply"), self.node.name, [ERPC]))
            elif len(msg) == 3 and msg[0] == GEN_CALL:
                req = msg[2]
                if type(req) is tuple and len(req) >= 4 and req[0] in _REX_CALLS:
                    self.node.spawn(self._rex_call, msg[1], req[1], req[2], req[3])
            elif len(msg) == 2 and msg[0] == GEN_CAST:
                req = msg[1]
                if type(req) is tuple and len(req) >= 4 and req[0] == Atom("cast"):
                    self.node.spawn(self._erpc_cast, req[1], req[2], req[3])

    async def _rex_call(self, from_: Any, module: Any, fn: Any, args: Any) -> None:
        arglist = _arglist(args)
        try:
            if arglist is None:
                raise _Undefined
            result = await self.run_function(module, fn, arglist)
            etf.encode(result)
        except _Undefined:
            result = (Atom("badrpc"), (Atom("EXIT"), (UNDEF, [(module, fn, args, [])])))
        except ProcessExit as e:
            result = (Atom("badrpc"), (Atom("EXIT"), wire_reason(e.reason)))
        except Exception as e:
            err = (python_error(e), python_stack(_tb_frames(e.__traceback__)))
            result = (Atom("badrpc"), (Atom("EXIT"), err))
        self._safe_reply(from_, result)

    async def _group_leader(self) -> None:
        # The group leader of processes we spawn on Erlang nodes: answers the io
        # protocol so that io:format there neither blocks nor fails; prints the text.
        from beamlet._core import receive

        while True:
            msg = await receive()
            if type(msg) is tuple and len(msg) == 4 and msg[0] == Atom("io_request"):
                _, frm, reply_as, request = msg
                reply = _io_request(request)
                if type(frm) is Pid:
                    self.node.send(frm, (Atom("io_reply"), reply_as, reply))


def _io_request(request: Any) -> Any:
    if type(request) is tuple and request[:1] == (Atom("put_chars"),):
        try:
            if len(request) == 3:
                text = _chars(request[2])
            elif len(request) == 5 and request[3] == Atom("format") and len(request[4]) == 2:
                text = _format(_chars(request[4][0]), request[4][1])
            else:
                text = repr(request[1:])
            sys.stdout.write(text)
            sys.stdout.flush()
        except Exception:
            pass
        return OK
    if type(request) is tuple and request[:1] == (Atom("requests"),) and type(request[1]) is list:
        for r in request[1]:
            _io_request(r)
        return OK
    return (ERROR, Atom("enotsup"))


def _chars(data: Any) -> str:
    """The text of Erlang chardata (binaries, code points, nested lists)."""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if type(data) is etf.Charlist:
        return data.text
    if isinstance(data, str):
        return data
    if type(data) is int:
        return chr(data)
    if isinstance(data, list | tuple):
        return "".join(_chars(x) for x in data)
    if type(data) is etf.ImproperList:
        return _chars(list(data.items)) + _chars(data.tail)
    return repr(data)


def _format(fmt: str, args: Any) -> str:
    """A rough rendering of io_lib:format/2 (~n, ~~, and one argument per directive)."""
    values = list(args) if isinstance(args, list | etf.Charlist) else [args]
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        i += 1
        if c != "~":
            out.append(c)
            continue
        while i < len(fmt) and (fmt[i].isdigit() or fmt[i] in ".-*lt"):
            i += 1
        d = fmt[i] if i < len(fmt) else ""
        i += 1
        if d == "n":
            out.append("\n")
        elif d == "~":
            out.append("~")
        elif values:
            v = values.pop(0)
            out.append(_chars(v) if d == "s" else repr(v))
    return "".join(out)


async def _apply(fn: Callable[..., Any], args: list[Any]) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


async def _undef(module: Any, fn: Any, args: Any) -> None:
    raise ProcessExit((UNDEF, [(module, fn, args, [])]))


def _arglist(args: Any) -> list[Any] | None:
    """Erlang argument lists arrive as lists, or as charlists when all are small ints."""
    if type(args) is list:
        return args
    if type(args) is etf.Charlist:
        return list(args)
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _default_listen_host(host: str) -> str:
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        return "::1" if host == "::1" else "127.0.0.1"
    return "0.0.0.0"


def short_host() -> str:
    """This machine's host name up to the first dot (the host part of `-sname` nodes)."""
    return socket.gethostname().split(".")[0]


async def start_distribution(
    node: Node,
    *,
    cookie: str | None = None,
    hidden: bool = True,
    ticktime: float = 60.0,
    listen_host: str | None = None,
    epmd_port: int | None = None,
    allow_import: bool = False,
    max_frame: int = 128 * 1024 * 1024,
    max_write_buffer: int = 64 * 1024 * 1024,
    connect_timeout: float = 7.0,
) -> Distribution:
    """Make a `Node` a distributed node named `node.name` (`name@host`).

    Registers with epmd on `epmd_port` (default `ERL_EPMD_PORT` or 4369; a built-in epmd
    is started when none answers), listens for peers, and plugs into the kernel so pids
    and names of other nodes work everywhere. Call it before spawning processes: the
    node's creation (part of every pid) comes from epmd. `hidden` nodes (the default)
    do not appear in Erlang's `nodes()` and are not drawn into `global`; `ticktime` is
    Erlang's `net_ticktime` (a silent peer is dropped after that many seconds).
    `cookie` defaults to `$ERLANG_COOKIE`, then `~/.erlang.cookie`.

    Example:
        >>> node = Node("py@127.0.0.1"); await node.start()
        >>> dist = await start_distribution(node, cookie="secret")
    """
    if not ticktime > 0:
        raise ValueError(f"ticktime must be a positive number of seconds, not {ticktime!r}")
    if not node.started:
        await node.start()
    if node.dist is not None:
        raise DistributionError(f"{node.name} is already distributed")
    if node.processes():
        raise DistributionError("start distribution before spawning processes")
    dist = Distribution(
        node,
        cookie=hs.read_cookie(cookie),
        hidden=hidden,
        ticktime=ticktime,
        allow_import=allow_import,
        max_frame=max_frame,
        max_write_buffer=max_write_buffer,
        connect_timeout=connect_timeout,
    )
    await dist.start(listen_host=listen_host, epmd_port=epmd_port)
    return dist
