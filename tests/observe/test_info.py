"""beamlet.observe introspection: processes, process_info, why waiting, trees, windows."""

from __future__ import annotations

import asyncio

import pytest

import beamlet
from beamlet import ANY, ChildSpec, Down, GenServer, NoProcError, Pid, Reply, Supervisor, observe
from beamlet.observe import NodeUnreachable


async def _wait_parked(pid: Pid) -> None:
    """Let `pid` run until it parks (a few run-queue turns, no wall-clock sleep)."""
    for _ in range(20):
        await asyncio.sleep(0)  # sleep-ok: one bare yield to the loop
        if observe.process_info(pid, ["status"])["status"] == "waiting":
            return
    raise AssertionError(f"{pid!r} never parked")


async def waits_for_pong() -> None:
    await beamlet.receive(("pong", ANY), timeout=30.0)


class Counter(GenServer[int]):
    async def init(self, start: int) -> int:
        return start

    async def handle_call(self, request, from_, state):
        return Reply(state, state + 1)


async def test_processes_lists_every_live_process_with_columns():
    pid = beamlet.spawn(waits_for_pong)
    beamlet.register("ponger", pid)
    await _wait_parked(pid)
    rows = {r.pid: r for r in observe.processes()}
    assert beamlet.self() in rows
    row = rows[pid]
    assert row.label == "ponger" and row.registered_name == beamlet.Atom("ponger")
    assert row.initial_call.endswith("waits_for_pong")
    assert row.status == "waiting"
    assert row.current is not None and "test_info.py" in row.current  # file:line of the await
    assert "waits_for_pong" in row.current
    assert row.parent == beamlet.self()
    assert beamlet.self() in row.ancestors
    assert row.memory > 0


async def test_why_waiting_shows_pattern_deadline_and_unmatched_messages():
    pid = beamlet.spawn(waits_for_pong)
    for i in range(50):
        beamlet.send(pid, ("ping", i))
    await _wait_parked(pid)
    info = observe.process_info(pid, ["waiting", "message_queue_len"])
    w = info["waiting"]
    assert w.kind == "receive"
    assert "'pong'" in w.pattern and "ANY" in w.pattern
    assert w.deadline is not None and 0 < w.deadline <= 30.0
    assert w.unmatched == 50 == info["message_queue_len"]
    assert w.shapes[0] == ("('ping', …)/2", 50)
    assert "50 queued not matching" in str(w)


async def test_why_waiting_for_a_predicate_and_for_any_message():
    def is_big(m):
        return isinstance(m, int) and m > 10

    async def pred_waiter():
        await beamlet.receive(is_big)

    a = beamlet.spawn(pred_waiter)
    b = beamlet.spawn(beamlet.receive)
    beamlet.send(a, 1)
    await _wait_parked(a)
    await _wait_parked(b)
    wa = observe.process_info(a, ["waiting"])["waiting"]
    assert "predicate" in wa.pattern and "is_big" in wa.pattern and wa.deadline is None
    assert wa.unmatched == 1
    wb = observe.process_info(b, ["waiting"])["waiting"]
    assert wb.kind == "message" and wb.unmatched == 0


async def test_why_waiting_in_a_call_names_the_server():
    async def silent():
        await beamlet.receive(lambda m: False)

    server = beamlet.spawn(silent)

    async def caller():
        await GenServer.call(server, "hello", 20.0)

    c = beamlet.spawn(caller)
    await _wait_parked(c)
    await asyncio.sleep(0)  # sleep-ok: one bare yield to the loop
    w = observe.process_info(c, ["waiting"])["waiting"]
    assert w.kind == "call" and w.target == server
    assert w.deadline is not None and w.deadline <= 20.0
    # the server sees its caller among monitored_by, as in Erlang
    assert c in observe.process_info(server, ["monitored_by"])["monitored_by"]


async def test_genserver_kind_and_state_summary():
    pid = await Counter.start_link(41)
    await GenServer.call(pid, "x")
    info = observe.process_info(pid, ["behaviour", "module", "state", "label"])
    assert info["behaviour"] == "GenServer"
    assert info["module"] == "Counter" and info["label"] == "Counter"
    assert info["state"] == "42"


async def test_links_monitors_trap_exit():
    pid = beamlet.spawn_link(beamlet.receive)
    ref = beamlet.monitor(pid)
    beamlet.process_flag(trap_exit=True)
    me = observe.process_info(beamlet.self(), ["links", "monitors", "trap_exit", "status"])
    assert pid in me["links"] and pid in me["monitors"] and me["trap_exit"]
    assert me["status"] == "running"
    other = observe.process_info(pid, ["monitored_by", "links"])
    assert beamlet.self() in other["monitored_by"] and beamlet.self() in other["links"]
    beamlet.demonitor(ref)


