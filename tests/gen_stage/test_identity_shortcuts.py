"""docs/gen_stage.md G3.9: a stage recognises a repeated M4 or M2 by identity and takes
a shortcut for it; these tests check that the shortcut never outlives the subscription
it was taken for, and that the stage's own message loop (GenServer's
`gen_own_messages` hook, docs/architecture.md) keeps GenServer's semantics."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from stages import Counter, Forwarder

import beamlet
from beamlet import Atom, Exit
from beamlet.behaviours import sys as bsys
from beamlet.gen_stage import (
    Consumer,
    GenStage,
    Manual,
    NoReply,
    Producer,
    Stop,
    events_sender,
)
from beamlet.gen_stage.protocol import ASK, CANCEL, GEN_CONSUMER, GEN_PRODUCER, NIL, SUBSCRIBE
from beamlet.testing import assert_receive, refute_receive

UNKNOWN = Atom("unknown_subscription")


async def test_a_repeated_ask_after_its_cancel_is_an_unknown_subscription() -> None:
    producer = await Counter.start_link(Producer(0))
    me, tag = beamlet.self(), beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, tag), (SUBSCRIBE, NIL, [])))
    ask = (GEN_PRODUCER, (me, tag), (ASK, 2))  # one object, sent three times
    beamlet.send(producer, ask)
    assert (await assert_receive((GEN_CONSUMER, (producer, tag), tuple)))[2] == (0, 1)
    beamlet.send(producer, ask)  # the shortcut (G3.9)
    assert (await assert_receive((GEN_CONSUMER, (producer, tag), tuple)))[2] == (2, 3)
    beamlet.send(producer, (GEN_PRODUCER, (me, tag), (CANCEL, "done")))
    await assert_receive((GEN_CONSUMER, (producer, tag), (CANCEL, "done")))
    beamlet.send(producer, ask)  # the same object, its subscription gone
    await assert_receive((GEN_CONSUMER, (producer, tag), (CANCEL, UNKNOWN)))
    await refute_receive((GEN_CONSUMER, (producer, tag), tuple), timeout=0.05)


async def test_a_repeated_m4_after_its_cancel_is_an_unknown_subscription() -> None:
    me = beamlet.self()
    consumer = await Forwarder.start_link(Consumer(me))
    tag = await GenStage.sync_subscribe(consumer, to=me, cancel="temporary")
    await assert_receive((GEN_PRODUCER, (consumer, tag), (SUBSCRIBE, NIL, list)))
    await assert_receive((GEN_PRODUCER, (consumer, tag), (ASK, 1000)))
    send = events_sender(consumer, tag)  # every batch with one {Pid, Tag} tuple
    send([1, 2])
    await assert_receive(("consumed", [1, 2]))
    send([3])  # the shortcut (G3.9)
    await assert_receive(("consumed", [3]))
    beamlet.send(consumer, (GEN_CONSUMER, (me, tag), (CANCEL, "bye")))
    await assert_receive(("consumer_cancelled", (me, tag), ("cancel", "bye")))
    send([4])  # the same {Pid, Tag} object, its subscription gone
    await assert_receive((GEN_PRODUCER, (consumer, tag), (CANCEL, UNKNOWN)))
    await refute_receive(("consumed", [4]), timeout=0.05)
    assert beamlet.is_alive(consumer)


async def test_a_manual_subscription_never_takes_the_shortcut() -> None:
    """Manual demand is the consumer's own: the shortcut's automatic ask must not run."""
    me = beamlet.self()

    class Lazy(GenStage[Any]):
        def init(self, _: Any) -> Any:
            return Consumer(None)

        def handle_subscribe(self, kind: str, opts: Any, from_: Any, state: Any) -> Any:
            return Manual(state)

        def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
            beamlet.send(me, ("consumed", events))
            return NoReply([], state)

    consumer = await Lazy.start_link()
    tag = await GenStage.sync_subscribe(consumer, to=me)
    await assert_receive((GEN_PRODUCER, (consumer, tag), (SUBSCRIBE, NIL, list)))
    send = events_sender(consumer, tag)
    for batch in ([1], [2], [3]):
        send(batch)
        await assert_receive(("consumed", batch))
    await refute_receive((GEN_PRODUCER, (consumer, tag), (ASK, int)), timeout=0.05)


class Failing(GenStage[Any]):
    def init(self, arg: Any) -> Any:
        return Consumer(arg)

    def handle_events(self, events: list[Any], from_: Any, state: Any) -> Any:
        if events == ["stop"]:
            return Stop("stopped", state)
        if events == ["crash"]:
            raise RuntimeError("boom")
        return NoReply([], state)

    def terminate(self, reason: Any, state: Any) -> None:
        beamlet.send(state, ("terminated", reason))


@pytest.mark.parametrize("event", ["stop", "crash"])
async def test_a_stop_or_crash_on_the_stage_loop_is_a_gen_server_stop(
    event: str, caplog: pytest.LogCaptureFixture
) -> None:
    """terminate(reason), the exit reason, and for a crash one report naming the message."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    consumer = await Failing.start_link(me)
    tag = await GenStage.sync_subscribe(consumer, to=me)
    send = events_sender(consumer, tag)
    send(["ok"])  # the first M4 takes the full path, the next the shortcut
    caplog.set_level(logging.ERROR, logger="beamlet")
    send([event])
    if event == "stop":
        await assert_receive(("terminated", "stopped"))
        await assert_receive(Exit(consumer, "stopped"))
    else:
        terminated = await assert_receive(("terminated", beamlet.ANY))
        assert "boom" in repr(terminated[1])
        await assert_receive(Exit(consumer, beamlet.ANY))
        assert "RuntimeError" in caplog.text and "'crash'" in caplog.text


async def test_sys_statistics_count_stage_messages() -> None:
    """With sys debug on, stage messages go round GenServer's loop, which counts them."""
    me = beamlet.self()
    consumer = await Forwarder.start_link(Consumer(me))
    tag = await GenStage.sync_subscribe(consumer, to=me)
    await bsys.statistics(consumer, True)
    before = dict(await bsys.statistics(consumer, "get"))
    send = events_sender(consumer, tag)
    send([1])
    send([2])
    await assert_receive(("consumed", [2]))
    after = dict(await bsys.statistics(consumer, "get"))
    assert after[Atom("messages_in")] - before[Atom("messages_in")] == 2


async def test_the_accepted_asks_stay_bounded() -> None:
    """A manual consumer asking with ever new M2 objects: the producer's record of the
    asks it accepted (G3.9) is cleared when it grows, so memory stays bounded."""
    producer = await Counter.start_link(Producer(0))
    me, tag = beamlet.self(), beamlet.make_ref()
    beamlet.send(producer, (GEN_PRODUCER, (me, tag), (SUBSCRIBE, NIL, [])))
    for n in range(1, 200):
        beamlet.send(producer, (GEN_PRODUCER, (me, tag), (ASK, n)))
        await assert_receive((GEN_CONSUMER, (producer, tag), tuple))
    stage = await bsys.get_state(producer)
    assert len(stage.asks) <= 2 * len(stage.consumers) + 9
