"""Port of erts/emulator/test/monitor_SUITE.erl and of process_SUITE's alias group and
monitor_tag (docs/semantics.md §12.2): node-local parts only.

Python differences: `{'DOWN', Ref, process, Object, Reason}` is
`Down(ref, kind, pid, reason, tag)`, with `pid == (name, node)` for a monitor taken on a
name and `tag` set by `monitor(..., tag=T)` (Erlang's `{tag, T}` replaces 'DOWN');
`demonitor` returns True iff the monitor was active, i.e. Erlang's demonitor(Ref, [info])
(Erlang's demonitor/1 always returns true); `monitor(pid, alias=Mode)` is Erlang's
`monitor(process, Pid, [{alias, Mode}])`; `alias("reply")` is `alias([reply])`. There is
no spawn_opt with monitor options: spawn followed by monitor before the child can run
(processes only run when the caller awaits) is used instead.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

import beamlet
from beamlet import (
    ANY,
    KILL,
    NOPROC,
    NORMAL,
    Atom,
    BadArgument,
    Down,
    Exit,
    Pid,
    Ref,
)
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")


async def _idle() -> None:
    await beamlet.receive()


async def _quick() -> None:
    return None


def _down_of(ref: Ref) -> Any:
    return lambda m: isinstance(m, Down) and m.ref == ref


async def expect_down(ref: Ref, pid: Any, reason: Any = ANY) -> Any:
    """Upstream expect_down/2,3: the *next* message must be that DOWN."""
    msg = await assert_receive()
    assert isinstance(msg, Down) and msg.ref == ref and msg.pid == pid, msg
    if reason is not ANY:
        assert msg.reason == reason, msg
    return msg.reason


async def recv_msgs(n: int) -> list[Any]:
    return [await assert_receive() for _ in range(n)]


# --- jeeves: the upstream butler for named-monitor tests --------------------------------


async def _jeeves(parent: Pid, name: str | None, ref: Ref) -> None:
    if name is not None:
        beamlet.register(name, beamlet.self())
    beamlet.send(parent, (beamlet.self(), ref))
    while True:
        match await beamlet.receive((parent, ANY)):
            case (_, "monitors"):
                beamlet.send(parent, (beamlet.self(), ("monitors", _monitors())))
            case (_, ("monitor_process", p)):
                beamlet.send(parent, (beamlet.self(), ("monitor_process", beamlet.monitor(p))))
            case (_, ("demonitor", r)):
                beamlet.send(parent, (beamlet.self(), ("demonitor", beamlet.demonitor(r))))
            case (_, "stop"):
                return
            case (_, ("exit", reason)):
                beamlet.exit(reason)


async def start_jeeves(name: str | None) -> Pid:
    ref = beamlet.make_ref()
    pid = beamlet.spawn(_jeeves, beamlet.self(), name, ref)
    await assert_receive((pid, ref))
    return pid


def tell_jeeves(pid: Pid, what: Any) -> None:
    beamlet.send(pid, (beamlet.self(), what))


async def ask_jeeves(pid: Pid, request: Any) -> Any:
    tell_jeeves(pid, request)
    _, response = await assert_receive((pid, ANY))
    return response


def _monitors(pid: Pid | None = None) -> tuple[tuple[Any, ...], tuple[Pid, ...]]:
    info = beamlet.process_info(beamlet.self() if pid is None else pid)
    assert info is not None
    return (info.monitors, info.monitored_by)


# --- case_1, case_1a, case_2, case_2a ---------------------------------------------------


async def _g(parent: Pid) -> None:
    await beamlet.receive("ok")
    beamlet.exit(parent, "foo")


async def test_case_1() -> None:
    """case_1 (§3.3 E8, §1.4.3): A monitors B, B kills A and then exits; the trapping test
    gets A's EXIT with B's reason (and A's monitor on B is simply dropped)."""
    beamlet.process_flag(trap_exit=True)

    async def g0() -> None:
        b = beamlet.spawn(_g, beamlet.self())
        beamlet.monitor(b)
        beamlet.send(b, "ok")
        await beamlet.receive("ok")

    a = beamlet.spawn_link(g0)
    assert await assert_receive() == Exit(a, "foo")


async def test_case_1a() -> None:
    """case_1a: as case_1, with the monitor made by spawn_monitor."""
    beamlet.process_flag(trap_exit=True)

    async def g1() -> None:
        b, _ = beamlet.spawn_monitor(_g, beamlet.self())
        beamlet.send(b, "ok")
        await beamlet.receive("ok")

    a = beamlet.spawn_link(g1)
    assert await assert_receive() == Exit(a, "foo")


async def _y2(parent: Pid) -> None:
    r = await beamlet.receive()
    beamlet.send(parent, ("demonitor", beamlet.demonitor(r)))


async def test_case_2() -> None:
    """case_2 (§4.3): B tries to demonitor A's monitor with A's ref: it is not B's
    monitor, so nothing happens (modern Erlang returns true, the 2011 suite expected a
    badarg; Python: False, not active for B) and A still gets the DOWN."""
    b = beamlet.spawn(_y2, beamlet.self())
    r = beamlet.monitor(b)
    beamlet.send(b, r)
    assert await assert_receive() == ("demonitor", False)
    await expect_down(r, b, NORMAL)


async def test_case_2a() -> None:
    """case_2a: as case_2 with spawn_monitor."""
    b, r = beamlet.spawn_monitor(_y2, beamlet.self())
    beamlet.send(b, r)
    assert await assert_receive() == ("demonitor", False)
    await expect_down(r, b, NORMAL)


# --- error cases -------------------------------------------------------------------------


async def test_mon_e_1() -> None:
    """mon_e_1 (§4.1.6): bad monitor targets raise badarg (Python: BadArgument; a bad
    monitor type is a TypeError, the Python API has no type argument)."""
    for bad in (["bingo"], ("rex", beamlet.node_name(), "junk"), 1, 1.5, b"x", None):
        with pytest.raises(BadArgument):
            beamlet.monitor(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        beamlet.monitor("plutt", beamlet.self())  # type: ignore[misc]
    with pytest.raises(BadArgument):
        beamlet.monitor(beamlet.self(), alias="bogus")
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.monitors == ()


async def test_demon_e_1() -> None:
    """demon_e_1 (§4.3): demonitor of a non-ref raises badarg (BadArgument); a ref of
    another node or of the other end of a monitor is not ours: a no-op that leaves the
    other side's monitor in place (modern Erlang: true; Python: False)."""
    for bad in ("plutt", 1, beamlet.self()):
        with pytest.raises(BadArgument):
            beamlet.demonitor(bad)  # type: ignore[arg-type]
    foreign = Ref(Atom("hej@otherhost"), (1, 2, 3))
    assert beamlet.demonitor(foreign) is False

    p0 = beamlet.self()

    async def p2_fun() -> None:
        beamlet.send(p0, (beamlet.self(), "ref", beamlet.monitor(p0)))
        await beamlet.receive((p0, "stop"))

    p2 = beamlet.spawn(p2_fun)
    _, _, r2 = await assert_receive((p2, "ref", ANY))
    assert beamlet.demonitor(r2) is False
    assert _monitors(p2)[0] == (p0,)  # P2's monitor on us is untouched
    assert _monitors()[1] == (p2,)
    beamlet.send(p2, (p0, "stop"))


async def test_demon_1() -> None:
    """demon_1 (§4.3): demonitor of an unknown ref is fine (Python: False)."""
    assert beamlet.demonitor(beamlet.make_ref()) is False


async def test_demon_2() -> None:
    """demon_2 (§4.1.5, §4.3): demonitor twice; DOWN with normal (or noproc if already
    dead); demonitor before the target dies means no DOWN."""
    r1 = beamlet.monitor(beamlet.self())
    beamlet.demonitor(r1)  # the return value for a self-monitor: see test_link_suite
    assert beamlet.demonitor(r1) is False  # extra demonitor
    assert await beamlet.receive(timeout=0, default=None) is None

    async def sleeper(t: float) -> None:
        await beamlet.sleep(t)

    p2 = beamlet.spawn(sleeper, 0.001)
    r2 = beamlet.monitor(p2)
    assert await expect_down(r2, p2) in (NORMAL, NOPROC)

    p4 = beamlet.spawn(sleeper, 100)
    r4 = beamlet.monitor(p4)
    assert beamlet.demonitor(r4) is True
    beamlet.exit(p4, "frop")
    await refute_receive(ANY, timeout=0.05)


async def test_demonitor_flush() -> None:
    """demonitor_flush (§4.3): bad options or refs raise; flush removes at most one DOWN
    of that monitor from the mailbox; other monitors' DOWNs stay. Python: `flush=True` is
    Erlang's [flush]; an unknown option is a TypeError, a non-ref a BadArgument."""
    with pytest.raises(TypeError):
        beamlet.demonitor(beamlet.make_ref(), flus=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        beamlet.demonitor(beamlet.make_ref(), True)  # type: ignore[misc]
    with pytest.raises(BadArgument):
        beamlet.demonitor("x", flush=True)  # type: ignore[arg-type]

    p = beamlet.spawn(_idle)
    m1, m2, m3, m4 = (beamlet.monitor(p) for _ in range(4))
    assert beamlet.demonitor(m1, flush=True) is True
    beamlet.exit(p, "bang")
    assert await assert_receive(_down_of(m2)) == Down(m2, PROCESS, p, "bang")
    # All DOWNs of one termination are sent at once (§1.4): M3's and M4's are queued now.
    assert beamlet.demonitor(m3, flush=True) is False  # already fired; its DOWN removed
    assert beamlet.demonitor(m4) is False  # already fired; its DOWN stays
    assert await assert_receive(_down_of(m4)) == Down(m4, PROCESS, p, "bang")
    await refute_receive(lambda m: isinstance(m, Down) and m.ref in (m1, m3), timeout=0.1)


async def test_local_remove_monitor() -> None:
    """local_remove_monitor (§4.3): demonitor(M, [info]) is true iff the DOWN was not and
    will not be delivered: true means no DOWN in the mailbox, false means it is there.
    (Upstream: 100 groups x 100 processes that end at once; here 10 x 60, half of which
    end at once and half never, so that both answers occur.)"""
    master = beamlet.self()

    async def group() -> None:
        # Half end at once and get the chance to die before the demonitors (DOWN
        # delivered: false), half wait forever (monitor still active: true).
        ms = [beamlet.monitor(beamlet.spawn(_quick)) for _ in range(30)]
        await asyncio.sleep(0)  # sleep-ok: a yield; this batch runs and dies first
        ms += [beamlet.monitor(beamlet.spawn(_idle)) for _ in range(30)]
        t = f = 0
        for m in ms:
            if beamlet.demonitor(m):
                if await beamlet.receive(_down_of(m), timeout=0, default=None) is not None:
                    beamlet.exit("down_msg_found")
                t += 1
            else:
                if await beamlet.receive(_down_of(m), timeout=0, default=None) is None:
                    beamlet.exit("no_down_msg_found")
                f += 1
        beamlet.send(master, ("rm_mon_res", beamlet.self(), (t, f)))

    groups = [beamlet.spawn_link(group) for _ in range(10)]
    true = false = 0
    for g in groups:
        _, _, (t, f) = await assert_receive(("rm_mon_res", g, ANY), timeout=5)
        true += t
        false += f
    assert true + false == 600
    assert true > 0 and false > 0


async def test_mon_1() -> None:
    """mon_1 (§4.1, §4.2): DOWN for normal exit, for another reason, noproc for a dead
    pid, and the same by name, where the DOWN object is {Name, Node} (§4.1)."""
    node = beamlet.node_name()

    async def sleeper(t: float) -> None:
        await beamlet.sleep(t)

    p2 = beamlet.spawn(sleeper, 0.001)
    r2 = beamlet.monitor(p2)
    assert await expect_down(r2, p2) in (NORMAL, NOPROC)
    p2a, r2a = beamlet.spawn_monitor(sleeper, 0.001)
    await expect_down(r2a, p2a, NORMAL)

    p3 = beamlet.spawn(sleeper, 100)
    r3 = beamlet.monitor(p3)
    beamlet.exit(p3, "frop")
    await expect_down(r3, p3, "frop")
    p3a, r3a = beamlet.spawn_monitor(sleeper, 100)
    beamlet.exit(p3a, "frop")
    await expect_down(r3a, p3a, "frop")

    r4 = beamlet.monitor(p3)
    await expect_down(r4, p3, NOPROC)

    p5 = await start_jeeves("jeeves")
    r5 = beamlet.monitor("jeeves")
    tell_jeeves(p5, "stop")
    await expect_down(r5, (Atom("jeeves"), node), NORMAL)

    p6 = await start_jeeves("jeeves")
    r6 = beamlet.monitor(("jeeves", node))
    tell_jeeves(p6, ("exit", "frop"))
    await expect_down(r6, (Atom("jeeves"), node), "frop")

    r7 = beamlet.monitor(("jeeves", node))
    await expect_down(r7, (Atom("jeeves"), node), NOPROC)


async def test_monitor_counts_each_call() -> None:
    """§4.1.1: N monitors on one target give N DOWNs, each with its own ref."""
    p = beamlet.spawn(_idle)
    refs = [beamlet.monitor(p) for _ in range(5)]
    assert len(set(refs)) == 5
    beamlet.exit(p, "x")
    downs = [await assert_receive(Down) for _ in range(5)]
    assert {d.ref for d in downs} == set(refs)
    assert all(d.reason == "x" and d.pid == p for d in downs)


async def test_monitor_by_name_follows_the_process_not_the_name() -> None:
    """§4.1 / §4.1.3: a name is resolved once, at monitor time; re-registering the name
    afterwards does not move the monitor."""
    first = await start_jeeves("follow_me")
    ref = beamlet.monitor("follow_me")
    beamlet.unregister("follow_me")
    second = await start_jeeves("follow_me")
    tell_jeeves(second, ("exit", "second_died"))
    tell_jeeves(first, ("exit", "first_died"))
    down = await assert_receive(_down_of(ref))
    assert down.reason == "first_died"
    assert down.pid == (Atom("follow_me"), beamlet.node_name())


async def test_large_exit() -> None:
    """large_exit (§2.2): a large exit reason reaches the DOWN intact."""
    s0 = ("big", "tuple", "with", ["list", 4563784278])
    s = (s0, pickle.dumps(s0) * 100)

    async def large_exit_sub(reason: Any) -> None:
        await beamlet.receive()
        beamlet.exit(reason)

    for _ in range(100):
        p = beamlet.spawn(large_exit_sub, s)
        r = beamlet.monitor(p)
        beamlet.send(p, "hej")
        await expect_down(r, p, s)


async def test_list_cleanup() -> None:
    """list_cleanup (§1.4.3, §4.3): process_info monitors/monitored_by on both sides
    while a monitor is active, and empty after demonitor, after the target's DOWN and
    after the *watcher* dies."""
    p0 = beamlet.self()
    node = beamlet.node_name()
    beamlet.register("master_bertie", p0)

    p1 = await start_jeeves("jeeves")
    assert _monitors() == ((), ())
    assert await ask_jeeves(p1, "monitors") == ("monitors", ((), ()))
    r1a = beamlet.monitor(p1)
    assert _monitors() == ((p1,), ())
    assert await ask_jeeves(p1, "monitors") == ("monitors", ((), (p0,)))
    assert beamlet.demonitor(r1a) is True
    assert await beamlet.receive(timeout=0, default=None) is None
    assert _monitors() == ((), ())
    assert await ask_jeeves(p1, "monitors") == ("monitors", ((), ()))
    r1b = beamlet.monitor("jeeves")
    assert _monitors() == (((Atom("jeeves"), node),), ())
    assert await ask_jeeves(p1, "monitors") == ("monitors", ((), (p0,)))
    tell_jeeves(p1, "stop")
    await expect_down(r1b, (Atom("jeeves"), node), NORMAL)
    assert _monitors() == ((), ())

    # The monitoring process crashes: its monitor on us disappears with it.
    p2 = await start_jeeves("jeeves")
    assert _monitors() == ((), ())
    resp = await ask_jeeves(p2, ("monitor_process", "master_bertie"))
    assert resp[0] == "monitor_process"
    assert _monitors() == ((), (p2,))
    assert await ask_jeeves(p2, "monitors") == (
        "monitors",
        (((Atom("master_bertie"), node),), ()),
    )
    r2 = beamlet.monitor(p2)  # upstream sleeps 2 s; we wait for the death instead
    tell_jeeves(p2, ("exit", "frop"))
    await expect_down(r2, p2, "frop")
    assert _monitors() == ((), ())
    beamlet.unregister("master_bertie")


async def _wait_deaths(pids: list[Pid]) -> None:
    refs = {beamlet.monitor(p): p for p in pids}
    for _ in pids:
        d = await assert_receive(lambda m: isinstance(m, Down) and m.ref in refs)
        assert d.pid == refs[d.ref]


async def test_mixer() -> None:
    """mixer (§4.1-§4.3): several watchers monitoring us, us monitoring them, both at
    once, demonitors on either side; process_info stays exact. Node-local part (upstream
    permutes local and remote nodes). A watcher's demonitor is done when its reply
    arrives: the demonitor signal precedes the reply on the same pair (§0.3)."""
    me = beamlet.self()

    def mb() -> list[Pid]:
        return sorted(_monitors()[1])

    # 1. watchers monitor us, then die
    js = [await start_jeeves(None) for _ in range(4)]
    for p in js:
        await ask_jeeves(p, ("monitor_process", me))
    assert mb() == sorted(js) and _monitors()[0] == ()
    for p in js:
        tell_jeeves(p, ("exit", "flaff"))
    await _wait_deaths(js)
    assert _monitors() == ((), ())

    # 2. watchers monitor us, then demonitor
    js = [await start_jeeves(None) for _ in range(4)]
    rs = [(p, (await ask_jeeves(p, ("monitor_process", me)))[1]) for p in js]
    assert mb() == sorted(js) and _monitors()[0] == ()
    for p, ref in rs:
        assert await ask_jeeves(p, ("demonitor", ref)) == ("demonitor", True)
    assert _monitors() == ((), ())
    for p in js:
        tell_jeeves(p, ("exit", "flaff"))
    await _wait_deaths(js)

    # 3. both directions, then the watchers die
    js = [await start_jeeves(None) for _ in range(4)]
    for p in js:
        await ask_jeeves(p, ("monitor_process", me))
    mine = {beamlet.monitor(p): p for p in js}
    assert mb() == sorted(js) and sorted(_monitors()[0]) == sorted(js)
    for p in js:
        tell_jeeves(p, ("exit", "flaff"))
    for _ in js:
        d = await assert_receive(lambda m: isinstance(m, Down) and m.ref in mine)
        assert d.reason == "flaff"
    assert _monitors() == ((), ())

    # 4. both directions, the watchers demonitor, then we do
    js = [await start_jeeves(None) for _ in range(4)]
    rs = [(p, (await ask_jeeves(p, ("monitor_process", me)))[1]) for p in js]
    r2s = [beamlet.monitor(p) for p in js]
    assert mb() == sorted(js) and sorted(_monitors()[0]) == sorted(js)
    for p, ref in rs:
        await ask_jeeves(p, ("demonitor", ref))
    assert sorted(_monitors()[0]) == sorted(js) and _monitors()[1] == ()
    for ref in r2s:
        assert beamlet.demonitor(ref) is True
    assert _monitors() == ((), ())
    for p in js:
        tell_jeeves(p, ("exit", "flaff"))


async def test_named_down() -> None:
    """named_down (§5.3): when the DOWN of a monitor on a name arrives, the name has
    already been released: registering it at once succeeds."""
    for i in range(50):
        name = f"monitor_SUITE-named_down-{i}"
        named = beamlet.spawn_link(_idle)
        beamlet.register(name, named)
        beamlet.unlink(named)
        beamlet.exit(named, "bang")
        mon = beamlet.monitor(name)
        d = await assert_receive(_down_of(mon))
        assert d.reason in ("bang", NOPROC)
        beamlet.register(name, beamlet.self())
        beamlet.unregister(name)


async def test_named_down_name_released_before_down() -> None:
    """named_down, with the name monitor taken while the process is alive: the DOWN
    (reason bang) comes after the name was released (§1.4 step 1 before step 5)."""
    name = "named_down_alive"
    named = beamlet.spawn(_idle)
    beamlet.register(name, named)
    mon = beamlet.monitor(name)
    beamlet.exit(named, "bang")
    d = await assert_receive(_down_of(mon))
    assert d == Down(mon, PROCESS, (Atom(name), beamlet.node_name()), "bang")
    assert beamlet.whereis(name) is None
    beamlet.register(name, beamlet.self())
    beamlet.unregister(name)


# --- process_SUITE group alias, and monitor_tag (§4.4, §4.2) ------------------------------


async def test_alias_bif() -> None:
    """alias_bif (§4.4): messages through an alias arrive until unalias; after it they are
    dropped. alias([explicit_unalias]) is the same; alias([reply]) stops after the first
    message."""
    for mode in (None, "explicit_unalias"):
        a1 = beamlet.alias() if mode is None else beamlet.alias(mode)

        async def p1_fun(a: Ref = a1) -> None:
            beamlet.send(a, (a, 1))
            beamlet.send(a, (a, 2))
            assert await beamlet.receive() == (a, "continue")
            beamlet.send(a, (a, 3))
            beamlet.send(a, (a, 4))

        p1, m1 = beamlet.spawn_monitor(p1_fun)
        assert await recv_msgs(2) == [(a1, 1), (a1, 2)]
        assert beamlet.unalias(a1) is True
        beamlet.send(p1, (a1, "continue"))
        [down] = await recv_msgs(1)
        assert down == Down(m1, PROCESS, p1, NORMAL)

    a3 = beamlet.alias("reply")

    async def p3_fun() -> None:
        for i in range(1, 5):
            beamlet.send(a3, (a3, i))

    p3, m3 = beamlet.spawn_monitor(p3_fun)
    assert await recv_msgs(2) == [(a3, 1), Down(m3, PROCESS, p3, NORMAL)]
    assert beamlet.unalias(a3) is False  # already deactivated by the first message


async def test_alias_errors() -> None:
    """§4.4: unalias of a non-ref is badarg; of a ref that is not an active alias of the
    caller, false (verified on OTP 25); a bad alias mode is badarg."""
    with pytest.raises(BadArgument):
        beamlet.unalias("x")  # type: ignore[arg-type]
    assert beamlet.unalias(beamlet.make_ref()) is False
    with pytest.raises(BadArgument):
        beamlet.alias("demonitor")  # only monitor aliases have this mode


async def test_alias_only_the_owner_receives_and_owner_death_deactivates() -> None:
    """§4.4 / §1.4.2: only the alias's creator receives through it; its death
    deactivates it (a later send is dropped silently, §2.1)."""
    test = beamlet.self()

    async def owner() -> None:
        a = beamlet.alias()
        beamlet.send(test, ("alias", a))
        beamlet.send(test, ("got", await beamlet.receive()))

    o, ref = beamlet.spawn_monitor(owner)
    _, a = await assert_receive(("alias", ANY))
    beamlet.send(a, "hello")
    assert await assert_receive(("got", ANY)) == ("got", "hello")
    await expect_down(ref, o, NORMAL)
    beamlet.send(a, "into the void")  # no error
    await refute_receive("into the void", timeout=0.05)


async def _alias_echo_twice() -> None:
    """Receives {alias, A}, sends {A,1}, {A,2}, waits for {A, continue}, sends 3 and 4."""
    _, a = await beamlet.receive(("alias", ANY))
    beamlet.send(a, (a, 1))
    beamlet.send(a, (a, 2))
    await beamlet.receive((a, "continue"))
    beamlet.send(a, (a, 3))
    beamlet.send(a, (a, 4))


async def _alias_send_two() -> None:
    _, a = await beamlet.receive(("alias", ANY))
    beamlet.send(a, (a, 1))
    beamlet.send(a, (a, 2))


async def _alias_silent() -> None:
    await beamlet.receive(("alias", ANY))


async def test_monitor_alias() -> None:
    """monitor_alias (§4.4): monitor aliases in modes explicit_unalias (unalias only),
    demonitor (deactivated by demonitor or by the DOWN) and reply_demonitor (also by the
    first message through it, which removes the monitor too)."""
    # explicit_unalias
    p1 = beamlet.spawn(_alias_echo_twice)
    ma1 = beamlet.monitor(p1, alias="explicit_unalias")
    beamlet.send(p1, ("alias", ma1))
    assert await recv_msgs(2) == [(ma1, 1), (ma1, 2)]
    beamlet.unalias(ma1)
    beamlet.send(p1, (ma1, "continue"))
    [d] = await recv_msgs(1)
    assert isinstance(d, Down) and d.ref == ma1

    # demonitor mode, deactivated by demonitor
    p2 = beamlet.spawn(_alias_echo_twice)
    ma2 = beamlet.monitor(p2, alias="demonitor")
    beamlet.send(p2, ("alias", ma2))
    assert await recv_msgs(2) == [(ma2, 1), (ma2, 2)]
    beamlet.demonitor(ma2)
    m2 = beamlet.monitor(p2)
    beamlet.send(p2, (ma2, "continue"))
    [d] = await recv_msgs(1)
    assert isinstance(d, Down) and d.ref == m2

    # demonitor mode, deactivated by the DOWN
    p3 = beamlet.spawn(_alias_send_two)
    ma3 = beamlet.monitor(p3, alias="demonitor")
    beamlet.send(p3, ("alias", ma3))
    msgs = await recv_msgs(3)
    assert msgs[:2] == [(ma3, 1), (ma3, 2)]
    assert isinstance(msgs[2], Down) and msgs[2].ref == ma3

    async def send_34(a: Ref) -> None:
        beamlet.send(a, (a, 3))
        beamlet.send(a, (a, 4))

    _, m3_1 = beamlet.spawn_monitor(send_34, ma3)
    [d] = await recv_msgs(1)
    assert isinstance(d, Down) and d.ref == m3_1

    # reply_demonitor: no message through it, the DOWN deactivates it
    p4 = beamlet.spawn(_alias_silent)
    ma4 = beamlet.monitor(p4, alias="reply_demonitor")
    beamlet.send(p4, ("alias", ma4))
    [d] = await recv_msgs(1)
    assert isinstance(d, Down) and d.ref == ma4
    _, m4_1 = beamlet.spawn_monitor(send_34, ma4)
    [d] = await recv_msgs(1)
    assert isinstance(d, Down) and d.ref == m4_1

    # reply_demonitor: the first message deactivates the alias and removes the monitor
    p5 = beamlet.spawn(_alias_send_two)
    ma5 = beamlet.monitor(p5, alias="reply_demonitor")
    m_5 = beamlet.monitor(p5)
    beamlet.send(p5, ("alias", ma5))
    msgs = await recv_msgs(2)
    assert msgs[0] == (ma5, 1)
    assert isinstance(msgs[1], Down) and msgs[1].ref == m_5


@pytest.mark.parametrize("exit_reason", ["normal", "ref"])
async def test_spawn_monitor_alias(exit_reason: str) -> None:
    """spawn_monitor_alias (§4.4): as monitor_alias, with the alias monitor set up at
    spawn time (Python: spawn, then monitor with `alias=` before the child runs; there is
    no spawn_opt monitor option). Bad alias options raise badarg."""
    reason: Any = NORMAL if exit_reason == "normal" else beamlet.make_ref()

    def spawn(fn: Any, mode: str) -> tuple[Pid, Ref]:
        pid = beamlet.spawn(fn, reason)
        return pid, beamlet.monitor(pid, alias=mode)

    for bad in ("alias", "aliases", "", "Demonitor"):
        with pytest.raises(BadArgument):
            beamlet.monitor(beamlet.self(), alias=bad)

    async def echo(r: Any) -> None:
        await _alias_echo_twice()
        beamlet.exit(r)

    async def two(r: Any) -> None:
        await _alias_send_two()
        beamlet.exit(r)

    async def silent(r: Any) -> None:
        await _alias_silent()
        beamlet.exit(r)

    async def send_34(a: Ref, r: Any) -> None:
        beamlet.send(a, (a, 3))
        beamlet.send(a, (a, 4))
        beamlet.exit(r)

    p1, ma1 = spawn(echo, "explicit_unalias")
    beamlet.send(p1, ("alias", ma1))
    assert await recv_msgs(2) == [(ma1, 1), (ma1, 2)]
    beamlet.unalias(ma1)
    beamlet.send(p1, (ma1, "continue"))
    assert await recv_msgs(1) == [Down(ma1, PROCESS, p1, reason)]

    p2, ma2 = spawn(echo, "demonitor")
    beamlet.send(p2, ("alias", ma2))
    assert await recv_msgs(2) == [(ma2, 1), (ma2, 2)]
    beamlet.demonitor(ma2)
    m2 = beamlet.monitor(p2)
    beamlet.send(p2, (ma2, "continue"))
    assert await recv_msgs(1) == [Down(m2, PROCESS, p2, reason)]

    p3, ma3 = spawn(two, "demonitor")
    beamlet.send(p3, ("alias", ma3))
    assert await recv_msgs(3) == [(ma3, 1), (ma3, 2), Down(ma3, PROCESS, p3, reason)]
    p3_1, m3_1 = beamlet.spawn_monitor(send_34, ma3, reason)
    assert await recv_msgs(1) == [Down(m3_1, PROCESS, p3_1, reason)]

    p4, ma4 = spawn(silent, "reply_demonitor")
    beamlet.send(p4, ("alias", ma4))
    assert await recv_msgs(1) == [Down(ma4, PROCESS, p4, reason)]
    p4_1, m4_1 = beamlet.spawn_monitor(send_34, ma4, reason)
    assert await recv_msgs(1) == [Down(m4_1, PROCESS, p4_1, reason)]

    p5, ma5 = spawn(two, "reply_demonitor")
    m_5 = beamlet.monitor(p5)
    beamlet.send(p5, ("alias", ma5))
    assert await recv_msgs(2) == [(ma5, 1), Down(m_5, PROCESS, p5, reason)]


async def _alias_replier() -> None:
    _, a = await beamlet.receive(("alias", ANY))
    beamlet.send(a, ("alias_reply", a, beamlet.self()))


async def test_demonitor_aliasmonitor() -> None:
    """demonitor_aliasmonitor (§4.4): demonitor does not deactivate an explicit_unalias
    monitor alias; it keeps working for every sender (upstream also uses a remote one)."""
    lpid = beamlet.spawn(_alias_replier)
    rpid = beamlet.spawn(_alias_replier)
    am = beamlet.monitor(lpid, alias="explicit_unalias")
    assert beamlet.demonitor(am) is True
    beamlet.send(lpid, ("alias", am))
    await assert_receive(("alias_reply", am, lpid))
    beamlet.send(rpid, ("alias", am))
    await assert_receive(("alias_reply", am, rpid))
    beamlet.exit(lpid, KILL)
    assert beamlet.is_alive(lpid) is False
    assert beamlet.unalias(am) is True


async def test_down_aliasmonitor() -> None:
    """down_aliasmonitor (§4.4): the DOWN does not deactivate an explicit_unalias monitor
    alias either."""
    lpid = beamlet.spawn(_idle)
    rpid = beamlet.spawn(_alias_replier)
    am = beamlet.monitor(lpid, alias="explicit_unalias")
    beamlet.exit(lpid, "bye")
    assert await assert_receive(_down_of(am)) == Down(am, PROCESS, lpid, "bye")
    beamlet.send(rpid, ("alias", am))
    await assert_receive(("alias_reply", am, rpid))
    assert beamlet.unalias(am) is True


@pytest.mark.parametrize("tag_kind", ["immed", "ref"])
@pytest.mark.parametrize("reason_kind", ["normal", "ref"])
async def test_monitor_tag(tag_kind: str, reason_kind: str) -> None:
    """monitor_tag (§4.2, OTP 27 {tag, T}): the DOWN carries the custom tag, for a real
    exit, for noproc, and for a monitor set up at spawn time (Python: Down(..., tag=T)
    where Erlang puts T in place of 'DOWN')."""
    tag: Any = Atom("immed") if tag_kind == "immed" else beamlet.make_ref()
    reason: Any = NORMAL if reason_kind == "normal" else beamlet.make_ref()

    async def p1_fun() -> None:
        await beamlet.receive("go")
        beamlet.exit(reason)

    p1 = beamlet.spawn(p1_fun)
    m1 = beamlet.monitor(p1, tag=tag)
    beamlet.send(p1, "go")
    assert await recv_msgs(1) == [Down(m1, PROCESS, p1, reason, tag)]
    m1_2 = beamlet.monitor(p1, tag=tag)
    assert await recv_msgs(1) == [Down(m1_2, PROCESS, p1, NOPROC, tag)]

    async def p2_fun() -> None:
        beamlet.exit(reason)

    p2 = beamlet.spawn(p2_fun)
    m2 = beamlet.monitor(p2, tag=tag)  # before p2 runs: a spawn-time monitor
    assert await recv_msgs(1) == [Down(m2, PROCESS, p2, reason, tag)]
