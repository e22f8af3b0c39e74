"""`global` with beamlet as a full participant, against real Erlang nodes (the system OTP
and the second OTP): global_SUITE's themes — sync (`sync_0`), names registered and seen
from both sides (`names`), refusals, re_register, trans, names vanishing with their
process or node, a partition healed with a conflicting name (`basic_name_partition`),
the full mesh, garbage sent to the name server (`garbage_messages`). More of
global_SUITE's cases, by name, are in test_global_suite.py."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on, within
from test_otp_versions import erl2

import beamlet
from beamlet import Atom, Down, Pid
from beamlet.behaviours.gen import AlreadyStarted
from beamlet.distribution import connect, disconnect, etf, global_, nodes
from beamlet.distribution.api import NodeDown, monitor_node

pytestmark = [pytest.mark.interop, pytest.mark.dist(hidden=False)]

GLOBAL = Atom("global_name_server")
OK, YES, NO, UNDEFINED = Atom("ok"), Atom("yes"), Atom("no"), Atom("undefined")
WAIT_GONE = (
    "F = fun W(0) -> timeout; W(N) -> case global:whereis_name(Name) of undefined -> gone; "
    "_ -> timer:sleep(10), W(N-1) end end, F(500)."
)


@pytest.fixture(params=["system", "erl2"], ids=["otp-system", "otp-erl2"])
def erl(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "system" else erl2()


async def idle() -> None:
    await beamlet.receive(lambda m: m == "stop")


async def gone(pid: Pid) -> None:
    ref = beamlet.monitor(pid)
    await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)


async def until(pred: Any, timeout: float = 10.0) -> None:
    """Wait for `pred()` on the clock, a few ms at a time (global's tables are
    replicated asynchronously: there is no message to wait for)."""
    async with __import__("asyncio").timeout(timeout):
        while not pred():
            await beamlet.sleep(0.01)  # sleep-ok: a bounded poll of replicated tables


def start_global(node: DistNode) -> None:
    """A visible node starts `global` with its distribution."""
    assert beamlet.whereis("global_name_server") is not None


async def test_sync_0(node: DistNode, epmd_port: int, erl: str | None) -> None:
    start_global(node)
    async with erl_peer(epmd_port, erl=erl) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        assert node.name in await e.eval("nodes().")
        await within(10, global_.sync())


async def test_names(node: DistNode, epmd_port: int, erl: str | None) -> None:
    start_global(node)
    async with erl_peer(epmd_port, erl=erl) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        py = beamlet.spawn(idle)
        assert await within(10, global_.register_name("py_name", py)) is True
        assert await e.eval("global:whereis_name(py_name).") == py
        assert await e.eval("global:send(py_name, hello).") == py
        epid = await e.eval(
            "P = spawn(fun() -> receive stop -> ok end end), "
            "yes = global:register_name(erl_name, P), P."
        )
        assert global_.whereis_name(Atom("erl_name")) == epid
        assert Atom("erl_name") in global_.registered_names()
        # a taken name is refused on both sides, and a pid has one name
        other = beamlet.spawn(idle)
        assert await within(10, global_.register_name("py_name", other)) is False
        assert await within(10, global_.register_name("second", py)) is False
        assert await e.eval("global:register_name(py_name, self()).") == NO
        # re_register moves the name
        await within(10, global_.re_register_name("py_name", other))
        assert await e.eval("global:whereis_name(py_name).") == other
        # the name goes with its process, on every node
        beamlet.exit(other, beamlet.KILL)
        await gone(other)
        assert await e.eval(WAIT_GONE, Name=Atom("py_name")) == Atom("gone")
        await within(10, global_.unregister_name(Atom("erl_name")))
        assert await e.eval("global:whereis_name(erl_name).") == UNDEFINED


async def test_trans_excludes_erlang_and_python(node: DistNode, epmd_port: int) -> None:
    start_global(node)
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        me = beamlet.self()
        # Erlang holds the lock: our attempt with retries=0 fails, then succeeds after it
        holder = await e.eval(
            "Me = self(), P = spawn(fun() -> true = global:set_lock({res, x}), "
            "Me ! locked, receive release -> global:del_lock({res, x}) end, Me ! released end), "
            "receive locked -> P end."
        )
        assert await within(10, global_.set_lock((Atom("res"), me), retries=0)) is False
        beamlet.send(holder, Atom("release"))
        result = await within(15, global_.trans((Atom("res"), me), lambda: 42))
        assert result == 42
        # while we hold it, Erlang's trans with 0 retries is aborted
        assert await within(10, global_.set_lock((Atom("res"), me)))
        assert await e.eval(
            "global:trans({res, self()}, fun() -> ran end, [node() | nodes()], 0)."
        ) == Atom("aborted")
        await global_.del_lock((Atom("res"), me))
        assert await e.eval(
            "global:trans({res, self()}, fun() -> ran end, [node() | nodes()], 0)."
        ) == Atom("ran")


async def test_names_vanish_when_the_erlang_node_is_killed(node: DistNode, epmd_port: int) -> None:
    start_global(node)
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        await e.eval("yes = global:register_name(victim, spawn(timer, sleep, [infinity])).")
        await until(lambda: global_.whereis_name(Atom("victim")) is not None)
        e.signal(signal.SIGKILL)
        await until(lambda: global_.whereis_name(Atom("victim")) is None)


async def test_python_only_cluster(node: DistNode, epmd_port: int) -> None:
    start_global(node)
    async with beamlet_node(epmd_port, hidden=False) as other:
        assert await connect(other.name)
        await within(10, global_.sync())
        py = beamlet.spawn(idle)
        assert await within(10, global_.register_name((Atom("job"), 1), py)) is True

        async def seen() -> Any:
            await until(lambda: global_.whereis_name((Atom("job"), 1)) is not None)
            return global_.whereis_name((Atom("job"), 1))

        assert await on(other, seen) == py


async def test_sync_waits_for_a_node_that_just_connected(node: DistNode, epmd_port: int) -> None:
    """global_SUITE's sync theme: `sync()` right after `connect` waits for the new visible
    node, as `global:sync()` waits for every node in `nodes()`, although the two name
    servers have not started their session yet: once it returns, the names registered on
    either side before the connection are seen on both."""
    start_global(node)
    py = beamlet.spawn(idle)
    assert await within(10, global_.register_name(Atom("here_first"), py)) is True
    async with beamlet_node(epmd_port, hidden=False) as other:

        async def register_there() -> Pid:
            pid = beamlet.spawn(idle)
            assert await within(10, global_.register_name(Atom("there_first"), pid)) is True
            return pid

        theirs = await on(other, register_there)
        assert await connect(other.name)
        await within(10, global_.sync())
        assert global_.whereis_name(Atom("there_first")) == theirs

        async def sync_there() -> Pid | None:
            await within(10, global_.sync())
            return global_.whereis_name(Atom("here_first"))

        assert await on(other, sync_there) == py


async def test_full_mesh_through_global(node: DistNode, epmd_port: int) -> None:
    """g1 connects to us; g2 connects only to g1; global makes g2 and us connect."""
    start_global(node)
    async with erl_peer(epmd_port) as g1, erl_peer(epmd_port) as g2:
        assert await connect(g1.name)
        assert await g1.eval("global:sync().", timeout=15) == OK
        assert await g2.eval("net_kernel:connect_node(G1).", G1=g1.name) is True
        assert await g2.eval("global:sync().", timeout=15) == OK
        await until(lambda: g2.name in nodes())
        assert node.name in await g2.eval("nodes().")
        # the loss of a node met through the mesh is seen too (global forgets it)
        g2.signal(signal.SIGKILL)

        async def known() -> list[Any]:
            return [n for n, _vsn in await beamlet.GenServer.call(GLOBAL, Atom("get_known"))]

        assert g2.name in await known()
        async with asyncio.timeout(10):
            while g2.name in await known():
                await beamlet.sleep(0.01)  # sleep-ok: polling global's state


async def test_basic_name_partition(node: DistNode, epmd_port: int, tmp_path: Any) -> None:
    """Both partitions register `dup`; on heal the smaller node resolves it with the
    default `random_exit_name`: the pid on the node whose name sorts first stays (here
    the Erlang node's), the other is killed, and every node agrees."""
    start_global(node)
    done, go = tmp_path / "done", tmp_path / "go"
    async with erl_peer(epmd_port) as e:
        assert str(e.name) < str(node.name)
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        # the Erlang side registers once the partition is there, then waits for us to
        # do the same before it heals it (files: any message from us would reconnect)
        await e.eval(
            "Me = self(), spawn(fun() -> monitor_node(Py, true), Me ! ready, "
            "receive {nodedown, Py} -> ok end, "
            "P = spawn(fun() -> receive after infinity -> ok end end), "
            "yes = global:register_name(dup, P), "
            "ok = file:write_file(Done, term_to_binary(P)), "
            "W = fun Wait() -> case filelib:is_file(Go) of true -> ok; "
            "false -> timer:sleep(5), Wait() end end, W(), pong = net_adm:ping(Py) end), "
            "receive ready -> ok end.",
            Py=node.name,
            Done=str(done).encode(),
            Go=str(go).encode(),
        )
        disconnect(e.name)
        await until(lambda: done.exists() and done.stat().st_size > 0)
        epid = etf.decode(done.read_bytes())
        py = beamlet.spawn(idle)
        ref = beamlet.monitor(py)
        assert await within(10, global_.register_name("dup", py)) is True
        go.write_bytes(b"")
        await until(lambda: e.name in nodes())
        assert await e.eval("global:sync().", timeout=15) == OK
        await within(10, global_.sync())
        down = await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)
        assert down.reason == beamlet.KILLED
        await until(lambda: global_.whereis_name("dup") == epid)
        assert await e.eval("global:whereis_name(dup).") == epid


