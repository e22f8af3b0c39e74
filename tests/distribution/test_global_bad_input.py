"""`global` under bad input: a peer that sends `global_name_server` malformed messages, a
peer whose `global` never answers (a raw socket peer; an Erlang node whose locker is
suspended), and a lock storm from several nodes. In each case the node stays up, keeps
its connections, says what happened in its log, and other names keep working."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on, within
from raw_peer import RawPeer
from test_global import idle, until

import beamlet
from beamlet import ANY, Atom, Pid
from beamlet.distribution import connect, global_, handshake, nodes
from beamlet.distribution.api import NodeDown, monitor_node

pytestmark = [pytest.mark.interop, pytest.mark.dist(hidden=False)]

OK = Atom("ok")
GNS = Atom("global_name_server")
CAST, CALL = Atom("$gen_cast"), Atom("$gen_call")
REG_SEND = 6


@pytest.fixture
def quick_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The locker gives a silent peer 0.5 s instead of 5 s."""
    monkeypatch.setattr(global_, "ANSWER_TIMEOUT", 0.5)


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def names_work(other: DistNode, tag: str) -> None:
    """A name registered here is seen on `other` and one registered there here."""
    here = beamlet.spawn(idle)
    assert await within(15, global_.register_name((Atom(tag), 1), here)) is True

    async def there() -> Pid:
        await until(lambda: global_.whereis_name((Atom(tag), 1)) == here)
        pid = beamlet.spawn(idle)
        assert await within(15, global_.register_name((Atom(tag), 2), pid)) is True
        return pid

    theirs = await on(other, there)
    await until(lambda: global_.whereis_name((Atom(tag), 2)) == theirs)


async def test_a_raw_peer_that_never_answers_and_sends_junk(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture, quick_answers: None
) -> None:
    """A visible raw-socket peer starts global's connect protocol and then never answers
    (no init_connect_ack, set_lock or lock_set): the locker waits `ANSWER_TIMEOUT`, lets
    go of the lock, logs it and backs off, so registrations do not wait for the peer.
    Then the peer sends malformed messages of every shape: each is logged as
    unexpected or malformed, none costs the server, the connection or the names."""
    caplog.set_level(logging.WARNING, "beamlet.global")
    server = beamlet.whereis("global_name_server")
    async with beamlet_node(epmd_port, hidden=False) as other:
        assert await connect(other.name)
        await within(10, global_.sync())
        raw = await RawPeer.open(node)
        try:
            await raw.handshake(flags=handshake.OUR_FLAGS | handshake.PUBLISHED)
            await until(lambda: raw.name in nodes())
            monitor_node(raw.name)

            async def to_global(*msgs: Any) -> None:
                for m in msgs:
                    await raw.send_ctl((REG_SEND, raw.pid(1), Atom(""), GNS), m)

            locker = (Atom("locker"), Atom("no_longer_a_pid"), {}, raw.pid(2))
            await to_global((CAST, (Atom("init_connect"), (8, 1), raw.name, locker)))
            silent = "did not answer set_lock"
            await until(lambda: bool(records(caplog, silent)))
            assert f"not in sync with node '{raw.name}'" in records(caplog, silent)[0]
            # registrations and names with the other node go on meanwhile
            await names_work(other, "during")
            m = (Atom("global"), Atom("random_exit_name"))
            await to_global(
                42,
                [],
                b"junk",
                Atom("init_connect"),
                (),
                (CAST,),
                (CAST, Atom("junk")),
                (CAST, (Atom("init_connect"), Atom("x"), raw.name, locker)),
                (CAST, (Atom("init_connect"), (8,), raw.name, locker)),
                (CAST, (Atom("exchange"), raw.name, [1, (2,), (Atom("n"), 3, m)], [], 1)),
                (CAST, (Atom("exchange_ops"), raw.name, 1, Atom("x"), Atom("y"))),
                (CAST, (Atom("resolved"), raw.name, Atom("x"), Atom("y"), 1, [], 99)),
                (CAST, (Atom("lock_set"), raw.pid(2), True, Atom("notalist"), 99)),
                (CAST, (Atom("lock_is_set"), raw.name, 99, Atom("x"))),
                (CAST, (Atom("in_sync"), 42, True)),
                (CAST, (Atom("new_nodes"), raw.name, Atom("notops"), [], Atom("no"), 1)),
                (CALL, Atom("notfrom"), Atom("get_known")),
                (CALL, (raw.pid(1), Atom("t")), (Atom("register"), Atom("a"), 1, m)),
                (CALL, (raw.pid(1), Atom("t")), (Atom("set_lock"), Atom("notalockid"))),
                (CALL, (raw.pid(1), Atom("t")), (Atom("del_lock"), (1, 2, 3))),
                (CALL, (raw.pid(1), Atom("t")), (Atom("sync"), Atom("notalist"))),
                (CALL, (raw.pid(1), Atom("t")), Atom("no_such_call")),
                (Atom("lost_connection"), 1, 2, 3, 4),
                (Atom("lost_connection"), raw.name, Atom("x"), Atom("y"), raw.name),
                (Atom("remove_connection"), 42),
                (Atom("init_connect_ack"), Atom("x")),
                (Atom("cancel_connect"), 42, 1),
                (Atom("whereis"), Atom("x"), Atom("notfrom")),
                (Atom("prepare_shutdown"), Atom("notapid"), 1),
            )
            await until(lambda: bool(records(caplog, "malformed lost_connection")))
            assert records(caplog, "unexpected cast")
            assert records(caplog, "unexpected call")
            assert records(caplog, "unexpected message")
            assert not records(caplog, "failed on")  # no handler raised
            assert beamlet.whereis("global_name_server") == server
            assert raw.name in nodes()
            assert await beamlet.receive(NodeDown, timeout=0, default=None) is None
            await names_work(other, "after")
            # locks on the nodes that run global work (the default, every visible
            # node, includes the silent peer and waits for it, as in Erlang)
            me, ours = beamlet.self(), [node.name, other.name]
            assert await within(15, global_.trans((Atom("res"), me), lambda: 7, ours)) == 7
        finally:
            raw.close()


