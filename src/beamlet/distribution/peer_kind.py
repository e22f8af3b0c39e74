"""Recognising a beamlet peer, so that a connection can use per-connection codec
options (a lossless mode between beamlet nodes) without confusing Erlang peers.

Nothing in the handshake may carry it: unknown flag bits are reserved for OTP's future
flags, and the names, creations and challenges are Erlang's. So, once a connection is
up, each beamlet node sends one ordinary message to the registered name
`beamlet_dist` on the peer (`HELLO`, encoded with the default options). An Erlang or
Elixir node has no such process and drops it, as it drops any message to an unknown
name; ei-based C nodes (legacy connections) are not sent it at all, since `ei_rpc`
would take any message for its reply. A beamlet node intercepts messages to that name
in the connection layer, in frame order:

1. A → B `HELLO`: "I am a beamlet node; I can decode frames encoded with the options
   named in it".
2. B, on `HELLO`, sends `SWITCH` and encodes everything after it for A with the
   beamlet-to-beamlet options; A decodes every frame after `SWITCH` with them.

Frames are ordered on a connection, so each side knows exactly which frames use which
options; the two directions switch independently. Until the codec has a lossless mode
(`etf.CodecOptions`), the exchange still marks the connection (`DistProtocol.beamlet`)
and no options change.
"""

from __future__ import annotations

from typing import Any

from beamlet._core import Atom

#: The registered name beamlet nodes intercept on their connections.
SERVICE = Atom("beamlet_dist")
HELLO_TAG = Atom("beamlet_hello")
SWITCH_TAG = Atom("beamlet_codec")
PROTOCOL_VERSION = 1


def hello(codec_name: str | None) -> tuple[Atom, int, Atom]:
    """The message that says "I am a beamlet node" (and which options it decodes)."""
    return (HELLO_TAG, PROTOCOL_VERSION, Atom(codec_name or "default"))


def switch(codec_name: str) -> tuple[Atom, Atom]:
    """The message after which the sender encodes with `codec_name`'s options."""
    return (SWITCH_TAG, Atom(codec_name))


def is_service(name: Any) -> bool:
    """Whether a REG_SEND's name is `SERVICE` (C comparison: this is on the hot path)."""
    return type(name) is Atom and str.__eq__(name, "beamlet_dist")
