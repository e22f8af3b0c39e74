"""Erlang terms beamlet cannot represent cost one message, never the connection.

issue 11 item 2: `#{1 => a, 1.0 => b}` is a valid Erlang map whose keys are equal in
Python. The codec refuses it (`DecodeError`); the connection layer drops that one
message with a log line (an exit signal or DOWN with such a reason takes effect with the
reason `(undecodable, Why)`, a spawn request is answered `badarg`), and every link and
monitor across the connection stays.
"""

from __future__ import annotations

import pytest
from dist_nodes import DistNode, erl_peer
from raw_peer import TIMEOUT, RawPeer
from test_dist_attacks import is_auth

import beamlet
from beamlet import Atom, Exit, Pid
from beamlet.distribution import etf, nodes

SEND_SENDER, PAYLOAD_EXIT2, SPAWN_REQUEST, SPAWN_REPLY = 22, 26, 29, 31
# A lying encoding: one Erlang term, [97], as both keys of a map (STRING_EXT and LIST_EXT),
# which binary_to_term refuses too. (A valid `#{1 => a, 1.0 => b}` arrives as an ErlMap.)
COLLIDING_MAP = b"\x83t\x00\x00\x00\x02k\x00\x01aa\x01l\x00\x00\x00\x01aaja\x02"
AFTER = Atom("done")


def ctl_frame(ctl: tuple[object, ...], payload: bytes) -> bytes:
    return b"p" + etf.encode(ctl) + payload


async def test_undecodable_payloads_from_a_raw_peer(
    node: DistNode, caplog: pytest.LogCaptureFixture
) -> None:
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    raw = await RawPeer.open(node)
    try:
        await raw.handshake()
        # A message: dropped; the next one arrives.
        await raw.send_frame(ctl_frame((SEND_SENDER, raw.pid(1), me), COLLIDING_MAP))
        await raw.send_ctl((SEND_SENDER, raw.pid(1), me), AFTER)
        assert await beamlet.receive(timeout=TIMEOUT) == AFTER
        # An exit signal: takes effect, with a reason that says why.
        await raw.send_frame(ctl_frame((PAYLOAD_EXIT2, raw.pid(2), me), COLLIDING_MAP))
        ex = await beamlet.receive(Exit, timeout=TIMEOUT)
        assert ex.pid == raw.pid(2) and ex.reason[0] == Atom("undecodable")
        # A spawn request: answered badarg.
        req = beamlet.make_ref()
        mfa = (Atom("m"), Atom("f"), 1)
        await raw.send_frame(
            ctl_frame((SPAWN_REQUEST, req, raw.pid(3), raw.pid(3), mfa, []), COLLIDING_MAP)
        )
        ctl, _ = await raw.read_ctl()
        assert ctl == (SPAWN_REPLY, req, raw.pid(3), 0, Atom("badarg"))
        await is_auth(raw)
        assert raw.name in nodes()
    finally:
        raw.close()
    assert "undecodable" in caplog.text or "duplicate" in caplog.text


async def test_erlang_sends_an_unrepresentable_map(node: DistNode, epmd_port: int) -> None:
    beamlet.process_flag(trap_exit=True)
    beamlet.register("s")
    node.d.register_function("pymod", "echo", lambda x: x)
    async with erl_peer(epmd_port) as erl:
        n = {"N": node.name, "P": beamlet.self()}
        linked: Pid = await erl.eval("spawn(fun() -> link(P), receive stop -> ok end end).", **n)
        await beamlet.sleep(0)  # sleep-ok: nothing to wait for but the link, checked below
        for bad in ("#{1 => a, 1.0 => b}", "#{true => 1, 1 => 2}", "[#{0 => x, 0.0 => y}]"):
            # valid Erlang, keys equal in Python: delivered losslessly (an ErlMap)...
            await erl.eval(f"{{s, N}} ! {bad}, {{s, N}} ! done.", **n)
            got_map = await beamlet.receive(timeout=TIMEOUT)
            assert got_map != AFTER
            assert await beamlet.receive(timeout=TIMEOUT) == AFTER
            # ...and echoed back as the same Erlang term
            assert await erl.eval(f"erpc:call(N, pymod, echo, [{bad}]) =:= {bad}.", **n) is True
        assert await erl.eval("rpc:call(N, pymod, echo, [ok]).", **n) == Atom("ok")
        assert erl.name in nodes()
        assert linked in beamlet.process_info(beamlet.self()).links
        assert await beamlet.receive(Exit, timeout=0, default=None) is None
