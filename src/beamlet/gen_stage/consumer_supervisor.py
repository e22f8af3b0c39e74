"""ConsumerSupervisor: a consumer that starts one child per event (docs/gen_stage.md
G14), with the supervisor API of Elixir's GenStage (`start_child`, `terminate_child`,
`which_children`, `count_children`).

    spec = ChildSpec(id="worker", start=Worker.start_link, restart="temporary")
    sup = await ConsumerSupervisor.start_link(spec, subscribe_to=[(producer, {"max_demand": 50})])

Each event `e` starts a child with `await spec.start(*spec.args, e)`. At most
`max_demand` children per producer run at once: demand is given back when children end,
in groups of at least `min_demand` (so `min_demand` here means "completions to collect
before asking again", not G4.1's threshold). Children must be `temporary` (never
restarted) or `transient` (restarted, same event, while they crash; `max_restarts` in
`max_seconds` stops the supervisor with `shutdown`). A child that fails to start counts
as done at once; one whose restart fails is retried (shown as `RESTARTING`). Children
outlive their producer. `start_child(sup, args)` starts a child outside any producer's
demand. The requests are OTP's (`{start_child, Args}`, `{terminate_child, Pid}`,
`which_children`, `count_children`), so an Elixir node can send them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any, Final, TypedDict, Unpack

from beamlet import _core as api
from beamlet._core import KILL, SHUTDOWN, UNDEFINED, Atom, Down, Exit, Pid
from beamlet.behaviours import gen
from beamlet.behaviours import supervisor as sup_
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec
from beamlet.behaviours.gen_server import Stop
from beamlet.behaviours.names import Via
from beamlet.behaviours.reasons import is_clean_reason
from beamlet.behaviours.supervisor import ChildCounts, ChildInfo, RestartIntensity
from beamlet.gen_stage.protocol import BAD_OPTS, ask
from beamlet.gen_stage.stage import Consumer, GenStage, Manual, NoReply, Reply

__all__ = ["ConsumerSupervisor"]

log = logging.getLogger("beamlet")

_DYNAMIC: Final[Any] = object()  # the "producer" of a child from start_child
_RESTART: Final = Atom("$gen_restart")
_BADARG: Final = Atom("badarg")
_SPEC_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(ChildSpec))
_PERMANENT_MSG: Final = (
    "a child specification with :restart set to :permanent is not supported in "
    "ConsumerSupervisor. Set the :restart option either to :temporary, so children "
    "spawned from events are never restarted, or :transient, so they are restarted only "
    "on abnormal exits"
)


class ConsumerSupervisorOptions(TypedDict, total=False):
    """The options of `ConsumerSupervisor.start_link` / `start`."""

    subscribe_to: list[Any]
    max_restarts: int
    max_seconds: float
    name: str | Atom | Via | None
    timeout: float | None


class _Child:
    __slots__ = ("args", "producer", "restarting")

    def __init__(self, producer: Any, args: tuple[Any, ...] | None) -> None:
        self.producer = producer  # the subscription's ref, or _DYNAMIC
        self.args = args  # what a restart calls start with; None for temporary children
        self.restarting = False


class _State:
    """The supervisor's own state (the stage's state is this object)."""

    def __init__(self, spec: ChildSpec, intensity: RestartIntensity) -> None:
        self.spec = spec
        self.starter = spec.with_overrides(args=())  # do_start(starter, args) calls start(*args)
        self.temporary = spec.restart == "temporary"
        self.intensity = intensity
        self.children: dict[Pid, _Child] = {}
        self.producers: dict[Any, list[Any]] = {}  # ref -> [from, count, pending, min, max]
        self.label: Any = api.self()


class ConsumerSupervisor(GenStage[Any]):
    """A consumer that supervises one child per event (GenStage's ConsumerSupervisor).

    Examples:
        >>> from beamlet import ChildSpec
        >>> from beamlet.gen_stage import ConsumerSupervisor, from_iterable
        >>> async def work(test, event):
        ...     beamlet.send(test, ("done", event))
        >>> async def start_job(test, event):        # one child per event
        ...     return beamlet.spawn_link(work, test, event)
        >>> spec = ChildSpec(id="job", start=start_job, args=(beamlet.self(),), restart="temporary")
        >>> producer = await from_iterable(range(3))
        >>> sub = (producer, {"max_demand": 2, "cancel": "transient"})
        >>> sup = await ConsumerSupervisor.start_link(spec, subscribe_to=[sub])
        >>> sorted([(await beamlet.receive())[1] for _ in range(3)])
        [0, 1, 2]
    """

    def init(self, arg: Any) -> Any:
        child, subscribe_to, max_restarts, max_seconds = arg
        try:
            spec = sup_.child_spec(child)
        except InvalidChildSpec as e:
            return Stop((BAD_OPTS, str(e)))
        if spec.restart == "permanent":
            return Stop((BAD_OPTS, _PERMANENT_MSG))
        if type(max_restarts) is not int or max_restarts < 0:
            return Stop((BAD_OPTS, "max_restarts must be an integer"))
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float):
            return Stop((BAD_OPTS, "max_seconds must be an integer"))
        api.process_flag(trap_exit=True)
        return Consumer(
            _State(spec, RestartIntensity(max_restarts, max_seconds)), subscribe_to=subscribe_to
        )

    # --- demand (G14.3) ---

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, st: _State) -> Any:
        max_ = opts.get("max_demand", 1000)
        min_ = opts.get("min_demand", max_ // 2)
        ask(from_, max_)
        st.producers[from_[1]] = [from_, 0, 0, min_, max_]
        return Manual(st)

    def handle_cancel(self, reason: Any, from_: Any, st: _State) -> Any:
        st.producers.pop(from_[1], None)
        return NoReply([], st)

    async def handle_events(self, events: list[Any], from_: Any, st: _State) -> Any:
        ref = from_[1]
        started = errors = 0
        for event in events:
            args = (*st.spec.args, event)
            res = await sup_.do_start(st.starter, args, elixir=True)
            if res[0] == "ok":
                started += 1
                st.children[res[1]] = _Child(ref, None if st.temporary else args)
            else:
                errors += 1
                if res[0] == "error":
                    log.error(
                        "ConsumerSupervisor failed to start child from: %r with reason: %r",
                        from_,
                        res[1],
                    )
                    self._report(st, "start_error", res[1], UNDEFINED)
        _maybe_ask(st, ref, started + errors, errors)
        return NoReply([], st)

    # --- the supervisor API, server side ---

    async def handle_call(self, request: Any, from_: Any, st: _State) -> Any:
        if request == sup_.WHICH_CHILDREN:
            infos = [
                sup_.child_info(UNDEFINED, sup_.RESTARTING if c.restarting else pid, st.spec)
                for pid, c in st.children.items()
            ]
            return Reply(sup_.for_caller(from_, infos), [], st)
        if request == sup_.COUNT_CHILDREN:
            n = len(st.children)
            active = n - sum(1 for c in st.children.values() if c.restarting)
            sups = n if st.spec.type == "supervisor" else 0
            # GenStage answers a map (OTP's supervisors a list); counts_of reads both
            counts = dict(sup_.counts_term(1, active, sups, n - sups))
            return Reply(counts, [], st)
        op = request[0] if type(request) is tuple and len(request) == 2 else None
        if op == sup_.START_CHILD:
            return Reply(await self._start_child(st, request[1]), [], st)
        if op == sup_.TERMINATE_CHILD:
            return Reply(await self._terminate_child(st, request[1]), [], st)
        return await super().handle_call(request, from_, st)

    async def _start_child(self, st: _State, extra: Any) -> Any:
        if not isinstance(extra, list | tuple):
            return (gen.ERROR, _BADARG)
        args = (*st.spec.args, *extra)
        res = await sup_.do_start(st.starter, args, elixir=True)
        if res[0] == "ok":
            st.children[res[1]] = _Child(_DYNAMIC, None if st.temporary else args)
            return (gen.OK, res[1])
        if res[0] == "ignore":
            return gen.IGNORE
        return (gen.ERROR, res[1])

    async def _terminate_child(self, st: _State, pid: Any) -> Any:
        child = st.children.get(pid) if type(pid) is Pid else None
        if child is None:
            return (gen.ERROR, sup_.NOT_FOUND)
        if not child.restarting:
            err = await sup_.shutdown_child(pid, st.spec)
            if err is not None:
                self._report(st, "shutdown_error", err, pid)
        _delete_and_maybe_ask(st, pid)
        return gen.OK

    # --- exits and restarts ---

    async def handle_info(self, msg: Any, st: _State) -> Any:
        t = type(msg)
        if t is Exit:
            child = st.children.get(msg.pid)
            if child is None or child.restarting:  # not a child (the parent is GenServer's)
                return NoReply([], st)
            reason = msg.reason
            if is_clean_reason(reason):
                _delete_and_maybe_ask(st, msg.pid)
                return NoReply([], st)
            self._report(st, "child_terminated", reason, msg.pid)
            if child.args is None:  # temporary
                _delete_and_maybe_ask(st, msg.pid)
                return NoReply([], st)
            return await self._restart(st, msg.pid, child)
        if t is tuple and len(msg) == 2 and msg[0] == _RESTART:
            child = st.children.get(msg[1])
            if child is not None and child.restarting:  # else terminated meanwhile
                return await self._restart(st, msg[1], child)
            return NoReply([], st)
        log.error("ConsumerSupervisor received unexpected message: %r", msg)
        return NoReply([], st)

    async def _restart(self, st: _State, pid: Pid, child: _Child) -> Any:
        if not st.intensity.add():
            self._report(st, "shutdown", Atom("reached_max_restart_intensity"), pid)
            _delete_and_maybe_ask(st, pid)
            return Stop(SHUTDOWN, st)
        assert child.args is not None
        res = await sup_.do_start(st.starter, child.args, elixir=True)
        if res[0] == "ok":
            del st.children[pid]
            st.children[res[1]] = _Child(child.producer, child.args)
        elif res[0] == "ignore":
            _delete_and_maybe_ask(st, pid)
        else:  # try again later, from the mailbox (the child shows as RESTARTING)
            self._report(st, "start_error", res[1], (sup_.RESTARTING, pid))
            child.restarting = True
            # through a timer, not the mailbox: a child that keeps failing to start must
            # not keep this process busy (Erlang would preempt it; a coroutine cannot be)
            api.send_after(0, api.self(), (_RESTART, pid))
        return NoReply([], st)

    def _report(self, st: _State, context: str, reason: Any, pid: Any) -> None:
        sup_.report(context, st.label, reason, UNDEFINED, pid)

    # --- termination: all children at once, within the spec's shutdown ---

    async def terminate(self, reason: Any, st: _State) -> None:
        mode = st.spec.shutdown_value
        waiting: dict[Any, Pid] = {}
        for pid, child in st.children.items():
            if not child.restarting:
                waiting[api.monitor(pid)] = pid
                api.exit(pid, KILL if mode == "brutal_kill" else SHUTDOWN)
        loop = asyncio.get_running_loop()
        deadline = None if mode in ("infinity", "brutal_kill") else loop.time() + float(mode)
        while waiting:
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            m = await api.receive(
                lambda m: type(m) is Down and m.ref in waiting, timeout=left, default=None
            )
            if m is None:  # out of time: kill the rest, then wait for them
                for pid in waiting.values():
                    api.exit(pid, KILL)
                deadline = None
                continue
            pid = waiting.pop(m.ref)
            exit_reason = await sup_.unlink_flush(pid, m.reason)
            if not sup_.shutdown_ok(st.spec, exit_reason):
                self._report(st, "shutdown_error", exit_reason, pid)
        st.children.clear()

    # --- starting ---

    @classmethod
    async def start_link(  # type: ignore[override]
        cls, child: Any, **options: Unpack[ConsumerSupervisorOptions]
    ) -> Pid | None:
        """Start the supervisor linked to the caller, subscribed to `subscribe_to` (a list
        as in `Consumer(subscribe_to=...)`). `child` is a `ChildSpec` (or anything
        `Supervisor.child_spec` takes) whose restart is `temporary` or `transient`;
        options (`ConsumerSupervisorOptions`): `subscribe_to`, `max_restarts` (3),
        `max_seconds` (5), `name`, `timeout`. Bad options fail with
        `StartError((BAD_OPTS, msg))`.

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="permanent")
            >>> await ConsumerSupervisor.start(spec)
            Traceback (most recent call last):
            beamlet.StartError: start failed: ...:permanent is not supported...
        """
        return await cls._start(True, child, options)

    @classmethod
    async def start(  # type: ignore[override]
        cls, child: Any, **options: Unpack[ConsumerSupervisorOptions]
    ) -> Pid | None:
        """Like `start_link` without the link."""
        return await cls._start(False, child, options)

    @classmethod
    async def _start(cls, link: bool, child: Any, options: Any) -> Pid | None:
        opts: dict[str, Any] = {"subscribe_to": [], "max_restarts": 3, "max_seconds": 5.0}
        unknown = set(options) - set(ConsumerSupervisorOptions.__annotations__)
        if unknown:
            raise TypeError(f"ConsumerSupervisor: unknown options {sorted(unknown)}")
        opts.update(options)
        arg = (child, opts["subscribe_to"], opts["max_restarts"], opts["max_seconds"])
        name, timeout = opts.get("name"), opts.get("timeout")
        if link:
            return await super().start_link(arg, name=name, timeout=timeout)
        return await super().start(arg, name=name, timeout=timeout)

    @classmethod
    def child_spec(  # type: ignore[override]
        cls, child: Any = None, **options: Any
    ) -> ChildSpec:
        """How a supervisor starts this ConsumerSupervisor: type `supervisor`, id the
        class (or its `name`); ChildSpec fields in `options` override the spec, the rest
        go to `start_link`.

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="temporary")
            >>> ConsumerSupervisor.child_spec(spec, name="jobs").type
            'supervisor'
        """
        fields = {k: v for k, v in options.items() if k in _SPEC_FIELDS}
        start_opts = {k: v for k, v in options.items() if k not in fields}
        name = start_opts.get("name")
        spec = ChildSpec(
            id=cls if name is None else name,
            start=functools.partial(cls.start_link, **start_opts),
            args=(child,),
            type="supervisor",
        )
        return spec.with_overrides(**fields) if fields else spec

    # --- the supervisor API, client side ---

    @staticmethod
    async def start_child(supervisor: Any, args: Sequence[Any] = ()) -> Pid | None:
        """Start a child with `start(*spec.args, *args)`, outside any producer's demand
        (GenStage's `start_child/2`). Returns its pid, or None if `start` said ignore;
        raises `StartError(reason)` (or `AlreadyStarted`) if it failed.

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="temporary")
            >>> sup = await ConsumerSupervisor.start_link(spec)
            >>> pid = await ConsumerSupervisor.start_child(sup)
            >>> await ConsumerSupervisor.count_children(sup)
            ChildCounts(specs=1, active=1, supervisors=0, workers=1)
        """
        if not isinstance(args, list | tuple):
            raise TypeError(f"start_child: args must be a list or tuple, not {args!r}")
        answer = await sup_.call(supervisor, (sup_.START_CHILD, list(args)))
        return sup_.check(answer, None)  # type: ignore[no-any-return]

    @staticmethod
    async def terminate_child(supervisor: Any, pid: Pid) -> None:
        """Stop the child `pid` with the spec's shutdown and forget it; raises
        `ChildNotFound` if it is not a child (anymore). A child of a producer gives its
        demand back.

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="temporary")
            >>> sup = await ConsumerSupervisor.start_link(spec)
            >>> pid = await ConsumerSupervisor.start_child(sup)
            >>> await ConsumerSupervisor.terminate_child(sup, pid)
            >>> beamlet.is_alive(pid)
            False
        """
        sup_.check(await sup_.call(supervisor, (sup_.TERMINATE_CHILD, pid)), pid)

    @staticmethod
    async def which_children(supervisor: Any) -> list[ChildInfo]:
        """`ChildInfo(None, pid | RESTARTING, type, modules)` per child: ids are
        `undefined` in a ConsumerSupervisor, as in GenStage.

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="temporary")
            >>> sup = await ConsumerSupervisor.start_link(spec)
            >>> pid = await ConsumerSupervisor.start_child(sup)
            >>> await ConsumerSupervisor.which_children(sup) == [(None, pid, "worker", ())]
            True
        """
        return sup_.children_of(await sup_.call(supervisor, sup_.WHICH_CHILDREN))

    @staticmethod
    async def count_children(supervisor: Any) -> ChildCounts:
        """`ChildCounts(specs=1, active, supervisors, workers)`: `active` leaves out
        children waiting for a restart retry (G14.4).

        Examples:
            >>> from beamlet import Agent, ChildSpec
            >>> from beamlet.gen_stage import ConsumerSupervisor
            >>> spec = ChildSpec(id="w", start=Agent.start_link, args=(list,), restart="temporary")
            >>> sup = await ConsumerSupervisor.start_link(spec)
            >>> await ConsumerSupervisor.count_children(sup)
            ChildCounts(specs=1, active=0, supervisors=0, workers=0)
        """
        return sup_.counts_of(await sup_.call(supervisor, sup_.COUNT_CHILDREN))


def _maybe_ask(st: _State, ref: Any, events: int, down: int) -> None:
    """Count `events` more running for producer `ref`, `down` ended; give demand back in
    groups of at least min_demand (G14.3)."""
    p = st.producers.get(ref)
    if p is None:
        return
    frm, count, pending, min_, max_ = p
    if count + events > max_:
        log.error(
            "ConsumerSupervisor has received %d events in excess from: %r",
            count + events - max_,
            frm,
        )
    pending += down
    if pending >= min_ and pending > 0:
        ask(frm, pending)
        pending = 0
    p[1] = count + events - down
    p[2] = pending


def _delete_and_maybe_ask(st: _State, pid: Pid) -> None:
    child = st.children.pop(pid)
    if child.producer is not _DYNAMIC:
        _maybe_ask(st, child.producer, 0, 1)
