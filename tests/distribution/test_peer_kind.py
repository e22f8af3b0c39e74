"""Beamlet peers recognise each other after connecting (`peer_kind.py`), so that a
connection between two beamlet nodes can use other codec options; Erlang peers are
not confused."""

from __future__ import annotations

from typing import Any

import pytest
from dist_nodes import DistNode, beamlet_node, erl_peer, on

from beamlet import Atom
from beamlet.distribution import etf, rpc


async def round_trips(node: DistNode, b: DistNode) -> None:
    # Frames are ordered: after a round trip each way, both hellos (and switches) have
    # been handled on both sides.
    assert await rpc.call(b.name, "erlang", "node", []) == b.name
    assert await on(b, rpc.call, node.name, "erlang", "node", []) == node.name


async def test_beamlet_peers_recognise_each_other(node: DistNode, epmd_port: int) -> None:
    async with beamlet_node(epmd_port) as b, erl_peer(epmd_port) as erl:
        await round_trips(node, b)
        assert node.d.conns[b.name].beamlet and b.d.conns[node.name].beamlet
        assert await erl.eval("net_adm:ping(N).", N=node.name) == Atom("pong")
        assert await erl.eval("rpc:call(N, erlang, node, []).", N=node.name) == node.name
        assert not node.d.conns[erl.name].beamlet  # the hello was dropped there, silently
        assert node.d.conns[b.name].encode_options is None  # no lossless options given


class Lossless:
    """Stands in for the codec's lossless options."""


async def test_switch_to_beamlet_codec(
    node: DistNode, epmd_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Until etf takes options, wrap it: frames encoded with the options are marked, and
    # decoding with them checks the mark, so a frame decoded with the wrong options fails.
    opts = Lossless()
    real_encode, real_decode = etf.encode_into, etf.decode_prefix

    def encode_into(buf: bytearray, term: Any, *, options: Any = None) -> None:
        real_encode(buf, (Atom("lossless"), term) if options is opts else term)

    def decode_prefix(data: Any, offset: int = 0, *, options: Any = None, **kw: Any) -> Any:
        term, end = real_decode(data, offset, **kw)
        if options is opts:
            assert term[0] == Atom("lossless"), term
            term = term[1]
        return term, end

    monkeypatch.setattr(etf, "encode_into", encode_into)
    monkeypatch.setattr(etf, "decode_prefix", decode_prefix)
    node.d.lossless_options = opts
    async with beamlet_node(epmd_port, beamlet_codec=opts) as b:
        await round_trips(node, b)
        for conn in (node.d.conns[b.name], b.d.conns[node.name]):
            assert conn.encode_options is opts and conn.decode_options is opts
        await round_trips(node, b)  # traffic after the switch decodes
