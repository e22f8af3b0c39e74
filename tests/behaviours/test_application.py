"""`beamlet.run_app`: a supervision tree run as a program, tested with real subprocesses
and real signals. Each child prints a line when it starts and when its `terminate` (or
`finally`) runs; the tests check the order of those lines and the exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PRELUDE = textwrap.dedent(
    """
    import sys
    import beamlet
    from beamlet import Exit
    from beamlet.behaviours.application import run_app
    from beamlet.behaviours.child_spec import ChildSpec
    from beamlet.behaviours.gen_server import GenServer, NoReply
    from beamlet.behaviours.supervisor import Supervisor


    class Server(GenServer):
        async def init(self, tag):
            beamlet.process_flag(trap_exit=True)  # so that terminate runs on shutdown
            print(f"started {tag}", flush=True)
            return tag

        async def terminate(self, reason, tag):
            print(f"terminate {tag} {reason}", flush=True)


    def up(parent):  # trap exits, then tell the start function we are ready
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, ("up", beamlet.self()))


    async def spawn_ready(fn, *args):
        pid = beamlet.spawn_link(fn, beamlet.self(), *args)
        await beamlet.receive(("up", pid))
        return pid


    async def plain(parent, tag):
        up(parent)
        try:
            await beamlet.receive(Exit)
        finally:
            print(f"finally {tag}", flush=True)


    async def start_plain(tag):
        pid = await spawn_ready(plain, tag)
        print(f"started {tag}", flush=True)
        return pid


    def server(tag, **kw):
        return Server.child_spec(tag, id=tag, **kw)
    """
)


def run(tmp_path: Path, body: str, *steps: tuple[str, int]) -> tuple[int, list[str]]:
    """Run PRELUDE + body as a script. For each `(marker, signal)` step, wait until the
    script prints `marker`, then send it `signal`. Return the exit status and every
    line printed."""
    script = tmp_path / "app.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for marker, sig in steps:
            while True:
                line = proc.stdout.readline()  # blocks until the child prints: no sleeps
                if not line:
                    raise AssertionError(f"exited before printing {marker!r}: {lines}")
                lines.append(line.strip())
                if line.strip() == marker:
                    break
            proc.send_signal(sig)
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += [ln.strip() for ln in out.splitlines() if ln.strip()]
    return proc.returncode, lines


def test_sigterm_stops_the_tree_in_reverse_order(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        children = [server("a"), server("b"), ChildSpec("p", start_plain, args=("p",)), server("c")]
        sys.exit(run_app(children, name="app"))
        """,
        ("started c", signal.SIGTERM),
    )
    assert lines == [
        "started a",
        "started b",
        "started p",
        "started c",
        "terminate c shutdown",
        "finally p",
        "terminate b shutdown",
        "terminate a shutdown",
    ]
    assert code == 0


def test_sigint_is_a_graceful_stop_too(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        sys.exit(run_app([server("a"), server("b")]))
        """,
        ("started b", signal.SIGINT),
    )
    assert lines[2:] == ["terminate b shutdown", "terminate a shutdown"]
    assert code == 0


def test_nested_supervisors_stop_depth_first(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        inner = Supervisor.child_spec([server("i1"), server("i2")], id="inner")
        sys.exit(run_app([server("a"), inner, server("z")], strategy="one_for_all"))
        """,
        ("started z", signal.SIGTERM),
    )
    assert lines[4:] == [
        "terminate z shutdown",
        "terminate i2 shutdown",
        "terminate i1 shutdown",
        "terminate a shutdown",
    ]
    assert code == 0


def test_slow_child_is_killed_after_its_shutdown_time(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        async def stubborn(parent):
            up(parent)
            try:
                await beamlet.receive("never")
            finally:
                print("killed stubborn", flush=True)

        async def start_stubborn():
            pid = await spawn_ready(stubborn)
            print("started stubborn", flush=True)
            return pid

        children = [server("a"), ChildSpec("s", start_stubborn, shutdown=0.2), server("b")]
        sys.exit(run_app(children))
        """,
        ("started b", signal.SIGTERM),
    )
    assert lines[3:] == ["terminate b shutdown", "killed stubborn", "terminate a shutdown"]
    assert code == 0


def test_crashed_tree_exits_with_status_1(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        async def crasher():
            raise RuntimeError("boom")

        async def start_crasher():
            return beamlet.spawn_link(crasher)

        children = [server("a"), ChildSpec("c", start_crasher)]
        sys.exit(run_app(children, max_restarts=3, max_seconds=60))
        """,
    )
    assert lines == ["started a", "terminate a shutdown"]  # stopped when the tree gave up
    assert code == 1


def test_failed_start_exits_with_status_1(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        class Broken(GenServer):
            async def init(self, arg):
                raise ValueError("cannot start")

        sys.exit(run_app([server("a"), Broken.child_spec(None), server("z")]))
        """,
    )
    assert lines == ["started a", "terminate a shutdown"]
    assert code == 1


def test_auto_shutdown_is_a_graceful_end(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        async def job():
            print("job done", flush=True)

        async def start_job():
            return beamlet.spawn_link(job)

        children = [
            server("a"),
            ChildSpec("job", start_job, restart="transient", significant=True),
        ]
        sys.exit(run_app(children, auto_shutdown="any_significant"))
        """,
    )
    assert lines == ["started a", "job done", "terminate a shutdown"]
    assert code == 0


def test_second_signal_kills_the_tree(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        async def slow(parent):
            up(parent)
            await beamlet.receive(Exit)
            print("stopping slowly", flush=True)
            await beamlet.receive("never")

        async def start_slow():
            pid = await spawn_ready(slow)
            print("started slow", flush=True)
            return pid

        sys.exit(run_app([ChildSpec("slow", start_slow, shutdown="infinity")]))
        """,
        ("started slow", signal.SIGTERM),
        ("stopping slowly", signal.SIGTERM),
    )
    assert lines == ["started slow", "stopping slowly"]
    assert code == 1


def test_shutdown_timeout_kills_the_tree(tmp_path: Path) -> None:
    code, lines = run(
        tmp_path,
        """
        async def slow(parent):
            up(parent)
            await beamlet.receive(Exit)
            print("stopping slowly", flush=True)
            await beamlet.receive("never")

        async def start_slow():
            pid = await spawn_ready(slow)
            print("started slow", flush=True)
            return pid

        sys.exit(run_app([ChildSpec("slow", start_slow, shutdown="infinity")],
                         shutdown_timeout=0.2))
        """,
        ("started slow", signal.SIGTERM),
    )
    assert lines == ["started slow", "stopping slowly"]
    assert code == 1


def test_invalid_children_raise_before_anything_starts() -> None:
    from beamlet.behaviours.application import run_app
    from beamlet.behaviours.child_spec import InvalidChildSpec
    from beamlet.behaviours.supervisor import InvalidSupervisorFlags

    with pytest.raises(InvalidChildSpec):
        run_app([{"id": "x"}])
    with pytest.raises(InvalidSupervisorFlags):
        run_app([], strategy="none_for_one")  # type: ignore[arg-type]
