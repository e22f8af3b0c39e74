"""The BIFs Erlang tools call on every node over rpc, answered by a beamlet node.

`rpc:call(N, erlang, node, [])`, `erlang:nodes/0,1`, `system_info/1`, `memory/0,1`,
`statistics/1`, `process_info/1,2`... are what `net_adm`, observers and scripts ask a
node. A beamlet node has no BEAM; it answers the common ones with its own figures (see
docs/distribution.md "Limits" for what each means here) and raises `badarg` for the
rest, as Erlang does for an unknown item. `erlang:apply/2` runs a registered function
given as `fun M:F/A`; a fun from Erlang or Elixir cannot run in Python, and says so.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import beamlet
from beamlet._core import Atom, Pid, Ref
from beamlet.distribution import etf
from beamlet.distribution import handshake as hs
from beamlet.distribution.functions import ErlangError, arglist

if TYPE_CHECKING:
    from beamlet.distribution.erpc import RemoteSpawn

BADARG = Atom("badarg")
_NATIVE = Atom("native")
_OS_NAME = Atom(sys.platform)
#: The OTP release whose distribution protocol beamlet speaks in full (what
#: `system_info(otp_release)` answers, so that tools comparing releases work).
OTP_RELEASE = "25"


class CannotRunFun(Exception):
    """A fun from Erlang or Elixir was sent to a Python node to run."""


def cannot_run_fun(node: Atom) -> CannotRunFun:
    return CannotRunFun(
        f"funs from Erlang or Elixir cannot run in Python: {node} is a beamlet node, with "
        "no BEAM to run them; spawn or call a function registered with register_function "
        "(Module, Function, Args) instead"
    )


def builtin_functions(dist: RemoteSpawn) -> dict[tuple[str, str], Callable[..., Any]]:
    """The BIFs of `dist`'s node, by (module, function)."""
    n = dist.node
    started = time.monotonic()
    last = {"runtime": time.process_time(), "wall_clock": started}

    def nodes(which: Any = None) -> list[Atom]:
        kinds = which if type(which) is list else [Atom("visible") if which is None else which]
        out: list[Atom] = []
        for kind in kinds:
            if kind == Atom("this") or kind == Atom("known"):
                out.append(n.name)
            if kind in (Atom("connected"), Atom("known")):
                out.extend(dist.nodes())
            elif kind == Atom("visible"):
                out.extend(x for x, c in sorted(dist.conns.items()) if c.flags & hs.PUBLISHED)
            elif kind == Atom("hidden"):
                out.extend(x for x, c in sorted(dist.conns.items()) if not c.flags & hs.PUBLISHED)
            elif kind != Atom("this"):
                raise ErlangError(BADARG)
        return list(dict.fromkeys(out))

    def system_info(item: Any) -> Any:
        values: dict[str, Callable[[], Any]] = {
            "otp_release": lambda: etf.Charlist(OTP_RELEASE),
            "version": lambda: etf.Charlist(f"beamlet-{beamlet.__version__}"),
            "system_version": lambda: etf.Charlist(
                f"beamlet {beamlet.__version__} (Python {platform.python_version()}, "
                f"distribution as OTP {OTP_RELEASE})\n"
            ),
            "machine": lambda: etf.Charlist("beamlet"),
            "process_count": lambda: len(n.processes()),
            "process_limit": lambda: 2**27,
            "schedulers": lambda: 1,
            "schedulers_online": lambda: 1,
            "logical_processors": lambda: os.cpu_count() or 1,
            "logical_processors_available": lambda: (
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1
            ),
            "wordsize": lambda: 8 if sys.maxsize > 2**32 else 4,
            "creation": lambda: n.creation,
            "os_type": lambda: (
                Atom("unix" if os.name == "posix" else "win32"),
                Atom(sys.platform),
            ),
            "dist_ctrl": lambda: [(x, Pid(x, 0, 0, 0)) for x in dist.nodes()],
            "thread_pool_size": lambda: 0,
            "threads": lambda: True,
            "smp_support": lambda: True,
        }
        if type(item) is not Atom or item.text not in values:
            raise ErlangError(BADARG)
        return values[item.text]()

    def memory(item: Any = None) -> Any:
        total = _rss()
        pairs = [
            (Atom("total"), total),
            (Atom("processes"), 0),
            (Atom("processes_used"), 0),
            (Atom("system"), total),
            (Atom("atom"), 0),
            (Atom("atom_used"), 0),
            (Atom("binary"), 0),
            (Atom("code"), 0),
            (Atom("ets"), 0),
        ]
        if item is None:
            return pairs
        for key, value in pairs:
            if key == item:
                return value
        raise ErlangError(BADARG)

    def statistics(item: Any) -> Any:
        if item == Atom("runtime"):
            now = time.process_time()
            since, last["runtime"] = now - last["runtime"], now
            return (int(now * 1000), int(since * 1000))
        if item == Atom("wall_clock"):
            now = time.monotonic()
            since, last["wall_clock"] = now - last["wall_clock"], now
            return (int((now - started) * 1000), int(since * 1000))
        if item in (Atom("run_queue"), Atom("total_run_queue_lengths")):
            return 0
        if item in (Atom("reductions"), Atom("exact_reductions"), Atom("context_switches")):
            return (0, 0)
        if item == Atom("garbage_collection"):
            return (0, 0, 0)
        if item == Atom("io"):
            return ((Atom("input"), 0), (Atom("output"), 0))
        raise ErlangError(BADARG)

    def process_info(pid: Any, item: Any = None) -> Any:
        if type(pid) is not Pid:
            raise ErlangError(BADARG)
        info = n.process_info(pid)
        if info is None:
            return Atom("undefined")
        pairs = [
            (Atom("registered_name"), info.registered_name or []),
            (Atom("status"), Atom(info.status)),
            (Atom("message_queue_len"), info.message_queue_len),
            (Atom("links"), list(info.links)),
            (Atom("monitored_by"), list(info.monitored_by)),
            (Atom("trap_exit"), info.trap_exit),
            (Atom("reductions"), info.reductions),
            (Atom("current_function"), (Atom("python"), Atom(info.current_function[:255]), 0)),
        ]
        if item is None:
            return pairs
        for key, value in pairs:
            if key == item:
                return (key, value)
        raise ErlangError(BADARG)

    async def apply(fn: Any, args: Any) -> Any:
        if type(fn) is etf.Fun:
            raise cannot_run_fun(n.name)
        args_ = arglist(args)
        if type(fn) is etf.Export and args_ is not None:
            return await dist.functions.run(fn.module, fn.function, args_)
        raise ErlangError(BADARG)

    def node(of: Any = None) -> Atom:
        if of is None:
            return n.name
        if type(of) is Pid or type(of) is Ref:
            return of.node
        raise ErlangError(BADARG)

    def system_time(unit: Any = _NATIVE) -> int:
        ns = time.time_ns()
        div = {"native": 1, "nanosecond": 1, "microsecond": 1000, "millisecond": 10**6,
               "second": 10**9}  # fmt: skip
        if type(unit) is not Atom or unit.text not in div:
            raise ErlangError(BADARG)
        return ns // div[unit.text]

    return {
        ("erlang", "node"): node,
        ("erlang", "nodes"): nodes,
        ("erlang", "whereis"): n.whereis,
        ("erlang", "registered"): n.registered,
        ("erlang", "processes"): n.processes,
        ("erlang", "is_process_alive"): n.is_alive,
        ("erlang", "process_info"): process_info,
        ("erlang", "system_info"): system_info,
        ("erlang", "memory"): memory,
        ("erlang", "statistics"): statistics,
        ("erlang", "system_time"): system_time,
        ("erlang", "apply"): apply,
        ("erl_eval", "eval_str"): _no_erlang_source,
    }


#: erl_call -e sends Erlang source to erl_eval:eval_str/1.
NO_ERLANG_SOURCE = (
    "beamlet nodes run Python: they cannot evaluate Erlang source (erl_call -e); "
    "call a function registered with register_function instead (erl_call -a 'Mod Fun Args')"
)


def _no_erlang_source(_source: Any) -> tuple[Atom, etf.Charlist]:
    # eval_str's errors are {error, Reason}; a string, so that erl_call prints it as text.
    return (Atom("error"), etf.Charlist(NO_ERLANG_SOURCE))


def _rss() -> int:
    """This OS process's resident memory in bytes (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
