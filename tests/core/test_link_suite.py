"""Port of erts/emulator/test/erl_link_SUITE.erl (docs/semantics.md §12.1): links,
process_monitors, otp_5772_link, otp_5772_monitor (the node-local halves; the dist_*
and busy_dist_port_* cases need a second node).

Upstream inspects the runtime's internal link and monitor tables; the Python port reads
the same facts from `process_info` (links, monitors, monitored_by). Python differences:
`link`/`unlink` return None (Erlang: true); `demonitor` returns True only if the monitor
was active (Erlang's demonitor/1 always returns true, demonitor/2 with `info` tells).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import beamlet
from beamlet import ANY, NOPROC, Atom, Down, Exit, Pid
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")


# --- the upstream test_proc helper: a process that runs closures on request --------------


async def tp_loop() -> None:
    """Upstream `test_proc/0`: runs `fn` for `tp_call`/`tp_cast`; `fn` may be a plain or
    an async function."""
    while True:
        match await beamlet.receive(("call", ANY, ANY, ANY), ("cast", ANY)):
            case ("call", frm, ref, fn):
                res = fn()
                if hasattr(res, "__await__"):
                    res = await res
                beamlet.send(frm, (ref, res))
            case ("cast", fn):
                res = fn()
                if hasattr(res, "__await__"):
                    await res


async def tp_call(tp: Pid, fn: Callable[[], Any]) -> Any:
    ref = beamlet.make_ref()
    beamlet.send(tp, ("call", beamlet.self(), ref, fn))
    _, res = await assert_receive((ref, ANY))
    return res


def tp_cast(tp: Pid, fn: Callable[[], Any]) -> None:
    beamlet.send(tp, ("cast", fn))


def _links(pid: Pid) -> tuple[Pid, ...]:
    info = beamlet.process_info(pid)
    return () if info is None else info.links


def check_link(a: Pid, b: Pid) -> None:
    assert b in _links(a) and a in _links(b)


def check_unlink(a: Pid, b: Pid) -> None:
    assert b not in _links(a) and a not in _links(b)


async def wait_dead(pid: Pid) -> Any:
    """Upstream wait_until(is_proc_dead): here, a monitor (§12.8)."""
    ref = beamlet.monitor(pid)
    down = await assert_receive(lambda m: isinstance(m, Down) and m.ref == ref)
    return down.reason


# --- links --------------------------------------------------------------------------------


async def test_links() -> None:
    """links (§3.1, §3.3, §3.7): link/unlink both ways, a trapping side receiving the
    other's exit, and a non-trapping side dying with it; link(self()) is a no-op."""
    tp1 = beamlet.spawn(tp_loop)
    check_unlink(tp1, beamlet.self())
    tp2 = await tp_call(tp1, lambda: beamlet.spawn_link(tp_loop))
    check_link(tp1, tp2)
    assert await tp_call(tp2, lambda: beamlet.unlink(tp1)) is None  # Erlang: true
    check_unlink(tp1, tp2)
    assert await tp_call(tp2, lambda: beamlet.link(tp1)) is None
    check_link(tp1, tp2)
    assert await tp_call(tp2, lambda: beamlet.process_flag(trap_exit=True)) is False

    def die() -> None:
        beamlet.exit("died")

    tp_cast(tp1, die)

    async def got_exit() -> bool:
        return await beamlet.receive(Exit(tp1, "died"), timeout=1) == Exit(tp1, "died")

    assert await tp_call(tp2, got_exit) is True
    check_unlink(tp1, tp2)
    tp3 = await tp_call(tp2, lambda: beamlet.spawn_link(tp_loop))
    check_link(tp3, tp2)
    tp_cast(tp2, die)
    assert await wait_dead(tp3) in ("died", NOPROC)
    check_unlink(tp3, tp2)

    me = beamlet.self()
    assert beamlet.link(me) is None
    assert me not in _links(me)
    assert beamlet.unlink(me) is None


async def test_links_are_not_counted() -> None:
    """§3.1.1 / §3.1.5: linking twice makes one link; one unlink removes it."""
    tp = beamlet.spawn(tp_loop)
    beamlet.link(tp)
    beamlet.link(tp)
    assert _links(beamlet.self()).count(tp) == 1
    beamlet.unlink(tp)
    check_unlink(tp, beamlet.self())
    beamlet.unlink(tp)  # unlinking an unlinked pid is fine (§3.6)


# --- process_monitors ---------------------------------------------------------------------


def _monitors(pid: Pid) -> tuple[Any, ...]:
    info = beamlet.process_info(pid)
    return () if info is None else info.monitors


def _monitored_by(pid: Pid) -> tuple[Pid, ...]:
    info = beamlet.process_info(pid)
    return () if info is None else info.monitored_by


