"""Beamlet peers recognise each other after connecting (`peer_kind.py`) and use
`etf.LOSSLESS` by default, so Python values round-trip between them (issue 11 item 5);
Erlang peers (OTP 25 and the second OTP 28) are never taken for beamlet nodes and never
get an encoding erts does not write (an empty BIT_BINARY_EXT aborts OTP 28)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on, require_erl, wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_peer import RawPeer

import beamlet
from beamlet import ANY, Atom, Down
from beamlet.distribution import dist_ctrl, etf, rpc
from beamlet.distribution.etf import BitString, Charlist, ImproperList

TIMEOUT = 10.0
VALUES: list[Any] = [
    "text", b"bytes", "", b"", None, Atom("undefined"), (1, "two"), [1, 2, 3],
    {"x": None, b"x": 1, ("k", None): [b""]}, Charlist("日本"), Charlist(""), -0.0,
]  # fmt: skip


def exact(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            any(exact(k, k2) and exact(v, b[k2]) for k2 in b if k2 == k) for k, v in a.items()
        )
    return bool(a == b)


async def echo() -> None:
    while True:
        to, msg = await beamlet.receive()
        beamlet.send(to, (Atom("echo"), msg))


async def test_beamlet_peers_round_trip_values_by_default(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        b.register("echo", b.spawn(echo))
        me = wire(beamlet.self())
        for v in VALUES:  # the first message already goes lossless
            beamlet.send((Atom("echo"), b.name), (me, v))
        for v in VALUES:
            _, got = await beamlet.receive((Atom("echo"), ANY), timeout=TIMEOUT)
            assert exact(got, v), (got, v)
        for conn in (node.d.conns[b.name], b.d.conns[node.name]):
            assert conn.beamlet and conn.pending is None
            assert conn.encode_options is etf.LOSSLESS and conn.decode_options is etf.LOSSLESS
        # rpc results and exit reasons, too.
        b.d.register_function("m", "echo", lambda x: x)
        for v in VALUES:
            assert exact(await rpc.call(b.name, "m", "echo", [v]), v)

        async def die(reason: Any) -> None:
            await beamlet.receive(timeout=TIMEOUT)
            raise beamlet.ProcessExit(reason)

        reason = {"why": None, "data": (b"", ""), "a": 1, b"a": 2}
        victim = wire(b.spawn(die, reason))
        ref = beamlet.monitor(victim)
        beamlet.send(victim, Atom("go"))  # after the monitor, on the same connection
        dn = await beamlet.receive(lambda m: type(m) is Down and m.ref == ref, timeout=TIMEOUT)
        assert exact(dn.reason, reason)


# Python values LOSSLESS promises to return as they were (docs/distribution.md, "Values on
# the wire"): everything but bytearray (arrives as bytes), NaN (not sent), and the atoms
# `true`/`false` (one Erlang term with True/False).
ATOMS = st.text(max_size=8).filter(lambda t: t not in ("true", "false")).map(Atom)
TAILS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), st.binary(max_size=12),
    ATOMS, st.builds(BitString, st.binary(min_size=1, max_size=3), st.integers(1, 7)),
)  # fmt: skip
SCALARS = TAILS | st.text(max_size=6).map(Charlist)
KEYS = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=6), st.binary(max_size=6), ATOMS),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)
PY_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(KEYS, inner, max_size=4),
        st.builds(ImproperList, st.lists(inner, min_size=1, max_size=3).map(tuple), TAILS),
    ),
    max_leaves=12,
)


def generated_values(n: int) -> list[Any]:
    """`n` values drawn by hypothesis (generation only: the assertion is on a real
    connection, so a failure names the value instead of shrinking it)."""
    drawn: list[Any] = []

    @settings(
        max_examples=n, database=None, derandomize=True, deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(PY_VALUES)
    def draw(v: Any) -> None:
        drawn.append(v)

    draw()
    return drawn


async def test_generated_values_round_trip_between_beamlet_nodes(
    node: DistNode, epmd_port: int
) -> None:
    values = generated_values(300)
    async with beamlet_node(epmd_port) as b:
        b.register("echo", b.spawn(echo))
        me = wire(beamlet.self())
        for i, v in enumerate(values):
            beamlet.send((Atom("echo"), b.name), (me, (i, v)))
        for i, v in enumerate(values):
            _, (j, got) = await beamlet.receive((Atom("echo"), ANY), timeout=TIMEOUT)
            assert j == i and exact(got, v), (got, v)


async def test_a_peer_that_never_answers_the_probe_gets_the_default_encoding(
    node: DistNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A modern peer that neither says hello nor answers the monitor of `beamlet_dist`:
    # the frames held for it go out after PROBE_TIMEOUT, in the connection's codec.
    monkeypatch.setattr(dist_ctrl, "PROBE_TIMEOUT", 0.2)
    raw = await RawPeer.open(node)
    try:
        await raw.handshake(answer_probe=False)
        beamlet.send(raw.pid(1), {"x": None})
        ctl, _ = await raw.read_ctl()
        assert ctl[0] == dist_ctrl.DEMONITOR_P and ctl[2] == Atom("beamlet_dist"), ctl
        ctl, payload = await raw.read_ctl()
        assert ctl[0] in (dist_ctrl.SEND, dist_ctrl.SEND_SENDER) and ctl[-1] == raw.pid(1)
        assert payload == {b"x": Atom("undefined")}
        conn = node.d.conns[raw.name]
        assert not conn.beamlet and conn.pending is None and conn.encode_options is None
    finally:
        raw.close()


@pytest.mark.parametrize("opt_out", [None, etf.DEFAULT_OPTIONS])
async def test_opting_out_gives_erlangs_view(node: DistNode, epmd_port: int, opt_out: Any) -> None:
    async with beamlet_node(epmd_port, beamlet_codec=opt_out) as b:
        b.register("echo", b.spawn(echo))
        beamlet.send((Atom("echo"), b.name), (wire(beamlet.self()), {"x": None}))
        assert await beamlet.receive(timeout=TIMEOUT) == (
            Atom("echo"),
            {b"x": Atom("undefined")},
        )
        assert node.d.conns[b.name].beamlet and b.d.conns[node.name].beamlet
        assert node.d.conns[b.name].encode_options is None  # the peer does not decode lossless


async def test_codec_options_are_checked(node: DistNode, epmd_port: int) -> None:
    with pytest.raises(ValueError, match="lossless"):
        async with beamlet_node(epmd_port, codec=etf.LOSSLESS):
            pass
    with pytest.raises(TypeError, match="CodecOptions"):
        async with beamlet_node(epmd_port, beamlet_codec="lossless"):
            pass


def erl_executables() -> list[str]:
    return ["system", "erl2"]


@pytest.mark.interop
@pytest.mark.parametrize("which", erl_executables())
async def test_erlang_peers_never_get_lossless(node: DistNode, epmd_port: int, which: str) -> None:
    if which == "system":
        exe = require_erl()
    else:
        exe = os.environ.get("BEAMLET_ERL2", "")
        if not exe:
            if os.environ.get("CI") == "true":
                pytest.fail("BEAMLET_ERL2 (a second OTP) is required when CI=true")
            pytest.skip("BEAMLET_ERL2 not set")
    async with erl_peer(epmd_port, erl=exe) as erl:
        # A forged hello and switch from an Erlang process are ignored.
        await erl.eval(
            "{beamlet_dist, N} ! {beamlet_hello, 1, lossless},"
            " {beamlet_dist, N} ! {beamlet_codec, lossless}, ok.",
            N=node.name,
        )
        assert await erl.eval("rpc:call(N, erlang, node, []).", N=node.name) == node.name
        conn = node.d.conns[erl.name]
        assert not conn.beamlet and conn.pending is None
        assert conn.encode_options is None and conn.decode_options is None
        # What LOSSLESS writes differently arrives as Erlang's natural term (b"" would
        # abort OTP 28 as an empty BIT_BINARY_EXT).
        value = (b"", "", None, Charlist(""), Charlist("日本"), bytearray(b""), b"x")
        ok = await erl.eval(
            'V =:= {<<>>, <<>>, undefined, [], [26085, 26412], <<>>, <<"x">>}.', V=value
        )
        assert ok is True
        assert await erl.eval("ok.") == Atom("ok")  # the VM is alive

        # Relayed through Erlang: values arrive as from Erlang (the default column).
        async with beamlet_node(epmd_port) as b:
            me = wire(beamlet.self())

            async def relay_target() -> None:
                beamlet.send(me, (Atom("got"), await beamlet.receive(timeout=TIMEOUT)))

            target = wire(b.spawn(relay_target))
            await erl.eval("T ! V, ok.", T=target, V={"x": None, "t": ("a", b"b")})
            _, got = await beamlet.receive((Atom("got"), ANY), timeout=TIMEOUT)
            assert got == {b"x": Atom("undefined"), b"t": (b"a", b"b")}


async def test_hello_and_probe_are_answered(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b:
        assert await on(b, rpc.call, node.name, "erlang", "node", []) == node.name
        assert node.d.conns[b.name].probe is None and b.d.conns[node.name].probe is None