async def test_an_erlang_node_whose_locker_never_answers(
    node: DistNode, epmd_port: int, caplog: pytest.LogCaptureFixture, quick_answers: None
) -> None:
    """An Erlang node's `global` locker is suspended before it connects: its name server
    answers set_lock, but its locker never sends lock_set. beamlet's locker lets go of
    the lock after `ANSWER_TIMEOUT` and backs off (an Erlang node would hold the lock,
    and every registration behind it, for as long as the locker is stuck); names with
    another Erlang node keep working; once the locker runs again, the cluster converges."""
    caplog.set_level(logging.WARNING, "beamlet.global")
    async with erl_peer(epmd_port) as good, erl_peer(epmd_port) as stuck:
        assert await connect(good.name)
        assert await good.eval("global:sync().", timeout=15) == OK
        # (a suspension lasts as long as the process that made it: one that waits)
        holder = await stuck.eval(
            "Me = self(), H = spawn(fun() -> true = erlang:suspend_process(global:get_locker()), "
            "Me ! suspended, receive resume -> erlang:resume_process(global:get_locker()) end "
            "end), receive suspended -> H end."
        )
        assert await connect(stuck.name)
        await until(lambda: bool(records(caplog, "did not answer lock_set")))
        assert (
            f"not in sync with node '{stuck.name}'" in records(caplog, "did not answer lock_set")[0]
        )
        py = beamlet.spawn(idle)
        assert await within(15, global_.register_name(Atom("while_stuck"), py)) is True
        assert await good.eval("global:whereis_name(while_stuck).") == py
        epid = await good.eval(
            "P = spawn(fun() -> receive stop -> ok end end), "
            "yes = global:register_name(from_good, P), P.",
            timeout=20,
        )
        await until(lambda: global_.whereis_name(Atom("from_good")) == epid)
        assert {good.name, stuck.name} <= set(nodes())
        # the locker runs again: the stuck node joins, and sees the names
        beamlet.send(holder, Atom("resume"))
        assert await stuck.eval("global:sync().", timeout=60) == OK
        assert await stuck.eval("global:whereis_name(while_stuck).") == py
        assert await stuck.eval("global:whereis_name(from_good).") == epid


STORM = (
    "Me = self(), Ps = [spawn(fun() -> R = global:trans({storm, self()}, fun() -> "
    "Obs ! {enter, self()}, receive ack -> ok end, "
    "Obs ! {leave, self()}, receive ack -> ok end, done end), Me ! {done, R} end) "
    "|| _ <- lists:seq(1, N)], [receive {done, R} -> R end || _ <- Ps]."
)


