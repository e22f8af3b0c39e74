"""A node's distribution: the layers below, put together, and its start and stop.

`Distribution` is the kernel's `RemoteHook` for one `Node`, built in layers along OTP's
seams: `net_kernel.NetKernel` (connections, handshake, ticks, `monitor_node`),
`dist_ctrl.DistCtrl` (control messages out and in), `erpc.RemoteSpawn` (remote spawn
both ways, erpc, the functions peers may call). `start` adds the listening socket, the
epmd registration and the services Erlang peers expect: `net_kernel` answers
`net_adm:ping`, `rex` serves `rpc:call`/`rpc:block_call`, and a group leader absorbs
the output of Erlang processes this node spawns remotely.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, TypedDict, Unpack

from beamlet._core import KILL, Atom, Node, Pid, Shared, spawn_link
from beamlet.distribution import etf
from beamlet.distribution import handshake as hs
from beamlet.distribution.bifs import builtin_functions
from beamlet.distribution.epmd import EpmdServer, Registration, ensure_epmd
from beamlet.distribution.erpc import RemoteSpawn, SpawnReply
from beamlet.distribution.group_leader import group_leader
from beamlet.distribution.net_kernel import (
    DistributionError,
    NetKernelServer,
    NodeDown,
    check_ticktime,
)
from beamlet.distribution.rex import Rex
from beamlet.distribution.services import Service, supervise

__all__ = [
    "DistOptions",
    "Distribution",
    "DistributionError",
    "NodeDown",
    "SpawnReply",
    "start_distribution",
]

log = logging.getLogger("beamlet.distribution")

NET_KERNEL = Atom("net_kernel")
REX = Atom("rex")


class DistOptions(TypedDict, total=False):
    """The options of `start_distribution` (and `Distribution`). Each layer owns its
    defaults: `NetKernel` `hidden=True`, `ticktime=60.0` (seconds), `max_frame` (128 MiB),
    `max_write_buffer` (64 MiB), `connect_timeout=7.0`, `codec=None`; `DistCtrl`
    `beamlet_codec=etf.LOSSLESS`; `RemoteSpawn` `allow_import=False`.

    Examples:
        >>> from beamlet.distribution.distribution import DistOptions
        >>> opts: DistOptions = {"hidden": False, "ticktime": 20.0}
        >>> sorted(opts)   # then: await start_distribution(node, cookie="c", **opts)
        ['hidden', 'ticktime']
    """

    hidden: bool
    ticktime: float
    allow_import: bool
    max_frame: int
    max_write_buffer: int
    connect_timeout: float
    codec: etf.CodecOptions | None
    beamlet_codec: etf.CodecOptions | None


class Distribution(RemoteSpawn):
    """The distribution layer of one `Node`. Start it with `start_distribution`.

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import start_distribution
        >>> async with Node("a@127.0.0.1") as a:
        ...     a_dist = await start_distribution(a, cookie="secret")
        ...     print(a_dist.name, a_dist.hidden, a_dist.port > 0, a_dist.nodes())
        ...     await a_dist.stop()
        a@127.0.0.1 True True []
    """

    def __init__(self, node: Node, *, cookie: str, **options: Unpack[DistOptions]) -> None:
        super().__init__(node, cookie=cookie, **options)
        self._server: asyncio.Server | None = None
        self._epmd_server: EpmdServer | None = None
        self._registration: Registration | None = None
        self._supervisor: Pid | None = None
        self.port = 0
        self._builtin_functions()

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, *, listen_host: str | None = None, epmd_port: int | None = None) -> None:
        """Listen for peers, register with epmd (starting a built-in one if none answers)
        and plug into the kernel. `listen_host` defaults to loopback when the node's
        host is a loopback name or address, else to every interface (as `erl` does)."""
        try:
            hs.check_name(self.name)
        except hs.HandshakeError as e:
            raise DistributionError(str(e)) from None
        loop = asyncio.get_running_loop()
        if listen_host is None:
            listen_host = _default_listen_host(self.name.partition("@")[2])
        # Listening starts only once the services are up. Without SO_REUSEADDR, bind(0)
        # hands out a port no other socket holds, so the later listen() cannot fail with
        # EADDRINUSE (with it, Linux may give a bound-but-idle port to a second socket).
        self._server = await loop.create_server(
            self._protocol, host=listen_host, port=0, start_serving=False, reuse_address=False
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
        # The services (rex, net_kernel: GenServers that ack their start) are up before
        # the first peer can connect.
        ready: asyncio.Future[None] = loop.create_future()
        self._supervisor = self.node.spawn(self._supervise, Shared(ready))
        await ready
        await self._server.start_serving()
        self._schedule_tick()
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
        if self.node.started and self._supervisor is not None:
            self.node.exit(self._supervisor, KILL)  # and the services linked to it
        self._supervisor = None
        self.node.detach_distribution(self)
        self.started = False

    # Process bodies of the services (bound methods: spawn copies arguments).

    async def _supervise(self, ready: Shared[asyncio.Future[None]]) -> None:
        # The group leader first: it is spawned at once, the GenServers ack their start.
        services: list[Service] = [(None, self._group_leader, self._set_group_leader)]
        services += [
            (name, start, _ignore)
            for name, start in ((NET_KERNEL, self._net_kernel), (REX, self._rex))
            if self.node.whereis(name) is None  # a user's own process keeps the name
        ]

        def up() -> None:
            if not ready.value.done():
                ready.value.set_result(None)

        try:
            await supervise(services, up)
        finally:
            up()  # a start_distribution never waits for a supervisor that died

    def _set_group_leader(self, pid: Pid) -> None:
        self.group_leader = pid

    async def _net_kernel(self) -> Pid | None:
        return await NetKernelServer.start_link(None, name=NET_KERNEL)

    async def _rex(self) -> Pid | None:
        return await Rex.start_link(Shared(self), name=REX)

    async def _group_leader(self) -> Pid:
        async def body() -> None:  # a closure: spawn arguments would be copied
            await group_leader(self.node)

        return spawn_link(body)

    # --- the functions peers may call ---------------------------------------------------

    def register_function(self, module: str, name: str, fn: Callable[..., Any]) -> None:
        """Make `fn` callable from other nodes as `module:name` (rpc, erpc, spawn).

        `fn` may be a plain function or an async one; it runs in a fresh process of this
        node, so it may use the process API (`self()`, `receive`, ...)."""
        self.functions.register(module, name, fn)

    def unregister_function(self, module: str, name: str) -> bool:
        return self.functions.unregister(module, name)

    def lookup_function(self, module: Any, name: Any) -> Callable[..., Any] | None:
        """The function registered as `module:name`, or None (the behaviours start a
        child spec `{M, F, A}` from another node with it)."""
        return self.functions.lookup(module, name)

    def _builtin_functions(self) -> None:
        self.functions.functions.update(builtin_functions(self))


def _default_listen_host(host: str) -> str:
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        return "::1" if host == "::1" else "127.0.0.1"
    return "0.0.0.0"


def short_host() -> str:
    """This machine's host name up to the first dot (the host part of `-sname` nodes)."""
    return socket.gethostname().split(".")[0]


