"""Supervisor: a process that starts, watches and restarts other processes
(docs/semantics.md §8).

A supervisor keeps a list of *children*, each described by a `ChildSpec`. It starts
them in order, links to them and traps exits, so when a child dies the supervisor hears
of it (`Exit(pid, reason)`) and applies its *restart strategy*. If children crash too
often (more than `max_restarts` restarts within `max_seconds`), the supervisor gives up:
it stops every child, in reverse start order, and exits with reason `shutdown`, handing
the problem to its own supervisor. That is how a supervision tree contains failures.

When to use it: for every long-lived process of a program. Workers (GenServers, Agents,
plain processes) go under a supervisor; supervisors go under supervisors; one top-level
supervisor is the program (see `beamlet.run_app`).

Example (Elixir style, children given at start):

    async def main():
        sup = await Supervisor.start_link(
            [Cache.child_spec(None), (Worker, {"port": 8080})],
            strategy="one_for_one",
            name="app_sup",
        )
        print(await Supervisor.which_children(sup))

Example (class-based, children computed by `init`):

    class AppSup(Supervisor):
        async def init(self, arg):
            children = [Registry.child_spec(keys="unique", name="reg"), Worker]
            return children, SupFlags(strategy="rest_for_one")

    pid = await AppSup.start_link(None, name="app")

Children can be given as a `ChildSpec`, a mapping with `ChildSpec` fields (unknown keys
are ignored), a class or object with a `child_spec(arg)` method (called with `None`), or a
`(cls, arg)` pair (calls `cls.child_spec(arg)`).

Strategies (§8.4): `one_for_one` restarts only the child that died; `one_for_all` stops
every other child (reverse order) and restarts all (start order); `rest_for_one` stops
and restarts the children started after the dead one. Restart types: `permanent` children
are always restarted, `transient` ones only after an abnormal exit (not `normal`,
`shutdown`, `(shutdown, _)`), `temporary` ones never (their spec is dropped).

Edge cases worth knowing:

* A start function runs *inside* the supervisor process: while it runs, the supervisor
  answers no call. It must not call the supervisor itself (deadlock), nor take messages
  from the supervisor's mailbox with an unfiltered `receive()`.
* A child start that fails at supervisor start-up is not retried: already started
  children are stopped in reverse order and `start_link` fails with a `StartError`
  whose reason is `(shutdown, (failed_to_start_child, id, detail))` (§8.3). A linked
  caller that does not trap exits is killed by that exit instead (§7.1.2), exactly as in
  OTP; a parent supervisor traps exits and sees the error.
* A failed *restart* is retried through the supervisor's mailbox, so calls interleave;
  every failed attempt counts toward the restart intensity (§8.4 step 4).
* `which_children` lists children in **reverse** start order, as OTP does (§8.8).
* Exit reasons and error details use `Atom`s (`Atom("shutdown")`, ...) like the kernel.

Every event is reported through `logging.getLogger("beamlet")` with structured
`extra` fields: `beamlet_report="supervisor_report"`, `beamlet_context` (one of
`child_terminated`, `child_restarted`, `start_error`, `shutdown_error`, `shutdown`),
`beamlet_supervisor`, `beamlet_child_id`, `beamlet_child_pid`, `beamlet_reason`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from beamlet import _core as api
from beamlet._core import (
    KILL,
    KILLED,
    NORMAL,
    SHUTDOWN,
    UNDEFINED,
    Atom,
    BeamletError,
    Down,
    Exit,
    Pid,
    ProcessExit,
    Shared,
)
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec, StartError
from beamlet.behaviours.gen import (
    ERROR,
    GEN_CAST,
    OK,
    AlreadyStarted,
    exit_reason,
    lookup_function,
    to_term,
)
from beamlet.behaviours.gen_server import GenServer, Ignore, InitError, NoReply, Ok, Reply, Stop
from beamlet.behaviours.names import Via
from beamlet.behaviours.reasons import is_clean_reason

__all__ = [
    "RESTARTING",
    "AlreadyPresent",
    "AlreadyStarted",
    "ChildCounts",
    "ChildInfo",
    "ChildNotFound",
    "ChildRestarting",
    "ChildRunning",
    "InvalidSupervisorFlags",
    "SupFlags",
    "Supervisor",
    "SupervisorError",
    "check_childspecs",
    "child_spec",
]

log = logging.getLogger("beamlet")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
SupName = str | Atom | Via

_STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")
_AUTO_SHUTDOWNS: Final = ("never", "any_significant", "all_significant")

#: Shown instead of a pid by `which_children` for a child whose restart failed and is
#: being retried (Erlang's `restarting`).
RESTARTING: Final = Atom("restarting")

# Erlang terms used in exit reasons and error details (§8.3, §8.8).
FAILED_TO_START_CHILD: Final = Atom("failed_to_start_child")
EXIT_TAG: Final = Atom("EXIT")
ALREADY_STARTED: Final = Atom("already_started")
ALREADY_PRESENT: Final = Atom("already_present")
NOT_FOUND: Final = Atom("not_found")
RUNNING: Final = Atom("running")
BAD_RETURN: Final = Atom("bad_return")
MAX_CHILDREN: Final = Atom("max_children")

# OTP's supervisor protocol: the requests of supervisor.erl (and Elixir's Supervisor /
# DynamicSupervisor) as they arrive in `{'$gen_call', From, Request}`.
WHICH_CHILDREN: Final = Atom("which_children")
COUNT_CHILDREN: Final = Atom("count_children")
START_CHILD: Final = Atom("start_child")
TERMINATE_CHILD: Final = Atom("terminate_child")
RESTART_CHILD: Final = Atom("restart_child")
DELETE_CHILD: Final = Atom("delete_child")
GET_CHILDSPEC: Final = Atom("get_childspec")
BADCALL: Final = Atom("badcall")
BAD_COMBINATION: Final = Atom("bad_combination")
SPECS: Final = Atom("specs")
ACTIVE: Final = Atom("active")
SUPERVISORS: Final = Atom("supervisors")
WORKERS: Final = Atom("workers")
DYNAMIC: Final = Atom("dynamic")
UNDEF: Final = Atom("undef")
_TRY_AGAIN: Final = Atom("try_again_restart")
_AUTO_SHUTDOWN_NOTICE: Final = Atom("$beamlet_auto_shutdown")

#: Set (by `beamlet.run_app`) in the process that owns a whole supervision tree: a
#: supervisor whose parent is that process tells it, before exiting, that it stopped
#: because of `auto_shutdown` (a graceful end, not a crash). Contexts are copied at
#: spawn, so the value reaches the top supervisor without any global state.
APP_MASTER: contextvars.ContextVar[Pid | None] = contextvars.ContextVar(
    "beamlet_app_master", default=None
)


# --- errors ----------------------------------------------------------------------------


class SupervisorError(BeamletError):
    """A supervisor refused a request (Erlang's `{error, Reason}` from §8.8).

    `.reason` is the Erlang-shaped reason term, e.g. `Atom("not_found")`."""

    def __init__(self, reason: Any, message: str | None = None) -> None:
        super().__init__(message or f"supervisor error: {reason!r}")
        self.reason = reason


class ChildNotFound(SupervisorError, LookupError):
    """No child with this id (or pid) is known to the supervisor."""

    def __init__(self, child: Any) -> None:
        super().__init__(NOT_FOUND, f"no child {child!r} in this supervisor")
        self.child = child


class ChildRunning(SupervisorError):
    """`restart_child`/`delete_child` on a child that is running."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(RUNNING, f"child {child_id!r} is running")
        self.child_id = child_id


class ChildRestarting(SupervisorError):
    """`restart_child`/`delete_child` on a child whose restart is being retried."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(RESTARTING, f"child {child_id!r} is being restarted")
        self.child_id = child_id


class AlreadyPresent(StartError):
    """`start_child` with the id of a known child that is not running:
    Erlang's `{error, already_present}` (use `restart_child` or `delete_child`)."""

    def __init__(self) -> None:
        super().__init__(ALREADY_PRESENT)


class InvalidSupervisorFlags(BeamletError, ValueError):
    """Supervisor flags are malformed (Erlang's `{supervisor_data, Detail}`)."""


# --- flags, child info ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupFlags:
    """Supervisor flags (§8.1): the strategy and the restart intensity.

    `max_restarts` restarts are tolerated within any window of `max_seconds`; one more
    and the supervisor gives up (§8.6). `auto_shutdown` makes the supervisor stop when
    significant children end (§8.9).

    Examples:
        >>> from beamlet import Agent, Supervisor, SupFlags
        >>> class AppSup(Supervisor):
        ...     async def init(self, arg):
        ...         children = [Agent.child_spec(dict, id="cache")]
        ...         flags = SupFlags(strategy="one_for_all", max_restarts=10, max_seconds=1.0)
        ...         return children, flags
        >>> sup = await AppSup.start_link(None)
        >>> await Supervisor.count_children(sup)
        ChildCounts(specs=1, active=1, supervisors=0, workers=1)
    """

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    auto_shutdown: AutoShutdown = "never"

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise InvalidSupervisorFlags(
                f"invalid strategy {self.strategy!r}: expected one of {_STRATEGIES}"
            )
        r = self.max_restarts
        if type(r) is not int or r < 0:
            raise InvalidSupervisorFlags(f"max_restarts must be an int >= 0, not {r!r}")
        s = self.max_seconds
        if isinstance(s, bool) or not isinstance(s, int | float) or not s > 0:
            raise InvalidSupervisorFlags(f"max_seconds must be a number > 0, not {s!r}")
        if self.auto_shutdown not in _AUTO_SHUTDOWNS:
            raise InvalidSupervisorFlags(
                f"invalid auto_shutdown {self.auto_shutdown!r}: expected one of {_AUTO_SHUTDOWNS}"
            )

    @classmethod
    def coerce(cls, flags: Any) -> SupFlags:
        """A `SupFlags` from a `SupFlags` or a mapping (unknown keys are ignored)."""
        if isinstance(flags, SupFlags):
            return flags
        if isinstance(flags, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in flags.items() if k in known})
        raise InvalidSupervisorFlags(f"supervisor flags must be SupFlags or a dict, not {flags!r}")