async def test_dead_pid_and_bad_input_give_clear_errors():
    pid = beamlet.spawn(beamlet.receive)
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, beamlet.KILL)
    await beamlet.receive(Down(ref, ANY, ANY, ANY, ANY))
    with pytest.raises(NoProcError):
        observe.process_info(pid)
    with pytest.raises(beamlet.BadArgument, match="unknown process_info keys"):
        observe.process_info(beamlet.self(), ["nope"])
    with pytest.raises(beamlet.BadArgument):
        observe.process_info(beamlet.self(), "status")
    with pytest.raises(beamlet.BadArgument):
        observe.process_info("not a pid")  # type: ignore[arg-type]
    gone = Pid("gone@nowhere", 5, 0, 1)
    with pytest.raises(NodeUnreachable, match="not connected"):
        observe.process_info(gone)


async def test_outside_a_process_needs_node():
    with pytest.raises(beamlet.NotInProcess):
        await asyncio.get_running_loop().run_in_executor(None, observe.processes)


async def test_a_crashing_repr_does_not_break_introspection():
    class Bad:
        def __repr__(self):
            raise RuntimeError("boom")

    pid = beamlet.spawn(waits_for_pong)
    beamlet.send(pid, beamlet.Shared(Bad()))
    await _wait_parked(pid)
    rows = observe.processes()
    assert any(r.pid == pid for r in rows)


async def _start_worker(fn):
    return beamlet.spawn_link(fn)


async def test_supervisor_tree_and_restart_budget():
    async def worker():
        await beamlet.receive()

    sup = await Supervisor.start_link(
        [
            ChildSpec(id="a", start=_start_worker, args=(worker,)),
            Counter.child_spec(0, name="counter"),
        ],
        strategy="one_for_one",
        max_restarts=3,
        max_seconds=5.0,
    )
    info = observe.process_info(sup, ["behaviour", "restarts", "children"])
    assert info["behaviour"] == "Supervisor" and info["children"] == 2
    assert info["restarts"].used == 0 and info["restarts"].intensity == 3
    old = beamlet.whereis("counter")
    ref = beamlet.monitor(old)
    beamlet.exit(old, "boom")
    await beamlet.receive(Down(ref, ANY, ANY, ANY, ANY))
    await Supervisor.which_children(sup)  # answered after the restart is done
    assert observe.process_info(sup, ["restarts"])["restarts"].used == 1
    assert str(observe.process_info(sup, ["restarts"])["restarts"]) == "1/3 in 5s"
    [root] = [t for t in observe.supervision_tree() if t.pid == sup]
    assert [c.id for c in root.children] == ["a", Counter]
    assert [c.status for c in root.children] == ["running", "running"], root
    assert root.children[1].label == "counter" and root.children[1].restart == "permanent"
    assert root.type == "supervisor"


async def test_proc_window_ranks_by_work_and_mailbox_growth():
    async def busy(n):
        for _ in range(n):
            beamlet.send(beamlet.self(), "x")
            await beamlet.receive()
        await beamlet.receive()

    async def flooded():
        await beamlet.receive("never")

    f = beamlet.spawn(flooded)
    before = observe.sample()
    b = beamlet.spawn(busy, 200)
    for _ in range(30):
        beamlet.send(f, "junk")
    await _wait_parked(b)
    after = observe.sample()
    top = observe.top_diff(before, after, "work", 1)
    assert top[0].pid == b and top[0].value == 200
    grew = observe.top_diff(before, after, "message_queue_len", 1)
    assert grew[0].pid == f and grew[0].value == 30
    now = observe.proc_count("message_queue_len", 1)
    assert now[0].pid == f
    win = await observe.proc_window("work", 3, 0.01)
    assert len(win) == 3
    with pytest.raises(beamlet.BadArgument):
        observe.proc_count("memory", 1)


async def test_node_overview():
    mon = observe.start_lag_monitor(interval=0.01)
    for _ in range(10):
        beamlet.spawn(beamlet.receive)
    ref = beamlet.make_ref()
    beamlet.send_after(0.05, beamlet.self(), ref)
    await beamlet.receive(ref)
    ov = observe.node_overview()
    assert ov.process_count >= 11 and ov.process_limit is None
    assert ov.run_queue >= 0 and ov.per_process > 0 and ov.heap_blocks > 0
    assert ov.loop_lag is not None and ov.loop_lag >= 0
    assert mon is observe.start_lag_monitor()
    assert ov.connections == ()


async def test_processes_is_bounded_by_limit():
    for _ in range(20):
        beamlet.spawn(beamlet.receive)
    assert len(observe.processes(limit=5)) == 5
    with pytest.raises(beamlet.BadArgument):
        observe.processes(limit=-1)
