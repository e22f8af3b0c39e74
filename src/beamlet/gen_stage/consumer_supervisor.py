"""ConsumerSupervisor: a consumer that starts one child per event (docs/gen_stage.md
G14).

    spec = ChildSpec(id="worker", start=Worker.start_link, restart="temporary")
    sup = await ConsumerSupervisor.start_link(spec, subscribe_to=[(producer, {"max_demand": 50})])

Each event `e` starts a child with `await spec.start(*spec.args, e)`. At most
`max_demand` children per producer run at once: demand is given back when children end,
in groups of at least `min_demand` (so `min_demand` here means "completions to collect
before asking again", not G4.1's threshold). Children must be `temporary` (never
restarted) or `transient` (restarted, same event, while they crash; `max_restarts` in
`max_seconds` stops the supervisor with `shutdown`). A child that fails to start counts
as done at once. Children outlive their producer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from beamlet import _core as api
from beamlet._core import KILL, NORMAL, SHUTDOWN, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.behaviours.gen_server import Stop
from beamlet.behaviours.names import Via
from beamlet.gen_stage.protocol import BAD_OPTS, ask
from beamlet.gen_stage.stage import Consumer, GenStage, Manual, NoReply, Reply

__all__ = ["ConsumerSupervisor"]

log = logging.getLogger("beamlet")


def _clean(reason: Any) -> bool:
    return reason in (NORMAL, SHUTDOWN) or (
        type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN
    )


class ConsumerSupervisor(GenStage[Any]):
    """The stage; start it with `ConsumerSupervisor.start_link(child_spec, ...)`."""

    def init(self, arg: Any) -> Any:
        spec, subscribe_to, max_restarts, max_seconds = arg
        if not isinstance(spec, ChildSpec):
            return Stop((BAD_OPTS, f"expected a ChildSpec, got: {spec!r}"))
        if spec.restart == "permanent":
            return Stop(
                (
                    BAD_OPTS,
                    "a child specification with :restart set to :permanent is not supported "
                    "in ConsumerSupervisor. Set the :restart option either to :temporary, "
                    "so children spawned from events are never restarted, or :transient, "
                    "so they are restarted only on abnormal exits",
                )
            )
        api.process_flag(trap_exit=True)
        self.spec = spec
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.restarts: list[float] = []
        self.children: dict[Pid, tuple[Any, tuple[Any, ...] | None]] = {}  # pid -> (ref, args)
        self.producers: dict[Any, list[Any]] = {}  # ref -> [from, count, pending, min, max]
        return Consumer(None, subscribe_to=subscribe_to)

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
        max_ = opts.get("max_demand", 1000)
        min_ = opts.get("min_demand", max_ // 2)
        ask(from_, max_)
        self.producers[from_[1]] = [from_, 0, 0, min_, max_]
        return Manual(state)

    def handle_cancel(self, reason: Any, from_: Any, state: Any) -> Any:
        self.producers.pop(from_[1], None)
        return NoReply([], state)

    async def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        ref = from_[1]
        started = errors = 0
        for event in events:
            args = (*self.spec.args, event)
            pid = await self._start(args, from_)
            if pid is None:
                errors += 1
            else:
                started += 1
                self.children[pid] = (ref, None if self.spec.restart == "temporary" else args)
        self._maybe_ask(ref, started + errors, errors)
        return NoReply([], state)

    async def _start(self, args: tuple[Any, ...], from_: Any) -> Pid | None:
        try:
            pid = await self.spec.start(*args)
        except StartError as e:
            log.error(
                "ConsumerSupervisor failed to start child from: %r with reason: %r", from_, e.reason
            )
            return None
        except Exception as e:
            log.error("ConsumerSupervisor failed to start child from: %r with reason: %r", from_, e)
            return None
        return pid

    def _maybe_ask(self, ref: Any, events: int, down: int) -> None:
        p = self.producers.get(ref)
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

    async def handle_info(self, msg: Any, state: Any) -> Any:
        if type(msg) is Exit and msg.pid in self.children:
            ref, args = self.children.pop(msg.pid)
            if args is not None and not _clean(msg.reason):  # transient: restart it
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now <= t + self.max_seconds] + [now]
                if len(self.restarts) > self.max_restarts:
                    self._maybe_ask(ref, 0, 1)
                    return Stop(SHUTDOWN, state)
                pid = await self._start(args, None)
                if pid is not None:
                    self.children[pid] = (ref, args)
                    return NoReply([], state)
            self._maybe_ask(ref, 0, 1)
            return NoReply([], state)
        if type(msg) is Exit:  # e.g. the parent, handled by GenServer; others are ignored
            return NoReply([], state)
        return await super().handle_info(msg, state)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        if request == "count_children":
            n = len(self.children)
            return Reply({"specs": 1, "active": n, "workers": n, "supervisors": 0}, [], state)
        if request == "which_children":
            return Reply([(None, pid, "worker") for pid in self.children], [], state)
        return super().handle_call(request, from_, state)

    async def terminate(self, reason: Any, state: Any) -> None:
        pids = list(self.children)
        for pid in pids:
            mref = api.monitor(pid)
            api.exit(pid, SHUTDOWN)
            timeout = self.spec.shutdown if isinstance(self.spec.shutdown, int | float) else 5.0
            if self.spec.shutdown == "brutal_kill":
                api.exit(pid, KILL)
            got = await api.receive(
                lambda m, r=mref: type(m) is Down and m.ref == r, timeout=timeout, default=None
            )
            if got is None:
                api.exit(pid, KILL)
                await api.receive(lambda m, r=mref: type(m) is Down and m.ref == r)

    @classmethod
    async def start_link(  # type: ignore[override]
        cls,
        child: ChildSpec,
        *,
        subscribe_to: list[Any] | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | Via | None = None,
        timeout: float | None = None,
    ) -> Pid | None:
        """Start the supervisor linked to the caller, subscribed to `subscribe_to`."""
        return await super().start_link(
            (child, subscribe_to or [], max_restarts, max_seconds), name=name, timeout=timeout
        )

    @classmethod
    async def start(  # type: ignore[override]
        cls,
        child: ChildSpec,
        *,
        subscribe_to: list[Any] | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | Via | None = None,
        timeout: float | None = None,
    ) -> Pid | None:
        """Like `start_link` without the link."""
        return await super().start(
            (child, subscribe_to or [], max_restarts, max_seconds), name=name, timeout=timeout
        )

    @staticmethod
    async def count_children(sup: Any) -> dict[str, int]:
        """`{"specs": 1, "active": n, "workers": n, "supervisors": 0}` (G14.4)."""
        out: dict[str, int] = await GenStage.call(sup, "count_children")
        return out

    @staticmethod
    async def which_children(sup: Any) -> list[tuple[None, Pid, str]]:
        """`[(None, pid, "worker"), ...]`: ids are undefined, as in GenStage."""
        out: list[tuple[None, Pid, str]] = await GenStage.call(sup, "which_children")
        return out
