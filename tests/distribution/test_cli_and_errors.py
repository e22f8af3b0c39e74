"""What a user meets first: the CLI's errors, Ctrl-C, and funs sent to a Python node
(issue 11 item 7)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dist_nodes import COOKIE, LOOPBACK, DistNode, elixir_peer, erl_peer, unique

import beamlet
from beamlet import Atom


def test_cli_missing_cookie_names_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from beamlet.__main__ import main

    monkeypatch.delenv("ERLANG_COOKIE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.erlang.cookie
    assert main(["node", "--name", "a@127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert "--cookie" in err and "cookie=" not in err


async def test_ctrl_c_stops_the_node_without_a_traceback(epmd_port: int, tmp_path: Path) -> None:
    # The guide's app.py ends with beamlet.run(main, name=..., cookie=...).
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import beamlet

            async def main():
                print("ready", flush=True)
                await beamlet.receive(beamlet.Atom("stop"))

            beamlet.run(main, name="{unique("app")}@{LOOPBACK}", cookie="{COOKIE}",
                        epmd_port={epmd_port})
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(Path(beamlet.__file__).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, str(app)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # SIGINT as in a shell (a background job would inherit it ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line == b"ready\n"
        proc.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 20)
        assert proc.returncode == 130
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
    finally:
        proc.kill()
        proc.wait()


async def test_erlang_fun_gets_a_clear_error(node: DistNode, epmd_port: int) -> None:
    async with erl_peer(epmd_port) as erl:
        n = {"N": node.name}
        got = await erl.eval("catch erpc:call(N, fun() -> ok end).", **n)
        assert got[0] == Atom("EXIT")
        assert b"funs from Erlang or Elixir cannot run" in repr(got).encode()
        got = await erl.eval(
            "process_flag(trap_exit, true), P = spawn_link(N, fun() -> ok end),"
            " receive {'EXIT', P, R} -> R after 5000 -> timeout end.",
            **n,
        )
        assert b"cannot run" in repr(got).encode()


async def test_elixir_node_spawn_link_fun(node: DistNode, epmd_port: int) -> None:
    async with elixir_peer(epmd_port) as ex:
        got = await ex.eval(
            "Process.flag(:trap_exit, true); pid = Node.spawn_link(n, fn -> :ok end); "
            "receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end",
            n=node.name,
        )
        assert "cannot run" in repr(got)


async def wait_for_stop() -> None:
    await beamlet.receive(Atom("stop"))


async def test_process_labels_name_the_function(node: DistNode) -> None:
    node.d.register_function("pymod", "wait", wait_for_stop)
    body, args = node.d.spawn_body(Atom("pymod"), Atom("wait"), [])
    pid = beamlet.spawn(body, *args)
    info = beamlet.process_info(pid)
    assert info is not None
    assert "partial" not in info.current_function
    assert info.current_function.endswith("wait_for_stop")
    beamlet.send(pid, Atom("stop"))


async def test_common_bifs_over_rpc(node: DistNode, epmd_port: int) -> None:
    async with erl_peer(epmd_port) as erl:
        n = {"N": node.name}

        async def call(src: str) -> object:
            return await erl.eval(f"rpc:call(N, {src}).", **n)

        assert await call("erlang, node, []") == node.name
        assert await call("erlang, nodes, []") == []  # the connection is hidden: we are
        assert await call("erlang, nodes, [hidden]") == [erl.name]
        assert await call("erlang, nodes, [connected]") == [erl.name]
        assert await call("erlang, nodes, [[this, connected]]") == [node.name, erl.name]
        assert await erl.eval('rpc:call(N, erlang, system_info, [otp_release]) =:= "25".', **n)
        assert await call("erlang, system_info, [process_count]") >= 1  # type: ignore[operator]
        assert await call("erlang, system_info, [schedulers_online]") == 1
        got = await call("erlang, system_info, [no_such_item]")
        assert got == (Atom("badrpc"), (Atom("EXIT"), (Atom("badarg"), [])))
        memory = dict(await call("erlang, memory, []"))  # type: ignore[call-overload]
        assert memory[Atom("total")] > 0
        assert await call("erlang, memory, [total]") > 0  # type: ignore[operator]
        runtime = await call("erlang, statistics, [runtime]")
        assert type(runtime) is tuple and len(runtime) == 2
        wall = await call("erlang, statistics, [wall_clock]")
        assert type(wall) is tuple and wall[0] >= 0
        assert await erl.eval("is_integer(erpc:call(N, erlang, system_time, [second])).", **n)
        me = beamlet.self()
        info = await erl.eval("rpc:call(N, erlang, process_info, [P, status]).", P=me, **n)
        assert info[0] == Atom("status")
        # fun M:F/A of a registered function runs through erlang:apply/2.
        node.d.register_function("pymod", "add", lambda a, b: a + b)
        assert await erl.eval("erpc:call(N, erlang, apply, [fun pymod:add/2, [1, 2]]).", **n) == 3
