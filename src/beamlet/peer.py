"""Peer nodes: start a beamlet or Erlang node as a child OS process (OTP's `peer`).

`await peer.start()` runs a new beamlet node in a child Python process, waits until it
is up, connects this node to it and returns a `Peer` (its `node` name, the pid of the
local process that controls it, the OS pid). The child can then be used like any other
node: `beamlet.remote.spawn(peer.node, "pkg.mod:fn", args)`, `rpc.call`, messages to
`(name, peer.node)`, links and monitors.

A peer dies with its parent, even when the parent is killed with SIGKILL: the child
reads a pipe from the parent in a thread (its stdin) and halts when it closes, and on
Linux it also asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`).
It also dies with its controlling process: `start_link` links that process to the
caller, so a peer started by a supervised worker goes away with the worker.

`start_erl` starts a real `erl` node the same way (when Erlang is installed).

The caller's node must be distributed (`beamlet.run(main, name="a@127.0.0.1")`); the
peer uses the same EPMD port and cookie unless told otherwise, and the host part of
the caller's name. Peers are trusted children: by default they import any module named
in a remote spawn or rpc (`allow_import=True`).

Examples:
    >>> from beamlet import peer
    >>> from beamlet.distribution import rpc
    >>> async def main() -> bool:
    ...     p = await peer.start()
    ...     pid = await rpc.call(p.node, "os", "getpid", [])   # runs on the peer
    ...     await peer.stop(p)
    ...     return pid == p.os_pid
    >>> beamlet.run(main, name="peer_doc@127.0.0.1", cookie="secret")
    True
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import beamlet
from beamlet import Atom, Down, Pid, Ref
from beamlet._core import NodeVar
from beamlet.behaviours.child_spec import StartError
from beamlet.distribution.api import connect, get_distribution

__all__ = [
    "Peer",
    "PeerStartError",
    "StartOptions",
    "start",
    "start_erl",
    "start_link",
    "stop",
    "which_peers",
]

#: The line a starting peer prints on its stdout once its node is up.
READY = b"beamlet-peer ready "
_PEERS: NodeVar[dict[Atom, Peer]] = NodeVar("beamlet.peer.peers", dict)
_STOP = Atom("$peer_stop")
_EXITED = Atom("exited")
_READY = Atom("ready")
_OK = Atom("ok")
_EXIT_STATUS = Atom("exit_status")
_PR_SET_PDEATHSIG = 1

# Runs in the child before `erl` replaces it: die with the parent, then exec.
_TRAMPOLINE = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""

# Erlang side of the contract: halt when stdin closes, then say we are up.
_ERL_MAIN = (
    "spawn(fun() -> W = fun L() -> case io:get_line('') of eof -> erlang:halt(0); "
    "{error, _} -> erlang:halt(0); _ -> L() end end, W() end), "
    'io:format("beamlet-peer ready ~s~n", [node()]).'
)


class PeerStartError(StartError):
    """A peer did not start: it exited, did not report within the timeout, or could not
    be connected to. `.reason` says which; `.output` holds what it printed, if any."""

    def __init__(self, reason: Any, output: str = "") -> None:
        super().__init__(reason)
        self.output = output


@dataclass(frozen=True, slots=True)
class Peer:
    """A started peer node: its `node` name, the local controlling process `pid` (it
    exits when the peer's OS process ends, with `(exit_status, status)`; negative for
    a signal), and the OS process id `os_pid`.

    Examples:
        >>> from beamlet import peer
        >>> async def main() -> None:
        ...     p = await peer.start(name="peer_class_w")
        ...     print(p.node, beamlet.is_alive(p.pid), p.os_pid > 0)
        ...     await peer.stop(p)
        ...     print(beamlet.is_alive(p.pid))
        >>> beamlet.run(main, name="peer_class@127.0.0.1", cookie="secret")
        peer_class_w@127.0.0.1 True True
        False
    """

    node: Atom
    pid: Pid
    os_pid: int


def _peers() -> dict[Atom, Peer]:
    return _PEERS.get(beamlet.current_node())


def which_peers() -> list[Peer]:
    """The peers started from this node that are still running.

    Examples:
        >>> from beamlet import peer
        >>> async def main() -> None:
        ...     p = await peer.start(name="peer_which_w")
        ...     print([q.node for q in peer.which_peers()])
        ...     await peer.stop(p)
        ...     print(peer.which_peers())
        >>> beamlet.run(main, name="peer_which@127.0.0.1", cookie="secret")
        [Atom('peer_which_w@127.0.0.1')]
        []
    """
    return [p for p in _peers().values() if beamlet.is_alive(p.pid)]


def random_name(prefix: str = "peer") -> str:
    """A fresh node-name part: `prefix-XXXXXX-OSPID` (as OTP's `peer:random_name/1`)."""
    return f"{prefix}-{secrets.token_hex(3)}-{os.getpid()}"


def _node_name(name: str | None, host: str | None, prefix: str) -> str:
    if name is not None and "@" in name:
        return name
    if host is None:
        host = str(beamlet.node_name()).partition("@")[2]
    return f"{name or random_name(prefix)}@{host}"


def _child_env(
    env: dict[str, str] | None, cookie: str, epmd_port: int | None, *, inherit_path: bool = True
) -> dict[str, str]:
    merged = dict(os.environ)
    if inherit_path:
        # The child imports what the parent can: the parent's path first (spawns name
        # functions by import path, so both sides must find the same modules).
        path = [os.path.abspath(p or os.curdir) for p in sys.path]
        path = [p for p in dict.fromkeys(path) if os.path.isdir(p)]
        if merged.get("PYTHONPATH"):
            path.append(merged["PYTHONPATH"])
        merged["PYTHONPATH"] = os.pathsep.join(path)
    merged["ERLANG_COOKIE"] = cookie  # in the environment, not on a command line
    if epmd_port is not None:
        merged["ERL_EPMD_PORT"] = str(epmd_port)
    if env:
        merged.update(env)
    return merged


class StartOptions(TypedDict, total=False):
    """The keyword options of `start` and `start_link`; `start` describes them (the
    defaults: `host=None`, `args=()`, `python=None`, `env=None`, `cookie=None`,
    `hidden=True`, `allow_import=True`, `connect=True`, `timeout=15.0`).

    Examples:
        >>> from beamlet import peer
        >>> opts: peer.StartOptions = {"hidden": False, "timeout": 30.0}
        >>> sorted(opts)   # then: await peer.start("w2", **opts)
        ['hidden', 'timeout']
    """

    host: str | None
    args: Sequence[str]
    python: str | None
    env: dict[str, str] | None
    cookie: str | None
    hidden: bool
    allow_import: bool
    connect: bool
    timeout: float


async def start(name: str | None = None, **options: Unpack[StartOptions]) -> Peer:
    """Start a beamlet node in a child Python process and return its `Peer`.

    `name` is the node's name part (or a full `name@host`; default a random one),
    `host` its host part (default: this node's). `python` is the interpreter (default:
    this one, which also gets this process's `sys.path`; another one only what `env`
    says), `args` extra interpreter arguments (`["-X", "dev"]`), `env` extra
    environment variables. `cookie` defaults to this node's; `hidden=False` makes a
    visible node. With `connect` (the default) this node is connected to the peer
    before `start` returns. Raises `PeerStartError` if the peer is not up within
    `timeout` seconds (it is then killed).

    The peer is not linked to the caller (see `start_link`); it still dies with this
    OS process.

    Examples:
        >>> from beamlet import peer
        >>> from beamlet.distribution import rpc
        >>> async def main() -> None:
        ...     p = await peer.start(name="peer_start_w", env={"APP_MODE": "docs"})
        ...     print(p.node, await rpc.call(p.node, "os", "getenv", ["APP_MODE"]))
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="peer_start@127.0.0.1", cookie="secret")
        peer_start_w@127.0.0.1 docs
    """
    return await _start_beamlet(name, link=False, **options)


async def start_link(name: str | None = None, **options: Unpack[StartOptions]) -> Peer:
    """As `start`, with the controlling process linked to the caller: the peer goes
    down when the caller exits, and the caller gets the exit `(exit_status, S)` when
    the peer's OS process ends (OTP's `peer:start_link/1`).

    Examples:
        >>> import os, signal
        >>> from beamlet import Exit, peer
        >>> async def main() -> None:
        ...     beamlet.process_flag(trap_exit=True)
        ...     p = await peer.start_link(name="peer_link_w")
        ...     os.kill(p.os_pid, signal.SIGKILL)    # the peer's OS process ends
        ...     exit = await beamlet.receive(Exit, timeout=5)
        ...     print(exit.pid == p.pid, exit.reason, await peer.stop(p))  # already gone
        >>> beamlet.run(main, name="peer_link@127.0.0.1", cookie="secret")
        True (Atom('exit_status'), -9) False
    """
    return await _start_beamlet(name, link=True, **options)


async def _start_beamlet(
    name: str | None,
    *,
    link: bool,
    host: str | None = None,
    args: Sequence[str] = (),
    python: str | None = None,
    env: dict[str, str] | None = None,
    cookie: str | None = None,
    hidden: bool = True,
    allow_import: bool = True,
    connect: bool = True,
    timeout: float = 15.0,
) -> Peer:
    d = get_distribution()
    node = _node_name(name, host, "peer")
    # Our own interpreter gets our sys.path, so it can skip `site` (a faster start).
    same = python is None
    interpreter = [sys.executable, "-S"] if same else [str(python)]
    argv = [
        *interpreter,
        *args,
        "-m",
        "beamlet.peer",
        "--name",
        node,
        "--ppid",
        str(os.getpid()),
    ]
    if not hidden:
        argv.append("--visible")
    if allow_import:
        argv.append("--allow-import")
    if d.epmd_port is not None:
        argv += ["--epmd-port", str(d.epmd_port)]
    return await _launch(
        argv,
        _child_env(env, cookie or d.cookie, d.epmd_port, inherit_path=same),
        Atom(node),
        connect=connect,
        timeout=timeout,
        link=link,
    )


async def start_erl(
    name: str | None = None,
    *,
    host: str | None = None,
    erl: str | None = None,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cookie: str | None = None,
    hidden: bool = False,
    connect: bool = True,
    timeout: float = 30.0,
    link: bool = False,
) -> Peer:
    """Start a real Erlang node (`erl -noshell -name ...`) as a child OS process, tied
    to this one the same way (it halts when its stdin closes; SIGKILL on parent death
    on Linux). `erl` is the executable (default: `erl` on PATH), `args` extra `erl`
    arguments (`["-kernel", "start_pg", "true"]`). Raises `PeerStartError` when `erl`
    is missing or the node does not come up.

    Examples:
        >>> from beamlet import peer
        >>> from beamlet.distribution import rpc
        >>> async def main() -> None:
        ...     p = await peer.start_erl(name="peer_erl_w")
        ...     print(await rpc.call(p.node, "erlang", "node", []))
        ...     print(await rpc.call(p.node, "lists", "sum", [[1, 2, 3]]))
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="peer_erl@127.0.0.1", cookie="secret")
        peer_erl_w@127.0.0.1
        6
    """
    d = get_distribution()
    path = erl or shutil.which("erl")
    if path is None or not os.access(path, os.X_OK):
        raise PeerStartError(Atom("enoent"), "erl not found")
    node = _node_name(name, host, "erl")
    the_cookie = cookie or d.cookie
    argv = [sys.executable, "-S", "-c", _TRAMPOLINE, str(os.getpid()), path, "-noshell"]
    argv += ["-name", node, "-start_epmd", "false"]
    if hidden:
        argv.append("-hidden")
    argv += [*args, "-eval", _ERL_MAIN]
    child_env = _child_env(env, the_cookie, d.epmd_port)
    child_env.setdefault("ERL_CRASH_DUMP_SECONDS", "0")
    # erl reads extra flags from ERL_FLAGS: the cookie stays off the command line.
    child_env["ERL_FLAGS"] = f"{child_env.get('ERL_FLAGS', '')} -setcookie {the_cookie}".strip()
    return await _launch(argv, child_env, Atom(node), connect=connect, timeout=timeout, link=link)


async def _launch(
    argv: list[str], env: dict[str, str], node: Atom, *, connect: bool, timeout: float, link: bool
) -> Peer:
    if not timeout > 0:
        raise beamlet.BadArgument(f"timeout must be a positive number of seconds: {timeout!r}")
    tag = beamlet.make_ref()
    ctl = beamlet.spawn(_control, beamlet.self(), tag, argv, env, node, connect, timeout, link)
    mref = beamlet.monitor(ctl)

    def answer(m: Any) -> bool:
        if type(m) is Down:
            return m.ref == mref
        return type(m) is tuple and len(m) == 3 and m[0] == tag

    msg = await beamlet.receive(answer)
    if type(msg) is Down:
        reason = msg.reason
        output = ""
        if type(reason) is tuple and len(reason) == 3 and reason[0] == Atom("peer_start_failed"):
            reason, output = reason[1], reason[2]
        raise PeerStartError(reason, output)
    beamlet.demonitor(mref, flush=True)
    p = Peer(node, ctl, msg[2])
    table = _peers()
    for gone in [n for n, q in table.items() if not beamlet.is_alive(q.pid)]:
        del table[gone]  # peers that ended on their own (a pool replaces its nodes)
    table[node] = p
    return p


async def stop(peer: Peer | str | Atom, timeout: float = 5.0) -> bool:
    """Stop a peer started from this node (OTP's `peer:stop/1`): close its stdin (the
    node halts), kill it after `timeout` seconds if it is still running, and wait
    until its OS process is gone. False if it was not running.

    Examples:
        >>> from beamlet import peer
        >>> async def main() -> None:
        ...     p = await peer.start(name="peer_stop_w")
        ...     print(await peer.stop(p.node), await peer.stop(p))  # by name; not running
        >>> beamlet.run(main, name="peer_stop@127.0.0.1", cookie="secret")
        True False
    """
    if isinstance(peer, Peer):
        p: Peer | None = peer
    else:
        p = _peers().get(Atom(str(peer)))
    if p is None or not beamlet.is_alive(p.pid):
        return False
    mref = beamlet.monitor(p.pid)
    beamlet.send(p.pid, (_STOP, timeout))
    await beamlet.receive(lambda m: type(m) is Down and m.ref == mref)
    table = _peers()
    if table.get(p.node) == p:
        del table[p.node]
    return True


# --- the controlling process -----------------------------------------------------------


def _watch(popen: subprocess.Popen[bytes], report: Callable[[Any], None]) -> None:
    """A thread per peer: read its stdout up to the ready line (`(ready, Output)`, or
    `(exited, Status, Output)` if it ends first), drain the rest, then reap it and
    report `(exited, Status)`. Threads, not asyncio's child watcher: the node's loop
    may be closed by the time a killed peer is reaped, and nothing here touches it
    then."""
    assert popen.stdout is not None
    output: list[bytes] = []
    for line in popen.stdout:
        if line.startswith(READY):
            report((_READY, b"".join(output)))
            break
        output.append(line)
    else:
        report((_EXITED, popen.wait(), b"".join(output)))
        return
    for _ in popen.stdout:  # erl keeps writing to its stdout
        pass
    report((_EXITED, popen.wait()))


async def _control(
    starter: Pid,
    tag: Ref,
    argv: list[str],
    env: dict[str, str],
    node: Atom,
    connect_: bool,
    timeout: float,
    link: bool,
) -> None:
    me = beamlet.self()
    runtime = beamlet.current_node()
    loop = asyncio.get_running_loop()

    def report(msg: Any) -> None:  # from the watcher thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(runtime.send, me, (tag, msg))

    popen = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,  # Ctrl-C on the terminal is for the parent to handle
    )
    try:
        threading.Thread(
            target=_watch, args=(popen, report), name=f"beamlet-peer-{popen.pid}", daemon=True
        ).start()

        def from_watcher(m: Any) -> bool:
            return type(m) is tuple and len(m) == 2 and m[0] == tag

        def stop_or_exit(m: Any) -> bool:
            return from_watcher(m) or (type(m) is tuple and len(m) == 2 and m[0] == _STOP)

        try:
            _, msg = await beamlet.receive(from_watcher, timeout=timeout)
            if msg[0] == _EXITED:
                raise _Failed((_EXIT_STATUS, msg[1]), msg[2])
            if connect_ and not await connect(node):
                raise _Failed(beamlet.NOCONNECTION, msg[1])
        except TimeoutError:
            raise _Failed(beamlet.TIMEOUT, b"") from None
        except _Failed as e:
            text = e.output.decode(errors="replace")
            beamlet.exit((Atom("peer_start_failed"), e.reason, text))
        if link:  # before the answer: a starter that died meanwhile takes the peer along
            beamlet.link(starter)
        beamlet.send(starter, (tag, _OK, popen.pid))

        first, arg = await beamlet.receive(stop_or_exit)
        if first == tag:  # the OS process ended on its own
            beamlet.exit((_EXIT_STATUS, arg[1]))
        if popen.stdin is not None:
            popen.stdin.close()  # the peer halts when its stdin closes
        msg = await beamlet.receive(from_watcher, timeout=arg, default=None)
        if msg is None:
            popen.kill()
            await beamlet.receive(from_watcher)
    finally:
        if popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()  # the watcher thread reaps it


