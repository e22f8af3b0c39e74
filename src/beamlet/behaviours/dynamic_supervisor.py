"""DynamicSupervisor: a supervisor for children started on demand (docs/semantics.md §9).

A `Supervisor` knows its children up front, by id. A `DynamicSupervisor` starts with
none: you add them at run time with `start_child`, and it identifies them by pid only
(the spec's `id` is ignored). It restarts them one for one, like Elixir's
`DynamicSupervisor` (and Erlang's `simple_one_for_one`).

When to use it: for an open-ended number of similar processes created while the program
runs — one per connection, per user session, per job. Put the DynamicSupervisor in your
supervision tree and call `start_child` from wherever the need arises.

Examples:

    sup = await DynamicSupervisor.start_link(name="sessions", max_children=10_000)
    pid = await DynamicSupervisor.start_child("sessions", Session.child_spec(user_id))
    ...
    await DynamicSupervisor.terminate_child("sessions", pid)

Restarts follow the child's restart type (§8.4): `temporary` never, `transient` unless
it exited `normal`/`shutdown`/`(shutdown, _)`, `permanent` always. A restarted child
gets the same arguments: `extra_arguments` (given at start) followed by the spec's own
`args`. A restart that fails is retried through the supervisor's mailbox, each attempt
counting toward the restart intensity (`max_restarts` in `max_seconds`); exceeding it
stops every child and the supervisor exits `shutdown`.

Edge cases:

* `max_children` counts running children *and* children waiting for a restart retry;
  at the limit, `start_child` raises `MaxChildren`.
* When the supervisor terminates, all children get their shutdown signal at once and
  are awaited concurrently, each up to its own `shutdown` time (§8.5).
* `terminate_child` takes a pid; a pid that is not (or no longer) a child raises
  `ChildNotFound`. A terminated child is never restarted.
* `significant` children and `auto_shutdown` are not supported (as in Elixir).
* Start failures report Elixir's reasons: the `StartError` reason as is, the bare exit
  reason for `beamlet.exit(r)`, the `Crash` for an exception.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from beamlet import _core as api
from beamlet._core import (
    KILL,
    NORMAL,
    SHUTDOWN,
    UNDEFINED,
    Atom,
    Down,
    Pid,
    Ref,
    Shared,
    TimerMsg,
)
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec, StartError
from beamlet.behaviours.gen import ERROR, GEN_CAST, OK, to_term
from beamlet.behaviours.gen_server import Ignore, InitError, Ok, Stop
from beamlet.behaviours.names import Via
from beamlet.behaviours.reasons import is_clean_reason
from beamlet.behaviours.supervisor import (
    _SPEC_FIELDS,
    _TRY_AGAIN,
    BAD_RETURN,
    BADCALL,
    COUNT_CHILDREN,
    MAX_CHILDREN,
    NOT_FOUND,
    RESTARTING,
    START_CHILD,
    TERMINATE_CHILD,
    WHICH_CHILDREN,
    ChildCounts,
    ChildInfo,
    InvalidSupervisorFlags,
    RestartIntensity,
    SupervisorServer,
    SupName,
    _Shutdown,
    call,
    check,
    child_info,
    child_spec,
    children_of,
    counts_of,
    counts_term,
    do_start,
    for_caller,
    report,
    shutdown_child,
    shutdown_ok,
    spec_from_term,
    start_supervisor,
    unlink_flush,
)

__all__ = ["DynamicSupervisor", "DynamicSupFlags", "MaxChildren"]

log = logging.getLogger("beamlet")

_KILL_GROUP: Final = Atom("$beamlet_kill_group")


class MaxChildren(StartError):
    """`start_child` at the `max_children` limit (Elixir's `{:error, :max_children}`);
    `.reason` is `Atom("max_children")`."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(MAX_CHILDREN)
        if message is not None:
            self.args = (message,)


@dataclass(frozen=True, slots=True)
class DynamicSupFlags:
    """The options of a DynamicSupervisor (§9).

    `max_children=None` means no limit; `extra_arguments` are prepended to every
    child's start arguments.

    Examples:
        >>> DynamicSupFlags(max_children=100, extra_arguments=(pool,))
    """

    strategy: str = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    max_children: int | None = None
    extra_arguments: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.strategy != "one_for_one":
            raise InvalidSupervisorFlags(
                f"invalid strategy {self.strategy!r}: a DynamicSupervisor is one_for_one"
            )
        r = self.max_restarts
        if type(r) is not int or r < 0:
            raise InvalidSupervisorFlags(f"max_restarts must be an int >= 0, not {r!r}")
        s = self.max_seconds
        if isinstance(s, bool) or not isinstance(s, int | float) or not s > 0:
            raise InvalidSupervisorFlags(f"max_seconds must be a number > 0, not {s!r}")
        m = self.max_children
        if m is not None and (type(m) is not int or m < 0):
            raise InvalidSupervisorFlags(f"max_children must be an int >= 0 or None, not {m!r}")
        extra: Any = self.extra_arguments
        if type(extra) is list:
            object.__setattr__(self, "extra_arguments", tuple(extra))
        elif type(extra) is not tuple:
            raise InvalidSupervisorFlags(f"extra_arguments must be a tuple or list, not {extra!r}")

    @classmethod
    def coerce(cls, flags: Any) -> DynamicSupFlags:
        """A `DynamicSupFlags` from itself or a mapping (unknown keys are ignored)."""
        if isinstance(flags, DynamicSupFlags):
            return flags
        if isinstance(flags, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            if "auto_shutdown" in flags and flags["auto_shutdown"] != "never":
                raise InvalidSupervisorFlags(
                    f"invalid auto_shutdown {flags['auto_shutdown']!r} for a DynamicSupervisor"
                )
            return cls(**{k: v for k, v in flags.items() if k in known})
        raise InvalidSupervisorFlags(
            f"DynamicSupervisor flags must be DynamicSupFlags or a dict, not {flags!r}"
        )


def _check_spec(child: Any) -> ChildSpec:
    spec = child_spec(child)
    if spec.significant:
        raise InvalidChildSpec(
            f"invalid_significant: child {spec.id!r} is significant; "
            "a DynamicSupervisor has no auto_shutdown"
        )
    return spec


class _DynChild:
    __slots__ = ("restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.restarting = False


class _DynServer:
    """State and loop of one DynamicSupervisor (dynamic_supervisor.ex)."""

    def __init__(self, name: Any, parent: Pid, flags: DynamicSupFlags) -> None:
        self.parent = parent
        self.me = api.self()
        self.label: Any = name if name is not None else self.me
        self.flags = flags
        self.intensity = RestartIntensity(flags.max_restarts, flags.max_seconds)
        # pid -> child, in start order; a child waiting for a restart retry stays under
        # its old (dead) pid with restarting=True, as Elixir keeps {:restarting, child}.
        self.children: dict[Pid, _DynChild] = {}

    def report(self, context: str, reason: Any, pid: Any, child: _DynChild) -> None:
        level = logging.INFO if context == "child_restarted" else logging.ERROR
        report(context, self.label, reason, child.spec.id, pid, level=level)

    async def start(self, spec: ChildSpec) -> Any:
        return await do_start(spec, self.flags.extra_arguments, elixir=True)

    # --- exits and restarts ---

    async def exit_from(self, pid: Pid, reason: Any) -> None:
        await self.child_exited(pid, reason)

    async def child_exited(self, pid: Pid, reason: Any) -> None:
        child = self.children.get(pid)
        if child is None or child.restarting:
            return
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and not is_clean_reason(reason)):
            self.report("child_terminated", reason, pid, child)
            await self.restart(pid, child)
            return
        if not is_clean_reason(reason):
            self.report("child_terminated", reason, pid, child)
        del self.children[pid]

    async def restart(self, pid: Pid, child: _DynChild) -> None:
        if not self.intensity.add():
            self.report("shutdown", Atom("reached_max_restart_intensity"), pid, child)
            self.children.pop(pid, None)
            raise _Shutdown(auto=False)
        res = await self.start(child.spec)
        if res[0] == "ok":
            del self.children[pid]
            self.children[res[1]] = _DynChild(child.spec)
            self.report("child_restarted", NORMAL, res[1], child)
        elif res[0] == "ignore":
            del self.children[pid]
        else:
            self.report("start_error", res[1], pid, child)
            child.restarting = True
            api.send(self.me, (GEN_CAST, (_TRY_AGAIN, pid)))

    async def try_again(self, pid: Any) -> None:
        child = self.children.get(pid)
        if child is not None and child.restarting:
            await self.restart(pid, child)

    # --- requests, in OTP's (Elixir's) wire shapes ---

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == WHICH_CHILDREN:
            return for_caller(from_, self.child_infos())
        if request == COUNT_CHILDREN:
            sups = sum(1 for c in self.children.values() if c.spec.type == "supervisor")
            active = sum(1 for c in self.children.values() if not c.restarting)
            n = len(self.children)
            return counts_term(n, active, sups, n - sups)
        if type(request) is not tuple or not request:
            return (ERROR, BADCALL)
        op = request[0]
        if op == START_CHILD and len(request) == 2:
            try:
                spec = spec_from_term(request[1])
            except InvalidChildSpec:
                return (ERROR, Atom("invalid_child_spec"))
            return await self.start_child(spec)
        if op == TERMINATE_CHILD and len(request) == 2:
            pid = request[1]
            child = self.children.get(pid) if type(pid) is Pid else None
            if child is None:
                return (ERROR, NOT_FOUND)
            if not child.restarting:
                err = await shutdown_child(pid, child.spec)
                if err is not None:
                    self.report("shutdown_error", err, pid, child)
            del self.children[pid]
            return OK
        extra = self.handle_other(request)
        if extra is not None:
            return await self.start_child(extra)
        return (ERROR, BADCALL)

    def as_term(self) -> Any:
        """What `sys:get_state` shows another node (dynamic_supervisor.ex's state)."""
        limit = self.flags.max_children
        return {
            Atom("name"): to_term(self.label),
            Atom("strategy"): Atom("one_for_one"),
            Atom("children"): [to_term(i) for i in self.child_infos()],
            Atom("max_restarts"): self.flags.max_restarts,
            Atom("max_seconds"): self.flags.max_seconds,
            Atom("max_children"): Atom("infinity") if limit is None else limit,
        }

    def child_infos(self) -> list[tuple[Any, ...]]:
        return [
            child_info(UNDEFINED, RESTARTING if c.restarting else pid, c.spec)
            for pid, c in self.children.items()
        ]

    def handle_other(self, request: Any) -> ChildSpec | None:
        """A request only some dynamic supervisors serve (Task.Supervisor's
        `start_task`): the spec of the child to start, or None."""
        return None

    async def start_child(self, spec: ChildSpec) -> Any:
        limit = self.flags.max_children
        if limit is not None and len(self.children) >= limit:
            return (ERROR, MAX_CHILDREN)
        res = await self.start(spec)
        if res[0] == "ok":
            self.children[res[1]] = _DynChild(spec)
            return (OK, res[1])
        if res[0] == "ignore":
            return gen.IGNORE
        return (ERROR, res[1])

    # --- termination (§8.5: all at once, awaited concurrently) ---

    async def stop_all(self) -> None:
        await self.terminate_children()

    async def terminate_children(self) -> None:
        waiting: dict[Ref, tuple[Pid, _DynChild]] = {}
        groups: dict[float, list[Ref]] = {}
        for pid, child in self.children.items():
            if child.restarting:
                continue
            ref = api.monitor(pid)
            mode = child.spec.shutdown_value
            if mode == "brutal_kill":
                api.exit(pid, KILL)
            else:
                api.exit(pid, SHUTDOWN)
                if mode != "infinity":
                    groups.setdefault(float(mode), []).append(ref)
            waiting[ref] = (pid, child)
        timers: dict[Ref, list[Ref]] = {
            api.start_timer(t, self.me, _KILL_GROUP): refs for t, refs in groups.items()
        }

        def event(m: Any) -> bool:
            t = type(m)
            if t is Down:
                return m.ref in waiting
            return t is TimerMsg and m.ref in timers

        while waiting:
            m = await api.receive(event)
            if type(m) is TimerMsg:
                for ref in timers.pop(m.ref):
                    if ref in waiting:
                        api.exit(waiting[ref][0], KILL)
                continue
            pid, child = waiting.pop(m.ref)
            reason = await unlink_flush(pid, m.reason)
            if not shutdown_ok(child.spec, reason):
                self.report("shutdown_error", reason, pid, child)
        for tref in timers:
            api.cancel_timer(tref)
            await api.receive(
                lambda m, tref=tref: type(m) is TimerMsg and m.ref == tref, timeout=0, default=None
            )
        self.children.clear()


class DynamicServer(SupervisorServer):
    """The GenServer of a DynamicSupervisor process (dynamic_supervisor.ex)."""

    kind = "DynamicSupervisor"
    state_class: type[_DynServer] = _DynServer

    async def init(self, boot: Any) -> Any:
        cls, arg, name, parent = boot.value
        api.process_flag(trap_exit=True)
        result = await cls().init(arg)
        if result is None:
            return Ignore()
        if not isinstance(result, DynamicSupFlags | Mapping):
            return Stop((BAD_RETURN, (cls, Atom("init"), result)))
        try:
            flags = DynamicSupFlags.coerce(result)
        except InvalidSupervisorFlags as e:
            return InitError(Shared(e))
        return Ok(self.state_class(name, parent, flags))


class DynamicSupervisor:
    """A supervisor of children added at run time, identified by pid (§9).

    Start one with `DynamicSupervisor.start_link(...)`, or subclass it and override
    `init` to compute the options. The request functions accept a pid, a registered
    name or a `Via`, and raise `CallExit` (cause `NOPROC`) if the supervisor is not
    running.

    Examples:
        >>> from beamlet import Agent, DynamicSupervisor
        >>> sup = await DynamicSupervisor.start_link(max_children=2)
        >>> pid = await DynamicSupervisor.start_child(sup, Agent.child_spec(list))
        >>> await DynamicSupervisor.count_children(sup)
        ChildCounts(specs=1, active=1, supervisors=0, workers=1)
        >>> await DynamicSupervisor.terminate_child(sup, pid)
    """

    server: type[DynamicServer] = DynamicServer
    """The GenServer its process runs (Task.Supervisor's serves `start_task` too)."""

    async def init(self, arg: Any) -> Any:
        """Return the options (`DynamicSupFlags` or a dict), or None not to start.
        Runs in the supervisor process. The default serves `start_link(**options)`."""
        return arg

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        /,
        *,
        name: SupName | None = None,
        max_restarts: int | None = None,
        max_seconds: float | None = None,
        max_children: int | None = None,
        extra_arguments: tuple[Any, ...] | list[Any] | None = None,
        strategy: str | None = None,
    ) -> Pid | None:
        """Start a DynamicSupervisor linked to the caller (no children yet).

        On the base class the keyword options apply (defaults: 3 restarts in 5 s, no
        child limit, no extra arguments); invalid ones raise `InvalidSupervisorFlags`
        in the caller. On a subclass, `arg` goes to `init`, which returns the options.
        Raises `AlreadyStarted` if `name` is taken."""
        opts: dict[str, Any] = {
            k: v
            for k, v in (
                ("strategy", strategy),
                ("max_restarts", max_restarts),
                ("max_seconds", max_seconds),
                ("max_children", max_children),
                ("extra_arguments", extra_arguments),
            )
            if v is not None
        }
        if cls.init is DynamicSupervisor.init:
            arg = DynamicSupFlags(**opts)
        elif opts:
            raise TypeError(
                f"{cls.__name__}.start_link: options come from {cls.__name__}.init(), "
                f"not keyword arguments {sorted(opts)}"
            )
        return await start_supervisor(cls.server, cls, arg, name)

    @classmethod
    def child_spec(cls, arg: Any = None, /, **options: Any) -> ChildSpec:
        """The spec to run this DynamicSupervisor under a supervisor: type
        `supervisor`; id its `name` if it has one (the key of a `Via`), else `cls`, so
        several named ones can share a parent. Spec fields in `options` override the
        spec; the others (`name`, `max_children`, ...) go to `start_link`.

        Examples:
            >>> from beamlet import DynamicSupervisor, Supervisor
            >>> spec = DynamicSupervisor.child_spec(name="sessions", max_children=100)
            >>> spec.id, spec.type
            ('sessions', 'supervisor')
            >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
            >>> beamlet.whereis("sessions") is not None
            True
        """
        spec_opts = {k: v for k, v in options.items() if k in _SPEC_FIELDS}
        start_opts = {k: v for k, v in options.items() if k not in _SPEC_FIELDS}
        start: Any = cls.start_link
        if start_opts:
            start = functools.partial(cls.start_link, **start_opts)
        name = start_opts.get("name")
        default_id = cls if name is None else name.key if isinstance(name, Via) else name
        fields: dict[str, Any] = {
            "id": default_id,
            "start": start,
            "args": (arg,),
            "type": "supervisor",
        }
        fields.update(spec_opts)
        return ChildSpec(**fields)

    @staticmethod
    async def start_child(supervisor: Any, child: Any) -> Pid | None:
        """Start a child (a `ChildSpec`, a mapping, `cls` or `(cls, arg)`; its `id` is
        ignored). Returns its pid, or None if its start function said ignore.

        Raises `InvalidChildSpec`, `MaxChildren`, `AlreadyStarted` (the start function
        found its name taken) or `StartError(reason)`."""
        spec = _check_spec(child)
        try:
            return check(await call(supervisor, (START_CHILD, spec)), spec.id)  # type: ignore[no-any-return]
        except StartError as e:
            if e.reason == MAX_CHILDREN and type(e) is StartError:
                raise MaxChildren() from None
            raise

    @staticmethod
    async def terminate_child(supervisor: Any, pid: Pid) -> None:
        """Stop the child `pid` (§8.7) and forget it; raises `ChildNotFound` if `pid`
        is not a child (anymore)."""
        check(await call(supervisor, (TERMINATE_CHILD, pid)), pid)

    @staticmethod
    async def which_children(supervisor: Any) -> list[ChildInfo]:
        """`ChildInfo(None, pid | RESTARTING, type, modules)` for each child, oldest
        first."""
        return children_of(await call(supervisor, WHICH_CHILDREN))

    @staticmethod
    async def count_children(supervisor: Any) -> ChildCounts:
        """`ChildCounts(specs, active, supervisors, workers)`; `active` excludes children
        waiting for a restart retry."""
        return counts_of(await call(supervisor, COUNT_CHILDREN))

    @staticmethod
    async def stop(supervisor: Any, reason: Any = NORMAL, timeout: float | None = None) -> None:
        """Stop the supervisor: all children are stopped concurrently, then it exits
        with `reason`."""
        await gen.stop(supervisor, reason, timeout)
