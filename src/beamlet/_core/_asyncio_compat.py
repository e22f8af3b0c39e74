"""The one place that touches asyncio's private current-task hooks.

While a process runs a step, the scheduler registers the process as the loop's current
task with `_enter_task`/`_leave_task` (private asyncio API, stable on 3.11-3.13, tested on
each). Without them `asyncio.timeout()` and friends would refuse to run in a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

enter_task: Callable[[asyncio.AbstractEventLoop, Any], None]
leave_task: Callable[[asyncio.AbstractEventLoop, Any], None]

try:
    from asyncio.tasks import _enter_task as enter_task  # type: ignore[no-redef,unused-ignore]
    from asyncio.tasks import _leave_task as leave_task  # type: ignore[no-redef,unused-ignore]

except ImportError:  # pragma: no cover - future Pythons

    def enter_task(loop: asyncio.AbstractEventLoop, task: Any) -> None:
        return None

    def leave_task(loop: asyncio.AbstractEventLoop, task: Any) -> None:
        return None


def _current_tasks_dict() -> dict[Any, Any] | None:
    """asyncio's loop -> current task dict, if `current_task()` reads it (3.11-3.13).

    Storing the process in it directly costs a dict store per step instead of two
    argument-parsing calls (a tenth of a ring hop); checked once at import."""
    from asyncio import tasks

    d = getattr(tasks, "_current_tasks", None)
    if type(d) is not dict:
        return None
    loop = asyncio.new_event_loop()
    try:
        marker = object()
        d[loop] = marker
        ok = asyncio.current_task(loop) is marker
        d.pop(loop, None)
        return d if ok else None
    finally:
        loop.close()


current_tasks = _current_tasks_dict()
