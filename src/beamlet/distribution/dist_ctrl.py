"""Control messages: their shapes, their encoding for the kernel's signals to other
nodes, and the dispatch of those that arrive (erts' `dist.c`, docs/protocol.md §3).

`DistCtrl` implements the kernel's `RemoteHook` (send, link, unlink, exit, monitor,
demonitor, down for pids and names of other nodes) by writing control messages on the
connection to that node, connecting on first use (`NetKernel` queues them meanwhile).
Frames from peers are checked against the shape of their control message, decoded and
handed to the kernel's entry points (`deliver_remote`, `remote_link`, `remote_down`...).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, cast

from beamlet._core import NOPROC, Atom, Node, Pid, Ref
from beamlet.distribution import etf, peer_kind
from beamlet.distribution import handshake as hs
from beamlet.distribution.connection import DistProtocol
from beamlet.distribution.net_kernel import NetKernel
from beamlet.distribution.reasons import brief, wire_reason

log = logging.getLogger("beamlet.distribution")

# Control message opcodes (docs/protocol.md §3.2).
LINK, SEND, EXIT, UNLINK, NODE_LINK, REG_SEND, GROUP_LEADER, EXIT2 = 1, 2, 3, 4, 5, 6, 7, 8
SEND_TT, EXIT_TT, REG_SEND_TT, EXIT2_TT = 12, 13, 16, 18
MONITOR_P, DEMONITOR_P, MONITOR_P_EXIT = 19, 20, 21
SEND_SENDER, SEND_SENDER_TT = 22, 23
PAYLOAD_EXIT, PAYLOAD_EXIT_TT, PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT = 24, 25, 26, 27
PAYLOAD_MONITOR_P_EXIT = 28
SPAWN_REQUEST, SPAWN_REQUEST_TT, SPAWN_REPLY, SPAWN_REPLY_TT = 29, 30, 31, 32
ALIAS_SEND, ALIAS_SEND_TT, UNLINK_ID, UNLINK_ID_ACK, ALTACT_SIG_SEND = 33, 34, 35, 36, 37

# ALTACT_SIG_SEND flag bits (§3.2).
_ALTACT_TOKEN, _ALTACT_ALIAS, _ALTACT_NAME, _ALTACT_EXIT = 2, 4, 8, 16
EMPTY = Atom("")
BADARG = Atom("badarg")

_CACHED_OPS = frozenset({SEND_SENDER, REG_SEND})
_MAX_QUEUED = 100_000  # signals held for one peer while its connection is being set up
# How long a new connection's frames wait for the peer-kind probe's answer (one round
# trip; only a peer that runs a process named `beamlet_dist` makes it time out).
PROBE_TIMEOUT = 3.0


_P, _A, _R, _I, _MFA, _L, _X, _PA = range(8)
_TYPE_CHECKS: dict[int, Callable[[Any], bool]] = {
    _P: lambda v: type(v) is Pid,
    _A: lambda v: type(v) is Atom,
    _R: lambda v: type(v) is Ref,
    _I: lambda v: type(v) is int,
    _MFA: lambda v: (
        type(v) is tuple
        and len(v) == 3
        and type(v[0]) is Atom
        and type(v[1]) is Atom
        and type(v[2]) is int
    ),
    _L: lambda v: type(v) is list,
    _X: lambda v: True,
    _PA: lambda v: type(v) is Pid or type(v) is Atom,
}
#: op -> (carries a payload, field kinds after the op)
_SHAPES: dict[int, tuple[bool, tuple[int, ...]]] = {
    LINK: (False, (_P, _P)),
    SEND: (True, (_X, _P)),
    EXIT: (False, (_P, _P, _X)),
    UNLINK: (False, (_P, _P)),
    NODE_LINK: (False, ()),
    REG_SEND: (True, (_P, _X, _A)),
    GROUP_LEADER: (False, (_P, _P)),
    EXIT2: (False, (_P, _P, _X)),
    SEND_TT: (True, (_X, _P, _X)),
    EXIT_TT: (False, (_P, _P, _X, _X)),
    REG_SEND_TT: (True, (_P, _X, _A, _X)),
    EXIT2_TT: (False, (_P, _P, _X, _X)),
    MONITOR_P: (False, (_P, _PA, _R)),
    DEMONITOR_P: (False, (_P, _PA, _R)),
    MONITOR_P_EXIT: (False, (_PA, _P, _R, _X)),
    SEND_SENDER: (True, (_P, _P)),
    SEND_SENDER_TT: (True, (_P, _P, _X)),
    PAYLOAD_EXIT: (True, (_P, _P)),
    PAYLOAD_EXIT_TT: (True, (_P, _P, _X)),
    PAYLOAD_EXIT2: (True, (_P, _P)),
    PAYLOAD_EXIT2_TT: (True, (_P, _P, _X)),
    PAYLOAD_MONITOR_P_EXIT: (True, (_PA, _P, _R)),
    SPAWN_REQUEST: (True, (_R, _P, _P, _MFA, _L)),
    SPAWN_REQUEST_TT: (True, (_R, _P, _P, _MFA, _L, _X)),
    SPAWN_REPLY: (False, (_R, _P, _I, _X)),
    SPAWN_REPLY_TT: (False, (_R, _P, _I, _X, _X)),
    ALIAS_SEND: (True, (_P, _R)),
    ALIAS_SEND_TT: (True, (_P, _R, _X)),
    UNLINK_ID: (False, (_I, _P, _P)),
    UNLINK_ID_ACK: (False, (_I, _P, _P)),
    ALTACT_SIG_SEND: (True, (_I, _P, _X)),
}


#: op -> index of the field naming the sending process: it must be one of the peer's
#: own (erts refuses signals a peer forges for a third node's processes).
_FROM_FIELD: dict[int, int] = {
    LINK: 1,
    EXIT: 1,
    UNLINK: 1,
    GROUP_LEADER: 1,
    EXIT2: 1,
    EXIT_TT: 1,
    EXIT2_TT: 1,
    MONITOR_P: 1,
    DEMONITOR_P: 1,
    MONITOR_P_EXIT: 1,
    PAYLOAD_EXIT: 1,
    PAYLOAD_EXIT_TT: 1,
    PAYLOAD_EXIT2: 1,
    PAYLOAD_EXIT2_TT: 1,
    PAYLOAD_MONITOR_P_EXIT: 1,
    SPAWN_REQUEST: 2,
    SPAWN_REQUEST_TT: 2,
    SPAWN_REPLY: 4,
    SPAWN_REPLY_TT: 4,
    UNLINK_ID: 2,
    UNLINK_ID_ACK: 2,
}
#: Control terms have a fixed shape; only a reason or a trace token nests, and no real
#: one nests this deep. Deeper ones are refused before anything could hash or compare
#: them (CPython hashes a tuple recursively, in C, with no recursion check).
CTL_MAX_DEPTH = 256
_LEAVES = frozenset({int, float, str, bytes, Atom, Pid, Ref})
UNDECODABLE = Atom("undecodable")


class BadFrame(Exception):
    """A frame that does not hold a well-formed distribution message."""


def check_control(ctl: Any, has_payload: bool) -> int:
    """Check a decoded control message against its shape; return its op.

    Raises `BadFrame` for a non-tuple, an unknown op, a wrong arity or field type, a
    field nested deeper than `CTL_MAX_DEPTH`, or a payload where none belongs (or none
    where one must be). Nothing here hashes, compares or prints a field whole."""
    if type(ctl) is not tuple or not ctl or type(ctl[0]) is not int:
        raise BadFrame(f"control message is not a tuple starting with an opcode: {brief(ctl)}")
    op = ctl[0]
    shape = _SHAPES.get(op)
    if shape is None:
        raise BadFrame(f"unknown control message opcode {brief(op)}")
    payload, fields = shape
    n = len(ctl) - 1
    if op == ALTACT_SIG_SEND and n == 4 and type(ctl[1]) is int and ctl[1] & _ALTACT_TOKEN:
        fields = (*fields, _X)
    if n != len(fields):
        raise BadFrame(f"control message {op} has {n} fields, expected {len(fields)}")
    for i, kind in enumerate(fields, 1):
        v = ctl[i]
        if kind == _X:
            if type(v) not in _LEAVES and _too_deep(v, CTL_MAX_DEPTH):
                raise BadFrame(f"control message {op}: field {i} nests too deep")
        elif not _TYPE_CHECKS[kind](v):
            raise BadFrame(f"control message {op}: bad field {i}: {brief(v, 100)}")
    if payload != has_payload:
        raise BadFrame(f"control message {op} {'needs' if payload else 'has no'} payload")
    return op


def _too_deep(term: Any, limit: int) -> bool:
    """Whether `term` nests containers more than `limit` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(term, 1)]
    while stack:
        t, depth = stack.pop()
        if depth > limit:
            return True
        cls = type(t)
        if cls in _LEAVES:
            continue
        if isinstance(t, tuple | list):
            items: Any = t
        elif isinstance(t, dict):
            items = [*t.keys(), *t.values()]
        elif cls is etf.ImproperList:
            items = (*t.items, t.tail)
        else:
            continue
        stack.extend((x, depth + 1) for x in items if type(x) not in _LEAVES)
    return False


