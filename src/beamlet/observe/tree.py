"""`supervision_tree()`: the root supervisors of a node and their children.

Read from the supervisors' own bookkeeping (synchronously, as `process_info` reads
frames), so it works while a supervisor is busy restarting and never sends it a message.

Examples:
    >>> from beamlet import Agent, Supervisor, observe
    >>> sup = await Supervisor.start_link(
    ...     [Agent.child_spec(lambda: 0, id="a"), Agent.child_spec(lambda: 1, id="b")],
    ...     strategy="one_for_one")
    >>> for root in observe.supervision_tree():
    ...     print(root.type, [(c.id, c.type, c.restart, c.status) for c in root.children])
    supervisor [('a', 'worker', 'permanent', 'running'), ('b', 'worker', 'permanent', 'running')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from beamlet._core import Node, Pid
from beamlet.observe.info import (
    RestartBudget,
    _budget,
    live_procs,
    node_of,
    short_repr,
    supervisor_server,
)

__all__ = ["TreeNode", "supervision_tree"]


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One process of a supervision tree.

    `id` is its child id (None for a root), `restart` its restart type, `type` "worker"
    or "supervisor", `status` "running", "restarting" or "not running" (a child spec
    whose process is gone), `restarts` the supervisor's budget.

    Examples:
        >>> from beamlet import Agent, Supervisor, observe
        >>> sup = await Supervisor.start_link([Agent.child_spec(lambda: 0, id="counter")],
        ...                                   strategy="one_for_one")
        >>> [root] = observe.supervision_tree()
        >>> root.pid == sup, root.id, str(root.restarts), root.children[0].id
        (True, None, '0/3 in 5s', 'counter')
    """

    pid: Pid | None
    id: Any
    label: str
    type: str
    restart: str | None
    status: str
    restarts: RestartBudget | None = None
    children: tuple[TreeNode, ...] = field(default=())


def _children(server: Any) -> list[tuple[Any, Any, bool]]:
    """(spec, pid, restarting) for each child, in start order."""
    out = []
    ids = getattr(server, "ids", None)
    if ids is not None:  # Supervisor
        for cid in ids:
            c = server.children.get(cid)
            if c is not None:
                out.append((c.spec, c.pid, c.restarting))
    else:  # DynamicSupervisor: keyed by pid
        for pid, c in list(getattr(server, "children", {}).items()):
            out.append((c.spec, pid, getattr(c, "restarting", False)))
    return out


def _build(
    node: Node, pid: Pid | None, cid: Any, spec: Any, restarting: bool, depth: int
) -> TreeNode:
    q = node.lookup(pid) if pid is not None else None
    alive = q is not None and q.alive
    server = supervisor_server(q) if alive and q is not None else None
    kids: tuple[TreeNode, ...] = ()
    if server is not None and depth < 64:
        kids = tuple(
            _build(node, cpid, s.id, s, r, depth + 1)
            for s, cpid, r in _children(server)
            if type(cpid) is Pid or cpid is None
        )
    status = "restarting" if restarting else "running" if alive else "not running"
    label = short_repr(cid) if cid is not None else ""
    if q is not None and q.name is not None:
        label = str(q.name)
    elif server is not None and not label:
        label = short_repr(getattr(server, "label", pid))
    kind = getattr(spec, "type", None) or ("supervisor" if server is not None else "worker")
    return TreeNode(
        pid=pid if alive else None,
        id=cid,
        label=label or repr(pid),
        type=str(kind),
        restart=str(spec.restart) if spec is not None else None,
        status=status,
        restarts=_budget(server) if server is not None else None,
        children=kids,
    )


def supervision_tree(node: Node | None = None) -> list[TreeNode]:
    """The supervision trees of the node: one `TreeNode` per root supervisor (a
    supervisor whose parent is not a supervisor), children in start order.

    Examples:
        >>> from beamlet import Agent, Supervisor, observe
        >>> sup = await Supervisor.start_link([Agent.child_spec(lambda: 0, id="counter")],
        ...                                   strategy="one_for_one")
        >>> [root] = observe.supervision_tree()
        >>> child = root.children[0]
        >>> beamlet.exit(child.pid, beamlet.KILL)
        >>> await beamlet.sleep(0.01)
        >>> [root] = observe.supervision_tree()
        >>> root.children[0].pid != child.pid, root.restarts.used
        (True, 1)
    """
    n = node_of(node)
    sups = {}
    for p in live_procs(n):
        s = supervisor_server(p)
        if s is not None:
            sups[p.pid] = s
    child_pids = set()
    for s in sups.values():
        for _spec, cpid, _r in _children(s):
            if type(cpid) is Pid:
                child_pids.add(cpid)
    return [_build(n, pid, None, None, False, 0) for pid in sups if pid not in child_pids]
