"""The `beamlet` command (also `python -m beamlet`).

    beamlet node --name py@127.0.0.1 --cookie secret mypkg.app:main [ARG ...]
    beamlet node --sname py --cookie secret            # serve only, until Ctrl-C/SIGTERM

`node` starts a distributed node and runs the async function `module:function` as its
main process (with the extra arguments as strings); the command ends when it returns
(exit status 0, or 1 if it failed). Without a function the node just serves: Erlang,
Elixir and beamlet peers can connect, message its registered processes and call
`erlang:node/0` and friends, until SIGINT or SIGTERM stop it. The first line on stderr
says the node is up: `beamlet: node NAME up (hidden|visible), port PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import beamlet
from beamlet._core import ProcessFailed
from beamlet.behaviours.reasons import is_clean_reason


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beamlet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"beamlet {beamlet.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    n = sub.add_parser(
        "node",
        help="run a distributed node",
        description="Start a distributed beamlet node and run module:function in it.",
    )
    names = n.add_mutually_exclusive_group(required=True)
    names.add_argument("--name", help="long node name, name@host (Erlang's -name)")
    names.add_argument("--sname", help="short node name; the host is this machine's name")
    n.add_argument("--cookie", help="the distribution cookie (default: $ERLANG_COOKIE, "
                   "then ~/.erlang.cookie)")  # fmt: skip
    n.add_argument("--epmd-port", type=int, help="EPMD port (default: $ERL_EPMD_PORT or 4369)")
    vis = n.add_mutually_exclusive_group()
    vis.add_argument("--hidden", dest="hidden", action="store_true", default=True,
                     help="a hidden node (the default): not in Erlang's nodes()")  # fmt: skip
    vis.add_argument("--visible", dest="hidden", action="store_false",
                     help="a visible node: in Erlang's nodes(), global sees it")  # fmt: skip
    n.add_argument("--ticktime", type=float, default=60.0,
                   help="seconds of silence before a peer is down (net_ticktime)")  # fmt: skip
    n.add_argument("--listen", dest="listen_host",
                   help="address to listen on (default: loopback for a loopback host)")  # fmt: skip
    n.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    n.add_argument("target", nargs="?", help="module:function, an async function to run")
    n.add_argument("args", nargs="*", help="string arguments for the function")
    t = sub.add_parser("top", help="a live top of a node (needs the 'top' extra)",
                       description="A live top of a node that called observe.serve().")  # fmt: skip
    t.add_argument("--node", required=True, help="the node to watch, name@host")
    t.add_argument("--cookie", help="the distribution cookie")
    t.add_argument("--epmd-port", type=int, help="EPMD port (default: $ERL_EPMD_PORT or 4369)")
    t.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    t.add_argument("--limit", type=int, default=40, help="processes shown")
    t.add_argument("--sort", choices=("mailbox", "work", "memory"), default="mailbox")
    w = sub.add_parser("dashboard", help="a web dashboard of a node (needs the 'dashboard' extra)",
                       description="Serve the web dashboard of a node that called "
                       "observe.dashboard.serve_api(), or of a node of its own.")  # fmt: skip
    w.add_argument("--node", help="the node to watch, name@host (default: a node of its own)")
    w.add_argument("--cookie", help="the distribution cookie")
    w.add_argument("--epmd-port", type=int, help="EPMD port (default: $ERL_EPMD_PORT or 4369)")
    w.add_argument("--host", default="127.0.0.1", help="address to serve on")
    w.add_argument("--port", type=int, default=8080, help="port to serve on (0: any free one)")
    w.add_argument("--interval", type=float, default=1.0, help="seconds between live updates")
    return parser


def _load(target: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    module_name, sep, fn_name = target.partition(":")
    if not sep or not module_name or not fn_name:
        raise SystemExit(f"beamlet: expected module:function, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SystemExit(f"beamlet: cannot import {module_name}: {e}") from None
    fn = getattr(module, fn_name, None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        raise SystemExit(f"beamlet: {target} is not an async function")
    return fn  # type: ignore[no-any-return]


async def _main(fn: Callable[..., Coroutine[Any, Any, Any]] | None, args: list[str]) -> Any:
    from beamlet.distribution.api import get_distribution

    me = beamlet.self()
    node = beamlet.current_node()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.exit, me, beamlet.SHUTDOWN)
    d = get_distribution()
    print(
        f"beamlet: node {d.name} up ({'hidden' if d.hidden else 'visible'}), port {d.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        if fn is None:
            await beamlet.receive(lambda m: False)  # serve until a signal stops us
            return None
        return await fn(*args)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    opts = parser.parse_args(argv)
    if opts.command == "top":
        from beamlet.observe.top import main as top_main

        return top_main(opts.node, cookie=opts.cookie, epmd_port=opts.epmd_port,
                        interval=opts.interval, limit=opts.limit, sort=opts.sort)  # fmt: skip
    if opts.command == "dashboard":
        from beamlet.observe.dashboard import main as dashboard_main

        return dashboard_main(opts.node, cookie=opts.cookie, epmd_port=opts.epmd_port,
                              host=opts.host, port=opts.port, interval=opts.interval)  # fmt: skip
    if opts.name is not None and "@" not in opts.name:
        parser.error("--name needs a full name@host (or use --sname)")
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(opts.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fn = _load(opts.target) if opts.target else None
    from beamlet.distribution.handshake import HandshakeError, read_cookie

    try:
        cookie = read_cookie(opts.cookie)
    except HandshakeError:
        print(
            "beamlet: no distribution cookie: pass --cookie COOKIE, set ERLANG_COOKIE or "
            "create ~/.erlang.cookie",
            file=sys.stderr,
        )
        return 2
    try:
        result = beamlet.run(
            _main,
            fn,
            list(opts.args),
            name=opts.name,
            sname=opts.sname,
            cookie=cookie,
            hidden=opts.hidden,
            epmd_port=opts.epmd_port,
            ticktime=opts.ticktime,
            listen_host=opts.listen_host,
        )
    except ProcessFailed as e:
        if is_clean_reason(e.reason):
            return 0
        print(f"beamlet: the main process failed: {e.reason!r}", file=sys.stderr)
        return 1
    except beamlet.BeamletError as e:
        print(f"beamlet: {e}", file=sys.stderr)
        return 2
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
