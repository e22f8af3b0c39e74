"""The generic process layer every behaviour is built on (OTP's `gen.erl`, with
`proc_lib`'s start acknowledgement and the system messages of `sys.erl`).

One copy of each protocol, used by GenServer, Supervisor, DynamicSupervisor, Registry
partitions, Agent and Task.Supervisor (the last four are GenServers, as in OTP/Elixir):

* **start** (§7.1): `start(body, args, link=, timeout=)` spawns `body(*args, ack)` and
  waits for `ack_start(ack, kind, value)`, the new process's answer, with a timeout (the
  process is killed after it) and an alias as the reply address (a late ack is dropped).
* **call** (§4.5): `call(server, request, timeout)` sends `{'$gen_call', {Pid, Tag},
  Request}` and waits for `{Tag, Reply}`. Calls to a process of this node run on the
  kernel's fused primitive (`_core/request.py`); the rest (other nodes, `Via` names)
  monitor with an alias and receive, as gen:call does. `reply(from_, value)` answers.
* **stop** (§7.7): `{system, From, {terminate, Reason}}`, then wait for the DOWN.
* **system messages**: `{system, From, Request}` as `sys.erl` sends them; a server hands
  them to `handle_system_msg` (get_state, replace_state, get_status, suspend/resume,
  debug: trace/log/statistics, terminate). `beamlet.behaviours.sys` is the client.
* **names** (§5.5): local names, `Via`, and `Global` (a hook for a global registry).
* **crash reasons** (§1.6): `crash_reason(exc)`: the `Crash` of an exception, with the
  traceback's frames dropped once formatted, so a dead process's locals can be freed.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import logging
import math
import reprlib
import sys as _sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Final, NamedTuple, NoReturn, Protocol

from beamlet import _core as api
from beamlet._core import (
    CALLING_SELF,
    KILL,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    TIMEOUT,
    Atom,
    BadArgument,
    BeamletError,
    Crash,
    Down,
    Exit,
    ImproperList,
    InvalidTimeout,
    NodeVar,
    Pid,
    ProcessExit,
    Ref,
    Terminated,
    answer,
    make_call,
)
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.names import Global, ServerRef, Via, register_name, resolve

__all__ = [
    "ALREADY_STARTED",
    "GEN_CALL",
    "GEN_CAST",
    "NODEDOWN",
    "SYSTEM",
    "AlreadyStarted",
    "CallExit",
    "Debug",
    "From",
    "Global",
    "SystemServer",
    "Via",
    "ack_start",
    "call",
    "check_name",
    "check_timeout",
    "crash_reason",
    "exit_reason",
    "handle_system_msg",
    "lookup_function",
    "reply",
    "start",
    "stop",
    "system_call",
]

log = logging.getLogger("beamlet")

# Erlang's wire shapes (docs/protocol.md §6.3): Erlang and Elixir peers call a beamlet
# server, and are called by one, with these.
GEN_CALL: Final = Atom("$gen_call")
GEN_CAST: Final = Atom("$gen_cast")
SYSTEM: Final = Atom("system")
ALIAS: Final = Atom("alias")
TERMINATE: Final = Atom("terminate")
NODEDOWN: Final = Atom("nodedown")
ALREADY_STARTED: Final = Atom("already_started")
OK: Final = Atom("ok")
ERROR: Final = Atom("error")
IGNORE: Final = Atom("ignore")
CALLBACK_FAILED: Final = Atom("callback_failed")

_INF: Final = math.inf
_new_tuple = tuple.__new__


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


_NOTHING: Final[Any] = _Nothing()


class From(NamedTuple):
    """Who is waiting for a reply: the caller's pid and the alias the reply goes to
    (Erlang's `From = {Pid, Tag}`, which is what it encodes as for other nodes).

    Opaque: store it, pass it to another process, give it to `GenServer.reply` (§7.5).

    Examples:
        >>> from beamlet import GenServer, NoReply
        >>> async def helper(from_):
        ...     GenServer.reply(from_, "from the helper")
        >>> class Delegate(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         beamlet.spawn(helper, from_)       # someone else answers
        ...         return NoReply(state)
        >>> await GenServer.call(await Delegate.start_link(), "job")
        'from the helper'
    """

    pid: Pid | None
    tag: Any  # Erlang's reply tag: [alias | Ref] (an ImproperList), or a plain Ref


class CallExit(ProcessExit):
    """A synchronous request failed: Erlang's `exit({Cause, {M, F, A}})` in the caller.

    Raised by `GenServer.call`, `GenServer.stop`, `Task.await_`, the supervisors' calls
    and `sys`. It is a `ProcessExit`, so if the caller does not catch it the caller ends
    with `.reason == (cause, mfa)`, as in Erlang. `.cause` is the bare cause: `NOPROC`,
    `TIMEOUT`, `CALLING_SELF`, `(NODEDOWN, node)` or the server's exit reason.

    Examples:
        >>> from beamlet import CallExit, GenServer, NoReply
        >>> class Silent(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         return NoReply(state)              # never answers
        >>> pid = await Silent.start_link()
        >>> try:
        ...     await GenServer.call(pid, "hello", timeout=0.01)
        ... except CallExit as e:
        ...     print(e.cause)
        timeout
    """

    def __init__(self, cause: Any, mfa: tuple[Any, ...]) -> None:
        super().__init__((cause, mfa))
        self.cause = cause
        self.mfa = mfa

    def __str__(self) -> str:
        return f"{self.mfa[0] if self.mfa else '?'} failed: {self.cause!r}"


class AlreadyStarted(StartError):
    """A start found its name taken, or a supervisor's child id running: Erlang's
    `{error, {already_started, Pid}}`. `.pid` is the running process."""

    def __init__(self, pid: Pid) -> None:
        super().__init__((ALREADY_STARTED, pid))
        self.pid = pid


# --- small shared helpers --------------------------------------------------------------


def crash_reason(exc: BaseException) -> Crash:
    """The exit reason of a process ended by `exc` (Erlang's `{E, Stack}`, §1.6).

    The traceback is formatted (for the crash report) and its frames are dropped: they
    would keep the dead process's locals alive as long as the reason lives."""
    tb = exc.__traceback__
    frames = traceback.extract_tb(tb) if tb is not None else []
    formatted = "".join(traceback.format_exception(type(exc), exc, tb))
    stack = tuple((f.filename, f.name, f.lineno or 0) for f in frames)
    exc.__traceback__ = None
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            linked.__traceback__ = None
    return Crash(exc, stack, formatted)


def exit_reason(exc: BaseException) -> Any:
    """`R` for `beamlet.exit(R)`, else the exception's `Crash`."""
    return exc.reason if isinstance(exc, ProcessExit) else crash_reason(exc)


def check_timeout(value: Any, what: str, *, allow_zero: bool) -> float | None:
    """Seconds as a float, or None for infinity; anything else raises InvalidTimeout."""
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTimeout(f"{what} must be a number of seconds or None, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidTimeout(f"{what} must be {bound} seconds or None, not {value!r}")
    return float(value)


def check_name(name: Any) -> None:
    """A start's `name=`: None, a non-empty str/Atom, a `Via` or a `Global`."""
    if name is None or type(name) is Via or type(name) is Global:
        return
    if type(name) is str or type(name) is Atom:
        if not name:
            raise BadArgument("a server name cannot be empty")
        return
    raise BadArgument(
        f"a server name must be None, a str/Atom (local name), a Via or a Global, not {name!r}"
    )


def where(server: Any) -> Pid | tuple[Atom, Atom] | None:
    """The pid (or remote `(name, node)`) behind a server reference now, or None."""
    try:
        return resolve(server)
    except TypeError:
        raise BadArgument(f"not a server reference: {server!r}") from None


def down_cause(down: Down) -> Any:
    """A DOWN reason as the caller's exit cause (`noconnection` -> `{nodedown, Node}`)."""
    if down.reason == NOCONNECTION:
        obj = down.pid
        node = obj.node if isinstance(obj, Pid) else obj[1]
        return (NODEDOWN, node)
    return down.reason


def alias_tag(mref: Ref) -> ImproperList:
    """gen:call's reply tag `[alias | Mref]` (OTP 24+)."""
    return ImproperList((ALIAS,), mref)


def tag_ref(tag: Any) -> Any:
    """The alias a reply tag points at: `[alias | Ref]` (or `[[alias | Ref] | _]`, a
    tag with extra data) -> Ref; any other tag stays."""
    if type(tag) is ImproperList:
        items = tag.items
        if items == (ALIAS,):
            return tag.tail
        if len(items) == 1 and type(items[0]) is ImproperList and items[0].items == (ALIAS,):
            return items[0].tail
    return tag


def _is_atom(x: Any, atom: Atom) -> bool:
    """`x == atom` without a Python-level `Atom.__eq__` call (every message a server
    takes is tested against these tags)."""
    return x is atom or (type(x) is Atom and str.__eq__(x, atom))


def is_call(msg: Any) -> bool:
    return (
        type(msg) is tuple
        and len(msg) == 3
        and _is_atom(msg[0], GEN_CALL)
        and type(msg[1]) is tuple
        and len(msg[1]) == 2
    )


def is_cast(msg: Any) -> bool:
    return type(msg) is tuple and len(msg) == 2 and _is_atom(msg[0], GEN_CAST)


def is_system(msg: Any) -> bool:
    return (
        type(msg) is tuple
        and len(msg) == 3
        and _is_atom(msg[0], SYSTEM)
        and type(msg[1]) is tuple
        and len(msg[1]) == 2
    )


async def run_callback(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a plain or `async def` callback."""
    r = fn(*args)
    if inspect.isawaitable(r):
        r = await r
    return r


def lookup_function(module: Any, name: Any) -> Callable[..., Any] | None:
    """The Python function registered as `module:name` for other nodes (distribution's
    `register_function`), or None: how an `{M, F, A}` from Erlang names Python code. The
    distribution layer provides `lookup_function` on the node's remote hook."""
    hook = api.current_node().dist
    lookup = getattr(hook, "lookup_function", None)
    if lookup is None:
        return None
    fn: Callable[..., Any] | None = lookup(module, name)
    return fn


def arg_list(args: Any) -> list[Any]:
    """The argument list `A` of an `{M, F, A}` from another node. A list of small
    integers arrives as a `Charlist` (Erlang's STRING_EXT): its integers are the args."""
    text = getattr(args, "text", None)
    if type(text) is str:
        return [ord(c) for c in text]
    if isinstance(args, list | tuple):
        return list(args)
    return [args]


# --- call and reply (§4.5, §7.4, §7.5) ---------------------------------------------------


def send_monitored(dest: Any, msg: Any, mref: Ref) -> None:
    """Send a request to a server monitored by `mref`. If it cannot be sent (e.g. it
    cannot be encoded for another node), drop the monitor and its alias before raising:
    no DOWN may reach the caller later."""
    try:
        api.send(dest, msg)
    except BaseException:
        api.demonitor(mref, flush=True)
        raise


async def request(server: Any, label: Atom, req: Any, timeout: float | None, what: str) -> Any:
    """The general gen:call of §4.5: monitor with an alias, send `{Label, From, Req}`,
    wait for the reply tagged with the alias (looking only at messages newer than the
    monitor, §2.4) or the DOWN. A late reply hits a dead alias and is dropped."""
    mfa = (what, server, req, timeout)
    dest = where(server)
    if dest is None:
        raise CallExit(NOPROC, mfa)  # C3: nothing is sent
    me = api.self()
    if dest == me:
        raise CallExit(CALLING_SELF, mfa)  # C6
    mref = api.monitor(dest, alias="demonitor")
    # gen:reply sends to the alias only for the `[alias | Ref]` shape (a plain Ref tag
    # is answered at the caller's pid, where a late reply would stay in the mailbox).
    tag = alias_tag(mref)
    send_monitored(dest, (label, (me, tag), req), mref)

    def reply_or_down(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and (m[0] is tag or m[0] == tag)  # `is`: the usual case
        return t is Down and m.ref == mref

    msg = await api.receive(reply_or_down, timeout=timeout, since=mref, default=_NOTHING)
    if type(msg) is tuple:  # C1
        api.demonitor(mref, flush=True)
        return msg[1]
    if msg is _NOTHING:  # C5: drop the monitor (and alias), then take a reply that raced in
        api.demonitor(mref, flush=True)

        def is_reply(m: Any) -> bool:
            return type(m) is tuple and len(m) == 2 and m[0] == tag

        late = await api.receive(is_reply, timeout=0, since=mref, default=_NOTHING)
        if late is not _NOTHING:
            return late[1]
        raise CallExit(TIMEOUT, mfa)
    raise CallExit(down_cause(msg), mfa)  # C2, C4


class CallFunction(Protocol):
    """The type of `call`: `(server, request, timeout=5.0) -> awaitable reply`."""

    def __call__(
        self, server: ServerRef, request: Any, timeout: float | None = 5.0
    ) -> Awaitable[Any]: ...


def _make(label: Atom, what: str) -> CallFunction:
    async def general(server: Any, req: Any, timeout: Any) -> Any:
        """What the kernel's fast path leaves: servers on other nodes, `Via` names,
        unknown names, timeouts that are not a float > 0 (checked here)."""
        t = check_timeout(timeout, "call timeout", allow_zero=False)
        if t is not None and type(timeout) is not float:  # e.g. an int: retry, fast
            return await fast(server, req, t)
        return await request(server, label, req, t, what)

    fast = make_call(label, what, CallExit, general)
    return fast


call: CallFunction = _make(GEN_CALL, "GenServer.call")
call.__doc__ = """gen:call: send `request` to a server, wait for its reply (§4.5, §7.4):
    `await call(server, request, timeout=5.0)`.

    `server` is a pid, a registered name, `(name, node)`, a `Via` or a `Global`;
    `timeout` is in seconds (None waits forever). Raises `CallExit` whose `.cause` is
    `NOPROC`, `TIMEOUT` (the late reply is dropped), `CALLING_SELF`, `(NODEDOWN, node)`
    or the reason the server died with before replying.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> class Echo(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(request, state)
        >>> pid = await Echo.start_link()
        >>> await GenServer.call(pid, "hi", timeout=1.0)
        'hi'
    """

system_call: CallFunction = _make(SYSTEM, "sys")
"""gen:call with the label `system`: `{system, From, Request}` (what `sys.erl` sends)."""


def _reply_failed(pid: Any, e: BeamletError) -> None:
    log.warning("reply to %r could not be sent: %s", pid, e)


def answer_local(caller: Any, tag: Any, value: Any) -> bool:
    """Hand a reply to a caller waiting in the kernel's call (False if it does not wait
    there); never fails (§7.5)."""
    try:
        return answer(caller, tag, value)
    except BeamletError as e:  # e.g. Unsendable: say why nothing arrives
        _reply_failed(caller, e)
        return True


def reply(from_: tuple[Any, Any], value: Any) -> None:
    """Answer a call (§7.5): any process may, once; never fails, even if the caller is
    gone or has timed out (the reply is then dropped).

    Examples:
        >>> from beamlet import GenServer, NoReply
        >>> class Later(GenServer[None]):
        ...     async def init(self, arg):
        ...         return None
        ...     async def handle_call(self, request, from_, state):
        ...         beamlet.send_after(0.01, beamlet.self(), from_)
        ...         return NoReply(state)              # answered from handle_info
        ...     async def handle_info(self, from_, state):
        ...         GenServer.reply(from_, "done")
        ...         return NoReply(state)
        >>> await GenServer.call(await Later.start_link(), "work")
        'done'
    """
    pid, tag = from_
    if answer_local(pid, tag, value):  # a call of the kernel's: answered (or dropped)
        return
    # gen:reply: to the alias of `[alias | Ref]` (or `[[alias | Ref] | _]`); any other
    # tag (a plain Ref from OTP 23 and older, an atom from ei's rpc) to the caller's pid.
    dest = tag_ref(tag)
    if type(dest) is not Ref or dest is tag:
        dest = pid
    try:
        api.send(dest, (tag, value))
    except BeamletError as e:
        _reply_failed(pid, e)


async def stop(
    server: ServerRef,
    reason: Any = NORMAL,
    timeout: float | None = None,
    what: str = "GenServer.stop",
) -> None:
    """Stop a server with `reason` and wait until it has terminated (§7.7, proc_lib:stop).

    Sends `{system, From, {terminate, Reason}}` (so Erlang servers understand it too).
    Raises `CallExit` with cause `NOPROC`, `TIMEOUT`, `CALLING_SELF`, or the reason it
    ended with if that is not `reason`."""
    mfa = (what, server, reason, timeout)
    t = check_timeout(timeout, "stop timeout", allow_zero=False)
    dest = where(server)
    if dest is None:
        raise CallExit(NOPROC, mfa)
    if dest == api.self():
        raise CallExit(CALLING_SELF, mfa)
    mref = api.monitor(dest)
    # The `ok` reply goes to an alias that is already dead: dropped.
    dead = api.alias()
    api.unalias(dead)
    send_monitored(dest, (SYSTEM, (api.self(), alias_tag(dead)), (TERMINATE, reason)), mref)

    def is_down(m: Any) -> bool:
        return type(m) is Down and m.ref == mref

    down = await api.receive(is_down, timeout=t, since=mref, default=_NOTHING)
    if down is _NOTHING:
        api.demonitor(mref, flush=True)
        raise CallExit(TIMEOUT, mfa)
    if down.reason == reason:
        return
    raise CallExit(down_cause(down), mfa)


# --- start and the init acknowledgement (§7.1) -----------------------------------------


def ack_start(ack: Ref, kind: Atom, value: Any = None) -> None:
    """The new process tells its starter how `init` went: `OK` (value: its pid),
    `IGNORE`, `ERROR` (value: the reason) or `ALREADY_STARTED` (value: the holder)."""
    api.send(ack, (ack, (kind, value)))


async def register_or_ack(name: Any, ack: Ref) -> bool:
    """Register the new process as `name` (§7.1 step 2). On a clash, acknowledge
    `already_started` and return False: init is not run, the process exits `normal`."""
    if name is None:
        return True
    holder = await register_name(name, api.self())
    if holder is None:
        return True
    ack_start(ack, ALREADY_STARTED, holder)
    return False


#: Processes that start servers on behalf of another (remote.run_start, for a supervisor
#: on another node): starter pid -> the parent its linked starts record.
_STARTS_FOR: NodeVar[dict[Pid, Pid]] = NodeVar("beamlet.gen.starts_for", dict)


def link_parent() -> Pid:
    """The parent a server started linked from this process records (OTP's `Parent`):
    this process, or the one it starts for (`starting_for`)."""
    me = api.self()
    return _STARTS_FOR.get(api.current_node()).get(me, me)


@contextlib.contextmanager
def starting_for(parent: Pid) -> Iterator[None]:
    """Within the block, servers this process starts linked take `parent` as their
    parent: its exit signal stops them as a supervisor's shutdown should, even though the
    link is made by `parent` itself after the start returns (a supervisor on another
    node, whose start function runs here in a temporary process)."""
    table = _STARTS_FOR.get(api.current_node())
    me = api.self()
    table[me] = parent
    try:
        yield
    finally:
        table.pop(me, None)


async def start(
    body: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    *,
    link: bool,
    timeout: float | None = None,
) -> Pid | None:
    """Spawn `body(*args, ack)` (linked if `link`) and wait for its `ack_start`.

    Returns the pid, or None if it said `IGNORE`. Raises `AlreadyStarted`, or
    `StartError(reason)` for `ERROR`, for a process that died before acknowledging, and
    for `TIMEOUT` (then the process is killed; the starter is unaffected, §7.1 I11). A
    failed process's DOWN is awaited (its name is free then) and, for a starter that
    traps exits, its EXIT consumed (§7.1.3). A starter that does not trap exits is ended
    by the link if the process exits abnormally (§7.1.2)."""
    ack = api.alias()
    spawn = api.spawn_link if link else api.spawn
    pid = spawn(body, *args, ack)  # type: ignore[arg-type]  # body takes the ack last
    mref = api.monitor(pid)

    def ack_or_down(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and m[0] == ack
        return t is Down and m.ref == mref

    def is_down(m: Any) -> bool:
        return type(m) is Down and m.ref == mref

    msg = await api.receive(ack_or_down, timeout=timeout, since=mref, default=_NOTHING)
    api.unalias(ack)  # a late ack is dropped by the runtime
    if msg is _NOTHING:
        if link:
            api.unlink(pid)
        api.exit(pid, KILL)
        await api.receive(is_down)
        await _flush_exit(pid, link)
        raise StartError(TIMEOUT)
    if type(msg) is Down:  # died before acknowledging (e.g. killed during init)
        await _flush_exit(pid, link)
        raise StartError(msg.reason)
    kind, value = msg[1]
    if kind == OK:
        api.demonitor(mref, flush=True)
        return pid
    await api.receive(is_down)  # wait until it has exited: its name is free (§7.1.1)
    await _flush_exit(pid, link)
    if kind == IGNORE:
        return None
    if kind == ALREADY_STARTED:
        raise AlreadyStarted(value)
    raise StartError(value)


async def _flush_exit(pid: Pid, link: bool) -> None:
    if link:

        def is_exit(m: Any) -> bool:
            return type(m) is Exit and m.pid == pid

        await api.receive(is_exit, timeout=0, default=None)


# --- system messages (sys.erl's handle_system_msg) -------------------------------------


class Debug:
    """What `sys` switched on in a server: trace printing, an event log, statistics.

    A server calls `event(kind, ...)` for each message it takes in (`in`), each reply it
    sends (`out`) and each new state (`noreply`), only while a `Debug` is set."""

    __slots__ = ("log", "name", "stats", "trace")

    def __init__(self, name: Any) -> None:
        self.name = name
        self.trace = False
        self.log: deque[tuple[Any, ...]] | None = None
        self.stats: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.trace or self.log is not None or self.stats is not None

    def event(self, *event: Any) -> None:
        if self.trace:
            print(format_event(self.name, event), file=_sys.stdout, flush=True)
        if self.log is not None:
            self.log.append(event)
        st = self.stats
        if st is not None:
            if event[0] == IN:
                st["messages_in"] += 1
            elif event[0] == OUT:
                st["messages_out"] += 1


IN: Final = Atom("in")
OUT: Final = Atom("out")
NOREPLY: Final = Atom("noreply")


def format_event(name: Any, event: tuple[Any, ...]) -> str:
    """One debug event as OTP's gen_server prints it (`*DBG* ...`)."""
    kind = event[0]
    if kind == IN and len(event) == 2:
        msg = event[1]
        if is_call(msg):
            return f"*DBG* {name!r} got call {msg[2]!r} from {msg[1][0]!r}"
        if is_cast(msg):
            return f"*DBG* {name!r} got cast {msg[1]!r}"
        return f"*DBG* {name!r} got {msg!r}"
    if kind == OUT and len(event) == 4:
        return f"*DBG* {name!r} sent {event[1]!r} to {event[2]!r}, new state {event[3]!r}"
    if kind == NOREPLY and len(event) == 2:
        return f"*DBG* {name!r} new state {event[1]!r}"
    return f"*DBG* {name!r} {event!r}"


class SystemServer(Protocol):
    """What `handle_system_msg` needs from a server (sys.erl's `system_*` callbacks)."""

    parent: Pid | None
    debug: Debug | None

    def system_name(self) -> Any: ...

    def system_get_state(self) -> Any: ...

    async def system_replace_state(self, fn: Callable[[Any], Any]) -> Any: ...

    def system_status(self) -> tuple[Any, Any]: ...

    async def system_terminate(self, reason: Any) -> NoReturn: ...


SUSPEND: Final = Atom("suspend")
RESUME: Final = Atom("resume")
GET_STATE: Final = Atom("get_state")
REPLACE_STATE: Final = Atom("replace_state")
GET_STATUS: Final = Atom("get_status")
DEBUG: Final = Atom("debug")
STATUS: Final = Atom("status")
RUNNING: Final = Atom("running")
SUSPENDED: Final = Atom("suspended")
MODULE: Final = Atom("module")
GEN_SERVER: Final = Atom("gen_server")
HEADER: Final = Atom("header")
DATA: Final = Atom("data")
TRUE: Final = Atom("true")
FALSE: Final = Atom("false")
GET: Final = Atom("get")
PRINT: Final = Atom("print")
NO_STATISTICS: Final = Atom("no_statistics")
UNKNOWN_SYSTEM_MSG: Final = Atom("unknown_system_msg")
_OTP_RELEASES: NodeVar[dict[Atom, bool]] = NodeVar("beamlet.gen.otp_release", dict)
NAME_KEY: Final = Atom("$beamlet_name")


async def ok_tuple_replies(node: Any) -> bool:
    """Does the node of `pid` expect `{ok, State}` from a `get_state`/`replace_state`
    system message (OTP 26 and later, and beamlet), or the bare state (OTP 25 and
    earlier)? The target's sys.erl builds the reply and the caller's sys.erl matches it,
    so the shape follows the release of the other side, asked once per node (`rex`, as
    `rpc:call(Node, erlang, system_info, [otp_release])`) and remembered by this node.
    `node` is a node name, or a pid (its node)."""
    if type(node) is Pid:
        node = node.node
    if type(node) is not Atom or node == api.node_name():
        return True
    cache = _OTP_RELEASES.get()
    known = cache.get(node)
    if known is not None:
        return known
    modern = True
    try:
        rel = await call(
            (Atom("rex"), node),
            (Atom("call"), Atom("erlang"), Atom("system_info"), [Atom("otp_release")], api.self()),
            5.0,
        )
        if isinstance(rel, bytes):
            rel = rel.decode()
        elif not isinstance(rel, str):
            rel = "".join(map(chr, rel))  # a charlist: "25"
        modern = int(rel) >= 26
    except (ProcessExit, TypeError, ValueError):
        pass  # not an Erlang node (a beamlet node answers badrpc): the modern shape
    cache[node] = modern
    return modern


async def handle_system_msg(server: SystemServer, frm: From, req: Any) -> None:
    """Serve one `{system, From, Request}` (sys.erl's handle_system_msg). `suspend`
    waits here, serving only system messages and the parent's EXIT, until `resume`."""
    if await _system_request(server, frm, req) is not SUSPEND:
        return
    while True:

        def sys_or_parent(m: Any) -> bool:
            return is_system(m) or (type(m) is Exit and m.pid == server.parent)

        m = await api.receive(sys_or_parent)
        if type(m) is Exit:
            await server.system_terminate(m.reason)
        r = await _system_request(server, From(*m[1]), m[2], suspended=True)
        if r is RESUME:
            return


async def _system_request(
    server: SystemServer, frm: From, req: Any, *, suspended: bool = False
) -> Any:
    if req == SUSPEND:
        reply(frm, OK)
        return SUSPEND
    if req == RESUME:
        reply(frm, OK)
        return RESUME
    remote = type(frm.pid) is Pid and frm.pid.node != api.node_name()
    if req == GET_STATE:
        state = server.system_get_state()
        if remote:
            state = to_term(state)
        reply(frm, (OK, state) if await ok_tuple_replies(frm.pid) else state)
        return None
    t = type(req)
    if t is tuple and len(req) == 2 and req[0] == REPLACE_STATE:
        fn = req[1]
        try:
            new = await server.system_replace_state(_state_fun(fn))
        except Terminated:
            raise
        except (Exception, ProcessExit) as e:
            why = exit_reason(e)
            reply(frm, (ERROR, (CALLBACK_FAILED, fn, to_term(why) if remote else why)))
            return None
        if remote:
            new = to_term(new)
        reply(frm, (OK, new) if await ok_tuple_replies(frm.pid) else new)
        return None
    if req == GET_STATUS:
        reply(frm, _status(server, frm, suspended))
        return None
    if t is tuple and len(req) == 2 and req[0] == TERMINATE:
        reply(frm, OK)
        await server.system_terminate(req[1])
    if t is tuple and len(req) == 2 and req[0] == DEBUG:
        reply(frm, _debug_request(server, req[1]))
        return None
    reply(frm, (ERROR, (UNKNOWN_SYSTEM_MSG, req)))
    return None


def _state_fun(fn: Any) -> Callable[[Any], Any]:
    """A state function from a caller: a Python callable, or `fun M:F/1` from Erlang
    naming a registered Python function. A fun from Erlang cannot run here."""
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    m, f = getattr(fn, "module", None), getattr(fn, "function", None)
    target = lookup_function(m, f) if m is not None and f is not None else None
    if target is None:

        def cannot(_state: Any) -> Any:
            raise BadArgument(
                f"cannot run {fn!r} in Python: only a fun naming a registered Python "
                "function (fun Module:Function/1) can replace a beamlet server's state"
            )

        return cannot
    return target


def _status(server: SystemServer, frm: From, suspended: bool) -> Any:
    """sys:get_status's `{status, Pid, {module, gen_server}, [PDict, SysState, Parent,
    Debug, Misc]}`, with Misc as gen_server:format_status builds it."""
    me = api.self()
    module, state = server.system_status()
    name = server.system_name()
    sys_state = SUSPENDED if suspended else RUNNING
    parent = server.parent or me
    dbg = server.debug
    logged = list(dbg.log) if dbg is not None and dbg.log is not None else []
    remote = type(frm.pid) is Pid and frm.pid.node != api.node_name()
    shown_name = name if name is not None else me
    pdict = [(Atom("$initial_call"), (module, Atom("init"), 1)), (Atom("$ancestors"), [parent])]
    if name is not None:
        pdict.append((NAME_KEY, name))
    misc = [
        (HEADER, f"Status for generic server {shown_name}"),
        (DATA, [("Status", sys_state), ("Parent", parent), ("Logged events", logged)]),
        (DATA, [("State", state)]),
    ]
    status = (STATUS, me, (MODULE, GEN_SERVER), [pdict, sys_state, parent, [], misc])
    return to_term(status) if remote else status


def _debug_request(server: SystemServer, req: Any) -> Any:
    """`{debug, {trace | log | statistics, Flag}}` and `{debug, no_debug}`."""
    dbg = server.debug
    if dbg is None:
        dbg = server.debug = Debug(server.system_name() or api.self())
    reply: Any = OK
    if req == Atom("no_debug"):
        server.debug = None
        return OK
    if type(req) is tuple and len(req) == 2:
        what, flag = req
        if what == Atom("trace"):
            dbg.trace = flag is True or flag == TRUE
        elif what == Atom("log"):
            if flag is True or flag == TRUE:
                dbg.log = deque(maxlen=10)
            elif type(flag) is tuple and len(flag) == 2 and (flag[0] is True or flag[0] == TRUE):
                dbg.log = deque(maxlen=int(flag[1]))
            elif flag is False or flag == FALSE:
                dbg.log = None
            elif flag == GET:
                reply = (OK, list(dbg.log or ()))
            elif flag == PRINT:
                for event in dbg.log or ():
                    print(format_event(dbg.name, event), file=_sys.stdout, flush=True)
        elif what == Atom("statistics"):
            if flag is True or flag == TRUE:
                now = _now()
                dbg.stats = {"start_time": now, "messages_in": 0, "messages_out": 0}
            elif flag is False or flag == FALSE:
                dbg.stats = None
            elif flag == GET:
                st = dbg.stats
                if st is None:
                    reply = (OK, NO_STATISTICS)
                else:
                    reply = (
                        OK,
                        [
                            (Atom("start_time"), st["start_time"]),
                            (Atom("current_time"), _now()),
                            (Atom("reductions"), 0),
                            (Atom("messages_in"), st["messages_in"]),
                            (Atom("messages_out"), st["messages_out"]),
                        ],
                    )
        else:
            reply = (ERROR, (UNKNOWN_SYSTEM_MSG, (DEBUG, req)))
    if not dbg.active:
        server.debug = None
    return reply


def _now() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Erlang's `calendar:local_time()` shape: `{{Y, M, D}, {H, Mi, S}}`."""
    t = datetime.datetime.now()
    return ((t.year, t.month, t.day), (t.hour, t.minute, t.second))


_TERM_TYPES: Final = (int, float, str, bytes, Atom, Pid, Ref, bool, type(None))


def to_term(x: Any) -> Any:
    """`x` with what another node cannot decode (classes, functions, objects) replaced
    by its `repr`, for introspection replies that cross the wire."""
    t = type(x)
    if t in _TERM_TYPES:
        return x
    if t is tuple:
        return tuple(to_term(i) for i in x)
    if t is list:
        return [to_term(i) for i in x]
    if t is dict:
        return {to_term(k): to_term(v) for k, v in x.items()}
    if t is ImproperList:
        return x
    if isinstance(x, type):
        return Atom(f"{x.__module__}.{x.__qualname__}")
    as_term = getattr(x, "as_term", None)
    if as_term is not None:
        return as_term()
    if isinstance(x, BaseException):
        return (Atom("python"), Atom(type(x).__name__), str(x))
    if t is Crash:
        return (to_term(x.exception), [to_term(f) for f in x.stacktrace])
    if t.__module__.startswith("beamlet.distribution"):
        return x  # the codec's own types (Export, Fun, Charlist, ...)
    return repr(x)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 12, 400, 400
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = 40


def safe_repr(x: Any) -> str:
    """A repr bounded in depth and size (Erlang's `~P`): logging a message or a state
    never raises, however deep or large it is."""
    try:
        return _REPR.repr(x)
    except Exception:  # RecursionError, or a __repr__ that raises
        return f"<{type(x).__name__} (repr failed)>"
