"""What the dashboard shows, as JSON-ready dicts: one function per endpoint.

`api(path, params)` answers one request; it runs in a fresh process of the observed
node (so `sys`, `ets` and `exit` work), either that of the dashboard itself or, for a
dashboard attached over distribution, the node it watches (`beamlet_dashboard:api/2`,
registered by `serve_api`). Every input is checked here, at the boundary: a bad pid, an
unknown sort or a page past the caps is a `DashboardError` (HTTP 400), never a long scan.

Examples:
    >>> status, body = await data.api("processes", {"sort": "mailbox", "limit": "20"})
    >>> status, [row["pid"] for row in body["rows"]][:1]
    (200, ['<0.1.0>'])
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from beamlet import _core as kernel
from beamlet._core import Atom, BeamletError, Node, NodeVar, NoProcError, Pid, Ref
from beamlet.observe import telemetry
from beamlet.observe.errors import ObserveError
from beamlet.observe.info import process_info
from beamlet.observe.overview import connections, node_overview
from beamlet.observe.remote import SORTS, top_rows
from beamlet.observe.tree import TreeNode, supervision_tree

__all__ = ["MAX_DEPTH", "MAX_LIMIT", "DashboardError", "api", "counters", "parse_pid"]

MAX_LIMIT = 200  # rows in one page of the process table
MAX_DEPTH = 1000  # offset + limit: the table pages through the top 1,000 by the sort key
MAX_TABLES = 500
_PID = re.compile(r"^<?0\.(\d{1,10})\.(\d{1,10})>?$")
_COUNTS: NodeVar[dict[str, int]] = NodeVar("beamlet.observe.dashboard.counts", dict)
_HANDLER = ("beamlet.observe.dashboard", "counts")


class DashboardError(ObserveError):
    """A request the dashboard refuses: `status` is the HTTP status (400, 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_pid(text: Any, node: Node) -> Pid:
    """A pid of `node` from its text, `<0.ID.SERIAL>` (as the dashboard shows it).

    Examples:
        >>> from beamlet.observe import dashboard
        >>> dashboard.parse_pid("<0.42.0>", beamlet.current_node())
        <0.42.0>
        >>> dashboard.parse_pid("nonsense", beamlet.current_node())
        Traceback (most recent call last):
        ...
        beamlet.observe.dashboard.data.DashboardError: bad pid 'nonsense': expected <0.ID.SERIAL>
    """
    s = text if isinstance(text, str) else ""
    m = _PID.match(s.strip()) if len(s) <= 40 else None
    if m is None:
        shown = s[:40] if isinstance(text, str) else repr(text)[:40]
        raise DashboardError(400, f"bad pid {shown!r}: expected <0.ID.SERIAL>")
    ident, serial = int(m.group(1)), int(m.group(2))
    if ident > 0xFFFFFFFF or serial > 0xFFFFFFFF:
        raise DashboardError(400, f"bad pid {s!r}: a pid field is out of range")
    return Pid(node.name, ident, serial, node.creation)


def _int(params: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = int(str(raw), 10)
    except ValueError:
        raise DashboardError(400, f"{key} must be an integer, not {str(raw)[:40]!r}") from None
    if not lo <= v <= hi:
        raise DashboardError(400, f"{key} must be in {lo}..{hi}, not {v}")
    return v


def jsonable(x: Any, depth: int = 0) -> Any:
    """`x` with pids, atoms and refs as text and dataclasses as dicts (bounded depth)."""
    if x is None or type(x) in (bool, int, str):
        return x
    if type(x) is float:
        return x if math.isfinite(x) else None
    if type(x) in (Pid, Ref):
        return repr(x)
    if type(x) is Atom:
        return str(x)
    if depth > 6:
        return repr(x)[:200]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name), depth + 1) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(e, depth + 1) for e in list(x)[:1000]]
    if isinstance(x, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in list(x.items())[:1000]}
    return repr(x)[:200]


# --- counters fed by the runtime's telemetry events -----------------------------------


