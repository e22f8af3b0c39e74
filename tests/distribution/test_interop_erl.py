"""A beamlet node against real Erlang/OTP and Elixir nodes (docs/protocol.md).

Each test runs as a process of a distributed beamlet node (`node` fixture) whose
built-in EPMD serves a private port; the `erl`/`elixir` peers register there
(`ERL_EPMD_PORT`, `-start_epmd false`) and are always killed at the end. Erlang-side
actions are Erlang source evaluated by the peer's control process (`Peer.eval`);
results come back as messages, so nothing sleeps to wait for an event.

Covered: ping and connections in both directions (hidden node), terms both ways,
messages to pids/names/aliases, links and monitors both ways with every exit reason,
monitors by name, `noconnection` when the peer is killed (socket close) or hangs (tick
timeout), rpc both ways, remote spawn both ways, an Elixir node, a wrong cookie, and
simultaneous connects.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

import pytest
from dist_nodes import COOKIE, DistNode, Peer, beamlet_node, elixir_peer, erl_peer, on, unique

import beamlet
from beamlet import (
    ANY,
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    Atom,
    Down,
    Exit,
    Pid,
    ProcessExit,
    Ref,
)
from beamlet.distribution import NodeDown, RpcError, connect, disconnect, monitor_node, nodes, rpc
from beamlet.distribution import api as dist
from beamlet.distribution.etf import BitString, Charlist, Export, Fun, ImproperList, Port

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
TRUE = True
UNDEFINED = Atom("undefined")
SEEN, ARMED, WATCHED, DIE = Atom("seen"), Atom("armed"), Atom("watched"), Atom("die")


def down_for(ref: Ref) -> Any:
    return lambda m: type(m) is Down and m.ref == ref


def exit_from(pid: Pid) -> Any:
    return lambda m: type(m) is Exit and m.pid == pid


# --------------------------------------------------------------------------- connections


async def test_ping_and_connections_both_ways(node: DistNode, epmd_port: int) -> None:
    # Erlang dials us (net_adm:ping at its start-up): our acceptor, net_kernel's is_auth.
    ping = f"io:format(\"ping ~p~n\", [net_adm:ping('{node.name}')])."
    async with erl_peer(epmd_port, then=ping) as erl:
        assert "ping pong" in await erl.expect_line("ping ")
        assert nodes() == [erl.name]
        assert await erl.eval("nodes(hidden).") == [node.name]  # we are a hidden node
        assert await erl.eval("nodes().") == []
        assert await erl.eval("net_adm:ping(P).", P=node.name) == Atom("pong")
    # We dial Erlang.
    async with erl_peer(epmd_port) as erl2:
        assert await connect(erl2.name) is True
        assert erl2.name in nodes()
        assert await erl2.eval("nodes(hidden).") == [node.name]


async def test_visible_node(epmd_port: int) -> None:
    async with beamlet_node(epmd_port, hidden=False) as vis, erl_peer(epmd_port) as erl:

        async def check() -> Any:
            assert await connect(erl.name)
            return await erl.eval("{nodes(), nodes(hidden)}.")

        assert await on(vis, check) == ([vis.name], [])


# --------------------------------------------------------------------------- terms

BIG = 2**2000
# (Python value, Erlang literal, what the literal decodes to in Python)
TERMS: list[tuple[Any, str, Any]] = [
    (Atom("ok"), "ok", Atom("ok")),
    (Atom("héllo wörld ✓"), "'héllo wörld ✓'", Atom("héllo wörld ✓")),
    (Atom(""), "''", Atom("")),
    (True, "true", True),
    (False, "false", False),
    (None, "undefined", UNDEFINED),
    (0, "0", 0),
    (255, "255", 255),
    (256, "256", 256),
    (-1, "-1", -1),
    (2**31 - 1, "2147483647", 2**31 - 1),
    (-(2**31), "-2147483648", -(2**31)),
    (2**31, "2147483648", 2**31),
    (2**64, "18446744073709551616", 2**64),
    (-(2**100), "-1267650600228229401496703205376", -(2**100)),
    (BIG, str(BIG), BIG),
    (-BIG, "-" + str(BIG), -BIG),
    (1.5, "1.5", 1.5),
    (-0.1, "-0.1", -0.1),
    (1e300, "1.0e300", 1e300),
    (b"", "<<>>", b""),
    (b"\x00\xff\x80", "<<0,255,128>>", b"\x00\xff\x80"),
    ("héllo ✓", '<<"héllo ✓"/utf8>>', "héllo ✓".encode()),
    (
        bytes(range(256)) * 300,
        "list_to_binary(lists:duplicate(300, lists:seq(0, 255)))",
        bytes(range(256)) * 300,
    ),
    (BitString(b"\xe0", 3), "<<7:3>>", BitString(b"\xe0", 3)),
    (Charlist("abc"), '"abc"', Charlist("abc")),
    (Charlist("h€llo"), '"h€llo"', [104, 8364, 108, 108, 111]),
    ([], "[]", []),
    ([1, 2, 3], "[1, 2, 3]", [1, 2, 3]),
    ([1000, 2000], "[1000, 2000]", [1000, 2000]),
    ([Atom("a"), [b"x", 1.0], []], '[a, [<<"x">>, 1.0], []]', [Atom("a"), [b"x", 1.0], []]),
    (ImproperList((1, 2), Atom("c")), "[1, 2 | c]", ImproperList((1, 2), Atom("c"))),
    (ImproperList((Atom("a"),), b"t"), '[a | <<"t">>]', ImproperList((Atom("a"),), b"t")),
    ((), "{}", ()),
    ((1, Atom("two"), b"3"), '{1, two, <<"3">>}', (1, Atom("two"), b"3")),
    (tuple(range(300)), "list_to_tuple(lists:seq(0, 299))", tuple(range(300))),
    ({}, "#{}", {}),
    (
        {Atom("a"): 1, (1, 2): [3], b"k": {Atom("nested"): True}},
        '#{a => 1, {1, 2} => [3], <<"k">> => #{nested => true}}',
        {Atom("a"): 1, (1, 2): [3], b"k": {Atom("nested"): True}},
    ),
    (
        Export(Atom("lists"), Atom("reverse"), 1),
        "fun lists:reverse/1",
        Export(Atom("lists"), Atom("reverse"), 1),
    ),
]


def nested(depth: int) -> Any:
    term: Any = []
    for _ in range(depth):
        term = [term]
    return term


def depth_of(term: Any) -> int:
    """How deep `nested(n)` is, without recursion (== on such lists would overflow)."""
    n = 0
    while term != []:
        assert type(term) is list and len(term) == 1
        term = term[0]
        n += 1
    return n


async def test_terms_both_ways(node: DistNode, epmd_port: int) -> None:
    async with erl_peer(epmd_port) as erl:
        for value, literal, decoded in TERMS:
            # Python -> Erlang: the binding arrives inside a message and matches exactly.
            assert await erl.eval(f"X =:= {literal}.", X=value) is TRUE, literal
            # Erlang -> Python.
            assert await erl.eval(f"{literal}.") == decoded, literal
        # Deep nesting: the codec is iterative. (Sending deeper than ~450 levels hits the
        # kernel's copy-on-send, which recurses; receiving has no such limit.)
        deep = "lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, N))."
        assert await erl.eval(f"X =:= {deep}", X=nested(400), N=400) is TRUE
        assert depth_of(await erl.eval(deep, N=20_000)) == 20_000

        # Pids, references, ports and funs are opaque and come back bit-exact.
        me = beamlet.self()
        ref = beamlet.make_ref()
        src = "{is_pid(P), node(P) =:= N, is_reference(R), node(R) =:= N, P, R}."
        assert await erl.eval(src, P=me, R=ref, N=node.name) == (True, True, True, True, me, ref)
        ctl = await erl.eval("whereis(beamlet_ctl).")
        assert type(ctl) is Pid and ctl.node == erl.name
        assert await erl.eval("X =:= whereis(beamlet_ctl).", X=ctl) is TRUE
        eref = await erl.eval("R = make_ref(), persistent_term:put(beamlet_ref, R), R.")
        assert type(eref) is Ref and eref.node == erl.name
        assert await erl.eval("X =:= persistent_term:get(beamlet_ref).", X=eref) is TRUE
        port = await erl.eval("hd(erlang:ports()).")
        assert type(port) is Port and port.node == erl.name
        assert await erl.eval("X =:= hd(erlang:ports()).", X=port) is TRUE
        fun = await erl.eval("fun(X) -> X * 2 end.")
        assert type(fun) is Fun
        assert await erl.eval("F(21).", F=fun) == 42
        # A compressed term_to_binary payload decodes too.
        assert await erl.eval("binary_to_term(B).", B=b"\x83k\x00\x03abc") == Charlist("abc")


async def test_messages_both_ways(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    beamlet.register("pyreg")
    async with erl_peer(epmd_port) as erl:
        # Erlang -> our pid and our registered name.
        await erl.eval('Py ! {hello, self(), [1, "two", <<"three">>]}, ok.', Py=me)
        _, frm, payload = await beamlet.receive((Atom("hello"), ANY, ANY), timeout=TIMEOUT)
        assert type(frm) is Pid and frm.node == erl.name
        assert payload == [1, Charlist("two"), b"three"]
        await erl.eval("{pyreg, N} ! by_name, ok.", N=node.name)
        assert await beamlet.receive(Atom("by_name"), timeout=TIMEOUT) == Atom("by_name")
        await erl.eval("{nobody, N} ! lost, ok.", N=node.name)  # unknown name: dropped

        # Python -> an Erlang pid and an Erlang registered name.
        echo = await erl.eval(
            "P = spawn(fun Loop() -> receive {From, M} -> From ! {echo, M}, Loop() end end),"
            " register(erl_echo, P), P."
        )
        beamlet.send(echo, (me, (1, "x")))
        assert await beamlet.receive(timeout=TIMEOUT) == (Atom("echo"), (1, b"x"))
        beamlet.send((Atom("erl_echo"), erl.name), (me, [Atom("named")]))
        assert await beamlet.receive(timeout=TIMEOUT) == (Atom("echo"), [Atom("named")])

        # Python -> an Erlang alias.
        await erl.eval(
            "spawn(fun() -> A = alias([reply]), Py ! {alias, A},"
            " receive M -> Py ! {via_alias, M} after 5000 -> Py ! alias_timeout end end), ok.",
            Py=me,
        )
        _, alias = await beamlet.receive((Atom("alias"), ANY), timeout=TIMEOUT)
        assert type(alias) is Ref
        beamlet.send(alias, "through the alias")
        got = await beamlet.receive(
            (Atom("via_alias"), ANY), Atom("alias_timeout"), timeout=TIMEOUT
        )
        assert got == (Atom("via_alias"), b"through the alias")

        # Ordering: many messages from one Erlang process arrive in order.
        await erl.eval("[Py ! {seq, I} || I <- lists:seq(1, 500)], ok.", Py=me)
        got = [await beamlet.receive((Atom("seq"), ANY), timeout=TIMEOUT) for _ in range(500)]
        assert [i for _, i in got] == list(range(1, 501))


# --------------------------------------------------------------------------- links, monitors

ERL_VICTIM = (
    "spawn(fun() -> receive {die, R} -> exit(R); crash -> erlang:error(badarith)"
    " after 10000 -> exit(timeout) end end)."
)
ERL_WATCHER = """
    spawn(fun() ->
        process_flag(trap_exit, true),
        link(Target), MRef = monitor(process, Target),
        Target ! watched,
        R1 = receive {'EXIT', Target, X} -> X after 5000 -> no_exit end,
        R2 = receive {'DOWN', MRef, process, Target, Y} -> Y after 5000 -> no_down end,
        Py ! {seen, R1, R2}
    end), ok.
