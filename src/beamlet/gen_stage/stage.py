"""GenStage: demand-driven producers and consumers (docs/gen_stage.md G1-G12).

A stage is a GenServer whose `init` picks a role (G1.1): a producer emits events only
when consumers ask for them, a consumer asks for events and handles them, a
producer_consumer does both. Demand flows upstream and events downstream, so a slow
consumer slows its producers down instead of filling memory.

    class Counter(GenStage[int]):
        async def init(self, start: int) -> Producer[int]:
            return Producer(start)

        async def handle_demand(self, demand: int, counter: int) -> NoReply[int]:
            events = list(range(counter, counter + demand))
            return NoReply(events, counter + demand)

    class Printer(GenStage[None]):
        async def init(self, producer: Pid) -> Consumer[None]:
            return Consumer(None, subscribe_to=[(producer, {"max_demand": 10})])

        async def handle_events(self, events, from_, state) -> NoReply[None]:
            print(events)
            return NoReply([], state)

    producer = await Counter.start_link(0)
    await Printer.start_link(producer)

The messages between stages are GenStage's own (G3), so a beamlet stage subscribes to an
Elixir GenStage on another node and the other way round. The engine is a GenServer
(`behaviours/gen_server.py`); calls, casts, `reply`, `stop` and child specs are
GenServer's.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar

from beamlet import _core as api
from beamlet._core import (
    NOPROC,
    NORMAL,
    SHUTDOWN,
    Atom,
    BadArgument,
    BeamletError,
    Down,
    Pid,
    ProcessExit,
    Ref,
    Shared,
    next_message,
)
from beamlet.behaviours import gen_server as gs
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import HIBERNATE, From, GenServer, Stop, UndefinedCallbackError
from beamlet.behaviours.names import ServerRef, Via
from beamlet.gen_stage.buffer import Buffer
from beamlet.gen_stage.dispatcher import DemandDispatcher, Dispatcher, SubscriptionRefused
from beamlet.gen_stage.protocol import (
    ASK,
    BAD_OPTS,
    CANCEL,
    GEN_CONSUMER,
    GEN_PRODUCER,
    NIL,
    SUBSCRIBE,
    SubscriptionFrom,
    ask,
    cancel,
    send_cancel_to_consumer,
)

__all__ = [
    "Automatic",
    "BadOpts",
    "Consumer",
    "GenStage",
    "Manual",
    "NoReply",
    "Producer",
    "ProducerConsumer",
    "Reply",
    "SubscribeError",
]

log = logging.getLogger("beamlet")
_send = api.send

S = TypeVar("S")

BAD_RETURN_VALUE: Final = gs.BAD_RETURN_VALUE
OK: Final = Atom("ok")
ERROR: Final = Atom("error")
NOT_A_CONSUMER: Final = Atom("not_a_consumer")
NOT_A_PRODUCER: Final = Atom("not_a_producer")
DUPLICATED_SUBSCRIPTION: Final = Atom("duplicated_subscription")
UNKNOWN_SUBSCRIPTION: Final = Atom("unknown_subscription")
ALREADY_SUBSCRIBED: Final = Atom("already_subscribed")
FORWARD: Final = Atom("forward")
ACCUMULATE: Final = Atom("accumulate")
PERMANENT: Final = Atom("permanent")
TRANSIENT: Final = Atom("transient")
TEMPORARY: Final = Atom("temporary")
# The reserved requests of G3.6, as Elixir's GenStage sends them.
SUBSCRIBE_REQ: Final = Atom("$subscribe")
DEMAND_REQ: Final = Atom("$demand")
INFO_REQ: Final = Atom("$info")
ESTIMATE_REQ: Final = Atom("$estimate_buffered_count")
STAGE_INFO_REQ: Final = Atom("$beamlet_stage_info")

_KEEP: Any = Stop(None).state  # GenServer's "keep the current state" default

Role = Literal["producer", "producer_consumer", "consumer"]


# --- callback results (G1.2, G1.4) -------------------------------------------------------


class _InitResult(Generic[S]):
    role: ClassVar[Role]
    __slots__ = ("options", "state")

    def __init__(self, state: S, **options: Any) -> None:
        self.state = state
        self.options = options

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.state!r}{opts})"


class Producer(_InitResult[S]):
    """`init` result: be a producer (Erlang `{producer, State, Opts}`, G1.3).

    Options: `dispatcher` (a `Dispatcher` class or `(class, options_dict)`, default
    `DemandDispatcher`), `buffer_size` (events kept when nobody asked, default 10,000;
    `math.inf` for no bound, 0 for none), `buffer_keep` ("last" or "first"), `demand`
    ("forward" or "accumulate"), `share_events` (default False: True passes batches to
    consumers on this node by reference, unchecked, under the rule that nobody changes
    an event once emitted, docs/gen_stage.md G3.8). Anything else fails the start with
    `StartError((BAD_OPTS, "unknown options ..."))`.

    Examples:
        >>> from beamlet import StartError
        >>> from beamlet.gen_stage import GenStage, NoReply, Producer
        >>> class Letters(GenStage[str]):
        ...     def init(self, letters):
        ...         return Producer(letters, buffer_size=100)   # state, then options
        ...     def handle_demand(self, demand, letters):
        ...         return NoReply(list(letters[:demand]), letters[demand:])
        >>> letters = await Letters.start_link("abc")
        >>> async for letter in GenStage.stream([letters]):
        ...     if letter == "c":
        ...         break
        >>> class Typo(GenStage[None]):
        ...     def init(self, _):
        ...         return Producer(None, buffer_sise=100)
        >>> try:
        ...     await Typo.start()
        ... except StartError as e:
        ...     print(e.reason[1])
        unknown options [buffer_sise: 100]
    """

    role = "producer"


class ProducerConsumer(_InitResult[S]):
    """`init` result: be a producer_consumer. Options: `dispatcher`, `buffer_size`
    (default `math.inf`), `buffer_keep`, `share_events` (see `Producer`), `subscribe_to`
    (see `Consumer`).

    It handles upstream events only while its own consumers have demand (G4.5).

    Examples:
        >>> from beamlet.gen_stage import GenStage, NoReply, ProducerConsumer, from_iterable
        >>> class Evens(GenStage[None]):
        ...     def init(self, producer):
        ...         return ProducerConsumer(None, subscribe_to=[producer])
        ...     def handle_events(self, events, from_, state):
        ...         return NoReply([e for e in events if e % 2 == 0], state)
        >>> evens = await Evens.start_link(await from_iterable(range(6)))
        >>> [e async for e in GenStage.stream([(evens, {"cancel": "transient"})])]
        [0, 2, 4]
    """

    role = "producer_consumer"


class Consumer(_InitResult[S]):
    """`init` result: be a consumer. Option `subscribe_to`: a list of producers, each a
    server reference or `(server, options_dict)`; the subscriptions are made before
    `start_link` returns (G2).

    Examples:
        >>> from beamlet.gen_stage import Consumer, GenStage, NoReply, from_iterable
        >>> class Collect(GenStage[list]):
        ...     def init(self, producer):
        ...         return Consumer([], subscribe_to=[(producer, {"max_demand": 2})])
        ...     def handle_events(self, events, from_, seen):
        ...         return NoReply([], seen + events)
        >>> held = await from_iterable("abc", demand="accumulate")   # sends nothing yet
        >>> collect = await Collect.start_link(held)
        >>> info = await GenStage.info(collect)
        >>> [(up["max_demand"], up["min_demand"]) for up in info["producers"].values()]
        [(2, 1)]
    """

    role = "consumer"


@dataclass(slots=True)
class NoReply(Generic[S]):
    """Result of `handle_demand`/`handle_events`/`handle_cast`/`handle_info`/
    `handle_cancel` (and `handle_call` without a reply): emit `events` (a list), continue
    with `state` (Erlang `{noreply, Events, State}`). `action` may be `HIBERNATE`.

    Examples:
        >>> from beamlet.gen_stage import GenStage, NoReply, Producer
        >>> class Echo(GenStage[int]):
        ...     def init(self, _):
        ...         return Producer(0)
        ...     def handle_demand(self, demand, sent):
        ...         return NoReply([], sent)                # events come from casts
        ...     def handle_cast(self, event, sent):
        ...         return NoReply([event], sent + 1)       # emit one, count it
        >>> echo = await Echo.start_link()
        >>> GenStage.cast(echo, "x")                        # buffered: nobody asked yet
        >>> async for event in GenStage.stream([echo]):
        ...     break
        >>> event
        'x'
    """

    events: list[Any]
    state: S
    action: Any = None


@dataclass(slots=True)
class Reply(Generic[S]):
    """`handle_call` result: emit `events`, then answer `reply` (G11.1).

    Examples:
        >>> from beamlet.gen_stage import GenStage, NoReply, Producer, Reply
        >>> class Queue(GenStage[None]):
        ...     def init(self, _):
        ...         return Producer(None)
        ...     def handle_demand(self, demand, state):
        ...         return NoReply([], state)
        ...     def handle_call(self, events, from_, state):
        ...         return Reply("queued", events, state)   # emit, then answer
        >>> queue = await Queue.start_link()
        >>> await GenStage.call(queue, ["a", "b"])
        'queued'
        >>> await GenStage.estimate_buffered_count(queue)  # no consumer: buffered
        2
    """

    reply: Any
    events: list[Any]
    state: S
    action: Any = None


@dataclass(frozen=True, slots=True)
class Automatic(Generic[S]):
    """`handle_subscribe` result: demand is handled for you (G4.1).

    Examples:
        >>> from beamlet.gen_stage import Automatic, Consumer, GenStage, from_iterable
        >>> me = beamlet.self()
        >>> class Watch(GenStage[None]):
        ...     def init(self, _):
        ...         return Consumer(None)
        ...     def handle_subscribe(self, kind, opts, from_, state):
        ...         beamlet.send(me, (kind, opts))
        ...         return Automatic(state)      # asks max_demand, then more as events go
        >>> watch = await Watch.start_link()
        >>> held = await from_iterable("abc", demand="accumulate")
        >>> _ = await GenStage.sync_subscribe(watch, to=held, max_demand=5)
        >>> await beamlet.receive()
        ('producer', {'max_demand': 5})
    """

    state: S


@dataclass(frozen=True, slots=True)
class Manual(Generic[S]):
    """`handle_subscribe` result (consumer side only): ask with `GenStage.ask` (G4.4).

    Examples:
        >>> from beamlet.gen_stage import Consumer, GenStage, Manual, NoReply, from_iterable
        >>> class Lazy(GenStage[list]):
        ...     def init(self, _):
        ...         return Consumer([])
        ...     def handle_subscribe(self, kind, opts, from_, seen):
        ...         return Manual(seen)                 # nothing flows until asked
        ...     def handle_events(self, events, from_, seen):
        ...         return NoReply([], seen + events)
        >>> lazy = await Lazy.start_link()
        >>> _ = await GenStage.sync_subscribe(lazy, to=await from_iterable("abc"))
        >>> [up["demand"] for up in (await GenStage.info(lazy))["producers"].values()]
        ['manual']
    """

    state: S


class SubscribeError(BeamletError):
    """`sync_subscribe` failed: `.reason` is the consumer's `{error, Reason}` reason."""

    def __init__(self, reason: Any) -> None:
        super().__init__(f"subscription failed: {reason!r}")
        self.reason = reason


