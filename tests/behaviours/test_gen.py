"""The gen layer's names: `Global(name)` (Erlang's `{global, Name}`) through the hook a
global registry installs on the node (`names.install_global`)."""

from __future__ import annotations

from typing import Any

import pytest
from gen_helpers import DummyGlobal

import beamlet
from beamlet import BadArgument, Global
from beamlet.behaviours import gen
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


class Trapping(GenServer[Any]):
    async def init(self, arg: Any) -> Any:
        beamlet.process_flag(trap_exit=True)
        return arg

    async def terminate(self, reason: Any, state: Any) -> None:
        beamlet.send(state, ("terminated", reason))


async def test_a_server_started_for_another_process_takes_it_as_parent() -> None:
    # remote.run_start's case: a temporary process starts the server for a supervisor
    # that links to it afterwards; the supervisor's exit signal must stop it (§7.8)
    me = beamlet.self()

    async def starter() -> None:
        with gen.starting_for(me):
            pid = await Trapping.start_link(me)
        beamlet.unlink(pid)
        beamlet.send(me, ("started", pid))

    beamlet.spawn(starter)
    started = await beamlet.receive(lambda m: type(m) is tuple and m[0] == "started", timeout=5)
    pid = started[1]
    assert gen.link_parent() == me  # outside the block: the caller itself
    beamlet.link(pid)
    beamlet.process_flag(trap_exit=True)
    beamlet.exit(pid, beamlet.SHUTDOWN)  # as a supervisor's shutdown: the parent's EXIT
    assert await beamlet.receive(
        lambda m: type(m) is tuple and m[0] == "terminated", timeout=5
    ) == (
        "terminated",
        beamlet.SHUTDOWN,
    )
