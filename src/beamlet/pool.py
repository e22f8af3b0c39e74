"""NodePool: work spread over several local worker nodes, one per core by default.

One beamlet node runs Python code on one core. A `NodePool` starts N worker nodes as
child OS processes (`beamlet.peer`), each running an *executor* process, keeps them
under a Supervisor (a worker whose node dies is restarted, on a fresh node), and
spreads calls of a function over them: `map` for a list of results, `stream` for an
async iterator of them.

The function is named by import path (`"package.module:function"`, see
`beamlet.remote`): items and results cross the wire in the Erlang term format, so they
must be terms (numbers, `str`, bytes, tuples, lists, dicts, atoms, pids). A sync
function runs in a thread of the worker node when a chunk is expected to take more
than 2 ms (so the node keeps answering ticks and signals), inline when it is that
short (judged by the function's last chunk); an async one in the executor process
itself.

Back-pressure: at most `max_in_flight` chunks of `chunksize` items are outstanding per
worker node, and the input is read lazily, only when a slot is free.

Failures, per item: an exception in the function gives `("exit", (python, TypeName,
Message))` for that item. A worker node that dies (crash, kill, lost connection) is
detected by a monitor on its executor; the chunks it had not answered are sent to the
other workers (or its replacement) again, at most `retries` times, then reported as
`("exit", reason)`. Delivery is therefore **at least once**: an item whose node died
after running it but before its answer arrived runs again. No item is ever silently
dropped: every input item yields exactly one result. With `timeout` (seconds per item;
a chunk of k items gets k * timeout, counted from when its worker can start it), an
item that overruns is reported as `("exit", timeout)` and its worker node is killed
and replaced (CPU-bound Python cannot be interrupted otherwise); the other chunks of
that node are retried.

Examples:
    >>> from beamlet.pool import NodePool
    >>> async def main() -> list[int]:
    ...     async with await NodePool.start_link(size=2) as pool:
    ...         return await pool.map("math:factorial", range(8), chunksize=4)
    >>> beamlet.run(main, name="pool_doc@127.0.0.1", cookie="secret")
    [1, 1, 2, 6, 24, 120, 720, 5040]
"""

from __future__ import annotations

import inspect
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, TypedDict, Unpack

import beamlet
from beamlet import Atom, Down, Exit, From, GenServer, NoReply, Pid, Ref, Reply, Supervisor
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import CallExit
from beamlet.distribution.api import get_distribution
from beamlet.peer import random_name, start_link
from beamlet.peer import stop as stop_peer
from beamlet.remote import resolve, spawn_link, split_path

__all__ = ["ItemFailed", "NodePool", "PoolStream", "StreamOptions", "executor"]

_RUN = Atom("run")
_UP = Atom("worker_up")
_ERROR = Atom("error")
_PYTHON = Atom("python")
_UNENCODABLE = Atom("unencodable")
_MARK = "beamlet.pool"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ItemFailed(beamlet.BeamletError):
    """`NodePool.map` stopped at an item whose call failed; `.item` and `.reason`
    (`(python, TypeName, Message)`, `timeout`, `noconnection`...)."""

    def __init__(self, item: Any, reason: Any) -> None:
        super().__init__(f"item {item!r} failed: {reason!r}")
        self.item = item
        self.reason = reason


# --- the worker side ------------------------------------------------------------------


def _python_error(e: BaseException) -> tuple[Atom, str, str]:
    return (_PYTHON, type(e).__name__, str(e))


