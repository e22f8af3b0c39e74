"""The GenStage wire protocol (docs/gen_stage.md G3): the five messages, as Erlang terms.

    M1 {'$gen_producer', {ConsumerPid, Tag}, {subscribe, Current, SubOpts}}
    M2 {'$gen_producer', {ConsumerPid, Tag}, {ask, N}}
    M3 {'$gen_producer', {ConsumerPid, Tag}, {cancel, Reason}}
    M4 {'$gen_consumer', {ProducerPid, Tag}, Events}
    M5 {'$gen_consumer', {ProducerPid, Tag}, {cancel, Reason}}

`Current` is the atom `nil` or `{OldTag, Reason}`; `SubOpts` a list of `{atom, Value}`.
Events travel as a list to other nodes. Between processes of one node they travel as a
tuple: the kernel passes a tuple of immutable events by reference after a type check per
event, where a list would be deep-copied (docs/gen_stage.md G3.6). A producer that opted
in with `share_events=True` sends its batches wrapped in `Shared`, unchecked (G3.8).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from beamlet import _core as api
from beamlet._core import NORMAL, Atom, Pid, Shared

__all__ = [
    "ASK",
    "BAD_OPTS",
    "CANCEL",
    "GEN_CONSUMER",
    "GEN_PRODUCER",
    "NIL",
    "SUBSCRIBE",
    "ask",
    "cancel",
    "events_sender",
    "send_events",
]

GEN_PRODUCER: Final = Atom("$gen_producer")
GEN_CONSUMER: Final = Atom("$gen_consumer")
SUBSCRIBE: Final = Atom("subscribe")
ASK: Final = Atom("ask")
CANCEL: Final = Atom("cancel")
NIL: Final = Atom("nil")
"""Elixir's `nil`: "no current subscription" in M1 (G3.5); never `undefined` or `[]`."""
BAD_OPTS: Final = Atom("bad_opts")

SubscriptionFrom = tuple[Any, Any]
"""`(pid, tag)`: one subscription, as both ends name it (Erlang's `{Pid, Tag}`)."""


def send_events(pid: Any, tag: Any, events: list[Any], *, share: bool = False) -> None:
    """Send M4 with `events` (a non-empty list owned by the caller) to a consumer.

    A consumer of this node gets a tuple (cheap to isolate); one elsewhere a list. A
    2-event batch that starts with the atom `cancel` would read as M5, so it goes as a
    list. This is what a `Dispatcher` calls. With `share=True` (pass the dispatcher's
    `share_events`) a consumer of this node gets the message in a `Shared` envelope, the
    list itself by reference: the rule of the stage option `share_events` applies
    (docs/gen_stage.md G3.8).

    Examples:
        >>> from beamlet.gen_stage import send_events
        >>> send_events(beamlet.self(), "tag", ["a", "b"])
        >>> await beamlet.receive()
        (Atom('$gen_consumer'), (<...>, 'tag'), ('a', 'b'))
    """
    me = api.self()
    local = type(pid) is Pid and str.__eq__(pid.node, me.node)  # (str's ==: in C)
    try:
        api.send(pid, _m4((me, tag), events, local, share))
    except LookupError:  # a name that is no longer registered: like a dead pid
        pass


def _m4(frm: tuple[Any, Any], events: list[Any], local: bool, share: bool) -> Any:
    if not local:
        return (GEN_CONSUMER, frm, list(events))
    if share:  # G3.8: the whole message by reference, unchecked
        return Shared((GEN_CONSUMER, frm, events))
    if len(events) == 2 and events[0] == CANCEL:  # a tuple would read as M5
        return (GEN_CONSUMER, frm, events)
    return (GEN_CONSUMER, frm, tuple(events))


