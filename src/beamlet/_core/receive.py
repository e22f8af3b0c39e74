"""Selective receive (docs/semantics.md §2.4).

`receive()` with no pattern takes the oldest message; with patterns it scans oldest to
newest, removes the first match and leaves the others in order. While it waits, only
messages that arrived since the last scan are tested (a rejected message is never shown
to a pattern again). `since=ref` skips messages that were already queued when `ref` was
made (the BEAM's receive marker), so waiting for a reply tagged with a fresh ref stays
O(new messages) even behind 100,000 unrelated ones.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Generator
from itertools import islice
from typing import Any

from beamlet._core.current import get_current
from beamlet._core.errors import BadArgument, NotInProcess
from beamlet._core.node import check_timeout
from beamlet._core.patterns import Matcher, compile_patterns
from beamlet._core.process import RUNNING, Proc, Terminated
from beamlet._core.scheduler import RECV, RECV_ANY, TIMEOUT, WAKE_TIMEOUT
from beamlet._core.terms import Ref

MISSING: Any = object()
FAIRNESS_MASK = 63  # a process yields to the others every 64 receives


def start_index(p: Proc, since: Any) -> int:
    """Where a scan may start for `since=ref`: never after the first message newer than
    the ref (messages removed since the mark can only move it left)."""
    if since is None:
        return 0
    if type(since) is not Ref:
        raise BadArgument(f"since= needs the Ref the reply is tagged with, not {since!r}")
    mark = p.mark
    if mark is None or mark[0] != since:
        return 0
    return max(0, mark[1] - (p.taken - mark[2]))


@types.coroutine
def receive(
    *patterns: Any, timeout: float | None = None, since: Ref | None = None, default: Any = MISSING
) -> Generator[Any, Any, Any]:
    """Wait for a message matching any of `patterns` (any message if none) and return it.

    `timeout` in seconds (None waits forever; 0 polls the mailbox once). On timeout,
    returns `default` if given, else raises `TimeoutError`. Unmatched messages stay
    queued, in order. `since=ref` only looks at messages that arrived after `ref` was
    made (for replies tagged with a fresh ref).

    Examples:
        >>> beamlet.send(beamlet.self(), ("pong", 1))
        >>> match await beamlet.receive(("pong", beamlet.ANY), beamlet.Down, timeout=1.0):
        ...     case ("pong", n):
        ...         print("pong", n)
        ...     case beamlet.Down(reason=r):
        ...         print("down", r)
        pong 1
        >>> await beamlet.receive(timeout=0.01, default="nothing")
        'nothing'
    """
    p = get_current()
    if p is None:
        raise NotInProcess("receive must be called from inside a beamlet process")
    if not patterns and timeout is None and since is None:
        mb = p.mb  # None once the process is dead
        if mb:  # fast path: the oldest message, no scan, no wait
            taken = p.taken = p.taken + 1
            if not (taken & FAIRNESS_MASK):
                yield None  # let others run: a process with a full mailbox never waits
            return mb.popleft()
        if p.state != RUNNING:  # awaited by a plain asyncio task, not the process
            raise NotInProcess("receive must be awaited by the process itself, not a task")
        if p.throw is not None:
            raise _take_throw(p)  # cancel() was called while it ran
        # A dead process that gets here is thrown into again by the scheduler.
        v = yield RECV_ANY  # a sender hands the message over directly
        p.taken += 1
        return v
    if not p.alive:
        raise Terminated(p.reason)
    if timeout is not None:
        timeout = check_timeout(timeout)
    match = compile_patterns(patterns) if patterns else None
    start = 0
    if since is not None:
        start = start_index(p, since)
        if match is None and start:
            match = _any  # the oldest message newer than the mark
    return (yield from wait(p, match, timeout, start, default))


@types.coroutine
def next_message() -> Generator[Any, Any, Any]:
    """`receive()` with no pattern and no timeout, for behaviour loops (one message per
    turn of a server loop; the argument handling of `receive` is a tenth of a call)."""
    p = get_current()
    if p is None:
        raise NotInProcess("receive must be called from inside a beamlet process")
    mb = p.mb
    if mb:
        taken = p.taken = p.taken + 1
        if not (taken & FAIRNESS_MASK):
            yield None
        return mb.popleft()
    if p.state != RUNNING:
        raise NotInProcess("receive must be awaited by the process itself, not a task")
    if p.throw is not None:
        raise _take_throw(p)
    v = yield RECV_ANY
    p.taken += 1
    return v


def scan(mb: deque[Any], start: int, match: Matcher) -> tuple[int, Any]:
    """The index and value of the first message from `start` on that `match`es, or
    (-1, None). A deque is indexed in O(distance to the nearer end), so indexing is used
    only near the end (new arrivals, a receive marker); longer scans iterate."""
    n = len(mb)
    if n - start <= 32:
        for i in range(start, n):
            m = mb[i]
            if match(m):
                return i, m
        return -1, None
    for i, m in enumerate(islice(mb, start, None), start):
        if match(m):
            return i, m
    return -1, None


def take(p: Proc, mb: deque[Any], start: int, match: Matcher) -> tuple[int, Any]:
    """Remove and return the first match from `start` on as `(-1, message)`; without a
    match, `(len(mb), None)`: where the next scan starts."""
    j, m = scan(mb, start, match)
    if j < 0:
        return len(mb), None
    del mb[j]
    p.taken += 1
    return -1, m


def _timed_out(default: Any) -> Any:
    if default is MISSING:
        raise TimeoutError("receive timed out")
    return default


def wait(
    p: Proc, match: Matcher | None, timeout: float | None, start: int, default: Any
) -> Generator[Any, Any, Any]:
    """Scan from `start`, then wait for a match until `timeout` (seconds or None)."""
    mb = p.mb
    i = start
    if mb:
        if match is None:
            p.taken += 1
            return mb.popleft()
        i, m = take(p, mb, i, match)
        if i < 0:
            return m
    if timeout == 0:
        return _timed_out(default)
    node = p.node
    if p.state != RUNNING:
        raise NotInProcess("receive must be awaited by the process itself, not a task")
    if p.throw is not None:
        raise _take_throw(p)  # cancel() was called while it ran
    if timeout is not None:
        node._arm_rtimer(p, timeout)
    try:
        while True:
            v = yield (RECV_ANY if match is None else RECV)
            if v is TIMEOUT:
                return _timed_out(default)
            if match is None:
                p.taken += 1
                return v  # handed over directly by the sender
            mb = p.mb
            if mb is not None:  # scan what arrived since the last look
                i, m = take(p, mb, i, match)
                if i < 0:
                    return m
            if v is WAKE_TIMEOUT:  # the deadline passed while it was queued
                return _timed_out(default)
    finally:
        if p.rtimer is not None:
            node._cancel_rtimer(p)


def _take_throw(p: Proc) -> BaseException:
    exc = p.throw
    assert exc is not None
    p.throw = None
    return exc


def _any(m: Any) -> bool:
    return True
