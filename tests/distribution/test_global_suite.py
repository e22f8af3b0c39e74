"""global_SUITE cases (lib/kernel/test/global_SUITE.erl), by name, in a mixed cluster: this
beamlet node, a real Erlang node and another beamlet node, all visible. Each keeps the
case's checks, with the suite's slave nodes replaced by the mixed ones; what needs three
of the suite's nodes runs on these three. (`names`, `sync_0`, `basic_name_partition`,
`garbage_messages` are in test_global.py; `lost_connection` in test_global_partitions.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from dist_nodes import DistNode, Peer, beamlet_node, erl_peer, on, within
from test_global import idle, until

import beamlet
from beamlet import ANY, KILL, Atom, BadArgument, Down, Pid
from beamlet.distribution import connect, disconnect, global_, nodes

pytestmark = [pytest.mark.interop, pytest.mark.dist(hidden=False)]

OK, UNDEFINED, DIE = Atom("ok"), Atom("undefined"), Atom("die")
ALL = Atom("all")
TEST_LOCK, TEST_LOCK2 = Atom("test_lock"), Atom("test_lock2")

# A process that sets and deletes locks on request (global_SUITE's start_proc/req): the
# lock id is {Resource, Self}; `all` is every node; one attempt (retries 0).
ERL_PROC = (
    "spawn(fun L() -> Ns = fun(all) -> [node() | nodes()]; (N) -> N end, receive "
    "{set_lock, R, N, F} -> F ! {self(), global:set_lock({R, self()}, Ns(N), 0)}, L(); "
    "{del_lock, R, N, F} -> global:del_lock({R, self()}, Ns(N)), F ! {self(), ok}, L(); "
    "die -> ok end end)."
)


async def py_proc() -> None:
    me = beamlet.self()
    while True:
        msg = await beamlet.receive()
        if msg == DIE:
            return
        op, resource, where, sender = msg
        ns = None if where == ALL else where
        if op == Atom("set_lock"):
            beamlet.send(sender, (me, await global_.set_lock((resource, me), ns, retries=0)))
        else:
            await global_.del_lock((resource, me), ns)
            beamlet.send(sender, (me, OK))


async def req(pid: Pid, op: str, resource: Atom, where: Any = ALL) -> Any:
    beamlet.send(pid, (Atom(op), resource, where, beamlet.self()))
    _, result = await beamlet.receive((pid, ANY), timeout=15)
    return result


async def gone(pid: Pid) -> None:
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, KILL)
    await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Until `check()` holds (global's monitors release locks and names asynchronously)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await beamlet.sleep(0.01)  # sleep-ok: polling replicated state


@contextlib.asynccontextmanager
async def cluster(node: DistNode, epmd_port: int) -> AsyncIterator[tuple[Peer, DistNode]]:
    """This node, an Erlang node and a beamlet node, fully connected and in sync."""
    async with erl_peer(epmd_port) as e, beamlet_node(epmd_port, hidden=False) as b:
        assert await connect(e.name)
        assert await connect(b.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        await within(15, global_.sync())

        async def meshed() -> None:
            await until(lambda: e.name in nodes())
            await within(15, global_.sync())

        await on(b, meshed)
        yield e, b


async def test_names_hidden(node: DistNode, epmd_port: int) -> None:
    """Names on a hidden node do not interfere with the visible nodes' names: a hidden
    beamlet node runs no `global` (it cannot register), is not waited for by
    `global:sync()`, and the visible nodes' names are theirs alone."""
    async with erl_peer(epmd_port) as e, beamlet_node(epmd_port) as hidden:
        assert await connect(e.name)
        assert await connect(hidden.name)

        async def meet() -> bool:
            return await connect(e.name)

        assert await on(hidden, meet)
        assert hidden.name not in await e.eval("nodes().")
        assert Atom(hidden.name) in await e.eval("nodes(hidden).")
        assert await e.eval("global:sync().", timeout=15) == OK
        pid = beamlet.spawn(idle)
        assert await within(10, global_.register_name(Atom("test"), pid)) is True
        assert await e.eval("global:whereis_name(test).") == pid

        async def on_hidden() -> str:
            with pytest.raises(BadArgument) as err:
                await global_.register_name(Atom("test"), beamlet.self())
            return str(err.value)

        assert "not running" in await on(hidden, on_hidden)
        assert global_.whereis_name(Atom("test")) == pid


