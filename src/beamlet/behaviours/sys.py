"""`sys`: look into a running server and debug it, over OTP's system messages
(Erlang's `sys` module; docs/semantics.md §7.9).

Every function sends `{system, From, Request}` and waits for the answer, exactly as
`sys.erl` does, so it works on every beamlet behaviour (GenServer, Agent, Supervisor,
DynamicSupervisor, Task.Supervisor, Registry partitions) and on Erlang/Elixir processes
on other nodes (gen_server, gen_statem, supervisor...) alike; and Erlang's `sys` works on
beamlet servers.

`get_state`/`replace_state` answers differ between OTP releases (25 and earlier send
the bare state, 26 and later `{ok, State}`); beamlet picks the shape of the other node's
release on both sides (`gen.ok_tuple_replies`).

Examples:
    >>> from beamlet import Agent
    >>> pid = await Agent.start_link(lambda: 0)
    >>> await beamlet.sys.get_state(pid)
    0
    >>> await beamlet.sys.replace_state(pid, lambda n: n + 1)
    1
    >>> await beamlet.sys.suspend(pid)  # now it handles system messages only
    >>> await beamlet.sys.resume(pid)
    >>> await beamlet.sys.statistics(pid, True)
    >>> await Agent.update(pid, lambda n: n + 1)
    >>> stats = dict(await beamlet.sys.statistics(pid, "get"))
    >>> stats[beamlet.Atom("messages_out")]  # the reply to the update
    1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

from beamlet._core import Atom, Pid
from beamlet.behaviours import gen
from beamlet.behaviours.gen import (
    DEBUG,
    ERROR,
    GET_STATE,
    GET_STATUS,
    NAME_KEY,
    OK,
    REPLACE_STATE,
    RESUME,
    SUSPEND,
    TERMINATE,
    CallExit,
    check_timeout,
    where,
)
from beamlet.behaviours.names import ServerRef

__all__ = [
    "get_state",
    "get_status",
    "log",
    "no_debug",
    "replace_state",
    "resume",
    "statistics",
    "suspend",
    "terminate",
    "trace",
]

_TRUE: Final = Atom("true")
_FALSE: Final = Atom("false")
_GET: Final = Atom("get")
_PRINT: Final = Atom("print")

Flag = bool | Literal["get", "print"] | int


async def _send(server: ServerRef, request: Any, timeout: float | None, what: str) -> Any:
    t = check_timeout(timeout, "timeout", allow_zero=False)
    try:
        return await gen.system_call(server, request, t)
    except CallExit as e:
        raise CallExit(e.cause, (f"sys.{what}", server, *e.mfa[2:])) from None


def _node_of(server: Any) -> Any:
    dest = where(server)
    if type(dest) is Pid:
        return dest.node
    if type(dest) is tuple:
        return dest[1]
    return None


async def _unwrap(server: ServerRef, answer: Any, what: str, arg: Any) -> Any:
    """`{ok, V}` -> V (OTP 26+ and beamlet) or a bare V (OTP 25); `{error, R}` raises
    `CallExit`, as sys.erl's `error(R)` does."""
    if type(answer) is tuple and len(answer) in (2, 3) and answer[0] == ERROR:
        reason = answer[1]
        if type(reason) is tuple and len(reason) == 3:  # {callback_failed, Fun, Why}
            reason = (reason[0], reason[2])
        raise CallExit(reason, (f"sys.{what}", server, arg))
    if await gen.ok_tuple_replies(_node_of(server)):
        if type(answer) is tuple and len(answer) == 2 and answer[0] == OK:
            return answer[1]
        raise CallExit((Atom("bad_reply"), answer), (f"sys.{what}", server, arg))
    return answer


async def get_state(server: ServerRef, timeout: float | None = 5.0) -> Any:
    """The server's state (`sys:get_state/2`).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.get_state(pid)
        0
    """
    answer = await _send(server, GET_STATE, timeout, "get_state")
    return await _unwrap(server, answer, "get_state", timeout)


async def replace_state(
    server: ServerRef, fn: Callable[[Any], Any], timeout: float | None = 5.0
) -> Any:
    """Replace the state with `fn(state)` (in the server) and return it
    (`sys:replace_state/3`). If `fn` raises, the state is unchanged and `CallExit` is
    raised with cause `(CALLBACK_FAILED, reason)`. For an Erlang server `fn` must be
    something it can run, e.g. `Export(module, function, 1)`.

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.replace_state(pid, lambda n: n + 1)
        1
    """
    answer = await _send(server, (REPLACE_STATE, fn), timeout, "replace_state")
    return await _unwrap(server, answer, "replace_state", fn)


async def get_status(server: ServerRef, timeout: float | None = 5.0) -> Any:
    """`sys:get_status/2`: `(status, Pid, (module, Module), [PDict, SysState, Parent,
    Debug, Misc])`, the raw term (for a beamlet GenServer, `GenServer.get_status` reads
    it for you).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> status, pid_, module, details = await beamlet.sys.get_status(pid)
        >>> status, pid_ == pid
        (Atom('status'), True)
    """
    return await _send(server, GET_STATUS, timeout, "get_status")


