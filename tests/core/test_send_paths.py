"""Sends take one route per destination and copy a message once (issue 9 §2, §2.1-§2.2).

Regression tests for two defects of the duplicated hot path:

* with two distributed nodes in one OS process, `beamlet.send` to the other node's pid
  handed the message over in memory (a `str` stayed a `str`, an unencodable object was
  delivered) while `Node.send` went over the wire: the route must not depend on the
  entry point;
* a raw `(tag, value)` reply to a waiting call was deep-copied twice (by the send, and
  again when it was handed to the caller).
"""

from __future__ import annotations

import copy
import socket
from typing import Any, NamedTuple

import pytest

import beamlet
from beamlet import ANY, Node, Pid
from beamlet.distribution.distribution import start_distribution
from beamlet.distribution.etf import EncodeError

COOKIE = "beamlet_send_paths"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Point(NamedTuple):
    x: int
    y: int


async def _echo(to: Pid) -> None:
    while True:
        beamlet.send(to, ("got", await beamlet.receive()))


async def test_send_to_a_pid_of_another_node_in_this_os_process_goes_over_the_wire() -> None:
    """`beamlet.send`, `Node.send` and a `(name, node)` send to a process of another
    distributed node in the same OS process all encode the message: a namedtuple
    arrives as the plain tuple of its ETF form (a `str` stays a `str` between beamlet
    nodes), and an unencodable one raises at once."""
    port = _free_port()
    here = beamlet.current_node()
    # This test's own node is not distributed: run the sender on a distributed one.
    a = Node(f"sendpa{port}@127.0.0.1")
    b = Node(f"sendpb{port}@127.0.0.1")
    async with a, b:
        da = await start_distribution(a, cookie=COOKIE, epmd_port=port, listen_host="127.0.0.1")
        db = await start_distribution(b, cookie=COOKIE, epmd_port=port, listen_host="127.0.0.1")
        try:

            async def sender() -> list[Any]:
                me = beamlet.self()
                echo = b.spawn(_echo, me)
                b.register("echo_sp", echo)
                got = []
                for how in ("api", "node", "name"):
                    if how == "api":
                        beamlet.send(echo, ("text", _Point(1, 2)))
                    elif how == "node":
                        a.send(echo, ("text", _Point(1, 2)))
                    else:
                        beamlet.send((beamlet.Atom("echo_sp"), b.name), ("text", _Point(1, 2)))
                    got.append(await beamlet.receive(("got", ANY), timeout=10.0))
                for send in (lambda m: beamlet.send(echo, m), lambda m: a.send(echo, m)):
                    with pytest.raises(EncodeError):
                        send({1, 2})  # a set has no external term format
                return got

            got = await a.run(sender)
        finally:
            await da.stop()
            await db.stop()
    assert got == [("got", ("text", (1, 2)))] * 3  # the reply crossed the wire too
    assert {type(m[1][1]) for m in got} == {tuple}  # encoded: no longer a _Point
    assert here is beamlet.current_node()


class Counted:
    """A mutable reply value that counts how often it is deep-copied."""

    copies = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __deepcopy__(self, memo: dict[int, Any]) -> Counted:
        Counted.copies += 1
        return Counted(self.n)


async def test_raw_reply_to_a_waiting_call_is_copied_once() -> None:
    """A raw server answers `GenServer.call` with `send(pid, (tag, value))`: the value is
    isolated by that send and handed to the caller as it is, not copied again."""

    async def raw_server() -> None:
        _label, (caller, tag), request = await beamlet.receive()
        beamlet.send(caller, (tag, Counted(request)))

    server = beamlet.spawn(raw_server)
    Counted.copies = 0
    reply = await beamlet.GenServer.call(server, 7)
    assert isinstance(reply, Counted) and reply.n == 7
    assert Counted.copies == 1


async def test_answered_reply_is_copied_once() -> None:
    """`GenServer.reply` (the kernel's answer) copies a mutable reply exactly once."""

    class Server(beamlet.GenServer[None]):
        async def init(self, arg: None) -> None:
            return None

        async def handle_call(self, request: Any, from_: Any, state: None) -> Any:
            return beamlet.Reply(Counted(request), state)

    pid = await Server.start_link(None)
    Counted.copies = 0
    reply = await beamlet.GenServer.call(pid, 3)
    assert isinstance(reply, Counted) and reply.n == 3
    assert Counted.copies == 1
    assert copy.deepcopy(reply).n == 3
