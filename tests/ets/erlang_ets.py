"""A real Erlang ets behind a port, for the differential tests."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from beamlet.distribution.etf import decode, encode

PORT_SCRIPT = Path(__file__).with_name("ets_port.escript")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} not found, and CI=true forbids skipping interop tests")
        pytest.skip(f"{tool} not installed")
    return path


class ErlangEts:
    """One `escript` running tests/ets/ets_port.escript: commands in, results out."""

    def __init__(self) -> None:
        escript = require("escript")
        self.proc = subprocess.Popen(
            [escript, str(PORT_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def __call__(self, command: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = encode(command)
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(4)
        assert len(head) == 4, "the Erlang port died"
        (n,) = struct.unpack(">I", head)
        return decode(self.proc.stdout.read(n))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
