"""Chaos: GenServer calls into a supervision tree while a killer ends random processes.

    python -m bench.reliability chaos --seconds 60

The tree (100 workers; handlers answer at once, no sleeps anywhere):

    ch_top (rest_for_one)
    ├── ch_reg     Registry (unique)
    ├── ch_dyn     DynamicSupervisor: 30 workers, by which_children
    ├── ch_a       one_for_one: 40 workers named Registry.via("ch_reg", ("a", i))
    ├── ch_b       one_for_all: 10 workers registered as ch_b_<i>
    └── ch_c       rest_for_one: 20 unnamed workers (half trap exits), by which_children

`CLIENTS` processes call random workers (by Via name, registered name or pid, with a
5 s timeout) until told to stop; a killer sends random exit signals (kill, a crash
reason, shutdown) to random workers and now and then to a whole subtree, yielding to the
run queue in between. Every call must return its own token from the right worker or
fail cleanly (`CallExit` because the server was not there or died during the call).
Counted: calls, clean failures, hung calls (a call timeout: nothing answered within 5 s;
must be 0), wrong replies (must be 0); then whether the tree recovered (every child
running and answering) and, after stopping it, the processes and names left (must be 0).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import beamlet
from beamlet import KILL, KILLED, NOPROC, NORMAL, SHUTDOWN, TIMEOUT, Atom, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor
from beamlet.behaviours.gen_server import CallExit, GenServer, Reply
from beamlet.behaviours.registry import Registry
from beamlet.behaviours.supervisor import Supervisor

N_A, N_B, N_C, N_DYN = 40, 10, 20, 30
CLIENTS = 12
BOOM = Atom("boom")
CLEAN_CAUSES = {NOPROC, KILLED, SHUTDOWN, BOOM, (SHUTDOWN, BOOM)}


@dataclass
class ChaosResult:
    seconds: float = 0.0
    calls: int = 0
    answered: int = 0
    clean_failures: int = 0
    hung: int = 0
    wrong: int = 0
    kills: int = 0
    recovered: bool = False
    recovery_rounds: int = 0
    leaked_processes: int = 0
    leaked_names: int = 0
    first_wrong: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.answered > 0
            and self.clean_failures > 0  # the faults reached the clients
            and not (self.hung or self.wrong or self.leaked_processes or self.leaked_names)
            and self.recovered
        )


class Echo(GenServer[Any]):
    async def init(self, arg: Any) -> Any:
        tag, trap = arg
        if trap:
            beamlet.process_flag(trap_exit=True)
        return tag

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply((state, request[1]), state)


async def _start_echo(tag: Any, trap: bool, name: Any) -> Pid | None:
    return await Echo.start_link((tag, trap), name=name)


def _echo(tag: Any, *, trap: bool = False, name: Any = None) -> ChildSpec:
    return ChildSpec(id=tag, start=_start_echo, args=(tag, trap, name), shutdown=1.0)


def _tree() -> list[ChildSpec]:
    via = Registry.via
    return [
        Registry.child_spec(keys="unique", name="ch_reg"),
        # before the subtrees the killer ends: rest_for_one restarts what follows, and a
        # restarted DynamicSupervisor starts empty
        DynamicSupervisor.child_spec(name="ch_dyn", max_restarts=1_000_000),
        Supervisor.child_spec(
            [_echo(("a", i), name=via("ch_reg", ("a", i))) for i in range(N_A)],
            id="ch_a",
            name="ch_a",
            strategy="one_for_one",
            max_restarts=1_000_000,
        ),
        Supervisor.child_spec(
            [_echo(("b", i), name=f"ch_b_{i}") for i in range(N_B)],
            id="ch_b",
            name="ch_b",
            strategy="one_for_all",
            max_restarts=1_000_000,
        ),
        Supervisor.child_spec(
            [_echo(("c", i), trap=i % 2 == 0) for i in range(N_C)],
            id="ch_c",
            name="ch_c",
            strategy="rest_for_one",
            max_restarts=1_000_000,
        ),
    ]


async def _target(rng: random.Random) -> tuple[Any, Any]:
    """A random worker as a client addresses it: (server reference, tag or None)."""
    group = rng.choice("abcd")
    if group == "a":
        i = rng.randrange(N_A)
        return Registry.via("ch_reg", ("a", i)), ("a", i)
    if group == "b":
        i = rng.randrange(N_B)
        return f"ch_b_{i}", ("b", i)
    sup = "ch_c" if group == "c" else "ch_dyn"
    try:
        children = await Supervisor.which_children(sup)
    except CallExit:
        return None, None  # the supervisor itself is being restarted
    pids = [c for c in children if isinstance(c.pid, Pid)]
    if not pids:
        return None, None
    info = rng.choice(pids)
    return info.pid, info.id  # dynamic children have id None


async def _client(seed: int, report_to: Pid, stop: beamlet.Shared[list[bool]]) -> None:
    rng = random.Random(seed)
    calls = answered = failed = hung = wrong = 0
    first_wrong = ""
    n = 0
    while not stop.value[0]:
        server, tag = await _target(rng)
        if server is None:
            await asyncio.sleep(0)  # sleep-ok: yield while a supervisor restarts
            continue
        n += 1
        token = (seed, n)
        calls += 1
        try:
            answer = await GenServer.call(server, ("echo", token), timeout=5.0)
        except CallExit as e:
            if e.cause == TIMEOUT:
                hung += 1
            elif e.cause in CLEAN_CAUSES:
                failed += 1
            else:
                wrong += 1
                first_wrong = first_wrong or f"call failed with {e.cause!r}"
            continue
        if answer[1] != token or (tag is not None and answer[0] != tag):
            wrong += 1
            first_wrong = first_wrong or f"{answer!r} for {tag!r} {token!r}"
        else:
            answered += 1
    beamlet.send(report_to, ("client", calls, answered, failed, hung, wrong, first_wrong))


async def _killer(seed: int, report_to: Pid, stop: beamlet.Shared[list[bool]]) -> None:
    rng = random.Random(seed)
    kills = 0
    while not stop.value[0]:
        for _ in range(rng.randrange(1, 8)):
            await asyncio.sleep(0)  # sleep-ok: let clients and supervisors run in between
        server, _ = await _target(rng)
        if rng.random() < 0.02:
            server = beamlet.whereis(rng.choice(["ch_c", "ch_b", "ch_a"]))  # a subtree
        if isinstance(server, str):
            server = beamlet.whereis(server)
        elif server is not None and not isinstance(server, Pid):
            server = Registry.whereis_name("ch_reg", server.key)
        if isinstance(server, Pid):
            beamlet.exit(server, rng.choice([KILL, KILL, BOOM, SHUTDOWN, (SHUTDOWN, BOOM)]))
            kills += 1
    beamlet.send(report_to, ("killer", kills))


async def _whole(top: Pid) -> bool:
    """Is every child of every supervisor running (one synchronous round)?"""
    for info in await Supervisor.which_children(top):
        if not isinstance(info.pid, Pid):
            return False
    for sup, n in {"ch_a": N_A, "ch_b": N_B, "ch_c": N_C, "ch_dyn": N_DYN}.items():
        try:
            counts = await Supervisor.count_children(sup)
        except CallExit:
            return False
        if counts.active != n or counts.specs != n:
            return False
    return True


async def _answers() -> bool:
    """Does every worker answer its own tag?"""
    for i in range(N_A):
        tag = ("a", i)
        if await GenServer.call(Registry.via("ch_reg", tag), ("echo", 0)) != (tag, 0):
            return False
    for i in range(N_B):
        if await GenServer.call(f"ch_b_{i}", ("echo", 0)) != (("b", i), 0):
            return False
    for sup in ("ch_c", "ch_dyn"):
        for info in await Supervisor.which_children(sup):
            if not isinstance(info.pid, Pid):
                return False
            if (await GenServer.call(info.pid, ("echo", 0)))[1] != 0:
                return False
    return True


async def _chaos(seconds: float, seed: int) -> ChaosResult:
    beamlet.process_flag(trap_exit=True)
    before_procs = set(beamlet.processes())
    before_names = set(beamlet.registered())
    result = ChaosResult()
    top = await Supervisor.start_link(
        _tree(), name="ch_top", strategy="rest_for_one", max_restarts=1_000_000
    )
    assert isinstance(top, Pid)
    for i in range(N_DYN):
        await DynamicSupervisor.start_child("ch_dyn", _echo(("d", i), trap=i % 3 == 0))
    stop = beamlet.Shared([False])
    me = beamlet.self()
    refs = [beamlet.spawn_monitor(_client, seed * 1000 + c, me, stop)[1] for c in range(CLIENTS)]
    refs.append(beamlet.spawn_monitor(_killer, seed, me, stop)[1])
    start = time.perf_counter()
    await beamlet.sleep(seconds)
    stop.value[0] = True
    for _ in range(CLIENTS):
        msg = await beamlet.receive(lambda m: type(m) is tuple and m[0] == "client", timeout=30)
        _, calls, answered, failed, hung, wrong, first_wrong = msg
        result.calls += calls
        result.answered += answered
        result.clean_failures += failed
        result.hung += hung
        result.wrong += wrong
        result.first_wrong = result.first_wrong or first_wrong
    _, result.kills = await beamlet.receive(
        lambda m: type(m) is tuple and m[0] == "killer", timeout=30
    )
    result.seconds = time.perf_counter() - start
    for _ in refs:  # every client and the killer ended normally
        down = await beamlet.receive(lambda m: type(m) is Down and m.ref in refs, timeout=30)
        if down.reason != NORMAL:
            result.wrong += 1
            result.first_wrong = result.first_wrong or f"a client died: {down.reason!r}"
    # Recovery: synchronous rounds (each waits for the supervisors to have handled every
    # exit queued before it), bounded.
    if beamlet.is_alive(top):
        for result.recovery_rounds in range(1, 1001):
            if await _whole(top):
                result.recovered = await _answers()
                break
        await Supervisor.stop(top)
        await beamlet.receive(lambda m: type(m) is Exit and m.pid == top, timeout=30)
    result.leaked_processes = len(set(beamlet.processes()) - before_procs)
    result.leaked_names = len(set(beamlet.registered()) - before_names)
    return result


def chaos(seconds: float, seed: int = 1) -> ChaosResult:
    """Run the chaos for `seconds` on a fresh node (crash reports silenced)."""
    logger = logging.getLogger("beamlet")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return beamlet.run(_chaos, seconds, seed)
    finally:
        logger.setLevel(level)


def print_chaos(r: ChaosResult) -> None:
    print(f"\nchaos, {r.seconds:.0f} s: {CLIENTS} clients calling 100 workers under random kills")
    rows = [
        ("calls", f"{r.calls:,}"),
        ("  answered right", f"{r.answered:,}"),
        ("  failed cleanly (noproc, killed, ...)", f"{r.clean_failures:,}"),
        ("  hung (no answer in 5 s; must be 0)", f"{r.hung:,}"),
        ("  wrong replies (must be 0)", f"{r.wrong:,}"),
        ("exit signals sent by the killer", f"{r.kills:,}"),
        ("tree recovered, every worker answers", f"{'yes' if r.recovered else 'NO'}"),
        ("  synchronous rounds until whole", f"{r.recovery_rounds}"),
        ("processes left after stop (must be 0)", f"{r.leaked_processes}"),
        ("names left after stop (must be 0)", f"{r.leaked_names}"),
    ]
    for name, value in rows:
        print(f"{name:<40} {value:>14}")
    if r.first_wrong:
        print(f"! {r.first_wrong:.300}")
