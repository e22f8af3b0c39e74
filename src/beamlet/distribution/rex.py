"""The `rex` server: `rpc:call`, `rpc:block_call` and `rpc:cast` from Erlang nodes
(OTP's `rpc`, docs/protocol.md §6.2), and erpc's `features_request`.

A GenServer, as OTP's rex is a gen_server: calls, casts, `sys` requests and the
distribution's start/stop go through the gen layer. Each call runs in a fresh process,
so a slow function never blocks the server; the result, or the error as
`{badrpc, {'EXIT', Reason}}`, is the gen_server reply (`gen.reply`, from that process).
"""

from __future__ import annotations

from typing import Any

from beamlet import _core as api
from beamlet._core import Atom, Pid, ProcessExit, Shared
from beamlet.behaviours import gen
from beamlet.behaviours.gen_server import From, GenServer, NoReply
from beamlet.distribution.erpc import ERPC, UNDEF, RemoteSpawn
from beamlet.distribution.functions import ErlangError, Undefined, arglist
from beamlet.distribution.reasons import python_error, python_stack, tb_frames, wire_reason

_CALLS = (Atom("call"), Atom("block_call"))
_CAST = Atom("cast")
_FEATURES_REQUEST = Atom("features_request")
_FEATURES_REPLY = Atom("features_reply")
_BADRPC = Atom("badrpc")
_EXIT = Atom("EXIT")
_REX = Atom("rex")

#: rex's state: what `sys:get_state({rex, Node})` shows (OTP's rex keeps a map too).
State = dict[Atom, Any]


class Rex(GenServer[State]):
    """The `rex` registered process of a distributed node (started by its services
    supervisor with `Rex.start_link(Shared(dist), name=Atom("rex"))`)."""

    dist: RemoteSpawn

    def init(self, arg: Shared[RemoteSpawn]) -> State:
        self.dist = arg.value
        return {}

    def handle_call(self, request: Any, from_: From, state: State) -> NoReply[State]:
        # {call | block_call, M, F, A, GroupLeader}: answered later, by the worker
        if _is_call(request):
            self._run(from_, request[1], request[2], request[3])
        return NoReply(state)

    def handle_cast(self, request: Any, state: State) -> NoReply[State]:
        if type(request) is tuple and len(request) >= 4 and request[0] == _CAST:
            api.spawn(self.dist.erpc_cast, request[1], request[2], request[3])
        return NoReply(state)

    def handle_info(self, msg: Any, state: State) -> NoReply[State]:
        if type(msg) is tuple and len(msg) == 2 and type(msg[0]) is Pid:
            if msg[1] == _FEATURES_REQUEST:
                api.send(msg[0], (_FEATURES_REPLY, api.node_name(), [ERPC]))
            elif _is_call(msg[1]):
                # The pre-gen_server protocol ei-based C nodes use (ei_rpc, erl_call):
                # {From, {call, M, F, A, GL}}, answered {rex, Result}.
                self._run(From(msg[0], _REX), *msg[1][1:4])
        return NoReply(state)  # anything else: dropped, as OTP's rex does

    def _run(self, from_: From, module: Any, fn: Any, args: Any) -> None:
        dist = self.dist

        async def rex_call(from_: Any, module: Any, fn: Any, args: Any) -> None:
            await _rex_call(dist, from_, module, fn, args)  # spawn copies arguments: a closure

        api.spawn(rex_call, from_, module, fn, args)


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
    gen.reply(from_, result)