class BadOpts(SubscribeError, ValueError):
    """Invalid subscription options (G2.2); `.message` says which."""

    def __init__(self, message: str) -> None:
        super().__init__((BAD_OPTS, message))
        self.message = message

    def __str__(self) -> str:
        return self.message


class _StopStage(Exception):
    def __init__(self, reason: Any, reply: Any = _KEEP) -> None:
        self.reason = reason
        self.reply = reply


# --- option validation (G1.3, G2.1) ----------------------------------------------------


def _plain(value: Any) -> Any:
    """An Atom or str option value as a plain str (for comparisons); others unchanged."""
    return str.__str__(value) if isinstance(value, str) else value


def _validate_int(
    opts: dict[str, Any], key: str, default: Any, low: int, high: float, infinity: bool
) -> Any:
    value = opts.pop(key, default)
    if infinity and (value == float("inf") or _plain(value) == "infinity"):
        return float("inf")
    if type(value) is not int:
        raise _OptError(f"expected :{key} to be an integer, got: {value!r}")
    if value < low:
        raise _OptError(f"expected :{key} to be equal to or greater than {low}, got: {value!r}")
    if value > high:
        raise _OptError(f"expected :{key} to be equal to or less than {high}, got: {value!r}")
    return value


def _validate_in(opts: dict[str, Any], key: str, default: str, values: tuple[str, ...]) -> str:
    value = opts.pop(key, default)
    if not isinstance(value, str) or _plain(value) not in values:
        raise _OptError(f"expected :{key} to be one of {list(values)}, got: {value!r}")
    plain: str = _plain(value)
    return plain


class _OptError(Exception):
    pass


def _sub_opts(raw: Any) -> dict[str, Any]:
    """Subscription options from the wire (a list of `{atom, Value}`, G3.5) or from
    Python (a dict) as a dict with str keys, in the caller's order."""
    if type(raw) is dict:
        items: Iterable[Any] = raw.items()
    elif type(raw) is list:
        items = raw
    else:
        raise _OptError(f"expected the subscription options to be a list, got: {raw!r}")
    out: dict[str, Any] = {}
    for item in items:
        if type(item) is not tuple or len(item) != 2 or not isinstance(item[0], str):
            raise _OptError(f"expected the subscription options to be a keyword list, got: {raw!r}")
        out.setdefault(_plain(item[0]), item[1])
    return out


def _wire_opts(opts: dict[str, Any]) -> list[tuple[Atom, Any]]:
    """Python subscription options as the keyword list M1 carries (G2.3)."""
    out = []
    for key, value in opts.items():
        wire = Atom(value) if key == "cancel" and isinstance(value, str) else value
        out.append((Atom(key), wire))
    return out


def _transient_shutdown(reason: Any) -> bool:
    return reason in (NORMAL, SHUTDOWN) or (
        type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN
    )


def _awaitable(r: Any) -> bool:
    """A callback's result to await (callers first test for NoReply: isawaitable() on a
    plain result costs an ABC check)."""
    return type(r) is CoroutineType or inspect.isawaitable(r)


_Later = Coroutine[Any, Any, None] | None
"""What the engine's steps return: None when done, else a coroutine to await (only an
`async` callback needs one, so the common stage message runs without a coroutine)."""


async def _wait(later: _Later) -> None:
    if later is not None:
        await later


async def _call_cb(fn: Any, *args: Any) -> Any:
    r = fn(*args)
    if _awaitable(r):
        r = await r
    return r


# --- the engine ------------------------------------------------------------------------


class _Upstream:
    """One subscription of this stage to a producer (the consumer's side)."""

    __slots__ = (
        "asked",
        "cancel",
        "demand",
        "frm",
        "manual",
        "max",
        "min",
        "pid",
        "shared",
        "span",
    )

    def __init__(self, pid: Any, cancel: str, min_: int, max_: int, manual: bool) -> None:
        self.pid = pid
        self.cancel = cancel
        self.min = min_
        self.max = max_
        self.span = max_ - min_  # the largest batch of one handle_events (G4.1)
        self.manual = manual
        self.demand = 0 if manual else max_
        self.shared = False  # the producer shares its events (G3.8): asks go as Shared
        self.asked: tuple[int, Any] = (0, None)  # the last (n, M2) sent: most asks repeat
        self.frm: Any = None  # the producer's last M4 `{Pid, Tag}` (G3.9: it reuses it)


