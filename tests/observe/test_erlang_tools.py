"""Erlang's own tools on a beamlet node: observer_backend's entry points called from a
real erl node (shapes checked there), and etop in text mode listing Python processes."""

from __future__ import annotations

import asyncio
import contextlib
import os

import dist_nodes as dist

import beamlet
from beamlet import Atom, Pid, observe

COOKIE = dist.COOKIE
epmd_port = dist.epmd_port
node = dist.node  # the test's node, distributed (a DistNode)
erl_peer = dist.erl_peer
TIMEOUT = 20.0


async def parked_named(name: str) -> Pid:
    async def waiter() -> None:
        await beamlet.receive("never")

    pid = beamlet.spawn(waiter)
    beamlet.register(name, pid)
    for i in range(3):
        beamlet.send(pid, ("junk", i))
    return pid


async def test_observer_backend_entry_points_from_erl(node, epmd_port):
    observe.serve_erlang_tools()
    observe.serve_erlang_tools()  # idempotent
    pid = await parked_named("py_parked")
    await asyncio.sleep(0)  # sleep-ok: one bare yield to the loop
    async with erl_peer(epmd_port) as erl:
        n = {"N": node.name}
        assert await erl.eval("rpc:call(N, observer_backend, vsn, []).", **n) == (
            Atom("ok"),
            b"beamlet",
        )
        # System tab: a proplist with the keys observer reads, integers where it adds up.
        checks = await erl.eval(
            "L = rpc:call(N, observer_backend, sys_info, []),"
            "[is_list(L)] ++ [is_integer(proplists:get_value(K, L)) || K <- "
            "[uptime, run_queue, process_count, total, processes, schedulers, "
            "wordsize_internal, io_input]].",
            **n,
        )
        assert checks == [True] * 9
        # Processes tab: procs_info chunks of #etop_proc_info{}, then a normal exit.
        rows = await erl.eval(
            "process_flag(trap_exit, true),"
            "P = spawn_link(N, observer_backend, procs_info, [self()]),"
            "Rows = receive {procs_info, P, L} -> L after 5000 -> timeout end,"
            "Exit = receive {'EXIT', P, R} -> R after 5000 -> no_exit end,"
            "{Exit, [{element(1, X), is_pid(element(2, X)), is_integer(element(3, X)),"
            "  element(5, X), element(8, X), tuple_size(element(7, X))} || X <- Rows]}.",
            **n,
        )
        exit_reason, recs = rows
        assert exit_reason == Atom("normal")
        assert all(r[0] == Atom("etop_proc_info") and r[1] and r[2] and r[5] == 3 for r in recs)
        mine = [r for r in recs if r[3] == Atom("py_parked")]
        assert mine and mine[0][4] == 3  # its message queue length
        # etop's collector: {Pid, #etop_info{}} with the process list in field 9.
        info = await erl.eval(
            "P = spawn_link(N, observer_backend, etop_collect, [self()]),"
            "receive {P, I} -> {element(1, I), element(3, I), length(element(9, I)),"
            " is_list(element(8, I)), element(5, I)} after 5000 -> timeout end.",
            **n,
        )
        assert info[0] == Atom("etop_info") and info[1] == info[2] >= 2 and info[3]
        assert info[4][0][0] == 1  # scheduler_wall_time: [{1, Active, Total}]
        # Load Charts: fetch_stats sends {stats, 1, Wall, IO, Mem} until told to stop.
        stats = await erl.eval(
            "P = spawn_link(N, observer_backend, fetch_stats, [self(), 20]),"
            "R = receive {stats, 1, W, {{input, _}, {output, _}}, M} ->"
            " {is_list(W), is_integer(proplists:get_value(total, M))} after 5000 -> timeout end,"
            "P ! stop, R.",
            **n,
        )
        assert stats == (True, True)
        # Process detail: erlang:process_info/2 with a list and with one item.
        detail = await erl.eval(
            "rpc:call(N, erlang, process_info, [Pid, [registered_name, message_queue_len,"
            " status, trap_exit, links, dictionary, current_function]]).",
            Pid=pid,
            **n,
        )
        d = dict(detail)
        assert d[Atom("registered_name")] == Atom("py_parked")
        assert d[Atom("message_queue_len")] == 3 and d[Atom("status")] == Atom("waiting")
        assert d[Atom("trap_exit")] is False and d[Atom("current_function")][1].endswith("waiter")
        one = await erl.eval("rpc:call(N, erlang, process_info, [Pid, status]).", Pid=pid, **n)
        assert one == (Atom("status"), Atom("waiting"))
        exported = await erl.eval(
            "{rpc:call(N, erlang, function_exported, [observer_backend, procs_info, 1]),"
            " rpc:call(N, code, ensure_loaded, [observer_backend]),"
            " rpc:call(N, erlang, system_info, [wordsize])}.",
            **n,
        )
        assert exported == (True, (Atom("module"), Atom("observer_backend")), 8)
        beamlet.exit(pid, beamlet.KILL)
        gone = await erl.eval("rpc:call(N, erlang, process_info, [Pid, status]).", Pid=pid, **n)
        assert gone == Atom("undefined")


async def test_etop_text_mode_lists_python_processes(node, epmd_port):
    observe.serve_erlang_tools()
    await parked_named("py_etop_target")
    erl = dist.require_erl()
    name = f"{dist.unique('etop')}@{dist.LOOPBACK}"
    env = dict(os.environ, ERL_EPMD_PORT=str(epmd_port), ERL_CRASH_DUMP_SECONDS="0")
    env.pop("ERL_ROOTDIR", None)
    argv = [erl, "-noshell", "-hidden", "-name", name, "-setcookie", COOKIE, "-start_epmd",
            "false", "-s", "etop", "-output", "text", "-tracing", "off", "-interval", "1",
            "-lines", "50", "-sort", "msg_q", "-node", str(node.name)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                line = (await proc.stdout.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("etop ended:\n" + "".join(seen))
                seen.append(line)
                if "py_etop_target" in line:
                    break
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    text = "".join(seen)
    assert str(node.name) in text and "Name or Initial Func" in text
    row = seen[-1].split()
    assert row[1] == "py_etop_target" and row[-2] == "3"  # MsgQ column, then current fn
    assert row[-1].startswith("test_erlang_tools:"), text  # module:function/arity
