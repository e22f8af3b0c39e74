"""Which process is calling: a context variable set once in each process's own context.

Each process runs its steps inside its own `contextvars.Context` (copied from its
spawner, as asyncio tasks do). The spawner sets this variable in the child's context
once, so finding the caller costs one `ContextVar.get` and nothing per step; it is
naturally per-thread and per-node. Plain asyncio tasks created inside a process inherit
its context, so they may send on the process's behalf; `receive` additionally checks
that the process itself is the one being stepped.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beamlet._core.terms import Atom

current_process: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "beamlet_current_process", default=None
)
get_current = current_process.get

#: An empty context: runtime callbacks (run-queue drains, timers) run in it, so that no
#: process is "current" while the runtime itself works.
NEUTRAL = contextvars.Context()


def current_node_name() -> Atom | None:
    p = get_current()
    return None if p is None else p.node.name
