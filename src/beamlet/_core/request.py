"""Calls between the processes of one node: monitor, alias and receive in one step.

A call (gen:call, docs/semantics.md §4.5) monitors the server with an alias, sends the
request, and waits for the reply sent to the alias or for the DOWN. Built from the
general primitives that is ten dict operations on Refs, a mailbox scan, a timer and two
trips through the run queue per call; fused here, a call costs about what one plain
send + receive exchange between two processes costs (docs/architecture.md, "Calls").

A call parks the whole process, so a process waits on at most one call at a time and the
caller's side needs no table: `p.call` is the call's Ref (the alias) and `p.callee` the
server. The server's side is the set `q.callers` (the monitor): the server's death
reaches its callers at §1.4 step 5, and they show in `process_info`'s `monitored_by`.

The alias is `p.call` itself: `answer` hands a reply over only while the caller waits on
that Ref, exactly when gen:call's alias is active, so a late reply is dropped as a send
to an inactive alias is (§4.4). Other messages that arrive meanwhile are queued without
waking the caller: gen:call's selective receive would leave them in the mailbox too.

A call to an idle server runs the server's step at once, inside the caller's step
(`Scheduler._step_inline`): the caller could only wait, so this is one of the schedules
the BEAM could pick, and it saves a trip through the run queue. It counts against the
batch's budget, so a process that only makes calls still lets the loop run. The call's
timeout is armed only if the call still waits when the batch ends.

`Node.call_probe` samples call latency for beamlet.observe: None (the default) costs a
call one attribute test; a `CallProbe` picks the calls it times (`start`) and is told
how each one ended (`stop`), in the caller, after the call returned or failed.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Protocol

from beamlet._core.current import current_process
from beamlet._core.errors import NotInProcess
from beamlet._core.isolation import IMMUTABLE_TYPES, isolate
from beamlet._core.process import RUNNING, WAIT_ANY, WAIT_CALL, Proc, Terminated
from beamlet._core.scheduler import CALL, TIMEOUT
from beamlet._core.terms import CALLING_SELF, NOCONNECTION, NOPROC, Atom, Pid, Ref
from beamlet._core.terms import TIMEOUT as TIMEOUT_ATOM

NODEDOWN: Final = Atom("nodedown")
_INF: Final = float("inf")
MAX_INLINE_DEPTH: Final = 4  # a server that calls a server that calls...: then queue

if TYPE_CHECKING:
    from beamlet._core.node import Node

_new = object.__new__


# A call's Ref names its caller, as the BEAM's process-bound refs do: words 0-1 are the
# node's ref counter, words 2-3 the caller's process number with the top bit set. A
# reply sent to the Ref as an alias (by any process, or by another node) then finds its
# caller without an alias table entry per call.
_CALL_BIT: Final = 1 << 127
_KEY_MASK: Final = (1 << 63) - 1


def call_owner(node: Node, ref: Ref) -> Proc | None:
    """The process of `node` waiting on the call `ref`, if any."""
    n = ref._n
    if not n & _CALL_BIT or ref._len != 4 or ref._node != node.name:
        return None
    if ref._creation != node.creation:
        return None
    p = node._procs.get((n >> 64) & _KEY_MASK)
    if p is None or p.call is None or p.call != ref:
        return None
    return p


class CallProbe(Protocol):
    """Times sampled calls (`Node.call_probe`; beamlet.observe.calls implements it)."""

    def start(self) -> float | None:
        """A call begins: its start time if this call is sampled, else None."""

    def stop(self, start: float, caller: Proc, server: Proc, outcome: str) -> None:
        """A sampled call ended: `outcome` is "ok", "timeout" or "exit" (the server
        died). Runs in the caller; must not raise."""


OK: Final = "ok"
EXITED: Final = "exit"
TIMED_OUT: Final = "timeout"


class CallDown:
    """What a call resumes with when its server died before answering."""

    __slots__ = ("reason",)

    def __init__(self, reason: Any) -> None:
        self.reason = reason


def make_call(
    label: Any,
    what: str,
    fail: Callable[[Any, Any], BaseException],
    elsewhere: Callable[[Any, Any, Any], Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    """A behaviour's `call(server, request, timeout=5.0)` on this protocol.

    The call sends `(label, (self(), ref), request)` to the server (gen:call's shape) and
    returns its reply. On failure it raises `fail(cause, (what, server, request,
    timeout))`: cause `noproc` (no such process; nothing is sent), `calling_self`,
    `timeout` (the server keeps running; its late reply is dropped), `{nodedown, Node}`
    if the server died of `noconnection`, else the server's exit reason. Servers not
    in this node (or by `Via`, or a timeout that is not a float > 0 or None) are left
    to `elsewhere(server, request, timeout)`: the general protocol.

    The call is a generator-based awaitable, not an `async def` wrapping one: one frame
    per call, resumed once, on the hottest path there is.
    """

    @types.coroutine
    def call(server: Any, request: Any, timeout: Any = 5.0) -> Generator[Any, Any, Any]:
        p = current_process.get()
        if type(server) is Pid:
            q = server._proc
        elif (type(server) is str or type(server) is Atom) and p is not None:
            pid = p.node.whereis(server)
            q = pid._proc if pid is not None else None
        else:
            q = None
        if (
            q is None
            or p is None
            or q.node is not p.node
            or (timeout is not None and not (type(timeout) is float and 0.0 < timeout < _INF))
        ):
            return (yield from elsewhere(server, request, timeout).__await__())
        if p.state != RUNNING:
            raise NotInProcess("a call must be awaited by a beamlet process itself")
        if not p.alive:
            raise Terminated(p.reason)
        if q is p:
            raise fail(CALLING_SELF, (what, server, request, timeout))
        if not q.alive:
            raise fail(NOPROC, (what, server, request, timeout))
        if type(request) not in IMMUTABLE_TYPES:
            request = isolate(request)
        node = q.node
        pid = p.pid
        bits = p.callbits
        if not bits:
            bits = p.callbits = _CALL_BIT | ((pid._serial << 28 | pid._id) << 64)
        ref = _new(Ref)  # a call ref (see above), built inline: this is a call's hottest path
        ref._node = node.name
        ref._n = node._next_ref() | bits
        ref._len = 4
        ref._creation = node.creation
        msg = (label, (pid, ref), request)
        probe = node.call_probe  # None unless observed: then one test per call
        t0 = probe.start() if probe is not None else None
        callers = q.callers
        if callers is None:
            callers = q.callers = set()
        callers.add(p)
        p.call = ref
        p.callee = q
        if p.trace is not None:  # a traced caller (a traced server has no `_proc`)
            p.trace("send", p, q.pid, msg)
        if q.state == WAIT_ANY:  # the server is idle in receive(): hand the request over
            left = node._inline_left
            if left > 0 and node._inline_depth < MAX_INLINE_DEPTH:
                q.resume = msg
                node._inline_left = left - 1
                node._step_inline(p, q)  # and let it serve the call now
            else:  # nested too deep: the run queue; or the batch's inline budget is
                # spent: the next batch, after the loop has had a turn (I/O, timers)
                node._make_runnable(q, msg, left <= 0)
        else:
            node._deliver(q, msg)
        try:
            if not p.alive:  # killed while the server ran
                raise Terminated(p.reason)
            if p.call is None:  # answered (or the server died) while it ran inline
                v = p.resume
                p.resume = None
            else:
                if timeout is not None:  # armed at the end of the batch if still waiting
                    p.calltimeout = timeout
                    node._unarmed.append(p)
                v = yield CALL
        finally:
            if p.call is ref:  # not answered: timed out, cancelled or killed
                p.call = None
            p.callee = None
            p.calltimeout = None
            callers = q.callers
            if callers is not None:
                callers.discard(p)
            if p.rtimer is not None:  # node._cancel_rtimer(p), inline
                p.rtimer = None
                node._deadline_live -= 1
        if t0 is not None and probe is not None:  # a sampled call
            outcome = EXITED if type(v) is CallDown else TIMED_OUT if v is TIMEOUT else OK
            probe.stop(t0, p, q, outcome)
        if type(v) is CallDown:  # the server died before it answered
            reason = v.reason
            cause = (NODEDOWN, q.pid.node) if reason == NOCONNECTION else reason
            raise fail(cause, (what, server, request, timeout))
        if v is TIMEOUT:  # the server keeps running; a late reply finds no caller
            raise fail(TIMEOUT_ATOM, (what, server, request, timeout))
        return v

    return call


def answer(caller: Any, tag: Any, value: Any) -> bool:
    """Reply to a call made with `make_call`: hand `value` to `caller` (a pid) if it is a
    process of the replier's node waiting on the call `tag`. True too if `tag` is a call
    of this node that has ended: the call's Ref is its alias (§4.4), now inactive, so the
    late reply is dropped. False for any other tag: then reply as gen:reply does (to the
    alias of an `[alias | Ref]` tag, else to `caller`). Raises `Terminated` in a replier
    that is already dead (§3.8).

    Examples:
        >>> if not answer(pid, tag, value):
        ...     beamlet.send(pid, (tag, value))
    """
    if type(caller) is not Pid:
        return False
    q = caller._proc
    if q is None or q.call is not tag:
        return _answer_by_ref(tag, value)
    me = current_process.get()
    if me is not None:
        if not me.alive:
            raise Terminated(me.reason)
        if me.node is not q.node:  # another node's caller: its reply goes over the wire
            return False
    # hand_over(q, tag, value), inlined: this is every served call's reply
    if type(value) not in IMMUTABLE_TYPES:
        value = isolate(value)
    q.call = None
    if q.state == WAIT_CALL:
        q.node._make_runnable(q, value)
    else:  # running (it served the call inline) or queued to unwind (killed, cancelled)
        q.resume = value
    return True


def _answer_by_ref(tag: Any, value: Any) -> bool:
    """`answer` when the caller's pid does not lead to a process waiting on `tag`: the
    pid came from the network (no cached process), or the call is over."""
    me = current_process.get()
    if type(tag) is not Ref or me is None or not tag._n & _CALL_BIT or tag._len != 4:
        return False
    node = me.node
    if tag._node != node.name or tag._creation != node.creation:
        return False  # another node's Ref: its reply goes to the caller's pid
    if not me.alive:
        raise Terminated(me.reason)
    p = call_owner(node, tag)
    if p is not None:
        hand_over(p, tag, value)
    return True


def hand_over(p: Proc, ref: Any, value: Any, copy: bool = True) -> bool:
    """Hand `value` to `p` if it is waiting on the call `ref`; False if not (a late or
    misdirected reply, which the caller must never see). Without `copy`, `value` is
    already `p`'s own (a `{Ref, Reply}` message the sender's send isolated)."""
    c = p.call
    if c is not ref and (c is None or type(ref) is not Ref or c != ref):
        return False
    if copy and type(value) not in IMMUTABLE_TYPES:
        value = isolate(value)
    p.call = None
    if p.state == WAIT_CALL:
        p.node._make_runnable(p, value)
    else:  # running (it served the call inline) or queued to unwind (killed, cancelled)
        p.resume = value
    return True


def server_down(p: Proc, reason: Any) -> None:
    """The server of `p`'s call died with `reason` before answering."""
    p.call = None
    if p.alive:
        if p.state == WAIT_CALL:
            p.node._make_runnable(p, CallDown(reason))
        else:  # RUNNING: the server died while serving it inline
            p.resume = CallDown(reason)


def drop_call(p: Proc) -> None:
    """`p` died during a call: remove its monitor from the server."""
    q = p.callee
    p.call = None
    if q is not None and q.callers is not None:
        q.callers.discard(p)


def callers_down(q: Proc, reason: Any, copy: Callable[[Any], Any]) -> None:
    """`q` died: the processes waiting on a call to it get `CallDown(reason)`."""
    callers = q.callers
    q.callers = None
    for p in callers or ():
        if p.call is not None and p.callee is q:
            server_down(p, copy(reason))
