"""The gen layer's names: `Global(name)` (Erlang's `{global, Name}`) through the hook a
global registry installs on the node (`names.install_global`)."""

from __future__ import annotations

from typing import Any

import pytest
from gen_helpers import DummyGlobal

import beamlet
from beamlet import BadArgument, Global
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.gen import AlreadyStarted, CallExit
from beamlet.behaviours.gen_server import GenServer, Reply
from beamlet.behaviours.names import install_global


class Named(GenServer[str]):
    async def init(self, arg: str) -> str:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: str) -> Reply[str]:
        return Reply(state, state)


async def test_global_names_through_the_hook() -> None:
    with pytest.raises(StartError):  # no global registry yet: the name cannot be taken
        await Named.start(None, name=Global("g"))
    with pytest.raises(CallExit) as e:
        await GenServer.call(Global("g"), "hi")
    assert e.value.cause == beamlet.NOPROC
    install_global(DummyGlobal())
    pid = await Named.start_link("one", name=Global("g"))
    assert GenServer.whereis(Global("g")) == pid
    assert await GenServer.call(Global("g"), "hi") == "one"
    with pytest.raises(AlreadyStarted) as taken:
        await Named.start_link("two", name=Global("g"))
    assert taken.value.pid == pid
    await GenServer.stop(Global("g"))
    assert GenServer.whereis(Global("g")) is None
    install_global(None)


async def test_bad_names_are_refused() -> None:
    with pytest.raises(BadArgument):
        await Named.start_link("x", name=42)  # type: ignore[arg-type]
    with pytest.raises(BadArgument):
        await Named.start_link("x", name="")