class ChildInfo(NamedTuple):
    """One entry of `which_children`: Erlang's `{Id, Child, Type, Modules}`.

    `pid` is the child's pid, None when it is not running, or `RESTARTING`."""

    id: Any
    pid: Pid | Atom | None
    type: str
    modules: Any


class ChildCounts(NamedTuple):
    """`count_children`: how many specs, running children, supervisors and workers."""

    specs: int
    active: int
    supervisors: int
    workers: int


# --- child specs ---------------------------------------------------------------------

_SPEC_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(ChildSpec))


def child_spec(child: Any, **overrides: Any) -> ChildSpec:
    """Normalize anything a supervisor accepts as a child into a `ChildSpec`, then apply
    `overrides` (Elixir's `Supervisor.child_spec/2`).

    Accepted: a `ChildSpec`; a mapping of `ChildSpec` fields (unknown keys ignored, as
    OTP ignores them, `sup_start_map_faulty_specs`); an object with a `child_spec(arg)`
    method (called with `None`); a `(obj, arg)` pair (calls `obj.child_spec(arg)`).
    Raises `InvalidChildSpec` naming what is wrong.

    Examples:
        >>> child_spec((Worker, 42), id="w1", restart="transient")
    """
    spec = _to_spec(child)
    if overrides:
        unknown = set(overrides) - _SPEC_FIELDS
        if unknown:
            raise InvalidChildSpec(f"unknown child spec field(s) {sorted(unknown)!r}")
        spec = spec.with_overrides(**overrides)
    try:
        hash(spec.id)
    except TypeError:
        raise InvalidChildSpec(f"child id must be hashable: {spec.id!r}") from None
    return spec


