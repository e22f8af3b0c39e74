"""The `rex` server: `rpc:call`, `rpc:block_call` and `rpc:cast` from Erlang nodes
(OTP's `rpc`, docs/protocol.md §6.2), and erpc's `features_request`.

Each call runs in a fresh process, so a slow function never blocks the server; the
result, or the error as `{badrpc, {'EXIT', Reason}}`, is the gen_server reply.
"""

from __future__ import annotations

from typing import Any

from beamlet._core import Atom, Pid, ProcessExit, receive
from beamlet.distribution.erpc import ERPC, UNDEF, RemoteSpawn
from beamlet.distribution.functions import ErlangError, Undefined, arglist
from beamlet.distribution.reasons import python_error, python_stack, tb_frames, wire_reason
from beamlet.distribution.services import safe_reply

_GEN_CALL = Atom("$gen_call")
_GEN_CAST = Atom("$gen_cast")
_CALLS = (Atom("call"), Atom("block_call"))
_CAST = Atom("cast")
_FEATURES_REQUEST = Atom("features_request")
_FEATURES_REPLY = Atom("features_reply")
_BADRPC = Atom("badrpc")
_EXIT = Atom("EXIT")
_REX = Atom("rex")


async def rex(dist: RemoteSpawn) -> None:
    """The body of the `rex` registered process of `dist`'s node."""
    node = dist.node

    async def rex_call(from_: Any, module: Any, fn: Any, args: Any) -> None:
        await _rex_call(dist, from_, module, fn, args)  # spawn copies arguments: a closure

    while True:
        msg = await receive()
        if type(msg) is not tuple:
            continue
        if len(msg) == 2 and msg[1] == _FEATURES_REQUEST and type(msg[0]) is Pid:
            node.send(msg[0], (_FEATURES_REPLY, node.name, [ERPC]))
        elif len(msg) == 2 and type(msg[0]) is Pid and _is_call(msg[1]):
            # The pre-gen_server protocol ei-based C nodes use (ei_rpc, erl_call):
            # {From, {call, M, F, A, GL}}, answered {rex, Result}.
            node.spawn(rex_call, (msg[0], _REX), *msg[1][1:4])
        elif len(msg) == 3 and msg[0] == _GEN_CALL:
            req = msg[2]
            if _is_call(req):
                node.spawn(rex_call, msg[1], req[1], req[2], req[3])
        elif len(msg) == 2 and msg[0] == _GEN_CAST:
            req = msg[1]
            if type(req) is tuple and len(req) >= 4 and req[0] == _CAST:
                node.spawn(dist.erpc_cast, req[1], req[2], req[3])


def _is_call(req: Any) -> bool:
    return type(req) is tuple and len(req) >= 4 and type(req[0]) is Atom and req[0] in _CALLS


def _caller_node(from_: Any) -> Any:
    return getattr(from_[0], "node", None) if type(from_) is tuple and from_ else None


async def _rex_call(dist: RemoteSpawn, from_: Any, module: Any, fn: Any, args: Any) -> None:
    args_ = arglist(args)
    try:
        if args_ is None:
            raise Undefined
        result = await dist.functions.run(module, fn, args_)
        dist.check_encodable(_caller_node(from_), result)
    except Undefined:
        result = (_BADRPC, (_EXIT, (UNDEF, [(module, fn, args, [])])))
    except ProcessExit as e:
        result = (_BADRPC, (_EXIT, wire_reason(e.reason, dist._options_for(_caller_node(from_)))))
    except ErlangError as e:
        result = (_BADRPC, (_EXIT, (e.reason, [])))
    except Exception as e:
        err = (python_error(e), python_stack(tb_frames(e.__traceback__)))
        result = (_BADRPC, (_EXIT, err))
    safe_reply(dist.node, from_, result)
