"""Exceptions of the runtime.

Two families, deliberately apart (docs/architecture.md §3):

* `ProcessExit` derives from `BaseException`, like `asyncio.CancelledError`, so a plain
  `except Exception:` in user code cannot swallow an exit. It is what `exit(reason)`
  raises in the caller (Erlang's `exit/1`).
* Usage errors derive from `BeamletError(Exception)`: a bad pid, a bad timeout, an unknown
  name. They are raised at the API boundary and never corrupt a process or the node.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadArgument",
    "BeamletError",
    "InvalidTimeout",
    "NameTaken",
    "NoProcError",
    "NotInProcess",
    "NotRegistered",
    "ProcessExit",
    "ProcessFailed",
    "Unsendable",
]


class ProcessExit(BaseException):
    """Raised by `exit(reason)`; ends the process with `reason` unless caught.

    Examples:
        >>> async def worker():
        ...     raise beamlet.ProcessExit("bye")    # what beamlet.exit("bye") raises
        >>> pid, ref = beamlet.spawn_monitor(worker)
        >>> (await beamlet.receive(beamlet.Down)).reason
        'bye'
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class BeamletError(Exception):
    """Base class of every usage error raised by beamlet."""


class NotInProcess(BeamletError, RuntimeError):
    """A process-only function (`self()`, `receive`, ...) was called outside a process."""


class BadArgument(BeamletError, TypeError):
    """An argument has the wrong type (Erlang's `badarg`): not a pid, not a ref, ..."""


class InvalidTimeout(BeamletError, ValueError):
    """A timeout is negative, not a number, or not finite (use None for infinity)."""


class NameTaken(BeamletError, ValueError):
    """`register` failed: the name is taken, or the process already has a name."""


class NotRegistered(BeamletError, LookupError):
    """A registered name was used (send, unregister) but no process holds it."""


class NoProcError(BeamletError, LookupError):
    """`link` to a process that does not exist, from a process that does not trap exits
    (§3.6)."""

    def __init__(self, pid: Any) -> None:
        super().__init__(f"noproc: {pid!r} is not alive")
        self.pid = pid


class Unsendable(BeamletError, TypeError):
    """A message holds a value that can be neither shared safely nor copied (§2.2)."""


class ProcessFailed(BeamletError):
    """`beamlet.run` (or `Node.run`): the main process ended with an abnormal reason."""

    def __init__(self, reason: Any) -> None:
        super().__init__(f"process exited with reason {reason!r}")
        self.reason = reason