# `last_up` when there is none: a constant (never written to), its frm matching no M4.
_NO_UPSTREAM: Final = _Upstream(None, "temporary", 0, 1, True)
_NO_UPSTREAM.frm = object()


class _PcCancel:
    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args = args


class _PcInfo:
    __slots__ = ("msg",)

    def __init__(self, msg: Any) -> None:
        self.msg = msg


class _Stage:
    """The state of a stage process: the callback object and state, the role, the
    subscriptions both ways, the dispatcher and the buffer (G1-G7)."""

    __slots__ = (
        "accumulating",
        "asks",
        "buffer",
        "buffer_keep",
        "consumers",
        "counter",
        "dispatcher",
        "idle",
        "last_up",
        "me",
        "mod",
        "monitors",
        "pc",
        "producers",
        "queue",
        "role",
        "state",
    )

    def __init__(self, mod: GenStage[Any], role: Role, state: Any) -> None:
        self.mod = mod
        self.role = role
        self.state = state
        self.me = api.self()
        self.idle = gs.NoReply(self)  # the GenServer result of every stage message
        self.dispatcher: Dispatcher | None = None
        self.buffer: Buffer | None = None
        self.buffer_keep = "last"
        self.accumulating: list[tuple[Any, ...]] | None = None  # producer in accumulate mode
        self.queue: deque[Any] = deque()  # producer_consumer: upstream events not handled yet
        self.counter = 0  # producer_consumer: downstream demand
        self.producers: dict[Any, _Upstream] = {}  # tag -> upstream subscription
        self.consumers: dict[Any, tuple[Any, Ref]] = {}  # tag -> (consumer pid, monitor)
        self.monitors: dict[Ref, Any] = {}  # monitor of a consumer -> its tag
        self.pc = role == "producer_consumer"
        # The hot paths recognise a repeated message by identity (G3.9): the upstream
        # of the last M4, and the M2s seen (id -> (M2, demand); kept alive here, so an
        # id is not reused while listed; cleared when a subscription ends).
        self.last_up = _NO_UPSTREAM
        self.asks: dict[int, tuple[Any, int]] = {}

    # --- callback results (G1.4, G1.6) ---

    def noreply(self, r: Any) -> None:
        """Apply a NoReply/Stop result; anything else stops with bad_return_value."""
        t = type(r)
        if t is NoReply and type(r.events) is list and (r.action is None or r.action is HIBERNATE):
            self.state = r.state
            if r.events:
                self.dispatch_events(r.events, len(r.events))
            return
        if t is Stop and r.reply is _KEEP_REPLY:
            if r.state is not _KEEP:
                self.state = r.state
            raise _StopStage(r.reason)
        raise _StopStage((BAD_RETURN_VALUE, r))

    def apply(self, fn: Any, *args: Any) -> _Later:
        """Run a callback and apply its result."""
        return self.applied(fn(*args))

    def applied(self, r: Any) -> _Later:
        """Apply a callback's result (awaiting it first if the callback is `async`)."""
        if type(r) is NoReply and r.action is None and type(events := r.events) is list:
            self.state = r.state  # (`noreply`'s common case, inlined)
            if events:
                self.dispatch_events(events, len(events))
            return None
        if _awaitable(r):
            return self.apply_later(r)
        self.noreply(r)
        return None

    async def apply_later(self, r: Any) -> None:
        self.noreply(await r)

    # --- producer side ---

    def dispatch_events(self, events: list[Any], length: int) -> None:
        if not events:
            return
        if self.accumulating is not None:  # G6.2: held while accumulating
            self.accumulating.append(("dispatch", events, length))
            return
        dispatcher = self.dispatcher
        if dispatcher is None:  # G1.7: a consumer
            log.error(
                "GenStage consumer %r cannot dispatch events (an empty list must be returned): %r",
                api.self(),
                events,
            )
            return
        leftover = dispatcher.dispatch(events, length)
        if self.pc:
            counter = self.counter - length + len(leftover)
            self.counter = counter if counter > 0 else 0
        if leftover:
            self.buffer_events(leftover)

    def buffer_events(self, events: list[Any]) -> None:
        buffer = self.buffer
        assert buffer is not None
        excess, fired = buffer.store_temporary(events, self.buffer_keep)
        if excess:
            show = True
            try:
                show = bool(self.mod.format_discarded(excess, self.state))
            finally:
                if show:
                    log.warning(
                        "GenStage producer %r has discarded %d events from buffer",
                        api.self(),
                        excess,
                    )
        for msg in fired:
            self.dispatch_info(msg)

    def dispatch_info(self, msg: Any) -> None:
        assert self.dispatcher is not None
        self.dispatcher.info(msg)

    def take_from_buffer(self, counter: int) -> int:
        buffer = self.buffer
        assert buffer is not None
        while True:
            taken = buffer.take(counter)
            if taken is None:
                return counter
            new_counter, temps, infos = taken
            self.dispatch_events(temps, counter - new_counter)
            for msg in infos:
                self.dispatch_info(msg)
            counter = new_counter

    def take_from_buffer_or_handle_demand(self, counter: int) -> _Later:
        assert self.buffer is not None
        if self.buffer.count:
            counter = self.take_from_buffer(counter)
        if counter == 0:
            return None
        if self.accumulating is not None:
            self.accumulating.append(("demand", counter))
            return None
        return self.apply(self.mod.handle_demand, counter, self.state)

    def dispatcher_result(self, counter: int) -> _Later:
        if self.pc:
            self.counter += counter
            assert self.buffer is not None
            if self.buffer.count:
                self.take_from_buffer(self.counter)
            return self.take_pc_events() if self.queue else None
        return self.take_from_buffer_or_handle_demand(counter)

    def on_gen_producer(self, msg: tuple[Any, Any, Any]) -> _Later:
        seen = self.asks.get(id(msg))
        if seen is not None and seen[0] is msg:  # an M2 seen before: checked then (G3.9)
            counter = self.dispatcher.ask(seen[1], msg[1])  # type: ignore[union-attr]
            if self.buffer.count or not counter:  # type: ignore[union-attr]
                return self.dispatcher_result(counter)
            if self.pc:  # dispatcher_result's common cases, inlined
                self.counter += counter
                return self.take_pc_events() if self.queue else None
            if self.accumulating is not None:
                return self.dispatcher_result(counter)
            return self.applied(self.mod.handle_demand(counter, self.state))
        _, frm, body = msg
        if type(frm) is not tuple or len(frm) != 2:
            log.error("GenStage %r received a malformed $gen_producer message: %r", api.self(), msg)
            return None
        if self.role == "consumer":
            log.error("GenStage consumer %r received $gen_producer message: %r", api.self(), msg)
            if type(body) is tuple and len(body) == 3 and body[0] == SUBSCRIBE:
                # GenStage only logs; refusing lets the subscriber end instead of waiting
                send_cancel_to_consumer(frm[0], frm[1], NOT_A_PRODUCER)
            return None
        pid, tag = frm
        if type(body) is tuple and len(body) == 2:
            kind, arg = body
            if kind is ASK or kind == ASK:
                if type(arg) is not int or arg < 0:
                    log.error("GenStage producer %r received a bad demand: %r", api.self(), msg)
                    return None
                if tag not in self.consumers:
                    send_cancel_to_consumer(pid, tag, UNKNOWN_SUBSCRIPTION)
                    return None
                if arg == 0:
                    return None
                if len(self.asks) > 2 * len(self.consumers) + 8:  # asks of many sizes
                    self.asks.clear()
                self.asks[id(msg)] = (msg, arg)
                assert self.dispatcher is not None
                return self.dispatcher_result(self.dispatcher.ask(arg, frm))
            if kind == CANCEL:
                return self.producer_cancel(tag, "cancel", arg)
        elif type(body) is tuple and len(body) == 3 and body[0] == SUBSCRIBE:
            return self.producer_subscribe(pid, tag, body[1], body[2])
        log.error(
            "GenStage producer %r received a malformed $gen_producer message: %r", api.self(), msg
        )
        return None

    async def producer_subscribe(self, pid: Any, tag: Any, current: Any, raw_opts: Any) -> None:
        if tag in self.consumers:
            log.error(
                "GenStage producer %r received duplicated subscription from: %r",
                api.self(),
                (pid, tag),
            )
            send_cancel_to_consumer(pid, tag, DUPLICATED_SUBSCRIPTION)
            return
        try:
            if type(pid) is not Pid:
                raise _OptError(f"expected a consumer pid, got: {pid!r}")
            if not (current == NIL or (type(current) is tuple and len(current) == 2)):
                raise _OptError(
                    "expected the current subscription to be nil or {Tag, Reason}, "
                    f"got: {current!r}"
                )
            opts = _sub_opts(raw_opts)
        except _OptError as e:  # G3.7: refuse it, never crash on a peer's bad message
            log.error("GenStage producer %r received a malformed subscription: %s", api.self(), e)
            if type(pid) is Pid:
                send_cancel_to_consumer(pid, tag, (BAD_OPTS, str(e)))
            return
        if type(current) is tuple:
            await self.producer_cancel(current[0], "cancel", current[1])
        mref = api.monitor(pid)
        self.monitors[mref] = tag
        self.consumers[tag] = (pid, mref)
        r = await _call_cb(self.mod.handle_subscribe, "consumer", opts, (pid, tag), self.state)
        if type(r) is Automatic:
            self.state = r.state
        elif type(r) is Stop and r.reply is _KEEP_REPLY:
            if r.state is not _KEEP:
                self.state = r.state
            raise _StopStage(r.reason)
        else:  # Manual is for consumers only (G1.4)
            raise _StopStage((BAD_RETURN_VALUE, r))
        assert self.dispatcher is not None
        try:
            demand = self.dispatcher.subscribe(opts, (pid, tag))
        except SubscriptionRefused as e:
            await self.producer_cancel(tag, "cancel", e.reason, dispatcher=False)
            return
        await _wait(self.dispatcher_result(demand))

    async def producer_cancel(
        self, tag: Any, kind: str, reason: Any, *, dispatcher: bool = True
    ) -> None:
        entry = self.consumers.pop(tag, None)
        if entry is None:  # G3.3: nothing is sent for an unknown tag
            return
        self.asks.clear()
        pid, mref = entry
        api.demonitor(mref, flush=True)
        self.monitors.pop(mref, None)
        send_cancel_to_consumer(pid, tag, reason)
        await _wait(self.apply(self.mod.handle_cancel, (kind, reason), (pid, tag), self.state))
        if dispatcher:
            assert self.dispatcher is not None
            await _wait(self.dispatcher_result(self.dispatcher.cancel((pid, tag))))

    # --- consumer side ---

    def on_gen_consumer(self, msg: tuple[Any, Any, Any], shared: bool = False) -> _Later:
        """M4/M5 (`shared`: it came in a Shared envelope, G3.8)."""
        _, frm, events = msg
        up = self.last_up
        if frm is not up.frm:
            return self.gen_consumer(msg, shared)
        # G3.9: M4 of the last M4's (automatic) subscription, its {Pid, Tag} the same
        # object (so from the same route: shared as before): consumer_receive's and
        # consumer_dispatch's common case, inlined.
        if type(events) is not list:
            if type(events) is not tuple or len(events) == 2:  # (a 2-tuple may be M5)
                return self.gen_consumer(msg, shared)
            events = list(events)
        n = len(events)
        demand = up.demand - n
        if demand < 0 or not n or n > up.span or (self.pc and (self.counter <= 0 or self.queue)):
            return self.gen_consumer(msg, shared)
        if demand <= up.min:
            up.demand = up.max
            demand = up.max - demand  # to ask for
        else:
            up.demand = demand
            demand = 0
        r: Any = self.mod.handle_events(events, frm, self.state)
        if type(r) is NoReply and r.action is None and type(out := r.events) is list:
            self.state = r.state  # (`noreply`'s common case, inlined)
            if out:
                self.dispatch_events(out, len(out))
        elif _awaitable(r):
            return self.dispatch_later(r, [(events, demand)], frm, up)
        else:
            self.noreply(r)
        if demand:
            asked = up.asked
            if asked[0] == demand:  # (`ask`'s common case, inlined)
                _send(frm[0], asked[1])
            else:
                self.ask(frm, demand, up)
        return None

    def gen_consumer(self, msg: tuple[Any, Any, Any], shared: bool) -> _Later:
        _, frm, body = msg
        if type(frm) is not tuple or len(frm) != 2:
            log.error("GenStage %r received a malformed $gen_consumer message: %r", api.self(), msg)
            return None
        if self.role == "producer":
            log.error("GenStage producer %r received $gen_consumer message: %r", api.self(), msg)
            return None
        pid, tag = frm
        tb = type(body)
        if tb is tuple and len(body) == 2 and body[0] == CANCEL:
            return self.consumer_cancel(tag, "cancel", body[1])
        if tb is not list and tb is not tuple:
            if not getattr(tb, "_erlang_list", False):
                log.error("GenStage consumer %r received malformed events: %r", api.self(), msg)
                return None
            body = list(body)  # Erlang sends a short list of small ints as a string
            tb = list
        up = self.producers.get(tag)
        if up is None:
            try:
                api.send(pid, (GEN_PRODUCER, (api.self(), tag), (CANCEL, UNKNOWN_SUBSCRIPTION)))
            except (LookupError, BadArgument):
                pass
            return None
        if shared and not up.shared:
            up.shared = True
            up.asked = (0, None)
        if not up.manual:
            up.frm = frm
            self.last_up = up
        events = body if tb is list else list(body)
        if self.pc and (self.counter <= 0 or self.queue):
            self.queue.append((events, tag))  # G4.5: handled once there is demand downstream
            return self.take_pc_events() if self.counter > 0 else None
        if events:  # (a producer_consumer with demand and nothing queued: at once)
            return self.consumer_dispatch(self.consumer_receive(frm, up, events), frm, up)
        return None

    def consumer_receive(
        self, frm: Any, up: _Upstream, events: list[Any]
    ) -> list[tuple[list[Any], int]]:
        if up.manual:
            return [(events, 0)]
        n = len(events)
        demand = up.demand
        if n <= demand and n <= up.max - up.min:  # split_batches' common case: one batch
            demand -= n
            if demand <= up.min:
                up.demand = up.max
                return [(events, up.max - demand)]
            up.demand = demand
            return [(events, 0)]
        up.demand, batches = split_batches(events, frm, up.min, up.max, up.demand)
        return batches

    def consumer_dispatch(
        self, batches: list[tuple[list[Any], int]], frm: Any, up: _Upstream | None = None
    ) -> _Later:
        handle_events = self.mod.handle_events
        for i, (batch, n) in enumerate(batches):
            r: Any = handle_events(batch, frm, self.state)
            if type(r) is not NoReply and _awaitable(r):
                return self.dispatch_later(r, batches[i:], frm, up)
            self.noreply(r)
            if n:
                self.ask(frm, n, up)
        return None

    async def dispatch_later(
        self, r: Any, batches: list[tuple[list[Any], int]], frm: Any, up: _Upstream | None
    ) -> None:
        """consumer_dispatch on from an `async` handle_events' result for batches[0]."""
        self.noreply(await r)
        n = batches[0][1]
        if n:
            self.ask(frm, n, up)
        await _wait(self.consumer_dispatch(batches[1:], frm, up))

    def ask(self, frm: Any, n: int, up: _Upstream | None) -> None:
        """M2 for an automatic subscription (`GenStage.ask` without its checks); the
        message is kept in `up` for the next ask of the same size."""
        if up is not None and up.asked[0] == n:
            msg = up.asked[1]
        else:
            msg = (GEN_PRODUCER, (self.me, frm[1]), (ASK, n))
            if up is not None:
                if up.shared:
                    msg = Shared(msg)  # G3.8
                up.asked = (n, msg)
        try:
            api.send(frm[0], msg)
        except LookupError:
            pass

    async def take_pc_events(self) -> None:
        queue = self.queue
        while self.counter > 0 and queue:
            item = queue.popleft()
            t = type(item)
            if t is _PcInfo:
                self.buffer_or_dispatch_info(item.msg)
            elif t is _PcCancel:
                await self.invoke_cancel(*item.args)
            else:
                events, tag = item
                up = self.producers.get(tag)
                if up is None:  # queued, then the producer went away: still handled (G10.5)
                    if events:
                        await _wait(self.consumer_dispatch([(events, 0)], (None, tag)))
                elif events:
                    frm = (up.pid, tag)
                    batches = self.consumer_receive(frm, up, events)
                    await _wait(self.consumer_dispatch(batches, frm, up))

    async def consumer_cancel(self, tag: Any, kind: str, reason: Any) -> None:
        up = self.producers.pop(tag, None)
        if up is None:
            return
        self.last_up = _NO_UPSTREAM
        if type(tag) is Ref:
            api.demonitor(tag, flush=True)
        if self.role == "producer_consumer" and self.queue:
            self.queue.append(_PcCancel(up.cancel, kind, reason, (up.pid, tag)))
            return
        await self.invoke_cancel(up.cancel, kind, reason, (up.pid, tag))

    async def invoke_cancel(self, mode: str, kind: str, reason: Any, frm: Any) -> None:
        await _wait(self.apply(self.mod.handle_cancel, (kind, reason), frm, self.state))
        if mode == "permanent" or (mode == "transient" and not _transient_shutdown(reason)):
            if reason == ALREADY_SUBSCRIBED:
                return
            log.info(
                "GenStage consumer %r is stopping after receiving cancel from producer %r "
                "with reason: %r",
                api.self(),
                frm[0],
                reason,
            )
            raise _StopStage(reason)

    async def consumer_subscribe(self, current: Any, to: Any, raw_opts: Any) -> tuple[Any, Any]:
        """A subscription (G2, G9): returns the reply `(ok, Tag) | (error, Reason)`;
        raises _StopStage(noproc, reply) for a missing producer (G10.3)."""
        if self.role == "producer":
            log.error(
                "GenStage producer %r cannot be subscribed to another stage: %r", api.self(), to
            )
            return (ERROR, NOT_A_CONSUMER)
        try:
            opts = _sub_opts(raw_opts)
            check = dict(opts)
            max_ = _validate_int(check, "max_demand", 1000, 1, float("inf"), False)
            min_ = _validate_int(check, "min_demand", max_ // 2, 0, max_ - 1, False)
            mode = _validate_in(
                check, "cancel", "permanent", ("temporary", "transient", "permanent")
            )
            try:
                producer = gs.whereis(to)
            except BadArgument as e:
                raise _OptError(str(e)) from None
        except _OptError as e:
            log.error("GenStage consumer %r subscribe received invalid option: %s", api.self(), e)
            return (ERROR, (BAD_OPTS, str(e)))
        if producer is None:
            if mode == "temporary":
                return (OK, api.make_ref())
            log.error(
                "GenStage consumer %r was not able to subscribe to the process %r because that "
                "process is not alive",
                type(self.mod).__qualname__,
                to,
            )
            raise _StopStage(NOPROC, (OK, api.make_ref()))
        tag = api.monitor(producer)
        wire = _wire_opts(raw_opts) if type(raw_opts) is dict else raw_opts
        try:
            api.send(producer, (GEN_PRODUCER, (api.self(), tag), (SUBSCRIBE, current, wire)))
        except LookupError:
            pass  # the DOWN (noproc) does the rest
        frm = (producer, tag)
        r = await _call_cb(self.mod.handle_subscribe, "producer", opts, frm, self.state)
        t = type(r)
        if t is Automatic or t is Manual:
            self.state = r.state
            self.producers[tag] = _Upstream(producer, mode, min_, max_, t is Manual)
            if t is Automatic:
                ask(frm, max_)
            return (OK, tag)
        if t is Stop and r.reply is _KEEP_REPLY:
            if r.state is not _KEEP:
                self.state = r.state
            raise _StopStage(r.reason)
        raise _StopStage((BAD_RETURN_VALUE, r))

    # --- shared ---

    def on_info(self, msg: Any) -> _Later:
        t = type(msg)
        shared = False
        if t is Shared:  # G3.8: only stage messages come out of the envelope
            inner = msg.value
            if type(inner) is tuple and len(inner) == 3 and inner[0] in _STAGE_TAGS:
                msg, t, shared = inner, tuple, True
        if t is tuple and len(msg) == 3:
            head = msg[0]  # `is` first: Atom.__eq__ runs in Python
            if head is GEN_CONSUMER or (head is not GEN_PRODUCER and head == GEN_CONSUMER):
                return self.on_gen_consumer(msg, shared)
            if head is GEN_PRODUCER or head == GEN_PRODUCER:
                return self.on_gen_producer(msg)
        elif t is Down:
            return self.on_down(msg)
        return self.apply(self.mod.handle_info, msg, self.state)

    async def on_down(self, msg: Down) -> None:
        ref = msg.ref
        if ref in self.producers:
            await self.consumer_cancel(ref, "down", msg.reason)
            return
        tag = self.monitors.get(ref, _MISSING)
        if tag is not _MISSING:
            await self.producer_cancel(tag, "down", msg.reason)
            return
        await _wait(self.apply(self.mod.handle_info, msg, self.state))

    def buffer_or_dispatch_info(self, msg: Any) -> None:
        assert self.buffer is not None
        if not self.buffer.store_permanent_unless_empty(msg):
            self.dispatch_info(msg)

    def producer_info(self, msg: Any) -> None:
        if self.role == "consumer":
            api.send(api.self(), msg)
        elif self.role == "producer_consumer" and self.queue:
            self.queue.append(_PcInfo(msg))
        else:
            self.buffer_or_dispatch_info(msg)

    async def set_demand(self, mode: Any) -> None:
        mode = _plain(mode)
        if self.role != "producer":
            if mode != "forward":
                log.error(
                    "Demand mode can only be set for producers, GenStage %r is a %s",
                    api.self(),
                    self.role,
                )
            return
        if mode == "accumulate":
            if self.accumulating is None:
                self.accumulating = []
            return
        if mode != "forward" or self.accumulating is None:
            return
        held, self.accumulating = self.accumulating, None
        for entry in held:
            if entry[0] == "demand":
                await _wait(self.take_from_buffer_or_handle_demand(entry[1]))
            else:
                self.dispatch_events(entry[1], entry[2])

    def info(self) -> dict[str, Any]:
        """Introspection: role, buffered events, per subscription demand."""
        out: dict[str, Any] = {"role": self.role}
        if self.buffer is not None:
            out["buffered"] = self.buffer.estimate_size()
            out["demand_mode"] = "forward" if self.accumulating is None else "accumulate"
            out["consumers"] = {tag: pid for tag, (pid, _) in self.consumers.items()}
            out["dispatcher"] = type(self.dispatcher).__name__
        if self.role != "producer":
            out["producers"] = {
                tag: {
                    "pid": up.pid,
                    "cancel": up.cancel,
                    "demand": "manual" if up.manual else up.demand,
                    "min_demand": up.min,
                    "max_demand": up.max,
                }
                for tag, up in self.producers.items()
            }
        if self.role == "producer_consumer":
            out["queued"] = sum(len(x[0]) for x in self.queue if type(x) is tuple)
            out["downstream_demand"] = self.counter
        return out


_MISSING: Any = object()
_KEEP_REPLY: Any = Stop(None).reply  # GenServer's "no reply" default


def split_batches(
    events: list[Any], frm: Any, min_: int, max_: int, demand: int
) -> tuple[int, list[tuple[list[Any], int]]]:
    """Cut events into batches of `max - min` and say, per batch, how much to ask for
    after handling it (docs/gen_stage.md G4.1). Returns (new demand, batches).

    Examples:
        >>> from beamlet.gen_stage import split_batches
        >>> split_batches([1, 2, 3, 4], None, 2, 4, 4)     # min 2, max 4, demand 4
        (4, [([1, 2], 2), ([3, 4], 2)])
    """
    step = max_ - min_
    n = len(events)
    old = new = demand
    # one batch is the common case
    chunks = [events] if n <= step else [events[i : i + step] for i in range(0, n, step)]
    batches: list[tuple[list[Any], int]] = []
    for chunk in chunks:
        size = len(chunk)
        diff = old - size
        if diff < 0:  # G4.3: excess is logged, handled, and does not lower the demand
            log.error(
                "GenStage consumer %r has received %d events in excess from: %r",
                api.self(),
                -diff,
                frm,
            )
            size = old
            old = 0
        else:
            old = diff
        diff = new - size
        if diff <= min_:
            new = max_
            batches.append((chunk, max_ - diff))
        else:
            new = diff
            batches.append((chunk, 0))
    return new, batches


# --- the GenServer that runs a stage ---------------------------------------------------


class _StageServer(GenServer[_Stage]):
    """The GenServer callback module every stage runs on (one subclass per GenStage
    subclass, named after it, so crash reports name the user's class)."""

    stage_cls: ClassVar[type[GenStage[Any]]]

    async def init(self, arg: Any) -> Any:
        mod = self.stage_cls()
        r = await _call_cb(mod.init, arg)
        if isinstance(r, _InitResult):
            return await _init_stage(mod, r)
        if type(r) is gs.Ignore:
            return r
        if type(r) is Stop:
            return Stop(r.reason)
        return Stop((BAD_RETURN_VALUE, r))

    async def handle_call(self, request: Any, from_: From, st: _Stage) -> Any:
        try:
            t = type(request)
            if t is tuple and len(request) == 4 and request[0] == SUBSCRIBE_REQ:
                return gs.Reply(await st.consumer_subscribe(request[1], request[2], request[3]), st)
            if t is tuple and len(request) == 2 and request[0] == INFO_REQ:
                st.producer_info(request[1])
                return gs.Reply(OK, st)
            if request == DEMAND_REQ and t is Atom:
                return gs.Reply(FORWARD if st.accumulating is None else ACCUMULATE, st)
            if request == ESTIMATE_REQ and t is Atom:
                if st.buffer is None:
                    log.error(
                        "Buffered count can only be requested for producers, GenStage %r "
                        "is a consumer",
                        api.self(),
                    )
                    return gs.Reply(0, st)
                return gs.Reply(st.buffer.estimate_size(), st)
            if request == STAGE_INFO_REQ and t is Atom:
                return gs.Reply(st.info(), st)
            r = await _call_cb(st.mod.handle_call, request, from_, st.state)
            rt = type(r)
            if (
                rt is Reply
                and type(r.events) is list
                and (r.action is None or r.action is HIBERNATE)
            ):
                st.state = r.state
                if r.events:
                    st.dispatch_events(r.events, len(r.events))
                return gs.Reply(r.reply, st)
            if rt is Stop and r.reply is not _KEEP_REPLY:
                if r.state is not _KEEP:
                    st.state = r.state
                return Stop(r.reason, st, r.reply)
            st.noreply(r)
            return gs.NoReply(st)
        except _StopStage as e:
            if e.reply is not _KEEP:
                return Stop(e.reason, st, e.reply)
            return Stop(e.reason, st)

    async def handle_cast(self, request: Any, st: _Stage) -> Any:
        try:
            t = type(request)
            if t is tuple and len(request) == 4 and request[0] == SUBSCRIBE_REQ:
                await st.consumer_subscribe(request[1], request[2], request[3])
            elif t is tuple and len(request) == 2 and request[0] == INFO_REQ:
                st.producer_info(request[1])
            elif t is tuple and len(request) == 2 and request[0] == DEMAND_REQ:
                await st.set_demand(request[1])
            else:
                await _wait(st.apply(st.mod.handle_cast, request, st.state))
        except _StopStage as e:
            return Stop(e.reason, st)
        return gs.NoReply(st)

    def handle_info(self, msg: Any, st: _Stage) -> Any:
        # A plain call: GenServer's loop takes a NoReply without awaiting; a coroutine
        # only when a step has to wait (an `async` callback).
        try:
            later = st.on_info(msg)
        except _StopStage as e:
            return Stop(e.reason, st)
        if later is not None:
            return self._finish(later, st)
        idle = st.idle  # the result of every stage message, built once
        return idle if idle.state is st else gs.NoReply(st)

    async def gen_own_messages(self, server: Any) -> Any:
        """The stage messages (G3), taken here without GenServer's loop around each:
        events and asks are most of a stage's traffic. Returns the first other message
        (calls, casts, system messages, DOWNs, the user's infos) for GenServer's loop."""
        st: _Stage = server.state
        while True:
            msg = await next_message()
            try:
                if type(msg) is Shared:  # G3.8: only stage messages come out of the envelope
                    inner = msg.value
                    if type(inner) is not tuple or len(inner) != 3:
                        return msg
                    head = inner[0]
                    if head is GEN_CONSUMER:
                        later = st.on_gen_consumer(inner, True)
                    elif head is GEN_PRODUCER:
                        later = st.on_gen_producer(inner)
                    else:
                        return msg
                elif type(msg) is tuple and len(msg) == 3:
                    head = msg[0]
                    if head is GEN_CONSUMER or (type(head) is Atom and head == GEN_CONSUMER):
                        later = st.on_gen_consumer(msg)
                    elif head is GEN_PRODUCER or (type(head) is Atom and head == GEN_PRODUCER):
                        later = st.on_gen_producer(msg)
                    else:
                        return msg
                else:
                    return msg
                if later is not None:
                    await later
            except _StopStage as e:  # as a Stop result: terminate(reason), exit reason
                server.last = msg
                raise ProcessExit(e.reason) from None
            except BaseException:
                server.last = msg  # for the crash report
                raise

    async def _finish(self, later: Coroutine[Any, Any, None], st: _Stage) -> Any:
        try:
            await later
        except _StopStage as e:
            return Stop(e.reason, st)
        return gs.NoReply(st)

    async def terminate(self, reason: Any, st: _Stage) -> Any:
        return await _call_cb(st.mod.terminate, reason, st.state)

    def format_status(self, status: gs.Status) -> gs.Status:
        st = status.get("state")
        if isinstance(st, _Stage):
            return {**status, "state": {"state": st.state, **st.info()}}
        return status


async def _init_stage(mod: GenStage[Any], r: _InitResult[Any]) -> Any:
    """Build the stage from `init`'s result (G1.2, G1.3); subscribe (G2)."""
    opts = dict(r.options)
    role = r.role
    st = _Stage(mod, role, r.state)
    try:
        subscribe_to: Any = []
        if role != "consumer":
            d = opts.pop("dispatcher", DemandDispatcher)
            if isinstance(d, type) and issubclass(d, Dispatcher):
                st.dispatcher = d()
            elif (
                type(d) is tuple
                and len(d) == 2
                and isinstance(d[0], type)
                and issubclass(d[0], Dispatcher)
                and type(d[1]) is dict
            ):
                st.dispatcher = d[0](**d[1])
            else:
                raise _OptError(
                    f"expected :dispatcher to be a Dispatcher class or a (class, dict), got: {d!r}"
                )
        if role != "producer":
            subscribe_to = opts.pop("subscribe_to", [])
            if type(subscribe_to) is not list:
                raise _OptError(f"expected :subscribe_to to be a list, got: {subscribe_to!r}")
        if role != "consumer":
            default = 10_000 if role == "producer" else float("inf")
            size = _validate_int(opts, "buffer_size", default, 0, float("inf"), True)
            st.buffer = Buffer(size)
            st.buffer_keep = _validate_in(opts, "buffer_keep", "last", ("first", "last"))
            share = opts.pop("share_events", False)
            if type(share) is not bool:
                raise _OptError(f"expected :share_events to be a boolean, got: {share!r}")
            assert st.dispatcher is not None
            st.dispatcher.share_events = share
        if role == "producer":
            mode = _validate_in(opts, "demand", "forward", ("accumulate", "forward"))
            st.accumulating = [] if mode == "accumulate" else None
        if opts:
            shown = ", ".join(f"{k}: {v!r}" for k, v in opts.items())
            raise _OptError(f"unknown options [{shown}]")
    except _OptError as e:
        return Stop((BAD_OPTS, str(e)))
    try:
        for entry in subscribe_to:
            to, sub = _split_subscription(entry)
            reply = await st.consumer_subscribe(NIL, to, sub)
            if reply[0] == ERROR:
                return Stop(reply[1])
    except _StopStage as e:
        return Stop(e.reason)
    return st


_STAGE_TAGS: Final = (GEN_CONSUMER, GEN_PRODUCER)


def _split_subscription(entry: Any) -> tuple[Any, Any]:
    """`To` or `(To, options)` (G2.1). A pair whose second item is a dict (or list)
    carries options; any other pair is a `(name, node)` reference."""
    if type(entry) is tuple and len(entry) == 2 and type(entry[1]) in (dict, list):
        return entry[0], entry[1]
    return entry, {}


# --- the behaviour ---------------------------------------------------------------------


class GenStage(Generic[S]):
    """Base class of stages; `S` is the type of the state (docs/gen_stage.md).

    Implement `init` (returning `Producer`, `ProducerConsumer` or `Consumer`), then
    `handle_demand` (producers) or `handle_events` (the others). Callbacks may be
    `async def` or plain `def`.

    Examples:
        >>> from beamlet.gen_stage import Consumer, GenStage, NoReply, Producer
        >>> class Counter(GenStage[int]):
        ...     def init(self, start):
        ...         return Producer(start)
        ...     def handle_demand(self, demand, n):          # exactly what was asked
        ...         return NoReply(list(range(n, n + demand)), n + demand)
        >>> class Forward(GenStage[beamlet.Pid]):
        ...     async def init(self, arg):
        ...         producer, to = arg
        ...         return Consumer(to, subscribe_to=[(producer, {"max_demand": 4})])
        ...     async def handle_events(self, events, from_, to):
        ...         beamlet.send(to, events)                 # batches of max - min
        ...         return NoReply([], to)
        >>> counter = await Counter.start_link(0)
        >>> forward = await Forward.start_link((counter, beamlet.self()))
        >>> [await beamlet.receive() for _ in range(3)]
        [[0, 1], [2, 3], [4, 5]]
    """

    _server: ClassVar[type[_StageServer]]
    _child_spec_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **spec: Any) -> None:
        allowed = {"id", "restart", "shutdown", "type", "significant", "modules"}
        unknown = set(spec) - allowed
        if unknown:
            raise TypeError(f"unknown child spec options for {cls.__name__}: {sorted(unknown)}")
        super().__init_subclass__()
        cls._child_spec_defaults = {**cls._child_spec_defaults, **spec}
        cls._server = type(
            cls.__name__,
            (_StageServer,),
            {"stage_cls": cls, "__qualname__": cls.__qualname__, "__module__": cls.__module__},
        )

    # --- callbacks (override) ---

    async def init(self, arg: Any) -> Any:
        """Return `Producer(state, **opts)`, `ProducerConsumer(...)`, `Consumer(...)`,
        `Ignore()` or `Stop(reason)` (G1.2)."""
        raise UndefinedCallbackError(f"GenStage {type(self).__qualname__} does not implement init")

    async def handle_demand(self, demand: int, state: S) -> Any:
        """Producers: consumers want `demand` more events; return `NoReply(events,
        state)`. Emitting fewer is fine: remember the rest and emit later (G4.6)."""
        raise UndefinedCallbackError(
            f"GenStage {type(self).__qualname__} does not implement handle_demand"
        )

    async def handle_events(self, events: list[Any], from_: SubscriptionFrom, state: S) -> Any:
        """Consumers and producer_consumers: handle `events` from the subscription
        `from_`; return `NoReply(events_to_emit, state)` (a consumer emits `[]`)."""
        raise UndefinedCallbackError(
            f"GenStage {type(self).__qualname__} does not implement handle_events"
        )

    async def handle_subscribe(
        self,
        kind: Literal["producer", "consumer"],
        opts: dict[str, Any],
        from_: SubscriptionFrom,
        state: S,
    ) -> Any:
        """A subscription starts; `kind` names the other side (G8.1). Return
        `Automatic(state)` or (consumer side) `Manual(state)`, or `Stop(reason, state)`."""
        return Automatic(state)

    async def handle_cancel(
        self, reason: tuple[str, Any], from_: SubscriptionFrom, state: S
    ) -> Any:
        """A subscription ended: `reason` is `("cancel", R)` or `("down", R)` (G8.3).
        Return `NoReply(events, state)` or `Stop(reason, state)`."""
        return NoReply([], state)

    async def handle_call(self, request: Any, from_: From, state: S) -> Any:
        """Return `Reply(reply, events, state)`, `NoReply(events, state)` or `Stop`."""
        raise UndefinedCallbackError(
            f"attempted to call GenStage {api.self()!r} ({type(self).__qualname__}) "
            f"but no handle_call was defined (request: {request!r})"
        )

    async def handle_cast(self, request: Any, state: S) -> Any:
        """Return `NoReply(events, state)` or `Stop(reason, state)`."""
        raise UndefinedCallbackError(
            f"attempted to cast GenStage {api.self()!r} ({type(self).__qualname__}) "
            f"but no handle_cast was defined (request: {request!r})"
        )

    async def handle_info(self, msg: Any, state: S) -> Any:
        """Any other message (the default logs and drops it, G1.5)."""
        log.warning(
            "** Undefined handle_info in %s\n** Unhandled message: %r", type(self).__qualname__, msg
        )
        return NoReply([], state)

    def format_discarded(self, discarded: int, state: S) -> bool:
        """The buffer dropped `discarded` events (G5.2); return False to skip the
        default warning."""
        return True

    async def terminate(self, reason: Any, state: S) -> Any:
        """Clean up before the stage exits (as GenServer's `terminate`)."""
        return None

    # --- starting ---

    @classmethod
    async def start_link(
        cls, arg: Any = None, *, name: str | Atom | Via | None = None, timeout: float | None = None
    ) -> Pid | None:
        """Start the stage linked to the caller; returns once `init` (and the
        subscriptions of `subscribe_to`) are done. Fails with `StartError` as
        `GenServer.start_link` does; bad options give `StartError((BAD_OPTS, msg))`.

        Examples:
            >>> from beamlet import StartError, Stop
            >>> from beamlet.gen_stage import GenStage, NoReply, Producer
            >>> class Countdown(GenStage[int]):
            ...     def init(self, n):
            ...         return Producer(n) if n > 0 else Stop("nothing to count")
            ...     def handle_demand(self, demand, n):
            ...         events = list(range(n, max(n - demand, 0), -1))
            ...         return NoReply(events, n - len(events))
            >>> countdown = await Countdown.start_link(3, name="countdown")
            >>> beamlet.whereis("countdown") == countdown
            True
            >>> try:
            ...     await Countdown.start(0)        # not start_link: its exit would reach us
            ... except StartError as e:
            ...     print(e.reason)
            nothing to count
        """
        return await cls._server.start_link(arg, name=name, timeout=timeout)

    @classmethod
    async def start(
        cls, arg: Any = None, *, name: str | Atom | Via | None = None, timeout: float | None = None
    ) -> Pid | None:
        """Like `start_link` without the link."""
        return await cls._server.start(arg, name=name, timeout=timeout)

    @classmethod
    def child_spec(cls, arg: Any = None, *, name: Any = None, **overrides: Any) -> ChildSpec:
        """How a supervisor starts this stage (as `GenServer.child_spec`).

        Examples:
            >>> from beamlet import Supervisor
            >>> from beamlet.gen_stage import GenStage, NoReply, Producer
            >>> class Zeros(GenStage[None]):
            ...     def init(self, _):
            ...         return Producer(None)
            ...     def handle_demand(self, demand, state):
            ...         return NoReply([0] * demand, state)
            >>> spec = Zeros.child_spec(name="zeros")
            >>> spec.restart, spec.shutdown
            ('permanent', 5.0)
            >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
            >>> async for zero in GenStage.stream(["zeros"]):
            ...     break
            >>> zero
            0
        """
        start = cls.start_link if name is None else functools.partial(cls.start_link, name=name)
        spec = ChildSpec(id=cls, start=start, args=(arg,), shutdown=5.0)
        changes = {**cls._child_spec_defaults, **overrides}
        return spec.with_overrides(**changes) if changes else spec

    # --- client API ---

    call = staticmethod(gs.call)
    cast = staticmethod(gs.cast)
    reply = staticmethod(gs.reply)
    stop = staticmethod(gs.stop)
    ask = staticmethod(ask)
    cancel = staticmethod(cancel)

    @staticmethod
    async def sync_subscribe(
        consumer: ServerRef, to: ServerRef, *, timeout: float | None = 5.0, **opts: Any
    ) -> Any:
        """Subscribe `consumer` to the producer `to`; returns the subscription's tag once
        the subscribe message is sent (G9.1). Options: `max_demand` (default 1000),
        `min_demand` (default max // 2), `cancel` ("permanent", "transient",
        "temporary"), and any the producer's dispatcher reads (`partition`,
        `selector`). Only the options given travel (G2.3). Raises `BadOpts` for invalid
        options, `SubscribeError(NOT_A_CONSUMER)` for a producer, `CallExit` if the
        consumer is not running.

        Examples:
            >>> from beamlet.gen_stage import BadOpts, Consumer, GenStage, NoReply, from_iterable
            >>> class Drop(GenStage[None]):
            ...     def init(self, _):
            ...         return Consumer(None)
            ...     def handle_events(self, events, from_, state):
            ...         return NoReply([], state)
            >>> drop = await Drop.start_link()
            >>> producer = await from_iterable(range(100))
            >>> tag = await GenStage.sync_subscribe(drop, to=producer, max_demand=10)
            >>> try:
            ...     await GenStage.sync_subscribe(drop, to=producer, min_demand=10, max_demand=10)
            ... except BadOpts as e:
            ...     print(e)
            expected :min_demand to be equal to or less than 9, got: 10
        """
        return _subscribe_reply(
            await gs.call(consumer, (SUBSCRIBE_REQ, NIL, to, _wire_opts(opts)), timeout)
        )

    @staticmethod
    async def sync_resubscribe(
        consumer: ServerRef,
        tag: Any,
        reason: Any,
        to: ServerRef,
        *,
        timeout: float | None = 5.0,
        **opts: Any,
    ) -> Any:
        """Subscribe again, asking the producer to cancel `tag` with `reason` first (G9.2)."""
        msg = (SUBSCRIBE_REQ, (tag, reason), to, _wire_opts(opts))
        return _subscribe_reply(await gs.call(consumer, msg, timeout))

    @staticmethod
    def async_subscribe(consumer: ServerRef, to: ServerRef, **opts: Any) -> None:
        """`sync_subscribe` as a cast: returns at once, errors are only logged."""
        gs.cast(consumer, (SUBSCRIBE_REQ, NIL, to, _wire_opts(opts)))

    @staticmethod
    def async_resubscribe(
        consumer: ServerRef, tag: Any, reason: Any, to: ServerRef, **opts: Any
    ) -> None:
        """`sync_resubscribe` as a cast."""
        gs.cast(consumer, (SUBSCRIBE_REQ, (tag, reason), to, _wire_opts(opts)))

    @staticmethod
    async def demand(
        stage: ServerRef, mode: str | None = None, *, timeout: float | None = 5.0
    ) -> Any:
        """`demand(stage)` returns "forward" or "accumulate"; `demand(stage, mode)` sets
        it (a cast; producers only, G6)."""
        if mode is None:
            return _plain(await gs.call(stage, DEMAND_REQ, timeout))
        if _plain(mode) not in ("forward", "accumulate"):
            raise BadArgument(f"demand mode must be 'forward' or 'accumulate', not {mode!r}")
        gs.cast(stage, (DEMAND_REQ, Atom(_plain(mode))))
        return None

    @staticmethod
    async def sync_info(stage: ServerRef, msg: Any, *, timeout: float | None = 5.0) -> None:
        """Have `msg` delivered to the stage's `handle_info` after the events buffered
        now have been dispatched (G5.3)."""
        await gs.call(stage, (INFO_REQ, msg), timeout)

    @staticmethod
    def async_info(stage: ServerRef, msg: Any) -> None:
        """`sync_info` as a cast."""
        gs.cast(stage, (INFO_REQ, msg))

    @staticmethod
    def stream(subscriptions: list[Any], **options: Any) -> AsyncIterator[Any]:
        """Consume producers from async code with back-pressure (see `gen_stage.stream`).

        Examples:
            >>> from beamlet.gen_stage import GenStage, from_iterable
            >>> producer = await from_iterable("abc")       # stops normal at the end
            >>> [e async for e in GenStage.stream([(producer, {"cancel": "transient"})])]
            ['a', 'b', 'c']
        """
        from beamlet.gen_stage.stream import stream

        return stream(subscriptions, **options)

    @staticmethod
    async def estimate_buffered_count(stage: ServerRef, *, timeout: float | None = 5.0) -> int:
        """How many events the producer's buffer holds (G5.4)."""
        n: int = await gs.call(stage, ESTIMATE_REQ, timeout)
        return n

    @staticmethod
    async def info(stage: ServerRef, *, timeout: float | None = 5.0) -> dict[str, Any]:
        """Introspection: role, buffered events, consumers, and per upstream
        subscription the outstanding demand, min/max and cancel mode (docs/gen_stage.md
        G18). A beamlet extension: Elixir stages do not answer it.

        Examples:
            >>> from beamlet.gen_stage import Consumer, GenStage, from_iterable
            >>> class Idle(GenStage[None]):
            ...     def init(self, producer):
            ...         return Consumer(None, subscribe_to=[(producer, {"max_demand": 10})])
            >>> held = await from_iterable("abc", demand="accumulate")   # holds the demand
            >>> idle = await Idle.start_link(held)
            >>> [up["demand"] for up in (await GenStage.info(idle))["producers"].values()]
            [10]
            >>> info = await GenStage.info(held)
            >>> info["role"], info["buffered"], info["demand_mode"], len(info["consumers"])
            ('producer', 0, 'accumulate', 1)
        """
        out: dict[str, Any] = await gs.call(stage, STAGE_INFO_REQ, timeout)
        return out


def _subscribe_reply(reply: Any) -> Any:
    if type(reply) is tuple and len(reply) == 2:
        if reply[0] == OK:
            return reply[1]
        reason = reply[1]
        if type(reason) is tuple and len(reason) == 2 and reason[0] == BAD_OPTS:
            raise BadOpts(str(reason[1]))
        raise SubscribeError(reason)
    raise SubscribeError(reply)