def _encode_into(buf: bytearray, term: Any, options: Any) -> None:
    """`etf.encode_into` with a connection's codec options (None: the defaults)."""
    if options is None:
        etf.encode_into(buf, term)
    else:
        cast(Any, etf.encode_into)(buf, term, options=options)


# Decoded objects one payload may make (~4 s and ~0.5 GB in the worst shape measured,
# docs/reliability.md "Codec"): a small frame that inflates to millions of terms is refused.
PAYLOAD_MAX_TERMS = 8_000_000


def _decode_prefix(frame: bytes, offset: int, options: Any) -> tuple[Any, int]:
    """`etf.decode_prefix` with a connection's codec options (None: the defaults)."""
    if options is None:
        return etf.decode_prefix(frame, offset)
    result: tuple[Any, int] = etf.decode_prefix(
        frame, offset, options=options, max_terms=PAYLOAD_MAX_TERMS
    )
    return result


def downgrade(
    ctl: tuple[Any, ...], payload: tuple[Any, ...], flags: int
) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """A signal in the form a peer with `flags` understands (as erts writes it for such
    a peer), or None if it cannot have one: then it is dropped (a monitor of a peer
    without DIST_MONITOR fires only when the connection is lost; an alias send to a
    peer without ALIAS is lost, as in Erlang; a spawn request gets `notsup`)."""
    op = ctl[0]
    if op == SEND_SENDER and not flags & hs.SEND_SENDER:
        return (SEND, EMPTY, ctl[2]), payload
    if op == PAYLOAD_EXIT and not flags & hs.EXIT_PAYLOAD:
        return (EXIT, ctl[1], ctl[2], payload[0]), ()
    if op == PAYLOAD_EXIT2 and not flags & hs.EXIT_PAYLOAD:
        return (EXIT2, ctl[1], ctl[2], payload[0]), ()
    if op == PAYLOAD_MONITOR_P_EXIT and not flags & hs.EXIT_PAYLOAD:
        return (MONITOR_P_EXIT, ctl[1], ctl[2], ctl[3], payload[0]), ()
    if op == UNLINK_ID and not flags & hs.UNLINK_ID:
        return (UNLINK, ctl[2], ctl[3]), ()
    if op in (MONITOR_P, DEMONITOR_P):
        by_name = type(ctl[2]) is Atom
        if not flags & hs.DIST_MONITOR or (by_name and not flags & hs.DIST_MONITOR_NAME):
            return None
    if op == ALIAS_SEND and not flags & hs.ALIAS:
        return None
    if op == SPAWN_REQUEST and not flags & hs.SPAWN:
        return None
    return ctl, payload


