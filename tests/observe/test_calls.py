"""Sampled call latency (observe.calls): the kernel's call probe, the telemetry event and
the Prometheus histogram `beamlet_call_duration_seconds`."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import beamlet
from beamlet import CallExit, GenServer, NoReply, Reply
from beamlet.observe import calls, prometheus, telemetry


class Slow(GenServer[float]):
    """Answers after `state` seconds (a known blocking server); "never" is not answered,
    "crash" kills it."""

    async def init(self, arg: float) -> float:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: float) -> Any:
        if request == "never":
            return NoReply(state)
        if request == "crash":
            raise RuntimeError("server crash")
        await beamlet.sleep(state)  # sleep-ok: the call latency under test (virtual time)
        return Reply(request, state)


def collect() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    telemetry.attach(
        "test-calls", calls.EVENT, lambda e, m, md, c: seen.append((dict(m), dict(md)))
    )
    return seen


def test_no_probe_by_default(node: beamlet.Node) -> None:
    assert node.call_probe is None


@pytest.mark.virtual_time
async def test_a_sampled_call_reports_its_latency() -> None:
    seen = collect()
    calls.sample_calls(every=1)
    pid = await Slow.start_link(0.5)
    assert await GenServer.call(pid, "hi") == "hi"
    [(m, md)] = seen
    assert m["duration"] == pytest.approx(0.5, abs=0.01)
    assert md == {"caller": beamlet.self(), "server": pid, "outcome": "ok", "every": 1}


@pytest.mark.virtual_time
async def test_one_call_in_n_is_sampled() -> None:
    seen = collect()
    sampler = calls.sample_calls(every=4)
    pid = await Slow.start_link(0.0)
    for i in range(10):
        assert await GenServer.call(pid, i) == i
    assert len(seen) == 2 and sampler.sampled == 2
    assert calls.sampler() is sampler


@pytest.mark.virtual_time
async def test_timeout_and_exit_outcomes() -> None:
    seen = collect()
    calls.sample_calls(every=1)
    pid = await Slow.start_link(0.0)
    beamlet.unlink(pid)
    with pytest.raises(CallExit):
        await GenServer.call(pid, "never", timeout=0.25)
    with pytest.raises(CallExit):
        await GenServer.call(pid, "crash")
    assert [md["outcome"] for _, md in seen] == ["timeout", "exit"]
    assert seen[0][0]["duration"] == pytest.approx(0.25, abs=0.01)


@pytest.mark.virtual_time
async def test_stop_sampling_calls() -> None:
    seen = collect()
    calls.sample_calls(every=1)
    assert calls.stop_sampling_calls() and not calls.stop_sampling_calls()
    assert beamlet.current_node().call_probe is None and calls.sampler() is None
    pid = await Slow.start_link(0.0)
    await GenServer.call(pid, 1)
    assert seen == []


@pytest.mark.virtual_time
async def test_a_failing_handler_never_fails_the_call() -> None:
    def bad(e: Any, m: Any, md: Any, c: Any) -> None:
        raise RuntimeError("handler bug")

    telemetry.attach("bad", calls.EVENT, bad)
    calls.sample_calls(every=1)
    pid = await Slow.start_link(0.0)
    assert await GenServer.call(pid, 1) == 1  # the handler is detached, the call returns
    assert telemetry.list_handlers(calls.EVENT) == []
    assert await GenServer.call(pid, 2) == 2


@pytest.mark.parametrize("every", [0, -1, 1.5, "10", True, 1 << 31])
async def test_bad_every(every: Any) -> None:
    with pytest.raises(beamlet.BadArgument):
        calls.sample_calls(every)
    assert calls.sampler() is None


def _histogram(text: str) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "beamlet_call_duration_seconds":
            for s in fam.samples:
                key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
                out[key] = s.value
    return out


@pytest.mark.virtual_time
async def test_prometheus_histogram_counts_calls() -> None:
    exporter = prometheus.Exporter(beamlet.current_node(), call_sample_every=1)
    exporter.attach()
    pid = await Slow.start_link(0.2)
    for i in range(3):
        await GenServer.call(pid, i)
    h = _histogram(exporter.render().decode())
    assert h["beamlet_call_duration_seconds_count{outcome=ok}"] == 3
    assert h["beamlet_call_duration_seconds_sum{outcome=ok}"] == pytest.approx(0.6, abs=0.03)
    assert h["beamlet_call_duration_seconds_bucket{le=0.1}{outcome=ok}"] == 0
    assert h["beamlet_call_duration_seconds_bucket{le=0.5}{outcome=ok}"] == 3


async def test_serve_metrics_samples_calls_unless_told_not_to() -> None:
    await prometheus.serve_metrics(port=0, call_sample_every=None)
    assert calls.sampler() is None
    await prometheus.serve_metrics(port=0, call_sample_every=7)
    sampler = calls.sampler()
    assert sampler is not None and sampler.every == 7
    with pytest.raises(beamlet.BadArgument):
        await prometheus.serve_metrics(port=0, call_sample_every=0)


def test_a_node_not_started_is_refused() -> None:
    node = beamlet.Node()
    with pytest.raises(beamlet.BadArgument, match="not started"):
        calls.sample_calls(node=node)
    assert node.call_probe is None


async def test_the_exporter_keeps_a_finer_sampler_and_replaces_a_coarser_one() -> None:
    node = beamlet.current_node()
    fine = calls.sample_calls(every=5)
    prometheus.Exporter(node, call_sample_every=100).attach()
    assert calls.sampler() is fine
    prometheus.Exporter(node, call_sample_every=2).attach()
    sampler = calls.sampler()
    assert sampler is not None and sampler is not fine and sampler.every == 2
