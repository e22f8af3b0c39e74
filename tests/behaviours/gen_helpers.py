"""Helpers shared by the GenServer, Agent and Task tests."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import beamlet
from beamlet import Down, Pid


class DummyVia:
    """A minimal via registry (OTP's dummy_via): names of dead processes are free."""

    def __init__(self) -> None:
        self.names: dict[Any, Pid] = {}

    def register_name(self, key: Any, pid: Pid) -> bool:
        if self.whereis_name(key) is not None:
            return False
        self.names[key] = pid
        return True

    def unregister_name(self, key: Any) -> None:
        self.names.pop(key, None)

    def whereis_name(self, key: Any) -> Pid | None:
        pid = self.names.get(key)
        if pid is not None and not beamlet.is_alive(pid):
            del self.names[key]
            return None
        return pid

    def send(self, key: Any, msg: Any) -> None:
        pid = self.whereis_name(key)
        if pid is None:
            raise beamlet.BadArgument(f"no process registered as {key!r}")
        beamlet.send(pid, msg)


async def wait_down(pid: Pid, timeout: float = 5.0) -> Any:
    """Wait for `pid` to end, through a monitor (§12.8); return its exit reason."""
    ref = beamlet.monitor(pid)
    down = await beamlet.receive(
        lambda m: type(m) is Down and m.ref == ref, timeout=timeout, default=None
    )
    assert down is not None, f"{pid!r} did not end within {timeout} s"
    return down.reason


def reports(caplog: pytest.LogCaptureFixture, label: str = "GenServer terminating") -> list[Any]:
    """The structured crash reports logged so far with this label."""
    out = []
    for rec in caplog.records:
        rep = getattr(rec, "beamlet_report", None)
        if isinstance(rep, dict) and rep.get("label") == label:
            out.append(rep)
    return out


def gen_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every log record that carries a behaviour report."""
    return [r for r in caplog.records if hasattr(r, "beamlet_report")]


class DummyGlobal(DummyVia):
    """A minimal global registry (names.GlobalRegistry): registration is awaited, as
    a call to the cluster is; names of dead processes are free."""

    async def register_name(self, key: Any, pid: Pid) -> bool:  # type: ignore[override]
        return DummyVia.register_name(self, key, pid)
