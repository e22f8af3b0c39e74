"""pg process groups (beamlet.distribution.pg), interoperable with Erlang's `pg`
(docs/protocol.md §7).

Three parts: a scope on one node (async tests, the plugin's node); two beamlet nodes in
one process, connected through the built-in EPMD on a private port; and `interop` tests
against real Erlang nodes (`erl -kernel start_pg true`), where an Erlang control process
evaluates expressions on request (tests/distribution/erlang_peer.py). Waiting is always on an
event: a `GroupEvent` from `pg.monitor` on the Python side, `pg:monitor/1` notifications
on the Erlang side (`wait_members_src`), a DOWN, or a reply that follows the update on
the same connection.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from erlang_peer import (
    ErlNode,
    erl_eval,
    erl_node,
    free_port,
    run,
    wait_members_src,
)

import beamlet
from beamlet import KILL, Atom, Node, Pid, Ref
from beamlet.behaviours.gen_server import CallExit
from beamlet.distribution import etf, pg
from beamlet.distribution.distribution import Distribution, start_distribution
from beamlet.distribution.pg import GroupEvent

G = Atom("g")
COOKIE = "pg_test_cookie"
_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_names)}"


async def idle() -> None:
    await beamlet.receive()


async def wait_event(
    ref: Ref, action: Atom, pred: Callable[[GroupEvent], bool] = lambda e: True
) -> GroupEvent:
    ev: GroupEvent = await beamlet.receive(
        lambda m: type(m) is GroupEvent and m.ref == ref and m.action == action and pred(m),
        timeout=10,
    )
    return ev


async def wait_members(
    group: Any,
    pred: Callable[[list[Pid]], bool],
    *,
    scope: str = "pg",
    node: Node | None = None,
) -> list[Pid]:
    """Subscribe to `group` and wait (on GroupEvents, no polling) until `pred(members)`."""
    ref, members = await pg.monitor(group, scope=scope)
    try:
        while not pred(members):
            ev = await beamlet.receive(
                lambda m: type(m) is GroupEvent and m.ref == ref, timeout=10, default=None
            )
            assert ev is not None, f"{group!r}: timed out, members {members}"
            joined = ev.action == pg.JOIN
            members = ev.pids + members if joined else pg._subtract(members, ev.pids)
        return members
    finally:
        await pg.demonitor(ref, scope=scope)


# --------------------------------------------------------------------------- one node


async def test_join_leave_and_reads() -> None:
    pg.start()
    me = beamlet.self()
    other = beamlet.spawn(idle)
    assert pg.get_members(G) == [] and pg.which_groups() == []
    await pg.join(G)
    await pg.join(G, [other, other])
    assert sorted(pg.get_members(G)) == sorted([me, other, other])
    assert sorted(pg.get_local_members(G)) == sorted([me, other, other])
    assert pg.which_groups() == [G] == pg.which_local_groups()
    # joined twice: listed twice, leaves twice (pg:leave/3)
    assert await pg.leave(G, other) is True
    assert sorted(pg.get_members(G)) == sorted([me, other])
    assert await pg.leave(G, [other]) is True
    assert await pg.leave(G, other) is False  # not_joined
    assert await pg.leave(Atom("never"), me) is False
    assert await pg.leave(G) is True
    assert pg.get_members(G) == [] and pg.which_groups() == []


async def test_a_call_with_a_plain_ref_tag_is_answered_at_the_pid() -> None:
    """gen:reply/2, which the scope replies with: a plain Ref tag (gen:call of OTP 23 and
    older) is answered at the caller's pid; `[alias | Ref]` at the alias."""
    pg.start()
    me = beamlet.self()
    tag = beamlet.make_ref()
    join = (pg.JOIN_LOCAL, G, [me])
    beamlet.send("pg", (Atom("$gen_call"), (me, tag), join))
    assert await beamlet.receive((tag, beamlet.ANY), timeout=5) == (tag, Atom("ok"))
    alias = beamlet.alias()
    tag2 = etf.ImproperList((Atom("alias"),), alias)
    other = beamlet.spawn(idle)  # the From's pid: not where an alias tag's reply goes
    beamlet.send("pg", (Atom("$gen_call"), (other, tag2), join))
    assert await beamlet.receive((tag2, beamlet.ANY), timeout=5) == (tag2, Atom("ok"))
    assert pg.get_members(G) == [me, me]