def _to_spec(child: Any) -> ChildSpec:
    if isinstance(child, ChildSpec):
        return child
    if isinstance(child, Mapping):
        if "id" not in child:
            raise InvalidChildSpec(f"missing_id: child spec {dict(child)!r} has no 'id'")
        if "start" not in child:
            raise InvalidChildSpec(f"missing_start: child spec {dict(child)!r} has no 'start'")
        fields = {k: v for k, v in child.items() if k in _SPEC_FIELDS}
        if "args" in fields and type(fields["args"]) is list:
            fields["args"] = tuple(fields["args"])
        return ChildSpec(**fields)
    if type(child) is tuple and len(child) == 2 and callable(getattr(child[0], "child_spec", None)):
        return _from_child_spec_fn(child[0], child[1])
    if callable(getattr(child, "child_spec", None)):
        return _from_child_spec_fn(child, None)
    raise InvalidChildSpec(
        f"invalid_child_spec: {child!r}; supervisors expect each child to be a ChildSpec, "
        "a mapping of ChildSpec fields, an object with child_spec(arg), or (object, arg)"
    )


def _from_child_spec_fn(obj: Any, arg: Any) -> ChildSpec:
    spec = obj.child_spec(arg)
    if isinstance(spec, Mapping):
        return _to_spec(spec)
    if not isinstance(spec, ChildSpec):
        raise InvalidChildSpec(f"{obj!r}.child_spec({arg!r}) returned {spec!r}, not a ChildSpec")
    return spec


def check_childspecs(
    children: Iterable[Any], auto_shutdown: AutoShutdown = "never"
) -> list[ChildSpec]:
    """Normalize a list of children (see `child_spec`) and check it as a supervisor
    would at start: unique ids, `significant` only with an `auto_shutdown` (§8.2).
    Raises `InvalidChildSpec`."""
    if isinstance(children, str | bytes | Mapping) or not isinstance(children, Iterable):
        raise InvalidChildSpec(f"children must be a list, not {children!r}")
    specs: list[ChildSpec] = []
    seen: set[Any] = set()
    for c in children:
        spec = child_spec(c)
        if spec.id in seen:
            raise InvalidChildSpec(f"duplicate_child_name: two children have the id {spec.id!r}")
        _check_significant(spec, auto_shutdown)
        seen.add(spec.id)
        specs.append(spec)
    return specs


def _check_significant(spec: ChildSpec, auto_shutdown: str) -> None:
    if spec.significant and auto_shutdown == "never":
        raise InvalidChildSpec(
            f"bad_combination: child {spec.id!r} is significant but the supervisor's "
            "auto_shutdown is 'never'"
        )


# --- the protocol, client side (shared with DynamicSupervisor and Task.Supervisor) -----


async def call(supervisor: Any, request: Any) -> Any:
    """A request to a supervisor: a gen_server call that waits as long as it takes (OTP's
    `infinity`); `CallExit` (cause `NOPROC`, ...) if the supervisor is not running."""
    return await gen.call(supervisor, request, None)


def check(answer: Any, child: Any) -> Any:
    """`ok` -> None, `{ok, V}` -> V (`undefined`/`ignore` -> None); `{error, R}` raises
    the matching error (`ChildNotFound`, `ChildRunning`, `AlreadyStarted`, ...)."""
    if answer == OK:
        return None
    if answer == gen.IGNORE:
        return None
    t = type(answer)
    if t is tuple and len(answer) >= 2 and answer[0] == OK:
        v = answer[1]
        return None if v == UNDEFINED else v
    if t is tuple and len(answer) == 2 and answer[0] == ERROR:
        raise error_of(answer[1], child)
    raise SupervisorError(answer)


def error_of(reason: Any, child: Any) -> BeamletError:
    if reason == NOT_FOUND:
        return ChildNotFound(child)
    if reason == RUNNING:
        return ChildRunning(child)
    if reason == RESTARTING:
        return ChildRestarting(child)
    if reason == ALREADY_PRESENT:
        return AlreadyPresent()
    if type(reason) is tuple and len(reason) == 2:
        if reason[0] == ALREADY_STARTED and type(reason[1]) is Pid:
            return AlreadyStarted(reason[1])
        if reason[0] == BAD_COMBINATION:
            return InvalidChildSpec(str(reason[1]))
    return StartError(reason)


def children_of(answer: Any) -> list[ChildInfo]:
    """`which_children`'s `[{Id, Child, Type, Modules}]` as `ChildInfo`s."""
    out = []
    for cid, pid, kind, modules in answer:
        mods = "dynamic" if modules == DYNAMIC else tuple(modules)
        key = None if cid == UNDEFINED else cid  # a dynamic supervisor's children
        out.append(ChildInfo(key, None if pid == UNDEFINED else pid, str(kind), mods))
    return out


def counts_of(answer: Any) -> ChildCounts:
    """`count_children`'s `[{specs, N}, {active, N}, {supervisors, N}, {workers, N}]`."""
    d = dict(answer)
    return ChildCounts(d[SPECS], d[ACTIVE], d[SUPERVISORS], d[WORKERS])


# --- the protocol, server side ------------------------------------------------------


def child_info(cid: Any, pid: Any, spec: ChildSpec) -> tuple[Any, ...]:
    """`{Id, Child, Type, Modules}` (supervisor:which_children/1)."""
    modules = spec.modules
    return (
        cid,
        UNDEFINED if pid is None else pid,
        Atom(spec.type),
        DYNAMIC if modules == "dynamic" else list(modules),
    )


def counts_term(specs: int, active: int, sups: int, workers: int) -> list[tuple[Atom, int]]:
    return [(SPECS, specs), (ACTIVE, active), (SUPERVISORS, sups), (WORKERS, workers)]


def for_caller(from_: Any, term: Any) -> Any:
    """A reply as the caller can take it: Python objects (class ids, start functions)
    stay for a caller of this node, become terms for another node (`gen.to_term`)."""
    pid = from_[0]
    if type(pid) is Pid and pid.node != api.node_name():
        return to_term(term)
    return term


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _shutdown_of(x: Any) -> Any:
    """Erlang's shutdown (ms, `brutal_kill`, `infinity`) in ChildSpec's terms."""
    if type(x) is int and not isinstance(x, bool):
        return max(x, 1) / 1000.0
    if x is None or x == UNDEFINED or x == Atom("nil"):
        return None
    return _text(x)


