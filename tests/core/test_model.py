"""Property-based check of links, monitors and exit signals against a reference model.

Hypothesis generates small scenarios (2-6 processes, random link / unlink / monitor /
demonitor / trap_exit / exit / spawn / return / raise operations). Each is run twice:
on the real kernel, with every process driven by commands from a controller process,
and on `Model`, a few dozen lines of pure Python written from the tables of
docs/semantics.md §1.4, §3.3, §3.6 and §4. After every operation the set of live
processes and each dead process's exit reason must agree; at the end, each live
process's mailbox must hold the same multiset of Exit/Down messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    Node,
    NoProcError,
    ProcessFailed,
)

CONTROLLER = -1  # the model's name for the controller (the sender of "ext_exit")
CRASH = "CRASH"  # the model's stand-in for any Crash(...) reason
MAX_PROCS = 8
CHECKPOINT = 5  # compare mailboxes every few operations (and leave time for flush)
REASONS = [NORMAL, KILL, KILLED, SHUTDOWN, Atom("custom"), (SHUTDOWN, "detail")]

# --- the reference model ---------------------------------------------------------------


@dataclasses.dataclass
class MProc:
    alive: bool = True
    trap: bool = False
    reason: Any = None
    links: set[int] = dataclasses.field(default_factory=set)
    mailbox: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)


class Model:
    """Pure-Python reference semantics; process i is `procs[i]`, monitors are ints."""

    def __init__(self, n: int) -> None:
        self.procs = [MProc() for _ in range(n)]
        self.monitors: dict[int, tuple[int, int]] = {}  # active: id -> (watcher, target)
        self.owner_of: dict[int, int] = {}  # every monitor ever made: id -> watcher
        self.target_of: dict[int, int] = {}  # and its target
        self.next_monitor = 0
        self.dying: list[int] = []

    # §3.3: receiver r handles an exit signal with reason x from s
    def signal(self, r: int, s: int, x: Any, *, via_link: bool) -> None:
        rp = self.procs[r]
        if not rp.alive:
            return
        if via_link:
            if s not in rp.links:
                return  # no active link: discarded (§3.7)
            rp.links.discard(s)
        if not via_link and x == KILL:
            self.die(r, KILLED)  # E4: exit/2 with kill is untrappable
        elif rp.trap:
            rp.mailbox.append(("exit", s, x))
        elif x == NORMAL:
            if not via_link and s == r:
                self.die(r, NORMAL)  # E3: exit(self(), normal)
            # E1/E2: ignored
        else:
            self.die(r, x)  # E5-E9

    # §1.4: a process terminates once; the first reason decides
    def die(self, p: int, reason: Any) -> None:
        if not self.procs[p].alive:
            return
        self.procs[p].alive = False
        self.procs[p].reason = reason
        self.dying.append(p)
        if len(self.dying) == 1:
            while self.dying:
                self._cleanup(self.dying[0])
                self.dying.pop(0)

    def _cleanup(self, p: int) -> None:
        dead = self.procs[p]
        for mid, (watcher, _target) in list(self.monitors.items()):
            if watcher == p:  # 3. monitors held by p are gone
                del self.monitors[mid]
        for other in sorted(dead.links):  # 4. link exit signals
            self.signal(other, p, dead.reason, via_link=True)
        dead.links.clear()
        for mid, (watcher, target) in list(self.monitors.items()):  # 5. DOWNs
            if target == p:
                del self.monitors[mid]
                if self.procs[watcher].alive:
                    self.procs[watcher].mailbox.append(("down", mid, p, dead.reason))
        dead.mailbox.clear()  # 7.

    # --- operations ---

    def link(self, a: int, b: int) -> str:
        if a == b:
            return "ok"  # §3.1.2
        if self.procs[b].alive:
            self.procs[a].links.add(b)
            self.procs[b].links.add(a)
            return "ok"
        if self.procs[a].trap:  # §3.6
            self.procs[a].mailbox.append(("exit", b, NOPROC))
            return "ok"
        return "noproc"

    def unlink(self, a: int, b: int) -> None:
        self.procs[a].links.discard(b)
        self.procs[b].links.discard(a)

    def monitor(self, a: int, b: int) -> int:
        mid = self.next_monitor
        self.next_monitor += 1
        self.owner_of[mid] = a
        self.target_of[mid] = b
        if self.procs[b].alive:
            self.monitors[mid] = (a, b)
        else:  # §4.1.4
            self.procs[a].mailbox.append(("down", mid, b, NOPROC))
        return mid

    def demonitor(self, a: int, mid: int, flush: bool) -> bool:
        entry = self.monitors.get(mid)
        if entry is not None and entry[0] == a:
            del self.monitors[mid]
            return True
        if flush:  # §4.3: also drop its DOWN if it is already in the mailbox
            box = self.procs[a].mailbox
            for i, m in enumerate(box):
                if m[0] == "down" and m[1] == mid:
                    del box[i]
                    break
        return False

    def trap(self, a: int, value: bool) -> bool:
        old = self.procs[a].trap
        self.procs[a].trap = value
        return old

    def spawn(self, a: int, link: bool) -> int:
        self.procs.append(MProc())
        new = len(self.procs) - 1
        if link:
            self.link(a, new)
        return new


# --- the kernel side ---------------------------------------------------------------------


def norm(reason: Any) -> Any:
    return CRASH if isinstance(reason, Crash) else reason


def is_command(m: Any) -> bool:
    return type(m) is tuple and len(m) >= 3 and m[0] == "cmd"


async def actor(controller: beamlet.Pid) -> None:
    """A process that performs the controller's commands and acknowledges each."""
    while True:
        _, seq, op, *args = await beamlet.receive(is_command)
        result: Any = "ok"
        if op == "link":
            try:
                beamlet.link(args[0])
            except NoProcError:
                result = "noproc"
        elif op == "unlink":
            beamlet.unlink(args[0])
        elif op == "monitor":
            result = beamlet.monitor(args[0])
        elif op == "demonitor":
            result = beamlet.demonitor(args[0], flush=args[1])
        elif op == "trap":
            result = beamlet.process_flag(trap_exit=args[0])
        elif op == "exit":
            beamlet.exit(args[0], args[1])
        elif op == "die":
            beamlet.exit(args[0])  # raises ProcessExit: ends with that reason
        elif op == "return":
            return
        elif op == "raise":
            raise RuntimeError("model crash")
        elif op == "spawn":
            result = (beamlet.spawn_link if args[0] else beamlet.spawn)(actor, controller)
        elif op == "dump":
            result = []
            while (m := await beamlet.receive(Exit, Down, timeout=0, default=None)) is not None:
                if type(m) is Exit:
                    result.append(("exit", m.pid, norm(m.reason)))
                else:
                    result.append(("down", m.ref, m.pid, norm(m.reason)))
        beamlet.send(controller, ("ack", seq, result))