async def test_member_exit_removes_it_from_every_group() -> None:
    pg.start()
    worker = beamlet.spawn(idle)
    await pg.join(G, worker)
    await pg.join(Atom("h"), [worker, worker])
    ref, members = await pg.monitor(Atom("h"))
    assert members == [worker, worker]
    beamlet.exit(worker, KILL)
    ev = await wait_event(ref, pg.LEAVE)
    assert ev.group == Atom("h") and ev.pids == [worker]
    await wait_event(ref, pg.LEAVE)  # the second membership
    assert pg.get_members(G) == [] and pg.get_members(Atom("h")) == []
    assert pg.which_groups() == []


async def test_monitor_scope_and_demonitor_flushes() -> None:
    pg.start()
    me = beamlet.self()
    await pg.join(Atom("a"))
    ref, groups = await pg.monitor_scope()
    assert groups == {Atom("a"): [me]}
    await pg.join(Atom("b"))
    ev = await wait_event(ref, pg.JOIN)
    assert (ev.group, ev.pids) == (Atom("b"), [me])
    await pg.leave(Atom("a"))  # its event stays queued...
    assert await pg.demonitor(ref) is True
    # ...and demonitor flushed it; later changes are not reported
    await pg.join(Atom("c"))
    assert await beamlet.receive(GroupEvent, timeout=0, default=None) is None
    assert await pg.demonitor(ref) is False


async def test_group_monitor_sees_only_its_group() -> None:
    pg.start()
    ref, members = await pg.monitor(Atom("x"))
    assert members == []
    await pg.join(Atom("y"))
    await pg.join(Atom("x"))
    ev = await wait_event(ref, pg.JOIN)
    assert ev.group == Atom("x")
    assert await beamlet.receive(GroupEvent, timeout=0, default=None) is None
    assert await pg.demonitor(ref) is True


async def test_subscriber_exit_drops_its_subscriptions() -> None:
    scope_pid = pg.start(scope="subs")
    parent = beamlet.self()

    async def subscriber() -> None:
        await pg.monitor_scope("subs")
        await pg.monitor(G, scope="subs")
        beamlet.send(parent, "subscribed")
        await beamlet.receive()

    sub = beamlet.spawn(subscriber)
    await beamlet.receive("subscribed", timeout=5)
    state = pg._TABLES.get(beamlet.current_node())[Atom("subs")]
    assert len(state.scope_monitors) == 1 and len(state.group_monitors) == 1
    beamlet.exit(sub, KILL)
    # A join is handled after the scope's DOWN for `sub` (DOWN is queued first).
    await pg.join(G, scope="subs")
    assert state.scope_monitors == {} and state.group_monitors == {}
    assert state.monitored_groups == {}
    assert beamlet.is_alive(scope_pid)


async def test_scopes_are_independent_and_names_unique() -> None:
    pg.start()
    pg.start(scope="other")
    with pytest.raises(beamlet.NameTaken):
        pg.start()
    await pg.join(G, scope="other")
    assert pg.get_members(G) == []
    assert pg.get_members(G, scope="other") == [beamlet.self()]
    assert pg.which_groups(scope="nope") == []


async def test_bad_arguments() -> None:
    pg.start()
    remote = Pid(Atom("elsewhere@127.0.0.1"), 5, 0, 1)
    with pytest.raises(beamlet.BadArgument):
        await pg.join(G, remote)
    with pytest.raises(beamlet.BadArgument):
        await pg.join(G, ["not a pid"])  # type: ignore[list-item]
    with pytest.raises(beamlet.BadArgument):
        await pg.leave(G, 42)  # type: ignore[arg-type]
    with pytest.raises(CallExit) as info:
        await pg.join(G, scope="not_started")
    assert info.value.cause == beamlet.NOPROC


async def test_group_names_are_terms() -> None:
    pg.start()
    me = beamlet.self()
    # a str and the bytes of its UTF-8 are the same Erlang binary, hence the same group
    await pg.join("jobs")
    assert pg.get_members(b"jobs") == [me]
    assert pg.which_groups() == [b"jobs"]
    # unhashable terms (lists, maps) work as names too
    await pg.join([1, {"k": [2]}])
    assert pg.get_members([1, {"k": [2]}]) == [me]
    assert pg.get_members((1, {"k": [2]})) == []  # a tuple is another term
    # an atom is not the binary with the same text
    assert pg.get_members(Atom("jobs")) == []
    key = pg.group_key([1, {"k": [2]}])
    assert etf.decode(etf.encode(key)) == [1, {b"k": [2]}]