def mfa_start(module: Any, function: Any, args: Any) -> Any:
    """A start function for an `{M, F, A}` from Erlang: the Python function registered
    as `M:F` (distribution's `register_function`), called with `A` in the supervisor.
    It returns a pid, `(ok, Pid)`, `(ok, Pid, Info)`, None / `ignore`, or `(error, R)`;
    no such function is the start's `undef` crash, as in Erlang."""
    arglist = gen.arg_list(args)

    async def start(*extra: Any) -> Pid | None:
        fn = lookup_function(module, function)
        if fn is None:
            raise ProcessExit((UNDEF, [(module, function, arglist, [])]))
        r = await gen.run_callback(fn, *extra, *arglist)
        if type(r) is tuple and r and r[0] == OK and len(r) in (2, 3):
            r = r[1]
        elif type(r) is tuple and len(r) == 2 and r[0] == ERROR:
            raise StartError(r[1])
        elif r in (gen.IGNORE, UNDEFINED):
            r = None
        return r  # type: ignore[no-any-return]

    start.__qualname__ = f"{_text(module)}:{_text(function)}"
    return start


def spec_from_term(term: Any) -> ChildSpec:
    """A child spec from another node: Erlang's map (`#{id, start => {M, F, A}, ...}`),
    its 6-tuple `{Id, {M, F, A}, Restart, Shutdown, Type, Modules}`, or Elixir's
    DynamicSupervisor 5/6-tuple `{{M, F, A}, Restart, Shutdown, Type, Modules[, Sig]}`.
    A ChildSpec passes through; anything else raises `InvalidChildSpec`."""
    if isinstance(term, ChildSpec):
        return term
    fields: dict[str, Any]
    if isinstance(term, Mapping):
        fields = {_text(k): v for k, v in term.items()}
        cid = fields.get("id", UNDEFINED)
    elif type(term) is tuple and len(term) == 6 and type(term[1]) is tuple:
        cid, start, restart, shutdown, kind, modules = term
        fields = {
            "start": start,
            "restart": restart,
            "shutdown": shutdown,
            "type": kind,
            "modules": modules,
        }
    elif type(term) is tuple and len(term) in (5, 6) and type(term[0]) is tuple:
        cid = UNDEFINED
        start, restart, shutdown, kind, modules = term[:5]
        fields = {
            "start": start,
            "restart": restart,
            "shutdown": shutdown,
            "type": kind,
            "modules": modules,
        }
    else:
        raise InvalidChildSpec(f"invalid_child_spec: {term!r}")
    start = fields.get("start")
    if type(start) is not tuple or len(start) != 3:
        raise InvalidChildSpec(f"invalid_mfa: {start!r}")
    modules = fields.get("modules", [])
    kwargs: dict[str, Any] = {
        "id": cid,
        "start": mfa_start(*start),
        "restart": _text(fields.get("restart", "permanent")),
        "shutdown": _shutdown_of(fields.get("shutdown")),
        "type": _text(fields.get("type", "worker")),
        "significant": fields.get("significant") is True
        or fields.get("significant") == Atom("true"),
        "modules": "dynamic" if modules == DYNAMIC else tuple(modules),
    }
    return ChildSpec(**kwargs)


# --- starting a child, stopping a child ----------------------------------------------


async def do_start(spec: ChildSpec, extra: tuple[Any, ...] = (), *, elixir: bool = False) -> Any:
    """Run a start function in the calling (supervisor) process and classify the result
    (§8.3): `("ok", pid)`, `("ignore",)` or `("error", detail)`.

    Erlang's supervisor wraps crashes as `(EXIT, reason)` (`catch`); Elixir's
    DynamicSupervisor (`elixir=True`) reports the bare exit reason."""
    try:
        result = await spec.start(*extra, *spec.args)
    except StartError as e:
        return ("error", e.reason)
    except ProcessExit as e:
        return ("error", e.reason if elixir else (EXIT_TAG, e.reason))
    except Exception as e:
        crash = exit_reason(e)
        return ("error", crash if elixir else (EXIT_TAG, crash))
    if type(result) is Pid:
        # The contract says the child is linked already; linking again is a no-op then,
        # and makes a careless start function safe (a dead pid gives Exit(pid, noproc)).
        api.link(result)
        return ("ok", result)
    if result is None:
        return ("ignore",)
    return ("error", result)


async def unlink_flush(pid: Pid, default: Any) -> Any:
    """unlink, then take the child's EXIT if it is already queued: its reason is the real
    one (a monitor set after the death says only `noproc`)."""
    api.unlink(pid)
    m = await api.receive(lambda m: type(m) is Exit and m.pid == pid, timeout=0, default=None)
    return default if m is None else m.reason


async def shutdown_child(pid: Pid, spec: ChildSpec) -> Any:
    """Stop one child with the §8.7 protocol; return None if it ended as expected, else
    the unexpected reason (to be reported as `shutdown_error`).

    Order (OTP 25.1+ supervisor.erl): monitor; `exit(pid, shutdown)` (or `kill` for
    `brutal_kill`); wait for the DOWN up to `shutdown` seconds (forever for `infinity`),
    then `kill` and wait again; finally unlink and flush the child's EXIT, whose reason
    wins over the DOWN's. Unlike the older order of §8.7 (unlink first), the link stays
    until the child is gone, so a supervisor killed in the middle never leaves an
    orphan running; the observable results are the same."""
    mode = spec.shutdown_value
    ref = api.monitor(pid)

    def down(m: Any) -> bool:
        return type(m) is Down and m.ref == ref

    if mode == "brutal_kill":
        api.exit(pid, KILL)
        d = await api.receive(down, since=ref)
    else:
        api.exit(pid, SHUTDOWN)
        timeout = None if mode == "infinity" else float(mode)
        d = await api.receive(down, timeout=timeout, since=ref, default=None)
        if d is None:
            api.exit(pid, KILL)
            d = await api.receive(down)
    reason = await unlink_flush(pid, d.reason)
    return None if shutdown_ok(spec, reason) else reason


