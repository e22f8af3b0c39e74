"""The web dashboard's JSON endpoints and their refusals, over HTTP (no browser): the app
under aiohttp's test client, the app served by a beamlet process, and a dashboard
attached to another node over distribution (with an Erlang node in its cluster view)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import dist_nodes as dist
import pytest
from aiohttp.test_utils import TestClient, TestServer

import beamlet
from beamlet import GenServer, Reply, Supervisor, ets, observe
from beamlet.observe import dashboard
from beamlet.observe.dashboard import data

epmd_port = dist.epmd_port


class Counter(GenServer[int]):
    async def init(self, start: int) -> int:
        return start

    async def handle_call(self, request: Any, from_: Any, count: int) -> Reply[int, int]:
        return Reply(count + 1, count + 1)


async def _hoarder() -> None:
    await beamlet.receive("never")


async def _known_tree() -> tuple[beamlet.Pid, beamlet.Pid]:
    """A supervisor with two counters, and a process whose mailbox nobody matches."""
    specs = [Counter.child_spec(0, name="c1", id="c1"), Counter.child_spec(7, name="c2", id="c2")]
    sup = await Supervisor.start_link(specs, strategy="one_for_one")
    h = beamlet.spawn(_hoarder)
    beamlet.register("hoarder", h)
    for i in range(25):
        beamlet.send(h, ("tick", i))
    return sup, h


async def _client() -> TestClient[Any, Any]:
    data.attach_counters(beamlet.current_node())
    app = dashboard.create_app(dashboard.local_source(beamlet.current_node()), interval=0.1)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _json(client: Any, path: str, status: int = 200, **params: Any) -> Any:
    r = await client.get(path, params={k: str(v) for k, v in params.items()})
    body = await r.json()
    assert r.status == status, body
    return body


async def test_json_endpoints_show_the_known_tree():
    sup, h = await _known_tree()
    tab = ets.new("dash_tab", access="public", named_table=True)
    ets.insert(tab, [(1, "a"), (2, "b")])
    client = await _client()
    try:
        ov = await _json(client, "/api/overview")
        assert ov["process_count"] >= 5 and ov["registered"] >= 3
        assert ov["dist_bytes_in"] == 0 and "restarts" in ov

        page = await _json(client, "/api/processes", sort="mailbox", limit=2)
        assert page["limit"] == 2 and len(page["rows"]) == 2 and page["more"]
        top = page["rows"][0]
        assert top["pid"] == repr(h) and top["label"] == "hoarder"
        assert top["message_queue_len"] == 25 and "25 queued not matching" in top["waiting"]
        second = await _json(client, "/api/processes", sort="mailbox", limit=2, offset=1)
        assert second["rows"][0]["pid"] == page["rows"][1]["pid"]
        found = await _json(client, "/api/processes", search="c2")
        assert [r["label"] for r in found["rows"]] == ["c2"]
        by_work = await _json(client, "/api/processes", sort="work", limit=200)
        works = [r["work"] for r in by_work["rows"]]
        assert works == sorted(works, reverse=True)

        c2 = beamlet.whereis("c2")
        assert await GenServer.call("c2", "x") == 8
        p = await _json(client, "/api/process", pid=repr(c2))
        assert p["behaviour"] == "GenServer" and p["sys_state"] == "8"
        assert p["links"] == [repr(sup)] and p["parent"] == repr(sup)
        assert p["waiting_text"] == "any message, forever"

        t = await _json(client, "/api/tree")
        [root] = t["roots"]
        assert root["pid"] == repr(sup) and root["restarts_text"] == "0/3 in 5s"
        assert [c["id"] for c in root["children"]] == ["c1", "c2"]

        tables = await _json(client, "/api/tables")
        [row] = [r for r in tables["rows"] if r["name"] == "dash_tab"]
        assert row["size"] == 2 and row["type"] == "set" and row["owner"] == repr(beamlet.self())

        cluster = await _json(client, "/api/cluster")
        assert cluster["nodes"][0]["self"] and cluster["nodes"][0]["kind"] == "beamlet"

        page = await client.get("/")
        assert page.status == 200 and "/static/app.js" in await page.text()
        js = await client.get("/static/app.js")
        assert js.status == 200 and "EventSource" in await js.text()
        assert (await client.get("/static/../data.py")).status == 404
    finally:
        await client.close()


async def test_bad_input_gets_a_400_and_the_node_keeps_answering():
    await _known_tree()
    client = await _client()
    try:
        cases = [
            ("/api/process", {"pid": "not-a-pid"}, 400, "bad pid 'not-a-pid'"),
            ("/api/process", {"pid": "<0.1.2.3>"}, 400, "expected <0.ID.SERIAL>"),
            ("/api/process", {"pid": "<0.9999999999.0>"}, 400, "out of range"),
            ("/api/process", {"pid": "x" * 4000}, 400, "bad pid"),
            ("/api/process", {}, 400, "bad pid"),
            ("/api/process", {"pid": "<0.4000000.0>"}, 404, "not alive"),
            ("/api/processes", {"limit": "1000000"}, 400, "limit must be in 1..200"),
            ("/api/processes", {"limit": "0"}, 400, "limit must be in 1..200"),
            ("/api/processes", {"limit": "ten"}, 400, "limit must be an integer"),
            ("/api/processes", {"offset": "900", "limit": "200"}, 400, "at most 1000"),
            ("/api/processes", {"offset": "-1"}, 400, "offset must be in"),
            ("/api/processes", {"sort": "pid"}, 400, "sort must be one of"),
            ("/api/nothing", {}, 404, "no endpoint"),
        ]
        for path, params, status, text in cases:
            body = await _json(client, path, status, **params)
            assert text in body["error"], (path, params, body)
        r = await client.get("/api/kill", params={"pid": "<0.1.0>"})
        assert r.status == 405
        r = await client.post("/api/kill", data=b"{not json", headers={"Content-Type": "x"})
        assert r.status == 400 and "JSON" in (await r.json())["error"]
        r = await client.post("/api/kill", json=["<0.1.0>"])
        assert r.status == 400
        r = await client.post("/api/kill", json={"pid": "<0.1"})
        assert r.status == 400 and "bad pid" in (await r.json())["error"]
        assert beamlet.is_alive(beamlet.self())
        assert (await _json(client, "/api/overview"))["process_count"] >= 4
    finally:
        await client.close()


async def test_kill_from_the_dashboard_and_the_restart_is_counted():
    await _known_tree()
    client = await _client()
    try:
        c1 = beamlet.whereis("c1")
        ref = beamlet.monitor(c1)
        r = await client.post("/api/kill", json={"pid": repr(c1)})
        assert r.status == 200 and (await r.json()) == {"killed": repr(c1)}
        down = await beamlet.receive(
            lambda m: isinstance(m, beamlet.Down) and m.ref == ref, timeout=2
        )
        assert down.reason == beamlet.Atom("killed")
        await _json(client, "/api/process", 404, pid=repr(c1))
        for _ in range(100):  # the restart reaches the counters through the telemetry sampler
            t = await _json(client, "/api/tree")
            if t["restarts"] == 1:
                break
            await asyncio.sleep(0.02)  # sleep-ok: polling the endpoint a browser would poll
        assert t["restarts"] == 1 and t["roots"][0]["restarts_text"] == "1/3 in 5s"
        assert beamlet.whereis("c1") not in (None, c1)
    finally:
        await client.close()


async def test_a_page_of_a_big_node_is_bounded():
    pids = [beamlet.spawn(_hoarder) for _ in range(5000)]
    for i, p in enumerate(pids[:50]):
        beamlet.send(p, i)
    client = await _client()
    try:
        page = await _json(client, "/api/processes", sort="memory", limit=200, offset=800)
        assert page["total"] >= 5000 and len(page["rows"]) == 200 and not page["more"]
        page = await _json(client, "/api/processes", sort="mailbox", limit=50)
        assert all(r["message_queue_len"] == 1 for r in page["rows"])
    finally:
        await client.close()


async def test_served_by_a_process_with_a_live_feed():
    await _known_tree()
    pid, port = await dashboard.serve_dashboard(port=0, interval=0.05)
    assert beamlet.is_alive(pid)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/api/events") as r,
    ):
        assert r.headers["Content-Type"] == "text/event-stream"
        events = []
        async for line in r.content:
            if line.startswith(b"event: "):
                events.append(line.strip())
            if len(events) == 3:
                break
        assert events == [b"event: overview"] * 3
    beamlet.unlink(pid)
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, beamlet.SHUTDOWN)
    await beamlet.receive(lambda m: isinstance(m, beamlet.Down) and m.ref == ref, timeout=5)
    with pytest.raises(beamlet.BadArgument):
        await dashboard.serve_dashboard(port=70000)
    with pytest.raises(beamlet.BadArgument):
        await dashboard.serve_dashboard(port=0, interval=0)


def test_parse_pid() -> None:
    node = beamlet.Node("py@host")
    assert dashboard.parse_pid("<0.42.7>", node) == beamlet.Pid("py@host", 42, 7, node.creation)
    assert dashboard.parse_pid(" 0.1.0 ", node).id == 1
    for bad in ("<1.2.3>", "<0.1>", "", None, 12, "<0.-1.0>"):
        with pytest.raises(data.DashboardError) as e:
            dashboard.parse_pid(bad, node)
        assert e.value.status == 400


async def _setup_target() -> None:
    dashboard.serve_api()
    h = beamlet.spawn(_hoarder)
    beamlet.register("remote_hoarder", h)
    for i in range(12):
        beamlet.send(h, i)


async def _remote_checks(port: int, target: str, client_name: str) -> None:
    async with aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{port}/api"
        async with s.get(f"{base}/processes", params={"sort": "mailbox", "limit": "3"}) as r:
            page = await r.json()
        assert page["node"] == target
        assert page["rows"][0]["label"] == "remote_hoarder"
        assert page["rows"][0]["message_queue_len"] == 12
        hoarder = page["rows"][0]["pid"]
        async with s.get(f"{base}/process", params={"pid": hoarder}) as r:
            assert r.status == 200 and (await r.json())["waiting"]["unmatched"] == 12
        async with s.get(f"{base}/process", params={"pid": "bogus"}) as r:
            assert r.status == 400 and "bad pid" in (await r.json())["error"]
        async with s.get(f"{base}/cluster") as r:
            nodes = {n["name"]: n for n in (await r.json())["nodes"]}
        assert nodes[target]["self"] and nodes[client_name]["kind"] == "beamlet"
        assert nodes[client_name]["bytes_in"] > 0 and nodes[client_name]["bytes_out"] > 0
        async with s.post(f"{base}/kill", json={"pid": hoarder}) as r:
            assert r.status == 200
        async with s.get(f"{base}/process", params={"pid": hoarder}) as r:
            assert r.status == 404


async def _serve_remote(target: str) -> int:
    _pid, port = await dashboard.serve_dashboard(port=0, target=target)
    return port


def test_attached_to_another_node_over_distribution(epmd_port: int) -> None:
    async def main() -> None:
        target = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        client = dist.DistNode(f"{dist.unique('dash')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        await target.start()
        await client.start()
        try:
            await target.run(_setup_target)
            holder: dict[str, Any] = {}

            async def serve_and_check() -> None:
                port = await _serve_remote(str(target.name))
                holder["port"] = port
                await _remote_checks(port, str(target.name), str(client.name))

            await asyncio.wait_for(client.run(serve_and_check), 20)
        finally:
            await client.stop()
            await target.stop()

    asyncio.run(main())


@pytest.mark.interop
def test_cluster_shows_python_and_erlang_nodes_side_by_side(epmd_port: int) -> None:
    async def main() -> None:
        node = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        await node.start()
        try:
            async with dist.erl_peer(epmd_port) as erl:

                async def check() -> None:
                    from beamlet.distribution import rpc

                    assert await rpc.call(erl.name, "erlang", "node", [], 5) == beamlet.Atom(
                        erl.name
                    )
                    status, body = await data.api("cluster", {})
                    assert status == 200
                    kinds = {n["name"]: n["kind"] for n in body["nodes"]}
                    assert kinds == {str(node.name): "beamlet", str(erl.name): "erlang"}
                    me, peer = body["nodes"]
                    assert me["self"] and me["version"].startswith("Python")
                    assert me["hidden"] is True  # DistNode's default, a hidden node
                    assert peer["version"] == "Erlang/OTP" and peer["hidden"] is True
                    assert peer["bytes_in"] > 0 and peer["bytes_out"] > 0

                await asyncio.wait_for(node.run(check), 20)
        finally:
            await node.stop()

    asyncio.run(main())


async def test_cluster_of_a_node_without_distribution():
    status, body = await data.api("cluster", {})
    assert status == 200
    assert body == {
        "nodes": [
            {
                "name": "nonode@nohost",
                "kind": "beamlet",
                "self": True,
                "hidden": None,
                "version": body["nodes"][0]["version"],
                "bytes_in": None,
                "bytes_out": None,
            }
        ]
    }


def test_cluster_lists_connections_from_nodes_info(epmd_port: int) -> None:
    """A visible pair: the view is what the distribution's public nodes_info() says."""

    async def main() -> None:
        a = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port,
                          hidden=False)  # fmt: skip
        b = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port,
                          hidden=False)  # fmt: skip
        await a.start()
        await b.start()
        try:

            async def view() -> Any:
                from beamlet.distribution import connect

                assert await connect(b.name)
                return await data.api("cluster", {})

            status, body = await a.run(view)
            assert status == 200
            [info] = a.d.nodes_info()
            me, peer = body["nodes"]
            assert me["name"] == str(a.name) and me["hidden"] is False
            assert peer["name"] == str(b.name) == str(info.node)
            assert (peer["kind"], peer["hidden"], peer["version"]) == ("beamlet", False, "Python")
            assert 0 < peer["bytes_in"] <= info.bytes_in and 0 < peer["bytes_out"] <= info.bytes_out
            ov = observe.node_overview(a)
            assert [(c.node, c.type, c.beamlet) for c in ov.connections] == [
                (b.name, "normal", True)
            ]
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_dist_bytes_reach_prometheus(epmd_port: int) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from beamlet.observe import prometheus

    async def main() -> None:
        a = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        b = dist.DistNode(f"{dist.unique('py')}@{dist.LOOPBACK}", epmd_port=epmd_port)
        await a.start()
        await b.start()
        try:

            async def ping() -> None:
                from beamlet.distribution import rpc

                assert await rpc.call(b.name, "erlang", "node", [], 5) == b.name

            await a.run(ping)
            text = prometheus.Exporter(a).render().decode()
            samples = {
                (s.name, s.labels.get("peer")): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }
            assert samples[("beamlet_dist_bytes_received_total", str(b.name))] > 0
            assert samples[("beamlet_dist_bytes_sent_total", str(b.name))] > 0
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())
