"""GenServer: a process that keeps state and serves requests (docs/semantics.md §7).

A GenServer is the workhorse behaviour: one process owns a piece of state and everyone
else reaches it through messages. Callers talk to it synchronously with `call` (and get
an answer or a clear failure), asynchronously with `cast`, or with any plain message
(delivered to `handle_info`). The server handles one message at a time, so its state
needs no locks.

Write a subclass and implement the callbacks you need::

    class Stack(GenServer[list[int]]):
        async def init(self, items: list[int]) -> list[int]:
            return items                      # the initial state

        async def handle_call(self, request, from_, state):
            match request:
                case "pop":
                    head, *tail = state
                    return Reply(head, tail)  # answer `head`, new state `tail`

        async def handle_cast(self, request, state):
            match request:
                case ("push", item):
                    return NoReply([item, *state])

    pid = await Stack.start_link([1])
    assert await GenServer.call(pid, "pop") == 1
    GenServer.cast(pid, ("push", 2))

When to use it: anything with state that several processes share (a cache, a
connection, a counter), anything that must serialise access to a resource, and most
workers under a supervisor. For state alone, `Agent` is shorter; for a one-off
computation, `Task`.

Callback results (small dataclasses, §7.3):

* `init(arg)` returns the initial **state** (any value), or `Ok(state, action)` to add
  an action, `Ignore()` (start returns None, server exits `normal`), `Stop(reason)`
  (start fails with `StartError(reason)`, server exits `reason`) or `InitError(reason)`
  (start fails with `StartError(reason)`, server exits `normal` without a crash report —
  OTP 26's `{error, Reason}`). Raising is a crash: start fails with `StartError(Crash)`.
  Returning one of the loop results (`Reply`, `NoReply`, `Continue`) is a bad return.
  If your state itself could be an `Ok`/`Ignore`/`Stop`/`InitError`, wrap it in `Ok`.
* `handle_call` returns `Reply(reply, state[, action])`, `NoReply(state[, action])`
  (answer later with `GenServer.reply(from_, value)`) or `Stop(reason, state[, reply])`.
* `handle_cast`, `handle_info`, `handle_continue` return `NoReply(...)` or
  `Stop(reason, state)`.
* An action is `None`, an idle timeout in seconds (`handle_info(TIMEOUT, state)` runs
  if no message arrives in time, §7.3.1), `HIBERNATE` (a no-op here, §7.3.3) or
  `Continue(arg)` (`handle_continue(arg, state)` runs before the next message, §7.3.2).
* Anything else stops the server with reason `(BAD_RETURN_VALUE, value)` (§7.3.6).
  Raising `E` stops it with `Crash(E, ...)`; `beamlet.exit(R)` stops it with `R`
  (§7.3.7). In every such case `terminate(reason, state)` runs first (§7.8).

Callbacks are `async def` (a plain `def` works too). Missing ones behave as §7.9 says:
`handle_call`/`handle_cast`/`handle_continue` crash the server, `handle_info` logs
the message and drops it, `terminate` does nothing.

Edge cases worth knowing:

* The callback object is created in the server process with `cls()` (no arguments);
  everything the server needs comes through `init(arg)`. `arg`, requests and replies
  are messages: mutable values are copied (§2.2).
* `terminate` runs when a callback asks to stop, crashes or returns garbage, on
  `GenServer.stop`, and when the parent exits while the server traps exits (§7.8). It
  does **not** run when the server is killed, or when an exit signal reaches a server
  that does not trap exits: call `beamlet.process_flag(trap_exit=True)` in `init` if
  cleanup must happen under a supervisor's shutdown.
* A server calling itself (`GenServer.call(beamlet.self(), ...)`) fails at once with
  `CallExit(CALLING_SELF)`; a server calling its own starter from `init` deadlocks
  until the start timeout (§7.1.6).
* Crashes are logged once, as a structured report on the `beamlet` logger
  (`record.beamlet_report`): last message, state (through `format_status`), reason,
  caller and traceback. Reasons `NORMAL`, `SHUTDOWN` and `(SHUTDOWN, _)` are quiet.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, ClassVar, Final, Generic, NoReturn, TypeAlias, TypedDict, TypeVar

from beamlet import _core as api
from beamlet._core import (
    NORMAL,
    TIMEOUT,
    Atom,
    BadArgument,
    BeamletError,
    Crash,
    Down,
    Exit,
    Pid,
    ProcessExit,
    Ref,
    Terminated,
    next_message,
)
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen import (
    ALREADY_STARTED,
    CALLBACK_FAILED,
    GEN_CALL,
    GEN_CAST,
    IN,
    NODEDOWN,
    NOREPLY,
    OUT,
    CallExit,
    Debug,
    From,
    check_name,
    check_timeout,
    exit_reason,
    is_call,
    is_cast,
    is_system,
    run_callback,
    tag_ref,
    where,
)
from beamlet.behaviours.names import ServerRef, Via, unregister_name
from beamlet.behaviours.reasons import is_clean_reason

__all__ = [
    "ALREADY_STARTED",
    "BAD_RETURN_VALUE",
    "CALLBACK_FAILED",
    "HIBERNATE",
    "NODEDOWN",
    "NO_REPLY",
    "CallExit",
    "CallResult",
    "CastResult",
    "Continue",
    "From",
    "GenServer",
    "Ignore",
    "InitError",
    "InitResult",
    "NoReply",
    "Ok",
    "Reply",
    "RequestFailed",
    "RequestId",
    "RequestIds",
    "ServerStatus",
    "Status",
    "Stop",
    "UndefinedCallbackError",
    "abcast",
    "call",
    "cast",
    "check_response",
    "get_state",
    "get_status",
    "receive_response",
    "replace_state",
    "reply",
    "send_request",
    "stop",
    "wait_response",
    "whereis",
]

log = logging.getLogger("beamlet")

S = TypeVar("S")

BAD_RETURN_VALUE: Final = Atom("bad_return_value")
HIBERNATE: Final = Atom("hibernate")
"""Action: hibernate. The BEAM compacts the process; here it is a no-op (§7.3.3)."""


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __copy__(self) -> _Sentinel:
        return self

    def __deepcopy__(self, memo: Any) -> _Sentinel:
        return self


_KEEP: Any = _Sentinel("KEEP_STATE")
_NO_REPLY: Any = _Sentinel("NO_REPLY")
_NOTHING: Any = _Sentinel("NOTHING")


# --- callback results (§7.3) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Continue:
    """Action: run `handle_continue(arg, state)` before reading the next message.

    Examples:
        >>> from beamlet import Continue, GenServer, NoReply, Ok, Reply
        >>> class Lazy(GenServer[str]):
        ...     async def init(self, arg):
        ...         return Ok("starting", Continue("load"))   # start_link returns at once
        ...     async def handle_continue(self, arg, state):
        ...         return NoReply("loaded")                  # runs before any message
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(state, state)
        >>> await GenServer.call(await Lazy.start_link(), "state")
        'loaded'
    """

    arg: Any


Action = int | float | Continue | Atom | None


@dataclass(frozen=True, slots=True)
class Ok(Generic[S]):
    """`init` result: start with `state`, then apply `action` (Erlang `{ok, S, Action}`).

    Examples:
        >>> from beamlet import GenServer, NoReply, Ok, Reply
        >>> class Ticker(GenServer[int]):
        ...     async def init(self, arg):
        ...         return Ok(0, 0.01)             # state 0, idle timeout 0.01 s
        ...     async def handle_info(self, msg, n):
        ...         return NoReply(n + 1)          # msg is beamlet.TIMEOUT
        ...     async def handle_call(self, request, from_, n):
        ...         return Reply(n, n)
        >>> pid = await Ticker.start_link()
        >>> await beamlet.sleep(0.05)
        >>> await GenServer.call(pid, "count") >= 1
        True
    """

    state: S
    action: Action = None


@dataclass(frozen=True, slots=True)
class Ignore:
    """`init` result: do not start; `start` returns None, the server exits `normal`.

    Examples:
        >>> from beamlet import GenServer, Ignore
        >>> class Disabled(GenServer[None]):
        ...     async def init(self, arg):
        ...         return Ignore()
        >>> print(await Disabled.start_link())
        None
    """


@dataclass(frozen=True, slots=True)
class InitError:
    """`init` result: fail the start with `StartError(reason)`; the server exits
    `normal` quietly (OTP 26 `{error, Reason}`, §7.1 row I7).

    Examples:
        >>> from beamlet import GenServer, InitError, StartError
        >>> class NeedsConfig(GenServer[dict]):
        ...     async def init(self, config):
        ...         return config if config else InitError("no config")
        >>> try:
        ...     await NeedsConfig.start_link({})
        ... except StartError as e:
        ...     print(e.reason)
        no config
    """

    reason: Any


@dataclass(slots=True)  # not frozen: built once per call, 3x cheaper
class Reply(Generic[S]):
    """`handle_call` result: answer `reply`, continue with `state`.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> class Bank(GenServer[int]):
        ...     async def init(self, balance):
        ...         return balance
        ...     async def handle_call(self, amount, from_, balance):
        ...         return Reply(balance + amount, balance + amount)  # answer, new state
        >>> pid = await Bank.start_link(10)
        >>> await GenServer.call(pid, 5)
        15
    """

    reply: Any
    state: S
    action: Action = None


@dataclass(slots=True)  # not frozen: built once per call, 3x cheaper
class NoReply(Generic[S]):
    """Continue with `state` without answering (a call can be answered later with
    `GenServer.reply`).

    Examples:
        >>> from beamlet import GenServer, NoReply, Reply
        >>> class Log(GenServer[list]):
        ...     async def init(self, arg):
        ...         return []
        ...     async def handle_cast(self, line, lines):
        ...         return NoReply([*lines, line])
        ...     async def handle_call(self, request, from_, lines):
        ...         return Reply(lines, lines)
        >>> pid = await Log.start_link()
        >>> GenServer.cast(pid, "hello")
        >>> await GenServer.call(pid, "lines")
        ['hello']
    """

    state: S
    action: Action = None


@dataclass(frozen=True, slots=True)
class Stop(Generic[S]):
    """Stop the server with `reason` after `terminate(reason, state)` (§7.3.4-§7.3.5).

    `state` defaults to the current state. From `handle_call`, `reply` (if given) is
    sent to the caller after `terminate` has run. From `init`, only `reason` matters.

    Examples:
        >>> from beamlet import GenServer, Stop
        >>> class OneShot(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         return Stop(beamlet.NORMAL, state, reply="bye")  # answer, then stop
        >>> pid = await OneShot.start_link()
        >>> await GenServer.call(pid, "quit")
        'bye'
        >>> await beamlet.sleep(0.01)
        >>> beamlet.is_alive(pid)
        False
    """

    reason: Any
    state: S = _KEEP
    reply: Any = _NO_REPLY


CallResult: TypeAlias = Reply[S] | NoReply[S] | Stop[S]
"""What `handle_call` returns: mypy checks the new state against the server's `S`."""
CastResult: TypeAlias = NoReply[S] | Stop[S]
"""What `handle_cast`, `handle_info` and `handle_continue` return."""
InitResult: TypeAlias = S | Ok[S] | Ignore | Stop[Any] | InitError
"""What `init` returns: the state itself, or `Ok`/`Ignore`/`Stop`/`InitError`."""


class Status(TypedDict, total=False):
    """What `format_status` receives and returns (Erlang's status map, §7.9)."""

    state: Any
    message: Any
    reason: Any
    log: list[Any]


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What `get_status` returns (Erlang's `sys:get_status/1`)."""

    pid: Pid
    module: type
    name: Any
    parent: Pid
    status: str
    state: Any


_new_tuple = tuple.__new__


class UndefinedCallbackError(BeamletError, NotImplementedError):
    """A message arrived for a callback the GenServer does not implement (§7.9)."""


# --- the client API --------------------------------------------------------------------

call = gen.call
reply = gen.reply


def cast(server: ServerRef, request: Any) -> None:
    """Send `request` to `handle_cast` without waiting (§7.6).

    Never fails: a dead pid, an unregistered name or a missing `Via` key is ignored.

    Examples:
        >>> from beamlet import GenServer, NoReply, Reply
        >>> class Stack(GenServer[list]):
        ...     async def init(self, items):
        ...         return items
        ...     async def handle_cast(self, item, items):
        ...         return NoReply([item, *items])
        ...     async def handle_call(self, request, from_, items):
        ...         return Reply(items, items)
        >>> pid = await Stack.start_link([])
        >>> GenServer.cast(pid, 1)
        >>> GenServer.cast(pid, 2)
        >>> await GenServer.call(pid, "items")
        [2, 1]
    """
    msg = (GEN_CAST, request)
    if type(server) is Pid:  # the common case, first
        try:
            api.send(server, msg)
        except (BadArgument, LookupError):
            pass
        return
    if type(server) is Via:
        try:
            server.registry.send(server.key, msg)
        except Exception:
            pass
        return
    dest = where(server)
    if dest is None:
        return
    try:
        api.send(dest, msg)
    except (BadArgument, LookupError):
        pass


def abcast(name: str | Atom, request: Any, nodes: list[Any] | None = None) -> None:
    """Cast `request` to the server registered as `name` on each of `nodes` (default:
    this node only). Never fails (§7.6)."""
    for node in nodes if nodes is not None else [api.node_name()]:
        cast((Atom(name), Atom(node)), request)


async def stop(server: ServerRef, reason: Any = NORMAL, timeout: float | None = None) -> None:
    """Stop the server with `reason` and wait until it has terminated (§7.7).

    `terminate(reason, state)` runs in the server. Raises `CallExit` with cause `NOPROC`
    if there is no such server, `TIMEOUT` if it has not ended within `timeout` seconds,
    `CALLING_SELF` when a server stops itself this way, or the reason it ended with if
    that is not `reason` (e.g. `terminate` raised). No link is needed.

    Examples:
        >>> from beamlet import GenServer
        >>> class Idle(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def terminate(self, reason, state):
        ...         print("terminate", reason)
        >>> pid = await Idle.start()             # not linked: its exit reason spares us
        >>> await GenServer.stop(pid, beamlet.SHUTDOWN, timeout=1.0)
        terminate shutdown
        >>> beamlet.is_alive(pid)
        False
    """
    await gen.stop(server, reason, timeout)


def whereis(server: ServerRef) -> Pid | tuple[Atom, Atom] | None:
    """The pid behind a server reference now, `(name, node)` for a name on another
    node, or None (§7.11).

    Examples:
        >>> from beamlet import GenServer
        >>> class Idle(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        >>> pid = await Idle.start_link(name="idle")
        >>> GenServer.whereis("idle") == pid
        True
    """
    return where(server)


async def get_state(server: ServerRef, timeout: float | None = 5.0) -> Any:
    """The server's current state (Erlang's `sys:get_state`); for debugging."""
    from beamlet.behaviours import sys

    return await sys.get_state(server, timeout)


async def replace_state(
    server: ServerRef, fn: Callable[[Any], Any], timeout: float | None = 5.0
) -> Any:
    """Replace the server's state with `fn(state)` and return the new state (Erlang's
    `sys:replace_state`). If `fn` raises, the state is unchanged and `CallExit` is
    raised with cause `(CALLBACK_FAILED, Crash)`."""
    from beamlet.behaviours import sys

    return await sys.replace_state(server, fn, timeout)


async def get_status(server: ServerRef, timeout: float | None = 5.0) -> ServerStatus:
    """Pid, module, name, parent and the state as `format_status` shows it (Erlang's
    `sys:get_status`)."""
    from beamlet.behaviours import sys

    status: ServerStatus = await sys.server_status(server, timeout)
    return status


# --- asynchronous requests (gen_server:send_request/receive_response) ------------------


NO_REPLY: Final[Any] = _Sentinel("NO_REPLY")
"""What `check_response` returns for a message that is not a response it knows."""


@dataclass(frozen=True, slots=True)
class RequestId:
    """A request sent with `send_request`; `server` is the reference it was sent to."""

    ref: Ref
    server: Any


class RequestFailed(BeamletError):
    """The server of an asynchronous request died (or did not exist) before replying:
    Erlang's `{error, {Reason, ServerRef}}`. `.reason` is the cause, `.server` the
    reference the request was sent to."""

    def __init__(self, reason: Any, server: Any) -> None:
        super().__init__(f"request to {server!r} failed: {reason!r}")
        self.reason = reason
        self.server = server


class RequestIds:
    """An immutable collection of request ids, each with a label (Erlang's
    `reqids_*`): pass it to `receive_response`, `wait_response` or `check_response` to
    handle whichever response comes first.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> from beamlet.behaviours.gen_server import RequestIds
        >>> class Echo(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(request, state)
        >>> a, b = await Echo.start_link(), await Echo.start_link()
        >>> reqs = RequestIds().add(GenServer.send_request(a, 1), "a")
        >>> reqs = reqs.add(GenServer.send_request(b, 2), "b")
        >>> value, label, reqs = await GenServer.receive_response(reqs, timeout=1.0)
        >>> value, label, len(reqs)
        (1, 'a', 1)
    """

    __slots__ = ("_map",)

    def __init__(self, entries: dict[Ref, tuple[RequestId, Any]] | None = None) -> None:
        self._map: dict[Ref, tuple[RequestId, Any]] = dict(entries or {})

    def add(self, req: RequestId, label: Any) -> RequestIds:
        """A new collection with `req` (labelled `label`) added; a request already in
        the collection raises `BadArgument`."""
        if req.ref in self._map:
            raise BadArgument(f"{req!r} is already in the collection")
        new = RequestIds(self._map)
        new._map[req.ref] = (req, label)
        return new

    def without(self, req: RequestId) -> RequestIds:
        new = RequestIds(self._map)
        new._map.pop(req.ref, None)
        return new

    def to_list(self) -> list[tuple[RequestId, Any]]:
        return list(self._map.values())

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"RequestIds({self.to_list()!r})"


CollectionResult = tuple[tuple[str, Any], Any, RequestIds]
"""`(("reply", value) | ("error", (reason, server)), label, remaining_collection)`."""


def send_request(server: ServerRef, request: Any) -> RequestId:
    """Send `request` to `handle_call` without waiting; collect the reply later with
    `receive_response` / `wait_response` / `check_response` (gen_server:send_request).

    The server is monitored through an alias from now on, as in `call` (§4.5): a server
    that does not exist produces an immediate failure at collection time. A `Via` name
    that is not registered raises `BadArgument` here, as Erlang does.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> class Echo(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(request, state)
        >>> req = GenServer.send_request(await Echo.start_link(), "hi")
        >>> # ... other work meanwhile ...
        >>> await GenServer.receive_response(req, timeout=1.0)
        'hi'
    """
    if type(server) is Via:
        dest: Any = server.registry.whereis_name(server.key)
        if dest is None:
            raise BadArgument(f"no process registered as {server!r}")
    else:
        dest = where(server)
    me = api.self()
    target: Any = dest if dest is not None else server  # unknown local name: DOWN noproc
    mref = api.monitor(target, alias="demonitor")
    if dest is not None:
        gen.send_monitored(dest, (GEN_CALL, (me, gen.alias_tag(mref)), request), mref)
    return RequestId(mref, server)


def _response(msg: Any, entry: tuple[RequestId, Any]) -> tuple[str, Any]:
    req = entry[0]
    api.demonitor(req.ref, flush=True)
    if type(msg) is tuple:
        return ("reply", msg[1])
    return ("error", (msg.reason, req.server))  # the raw DOWN reason, as OTP


def _one_match(ref: Ref) -> Callable[[Any], bool]:
    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and tag_ref(m[0]) == ref
        return t is Down and m.ref == ref

    return match


def _many_match(refs: dict[Ref, Any]) -> Callable[[Any], bool]:
    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple and len(m) == 2:
            r = tag_ref(m[0])
            return type(r) is Ref and r in refs
        return t is Down and m.ref in refs

    return match


async def _collect(
    reqs: RequestId | RequestIds, timeout: Any, delete: bool, *, abandon: bool
) -> Any:
    t = check_timeout(timeout, "timeout", allow_zero=True)
    if type(reqs) is RequestId:
        msg = await api.receive(_one_match(reqs.ref), timeout=t, default=_NOTHING)
        if msg is _NOTHING:
            if abandon:
                api.demonitor(reqs.ref, flush=True)
            raise TimeoutError(f"no response to {reqs!r} within {timeout} s")
        kind, value = _response(msg, (reqs, None))
        if kind == "reply":
            return value
        raise RequestFailed(*value)
    assert isinstance(reqs, RequestIds)
    if not reqs._map:
        return None
    msg = await api.receive(_many_match(reqs._map), timeout=t, default=_NOTHING)
    if msg is _NOTHING:
        if abandon:
            for ref in reqs._map:
                api.demonitor(ref, flush=True)
        raise TimeoutError(f"no response to any of {len(reqs)} requests within {timeout} s")
    return _collected(msg, reqs, delete)


def _collected(msg: Any, reqs: RequestIds, delete: bool) -> CollectionResult:
    ref = tag_ref(msg[0]) if type(msg) is tuple else msg.ref
    entry = reqs._map[ref]
    result = _response(msg, entry)
    return (result, entry[1], reqs.without(entry[0]) if delete else reqs)


async def receive_response(
    reqs: RequestId | RequestIds, timeout: float | None = None, delete: bool = True
) -> Any:
    """Wait for the response to a request (or to any request of a collection).

    For a `RequestId`: returns the reply; raises `RequestFailed` if the server died
    first, `TimeoutError` after `timeout` seconds — the request is then **abandoned**
    (a late reply is dropped). For `RequestIds`: returns `(("reply", value) | ("error",
    (reason, server)), label, rest)` where `rest` lacks that request if `delete`; None
    if the collection is empty; `TimeoutError` abandons every request in it.
    """
    return await _collect(reqs, timeout, delete, abandon=True)


async def wait_response(
    reqs: RequestId | RequestIds, timeout: float | None = None, delete: bool = True
) -> Any:
    """Like `receive_response`, but a timeout does not abandon the request(s): you can
    wait again later."""
    return await _collect(reqs, timeout, delete, abandon=False)


def check_response(msg: Any, reqs: RequestId | RequestIds, delete: bool = True) -> Any:
    """Is the message you received a response to `reqs`? Returns `NO_REPLY` if not;
    otherwise what `receive_response` would (the reply or `RequestFailed` for a single
    request, `(result, label, rest)` for a collection, None for an empty one)."""
    if type(reqs) is RequestId:
        if not _one_match(reqs.ref)(msg):
            return NO_REPLY
        kind, value = _response(msg, (reqs, None))
        if kind == "reply":
            return value
        raise RequestFailed(*value)
    assert isinstance(reqs, RequestIds)
    if not reqs._map:
        return None
    if not _many_match(reqs._map)(msg):
        return NO_REPLY
    return _collected(msg, reqs, delete)


# --- the behaviour ---------------------------------------------------------------------


class GenServer(Generic[S]):
    """Base class of generic servers; `S` is the type of the state.

    Subclass it, implement the callbacks, start it with `start_link` (under a
    supervisor: `child_spec`). See the module documentation for the callback results.

    Child-spec defaults can be set per class, like Elixir's `use GenServer, restart:`::

        class Worker(GenServer[None], restart="transient", shutdown=10.0): ...

    Examples:
        >>> from beamlet import GenServer, NoReply, Reply
        >>> class Counter(GenServer[int]):
        ...     async def init(self, start):
        ...         return start
        ...     async def handle_call(self, request, from_, count):
        ...         return Reply(count, count)
        ...     async def handle_cast(self, request, count):
        ...         return NoReply(count + 1)
        >>> pid = await Counter.start_link(0, name="counter")
        >>> GenServer.cast("counter", "incr")
        >>> await GenServer.call("counter", "get")
        1
    """

    _child_spec_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **spec: Any) -> None:
        allowed = {"id", "restart", "shutdown", "type", "significant", "modules"}
        unknown = set(spec) - allowed
        if unknown:
            raise TypeError(f"unknown child spec options for {cls.__name__}: {sorted(unknown)}")
        super().__init_subclass__()
        cls._child_spec_defaults = {**cls._child_spec_defaults, **spec}

    # --- callbacks (override) ---

    def init(self, arg: Any) -> InitResult[S] | Awaitable[InitResult[S]]:
        """Set up the server; return the initial state (or `Ok`/`Ignore`/`Stop`/
        `InitError`). Runs in the new process before `start_link` returns."""
        raise UndefinedCallbackError(f"GenServer {type(self).__qualname__} does not implement init")

    def handle_call(
        self, request: Any, from_: From, state: S
    ) -> CallResult[S] | Awaitable[CallResult[S]]:
        """Handle `GenServer.call(server, request)`; return `Reply`, `NoReply` or `Stop`."""
        raise UndefinedCallbackError(
            f"attempted to call GenServer {api.self()!r} ({type(self).__qualname__}) "
            f"but no handle_call was defined (request: {request!r})"
        )

    def handle_cast(self, request: Any, state: S) -> CastResult[S] | Awaitable[CastResult[S]]:
        """Handle `GenServer.cast(server, request)`; return `NoReply` or `Stop`."""
        raise UndefinedCallbackError(
            f"attempted to cast GenServer {api.self()!r} ({type(self).__qualname__}) "
            f"but no handle_cast was defined (request: {request!r})"
        )

    def handle_info(self, msg: Any, state: S) -> CastResult[S] | Awaitable[CastResult[S]]:
        """Handle any other message (DOWNs, trapped EXITs, timers, `TIMEOUT`). The
        default logs the message and drops it (§7.9)."""
        log.warning(
            "GenServer %r (%s) received unexpected message in handle_info: %s",
            api.self(),
            type(self).__qualname__,
            gen.safe_repr(msg),
            extra={"beamlet_report": {"label": "GenServer no_handle_info", "message": msg}},
        )
        return NoReply(state)

    def handle_continue(self, arg: Any, state: S) -> CastResult[S] | Awaitable[CastResult[S]]:
        """Run after a callback returned the action `Continue(arg)`."""
        raise UndefinedCallbackError(
            f"GenServer {type(self).__qualname__} returned Continue({arg!r}) "
            "but does not implement handle_continue"
        )

    def terminate(self, reason: Any, state: S) -> Any:
        """Clean up before the server exits with `reason`; the return value is ignored
        (it may be `async def`). Not called when the server is killed, or when an exit
        signal ends a server that does not trap exits (§7.8)."""
        return None

    def format_status(self, status: Status) -> Status:
        """Adjust what crash reports and `get_status` show (e.g. hide secrets).
        Receives and returns a `Status` dict; must not raise (if it does, reports show a
        placeholder instead)."""
        return status

    # --- starting ---

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: str | Atom | Via | None = None,
        timeout: float | None = None,
    ) -> Pid | None:
        """Start a server linked to the caller and wait until `init` has run (§7.1).

        Returns the pid, or None if `init` returned `Ignore()`. Raises
        `StartError(reason)` if it failed: `(ALREADY_STARTED, pid)` when `name` is
        taken, the `Stop` reason, the `Crash` of a raising `init`, `TIMEOUT` when
        `init` took longer than `timeout` seconds (the server is then killed). A caller
        that does not trap exits is itself ended by the link when the server exits with
        an abnormal reason (§7.1.2); one that traps exits gets the error, and the
        `Exit` message of the failed start is consumed (§7.1.3).

        This is the start function of `child_spec` (the contract in child_spec.py).

        Examples:
            >>> from beamlet import GenServer, Reply
            >>> class Stack(GenServer[list]):
            ...     async def init(self, items):
            ...         return items
            ...     async def handle_call(self, request, from_, items):
            ...         return Reply(items[0], items[1:])
            >>> pid = await Stack.start_link([1, 2], name="stack")
            >>> await GenServer.call("stack", "pop")
            1
        """
        return await _start(cls, arg, name, timeout, link=True)

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: str | Atom | Via | None = None,
        timeout: float | None = None,
    ) -> Pid | None:
        """Like `start_link` without the link: the caller is never affected by the
        server's exit.

        Examples:
            >>> from beamlet import GenServer, Ignore
            >>> class Optional(GenServer[None]):
            ...     async def init(self, enabled):
            ...         return None if enabled else Ignore()
            >>> await Optional.start(False) is None
            True
        """
        return await _start(cls, arg, name, timeout, link=False)

    @classmethod
    def child_spec(cls, arg: Any = None, *, name: Any = None, **overrides: Any) -> ChildSpec:
        """How a supervisor starts this server: `cls.start_link(arg, name=name)`,
        permanent, 5 s shutdown, id `cls` (§7.11). Other keyword arguments override
        ChildSpec fields.

        Examples:
            >>> from beamlet import GenServer, Supervisor
            >>> class Worker(GenServer[int]):
            ...     async def init(self, n):
            ...         return n
            >>> spec = Worker.child_spec(1, name="w", id="w1", restart="transient")
            >>> spec.id, spec.restart
            ('w1', 'transient')
            >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
            >>> await beamlet.sys.get_state("w")
            1
        """
        start = cls.start_link if name is None else functools.partial(cls.start_link, name=name)
        spec = ChildSpec(id=cls, start=start, args=(arg,), shutdown=5.0)
        changes = {**cls._child_spec_defaults, **overrides}
        return spec.with_overrides(**changes) if changes else spec

    # --- client API (module functions, also reachable as GenServer.call etc.) ---

    call = staticmethod(call)
    send_request = staticmethod(send_request)
    receive_response = staticmethod(receive_response)
    wait_response = staticmethod(wait_response)
    check_response = staticmethod(check_response)
    cast = staticmethod(cast)
    abcast = staticmethod(abcast)
    reply = staticmethod(reply)
    stop = staticmethod(stop)
    whereis = staticmethod(whereis)