async def test_locks(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    mine = (TEST_LOCK, me)
    async with cluster(node, epmd_port) as (e, b):
        pid = beamlet.spawn(py_proc)
        pid2 = await e.eval(ERL_PROC)
        # set a lock, and make sure no one else can set the same lock
        assert await global_.set_lock(mine, retries=0) is True
        assert await req(pid, "set_lock", TEST_LOCK) is False
        assert await req(pid2, "set_lock", TEST_LOCK) is False
        # delete, and let another process set the lock
        await global_.del_lock(mine)
        assert await req(pid, "set_lock", TEST_LOCK) is True
        assert await req(pid2, "set_lock", TEST_LOCK) is False
        assert await global_.set_lock(mine, retries=0) is False
        # kill the lock-holding process: the lock is released everywhere
        await gone(pid)
        await eventually(lambda: global_.set_lock(mine, retries=0))
        await global_.del_lock(mine)
        # a process (on the other beamlet node) sets two locks and deletes one
        pid3 = b.spawn(py_proc)
        assert await req(pid3, "set_lock", TEST_LOCK) is True
        assert await req(pid3, "set_lock", TEST_LOCK2) is True
        assert await req(pid3, "del_lock", TEST_LOCK2) == OK
        assert await global_.set_lock(mine, retries=0) is False
        assert await global_.set_lock((TEST_LOCK2, me), retries=0) is True
        await global_.del_lock((TEST_LOCK2, me))
        beamlet.send(pid3, DIE)
        await eventually(lambda: global_.set_lock(mine, retries=0))
        await global_.del_lock(mine)
        # locks on some of the nodes
        here, there = [node.name, e.name], [Atom(b.name)]
        pid4, pid5 = beamlet.spawn(py_proc), await e.eval(ERL_PROC)
        pid6, pid7 = b.spawn(py_proc), await e.eval(ERL_PROC)
        assert await req(pid4, "set_lock", TEST_LOCK, here) is True
        assert await req(pid5, "set_lock", TEST_LOCK, here) is False
        assert await req(pid6, "set_lock", TEST_LOCK, there) is True
        assert await req(pid7, "set_lock", TEST_LOCK, there) is False
        assert await req(pid6, "del_lock", TEST_LOCK, there) == OK
        # a node that already has the lock refuses the whole set
        assert await req(pid6, "set_lock", TEST_LOCK, [e.name, *there]) is False
        await gone(pid4)
        await eventually(lambda: req(pid5, "set_lock", TEST_LOCK, here))
        pid8 = beamlet.spawn(py_proc)
        assert await req(pid8, "set_lock", TEST_LOCK) is False


async def test_bad_input(node: DistNode) -> None:
    server = beamlet.whereis("global_name_server")
    me = beamlet.self()
    fail: list[Callable[[], Awaitable[Any]]] = [
        lambda: global_.set_lock(Atom("bad_id")),  # type: ignore[arg-type]
        lambda: global_.set_lock((Atom("id"), me), Atom("bad_nodes")),
        lambda: global_.del_lock(Atom("bad_id")),  # type: ignore[arg-type]
        lambda: global_.del_lock((Atom("id"), me), 42),  # type: ignore[arg-type]
        lambda: global_.register_name(Atom("name"), Atom("bad_pid")),  # type: ignore[arg-type]
        lambda: global_.re_register_name(Atom("name"), Atom("bad_pid")),  # type: ignore[arg-type]
        lambda: global_.trans(Atom("bad_id"), lambda: 1),  # type: ignore[arg-type]
        lambda: global_.trans((Atom("id"), me), (Atom("m"), Atom("f"))),  # type: ignore[arg-type]
        lambda: global_.trans((Atom("id"), me), lambda: 1, [node.name], -1),
    ]
    for call in fail:
        with pytest.raises(BadArgument):
            await call()
    assert beamlet.whereis("global_name_server") == server


async def test_lock_die(node: DistNode, epmd_port: int) -> None:
    """OTP-6341: locks are removed through monitors, also on the nodes where the dead
    holder did not run."""
    async with cluster(node, epmd_port) as (e, b):
        lock_id = (Atom("id"), beamlet.self())
        holder = beamlet.spawn(py_proc)
        assert await req(holder, "set_lock", Atom("id"), [e.name, Atom(b.name)]) is True
        assert await global_.set_lock(lock_id, [e.name], retries=0) is False
        await gone(holder)  # the lock goes from the other nodes too
        await eventually(lambda: global_.set_lock(lock_id, [node.name, e.name], retries=0))
        await global_.del_lock(lock_id, [node.name, e.name])
        erl_holder = await e.eval(ERL_PROC)
        assert await req(erl_holder, "set_lock", Atom("id"), [node.name]) is True
        beamlet.send(erl_holder, DIE)
        await eventually(lambda: global_.set_lock(lock_id, [node.name], retries=0))


async def test_name_die(node: DistNode, epmd_port: int) -> None:
    """OTP-6341: a name registered for a process of another node goes, on every node,
    when that process dies."""
    async with cluster(node, epmd_port) as (e, b):
        epid = await e.eval(ERL_PROC)
        assert await within(10, global_.register_name(Atom("name_die"), epid)) is True
        bpid = b.spawn(py_proc)
        assert await within(10, global_.register_name(Atom("name_die2"), bpid)) is True
        beamlet.send(epid, DIE)
        beamlet.send(bpid, DIE)
        await until(lambda: global_.registered_names() == [])
        assert await e.eval("global:registered_names().") == []

        async def theirs() -> list[Any]:
            await until(lambda: global_.registered_names() == [])
            return global_.registered_names()

        assert await on(b, theirs) == []


async def test_re_register_name(node: DistNode, epmd_port: int) -> None:
    """OTP-5563: after re_register_name the old process is no longer monitored by
    `global` on any node (Erlang's `process_info(P, monitored_by)` lists beamlet's
    remote monitor too), the new one is."""
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        p1, p2 = await e.eval("{" + ERL_PROC[:-1] + ", " + ERL_PROC[:-1] + "}.")
        assert await within(10, global_.register_name(Atom("name"), p1)) is True
        monitored = "{monitored_by, M} = process_info(P, monitored_by), length(M)."
        # monitored by the name servers of both nodes (ours is a remote monitor)
        await eventually(lambda: _eq(e.eval(monitored, P=p1), 2))
        await within(10, global_.re_register_name(Atom("name"), p2))
        await eventually(lambda: _eq(e.eval(monitored, P=p1), 0))
        await eventually(lambda: _eq(e.eval(monitored, P=p2), 2))
        assert await e.eval("global:whereis_name(name).") == p2


async def _eq(aw: Awaitable[Any], value: Any) -> bool:
    return bool(await aw == value)


async def test_name_exit(node: DistNode, epmd_port: int) -> None:
    """OTP-5563: a registered process dies while another process holds `global`'s own
    lock: every node removes the name at once (through its monitor), not after the
    lock is released."""
    async with cluster(node, epmd_port) as (e, b):
        pid = beamlet.spawn(idle)
        assert await within(10, global_.register_name(Atom("name"), pid)) is True
        await e.eval("global:sync().", timeout=15)
        assert await e.eval(
            "Me = self(), spawn(fun() -> global:trans({global, self()}, fun() -> "
            "Me ! taken, receive after 3000 -> ok end end) end), receive taken -> ok end."
        ) == Atom("ok")
        await gone(pid)

        async def everywhere_gone() -> bool:
            if global_.whereis_name(Atom("name")) is not None:
                return False
            return bool(await e.eval("global:whereis_name(name).") == UNDEFINED)

        await within(2.5, eventually(everywhere_gone))  # before the 3 s lock goes

        async def on_b() -> Any:
            return global_.whereis_name(Atom("name"))

        assert await on(b, on_b) is None


async def test_mass_death(node: DistNode, epmd_port: int) -> None:
    """Many registered processes die at once: every name goes on every node."""
    n = 60
    async with cluster(node, epmd_port) as (e, _b):
        pids = [beamlet.spawn(idle) for _ in range(n)]
        for i, pid in enumerate(pids):
            assert await within(10, global_.register_name((Atom("mass"), i), pid)) is True
        assert len(await e.eval("global:registered_names().")) == n
        for pid in pids:
            beamlet.exit(pid, KILL)
        await until(lambda: global_.registered_names() == [])
        await eventually(lambda: _eq(e.eval("global:registered_names()."), []))


async def test_simple_resolve(node: DistNode, epmd_port: int) -> None:
    """Two partitions register the same names with resolve functions; on heal each name
    is resolved once, by the method of the registration, and the result is the same on
    both nodes: a Python function keeping the other partition's pid (resolve_second),
    and `notify_all_name` (both told, the name gone)."""
    async with beamlet_node(epmd_port, hidden=False) as b:
        assert await connect(b.name)
        await within(10, global_.sync())
        calls: list[Any] = []

        def keep_b(name: Any, p1: Pid, p2: Pid) -> Pid:
            calls.append(name)
            return p1 if p1.node == b.name else p2

        disconnect(b.name)
        await until(lambda: b.name not in nodes())
        here, there = beamlet.spawn(idle), b.spawn(idle)
        me = beamlet.self()

        async def notified() -> None:
            msg = await beamlet.receive((Atom("global_name_conflict"), ANY, ANY), timeout=20)
            beamlet.send(me, (beamlet.self(), msg))

        n_here, n_there = beamlet.spawn(notified), b.spawn(notified)

        async def register(pid: Pid, npid: Pid) -> None:
            assert await within(10, global_.register_name(Atom("res"), pid, keep_b)) is True
            assert await within(10, global_.register_name(Atom("all"), npid, notify_all))

        notify_all = global_.notify_all_name
        await register(here, n_here)
        await on(b, register, there, n_there)
        assert await connect(b.name)
        await within(15, global_.sync())
        await until(lambda: global_.whereis_name(Atom("res")) == there)

        async def seen() -> Any:
            await within(15, global_.sync())
            return global_.whereis_name(Atom("res")), global_.whereis_name(Atom("all"))

        assert await on(b, seen) == (there, None)
        assert global_.whereis_name(Atom("all")) is None
        assert calls == [Atom("res")]
        for npid, other in ((n_here, n_there), (n_there, n_here)):
            _, msg = await beamlet.receive((npid, ANY), timeout=20)
            assert msg == (Atom("global_name_conflict"), Atom("all"), other)


async def test_simple_resolve3(node: DistNode, epmd_port: int) -> None:
    """A name registered here for a process of another node, with a Python resolve
    function: on heal the function runs once, on the node that registered the name
    (where it lives), and its choice holds on every node."""
    async with (
        beamlet_node(epmd_port, hidden=False) as b1,
        beamlet_node(epmd_port, hidden=False) as b2,
    ):
        assert await connect(b1.name)
        assert await connect(b2.name)
        await within(15, global_.sync())
        calls: list[Any] = []
        p1, p2 = b1.spawn(idle), b2.spawn(idle)

        def keep_b2(name: Any, pid1: Pid, pid2: Pid) -> Pid:
            calls.append(name)
            return pid1 if pid1.node == b2.name else pid2

        assert await within(10, global_.register_name(Atom("far"), p1, keep_b2)) is True

        async def split_off() -> None:
            for n in (node.name, b1.name):
                disconnect(n)
            await until(lambda: nodes() == [])
            assert await within(10, global_.register_name(Atom("far"), p2)) is True

        await on(b2, split_off)
        await until(lambda: b2.name not in nodes())

        async def heal() -> None:
            assert await connect(node.name)
            await within(15, global_.sync())

        await on(b2, heal)
        await until(lambda: global_.whereis_name(Atom("far")) == p2)

        async def where() -> Any:
            await within(15, global_.sync())
            await until(lambda: global_.whereis_name(Atom("far")) == p2)
            return global_.whereis_name(Atom("far"))

        assert await on(b1, where) == p2
        assert await on(b2, where) == p2
        assert calls == [Atom("far")]


@contextlib.asynccontextmanager
async def three(epmd_port: int) -> AsyncIterator[tuple[DistNode, Peer, Peer]]:
    """A visible beamlet node and two Erlang nodes, fully connected; the (hidden) test
    node drives the Erlang nodes without taking part in `global`."""
    async with (
        beamlet_node(epmd_port, hidden=False) as p,
        erl_peer(epmd_port) as e1,
        erl_peer(epmd_port) as e2,
    ):
        for e in (e1, e2):
            assert await on(p, connect, e.name)
        for e in (e1, e2):
            assert await e.eval("global:sync().", timeout=15) == OK
        assert await e1.eval(CONNECTED, X=e2.name) == OK
        yield p, e1, e2


@pytest.mark.dist(hidden=True)
async def test_global_disconnect(node: DistNode, epmd_port: int) -> None:
    """`global:disconnect/0` (OTP 25.1) from beamlet: it leaves the cluster, and the
    others stay connected to each other (no `lost_connection` reports)."""
    async with three(epmd_port) as (p, e1, e2):

        async def leave() -> list[Atom]:
            return await within(15, global_.disconnect())

        assert await on(p, leave) == sorted([e1.name, e2.name])
        assert p.d.nodes() == []
        assert await e1.eval("nodes().") == [e2.name]
        assert await e2.eval("nodes().") == [e1.name]
        assert await e1.eval("global:sync().", timeout=15) == OK


@pytest.mark.dist(hidden=True)
async def test_global_disconnect_from_erlang(node: DistNode, epmd_port: int) -> None:
    """An Erlang node calls `global:disconnect/0`: beamlet, one of the nodes that stay,
    keeps its connection to the other Erlang node."""
    async with three(epmd_port) as (p, e1, e2):
        assert await e1.eval("lists:sort(global:disconnect()).") == sorted([Atom(p.name), e2.name])
        await until(lambda: e1.name not in p.d.nodes())
        assert p.d.nodes() == [e2.name]
        assert await e2.eval("nodes().") == [Atom(p.name)]

        async def synced() -> None:
            await within(15, global_.sync())

        await on(p, synced)


CONNECTED = (
    "F = fun L(0) -> timeout; L(N) -> case lists:member(X, nodes()) of true -> ok; "
    "false -> timer:sleep(10), L(N - 1) end end, F(1000)."
)


async def test_otp_5737(node: DistNode) -> None:
    """OTP-5737: set_lock/3 and trans/4 accept Retries = 0 (one attempt, at once), and
    refuse a negative or non-integer count."""
    lock_id, nodes_ = (Atom("global_SUITE"), beamlet.self()), [node.name]
    for bad in (-1, Atom("a")):
        with pytest.raises(BadArgument):
            await global_.set_lock(lock_id, nodes_, bad)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            await global_.trans(lock_id, lambda: OK, nodes_, bad)  # type: ignore[arg-type]
    assert await global_.set_lock(lock_id, nodes_, 0) is True

    async def other() -> bool:
        return await global_.set_lock((Atom("global_SUITE"), Atom("not_me")), nodes_, 0)

    assert await within(5, beamlet.Task.await_(beamlet.Task.async_(other))) is False
    await global_.del_lock(lock_id, nodes_)
    assert await global_.trans(lock_id, lambda: OK, nodes_, 0) == OK


async def test_register_1(node: DistNode, epmd_port: int) -> None:
    """OTP-3552: a name registered while `global`'s lock is held and a new node is
    connecting ends up on the new node too."""
    me = beamlet.self()

    async def lock_global() -> None:
        lock = (Atom("global"), beamlet.self())
        assert await global_.set_lock(lock, [node.name])
        beamlet.send(me, Atom("locked"))
        await beamlet.receive(Atom("release"))
        await global_.del_lock(lock, [node.name])

    locker = beamlet.spawn(lock_global)
    await beamlet.receive(Atom("locked"), timeout=10)
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)

        async def register() -> None:
            assert await global_.register_name(Atom("foo"), me) is True
            beamlet.send(me, Atom("registered"))

        beamlet.spawn(register)
        assert await beamlet.receive(Atom("registered"), timeout=0.5, default=None) is None
        beamlet.send(locker, Atom("release"))
        await beamlet.receive(Atom("registered"), timeout=30)
        assert global_.whereis_name(Atom("foo")) == me
        assert await e.eval("global:sync().", timeout=30) == OK
        await eventually(lambda: _eq(e.eval("global:whereis_name(foo)."), me))