def _check_codecs(codec: Any, beamlet_codec: Any) -> None:
    for name, opts in (("codec", codec), ("beamlet_codec", beamlet_codec)):
        if opts is not None and not isinstance(opts, etf.CodecOptions):
            raise TypeError(f"{name} must be an etf.CodecOptions or None, not {opts!r}")
    if codec is not None and codec.lossless:
        # Erlang, Elixir and C nodes get `codec`: lossless encodings are for beamlet only
        # (an empty BIT_BINARY_EXT aborts an OTP 28 VM).
        raise ValueError("codec cannot be lossless: pass beamlet_codec=etf.LOSSLESS (the default)")


class DistCtrl(NetKernel):
    """`NetKernel` plus the control messages: the kernel's `RemoteHook`."""

    def __init__(
        self, node: Node, *, beamlet_codec: etf.CodecOptions | None = etf.LOSSLESS, **config: Any
    ) -> None:
        _check_codecs(config.get("codec"), beamlet_codec)
        super().__init__(node, **config)
        self._ctl_cache: dict[tuple[Any, ...], bytes] = {}
        self._name_monitors: dict[Ref, Atom] = {}  # monitors by name from remote watchers
        self._unlink_ids = itertools.count(1).__next__
        #: The codec options of connections to beamlet nodes (`peer_kind.py`): lossless
        #: ones are negotiated (both nodes must use them), others apply as they are;
        #: None: beamlet peers get `codec`, as Erlang peers do.
        self.beamlet_codec = beamlet_codec

    def _forget(self, node: Atom) -> None:
        super()._forget(node)
        for ref in [r for r in self._name_monitors if r.node == node]:
            del self._name_monitors[ref]

    def _spawn_request(self, peer: Atom, ctl: tuple[Any, ...], args: Any) -> None:
        """A SPAWN_REQUEST from `peer` (served by `erpc.RemoteSpawn`)."""
        raise NotImplementedError

    def _spawn_reply(self, peer: Atom, ctl: tuple[Any, ...]) -> None:
        """A SPAWN_REPLY from `peer` (served by `erpc.RemoteSpawn`)."""
        raise NotImplementedError

    # --- output -------------------------------------------------------------------------

    def _emit(self, node: Atom, ctl: tuple[Any, ...], *payload: Any) -> bool:
        """Encode and send one control message (plus payload) to `node`, connecting
        first if needed. Raises `etf.EncodeError` (nothing sent) for an unencodable
        term; returns False if the signal was dropped (node going down, stopping, or a
        peer that has no form for it)."""
        conn = self.conns.get(node)
        if conn is not None and conn.legacy:
            down = downgrade(ctl, payload, conn.flags)
            if down is None:
                self._refused(node, ctl)
                return False
            ctl, payload = down
        buf = bytearray(b"p")
        etf.encode_into(buf, ctl)
        if conn is not None and conn.pending is None:
            if payload:
                _encode_into(buf, payload[0], conn.encode_options)
            conn.write_frame(buf)
            return True
        # Not connected yet, or the peer's kind is not known yet: hold the frame, in
        # each encoding it may need, until `_resolve` knows which one the peer takes.
        frame = self._frames_for(buf, payload)
        if conn is not None:
            assert conn.pending is not None
            if len(conn.pending) >= _MAX_QUEUED:
                log.warning(
                    "beamlet.distribution: dropping a signal to %s: peer kind unknown", node
                )
                return False
            conn.pending.append(frame)
            return True
        if node == self.node.name or node in self._going_down or self._stopping:
            return False
        queue = self._queued.setdefault(node, [])
        if len(queue) >= _MAX_QUEUED:
            log.warning("beamlet.distribution: dropping a signal to %s: connection not up", node)
            return False
        queue.append(frame)
        self._ensure_connecting(node)
        return True

    def _frames_for(
        self, ctl: bytearray, payload: tuple[Any, ...]
    ) -> tuple[bytes | None, bytes | None]:
        """A frame held for a peer of unknown kind: (encoded with `codec`, encoded with
        `beamlet_codec` or None if that is the same). One of them may be None if the
        payload cannot be encoded that way (a dict with keys "a" and b"a" goes to a
        beamlet node only); EncodeError if neither can."""
        if not payload:
            return bytes(ctl), None
        alt_opts = self.beamlet_codec
        if alt_opts == self.codec or (alt_opts == etf.DEFAULT_OPTIONS and self.codec is None):
            alt_opts = None
        plain: bytes | None = None
        alt: bytes | None = None
        try:
            buf = bytearray(ctl)
            _encode_into(buf, payload[0], self.codec)
            plain = bytes(buf)
        except etf.EncodeError:
            if alt_opts is None:
                raise
            buf = bytearray(ctl)
            _encode_into(buf, payload[0], alt_opts)  # raises the error of the beamlet form
            return None, bytes(buf)
        if alt_opts is not None:
            buf = bytearray(ctl)
            try:
                _encode_into(buf, payload[0], alt_opts)
                alt = bytes(buf)
            except etf.EncodeError:
                pass
        return plain, alt

    def _emit_send(self, node: Atom, ctl: tuple[Any, ...], msg: Any) -> bool:
        """`_emit` for message sends, with the control term's encoding cached: a process
        sending to the same peer repeats it (encoding it is most of a small send)."""
        conn = self.conns.get(node)
        if conn is None or conn.legacy or conn.pending is not None:
            return self._emit(node, ctl, msg)
        enc = self._ctl_cache.get(ctl)
        if enc is None:
            if len(self._ctl_cache) >= 4096:
                self._ctl_cache.clear()
            enc = self._ctl_cache[ctl] = b"p" + etf.encode(ctl)
        buf = bytearray(enc)
        if conn.encode_options is None:  # the common case, without a call
            etf.encode_into(buf, msg)
        else:
            _encode_into(buf, msg, conn.encode_options)
        conn.write_frame(buf)
        return True

    def _write_queued(self, proto: DistProtocol, node: Atom, frames: list[Any]) -> None:
        # Called as the connection comes up, before any frame of the peer is handled.
        if not proto.legacy:
            # The peer may be a beamlet node: say so (hello), and ask what it is (a
            # monitor of the name `beamlet_dist`: Erlang answers noproc at once; a
            # beamlet node answers its hello first). Every frame waits for the answer,
            # so that the first message to a beamlet node already round-trips.
            self._write_now(proto, (REG_SEND, self.node.system_pid, EMPTY, peer_kind.SERVICE),
                            peer_kind.hello(lossless=self._lossless))  # fmt: skip
            proto.pending = list(frames)
            proto.probe = self.node.make_ref()
            self._write_now(
                proto, (MONITOR_P, self.node.system_pid, peer_kind.SERVICE, proto.probe)
            )
            proto.probe_timer = asyncio.get_running_loop().call_later(
                PROBE_TIMEOUT, self._probe_timeout, proto
            )
            return
        # An ei node (legacy: never a beamlet node). Queued before the peer's flags were
        # known: rewrite them for it.
        for plain, _ in frames:
            if plain is None:
                log.warning("beamlet.distribution: dropping a message %s cannot take", node)
                continue
            ctl, off = etf.decode_prefix(plain, 1)
            payload = (etf.decode_prefix(plain, off)[0],) if off < len(plain) else ()
            down = downgrade(ctl, payload, proto.flags)
            if down is None:
                self._refused(node, ctl)
                continue
            buf = bytearray(b"p")
            etf.encode_into(buf, down[0])
            if down[1]:
                etf.encode_into(buf, down[1][0])
            proto.write_frame(buf)

    def _write_now(self, proto: DistProtocol, ctl: tuple[Any, ...], *payload: Any) -> None:
        """Write a frame of the peer protocol at once, ahead of the frames held."""
        buf = bytearray(b"p")
        etf.encode_into(buf, ctl)
        if payload:
            etf.encode_into(buf, payload[0])
        proto.write_frame(buf)

    def _resolve(self, proto: DistProtocol) -> None:
        """The peer's kind is known: write the frames held, each in the encoding the
        connection uses now (the beamlet one if the peer said hello, else `codec`)."""
        frames, proto.pending = proto.pending, None
        if proto.probe_timer is not None:
            proto.probe_timer.cancel()
            proto.probe_timer = None
        if frames is None:
            return
        alt = proto.encode_options is not self.codec
        for plain, other in frames:
            frame = (other or plain) if alt else plain
            if frame is None:
                log.warning(
                    "beamlet.distribution: dropping a message %s cannot take (its keys are "
                    "one Erlang term)", proto.peer,
                )  # fmt: skip
                continue
            proto.write_frame(frame)

    def _probe_timeout(self, proto: DistProtocol) -> None:
        # A peer that monitors its own `beamlet_dist` (or ignores the monitor): not beamlet.
        if proto.pending is None or proto.closed:
            return
        log.debug("beamlet.distribution: %s did not answer the peer-kind probe", proto.peer)
        if proto.connected:
            self._write_now(
                proto, (DEMONITOR_P, self.node.system_pid, peer_kind.SERVICE, proto.probe)
            )
        self._resolve(proto)

    def _options_for(self, node: Any) -> Any:
        """The options frames to `node` are encoded with now (None: the defaults)."""
        conn = self.conns.get(node) if type(node) is Atom else None
        if conn is None or conn.pending is not None:
            return self.codec
        return conn.encode_options

    def check_encodable(self, node: Any, value: Any) -> None:
        """Raise `etf.EncodeError` if `value` cannot be sent to `node` (with the options
        of its connection: a dict with keys "a" and b"a" can go to a beamlet node only)."""
        _encode_into(bytearray(), value, self._options_for(node))

    @property
    def _lossless(self) -> bool:
        return self.beamlet_codec is not None and self.beamlet_codec.lossless

    def _peer_kind(self, proto: DistProtocol, sender: Any, msg: Any) -> None:
        """A message to `peer_kind.SERVICE`: the beamlet peer protocol, in frame order.
        Anything that is not exactly the protocol, from the peer's runtime pid on a
        modern connection, is dropped: an Erlang peer must never be taken for beamlet."""
        peer = Atom(proto.peer or "")
        if proto.legacy or not peer_kind.from_runtime(sender, peer):
            log.debug("beamlet.distribution: ignored %r to beamlet_dist from %s", msg, peer)
        elif peer_kind.is_hello(msg):
            proto.beamlet = True
            opts = self.beamlet_codec
            if opts is None:
                pass
            elif not opts.lossless:  # plain ETF: no agreement needed
                proto.encode_options = proto.decode_options = opts
            elif msg[2] == peer_kind.LOSSLESS_NAME:
                self._write_now(proto, (REG_SEND, self.node.system_pid, EMPTY, peer_kind.SERVICE),
                                peer_kind.switch())  # fmt: skip
                proto.encode_options = etf.LOSSLESS
        elif peer_kind.is_switch(msg) and self._lossless:  # it answers our hello
            proto.beamlet = True
            proto.decode_options = etf.LOSSLESS
        else:
            log.debug("beamlet.distribution: ignored %r to beamlet_dist from %s", msg, peer)

    def _refused(self, node: Atom, ctl: tuple[Any, ...]) -> None:
        """A signal `node` has no form for was dropped (`downgrade`)."""
        log.debug("beamlet.distribution: %s cannot take control message %d", node, ctl[0])

    # RemoteHook ------------------------------------------------------------------------

    def send(self, sender: Pid | None, dest: Any, msg: Any) -> None:
        frm = sender or self.node.system_pid
        if type(dest) is Pid:
            self._emit_send(dest.node, (SEND_SENDER, frm, dest), msg)
        elif type(dest) is Ref:
            self._emit(dest.node, (ALIAS_SEND, frm, dest), msg)
        else:
            name, node = dest
            self._emit_send(node, (REG_SEND, frm, EMPTY, name), msg)

    def link(self, local: Pid, remote: Pid) -> None:
        self._emit(remote.node, (LINK, local, remote))

    def unlink(self, local: Pid, remote: Pid) -> None:
        self._emit(remote.node, (UNLINK_ID, self._unlink_ids(), local, remote))

    def exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        self._emit(
            target.node,
            (PAYLOAD_EXIT2, sender, target),
            wire_reason(reason, self._options_for(target.node)),
        )

    def link_exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        self._emit(
            target.node,
            (PAYLOAD_EXIT, sender, target),
            wire_reason(reason, self._options_for(target.node)),
        )

    def monitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        if type(target) is Pid:
            self._emit(target.node, (MONITOR_P, watcher, target, ref))
        else:
            name, node = target
            self._emit(node, (MONITOR_P, watcher, name, ref))

    def demonitor(self, watcher: Pid, target: Any, ref: Ref) -> None:
        if type(target) is Pid:
            self._emit(target.node, (DEMONITOR_P, watcher, target, ref))
        else:
            name, node = target
            self._emit(node, (DEMONITOR_P, watcher, name, ref))

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Any) -> None:
        frm: Any = self._name_monitors.pop(ref, target)
        self._emit(watcher.node, (PAYLOAD_MONITOR_P_EXIT, frm, watcher, ref),
                   wire_reason(reason, self._options_for(watcher.node)))  # fmt: skip

    # --- input --------------------------------------------------------------------------

    def _on_frame(self, proto: DistProtocol, frame: bytes) -> None:
        # Every way a frame can be wrong ends here, in one of two ways: a malformed frame
        # (or one that makes anything raise) closes the connection with a log line; a
        # well-formed signal whose payload beamlet cannot represent costs that signal.
        try:
            if frame[0] != 112:  # 'p': pass-through; we never negotiate the atom cache
                raise BadFrame(f"unexpected distribution header byte {frame[0]}")
            raw = proto.ctl_raw
            if raw is not None and frame.startswith(raw, 1):
                ctl, off = proto.ctl, 1 + len(raw)
                op = ctl[0]
            else:
                ctl, off = etf.decode_prefix(frame, 1, max_depth=CTL_MAX_DEPTH)
                op = check_control(ctl, off < len(frame))
                if op in _CACHED_OPS:
                    proto.ctl_raw, proto.ctl = bytes(frame[1:off]), ctl
                if op in _FROM_FIELD:
                    self._check_sender(proto, op, ctl)
            payload: Any = None
            if off < len(frame):
                try:
                    options = proto.decode_options
                    if options is None:  # the common case, without a call
                        payload, off = etf.decode_prefix(frame, off, max_terms=PAYLOAD_MAX_TERMS)
                    else:
                        payload, off = _decode_prefix(frame, off, options)
                except etf.DecodeError as e:
                    self._undecodable(proto, op, ctl, e)
                    return
                if off != len(frame):
                    raise BadFrame("trailing bytes after the distribution message")
        except (etf.DecodeError, BadFrame) as e:
            proto.abort(f"malformed distribution message: {e}")
            return
        except Exception as e:
            proto.abort(f"malformed distribution message: {type(e).__name__}: {brief(e)}")
            return
        try:
            self._dispatch(proto, op, ctl, payload)
        except Exception:
            log.exception("beamlet.distribution: error handling a message from %s", proto.peer)
            proto.abort("internal error while handling a message")

    def _check_sender(self, proto: DistProtocol, op: int, ctl: tuple[Any, ...]) -> None:
        """A peer speaks only for its own processes (and monitors with its own refs)."""
        peer = Atom(proto.peer or "")
        frm = ctl[_FROM_FIELD[op]]
        if type(frm) is Pid and frm.node != peer:
            raise BadFrame(f"control message {op} speaks for {frm!r}, a process of another node")
        if op in (MONITOR_P, DEMONITOR_P) and ctl[3].node != peer:
            raise BadFrame(f"control message {op} uses {ctl[3]!r}, a reference of another node")

    def _undecodable(
        self, proto: DistProtocol, op: int, ctl: tuple[Any, ...], e: etf.DecodeError
    ) -> None:
        """A signal whose payload cannot be decoded (an Erlang term beamlet cannot
        represent, such as a map with keys equal in Python: `#{1 => a, 1.0 => b}`). The
        frame boundary is known, so the connection goes on: a message is dropped, an exit
        signal or a DOWN takes effect with the reason `(undecodable, Why)`, a spawn
        request is answered `badarg`."""
        node = self.node
        why = str(e)
        log.warning(
            "beamlet.distribution: dropped the payload of a control message %d from %s: %s",
            *(op, proto.peer, why),
        )
        reason = (UNDECODABLE, why)
        if op in (PAYLOAD_EXIT, PAYLOAD_EXIT_TT):
            node.remote_exit(ctl[2], ctl[1], reason, link=True)
        elif op in (PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT):
            node.remote_exit(ctl[2], ctl[1], reason, link=False)
        elif op == ALTACT_SIG_SEND and ctl[1] & _ALTACT_EXIT and type(ctl[3]) is Pid:
            node.remote_exit(ctl[3], ctl[2], reason, link=False)
        elif op == PAYLOAD_MONITOR_P_EXIT:
            node.remote_down(ctl[2], ctl[3], reason)
        elif op in (SPAWN_REQUEST, SPAWN_REQUEST_TT):
            self._emit(Atom(proto.peer or ""), (SPAWN_REPLY, ctl[1], ctl[2], 0, BADARG))

    def _dispatch(self, proto: DistProtocol, op: int, ctl: tuple[Any, ...], payload: Any) -> None:
        node = self.node
        if op in (SEND_SENDER, SEND_SENDER_TT, SEND, SEND_TT):
            node.deliver_remote(ctl[2], payload)
        elif op in (REG_SEND, REG_SEND_TT):
            if peer_kind.is_service(ctl[3]):
                self._peer_kind(proto, ctl[1], payload)
            else:
                node.deliver_remote(ctl[3], payload)  # unknown names: dropped, as Erlang does
        elif op in (ALIAS_SEND, ALIAS_SEND_TT):
            node.deliver_remote(ctl[2], payload)
        elif op == LINK:
            _, frm, to = ctl
            if not node.remote_link(to, frm):
                self._emit(Atom(proto.peer or ""), (PAYLOAD_EXIT, to, frm), NOPROC)
        elif op == UNLINK_ID:
            _, uid, frm, to = ctl
            # The ack goes before any other signal from `to` (§3.3).
            self._emit(Atom(proto.peer or ""), (UNLINK_ID_ACK, uid, to, frm))
            node.remote_unlink(to, frm)
        elif op == UNLINK:
            node.remote_unlink(ctl[2], ctl[1])  # the old link protocol (peers without UNLINK_ID)
        elif op in (UNLINK_ID_ACK, NODE_LINK, GROUP_LEADER):
            pass  # our unlink took effect locally at once (§3.7)
        elif op in (PAYLOAD_EXIT, PAYLOAD_EXIT_TT):
            node.remote_exit(ctl[2], ctl[1], payload, link=True)
        elif op in (EXIT, EXIT_TT):
            node.remote_exit(ctl[2], ctl[1], ctl[3], link=True)
        elif op in (PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT):
            node.remote_exit(ctl[2], ctl[1], payload, link=False)
        elif op in (EXIT2, EXIT2_TT):
            node.remote_exit(ctl[2], ctl[1], ctl[3], link=False)
        elif op == MONITOR_P:
            _, frm, target, ref = ctl
            if peer_kind.is_service(target) and peer_kind.from_runtime(frm, Atom(proto.peer or "")):
                # A beamlet node's probe: noproc at once (our hello went before it).
                self._write_now(proto, (PAYLOAD_MONITOR_P_EXIT, target, frm, ref), NOPROC)
            elif node.remote_monitored(target, frm, ref) is None:
                self._emit(
                    Atom(proto.peer or ""), (PAYLOAD_MONITOR_P_EXIT, target, frm, ref), NOPROC
                )
            elif type(target) is Atom:
                self._name_monitors[ref] = target
        elif op == DEMONITOR_P:
            _, _frm, target, ref = ctl
            node.remote_demonitor(target, ref)
            self._name_monitors.pop(ref, None)
        elif op in (PAYLOAD_MONITOR_P_EXIT, MONITOR_P_EXIT):
            if proto.probe is not None and ctl[3] == proto.probe:
                proto.probe = None
                self._resolve(proto)  # the answer to our probe: the peer's kind is known
            else:
                node.remote_down(
                    ctl[2], ctl[3], payload if op == PAYLOAD_MONITOR_P_EXIT else ctl[4]
                )
        elif op in (SPAWN_REQUEST, SPAWN_REQUEST_TT):
            self._spawn_request(Atom(proto.peer or ""), ctl, payload)
        elif op in (SPAWN_REPLY, SPAWN_REPLY_TT):
            self._spawn_reply(Atom(proto.peer or ""), ctl)
        elif op == ALTACT_SIG_SEND:
            flags, sender, to = ctl[1], ctl[2], ctl[3]
            if flags & _ALTACT_EXIT:
                if type(to) is Pid:
                    node.remote_exit(to, sender, payload, link=False)
            elif (
                (flags & _ALTACT_ALIAS and type(to) is Ref)
                or (flags & _ALTACT_NAME and type(to) is Atom)
                or type(to) is Pid
            ):
                node.deliver_remote(to, payload)
