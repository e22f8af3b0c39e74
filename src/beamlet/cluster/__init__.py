"""Cluster formation: find nodes, connect to them, stay connected.

* `Cluster` — a server that polls strategies and (re)connects (libcluster's topology).
* strategies — `Static`, `EpmdScan`, `LocalEpmd` (the one-machine default), `Dns`
  (A/AAAA/SRV records, as a Kubernetes headless service gives).
* `monitor_nodes` — `NodeUp`/`NodeDown` for every connection (`net_kernel:monitor_nodes`).

Examples:
    A visible peer node that nobody connects to, then a `Cluster` that knows its name:

    >>> from beamlet import peer
    >>> from beamlet.cluster import Cluster, NodeUp, Static, monitor_nodes
    >>> async def main() -> None:
    ...     p = await peer.start(name="cluster_doc_b", hidden=False, connect=False)
    ...     monitor_nodes()
    ...     await Cluster.start_link([Static([p.node])])
    ...     print(await beamlet.receive(NodeUp, timeout=5))
    ...     await peer.stop(p)
    >>> beamlet.run(main, name="cluster_doc@127.0.0.1", cookie="secret")
    NodeUp(node=Atom('cluster_doc_b@127.0.0.1'))
"""

from beamlet.cluster.formation import Cluster
from beamlet.cluster.node_events import NodeDown, NodeUp, monitor_nodes
from beamlet.cluster.strategy import Dns, EpmdScan, LocalEpmd, Static, Strategy

__all__ = [
    "Cluster",
    "Dns",
    "EpmdScan",
    "LocalEpmd",
    "NodeDown",
    "NodeUp",
    "Static",
    "Strategy",
    "monitor_nodes",
]
