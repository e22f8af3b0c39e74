"""Randomized fault injection on a supervision tree under load.

The tree (about 100 GenServer workers):

    fi_top (rest_for_one)
    ├── fi_reg     Registry (unique)
    ├── fi_dyn     DynamicSupervisor: 30 permanent workers, found by which_children
    ├── fi_sup_a   one_for_one:  40 workers named Registry.via("fi_reg", ("a", i))
    ├── fi_sup_b   one_for_all:  10 workers registered as fi_b_<i>; low intensity, so it
    │              escalates to fi_top, which restarts it (and fi_sup_c after it)
    └── fi_sup_c   rest_for_one: 20 unnamed workers (some trap exits), by which_children

Client processes call random workers while a killer process ends random workers (and
now and then fi_sup_c itself) with random reasons. Every call must either return the
right answer or fail with a clean `CallExit` (the server was gone or died during the
call); afterwards the tree must be whole again (every child running and answering), and
once it is stopped no process and no registered name may be left. The RNG is seeded and
the scheduler deterministic, so a failing seed replays exactly.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import beamlet
from beamlet import KILL, KILLED, NOPROC, NORMAL, SHUTDOWN, Atom, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor
from beamlet.behaviours.gen_server import CallExit, GenServer, Reply
from beamlet.behaviours.registry import Registry, UnknownRegistry
from beamlet.behaviours.supervisor import Supervisor
from beamlet.testing import assert_receive

N_A, N_B, N_C, N_DYN = 40, 10, 20, 30
CLIENTS, CALLS_PER_CLIENT, KILLS = 12, 40, 60
BOOM = Atom("boom")
# Why a call may fail: the server is not there (yet), or it died during the call —
# killed, stopped by its supervisor, or crashed with the killer's reason.
CLEAN_CAUSES = {NOPROC, KILLED, SHUTDOWN, BOOM, (SHUTDOWN, BOOM)}


class Echo(GenServer[Any]):
    async def init(self, arg: Any) -> Any:
        tag, trap = arg
        if trap:
            beamlet.process_flag(trap_exit=True)
        return tag

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        _, token = request
        return Reply((state, token), state)


async def start_echo(tag: Any, trap: bool, name: Any) -> Pid | None:
    return await Echo.start_link((tag, trap), name=name)


def echo_spec(tag: Any, *, trap: bool = False, name: Any = None) -> ChildSpec:
    return ChildSpec(id=tag, start=start_echo, args=(tag, trap, name), shutdown=1.0)


def tree() -> list[ChildSpec]:
    sup_a = Supervisor.child_spec(
        [echo_spec(("a", i), name=Registry.via("fi_reg", ("a", i))) for i in range(N_A)],
        id="fi_sup_a",
        name="fi_sup_a",
        strategy="one_for_one",
        max_restarts=10_000,
    )
    sup_b = Supervisor.child_spec(
        [echo_spec(("b", i), name=f"fi_b_{i}") for i in range(N_B)],
        id="fi_sup_b",
        name="fi_sup_b",
        strategy="one_for_all",
        max_restarts=3,
        max_seconds=3600,
    )
    sup_c = Supervisor.child_spec(
        [echo_spec(("c", i), trap=i % 2 == 0) for i in range(N_C)],
        id="fi_sup_c",
        name="fi_sup_c",
        strategy="rest_for_one",
        max_restarts=10_000,
    )
    return [
        Registry.child_spec(keys="unique", name="fi_reg"),
        DynamicSupervisor.child_spec(name="fi_dyn", max_restarts=10_000),
        sup_a,
        sup_b,
        sup_c,
    ]


async def target(rng: random.Random) -> tuple[Any, Any]:
    """A random worker, as a client would address it: (server reference, its tag)."""
    group = rng.choice("abcd")
    if group == "a":
        i = rng.randrange(N_A)
        return Registry.via("fi_reg", ("a", i)), ("a", i)
    if group == "b":
        i = rng.randrange(N_B)
        return f"fi_b_{i}", ("b", i)
    sup = "fi_sup_c" if group == "c" else "fi_dyn"
    try:
        children = await Supervisor.which_children(sup)
    except CallExit as e:  # the supervisor itself is being restarted
        assert e.cause in CLEAN_CAUSES, e.cause
        return None, None
    pids = [c for c in children if isinstance(c.pid, Pid)]
    if not pids:
        return None, None
    info = rng.choice(pids)
    return info.pid, info.id


async def client(seed: int, report_to: Pid) -> None:
    rng = random.Random(seed)
    ok = failed = 0
    for n in range(CALLS_PER_CLIENT):
        server, tag = await target(rng)
        if server is None:
            continue
        token = (seed, n)
        try:
            answer = await GenServer.call(server, ("echo", token), timeout=5.0)
        except CallExit as e:
            assert e.cause in CLEAN_CAUSES, (server, e.cause)
            failed += 1
            continue
        # dynamic children have id None: only check the token for them
        assert answer[1] == token and (tag is None or answer[0] == tag), (answer, tag, token)
        ok += 1
    beamlet.send(report_to, ("client_done", ok, failed))


async def killer(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(KILLS):
        await asyncio.sleep(0)  # sleep-ok: let clients and supervisors run in between
        server, _ = await target(rng)
        if rng.random() < 0.03:
            server = beamlet.whereis("fi_sup_c")  # now and then a whole subtree
        pid = server if isinstance(server, Pid) else None
        if pid is None and server is not None:
            pid = (
                beamlet.whereis(server)
                if isinstance(server, str)
                else (Registry.whereis_name("fi_reg", server.key))
            )
        if pid is not None:
            beamlet.exit(pid, rng.choice([KILL, KILL, BOOM, SHUTDOWN, (SHUTDOWN, BOOM)]))


async def whole(top: Pid) -> bool:
    """Is every child of every supervisor running (one synchronous round)?"""
    for info in await Supervisor.which_children(top):
        if not isinstance(info.pid, Pid):
            return False
    expected = {"fi_sup_a": N_A, "fi_sup_b": N_B, "fi_sup_c": N_C, "fi_dyn": N_DYN}
    for sup, n in expected.items():
        try:
            counts = await Supervisor.count_children(sup)
        except CallExit:
            return False
        if counts.active != n or counts.specs != n:
            return False
    return True


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_random_kills_under_load(seed: int) -> None:
    beamlet.process_flag(trap_exit=True)
    before_procs = set(beamlet.processes())
    before_names = set(beamlet.registered())

    top = await Supervisor.start_link(
        tree(), name="fi_top", strategy="rest_for_one", max_restarts=10_000
    )
    assert top is not None
    for i in range(N_DYN):
        await DynamicSupervisor.start_child("fi_dyn", echo_spec(("d", i), trap=i % 3 == 0))
    assert await whole(top)
    assert len(beamlet.processes()) > 100

    me = beamlet.self()
    monitors = {}
    for c in range(CLIENTS):
        _, ref = beamlet.spawn_monitor(client, seed * 1000 + c, me)
        monitors[ref] = "client"
    _, ref = beamlet.spawn_monitor(killer, seed)
    monitors[ref] = "killer"

    oks = fails = 0
    for _ in range(CLIENTS):
        _, ok, failed = await assert_receive(("client_done", int, int), timeout=30)
        oks += ok
        fails += failed
    for _ in monitors:  # every client and the killer ended normally
        down = await assert_receive(lambda m: type(m) is Down and m.ref in monitors, timeout=30)
        assert down.reason == NORMAL, (monitors[down.ref], down.reason)
    assert oks > 0
    assert fails > 0, "no call ever failed: the faults did not reach the clients"
    assert beamlet.is_alive(top), "the top supervisor gave up"

    # the tree recovers: poll with synchronous calls (each waits for the supervisors to
    # have handled every exit queued before it), bounded
    for _ in range(1000):
        if await whole(top):
            break
    else:
        raise AssertionError("the tree did not recover")
    # and every worker answers
    for i in range(N_A):
        tag = ("a", i)
        assert await GenServer.call(Registry.via("fi_reg", tag), ("echo", 0)) == (tag, 0)
    for i in range(N_B):
        assert await GenServer.call(f"fi_b_{i}", ("echo", 0)) == (("b", i), 0)
    for sup in ("fi_sup_c", "fi_dyn"):
        for info in await Supervisor.which_children(sup):
            assert isinstance(info.pid, Pid)
            assert (await GenServer.call(info.pid, ("echo", 0)))[1] == 0

    # teardown: nothing may leak
    await Supervisor.stop(top)
    await assert_receive(Exit(top, NORMAL))
    assert set(beamlet.processes()) == before_procs
    assert set(beamlet.registered()) == before_names
    with pytest.raises(UnknownRegistry):
        Registry.lookup("fi_reg", ("a", 0))
