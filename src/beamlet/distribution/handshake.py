"""The distribution handshake, protocol version 6 (docs/protocol.md §2).

Pure functions that build and parse the handshake messages, plus the flag sets. The
message exchange itself is driven by `connection.py`, which owns the socket.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from beamlet._core import BeamletError

# Distribution flags (§2.4).
PUBLISHED = 0x1
EXTENDED_REFERENCES = 0x4
DIST_MONITOR = 0x8
FUN_TAGS = 0x10
DIST_MONITOR_NAME = 0x20
NEW_FUN_TAGS = 0x80
EXTENDED_PIDS_PORTS = 0x100
EXPORT_PTR_TAG = 0x200
BIT_BINARIES = 0x400
NEW_FLOATS = 0x800
UNICODE_IO = 0x1000
SMALL_ATOM_TAGS = 0x4000
UTF8_ATOMS = 0x10000
MAP_TAG = 0x20000
BIG_CREATION = 0x40000
SEND_SENDER = 0x80000
BIG_SEQTRACE_LABELS = 0x100000
EXIT_PAYLOAD = 0x400000
HANDSHAKE_23 = 0x1000000
UNLINK_ID = 0x2000000
MANDATORY_25_DIGEST = 0x4000000
SPAWN = 1 << 32
V4_NC = 1 << 34
ALIAS = 1 << 35

#: What a hidden beamlet node advertises (§2.5; accepted by OTP 25 both ways).
OUR_FLAGS = 0xD075F5FBC
MANDATORY_25 = 0x1070F94
#: What we need from a peer: what OTP 25 needs (erts' DFLAG_DIST_MANDATORY_25), plus
#: V4_NC (beamlet's pid numbers and refs need the full 32-bit fields; OTP 24+ and
#: ei-based C nodes have it; OTP 26+ require it too). OTP 26+ also require UNLINK_ID;
#: beamlet does not (a peer without it gets the old link protocol), so ei-based C
#: nodes such as `erl_call` connect.
REQUIRED = MANDATORY_25 | V4_NC
#: Optional flags beamlet uses. A peer without one of them gets a "legacy" connection:
#: each signal is rewritten in the form it understands (`dist_ctrl.downgrade`).
MODERN = SEND_SENDER | EXIT_PAYLOAD | UNLINK_ID | SPAWN | ALIAS | DIST_MONITOR | DIST_MONITOR_NAME

_U16 = struct.Struct(">H")
_SEND_NAME = struct.Struct(">cQIH")  # 'N', flags, creation, name length
_CHALLENGE = struct.Struct(">cQIIH")  # 'N', flags, challenge, creation, name length
_REPLY = struct.Struct(">cI16s")  # 'r', challenge, digest


class HandshakeError(BeamletError, ConnectionError):
    """The handshake failed: bad cookie, refused by the peer, malformed message."""


@dataclass(frozen=True, slots=True)
class PeerHello:
    """What the other side said about itself in send_name or challenge."""

    name: str
    flags: int
    creation: int
    challenge: int = 0


def read_cookie(cookie: str | None = None) -> str:
    """The cookie: the argument, else `$ERLANG_COOKIE`, else `~/.erlang.cookie`."""
    if cookie:
        return cookie
    env = os.environ.get("ERLANG_COOKIE")
    if env:
        return env
    path = Path.home() / ".erlang.cookie"
    try:
        return path.read_text().strip()
    except OSError:
        raise HandshakeError(
            f"no distribution cookie: pass cookie=..., set ERLANG_COOKIE or create {path}"
        ) from None


def digest(cookie: str, challenge: int) -> bytes:
    """md5(cookie ++ decimal challenge), as dist_util:gen_digest/2."""
    return hashlib.md5(cookie.encode() + str(challenge).encode("ascii")).digest()


def new_challenge() -> int:
    return secrets.randbits(32)


def effective_flags(flags: int) -> int:
    """Expand MANDATORY_25_DIGEST into the set it stands for (§2.3)."""
    if flags & MANDATORY_25_DIGEST:
        flags |= MANDATORY_25
    return flags


def missing_flags(peer_flags: int) -> int:
    return REQUIRED & ~effective_flags(peer_flags)


def send_name(name: str, flags: int, creation: int) -> bytes:
    raw = name.encode()
    return _SEND_NAME.pack(b"N", flags, creation, len(raw)) + raw


def parse_send_name(msg: bytes) -> PeerHello:
    if msg[:1] == b"n":
        raise HandshakeError("peer uses the pre-OTP-23 handshake ('n'); not supported")
    if len(msg) < _SEND_NAME.size or msg[:1] != b"N":
        raise HandshakeError(f"malformed send_name: {msg[:32]!r}")
    _tag, flags, creation, nlen = _SEND_NAME.unpack_from(msg)
    name = _name(msg, _SEND_NAME.size, nlen)
    return PeerHello(name, flags, creation)


def challenge(name: str, flags: int, challenge: int, creation: int) -> bytes:
    raw = name.encode()
    return _CHALLENGE.pack(b"N", flags, challenge, creation, len(raw)) + raw


def parse_challenge(msg: bytes) -> PeerHello:
    if len(msg) < _CHALLENGE.size or msg[:1] != b"N":
        raise HandshakeError(f"malformed challenge: {msg[:32]!r}")
    _tag, flags, ch, creation, nlen = _CHALLENGE.unpack_from(msg)
    name = _name(msg, _CHALLENGE.size, nlen)
    return PeerHello(name, flags, creation, ch)


def challenge_reply(ch: int, dig: bytes) -> bytes:
    return _REPLY.pack(b"r", ch, dig)


def parse_challenge_reply(msg: bytes) -> tuple[int, bytes]:
    if len(msg) != _REPLY.size or msg[:1] != b"r":
        raise HandshakeError(f"malformed challenge_reply: {msg[:32]!r}")
    _tag, ch, dig = _REPLY.unpack(msg)
    return ch, dig


def challenge_ack(dig: bytes) -> bytes:
    return b"a" + dig


def parse_challenge_ack(msg: bytes) -> bytes:
    if len(msg) != 17 or msg[:1] != b"a":
        raise HandshakeError(f"malformed challenge_ack: {msg[:32]!r}")
    return msg[1:]


def status(text: str) -> bytes:
    return b"s" + text.encode()


def parse_status(msg: bytes) -> str:
    if msg[:1] != b"s":
        raise HandshakeError(f"malformed status: {msg[:32]!r}")
    return msg[1:].decode("ascii", "replace")


def frame16(msg: bytes) -> bytes:
    return _U16.pack(len(msg)) + msg


#: A node name is an atom: at most 255 bytes here (Erlang: 255 characters; beamlet
#: counts UTF-8 bytes, the stricter of the two for non-ASCII names).
MAX_NODE_NAME = 255


def check_name(name: str) -> None:
    """Exactly one '@' with both parts non-empty (dist_util:is_name_ok), and at most
    `MAX_NODE_NAME` bytes: a longer name could not even be encoded as an atom."""
    size = len(name.encode("utf-8", "replace"))
    if size > MAX_NODE_NAME:
        raise HandshakeError(
            f"invalid node name {name[:40]!r}...: {size} bytes, at most {MAX_NODE_NAME}"
        )
    local, sep, host = name.partition("@")
    if not sep or not local or not host or "@" in host:
        raise HandshakeError(f"invalid node name {name!r}: expected name@host")


def _name(msg: bytes, start: int, nlen: int) -> str:
    raw = msg[start : start + nlen]
    if len(raw) != nlen:
        raise HandshakeError("truncated node name in handshake")
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        raise HandshakeError("node name is not UTF-8") from None
    check_name(name)
    return name
