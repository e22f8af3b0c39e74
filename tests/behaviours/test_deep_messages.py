"""Issue 10 §5: no logging path may raise on a message, however deep (Erlang's `~P`)."""

from __future__ import annotations

from typing import Any

import beamlet
from beamlet import GenServer


class Plain(GenServer[int]):
    async def init(self, arg: int) -> int:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: int) -> Any:
        return beamlet.Reply("ok", state)


def deep(n: int) -> Any:
    m: Any = ()
    for _ in range(n):
        m = (m,)
    return m


async def test_default_handle_info_survives_a_deeply_nested_message() -> None:
    pid = await Plain.start_link(0)
    beamlet.send(pid, deep(5000))  # repr() of it raises RecursionError
    # the call is served after the message: the server logged it and lived
    assert await GenServer.call(pid, "ping", timeout=5.0) == "ok"


def test_safe_repr_is_bounded() -> None:
    from beamlet.behaviours.gen import safe_repr

    assert len(safe_repr(deep(100_000))) < 200
    assert len(safe_repr(list(range(1_000_000)))) < 400
