"""Remote calls in the style of Erlang's `erpc`: `rpc.call` and `rpc.cast`.

Examples:
    >>> from beamlet.distribution import rpc
    >>> async def main() -> None:
    ...     print(await rpc.call("erl@127.0.0.1", "lists", "reverse", [[1, 2, 3]]))
"""

from beamlet.distribution.api import RpcError
from beamlet.distribution.api import rpc_call as call
from beamlet.distribution.api import rpc_cast as cast

__all__ = ["RpcError", "call", "cast"]
