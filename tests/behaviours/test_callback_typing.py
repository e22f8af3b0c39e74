"""mypy checks a GenServer's state type through its callbacks' results (issue 9 §5):
`Reply[S] | NoReply[S] | Stop[S]` instead of `Any`, plain or `async def` callbacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

GOOD = """
from typing import Any
from beamlet import From, GenServer, NoReply, Reply, Stop

class Counter(GenServer[int]):
    async def init(self, arg: int) -> int:
        return arg

    async def handle_call(self, request: str, from_: From, state: int) -> Reply[int] | Stop[int]:
        if request == "stop":
            return Stop("normal")
        return Reply(state, state + 1)

    def handle_cast(self, request: Any, state: int) -> NoReply[int]:  # a plain def works too
        return NoReply(state - 1)
"""

BAD = """
from typing import Any
from beamlet import From, GenServer, NoReply, Reply

class WrongState(GenServer[int]):
    async def handle_call(self, request: Any, from_: From, state: int) -> Reply[int]:
        return Reply("reply", "not an int")  # line 7

class WrongResult(GenServer[int]):
    async def handle_cast(self, request: Any, state: int) -> Reply[int]:  # line 10
        return Reply(1, 2)
"""


def check(tmp_path: Path, source: str) -> tuple[str, int]:
    f = tmp_path / "snippet.py"
    f.write_text(source)
    cache = tmp_path / "mypy_cache"
    # In a subprocess: mypy changes interpreter-wide settings (the recursion limit).
    cmd = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(f)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=100, check=False)
    return done.stdout + done.stderr, done.returncode


def test_well_typed_server_passes(tmp_path: Path) -> None:
    out, status = check(tmp_path, GOOD)
    assert status == 0, out


def test_state_type_is_checked(tmp_path: Path) -> None:
    out, status = check(tmp_path, BAD)
    assert status == 1, out
    assert 'snippet.py:7: error: Argument 2 to "Reply" has incompatible type "str"' in out
    assert "snippet.py:10: error: Return type" in out and '"handle_cast"' in out