DIED = object()


async def scenario(n: int, ops: list[tuple[Any, ...]]) -> None:
    model = Model(n)
    me = beamlet.self()
    pids = [beamlet.spawn(actor, me) for _ in range(n)]
    watch = [beamlet.monitor(p) for p in pids]
    index: dict[beamlet.Pid, int] = {p: i for i, p in enumerate(pids)}
    index[me] = CONTROLLER
    refs: list[beamlet.Ref] = []  # model monitor id -> kernel ref
    mid_of: dict[beamlet.Ref, int] = {}
    reasons: dict[int, Any] = {}  # exit reasons seen by the controller's monitors
    seq = 0
    trace: list[str] = []

    def collect_down(m: Down) -> None:
        i = watch.index(m.ref)
        assert i not in reasons, f"two DOWNs for process {i}"
        reasons[i] = norm(m.reason)

    async def command(a: int, op: str, *args: Any) -> Any:
        nonlocal seq
        seq += 1
        beamlet.send(pids[a], ("cmd", seq, op, *args))
        m = await beamlet.receive(
            ("ack", seq, ANY), lambda m: type(m) is Down and m.ref == watch[a], timeout=5
        )
        if type(m) is Down:
            collect_down(m)
            return DIED
        return m[2]

    def check(step: str) -> None:
        for i, mp in enumerate(model.procs):
            where = f"after {step}: process {i} (trace: {trace})"
            assert beamlet.is_alive(pids[i]) == mp.alive, where
            if not mp.alive:
                assert reasons.get(i, "no DOWN") == mp.reason, where

    async def compare_mailboxes(when: str) -> None:
        """Drain each live process's EXIT/DOWN messages and compare with the model's."""
        for i, mp in enumerate(model.procs):
            if not mp.alive:
                continue
            got = await command(i, "dump")
            assert got is not DIED
            real = Counter(
                ("exit", index[m[1]], m[2])
                if m[0] == "exit"
                else ("down", mid_of[m[1]], index[m[2]], m[3])
                for m in got
            )
            assert real == Counter(mp.mailbox), f"{when}: mailbox of {i} (trace: {trace})"
            mp.mailbox.clear()

    for n_op, raw in enumerate(ops):
        if n_op % CHECKPOINT == CHECKPOINT - 1:
            await compare_mailboxes(f"before operation {n_op}")
        kind = raw[0]
        count = len(model.procs)
        live = [i for i, mp in enumerate(model.procs) if mp.alive]
        if not live:
            break
        # the actor is a live process (a dead one takes no commands); targets and the
        # victim of the controller's exit signal may be dead
        a = raw[1] % count if kind == "ext_exit" else live[raw[1] % len(live)]
        step = f"{kind}{raw[1:]}"
        trace.append(step)
        if kind == "link":
            b = raw[2] % count
            assert await command(a, "link", pids[b]) == model.link(a, b), step
        elif kind == "unlink":
            b = raw[2] % count
            model.unlink(a, b)
            assert await command(a, "unlink", pids[b]) == "ok"
        elif kind == "monitor":
            b = raw[2] % count
            mid = model.monitor(a, b)
            ref = await command(a, "monitor", pids[b])
            assert type(ref) is beamlet.Ref
            refs.append(ref)
            mid_of[ref] = mid
        elif kind in ("demonitor", "demonitor_foreign"):
            # one of its own monitors (the live owner acts), or another process's
            own = kind == "demonitor"
            choices = [
                m
                for m, owner in model.owner_of.items()
                if (model.procs[owner].alive if own else owner != a)
            ]
            if not choices:
                trace.pop()
                continue
            mid = choices[raw[3] % len(choices)]
            if own:
                a = model.owner_of[mid]
            expected = model.demonitor(a, mid, raw[4])
            got = await command(a, "demonitor", refs[mid], raw[4])
            if model.target_of[mid] != a:
                # (a monitor on oneself: the BEAM does not record it, so demonitor
                # returns false there; only the absence of a DOWN is checked for it)
                assert got == expected, step
        elif kind == "trap":
            assert await command(a, "trap", raw[2]) == model.trap(a, raw[2]), step
        elif kind == "exit":
            b = raw[2] % count
            model.signal(b, a, raw[3], via_link=False)
            result = await command(a, "exit", pids[b], raw[3])
            assert (result is DIED) == (not model.procs[a].alive), step
        elif kind == "ext_exit":
            model.signal(a, CONTROLLER, raw[2], via_link=False)
            beamlet.exit(pids[a], raw[2])
        elif kind == "die":
            model.die(a, raw[2])
            assert await command(a, "die", raw[2]) is DIED, step
        elif kind == "return":
            model.die(a, NORMAL)
            assert await command(a, "return") is DIED, step
        elif kind == "raise":
            model.die(a, CRASH)
            assert await command(a, "raise") is DIED, step
        elif kind == "spawn":
            if count >= MAX_PROCS:
                trace.pop()
                continue
            new = model.spawn(a, raw[2])
            pid = await command(a, "spawn", raw[2])
            assert type(pid) is beamlet.Pid
            pids.append(pid)
            watch.append(beamlet.monitor(pid))
            index[pid] = new
        # every death caused by the operation has been signalled by now
        while (m := await beamlet.receive(Down, timeout=0, default=None)) is not None:
            collect_down(m)
        check(step)

    await compare_mailboxes("the end")


