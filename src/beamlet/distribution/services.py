"""Services a distributed node runs for its peers, and how they answer.

`net_kernel` (answers `net_adm:ping`), `rex` (serves `rpc:call`) and the group leader
of processes this node spawns on other nodes are started with the distribution and
killed when it stops.
"""

from __future__ import annotations

import logging
from typing import Any

from beamlet._core.node import Node
from beamlet._core.terms import Atom
from beamlet.distribution import etf

log = logging.getLogger("beamlet.distribution")

_ALIAS = Atom("alias")


def gen_reply(node: Node, from_: Any, reply: Any) -> None:
    """Reply to an Erlang-style `From = {Pid, Tag}` (gen:reply/2 semantics)."""
    to, tag = from_
    dest: Any = to
    if type(tag) is etf.ImproperList and tag.items[:1] == (_ALIAS,):
        dest = tag.tail
    node.send(dest, (tag, reply))


def safe_reply(node: Node, from_: Any, reply: Any) -> None:
    """`gen_reply`, logging instead of raising when `From` is malformed or the reply
    cannot be sent."""
    try:
        gen_reply(node, from_, reply)
    except Exception as e:
        log.info("beamlet.distribution: cannot reply to %r: %s", from_, e)