async def test_scope_survives_garbage_and_strangers() -> None:
    scope_pid = pg.start()
    stranger = Pid(Atom("x@127.0.0.1"), 1, 0, 1)
    me = beamlet.self()
    for junk in [
        "hello",
        (),
        (pg.JOIN, stranger, G, stranger),  # a peer that never synced: ignored
        (pg.LEAVE, stranger, stranger, [G]),
        (pg.GEN_CAST, (pg.SYNC, "nope", [])),
        (pg.GEN_CAST, "weird"),
        (pg.GEN_CALL, "bad from", pg.MONITOR),
        (pg.DISCOVER, "not a pid"),
    ]:
        beamlet.send(scope_pid, junk)
    # An unknown call is answered with badarg (pg.erl would crash instead).
    ref = beamlet.make_ref()
    beamlet.send(scope_pid, (pg.GEN_CALL, (me, ref), Atom("what")))
    assert await beamlet.receive((ref, pg.BADARG), timeout=5) == (ref, pg.BADARG)
    await pg.join(G)
    assert pg.get_members(G) == [me]


async def test_peer_protocol_messages() -> None:
    """Drive one scope with the messages a remote scope sends, and check what it sends
    back (shapes of §7) and how it updates its table."""
    scope_pid = pg.start()
    me = beamlet.self()
    local_member = beamlet.spawn(idle)
    await pg.join(G, local_member)
    remote_a = Pid(Atom("r@127.0.0.1"), 7, 0, 1)
    remote_b = Pid(Atom("r@127.0.0.1"), 8, 0, 1)
    ref, _ = await pg.monitor_scope()

    # We play a peer scope (our own pid stands in for it): discover -> sync + discover.
    beamlet.send(scope_pid, (pg.DISCOVER, me))
    sync = await beamlet.receive(lambda m: type(m) is tuple and m[0] == pg.GEN_CAST, timeout=5)
    assert sync == (pg.GEN_CAST, (pg.SYNC, scope_pid, [(G, [local_member])]))
    assert await beamlet.receive((pg.DISCOVER, scope_pid), timeout=5)

    beamlet.send(scope_pid, (pg.GEN_CAST, (pg.SYNC, me, [(G, [remote_a]), ("s", [remote_b])])))
    await wait_event(ref, pg.JOIN, lambda e: e.pids == [remote_a])
    await wait_event(ref, pg.JOIN, lambda e: e.group == b"s")
    assert sorted(pg.get_members(G)) == sorted([local_member, remote_a])
    assert pg.get_local_members(G) == [local_member]

    beamlet.send(scope_pid, (pg.JOIN, me, G, [remote_b, remote_b]))
    await wait_event(ref, pg.JOIN, lambda e: e.pids == [remote_b, remote_b])
    beamlet.send(scope_pid, (pg.LEAVE, me, remote_b, [G, b"s"]))
    await wait_event(ref, pg.LEAVE, lambda e: e.group == b"s")
    assert sorted(pg.get_members(G)) == sorted([local_member, remote_a, remote_b])
    assert b"s" not in pg.which_groups()

    # A new sync replaces everything known from that peer.
    beamlet.send(scope_pid, (pg.GEN_CAST, (pg.SYNC, me, [(Atom("t"), [remote_a])])))
    await wait_event(ref, pg.JOIN, lambda e: e.group == Atom("t"))
    assert pg.get_members(G) == [local_member]

    # Local changes are broadcast to the peer with Erlang's shapes.
    await pg.join(Atom("u"), local_member)
    assert await beamlet.receive((pg.JOIN, scope_pid, Atom("u"), local_member), timeout=5)
    await pg.leave(Atom("u"), [local_member])
    assert await beamlet.receive((pg.LEAVE, scope_pid, [local_member], [Atom("u")]), timeout=5)
    beamlet.exit(local_member, KILL)
    assert await beamlet.receive((pg.LEAVE, scope_pid, local_member, [G]), timeout=5)
    assert await pg.demonitor(ref)


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def py_node(alive: str, epmd_port: int, *, scope: bool = True) -> AsyncIterator[Node]:
    """A distributed beamlet node `alive@127.0.0.1` with the default pg scope."""
    node = Node(f"{alive}@127.0.0.1")
    await node.start()
    dist: Distribution | None = None
    try:
        dist = await start_distribution(node, cookie=COOKIE, epmd_port=epmd_port)
        if scope:
            pg.start(node=node)
        yield node
    finally:
        if dist is not None:
            await dist.stop()
        await node.stop()


