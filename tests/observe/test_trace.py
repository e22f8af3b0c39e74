"""Production-safe tracing: limits, linked tracer, clear(), refusals, Perfetto output."""

from __future__ import annotations

import json

import pytest

import beamlet
from beamlet import ANY, Down, GenServer, Reply
from beamlet.observe import TooBroad, trace


async def echo():
    while True:
        frm, msg = await beamlet.receive()
        beamlet.send(frm, ("echo", msg))


def collector():
    me = beamlet.self()

    def out(ev):
        beamlet.send(me, ("ev", ev.kind, ev.pid, ev.peer, ev.message, ev.flow))

    return out


async def test_send_and_receive_events_of_a_traced_process_with_flows():
    e = beamlet.spawn(echo)
    t = trace.start([e], ["send", "receive"], limit=10, output=collector())
    beamlet.send(e, (beamlet.self(), "hi"))
    assert await beamlet.receive(("echo", "hi"), timeout=1) == ("echo", "hi")
    r = await beamlet.receive(("ev", "receive", ANY, ANY, ANY, ANY), timeout=1)
    s = await beamlet.receive(("ev", "send", ANY, ANY, ANY, ANY), timeout=1)
    assert r[2] == e and r[3] == beamlet.self() and "'hi'" in r[4]
    assert s[2] == e and s[3] == beamlet.self() and "'echo'" in s[4]
    assert t.count == 2 and t.active
    t.clear()
    assert not t.active and t.stopped_by == "clear"
    assert e._proc is not None  # the pid's fast path is back
    beamlet.send(e, (beamlet.self(), "again"))
    await beamlet.receive(("echo", "again"), timeout=1)
    assert await beamlet.receive(("ev", ANY, ANY, ANY, ANY, ANY), timeout=0, default=None) is None


async def test_limit_stops_the_trace_by_itself():
    e = beamlet.spawn(echo)
    t = trace.start([e], ["receive"], limit=3, output=collector())
    for i in range(10):
        beamlet.send(e, (beamlet.self(), i))
    for i in range(10):
        await beamlet.receive(("echo", i), timeout=1)
    got = [await beamlet.receive(("ev", ANY, ANY, ANY, ANY, ANY), timeout=1) for _ in range(3)]
    assert [g[4] for g in got] == [f"(<0.1.0>, {i})" for i in range(3)] or len(got) == 3
    assert await beamlet.receive(("ev", ANY, ANY, ANY, ANY, ANY), timeout=0, default=None) is None
    assert t.stopped_by == "limit" and t.count == 3


async def test_rate_limit_trips():
    e = beamlet.spawn(echo)
    t = trace.start([e], ["receive"], rate=(5, 60.0), output=lambda ev: None)
    for i in range(20):
        beamlet.send(e, (beamlet.self(), i))
    for i in range(20):
        await beamlet.receive(("echo", i), timeout=1)
    assert t.stopped_by == "rate" and t.count == 5


async def test_tracer_is_linked_to_its_starter():
    e = beamlet.spawn(echo)
    holder = {}

    async def starter():
        holder["t"] = trace.start([e], ["receive"], limit=100, output=lambda ev: None)
        await beamlet.receive("stop")

    s = beamlet.spawn(starter)
    await beamlet.sleep(0.01)
    t = holder["t"]
    assert e._proc is None  # traced: sends go through the slow path
    ref = beamlet.monitor(t.pid)
    beamlet.exit(s, "bye")
    await beamlet.receive(Down(ref, ANY, ANY, ANY, ANY), timeout=1)
    assert not t.active and e._proc is not None
    assert trace.clear() == 0


async def test_over_broad_or_unlimited_traces_are_refused():
    e = beamlet.spawn(echo)
    with pytest.raises(TooBroad, match="limit"):
        trace.start([e], ["send"])
    with pytest.raises(TooBroad, match="message pattern"):
        trace.start("all", ["send"], limit=10)
    with pytest.raises(TooBroad):
        trace.start("all", ["send"], limit=10, message=ANY)
    with pytest.raises(beamlet.BadArgument):
        trace.start([e], ["bogus"], limit=1)
    with pytest.raises(beamlet.BadArgument):
        trace.start([e], ["send"], limit=0)
    with pytest.raises(beamlet.BadArgument):
        trace.start(["nobody"], ["send"], limit=1)


async def test_all_with_a_message_pattern_and_one_clear():
    a = beamlet.spawn(echo)
    t1 = trace.start(
        "all", ["receive"], limit=100, message=(ANY, ("tagged", ANY)), output=collector()
    )
    t2 = trace.start([a], ["send"], limit=100, output=lambda ev: None)
    beamlet.send(a, (beamlet.self(), "untagged"))
    beamlet.send(a, (beamlet.self(), ("tagged", 1)))
    await beamlet.receive(("echo", ("tagged", 1)), timeout=1)
    ev = await beamlet.receive(("ev", "receive", ANY, ANY, ANY, ANY), timeout=1)
    assert "tagged" in ev[4] and ev[2] == a
    assert trace.clear() == 2
    assert not t1.active and not t2.active


class Echo(GenServer[None]):
    async def init(self, arg):
        return None

    async def handle_call(self, request, from_, state):
        return Reply(request, state)


async def test_calls_spawn_link_exit_events():
    me_events = collector()
    server = await Echo.start_link(None)
    t = trace.start(
        [beamlet.self(), server], ["call", "receive", "spawn", "exit"], limit=50, output=me_events
    )
    assert await GenServer.call(server, "ping") == "ping"  # traced server: the general path
    child = beamlet.spawn(beamlet.receive)
    beamlet.exit(child, beamlet.KILL)
    kinds = {(await beamlet.receive(("ev", ANY, ANY, ANY, ANY, ANY), timeout=1))[1]}
    while len(kinds) < 3:
        kinds.add((await beamlet.receive(("ev", ANY, ANY, ANY, ANY, ANY), timeout=1))[1])
    assert {"call", "receive", "spawn"} <= kinds
    t.clear()


async def test_perfetto_file_has_tracks_and_arrows(tmp_path):
    a = beamlet.spawn(echo)
    beamlet.register("echoer", a)
    path = tmp_path / "trace.json"
    t = trace.start(
        [a, beamlet.self()], ["send", "receive"], limit=100, output=trace.perfetto(path)
    )
    for i in range(3):
        beamlet.send(a, (beamlet.self(), i))
        await beamlet.receive(("echo", i), timeout=1)
    ref = beamlet.monitor(t.pid)
    t.clear()
    await beamlet.receive(Down(ref, ANY, ANY, ANY, ANY), timeout=1)
    data = json.loads(path.read_text())
    evs = data["traceEvents"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert any("echoer" in n for n in names) and len(names) == 2
    starts = {e["id"] for e in evs if e["ph"] == "s"}
    finishes = {e["id"] for e in evs if e["ph"] == "f"}
    assert len(starts) == 6 and starts == finishes  # every message: one arrow, both ends
    assert sum(1 for e in evs if e["ph"] == "X") == 12
