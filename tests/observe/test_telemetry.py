"""telemetry-style events (ported from beam-telemetry/telemetry's telemetry_SUITE where a
case applies) and the runtime's own events."""

from __future__ import annotations

import pytest

import beamlet
from beamlet import ANY, ChildSpec, GenServer, Supervisor
from beamlet.observe import telemetry


def to_me(tag):
    me = beamlet.self()

    def handler(event, measurements, metadata, config):
        md = {k: v for k, v in metadata.items() if k != "stacktrace"}  # frames: unsendable
        beamlet.send(me, (tag, event, dict(measurements), md, config))

    return handler


async def test_handler_is_invoked_on_event_with_config():  # telemetry_SUITE: invoke_handler
    telemetry.attach("h1", ("a", "b"), to_me("got"), {"c": 1})
    telemetry.execute(("a", "b"), {"latency": 5}, {"id": 7})
    msg = await beamlet.receive(("got", ANY, ANY, ANY, ANY), timeout=1.0)
    assert msg[1:] == (("a", "b"), {"latency": 5}, {"id": 7}, {"c": 1})
    telemetry.execute(("a",), {}, {})  # a prefix is another event
    assert await beamlet.receive(timeout=0, default=None) is None


async def test_duplicate_id_is_refused_and_detach():  # duplicate_attach / detach_handler
    telemetry.attach("h", ("x",), to_me("x"))
    with pytest.raises(ValueError, match="already attached"):
        telemetry.attach("h", ("y",), to_me("y"))
    assert [h.id for h in telemetry.list_handlers(("x",))] == ["h"]
    assert telemetry.detach("h") and not telemetry.detach("h")
    telemetry.execute(("x",), {}, {})
    assert await beamlet.receive(timeout=0, default=None) is None


async def test_attach_many_and_list_handlers_by_prefix():
    telemetry.attach_many("m", [("p", "one"), ("p", "two"), ("q",)], to_me("m"))
    assert sorted(h.event_name for h in telemetry.list_handlers(("p",))) == [
        ("p", "one"),
        ("p", "two"),
    ]
    telemetry.execute(("p", "two"), {"n": 1})
    assert (await beamlet.receive(timeout=1.0))[1] == ("p", "two")


async def test_failing_handler_is_detached_with_a_failure_event():  # detach_on_exception
    def bad(event, m, md, config):
        raise RuntimeError("handler bug")

    telemetry.attach("bad", ("e",), bad)
    telemetry.attach("watch", telemetry.FAILURE, to_me("fail"))
    telemetry.attach("good", ("e",), to_me("good"))
    telemetry.execute(("e",), {"v": 1})
    got = [await beamlet.receive(timeout=1.0), await beamlet.receive(timeout=1.0)]
    fail = next(g for g in got if g[0] == "fail")
    assert fail[3]["handler_id"] == "bad" and fail[3]["event_name"] == ("e",)
    assert isinstance(fail[3]["reason"], RuntimeError)
    assert any(g[0] == "good" for g in got)  # the other handlers still ran
    assert [h.id for h in telemetry.list_handlers(("e",))] == ["good"]


async def test_span_start_stop_and_exception():  # span_* cases
    telemetry.attach_many(
        "s", [("op", "start"), ("op", "stop"), ("op", "exception")], to_me("span")
    )
    with telemetry.span(("op",), {"k": 1}) as extra:
        extra["rows"] = 3
    start = await beamlet.receive(timeout=1.0)
    stop = await beamlet.receive(timeout=1.0)
    assert start[1] == ("op", "start") and stop[1] == ("op", "stop")
    assert stop[2]["duration"] >= 0 and stop[3]["rows"] == 3 and stop[3]["k"] == 1
    assert start[3]["telemetry_span_context"] is stop[3]["telemetry_span_context"]
    with pytest.raises(KeyError), telemetry.span(("op",)):
        raise KeyError("x")
    await beamlet.receive(timeout=1.0)  # start
    exc = await beamlet.receive(timeout=1.0)
    assert exc[1] == ("op", "exception") and exc[3]["kind"] == "KeyError"


async def test_bad_event_names():
    with pytest.raises(beamlet.BadArgument):
        telemetry.attach("z", "not-a-tuple", to_me("z"))  # type: ignore[arg-type]
    with pytest.raises(beamlet.BadArgument):
        telemetry.attach("z", (), to_me("z"))


class Crashy(GenServer[None]):
    async def init(self, arg):
        return None

    async def handle_call(self, request, from_, state):
        raise RuntimeError("crash on purpose")


async def test_runtime_events_crash_restart_mailbox_summary(caplog):
    sampler = telemetry.attach_runtime_events(interval=0.02)
    assert telemetry.attach_runtime_events() == sampler
    names = [
        ("beamlet", "process", "crash"),
        ("beamlet", "supervisor", "restart"),
        ("beamlet", "process", "mailbox_high"),
        ("beamlet", "vm", "summary"),
    ]
    telemetry.attach_many("rt", names, to_me("rt"))

    async def plain():
        raise ValueError("plain crash")

    beamlet.spawn(plain)
    crash = await beamlet.receive(("rt", ("beamlet", "process", "crash"), ANY, ANY, ANY), timeout=2)
    assert isinstance(crash[3]["reason"], beamlet.Crash) and crash[3]["initial_call"].endswith(
        "plain"
    )
    sup = await Supervisor.start_link([ChildSpec(id="c", start=Crashy.start_link)])
    [(_, child, _, _)] = await Supervisor.which_children(sup)
    with pytest.raises(beamlet.behaviours.gen_server.CallExit):
        await GenServer.call(child, "boom")
    r = await beamlet.receive(
        ("rt", ("beamlet", "supervisor", "restart"), ANY, ANY, ANY), timeout=2
    )
    assert r[3]["child_id"] == "c" and r[3]["child_pid"] == child

    async def hoarder():
        await beamlet.receive("never")

    h = beamlet.spawn(hoarder)
    for i in range(1000):
        beamlet.send(h, i)
    hw = await beamlet.receive(
        ("rt", ("beamlet", "process", "mailbox_high"), ANY, ANY, ANY), timeout=2
    )
    assert hw[3]["pid"] == h and hw[2]["threshold"] == 1000
    summary = await beamlet.receive(("rt", ("beamlet", "vm", "summary"), ANY, ANY, ANY), timeout=2)
    assert summary[2]["process_count"] >= 3
    telemetry.detach_runtime_events()
    beamlet.unlink(sup)
