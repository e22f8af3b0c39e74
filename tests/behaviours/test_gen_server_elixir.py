"""GenServer: ports of elixir-lang/elixir lib/elixir/test/elixir/gen_server_test.exs
(docs/semantics.md §12.4: §7.1, §7.4, §7.7, §7.11). Named after the upstream tests."""

from __future__ import annotations

from typing import Any

import pytest
from gen_helpers import DummyVia

import beamlet
from beamlet import CALLING_SELF, NOPROC, NORMAL, TIMEOUT, Atom, BadArgument
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import (
    NODEDOWN,
    CallExit,
    From,
    GenServer,
    NoReply,
    Reply,
)
from beamlet.behaviours.names import Via


class Stack(GenServer[list[Any]]):
    async def init(self, args: list[Any]) -> list[Any]:
        return args

    async def handle_call(self, request: Any, from_: From, state: list[Any]) -> Any:
        match request:
            case "pop":
                return Reply(state[0], state[1:])
            case "noreply":
                return NoReply(state)
            case "stop_self":
                try:
                    await GenServer.stop(beamlet.self())
                except CallExit as e:
                    return Reply(e.reason, state)
        raise AssertionError(request)

    async def handle_cast(self, request: Any, state: list[Any]) -> Any:
        match request:
            case ("push", item):
                return NoReply([item, *state])
        raise AssertionError(request)


class CustomStack(Stack, id="id", restart="temporary", shutdown="infinity"):
    pass


async def test_generates_child_spec() -> None:
    spec = Stack.child_spec(["hello"])
    assert spec == ChildSpec(
        id=Stack, start=Stack.start_link, args=(["hello"],), restart="permanent", shutdown=5.0
    )
    custom = CustomStack.child_spec(["hello"])
    assert (custom.id, custom.restart, custom.shutdown) == ("id", "temporary", "infinity")
    assert custom.start == CustomStack.start_link
    overridden = Stack.child_spec(["hello"], id="other", restart="transient")
    assert (overridden.id, overridden.restart) == ("other", "transient")
    with pytest.raises(TypeError):

        class Bad(Stack, colour="red"):  # type: ignore[call-arg]
            pass


async def test_start_link_3() -> None:
    for bad in (("invalid_tuple", "my_gen_server_name"), 42, b"name"):
        with pytest.raises(BadArgument, match="server name"):
            await Stack.start_link(["hello"], name=bad)  # type: ignore[arg-type]


async def test_start_link_3_with_via() -> None:
    via = Via(DummyVia(), "via_stack")
    await Stack.start_link(["hello"], name=via)
    assert await GenServer.call(via, "pop") == "hello"


async def test_start_link_3_with_local() -> None:
    await Stack.start_link(["hello"], name="stack")
    assert await GenServer.call("stack", "pop") == "hello"


async def test_start_link_2_call_2_and_cast_2() -> None:
    pid = await Stack.start_link(["hello"])
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    assert await GenServer.call(pid, "pop") == "hello"
    assert GenServer.cast(pid, ("push", "world")) is None
    assert await GenServer.call(pid, "pop") == "world"
    assert await GenServer.stop(pid) is None
    assert GenServer.cast(Via(DummyVia(), "bar"), ("push", "world")) is None
    assert GenServer.cast("foo", ("push", "world")) is None


async def test_call_3_exit_messages() -> None:
    name = "self"
    beamlet.register(name)
    pid = await Stack.start_link(["hello"])
    stopped = await Stack.start(["hello"])
    await GenServer.stop(stopped)
    via = DummyVia()
    via.register_name(name, beamlet.self())

    async def exit_of(server: Any, request: Any, timeout: Any) -> Any:
        with pytest.raises(CallExit) as ei:
            await GenServer.call(server, request, timeout)
        return ei.value.reason

    assert await exit_of(name, "pop", 5) == (CALLING_SELF, ("GenServer.call", name, "pop", 5))
    v = Via(via, name)
    assert await exit_of(v, "pop", 5) == (CALLING_SELF, ("GenServer.call", v, "pop", 5))
    me = beamlet.self()
    assert await exit_of(me, "pop", 5) == (CALLING_SELF, ("GenServer.call", me, "pop", 5))
    assert await exit_of(pid, "noreply", 0.001) == (
        TIMEOUT,
        ("GenServer.call", pid, "noreply", 0.001),
    )
    assert await exit_of("nil", "pop", 5) == (NOPROC, ("GenServer.call", "nil", "pop", 5))
    assert await exit_of(stopped, "pop", 5) == (NOPROC, ("GenServer.call", stopped, "pop", 5))
    remote = ("stack", "bogus_node@nohost")
    assert await exit_of(remote, "pop", 5) == (
        (NODEDOWN, Atom("bogus_node@nohost")),
        ("GenServer.call", remote, "pop", 5),
    )


async def test_nil_name() -> None:
    pid = await Stack.start_link(["hello"], name=None)
    assert beamlet.process_info(pid).registered_name is None  # type: ignore[union-attr]


async def test_start_2() -> None:
    pid = await Stack.start(["hello"])
    assert pid not in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    await GenServer.stop(pid)


async def test_abcast_3() -> None:
    await Stack.start_link([], name="abcast_stack")
    assert GenServer.abcast("abcast_stack", ("push", "hello")) is None
    assert await GenServer.call(("abcast_stack", beamlet.node_name()), "pop") == "hello"
    GenServer.abcast("abcast_stack", ("push", "world"), nodes=[beamlet.node_name(), "foo@bar"])
    assert await GenServer.call("abcast_stack", "pop") == "world"


async def test_whereis_1() -> None:
    name = "whereis_server"
    pid = await Stack.start_link([], name=name)
    assert GenServer.whereis(name) == pid
    assert GenServer.whereis((name, beamlet.node_name())) == pid
    assert GenServer.whereis((name, "another_node")) == (Atom(name), Atom("another_node"))
    assert GenServer.whereis(pid) == pid
    assert GenServer.whereis("whereis_bad_server") is None
    via = DummyVia()
    pid2 = await Stack.start_link([], name=Via(via, name))
    assert GenServer.whereis(Via(via, name)) == pid2
    assert GenServer.whereis(Via(via, "whereis_bad_server")) is None


async def test_stop_3() -> None:
    pid = await Stack.start([])
    assert await GenServer.stop(pid, NORMAL) is None
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(pid)
    assert ei.value.reason == (NOPROC, ("GenServer.stop", pid, NORMAL, None))
    with pytest.raises(CallExit) as ei:
        await GenServer.stop("nil")
    assert ei.value.reason == (NOPROC, ("GenServer.stop", "nil", NORMAL, None))
    pid = await Stack.start([])
    assert await GenServer.call(pid, "stop_self") == (
        CALLING_SELF,
        ("GenServer.stop", pid, NORMAL, None),
    )
    await Stack.start([], name="stop_3")
    assert await GenServer.stop("stop_3", NORMAL) is None