async def test_pid_order_is_erlangs(node: DistNode, epmd_port: int) -> None:
    """global's lock ids are sorted pid lists: both sides must sort pids alike."""
    async with erl_peer(epmd_port) as e:
        pids = [beamlet.spawn(idle) for _ in range(3)]
        theirs = await e.eval("[spawn(fun() -> ok end) || _ <- [1,2,3]].")
        mixed = [*pids, *theirs]
        assert await e.eval("lists:sort(L).", L=mixed) == sorted(mixed)


class Echo(beamlet.GenServer[None]):
    async def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Any:
        return beamlet.Reply((Atom("echo"), request), state)


async def test_global_name_of_a_genserver_both_ways(
    node: DistNode, epmd_port: int, erl: str | None
) -> None:
    """`name=Global("x")`: registered cluster-wide before init; Erlang's
    `gen_server:call({global, x}, _)` reaches it; a second start is `already_started`;
    `GenServer.call(Global("y"))` reaches an Erlang process registered as `y`."""
    start_global(node)
    async with erl_peer(epmd_port, erl=erl) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        pid = await within(10, Echo.start(name=global_.Global("x")))
        assert global_.whereis_name(Atom("x")) == pid
        assert await e.eval("gen_server:call({global, x}, ping).") == (Atom("echo"), Atom("ping"))
        assert await beamlet.GenServer.call(global_.Global("x"), 1) == (Atom("echo"), 1)
        with pytest.raises(AlreadyStarted) as err:
            await within(10, Echo.start(name=global_.Global("x")))
        assert err.value.pid == pid
        erl_server = await e.eval(
            "P = spawn(fun L() -> receive {'$gen_call', F, R} -> gen:reply(F, {erl, R}), "
            "L() end end), yes = global:register_name(y, P), P."
        )
        await until(lambda: global_.whereis_name(Atom("y")) == erl_server)
        assert await beamlet.GenServer.call(global_.Global("y"), 7) == (Atom("erl"), 7)
        # the name goes with its process
        await beamlet.GenServer.stop(pid)
        assert await e.eval(WAIT_GONE, Name=Atom("x")) == Atom("gone")


