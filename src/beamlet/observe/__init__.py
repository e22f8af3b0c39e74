"""beamlet.observe: see inside a running node.

Introspection (`processes`, `process_info` with *why* a process waits,
`supervision_tree`, `proc_window`, `node_overview`), and Erlang's own tools (`etop`,
observer's backends) pointed at a beamlet node (`serve_erlang_tools`). It reads the
kernel's state; the kernel pays nothing while nothing is attached.

Examples:
    A worker that waits for `("job", ...)` while it is sent `("work", ...)`:

    >>> from beamlet import ANY, observe
    >>> async def worker():
    ...     await beamlet.receive(("job", ANY))
    >>> w = beamlet.spawn(worker)
    >>> for i in range(3):
    ...     beamlet.send(w, ("work", i))
    >>> await beamlet.sleep(0)
    >>> for row in observe.processes():
    ...     if row.waiting and row.waiting.unmatched:
    ...         print(row.label.rsplit(".", 1)[-1], "|", row.waiting)
    worker | receive ('job', ANY), forever; 3 queued not matching (('work', …)/2 x3)
"""

from beamlet.observe import calls, telemetry, trace
from beamlet.observe.erlang_tools import serve_erlang_tools
from beamlet.observe.errors import NodeUnreachable, ObserveError, TooBroad
from beamlet.observe.info import (
    KEYS,
    ProcessSnapshot,
    RestartBudget,
    WaitReason,
    process_info,
    processes,
    stack,
)
from beamlet.observe.overview import (
    Connection,
    LagMonitor,
    NodeOverview,
    node_overview,
    start_lag_monitor,
)
from beamlet.observe.remote import serve
from beamlet.observe.tree import TreeNode, supervision_tree
from beamlet.observe.window import WindowRow, proc_count, proc_window, sample, top_diff

__all__ = [
    "KEYS",
    "Connection",
    "LagMonitor",
    "NodeOverview",
    "NodeUnreachable",
    "ObserveError",
    "ProcessSnapshot",
    "RestartBudget",
    "TooBroad",
    "TreeNode",
    "WaitReason",
    "WindowRow",
    "calls",
    "node_overview",
    "proc_count",
    "proc_window",
    "process_info",
    "processes",
    "sample",
    "serve",
    "serve_erlang_tools",
    "stack",
    "start_lag_monitor",
    "supervision_tree",
    "telemetry",
    "top_diff",
    "trace",
]
