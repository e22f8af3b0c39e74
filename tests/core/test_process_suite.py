"""Port of erts/emulator/test/process_SUITE.erl (docs/semantics.md §12.1): group t_exit_2,
t_exit_1, trap_exit_badarg(_in_bif), bad_register, process_flag_badarg, and the
spawn_request group mapped onto spawn_link / spawn_monitor.

Test names are the upstream case names. Python differences are noted where they occur:
`exit(pid, reason)` returns None (Erlang: true); an uncaught exception ends a process with
`Crash(exception, stacktrace)` (Erlang: {E, Stack}); `badarg` is `BadArgument` (a
`TypeError`), a bad name in `send` is `NotRegistered`.
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
    KILLED,
    NORMAL,
    Atom,
    BadArgument,
    Crash,
    Down,
    Exit,
    NotRegistered,
    Pid,
    Terminated,
)
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")


async def _idle() -> None:
    await beamlet.receive()


def eight_kb() -> tuple[Any, ...]:
    """A large, nested exit reason (the upstream `eight_kb()`): bytes, lists, tuples."""
    b64 = tuple(range(1, 65))
    big = bytes(range(256)) * 16
    b512 = (b"\x01", b64, b"\x02\x03", b64, b"\x04\x05\x06", b64, list(range(6)), b64, b64, big)
    return tuple((b512, b512) for _ in range(8))


def kb_128() -> tuple[Any, ...]:
    e = eight_kb()
    big = bytes(range(256)) * 64
    return (big, *([e] * 8), big, *([e] * 8), big)


# --- t_exit_1 and group t_exit_2 (§1.4, §3.3) -----------------------------------------


async def test_t_exit_1() -> None:
    """t_exit_1 (§1.4, §3.1.4): exit(R) with a big R reaches a trapping linked process
    as {'EXIT', Pid, R} with R intact."""
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        beamlet.exit(kb_128())

    for _ in range(10):
        pid = beamlet.spawn_link(child)
        assert await assert_receive(Exit) == Exit(pid, kb_128())


async def test_t_exit_2_other() -> None:
    """t_exit_2_other (§3.3 E8): exit(Pid, Big) kills a non-trapping process; its link
    carries Big back to the trapping parent."""
    beamlet.process_flag(trap_exit=True)
    for _ in range(10):
        pid = beamlet.spawn_link(_idle)
        garbage = kb_128()
        beamlet.exit(pid, garbage)
        assert await assert_receive(Exit) == Exit(pid, garbage)


async def test_t_exit_2_other_normal() -> None:
    """t_exit_2_other_normal (§3.3 E2): exit(Pid, normal) does not kill another process."""
    beamlet.process_flag(trap_exit=True)
    pid = beamlet.spawn_link(_idle)
    beamlet.exit(pid, NORMAL)
    await refute_receive(Exit, timeout=0.1)  # upstream waits 1000 ms
    assert beamlet.process_info(pid) is not None
    beamlet.exit(pid, KILL)
    assert await assert_receive(Exit) == Exit(pid, KILLED)


async def test_self_exit() -> None:
    """self_exit (§3.3 E9, trapping): exit(self(), X) while trapping gives the message
    {'EXIT', self(), X}."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    for _ in range(200):
        garbage = eight_kb()
        assert beamlet.exit(me, garbage) is None  # Erlang: true
        assert await beamlet.receive(Exit, timeout=1) == Exit(me, garbage)


async def test_normal_suicide_exit() -> None:
    """normal_suicide_exit (§3.3 E3): exit(self(), normal) ends a non-trapping process
    with reason normal; nothing after the call runs."""
    beamlet.process_flag(trap_exit=True)
    test = beamlet.self()

    async def child() -> None:
        beamlet.exit(beamlet.self(), NORMAL)
        beamlet.send(test, "still running")

    pid = beamlet.spawn_link(child)
    assert await assert_receive() == Exit(pid, NORMAL)  # the very next message


async def test_abnormal_suicide_exit() -> None:
    """abnormal_suicide_exit (§3.3 E9): exit(self(), Term) is exit(Term) for a
    non-trapping process."""
    garbage = eight_kb()
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        beamlet.exit(beamlet.self(), garbage)

    pid = beamlet.spawn_link(child)
    assert await assert_receive() == Exit(pid, garbage)