def shutdown_ok(spec: ChildSpec, reason: Any) -> bool:
    """Did a child we stopped end as expected (supervisor.erl shutdown/1)? `killed`
    after brutal_kill, `shutdown` otherwise; a non-permanent child may also end with
    `normal` or `(shutdown, _)` on its own."""
    expected = KILLED if spec.shutdown_value == "brutal_kill" else SHUTDOWN
    return reason == expected or (spec.restart != "permanent" and is_clean_reason(reason))


def report(
    context: str,
    supervisor: Any,
    reason: Any,
    child_id: Any = None,
    child_pid: Any = None,
    *,
    level: int = logging.ERROR,
) -> None:
    """Log one supervisor report (OTP's SUPERVISOR REPORT) with structured fields."""
    log.log(
        level,
        "Supervisor %r: %s, child %r (%r), reason %r",
        supervisor,
        context,
        child_id,
        child_pid,
        reason,
        extra={
            "beamlet_report": "supervisor_report",
            "beamlet_context": context,
            "beamlet_supervisor": supervisor,
            "beamlet_child_id": child_id,
            "beamlet_child_pid": child_pid,
            "beamlet_reason": reason,
        },
    )


class RestartIntensity:
    """The restart log of §8.6: timestamps of the restarts in the last `period` s."""

    __slots__ = ("intensity", "period", "stamps")

    def __init__(self, intensity: int, period: float) -> None:
        self.intensity = intensity
        self.period = period
        self.stamps: deque[float] = deque()

    def add(self) -> bool:
        """Record a restart now; False if the intensity is exceeded (give up)."""
        now = asyncio.get_running_loop().time()
        stamps = self.stamps
        stamps.append(now)
        threshold = now - self.period
        while stamps and stamps[0] < threshold:
            stamps.popleft()
        return len(stamps) <= self.intensity


# --- the supervisor ------------------------------------------------------------------


