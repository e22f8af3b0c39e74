"""Test stages: ports of the helper modules of gen_stage_test.exs (Counter, Forwarder,
Doubler, ...). Each `init` returns its argument, so a test chooses the role and options:
`await Counter.start_link(Producer(0, buffer_size=5))`."""

from __future__ import annotations

from typing import Any

import beamlet
from beamlet import Pid
from beamlet.gen_stage import Automatic, GenStage, Manual, NoReply, Reply, Stop

SHUTDOWN = beamlet.SHUTDOWN


def _tell(state: Any, msg: Any) -> None:
    if type(state) is Pid:
        beamlet.send(state, msg)


def _mode(opts: dict[str, Any], key: str, state: Any) -> Any:
    return Manual(state) if opts.get(key) == "manual" else Automatic(state)


class Counter(GenStage[Any]):
    """A producer counting up from its state; a pid as state disables counting."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        match request:
            case "stop":
                return Stop(SHUTDOWN, state, "ok")
            case ("early_reply_queue", events):
                GenStage.reply(from_, state)
                return NoReply(events, state)
            case ("queue", events):
                return Reply(state, events, state)
        raise AssertionError(request)

    def handle_cast(self, request: Any, state: Any) -> Any:
        match request:
            case ("queue", events):
                return NoReply(events, state)
        raise AssertionError(request)

    def handle_info(self, msg: Any, state: Any) -> Any:
        match msg:
            case ("queue", events):
                return NoReply(events, state)
        _tell(state, msg)
        return NoReply([], state)

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
        _tell(state, ("producer_subscribed", from_))
        return _mode(opts, "producer_demand", state)

    def handle_cancel(self, reason: Any, from_: Any, state: Any) -> Any:
        _tell(state, ("producer_cancelled", from_, reason))
        return NoReply([], state)

    def handle_demand(self, demand: int, state: Any) -> Any:
        assert demand > 0
        if type(state) is Pid:
            return NoReply([], state)
        return NoReply(list(range(state, state + demand)), state + demand)


class DemandProducer(GenStage[Any]):
    """Emits the demand it gets and records it."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_demand(self, demand: int, past: list[int]) -> Any:
        return NoReply([demand], [demand, *past])


class NothingProducer(GenStage[Any]):
    """Emits nothing; tells the pid in its state about demand."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_demand(self, demand: int, pid: Pid) -> Any:
        beamlet.send(pid, ("demand", demand))
        return NoReply([], pid)


class Doubler(GenStage[Any]):
    """A producer_consumer emitting every event twice."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("producer_consumer_subscribed", kind, from_))
        return _mode(opts, "producer_consumer_demand", state)

    def handle_cancel(self, reason: Any, from_: Any, state: Any) -> Any:
        beamlet.send(state, ("producer_consumer_cancelled", from_, reason))
        return NoReply([], state)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("producer_consumed", events))
        return NoReply([x for e in events for x in (e, e)], state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        _tell(state, msg)
        return NoReply([], state)


class Postponer(GenStage[Any]):
    """Emits events from handle_info, one message later."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        beamlet.send(beamlet.self(), ("postponed", events))
        return NoReply([], state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        _, events = msg
        beamlet.send(state, ("postponed", events))
        return NoReply(events, state)


class Discarder(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        return arg

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("discarded", events))
        return NoReply([], state)


class Sleeper(GenStage[Any]):
    """Blocks forever (in receive) after its first batch."""

    def init(self, arg: Any) -> Any:
        return arg

    async def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("sleep", events))
        await beamlet.receive(lambda m: False)
        return NoReply([], state)


class Forwarder(GenStage[Any]):
    """A consumer forwarding everything to the pid in its state."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        _, to, n = request
        GenStage.ask(to, n)
        return Reply("ok", [], state)

    def handle_subscribe(self, kind: str, opts: dict[str, Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("consumer_subscribed", from_))
        return _mode(opts, "consumer_demand", state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        beamlet.send(state, msg)
        return NoReply([], state)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        beamlet.send(state, ("consumed", events))
        return NoReply([], state)

    def handle_cancel(self, reason: Any, from_: Any, state: Any) -> Any:
        beamlet.send(state, ("consumer_cancelled", from_, reason))
        return NoReply([], state)

    def terminate(self, reason: Any, state: Any) -> None:
        beamlet.send(state, ("terminated", reason))


class DiscardedBufferLogger(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        _, events = request
        return Reply("ok", events, state)

    def format_discarded(self, discarded: int, state: Any) -> bool:
        beamlet.send(state["pid"], ("discarded", discarded))
        return bool(state["log_discarded"])

    def handle_demand(self, demand: int, state: Any) -> Any:
        return NoReply([], state)


class QueueProducer(GenStage[Any]):
    """The Producer of consumer_supervisor_test.exs: emits only what `("queue", events)`
    calls give it."""

    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        _, events = request
        return Reply(state, events, state)

    def handle_demand(self, demand: int, state: Any) -> Any:
        return NoReply([], state)
