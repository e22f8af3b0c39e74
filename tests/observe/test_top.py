"""`beamlet top`, driven with textual's pilot against another node over distribution."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dist_nodes as dist
import pytest

import beamlet
from beamlet.observe import remote
from beamlet.observe.top import TopApp, local_fetch, remote_fetch

epmd_port = dist.epmd_port
SHOTS = Path(__file__).resolve().parent / "screenshots"


async def _hoarder() -> None:
    await beamlet.receive("never")


async def _busy(n: int) -> None:
    for i in range(n):
        beamlet.send(beamlet.self(), i)
        await beamlet.receive()
    await beamlet.receive("never")


async def _setup() -> None:
    remote.serve()
    h = beamlet.spawn(_hoarder)
    beamlet.register("hoarder", h)
    for i in range(500):
        beamlet.send(h, ("tick", i))
    b = beamlet.spawn(_busy, 2000)
    beamlet.register("busy", b)


async def _refreshed(app: TopApp) -> None:
    await asyncio.wait_for(app.refreshed.wait(), 10)


def test_top_remote_sorts_and_searches(epmd_port: int, tmp_path: Path) -> None:
    async def main() -> None:
        target = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        client = dist.DistNode(f"{dist.unique('top')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        await target.start()
        await client.start()
        try:
            await target.run(_setup)
            app = TopApp(remote_fetch(client, target.name), interval=30.0, limit=10)
            async with app.run_test(size=(170, 30)) as pilot:
                await _refreshed(app)
                assert app.rows[0].label == "hoarder" and app.rows[0].message_queue_len == 500
                assert "500 queued not matching" in app.rows[0].waiting
                app.refreshed.clear()
                await pilot.press("w")
                await _refreshed(app)
                assert app.sort == "work" and app.rows[0].label == "busy"
                await pilot.press("slash")
                await pilot.pause()
                assert app.focused is not None and app.focused.id == "search"
                app.refreshed.clear()
                await pilot.press(*"hoard", "enter")
                await _refreshed(app)
                assert [r.label for r in app.rows] == ["hoarder"]
                app.save_screenshot(str(tmp_path / "top.svg"))
                assert (tmp_path / "top.svg").read_text().count("hoarder") >= 1
                await pilot.press("q")
        finally:
            await client.stop()
            await target.stop()

    asyncio.run(main())


def test_top_local_and_a_node_that_went_away(epmd_port: int) -> None:
    async def main() -> None:
        node = beamlet.Node()
        await node.start()
        try:
            await node.run(_hoarder_named)
            app = TopApp(local_fetch(node), interval=30.0, limit=5)
            async with app.run_test() as pilot:
                await _refreshed(app)
                assert any(r.label == "hoarder" for r in app.rows)
                await pilot.press("q")

            async def failing(limit, sort, search):
                raise ConnectionError("node gone")

            app = TopApp(failing, interval=30.0)
            async with app.run_test() as pilot:
                await _refreshed(app)
                assert app.error == "ConnectionError: node gone"
                await pilot.press("q")
        finally:
            await node.stop()

    asyncio.run(main())
    with pytest.raises(ValueError):
        TopApp(local_fetch(beamlet.Node()), sort="bogus")


async def _hoarder_named() -> None:
    h = beamlet.spawn(_hoarder)
    beamlet.register("hoarder", h)