async def test_a_lock_storm_from_several_nodes(node: DistNode, epmd_port: int) -> None:
    """global_SUITE's lock themes under load: processes on two Erlang nodes and two
    beamlet nodes all take `trans({storm, Self})` at once; an observer (each holder
    enters and leaves it synchronously, while holding the lock) sees one holder at a
    time, every transaction completes, and no connection drops. The storm starts once
    every node is connected to and in sync with every other."""
    per_node = 10
    seen: list[int] = []

    async def observer() -> None:
        inside: set[Pid] = set()
        for _ in range(2 * 4 * per_node):
            op, pid = await beamlet.receive()
            if op == Atom("enter"):
                inside.add(pid)
                seen.append(len(inside))
            else:
                inside.discard(pid)
            beamlet.send(pid, Atom("ack"))

    obs = beamlet.spawn(observer)
    async with (
        beamlet_node(epmd_port, hidden=False) as other,
        erl_peer(epmd_port) as e1,
        erl_peer(epmd_port) as e2,
    ):
        for n in (other.name, e1.name, e2.name):
            assert await connect(n)
            monitor_node(n)

        # The full mesh, synced on every node, before the storm. A lock's default nodes
        # are the caller's (`global_.trans`: the nodes global knows; Erlang: nodes()), so
        # a node still joining locks a smaller set, and two such sets need not meet.
        async def mesh_there() -> None:
            for e in (e1, e2):
                assert await connect(e.name)
            await within(15, global_.sync())

        await on(other, mesh_there)
        assert await e1.eval("net_kernel:connect_node(E2).", E2=e2.name) is True
        for e in (e1, e2):
            assert await e.eval("global:sync().", timeout=15) == OK
        await within(15, global_.sync())

        def storm_here(count: int) -> Any:  # a closure: Python holders on a beamlet node
            async def run() -> list[Any]:
                me = beamlet.self()

                async def holder() -> None:
                    async def critical() -> Atom:
                        for op in (Atom("enter"), Atom("leave")):
                            beamlet.send(obs, (op, beamlet.self()))
                            await beamlet.receive(Atom("ack"))
                        return Atom("done")

                    r = await global_.trans((Atom("storm"), beamlet.self()), critical)
                    beamlet.send(me, (Atom("done"), r))

                for _ in range(count):
                    beamlet.spawn(holder)
                return [
                    (await beamlet.receive(lambda m: m[0] == Atom("done")))[1] for _ in range(count)
                ]

            return run

        results: list[Any] = []
        me = beamlet.self()

        def erl_storm(e: Any) -> Any:
            async def run() -> None:
                r = await e.eval(STORM, Obs=obs, N=per_node, timeout=110)
                beamlet.send(me, (Atom("storm"), r))

            return run

        for e in (e1, e2):
            beamlet.spawn(erl_storm(e))

        async def on_other() -> None:
            beamlet.send(me, (Atom("storm"), await on(other, storm_here(per_node))))

        beamlet.spawn(on_other)
        results.extend(await within(110, storm_here(per_node)()))
        for _ in range(3):
            _, r = await beamlet.receive((Atom("storm"), ANY), timeout=110)
            results.extend(r)
        assert results == [Atom("done")] * (4 * per_node)
        assert len(seen) == 4 * per_node and max(seen) == 1  # one holder at a time
        assert await beamlet.receive(NodeDown, timeout=0, default=None) is None
        assert {other.name, e1.name, e2.name} <= set(nodes())


async def test_resolve_functions_are_not_kept_for_ever(node: DistNode) -> None:
    """Each registration with a new resolve function (a lambda per call) keeps that
    function only while a name uses it: none is left once the names are gone, nor after
    a refused registration."""
    state = global_._STATES.get(node)
    assert state is not None
    pids = [beamlet.spawn(idle) for _ in range(20)]
    for i, pid in enumerate(pids):
        assert await global_.register_name((Atom("r"), i), pid, lambda n, a, b: a) is True
    assert len(state.resolve_fns) == 20
    assert await global_.register_name((Atom("r"), 0), beamlet.self(), lambda n, a, b: a) is False
    assert len(state.resolve_fns) == 20
    await global_.re_register_name((Atom("r"), 0), pids[0], lambda n, a, b: b)
    assert len(state.resolve_fns) == 20
    for i in range(10):
        await global_.unregister_name((Atom("r"), i))
    for pid in pids[10:]:
        beamlet.exit(pid, beamlet.KILL)
    await until(lambda: global_.registered_names() == [])
    assert state.resolve_fns == {} and state.resolve_calls == {}
