"""Remote calls in the style of Erlang's `erpc`: `rpc.call` and `rpc.cast`.

Examples:
    `rpc.call` works on the caller's own node too; `"erl@host"` would call Erlang's
    `lists:reverse/1` there:

    >>> from beamlet.distribution import node, register_function, rpc
    >>> async def main() -> None:
    ...     register_function("lists", "reverse", lambda xs: xs[::-1])
    ...     print(await rpc.call(node(), "lists", "reverse", [[1, 2, 3]]))
    >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
    [3, 2, 1]
"""

from beamlet.distribution.api import RpcError
from beamlet.distribution.api import rpc_call as call
from beamlet.distribution.api import rpc_cast as cast

__all__ = ["RpcError", "call", "cast"]
