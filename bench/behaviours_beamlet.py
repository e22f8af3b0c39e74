"""beamlet's OTP behaviours under load, one workload per fresh interpreter.

Usage: python -m bench.behaviours_beamlet {asyncio,uvloop} <workload> <ints...>

  call K        one client process, K sequential GenServer.call round trips: calls/s
                (also checks, once, that a call is monitor + alias based)
  callc C K     C client processes x K calls each to one server: total calls/s
  cast N        N GenServer.cast, then one call that returns the count: casts/s
  restart N     a one_for_one Supervisor with one GenServer child: kill the child, time
                until the restarted child has answered a call; median/p90 µs over N (a
                fresh supervisor every 100 restarts, as in behaviours_beam.erl)
  stream N      Task.async_stream(range(N), identity, max_concurrency=os.cpu_count()):
                µs per item, the whole stream consumed
  profile K     cProfile of the sequential call loop: the top functions, as text
  breakdown K   µs per round trip as the call protocol is built up step by step
"""

from __future__ import annotations

import cProfile
import io
import logging
import os
import pstats
import sys
from typing import Any

import beamlet
from beamlet import KILL, Pid, receive, send, spawn
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import GenServer, NoReply, Reply
from beamlet.behaviours.supervisor import Supervisor
from beamlet.behaviours.task import Task
from bench.behaviours_common import WARMUP, emit, emit_latencies, finish, ints, now


class Echo(GenServer[int]):
    async def init(self, arg: Any) -> int:
        return 0

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(request, state)


class Counter(GenServer[int]):
    async def init(self, arg: Any) -> int:
        return 0

    async def handle_cast(self, request: Any, state: int) -> NoReply[int]:
        return NoReply(state + 1)

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state, state)


class Child(GenServer[int]):
    """A supervised worker that tells the benchmark it has (re)started."""

    async def init(self, watcher: Pid) -> int:
        send(watcher, ("started", beamlet.self()))
        return 0

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(request, state)


async def call_loop(pid: Pid, k: int) -> None:
    call = GenServer.call
    for i in range(k):
        if await call(pid, i) != i:
            raise AssertionError("wrong reply")


class Prober(GenServer[Any]):
    """The server `check_monitor_alias_call` probes calls with."""

    async def init(self, arg: Any) -> Any:
        return None

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        if request == "who":  # who monitors me now?
            info = beamlet.process_info(beamlet.self())
            assert info is not None
            return Reply(from_.pid in info.monitored_by, state)
        if request == "die":
            beamlet.exit(beamlet.NORMAL)  # quietly: no crash report
        if request == "late":
            return NoReply(from_)  # answered after the caller has given up
        return Reply(request, state)

    async def handle_cast(self, request: Any, state: Any) -> NoReply[Any]:
        GenServer.reply(state, "too late")
        return NoReply(None)


async def check_monitor_alias_call() -> float:
    """1.0 if a call is built as Erlang's gen:call is (a monitor with an alias), checked
    by behaviour: the caller shows in the server's `monitored_by` during the call; a
    server that dies mid-call fails the call at once, not at its 5 s timeout; a reply
    after the call timed out never reaches the caller's mailbox (the alias is gone)."""
    from beamlet.behaviours.gen_server import CallExit

    probe = await Prober.start(None)
    assert probe is not None
    monitored = await GenServer.call(probe, "who")
    try:
        await GenServer.call(probe, "late", timeout=0.05)
        timed_out = False
    except CallExit as e:
        timed_out = e.cause == beamlet.Atom("timeout")
    GenServer.cast(probe, "answer now")
    assert await GenServer.call(probe, "sync") == "sync"  # the late reply was sent
    info = beamlet.process_info(beamlet.self())
    no_leak = info is not None and info.message_queue_len == 0
    t0 = now()
    try:
        await GenServer.call(probe, "die")
        fast_down = False
    except CallExit as e:
        fast_down = e.cause == beamlet.NORMAL and now() - t0 < 1.0
    ok = monitored is True and timed_out and no_leak and fast_down
    return 1.0 if ok else 0.0


async def call_w(k: int) -> None:
    pid = await Echo.start_link(None)
    assert pid is not None
    emit("monitor_alias", await check_monitor_alias_call())
    await call_loop(pid, WARMUP)
    t0 = now()
    await call_loop(pid, k)
    emit("calls_per_s", k / (now() - t0))


async def callc_w(c: int, k: int) -> None:
    pid = await Echo.start_link(None)
    assert pid is not None
    await call_loop(pid, WARMUP)
    me = beamlet.self()

    async def client() -> None:
        await call_loop(pid, k)
        send(me, "done")

    t0 = now()
    for _ in range(c):
        spawn(client)
    for _ in range(c):
        await receive()
    emit("calls_per_s", c * k / (now() - t0))


async def cast_w(n: int) -> None:
    pid = await Counter.start_link(None)
    assert pid is not None
    cast = GenServer.cast
    for i in range(WARMUP):
        cast(pid, i)
    assert await GenServer.call(pid, "count") == WARMUP
    t0 = now()
    for i in range(n):
        cast(pid, i)
    count = await GenServer.call(pid, "count", timeout=None)
    t1 = now()
    assert count == WARMUP + n, count
    emit("casts_per_s", n / (t1 - t0))


def is_started(m: Any) -> bool:
    return type(m) is tuple and len(m) == 2 and m[0] == "started"


RESTART_BATCH = 100  # restarts per supervisor: the restart history stays short


