"""`monitor_nodes`: hear of every connection to another node coming up or going down
(Erlang's `net_kernel:monitor_nodes/1`).

The first subscriber on a node starts a watcher process (registered as
`beamlet_node_events`) that hooks the distribution's connection events and
`monitor_node`s each connected node; subscribers get `NodeUp(node)` and
`NodeDown(node)` messages, in the order the connections changed. Connections that
already exist when a process subscribes are not announced (as in Erlang).

Examples:
    >>> from beamlet import peer
    >>> from beamlet.cluster import NodeUp, monitor_nodes
    >>> async def main() -> None:
    ...     monitor_nodes()
    ...     p = await peer.start(name="node_events_b")
    ...     print(await beamlet.receive(NodeUp, timeout=5))
    ...     await peer.stop(p)
    >>> beamlet.run(main, name="node_events@127.0.0.1", cookie="secret")
    NodeUp(node=Atom('node_events_b@127.0.0.1'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import beamlet
from beamlet import Atom, Down, Pid
from beamlet.distribution.api import NodeDown, get_distribution, monitor_node

__all__ = ["NodeDown", "NodeUp", "monitor_nodes"]

WATCHER = Atom("beamlet_node_events")
_UP = Atom("$nodeup")


@dataclass(frozen=True, slots=True)
class NodeUp:
    """Sent to `monitor_nodes` subscribers when a connection to `node` comes up
    (Erlang's `{nodeup, Node}`).

    Examples:
        >>> from beamlet import peer
        >>> from beamlet.cluster import NodeUp, monitor_nodes
        >>> async def main() -> None:
        ...     monitor_nodes()
        ...     p = await peer.start(name="cluster_up_b")    # connects to it
        ...     print(await beamlet.receive(NodeUp, timeout=5))
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="cluster_up@127.0.0.1", cookie="secret")
        NodeUp(node=Atom('cluster_up_b@127.0.0.1'))
    """

    node: Atom


async def _watch() -> None:
    d = get_distribution()
    runtime = beamlet.current_node()
    me = beamlet.self()
    subs: dict[Pid, Any] = {}

    def hook(node: Atom) -> None:  # called by the distribution, outside any process
        runtime.send(me, (_UP, node))

    d.on_nodeup.append(hook)
    try:
        for node in d.nodes():
            monitor_node(node)
        while True:
            msg = await beamlet.receive()
            match msg:
                case (Atom("subscribe"), pid, True):
                    if pid not in subs:
                        subs[pid] = beamlet.monitor(pid)
                case (Atom("subscribe"), pid, False):
                    if pid in subs:
                        beamlet.demonitor(subs.pop(pid), flush=True)
                case (Atom("$nodeup"), node):
                    monitor_node(node)
                    for pid in subs:
                        beamlet.send(pid, NodeUp(node))
                case NodeDown():
                    for pid in subs:
                        beamlet.send(pid, msg)
                case Down(pid=pid):
                    subs.pop(pid, None)  # type: ignore[arg-type]
    finally:
        if hook in d.on_nodeup:
            d.on_nodeup.remove(hook)


def monitor_nodes(enable: bool = True) -> None:
    """Subscribe the caller to `NodeUp`/`NodeDown` messages for every node this node
    connects to or loses (`enable=False` unsubscribes). Raises `NotDistributed` on a
    node that is not distributed.

    Examples:
        >>> from beamlet import peer
        >>> from beamlet.cluster import NodeDown, NodeUp, monitor_nodes
        >>> async def main() -> None:
        ...     monitor_nodes()
        ...     p = await peer.start(name="cluster_mon_b")
        ...     print(await beamlet.receive(NodeUp, timeout=5))
        ...     await peer.stop(p)
        ...     print(await beamlet.receive(NodeDown, timeout=5))
        >>> beamlet.run(main, name="cluster_mon@127.0.0.1", cookie="secret")
        NodeUp(node=Atom('cluster_mon_b@127.0.0.1'))
        NodeDown(node=Atom('cluster_mon_b@127.0.0.1'))
    """
    get_distribution()
    watcher = beamlet.whereis(WATCHER)
    if watcher is None:
        if not enable:
            return
        watcher = beamlet.current_node().spawn(_watch)  # not linked to the caller
        beamlet.register(WATCHER, watcher)
    beamlet.send(watcher, (Atom("subscribe"), beamlet.self(), enable))