async def test_global_name_as_a_supervisor_child(node: DistNode, epmd_port: int) -> None:
    """A Supervisor child named `Global(...)` is registered cluster-wide, and its
    restart registers the name again for the new pid."""
    start_global(node)
    async with beamlet_node(epmd_port, hidden=False) as other:
        assert await connect(other.name)
        await within(10, global_.sync())
        await beamlet.Supervisor.start_link([Echo.child_spec(None, name=global_.Global("sup_x"))])
        first = global_.whereis_name(Atom("sup_x"))
        assert first is not None

        async def seen() -> Any:
            await until(lambda: global_.whereis_name(Atom("sup_x")) is not None)
            return global_.whereis_name(Atom("sup_x"))

        assert await on(other, seen) == first
        beamlet.exit(first, beamlet.KILL)
        await until(lambda: global_.whereis_name(Atom("sup_x")) not in (None, first))
        assert await beamlet.GenServer.call(global_.Global("sup_x"), 2) == (Atom("echo"), 2)


async def test_busy_python_processes_do_not_disconnect_erlang(
    node: DistNode, epmd_port: int
) -> None:
    """Python processes busy-loop (awaiting every millisecond) while an Erlang node
    registers and unregisters global names for BEAMLET_SOAK_SECONDS (default 5): no
    node is disconnected and `global:sync()` still returns (the 60 s run is in
    docs/distribution.md)."""
    import os
    import time

    seconds = float(os.environ.get("BEAMLET_SOAK_SECONDS", "5"))
    start_global(node)

    async def busy() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await beamlet.sleep(0.001)  # sleep-ok: the busy loop under test

    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        monitor_node(e.name)
        workers = [beamlet.spawn_monitor(busy) for _ in range(8)]
        n = await e.eval(
            "End = erlang:monotonic_time(millisecond) + Ms, "
            "F = fun L(I) -> case erlang:monotonic_time(millisecond) < End of "
            "false -> I; true -> N = {soak, I rem 50}, P = spawn(fun() -> ok end), "
            "_ = global:re_register_name(N, self()), global:unregister_name(N), "
            "_ = P, L(I + 1) end end, F(0).",
            Ms=int(seconds * 1000),
            timeout=seconds + 30,
        )
        for _pid, mref in workers:
            await beamlet.receive(lambda m, r=mref: type(m) is Down and m.ref == r, timeout=30)
        assert isinstance(n, int) and n > 0
        print(f"soak: {seconds} s, {n} Erlang re_register+unregister rounds")
        assert await beamlet.receive(lambda m: type(m) is NodeDown, timeout=0, default=None) is None
        assert e.name in nodes()
        assert node.name in await e.eval("nodes().")
        assert await e.eval("global:sync().", timeout=15) == OK


