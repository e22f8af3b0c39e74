"""`erl_call`, the ei-based C node that ships with Erlang, against a beamlet node.

issue 11 item 1: ei nodes advertise neither EXIT_PAYLOAD nor SEND_SENDER (nor SPAWN,
ALIAS, DIST_MONITOR_NAME), and beamlet used to refuse them. It accepts what OTP accepts
and rewrites its signals for such a peer (`dist_ctrl.downgrade`); `erl_call`'s rpc uses
rex's pre-gen_server protocol (`{From, {call, M, F, A, GL}}` answered `{rex, R}`).
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from dist_nodes import COOKIE, DistNode, _require
from raw_peer import RawPeer

import beamlet
from beamlet import Atom, Pid, ProcessExit
from beamlet.distribution import RpcError, etf, rpc

TIMEOUT = 10.0


async def erl_call(
    node: DistNode, epmd_port: int, *args: str, stdin: bytes = b"", cookie: str = COOKIE
) -> tuple[int, str]:
    exe = shutil.which("erl_call") or _require("erl_call")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-name",
        str(node.name),
        "-c",
        cookie,
        "-timeout",
        "5",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ERL_EPMD_PORT": str(epmd_port)},
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, _ = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_erl_call_apply(node: DistNode, epmd_port: int) -> None:
    node.d.register_function("pymod", "add", lambda a, b: a + b)
    node.d.register_function("pymod", "echo", lambda x: x)
    assert await erl_call(node, epmd_port, "-a", "erlang node []") == (0, f"'{node.name}'")
    assert await erl_call(node, epmd_port, "-a", "pymod add [1, 2]") == (0, "3")
    rc, out = await erl_call(node, epmd_port, "-a", "pymod echo [[{a, 1.5, [b]}]]")
    assert (rc, out) == (0, "[{a, 1.500000, [b]}]")  # erl_call prints floats %f


async def test_erl_call_errors(node: DistNode, epmd_port: int) -> None:
    def bad(x: object) -> None:
        raise ValueError(f"bad {x!r}")

    node.d.register_function("pymod", "bad", bad)
    rc, out = await erl_call(node, epmd_port, "-a", "nosuch fn [1]")
    assert rc == 0 and out.startswith("{badrpc, {'EXIT', {undef, [{nosuch, fn, [1], []}]}}}")
    rc, out = await erl_call(node, epmd_port, "-a", "pymod bad [1]")
    # erl_call prints binaries as #Bin<...>: <<"ValueError">>
    value_error = "#Bin<" + ",".join(str(b) for b in b"ValueError") + ">"
    assert rc == 0 and out.startswith(f"{{badrpc, {{'EXIT', {{{{python, {value_error}")
    # -e sends Erlang source, which a Python node cannot evaluate: a clear error.
    rc, out = await erl_call(node, epmd_port, "-e", stdin=b"X = 1, X + 1.\n")
    assert rc == 0 and "cannot evaluate Erlang source" in out
    # A wrong cookie: refused, and erl_call says so.
    rc, out = await erl_call(node, epmd_port, "-a", "erlang node []", cookie="wrong")
    assert rc != 0 and "failed to connect" in out
    # The node is fine afterwards.
    assert await erl_call(node, epmd_port, "-a", "erlang node []") == (0, f"'{node.name}'")


@pytest.mark.parametrize("n", [3])
async def test_erl_call_repeatedly(node: DistNode, epmd_port: int, n: int) -> None:
    for i in range(n):
        rc, out = await erl_call(node, epmd_port, "-a", "erlang node []")
        assert (rc, out, i) == (0, f"'{node.name}'", i)
    assert Atom("c") != Atom("d")


# The flags erl_call (erl_interface 5.3, OTP 25) sends: no SEND_SENDER, EXIT_PAYLOAD,
# SPAWN, ALIAS or DIST_MONITOR_NAME.
EI_FLAGS = 0x407074F9C
# ...and without UNLINK_ID too, which OTP 25 accepts: the old link protocol.
LEGACY_FLAGS = EI_FLAGS & ~0x2000000
SEND, EXIT, UNLINK, EXIT2, SEND_SENDER = 2, 3, 4, 8, 22


async def linked_then_exits(me: Pid, peer: Pid) -> None:
    beamlet.link(peer)
    beamlet.send(me, Atom("linked"))
    await beamlet.receive(Atom("go"), timeout=TIMEOUT)
    raise ProcessExit(Atom("bye"))


async def test_signals_to_a_peer_without_modern_flags(node: DistNode) -> None:
    me = beamlet.self()
    raw = await RawPeer.open(node)
    try:
        await raw.handshake(flags=LEGACY_FLAGS)
        peer = raw.pid(1)
        beamlet.send(peer, Atom("hi"))  # SEND, not SEND_SENDER
        assert await raw.read_ctl() == ((SEND, Atom(""), peer), Atom("hi"))
        beamlet.exit(peer, Atom("why"))  # EXIT2 with the reason in the control message
        assert await raw.read_ctl() == ((EXIT2, me, peer, Atom("why")), None)
        beamlet.link(peer)
        assert (await raw.read_ctl())[0][0] == 1
        beamlet.unlink(peer)  # the old link protocol: UNLINK
        assert await raw.read_ctl() == ((UNLINK, me, peer), None)
        beamlet.monitor(peer)  # no DIST_MONITOR_NAME needed for a pid: MONITOR_P goes
        assert (await raw.read_ctl())[0][0] == 19
        beamlet.monitor((Atom("name"), raw.name))  # by name: the peer cannot take it
        beamlet.send(peer, Atom("next"))
        assert await raw.read_ctl() == ((SEND, Atom(""), peer), Atom("next"))
        w = beamlet.spawn(linked_then_exits, me, peer)
        await beamlet.receive(Atom("linked"), timeout=TIMEOUT)
        assert (await raw.read_ctl())[0] == (1, w, peer)
        beamlet.send(w, Atom("go"))  # its link exit: EXIT, not PAYLOAD_EXIT
        assert await raw.read_ctl() == ((EXIT, w, peer, Atom("bye")), None)
        # No SPAWN: erpc answers notsup at once.
        with pytest.raises(RpcError) as info:
            await rpc.call(raw.name, "erlang", "node", [], timeout=TIMEOUT)
        assert (info.value.kind, info.value.reason) == ("erpc", Atom("notsup"))
        # The peer's own UNLINK (old protocol) removes a link.
        beamlet.process_flag(trap_exit=True)
        beamlet.link(peer)
        assert (await raw.read_ctl())[0] == (1, me, peer)
        await raw.send_ctl((UNLINK, peer, me))
        await raw.send_ctl((SEND_SENDER, peer, me), Atom("after"))
        assert await beamlet.receive(Atom("after"), timeout=TIMEOUT) == Atom("after")
        assert peer not in beamlet.process_info(me).links
    finally:
        raw.close()


class _Capture:
    """Stands in for a connection: takes the flags and records the frames written."""

    def __init__(self, flags: int) -> None:
        self.frames: list[bytes] = []
        self.flags = flags
        self.legacy = True

    def write_frame(self, body: bytes | bytearray) -> None:
        self.frames.append(bytes(body))


async def test_signals_queued_before_the_flags_were_known(node: DistNode) -> None:
    # Signals to a node we are still dialing are encoded at once; when the peer turns
    # out to be legacy they are rewritten before they are written.
    me, peer = beamlet.self(), Pid(Atom("c@h"), 1, 0, 1)
    frames = [
        b"p" + etf.encode((SEND_SENDER, me, peer)) + etf.encode(1),
        b"p" + etf.encode((24, me, peer)) + etf.encode(Atom("r")),  # PAYLOAD_EXIT
        b"p" + etf.encode((35, 7, me, peer)),  # UNLINK_ID
    ]
    cap = _Capture(LEGACY_FLAGS)
    # Held as (encoded with `codec`, encoded for a beamlet peer): an ei node gets the first.
    node.d._write_queued(cap, peer.node, [(f, None) for f in frames])  # type: ignore[arg-type]
    assert cap.frames == [
        b"p" + etf.encode((SEND, Atom(""), peer)) + etf.encode(1),
        b"p" + etf.encode((EXIT, me, peer, Atom("r"))),
        b"p" + etf.encode((UNLINK, me, peer)),
    ]