async def suspend(server: ServerRef, timeout: float | None = 5.0) -> None:
    """Suspend the server: it answers only system messages until `resume`.

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.suspend(pid)      # only system messages are served now
        >>> await beamlet.sys.get_state(pid)
        0
        >>> await beamlet.sys.resume(pid)
        >>> await Agent.get(pid, lambda n: n)
        0
    """
    await _send(server, SUSPEND, timeout, "suspend")


async def resume(server: ServerRef, timeout: float | None = 5.0) -> None:
    """Resume a suspended server.

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.suspend(pid)
        >>> await beamlet.sys.resume(pid)
        >>> await Agent.get(pid, lambda n: n + 1)
        1
    """
    await _send(server, RESUME, timeout, "resume")


async def terminate(server: ServerRef, reason: Any, timeout: float | None = 5.0) -> None:
    """Order the server to terminate with `reason` (asynchronously: it may still be
    running when this returns; `GenServer.stop` waits).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start(lambda: 0)
        >>> await beamlet.sys.terminate(pid, beamlet.SHUTDOWN)
        >>> beamlet.is_alive(pid)
        False
    """
    await _send(server, (TERMINATE, reason), timeout, "terminate")


def _flag(flag: Flag) -> Any:
    if flag is True:
        return _TRUE
    if flag is False:
        return _FALSE
    if flag == "get":
        return _GET
    if flag == "print":
        return _PRINT
    if type(flag) is int and flag > 0:
        return (_TRUE, flag)
    raise ValueError(f"a sys flag is True, False, 'get', 'print' or a count > 0, not {flag!r}")


async def _debug(server: ServerRef, what: str, flag: Flag, timeout: float | None) -> Any:
    answer = await _send(server, (DEBUG, (Atom(what), _flag(flag))), timeout, what)
    if type(answer) is tuple and len(answer) == 2 and answer[0] == OK:
        return answer[1]
    if type(answer) is tuple and answer and answer[0] == ERROR:
        raise CallExit(answer[1], (f"sys.{what}", server, flag))
    return None


async def trace(server: ServerRef, flag: bool, timeout: float | None = 5.0) -> None:
    """Print every event of the server (messages in, replies out, new states) on
    standard output (`sys:trace/2`).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.trace(pid, True)      # prints every event to stdout
        >>> await Agent.get(pid, lambda n: n)
        *DBG* ...
        0
    """
    await _debug(server, "trace", flag, timeout)


async def log(server: ServerRef, flag: Flag, timeout: float | None = 5.0) -> Any:
    """Keep the last events (`True`: 10, `n`: n), stop (`False`), return them (`"get"`:
    a list of event tuples) or print them (`"print"`) (`sys:log/2`).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.log(pid, True)
        >>> await Agent.get(pid, lambda n: n)
        0
        >>> events = await beamlet.sys.log(pid, "get")    # the call in, the reply out...
        >>> len(events) > 0
        True
    """
    return await _debug(server, "log", flag, timeout)


async def statistics(server: ServerRef, flag: Flag, timeout: float | None = 5.0) -> Any:
    """Count messages in and out from now (`True`), stop (`False`), or return the
    counts (`"get"`: `[(start_time, ...), (current_time, ...), (reductions, 0),
    (messages_in, n), (messages_out, n)]`, or `no_statistics`) (`sys:statistics/2`).

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.statistics(pid, True)
        >>> await Agent.get(pid, lambda n: n)
        0
        >>> stats = await beamlet.sys.statistics(pid, "get")
    """
    return await _debug(server, "statistics", flag, timeout)


async def no_debug(server: ServerRef, timeout: float | None = 5.0) -> None:
    """Turn every debug option of the server off.

    Examples:
        >>> from beamlet import Agent
        >>> pid = await Agent.start_link(lambda: 0)
        >>> await beamlet.sys.statistics(pid, True)
        >>> await beamlet.sys.no_debug(pid)      # trace, log and statistics off
        >>> await beamlet.sys.statistics(pid, "get")
        Atom('no_statistics')
    """
    await _send(server, (DEBUG, Atom("no_debug")), timeout, "no_debug")


async def server_status(server: ServerRef, timeout: float | None = 5.0) -> Any:
    """`get_status` of a beamlet GenServer as a `ServerStatus` (gen_server.get_status)."""
    from beamlet.behaviours.gen_server import ServerStatus

    status = await get_status(server, timeout)
    _, pid, _module, items = status
    pdict, sys_state, parent, _dbg, misc = items
    info = dict(pdict)
    module = info.get(Atom("$initial_call"), (None,))[0]
    state = dict(misc[-1][1]).get("State")
    return ServerStatus(
        pid=pid,
        module=module,
        name=info.get(NAME_KEY),
        parent=parent,
        status=str(sys_state),
        state=state,
    )