async def test_garbage_messages(node: DistNode, epmd_port: int) -> None:
    """A peer sends `global_name_server` garbage (casts, calls, raw messages with wrong
    shapes and types) and then storms one lock from 100 processes: the server stays up,
    the storm is serialised (each holder alone), and names still work both ways."""
    start_global(node)
    server = beamlet.whereis("global_name_server")
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        await e.eval(
            "S = {global_name_server, Py}, "
            "[S ! M || M <- [junk, {}, {'$gen_cast', junk}, "
            "{'$gen_cast', {init_connect, x, y, z}}, "
            "{'$gen_cast', {init_connect, {8, 1}, Py, bad}}, "
            "{'$gen_cast', {exchange, 1, 2, 3, 4}}, "
            "{'$gen_cast', {lock_set, self(), true, notalist, 1}}, {'$gen_cast', {resolved, x}}, "
            "{'$gen_cast', {new_nodes, node(), notops, [], notnodes, x}}, "
            "{'$gen_call', notfrom, {register, a, b}}, "
            "{'$gen_call', {self(), t}, {register, a, notpid, m}}, "
            "{'$gen_call', {self(), t}, {set_lock, notalockid}}, "
            "{'$gen_call', {self(), t}, {sync, notalist}}, "
            "{lost_connection, 1, 2, 3, 4}, {remove_connection, 42}, {init_connect_ack, x}, "
            "{whereis, x, notfrom}, {cancel_connect, x, y}]], ok.",
            Py=node.name,
        )
        n = await e.eval(
            "Me = self(), Ps = [spawn(fun() -> R = global:trans({storm, self()}, fun() -> "
            "C = ets:update_counter(T, in, 1), timer:sleep(1), "
            "ets:update_counter(T, in, -1), C end), "
            "Me ! {done, R} end) || _ <- lists:seq(1, 100)], "
            "Rs = [receive {done, R} -> R end || _ <- Ps], lists:max(Rs).",
            T=await e.eval(
                "Self = self(), spawn(fun() -> T = ets:new(t, [public]), ets:insert(T, {in, 0}), "
                "Self ! {t, T}, receive stop -> ok end end), receive {t, T} -> T end."
            ),
            timeout=40,
        )
        assert n == 1  # never two holders at once
        assert beamlet.whereis("global_name_server") == server
        py = beamlet.spawn(idle)
        assert await within(10, global_.register_name(Atom("after_storm"), py)) is True
        assert await e.eval("global:whereis_name(after_storm).") == py
        assert await within(10, global_.trans((Atom("storm"), beamlet.self()), lambda: 1)) == 1