async def test_t_exit_2_catch() -> None:
    """t_exit_2_catch (§3.3 E9): exit(self(), die) is a signal, so `catch` cannot stop it.
    Python: `try/except BaseException` around the call is Erlang's `catch`; the process
    still ends with `die`, not `normal`."""
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        try:
            beamlet.exit(beamlet.self(), "die")
        except BaseException:
            pass  # the coroutine then returns "normally": must not matter

    pid = beamlet.spawn_link(child)
    msg = await assert_receive()
    assert msg != Exit(pid, NORMAL), "catch worked"
    assert msg == Exit(pid, "die")


@pytest.mark.virtual_time
async def test_exit_and_timeout() -> None:
    """exit_and_timeout (§3.8): an exit signal sent to a process waiting in
    `receive ... after` ends it with that reason; the pending receive timer must not
    revive or confuse it. Upstream's 5 s busy loop in High is left out (a Python process
    cannot be preempted, §3.8)."""
    beamlet.process_flag(trap_exit=True)

    async def eat_low() -> None:
        await beamlet.sleep(2.5)
        await beamlet.receive(timeout=1.0, default=None)

    async def eat_high(low: Pid) -> None:
        await beamlet.sleep(1.0)
        beamlet.exit(low, ("you", "are", "dead"))

    low = beamlet.spawn_link(eat_low)
    high = beamlet.spawn_link(eat_high, low)
    got = {await assert_receive(Exit, timeout=10) for _ in range(2)}
    assert got == {Exit(low, ("you", "are", "dead")), Exit(high, NORMAL)}


async def test_exit_twice() -> None:
    """exit_twice (§3.3 summary): of two exit signals, the first decides the reason and
    the second is ignored."""
    beamlet.process_flag(trap_exit=True)

    async def etwice_high(low: Pid) -> None:
        beamlet.exit(low, "first")
        beamlet.exit(low, "second")

    low = beamlet.spawn_link(_idle)
    high = beamlet.spawn_link(etwice_high, low)
    got = {await assert_receive(Exit) for _ in range(2)}
    assert got == {Exit(low, "first"), Exit(high, NORMAL)}
    await refute_receive(Exit, timeout=0.05)


# --- trap_exit_badarg (§1.6) -------------------------------------------------------------


def bad_guy(arg: Any) -> Any:
    return abs(arg)  # TypeError: the Python analogue of abs/1's badarg


async def test_trap_exit_badarg() -> None:
    """trap_exit_badarg (§1.4, §1.6): an uncaught runtime error in a linked process reaches
    a trapping parent as {'EXIT', Pid, {badarg, Stack}}. Python: Crash(TypeError, stack);
    as upstream, the stack names the failing function (bad_guy). Only the shape of the
    stack is checked (§12.8)."""
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        bad_guy(kb_128())

    for _ in range(10):
        pid = beamlet.spawn_link(child)
        msg = await assert_receive(Exit)
        assert msg.pid == pid
        reason = msg.reason
        assert isinstance(reason, Crash) and isinstance(reason.exception, TypeError)
        assert isinstance(reason.stacktrace, tuple | list)
        assert "bad_guy" in [frame[1] for frame in reason.stacktrace]


async def test_trap_exit_badarg_in_bif() -> None:
    """trap_exit_badarg_in_bif (§1.3, §1.6): spawning a library function with a bad
    argument (Erlang: spawn_link(erlang, node, [1])) succeeds; the child fails with badarg.
    Python: `asyncio.sleep` given "x" fails with TypeError inside the child."""
    beamlet.process_flag(trap_exit=True)
    for _ in range(10):
        pid = beamlet.spawn_link(asyncio.sleep, "x")
        msg = await assert_receive(Exit)
        assert msg.pid == pid
        assert isinstance(msg.reason, Crash) and isinstance(msg.reason.exception, TypeError)


# --- bad_register, process_flag_badarg (§5, §3.4) -----------------------------------------


