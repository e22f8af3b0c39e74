"""Port of erts/emulator/test/signal_SUITE.erl (docs/semantics.md §12.1): xm_sig_order,
kill2killed, unlink_exit, monitor_order, monitor_named_order_local,
simultaneous_signals_*, and the older pending_exit_* / exit_before_pending_exit cases.

The BEAM handles a signal when the receiver next looks at its signal queue, so a process
can run on for a while with a "pending" exit. The library decides an exit signal when it
is sent (§3.8): the receiver is dead at once (§1.1.4) and, if it was not running, is
unwound at its next await; whatever it tries after that (send, link, process_flag,
receive) is refused. The pending_exit_* ports check that observable contract: the pending
signal's reason wins and the victim cannot escape it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import beamlet
from beamlet import (
    ANY,
    KILL,
    KILLED,
    NOPROC,
    NORMAL,
    Atom,
    Down,
    Exit,
    Pid,
    Terminated,
)
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")


async def _idle() -> None:
    await beamlet.receive()


def _is_down(ref: beamlet.Ref) -> Any:
    return lambda m: isinstance(m, Down) and m.ref == ref


# --- xm_sig_order (§0.3, §3.5) -----------------------------------------------------------


async def _xm_sig_order_proc() -> None:
    while True:
        m = await beamlet.receive("may_not_reach", "may_reach", timeout=0, default=None)
        if m == "may_not_reach":
            beamlet.exit("bad_signal_order")
        if m is None:
            await asyncio.sleep(0)  # sleep-ok: erlang:yield()


async def test_xm_sig_order() -> None:
    """xm_sig_order (§0.3, §3.5): messages sent after an exit signal never reach the
    victim; the DOWN carries the signal's reason."""
    for _ in range(300):
        p = beamlet.spawn(_xm_sig_order_proc)
        m = beamlet.monitor(p)
        for _ in range(3):
            beamlet.send(p, "may_reach")
        beamlet.exit(p, "good_signal_order")
        for _ in range(3):
            beamlet.send(p, "may_not_reach")
        assert await assert_receive(_is_down(m)) == Down(m, PROCESS, p, "good_signal_order")


async def test_xm_sig_order_running_victim() -> None:
    """xm_sig_order, with the victim scheduled in between: the order holds whether the
    victim is parked in receive or runnable when the signal arrives."""
    for i in range(100):
        p = beamlet.spawn(_xm_sig_order_proc)
        m = beamlet.monitor(p)
        for _ in range(3):
            beamlet.send(p, "may_reach")
        for _ in range(i % 3):
            await asyncio.sleep(0)  # sleep-ok: the sleep is what is tested, or a yield
        beamlet.exit(p, "good_signal_order")
        for _ in range(3):
            beamlet.send(p, "may_not_reach")
        down = await assert_receive(_is_down(m))
        assert down.reason == "good_signal_order"


# --- kill2killed (§3.3 E4/E5/E6) ---------------------------------------------------------


async def _spawn_link_line(kind: str, n: int, tester: Pid) -> None:
    if n == 0:
        if kind == "other_exit2":
            beamlet.send(tester, ("end_of_line", beamlet.self()))
            await beamlet.receive()
        elif kind == "exit1":
            beamlet.exit(KILL)
        else:  # exit2
            beamlet.exit(beamlet.self(), KILL)
        return
    beamlet.spawn_link(_spawn_link_line, kind, n - 1, tester)
    await beamlet.receive()


async def _check_exit(kind: str, n: int) -> None:
    tester = beamlet.self()
    p = beamlet.spawn_link(_spawn_link_line, kind, n, tester)
    if kind == "other_exit2":
        _, eol = await assert_receive(("end_of_line", ANY))
        beamlet.exit(eol, KILL)
    msg = await assert_receive(lambda m: isinstance(m, Exit) and m.pid == p)
    # exit(kill) is an ordinary reason through links (E5); exit/2 with kill gives killed,
    # which then travels as an ordinary reason (E4, E6).
    assert msg.reason == (KILL if kind == "exit1" else KILLED), (kind, n, msg)