def _ignore(_pid: Pid) -> None:
    pass


async def start_distribution(
    node: Node,
    *,
    cookie: str | None = None,
    listen_host: str | None = None,
    epmd_port: int | None = None,
    **options: Unpack[DistOptions],
) -> Distribution:
    """Make a `Node` a distributed node named `node.name` (`name@host`).

    Registers with epmd on `epmd_port` (default `ERL_EPMD_PORT` or 4369; a built-in epmd
    is started when none answers), listens for peers, and plugs into the kernel so pids
    and names of other nodes work everywhere. Call it before spawning processes: the
    node's creation (part of every pid) comes from epmd. `hidden` nodes (the default)
    do not appear in Erlang's `nodes()` and are not drawn into `global`; `ticktime` is
    Erlang's `net_ticktime` (a silent peer is dropped after that many seconds). The
    other options and their defaults: `DistOptions`.
    `cookie` defaults to `$ERLANG_COOKIE`, then `~/.erlang.cookie`. `codec` is the
    codec options of connections to Erlang, Elixir and C nodes (None: `etf.DEFAULT_OPTIONS`;
    `etf.ELIXIR` for an Elixir cluster); `beamlet_codec` those of connections to other
    beamlet nodes, recognised after connecting (see `peer_kind`). By default that is
    `etf.LOSSLESS`, used when both nodes use it: Python values round-trip as themselves
    (`str` and `bytes`, `None`, tuples and lists, any dict key). `beamlet_codec=None`
    gives beamlet peers `codec` too (the behaviour of 0.1.0); a non-lossless `CodecOptions` applies
    to beamlet peers as it is. See "Values on the wire" in docs/distribution.md.

    Examples:
        Two distributed nodes in one program, started from plain code; `node.run` runs a
        process on one of them:

        >>> from beamlet import Node
        >>> from beamlet.distribution import rpc, start_distribution
        >>> async with Node("a@127.0.0.1") as a, Node("b@127.0.0.1") as b:
        ...     a_dist = await start_distribution(a, cookie="secret")
        ...     b_dist = await start_distribution(b, cookie="secret")
        ...     print(await a.run(rpc.call, "b@127.0.0.1", "erlang", "node", []))
        ...     await a_dist.stop(); await b_dist.stop()
        b@127.0.0.1
    """
    if "ticktime" in options:
        check_ticktime(options["ticktime"])
    if not node.started:
        await node.start()
    if node.dist is not None:
        raise DistributionError(f"{node.name} is already distributed")
    if node.processes():
        raise DistributionError("start distribution before spawning processes")
    dist = Distribution(node, cookie=hs.read_cookie(cookie), **options)
    await dist.start(listen_host=listen_host, epmd_port=epmd_port)
    if not dist.hidden:  # a visible node owes the cluster `global` (docs/distribution.md)
        from beamlet.distribution import global_

        global_.start(node)
    return dist
