"""The run queue: steps process coroutines directly, inside the asyncio loop.

Waking a process through an asyncio Future costs a Future, a loop handle and a Task step;
message passing here never touches the loop. Runnable processes sit in a deque; one loop
callback drains it in budgeted batches (`BUDGET` steps, and at most about `SLICE`
seconds), then gives the loop back so I/O, timers and distribution ticks run
(docs/architecture.md, "The scheduler").

A step is `coro.send(value)` (or `throw`) inside the process's own `contextvars` context,
with the process registered as asyncio's current task. What the coroutine yields decides
what happens next:

* `RECV` (from `receive`)  — park until a message or the receive timeout;
* `CALL` (from a call)     — park until the reply, the server's death or the timeout;
* an asyncio future        — park until it is done (a done-callback re-queues);
* `None` (`asyncio.sleep(0)`) — go to the back of the run queue.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from heapq import heapify, heappop, heappush
from typing import Any, Final

from beamlet._core._asyncio_compat import current_tasks, enter_task, leave_task
from beamlet._core.current import NEUTRAL
from beamlet._core.process import (
    DONE,
    RUNNABLE,
    RUNNING,
    WAIT_ANY,
    WAIT_CALL,
    WAIT_FUT,
    WAIT_RECV,
    Proc,
    Terminated,
)

BUDGET: Final = 2000  # steps per loop callback before I/O and timers get a turn
# ...or this long (the clock is read every 8 steps): processes whose steps are long (CPU
# work between awaits) must not hold off ticks and network I/O for BUDGET x step time.
SLICE: Final = 0.005
MAX_KILL_TRIES: Final = 3  # a dead process that keeps awaiting is closed after this


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECV: Final = _Sentinel("RECV")  # yielded by a selective receive to park
RECV_ANY: Final = _Sentinel("RECV_ANY")  # yielded by receive-any: hand the message over
CALL: Final = _Sentinel("CALL")  # yielded by a call (request.py): wait for its answer
WAKE: Final = _Sentinel("WAKE")  # resume value: new messages to scan
TIMEOUT: Final = _Sentinel("TIMEOUT")  # resume value: the receive timer fired
# resume value: new messages to scan, and the receive timer fired while the process sat
# in the run queue (woken by a message): time out only if none of them matches
WAKE_TIMEOUT: Final = _Sentinel("WAKE_TIMEOUT")


class Scheduler:
    """Mixin of `Node`: the run queue and the stepping of processes."""

    loop: asyncio.AbstractEventLoop
    running: Proc | None

    def _init_scheduler(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._runq: deque[Proc] = deque()
        self._pending = False
        self._batch = 0
        self._inline_left = 0  # steps calls may still run inline in this batch
        self._deferred: list[Proc] = []  # made runnable for the next batch
        self._inline_depth = 0  # calls being served inline, nested
        self.running = None
        # Receive timeouts: one heap of (deadline, token, proc) and one loop timer for
        # the earliest deadline, instead of a loop TimerHandle per receive (a call with
        # a timeout arms and cancels one every time). Cancelling only clears the
        # process's token; stale entries are skipped when they come due, and the heap is
        # rebuilt when they outnumber the live ones.
        self._deadlines: list[tuple[float, int, Proc]] = []
        self._deadline_live = 0
        self._deadline_tokens = itertools.count(1).__next__
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_at = 0.0
        # Calls whose timeout timer is armed only if they are still waiting when this
        # batch of steps ends: most calls are answered within the batch, and then cost
        # no timer at all (request.py).
        self._unarmed: list[Proc] = []

    # --- queueing -------------------------------------------------------------------

    def _kick(self) -> None:
        if not self._pending:
            self._pending = True
            self.loop.call_soon(self._drain, context=NEUTRAL)

    def _make_runnable(self, p: Proc, resume: Any, later: bool = False) -> None:
        """The one way a process becomes runnable: its next step resumes with `resume`
        (or throws `p.throw`). `p` is parked, new or the one that just stepped, never
        already queued nor done; afterwards it is queued once and a drain is pending.
        With `later`, it waits for the next batch (after the loop has had a turn)."""
        p.resume = resume
        p.state = RUNNABLE
        if later:
            self._deferred.append(p)  # _drain queues these when the batch ends
            return
        self._runq.append(p)
        if not self._pending:
            self._pending = True
            self.loop.call_soon(self._drain, context=NEUTRAL)

    def _wake_cancelled(self, p: Proc) -> None:
        """`cancel()` on a process parked in receive: throw CancelledError into it."""
        if p.state in (WAIT_RECV, WAIT_ANY, WAIT_CALL):
            self._cancel_rtimer(p)
            self._make_runnable(p, None)

    def _arm_rtimer(self, p: Proc, seconds: float) -> None:
        """Wake `p` with TIMEOUT after `seconds` unless `_cancel_rtimer` comes first."""
        when = self.loop.time() + seconds
        token = self._deadline_tokens()
        p.rtimer = token
        heap = self._deadlines
        heappush(heap, (when, token, p))
        self._deadline_live += 1
        if self._deadline_timer is None or when < self._deadline_at:
            self._schedule_deadlines(when)
        elif len(heap) > 1024 and len(heap) > 4 * self._deadline_live:
            heap[:] = [e for e in heap if e[2].rtimer == e[1]]
            heapify(heap)

    def _cancel_rtimer(self, p: Proc) -> None:
        if p.rtimer is not None:
            p.rtimer = None
            self._deadline_live -= 1

    def _schedule_deadlines(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = when
        self._deadline_timer = self.loop.call_at(when, self._deadlines_due, context=NEUTRAL)

    def _deadlines_due(self) -> None:
        self._deadline_timer = None
        heap = self._deadlines
        now = self.loop.time()
        while heap and heap[0][0] <= now:
            _when, token, p = heappop(heap)
            if p.rtimer != token:
                continue  # cancelled: the receive ended another way
            p.rtimer = None
            self._deadline_live -= 1
            st = p.state
            if st in (WAIT_RECV, WAIT_ANY, WAIT_CALL):
                self._make_runnable(p, TIMEOUT)
            elif st == RUNNABLE and p.resume is WAKE:
                # Woken by a message it has not scanned yet: the deadline must not be
                # lost (the wait would park again with no timer, issue 10 §1), nor win
                # over a message that arrived before it.
                p.resume = WAKE_TIMEOUT
            # Otherwise the wait is already over: a message handed over, a reply, a
            # cancellation or a kill is queued and ends it.
        while heap and heap[0][2].rtimer != heap[0][1]:
            heappop(heap)  # drop stale heads so the next wake-up is a real one
        if heap:
            self._schedule_deadlines(heap[0][0])

    def _interrupt(self, p: Proc) -> None:
        """Make a dead process's coroutine unwind: throw `Terminated` at its await."""
        if p.co is None or p.state in (RUNNING, DONE):
            return  # running: the runtime call it is in raises; done: nothing to unwind
        p.throw = Terminated(p.reason)
        st = p.state
        if st in (WAIT_RECV, WAIT_ANY, WAIT_CALL):
            self._cancel_rtimer(p)
            self._make_runnable(p, None)
        elif st == WAIT_FUT:
            fut = p.fut
            if fut is not None:
                fut.cancel()  # its done-callback re-queues the process
        # RUNNABLE: already queued; the throw replaces the resume value

    # --- stepping -------------------------------------------------------------------

    def _drain(self) -> None:
        self._pending = False
        self._batch += 1  # for the watchdog: which batch of steps is running
        self._inline_left = BUDGET  # and as many steps run inline by calls (request.py)
        runq = self._runq
        pop = runq.popleft
        loop = self.loop
        budget = BUDGET
        ct = current_tasks
        clock = time.perf_counter
        until = clock() + SLICE
        try:
            while runq and budget > 0:  # chunks of 8 steps, the clock read between them
                budget -= 8
                chunk = 8
                while runq and chunk:
                    chunk -= 1
                    p = pop()
                    if p.state != RUNNABLE:
                        continue  # a stale entry: the process finished or was closed
                    p.state = RUNNING
                    self.running = p
                    if ct is not None:
                        ct[loop] = p
                    else:
                        enter_task(loop, p)
                    try:  # one step (kept inline here: this loop is the kernel's hottest code)
                        exc = p.throw
                        if exc is None:
                            val = p.resume
                            p.resume = None
                            y = p.ctx.run(p.co.send, val)  # type: ignore[union-attr,unused-ignore]
                        else:
                            p.throw = None
                            y = p.ctx.run(p.co.throw, exc)  # type: ignore[union-attr,unused-ignore]
                    except StopIteration as e:
                        p.state = DONE
                        self._proc_returned(p, e.value)
                    except BaseException as e:
                        p.state = DONE
                        self._proc_raised(p, e)
                    else:  # the usual outcomes inline, the rest in _parked
                        if y is RECV_ANY and p.alive:
                            p.state = WAIT_ANY
                        elif y is CALL and p.alive and p.throw is None:
                            p.state = WAIT_CALL
                        else:
                            self._parked(p, y)
                    finally:
                        if ct is None:
                            leave_task(loop, p)
                if clock() > until:
                    break
        finally:
            if ct is not None:
                ct.pop(loop, None)
            self.running = None
            if self._unarmed:
                self._arm_calls()
            if self._deferred:  # servers a call could not run inline: next batch
                runq.extend(self._deferred)
                self._deferred.clear()
            if runq:
                self._kick()

    def _parked(self, p: Proc, y: Any) -> None:
        """Park `p` according to what its step yielded."""
        if y is RECV_ANY:
            p.state = WAIT_ANY
            if not p.alive:
                self._kill_again(p)
        elif y is CALL:
            p.state = WAIT_CALL
            if not p.alive:
                self._kill_again(p)
            elif p.throw is not None:  # cancel() while it ran: raise at this await
                self._wake_cancelled(p)
        elif y is RECV:
            p.state = WAIT_RECV
            if not p.alive:
                self._kill_again(p)
            elif p.throw is not None:  # cancel() while it ran: raise at this await
                self._wake_cancelled(p)
        elif y is None:  # asyncio.sleep(0): to the back of the run queue
            self._make_runnable(p, None)
            if not p.alive:
                self._kill_again(p)
        else:
            self._park_on_future(p, y)

    def _step_inline(self, p: Proc, q: Proc) -> None:
        """Run one step of `q` now, inside the step of the running process `p`: a call
        to an idle server is served at once, without a trip through the run queue (a
        valid schedule: `p` would only wait). The caller budgets and bounds nesting."""
        loop = self.loop
        ct = current_tasks
        q.state = RUNNING
        self.running = q
        self._inline_depth += 1
        if ct is not None:
            ct[loop] = q
        else:
            leave_task(loop, p)
            enter_task(loop, q)
        try:
            try:  # one step of q, as in _drain (the usual outcome, WAIT_ANY, inline)
                y = q.ctx.run(q.co.send, q.resume)  # type: ignore[union-attr,unused-ignore]
            except StopIteration as e:
                q.state = DONE
                self._proc_returned(q, e.value)
            except BaseException as e:
                q.state = DONE
                self._proc_raised(q, e)
            else:
                if y is RECV_ANY and q.alive:
                    q.state = WAIT_ANY
                else:
                    self._parked(q, y)
        finally:
            q.resume = None
            self._inline_depth -= 1
            self.running = p
            if ct is not None:
                ct[loop] = p
            else:
                leave_task(loop, q)
                enter_task(loop, p)

    def _arm_calls(self) -> None:
        """Arm the timeouts of the calls that are still waiting at the end of a batch:
        they fire at most one batch late, never early."""
        unarmed = self._unarmed
        self._unarmed = []
        for p in unarmed:
            t = p.calltimeout
            if t is not None and p.state == WAIT_CALL and p.rtimer is None:
                p.calltimeout = None
                self._arm_rtimer(p, t)

    def _park_on_future(self, p: Proc, y: Any) -> None:
        blocking = getattr(y, "_asyncio_future_blocking", None)
        if blocking is None or y.get_loop() is not self.loop:
            p.throw = RuntimeError(
                f"process {p.pid!r} yielded {y!r}: only asyncio futures of this loop, "
                "beamlet.receive and asyncio.sleep(0) can be awaited in a process"
            )
            self._make_runnable(p, None)
            return
        y._asyncio_future_blocking = False
        p.state = WAIT_FUT
        p.fut = y
        y.add_done_callback(p._wakeup, context=p.ctx)
        if not p.alive:
            self._kill_again(p)
        elif p.throw is not None:  # cancel() was called while it ran: cancel what it awaits
            p.throw = None
            y.cancel(msg=p._cancel_msg)

    def _kill_again(self, p: Proc) -> None:
        """A dead process awaited again (it caught Terminated): unwind it again, and after
        a few tries close the coroutine. Its side effects are already refused (§3.8)."""
        p.kill_tries += 1
        if p.kill_tries <= MAX_KILL_TRIES:
            self._interrupt(p)
            return
        co = p.co
        fut = p.fut
        p.fut = None
        if fut is not None:
            fut.remove_done_callback(p._wakeup)
            fut.cancel()
        p.state = DONE
        if co is not None:
            try:
                co.close()
            except BaseException:
                pass
        self._release(p)

    # --- supplied by Node ----------------------------------------------------------

    def _proc_returned(self, p: Proc, value: Any) -> None:
        raise NotImplementedError

    def _proc_raised(self, p: Proc, exc: BaseException) -> None:
        raise NotImplementedError

    def _release(self, p: Proc) -> None:
        raise NotImplementedError
