"""Erlang's own tools pointed at a beamlet node: `etop`, observer's backends.

`serve_erlang_tools()` registers (with `beamlet.distribution.register_function`) the
functions OTP's tools call over rpc on the node they observe, answering with the shapes
OTP's own `observer_backend` returns, built from `beamlet.observe`'s snapshots:

* `observer_backend:vsn/0`, `etop_collect/1` (etop; observer's fallback),
  `procs_info/1` (observer's Processes tab, chunks of `#etop_proc_info{}`),
  `sys_info/0` (System tab), `fetch_stats/2` (Load Charts), `get_port_list/0`,
  `get_socket_list/0`, `get_table_list/2` (empty: no ports, sockets or ETS here);
* `erlang:process_info/1,2`, `erlang:system_info/1`, `erlang:memory/0,1`,
  `erlang:statistics/1`, `code:ensure_loaded/1`, `erlang:function_exported/3`,
  `proc_lib:translate_initial_call/1` (the process-detail window).

Then, from a shell: `erl -sname etop -hidden -s etop -output text -tracing off -node
py@host -setcookie ...` lists the Python processes (tracing needs the BEAM's trace BIFs,
which a beamlet node does not have, hence `-tracing off`).

Examples:
    >>> async def main():
    ...     observe.serve_erlang_tools()
    ...     await beamlet.receive()          # etop and observer can attach now
    >>> beamlet.run(main, name="py@127.0.0.1", cookie="secret")
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from beamlet._core import Atom, NodeVar, Pid, await_chain, process_flag, receive, send
from beamlet._core import ProcessView as Proc
from beamlet._core import self as self_pid
from beamlet.distribution.api import register_function
from beamlet.observe.info import (
    _Deadlines,
    _memory,
    current_frame,
    live_procs,
    node_of,
    short_repr,
    snapshot,
)
from beamlet.observe.overview import _rss

__all__ = ["etop_proc_info", "serve_erlang_tools"]

A = Atom
OK = A("ok")
UNDEFINED = A("undefined")
TRUE, FALSE = True, False
_CHUNK = 10_000  # procs_info's chunk size, as observer_backend's
_KEY = ("beamlet.observe", "erlang_tools")
_STATE: NodeVar[dict[Any, Any]] = NodeVar("beamlet.observe.erlang_tools", dict)


def _mfa_of_fn(fn: Any) -> tuple[Atom, Atom, int]:
    owner = getattr(fn, "__self__", None)
    cls = getattr(owner, "cls", None)
    if cls is not None and type(owner).__name__ == "_Server":  # a GenServer: like gen's
        return (A(f"{cls.__module__}.{cls.__qualname__}"), A("init"), 1)
    code = getattr(fn, "__code__", None)
    arity = code.co_argcount if code is not None else 0
    mod = getattr(fn, "__module__", None) or "python"
    return (A(mod), A(getattr(fn, "__qualname__", type(fn).__name__)), arity)


def _current_mfa(p: Proc) -> tuple[Atom, Atom, int]:
    frames, _ = await_chain(p)
    f = current_frame(frames)
    if f is None:
        return (
            (A("erlang"), A("apply"), 2)
            if p.get_coro() is not None
            else (A("erlang"), A("exit"), 1)
        )
    return (A(f.f_globals.get("__name__", "?")), A(f.f_code.co_qualname), f.f_code.co_argcount)


def etop_proc_info(p: Proc) -> tuple[Any, ...]:
    """One `#etop_proc_info{pid, mem, reds, name, runtime, cf, mq}` record."""
    name: Any = p.name if p.name is not None else _mfa_of_fn(p.fn)
    mem = _memory(p, await_chain(p)[0])
    return (
        A("etop_proc_info"),
        p.pid,
        mem,
        p.taken,
        name,
        0,
        _current_mfa(p),
        p.message_queue_len,
    )


def _infos(exclude: Pid | None) -> list[tuple[Any, ...]]:
    node = node_of(None)
    return [etop_proc_info(p) for p in live_procs(node) if p.pid != exclude]


def _memory_list() -> list[tuple[Atom, int]]:
    node = node_of(None)
    procs = sum(_memory(p, await_chain(p)[0]) for p in live_procs(node))
    total = _rss() or procs
    return [
        (A("total"), total),
        (A("processes"), procs),
        (A("processes_used"), procs),
        (A("system"), max(0, total - procs)),
        (A("atom"), 0),
        (A("atom_used"), 0),
        (A("binary"), 0),
        (A("code"), 0),
        (A("ets"), 0),
    ]


def _wall(tools: _Tools) -> list[tuple[int, int, int]]:
    """`statistics(scheduler_wall_time)` for the one scheduler: CPU time as active."""
    active = int(time.process_time() * 1e6)
    total = int((time.monotonic() - tools.started) * 1e6) + tools.cpu0
    return [(1, active, max(total, active))]


class _Tools:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.cpu0 = int(time.process_time() * 1e6)
        self.exported: set[tuple[str, str, int]] = set()


def _timestamp() -> tuple[int, int, int]:
    t = time.time()
    s = int(t)
    return (s // 1_000_000, s % 1_000_000, int((t - s) * 1e6))


# --- process_info ----------------------------------------------------------------------


def _pi_item(p: Proc, item: Atom, snap: Any) -> Any:
    k = str(item)
    if k == "registered_name":
        return p.name if p.name is not None else []
    if k == "initial_call":
        return _mfa_of_fn(p.fn)
    if k == "current_function":
        return _current_mfa(p)
    if k == "current_location":
        return (*_current_mfa(p), [])
    if k == "current_stacktrace":
        return []
    if k == "status":
        return A({"running": "running", "runnable": "runnable"}.get(snap.status, "waiting"))
    if k == "message_queue_len":
        return snap.message_queue_len
    if k == "messages":
        return [short_repr(m) for m in p.peek_messages(100)]
    if k == "links":
        return list(snap.links)
    if k == "monitors":
        return [(A("process"), t) for t in snap.monitors]
    if k == "monitored_by":
        return list(snap.monitored_by)
    if k == "trap_exit":
        return snap.trap_exit
    if k == "reductions":
        return snap.work
    if k in ("memory", "total_heap_size", "heap_size"):
        return snap.memory if k == "memory" else snap.memory // 8
    if k in ("stack_size", "catchlevel", "min_heap_size", "min_bin_vheap_size"):
        return 0
    if k == "fullsweep_after":
        return 65535
    if k == "dictionary":
        anc = list(snap.ancestors)
        d: list[Any] = [(A("$ancestors"), anc)] if anc else []
        if snap.behaviour:
            d.append((A("$initial_call"), _mfa_of_fn(p.fn)))
        return d
    if k == "group_leader":
        return p.parent or p.pid
    if k == "priority":
        return A("normal")
    if k == "error_handler":
        return A("error_handler")
    if k == "garbage_collection":
        return [(A("minor_gcs"), 0), (A("fullsweep_after"), 65535)]
    if k in ("suspending", "binary", "sequential_trace_token"):
        return []
    if k == "last_calls":
        return False
    if k == "trace":
        return 0
    if k == "garbage_collection_info":
        return []
    if k == "message_queue_data":
        return A("on_heap")
    if k == "parent":
        return p.parent or UNDEFINED
    if k == "label":
        return UNDEFINED
    return UNDEFINED


def _process_info(pid: Any, items: Any = None) -> Any:
    node = node_of(None)
    q = node.lookup(pid)
    if q is None or not q.alive:
        return UNDEFINED
    snap = snapshot(q, _Deadlines(node))
    if items is None:
        items = [
            A(x)
            for x in (
                "current_function",
                "initial_call",
                "status",
                "message_queue_len",
                "links",
                "dictionary",
                "trap_exit",
                "error_handler",
                "priority",
                "group_leader",
                "total_heap_size",
                "heap_size",
                "stack_size",
                "reductions",
                "garbage_collection",
            )
        ]
        if q.name is not None:
            items.insert(0, A("registered_name"))
    if type(items) is Atom:
        if items == A("registered_name") and q.name is None:
            return []
        return (items, _pi_item(q, items, snap))
    return [(it, _pi_item(q, it, snap)) for it in items if type(it) is Atom]


# --- observer_backend ------------------------------------------------------------------


def _sys_info(tools: _Tools) -> list[tuple[Atom, Any]]:
    node = node_of(None)
    n = sum(1 for _ in live_procs(node))
    cpus = os.cpu_count() or 1
    vi = sys.version_info
    return [
        (A("uptime"), int((time.monotonic() - tools.started) * 1000)),
        (A("run_queue"), node.run_queue_length()),
        (A("io_input"), 0),
        (A("io_output"), 0),
        (A("logical_processors"), cpus),
        (A("logical_processors_online"), cpus),
        (A("logical_processors_available"), cpus),
        (A("schedulers"), 1),
        (A("schedulers_online"), 1),
        (A("schedulers_available"), 1),
        (A("otp_release"), f"beamlet (Python {vi.major}.{vi.minor}.{vi.micro})"),
        (A("version"), "beamlet"),
        (A("system_architecture"), f"{platform.machine()}-{sys.platform}"),
        (A("kernel_poll"), True),
        (A("smp_support"), False),
        (A("threads"), True),
        (A("thread_pool_size"), 0),
        (A("wordsize_internal"), 8),
        (A("wordsize_external"), 8),
        (A("alloc_info"), []),
        (A("process_count"), n),
        (A("atom_limit"), 0),
        (A("atom_count"), 0),
        (A("process_limit"), 0),
        (A("port_limit"), 0),
        (A("port_count"), 0),
        (A("ets_limit"), 0),
        (A("ets_count"), len(_STATE.get(node))),
        (A("dist_buf_busy_limit"), 0),
        *_memory_list(),
    ]


def _etop_info(tools: _Tools, me: Pid) -> tuple[Any, ...]:
    node = node_of(None)
    procs = _infos(me)
    mem = dict(_memory_list())
    memi = [(A(k), mem[A(k)]) for k in ("total", "processes", "ets", "atom", "code", "binary")]
    return (
        A("etop_info"),
        _timestamp(),
        len(procs),
        UNDEFINED,  # wall_clock: the new format reads runtime only
        _wall(tools),
        node.run_queue_length(),
        [],
        memi,
        procs,
    )


async def _etop_collect(tools: _Tools, collector: Pid) -> Atom:
    me = self_pid()
    send(collector, (me, _etop_info(tools, me)))
    return OK


async def _procs_info(collector: Pid) -> Atom:
    me = self_pid()
    procs = _infos(me)
    for i in range(0, max(len(procs), 1), _CHUNK):
        send(collector, (A("procs_info"), me, procs[i : i + _CHUNK]))
    return OK


async def _fetch_stats(tools: _Tools, parent: Pid, ms: int) -> Atom:
    process_flag(trap_exit=True)
    seconds = max(0.01, int(ms) / 1000)
    while True:
        msg = await receive(timeout=seconds, default=None)
        if msg is not None:
            return OK
        io = ((A("input"), 0), (A("output"), 0))
        send(parent, (A("stats"), 1, _wall(tools), io, _memory_list()))


def _erlang_memory(*what: Any) -> Any:
    """erlang:memory/0,1."""
    mem = _memory_list()
    return mem if not what else dict(mem).get(what[0], 0)


def _system_info(what: Any) -> Any:
    if what == (A("wordsize"), A("internal")):
        return 8
    what = str(what) if type(what) is Atom else what
    if what == "wordsize":
        return 8
    if what == "process_count":
        return sum(1 for _ in live_procs(node_of(None)))
    if what in ("schedulers", "schedulers_online"):
        return 1
    if what == "otp_release":
        return "beamlet"
    if what == "logical_processors":
        return os.cpu_count() or 1
    return UNDEFINED


def _statistics(what: Any) -> Any:
    node = node_of(None)
    what = str(what) if type(what) is Atom else what
    if what == "run_queue":
        return node.run_queue_length()
    if what == "total_active_tasks":
        return node.run_queue_length()
    if what == "io":
        return ((A("input"), 0), (A("output"), 0))
    if what == "reductions":
        total = sum(p.taken for p in live_procs(node))
        return (total, 0)
    if what in ("wall_clock", "runtime"):
        ms = int((time.monotonic() if what == "wall_clock" else time.process_time()) * 1000)
        return (ms, 0)
    return UNDEFINED


def serve_erlang_tools() -> None:
    """Answer the rpc calls of OTP's `etop` and observer's backends on this node.

    Call it from a process of a distributed node. Idempotent.

    Examples:
        Then `erl -name e@127.0.0.1 -setcookie secret -s etop -output text -node
        a@127.0.0.1 -tracing off` lists `a`'s processes. Here another node calls one of
        the backends as observer does:

        >>> from beamlet import Node, observe
        >>> from beamlet.distribution import rpc, start_distribution
        >>> async def main():
        ...     observe.serve_erlang_tools()
        ...     async with Node("b@127.0.0.1") as b:
        ...         b_dist = await start_distribution(b, cookie="secret")
        ...         vsn = await b.run(rpc.call, "a@127.0.0.1", "observer_backend", "vsn", [], 5.0)
        ...         await b_dist.stop()
        ...     return vsn
        >>> beamlet.run(main, name="a@127.0.0.1", cookie="secret")
        (Atom('ok'), 'beamlet')
    """
    node = node_of(None)
    tools = _STATE.get(node).get(_KEY)
    if isinstance(tools, _Tools):
        return
    tools = _STATE.get(node)[_KEY] = _Tools()
    fns: dict[tuple[str, str], tuple[int, Callable[..., Any]]] = {
        ("observer_backend", "vsn"): (0, lambda: (OK, "beamlet")),
        ("observer_backend", "etop_collect"): (1, lambda c: _etop_collect(tools, c)),
        ("observer_backend", "procs_info"): (1, _procs_info),
        ("observer_backend", "sys_info"): (0, lambda: _sys_info(tools)),
        ("observer_backend", "fetch_stats"): (2, lambda p, t: _fetch_stats(tools, p, t)),
        ("observer_backend", "get_port_list"): (0, lambda: []),
        ("observer_backend", "get_socket_list"): (0, lambda: []),
        ("observer_backend", "get_table_list"): (2, lambda _kind, _opts: []),
        ("erlang", "process_info"): (2, _process_info),
        ("erlang", "system_info"): (1, _system_info),
        ("erlang", "memory"): (0, _erlang_memory),
        ("erlang", "statistics"): (1, _statistics),
        ("erlang", "function_exported"): (
            3,
            lambda m, f, a: (str(m), str(f), a) in tools.exported,
        ),
        ("code", "ensure_loaded"): (
            1,
            lambda m: (
                (A("module"), m)
                if any(e[0] == str(m) for e in tools.exported)
                else (A("error"), A("nofile"))
            ),
        ),
        ("proc_lib", "translate_initial_call"): (1, _translate_initial_call),
    }
    for (mod, fn), (arity, impl) in fns.items():
        register_function(mod, fn, impl)
        tools.exported.add((mod, fn, arity))
    tools.exported.add(("erlang", "process_info", 1))


def _translate_initial_call(pid: Any) -> Any:
    node = node_of(None)
    q = node.lookup(pid)
    if q is None:
        return (A("proc_lib"), A("init_p"), 5)
    return _mfa_of_fn(q.fn)