def dist_of(node: Node) -> Distribution:
    assert isinstance(node.dist, Distribution)
    return node.dist


async def in_process(node: Node, fn: Callable[..., Any], *args: Any) -> Any:
    return await node.run(fn, *args)


# --------------------------------------------------------------------------- Python <-> Python


async def join_as(group: Any, pids: Any, scope: str = "pg") -> None:
    await pg.join(group, pids, scope=scope)


def test_python_python_scopes() -> None:
    """Discovery on nodeup (sync of earlier joins), join, leave, member exit, connection
    loss and re-sync on reconnect, between two beamlet nodes."""

    async def main() -> None:
        port = free_port()
        async with py_node(unique("a"), port) as a, py_node(unique("b"), port) as b:
            b_member = b.spawn(idle)
            await b.run(lambda: join_as(G, b_member))
            assert await dist_of(a).connect(b.name)
            # b's scope synced its earlier join to a
            await a.run(lambda: wait_members(G, lambda m: m == [b_member]))
            a_member = a.spawn(idle)
            await a.run(lambda: join_as(G, a_member))
            both = sorted([a_member, b_member])
            await b.run(lambda: wait_members(G, lambda m: sorted(m) == both))
            assert pg.get_local_members(G, node=b) == [b_member]

            async def leave_on_b() -> None:
                assert await pg.leave(G, b_member)

            await b.run(leave_on_b)
            await a.run(lambda: wait_members(G, lambda m: m == [a_member]))
            a.exit(a_member, KILL)
            await b.run(lambda: wait_members(G, lambda m: m == []))

            other = b.spawn(idle)
            await b.run(lambda: join_as(Atom("h"), [other, other]))
            await a.run(lambda: wait_members(Atom("h"), lambda m: m == [other, other]))
            # connection lost: everything a knew from b goes
            assert dist_of(a).disconnect(b.name)
            await a.run(lambda: wait_members(Atom("h"), lambda m: m == []))
            # reconnect: discovery again, b's members come back
            assert await dist_of(a).connect(b.name)
            await a.run(lambda: wait_members(Atom("h"), lambda m: m == [other, other]))
            assert pg.which_groups(node=a) == [Atom("h")]

    run(main())


def test_python_scope_stop_drops_its_members_on_peers() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("a"), port) as a, py_node(unique("b"), port) as b:
            assert await dist_of(a).connect(b.name)
            member = b.spawn(idle)
            await b.run(lambda: join_as(G, member))
            await a.run(lambda: wait_members(G, lambda m: m == [member]))
            scope = b.whereis("pg")
            assert scope is not None
            b.exit(scope, KILL)  # a monitors b's scope: DOWN -> b's members dropped
            await a.run(lambda: wait_members(G, lambda m: m == []))
            # a new scope on b rediscovers a at start
            pg.start(node=b)
            await b.run(lambda: join_as(G, member))
            await a.run(lambda: wait_members(G, lambda m: m == [member]))

    run(main())


# --------------------------------------------------------------------------- interop

SPAWN_IDLE = "P = spawn(fun() -> receive stop -> ok end end), "


def members_are(pids: str) -> str:
    """An Erlang predicate: the members equal `pids` (an Erlang list expression) as a
    multiset."""
    return f"fun(M) -> lists:sort(M) =:= lists:sort({pids}) end"


@contextlib.asynccontextmanager
async def erlang(alive: str, port: int, **kw: Any) -> AsyncIterator[ErlNode]:
    async with erl_node(unique(alive), port, cookie=COOKIE, **kw) as e:
        yield e


