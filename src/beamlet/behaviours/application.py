"""Applications: run a supervision tree as a program (`beamlet.run_app`).

An OTP application is a supervision tree with a lifecycle: it starts its top supervisor,
runs until told to stop, then stops the tree in order. `run_app` is that lifecycle for a
Python program. It starts a node, starts the tree, and blocks until

* the process receives SIGTERM or SIGINT (Ctrl-C): the tree is shut down gracefully —
  the top supervisor stops its children in reverse start order, each within its
  `shutdown` time (§8.5, §8.7) — and `run_app` returns **0**;
* or the top supervisor exits on its own: **0** if it stopped normally (reason `normal`,
  or an `auto_shutdown` after its significant children finished, §8.9), **1** if the tree
  crashed (restart intensity exceeded, any abnormal reason).

A failure to start the tree also returns **1**. A second signal during a graceful
shutdown kills the tree at once (status 1), as does a shutdown slower than
`shutdown_timeout`.

Example (`app.py`):

    import sys
    import beamlet
    from beamlet.behaviours.registry import Registry

    children = [
        Registry.child_spec(keys="unique", name="sessions"),
        Database.child_spec({"url": "..."}),
        WebServer.child_spec({"port": 8080}),
    ]

    if __name__ == "__main__":
        sys.exit(beamlet.run_app(children, name="my_app", strategy="rest_for_one"))

Give a list of children for a top `Supervisor` built from the keyword flags, or a single
child spec (e.g. `MyAppSup.child_spec(arg)`, or just `MyAppSup`) to use your own top
supervisor. Workers that must clean up on shutdown trap exits (a `GenServer` that traps
exits runs `terminate`; a plain process sees `Exit(parent, shutdown)`), as in OTP.

Events are logged through `logging.getLogger("beamlet")` (start, signal, stop, crash);
configure logging before calling `run_app` to see them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from beamlet import _core as api
from beamlet._core import KILL, NORMAL, SHUTDOWN, Atom, Down, Exit, Node, Pid, Shared
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.supervisor import (
    _AUTO_SHUTDOWN_NOTICE,
    APP_MASTER,
    AutoShutdown,
    Strategy,
    Supervisor,
    SupFlags,
    check_childspecs,
    child_spec,
    do_start,
)

__all__ = ["run_app"]

log = logging.getLogger("beamlet")

_SIGNAL: Final = Atom("$beamlet_signal")
_DEFAULT_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


@dataclass(slots=True)
class _Options:
    children: Any
    name: str | None
    strategy: Strategy
    max_restarts: int
    max_seconds: float
    auto_shutdown: AutoShutdown
    shutdown_timeout: float | None
    status: int = 1  # set by the application master


async def _start_tree(opts: _Options) -> Pid | None:
    if isinstance(opts.children, list):
        return await Supervisor.start_link(
            opts.children,
            name=opts.name,
            strategy=opts.strategy,
            max_restarts=opts.max_restarts,
            max_seconds=opts.max_seconds,
            auto_shutdown=opts.auto_shutdown,
        )
    res = await do_start(child_spec(opts.children))
    if res[0] == "error":
        raise StartError(res[1])
    pid: Pid | None = res[1] if res[0] == "ok" else None
    return pid


async def _master(shared: Shared[_Options]) -> None:
    """The application master: owns the top supervisor, turns signals into a graceful
    shutdown and the tree's end into an exit status (kept in `opts.status`)."""
    opts = shared.value
    api.process_flag(trap_exit=True)
    me = api.self()
    APP_MASTER.set(me)  # lets the top supervisor tell us about an auto_shutdown
    try:
        top = await _start_tree(opts)
    except StartError as e:
        log.error("application failed to start: %r", e.reason, extra={"beamlet_reason": e.reason})
        opts.status = 1
        return
    if top is None:
        log.info("application: the top of the tree chose not to start (ignore)")
        opts.status = 0
        return
    log.info("application started: %r", top, extra={"beamlet_pid": top})
    ref = api.monitor(top)
    stopping = False
    auto = False

    def event(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and (m[0] == _SIGNAL or (m[0] == _AUTO_SHUTDOWN_NOTICE))
        return (t is Down and m.ref == ref) or (t is Exit and m.pid == top)

    while True:
        timeout = opts.shutdown_timeout if stopping else None
        msg = await api.receive(event, timeout=timeout, default=None)
        if msg is None:  # the graceful shutdown took too long
            log.error("application: shutdown timed out; killing the tree")
            api.exit(top, KILL)
            opts.status = 1
            stopping = False
            continue
        if type(msg) is tuple and msg[0] == _AUTO_SHUTDOWN_NOTICE:
            auto = True
            continue
        if type(msg) is tuple:
            if stopping:
                log.error("application: second signal %s; killing the tree", msg[1])
                api.exit(top, KILL)
                opts.status = 1
                continue
            log.info("application: signal %s received, shutting down", msg[1])
            stopping = True
            opts.status = 0
            api.exit(top, SHUTDOWN)  # from the parent: an orderly shutdown (§8.5)
            continue
        reason = msg.reason
        if type(msg) is Exit:  # the DOWN follows; take it too
            await api.receive(lambda m: type(m) is Down and m.ref == ref)
        else:
            await api.receive(lambda m: type(m) is Exit and m.pid == top, timeout=0, default=None)
        if stopping:
            if reason != SHUTDOWN:
                log.error("application: the tree ended with %r while shutting down", reason)
        elif auto or reason == NORMAL:
            log.info("application: the tree stopped (%r)", reason)
            opts.status = 0
        else:
            log.error("application: the tree crashed: %r", reason, extra={"beamlet_reason": reason})
            opts.status = 1
        return


async def _serve(opts: _Options, node_name: str | None, signals: Iterable[int]) -> int:
    loop = asyncio.get_running_loop()
    async with Node(node_name) as node:
        pid = node.spawn(_master, Shared(opts))
        installed: list[int] = []

        def on_signal(signum: int) -> None:
            node.send(pid, (_SIGNAL, signum))

        for sig in signals:
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or not supported here (Windows)
            installed.append(sig)
        try:
            reason = await node.wait(pid)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        if reason != NORMAL:
            log.error("application master ended with %r", reason)
            return 1
        status: int = opts.status
        return status


def run_app(
    children: Any,
    *,
    name: str | None = None,
    strategy: Strategy = "one_for_one",
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    auto_shutdown: AutoShutdown = "never",
    shutdown_timeout: float | None = None,
    node_name: str | None = None,
    signals: Iterable[int] = _DEFAULT_SIGNALS,
    use_uvloop: bool = False,
) -> int:
    """Run a supervision tree until SIGTERM/SIGINT or until it ends; return the exit
    status (0 graceful, 1 crashed or failed to start). Blocks; call it from the main
    thread (signal handlers are installed only there).

    `children` is a list of children for a top `Supervisor` (flags `strategy`,
    `max_restarts`, `max_seconds`, `auto_shutdown`, registered as `name`), or one child
    spec (a `ChildSpec`, `cls`, `(cls, arg)`, mapping) started as the top of the tree.
    `shutdown_timeout` (seconds) bounds the graceful shutdown; None waits as long as
    the children's shutdown times need. Invalid children or flags raise
    `InvalidChildSpec` / `InvalidSupervisorFlags` before anything starts.

    Examples:
        >>> from beamlet import Task
        >>> async def job():
        ...     print("working")
        >>> spec = Task.child_spec(job, restart="transient", significant=True)
        >>> beamlet.run_app([spec], auto_shutdown="any_significant")    # the exit status
        working
        0
    """
    opts = _Options(
        children=children,
        name=name,
        strategy=strategy,
        max_restarts=max_restarts,
        max_seconds=max_seconds,
        auto_shutdown=auto_shutdown,
        shutdown_timeout=shutdown_timeout,
    )
    # Bad specs or flags raise here, in the caller, not as a failed start (status 1).
    if isinstance(children, list):
        flags = SupFlags(strategy, max_restarts, max_seconds, auto_shutdown)
        check_childspecs(children, flags.auto_shutdown)
    else:
        child_spec(children)
    coro = _serve(opts, node_name, tuple(signals))
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
