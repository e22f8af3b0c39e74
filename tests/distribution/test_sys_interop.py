"""`sys` across the wire, both ways, on OTP 25 and on the second OTP 28 (issue 11 item 4,
issue 14 §2): Erlang's `sys:get_state/1`, `get_status/1`, `suspend/1`, `resume/1` and
`replace_state/2` on a beamlet GenServer, and beamlet's `sys` on an Erlang gen_server.

OTP 26 changed the reply to `get_state`/`replace_state` from the bare state to
`{ok, State}` (the target's sys.erl builds it, the caller's matches it); beamlet follows
the release of the node on the other side (asked once through its `rex`).
"""

from __future__ import annotations

from typing import Any

import pytest
from dist_nodes import DistNode
from test_supervisor_interop import any_erl

from beamlet import Atom
from beamlet.behaviours import sys
from beamlet.behaviours.gen import CallExit
from beamlet.behaviours.gen_server import GenServer, Reply
from beamlet.distribution.etf import Export

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

OK = Atom("ok")
GET = Atom("get")


@pytest.fixture(params=["system", "erl2"], ids=["otp-system", "otp-erl2"])
def which_erl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Counter(GenServer[int]):
    async def init(self, n: int) -> int:
        return n

    async def handle_call(self, request: Any, from_: Any, n: int) -> Reply[int]:
        return Reply(n, n)


async def test_erlang_sys_on_beamlet_server(node: DistNode, which_erl: str) -> None:
    """sys:get_state, get_status, suspend (a call then waits), resume and replace_state
    (with `fun pymod:incr/1`, a registered Python function) from erl; a fun Python
    cannot run is a clean error, the state unchanged."""
    node.d.register_function("pymod", "incr", lambda n: n + 1)
    await Counter.start_link(41, name="counter")
    async with any_erl(which_erl, node.epmd_port) as erl:
        got = await erl.eval(
            """S = {counter, N},
            St0 = sys:get_state(S),
            ok = sys:suspend(S),
            {status, P, {module, gen_server}, [_, Suspended, _, _, _]} = sys:get_status(S),
            Timeout = catch gen_server:call(S, get, 200),
            ok = sys:resume(S),
            St1 = sys:replace_state(S, fun pymod:incr/1),
            Bad = catch sys:replace_state(S, fun(X) -> X * 2 end),
            {status, _, _, [_, Running, _, _, Misc]} = sys:get_status(S),
            {St0, is_pid(P), Suspended, element(1, element(2, Timeout)), St1, element(1, Bad),
             Running, lists:last(Misc), sys:get_state(S), gen_server:call(S, get)}.""",
            N=node.name,
        )
    st0, is_pid, suspended, timeout, st1, bad, running, last, st2, call = got
    assert (st0, is_pid, suspended, timeout) == (41, True, Atom("suspended"), Atom("timeout"))
    assert (st1, bad, running) == (42, Atom("EXIT"), Atom("running"))
    assert last == (Atom("data"), [(b"State", 42)])
    assert (st2, call) == (42, 42)


async def test_beamlet_sys_on_erlang_server(node: DistNode, which_erl: str) -> None:
    """beamlet's sys on an Erlang gen_server (a pg scope, which is one): get_state,
    get_status, suspend/resume, replace_state with an Erlang function."""
    async with any_erl(which_erl, node.epmd_port) as erl:
        await erl.eval("{ok, _} = pg:start(sys_scope), ok.")
        server = (Atom("sys_scope"), erl.name)
        state = await sys.get_state(server)
        assert type(state) is tuple and state[0] == Atom("state")  # pg's #state{}
        status = await sys.get_status(server)
        assert status[0] == Atom("status") and status[2] == (Atom("module"), Atom("gen_server"))
        await sys.suspend(server)
        assert (await sys.get_status(server))[3][1] == Atom("suspended")
        await sys.resume(server)
        size = await sys.replace_state(server, Export(Atom("erlang"), Atom("tuple_size"), 1))
        assert size == len(state)
        assert await sys.get_state(server) == size
        with pytest.raises(CallExit):  # the fun crashes there: badarg, state unchanged
            await sys.replace_state(server, Export(Atom("erlang"), Atom("tuple_size"), 1))
        assert await sys.get_state(server) == size


async def test_erlang_sys_on_rex_and_net_kernel(node: DistNode, which_erl: str) -> None:
    """rex and net_kernel are GenServers, as in OTP: from erl, sys:get_state/get_status
    answer; a suspended rex leaves a call waiting (the rex protocol that rpc used before
    erpc, and ei still uses: its timeout fires) and serves calls again after resume;
    net_adm:ping still gets pong."""
    async with any_erl(which_erl, node.epmd_port) as erl:
        got = await erl.eval(
            """R = {rex, N}, K = {net_kernel, N},
            pong = net_adm:ping(N),
            {status, _, {module, gen_server}, _} = sys:get_status(R),
            Call = {call, erlang, node, [], group_leader()},
            ok = sys:suspend(R),
            {'EXIT', {Suspended, _}} = catch gen_server:call(R, Call, 300),
            ok = sys:resume(R),
            {sys:get_state(R), sys:get_state(K), Suspended, gen_server:call(R, Call),
             rpc:call(N, erlang, node, []), net_adm:ping(N)}.""",
            N=node.name,
        )
    assert got == ({}, {}, Atom("timeout"), node.name, node.name, Atom("pong"))
