"""Erlang distribution: a beamlet node as a peer of Erlang, Elixir and beamlet nodes.

Start a distributed node with `beamlet.run(main, name="py@127.0.0.1", cookie="secret")`
(or `python -m beamlet node --name ...`, or `start_distribution` on a `Node`); then,
inside its processes, pids and names of other nodes work with the ordinary process API,
and this package adds what concerns nodes: `connect`, `nodes`, `monitor_node`, remote
`spawn`, `rpc.call`/`rpc.cast`, and `register_function` to serve Erlang's `rpc:call`,
`erpc:call` and `spawn/4`.

Lower layers, for the curious: `etf` (the external term format), `epmd` (port mapper
client and a built-in server), `handshake` and `connection` (one connection), then
`Distribution` in layers along OTP's seams: `net_kernel` (connections, ticks),
`dist_ctrl` (control messages), `erpc` (remote spawn), with the services `rex` and
`group_leader`.

Examples:
    Two nodes in one program: `a`, started by `beamlet.run`, calls a function that a
    second node `b` serves (a Python function registered under `module:name`):

    >>> import beamlet
    >>> from beamlet import Node
    >>> from beamlet import distribution as dist
    >>> async def main() -> int:
    ...     async with Node("b@127.0.0.1") as b:
    ...         b_dist = await dist.start_distribution(b, cookie="secret")
    ...         b_dist.register_function("py", "double", lambda x: 2 * x)
    ...         result = await dist.rpc.call("b@127.0.0.1", "py", "double", [21])
    ...         await b_dist.stop()
    ...     return result
    >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
    42
"""

from beamlet.distribution import rpc
from beamlet.distribution.api import (
    NotDistributed,
    RpcError,
    SpawnError,
    connect,
    disconnect,
    get_distribution,
    monitor_node,
    node,
    nodes,
    register_function,
    spawn,
    spawn_link,
    spawn_monitor,
    unregister_function,
)
from beamlet.distribution.distribution import (
    Distribution,
    DistributionError,
    NodeDown,
    start_distribution,
)

__all__ = [
    "Distribution",
    "DistributionError",
    "NodeDown",
    "NotDistributed",
    "RpcError",
    "SpawnError",
    "connect",
    "disconnect",
    "get_distribution",
    "monitor_node",
    "node",
    "nodes",
    "register_function",
    "rpc",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "start_distribution",
    "unregister_function",
]