class _Child:
    __slots__ = ("pid", "restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: Pid | None = None
        self.restarting = False


class _Shutdown(Exception):
    """Internal: the supervisor must stop all children and exit `shutdown`; `auto` is
    True for an auto_shutdown (§8.9), False for the restart intensity (§8.6)."""

    def __init__(self, auto: bool) -> None:
        super().__init__(auto)
        self.auto = auto


class _Server:
    """The state and loop of one supervisor process (the `#state{}` of supervisor.erl)."""

    def __init__(self, name: Any, parent: Pid, flags: SupFlags, specs: list[ChildSpec]) -> None:
        self.parent = parent
        self.me = api.self()
        self.label: Any = name if name is not None else self.me
        self.flags = flags
        self.intensity = RestartIntensity(flags.max_restarts, flags.max_seconds)
        self.ids: list[Any] = []  # start order
        self.children: dict[Any, _Child] = {}
        self.by_pid: dict[Pid, _Child] = {}
        for spec in specs:
            self.ids.append(spec.id)
            self.children[spec.id] = _Child(spec)

    # --- bookkeeping ---

    def set_pid(self, child: _Child, pid: Pid | None) -> None:
        if child.pid is not None:
            self.by_pid.pop(child.pid, None)
        child.pid = pid
        child.restarting = False
        if pid is not None:
            self.by_pid[pid] = child

    def remove(self, child: _Child) -> None:
        if child.pid is not None:
            self.by_pid.pop(child.pid, None)
        del self.children[child.spec.id]
        self.ids.remove(child.spec.id)

    def del_child(self, child: _Child) -> None:
        """Erlang's del_child: a temporary spec is forgotten, others kept not running."""
        if child.spec.restart == "temporary":
            self.remove(child)
        else:
            self.set_pid(child, None)

    def report(self, context: str, reason: Any, child: _Child, pid: Any = None) -> None:
        level = logging.INFO if context == "child_restarted" else logging.ERROR
        report(context, self.label, reason, child.spec.id, pid or child.pid, level=level)

    # --- starting ---

    async def start_children(self, ids: list[Any]) -> tuple[Any, Any] | None:
        """Start the children `ids` in order (§8.3); stop at the first failure and return
        `(id, detail)` for it (children after it stay not running)."""
        for cid in list(ids):
            child = self.children.get(cid)
            if child is None:
                continue
            res = await do_start(child.spec)
            if res[0] == "ok":
                self.set_pid(child, res[1])
            elif res[0] == "ignore":
                if child.spec.restart == "temporary":
                    self.remove(child)  # sup_start_ignore_temporary_child
                else:
                    self.set_pid(child, None)
            else:
                self.report("start_error", res[1], child)
                return (cid, res[1])
        return None

    # --- stopping ---

    async def terminate(self, child: _Child) -> None:
        """Stop one child (§8.7) if it runs, reporting an unexpected end."""
        pid = child.pid
        if pid is None:
            return
        err = await shutdown_child(pid, child.spec)
        if err is not None:
            self.report("shutdown_error", err, child, pid)

    async def terminate_children(self, ids: list[Any]) -> None:
        """Stop `ids` in reverse order; temporary children are forgotten, the others
        kept as not running (supervisor.erl terminate_children)."""
        for cid in reversed(list(ids)):
            child = self.children.get(cid)
            if child is None:
                continue
            await self.terminate(child)
            self.del_child(child)

    async def stop_all(self) -> None:
        """Stop every child in reverse start order (§8.5), when the supervisor ends."""
        await self.terminate_children(self.ids)

    # --- reacting to exits (§8.4) ---

    async def child_exited(self, child: _Child, reason: Any) -> None:
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and not is_clean_reason(reason)):
            self.report("child_terminated", reason, child)
            await self.restart(child)
            return
        if not is_clean_reason(reason):
            self.report("child_terminated", reason, child)
        self.del_child(child)
        if self.auto_shutdown_due(child):
            raise _Shutdown(auto=True)

    def auto_shutdown_due(self, child: _Child) -> bool:
        """§8.9: a significant child ended and will not be restarted."""
        mode = self.flags.auto_shutdown
        if mode == "never" or not child.spec.significant:
            return False
        if mode == "any_significant":
            return True
        return not any(
            c.spec.significant and (c.pid is not None or c.restarting)
            for c in self.children.values()
        )

    async def restart(self, child: _Child) -> None:
        """Record a restart (§8.6) and apply the strategy; a failed start is retried
        later through the mailbox (§8.4 step 4)."""
        if not self.intensity.add():
            self.report("shutdown", Atom("reached_max_restart_intensity"), child)
            self.del_child(child)
            raise _Shutdown(auto=False)
        strategy = self.flags.strategy
        if strategy == "one_for_one":
            old = child.pid
            res = await do_start(child.spec)
            if res[0] == "ok":
                self.set_pid(child, res[1])
                self.report("child_restarted", NORMAL, child)
            elif res[0] == "ignore":
                self.set_pid(child, None)
            else:
                self.set_pid(child, None)
                child.restarting = True
                self.report("start_error", res[1], child, old)
                self.try_again_later(child.spec.id)
            return
        if strategy == "one_for_all":
            group = list(self.ids)
        else:  # rest_for_one: the child and those started after it
            group = self.ids[self.ids.index(child.spec.id) :]
        self.set_pid(child, None)
        await self.terminate_children([i for i in group if i != child.spec.id])
        group = [i for i in group if i in self.children]
        failed = await self.start_children(group)
        if failed is None:
            for cid in group:
                c = self.children.get(cid)
                if c is not None and c.pid is not None:
                    self.report("child_restarted", NORMAL, c)
            return
        failed_child = self.children[failed[0]]
        failed_child.restarting = True
        self.try_again_later(failed[0])

    def try_again_later(self, child_id: Any) -> None:
        api.send(self.me, (GEN_CAST, (_TRY_AGAIN, child_id)))

    async def try_again(self, child_id: Any) -> None:
        child = self.children.get(child_id)
        if child is not None and child.restarting:
            await self.restart(child)

    # --- requests (§8.8), in OTP's wire shapes ---

    def find(self, cid: Any) -> _Child | None:
        """The child with id `cid`; for a caller on another node, also the id as it saw
        it (`to_term` of a Python id, e.g. a class)."""
        child = self.children.get(cid) if _hashable(cid) else None
        if child is None and type(cid) is Atom:
            for k, c in self.children.items():
                if to_term(k) == cid:
                    return c
        return child

    async def handle_call(self, request: Any, from_: Any) -> Any:
        """Answer one request (supervisor.erl's handle_call); returns the reply term."""
        if request == WHICH_CHILDREN:
            infos = [self.info(self.children[i]) for i in reversed(self.ids)]
            return for_caller(from_, infos)
        if request == COUNT_CHILDREN:
            return counts_term(*self.counts())
        if type(request) is not tuple or len(request) != 2:
            return (ERROR, BADCALL)
        op, arg = request
        if op == START_CHILD:
            try:
                spec = spec_from_term(arg)
            except InvalidChildSpec as e:
                return (ERROR, (BAD_COMBINATION, str(e)))
            return for_caller(from_, await self.start_child(spec))
        child = self.find(arg)
        if op == GET_CHILDSPEC:  # with the defaults filled in, as OTP returns it
            if child is None:
                return (ERROR, NOT_FOUND)
            spec = child.spec.with_overrides(shutdown=child.spec.shutdown_value)
            return for_caller(from_, (OK, spec))
        if op not in (TERMINATE_CHILD, RESTART_CHILD, DELETE_CHILD):
            return (ERROR, BADCALL)
        if child is None:
            return (ERROR, NOT_FOUND)
        if op == TERMINATE_CHILD:
            await self.terminate(child)
            self.del_child(child)
            return OK
        if child.restarting:
            return (ERROR, RESTARTING)
        if child.pid is not None:
            return (ERROR, RUNNING)
        if op == DELETE_CHILD:
            self.remove(child)
            return OK
        res = await do_start(child.spec)  # restart_child
        if res[0] == "ok":
            self.set_pid(child, res[1])
            return (OK, res[1])
        if res[0] == "ignore":
            return (OK, UNDEFINED)
        return (ERROR, res[1])

    async def start_child(self, spec: ChildSpec) -> Any:
        try:
            _check_significant(spec, self.flags.auto_shutdown)
        except InvalidChildSpec as e:
            return (ERROR, (BAD_COMBINATION, str(e)))
        old = self.children.get(spec.id)
        if old is not None:
            if old.pid is not None:
                return (ERROR, (ALREADY_STARTED, old.pid))
            return (ERROR, ALREADY_PRESENT)
        res = await do_start(spec)
        if res[0] == "error":
            return (ERROR, res[1])
        if res[0] == "ignore" and spec.restart == "temporary":
            return (OK, UNDEFINED)  # the spec is not kept
        child = _Child(spec)
        self.ids.append(spec.id)
        self.children[spec.id] = child
        if res[0] == "ok":
            self.set_pid(child, res[1])
            return (OK, res[1])
        return (OK, UNDEFINED)

    def info(self, child: _Child) -> tuple[Any, ...]:
        pid: Pid | Atom | None = RESTARTING if child.restarting else child.pid
        return child_info(child.spec.id, pid, child.spec)

    def counts(self) -> ChildCounts:
        active = sups = workers = 0
        for c in self.children.values():
            if c.spec.type == "supervisor":
                sups += 1
            else:
                workers += 1
            if c.pid is not None and _alive(c.pid):
                active += 1
        return ChildCounts(len(self.children), active, sups, workers)

    def as_term(self) -> Any:
        """What `sys:get_state` shows another node (supervisor.erl's `#state{}`)."""
        return (
            Atom("state"),
            to_term(self.label),
            Atom(self.flags.strategy),
            [to_term(self.info(self.children[i])) for i in reversed(self.ids)],
            self.flags.max_restarts,
            self.flags.max_seconds,
        )

    # --- exits ---

    async def exit_from(self, pid: Pid, reason: Any) -> None:
        child = self.by_pid.pop(pid, None)
        if child is not None:
            await self.child_exited(child, reason)


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _alive(pid: Pid) -> bool:
    try:
        return api.is_alive(pid)
    except BeamletError:  # a remote pid: trust the link
        return True


