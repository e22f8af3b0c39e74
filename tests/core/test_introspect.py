"""The kernel's read-only introspection API (`_core/introspect.py`, the Node's `lookup`,
`live_processes`, `run_queue_length`, `timeouts`, `set_trace`/`clear_trace`), which
beamlet.observe and beamlet.ets use instead of kernel internals (issue 9 §2)."""

from __future__ import annotations

import asyncio
from typing import Any

import beamlet
from beamlet import ANY, Down, GenServer, Node, NoReply
from beamlet._core import (
    ProcessView,
    Resources,
    await_chain,
    current_process,
    receive_wait,
)


async def _wait_for(node: Node, pid: beamlet.Pid, waiting: str) -> ProcessView:
    """The view of `pid` once it is parked on `waiting` (the caller yields until then)."""
    for _ in range(100):
        view = node.lookup(pid)
        assert view is not None
        if view.waiting == waiting:
            return view
        await asyncio.sleep(0)  # sleep-ok: a bounded yield while the other process parks
    raise AssertionError(f"{pid!r} never waited on {waiting}")


async def test_a_view_is_the_process_itself(node: Node) -> None:
    """`current_process()` and `lookup(self())` are the same object: ETS compares a
    table's owner with the caller by identity."""
    me = current_process()
    assert me is not None and me is node.lookup(beamlet.self())
    assert me.status == "running" and me.waiting is None and me.alive
    assert me.pid == beamlet.self() and me.node is node
    assert node.lookup("not a pid") is None  # type: ignore[arg-type]


async def test_what_a_parked_process_waits_for(node: Node) -> None:
    async def selective() -> None:
        await beamlet.receive(("go", ANY), timeout=30)

    async def any_message() -> None:
        await beamlet.receive()

    async def sleeper() -> None:
        await beamlet.sleep(30)

    async def on_future() -> None:
        await asyncio.get_running_loop().create_future()

    sel = node.spawn(selective)
    beamlet.send(sel, "unrelated")
    view = await _wait_for(node, sel, "receive")
    assert view.status == "waiting" and view.message_queue_len == 1
    assert view.peek_messages(5) == ["unrelated"]
    rw = receive_wait(await_chain(view)[0])
    assert rw.patterns == (("go", ANY),) and not rw.sleep and rw.matcher is not None
    assert 29.0 < node.timeouts()[sel] <= 30.0

    rw = receive_wait(await_chain(await _wait_for(node, node.spawn(sleeper), "receive"))[0])
    assert rw.sleep and rw.patterns == ()

    await _wait_for(node, node.spawn(any_message), "message")
    fut_view = await _wait_for(node, node.spawn(on_future), "future")
    assert fut_view.awaited_future is not None
    for pid in (sel, fut_view.pid):
        beamlet.exit(pid, beamlet.KILL)


class _Silent(GenServer[None]):
    async def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> NoReply[None]:
        return NoReply(state)


async def test_a_caller_shows_its_server_and_the_server_its_caller(node: Node) -> None:
    server = await _Silent.start_link(None)

    async def caller() -> None:
        await GenServer.call(server, "hello", timeout=30)

    c = node.spawn(caller)
    view = await _wait_for(node, c, "call")
    assert view.call_target == server and server in view.monitoring()
    server_view = node.lookup(server)
    assert server_view is not None and c in server_view.watchers()
    assert c in node.timeouts()
    beamlet.exit(c, beamlet.KILL)


async def test_links_in_term_order_and_live_processes(node: Node) -> None:
    async def idle() -> None:
        await beamlet.receive()

    pids = [beamlet.spawn_link(idle) for _ in range(3)]
    me = node.lookup(beamlet.self())
    assert me is not None and me.linked() == tuple(sorted(pids))
    live = [v.pid for v in node.live_processes()]
    assert set(pids) <= set(live) and live.index(pids[0]) < live.index(pids[2])
    assert me.footprint() > 0
    beamlet.process_flag(trap_exit=True)
    for pid in pids:
        beamlet.exit(pid, beamlet.KILL)


async def test_set_trace_once_and_clear_restores_the_fast_path(node: Node) -> None:
    async def echo() -> None:
        while True:
            await beamlet.receive()

    pid = node.spawn(echo)
    seen: list[tuple[str, Any]] = []
    assert node.set_trace(pid, lambda kind, p, peer, m: seen.append((kind, m)), receive=True)
    assert not node.set_trace(pid, lambda *a: None, receive=False)  # one hook per process
    beamlet.send(pid, "one")
    assert seen == [("receive", "one")]
    other = []
    node.clear_trace(pid, lambda *a: other.append(a))  # not its hook: it stays
    beamlet.send(pid, "two")
    assert seen[-1] == ("receive", "two")
    node.clear_trace(pid)
    beamlet.send(pid, "three")
    assert seen[-1] == ("receive", "two") and other == []
    beamlet.monitor(pid)
    beamlet.exit(pid, beamlet.KILL)
    await beamlet.receive(Down)
    view = node.lookup(pid)
    assert view is None or not view.alive


async def test_resources_hear_of_a_death_before_the_monitors(node: Node) -> None:
    """The `Resources` hook (ETS tables) runs at a death before links and monitors fire."""
    order: list[str] = []

    class Owned:
        def process_exited(self, process: ProcessView) -> None:
            order.append(f"exited {process.pid!r}")

        def owned_by(self, process: ProcessView) -> tuple[Any, ...]:
            return ("table",)

    hook: Resources = Owned()
    old, node.resources = node.resources, hook
    try:
        pid, _ref = beamlet.spawn_monitor(beamlet.sleep, 30)
        info = node.process_info(pid)
        assert info is not None and info.tables == ("table",)
        beamlet.exit(pid, beamlet.KILL)
        await beamlet.receive(Down)
        order.append("down")
        assert order == [f"exited {pid!r}", "down"]
    finally:
        node.resources = old


async def test_unique_ref_is_no_since_mark(node: Node) -> None:
    """`make_ref` marks the mailbox for `receive(since=ref)`; `unique_ref` must not move
    that mark (a telemetry span inside a call would break the call's receive)."""
    me = beamlet.self()
    beamlet.send(me, "old")
    ref = beamlet.make_ref()
    node.unique_ref()
    beamlet.send(me, "new")
    assert await beamlet.receive(since=ref, timeout=1) == "new"
    assert await beamlet.receive(timeout=1) == "old"
