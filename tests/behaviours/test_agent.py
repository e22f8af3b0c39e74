"""Agent: ports of elixir-lang/elixir lib/elixir/test/elixir/agent_test.exs
(docs/semantics.md §11.1, §12.7), plus its error edges."""

from __future__ import annotations

from typing import Any

import pytest
from gen_helpers import wait_down

import beamlet
from beamlet import NOPROC, TIMEOUT, Atom, Crash, Exit
from beamlet.behaviours.agent import Agent
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.behaviours.gen_server import CallExit
from beamlet.testing import assert_receive


def identity(state: Any) -> Any:
    return state


def put(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Map.put: a module function that returns the new state."""
    return {**d, key: value}


class MyAgent(Agent):
    pass


class CustomAgent(Agent, id="id", restart="temporary", shutdown="infinity"):
    pass


async def test_generates_child_spec() -> None:
    assert MyAgent.child_spec(["hello"]) == ChildSpec(
        id=MyAgent, start=MyAgent.start_link, args=(["hello"],), shutdown=5.0
    )
    custom = CustomAgent.child_spec(["hello"])
    assert (custom.id, custom.restart, custom.shutdown) == ("id", "temporary", "infinity")
    assert Agent.child_spec(dict).restart == "permanent"


async def test_start_link_2_workflow_with_unregistered_name_and_anonymous_functions() -> None:
    pid = await Agent.start_link(dict)
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    assert await Agent.update(pid, lambda d: {**d, "hello": "world"}) is None
    assert await Agent.get(pid, lambda d: d.get("hello"), timeout=3) == "world"

    def pop(d: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        d = dict(d)
        return d.pop("hello"), d

    assert await Agent.get_and_update(pid, pop, timeout=3) == "world"
    assert await Agent.get(pid, lambda d: d) == {}
    assert await Agent.stop(pid) is None
    assert not beamlet.is_alive(pid)


async def test_start_2_workflow_with_registered_name_and_module_functions() -> None:
    pid = await Agent.start(dict, name="agent")
    assert beamlet.process_info(pid).registered_name == Atom("agent")  # type: ignore[union-attr]
    assert Agent.cast("agent", put, "hello", "world") is None
    assert await Agent.get("agent", dict.get, "hello") == "world"
    assert await Agent.get_and_update("agent", lambda d, k: (d[k], {}), "hello") == "world"
    assert await Agent.get("agent", identity) == {}
    assert await Agent.stop("agent") is None
    assert beamlet.whereis("agent") is None


async def test_can_be_supervised_directly_start_function_contract() -> None:
    """The child spec's start function follows child_spec.py: returns a linked pid."""
    spec = Agent.child_spec(lambda: 0)
    pid = await spec.start(*spec.args)
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    assert await Agent.get(pid, identity) == 0


async def test_async_functions_and_state_that_looks_like_a_result() -> None:
    async def start() -> Any:
        return StartError("not an error: just a value")

    pid = await Agent.start(start)
    assert isinstance(await Agent.get(pid, identity), StartError)

    async def incr(n: int, by: int) -> int:
        return n + by

    pid = await Agent.start(lambda: 1)
    await Agent.update(pid, incr, 41)
    assert await Agent.get(pid, identity) == 42


async def test_start_function_that_raises() -> None:
    def boom() -> Any:
        raise ValueError("no state")

    with pytest.raises(StartError) as se:
        await Agent.start(boom)
    assert isinstance(se.value.reason, Crash)
    assert isinstance(se.value.reason.exception, ValueError)
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError):
        await Agent.start_link(boom)
    assert await beamlet.receive(Exit, timeout=0.05, default=None) is None


async def test_function_that_raises_crashes_the_agent() -> None:
    pid = await Agent.start(lambda: 1)
    with pytest.raises(CallExit) as ei:
        await Agent.get(pid, lambda n: n / 0)
    assert isinstance(ei.value.cause, Crash)
    assert isinstance(ei.value.cause.exception, ZeroDivisionError)
    assert ei.value.mfa[0] == "GenServer.call"
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await Agent.update(pid, identity)
    assert ei.value.cause == NOPROC


@pytest.mark.virtual_time
async def test_timeout_behaves_as_gen_server_call() -> None:
    pid = await Agent.start(lambda: 1)

    async def slow(n: int) -> int:
        await beamlet.sleep(10)
        return n

    with pytest.raises(CallExit) as ei:
        await Agent.get(pid, slow, timeout=1)
    assert ei.value.cause == TIMEOUT
    assert await Agent.get(pid, identity, timeout=20) == 1


async def test_get_and_update_must_return_a_pair() -> None:
    pid = await Agent.start(lambda: 1)
    with pytest.raises(CallExit) as ei:
        await Agent.get_and_update(pid, lambda n: n)
    assert isinstance(ei.value.cause.exception, TypeError)
    await wait_down(pid)


async def test_stop_with_reason() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await Agent.start_link(lambda: 1)
    await Agent.stop(pid, beamlet.SHUTDOWN)
    await assert_receive(Exit(pid, beamlet.SHUTDOWN))
