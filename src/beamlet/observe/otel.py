"""OpenTelemetry hooks: telemetry spans and the runtime's events as OpenTelemetry spans.

Needs the `otel` extra (`pip install beamlet[otel]`: opentelemetry-api; configure an SDK
and an exporter as for any OpenTelemetry program). `instrument_spans(prefix)` turns every
`telemetry.span(prefix)` into an OpenTelemetry span: `start` opens it, `stop` ends it
with the stop metadata as attributes, `exception` records the exception and an error
status. `instrument_runtime()` turns the runtime's events (process crashes, supervisor
restarts and reports, distribution connect/disconnect, mailbox high-water marks) into
zero-length spans, so a crash shows in the same trace backend as the request it broke.

Spans are keyed by telemetry's `telemetry_span_context`: a span whose process is killed
inside the block never stops, so at most `MAX_OPEN` spans are kept open per hook (the
oldest are ended, marked `beamlet.abandoned`), and the hook's memory stays bounded.

Examples:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    ...     InMemorySpanExporter)
    >>> from beamlet.observe import otel, telemetry
    >>> exporter = InMemorySpanExporter()
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> otel.instrument_spans(("app", "query"), tracer=provider.get_tracer("app"))
    >>> with telemetry.span(("app", "query"), {"table": "users"}) as extra:
    ...     extra["rows"] = 3
    >>> [(s.name, dict(s.attributes)) for s in exporter.get_finished_spans()]
    [('app.query', {'table': 'users', 'rows': 3})]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from beamlet._core import Node
from beamlet.behaviours.gen import safe_repr
from beamlet.observe import telemetry
from beamlet.observe.info import node_of

try:
    from opentelemetry import trace as ot
    from opentelemetry.trace import Span, Status, StatusCode, Tracer
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(
        "beamlet.observe.otel needs the 'otel' extra: pip install beamlet[otel]"
    ) from e

__all__ = ["MAX_OPEN", "instrument_runtime", "instrument_spans", "uninstrument"]

#: Open spans kept per `instrument_spans` hook before the oldest is ended as abandoned.
MAX_OPEN = 10_000

#: The runtime events `instrument_runtime` reports (see `beamlet.observe.telemetry`).
RUNTIME_EVENTS: tuple[telemetry.EventName, ...] = (
    ("beamlet", "process", "crash"),
    ("beamlet", "supervisor", "restart"),
    ("beamlet", "supervisor", "report"),
    ("beamlet", "process", "mailbox_high"),
    ("beamlet", "distribution", "connect"),
    ("beamlet", "distribution", "disconnect"),
)

_ATTRIBUTE_TYPES = (str, bool, int, float)


def _attributes(*maps: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str/bool/int/float values only: anything else as a bounded
    repr (a pid, a reason; as Erlang's ~P), never the object (a traceback would keep
    frames alive, and a deep term must not make logging raise)."""
    out: dict[str, Any] = {}
    for m in maps:
        for k, v in m.items():
            if k in ("telemetry_span_context", "stacktrace"):
                continue
            if type(v) in _ATTRIBUTE_TYPES:
                out[k] = v
            else:
                out[k] = safe_repr(v)
    return out


class _SpanHook:
    """One `instrument_spans` hook: the spans it opened, by span context, oldest first."""

    def __init__(self, tracer: Tracer, max_open: int) -> None:
        self.tracer = tracer
        self.max_open = max_open
        self.open: OrderedDict[Any, Span] = OrderedDict()

    def __call__(
        self,
        event: telemetry.EventName,
        measurements: Mapping[str, Any],
        metadata: Mapping[str, Any],
        config: Any,
    ) -> None:
        key = metadata.get("telemetry_span_context")
        kind = event[-1]
        if kind == "start":
            self.open[key] = self.tracer.start_span(
                ".".join(event[:-1]), attributes=_attributes(metadata)
            )
            while len(self.open) > self.max_open:
                _, stale = self.open.popitem(last=False)
                stale.set_attribute("beamlet.abandoned", True)
                stale.end()
            return
        span = self.open.pop(key, None)
        if span is None:
            return
        span.set_attributes(_attributes(metadata))
        if kind == "exception":
            reason = metadata.get("reason")
            if isinstance(reason, BaseException):
                span.record_exception(reason)
            span.set_status(Status(StatusCode.ERROR, str(metadata.get("kind", ""))))
        span.end()


def _hook_id(what: str, prefix: telemetry.EventName) -> tuple[str, ...]:
    return ("beamlet.observe.otel", what, *prefix)


def instrument_spans(
    prefix: telemetry.EventName,
    *,
    tracer: Tracer | None = None,
    max_open: int = MAX_OPEN,
    node: Node | None = None,
) -> None:
    """Report every `telemetry.span(prefix)` as an OpenTelemetry span named
    `".".join(prefix)` (telemetry handlers attach to exact event names: instrument each
    span prefix you use). `tracer` defaults to the global tracer provider's. Raises
    `ValueError` if that prefix is already instrumented on this node.

    Examples:
        >>> from beamlet.observe import otel, telemetry
        >>> otel.instrument_spans(("db", "query"))  # the global (no-op) tracer
        >>> with telemetry.span(("db", "query")):
        ...     pass
        >>> otel.uninstrument(("db", "query"))
    """
    prefix = tuple(prefix)
    hook = _SpanHook(tracer or ot.get_tracer("beamlet"), max_open)
    events = [(*prefix, k) for k in ("start", "stop", "exception")]
    telemetry.attach_many(_hook_id("spans", prefix), events, hook, node=node_of(node))


def _runtime_hook(tracer: Tracer) -> telemetry.Handler:
    def report(
        event: telemetry.EventName,
        measurements: Mapping[str, Any],
        metadata: Mapping[str, Any],
        config: Any,
    ) -> None:
        span = tracer.start_span(".".join(event), attributes=_attributes(measurements, metadata))
        if event[-1] == "crash":
            span.set_status(Status(StatusCode.ERROR, "process crashed"))
        span.end()

    return report


def instrument_runtime(*, tracer: Tracer | None = None, node: Node | None = None) -> None:
    """Report the runtime's events (`RUNTIME_EVENTS`) as zero-length OpenTelemetry spans;
    starts the runtime events (`telemetry.attach_runtime_events`) if they are not on.
    A crash's span has an error status. Raises `ValueError` if already instrumented.

    Examples:
        >>> from beamlet.observe import otel
        >>> otel.instrument_runtime()  # the global tracer provider's tracer
        >>> otel.uninstrument()
    """
    n = node_of(node)
    hook = _runtime_hook(tracer or ot.get_tracer("beamlet"))
    telemetry.attach_many(_hook_id("runtime", ()), list(RUNTIME_EVENTS), hook, node=n)
    telemetry.attach_runtime_events(node=n)


def uninstrument(prefix: telemetry.EventName | None = None, *, node: Node | None = None) -> None:
    """Detach the hook of `instrument_spans(prefix)`, or with no prefix that of
    `instrument_runtime` (the runtime events stay on for other handlers). Detaching what
    is not attached does nothing.

    Examples:
        >>> from beamlet.observe import otel
        >>> otel.uninstrument(("never", "instrumented"))
    """
    hid = _hook_id("runtime", ()) if prefix is None else _hook_id("spans", tuple(prefix))
    telemetry.detach(hid, node=node_of(node))