async def test_bad_register() -> None:
    """bad_register (§5): bad arguments to register/2 raise badarg (Python: BadArgument),
    and sending to the name then fails because it was not registered (Python:
    NotRegistered for an unregistered name, BadArgument for a non-name destination)."""
    name = "a_long_and_unused_name"
    with pytest.raises(BadArgument):
        beamlet.register(("bad", "name"), beamlet.self())  # type: ignore[arg-type]

    def fail_register(n: Any, process: Any) -> None:
        with pytest.raises(BadArgument):
            beamlet.register(n, process)
        with pytest.raises((NotRegistered, BadArgument)):
            beamlet.send(n, "anything_goes")

    fail_register("undefined", beamlet.self())
    fail_register(["bad", "name"], beamlet.self())
    dead, mref = beamlet.spawn_monitor(_quick)
    await assert_receive(Down(mref, PROCESS, dead, NORMAL))
    fail_register(name, dead)
    fail_register(name, beamlet.make_ref())
    fail_register(name, [])
    fail_register(name, ("bad", "process"))
    fail_register(name, b"")
    assert beamlet.whereis(name) is None
    assert Atom(name) not in beamlet.registered()


async def _quick() -> None:
    return None


async def test_process_flag_badarg() -> None:
    """process_flag_badarg (§3.4): bad flags or values raise badarg. Python: the only
    flag is the keyword `trap_exit` and it takes a bool; an unknown flag is a TypeError
    from Python itself, a non-bool value is BadArgument (a TypeError). The flag keeps its
    value after a failed call."""
    with pytest.raises(BadArgument):
        beamlet.process_flag(trap_exit="gurka")  # type: ignore[arg-type]
    with pytest.raises(BadArgument):
        beamlet.process_flag(trap_exit=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        beamlet.process_flag(gurka="banan")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        beamlet.process_flag(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        beamlet.process_flag()  # type: ignore[call-arg]
    assert beamlet.process_flag(trap_exit=False) is False  # unchanged by the failures


# --- group spawn_request, mapped to spawn_link / spawn_monitor (§1.3) --------------------


async def test_spawn_request_monitor_demonitor() -> None:
    """spawn_request_monitor_demonitor (§1.3, §4.3): the monitor made by spawn_monitor is
    a normal monitor: listed in process_info, removable with demonitor (True: it was
    active), after which the child's death is not reported. (Upstream blocks a remote
    node to test the in-flight case; only the local behaviour applies here.)"""
    pid, ref = beamlet.spawn_monitor(_idle)
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.monitors == (pid,)
    assert beamlet.demonitor(ref) is True
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.monitors == ()
    beamlet.exit(pid, KILL)
    await refute_receive(Down, timeout=0.05)


async def test_spawn_request_monitor_child_exit() -> None:
    """spawn_request_monitor_child_exit (§1.3): a child that fails at once still gives a
    DOWN with its real reason, never noproc. Upstream spawns a nonexisting function
    ({undef, _}); the Python analogue is a NameError on the child's first line."""
    for _ in range(20):
        pid, ref = beamlet.spawn_monitor(_undef_child)
        down = await assert_receive(Down)
        assert down.ref == ref and down.pid == pid
        assert isinstance(down.reason, Crash) and isinstance(down.reason.exception, NameError)


async def _undef_child() -> None:
    nonexisting_module.nonexisting_function()  # type: ignore[name-defined]  # noqa: F821


async def test_spawn_request_link_child_exit() -> None:
    """spawn_request_link_child_exit (§1.3): the link exists before the child runs, so a
    child that fails at once reaches a trapping parent as {'EXIT', Pid, {undef, _}}."""
    beamlet.process_flag(trap_exit=True)
    for _ in range(20):
        pid = beamlet.spawn_link(_undef_child)
        msg = await assert_receive(Exit)
        assert msg.pid == pid
        assert isinstance(msg.reason, Crash) and isinstance(msg.reason.exception, NameError)


async def _exit_child(tester: Pid) -> None:
    """Upstream spawn_request_test_exit_child: a trapping watcher linked to the child
    reports the reason the child died with."""
    child = beamlet.self()

    async def watcher() -> None:
        beamlet.process_flag(trap_exit=True)
        msg = await beamlet.receive(Exit)
        beamlet.send(tester, ("parent_exit", msg.pid == child, msg.reason))

    beamlet.spawn_link(watcher)
    await beamlet.receive()


async def _link_parent_exit(reason: Any) -> None:
    tester = beamlet.self()
    n = 200

    async def parent(wait: int) -> None:
        child = beamlet.spawn_link(_exit_child, tester)
        beamlet.send(tester, ("child", beamlet.self(), child))
        for _ in range(wait):
            await asyncio.sleep(0)  # sleep-ok: let the child (and its watcher) get some way first
        beamlet.exit(reason)

    parents = {beamlet.spawn_monitor(parent, i % 4)[0] for i in range(n)}
    children = []
    for _ in range(n):
        down = await assert_receive(Down, timeout=2)
        assert down.pid in parents and down.reason == reason
    for _ in range(n):
        children.append((await assert_receive(("child", ANY, ANY)))[2])
    # No child may survive its parent (upstream: no process still runs the child code):
    # monitoring each gives a DOWN, with the parent's reason or noproc if already gone.
    for child in children:
        ref = beamlet.monitor(child)
        down = await assert_receive(lambda m, ref=ref: isinstance(m, Down) and m.ref == ref)
        assert down.pid == child and down.reason in (reason, beamlet.NOPROC)
    # Every watcher that got to run reports the parent's reason, and nothing else.
    reports = []
    while (
        m := await beamlet.receive(("parent_exit", ANY, ANY), timeout=0.05, default=None)
    ) is not None:
        reports.append(m)
    assert reports, "no child got far enough to start its watcher"
    assert all(ok and r == reason for _, ok, r in reports)


async def test_spawn_request_link_parent_exit() -> None:
    """spawn_request_link_parent_exit (§1.3, §3.1.4): a parent that exits right after
    spawn_link kills the child with its reason, however early it exits: the link exists
    before the child runs. Every one of the children reports `kaboom`."""
    await _link_parent_exit(Atom("kaboom"))


async def test_spawn_request_link_parent_exit_compound_reason() -> None:
    """spawn_request_link_parent_exit_compound_reason: as above with a compound reason
    (upstream: the string "kaboom")."""
    await _link_parent_exit(("kaboom", "compound", [1, 2, 3]))


async def test_spawn_monitor_immediate_exit_reason_not_noproc() -> None:
    """§1.3 (spawn_request_* group): spawn_monitor of a child that returns at once gives
    DOWN normal, and one that exits at once gives its reason, never noproc."""

    async def exits(reason: Any) -> None:
        beamlet.exit(reason)

    for reason in (NORMAL, Atom("hej"), ("exit", ("test", 1)), pickle.dumps("x")):
        pid, ref = beamlet.spawn_monitor(exits, reason)
        assert await assert_receive(Down) == Down(ref, PROCESS, pid, reason)


async def test_spawn_link_child_sees_link_before_running() -> None:
    """§1.3: the spawn link is already in place (both sides) when the child runs its
    first instruction."""
    test = beamlet.self()

    async def child() -> None:
        info = beamlet.process_info(beamlet.self())
        assert info is not None
        beamlet.send(test, ("links", info.links))
        await beamlet.receive()

    pid = beamlet.spawn_link(child)
    assert await assert_receive(("links", ANY)) == ("links", (test,))
    info = beamlet.process_info(test)
    assert info is not None and pid in info.links


async def test_dead_process_side_effects_are_refused() -> None:
    """§3.8: a process that catches the exit of its death and keeps going cannot send,
    link or receive any more: every runtime call raises (Terminated)."""
    test = beamlet.self()

    async def stubborn() -> None:
        beamlet.send(test, "parked")
        try:
            await beamlet.receive()
        except BaseException:
            pass
        for call in (
            lambda: beamlet.send(test, "from the dead"),
            lambda: beamlet.process_flag(trap_exit=True),
            lambda: beamlet.spawn(_idle),
        ):
            try:
                call()
            except Terminated:
                pass

    pid = beamlet.spawn(stubborn)
    ref = beamlet.monitor(pid)
    await assert_receive("parked")  # it is now waiting in receive
    beamlet.exit(pid, "bye")
    assert await assert_receive(Down) == Down(ref, PROCESS, pid, "bye")
    await refute_receive("from the dead", timeout=0.05)