# --- start protocol (§7.1) -------------------------------------------------------------


async def _start(
    cls: type[GenServer[Any]], arg: Any, name: Any, timeout: Any, *, link: bool
) -> Pid | None:
    check_name(name)
    t = check_timeout(timeout, "start timeout", allow_zero=True)
    # The name travels by reference: a Via's registry object is shared, not copied.
    # The new process owns the _Server from here on (its run() is the process body).
    server = _Server(cls, gen.link_parent() if link else None, name)
    return await gen.start(server.run, (arg,), link=link, timeout=t)


def _valid_action(action: Any) -> bool:
    if action is None or action is HIBERNATE or type(action) is Continue:
        return True
    t = type(action)
    return (t is int or t is float) and action >= 0 and math.isfinite(action)


class _Server:
    """The server's side: the callback module instance, its state and the loop. It is
    also what `gen.handle_system_msg` serves system messages with (`system_*`)."""

    __slots__ = ("cls", "debug", "last", "mod", "name", "parent", "state")

    def __init__(self, cls: type[GenServer[Any]], parent: Pid | None, name: Any) -> None:
        self.cls = cls
        self.mod: GenServer[Any] | None = None
        self.parent = parent
        self.name = name
        self.state: Any = None
        self.last: Any = _NOTHING
        self.debug: Debug | None = None

    def release_name(self) -> None:
        if self.name is not None:
            unregister_name(self.name)

    async def init_failed(self, ack: Ref, reason: Any) -> NoReturn:
        """Release the name, tell the starter, exit with `reason` (§7.1.1)."""
        self.release_name()
        gen.ack_start(ack, gen.ERROR, reason)
        if not is_clean_reason(reason):
            self.report(reason, None, in_init=True)
        raise ProcessExit(reason)

    async def start(self, arg: Any, ack: Ref) -> Any:
        """Register the name, run `init`, tell the starter (§7.1); the first action, or
        `_NOTHING` if the server is not to run."""
        me = api.self()
        if self.parent is None:
            self.parent = me
        if not await gen.register_or_ack(self.name, ack):  # §7.1 step 2: exit normal
            self.name = None  # not ours to release
            return _NOTHING
        try:
            self.mod = self.cls()
            result = await run_callback(self.mod.init, arg)
        except Terminated:
            raise
        except (Exception, asyncio.CancelledError, ProcessExit) as e:  # I8, I9
            await self.init_failed(ack, exit_reason(e))
        rt = type(result)
        if rt is Ignore:  # I5
            self.release_name()
            gen.ack_start(ack, gen.IGNORE)
            return _NOTHING
        if rt is Stop:  # I6
            await self.init_failed(ack, result.reason)
        if rt is InitError:  # I7: quiet, exit normal
            self.release_name()
            gen.ack_start(ack, gen.ERROR, result.reason)
            return _NOTHING
        action: Any = None
        if rt is Ok:
            state, action = result.state, result.action
            if not _valid_action(action):
                await self.init_failed(ack, (BAD_RETURN_VALUE, result))
        elif rt in (Reply, NoReply, Continue):  # I10: a loop result is not an init result
            await self.init_failed(ack, (BAD_RETURN_VALUE, result))
        else:
            state = result
        self.state = state
        gen.ack_start(ack, gen.OK, me)  # I1-I4
        return action

    async def run(self, arg: Any, ack: Ref) -> None:
        """The process: `start`, then handle messages one at a time, in mailbox order
        (§7.2). One coroutine frame for both: every message resumes through it."""
        action = await self.start(arg, ack)
        if action is _NOTHING:
            return
        mod = self.mod
        assert mod is not None
        # A behaviour built on GenServer (GenStage) may take its own messages: an `async
        # def gen_own_messages(server)` on its callback module handles them in mailbox
        # order and returns the first it leaves to this loop; it runs only while the loop
        # would wait for any message (no timeout, no continue) and no sys debug is on,
        # and what it raises is a callback's exception (§7.3.7).
        own = getattr(mod, "gen_own_messages", None)
        while True:
            if type(action) is Continue:  # §7.3.2: before any message
                self.last = action
                action = await self.invoke(mod.handle_continue, None, action.arg, self.state)
                continue
            if action is None or action is HIBERNATE:
                if own is None or self.debug is not None:
                    msg = await next_message()
                else:  # a behaviour built on GenServer takes its own messages (GenStage)
                    try:
                        msg = await own(self)
                    except Terminated:
                        raise
                    except (Exception, asyncio.CancelledError, ProcessExit) as e:
                        await self.crashed(e, None)
            else:  # §7.3.1: idle timeout, cancelled by any message
                msg = await api.receive(timeout=action, default=_NOTHING)
                if msg is _NOTHING:
                    msg = TIMEOUT
            self.last = msg
            dbg = self.debug
            t = type(msg)
            n = len(msg) if t is tuple else 0
            if (
                dbg is not None
                and not (n == 3 and is_system(msg))
                and not (t is Exit and msg.pid == self.parent)
            ):  # as gen_server's decode_msg: system messages and the parent's EXIT are no `in`
                dbg.event(IN, msg)
            if n == 3 and (
                (msg[0] is GEN_CALL and type(msg[1]) is tuple and len(msg[1]) == 2) or is_call(msg)
            ):  # the hot path: `invoke` and `reply`, inlined for calls
                frm = _new_tuple(From, msg[1])
                try:
                    r: Any = mod.handle_call(msg[2], frm, self.state)
                    rt = type(r)  # a plain `def` returns a Reply: no isawaitable()
                    if rt is CoroutineType or (rt is not Reply and inspect.isawaitable(r)):
                        r = await r
                except Terminated:
                    raise
                except (Exception, asyncio.CancelledError, ProcessExit) as e:
                    await self.crashed(e, frm)
                if type(r) is Reply and r.action is None and dbg is None:
                    self.state = r.state
                    action = None
                    if not gen.answer_local(frm[0], frm[1], r.reply):
                        reply(frm, r.reply)
                else:
                    action = await self.result(r, frm)
            else:
                if n == 2 and (msg[0] is GEN_CAST or is_cast(msg)):
                    fn: Callable[..., Any] = mod.handle_cast
                    arg = msg[1]
                elif t is Exit and msg.pid == self.parent:
                    # §7.2: EXIT from the parent (we trap exits): terminate, exit with R
                    await self.stop(msg.reason, None)
                elif n == 3 and is_system(msg):
                    await gen.handle_system_msg(self, From(*msg[1]), msg[2])
                    action = None
                    continue
                else:
                    fn = mod.handle_info
                    arg = msg
                try:  # `invoke`, inlined for casts and info messages (GenStage's traffic)
                    r = fn(arg, self.state)
                    rt = type(r)
                    if rt is CoroutineType or (rt is not NoReply and inspect.isawaitable(r)):
                        r = await r
                except Terminated:
                    raise
                except (Exception, asyncio.CancelledError, ProcessExit) as e:
                    await self.crashed(e, None)
                if type(r) is NoReply and r.action is None and dbg is None:
                    self.state = r.state
                    action = None
                else:
                    action = await self.result(r, None)

    async def invoke(self, fn: Callable[..., Any], from_: From | None, *args: Any) -> Any:
        """Run one callback; apply its result; return the next action (§7.3)."""
        try:
            r = fn(*args)
            if type(r) is CoroutineType or inspect.isawaitable(r):
                r = await r
        except Terminated:
            raise
        except (Exception, asyncio.CancelledError, ProcessExit) as e:
            await self.crashed(e, from_)
        return await self.result(r, from_)

    async def crashed(self, e: BaseException, from_: From | None) -> NoReturn:
        """A callback raised: stop with `R` for exit(R), else `{E, Stack}` (§7.3.7)."""
        await self.stop(exit_reason(e), from_)

    async def result(self, r: Any, from_: From | None) -> Any:
        """Apply a callback's result; return the next action (§7.3)."""
        t = type(r)
        dbg = self.debug
        if t is NoReply:
            if _valid_action(r.action):
                self.state = r.state
                if dbg is not None:
                    dbg.event(NOREPLY, r.state)
                return r.action
        elif t is Reply:
            if from_ is not None and _valid_action(r.action):
                reply(from_, r.reply)
                self.state = r.state
                if dbg is not None:
                    dbg.event(OUT, r.reply, from_.pid, r.state)
                return r.action
        elif t is Stop and (r.reply is _NO_REPLY or from_ is not None):
            if r.state is not _KEEP:
                self.state = r.state
            if r.reply is not _NO_REPLY:
                await self.stop(r.reason, from_, r.reply)  # §7.3.4
            await self.stop(r.reason, from_)  # §7.3.5
        await self.stop((BAD_RETURN_VALUE, r), from_)  # §7.3.6

    # --- sys (gen.SystemServer) ---

    def system_name(self) -> Any:
        return self.name

    def system_get_state(self) -> Any:
        return self.state

    async def system_replace_state(self, fn: Callable[[Any], Any]) -> Any:
        new = await run_callback(fn, self.state)
        self.state = new
        return new

    def system_status(self) -> tuple[Any, Any]:
        return self.cls, self.formatted(None, None).get("state")

    async def system_terminate(self, reason: Any) -> NoReturn:
        await self.stop(reason, None)

    async def stop(self, reason: Any, from_: From | None, reply_value: Any = _NO_REPLY) -> NoReturn:
        """terminate(reason, state), then the reply if any (even if terminate raised),
        then exit; a terminate that raises changes the exit reason (§7.8)."""
        final = reason
        mod = self.mod
        assert mod is not None
        try:
            await run_callback(mod.terminate, reason, self.state)
        except Terminated:
            raise
        except (Exception, asyncio.CancelledError, ProcessExit) as e:
            final = exit_reason(e)
        if reply_value is not _NO_REPLY and from_ is not None:
            reply(from_, reply_value)
        if not is_clean_reason(final):
            self.report(final, from_)
        raise ProcessExit(final)

    def formatted(self, reason: Any, message: Any) -> Status:
        status: Status = {"state": self.state, "message": message, "reason": reason, "log": []}
        mod = self.mod
        if mod is None or type(mod).format_status is GenServer.format_status:
            return status
        try:
            out = mod.format_status(Status(**status))
            if not isinstance(out, dict):
                raise TypeError(f"format_status returned {out!r}, not a dict")
            return {**status, **out}
        except Exception:
            placeholder = f"{self.cls.__qualname__}.format_status crashed"
            return {"state": placeholder, "message": message, "reason": reason, "log": []}

    def report(self, reason: Any, from_: From | None, *, in_init: bool = False) -> None:
        """One structured crash report per abnormal exit (§7.10)."""
        last = None if in_init or self.last is _NOTHING else self.last
        if last is not None and (is_call(last) or is_cast(last)):
            last = last[-1]
        shown = self.formatted(reason, last)
        tb = reason.formatted if type(reason) is Crash else ""
        report = {
            "label": "GenServer init failed" if in_init else "GenServer terminating",
            "pid": api.self(),
            "name": self.name,
            "module": self.cls,
            "last_message": shown.get("message"),
            "state": shown.get("state"),
            "reason": shown.get("reason"),
            "client": from_.pid if from_ is not None else None,
            "traceback": tb,
        }
        what = "failed to start" if in_init else "terminating"
        client = f"\n** Client {from_.pid!r} was calling" if from_ is not None else ""
        log.error(
            "GenServer %r (%s) %s\n** Last message in was %s\n** When server state == %s\n"
            "** Reason for termination == %s%s%s",
            api.self(),
            self.cls.__qualname__,
            what,
            gen.safe_repr(report["last_message"]),
            gen.safe_repr(report["state"]),
            gen.safe_repr(report["reason"]),
            client,
            f"\n{tb.rstrip()}" if tb else "",
            extra={"beamlet_report": report},
        )
