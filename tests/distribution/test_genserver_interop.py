"""GenServer calls between beamlet and real Erlang/Elixir nodes, and between two beamlet
nodes (docs/semantics.md §4.5, §7.4; docs/protocol.md §6.3).

Calls use Erlang's wire shapes both ways: `{'$gen_call', {Pid, [alias | Ref]}, Req}`
answered by `{[alias | Ref], Reply}` sent to the alias, and `{'$gen_cast', Req}`. Each
test runs as a process of a distributed beamlet node whose built-in EPMD serves a private
port; real peers (`erl`, `elixir`) register there and are always killed at the end. The
servers are in genserver_peers.py: an Erlang `kv` gen_server compiled on the peer at test
time, an Elixir `Agent`, and `PyServer` on the beamlet side.

Nothing sleeps to wait for an event: tests wait on replies, monitors and messages the
servers send *after* the event of interest over the same connection (signal order), so a
late reply that would wrongly land in a mailbox is already there when the mailbox is
checked.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, elixir_peer, erl_peer, on, wire, within
from genserver_peers import (
    CAST_ARRIVED,
    CRASH,
    EXIT,
    GET,
    HOLD,
    HOLDING,
    KV_ERL,
    OK,
    PUT,
    RELEASE,
    RELEASED,
    WHOAMI,
    PyServer,
    load_erlang_module,
    start_kv,
)

import beamlet
from beamlet import ANY, NOPROC, NORMAL, SHUTDOWN, TIMEOUT, UNDEFINED, Atom, Down, Pid, Ref
from beamlet.behaviours import gen_server
from beamlet.behaviours.gen_server import NODEDOWN, CallExit, GenServer
from beamlet.distribution.etf import EncodeError, ImproperList
from beamlet.testing import refute_receive

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]

TIMEOUT_S = 10.0
ALIAS = Atom("alias")
LATE = Atom("late")
PYTHON = Atom("python")
CALL_FAILED = Atom("call_failed")


def is_alias_tag(tag: Any, node: Atom) -> bool:
    """`[alias | Ref]` with a reference of `node` (gen:call's reply tag, §4.5)."""
    return (
        type(tag) is ImproperList
        and tag.items == (ALIAS,)
        and type(tag.tail) is Ref
        and tag.tail.node == node
    )


async def call_failure(server: Any, request: Any, timeout: float | None = 5.0) -> Any:
    """The cause of the CallExit that `GenServer.call` raises (the call must fail)."""
    with pytest.raises(CallExit) as e:
        await GenServer.call(server, request, timeout=timeout)
    return e.value.cause


def caller(server: Any, request: Any, report_to: Pid) -> Any:
    """A process body: call `server`; send `(call_failed, Cause)` or `(ok, Reply)`."""

    async def body() -> None:
        try:
            reply = await GenServer.call(server, request, timeout=None)
        except CallExit as e:
            beamlet.send(report_to, (CALL_FAILED, e.cause))
        else:
            beamlet.send(report_to, (OK, reply))

    return body


def assert_python_crash(reason: Any, message: bytes | str) -> None:
    """A Python ValueError as Erlang sees it: `{{python, Type, Message}, Stack}` (the
    texts are binaries: `bytes` from Erlang, `str` from a beamlet node)."""
    err, stack = reason
    assert err == (PYTHON, "ValueError" if isinstance(message, str) else b"ValueError", message)
    assert isinstance(stack, list) and stack


# --------------------------------------------------------------------- Python -> Erlang


async def test_python_calls_erlang_gen_server(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    async with erl_peer(epmd_port) as erl:
        assert await load_erlang_module(erl, KV_ERL, "kv") == Atom("kv")
        pid = await start_kv(erl, "kv", me)
        kv = ("kv", erl.name)

        # call -> reply, by {Name, Node} and by pid; the server sees gen:call's From.
        assert await GenServer.call(kv, (PUT, "k", [1, 2.5, Atom("x")])) == OK
        assert await GenServer.call(kv, (GET, "k")) == [1, 2.5, Atom("x")]
        assert await GenServer.call(pid, (GET, "nope")) == UNDEFINED
        enode, epid, (from_pid, tag) = await GenServer.call(kv, WHOAMI)
        assert (enode, epid, from_pid) == (erl.name, pid, me)
        assert is_alias_tag(tag, node.name)

        # cast -> handle_cast ran (it tells us), and the state changed.
        GenServer.cast(kv, (PUT, "c", 7))
        assert await beamlet.receive((CAST_ARRIVED, b"c", 7), timeout=TIMEOUT_S)
        assert await GenServer.call(kv, (GET, "c")) == 7

        # An unknown remote name: MONITOR_P by name gets DOWN noproc at once (no timeout).
        assert await within(5, call_failure(("nobody", erl.name), GET, timeout=None)) == NOPROC

        # Never answered in time: timeout; the late reply hits the dead alias.
        assert await call_failure(kv, (HOLD, Atom("t1")), timeout=0.2) == TIMEOUT
        _, _, (_, held_tag) = await beamlet.receive((HOLDING, Atom("t1"), ANY), timeout=TIMEOUT_S)
        assert is_alias_tag(held_tag, node.name)
        GenServer.cast(kv, (RELEASE, Atom("t1"), LATE, me))
        assert await beamlet.receive(RELEASED, timeout=TIMEOUT_S) == RELEASED
        await refute_receive()  # no late {Tag, late}, no DOWN
        assert await GenServer.call(kv, (GET, "c")) == 7  # the server was not affected

        # The server exits mid-call: CallExit with its reason.
        await start_kv(erl, "kv_exit", me)
        reason = (Atom("custom"), [1, b"two"])
        assert await call_failure(("kv_exit", erl.name), (EXIT, reason)) == reason
        # ... or crashes (badarith): {badarith, Stack}.
        await start_kv(erl, "kv_crash", me)
        cause = await call_failure(("kv_crash", erl.name), (CRASH, Atom("a")))
        assert cause[0] == Atom("badarith") and isinstance(cause[1], list)
        assert await beamlet.receive(Down, timeout=0, default=None) is None  # flushed
        assert await GenServer.call(kv, (GET, "k")) == [1, 2.5, Atom("x")]


async def test_python_call_when_erlang_node_is_killed(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    async with erl_peer(epmd_port) as erl:
        await load_erlang_module(erl, KV_ERL, "kv")
        await start_kv(erl, "kv", me)
        pid = beamlet.spawn(caller(("kv", erl.name), (HOLD, Atom("t")), me))
        # The call is in the server (it told us): kill the whole Erlang node.
        _, _, (from_pid, _) = await beamlet.receive((HOLDING, Atom("t"), ANY), timeout=TIMEOUT_S)
        assert from_pid == pid
        erl.signal(signal.SIGKILL)
        got = await beamlet.receive((CALL_FAILED, ANY), timeout=TIMEOUT_S)
        assert got == (CALL_FAILED, (NODEDOWN, erl.name))  # noconnection -> {nodedown, Node}


# --------------------------------------------------------------------- Python -> Elixir


async def test_python_calls_elixir_agent_and_elixir_calls_python(
    node: DistNode, epmd_port: int
) -> None:
    srv = await PyServer.start(None, name="py_server")
    async with elixir_peer(epmd_port) as ex:
        # Python -> an Elixir Agent (its {m, f, a} request forms need no Elixir funs).
        await ex.eval("{:ok, _} = Agent.start(fn -> 5 end, name: :py_agent)")
        agent = ("py_agent", ex.name)
        plus, times = (Atom("erlang"), Atom("+")), (Atom("erlang"), Atom("*"))
        assert await GenServer.call(agent, (Atom("get"), (*times, [2]))) == 10
        assert await GenServer.call(agent, (Atom("update"), (*plus, [1]))) == OK
        GenServer.cast(agent, (Atom("cast"), (*times, [10])))
        assert await GenServer.call(agent, (Atom("get"), (*plus, [0]))) == 60  # cast ran first
        # A bad get_and_update return stops the Agent mid-call: its reason reaches us.
        bad = await call_failure(agent, (Atom("get_and_update"), (*plus, [0])))
        assert bad == (Atom("bad_return_value"), 60)
        assert await call_failure(agent, (Atom("get"), (*plus, [0]))) == NOPROC

        # Elixir -> the Python server registered as py_server on this node.
        r1, r2, r3, r4, t, mailbox, r5 = await ex.eval(
            """
            srv = {:py_server, n}
            r1 = GenServer.call(srv, {:put, :k, %{"a" => [1, 2]}})
            r2 = GenServer.call(srv, {:get, :k})
            r3 = GenServer.call(srv, :whoami)
            :ok = GenServer.cast(srv, {:put, :c, 7})
            r4 = GenServer.call(srv, {:get, :c})
            # A slow answer: timeout; the late reply is dropped by the alias.
            t = try do GenServer.call(srv, {:hold, :t1}, 200) catch :exit, e -> e end
            GenServer.cast(srv, {:release, :t1, :late, self()})
            receive do :released -> :ok after 5000 -> raise "not released" end
            {:messages, ms} = Process.info(self(), :messages)
            r5 = try do GenServer.call({:nobody, n}, :x) catch :exit, e -> e end
            {r1, r2, {r3, self()}, r4, t, ms, r5}
            """,
            n=node.name,
        )
        assert (r1, r2, r4) == (OK, {b"a": [1, 2]}, 7)
        (pynode, pypid, (from_pid, tag)), ex_pid = r3
        assert (pynode, pypid, from_pid) == (node.name, srv, ex_pid)
        assert is_alias_tag(tag, ex.name)
        assert t == (TIMEOUT, (Atom("Elixir.GenServer"), Atom("call"),
                      [(Atom("py_server"), node.name), (HOLD, Atom("t1")), 200]))  # fmt: skip
        assert mailbox == []
        assert r5 == (NOPROC, (Atom("Elixir.GenServer"), Atom("call"),
                      [(Atom("nobody"), node.name), Atom("x"), 5000]))  # fmt: skip

        # The Python server crashes during an Elixir call: the caller exits with the reason.
        reason = await ex.eval(
            """
            {pid, ref} = spawn_monitor(fn -> GenServer.call({:py_server, n}, {:crash, "boom"}) end)
            receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :no_down end
            """,
            n=node.name,
        )
        crash, (mod, fn, args) = reason
        assert_python_crash(crash, b"boom")
        assert (mod, fn, args[:2]) == (
            Atom("Elixir.GenServer"),
            Atom("call"),
            [(Atom("py_server"), node.name), (CRASH, b"boom")],
        )
        assert beamlet.whereis("py_server") is None

        # :sys.get_state and GenServer.stop from Elixir.
        srv = await PyServer.start(None, name="py_server")
        mref = beamlet.monitor(srv)
        assert await ex.eval(
            "srv = {:py_server, n}; {:sys.get_state(srv), GenServer.stop(srv, :normal)}",
            n=node.name,
        ) == ({b"owner": UNDEFINED, b"data": {}, b"held": {}}, OK)
        down = await beamlet.receive(Down(mref, ANY, ANY, ANY, ANY), timeout=TIMEOUT_S)
        assert down.reason == NORMAL


# --------------------------------------------------------------------- Erlang -> Python


async def test_erlang_calls_python_gen_server(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    srv = await PyServer.start(me, name="py_server")
    async with erl_peer(epmd_port) as erl:
        got = await erl.eval(
            """
            Srv = {py_server, N},
            R1 = gen_server:call(Srv, {put, k, [1, <<"two">>]}),
            R2 = gen_server:call(Srv, {get, k}),
            R3 = gen_server:call(Srv, whoami),
            ok = gen_server:cast(Srv, {put, c, 7}),
            R4 = gen_server:call(Srv, {get, c}, infinity),
            T = try gen_server:call(Srv, {hold, t1}, 200) catch exit:E1 -> E1 end,
            gen_server:cast(Srv, {release, t1, late, self()}),
            receive released -> ok after 5000 -> error(not_released) end,
            {messages, Ms} = process_info(self(), messages),
            R5 = try gen_server:call({nobody, N}, x) catch exit:E2 -> E2 end,
            R6 = gen_server:call(P, {get, c}),
            R7 = gen_server:wait_response(gen_server:send_request(Srv, {get, k}), 5000),
            {R1, R2, {R3, self()}, R4, T, Ms, R5, R6, R7}.
            """,
            N=node.name,
            P=srv,
        )
        r1, r2, (r3, erl_pid), r4, t, mailbox, r5, r6, r7 = got
        assert (r1, r2, r4, r6, r7) == (OK, [1, b"two"], 7, 7, (Atom("reply"), [1, b"two"]))
        pynode, pypid, (from_pid, tag) = r3
        assert (pynode, pypid, from_pid) == (node.name, srv, erl_pid)
        assert is_alias_tag(tag, erl.name)
        gen_call = (Atom("gen_server"), Atom("call"))
        assert t == (TIMEOUT, (*gen_call, [(Atom("py_server"), node.name), (HOLD, Atom("t1")),
                                           200]))  # fmt: skip
        assert mailbox == []  # the late reply was dropped by the alias
        assert r5 == (NOPROC, (*gen_call, [(Atom("nobody"), node.name), Atom("x")]))
        # The owner was told about the cast and the held call.
        assert await beamlet.receive((CAST_ARRIVED, Atom("c"), 7), timeout=TIMEOUT_S)
        assert await beamlet.receive((HOLDING, Atom("t1"), ANY), timeout=TIMEOUT_S)

        # The server exits, then crashes, during an Erlang call.
        src = """
            {P, M} = spawn_monitor(fun() -> gen_server:call({py_server, N}, Req) end),
            receive {'DOWN', M, process, P, R} -> R after 5000 -> no_down end.
        """
        reason = (Atom("custom"), [1, b"two"])
        assert await erl.eval(src, N=node.name, Req=(EXIT, reason)) == (
            reason,
            (*gen_call, [(Atom("py_server"), node.name), (EXIT, reason)]),
        )
        await PyServer.start(me, name="py_server")
        crash, mfa = await erl.eval(src, N=node.name, Req=(CRASH, "boom"))
        assert_python_crash(crash, b"boom")
        assert mfa == (*gen_call, [(Atom("py_server"), node.name), (CRASH, b"boom")])

        # sys:get_state and gen_server:stop (the sys protocol: {system, From, Req}).
        srv = await PyServer.start(me, name="py_server")
        mref = beamlet.monitor(srv)
        state, stopped = await erl.eval(
            "{sys:get_state({py_server, N}), gen_server:stop({py_server, N}, {shutdown, bye},"
            " 5000)}.",
            N=node.name,
        )
        assert state == {b"owner": me, b"data": {}, b"held": {}}
        assert stopped == OK
        down = await beamlet.receive(Down(mref, ANY, ANY, ANY, ANY), timeout=TIMEOUT_S)
        assert down.reason == (SHUTDOWN, Atom("bye"))
        assert beamlet.whereis("py_server") is None


# --------------------------------------------------------------------- Python <-> Python


async def test_python_calls_python_across_nodes(node: DistNode, epmd_port: int) -> None:
    me = wire(beamlet.self())  # as the other node sees it: its sends go over the wire
    async with beamlet_node(epmd_port) as other:

        async def start() -> Pid | None:
            return await PyServer.start(me, name="py_server")

        srv = await on(other, start)
        assert type(srv) is Pid and srv.node == other.name
        remote = ("py_server", other.name)

        assert await GenServer.call(remote, (PUT, "k", {"a": (1, 2)})) == OK
        # Between beamlet nodes values round-trip as themselves (etf.LOSSLESS).
        assert await GenServer.call(remote, (GET, "k")) == {"a": (1, 2)}
        assert await GenServer.call(wire(srv), (GET, "k")) == {"a": (1, 2)}
        assert await GenServer.call(remote, (GET, b"k")) == UNDEFINED  # b"k" is another key
        await GenServer.call(remote, (PUT, b"k", [None, b"", "", Atom("undefined")]))
        got = await GenServer.call(remote, (GET, b"k"))
        assert got == [None, b"", "", Atom("undefined")]
        assert [type(x) for x in got] == [type(None), bytes, str, Atom]
        pynode, pypid, (from_pid, tag) = await GenServer.call(remote, WHOAMI)
        assert (pynode, pypid, from_pid) == (other.name, srv, beamlet.self())
        assert is_alias_tag(tag, node.name)
        GenServer.cast(remote, (PUT, "c", 7))
        assert await beamlet.receive((CAST_ARRIVED, "c", 7), timeout=TIMEOUT_S)
        assert await within(5, call_failure(("nobody", other.name), GET, timeout=None)) == NOPROC

        # Timeout, then the late reply: dropped by our dead alias.
        assert await call_failure(remote, (HOLD, Atom("t1")), timeout=0.2) == TIMEOUT
        await beamlet.receive((HOLDING, Atom("t1"), ANY), timeout=TIMEOUT_S)
        GenServer.cast(remote, (RELEASE, Atom("t1"), LATE, me))
        assert await beamlet.receive(RELEASED, timeout=TIMEOUT_S) == RELEASED
        await refute_receive()

        # A request that cannot be encoded fails in the caller and leaves no monitor
        # behind (no stray DOWN later).
        with pytest.raises(EncodeError):
            await GenServer.call(remote, (GET, object()))
        assert beamlet.process_info(beamlet.self()).monitors == ()  # type: ignore[union-attr]

        # The server dies during a call: CallExit with its reason, DOWN for a watcher,
        # then the name is gone: noproc.
        mref = beamlet.monitor(remote)
        cause = await call_failure(remote, (CRASH, "boom"))
        assert_python_crash(cause, "boom")
        down = await beamlet.receive(Down, timeout=TIMEOUT_S)
        assert (down.ref, down.pid, down.reason) == (mref, (Atom("py_server"), other.name), cause)
        await refute_receive(Down)
        assert await within(5, call_failure(remote, GET, timeout=None)) == NOPROC

        # The other node goes away during a call: {nodedown, Node}.
        await on(other, start)
        beamlet.spawn(caller(remote, (HOLD, Atom("t2")), me))
        await beamlet.receive((HOLDING, Atom("t2"), ANY), timeout=TIMEOUT_S)
        await other.stop()
        got = await beamlet.receive((CALL_FAILED, ANY), timeout=TIMEOUT_S)
        assert got == (CALL_FAILED, (NODEDOWN, other.name))
        # ... and it is no longer reachable.
        assert await within(5, call_failure(remote, GET)) == (NODEDOWN, other.name)


async def test_call_to_unreachable_node(node: DistNode) -> None:
    nowhere = Atom("nowhere@127.0.0.1")
    assert await within(5, call_failure(("srv", nowhere), GET)) == (NODEDOWN, nowhere)
    assert await beamlet.receive(ANY, timeout=0, default=None) is None


async def test_python_stops_a_remote_server(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as other:

        async def start() -> Pid | None:
            return await PyServer.start(None, name="py_server")

        srv = wire(await on(other, start))
        mref = beamlet.monitor(srv)
        remote = ("py_server", other.name)
        assert await gen_server.get_state(remote) == {"owner": None, "data": {}, "held": {}}
        await GenServer.stop(remote, SHUTDOWN, timeout=5)
        down = await beamlet.receive(Down(mref, ANY, ANY, ANY, ANY), timeout=TIMEOUT_S)
        assert down.reason == SHUTDOWN