"""
REASONS: list[tuple[Any, str]] = [
    (NORMAL, "normal"),
    (SHUTDOWN, "shutdown"),
    ((SHUTDOWN, Atom("x")), "{shutdown, x}"),
    ((Atom("custom"), [1, b"two"]), '{custom, [1, <<"two">>]}'),
]


async def test_links_and_monitors_both_ways_every_reason(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    async with erl_peer(epmd_port) as erl:
        # Erlang processes die; we link and monitor them from here.
        for reason, literal in [*REASONS, ("kill", "kill"), ("crash", "crash")]:
            pid = await erl.eval(ERL_VICTIM)
            beamlet.link(pid)
            ref = beamlet.monitor(pid)
            if reason == "kill":
                beamlet.exit(pid, KILL)  # exit/2 with kill: untrappable, seen as killed
            elif reason == "crash":
                beamlet.send(pid, Atom("crash"))
            else:
                beamlet.send(pid, (DIE, reason))  # after the link: signal order holds
            ex = await beamlet.receive(exit_from(pid), timeout=TIMEOUT)
            dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
            if reason == "kill":
                assert ex.reason == KILLED and dn.reason == KILLED
            elif reason == "crash":
                assert ex.reason[0] == Atom("badarith") and isinstance(ex.reason[1], list)
                assert dn.reason == ex.reason
            else:
                assert ex.reason == reason and dn.reason == reason, literal

        # Our processes die; Erlang processes link and monitor them.
        async def victim() -> None:
            await beamlet.receive(WATCHED, timeout=TIMEOUT)
            beamlet.send(me, (ARMED, beamlet.self()))
            msg = await beamlet.receive(timeout=TIMEOUT)
            if msg == "crash":
                raise ValueError("boom")
            if msg == NORMAL:
                return
            raise ProcessExit(msg)

        for reason, literal in [*REASONS, ("kill", "killed"), ("crash", "crash")]:
            pid = beamlet.spawn(victim)
            await erl.eval(ERL_WATCHER, Target=pid, Py=me)
            await beamlet.receive((ARMED, pid), timeout=TIMEOUT)
            if reason == "kill":
                beamlet.exit(pid, KILL)
            else:
                beamlet.send(pid, reason)
            _, r1, r2 = await beamlet.receive((SEEN, ANY, ANY), timeout=TIMEOUT)
            if reason == "kill":
                assert (r1, r2) == (KILLED, KILLED)
            elif reason == "crash":  # a Python crash: {{python, Type, Message}, Stack}
                err, stack = r1
                assert err == (Atom("python"), b"ValueError", b"boom")
                assert stack and all(type(f) is tuple and len(f) == 4 for f in stack)
                assert r2 == r1
            else:
                assert (r1, r2) == (reason, reason), literal
            # Erlang can format what it got (a well-formed stacktrace, printable terms).
            assert type(await erl.eval('lists:flatten(io_lib:format("~p", [R])).', R=r1)) in (
                Charlist,
                list,
            )

        # exit/2 from Erlang: trapped here as Exit; kill is untrappable.
        await erl.eval("exit(P, {custom, 1}), ok.", P=me)
        got = await beamlet.receive(Exit, timeout=TIMEOUT)
        assert got.reason == (Atom("custom"), 1) and got.pid.node == erl.name
        target = beamlet.spawn(victim)
        ref = beamlet.monitor(target)
        await erl.eval("exit(P, normal), exit(P, kill), ok.", P=target)
        assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == KILLED

        # unlink: Erlang's LINK then UNLINK_ID, acknowledged; no EXIT afterwards.
        pid = await erl.eval(ERL_VICTIM)
        beamlet.link(pid)
        beamlet.unlink(pid)
        ref = beamlet.monitor(pid)
        beamlet.send(pid, (DIE, Atom("after_unlink")))
        assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == Atom(
            "after_unlink"
        )
        assert await beamlet.receive(exit_from(pid), timeout=0, default=None) is None
        assert (
            await erl.eval(
                "P = spawn(fun() -> receive _ -> ok end end), link(Py), unlink(Py),"
                " {links, L} = process_info(self(), links), L.",
                Py=me,
            )
            == []
        )


async def test_monitors_by_name_both_ways(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()

    async def registered(name: str) -> None:
        beamlet.register(name)
        msg = await beamlet.receive(timeout=TIMEOUT)
        raise ProcessExit(msg)

    async with erl_peer(epmd_port) as erl:
        # Erlang monitors {Name, PyNode}: DOWN names the process by {Name, Node}.
        target = beamlet.spawn(registered, "pyname")
        await erl.eval(
            "spawn(fun() -> M = monitor(process, {pyname, N}), Py ! monitoring,"
            " receive {'DOWN', M, process, Obj, R} -> Py ! {name_down, Obj, R} end end), ok.",
            N=node.name,
            Py=me,
        )
        await beamlet.receive(Atom("monitoring"), timeout=TIMEOUT)
        beamlet.send(target, Atom("gone"))
        assert await beamlet.receive((Atom("name_down"), ANY, ANY), timeout=TIMEOUT) == (
            Atom("name_down"),
            (Atom("pyname"), node.name),
            Atom("gone"),
        )
        # An unregistered name: noproc at once.
        assert (
            await erl.eval(
                "M = monitor(process, {nobody, N}),"
                " receive {'DOWN', M, process, _, R} -> R after 5000 -> timeout end.",
                N=node.name,
            )
            == NOPROC
        )

        # We monitor an Erlang registered name.
        await erl.eval("register(erl_named, spawn(fun() -> receive R -> exit(R) end end)), ok.")
        ref = beamlet.monitor((Atom("erl_named"), erl.name))
        beamlet.send((Atom("erl_named"), erl.name), Atom("bye"))
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert (dn.pid, dn.reason) == ((Atom("erl_named"), erl.name), Atom("bye"))
        ref = beamlet.monitor((Atom("nobody"), erl.name))
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert dn.reason == NOPROC


# --------------------------------------------------------------------------- noconnection


async def _links_and_monitors_to(erl: Peer, me: Pid) -> tuple[Pid, Ref, Pid, Pid]:
    """Our process links and monitors an Erlang process, and an Erlang process links and
    monitors a process of ours (which traps exits and reports what it gets)."""
    erl_pid = await erl.eval(ERL_VICTIM.replace("10000", "60000"))
    beamlet.link(erl_pid)
    ref = beamlet.monitor(erl_pid)

    async def watched() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(me, (ARMED, beamlet.self()))
        ex = await beamlet.receive(Exit, timeout=30)
        beamlet.send(me, (SEEN, ex.pid.node, ex.reason))

    ours = beamlet.spawn(watched)
    await beamlet.receive((ARMED, ours), timeout=TIMEOUT)
    linker = await erl.eval(
        "spawn(fun() -> link(P), monitor(process, P), Py ! linked, receive _ -> ok end end).",
        P=ours,
        Py=me,
    )
    await beamlet.receive(Atom("linked"), timeout=TIMEOUT)
    # A call in flight when the node goes away.
    caller = beamlet.spawn(_sleeping_call, erl.name, me)
    await beamlet.receive((Atom("calling"), ANY), timeout=TIMEOUT)
    monitor_node(erl.name)
    return erl_pid, ref, linker, caller


async def _sleeping_call(peer: Atom, me: Pid) -> None:
    beamlet.send(me, (Atom("calling"), beamlet.self()))
    try:
        await rpc.call(peer, "timer", "sleep", [Atom("infinity")], timeout=None)
    except RpcError as e:
        beamlet.send(me, (Atom("rpc_failed"), e.kind, e.reason))


async def _expect_noconnection(erl: Peer, erl_pid: Pid, ref: Ref, timeout: float) -> None:
    assert await beamlet.receive(exit_from(erl_pid), timeout=timeout) == Exit(erl_pid, NOCONNECTION)
    assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == NOCONNECTION
    assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(erl.name)
    assert await beamlet.receive((SEEN, ANY, ANY), timeout=TIMEOUT) == (
        SEEN,
        erl.name,
        NOCONNECTION,
    )
    assert await beamlet.receive((Atom("rpc_failed"), ANY, ANY), timeout=TIMEOUT) == (
        Atom("rpc_failed"),
        "erpc",
        NOCONNECTION,
    )
    assert erl.name not in nodes()


async def test_noconnection_when_peer_is_killed(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    async with erl_peer(epmd_port) as erl:
        erl_pid, ref, _, _ = await _links_and_monitors_to(erl, me)
        erl.signal(signal.SIGKILL)
        await _expect_noconnection(erl, erl_pid, ref, TIMEOUT)


@pytest.mark.dist(ticktime=4)
async def test_noconnection_when_peer_hangs(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    async with erl_peer(epmd_port, ticktime=4) as erl:
        erl_pid, ref, _, _ = await _links_and_monitors_to(erl, me)
        erl.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            await _expect_noconnection(erl, erl_pid, ref, timeout=12)
            assert time.monotonic() - started < 9  # ticktime 4 s: detected in 3-5 s
            assert "net_tick_timeout" in caplog.text
        finally:
            erl.signal(signal.SIGCONT)


# --------------------------------------------------------------------------- rpc, spawn


async def test_erlang_calls_python(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()

    async def slow_concat(a: bytes, b: bytes) -> bytes:
        await beamlet.sleep(0.01)
        return a + b

    def bad(x: Any) -> None:
        raise ValueError(f"bad {x!r}")

    async def worker(tag: Any) -> None:
        beamlet.send(me, (Atom("worker"), tag, beamlet.self()))
        msg = await beamlet.receive(timeout=TIMEOUT)
        raise ProcessExit(msg)

    node.d.register_function("pymod", "add", lambda a, b: a + b)
    node.d.register_function("pymod", "concat", slow_concat)
    node.d.register_function("pymod", "bad", bad)
    node.d.register_function("pymod", "quit", lambda: beamlet.exit(Atom("quit")))
    node.d.register_function("pymod", "note", lambda x: beamlet.send(me, (Atom("noted"), x)))
    node.d.register_function("pymod", "worker", worker)
    node.d.register_function("pymod", "whoami", beamlet.self)

    async with erl_peer(epmd_port) as erl:
        n = {"N": node.name}
        assert await erl.eval("rpc:call(N, pymod, add, [1, 2]).", **n) == 3
        assert await erl.eval("erpc:call(N, pymod, add, [X, 1]).", X=2**70, **n) == 2**70 + 1
        assert await erl.eval('rpc:call(N, pymod, concat, [<<"a">>, <<"b">>]).', **n) == b"ab"
        assert await erl.eval("rpc:call(N, erlang, node, []).", **n) == node.name
        assert await erl.eval("rpc:block_call(N, pymod, add, [3, 4]).", **n) == 7  # rex
        whoami = await erl.eval("erpc:call(N, pymod, whoami, []).", **n)
        assert type(whoami) is Pid and whoami.node == node.name

        got = await erl.eval("rpc:call(N, pymod, bad, [1]).", **n)
        assert got[0] == Atom("badrpc")
        _, (tag, (err, _stack)) = got
        assert tag == Atom("EXIT") and err == (Atom("python"), b"ValueError", b"bad 1")
        got = await erl.eval(
            "try erpc:call(N, pymod, bad, [2]) catch error:{exception, E, S} -> {E, is_list(S)}"
            " end.",
            **n,
        )
        assert got == ((Atom("python"), b"ValueError", b"bad 2"), True)
        assert await erl.eval(
            "try erpc:call(N, pymod, quit, []) catch exit:{exception, R} -> R end.", **n
        ) == Atom("quit")
        assert await erl.eval("rpc:call(N, pymod, nope, []).", **n) == (
            Atom("badrpc"),
            (Atom("EXIT"), (Atom("undef"), [(Atom("pymod"), Atom("nope"), [], [])])),
        )
        assert await erl.eval(
            "try erpc:call(N, pymod, nope, [1]) catch error:{exception, undef, S} -> S end.", **n
        ) == [(Atom("pymod"), Atom("nope"), [1], [])]
        assert (
            await erl.eval(
                "try erpc:call(N, pymod, add, [1, 2], 5000) catch C:R -> {C, R} end.", **n
            )
            == 3
        )

        await erl.eval("rpc:cast(N, pymod, note, [rex_cast]), ok.", **n)
        await erl.eval("erpc:cast(N, pymod, note, [erpc_cast]), ok.", **n)
        got = {(await beamlet.receive((Atom("noted"), ANY), timeout=TIMEOUT))[1] for _ in "ab"}
        assert got == {Atom("rex_cast"), Atom("erpc_cast")}

        # spawn/4, spawn_link/4, spawn_monitor/4 from Erlang into Python.
        src = """
            P = spawn_link(N, pymod, worker, [linked]),
            process_flag(trap_exit, true),
            {P2, M2} = spawn_monitor(N, pymod, worker, [monitored]),
            Py ! {spawned, P, P2},
            R1 = receive {'EXIT', P, X} -> X after 5000 -> no_exit end,
            R2 = receive {'DOWN', M2, process, P2, Y} -> Y after 5000 -> no_down end,
            {R1, R2}.
        """
        evaluation = asyncio.ensure_future(_eval_in_process(node, erl, src, N=node.name, Py=me))
        _, p1, p2 = await beamlet.receive((Atom("spawned"), ANY, ANY), timeout=TIMEOUT)
        assert {p1, p2} == {
            (await beamlet.receive((Atom("worker"), tag, ANY), timeout=TIMEOUT))[2]
            for tag in (Atom("linked"), Atom("monitored"))
        }
        beamlet.send(p1, Atom("bye_link"))
        beamlet.send(p2, Atom("bye_mon"))
        assert await asyncio.wait_for(evaluation, TIMEOUT) == (Atom("bye_link"), Atom("bye_mon"))
        assert await erl.eval(
            "{P, M} = spawn_monitor(N, pymod, nothere, []),"
            " receive {'DOWN', M, process, P, R} -> R end.",
            **n,
        ) == (Atom("undef"), [(Atom("pymod"), Atom("nothere"), [], [])])


async def _eval_in_process(node: DistNode, peer: Peer, src: str, **bindings: Any) -> Any:
    async def ev() -> Any:
        return await peer.eval(src, **bindings)

    return await node.run(ev)


async def test_python_calls_erlang(node: DistNode, epmd_port: int) -> None:
    async with erl_peer(epmd_port) as erl:
        assert await rpc.call(erl.name, "erlang", "node", []) == erl.name
        assert await rpc.call(erl.name, "lists", "reverse", [[1, 2, 3]]) == [3, 2, 1]
        assert await rpc.call(erl.name, "lists", "seq", [1, 300]) == list(range(1, 301))
        assert await rpc.call(erl.name, "erlang", "list_to_binary", [Charlist("ab")]) == b"ab"
        # Output of the Erlang function goes to our group leader, which answers it.
        assert await rpc.call(erl.name, "io", "format", ["hello from erlang ~p~n", [1]]) == Atom(
            "ok"
        )
        for fn, args, kind, reason in [
            ("nope", [], "error", Atom("undef")),
            ("error", [Atom("badarg")], "error", Atom("badarg")),
            ("throw", [Atom("ball")], "throw", Atom("ball")),
            ("exit", [Atom("bye")], "exit", Atom("bye")),
        ]:
            with pytest.raises(RpcError) as e:
                await rpc.call(erl.name, "erlang", fn, args)
            assert (e.value.kind, e.value.reason) == (kind, reason), fn
        with pytest.raises(RpcError) as e:
            await rpc.call(erl.name, "timer", "sleep", [5000], timeout=0.3)
        assert (e.value.kind, e.value.reason) == ("erpc", Atom("timeout"))
        # rpc.cast: fire and forget.
        rpc.cast(erl.name, "erlang", "send", [beamlet.self(), Atom("cast_arrived")])
        assert await beamlet.receive(Atom("cast_arrived"), timeout=TIMEOUT) == Atom("cast_arrived")

        # Remote spawn on Erlang.
        beamlet.process_flag(trap_exit=True)
        pid = await dist.spawn_link(erl.name, "timer", "sleep", [Atom("infinity")])
        assert type(pid) is Pid and pid.node == erl.name
        beamlet.exit(pid, Atom("stop"))
        assert await beamlet.receive(exit_from(pid), timeout=TIMEOUT) == Exit(pid, Atom("stop"))
        pid, ref = await dist.spawn_monitor(erl.name, "erlang", "exit", [Atom("bye")])
        assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == Atom("bye")
        pid, ref = await dist.spawn_monitor(erl.name, "nomod", "nofun", [1])
        dn = await beamlet.receive(down_for(ref), timeout=TIMEOUT)
        assert dn.reason[0] == Atom("undef")
        pid = await dist.spawn(erl.name, "erlang", "send", [beamlet.self(), Atom("spawned_ran")])
        assert await beamlet.receive(Atom("spawned_ran"), timeout=TIMEOUT) == Atom("spawned_ran")


# --------------------------------------------------------------------------- Elixir


async def test_elixir_node(node: DistNode, epmd_port: int) -> None:
    me = beamlet.self()
    beamlet.register("py_inbox")
    node.d.register_function("Elixir.PyMath", "square", lambda x: x * x)
    async with elixir_peer(epmd_port) as ex:
        assert await ex.eval("Node.ping(n)", n=node.name) == Atom("pong")
        assert await ex.eval("Node.list(:hidden)") == [node.name]
        # Messages both ways.
        await ex.eval('send({:py_inbox, n}, {:from_elixir, "text", [1, 2.5, :atom]})', n=node.name)
        assert await beamlet.receive(timeout=TIMEOUT) == (
            Atom("from_elixir"),
            b"text",
            [1, 2.5, Atom("atom")],
        )
        echo = await ex.eval("spawn(fn -> receive do {from, m} -> send(from, {:echo, m}) end end)")
        beamlet.send(echo, (me, {"key": (1, 2)}))
        assert await beamlet.receive(timeout=TIMEOUT) == (Atom("echo"), {b"key": (1, 2)})
        # Elixir calls Python: PyMath.square/1 as an Elixir module name.
        assert await ex.eval(":rpc.call(n, PyMath, :square, [12])", n=node.name) == 144
        assert await ex.eval(":erpc.call(n, PyMath, :square, [3])", n=node.name) == 9
        # Python calls Elixir.
        assert await rpc.call(ex.name, "Elixir.String", "upcase", ["abc"]) == b"ABC"
        assert await rpc.call(ex.name, "Elixir.Enum", "sum", [[1, 2, 3]]) == 6
        # An Elixir process monitors ours.
        victim = beamlet.spawn(beamlet.receive)
        await ex.eval(
            "spawn(fn -> ref = Process.monitor(v); send(py, :watching);"
            " receive do {:DOWN, ^ref, :process, _, r} -> send(py, {:ex_down, r}) end end)",
            v=victim,
            py=me,
        )
        await beamlet.receive(Atom("watching"), timeout=TIMEOUT)
        beamlet.exit(victim, Atom("bye_elixir"))
        assert await beamlet.receive((Atom("ex_down"), ANY), timeout=TIMEOUT) == (
            Atom("ex_down"),
            Atom("bye_elixir"),
        )


# --------------------------------------------------------------------------- handshake


async def test_wrong_cookie_is_refused_cleanly(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="beamlet.distribution")
    then = (
        f"io:format(\"first ~p~n\", [net_adm:ping('{node.name}')]),"
        f" erlang:set_cookie('{node.name}', '{COOKIE}'),"
        f" io:format(\"second ~p~n\", [net_adm:ping('{node.name}')])."
    )
    async with erl_peer(epmd_port, cookie="not_the_cookie", then=then) as erl:
        assert "first pang" in await erl.expect_line("first ")
        assert "second pong" in await erl.expect_line("second ")
        assert "wrong cookie" in caplog.text
        assert nodes() == [erl.name]
        assert await erl.eval("node().") == erl.name
    # We dial with the wrong cookie: refused, and the node carries on.
    async with erl_peer(epmd_port) as erl2:
        async with beamlet_node(epmd_port, cookie="wrong") as bad:
            assert await on(bad, connect, erl2.name) is False
        assert "challenge reply (wrong cookie?)" in caplog.text
        assert await erl2.eval("node().") == erl2.name
        assert await rpc.call(erl2.name, "erlang", "node", []) == erl2.name


@pytest.mark.parametrize("order", ["erl_smaller", "erl_greater"])
async def test_simultaneous_connect(node: DistNode, epmd_port: int, order: str) -> None:
    alive = unique("a" if order == "erl_smaller" else "zz")
    rounds = 4
    then = f"""
        Py = '{node.name}',
        Loop = fun L(0) -> ok;
                   L(K) -> _ = io:get_line(""),
                           R = net_kernel:connect_node(Py),
                           monitor_node(Py, true),
                           io:format("connected ~p~n", [R]),
                           receive {{nodedown, Py}} -> io:format("down~n") end,
                           L(K - 1)
               end,
        Loop({rounds}).
    """
    async with erl_peer(epmd_port, alive=alive, then=then, stdin=True) as erl:
        for _ in range(rounds):
            erl.write_line("go")
            assert await connect(erl.name) is True  # while Erlang dials us
            assert "connected true" in await erl.expect_line("connected")
            monitor_node(erl.name)
            assert nodes() == [erl.name]
            assert await erl.eval("nodes(hidden).") == [node.name]
            assert await rpc.call(erl.name, "erlang", "node", []) == erl.name
            # One connection survived: nothing went down on either side.
            assert await beamlet.receive(NodeDown, timeout=0, default=None) is None
            disconnect(erl.name)
            assert await beamlet.receive(NodeDown, timeout=TIMEOUT) == NodeDown(erl.name)
            await erl.expect_line("down")


async def test_erlang_restart_replaces_the_connection(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    alive = unique("re")
    async with erl_peer(epmd_port, alive=alive) as erl:
        pid = await erl.eval(ERL_VICTIM.replace("10000", "60000"))
        beamlet.link(pid)
        erl.signal(signal.SIGKILL)
        assert await beamlet.receive(exit_from(pid), timeout=TIMEOUT) == Exit(pid, NOCONNECTION)
        await erl.wait_exit()
    # Same name again (a new creation): pids of the old incarnation stay dead.
    async with erl_peer(epmd_port, alive=alive) as erl:
        assert await connect(erl.name)
        ref = beamlet.monitor(pid)
        assert (await beamlet.receive(down_for(ref), timeout=TIMEOUT)).reason == NOPROC
        beamlet.send(pid, Atom("into_the_void"))  # dropped by the new node
        assert await rpc.call(erl.name, "erlang", "node", []) == erl.name
