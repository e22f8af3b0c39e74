"""The Prometheus exporter: /metrics served by a beamlet process, parsed back."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import beamlet
from beamlet import ANY
from beamlet.observe import prometheus, telemetry


def _values(text: str) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out


async def scrape(port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        return _values(await r.text())


async def test_metrics_endpoint_serves_beamlet_metrics():
    pid, port = await prometheus.serve_metrics(port=0)
    assert port > 0 and beamlet.is_alive(pid)

    async def hoarder():
        await beamlet.receive("never")

    h = beamlet.spawn(hoarder)
    for i in range(7):
        beamlet.send(h, i)

    async def crasher():
        raise RuntimeError("counted")

    telemetry.attach("t", ("beamlet", "process", "crash"), _to(beamlet.self()))
    beamlet.spawn(crasher)
    await beamlet.receive(("crash", ANY), timeout=2)
    v = await scrape(port)
    assert v["beamlet_processes"] >= 3
    assert v["beamlet_mailbox_max"] == 7 and v["beamlet_mailbox_messages"] >= 7
    assert v["beamlet_crashes_total"] == 1
    assert v["beamlet_restarts_total"] == 0
    assert "beamlet_loop_lag_seconds_count" in v and "beamlet_run_queue_length" in v
    assert v["beamlet_dist_connections"] == 0


def _to(pid):
    def handler(event, m, md, config):
        beamlet.send(pid, ("crash", md["pid"]))

    return handler


async def test_a_scrape_during_a_storm_of_exits_is_bounded():
    _pid, port = await prometheus.serve_metrics(port=0)
    pids = [beamlet.spawn(beamlet.receive) for _ in range(5000)]
    for p in pids:
        beamlet.exit(p, beamlet.KILL)
    v = await scrape(port)
    assert v["beamlet_processes"] < 5000


async def test_bad_port():
    with pytest.raises(beamlet.BadArgument):
        await prometheus.serve_metrics(port=-1)
