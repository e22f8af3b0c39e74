"""A Prometheus exporter: `beamlet_*` metrics on `/metrics`, served by a beamlet process.

Needs the `prometheus` extra (`pip install beamlet[prometheus]`: prometheus-client and
aiohttp). Gauges are read from the node at scrape time (bounded work: one pass over the
process table, no frames); counters and the loop-lag histogram are fed by the runtime's
telemetry events (`telemetry.attach_runtime_events`, started here).

Metrics: `beamlet_processes`, `beamlet_run_queue_length`, `beamlet_mailbox_messages`
(all queued messages), `beamlet_mailbox_max` (the longest queue), `beamlet_registered_names`,
`beamlet_memory_rss_bytes`, `beamlet_loop_lag_seconds` (histogram),
`beamlet_crashes_total`, `beamlet_restarts_total`, `beamlet_dist_connections`,
`beamlet_dist_bytes_received_total` / `beamlet_dist_bytes_sent_total` (per peer; every
distribution connection counts them), `beamlet_call_duration_seconds` (histogram by
`outcome`: one `GenServer.call` in `call_sample_every` timed, `observe.calls`).

Examples:
    >>> import aiohttp
    >>> from beamlet.observe import prometheus
    >>> pid, port = await prometheus.serve_metrics(port=0)   # 9568 by default
    >>> async with aiohttp.ClientSession() as http:
    ...     async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
    ...         text = await r.text()
    >>> [line for line in text.splitlines() if line.startswith("beamlet_processes ")]
    ['beamlet_processes 3.0']

    (This process, the server and the sampler of the runtime's events.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from beamlet._core import Node, Pid
from beamlet.observe import calls, serving, telemetry
from beamlet.observe.info import live_procs, node_of
from beamlet.observe.overview import _rss, connections

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(
        "beamlet.observe.prometheus needs the 'prometheus' extra: pip install beamlet[prometheus]"
    ) from e

__all__ = ["CONTENT_TYPE", "Exporter", "serve_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# a call between two local processes takes ~10 µs; a slow server, seconds
CALL_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class _NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        n = self.node
        count = queued = longest = 0
        for p in live_procs(n):
            count += 1
            q = p.message_queue_len
            queued += q
            longest = max(longest, q)
        yield GaugeMetricFamily("beamlet_processes", "Live processes.", value=count)
        yield GaugeMetricFamily(
            "beamlet_run_queue_length", "Processes ready to run.", value=n.run_queue_length()
        )
        yield GaugeMetricFamily(
            "beamlet_mailbox_messages", "Messages queued in all mailboxes.", value=queued
        )
        yield GaugeMetricFamily("beamlet_mailbox_max", "The longest message queue.", value=longest)
        yield GaugeMetricFamily(
            "beamlet_registered_names", "Registered names.", value=len(n.registered())
        )
        rss = _rss()
        if rss is not None:
            yield GaugeMetricFamily(
                "beamlet_memory_rss_bytes", "Resident memory of the OS process.", value=rss
            )
        conns = connections(n)
        yield GaugeMetricFamily(
            "beamlet_dist_connections", "Distribution connections.", value=len(conns)
        )
        rx = CounterMetricFamily(
            "beamlet_dist_bytes_received", "Bytes received from a peer.", labels=["peer"]
        )
        tx = CounterMetricFamily(
            "beamlet_dist_bytes_sent", "Bytes sent to a peer.", labels=["peer"]
        )
        for c in conns:
            if c.bytes_in is not None:
                rx.add_metric([str(c.node)], c.bytes_in)
            if c.bytes_out is not None:
                tx.add_metric([str(c.node)], c.bytes_out)
        yield rx
        yield tx


class Exporter:
    """The metrics of one node in their own `CollectorRegistry`. `call_sample_every`:
    time one call in that many (`observe.calls`), None to time none.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> from beamlet.observe import prometheus
        >>> class Echo(GenServer):
        ...     async def init(self, arg):
        ...         return arg
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(request, state)
        >>> exporter = prometheus.Exporter(beamlet.current_node(), call_sample_every=1)
        >>> exporter.attach()   # feeds the counters and histograms from now on
        >>> pid = await Echo.start_link(None)
        >>> for i in range(3):
        ...     _ = await GenServer.call(pid, i)
        >>> text = exporter.render().decode()
        >>> [ln for ln in text.splitlines() if ln.startswith("beamlet_call_duration_seconds_co")]
        ['beamlet_call_duration_seconds_count{outcome="ok"} 3.0']
    """

    def __init__(self, node: Node, call_sample_every: int | None = 100) -> None:
        self.node = node
        self.call_sample_every = call_sample_every
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_NodeCollector(node))
        self.crashes = Counter(
            "beamlet_crashes", "Processes that ended with an exception.", registry=self.registry
        )
        self.restarts = Counter(
            "beamlet_restarts", "Children restarted by a supervisor.", registry=self.registry
        )
        self.lag = Histogram(
            "beamlet_loop_lag_seconds",
            "How late the event loop ran a timer (sampled).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.calls = Histogram(
            "beamlet_call_duration_seconds",
            "GenServer.call latency, from the request to the reply (sampled).",
            ["outcome"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.handler_id = ("beamlet.observe.prometheus", id(self))

    def attach(self) -> None:
        from beamlet.observe.overview import start_lag_monitor

        start_lag_monitor(self.node)
        telemetry.attach_runtime_events(node=self.node)
        telemetry.attach_many(
            self.handler_id,
            [
                ("beamlet", "process", "crash"),
                ("beamlet", "supervisor", "restart"),
                ("beamlet", "vm", "summary"),
            ],
            self._on_event,
            node=self.node,
        )
        if self.call_sample_every is not None:
            current = calls.sampler(self.node)
            if current is None or current.every > self.call_sample_every:
                calls.sample_calls(self.call_sample_every, node=self.node)
            telemetry.attach(
                (*self.handler_id, "calls"), calls.EVENT, self._on_call, node=self.node
            )

    def _on_call(self, event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        self.calls.labels(metadata["outcome"]).observe(measurements["duration"])

    def _on_event(self, event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        if event[-1] == "crash":
            self.crashes.inc()
        elif event[-1] == "restart":
            self.restarts.inc()
        else:
            self.lag.observe(float(measurements.get("loop_lag") or 0.0))

    def render(self) -> bytes:
        """The exposition text, as `/metrics` serves it."""
        return generate_latest(self.registry)


def _app(exporter: Exporter) -> Any:
    from aiohttp import web

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=exporter.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def serve_metrics(
    port: int = 9568, host: str = "127.0.0.1", *, call_sample_every: int | None = 100
) -> tuple[Pid, int]:
    """Serve `/metrics` from a new process linked to the caller; returns its pid and the
    port it listens on (`port=0` picks a free one). One `GenServer.call` in
    `call_sample_every` is timed for `beamlet_call_duration_seconds` (None: none). Call
    it from a process.

    Examples:
        >>> from beamlet.observe import prometheus
        >>> pid, port = await prometheus.serve_metrics(port=0)
        >>> beamlet.is_alive(pid), 0 < port < 65536
        (True, True)
        >>> await prometheus.serve_metrics(port=0, call_sample_every=0)
        Traceback (most recent call last):
        ...
        beamlet.BadArgument: call_sample_every must be an int in 1..1073741824, not 0
    """
    serving.check_port(port)
    if call_sample_every is not None:
        calls.check_every(call_sample_every, "call_sample_every")
    exporter = Exporter(node_of(None), call_sample_every)
    exporter.attach()
    return await serving.serve_app(lambda: _app(exporter), host, port, "metrics server")