def counters(node: Node) -> dict[str, int]:
    """Restarts and crashes seen since the dashboard attached to `node` (0 before)."""
    return {"restarts": 0, "crashes": 0, **_COUNTS.get(node)}


def attach_counters(node: Node) -> None:
    """Count supervisor restarts and crashes on `node` (idempotent). Call from a process:
    the telemetry sampler it starts is linked to the caller."""
    counts = _COUNTS.get(node)
    counts.setdefault("restarts", 0)
    counts.setdefault("crashes", 0)

    def on_event(event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        key = "restarts" if event[-1] == "restart" else "crashes"
        counts[key] = counts.get(key, 0) + 1

    telemetry.attach_runtime_events(node=node)
    if not any(h.id == _HANDLER for h in telemetry.list_handlers(node=node)):
        telemetry.attach_many(
            _HANDLER,
            [("beamlet", "supervisor", "restart"), ("beamlet", "process", "crash")],
            on_event,
            node=node,
        )


# --- endpoints ---------------------------------------------------------------------------


def overview(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    ov = node_overview(node)
    out: dict[str, Any] = jsonable(ov)
    out["dist_bytes_in"] = sum(c.bytes_in or 0 for c in ov.connections)
    out["dist_bytes_out"] = sum(c.bytes_out or 0 for c in ov.connections)
    out.update(counters(node))
    out["time"] = time.time()
    return out


def processes(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    sort = str(params.get("sort") or "mailbox")
    if sort not in SORTS:
        raise DashboardError(400, f"sort must be one of {', '.join(SORTS)}, not {sort[:40]!r}")
    limit = _int(params, "limit", 50, 1, MAX_LIMIT)
    offset = _int(params, "offset", 0, 0, MAX_DEPTH - 1)
    if offset + limit > MAX_DEPTH:
        raise DashboardError(
            400, f"offset + limit must be at most {MAX_DEPTH} (the table ranks the top "
            f"{MAX_DEPTH}; search to narrow it), not {offset + limit}",
        )  # fmt: skip
    search = str(params.get("search") or "")[:100]
    ov, rows = top_rows(offset + limit, sort, node, search)
    return {
        "node": str(ov.node),
        "total": ov.process_count,
        "sort": sort,
        "search": search,
        "offset": offset,
        "limit": limit,
        "rows": [jsonable(r) for r in rows[offset:]],
        "more": len(rows) == offset + limit and offset + limit < MAX_DEPTH,
    }


async def process(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    from beamlet.behaviours import sys as sys_

    pid = parse_pid(params.get("pid"), node)
    try:
        info = process_info(pid, node=node)
    except NoProcError:
        raise DashboardError(404, f"no process {pid!r} (it is not alive)") from None
    out: dict[str, Any] = jsonable(info)
    out["pid"] = repr(pid)
    out["waiting_text"] = str(info["waiting"]) if info.get("waiting") is not None else None
    out["restarts_text"] = str(info["restarts"]) if info.get("restarts") is not None else None
    out["sys_state"] = None
    if info.get("behaviour") is not None:
        try:  # state via sys (the server answers between two messages): short timeout
            out["sys_state"] = _short(await sys_.get_state(pid, timeout=1.0))
        except Exception as e:
            out["sys_state_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def _short(v: Any) -> str:
    from beamlet.observe.info import short_repr

    return short_repr(v, 2000)


def kill(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    pid = parse_pid(params.get("pid"), node)
    if not node.is_alive(pid):
        raise DashboardError(404, f"no process {pid!r} (it is not alive)")
    kernel.exit(pid, Atom("kill"))
    return {"killed": repr(pid)}


def _tree(t: TreeNode) -> dict[str, Any]:
    return {
        "pid": repr(t.pid) if t.pid is not None else None,
        "id": _short(t.id) if not isinstance(t.id, str) else t.id,
        "label": t.label,
        "type": t.type,
        "restart": t.restart,
        "status": t.status,
        "restarts": jsonable(t.restarts),
        "restarts_text": str(t.restarts) if t.restarts is not None else None,
        "children": [_tree(c) for c in t.children],
    }


def tree(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"roots": [_tree(t) for t in supervision_tree(node)], **counters(node)}


def tables(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    from beamlet import ets

    refs = ets.all()
    rows = []
    for ref in refs[:MAX_TABLES]:
        try:
            rows.append(
                {
                    "id": _short(ref),
                    "name": str(ets.info(ref, "name")),
                    "type": str(ets.info(ref, "type")),
                    "protection": str(ets.info(ref, "protection")),
                    "owner": repr(ets.info(ref, "owner")),
                    "size": ets.info(ref, "size"),
                }
            )
        except Exception:  # deleted while we looked
            continue
    return {"total": len(refs), "rows": rows}


def cluster(node: Node, params: Mapping[str, Any]) -> dict[str, Any]:
    import sys

    dist: Any = node.dist
    me = {
        "name": str(node.name),
        "kind": "beamlet",
        "self": True,
        "hidden": getattr(dist, "hidden", None),
        "version": f"Python {sys.version.split()[0]}",
        "bytes_in": None,
        "bytes_out": None,
    }
    kinds = {True: ("beamlet", "Python"), False: ("erlang", "Erlang/OTP"), None: (None, None)}
    peers = [
        {
            "name": str(c.node),
            "kind": kinds[c.beamlet][0],
            "self": False,
            "hidden": None if c.type is None else c.type == "hidden",
            "version": kinds[c.beamlet][1],
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
        }
        for c in connections(node)
    ]
    return {"nodes": [me, *peers]}


_ENDPOINTS: dict[str, Callable[[Node, Mapping[str, Any]], Any]] = {
    "overview": overview,
    "processes": processes,
    "process": process,
    "kill": kill,
    "tree": tree,
    "tables": tables,
    "cluster": cluster,
}
ENDPOINTS = tuple(_ENDPOINTS)


async def api(path: str, params: Mapping[str, Any]) -> tuple[int, Any]:
    """Answer one dashboard request in the calling process's node: `(status, body)`.

    Examples:
        >>> await api("process", {"pid": "<0.x.0>"})
        (400, {'error': "bad pid '<0.x.0>': expected <0.ID.SERIAL>"})
    """
    node = kernel.current_node()
    fn = _ENDPOINTS.get(path)
    if fn is None:
        return 404, {"error": f"no endpoint {path[:40]!r}"}
    try:
        result = fn(node, params)
        if hasattr(result, "__await__"):
            result = await result
        return 200, result
    except DashboardError as e:
        return e.status, {"error": e.message}
    except BeamletError as e:
        return 400, {"error": f"{type(e).__name__}: {e}"[:500]}


# --- over distribution ---------------------------------------------------------------------


async def _wire_api(path: Any, params: Any) -> bytes:
    p = path.decode() if isinstance(path, bytes) else str(path)
    try:
        q = json.loads(params)
        if not isinstance(q, dict):
            raise ValueError
    except ValueError:
        return json.dumps([400, {"error": "params must be a JSON object"}]).encode()
    status, body = await api(p, q)
    return json.dumps([status, body]).encode()


def serve_api() -> None:
    """Let a dashboard on another node watch this one (`beamlet dashboard --node`):
    registers `beamlet_dashboard:api/2` and counts restarts. Call it from a process.

    Examples:
        >>> from beamlet.observe import dashboard
        >>> dashboard.serve_api()  # doctest: +SKIP
        >>> # then, elsewhere: beamlet dashboard --node py@host --cookie ...
    """
    from beamlet.distribution.api import register_function
    from beamlet.observe.overview import start_lag_monitor

    start_lag_monitor()
    attach_counters(kernel.current_node())
    register_function("beamlet_dashboard", "api", _wire_api)


async def remote_api(target: Any, path: str, params: Mapping[str, Any], timeout: float) -> Any:
    """`api` answered by the node `target` (which called `serve_api`), over `rpc.call`."""
    from beamlet.distribution import rpc

    raw = await rpc.call(
        target, "beamlet_dashboard", "api", [path.encode(), json.dumps(dict(params))], timeout
    )
    status, body = json.loads(raw)
    return int(status), body