class SupervisorServer(GenServer[Any]):
    """What runs in a supervisor process: a GenServer, as in OTP (supervisor.erl is a
    gen_server). `state` is the supervisor's own state object (`_Server` here): it
    provides `handle_call(request, from_)`, `exit_from(pid, reason)`, `try_again(id)`
    and `terminate_children` (`shutdown`), and raises `_Shutdown` to give up."""

    kind = "Supervisor"

    async def handle_call(self, request: Any, from_: gen.From, state: Any) -> Any:
        try:
            return Reply(await state.handle_call(request, from_), state)
        except _Shutdown as e:
            return self.give_up(e, state)

    async def handle_cast(self, request: Any, state: Any) -> Any:
        if type(request) is tuple and len(request) == 2 and request[0] == _TRY_AGAIN:
            try:
                await state.try_again(request[1])
            except _Shutdown as e:
                return self.give_up(e, state)
        return NoReply(state)

    async def handle_info(self, msg: Any, state: Any) -> Any:
        if type(msg) is Exit:
            try:
                await state.exit_from(msg.pid, msg.reason)
            except _Shutdown as e:
                return self.give_up(e, state)
            return NoReply(state)
        log.error(
            "%s %r received unexpected message: %r",
            self.kind,
            state.label,
            msg,
            extra={"beamlet_supervisor": state.label, "beamlet_message": msg},
        )
        return NoReply(state)

    def give_up(self, e: _Shutdown, state: Any) -> Any:
        if e.auto and APP_MASTER.get() == state.parent:
            api.send(state.parent, (_AUTO_SHUTDOWN_NOTICE, state.me))
        return Stop(SHUTDOWN, state)

    async def terminate(self, reason: Any, state: Any) -> None:
        """§8.5: stop every child (reverse start order) before exiting."""
        await state.stop_all()


class _SupervisorProc(SupervisorServer):
    async def init(self, boot: Any) -> Any:
        """supervisor.erl's init: trap exits, run the module's `init`, start the
        children in order (§8.3); a failure stops those started and fails the start."""
        cls, arg, name, parent = boot.value
        api.process_flag(trap_exit=True)
        result = await cls().init(arg)
        if result is None:
            return Ignore()
        try:
            specs, flags = _parse_init(result)
        except (InvalidChildSpec, InvalidSupervisorFlags) as e:
            return InitError(Shared(e))
        except _BadReturn:
            return Stop((BAD_RETURN, (cls, Atom("init"), result)))
        server = _Server(name, parent, flags, specs)
        failed = await server.start_children(list(server.ids))
        if failed is not None:
            await server.terminate_children(list(server.ids))
            return Stop((SHUTDOWN, (FAILED_TO_START_CHILD, failed[0], failed[1])))
        return Ok(server)


async def start_supervisor(
    proc: type[GenServer[Any]], cls: type, arg: Any, name: Any
) -> Pid | None:
    """Start a supervisor-like GenServer `proc` for the module `cls` (linked, no
    timeout, as supervisor:start_link); invalid children or flags found by its `init`
    raise `InvalidChildSpec` / `InvalidSupervisorFlags` here, in the caller."""
    boot = Shared((cls, arg, name, gen.link_parent()))
    try:
        return await proc.start_link(boot, name=name)
    except StartError as e:
        if type(e.reason) is Shared and isinstance(e.reason.value, BeamletError):
            raise e.reason.value from None
        raise


class _BadReturn(Exception):
    pass


def _parse_init(result: Any) -> tuple[list[ChildSpec], SupFlags]:
    """`init` returns `(children, flags)` or just `children` (default flags)."""
    if type(result) is tuple and len(result) == 2 and isinstance(result[1], SupFlags | Mapping):
        flags = SupFlags.coerce(result[1])
        return check_childspecs(result[0], flags.auto_shutdown), flags
    if isinstance(result, list | tuple):
        return check_childspecs(result), SupFlags()
    raise _BadReturn


