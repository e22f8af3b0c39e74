"""Remote spawn, both ways, and erpc (erts' SPAWN_REQUEST/SPAWN_REPLY and OTP's
`erpc`, docs/protocol.md §3 and §6.1).

Our requests: `spawn_request` asks a peer to start a process for a caller here; the
SPAWN_REPLY comes back as `SpawnReply(ref, pid | error)`, and a lost connection answers
`noconnection`. Requests from peers: SPAWN_REQUEST starts `erpc:execute_call/4` and
`erpc:execute_cast/3` (Erlang's `erpc:call` and `rpc:call` since OTP 23), or a Python
function registered with `register_function` (`spawn/4`); anything else starts and
exits with `undef`, as a spawn of an unknown function does in Erlang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from beamlet._core import NOCONNECTION, NOPROC, Atom, Node, Pid, ProcessExit, Ref
from beamlet.distribution import etf
from beamlet.distribution.dist_ctrl import (
    DEMONITOR_P,
    PAYLOAD_EXIT,
    PAYLOAD_EXIT2,
    SPAWN_REPLY,
    SPAWN_REQUEST,
    DistCtrl,
)
from beamlet.distribution.functions import (
    ErlangError,
    FunctionRegistry,
    Undefined,
    arglist,
    runner,
)
from beamlet.distribution.reasons import (
    brief,
    python_error,
    python_stack,
    tb_frames,
    wire_reason,
)

log = logging.getLogger("beamlet.distribution")

RETURN = Atom("return")
ERROR = Atom("error")
EXIT_ATOM = Atom("exit")
UNDEF = Atom("undef")
ERPC = Atom("erpc")
EXECUTE_CALL = Atom("execute_call")
EXECUTE_CAST = Atom("execute_cast")
MONITOR_OPT = Atom("monitor")
LINK_OPT = Atom("link")
ABANDONED = Atom("abandoned")
BADARG = Atom("badarg")
NOTSUP = Atom("notsup")


@dataclass(frozen=True, slots=True)
class SpawnReply:
    """The answer to a remote spawn request, delivered to the requesting process: the
    new `Pid`, or an error atom (`noconnection`, `badarg`, `notsup`...)."""

    ref: Ref
    result: Any


@dataclass(slots=True)
class _SpawnRequest:
    caller: Pid
    node: Atom
    reply: str  # "yes", "error_only" (erpc) or "no" (casts)
    abandoned: bool = False


class RemoteSpawn(DistCtrl):
    """`DistCtrl` plus remote spawn and erpc, and the functions peers may call."""

    def __init__(self, node: Node, *, allow_import: bool = False, **config: Any) -> None:
        super().__init__(node, **config)
        self._spawns: dict[Ref, _SpawnRequest] = {}
        self.functions = FunctionRegistry(allow_import=allow_import)
        #: The group leader of the processes we spawn on other nodes.
        self.group_leader: Pid | None = None

    def _refused(self, node: Atom, ctl: tuple[Any, ...]) -> None:
        super()._refused(node, ctl)
        if ctl[0] == SPAWN_REQUEST:  # the peer does not speak SPAWN (a C node)
            req = self._spawns.pop(ctl[1], None)
            if req is not None and req.reply != "no" and not req.abandoned:
                self.node.deliver_remote(req.caller, SpawnReply(ctl[1], NOTSUP))

    def _waits_for(self, node: Atom) -> bool:
        return super()._waits_for(node) or any(r.node == node for r in self._spawns.values())

    def _forget(self, node: Atom) -> None:
        super()._forget(node)
        for ref, req in list(self._spawns.items()):
            if req.node == node:
                del self._spawns[ref]
                if req.reply != "no" and not req.abandoned:
                    self.node.deliver_remote(req.caller, SpawnReply(ref, NOCONNECTION))

    # --- remote spawn: our requests -----------------------------------------------------

    def spawn_request(
        self,
        caller: Pid,
        node: Atom,
        module: Atom,
        function: Atom,
        args: list[Any],
        *,
        link: bool = False,
        monitor: bool = False,
        reply: str = "yes",
    ) -> Ref:
        """Ask `node` to spawn `module:function(*args)` for `caller`; the answer arrives
        as `SpawnReply(ref, pid | error)` (only errors with `reply="error_only"`, nothing
        with `reply="no"`). With `monitor`, the returned ref is also the monitor's ref.
        The ref is made by the caller, so `receive(..., since=ref)` waits cheaply."""
        ref = self.node.make_ref()
        opts = [LINK_OPT] if link else []
        if monitor:
            opts.append(MONITOR_OPT)
        gl = self.group_leader or caller
        mfa = (module, function, len(args))
        self._spawns[ref] = _SpawnRequest(caller, node, reply)
        try:
            sent = self._emit(node, (SPAWN_REQUEST, ref, caller, gl, mfa, opts), list(args))
        except BaseException:
            del self._spawns[ref]
            raise
        if not sent and ref in self._spawns:
            del self._spawns[ref]
            if reply != "no":
                self.node.deliver_remote(caller, SpawnReply(ref, NOCONNECTION))
        return ref

    def abandon_spawn(self, ref: Ref) -> bool:
        """Give up on a spawn request whose reply has not arrived (True), as
        `spawn_request_abandon/1`: a process it creates gets exit signal `abandoned`."""
        req = self._spawns.get(ref)
        if req is None or req.abandoned:
            return False
        req.abandoned = True
        return True

    def _spawn_reply(self, peer: Atom, ctl: tuple[Any, ...]) -> None:
        _, req_id, to, flags, result = ctl[:5]
        req = self._spawns.pop(req_id, None)
        if type(result) is not Pid:
            if req is not None and not req.abandoned and req.reply != "no":
                self.node.deliver_remote(to, SpawnReply(req_id, result))
            return
        wanted = req is not None and not req.abandoned and req.caller == to
        if wanted and flags & 1 and not self.node.remote_link(to, result):
            wanted = False  # the caller died meanwhile
        if not wanted:
            # Nobody wants the new process any more: undo what the peer set up for us.
            # An abandoned request's process gets exit signal `abandoned`
            # (spawn_request_abandon/1); a dead caller's link breaks with `noproc`.
            abandoned = req is not None and req.abandoned
            if flags & 2:
                self._emit(peer, (DEMONITOR_P, to, result, req_id))
            if flags & 1:
                self._emit(peer, (PAYLOAD_EXIT, to, result), ABANDONED if abandoned else NOPROC)
            elif abandoned:
                self._emit(peer, (PAYLOAD_EXIT2, to, result), ABANDONED)
            return
        if flags & 2:
            self.node.expect_remote_down(to, req_id, result)
        assert req is not None
        if req.reply == "yes":
            self.node.deliver_remote(to, SpawnReply(req_id, result))

    # --- remote spawn: requests from peers ----------------------------------------------

    def _spawn_request(self, peer: Atom, ctl: tuple[Any, ...], args: Any) -> None:
        _, req_id, frm, _gl, mfa, opts = ctl[:6]
        module, fn_name, _arity = mfa
        link = LINK_OPT in opts
        monitor = any(
            o == MONITOR_OPT or (type(o) is tuple and len(o) == 2 and o[0] == MONITOR_OPT)
            for o in opts
        )
        args_ = arglist(args)
        try:
            if args_ is None:
                raise ValueError(f"arguments are not a proper list: {brief(args, 100)}")
            body, body_args = self.spawn_body(module, fn_name, args_)
            pid = self.node.spawn(body, *body_args)
        except Exception as e:
            log.info(
                "beamlet.distribution: spawn request %s:%s from %s refused: %s",
                *(module, fn_name, peer, e),
            )
            self._emit(peer, (SPAWN_REPLY, req_id, frm, 0, BADARG))
            return
        flags = 0
        if link and self.node.remote_link(pid, frm):
            flags |= 1
        if monitor and self.node.remote_monitored(pid, frm, req_id) is not None:
            flags |= 2
        self._emit(peer, (SPAWN_REPLY, req_id, frm, flags, pid))

    def spawn_body(
        self, module: Any, function: Any, args: list[Any]
    ) -> tuple[Callable[..., Coroutine[Any, Any, Any]], list[Any]]:
        """The coroutine function and arguments a spawn of `module:function(*args)` runs:
        erpc's helpers, a registered function, or one that exits with `undef`."""
        if module == ERPC:
            if function == EXECUTE_CALL and len(args) == 4:
                return self._erpc_call, args
            if function == EXECUTE_CAST and len(args) == 3:
                return self.erpc_cast, args
        fn = self.functions.lookup(module, function)
        if fn is None:
            return undef, [module, function, args]
        return runner(fn), [args]

    async def _erpc_call(self, res: Any, module: Any, fn: Any, args: Any) -> None:
        # erpc:execute_call/4: the result travels as the exit reason (§6.1).
        await self.erpc_call(res, module, fn, args, wire=True)

    async def erpc_call_local(self, res: Any, module: Any, fn: Any, args: Any) -> None:
        """`erpc_call` for a caller on this node: results need not be encodable."""
        await self.erpc_call(res, module, fn, args, wire=False)

    async def erpc_call(self, res: Any, module: Any, fn: Any, args: Any, *, wire: bool) -> None:
        """Run `module:fn(*args)` and exit with erpc's `{Res, return, V}`,
        `{Res, exit, R}` or `{Res, error, E, Stack}`. With `wire`, the result must be
        encodable (for a caller on another node): if it is not, that is the error."""
        args_ = arglist(args)
        try:
            if args_ is None:
                raise Undefined
            value = await self.functions.run(module, fn, args_)
        except Undefined:
            raise ProcessExit((res, ERROR, UNDEF, [(module, fn, args, [])])) from None
        except ProcessExit as e:
            node = getattr(res, "node", None)
            reason = wire_reason(e.reason, self._options_for(node)) if wire else e.reason
            raise ProcessExit((res, EXIT_ATOM, reason)) from None
        except ErlangError as e:
            raise ProcessExit((res, ERROR, e.reason, [])) from None
        except Exception as e:
            stack = python_stack(tb_frames(e.__traceback__))
            err = python_error(e) if wire else e
            raise ProcessExit((res, ERROR, err, stack)) from None
        if wire:
            try:
                self.check_encodable(getattr(res, "node", None), value)
            except etf.EncodeError as e:
                raise ProcessExit((res, ERROR, python_error(e), [])) from None
        raise ProcessExit((res, RETURN, value))

    async def erpc_cast(self, module: Any, fn: Any, args: Any) -> None:
        # erpc:execute_cast/3: no reply; a failure is logged like any crash.
        args_ = arglist(args)
        try:
            if args_ is None:
                raise Undefined
            await self.functions.run(module, fn, args_)
        except Undefined:
            raise ProcessExit((UNDEF, [(module, fn, args, [])])) from None


async def undef(module: Any, fn: Any, args: Any) -> None:
    """The body of a spawn of a function nobody registered: exit with `undef`."""
    raise ProcessExit((UNDEF, [(module, fn, args, [])]))