def _run_chunk(fn: Callable[..., Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
    values: list[Any] = []
    errors: list[Any] = []
    for i, item in enumerate(items):
        try:
            values.append(fn(item))
        except Exception as e:
            values.append(None)
            errors.append((i, _python_error(e)))
    return values, errors


async def _run_async(fn: Callable[..., Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
    values: list[Any] = []
    errors: list[Any] = []
    for i, item in enumerate(items):
        try:
            values.append(await fn(item))
        except Exception as e:
            values.append(None)
            errors.append((i, _python_error(e)))
    return values, errors


def _fail_all(reply_to: Any, tag: Any, items: list[Any], reason: Any) -> None:
    beamlet.send(reply_to, (tag, [None] * len(items), [(i, reason) for i in range(len(items))]))


#: A chunk expected to take longer than this runs in a thread of the worker node, so the
#: node keeps answering ticks, monitors and stop requests meanwhile; shorter ones run
#: inline (a thread hop costs more than a small item).
INLINE_SECONDS = 0.002


async def executor() -> None:
    """The process a pool runs on each worker node: answers `(run, ReplyTo, Tag, Path,
    Items)` with `(Tag, Values, Errors)`, where `Errors` lists `(Index, Reason)`.

    Examples:
        >>> from beamlet import ANY, Atom
        >>> from beamlet.pool import executor
        >>> ex = beamlet.spawn(executor)
        >>> tag = beamlet.make_ref()
        >>> beamlet.send(ex, (Atom("run"), beamlet.self(), tag, "math:sqrt", [4, -1]))
        >>> _, values, errors = await beamlet.receive((tag, ANY, ANY), timeout=5)
        >>> values, errors
        ([2.0, None], [(1, (Atom('python'), 'ValueError', 'math domain error'))])
    """
    fns: dict[Any, Callable[..., Any]] = {}
    per_item: dict[Any, float] = {}  # running estimate of seconds per item, per function
    while True:
        msg = await beamlet.receive()
        if not (type(msg) is tuple and len(msg) == 5 and msg[0] == _RUN):
            continue
        _, reply_to, tag, path, items = msg
        fn = fns.get(path)
        try:
            if fn is None:
                fn = fns[path] = resolve(path.decode() if type(path) is bytes else str(path))
        except Exception as e:
            _fail_all(reply_to, tag, items, _python_error(e))
            continue
        if inspect.iscoroutinefunction(fn):
            values, errors = await _run_async(fn, items)
        else:
            estimate = per_item.get(path)
            t0 = time.perf_counter()
            if estimate is not None and estimate * len(items) < INLINE_SECONDS:
                values, errors = _run_chunk(fn, items)
            else:  # unknown or long: keep the node responsive
                values, errors = await beamlet.run_in_thread(_run_chunk, fn, items)
            per_item[path] = (time.perf_counter() - t0) / max(1, len(items))
        try:
            beamlet.send(reply_to, (tag, values, errors))
        except Exception as e:  # a result with no term form: that item's error
            _fail_all(reply_to, tag, items, (_UNENCODABLE, str(e)))


async def _worker(sup: Pid, pool: Pid, index: int, prefix: str, options: dict[str, Any]) -> None:
    """One worker: a peer node with an executor on it, both linked. It exits when
    either goes (and is restarted by the pool's supervisor, on a fresh node); when the
    supervisor shuts it down it stops its node first, so no OS process outlives it."""
    beamlet.process_flag(trap_exit=True)
    p = await start_link(name=random_name(f"{prefix}{index}"), **options)
    try:
        ex = await spawn_link(p.node, "beamlet.pool:executor", [])
        GenServer.cast(pool, (_UP, index, p.node, ex))
        msg = await beamlet.receive(Exit)
    finally:
        await stop_peer(p)
    # Shut down while going anyway: say so (the supervisor expects its reason).
    from_sup = await beamlet.receive(
        lambda m: type(m) is Exit and m.pid == sup, timeout=0, default=msg
    )
    beamlet.exit(from_sup.reason)


async def _start_worker(pool: Pid, index: int, prefix: str, options: dict[str, Any]) -> Pid:
    # Returns at once: the workers' nodes start in parallel, each announcing itself.
    return beamlet.spawn_link(_worker, beamlet.self(), pool, index, prefix, options)


# --- the pool server --------------------------------------------------------------------


class _Pool(GenServer[dict[str, Any]]):
    """Keeps the worker supervisor, the table of live executors, subscribers (streams)
    and callers waiting for the pool to be complete."""

    async def init(self, arg: dict[str, Any]) -> dict[str, Any]:
        beamlet.process_flag(trap_exit=True)
        me = beamlet.self()
        size, prefix, options = arg["size"], arg["prefix"], arg["peer_options"]
        specs = [
            ChildSpec(
                id=("worker", i), start=_start_worker, args=(me, i, prefix, options), shutdown=10.0
            )
            for i in range(size)
        ]
        sup = await Supervisor.start_link(
            specs,
            strategy="one_for_one",
            max_restarts=arg["max_restarts"],
            max_seconds=arg["max_seconds"],
        )
        return {"sup": sup, "size": size, "workers": {}, "mons": {}, "subs": {}, "ready": []}

    async def handle_call(self, request: Any, from_: From, state: dict[str, Any]) -> Any:
        match request:
            case "workers":
                return Reply(list(state["workers"].values()), state)
            case ("subscribe", alias, pid):
                state["subs"][alias] = beamlet.monitor(pid)
                return Reply(list(state["workers"].values()), state)
            case "ready":
                if len(state["workers"]) >= state["size"]:
                    return Reply(True, state)
                state["ready"].append(from_)
                return NoReply(state)
            case "supervisor":
                return Reply(state["sup"], state)
        return Reply(beamlet.BadArgument(f"unknown request {request!r}"), state)

    async def handle_cast(self, request: Any, state: dict[str, Any]) -> Any:
        match request:
            case (Atom("worker_up"), index, node, ex):
                state["workers"][index] = (node, ex)
                state["mons"][beamlet.monitor(ex)] = index
                for alias in state["subs"]:
                    beamlet.send(alias, (_UP, node, ex))
                if len(state["workers"]) >= state["size"]:
                    for waiter in state["ready"]:
                        GenServer.reply(waiter, True)
                    state["ready"].clear()
            case ("unsubscribe", alias):
                mref = state["subs"].pop(alias, None)
                if mref is not None:
                    beamlet.demonitor(mref, flush=True)
        return NoReply(state)

    async def handle_info(self, msg: Any, state: dict[str, Any]) -> Any:
        if type(msg) is Down:
            index = state["mons"].pop(msg.ref, None)
            if index is not None:
                if state["workers"].get(index, (None, None))[1] == msg.pid:
                    del state["workers"][index]
            else:
                state["subs"] = {a: r for a, r in state["subs"].items() if r != msg.ref}
        elif type(msg) is Exit and msg.pid == state["sup"]:
            from beamlet.behaviours.gen_server import Stop

            return Stop(msg.reason, state)
        return NoReply(state)

    async def terminate(self, reason: Any, state: dict[str, Any]) -> Any:
        if beamlet.is_alive(state["sup"]):
            await Supervisor.stop(state["sup"], beamlet.SHUTDOWN)
        return None


class NodePool:
    """A handle on a running pool of worker nodes (the pool's server pid or name).

    Examples:
        >>> from beamlet.pool import NodePool
        >>> async def main() -> None:
        ...     pool = await NodePool.start_link(size=2)
        ...     print(len(await pool.nodes()), await pool.map("math:sqrt", [4, 9]))
        ...     await pool.stop()
        >>> beamlet.run(main, name="pool_class@127.0.0.1", cookie="secret")
        2 [2.0, 3.0]
    """

    def __init__(self, server: Pid | str | Atom) -> None:
        self.server: Pid | Atom = server if type(server) is Pid else Atom(str(server))

    def __repr__(self) -> str:
        return f"NodePool({self.server!r})"

    @staticmethod
    def _options(
        size: int | None,
        prefix: str | None,
        max_restarts: int | None,
        max_seconds: float,
        peer_options: dict[str, Any] | None,
    ) -> dict[str, Any]:
        n = _cores() if size is None else size
        if type(n) is not int or n < 1:
            raise beamlet.BadArgument(f"size must be an int >= 1, not {size!r}")
        return {
            "size": n,
            "prefix": prefix or f"pool{secrets.token_hex(2)}w",
            "max_restarts": 5 * n if max_restarts is None else max_restarts,
            "max_seconds": max_seconds,
            "peer_options": dict(peer_options or {}),
        }

    @classmethod
    async def start_link(
        cls,
        size: int | None = None,
        *,
        name: str | Atom | None = None,
        prefix: str | None = None,
        wait: bool = True,
        timeout: float = 30.0,
        max_restarts: int | None = None,
        max_seconds: float = 10.0,
        peer_options: dict[str, Any] | None = None,
    ) -> NodePool:
        """Start a pool of `size` worker nodes (default: one per core of this machine)
        linked to the caller, optionally registered as `name`. With `wait` it returns
        once every worker is up (at most `timeout` seconds). Worker nodes are named
        `<prefix><index>-<random>@<this host>`; `peer_options` go to `peer.start_link`
        (`python`, `args`, `env`...). The worker supervisor restarts at most
        `max_restarts` (default 5 per worker) within `max_seconds`, then the pool exits.

        The caller's node must be distributed.
        """
        get_distribution()  # fail early, with NotDistributed
        opts = cls._options(size, prefix, max_restarts, max_seconds, peer_options)
        pid = await _Pool.start_link(opts, name=name)
        assert pid is not None
        pool = cls(pid)
        if wait:
            await pool.wait_ready(timeout)
        return pool

    @classmethod
    def child_spec(cls, size: int | None = None, *, name: str | Atom, **options: Any) -> ChildSpec:
        """A Supervisor child that runs a pool registered as `name`; use
        `NodePool(name)` to reach it.

        Examples:
            >>> from beamlet import Supervisor
            >>> from beamlet.pool import NodePool
            >>> async def main() -> None:
            ...     spec = NodePool.child_spec(2, name="pool")
            ...     sup = await Supervisor.start_link([spec], strategy="one_for_one")
            ...     pool = NodePool("pool")
            ...     await pool.wait_ready()          # the workers start after the pool
            ...     print(len(await pool.workers()))
            ...     await Supervisor.stop(sup)
            >>> beamlet.run(main, name="pool_child_spec@127.0.0.1", cookie="secret")
            2
        """
        opts = cls._options(
            size,
            options.pop("prefix", None),
            options.pop("max_restarts", None),
            options.pop("max_seconds", 10.0),
            options.pop("peer_options", None),
        )
        return _Pool.child_spec(opts, name=name, id=("NodePool", str(name)), **options)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every worker node is up."""
        await GenServer.call(self.server, "ready", timeout)

    async def workers(self) -> list[tuple[Atom, Pid]]:
        """The live workers: `(node, executor pid)` pairs."""
        result: list[tuple[Atom, Pid]] = await GenServer.call(self.server, "workers")
        return result

    async def nodes(self) -> list[Atom]:
        """The names of the live worker nodes."""
        return [n for n, _ in await self.workers()]

    async def supervisor(self) -> Pid:
        """The pid of the Supervisor of the workers."""
        pid: Pid = await GenServer.call(self.server, "supervisor")
        return pid

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the pool: every worker node is shut down."""
        await GenServer.stop(self.server, beamlet.NORMAL, timeout)

    async def __aenter__(self) -> NodePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        except CallExit:
            pass

    def stream(
        self,
        fn: str,
        items: Iterable[Any],
        *,
        zip_input_on_exit: bool = False,
        **options: Unpack[StreamOptions],
    ) -> PoolStream:
        """Call the function at import path `fn` on each item, spread over the workers;
        an async iterator of `("ok", value)` / `("exit", reason)`, one per item, in input
        order (`ordered=True`, the default) or as they complete. `chunksize` items
        (default 1) travel in one message (fewer messages for small items); at most
        `max_in_flight` chunks (default 4) are outstanding per worker. `timeout`
        (default None), `retries` (default 2): see the module docstring.
        With `zip_input_on_exit`, exits are `("exit", (item, reason))`.

        Examples:
            >>> from beamlet.pool import NodePool
            >>> async def main() -> None:
            ...     async with await NodePool.start_link(size=2) as pool:
            ...         async with pool.stream("math:factorial", range(6), ordered=False) as s:
            ...             print(sorted([value async for kind, value in s]))
            >>> beamlet.run(main, name="pool_stream@127.0.0.1", cookie="secret")
            [1, 1, 2, 6, 24, 120]
        """
        return PoolStream(self, fn, items, zip_input=zip_input_on_exit, **options)

    def async_stream(
        self,
        items: Iterable[Any],
        fn: str,
        *,
        max_concurrency: int = 2,
        ordered: bool = True,
        timeout: float | None = 5.0,
        zip_input_on_exit: bool = False,
    ) -> PoolStream:
        """`Task.async_stream(items, fn)` spread over the pool's nodes: one item per
        call, at most `max_concurrency` in flight *per node*, `timeout` seconds per item
        (an item that overruns yields `("exit", timeout)`, as `on_timeout="kill_task"`,
        and its node is replaced).

        Examples:
            >>> from beamlet.pool import NodePool
            >>> async def main() -> None:
            ...     async with await NodePool.start_link(size=1) as pool:
            ...         items = [0.01, 2.0]                  # seconds to sleep
            ...         stream = pool.async_stream(items, "time:sleep", timeout=0.5,
            ...                                    zip_input_on_exit=True)
            ...         async with stream as s:
            ...             print([result async for result in s])
            >>> beamlet.run(main, name="pool_async_stream@127.0.0.1", cookie="secret")
            [('ok', None), ('exit', (2.0, Atom('timeout')))]
        """
        return self.stream(
            fn,
            items,
            ordered=ordered,
            timeout=timeout,
            chunksize=1,
            max_in_flight=max_concurrency,
            zip_input_on_exit=zip_input_on_exit,
        )

    async def map(
        self, fn: str, items: Iterable[Any], **options: Unpack[StreamOptions]
    ) -> list[Any]:
        """The values of `fn(item)` for every item (input order, or completion order
        with `ordered=False`; the options are `stream`'s). Raises `ItemFailed` at the
        first item that fails (the others are abandoned).

        Examples:
            >>> from beamlet.pool import ItemFailed, NodePool
            >>> async def main() -> None:
            ...     async with await NodePool.start_link(size=1) as pool:
            ...         print(await pool.map("operator:neg", [1, 2, 3]))
            ...         try:
            ...             await pool.map("math:sqrt", [1, -1])
            ...         except ItemFailed as e:
            ...             print(e.item, e.reason)
            >>> beamlet.run(main, name="pool_map@127.0.0.1", cookie="secret")
            [-1, -2, -3]
            -1 (Atom('python'), 'ValueError', 'math domain error')
        """
        out: list[Any] = []
        async with self.stream(fn, items, zip_input_on_exit=True, **options) as s:
            async for kind, value in s:
                if kind != "ok":
                    raise ItemFailed(value[0], value[1])
                out.append(value)
        return out


# --- the stream (runs in the consuming process) -------------------------------------------


class _Chunk:
    __slots__ = ("attempts", "deadline", "items", "positions", "sent", "worker")

    def __init__(self, positions: list[int], items: list[Any]) -> None:
        self.positions = positions
        self.items = items
        self.attempts = 0
        self.worker: Pid | None = None
        self.sent = 0.0
        self.deadline: float | None = None


class _Worker:
    __slots__ = ("ex", "mref", "node", "queue")

    def __init__(self, node: Atom, ex: Pid, mref: Ref) -> None:
        self.node = node
        self.ex = ex
        self.mref = mref
        self.queue: deque[Ref] = deque()  # tags in flight, in the order the worker runs them


class StreamOptions(TypedDict, total=False):
    """The options of `NodePool.stream` and `NodePool.map` (defaults: `ordered=True`,
    `timeout=None`, `chunksize=1`, `max_in_flight=4`, `retries=2`).

    Examples:
        >>> from beamlet.pool import StreamOptions
        >>> opts: StreamOptions = {"ordered": False, "chunksize": 10}
        >>> sorted(opts)   # then: await pool.map("operator:neg", items, **opts)
        ['chunksize', 'ordered']
    """

    ordered: bool
    timeout: float | None
    chunksize: int
    max_in_flight: int
    retries: int


class PoolStream(AsyncIterator[tuple[str, Any]]):
    """The async iterator of `NodePool.stream`; also an async context manager that
    closes it (late answers are dropped, nothing is left in the mailbox). `retried`
    counts the items sent again after their worker node died.

    Examples:
        >>> from beamlet.pool import NodePool
        >>> async def main() -> None:
        ...     async with await NodePool.start_link(size=1) as pool:
        ...         async with pool.stream("math:sqrt", [4, -1, 9]) as s:
        ...             async for result in s:
        ...                 print(result)
        ...         print(s.retried)
        >>> beamlet.run(main, name="pool_poolstream@127.0.0.1", cookie="secret")
        ('ok', 2.0)
        ('exit', (Atom('python'), 'ValueError', 'math domain error'))
        ('ok', 3.0)
        0
    """

    def __init__(
        self,
        pool: NodePool,
        fn: str,
        items: Iterable[Any],
        *,
        zip_input: bool,
        ordered: bool = True,
        timeout: float | None = None,
        chunksize: int = 1,
        max_in_flight: int = 4,
        retries: int = 2,
    ) -> None:
        split_path(fn)
        for what, v in (("chunksize", chunksize), ("max_in_flight", max_in_flight)):
            if type(v) is not int or v < 1:
                raise beamlet.BadArgument(f"{what} must be an int >= 1, not {v!r}")
        if type(retries) is not int or retries < 0:
            raise beamlet.BadArgument(f"retries must be an int >= 0, not {retries!r}")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise beamlet.InvalidTimeout(f"timeout must be seconds > 0 or None: {timeout!r}")
        self.pool = pool
        self.fn = fn
        self._items: Iterator[Any] = iter(items)
        self.ordered = ordered
        self.timeout = timeout
        self.chunksize = chunksize
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.zip_input = zip_input
        self._started = False
        self._closed = False
        self._exhausted = False
        self._alias: Ref | None = None
        self._pool_mref: Ref | None = None
        self._workers: dict[Pid, _Worker] = {}
        self._by_mref: dict[Ref, _Worker] = {}
        self._inflight: dict[Ref, _Chunk] = {}
        self._retry: deque[_Chunk] = deque()
        self._stale: set[Ref] = set()  # tags whose answer may still come, to drop
        self._ready: dict[int, tuple[str, Any]] = {}  # position -> result, not yet yielded
        self._done: deque[tuple[str, Any]] = deque()  # unordered results, not yet yielded
        self._next_pos = 0  # next position to read from the input
        self._next_out = 0  # next position to yield (ordered)
        self._input: dict[int, Any] = {}  # position -> item, for zip_input_on_exit
        #: Items sent again after their worker node died (at-least-once accounting).
        self.retried = 0

    # --- iteration ---

    def __aiter__(self) -> PoolStream:
        return self

    async def __aenter__(self) -> PoolStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> tuple[str, Any]:
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            await self._start()
        while True:
            self._fill()
            result = self._take()
            if result is not None:
                return result
            if self._exhausted and not self._inflight and not self._retry:
                await self.aclose()
                raise StopAsyncIteration
            await self._wait()

    async def aclose(self) -> None:
        """Stop: abandon the chunks in flight (their answers are dropped)."""
        if self._closed:
            return
        self._closed = True
        if self._alias is not None:
            beamlet.unalias(self._alias)
            GenServer.cast(self.pool.server, ("unsubscribe", self._alias))
        for w in self._workers.values():
            beamlet.demonitor(w.mref, flush=True)
        if self._pool_mref is not None:
            beamlet.demonitor(self._pool_mref, flush=True)
        self._inflight.clear()

    # --- internals ---

    async def _start(self) -> None:
        self._started = True
        server = self.pool.server
        target = beamlet.whereis(server) if type(server) is Atom else server
        if not isinstance(target, Pid):
            raise beamlet.NoProcError(f"no pool {server!r}")
        self._pool_mref = beamlet.monitor(target)
        self._alias = beamlet.alias()
        for node, ex in await GenServer.call(server, ("subscribe", self._alias, beamlet.self())):
            self._add_worker(node, ex)

    def _add_worker(self, node: Atom, ex: Pid) -> None:
        if ex not in self._workers:
            w = _Worker(node, ex, beamlet.monitor(ex))
            self._workers[ex] = w
            self._by_mref[w.mref] = w

    def _window_full(self) -> bool:
        # Ordered: do not run further ahead of the consumer than the pool can hold.
        if not self.ordered:
            return len(self._done) >= self._capacity()
        return self._next_pos - self._next_out >= 2 * self._capacity()

    def _capacity(self) -> int:
        return max(1, len(self._workers)) * self.max_in_flight * self.chunksize

    def _next_chunk(self) -> _Chunk | None:
        if self._retry:
            return self._retry.popleft()
        if self._exhausted or self._window_full():
            return None
        positions: list[int] = []
        items: list[Any] = []
        for item in self._items:
            positions.append(self._next_pos)
            items.append(item)
            if self.zip_input:
                self._input[self._next_pos] = item
            self._next_pos += 1
            if len(items) >= self.chunksize:
                break
        else:
            self._exhausted = True
        return _Chunk(positions, items) if items else None

    def _fill(self) -> None:
        for w in sorted(self._workers.values(), key=lambda w: len(w.queue)):
            while len(w.queue) < self.max_in_flight:
                chunk = self._next_chunk()
                if chunk is None:
                    return
                self._send(w, chunk)

    def _send(self, w: _Worker, chunk: _Chunk) -> None:
        tag = beamlet.make_ref()
        chunk.worker = w.ex
        chunk.sent = time.monotonic()
        chunk.deadline = None
        if not w.queue:
            self._arm(chunk, chunk.sent)
        w.queue.append(tag)
        self._inflight[tag] = chunk
        try:
            beamlet.send(w.ex, (_RUN, self._alias, tag, self.fn, chunk.items))
        except Exception as e:  # an item with no term form: fail the chunk, not the stream
            w.queue.pop()
            del self._inflight[tag]
            self._fail(chunk, (_UNENCODABLE, str(e)))

    def _arm(self, chunk: _Chunk, start: float) -> None:
        if self.timeout is not None:
            chunk.deadline = start + self.timeout * len(chunk.items)

    def _emit(self, pos: int, result: tuple[str, Any]) -> None:
        if result[0] == "exit" and self.zip_input:
            result = ("exit", (self._input.get(pos), result[1]))
        self._input.pop(pos, None)
        if self.ordered:
            self._ready[pos] = result
        else:
            self._done.append(result)

    def _fail(self, chunk: _Chunk, reason: Any) -> None:
        for pos in chunk.positions:
            self._emit(pos, ("exit", reason))

    def _take(self) -> tuple[str, Any] | None:
        if self.ordered:
            result = self._ready.pop(self._next_out, None)
            if result is not None:
                self._next_out += 1
            return result
        return self._done.popleft() if self._done else None

    def _finished(self, w: _Worker | None, tag: Ref) -> _Chunk | None:
        chunk = self._inflight.pop(tag, None)
        if chunk is not None and w is not None:
            if w.queue and w.queue[0] == tag:
                w.queue.popleft()
            elif tag in w.queue:
                w.queue.remove(tag)
            if w.queue:  # the next chunk starts now, on that worker
                self._arm(self._inflight[w.queue[0]], time.monotonic())
        return chunk

    def _lost(self, w: _Worker, reason: Any) -> None:
        """A worker's executor is gone: its unanswered chunks go again, or fail."""
        self._workers.pop(w.ex, None)
        self._by_mref.pop(w.mref, None)
        for tag in w.queue:
            chunk = self._inflight.pop(tag, None)
            if chunk is None:
                continue
            chunk.attempts += 1
            if chunk.attempts > self.retries:
                self._fail(chunk, reason)
            else:
                self.retried += len(chunk.items)
                self._retry.append(chunk)
        w.queue.clear()

    def _nearest_deadline(self) -> float | None:
        nearest: float | None = None
        for w in self._workers.values():
            if w.queue:
                d = self._inflight[w.queue[0]].deadline
                if d is not None and (nearest is None or d < nearest):
                    nearest = d
        return nearest

    def _expire(self) -> None:
        now = time.monotonic()
        for w in list(self._workers.values()):
            if not w.queue:
                continue
            head = self._inflight[w.queue[0]]
            if head.deadline is not None and head.deadline <= now:
                self._stale.add(w.queue[0])
                self._finished(w, w.queue[0])
                self._fail(head, beamlet.TIMEOUT)
                beamlet.demonitor(w.mref, flush=True)
                beamlet.exit(w.ex, beamlet.KILL)  # its node goes with it, and is replaced
                for tag in w.queue:  # innocent bystanders: run again, not counted
                    self._stale.add(tag)
                    self._retry.append(self._inflight.pop(tag))
                w.queue.clear()
                self._workers.pop(w.ex, None)
                self._by_mref.pop(w.mref, None)

    async def _wait(self) -> None:
        inflight, stale, by_mref = self._inflight, self._stale, self._by_mref
        pool_mref = self._pool_mref

        def match(m: Any) -> bool:
            t = type(m)
            if t is tuple:
                return len(m) == 3 and (m[0] in inflight or m[0] == _UP or m[0] in stale)
            if t is Down:
                return m.ref in by_mref or m.ref == pool_mref
            return False

        deadline = self._nearest_deadline()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        msg = await beamlet.receive(match, timeout=wait, default=None)
        if msg is None:
            self._expire()
            return
        if type(msg) is Down:
            if msg.ref == pool_mref:
                await self.aclose()
                raise beamlet.NoProcError(f"the pool {self.pool.server!r} ended: {msg.reason!r}")
            self._lost(by_mref[msg.ref], msg.reason)
            return
        if msg[0] == _UP:
            self._add_worker(msg[1], msg[2])
            return
        tag, values, errors = msg
        if tag in stale:  # the answer of a chunk given up on (timeout): dropped
            stale.discard(tag)
            return
        w = self._workers.get(inflight[tag].worker)  # type: ignore[arg-type]
        chunk = self._finished(w, tag)
        assert chunk is not None
        bad = dict(errors) if errors else {}
        for i, pos in enumerate(chunk.positions):
            if i in bad:
                self._emit(pos, ("exit", bad[i]))
            else:
                self._emit(pos, ("ok", values[i]))


def chunks(items: Sequence[Any], n: int) -> list[list[Any]]:
    """`items` cut into lists of at most `n` (a helper for batching by hand)."""
    return [list(items[i : i + n]) for i in range(0, len(items), n)]