async def run_scenario(n: int, ops: list[tuple[Any, ...]]) -> None:
    node = Node()
    node.block_warning = None  # no watchdog thread per example
    async with node:
        try:
            await node.run(scenario, n, ops)
        except ProcessFailed as e:
            if isinstance(e.reason, Crash):
                raise e.reason.exception from None
            raise


# --- strategies ---------------------------------------------------------------------------

idx = st.integers(0, MAX_PROCS - 1)
reasons = st.sampled_from(REASONS)
monitor_choice = (st.integers(0, 20), st.booleans())  # which monitor, flush
ARGS: dict[str, tuple[st.SearchStrategy[Any], ...]] = {
    "link": (idx, idx),
    "unlink": (idx, idx),
    "monitor": (idx, idx),
    "demonitor": (idx, idx, *monitor_choice),
    "demonitor_foreign": (idx, idx, *monitor_choice),
    "trap": (idx, st.sampled_from([True, True, False])),
    "spawn": (idx, st.booleans()),
    "exit": (idx, idx, reasons),
    "ext_exit": (idx, reasons),
    "die": (idx, reasons),
    "return": (idx,),
    "raise": (idx,),
}
# Weighted towards operations that end no process, so that scenarios keep enough live
# (and trapping) processes for EXIT and DOWN messages to pile up in mailboxes.
KINDS = (
    ["link"] * 5
    + ["unlink", "monitor", "monitor", "demonitor", "demonitor_foreign"]
    + ["trap"] * 3
    + ["spawn"] * 2
    + ["exit", "exit", "ext_exit", "die", "return", "raise"]
)
operations = st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), *ARGS[kind]))


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(n=st.integers(2, 6), ops=st.lists(operations, min_size=10, max_size=40))
def test_kernel_agrees_with_reference_model(n: int, ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(run_scenario(n, ops))


def _run(n: int, ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(run_scenario(n, ops))


def test_model_handpicked_scenarios() -> None:
    """A few fixed scenarios that exercise the subtle rows, also as documentation."""
    _run(2, [("exit", 0, 1, NORMAL), ("ext_exit", 1, NORMAL)])  # E2: ignored
    _run(2, [("trap", 0, True), ("link", 0, 1), ("exit", 1, 1, NORMAL)])  # E3, trapped E1
    _run(2, [("trap", 0, True), ("exit", 0, 0, NORMAL), ("exit", 1, 0, NORMAL)])  # trapped
    _run(2, [("link", 0, 1), ("die", 1, KILL)])  # E5: kill through a link is ordinary
    _run(3, [("link", 0, 1), ("link", 1, 2), ("exit", 0, 2, KILL)])  # E4 then E6 chain
    _run(2, [("trap", 0, True), ("link", 0, 1), ("exit", 0, 0, KILL)])  # untrappable
    _run(2, [("return", 1), ("trap", 0, True), ("link", 0, 1)])  # §3.6 trapped noproc
    _run(2, [("return", 1), ("link", 0, 1), ("monitor", 0, 1)])  # noproc error, DOWN
    _run(2, [("monitor", 0, 1), ("raise", 1), ("demonitor", 0, 0, 0, True)])  # flush
    _run(3, [("monitor", 1, 2), ("demonitor_foreign", 0, 1, 0, False), ("raise", 2)])
    _run(2, [("monitor", 0, 0), ("link", 0, 1), ("trap", 0, True), ("ext_exit", 0, SHUTDOWN)])
    _run(2, [("spawn", 0, True), ("trap", 0, True), ("raise", 2), ("unlink", 0, 1)])
