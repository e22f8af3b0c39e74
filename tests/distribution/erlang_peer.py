"""A real Erlang node driven from a test: start it, evaluate expressions in it, stop it.

The node runs `erl -noshell` with a control process registered as `beamlet_ctl`. A
beamlet process sends it `{From, Tag, Source, Bindings}`; it evaluates `Source` (Erlang
expressions, text) in a fresh Erlang process with `Bindings` (`[{'Var', Value}]`) and
answers `{Tag, {ok, Value}}` or `{Tag, {Class, Reason, Stack}}`. Tests therefore wait on
replies and on pg/monitor events, never on sleeps.

Every node gets a private EPMD port (`ERL_EPMD_PORT`, `-start_epmd false`), a bounded
start-up, and is killed when its context manager exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

import beamlet
from beamlet import Atom, Pid, Ref

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
OK = Atom("ok")

# The control loop, as one -eval argument. Each request runs in its own process.
CTL = r"""
Eval = fun(Src, Bs) ->
    try
        {ok, Toks, _} = erl_scan:string(unicode:characters_to_list(Src)),
        {ok, Exprs} = erl_parse:parse_exprs(Toks),
        B0 = lists:foldl(fun({K, V}, Acc) -> erl_eval:add_binding(K, V, Acc) end,
                         erl_eval:new_bindings(), Bs),
        {value, V, _} = erl_eval:exprs(Exprs, B0),
        {ok, V}
    catch C:R:St -> {C, R, St}
    end
end,
Ctl = fun Loop() ->
    receive
        {From, Tag, Src, Bs} ->
            spawn(fun() -> From ! {Tag, Eval(Src, Bs)} end),
            Loop();
        _ -> Loop()
    end
end,
register(beamlet_ctl, spawn(Ctl)),
io:format("ready ~s ~s~n", [erlang:system_info(otp_release), erlang:system_info(version)]).
"""


class ErlangError(AssertionError):
    """An expression evaluated in the Erlang node raised."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def require_erl(path: str | None = None) -> str:
    """The `erl` to use; skip (or fail under CI=true) when it is missing."""
    erl = path or shutil.which("erl")
    if erl is None or not os.access(erl, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("erl not found, and CI=true forbids skipping interop tests")
        pytest.skip("erl not installed")
    return erl


@dataclass
class ErlNode:
    name: Atom
    proc: asyncio.subprocess.Process
    otp_release: str
    erts: str
    output: list[bytes] = field(default_factory=list)

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")


@contextlib.asynccontextmanager
async def erl_node(
    alive: str,
    epmd_port: int,
    *,
    cookie: str,
    erl: str | None = None,
    args: tuple[str, ...] = (),
    prelude: str = "",
    start_timeout: float = 30.0,
) -> AsyncIterator[ErlNode]:
    """`erl -name alive@127.0.0.1` registered with the EPMD on `epmd_port`, with the
    `beamlet_ctl` control process and the default `pg` scope running. `prelude` is
    Erlang code (ending in ',') run before the node says it is ready; whatever it prints
    is in `ErlNode.output`."""
    exe = require_erl(erl)
    env = dict(os.environ, ERL_EPMD_PORT=str(epmd_port))
    env.pop("ERL_ROOTDIR", None)
    name = f"{alive}@{LOOPBACK}"
    proc = await asyncio.create_subprocess_exec(
        exe, "-noshell", "-start_epmd", "false", "-name", name, "-setcookie", cookie,
        "-kernel", "start_pg", "true", *args, "-eval", prelude + CTL,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    out: list[bytes] = []
    drainer: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(start_timeout):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"erl exited early: {b''.join(out)!r}")
                out.append(line)
                if line.startswith(b"ready "):
                    break
        _, release, erts = line.decode().split()
        drainer = asyncio.ensure_future(_drain(proc.stdout, out))
        yield ErlNode(Atom(name), proc, release, erts, out)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        async with asyncio.timeout(10):
            await proc.wait()
            if drainer is not None:
                await drainer


async def _drain(stream: asyncio.StreamReader, out: list[bytes]) -> None:
    while line := await stream.readline():
        out.append(line)


async def erl_eval(node: Atom | str, src: str, *, timeout: float = 15.0, **bindings: Any) -> Any:
    """Evaluate Erlang expressions `src` (ending in '.') on `node`, from inside a beamlet
    process; keyword arguments become Erlang variables. Returns the value or raises
    `ErlangError`."""
    ref: Ref = beamlet.make_ref()
    bs = [(Atom(k), v) for k, v in bindings.items()]
    beamlet.send((Atom("beamlet_ctl"), Atom(node)), (beamlet.self(), ref, src, bs))
    msg = await beamlet.receive(
        lambda m: type(m) is tuple and len(m) == 2 and m[0] == ref, timeout=timeout
    )
    result = msg[1]
    if type(result) is tuple and len(result) == 2 and result[0] == OK:
        return result[1]
    raise ErlangError(f"{src!r} on {node} raised {result!r}")


def wait_members_src(group: str, pred: str, timeout_ms: int = 10_000) -> str:
    """Erlang source that waits (via pg:monitor/1, no polling) until `pred(Members)`
    holds for `group`, and returns the members (or `{timeout, Members}`)."""
    return f"""
        G = {group},
        Pred = {pred},
        {{Ref, M0}} = pg:monitor(G),
        Wait = fun W(M) ->
            case Pred(M) of
                true -> M;
                false ->
                    receive
                        {{Ref, join, G, Ps}} -> W(Ps ++ M);
                        {{Ref, leave, G, Ps}} -> W(M -- Ps)
                    after {timeout_ms} -> {{timeout, M}}
                    end
            end
        end,
        Res = Wait(M0),
        pg:demonitor(Ref),
        Res.
    """


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """asyncio.run with an overall bound; fails if an error reached the loop's handler."""
    errors: list[dict[str, Any]] = []

    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))
        async with asyncio.timeout(timeout):
            return await coro

    result = asyncio.run(main())
    assert errors == [], errors
    return result


def is_pid(x: Any) -> bool:
    return type(x) is Pid