async def test_kill2killed() -> None:
    """kill2killed (§3.3): along a chain of linked processes, `killed` (from exit/2 with
    kill, by another process or by itself) and `kill` (from exit(kill)) propagate
    unchanged to the trapping tester."""
    beamlet.process_flag(trap_exit=True)
    for kind in ("other_exit2", "exit2", "exit1"):
        for n in (1, 2, 9, 10):
            await _check_exit(kind, n)


# --- unlink_exit (§3.7) ------------------------------------------------------------------


async def _unlink_exit_test() -> None:
    tester = beamlet.self()

    async def child_fun() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(tester, ("child", beamlet.self()))
        _, _, parent = await beamlet.receive(("tester_parent", tester, ANY))
        beamlet.send(parent, ("go", beamlet.self()))
        await beamlet.receive(("go", parent))
        is_alive = beamlet.is_alive(parent)
        beamlet.link(parent)  # trapping: never raises, noproc comes as a message (§3.6)
        msg = await beamlet.receive(
            lambda m: isinstance(m, Exit) and m.pid == parent, timeout=1, default=None
        )
        if msg is None:
            beamlet.exit("missing_exit")
        if not is_alive and msg.reason != NOPROC:
            beamlet.exit(("not_alive_unexpected_exit_reason", msg.reason))
        if msg.reason not in (NOPROC, "bye"):
            beamlet.exit(("alive_unexpected_exit_reason", msg.reason))
        beamlet.exit("ok")

    async def parent_fun() -> None:
        child = beamlet.spawn_link(child_fun)
        await beamlet.receive(("go", child))
        beamlet.unlink(child)
        beamlet.send(child, ("go", beamlet.self()))
        beamlet.exit("bye")

    parent, pmon = beamlet.spawn_monitor(parent_fun)
    _, child = await assert_receive(("child", ANY))
    cmon = beamlet.monitor(child)
    beamlet.send(child, ("tester_parent", tester, parent))
    assert (await assert_receive(_is_down(pmon))).reason == "bye"
    assert (await assert_receive(_is_down(cmon))).reason == "ok"


async def test_unlink_exit() -> None:
    """unlink_exit (OTP-18177, §3.7): B unlinks A and exits while A re-links to B. A must
    see noproc if B was already dead when it linked, else noproc or B's real reason,
    but never B's reason through the old, removed link."""
    for _ in range(200):
        await _unlink_exit_test()


# --- monitor_order, monitor_named_order_local (§0.3, §3.5, §4.2) --------------------------


async def test_monitor_order() -> None:
    """monitor_order (§3.5, §4.2): the DOWN never overtakes messages the monitored process
    sent before exiting."""
    me = beamlet.self()
    for _ in range(10):

        async def child() -> None:
            mref = await beamlet.receive()
            beamlet.send(me, (beamlet.self(), mref, "first"))
            beamlet.send(me, (beamlet.self(), mref, "second"))
            beamlet.exit(NORMAL)

        pid, mref = beamlet.spawn_monitor(child)
        beamlet.send(pid, mref)
        m = await assert_receive(_is_down(mref), (pid, mref, "second"))
        assert not isinstance(m, Down), "Down signal arrived before second message!"
        await assert_receive((pid, mref, "first"))
        beamlet.demonitor(mref, flush=True)


async def _named_order_sender(pid: Pid, name: Any, alias_a: beamlet.Ref, num_msg: int) -> None:
    """Upstream send_msg_seq: num_msg..1, cycling through pid, name, alias, monitor alias."""
    beamlet.register("monitor_named_order", beamlet.self())
    beamlet.send(pid, (beamlet.self(), "ready"))
    _, alias_m = await beamlet.receive(("go", ANY))
    dests = [pid, name, alias_a, alias_m]
    for i in range(num_msg, 0, -1):
        beamlet.send(dests[(num_msg - i) % 4], i)
    beamlet.exit(NORMAL)