@pytest.mark.interop
def test_python_member_seen_by_erlang() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port) as py, erlang("erl", port) as erl:
            early = py.spawn(idle)
            await py.run(lambda: join_as(G, early))  # before any connection: goes by sync

            async def body() -> None:
                erl_scope = await erl_eval(erl.name, "whereis(pg).")
                me = beamlet.self()
                wanted = "[E]"
                got = await erl_eval(erl.name, wait_members_src("g", members_are(wanted)), E=early)
                assert got == [early]
                await pg.join(G)  # after discovery: goes by join
                got = await erl_eval(
                    erl.name, wait_members_src("g", members_are("[E, Me]")), E=early, Me=me
                )
                assert sorted(got) == sorted([early, me])
                assert sorted(await erl_eval(erl.name, "pg:get_members(g).")) == sorted(got)
                assert await erl_eval(erl.name, "pg:get_local_members(g).") == []
                assert await erl_eval(erl.name, "pg:which_groups().") == [G]
                # the Erlang scope took every message without crashing
                assert await erl_eval(erl.name, "whereis(pg).") == erl_scope

            await py.run(body)

    run(main())


@pytest.mark.interop
def test_erlang_member_seen_by_python() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port) as py, erlang("erl", port) as erl:

            async def body() -> None:
                # joined before the connection: arrives by sync
                early = await erl_eval(erl.name, SPAWN_IDLE + "ok = pg:join(g, P), P.")
                await wait_members(G, lambda m: m == [early])
                ref, _ = await pg.monitor(G)
                late = await erl_eval(erl.name, SPAWN_IDLE + "ok = pg:join(g, [P, P]), P.")
                ev = await wait_event(ref, pg.JOIN)
                assert ev.group == G and ev.pids == [late, late]
                assert sorted(pg.get_members(G)) == sorted([early, late, late])
                assert pg.get_local_members(G) == []
                assert pg.which_groups() == [G] and pg.which_local_groups() == []
                await pg.demonitor(ref)

            await py.run(body)

    run(main())


@pytest.mark.interop
def test_leave_and_exit_propagate_both_ways() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port) as py, erlang("erl", port) as erl:

            async def body() -> None:
                scope = beamlet.whereis("pg")
                erl_scope = await erl_eval(erl.name, "whereis(pg).")
                # Python -> Erlang: leave, then exit
                w = beamlet.spawn(idle)
                await pg.join(G, w)
                await pg.join(Atom("h"), [w, w])
                await erl_eval(erl.name, wait_members_src("g", members_are("[W]")), W=w)
                await erl_eval(erl.name, wait_members_src("h", members_are("[W, W]")), W=w)
                assert await pg.leave(G, w)
                await erl_eval(erl.name, wait_members_src("g", members_are("[]")))
                beamlet.exit(w, KILL)
                await erl_eval(erl.name, wait_members_src("h", members_are("[]")))

                # Erlang -> Python: leave, then exit
                ref, _ = await pg.monitor(G)
                p = await erl_eval(erl.name, SPAWN_IDLE + "ok = pg:join(g, [P, P]), P.")
                await wait_event(ref, pg.JOIN)
                assert await erl_eval(erl.name, "pg:leave(g, P).", P=p) == pg.OK
                ev = await wait_event(ref, pg.LEAVE)
                assert ev.pids == [p] and pg.get_members(G) == [p]
                beamlet.send(p, Atom("stop"))
                ev = await wait_event(ref, pg.LEAVE)
                assert ev.pids == [p] and pg.get_members(G) == []

                # The Python scope goes away: Erlang drops all Python members.
                await pg.join(G)
                me = beamlet.self()
                await erl_eval(erl.name, wait_members_src("g", members_are("[Me]")), Me=me)
                assert scope is not None
                beamlet.exit(scope, KILL)
                await erl_eval(erl.name, wait_members_src("g", members_are("[]")))
                assert await erl_eval(erl.name, "whereis(pg).") == erl_scope

            await py.run(body)

    run(main())


@pytest.mark.interop
def test_erlang_node_down_drops_its_members() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port) as py:
            async with erlang("erl", port) as erl:

                async def setup() -> None:
                    p = await erl_eval(erl.name, SPAWN_IDLE + "ok = pg:join(g, P), P.")
                    await wait_members(G, lambda m: m == [p])

                await py.run(setup)
                erl.proc.kill()
                await py.run(lambda: wait_members(G, lambda m: m == []))
            assert pg.which_groups(node=py) == []

    run(main())


