"""Cluster formation: find nodes, connect to them, stay connected.

* `Cluster` — a server that polls strategies and (re)connects (libcluster's topology).
* strategies — `Static`, `EpmdScan`, `LocalEpmd` (the one-machine default), `Dns`
  (A/AAAA/SRV records, as a Kubernetes headless service gives).
* `monitor_nodes` — `NodeUp`/`NodeDown` for every connection (`net_kernel:monitor_nodes`).

Examples:
    >>> from beamlet.cluster import Cluster, Dns, monitor_nodes, NodeUp
    >>> async def main() -> None:
    ...     monitor_nodes()
    ...     await Cluster.start_link([Dns("app.default.svc.cluster.local", basename="app")])
    ...     print(await beamlet.receive(NodeUp))
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
