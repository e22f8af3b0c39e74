"""The exit-signal truth table of docs/semantics.md §3.3, message ordering (§0.3, §3.5),
selective receive (§2.4) and the receive marker (`receive(..., since=ref)`, §2.4).

The table is generated: every combination of exit reason x origin (link / exit/2) x
sender (self / other) x trap_exit (false / true) that can happen is one parametrized case,
whose id names the §3.3 row it exercises (E1-E10). "link + self" cannot happen (linking
to oneself is a no-op, §3.1.2) and is therefore not generated.

How a case is observed, without sleeping: the receiver R forwards every message it gets to
the test, in order, and the test monitors R.

* exit/2 from another process S: S sends the exit signal and then the message "after" to
  R; by §0.3 R handles the signal before it sees "after", so everything R forwarded before
  "after" is exactly what the signal produced.
* link: R links to S and also monitors it; S then exits. R handles the link exit signal,
  then S's DOWN (§1.4 steps 4 and 5; also what the BEAM does, checked on OTP 25), so what R
  forwarded before S's DOWN is what the link signal produced.
* exit(self(), X): R reports "survived" right after the call if it is still running.

A death is always observed through the monitor (§12.8); because R's messages to the test
precede R's DOWN (§3.5), a poll with timeout 0 after the DOWN proves R sent nothing more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import beamlet
from beamlet import (
    ANY,
    KILL,
    KILLED,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    Atom,
    Crash,
    Down,
    Exit,
    NoProcError,
    Pid,
)
from beamlet.testing import assert_receive, refute_receive

# --------------------------------------------------------------------------------------
# §3.3 truth table
# --------------------------------------------------------------------------------------

REASONS: list[tuple[str, Any]] = [
    ("normal", NORMAL),
    ("kill", KILL),
    ("killed", KILLED),
    ("shutdown", SHUTDOWN),
    ("shutdown_tuple", (SHUTDOWN, "detail")),
    ("atom", Atom("foo")),
    ("compound", ("any", ["other", "term"], 42)),
    ("noproc_term", NOPROC),  # noproc as an ordinary reason sent with exit/2: E8/E9
]


@dataclass(frozen=True)
class Case:
    row: str
    label: str
    reason: Any
    origin: str  # "link" | "exit2"
    sender: str  # "self" | "other"
    trap: bool
    outcome: str  # "dies" | "msg" | "ignored"
    dies_with: Any = None

    @property
    def id(self) -> str:
        trap = "trap" if self.trap else "notrap"
        return f"{self.row}-{self.label}-{self.origin}-{self.sender}-{trap}"


def _row(reason: Any, origin: str, sender: str) -> str:
    """Which row of the §3.3 table a signal falls in."""
    if reason == KILL:
        return "E4" if origin == "exit2" else "E5"
    if reason == NORMAL:
        if origin == "link":
            return "E1"
        return "E2" if sender == "other" else "E3"
    if reason == SHUTDOWN or (type(reason) is tuple and reason[0] == SHUTDOWN):
        return "E7"
    if reason == KILLED and origin == "link":
        return "E6"
    return "E9" if sender == "self" else "E8"


def _expected(row: str, reason: Any, trap: bool) -> tuple[str, Any]:
    if row == "E4":
        return ("dies", KILLED)  # untrappable, both columns
    if trap:
        return ("msg", None)
    if row in ("E1", "E2"):
        return ("ignored", None)
    if row == "E3":
        return ("dies", NORMAL)
    return ("dies", reason)  # E5 (kill, unconverted), E6, E7, E8, E9


def _cases() -> list[Case]:
    out = []
    for label, reason in REASONS:
        for origin in ("link", "exit2"):
            for sender in ("other", "self"):
                if origin == "link" and sender == "self":
                    continue  # a process cannot be linked to itself (§3.1.2)
                for trap in (False, True):
                    row = _row(reason, origin, sender)
                    outcome, dies_with = _expected(row, reason, trap)
                    out.append(Case(row, label, reason, origin, sender, trap, outcome, dies_with))
    return out


CASES = _cases()


def test_truth_table_covers_every_row() -> None:
    """§3.3: the generated table exercises rows E1-E9 in both trap_exit columns (E10, the
    link/1-to-a-dead-pid row, is tested separately below)."""
    seen = {(c.row, c.trap) for c in CASES}
    for row in ("E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"):
        assert (row, False) in seen and (row, True) in seen, row


async def _link_sender(reason: Any) -> None:
    """Linked S: exits with `reason` when told; for `killed` the test kills it instead."""
    await beamlet.receive("go")
    beamlet.exit(reason)


async def _exit2_sender(target: Pid, reason: Any) -> None:
    """S for exit/2: signal, then a message on the same (S, R) pair (§0.3)."""
    await beamlet.receive("go")
    beamlet.exit(target, reason)
    beamlet.send(target, "after")
    await beamlet.receive()  # stay alive: S's own death must not be a factor


async def _receiver(test: Pid, case: Case) -> None:
    beamlet.process_flag(trap_exit=case.trap)
    me = beamlet.self()
    if case.origin == "link":
        s = beamlet.spawn_link(_link_sender, case.reason)
        beamlet.monitor(s)
    elif case.sender == "other":
        s = beamlet.spawn(_exit2_sender, me, case.reason)
    else:
        s = me
    beamlet.send(test, ("ready", me, s))
    if case.sender == "self":
        await beamlet.receive("go")
        beamlet.exit(me, case.reason)  # raises (Terminated) if the signal killed us
        beamlet.send(test, ("survived", me))
    while True:
        beamlet.send(test, ("got", me, await beamlet.receive()))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_exit_signal_truth_table(case: Case) -> None:
    """§3.3 rows E1-E9 (and its summary rules), one cell per case; see the module
    docstring for how each outcome is observed."""
    test = beamlet.self()
    r = beamlet.spawn(_receiver, test, case)
    mon = beamlet.monitor(r)
    _, _, s = await assert_receive(("ready", r, ANY))

    if case.origin == "link" and case.reason == KILLED:
        beamlet.exit(s, KILL)  # E6: S is really killed, its link reason is `killed`
    else:
        beamlet.send(s if case.sender == "other" else r, "go")

    if case.outcome == "dies":
        down = await assert_receive(Down)
        assert down.ref == mon and down.pid == r
        assert down.reason == case.dies_with
        assert not beamlet.is_alive(r)
        # Everything R sent precedes its DOWN (§3.5): it never survived the signal.
        assert (
            await beamlet.receive(("survived", r), ("got", r, "after"), timeout=0, default=None)
            is None
        )
        return

    # R survives: collect what it forwarded up to the synchronisation point.
    if case.sender == "self":
        await assert_receive(("survived", r))
        sync = None
    elif case.origin == "exit2":
        sync = "after"
    else:
        sync = "down_of_s"
    got = []
    while sync is not None:
        _, _, m = await assert_receive(("got", r, ANY))
        if (sync == "after" and m == "after") or (
            sync == "down_of_s" and isinstance(m, Down) and m.pid == s
        ):
            if sync == "down_of_s":
                assert m.reason == case.reason  # S really ended with that reason
            break
        got.append(m)

    if case.sender == "self":
        # E3/E9 with trap_exit: the signal became {'EXIT', R, X} in R's own mailbox.
        assert case.outcome == "msg"
        _, _, m = await assert_receive(("got", r, ANY))
        assert m == Exit(r, case.reason)
    elif case.outcome == "msg":
        assert got == [Exit(s, case.reason)]
    else:
        assert got == []  # E1/E2: ignored, not even a message
    assert beamlet.is_alive(r)
    info = beamlet.process_info(r)
    assert info is not None and s not in info.links  # the link is gone either way (§3.1.4)
    beamlet.exit(r, KILL)
    assert (await assert_receive(Down)).reason == KILLED


# --- E10: link/1 to a pid that does not exist (§3.6) -----------------------------------


async def _idle() -> None:
    await beamlet.receive()


async def _dead_pid() -> Pid:
    async def quick() -> None:
        return None

    pid, ref = beamlet.spawn_monitor(quick)
    await assert_receive(Down(ref, beamlet.Atom("process"), pid, NORMAL))
    return pid


async def test_E10_link_dead_pid_notrap_raises_noproc() -> None:
    """§3.3 E10 / §3.6, trap_exit = false: link/1 raises noproc (Python: NoProcError), a
    catchable error; the caller keeps running and gets no message."""
    dead = await _dead_pid()
    with pytest.raises(NoProcError):
        beamlet.link(dead)
    info = beamlet.process_info(beamlet.self())
    assert info is not None and dead not in info.links
    await refute_receive(ANY, timeout=0.05)


async def test_E10_link_dead_pid_notrap_uncaught_kills_caller() -> None:
    """§3.6: left uncaught, the noproc error ends the caller like any error: reason
    {noproc, Stack} (Python: Crash(NoProcError, stack))."""
    dead = await _dead_pid()

    async def linker() -> None:
        beamlet.link(dead)

    pid, ref = beamlet.spawn_monitor(linker)
    down = await assert_receive(Down)
    assert down.ref == ref and down.pid == pid
    assert isinstance(down.reason, Crash) and isinstance(down.reason.exception, NoProcError)


async def test_E10_link_dead_pid_trap_gets_exit_noproc() -> None:
    """§3.3 E10 / §3.6, trap_exit = true: link/1 returns and {'EXIT', Target, noproc}
    is delivered."""
    dead = await _dead_pid()
    beamlet.process_flag(trap_exit=True)
    assert beamlet.link(dead) is None  # Python: returns None where Erlang returns true
    assert await assert_receive(Exit) == Exit(dead, NOPROC)


async def test_link_to_self_is_a_noop() -> None:
    """§3.1.2: link(self()) is a no-op; this is why the table has no link+self cells."""
    beamlet.process_flag(trap_exit=True)
    beamlet.link(beamlet.self())
    info = beamlet.process_info(beamlet.self())
    assert info is not None and beamlet.self() not in info.links
    beamlet.unlink(beamlet.self())


async def test_repeated_fatal_signals_first_one_wins() -> None:
    """§3.3 summary: the first fatal signal handled decides the reason; later ones are
    ignored (process_SUITE exit_twice)."""
    pid = beamlet.spawn(_idle)
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, "first")
    beamlet.exit(pid, KILL)
    beamlet.exit(pid, "third")
    assert await assert_receive(Down) == Down(ref, Atom("process"), pid, "first")


async def test_trap_exit_flag_applies_to_signals_handled_after_the_call() -> None:
    """§3.4: process_flag returns the previous value; EXIT messages already queued stay
    queued as ordinary messages when trapping is switched off."""
    assert beamlet.process_flag(trap_exit=True) is False
    pid = beamlet.spawn_link(_idle)
    beamlet.exit(pid, "boom")  # pid dies, its link signal becomes a message here
    assert beamlet.process_flag(trap_exit=False) is True
    assert await assert_receive(Exit) == Exit(pid, "boom")  # still there, we are alive
    assert beamlet.process_flag(trap_exit=False) is False


# --------------------------------------------------------------------------------------
# §0.3 ordering per (sender, receiver) pair, and §3.5 signals vs messages
# --------------------------------------------------------------------------------------


async def test_message_order_is_kept_per_sender_pair() -> None:
    """§0.3 / §2.3: messages from one sender arrive in send order; no order is assumed
    between different senders (only each sender's subsequence is checked)."""
    n_senders, n = 8, 300
    test = beamlet.self()

    async def sender(k: int) -> None:
        for i in range(n):
            beamlet.send(test, (k, i))
            if i % (k + 1) == 0:
                await asyncio.sleep(0)  # sleep-ok: a yield, to interleave the senders

    for k in range(n_senders):
        beamlet.spawn(sender, k)
    seen: dict[int, list[int]] = {k: [] for k in range(n_senders)}
    for _ in range(n_senders * n):
        k, i = await assert_receive((ANY, ANY))
        seen[k].append(i)
    assert all(seen[k] == list(range(n)) for k in range(n_senders))


async def test_message_order_per_pair_with_selective_receive_per_sender() -> None:
    """§0.3: receiving one sender's messages selectively still yields them in that
    sender's order, whatever the interleaving with other senders."""
    test = beamlet.self()

    async def sender(tag: str) -> None:
        for i in range(100):
            beamlet.send(test, (tag, i))
            await asyncio.sleep(0)  # sleep-ok: the sleep is what is tested, or a yield

    beamlet.spawn(sender, "a")
    beamlet.spawn(sender, "b")
    assert [(await assert_receive(("b", ANY)))[1] for _ in range(100)] == list(range(100))
    assert [(await assert_receive(("a", ANY)))[1] for _ in range(100)] == list(range(100))


async def test_exit_signal_is_ordered_with_messages_of_the_same_sender_trapped() -> None:
    """§3.5: S sends M1, M2, exit(R, X), M3 to a trapping R: R's mailbox order is
    M1, M2, {'EXIT', S, X}, M3."""
    test = beamlet.self()

    async def r() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(test, "trapping")
        msgs = [await beamlet.receive() for _ in range(4)]
        beamlet.send(test, ("msgs", msgs))

    rp = beamlet.spawn(r)
    await assert_receive("trapping")
    beamlet.send(rp, "m1")
    beamlet.send(rp, "m2")
    beamlet.exit(rp, "x")
    beamlet.send(rp, "m3")
    assert await assert_receive(("msgs", ANY)) == (
        "msgs",
        ["m1", "m2", Exit(test, "x"), "m3"],
    )


async def test_exit_signal_is_ordered_with_messages_not_trapped() -> None:
    """§3.5 (signal_SUITE xm_sig_order): a non-trapping R never observes a message its
    killer sent after the exit signal."""
    test = beamlet.self()

    async def r() -> None:
        while True:
            m = await beamlet.receive()
            beamlet.send(test, ("saw", m))

    rp = beamlet.spawn(r)
    ref = beamlet.monitor(rp)
    beamlet.send(rp, "before")
    beamlet.exit(rp, "x")
    beamlet.send(rp, "after")
    assert await assert_receive(Down) == Down(ref, Atom("process"), rp, "x")
    assert await beamlet.receive(("saw", "after"), timeout=0, default=None) is None


async def test_down_and_exit_come_after_the_senders_last_messages() -> None:
    """§3.5 / §4.2: every message a process sent before terminating is enqueued at the
    watcher before its DOWN, and at a trapping linked process before its EXIT."""
    beamlet.process_flag(trap_exit=True)
    test = beamlet.self()

    async def s() -> None:
        for i in range(50):
            beamlet.send(test, ("m", i))
        beamlet.exit("done")

    pid = beamlet.spawn_link(s)
    ref = beamlet.monitor(pid)
    msgs = [await assert_receive() for _ in range(52)]
    assert msgs[:50] == [("m", i) for i in range(50)]
    assert msgs[50:] == [Exit(pid, "done"), Down(ref, Atom("process"), pid, "done")]


# --------------------------------------------------------------------------------------
# §2.4 selective receive
# --------------------------------------------------------------------------------------


async def test_selective_receive_leaves_others_in_order() -> None:
    """§2.4.1: each receive removes the first matching message; the others stay, in
    their original relative order."""
    me = beamlet.self()
    msgs = [1, "a", (Atom("x"), 1), 2.5, "b", (Atom("y"), 2), 3, Atom("ok"), "ok"]
    for m in msgs:
        beamlet.send(me, m)
    assert await beamlet.receive((Atom("y"), ANY)) == (Atom("y"), 2)
    assert await beamlet.receive(Atom("ok")) == Atom("ok")  # atoms only match atoms
    assert await beamlet.receive(float) == 2.5
    assert await beamlet.receive(lambda m: m == "b") == "b"
    rest = [await beamlet.receive(timeout=0) for _ in range(5)]
    assert rest == [1, "a", (Atom("x"), 1), 3, "ok"]
    await refute_receive(ANY, timeout=0.05)


async def test_selective_receive_oldest_matching_message_wins_not_first_clause() -> None:
    """§2.4.1: the mailbox is scanned message by message, trying every clause on each;
    the oldest message matching any clause wins."""
    me = beamlet.self()
    for m in ["x", "b", "a"]:
        beamlet.send(me, m)
    assert await beamlet.receive("a", "b") == "b"
    assert await beamlet.receive("a", "b") == "a"
    assert await beamlet.receive() == "x"


async def test_selective_receive_waits_and_keeps_later_non_matching_messages() -> None:
    """§2.4.3: while waiting, arriving messages that do not match are queued in order."""
    test = beamlet.self()

    async def feeder() -> None:
        for i in range(5):
            beamlet.send(test, ("noise", i))
            await asyncio.sleep(0)  # sleep-ok: the sleep is what is tested, or a yield
        beamlet.send(test, "wanted")
        beamlet.send(test, ("noise", 5))

    beamlet.spawn(feeder)
    assert await beamlet.receive("wanted", timeout=1) == "wanted"
    assert [await assert_receive(("noise", ANY)) for _ in range(6)] == [
        ("noise", i) for i in range(6)
    ]


async def test_selective_receive_timeout_leaves_mailbox_intact() -> None:
    """§2.4.4: after T with no match the after branch runs (Python: TimeoutError, or
    `default=`); non-matching messages are neither dropped nor reordered."""
    me = beamlet.self()
    for i in range(10):
        beamlet.send(me, i)
    with pytest.raises(TimeoutError):
        await beamlet.receive("never", timeout=0.05)
    assert await beamlet.receive("never", timeout=0, default="dflt") == "dflt"
    assert [await beamlet.receive() for _ in range(10)] == list(range(10))


async def test_predicate_sees_each_message_once_while_waiting() -> None:
    """§2.4.3: only newly arrived messages are tested while waiting; a rejected message is
    never shown to the pattern again."""
    test = beamlet.self()
    seen: list[Any] = []

    def pred(m: Any) -> bool:
        seen.append(m)
        return m == "stop"

    async def feeder() -> None:
        for i in range(20):
            beamlet.send(test, i)
            await asyncio.sleep(0)  # sleep-ok: the sleep is what is tested, or a yield
        beamlet.send(test, "stop")

    beamlet.send(test, "old")
    beamlet.spawn(feeder)
    assert await beamlet.receive(pred, timeout=1) == "stop"
    assert seen == ["old", *range(20), "stop"]


async def test_receive_zero_timeout_scans_once() -> None:
    """§2.4.2: with T = 0 the mailbox is scanned exactly once; a message arriving later is
    not considered."""
    test = beamlet.self()
    beamlet.spawn(_send_later, test)
    assert await beamlet.receive("late", timeout=0, default=None) is None
    assert await assert_receive("late") == "late"


async def _send_later(to: Pid) -> None:
    beamlet.send(to, "late")


# --------------------------------------------------------------------------------------
# receive marker: receive(..., since=ref)  (§2.4, ref-tag optimisation)
# --------------------------------------------------------------------------------------

BIG = 100_000


class Counter:
    """A predicate for `(ref, reply)` that counts how often it is called."""

    def __init__(self, ref: beamlet.Ref) -> None:
        self.ref = ref
        self.calls = 0

    def __call__(self, m: Any) -> bool:
        self.calls += 1
        return type(m) is tuple and len(m) == 2 and m[0] == self.ref


async def _reply_server() -> None:
    while True:
        ref, frm, payload = await beamlet.receive()
        beamlet.send(frm, (ref, ("reply", payload)))


def _fill_mailbox(n: int) -> None:
    me = beamlet.self()
    for i in range(n):
        beamlet.send(me, ("junk", i))


async def _check_junk_intact(n: int) -> None:
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.message_queue_len == n
    assert await beamlet.receive(timeout=0) == ("junk", 0)  # still the oldest
    assert await beamlet.receive(("junk", n - 1), timeout=0) == ("junk", n - 1)
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.message_queue_len == n - 2


async def test_receive_marker_reply_behind_100k_messages_is_found_without_rescan() -> None:
    """§2.4 ref-tag optimisation: with `since=ref`, a reply tagged with a ref made after
    100,000 unrelated messages were queued is found without testing any of them (the
    predicate runs once per message newer than the ref, not 100,001 times)."""
    server = beamlet.spawn(_reply_server)
    _fill_mailbox(BIG)
    ref = beamlet.make_ref()
    beamlet.send(server, (ref, beamlet.self(), 1))
    pred = Counter(ref)
    assert await beamlet.receive(pred, since=ref, timeout=5) == (ref, ("reply", 1))
    assert pred.calls <= 2
    await _check_junk_intact(BIG)


async def test_receive_marker_reply_already_queued() -> None:
    """Receive marker: the reply is already in the mailbox when the receive starts."""
    me = beamlet.self()
    _fill_mailbox(BIG)
    ref = beamlet.make_ref()
    beamlet.send(me, (ref, "reply"))
    pred = Counter(ref)
    assert await beamlet.receive(pred, since=ref, timeout=0) == (ref, "reply")
    assert pred.calls == 1
    await _check_junk_intact(BIG)


async def test_without_marker_the_same_receive_scans_everything() -> None:
    """Control for the two tests above: without `since`, the predicate is shown every
    queued message (so the counts above really measure the marker)."""
    me = beamlet.self()
    _fill_mailbox(BIG)
    ref = beamlet.make_ref()
    beamlet.send(me, (ref, "reply"))
    pred = Counter(ref)
    assert await beamlet.receive(pred, timeout=0) == (ref, "reply")
    assert pred.calls == BIG + 1


async def test_receive_marker_after_older_messages_were_consumed() -> None:
    """Receive marker: messages removed from the mailbox between making the ref and the
    receive (older or newer than the mark) neither hide the reply nor lose messages."""
    me = beamlet.self()
    for i in range(6):
        beamlet.send(me, ("old", i))
    ref = beamlet.make_ref()
    beamlet.send(me, ("new", 0))
    assert await beamlet.receive(("old", 1)) == ("old", 1)
    assert await beamlet.receive(("old", 4)) == ("old", 4)
    assert await beamlet.receive(("new", 0)) == ("new", 0)
    beamlet.send(me, ("new", 1))
    beamlet.send(me, (ref, "reply"))
    pred = Counter(ref)
    assert await beamlet.receive(pred, since=ref, timeout=0) == (ref, "reply")
    assert pred.calls <= 4  # at most the few messages around the mark
    rest = [await beamlet.receive(timeout=0) for _ in range(5)]
    assert rest == [("old", 0), ("old", 2), ("old", 3), ("old", 5), ("new", 1)]


async def test_receive_marker_stale_ref_still_correct() -> None:
    """Receive marker: if the mark was moved by a newer ref, `since` with the older ref
    falls back to a full scan; the reply is still found (correctness first)."""
    me = beamlet.self()
    ref_a = beamlet.make_ref()
    beamlet.send(me, (ref_a, "a"))
    _fill_mailbox(100)
    ref_b = beamlet.make_ref()  # moves the mark past (ref_a, "a")
    beamlet.send(me, (ref_b, "b"))
    assert await beamlet.receive((ref_a, ANY), since=ref_a, timeout=0) == (ref_a, "a")
    assert await beamlet.receive((ref_b, ANY), since=ref_b, timeout=0) == (ref_b, "b")
    await _check_junk_intact(100)


async def test_receive_marker_with_monitor_ref_finds_down() -> None:
    """Receive marker with the ref of `monitor` (the gen call pattern, §4.5): both the
    tagged reply and the DOWN are found past a large mailbox."""
    _fill_mailbox(BIG)
    pid = beamlet.spawn(_idle)
    mref = beamlet.monitor(pid)
    beamlet.exit(pid, "gone")
    calls = 0

    def pred(m: Any) -> bool:
        nonlocal calls
        calls += 1
        return (type(m) is tuple and m[:1] == (mref,)) or (type(m) is Down and m.ref == mref)

    down = await beamlet.receive(pred, since=mref, timeout=1)
    assert down == Down(mref, Atom("process"), pid, "gone")
    assert calls <= 2
    await _check_junk_intact(BIG)