class Supervisor:
    """A supervisor (§8). Use `Supervisor.start_link(children, ...)` directly, or
    subclass it and override `init` to compute the children at start.

    All request functions (`start_child`, `which_children`, ...) are synchronous calls
    to the supervisor process: they accept a pid, a registered name or a `Via`, wait
    as long as it takes (OTP's `infinity`), and raise `CallExit` (cause `NOPROC`) if
    the supervisor is not running.

    Examples:
        >>> from beamlet import GenServer, Supervisor
        >>> class Worker(GenServer[int]):
        ...     async def init(self, n):
        ...         return n
        >>> sup = await Supervisor.start_link(
        ...     [Worker.child_spec(1, name="w1", id="w1"), Worker.child_spec(2, id="w2")],
        ...     strategy="one_for_all",
        ... )
        >>> await Supervisor.count_children(sup)
        ChildCounts(specs=2, active=2, supervisors=0, workers=2)
        >>> beamlet.exit(beamlet.whereis("w1"), beamlet.KILL)     # restarted
        >>> await beamlet.sleep(0.01)
        >>> beamlet.whereis("w1") is not None
        True
    """

    async def init(self, arg: Any) -> Any:
        """Return `(children, flags)`, `children` alone (default flags) or None to not
        start (Erlang's `ignore`). Runs in the supervisor process.

        The default implementation serves `Supervisor.start_link(children, ...)`."""
        return arg

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        /,
        *,
        name: SupName | None = None,
        strategy: Strategy | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
        auto_shutdown: AutoShutdown | None = None,
    ) -> Pid | None:
        """Start a supervisor linked to the caller; return its pid once every child has
        started (None if `init` returned None).

        On the base class, `arg` is the list of children and the keyword flags apply
        (defaults: one_for_one, 3 restarts in 5 s, auto_shutdown never); invalid
        children or flags raise `InvalidChildSpec` / `InvalidSupervisorFlags` in the
        caller. On a subclass, `arg` goes to `init` and the flags come from it.

        Raises `AlreadyStarted` if `name` is taken, `StartError` if a child fails to
        start (reason `(shutdown, (failed_to_start_child, id, detail))`) or `init`
        fails (its exit reason) — when the caller traps exits; otherwise the caller is
        killed by the link, as in OTP (§7.1.2)."""
        flag_args: dict[str, Any] = {
            k: v
            for k, v in (
                ("strategy", strategy),
                ("max_restarts", max_restarts),
                ("max_seconds", max_seconds),
                ("auto_shutdown", auto_shutdown),
            )
            if v is not None
        }
        if cls.init is Supervisor.init:
            flags = SupFlags(**flag_args)
            specs = check_childspecs([] if arg is None else arg, flags.auto_shutdown)
            arg = (specs, flags)
        elif flag_args:
            raise TypeError(
                f"{cls.__name__}.start_link: flags come from {cls.__name__}.init(), "
                f"not keyword arguments {sorted(flag_args)}"
            )
        return await start_supervisor(_SupervisorProc, cls, arg, name)

    @classmethod
    def child_spec(cls, arg: Any = None, /, **options: Any) -> ChildSpec:
        """The spec to run this supervisor under another one: id `cls`, type
        `supervisor` (shutdown infinity), `args=(arg,)`.

        `options` may override spec fields (`id`, `restart`, `shutdown`, ...); the other
        options (`name`, and on the base class the flags) go to `start_link`.

        Examples:
            >>> from beamlet import GenServer, Supervisor
            >>> class Worker(GenServer[int]):
            ...     async def init(self, n):
            ...         return n
            >>> inner = Supervisor.child_spec([Worker.child_spec(1)], id="workers")
            >>> inner.id, inner.type
            ('workers', 'supervisor')
            >>> top = await Supervisor.start_link([inner], strategy="one_for_one")
            >>> [(c.id, c.type) for c in await Supervisor.which_children(top)]
            [('workers', 'supervisor')]
        """
        spec_opts = {k: v for k, v in options.items() if k in _SPEC_FIELDS}
        start_opts = {k: v for k, v in options.items() if k not in _SPEC_FIELDS}
        start: Any = cls.start_link
        if start_opts:
            start = functools.partial(cls.start_link, **start_opts)
        fields: dict[str, Any] = {"id": cls, "start": start, "args": (arg,), "type": "supervisor"}
        fields.update(spec_opts)
        return ChildSpec(**fields)

    # --- requests (§8.8) ---

    @staticmethod
    async def start_child(supervisor: Any, child: Any) -> Pid | None:
        """Add a child and start it. Returns its pid, or None if its start function
        said ignore (a temporary spec is then not kept).

        Raises `InvalidChildSpec` (bad spec), `AlreadyStarted` (the id runs),
        `AlreadyPresent` (the id is known but not running), `StartError(detail)` (the
        start failed; the spec is not kept).

        Examples:
            >>> from beamlet import Agent, Supervisor
            >>> sup = await Supervisor.start_link([], strategy="one_for_one")
            >>> pid = await Supervisor.start_child(sup, Agent.child_spec(list, id="a"))
            >>> [(c.id, c.pid == pid) for c in await Supervisor.which_children(sup)]
            [('a', True)]
        """
        spec = child_spec(child)
        return check(await call(supervisor, (START_CHILD, spec)), spec.id)  # type: ignore[no-any-return]

    @staticmethod
    async def terminate_child(supervisor: Any, child_id: Any) -> None:
        """Stop a child (§8.7); its spec is kept (unless temporary) so it can be
        restarted. Stopping a child that is not running is fine. A pid is not an id:
        `ChildNotFound` (use `DynamicSupervisor` for pids).

        Examples:
            >>> from beamlet import Agent, Supervisor
            >>> children = [Agent.child_spec(list, id="a")]
            >>> sup = await Supervisor.start_link(children, strategy="one_for_one")
            >>> await Supervisor.terminate_child(sup, "a")
            >>> await Supervisor.restart_child(sup, "a") is not None
            True
            >>> await Supervisor.terminate_child(sup, "a")
            >>> await Supervisor.delete_child(sup, "a")
            >>> await Supervisor.which_children(sup)
            []
        """
        check(await call(supervisor, (TERMINATE_CHILD, child_id)), child_id)

    @staticmethod
    async def restart_child(supervisor: Any, child_id: Any) -> Pid | None:
        """Start a stopped child again from its kept spec. Raises `ChildRunning`,
        `ChildRestarting`, `ChildNotFound` or `StartError`."""
        return check(await call(supervisor, (RESTART_CHILD, child_id)), child_id)  # type: ignore[no-any-return]

    @staticmethod
    async def delete_child(supervisor: Any, child_id: Any) -> None:
        """Forget the spec of a stopped child. Raises `ChildRunning`, `ChildRestarting`
        or `ChildNotFound`."""
        check(await call(supervisor, (DELETE_CHILD, child_id)), child_id)

    @staticmethod
    async def which_children(supervisor: Any) -> list[ChildInfo]:
        """`ChildInfo(id, pid | None | RESTARTING, type, modules)` for each child, in
        reverse start order (§8.8)."""
        return children_of(await call(supervisor, WHICH_CHILDREN))

    @staticmethod
    async def count_children(supervisor: Any) -> ChildCounts:
        """`ChildCounts(specs, active, supervisors, workers)`; `active` counts children
        alive now."""
        return counts_of(await call(supervisor, COUNT_CHILDREN))

    @staticmethod
    async def get_childspec(supervisor: Any, child_id: Any) -> ChildSpec:
        """The kept spec of a child; `ChildNotFound` if there is none."""
        return check(await call(supervisor, (GET_CHILDSPEC, child_id)), child_id)  # type: ignore[no-any-return]

    @staticmethod
    async def stop(supervisor: Any, reason: Any = NORMAL, timeout: float | None = None) -> None:
        """Stop the supervisor: its children are stopped in reverse start order, then it
        exits with `reason` (§8.10). Waits up to `timeout` s (None: forever)."""
        await gen.stop(supervisor, reason, timeout)
