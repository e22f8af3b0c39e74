"""Servers for the GenServer interop tests (test_genserver_interop.py).

* `KV_ERL` — an Erlang gen_server module `kv`, compiled and loaded on a real peer at test
  time by `load_erlang_module`; `start_kv` starts one with `gen_server:start({local, N}, ...)`.
* `PyServer` — a Python GenServer with the same protocol, registered by name on a beamlet
  node and called from Erlang, Elixir or another beamlet node.

Both speak the same requests (atoms are `Atom` in Python, keys and values any term):

    call {put, K, V} -> ok                  call {get, K} -> V | undefined
    call whoami -> {Node, Pid, From}        call {hold, Tag} -> no reply until released;
                                                 the owner gets {holding, Tag, From}
    call {exit, Reason} -> exit(Reason)     call {crash, X} -> crashes (Erlang: X + 1 with an
                                                 atom X, badarith; Python: ValueError(X))
    cast {put, K, V} -> the owner gets {cast_arrived, K, V}
    cast {release, Tag, Reply, Notify} -> the held call gets Reply, then Notify ! released

`released` goes to `Notify` from the server *after* the late reply, over the same
connection, so when it arrives the late reply has already been handled by the caller's
node: the caller's mailbox can be inspected without waiting.
"""

from __future__ import annotations

from typing import Any

from dist_nodes import Peer

import beamlet
from beamlet import UNDEFINED, Atom, Pid, ProcessExit
from beamlet.behaviours.gen_server import From, GenServer, NoReply, Reply

PUT, GET, WHOAMI, HOLD, EXIT, CRASH = (
    Atom(a) for a in ("put", "get", "whoami", "hold", "exit", "crash")
)
RELEASE, RELEASED, HOLDING, CAST_ARRIVED = (
    Atom(a) for a in ("release", "released", "holding", "cast_arrived")
)
OK = Atom("ok")

KV_ERL = r"""
-module(kv).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

init(Owner) -> {ok, #{owner => Owner, data => #{}, held => #{}}}.

handle_call({put, K, V}, _From, S = #{data := D}) ->
    {reply, ok, S#{data := D#{K => V}}};
handle_call({get, K}, _From, S = #{data := D}) ->
    {reply, maps:get(K, D, undefined), S};
handle_call(whoami, From, S) ->
    {reply, {node(), self(), From}, S};
handle_call({hold, Tag}, From, S = #{owner := O, held := H}) ->
    O ! {holding, Tag, From},
    {noreply, S#{held := H#{Tag => From}}};
handle_call({exit, Reason}, _From, _S) ->
    exit(Reason);
handle_call({crash, X}, _From, S) ->
    {reply, X + 1, S}.

handle_cast({put, K, V}, S = #{owner := O, data := D}) ->
    O ! {cast_arrived, K, V},
    {noreply, S#{data := D#{K => V}}};
handle_cast({release, Tag, Reply, Notify}, S = #{held := H}) ->
    gen_server:reply(maps:get(Tag, H), Reply),
    Notify ! released,
    {noreply, S#{held := maps:remove(Tag, H)}}.

handle_info(_Msg, S) -> {noreply, S}.
"""


async def load_erlang_module(peer: Peer, source: str, module: str) -> Atom:
    """Compile `source` (the text of `module`.erl) on `peer` and load it there."""
    loaded: Atom = await peer.eval(
        """
        File = binary_to_list(Name) ++ ".erl",
        ok = file:write_file(File, Src),
        {ok, Mod, Bin} = compile:file(File, [binary, return_errors]),
        {module, Mod} = code:load_binary(Mod, File, Bin),
        Mod.
        """,
        Name=module,
        Src=source,
    )
    return loaded


async def start_kv(peer: Peer, name: str, owner: Pid) -> Pid:
    """`gen_server:start({local, name}, kv, Owner, [])` on `peer`; the pid."""
    pid: Pid = await peer.eval(
        "{ok, P} = gen_server:start({local, binary_to_atom(Name)}, kv, Owner, []), P.",
        Name=name,
        Owner=owner,
    )
    return pid


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class PyServer(GenServer[dict[str, Any]]):
    """The Python twin of `kv` (see the module docstring). `owner` may be None."""

    async def init(self, owner: Pid | None) -> dict[str, Any]:
        return {"owner": owner, "data": {}, "held": {}}

    def _notify(self, state: dict[str, Any], msg: Any) -> None:
        if state["owner"] is not None:
            beamlet.send(state["owner"], msg)

    async def handle_call(self, request: Any, from_: From, state: dict[str, Any]) -> Any:
        op = request[0] if type(request) is tuple else request
        if op == PUT:
            _, k, v = request
            state["data"][k] = v
            return Reply(OK, state)
        if op == GET:
            return Reply(state["data"].get(request[1], UNDEFINED), state)
        if op == WHOAMI:
            return Reply((beamlet.node_name(), beamlet.self(), (from_.pid, from_.tag)), state)
        if op == HOLD:
            state["held"][request[1]] = from_
            self._notify(state, (HOLDING, request[1], (from_.pid, from_.tag)))
            return NoReply(state)
        if op == EXIT:
            raise ProcessExit(request[1])
        if op == CRASH:
            raise ValueError(_text(request[1]))
        raise AssertionError(f"unexpected call {request!r}")

    async def handle_cast(self, request: Any, state: dict[str, Any]) -> Any:
        op = request[0]
        if op == PUT:
            _, k, v = request
            state["data"][k] = v
            self._notify(state, (CAST_ARRIVED, k, v))
        elif op == RELEASE:
            _, tag, value, notify = request
            GenServer.reply(state["held"].pop(tag), value)
            beamlet.send(notify, RELEASED)
        return NoReply(state)