async def test_monitor_named_order_local() -> None:
    """monitor_named_order_local (§0.3, §2.1, §4.1, §4.4): messages sent by one process
    through a pid, a {Name, Node} tuple, an alias and a monitor alias all arrive in send
    order, followed by the DOWN of the name monitor, whose object is {Name, Node}."""
    node = beamlet.node_name()
    for n in range(20):
        pid = beamlet.self()
        beamlet.register("tester", pid)
        name = ("tester", node)
        alias_a = beamlet.alias()
        num_msg = 200 + n

        s = beamlet.spawn_link(_named_order_sender, pid, name, alias_a, num_msg)
        await assert_receive((s, "ready"))
        alias_m = beamlet.monitor("monitor_named_order", alias="explicit_unalias")
        beamlet.send(s, ("go", alias_m))
        for i in range(num_msg, 0, -1):
            assert await assert_receive() == i
        assert await assert_receive() == Down(
            alias_m, PROCESS, (Atom("monitor_named_order"), node), NORMAL
        )
        beamlet.unregister("tester")
        assert beamlet.unalias(alias_a) is True
        assert beamlet.unalias(alias_m) is True  # explicit_unalias: survives the DOWN


# --- simultaneous_signals_* (§0.3, §2.4, §3.3) -------------------------------------------

LITERAL = ("literal", 1)


async def _simultaneous_proc(recv_pairs: bool, n: int) -> None:
    if recv_pairs:  # drain the (N, N) pairs selectively, leaving the rest in order
        while (
            await beamlet.receive(
                lambda m: type(m) is tuple and len(m) == 2 and m[0] == m[1], timeout=0, default=None
            )
            is not None
        ):
            pass
    await beamlet.receive("check_literal_conversion")
    await beamlet.receive(LITERAL)
    rest = []
    while (m := await beamlet.receive(timeout=0, default=None)) is not None:
        rest.append(m)
    expected = [i if i % 100 else (i, i) for i in range(1, n + 1)]
    if recv_pairs:
        expected = [m for m in expected if type(m) is int]
    if rest != expected:
        beamlet.exit(("bad_mailbox", len(rest)))


async def _simultaneous_signals_test(recv_pairs: bool, do_exit: bool) -> None:
    n, n_procs = 1000, 40
    pms = [beamlet.spawn_monitor(_simultaneous_proc, recv_pairs, n) for _ in range(n_procs)]
    for p, _ in pms:
        beamlet.link(p)
    for p, _ in pms:
        for i in range(1, n + 1):
            beamlet.send(p, (i, i) if i % 100 == 0 else i)
        beamlet.send(p, LITERAL)
    exited = set()
    if do_exit:
        for k, (p, _) in enumerate(pms):
            if k % 10:
                beamlet.unlink(p)
                beamlet.exit(p, "terminated")
                exited.add(p)
    for p, _ in pms:
        beamlet.send(p, "check_literal_conversion")
    for p, m in pms:
        down = await assert_receive(_is_down(m), timeout=5)
        assert down.reason == ("terminated" if p in exited else NORMAL), down
        if p not in exited:
            beamlet.unlink(p)


async def test_simultaneous_signals_basic() -> None:
    """simultaneous_signals_basic: many processes with large mailboxes each get their
    messages in order and finish normally (the upstream literal-area/off-heap machinery
    has no Python analogue; the mailbox contents are checked instead)."""
    await _simultaneous_signals_test(recv_pairs=False, do_exit=False)


async def test_simultaneous_signals_recv() -> None:
    """simultaneous_signals_recv (§2.4): as basic, with a selective receive draining the
    pair messages first; the remaining messages keep their order."""
    await _simultaneous_signals_test(recv_pairs=True, do_exit=False)


async def test_simultaneous_signals_exit() -> None:
    """simultaneous_signals_exit (§3.3 E8): as basic, with 90% of the processes killed
    with `terminated` while their mailboxes are full; each DOWN has the right reason."""
    await _simultaneous_signals_test(recv_pairs=False, do_exit=True)


async def test_simultaneous_signals_recv_exit() -> None:
    """simultaneous_signals_recv_exit: recv and exit combined."""
    await _simultaneous_signals_test(recv_pairs=True, do_exit=True)


# --- pending_exit_* and exit_before_pending_exit (§1.1.4, §3.8) ---------------------------