async def restart_w(n: int) -> None:
    # Supervisor reports go nowhere, as set for the BEAM: the restart itself is measured.
    logging.getLogger("beamlet").setLevel(logging.CRITICAL)
    me = beamlet.self()
    spec = ChildSpec(id="child", start=Child.start_link, args=(me,))
    samples = []
    left = n
    while left:
        batch = min(left, RESTART_BATCH)
        sup = await Supervisor.start_link(
            [spec], strategy="one_for_one", max_restarts=10 * batch + 10, max_seconds=1.0
        )
        assert sup is not None
        _, pid = await receive(is_started)
        for i in range(batch):
            t0 = now()
            beamlet.exit(pid, KILL)
            _, new = await receive(is_started)
            assert new != pid
            assert await GenServer.call(new, i) == i
            samples.append(now() - t0)
            pid = new
        await Supervisor.stop(sup)
        left -= batch
    emit_latencies("restart", samples)


def identity(x: Any) -> Any:
    return x


async def stream_w(n: int) -> None:
    async def consume(items: Any) -> int:
        count = 0
        async for kind, _ in Task.async_stream(
            items, identity, max_concurrency=os.cpu_count() or 1
        ):
            assert kind == "ok"
            count += 1
        return count

    await consume(range(WARMUP))
    t0 = now()
    assert await consume(range(n)) == n
    emit("stream_us_per_item", (now() - t0) / n * 1e6)


async def profile_w(k: int) -> None:
    pid = await Echo.start_link(None)
    assert pid is not None
    await call_loop(pid, WARMUP)
    prof = cProfile.Profile()
    t0 = now()
    prof.enable()
    await call_loop(pid, k)
    prof.disable()
    elapsed = now() - t0
    print(f"{k:,} sequential calls, {k / elapsed:,.0f} calls/s under cProfile")
    for key, n, what in (("tottime", 20, "own"), ("cumulative", 14, "cumulative")):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(n)
        text = out.getvalue()
        text = text[text.find("   ncalls") :].rstrip()  # drop pstats' preamble
        for mod in (beamlet, os):
            prefix = os.path.dirname(mod.__file__ or "") + os.sep
            text = text.replace(prefix, "")
        print(f"-- top {n} by {what} time --\n{text}")
    emit("calls_per_s_profiled", k / elapsed)


async def raw_server() -> None:
    """Answers `(dest, tag, request)` with `(tag, request)` sent to `dest`."""
    while True:
        dest, tag, request = await receive()
        send(dest, (tag, request))


async def breakdown_w(k: int) -> None:
    """µs per sequential round trip as the call protocol is built up, step by step, in
    one process: where a GenServer.call's time goes."""
    from beamlet import demonitor, make_ref, monitor
    from beamlet._core.terms import Atom, ImproperList

    me = beamlet.self()
    srv = spawn(raw_server)
    alias_atom = Atom("alias")

    async def plain(i: int) -> None:
        send(srv, (me, None, i))
        await receive()

    async def ref_since(i: int) -> None:
        r = make_ref()
        send(srv, (me, r, i))
        await receive(lambda m: type(m) is tuple and m[0] == r, since=r)

    async def monitor_alias(i: int) -> None:
        r = monitor(srv, alias="demonitor")
        send(srv, (r, r, i))
        await receive(lambda m: type(m) is tuple and m[0] == r, since=r)
        demonitor(r, flush=True)

    async def improper_tag(i: int) -> None:
        r = monitor(srv, alias="demonitor")
        tag = ImproperList((alias_atom,), r)  # gen_server's [alias | Ref] reply tag
        send(srv, (r, tag, i))
        await receive(lambda m: type(m) is tuple and m[0] == tag, since=r)
        demonitor(r, flush=True)

    pid = await Echo.start_link(None)
    assert pid is not None

    async def call_no_timer(i: int) -> None:
        await GenServer.call(pid, i, timeout=None)

    async def call(i: int) -> None:
        await GenServer.call(pid, i)

    steps = (
        ("send + receive() (plain ping-pong, no ref)", plain),
        ("+ fresh ref, receive(match, since=ref)", ref_since),
        ("+ monitor(alias=demonitor), reply to the alias, demonitor", monitor_alias),
        ("+ [alias | Ref] ImproperList tag (message isolation check)", improper_tag),
        ("GenServer.call(timeout=None): the fused kernel call, served inline", call_no_timer),
        ("GenServer.call, default 5 s timeout (armed only if still waiting)", call),
    )
    print(f"where a call's time goes: µs per sequential round trip ({k:,} each)")
    for n, (label, step) in enumerate(steps, 1):
        for i in range(WARMUP):
            await step(i)
        t0 = now()
        for i in range(k):
            await step(i)
        us = (now() - t0) / k * 1e6
        print(f"  {us:7.1f} µs  {label}")
        emit(f"breakdown_{n}_us", us)


WORKLOADS = {
    "call": call_w,
    "callc": callc_w,
    "cast": cast_w,
    "restart": restart_w,
    "stream": stream_w,
    "profile": profile_w,
    "breakdown": breakdown_w,
}


def main() -> None:
    loop, workload, *sizes = sys.argv[1:]
    if loop not in ("asyncio", "uvloop") or workload not in WORKLOADS:
        raise SystemExit(__doc__)
    beamlet.run(WORKLOADS[workload], *ints(sizes), use_uvloop=loop == "uvloop")
    finish()


if __name__ == "__main__":
    main()