@pytest.mark.interop
def test_group_names_of_any_type_and_other_scopes() -> None:
    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port) as py, erlang("erl", port) as erl:

            async def body() -> None:
                me = beamlet.self()
                # An extra scope, started on both sides (Erlang's first: then ours finds it
                # at once, without waiting for re-discovery).
                await erl_eval(erl.name, "{ok, _} = pg:start(jobs_scope), ok.")
                pg.start(scope="jobs_scope")
                p = await erl_eval(
                    erl.name,
                    SPAWN_IDLE + 'ok = pg:join(jobs_scope, {room, <<"lobby">>}, P),'
                    ' ok = pg:join(jobs_scope, "chars", P),'
                    " ok = pg:join(jobs_scope, [1, 2, 300], P),"
                    " ok = pg:join(jobs_scope, #{k => [v]}, P), P.",
                )
                room = (Atom("room"), "lobby")  # the str is the Erlang binary
                await wait_members(room, lambda m: m == [p], scope="jobs_scope")
                await wait_members(etf.Charlist("chars"), lambda m: m == [p], scope="jobs_scope")
                await wait_members([1, 2, 300], lambda m: m == [p], scope="jobs_scope")
                await wait_members({Atom("k"): [Atom("v")]}, lambda m: m == [p], scope="jobs_scope")
                assert pg.get_members([ord(c) for c in "chars"], scope="jobs_scope") == [p]
                assert pg.get_members(room) == []  # the default scope is another overlay
                # Python joins the same terms; Erlang finds them under its own spelling
                for group in [room, etf.Charlist("chars"), [1, 2, 300], {Atom("k"): [Atom("v")]}]:
                    await pg.join(group, scope="jobs_scope")
                for src in ['{room, <<"lobby">>}', '"chars"', "[1, 2, 300]", "#{k => [v]}"]:
                    got = await erl_eval(
                        erl.name,
                        f"{{Ref, M}} = pg:monitor(jobs_scope, {src}),"
                        " Wait = fun W(Ms) -> case lists:member(Me, Ms) of true -> Ms; false ->"
                        " receive {Ref, join, _, Ps} -> W(Ps ++ Ms) after 10000 -> Ms end end end,"
                        " Wait(M).",
                        Me=me,
                    )
                    assert sorted(got) == sorted([me, p]), (src, got)

            await py.run(body)

    run(main())


@pytest.mark.interop
def test_late_and_restarted_erlang_scopes_are_rediscovered() -> None:
    """An Erlang scope that starts after the connection, or restarts, never discovers a
    hidden node itself; the beamlet scope re-sends discover to it (`rediscover`)."""

    async def main() -> None:
        port = free_port()
        async with py_node(unique("py"), port, scope=False) as py, erlang("erl", port) as erl:

            async def body() -> None:
                pg.start("late", rediscover=0.05)
                await pg.join(G, scope="late")
                me = beamlet.self()
                assert await dist_of(py).connect(erl.name)
                # started after the connection came up: found by re-discovery
                await erl_eval(erl.name, "{ok, _} = pg:start(late), ok.")
                got = await erl_eval(
                    erl.name,
                    "{Ref, M0} = pg:monitor(late, g),"
                    " W = fun L(M) -> case lists:member(Me, M) of true -> M; false ->"
                    " receive {Ref, join, g, Ps} -> L(Ps ++ M) after 10000 -> timeout end"
                    " end end, W(M0).",
                    Me=me,
                )
                assert got == [me]
                # the kernel's default scope restarts (synchronously, through kernel_safe_sup)
                pg.start(rediscover=0.05)
                await pg.join(G)
                await erl_eval(erl.name, wait_members_src("g", members_are("[Me]")), Me=me)
                old, new = await erl_eval(
                    erl.name,
                    "Old = whereis(pg), ok = supervisor:terminate_child(kernel_safe_sup, pg),"
                    " {ok, New} = supervisor:restart_child(kernel_safe_sup, pg), {Old, New}.",
                )
                assert new != old
                got = await erl_eval(erl.name, wait_members_src("g", members_are("[Me]")), Me=me)
                assert got == [me]

            await py.run(body)

    run(main())


async def join_all(group: Any) -> Pid:
    me = beamlet.self()
    await pg.join(group)
    return me


