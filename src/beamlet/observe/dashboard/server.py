"""The dashboard's aiohttp application: the page, the JSON endpoints and the live feed.

`/` is one static page (its script and style are files next to this one: no CDN, the
page works offline). `/api/<endpoint>` answers with JSON (`data.api`, 400 with
`{"error": ...}` for bad input); `/api/kill` needs a POST. `/api/events` is a stream of
server-sent events: the node overview every `interval` seconds, which the page draws
as charts and uses to refresh the view it shows (a restart moves the restart count).

Each request is answered by a fresh process of the observed node (`Source`), so a slow
or failing request never holds up the dashboard's own process or the node.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from beamlet._core import Node
from beamlet.observe.dashboard import data

try:
    from aiohttp import web
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(
        "beamlet.observe.dashboard needs the 'dashboard' extra: pip install beamlet[dashboard]"
    ) from e

__all__ = ["Source", "create_app", "local_source", "remote_source"]

STATIC = Path(__file__).parent / "static"
Source = Callable[[str, Mapping[str, Any]], Awaitable[tuple[int, Any]]]
_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


def local_source(node: Node) -> Source:
    """Answers from `node` itself: each request runs as a process of `node`.

    Examples:
        >>> from beamlet.observe import dashboard
        >>> source = dashboard.local_source(beamlet.current_node())
        >>> status, body = await source("processes", {"limit": "1"})
        >>> status, len(body["rows"])
        (200, 1)
    """

    async def source(path: str, params: Mapping[str, Any]) -> tuple[int, Any]:
        return await node.run(data.api, path, dict(params))

    return source


def remote_source(client: Node, target: Any, timeout: float = 5.0) -> Source:
    """Answers from the node `target` (it called `data.serve_api()`), asked over
    distribution by processes of `client`.

    Examples:
        >>> from beamlet.observe import dashboard
        >>> source = dashboard.remote_source(beamlet.current_node(), "py@127.0.0.1")
    """

    async def source(path: str, params: Mapping[str, Any]) -> tuple[int, Any]:
        try:
            result: tuple[int, Any] = await client.run(
                data.remote_api, target, path, dict(params), timeout
            )
        except Exception as e:
            return 502, {"error": f"node {target} did not answer: {e}"[:500]}
        return result

    return source


def create_app(source: Source, *, interval: float = 1.0, title: str = "beamlet") -> web.Application:
    """The dashboard as an aiohttp `Application` (serve it with `web.AppRunner`).

    Examples:
        >>> from beamlet.observe import dashboard
        >>> app = dashboard.create_app(dashboard.local_source(beamlet.current_node()))
        >>> len(app.router.routes()) >= 4
        True
    """

    async def index(request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text().replace("{{title}}", title)
        return web.Response(text=html, content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _FILES:
            raise web.HTTPNotFound()
        return web.Response(text=(STATIC / name).read_text(), content_type=_FILES[name])

    async def endpoint(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "kill" and request.method != "POST":
            return web.json_response({"error": "kill needs a POST"}, status=405)
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "the body must be JSON"}, status=400)
            if not isinstance(body, dict):
                return web.json_response({"error": "the body must be a JSON object"}, status=400)
            params.update(body)
        status, payload = await source(name, params)
        return web.json_response(payload, status=status)

    stopping = asyncio.Event()  # set at shutdown: the feeds end instead of lingering

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        try:
            while not stopping.is_set():
                status, payload = await source("overview", {})
                event = "overview" if status == 200 else "failure"
                await resp.write(f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode())
                try:  # the feed's period, cut short by shutdown
                    await asyncio.wait_for(stopping.wait(), interval)
                except TimeoutError:
                    pass
        except ConnectionResetError:  # the page went away
            pass
        return resp

    async def on_shutdown(app: web.Application) -> None:
        stopping.set()

    app = web.Application()
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/events", events)
    app.router.add_route("*", "/api/{name}", endpoint)
    return app
