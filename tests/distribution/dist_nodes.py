"""Helpers for the distribution tests (and any other test that needs distributed nodes:
`import dist_nodes`; `tests/distribution` is on pytest's `pythonpath`): distributed
beamlet nodes and real Erlang/Elixir peers, each test on its own private EPMD port.
A module of its own, not `conftest`: two test directories' conftest modules would both
be imported as `conftest`. tests/distribution/conftest.py re-exports the fixtures.

* fixture `node` — overrides the plugin's: a *distributed* node `pyN@127.0.0.1` on the
  test's private `epmd_port` (its built-in EPMD serves the port), so `async def` tests
  run as processes of a distributed node. `@pytest.mark.dist(ticktime=4, ...)` passes
  options to `start_distribution`.
* `beamlet_node(epmd_port)` — one more distributed beamlet node in the same loop.
* `erl_peer(epmd_port)` / `elixir_peer(epmd_port)` — a real node (`erl -noshell`,
  `elixir --name`) registered with that EPMD, running a control process `beamlet_ctl`
  that evaluates source text sent by `Peer.eval` in a fresh process and replies with the
  value; it is always killed (SIGKILL) when the context ends.
* `require_erl()` / `require_elixir()` — skip when the tool is missing, fail when
  `CI=true`.

No helper sleeps to wait for something: peers announce readiness on stdout, and replies
travel as messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

import beamlet
from beamlet import ANY, Atom, Node, Pid, Ref
from beamlet.distribution.distribution import Distribution, start_distribution

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
COOKIE = "beamlet_dist_test"
OK = Atom("ok")

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A node-name part no other test (or concurrent test run) uses."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} not found, and CI=true forbids skipping interop tests")
        pytest.skip(f"{tool} not installed")
    return path


def require_erl() -> str:
    return _require("erl")


def require_elixir() -> str:
    _require("erl")
    return _require("elixir")


# --------------------------------------------------------------------------- beamlet nodes


class DistNode(Node):
    """A node that becomes distributed when it starts (and stops distribution first)."""

    def __init__(self, name: str, *, epmd_port: int, cookie: str = COOKIE, **options: Any):
        super().__init__(name)
        self.epmd_port = epmd_port
        self.cookie = cookie
        self.options = {"listen_host": LOOPBACK, **options}
        self.distribution: Distribution | None = None

    async def start(self) -> DistNode:
        await super().start()
        if self.distribution is None:
            self.distribution = await start_distribution(
                self, cookie=self.cookie, epmd_port=self.epmd_port, **self.options
            )
        return self

    async def stop(self, timeout: float = 5.0) -> None:
        if self.distribution is not None:
            await self.distribution.stop()
            self.distribution = None
        await super().stop(timeout)

    @property
    def d(self) -> Distribution:
        assert self.distribution is not None
        return self.distribution


@pytest.fixture
def epmd_port() -> int:
    """A private EPMD port for this test."""
    return free_port()


@pytest.fixture
def node(request: pytest.FixtureRequest, epmd_port: int) -> Iterator[DistNode]:
    """The test's node, distributed as `pyN@127.0.0.1` (the plugin starts it)."""
    marker = request.node.get_closest_marker("dist")
    options = dict(marker.kwargs) if marker is not None else {}
    yield DistNode(f"{unique('py')}@{LOOPBACK}", epmd_port=epmd_port, **options)