@pytest.mark.interop
def test_three_nodes_python_python_erlang() -> None:
    """P1, P2 (beamlet, hidden) and E (Erlang), pairwise connected: every member is seen
    on every node; a beamlet node that goes away is dropped by the other two."""

    async def main() -> None:
        port = free_port()
        async with (
            py_node(unique("p1_"), port) as p1,
            py_node(unique("p2_"), port) as p2,
            erlang("e", port) as e,
        ):
            assert await dist_of(p1).connect(p2.name)
            assert await dist_of(p1).connect(e.name)
            assert await dist_of(p2).connect(e.name)
            m1, m2 = p1.spawn(idle), p2.spawn(idle)
            await p1.run(lambda: join_as(G, m1))
            await p2.run(lambda: join_as(G, m2))

            async def erlang_member() -> Pid:
                pid: Pid = await erl_eval(e.name, SPAWN_IDLE + "ok = pg:join(g, P), P.")
                return pid

            me = await p1.run(erlang_member)
            everyone = sorted([m1, m2, me])
            await p1.run(lambda: wait_members(G, lambda m: sorted(m) == everyone))
            await p2.run(lambda: wait_members(G, lambda m: sorted(m) == everyone))

            async def erlang_sees(pids: str, **bs: Any) -> None:
                await erl_eval(e.name, wait_members_src("g", members_are(pids)), **bs)

            await p1.run(lambda: erlang_sees("[A, B, C]", A=m1, B=m2, C=me))
            # a Python member exits: the others drop it
            p2.exit(m2, KILL)
            await p1.run(lambda: erlang_sees("[A, C]", A=m1, C=me))
            await p1.run(lambda: wait_members(G, lambda m: sorted(m) == sorted([m1, me])))
            # P2 goes away as a node: its (new) members disappear from P1 and E
            m3 = p2.spawn(idle)
            await p2.run(lambda: join_as(Atom("h"), m3))
            await p1.run(lambda: wait_members(Atom("h"), lambda m: m == [m3]))
            await p1.run(lambda: erlang_sees_h(e.name, "[X]", X=m3))
            await dist_of(p2).stop()
            await p1.run(lambda: wait_members(Atom("h"), lambda m: m == []))
            await p1.run(lambda: erlang_sees_h(e.name, "[]"))

    run(main())


async def erlang_sees_h(node: Atom, pids: str, **bs: Any) -> None:
    await erl_eval(node, wait_members_src("h", members_are(pids)), **bs)


@pytest.mark.interop
def test_three_nodes_python_erlang_erlang() -> None:
    """P (beamlet, hidden) with two visible Erlang nodes E1, E2 that discover each other
    the Erlang way; P discovers both."""

    async def main() -> None:
        port = free_port()
        async with (
            py_node(unique("p"), port) as p,
            erlang("e1_", port) as e1,
            erlang("e2_", port) as e2,
        ):

            async def body() -> None:
                assert await erl_eval(e1.name, "net_adm:ping(E2).", E2=e2.name) == Atom("pong")
                assert await dist_of(p).connect(e1.name)
                assert await dist_of(p).connect(e2.name)
                me = beamlet.self()
                await pg.join(G)
                x1 = await erl_eval(e1.name, SPAWN_IDLE + "ok = pg:join(g, P), P.")
                x2 = await erl_eval(e2.name, SPAWN_IDLE + "ok = pg:join(g, P), P.")
                everyone = "[Me, X1, X2]"
                for e in (e1, e2):
                    got = await erl_eval(
                        e.name, wait_members_src("g", members_are(everyone)), Me=me, X1=x1, X2=x2
                    )
                    assert sorted(got) == sorted([me, x1, x2])
                await wait_members(G, lambda m: sorted(m) == sorted([me, x1, x2]))
                # an Erlang member on E2 exits: P and E1 drop it
                beamlet.send(x2, Atom("stop"))
                await wait_members(G, lambda m: sorted(m) == sorted([me, x1]))
                await erl_eval(
                    e1.name, wait_members_src("g", members_are("[Me, X1]")), Me=me, X1=x1
                )
                # P leaves: both Erlang nodes drop it
                assert await pg.leave(G)
                for e in (e1, e2):
                    await erl_eval(e.name, wait_members_src("g", members_are("[X1]")), X1=x1)
                assert await erl_eval(e2.name, "pg:get_members(g).") == [x1]

            await p.run(body)

    run(main())
