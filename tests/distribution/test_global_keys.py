"""Global name keys are one key on every node, whatever entry point and codec a name
went through: `"x"`, `Atom("x")`, `Global("x")` and Erlang's `x` are one name (a `str` is
an atom, as for local names); `b"x"` is Erlang's `<<"x">>`, another name; inside other
terms a `str` is the binary the default codec sends and a list is hashable, so a name
registered in Python is found under the term Erlang sees, and an Erlang list or string
name (which a Python dict could not hold as it decodes) is found too."""

from __future__ import annotations

from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on, within
from test_global import idle, until

import beamlet
from beamlet import Atom, BadArgument, Global
from beamlet.distribution import connect, etf, global_

pytestmark = [pytest.mark.interop, pytest.mark.dist(hidden=False)]

OK = Atom("ok")


async def test_every_entry_point_agrees_on_a_name_with_erlang(
    node: DistNode, epmd_port: int
) -> None:
    async with erl_peer(epmd_port) as e:
        assert await connect(e.name)
        assert await e.eval("global:sync().", timeout=15) == OK
        py = beamlet.spawn(idle)
        assert await within(10, global_.register_name("x", py)) is True
        # one name: str, Atom, Global, and Erlang's atom
        assert global_.whereis_name("x") == py
        assert global_.whereis_name(Atom("x")) == py
        assert beamlet.behaviours.names.resolve(Global("x")) == py
        assert await e.eval("global:whereis_name(x).") == py
        assert await within(10, global_.register_name(Atom("x"), beamlet.spawn(idle))) is False
        # a binary is another name, on both sides
        assert global_.whereis_name(b"x") is None
        assert await e.eval('global:whereis_name(<<"x">>).') == Atom("undefined")
        other = beamlet.spawn(idle)
        assert await within(10, global_.register_name(b"x", other)) is True
        assert await e.eval('global:whereis_name(<<"x">>).') == other
        # a str inside a term is the binary Erlang sees; a list is a list
        tup = beamlet.spawn(idle)
        assert await within(10, global_.register_name(("cache", "a", [1, 2]), tup)) is True
        assert await e.eval('global:whereis_name({<<"cache">>, <<"a">>, [1, 2]}).') == tup
        assert global_.whereis_name((b"cache", b"a", [1, 2])) == tup
        # names Erlang registers under lists and strings are found from Python
        epid, epid2 = await e.eval(
            "S = fun() -> spawn(fun() -> receive stop -> ok end end) end, P = S(), Q = S(), "
            'yes = global:register_name("abc", P), yes = global:register_name({[1, 2]}, Q), '
            "{P, Q}."
        )
        await until(lambda: global_.whereis_name(etf.Charlist("abc")) == epid)
        assert global_.whereis_name([97, 98, 99]) == epid
        assert global_.whereis_name(([1, 2],)) == epid2
        assert etf.FrozenList([97, 98, 99]) in global_.registered_names()
        # send and unregister take every spelling too
        assert global_.send(Atom("x"), "hi") == py
        await within(10, global_.unregister_name("x"))
        assert await e.eval("global:whereis_name(x).") == Atom("undefined")
        await within(10, global_.unregister_name([97, 98, 99]))
        assert await e.eval('global:whereis_name("abc").') == Atom("undefined")


async def test_a_name_is_one_key_between_lossless_beamlet_nodes(
    node: DistNode, epmd_port: int
) -> None:
    """Between beamlet nodes a `str` travels as itself (the lossless codec), yet the
    name is stored in the same form on both nodes."""
    async with beamlet_node(epmd_port, hidden=False) as other:
        assert await connect(other.name)
        await within(10, global_.sync())
        py = beamlet.spawn(idle)
        assert await within(10, global_.register_name(("job", "7"), py)) is True

        async def seen() -> Any:
            await until(lambda: global_.whereis_name((b"job", b"7")) is not None)
            return global_.whereis_name(("job", "7")), global_.registered_names()

        where, names = await on(other, seen)
        assert where == py
        assert names == [(b"job", b"7")]
        assert global_.registered_names() == [(b"job", b"7")]


async def test_a_name_that_is_not_a_term_is_refused(node: DistNode) -> None:
    with pytest.raises(BadArgument, match="global name"):
        await global_.register_name(object(), beamlet.self())
    with pytest.raises(BadArgument, match="global name"):
        await global_.re_register_name({1, 2}, beamlet.self())
    assert global_.registered_names() == []
