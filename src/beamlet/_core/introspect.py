"""The kernel's read-only introspection API, for `beamlet.observe` and `beamlet.ets`.

Upper layers see a process as a `ProcessView`: a typed, read-only face of the kernel's
process object (the object itself, so a view costs nothing and keeps its identity: ETS
compares a table's owner with the caller by `is`). The node adds the lookups
(`Node.lookup`, `Node.live_processes`, `Node.run_queue_length`, `Node.timeouts`), the
one hook observe sets (`Node.set_trace`/`clear_trace`) and the one ETS sets
(`Node.resources`, a `Resources`). Reading the await chain of a suspended process, and
what its receive waits for, is done here because it reads the kernel's own frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from beamlet._core.current import get_current
from beamlet._core.receive import receive as _receive
from beamlet._core.receive import wait as _wait

if TYPE_CHECKING:
    from beamlet._core.node import Node
    from beamlet._core.terms import Atom, Pid

__all__ = [
    "ProcessView",
    "ReceiveWait",
    "Resources",
    "TraceHook",
    "await_chain",
    "current_process",
    "receive_wait",
]


class ProcessView(Protocol):
    """One process of a node, read-only (`Node.lookup`, `Node.live_processes`).

    Examples:
        >>> view = beamlet.current_node().lookup(beamlet.self())
        >>> view.status, view.message_queue_len
        ('running', 0)
    """

    @property
    def pid(self) -> Pid: ...
    @property
    def node(self) -> Node: ...
    @property
    def alive(self) -> bool: ...
    @property
    def name(self) -> Atom | None:
        """Its registered name."""

    @property
    def fn(self) -> Any:
        """The function it was spawned with."""

    @property
    def parent(self) -> Pid | None:
        """Its spawner."""

    @property
    def trap_exit(self) -> bool: ...
    @property
    def taken(self) -> int:
        """Messages it has taken (beamlet's reductions-like count of work)."""

    @property
    def status(self) -> str:
        """ "running", "runnable", "waiting" or "exiting"."""

    @property
    def waiting(self) -> str | None:
        """ "receive", "message", "call", "future", or None (not parked)."""

    @property
    def awaited_future(self) -> asyncio.Future[Any] | None: ...
    @property
    def call_target(self) -> Pid | None:
        """The server of the call it waits on."""

    @property
    def message_queue_len(self) -> int: ...
    def peek_messages(self, limit: int) -> list[Any]: ...
    def linked(self) -> tuple[Pid, ...]: ...
    def monitoring(self) -> tuple[Any, ...]: ...
    def watchers(self) -> tuple[Pid, ...]: ...
    def footprint(self, sample: int = 100) -> int: ...
    def get_coro(self) -> Coroutine[Any, Any, Any] | None: ...


#: `hook(kind, process, peer, message)`, called in the traced process (or the runtime)
#: for "send", "receive", "spawn", "link" and "exit" (`Node.set_trace`). It must not
#: raise or block.
TraceHook = Callable[[str, ProcessView, Any, Any], None]


class Resources(Protocol):
    """What processes own besides themselves (ETS tables), set as `Node.resources`.

    The kernel calls `process_exited` at a death, before links and monitors fire (the
    BEAM frees a dead process's tables first), and `owned_by` for `process_info`."""

    def process_exited(self, process: ProcessView) -> None: ...
    def owned_by(self, process: ProcessView) -> tuple[Any, ...]: ...


#: The calling process, or None outside any process (one context-variable read).
current_process: Callable[[], ProcessView | None] = get_current


def await_chain(view: ProcessView) -> tuple[list[FrameType], Any]:
    """The frames of a suspended process's await chain, outermost first, and what the
    innermost one awaits when that is not a coroutine (a future), else None."""
    frames: list[FrameType] = []
    obj: Any = view.get_coro()
    for _ in range(128):
        if obj is None:
            break
        f = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if f is None:
            return frames, obj  # a future or another non-coroutine awaitable
        frames.append(f)
        nxt = getattr(obj, "cr_await", None) if hasattr(obj, "cr_await") else None
        if nxt is None and hasattr(obj, "gi_yieldfrom"):
            nxt = obj.gi_yieldfrom
        obj = nxt
    return frames, None


class ReceiveWait(NamedTuple):
    """What a parked receive waits for (`receive_wait`): the patterns given to
    `receive` (empty for `next_message`, a `since=`-only receive and `sleep`), its
    `since` ref, the compiled matcher the wait runs (None: any message), and whether it
    is a `sleep` (a wait that matches nothing)."""

    patterns: tuple[Any, ...]
    since: Any
    matcher: Any
    sleep: bool


def receive_wait(frames: list[FrameType]) -> ReceiveWait:
    """Read a parked receive's arguments from the kernel's frames in `frames`
    (`await_chain`'s)."""
    patterns: tuple[Any, ...] = ()
    since: Any = None
    matcher: Any = None
    sleep = False
    for f in reversed(frames):
        code = f.f_code
        if code is _receive.__code__:
            patterns = tuple(f.f_locals.get("patterns") or ())
            since = f.f_locals.get("since")
            break
        if code is _wait.__code__ and f.f_locals.get("match") is not None:
            m = f.f_locals["match"]
            if getattr(m, "__name__", "") == "_never":
                sleep = True
            else:
                matcher = m
    return ReceiveWait(patterns, since, matcher, sleep)
