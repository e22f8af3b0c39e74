"""Recognising a beamlet peer, so that a connection between two beamlet nodes uses the
codec's lossless mode (`etf.LOSSLESS`) while Erlang, Elixir and C-node peers get the
documented defaults.

Nothing in the handshake may carry it: unknown flag bits are reserved for OTP's future
flags, and the names, creations and challenges are Erlang's. So, once a connection is
up, each beamlet node sends one ordinary message to the registered name
`beamlet_dist` on the peer (`hello`, encoded with the default options), from its
runtime pid `<0.0.0>`. An Erlang or Elixir node has no such process and drops it, as it
drops any message to an unknown name; ei-based C nodes (legacy connections: `erl_call`,
`ei_rpc`) are not sent it at all, since `ei_rpc` would take any message for its reply.
A beamlet node intercepts messages to that name in the connection layer, in frame
order:

1. A → B `hello`: "I am a beamlet node; I decode frames encoded with the options
   named in it" (`lossless`, or `default` for a node that opted out).
2. B, on a `hello` naming `lossless`, if it uses lossless itself, sends `switch` and
   encodes everything after it for A with `etf.LOSSLESS`; A decodes every frame after
   `switch` with it. Otherwise both directions keep the node's `codec`.

Frames are ordered on a connection, so each side knows exactly which frames use which
options; the two directions switch independently.

Misclassifying an Erlang peer as beamlet would send it encodings erts never writes (an
empty BIT_BINARY_EXT aborts an OTP 28 VM), so the rules are strict: a peer is a
beamlet node only on a modern (non-legacy) connection, for a message of exactly this
shape from the peer's `<0.0.0>` (in Erlang, `init`, which never sends one; an Erlang
process that sends `{beamlet_dist, Py} ! {beamlet_hello, 1, lossless}` is ignored), and
only after the node asked for it (`switch` answers our own `hello`).

Examples:
    >>> hello(lossless=True)
    (Atom('beamlet_hello'), 1, Atom('lossless'))
    >>> is_hello(hello(lossless=True)), is_hello((Atom("beamlet_hello"), 1))
    (True, False)
"""

from __future__ import annotations

from typing import Any

from beamlet._core import Atom, Pid

#: The registered name beamlet nodes intercept on their connections.
SERVICE = Atom("beamlet_dist")
HELLO_TAG = Atom("beamlet_hello")
SWITCH_TAG = Atom("beamlet_codec")
PROTOCOL_VERSION = 1
LOSSLESS_NAME = Atom("lossless")
DEFAULT_NAME = Atom("default")


def hello(*, lossless: bool) -> tuple[Atom, int, Atom]:
    """The message that says "I am a beamlet node" (and which options it decodes)."""
    return (HELLO_TAG, PROTOCOL_VERSION, LOSSLESS_NAME if lossless else DEFAULT_NAME)


def switch() -> tuple[Atom, Atom]:
    """The message after which the sender encodes with `etf.LOSSLESS`."""
    return (SWITCH_TAG, LOSSLESS_NAME)


def is_hello(msg: Any) -> bool:
    """Whether `msg` is a `hello` (of any protocol version, naming any options)."""
    return (
        type(msg) is tuple
        and len(msg) == 3
        and type(msg[0]) is Atom
        and msg[0] == HELLO_TAG
        and type(msg[1]) is int
        and msg[1] >= 1
        and type(msg[2]) is Atom
    )


def is_switch(msg: Any) -> bool:
    """Whether `msg` is a `switch` to the lossless options."""
    return (
        type(msg) is tuple
        and len(msg) == 2
        and type(msg[0]) is Atom
        and msg[0] == SWITCH_TAG
        and type(msg[1]) is Atom
        and msg[1] == LOSSLESS_NAME
    )


def from_runtime(sender: Any, peer: Atom) -> bool:
    """Whether `sender` is `peer`'s runtime pid `<0.0.0>`, the sender of the protocol."""
    return type(sender) is Pid and sender.node == peer and sender.id == 0 and sender.serial == 0


def is_service(name: Any) -> bool:
    """Whether a REG_SEND's name is `SERVICE` (C comparison: this is on the hot path)."""
    return type(name) is Atom and str.__eq__(name, "beamlet_dist")
