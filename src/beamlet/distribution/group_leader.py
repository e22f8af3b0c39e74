"""The group leader of processes this node spawns on other nodes (OTP's io protocol).

An Erlang process started by a remote spawn from here has this process as its group
leader, so its `io:format` sends `io_request`s here. They are answered (`ok`, or
`{error, enotsup}` for input), so output there neither blocks nor fails, and the text
is printed on this node's standard output.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from beamlet._core import Atom, Node, Pid, receive
from beamlet.distribution import etf
from beamlet.distribution.reasons import brief

_IO_REQUEST = Atom("io_request")
_IO_REPLY = Atom("io_reply")
_PUT_CHARS = Atom("put_chars")
_REQUESTS = Atom("requests")
_FORMAT = Atom("format")
_OK = Atom("ok")
_ERROR = Atom("error")
_ENOTSUP = Atom("enotsup")
_MAX_NESTING = 8  # {requests, [...]} inside {requests, ...}: no real client nests them

log = logging.getLogger("beamlet.distribution")


async def group_leader(node: Node) -> None:
    """The body of the group leader process of `node`'s distribution."""
    while True:
        msg = await receive()
        if type(msg) is tuple and len(msg) == 4 and msg[0] == _IO_REQUEST:
            _, frm, reply_as, request = msg
            try:
                reply = _io_request(request, 0)
                if type(frm) is Pid:
                    node.send(frm, (_IO_REPLY, reply_as, reply))
            except Exception as e:  # an odd request costs its reply, never the service
                log.info("beamlet.distribution: io request %s: %s", brief(request), brief(e))


def _io_request(request: Any, depth: int) -> Any:
    if type(request) is tuple and request[:1] == (_PUT_CHARS,):
        try:
            if len(request) == 3:
                text = _chars(request[2])
            elif len(request) == 5 and request[3] == _FORMAT and len(request[4]) == 2:
                text = _format(_chars(request[4][0]), request[4][1])
            else:
                text = brief(request[1:], 1000)
            sys.stdout.write(text)
            sys.stdout.flush()
        except Exception:
            pass
        return _OK
    if type(request) is tuple and request[:1] == (_REQUESTS,) and type(request[1]) is list:
        if depth >= _MAX_NESTING:
            return (_ERROR, _ENOTSUP)
        for r in request[1]:
            reply = _io_request(r, depth + 1)
            if reply != _OK:
                return reply
        return _OK
    return (_ERROR, _ENOTSUP)


def _chars(data: Any) -> str:
    """The text of Erlang chardata (binaries, code points, nested lists)."""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if type(data) is etf.Charlist:
        return data.text
    if isinstance(data, str):
        return data
    if type(data) is int:
        return chr(data)
    if isinstance(data, list | tuple):
        return "".join(_chars(x) for x in data)
    if type(data) is etf.ImproperList:
        return _chars(list(data.items)) + _chars(data.tail)
    return brief(data, 1000)


def _format(fmt: str, args: Any) -> str:
    """A rough rendering of io_lib:format/2 (~n, ~~, and one argument per directive)."""
    values = list(args) if isinstance(args, list | etf.Charlist) else [args]
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        i += 1
        if c != "~":
            out.append(c)
            continue
        while i < len(fmt) and (fmt[i].isdigit() or fmt[i] in ".-*lt"):
            i += 1
        d = fmt[i] if i < len(fmt) else ""
        i += 1
        if d == "n":
            out.append("\n")
        elif d == "~":
            out.append("~")
        elif values:
            v = values.pop(0)
            out.append(_chars(v) if d == "s" else brief(v, 1000))
    return "".join(out)
