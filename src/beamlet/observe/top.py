"""`beamlet top`: a live, sortable top of a beamlet node in the terminal (textual).

Needs the `top` extra (`pip install beamlet[top]`). The app shows the node overview and
the top processes with their mailbox, work, memory, status and *why they wait*; keys:
`m` sort by mailbox, `w` by work, `r` by memory, `/` search, `q` quit.

From a shell, against a node that called `observe.serve()`:

    beamlet top --node py@127.0.0.1 --cookie secret

Example (embedded, for the node this code runs in):
    >>> app = TopApp(local_fetch(node))
    >>> await app.run_async()
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from beamlet._core import Node
from beamlet.observe.remote import SORTS, TopOverview, TopRow, top, top_rows

try:
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.widgets import DataTable, Footer, Input, Static
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError("beamlet top needs the 'top' extra: pip install beamlet[top]") from e

__all__ = ["Fetch", "TopApp", "local_fetch", "main", "remote_fetch"]

Fetch = Callable[[int, str, str], Awaitable[tuple[TopOverview, list[TopRow]]]]
COLUMNS = ("PID", "NAME", "STATUS", "MSGQ", "WORK", "MEMORY", "WAITING FOR", "AT")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _short_at(at: str) -> str:
    path, _, rest = at.partition(":")
    return f"{os.path.basename(path)}:{rest}" if rest else at


class TopApp(App[None]):
    """The top screen; `fetch(limit, sort, search)` supplies the rows."""

    CSS = """
    #overview { height: 3; padding: 0 1; background: $boost; }
    #search { display: none; }
    #search.shown { display: block; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("m", "sort('mailbox')", "mailbox"),
        Binding("w", "sort('work')", "work"),
        Binding("r", "sort('memory')", "memory"),
        Binding("slash", "search", "search"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self, fetch: Fetch, *, interval: float = 1.0, limit: int = 40, sort: str = "mailbox"
    ) -> None:
        super().__init__()
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, not {sort!r}")
        self.fetch = fetch
        self.interval = interval
        self.limit = limit
        self.sort = sort
        self.search = ""
        self.error: str | None = None
        self.refreshed = asyncio.Event()  # set after every refresh (tests wait on it)
        self.rows: list[TopRow] = []

    def compose(self) -> ComposeResult:
        yield Static("connecting…", id="overview")
        yield Input(placeholder="search pid, name or function; Enter to apply", id="search")
        yield DataTable(id="procs", zebra_stripes=True, cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()  # keys go to the bindings, not to the (hidden) search box
        await self.refresh_data()
        self.set_interval(self.interval, self.refresh_data)

    async def refresh_data(self) -> None:
        try:
            ov, rows = await self.fetch(self.limit, self.sort, self.search)
            self.error = None
        except Exception as e:  # a node that went away: say so, keep trying
            self.error = f"{type(e).__name__}: {e}"
            self.query_one("#overview", Static).update(f"[b red]{self.error}[/]")
            self.refreshed.set()
            return
        self.rows = rows
        lag = "-" if ov.loop_lag is None else f"{ov.loop_lag * 1000:.1f} ms"
        self.query_one("#overview", Static).update(
            f"[b]{ov.node}[/]  processes [b]{ov.process_count}[/]  run queue [b]{ov.run_queue}[/]"
            f"  loop lag [b]{lag}[/]  RSS [b]{_size(ov.rss)}[/]\n"
            f"sorted by [b]{self.sort}[/]"
            + (f"  search [b]{self.search!r}[/]" if self.search else "")
        )
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            table.add_row(
                repr(r.pid),
                r.label[-40:],
                r.status,
                str(r.message_queue_len),
                str(r.work),
                _size(r.memory),
                r.waiting[:60],
                _short_at(r.current)[:40],
            )
        self.refreshed.set()

    async def action_sort(self, key: str) -> None:
        self.sort = key
        self.refreshed.clear()
        await self.refresh_data()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.add_class("shown")
        self.call_after_refresh(box.focus)  # once it is displayed

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search = event.value.strip()
        event.input.remove_class("shown")
        self.query_one(DataTable).focus()
        self.refreshed.clear()
        await self.refresh_data()


def local_fetch(node: Node) -> Fetch:
    """Rows of `node` itself (the app runs in the same loop)."""

    async def fetch(limit: int, sort: str, search: str) -> tuple[TopOverview, list[TopRow]]:
        return top_rows(limit, sort, node, search)

    return fetch


def remote_fetch(client: Node, target: Any) -> Fetch:
    """Rows of another node, fetched with `rpc.call` by processes of `client`."""

    async def fetch(limit: int, sort: str, search: str) -> tuple[TopOverview, list[TopRow]]:
        result: tuple[TopOverview, list[TopRow]] = await client.run(
            top, target, limit, sort, search
        )
        return result

    return fetch


async def _run_remote(target: str, cookie: str | None, epmd_port: int | None, **app: Any) -> None:
    from beamlet.distribution import start_distribution

    host = target.partition("@")[2] or "127.0.0.1"
    client = Node(f"beamlet_top{os.getpid()}@{host}")
    await client.start()
    d = await start_distribution(client, cookie=cookie, epmd_port=epmd_port, hidden=True)
    try:
        await TopApp(remote_fetch(client, target), **app).run_async()
    finally:
        await d.stop()
        await client.stop()


def main(target: str, *, cookie: str | None, epmd_port: int | None, interval: float,
         limit: int, sort: str) -> int:  # fmt: skip
    """`beamlet top --node NAME`: the CLI entry point."""
    if "@" not in target:
        raise SystemExit("beamlet top: --node needs a full name@host")
    asyncio.run(_run_remote(target, cookie, epmd_port, interval=interval, limit=limit, sort=sort))
    return 0
