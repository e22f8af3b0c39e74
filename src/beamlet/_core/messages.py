"""Messages the runtime itself puts in mailboxes, and the crash exit reason.

All are small frozen dataclasses usable in `match` statements:

    match await beamlet.receive():
        case beamlet.Down(ref=r, reason=reason) if r == ref: ...
        case beamlet.Exit(pid=p, reason=beamlet.KILLED): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from beamlet._core.terms import Atom, Pid, Ref

__all__ = ["Crash", "Down", "Exit", "TimerMsg"]


@dataclass(frozen=True, slots=True)
class Exit:
    """A trapped exit signal, Erlang's `{'EXIT', Pid, Reason}` (§3.3).

    Examples:
        >>> beamlet.process_flag(trap_exit=True)
        False
        >>> async def worker():
        ...     beamlet.exit("failed")
        >>> pid = beamlet.spawn_link(worker)
        >>> await beamlet.receive(beamlet.Exit)
        Exit(pid=<0.2.0>, reason='failed')
    """

    pid: Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """A monitor fired, Erlang's `{'DOWN', Ref, process, Object, Reason}` (§4.2).

    `pid` is the monitored pid, or `(name, node)` for a monitor taken on a name.
    `tag` is the custom tag given to `monitor(..., tag=...)`, else None.

    Examples:
        >>> async def worker():
        ...     beamlet.exit("done")
        >>> pid, ref = beamlet.spawn_monitor(worker)
        >>> await beamlet.receive(beamlet.Down)
        Down(ref=#Ref<...>, kind=Atom('process'), pid=<0.2.0>, reason='done', tag=None)
    """

    ref: Ref
    kind: Atom
    pid: Pid | tuple[Atom, Atom]
    reason: Any
    tag: Any = None


@dataclass(frozen=True, slots=True)
class TimerMsg:
    """What `start_timer` delivers, Erlang's `{timeout, TRef, Msg}` (§6).

    Examples:
        >>> ref = beamlet.start_timer(0.01, beamlet.self(), "tick")
        >>> await beamlet.receive(beamlet.TimerMsg)
        TimerMsg(ref=#Ref<...>, msg='tick')
    """

    ref: Ref
    msg: Any


@dataclass(frozen=True, slots=True)
class Crash:
    """Exit reason of a process ended by an uncaught exception, Erlang's `{E, Stack}`.

    `stacktrace` holds `(filename, function, lineno)` frames, innermost last.
    `formatted` is the traceback text as Python prints it (kept for crash reports).

    Examples:
        >>> async def worker():
        ...     raise ValueError("boom")
        >>> pid, ref = beamlet.spawn_monitor(worker)
        >>> match await beamlet.receive(beamlet.Down):
        ...     case beamlet.Down(reason=beamlet.Crash(exception=e)):
        ...         print(repr(e))
        ValueError('boom')
    """

    exception: BaseException
    stacktrace: tuple[tuple[str, str, int], ...] = ()
    formatted: str = field(default="", repr=False, compare=False)
