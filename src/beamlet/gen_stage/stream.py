"""`stream`: consume stages from plain async code, with back-pressure
(docs/gen_stage.md G13.1).

The calling process subscribes itself to each producer with the messages of G3 and
applies the automatic-demand rule of G4.1, so the producer never sends more than
`max_demand` ahead of what the loop has consumed:

    async for event in stream([producer], max_demand=100):
        print(event)

Leaving the loop (break, an exception, `aclose`) cancels the subscriptions and drains
their in-flight events, so the caller's mailbox is left clean (for local producers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from beamlet import _core as api
from beamlet._core import NOPROC, NORMAL, Atom, BadArgument, Down, ProcessExit, Shared
from beamlet.behaviours import gen_server as gs
from beamlet.gen_stage.protocol import CANCEL, GEN_CONSUMER, GEN_PRODUCER, NIL, SUBSCRIBE, ask
from beamlet.gen_stage.stage import (
    _OptError,
    _split_subscription,
    _sub_opts,
    _transient_shutdown,
    _validate_in,
    _validate_int,
    _wire_opts,
    split_batches,
)

__all__ = ["stream"]

_DRAIN_TIMEOUT = 5.0


class _Sub:
    __slots__ = ("cancel", "demand", "max", "min", "pid")

    def __init__(self, pid: Any, cancel: str, min_: int, max_: int) -> None:
        self.pid = pid
        self.cancel = cancel
        self.min = min_
        self.max = max_
        self.demand = max_


def _validate(entries: Iterable[Any]) -> list[tuple[Any, str, int, int, dict[str, Any]]]:
    out = []
    for entry in entries:
        to, raw = _split_subscription(entry)
        try:
            opts = _sub_opts(raw)
            check = dict(opts)
            max_ = _validate_int(check, "max_demand", 1000, 1, float("inf"), False)
            min_ = _validate_int(check, "min_demand", max_ // 2, 0, max_ - 1, False)
            mode = _validate_in(
                check, "cancel", "permanent", ("temporary", "transient", "permanent")
            )
        except _OptError as e:
            raise BadArgument(f"invalid options for {to!r} producer ({e})") from None
        out.append((to, mode, min_, max_, opts))
    return out


async def stream(
    subscriptions: list[Any], *, demand: str = "forward", producers: list[Any] | None = None
) -> AsyncIterator[Any]:
    """Events from the producers in `subscriptions` (each a server reference or
    `(server, options_dict)` with `max_demand`, `min_demand`, `cancel` and dispatcher
    options), one at a time, asking for more as they are consumed (G13.1).

    Must run inside a beamlet process. After subscribing, the producers' demand mode is
    set to `demand` (default "forward"; `producers` names other stages to set instead).
    A producer that ends makes the stream raise its exit (`ProcessExit`) under a
    permanent subscription (transient: unless the reason is normal/shutdown); otherwise
    the stream ends when no subscription is left. Bad options raise `BadArgument` before
    anything is sent.

    Examples:
        >>> import itertools
        >>> from beamlet.gen_stage import from_iterable, stream
        >>> producer = await from_iterable(itertools.count())    # endless
        >>> async for n in stream([(producer, {"max_demand": 10})]):
        ...     if n == 25:                     # asked for 10 at a time, 30 at most
        ...         break
        >>> beamlet.is_alive(producer)          # the subscription was cancelled
        True
    """
    if type(subscriptions) is not list:
        raise BadArgument(f"stream expects a list of subscriptions, got: {subscriptions!r}")
    entries = _validate(subscriptions)
    me = api.self()
    subs: dict[Any, _Sub] = {}
    try:
        for to, mode, min_, max_, opts in entries:
            pid = gs.whereis(to)
            if pid is None:
                if mode == "temporary":
                    continue
                raise ProcessExit((NOPROC, ("GenStage.stream", subscriptions)))
            tag = api.monitor(pid)
            subs[tag] = _Sub(pid, mode, min_, max_)
            api.send(pid, (GEN_PRODUCER, (me, tag), (SUBSCRIBE, NIL, _wire_opts(opts))))
            ask((pid, tag), max_)
        for stage in producers if producers is not None else [s.pid for s in subs.values()]:
            gs.cast(stage, (Atom("$demand"), Atom(demand)))

        def ours(m: Any) -> bool:
            if type(m) is Shared:  # G3.8: from a producer that shares its events
                m = m.value
            if type(m) is tuple:
                return (
                    len(m) == 3
                    and m[0] == GEN_CONSUMER
                    and type(m[1]) is tuple
                    and len(m[1]) == 2
                    and m[1][1] in subs
                )
            return type(m) is Down and m.ref in subs

        while subs:
            msg = await api.receive(ours)
            if type(msg) is Shared:
                msg = msg.value
            if type(msg) is Down:
                kind_reason: Any = msg.reason
                tag = msg.ref
            else:
                _, (pid, tag), body = msg
                if type(body) is tuple and len(body) == 2 and body[0] == CANCEL:
                    kind_reason = body[1]
                    api.demonitor(tag, flush=True)
                else:
                    sub = subs[tag]
                    events = body if type(body) is list else list(body)
                    sub.demand, batches = split_batches(
                        events, (pid, tag), sub.min, sub.max, sub.demand
                    )
                    for batch, n in batches:
                        for event in batch:
                            yield event
                        ask((pid, tag), n)
                    continue
            sub = subs.pop(tag)
            if sub.cancel == "permanent" or (
                sub.cancel == "transient" and not _transient_shutdown(kind_reason)
            ):
                raise ProcessExit((kind_reason, ("GenStage.stream", subscriptions)))
    finally:
        await _close(me, subs)


async def _close(me: Any, subs: dict[Any, _Sub]) -> None:
    """Cancel what is left and drop its in-flight events until the producer confirms."""
    for tag, sub in subs.items():
        try:
            api.send(sub.pid, (GEN_PRODUCER, (me, tag), (CANCEL, NORMAL)))
        except LookupError:
            pass
    for tag in list(subs):

        def done(m: Any, tag: Any = tag) -> bool:
            if type(m) is Shared:
                m = m.value
            if type(m) is Down:
                return bool(m.ref == tag)
            return (
                type(m) is tuple
                and len(m) == 3
                and m[0] == GEN_CONSUMER
                and type(m[1]) is tuple
                and len(m[1]) == 2
                and m[1][1] == tag
            )

        while True:
            m = await api.receive(done, timeout=_DRAIN_TIMEOUT, default=None)
            if m is None or type(m) is Down:
                break
            body = (m.value if type(m) is Shared else m)[2]
            if type(body) is tuple and len(body) == 2 and body[0] == CANCEL:
                break
        api.demonitor(tag, flush=True)