@contextlib.asynccontextmanager
async def beamlet_node(
    epmd_port: int, *, alive: str | None = None, **options: Any
) -> AsyncIterator[DistNode]:
    """Another distributed beamlet node in this loop, stopped at the end."""
    n = DistNode(f"{alive or unique('pyx')}@{LOOPBACK}", epmd_port=epmd_port, **options)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def on(node: Node, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run `fn(*args)` as a process of `node` and return its result."""
    result: T = await node.run(fn, *args)
    return result


async def within(seconds: float, aw: Coroutine[Any, Any, T]) -> T:
    async with asyncio.timeout(seconds):
        return await aw


# --------------------------------------------------------------------------- real peers

# The control loop: {eval, From, Tag, Src, Bindings} -> From ! {Tag, {ok, V} | {error, ...}}.
ERL_CTL = r"""
Eval = fun(Src, Bs) ->
    try
        {ok, Toks, _} = erl_scan:string(unicode:characters_to_list(Src)),
        {ok, Exprs} = erl_parse:parse_exprs(Toks),
        B0 = lists:foldl(fun({K, V}, Acc) -> erl_eval:add_binding(K, V, Acc) end,
                         erl_eval:new_bindings(), Bs),
        {value, V, _} = erl_eval:exprs(Exprs, B0),
        {ok, V}
    catch C:R:St -> {error, {C, R, St}}
    end
end,
Ctl = fun Loop() ->
    receive
        {eval, From, Tag, Src, Bs} ->
            spawn(fun() -> From ! {Tag, Eval(Src, Bs)} end),
            Loop();
        _ -> Loop()
    end
end,
register(beamlet_ctl, spawn(Ctl)),
io:format("ready~n"),
"""

ELIXIR_CTL = r"""
defmodule BeamletCtl do
  def loop do
    receive do
      {:eval, from, tag, src, bs} ->
        spawn(fn ->
          r =
            try do
              {v, _} = Code.eval_string(src, bs)
              {:ok, v}
            catch
              c, e -> {:error, {c, e, __STACKTRACE__}}
            end
          send(from, {tag, r})
        end)
        loop()
      _ -> loop()
    end
  end
end
Process.register(spawn(&BeamletCtl.loop/0), :beamlet_ctl)
IO.puts("ready")
"""


class ErlangError(AssertionError):
    """Source evaluated on a peer raised."""


@dataclass
class Peer:
    """A real Erlang or Elixir node driven through its `beamlet_ctl` process."""

    name: Atom
    proc: asyncio.subprocess.Process
    output: list[bytes] = field(default_factory=list)
    lines: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")

    async def eval(self, src: str, *, timeout: float = 10.0, **bindings: Any) -> Any:
        """Evaluate `src` (Erlang expressions ending in '.', or Elixir code) in a fresh
        process on the peer, from inside a beamlet process; keyword arguments become
        variables. Returns the value, or raises `ErlangError`."""
        tag: Ref = beamlet.make_ref()
        bs = [(Atom(k), v) for k, v in bindings.items()]
        beamlet.send((Atom("beamlet_ctl"), self.name), (Atom("eval"), beamlet.self(), tag, src, bs))
        try:
            _, result = await beamlet.receive((tag, ANY), timeout=timeout, since=tag)
        except TimeoutError:
            log = self.log()
            raise ErlangError(f"no answer to {src!r} from {self.name}; log:\n{log}") from None
        if type(result) is tuple and len(result) == 2 and result[0] == OK:
            return result[1]
        raise ErlangError(f"{src!r} on {self.name} raised {result!r}")

    async def expect_line(self, text: str, timeout: float = 15.0) -> str:
        """Wait for the next stdout line containing `text` (earlier lines are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.lines.get()).decode(errors="replace")
                if text in line:
                    return line

    def write_line(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def _peer(argv: list[str], name: str, epmd_port: int, *, stdin: bool) -> AsyncIterator[Peer]:
    env = dict(os.environ, ERL_EPMD_PORT=str(epmd_port), ERL_CRASH_DUMP_SECONDS="0")
    env.pop("ERL_ROOTDIR", None)
    with tempfile.TemporaryDirectory(prefix="beamlet-peer-") as cwd:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
        peer = Peer(Atom(name), proc)
        assert proc.stdout is not None
        stdout = proc.stdout

        async def pump() -> None:
            while line := await stdout.readline():
                peer.output.append(line)
                peer.lines.put_nowait(line)

        pumper = asyncio.ensure_future(pump())
        try:
            try:
                await peer.expect_line("ready", timeout=30)
            except TimeoutError:
                raise AssertionError(f"{name} did not start; output:\n{peer.log()}") from None
            yield peer
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            async with asyncio.timeout(10):
                await proc.wait()
                await pumper


def _kernel_args(ticktime: float | None) -> list[str]:
    args = ["-start_epmd", "false"]
    if ticktime is not None:
        args += ["-kernel", "net_ticktime", str(int(ticktime))]
    return args


@contextlib.asynccontextmanager
async def erl_peer(
    epmd_port: int,
    *,
    alive: str | None = None,
    cookie: str = COOKIE,
    ticktime: float | None = None,
    then: str = "ok.",
    stdin: bool = False,
    erl: str | None = None,
) -> AsyncIterator[Peer]:
    """A real `erl` node `alive@127.0.0.1`; `then` is Erlang code its start-up runs after
    printing `ready` (it may block, e.g. reading stdin when `stdin=True`); `erl` is the
    executable (default: the one on PATH)."""
    erl = erl or require_erl()
    name = f"{alive or unique('erl')}@{LOOPBACK}"
    argv = [erl, "-noshell", "-name", name, "-setcookie", cookie, *_kernel_args(ticktime),
            "-eval", ERL_CTL + then]  # fmt: skip
    async with _peer(argv, name, epmd_port, stdin=stdin) as peer:
        yield peer


@contextlib.asynccontextmanager
async def elixir_peer(
    epmd_port: int, *, alive: str | None = None, cookie: str = COOKIE
) -> AsyncIterator[Peer]:
    """A real Elixir node (`elixir --name`), with the same control process."""
    elixir = require_elixir()
    name = f"{alive or unique('ex')}@{LOOPBACK}"
    argv = [elixir, "--name", name, "--cookie", cookie, "--erl", " ".join(_kernel_args(None)),
            "-e", ELIXIR_CTL + "\nProcess.sleep(:infinity)\n"]  # fmt: skip
    async with _peer(argv, name, epmd_port, stdin=False) as peer:
        yield peer


def is_pid(x: Any) -> bool:
    return type(x) is Pid


def wire(pid: Pid) -> Pid:
    """`pid` as another node sees it (decoded from the wire).

    Several nodes share this OS process in these tests, and a pid made by `spawn` keeps a
    shortcut to its process object that the kernel follows even from another node; a
    pid handed from one node to another must lose it, as it would on the wire."""
    return Pid(pid.node, pid.id, pid.serial, pid.creation)
