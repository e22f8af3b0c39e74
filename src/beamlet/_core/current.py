"""Which process is running a step right now, on this thread.

This is scheduling context, not runtime state: the scheduler sets it around each step of
a process and clears it after. Everything the runtime owns hangs off a `Node`; this only
lets module-level functions such as `beamlet.self()` find the caller. A thread-local
keeps nodes on different threads (each with its own loop) apart.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beamlet._core.terms import Atom


class _Current(threading.local):
    proc: Any = None


current = _Current()


def current_node_name() -> Atom | None:
    p = current.proc
    return None if p is None else p.node.name