def events_sender(pid: Any, tag: Any, *, share: bool = False) -> Callable[[list[Any]], None]:
    """`send_events` for one subscription, its route decided once: returns a function
    that sends one batch (for dispatchers that keep it per consumer).

    Every batch it sends carries the same `{ProducerPid, Tag}` tuple, so the consumer
    recognises its subscription by identity, without a lookup (docs/gen_stage.md G3.9).

    Examples:
        >>> from beamlet.gen_stage import events_sender
        >>> send = events_sender(beamlet.self(), "tag")
        >>> send([1, 2]); send([3])
        >>> m1, m2 = await beamlet.receive(), await beamlet.receive()
        >>> m1[2], m2[2], m1[1] is m2[1]
        ((1, 2), (3,), True)
    """
    me = api.self()
    frm = (me, tag)
    send = api.send
    local = type(pid) is Pid and str.__eq__(pid.node, me.node)
    if local and share:

        def shared(events: list[Any]) -> None:  # the hot one: `_m4`'s branch, inlined
            send(pid, Shared((GEN_CONSUMER, frm, events)))

        return shared

    def sender(events: list[Any]) -> None:
        try:
            send(pid, _m4(frm, events, local, share))
        except LookupError:  # a name that is no longer registered: like a dead pid
            pass

    return sender


def send_cancel_to_consumer(pid: Any, tag: Any, reason: Any) -> None:
    """Send M5."""
    try:
        api.send(pid, (GEN_CONSUMER, (api.self(), tag), (CANCEL, reason)))
    except LookupError:
        pass


def ask(subscription: SubscriptionFrom, demand: int) -> None:
    """Send M2 from the calling process: ask the producer of `subscription` for
    `demand` more events (Elixir's `GenStage.ask/3`, G8.2). `demand == 0` sends nothing.

    Examples:
        >>> from beamlet.gen_stage import Consumer, GenStage, Manual, NoReply, from_iterable
        >>> me = beamlet.self()
        >>> class OneAtATime(GenStage[None]):
        ...     def init(self, producer):
        ...         return Consumer(None, subscribe_to=[producer])
        ...     def handle_subscribe(self, kind, opts, from_, state):
        ...         GenStage.ask(from_, 1)                  # Manual demand: ask yourself
        ...         return Manual(state)
        ...     def handle_events(self, events, from_, state):
        ...         beamlet.send(me, events)
        ...         GenStage.ask(from_, 1)
        ...         return NoReply([], state)
        >>> _ = await OneAtATime.start_link(await from_iterable("ab"))
        >>> [await beamlet.receive() for _ in range(2)]
        [['a'], ['b']]
    """
    if type(demand) is not int or demand < 0:
        raise ValueError(f"demand must be an integer >= 0, not {demand!r}")
    if type(subscription) is not tuple or len(subscription) != 2:
        raise ValueError(f"a subscription is a (pid, tag) pair, not {subscription!r}")
    if demand == 0:
        return
    pid, tag = subscription
    try:
        api.send(pid, (GEN_PRODUCER, (api.self(), tag), (ASK, demand)))
    except LookupError:
        pass


def cancel(subscription: SubscriptionFrom, reason: Any = NORMAL) -> None:
    """Send M3 from the calling process: cancel `subscription` with `reason` (G9.3).
    The consumer reacts when the producer's M5 (or DOWN) arrives (G10).

    Examples:
        >>> import itertools
        >>> from beamlet.gen_stage import Consumer, GenStage, NoReply, from_iterable
        >>> class Sink(GenStage[None]):
        ...     def init(self, _):
        ...         return Consumer(None)
        ...     def handle_events(self, events, from_, state):
        ...         return NoReply([], state)
        >>> producer = await from_iterable(itertools.repeat(0))   # endless
        >>> sink = await Sink.start()                            # not linked: it will exit
        >>> tag = await GenStage.sync_subscribe(sink, to=producer)   # cancel: permanent
        >>> ref = beamlet.monitor(sink)
        >>> GenStage.cancel((producer, tag), "done")
        >>> (await beamlet.receive()).reason                     # the consumer's exit
        'done'
    """
    if type(subscription) is not tuple or len(subscription) != 2:
        raise ValueError(f"a subscription is a (pid, tag) pair, not {subscription!r}")
    pid, tag = subscription
    try:
        api.send(pid, (GEN_PRODUCER, (api.self(), tag), (CANCEL, reason)))
    except LookupError:
        pass