async def _run_common_process_monitors(tp1: Pid, target: Any) -> None:
    tp2 = target if isinstance(target, Pid) else beamlet.whereis(target)
    assert tp2 is not None
    shown = target if isinstance(target, Pid) else (Atom(target), beamlet.node_name())

    r1 = await tp_call(tp1, lambda: beamlet.monitor(target))
    assert _monitors(tp1) == (shown,) and _monitored_by(tp2) == (tp1,)
    # The monitored side cannot remove the monitor with the watcher's ref.
    assert await tp_call(tp2, lambda: beamlet.demonitor(r1)) is False
    assert _monitors(tp1) == (shown,) and _monitored_by(tp2) == (tp1,)
    assert await tp_call(tp1, lambda: beamlet.demonitor(r1)) is True
    assert _monitors(tp1) == () and _monitored_by(tp2) == ()

    r2 = await tp_call(tp1, lambda: beamlet.monitor(target))
    assert _monitors(tp1) == (shown,) and _monitored_by(tp2) == (tp1,)

    def bye() -> None:
        beamlet.exit("bye")

    tp_cast(tp2, bye)
    await wait_dead(tp2)

    async def got_down(ref: beamlet.Ref, reason: Any) -> bool:
        d = await beamlet.receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=1)
        return bool(d == Down(ref, PROCESS, shown, reason))

    assert await tp_call(tp1, lambda: got_down(r2, "bye")) is True
    assert _monitors(tp1) == ()
    r3 = await tp_call(tp1, lambda: beamlet.monitor(target))
    assert await tp_call(tp1, lambda: got_down(r3, NOPROC)) is True
    assert _monitors(tp1) == ()

    def normal() -> None:
        beamlet.exit(beamlet.NORMAL)

    tp_cast(tp1, normal)
    await wait_dead(tp1)


async def test_process_monitors() -> None:
    """process_monitors (§4.1-§4.3): monitor by pid and by name, demonitor by the wrong
    side (no effect) and the right side, DOWN with the exit reason and with noproc;
    process_info shows each monitor on both sides exactly while it is active. Monitors
    on oneself (by pid or by name) never fire (§4.1.5)."""
    tp1 = beamlet.spawn(tp_loop)
    tp2 = beamlet.spawn(tp_loop)
    await _run_common_process_monitors(tp1, tp2)
    tp3 = beamlet.spawn(tp_loop)
    tp4 = beamlet.spawn(tp_loop)
    assert await tp_call(tp4, lambda: beamlet.register("common_process_monitors", tp4)) is None
    await _run_common_process_monitors(tp3, "common_process_monitors")

    mon1 = beamlet.monitor(beamlet.self())
    beamlet.register("process_monitors", beamlet.self())
    mon2 = beamlet.monitor("process_monitors")
    await refute_receive(Down, timeout=0.1)  # upstream: 500 ms
    beamlet.demonitor(mon1)
    beamlet.demonitor(mon2)
    beamlet.unregister("process_monitors")


async def test_process_monitors_self_monitor_is_not_recorded() -> None:
    """process_monitors: upstream asserts a monitor on self() leaves no monitor entry
    (find_erl_monitor(self(), Mon1) = []). Checked on OTP 25 with erl: process_info(self(),
    monitors) and monitored_by stay [] after monitor(process, self()) and after
    monitor(process, RegisteredNameOfSelf), and demonitor(Ref, [info]) returns false."""
    me = beamlet.self()
    ref = beamlet.monitor(me)
    assert _monitors(me) == () and _monitored_by(me) == ()
    assert beamlet.demonitor(ref) is False


# --- otp_5772_link, otp_5772_monitor (§3.7.4, §4.3) ---------------------------------------


async def test_otp_5772_link() -> None:
    """otp_5772_link (§3.7.4): after `unlink(P); receive {'EXIT', P, _} -> ok after 0 ->
    ok end`, no EXIT from P can arrive any more, even though P was just killed."""
    beamlet.process_flag(trap_exit=True)
    victims = set()
    for _ in range(50):
        tp1 = beamlet.spawn_link(tp_loop)
        beamlet.exit(tp1, "bang")
        beamlet.unlink(tp1)
        await beamlet.receive(
            lambda m, p=tp1: isinstance(m, Exit) and m.pid == p, timeout=0, default=None
        )
        victims.add(tp1)
    await refute_receive(lambda m: isinstance(m, Exit) and m.pid in victims, timeout=0.1)


async def test_otp_5772_monitor() -> None:
    """otp_5772_monitor (§4.3): after `demonitor(M); receive {'DOWN', M, ...} after 0`,
    no DOWN for M can arrive any more."""
    refs = set()
    for _ in range(50):
        tp1 = beamlet.spawn(tp_loop)
        m1 = beamlet.monitor(tp1)
        beamlet.exit(tp1, "bang")
        beamlet.demonitor(m1)
        await beamlet.receive(
            lambda m, r=m1: isinstance(m, Down) and m.ref == r, timeout=0, default=None
        )
        refs.add(m1)
    await refute_receive(lambda m: isinstance(m, Down) and m.ref in refs, timeout=0.1)


async def test_unlink_keeps_already_trapped_exit() -> None:
    """§3.7.4: an {'EXIT', P, _} message converted before unlink(P) stays in the mailbox
    (hence the flush idiom of otp_5772_link); unlink of the now-dead P is fine (§3.6)."""
    beamlet.process_flag(trap_exit=True)
    p = beamlet.spawn_link(tp_loop)
    beamlet.exit(p, "bang")
    beamlet.unlink(p)
    assert await beamlet.receive(Exit, timeout=0) == Exit(p, "bang")
    check_unlink(p, beamlet.self())
