"""Child specifications (docs/semantics.md §8.2) and the start-function contract.

A start function is an async callable, called *in the supervisor's process*, that starts
a child linked to the caller and returns:

* the child's `Pid` — started (Erlang `{ok, Pid}`);
* `None` — the child chose not to start (Erlang `ignore`);
* or raises `StartError(reason)` — the start failed (Erlang `{error, Reason}`); any other
  exception is a crash of the start function (Erlang `{'EXIT', Reason}`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from beamlet._core import BeamletError, Pid

__all__ = ["ChildSpec", "InvalidChildSpec", "Restart", "Shutdown", "StartError", "StartFn"]

Restart = Literal["permanent", "transient", "temporary"]
#: seconds (> 0), "brutal_kill", or "infinity"
Shutdown = float | Literal["brutal_kill", "infinity"]
StartFn = Callable[..., Awaitable[Pid | None]]


class StartError(BeamletError):
    """A start function failed cleanly (Erlang `{error, Reason}`); `.reason` says why."""

    def __init__(self, reason: Any) -> None:
        super().__init__(f"start failed: {reason!r}")
        self.reason = reason


class InvalidChildSpec(BeamletError, ValueError):
    """A child specification is malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Defaults are OTP's: permanent, 5 s shutdown for workers ("infinity" for
    supervisors), worker.

    Examples:
        >>> from beamlet import Agent, ChildSpec, Supervisor
        >>> spec = ChildSpec(id="cache", start=Agent.start_link, args=(dict,), restart="transient")
        >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
        >>> [c.id for c in await Supervisor.which_children(sup)]
        ['cache']
    """

    id: Any
    start: StartFn
    args: tuple[Any, ...] = ()
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None  # None: 5.0 for a worker, "infinity" for a supervisor
    type: Literal["worker", "supervisor"] = "worker"
    significant: bool = False
    modules: tuple[Any, ...] | Literal["dynamic"] = field(default=())

    def __post_init__(self) -> None:
        if not callable(self.start):
            raise InvalidChildSpec(f"child {self.id!r}: start must be callable: {self.start!r}")
        if type(self.args) is not tuple:
            raise InvalidChildSpec(f"child {self.id!r}: args must be a tuple: {self.args!r}")
        if self.restart not in ("permanent", "transient", "temporary"):
            raise InvalidChildSpec(f"child {self.id!r}: invalid restart {self.restart!r}")
        if self.type not in ("worker", "supervisor"):
            raise InvalidChildSpec(f"child {self.id!r}: invalid type {self.type!r}")
        s = self.shutdown
        ok = (
            s is None
            or s in ("brutal_kill", "infinity")
            or (isinstance(s, int | float) and not isinstance(s, bool) and s > 0)
        )
        if not ok:
            raise InvalidChildSpec(
                f"child {self.id!r}: shutdown must be seconds > 0, 'brutal_kill' or "
                f"'infinity': {s!r}"
            )
        if self.significant and self.restart == "permanent":
            raise InvalidChildSpec(f"child {self.id!r}: a permanent child cannot be significant")

    @property
    def shutdown_value(self) -> Shutdown:
        """The shutdown with OTP's default filled in."""
        if self.shutdown is not None:
            return self.shutdown
        return "infinity" if self.type == "supervisor" else 5.0

    def with_overrides(self, **changes: Any) -> ChildSpec:
        """A copy with some fields changed (Elixir's `Supervisor.child_spec/2`)."""
        return replace(self, **changes)
