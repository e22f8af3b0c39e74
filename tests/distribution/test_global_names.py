"""`Global(name)` wherever a server name goes (Erlang's `{global, Name}` in
`gen_server:start_link/4`, `call`, `cast`, supervisor children): registered with the
cluster before `init` runs, `{already_started, Pid}` when taken, resolved from the
node's replica; and against real Erlang nodes (the system OTP and the second OTP),
`gen_server:call({global, Name}, ...)` both ways."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on, within
from test_otp_versions import erl2

import beamlet
import beamlet.distribution
from beamlet import ANY, Atom, Down, GenServer, Global, Pid, Reply
from beamlet.behaviours.gen import AlreadyStarted
from beamlet.distribution import NodeDown, connect, global_

pytestmark = [pytest.mark.interop, pytest.mark.dist(hidden=False)]

OK = Atom("ok")


class Counter(GenServer[int]):
    async def init(self, n: int) -> int:
        return n

    async def handle_call(self, request: Any, _from: Any, n: int) -> Reply[int]:
        if request == Atom("ping"):
            return Reply((Atom("pong"), beamlet.node_name()), n)
        return Reply(n + request, n + request)

    async def handle_cast(self, request: Any, n: int) -> Any:
        from beamlet import NoReply

        return NoReply(n + request)


async def until(pred: Any, timeout: float = 10.0) -> None:
    """Wait for `pred()`, a few ms at a time (global's replicas update asynchronously:
    there is no message to wait for)."""
    async with asyncio.timeout(timeout):
        while not pred():
            await beamlet.sleep(0.01)


@pytest.fixture(params=["system", "erl2"], ids=["otp-system", "otp-erl2"])
def erl(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "system" else erl2()


async def test_start_link_with_a_global_name(node: DistNode) -> None:
    """gen_server_SUITE's start with `{global, Name}`: registered before init, callable
    and castable by name, `already_started` with the holder when taken."""
    name = Global(Atom("counter"))
    pid = await within(10, Counter.start_link(0, name=name))
    assert global_.whereis_name(Atom("counter")) == pid
    assert GenServer.whereis(name) == pid
    assert await GenServer.call(name, 5) == 5
    GenServer.cast(name, 2)
    assert await GenServer.call(name, 0) == 7
    with pytest.raises(AlreadyStarted) as e:
        await within(10, Counter.start(0, name=name))
    assert e.value.pid == pid
    await GenServer.stop(name)
    await until(lambda: global_.whereis_name(Atom("counter")) is None)
    assert GenServer.whereis(name) is None


async def test_init_sees_its_global_name_registered(node: DistNode) -> None:
    seen: list[Pid | None] = []

    class Probe(GenServer[None]):
        async def init(self, _: Any) -> None:
            seen.append(global_.whereis_name(Atom("probe")))

    pid = await within(10, Probe.start_link(None, name=Global(Atom("probe"))))
    assert seen == [pid]


async def test_a_global_name_is_seen_by_another_beamlet_node(
    node: DistNode, epmd_port: int
) -> None:
    async with beamlet_node(epmd_port, hidden=False) as other:
        assert await connect(other.name)
        await within(10, global_.sync())
        pid = await within(10, Counter.start_link(10, name=Global(Atom("shared"))))

        async def remote_call() -> Any:
            await until(lambda: global_.whereis_name(Atom("shared")) is not None)
            return await GenServer.call(Global(Atom("shared")), 1)

        assert await on(other, remote_call) == 11
        assert GenServer.whereis(Global(Atom("shared"))) == pid


async def test_gen_server_call_global_both_ways_with_erlang(
    node: DistNode, epmd_port: int, erl: str | None
) -> None:
    async with erl_peer(epmd_port, erl=erl) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        await within(10, Counter.start_link(0, name=Global(Atom("py_srv"))))
        # Erlang calls the beamlet server by its global name.
        got = await e.eval(
            "ok = global:sync(), gen_server:call({global, py_srv}, ping, 5000).", timeout=15
        )
        assert got == (Atom("pong"), node.name)
        assert await e.eval("gen_server:call({global, py_srv}, 3, 5000).", timeout=15) == 3
        # beamlet calls an Erlang process registered globally (it answers gen calls).
        await e.eval(
            "P = spawn(fun L() -> receive {'$gen_call', F, R} -> gen:reply(F, {pong, R}),"
            " L() end end), yes = global:register_name(erl_srv, P), ok."
        )
        await until(lambda: global_.whereis_name(Atom("erl_srv")) is not None)
        assert await GenServer.call(Global(Atom("erl_srv")), Atom("hi")) == (
            Atom("pong"),
            Atom("hi"),
        )
        # A name Erlang holds is `already_started` for a beamlet start.
        with pytest.raises(AlreadyStarted) as taken:
            await within(10, Counter.start(0, name=Global(Atom("erl_srv"))))
        assert taken.value.pid == global_.whereis_name(Atom("erl_srv"))


def busy(stop: list[bool]) -> Any:
    """A process doing CPU work in 1 ms slices, yielding between them (it awaits every
    millisecond) until `stop` is set (a closure: arguments would be copied)."""

    async def run() -> None:
        while not stop:
            t = time.perf_counter()
            while time.perf_counter() - t < 0.001:
                pass
            await beamlet.sleep(0)

    return run


REGISTER_FOR = (
    "Deadline = erlang:monotonic_time(millisecond) + Ms,"
    " F = fun L(I) -> case erlang:monotonic_time(millisecond) < Deadline of"
    " true -> P = spawn(fun() -> receive stop -> ok end end),"
    " yes = global:register_name({node(), I}, P), L(I + 1); false -> I end end,"
    " N = F(0), ok = global:sync(), N."
)


@pytest.mark.dist(hidden=False, ticktime=2.0)
async def test_cpu_bound_python_processes_do_not_cost_ticks_or_global(
    node: DistNode, epmd_port: int
) -> None:
    """Python processes run busy loops (awaiting every millisecond) while two Erlang
    nodes register names through `global` (every registration locks the Python node
    too) for BEAMLET_SOAK_SECONDS (default 5; docs/distribution.md records a 60 s run).
    With a 2 s tick time, no connection drops and `global:sync()` returns."""
    seconds = float(os.environ.get("BEAMLET_SOAK_SECONDS", "5"))
    async with erl_peer(epmd_port, ticktime=2) as g1, erl_peer(epmd_port, ticktime=2) as g2:
        for e in (g1, g2):
            assert await connect(e.name)
            beamlet.distribution.monitor_node(e.name)
            assert await e.eval("global:sync().", timeout=15) == OK
        stop: list[bool] = []
        workers = [beamlet.spawn_monitor(busy(stop)) for _ in range(4)]
        t0 = time.monotonic()
        me = beamlet.self()

        def register_for(e: Any) -> Any:  # a closure: a Peer is not sendable
            async def run() -> None:
                n = await e.eval(REGISTER_FOR, Ms=int(seconds * 1000), timeout=seconds + 30)
                beamlet.send(me, (e.name, n))

            return run

        for e in (g1, g2):
            beamlet.spawn(register_for(e))
        counts = [(await beamlet.receive((e.name, ANY), timeout=seconds + 40))[1] for e in (g1, g2)]
        elapsed = time.monotonic() - t0
        stop.append(True)
        for _, ref in workers:
            await beamlet.receive(lambda m, r=ref: type(m) is Down and m.ref == r, timeout=5)
        assert await beamlet.receive(NodeDown, timeout=0, default=None) is None
        assert {g1.name, g2.name} <= set(beamlet.distribution.nodes())
        await within(10, global_.sync())
        for e, n in zip((g1, g2), counts, strict=True):
            assert n > 0
            assert global_.whereis_name((e.name, n - 1)) is not None
        print(f"\nglobal under CPU-busy Python processes: {sum(counts)} registrations in "
              f"{elapsed:.1f} s ({sum(counts) / elapsed:.0f}/s), no disconnect")  # fmt: skip
