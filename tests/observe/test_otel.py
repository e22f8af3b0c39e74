"""beamlet.observe.otel: telemetry spans and runtime events as OpenTelemetry spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import beamlet
from beamlet import Pid
from beamlet.observe import otel, telemetry
from beamlet.testing import assert_receive

pytestmark = pytest.mark.beamlet


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


def tracer_for(exporter: InMemorySpanExporter) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def names(spans: tuple[ReadableSpan, ...]) -> list[str]:
    return [s.name for s in spans]


async def test_a_span_becomes_an_opentelemetry_span(exporter: InMemorySpanExporter) -> None:
    otel.instrument_spans(("app", "query"), tracer=tracer_for(exporter))
    with telemetry.span(("app", "query"), {"table": "users", "who": beamlet.self()}) as extra:
        extra["rows"] = 3
    [span] = exporter.get_finished_spans()
    assert span.name == "app.query"
    attrs = dict(span.attributes or {})
    assert attrs["table"] == "users" and attrs["rows"] == 3
    assert attrs["who"] == repr(beamlet.self())  # a pid as its repr, not the object
    assert "telemetry_span_context" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    assert span.end_time is not None and span.start_time is not None


async def test_an_exception_in_the_span_is_recorded(exporter: InMemorySpanExporter) -> None:
    otel.instrument_spans(("app", "job"), tracer=tracer_for(exporter))
    with pytest.raises(ZeroDivisionError), telemetry.span(("app", "job")):
        1 / 0  # noqa: B018
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["exception.type"] == "ZeroDivisionError"


async def test_other_prefixes_are_not_reported(exporter: InMemorySpanExporter) -> None:
    otel.instrument_spans(("app", "query"), tracer=tracer_for(exporter))
    with telemetry.span(("app", "other")):
        pass
    assert exporter.get_finished_spans() == ()


async def test_instrumenting_twice_is_refused_and_uninstrument_stops_it(
    exporter: InMemorySpanExporter,
) -> None:
    otel.instrument_spans(("app", "query"), tracer=tracer_for(exporter))
    with pytest.raises(ValueError):
        otel.instrument_spans(("app", "query"), tracer=tracer_for(exporter))
    otel.uninstrument(("app", "query"))
    with telemetry.span(("app", "query")):
        pass
    assert exporter.get_finished_spans() == ()


async def test_open_spans_are_bounded(exporter: InMemorySpanExporter) -> None:
    # a process killed inside its span never sends `stop`: the oldest open span is ended
    otel.instrument_spans(("app", "q"), tracer=tracer_for(exporter), max_open=2)
    for ctx in range(3):
        telemetry.execute(("app", "q", "start"), {}, {"telemetry_span_context": ctx})
    [abandoned] = exporter.get_finished_spans()
    assert abandoned.attributes is not None and abandoned.attributes["beamlet.abandoned"]
    telemetry.execute(("app", "q", "stop"), {}, {"telemetry_span_context": 2})
    assert len(exporter.get_finished_spans()) == 2
    telemetry.execute(("app", "q", "stop"), {}, {"telemetry_span_context": 0})  # ended: no-op
    assert len(exporter.get_finished_spans()) == 2


async def test_a_process_crash_is_an_error_span(exporter: InMemorySpanExporter) -> None:
    otel.instrument_runtime(tracer=tracer_for(exporter))
    me = beamlet.self()
    # attached after the otel hook: runs after it, in the same sampler process
    telemetry.attach(
        "test-notify",
        ("beamlet", "process", "crash"),
        lambda e, m, md, pid: beamlet.send(pid, ("crashed", md["pid"])),
        me,
    )

    async def boom() -> None:
        raise RuntimeError("boom")

    pid: Pid = beamlet.spawn(boom)
    await assert_receive(("crashed", pid), timeout=5)
    [span] = [s for s in exporter.get_finished_spans() if s.name == "beamlet.process.crash"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["pid"] == repr(pid)
    otel.uninstrument()  # the runtime events stay on for the other handlers
    assert [h.id for h in telemetry.list_handlers(("beamlet", "process", "crash"))] == [
        "test-notify"
    ]