class _Failed(Exception):
    def __init__(self, reason: Any, output: bytes) -> None:
        self.reason = reason
        self.output = output


# --- the child side: python -m beamlet.peer ---------------------------------------------


def _die_with_parent(ppid: int) -> None:
    """Halt when the parent goes: SIGKILL from the kernel (Linux), and a thread that
    halts when stdin (a pipe from the parent) reaches end of file."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != ppid:  # the parent died before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            if not data:
                os._exit(0)

    threading.Thread(target=watch, name="beamlet-peer-parent", daemon=True).start()


async def _serve() -> None:
    os.write(1, READY + str(beamlet.node_name()).encode() + b"\n")
    os.dup2(2, 1)  # from here on the child's prints go to the shared stderr
    await beamlet.receive(lambda m: False)


def _child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m beamlet.peer")
    parser.add_argument("--name", required=True)
    parser.add_argument("--ppid", type=int, required=True)
    parser.add_argument("--visible", action="store_true")
    parser.add_argument("--allow-import", action="store_true")
    parser.add_argument("--epmd-port", type=int)
    opts = parser.parse_args(argv)
    _die_with_parent(opts.ppid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The EPMD is usually the parent's built-in one, which closes as the parent ends,
    # just before this node is halted: not worth a warning on the shared stderr.
    logging.getLogger("beamlet.distribution.epmd").addFilter(
        lambda r: not r.getMessage().startswith("EPMD closed the registration")
    )
    host = opts.name.partition("@")[2]
    beamlet.run(
        _serve,
        name=opts.name,
        hidden=not opts.visible,
        allow_import=opts.allow_import,
        epmd_port=opts.epmd_port,
        listen_host=None if host not in ("localhost",) else "127.0.0.1",
    )


if __name__ == "__main__":
    _child_main()
