"""Connections to other nodes: set-up, ticks, `nodes()`, `monitor_node` (OTP's
`net_kernel` and `dist_util`, docs/protocol.md §2 and §4).

At most one connection per peer. While an attempt is in progress in either direction,
signals to the peer are queued, in order, and written once it is up; when both nodes
dial each other at once, the greater node name wins on both sides, so exactly one
connection survives (§2.2). When a connection goes down, or cannot be made, everything
that crossed or waited for it is told (`_node_down`): the kernel gives every link and
monitor across it `noconnection` (docs/semantics.md §1.5) and `monitor_node`
subscribers get `NodeDown`.

`NetKernel` is the lowest layer of `Distribution`; `dist_ctrl.DistCtrl` adds the
control messages on top of it. The `net_kernel` registered process that answers
`net_adm:ping` (`NetKernelServer`, a GenServer) is here too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from beamlet._core import Atom, BeamletError, Node, Pid
from beamlet.behaviours.gen_server import From, GenServer, NoReply, Reply
from beamlet.distribution import handshake as hs
from beamlet.distribution.connection import DistProtocol, describe
from beamlet.distribution.epmd import EpmdClient

log = logging.getLogger("beamlet.distribution")

_IS_AUTH = Atom("is_auth")
_YES = Atom("yes")

#: net_kernel's state: what `sys:get_state(net_kernel)` shows.
NetKernelState = dict[Atom, Any]


@dataclass(frozen=True, slots=True)
class NodeDown:
    """Sent to `monitor_node` subscribers when the connection to `node` is lost or cannot
    be made (Erlang's `{nodedown, Node}`).

    Examples:
        >>> from beamlet.distribution import NodeDown, monitor_node
        >>> async def main() -> None:
        ...     monitor_node("nobody@127.0.0.1")  # no such node: down at once
        ...     print(await beamlet.receive(NodeDown, timeout=2))
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        NodeDown(node=Atom('nobody@127.0.0.1'))
    """

    node: Atom


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One connection, as `NetKernel.nodes_info` (net_kernel:nodes_info/0) tells it:
    `type` is "normal" or "hidden" (the connection's, as in Erlang), `beamlet` whether
    the peer said it is a beamlet node, and the bytes read and written on it."""

    node: Atom
    type: str
    beamlet: bool
    bytes_in: int
    bytes_out: int


class DistributionError(BeamletError):
    """Distribution could not start, or a node could not be reached."""


def check_ticktime(ticktime: Any) -> None:
    """`net_ticktime` is a positive number of seconds."""
    if not ticktime > 0:
        raise ValueError(f"ticktime must be a positive number of seconds, not {ticktime!r}")


def fresh_context() -> contextvars.Context:
    # Runtime tasks and callbacks must not run in the context of the process that
    # happened to trigger them: that process would look "current" to the kernel.
    return contextvars.Context()


class NetKernel:
    """The connections of one distributed `Node` (the base layer of `Distribution`)."""

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
        codec: Any = None,
    ) -> None:
        self.node = node
        #: The codec options of every connection (None: the codec's defaults).
        self.codec = codec
        self.name = str(node.name)
        self.cookie = cookie
        self.hidden = hidden
        self.flags = hs.OUR_FLAGS | (0 if hidden else hs.PUBLISHED)
        self.ticktime = ticktime
        self.max_frame = max_frame
        self.max_write_buffer = max_write_buffer
        self.connect_timeout = connect_timeout
        self.conns: dict[Atom, DistProtocol] = {}
        self._dials: dict[Atom, asyncio.Task[None]] = {}
        self._accepts: dict[Atom, int] = {}  # handshakes in progress from that peer
        self._accept_waiters: dict[Atom, list[asyncio.Future[None]]] = {}
        self._waiters: dict[Atom, list[asyncio.Future[bool]]] = {}
        self._queued: dict[Atom, list[Any]] = {}  # frames, as the layer above encodes them
        self._going_down: set[Atom] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._node_monitors: dict[Atom, list[Pid]] = {}
        #: Called with the peer's name each time a connection comes up (pg uses it).
        self.on_nodeup: list[Callable[[Atom], None]] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._stopping = False
        self.started = False
        self.epmd_port: int | None = None
        self.epmd = EpmdClient()

    # --- hooks for the layers above -----------------------------------------------------

    def _on_frame(self, proto: DistProtocol, frame: bytes) -> None:
        """A frame from a connected peer (`DistCtrl` decodes and dispatches it)."""
        raise NotImplementedError

    def _waits_for(self, node: Atom) -> bool:
        """Whether something above this layer waits for a connection to `node`."""
        return False

    def _connected(self, proto: DistProtocol, node: Atom) -> None:
        """The connection to `node` is up (before `on_nodeup` hooks run)."""

    def _write_queued(self, proto: DistProtocol, node: Atom, frames: list[Any]) -> None:
        """Write the frames queued for `node` while its connection was being set up."""
        for frame in frames:
            proto.write_frame(frame)

    def _forget(self, node: Atom) -> None:
        """The connection to `node` is down: drop what the layers above hold for it,
        before the kernel hears of it."""

    def _task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, context=fresh_context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _protocol(self) -> DistProtocol:
        """A protocol for an accepted connection (the server's factory)."""
        proto = self._new_protocol()
        self._task(self._accept(proto))
        return proto

    def _new_protocol(self) -> DistProtocol:
        proto = self._bare_protocol()
        proto.encode_options = proto.decode_options = self.codec
        return proto

    def _bare_protocol(self) -> DistProtocol:
        return DistProtocol(
            max_frame=self.max_frame,
            max_write_buffer=self.max_write_buffer,
            on_frame=self._on_frame,
            on_lost=self._on_lost,
        )

    # --- ticks (§4) -------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(
            self.ticktime / 4, self._tick, context=fresh_context()
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

    def nodes_info(self) -> list[NodeInfo]:
        """Each live connection, sorted by node (net_kernel:nodes_info/0, for observers).

        Examples:
            >>> from beamlet import Node
            >>> from beamlet.distribution import start_distribution
            >>> async with Node("a@127.0.0.1") as a, Node("b@127.0.0.1") as b:
            ...     a_dist = await start_distribution(a, cookie="secret")
            ...     b_dist = await start_distribution(b, cookie="secret")
            ...     await a_dist.connect(b.name)
            ...     [(i.node, i.type, i.beamlet, i.bytes_in > 0) for i in a_dist.nodes_info()]
            ...     await b_dist.stop()
            ...     await a_dist.stop()
            True
            [(Atom('b@127.0.0.1'), 'hidden', True, True)]
        """
        return [
            NodeInfo(
                name,
                "normal" if c.flags & hs.PUBLISHED else "hidden",
                c.beamlet,
                c.bytes_in,
                c.bytes_out,
            )
            for name, c in sorted(self.conns.items())
        ]

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
                # The peer may have restarted, or lost the connection before we noticed.
                # The old connection stays up until this one has proved the cookie
                # (`_up` replaces it): saying `true` must not be enough to cut it.
                proto.write_hs(hs.status("alive"))
                answer = hs.parse_status(await proto.read_hs(t))
                if answer != "true":
                    proto.close()
                    return
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
            if peer_name is None and type(e) is ConnectionError:
                # Hung up before saying its name: no refusal, but the loser of a
                # simultaneous connect (dist_util drops its own attempt) or a port probe.
                log.info("beamlet.distribution: a peer hung up before its send_name")
            else:
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
            # noconnection for the old one
            old.abort("replaced by a new connection (the peer restarted or reconnected)")
        self.conns[node] = proto
        proto.peer = str(node)
        proto.set_flags(self.flags & flags)
        # Signals queued while connecting go first, before anything the peer already
        # sent can make us answer on the new connection.
        self._write_queued(proto, node, self._queued.pop(node, []))
        log.info("beamlet.distribution: connected to %s", node)
        proto.start_connected(str(node), self.flags & flags)
        if self.conns.get(node) is proto:
            self._connected(proto, node)
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
            or self._waits_for(node)
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
            for fut in self._waiters.pop(node, ()):
                if not fut.done():
                    fut.set_result(False)
            self._forget(node)
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


class NetKernelServer(GenServer[NetKernelState]):
    """The `net_kernel` registered process, a GenServer as OTP's net_kernel is:
    `net_adm:ping/1` calls `{is_auth, Node}` and the answer must be `yes` (§4). Other
    requests are not answered (the caller times out), other messages dropped."""

    def init(self, arg: None) -> NetKernelState:
        return {}

    def handle_call(
        self, request: Any, from_: From, state: NetKernelState
    ) -> Reply[NetKernelState] | NoReply[NetKernelState]:
        if type(request) is tuple and request[:1] == (_IS_AUTH,):
            return Reply(_YES, state)
        return NoReply(state)

    def handle_cast(self, request: Any, state: NetKernelState) -> NoReply[NetKernelState]:
        return NoReply(state)

    def handle_info(self, msg: Any, state: NetKernelState) -> NoReply[NetKernelState]:
        return NoReply(state)