async def test_pending_exit_is_process_alive() -> None:
    """pending_exit_is_process_alive (§1.1.4): right after exit/2 returns, the victim is
    not alive, even if it has not been scheduled since (and process_info is undefined,
    as pending_exit_process_info_1 checks)."""
    for i in range(100):
        p = beamlet.spawn(_idle)
        if i % 2:
            await asyncio.sleep(0)  # sleep-ok: half of them parked in receive, half never started
        beamlet.exit(p, "exit_by_signal")
        assert beamlet.is_alive(p) is False
        assert beamlet.process_info(p) is None


async def _pending_exit_test(kind: str) -> None:
    """Upstream pending_exit_test/2: the victim has a pending exit signal (from the test
    process) when it tries to escape it with `kind`; it must still die with the signal's
    reason. Here the signal arrives while the victim is runnable (woken by "go" but not
    yet scheduled); it then runs only as a dead process unwinding, and its attempts are
    refused (§3.8)."""
    beamlet.process_flag(trap_exit=True)
    master = beamlet.self()
    ref = beamlet.make_ref()

    async def victim() -> None:
        try:
            await beamlet.receive("go")
        except BaseException:
            pass  # keep running after the death, to try to escape it
        try:
            if kind == "unlink":
                beamlet.unlink(master)
            elif kind == "trap_exit":
                beamlet.process_flag(trap_exit=True)
            else:
                await beamlet.receive(timeout=0, default=None)
        except Terminated:
            pass
        try:
            beamlet.send(master, (beamlet.self(), ref, kind))
        except Terminated:
            pass
        beamlet.exit("exit_by_myself")

    pid = beamlet.spawn_link(victim)
    mon = beamlet.monitor(pid)
    await asyncio.sleep(0)  # sleep-ok: the victim parks in receive("go")
    beamlet.send(pid, "go")  # now runnable, not yet running
    beamlet.exit(pid, "exit_by_signal")
    assert (await assert_receive(_is_down(mon))).reason == "exit_by_signal"
    assert await assert_receive(Exit) == Exit(pid, "exit_by_signal")
    # Upstream also receives {Pid, Ref, Type}: the BEAM lets the victim run until it
    # handles the signal. Here the victim was dead before it ran again, so its message
    # is refused (§3.8); nothing from it may arrive.
    await refute_receive((pid, ref, kind), timeout=0.05)


async def test_pending_exit_trap_exit() -> None:
    """pending_exit_trap_exit (§3.4, §3.8): turning on trap_exit after the fatal signal
    arrived does not turn it into a message."""
    await _pending_exit_test("trap_exit")


async def test_pending_exit_receive() -> None:
    """pending_exit_receive (§3.8): a receive after the fatal signal arrived does not let
    the victim continue."""
    await _pending_exit_test("receive")


async def test_pending_exit_unlink_process() -> None:
    """pending_exit_unlink_process (§3.7.5): unlinking the sender does not cancel an
    exit/2 signal that already arrived."""
    await _pending_exit_test("unlink")


async def test_exit_before_pending_exit() -> None:
    """exit_before_pending_exit: a process that exits by itself before the exit signal
    it provoked is handled ends with its own reason; the late signal finds it dead and is
    a no-op. (Single-threaded: the exiter only runs once the tester has already exited.)"""
    beamlet.process_flag(trap_exit=True)
    master = beamlet.self()

    async def tester() -> None:
        p = beamlet.self()

        async def exiter() -> None:
            _, target, reason = await beamlet.receive(("exit_me", p, ANY))
            beamlet.exit(target, reason)

        ex = beamlet.spawn(exiter)
        await asyncio.sleep(0)  # sleep-ok: erlang:yield()
        beamlet.send(ex, ("exit_me", p, "exited_by_exiter"))
        sum(range(10_000))  # work without yielding ...
        beamlet.send(master, (p, "pending_exit", not beamlet.is_alive(p)))
        beamlet.exit("exited_by_myself")  # ... then exit

    t = beamlet.spawn_link(tester)
    _, _, pending = await assert_receive((t, "pending_exit", ANY))
    assert pending is False
    assert await assert_receive() == Exit(t, "exited_by_myself")
    await refute_receive(ANY, timeout=0.05)
