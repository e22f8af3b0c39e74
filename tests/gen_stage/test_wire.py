"""Wire compatibility (docs/gen_stage.md G3, G19): beamlet stages and a real `erl` node
speaking GenStage's five messages. The Erlang side is plain Erlang (no GenStage on its
code path): a raw producer and a raw consumer that send and receive exactly the terms of
G3.1 and forward everything they receive to the test process, so the tests assert the
exact terms on the wire in both directions.
"""

from __future__ import annotations

from typing import Any

import dist_nodes
import pytest
from dist_nodes import erl_peer
from stages import Counter, Doubler, Forwarder

import beamlet
from beamlet import ANY, NORMAL, Atom, Exit, Pid, Ref
from beamlet.gen_stage import Consumer, GenStage, PartitionDispatcher, Producer, ProducerConsumer
from beamlet.gen_stage.protocol import GEN_CONSUMER, GEN_PRODUCER, NIL
from beamlet.phash2 import phash2
from beamlet.testing import assert_receive, refute_receive

# The test runs on a distributed node, on a private EPMD port (the distribution fixtures).
epmd_port = dist_nodes.epmd_port
node = dist_nodes.node

pytestmark = pytest.mark.interop

SUBSCRIBE, ASK, CANCEL, GOT = Atom("subscribe"), Atom("ask"), Atom("cancel"), Atom("got")
MIN, MAX = Atom("min_demand"), Atom("max_demand")
RAW_PRODUCER, RAW_CONSUMER = Atom("raw_producer"), Atom("raw_consumer")


# A producer that emits 0, 1, 2, ... up to Max (exclusive), exactly what is asked for;
# it reports every message it receives as {got, Msg} and cancels on request.
RAW_PRODUCER_SRC = r"""
Loop = fun Loop(Count) ->
    receive
        {'$gen_producer', {Pid, Tag}, {ask, N}} = M ->
            Tester ! {got, M},
            Upto = min(Count + N, Max),
            case lists:seq(Count, Upto - 1) of
                [] -> ok;
                Events -> erlang:send(Pid, {'$gen_consumer', {self(), Tag}, Events}, [noconnect])
            end,
            Loop(Upto);
        {'$gen_producer', {Pid, Tag}, {cancel, R}} = M ->
            Tester ! {got, M},
            erlang:send(Pid, {'$gen_consumer', {self(), Tag}, {cancel, R}}, [noconnect]),
            Loop(Count);
        {cancel_consumer, Pid, Tag, R} ->
            erlang:send(Pid, {'$gen_consumer', {self(), Tag}, {cancel, R}}, [noconnect]),
            Loop(Count);
        M ->
            Tester ! {got, M},
            Loop(Count)
    end
end,
P = spawn(fun() -> Loop(0) end),
register(raw_producer, P),
P.
"""

# A consumer following G4.1 with min 2 / max 5: subscribes (monitor first, G3.2), asks 5,
# handles each M4 in chunks of max - min, re-asks the pid written in the M4; reports
# what it receives; cancels on request.
RAW_CONSUMER_SRC = r"""
Split = fun Split([], _D, _Asks, Acc) -> lists:reverse(Acc);
            Split(Es, D, Asks, Acc) ->
                {Chunk, Rest} = lists:split(min(3, length(Es)), Es),
                D1 = D - length(Chunk),
                case D1 =< 2 of
                    true -> Split(Rest, 5, Asks, [{Chunk, 5 - D1} | Acc]);
                    false -> Split(Rest, D1, Asks, [{Chunk, 0} | Acc])
                end
        end,
Loop = fun Loop(Tag, D) ->
    receive
        {'$gen_consumer', {Pid, Tag}, Events} = M when is_list(Events) ->
            Tester ! {got, M},
            Batches = Split(Events, D, [], []),
            Me = self(),
            Ask = fun({_, 0}) -> ok;
                     ({_, N}) -> Pid ! {'$gen_producer', {Me, Tag}, {ask, N}}
                  end,
            lists:foreach(Ask, Batches),
            D2 = lists:foldl(fun({C, 0}, Acc) -> Acc - length(C); ({_, _}, _) -> 5 end, D, Batches),
            Loop(Tag, D2);
        {cancel, Reason} ->
            Producer ! {'$gen_producer', {self(), Tag}, {cancel, Reason}},
            Loop(Tag, D);
        M ->
            Tester ! {got, M},
            Loop(Tag, D)
    end
end,
C = spawn(fun() ->
    Tag = erlang:monitor(process, Producer),
    Opts = [{min_demand, 2}, {max_demand, 5}],
    Producer ! {'$gen_producer', {self(), Tag}, {subscribe, nil, Opts}},
    Producer ! {'$gen_producer', {self(), Tag}, {ask, 5}},
    Loop(Tag, 5)
end),
register(raw_consumer, C),
C.
"""


async def got(pattern: Any, timeout: float = 5.0) -> Any:
    msg = await assert_receive((GOT, pattern), timeout=timeout)
    return msg[1]


async def test_beamlet_consumer_back_pressures_an_erlang_producer(
    epmd_port: int, node: Any
) -> None:
    """G3.1 part 2 of the reference trace, with the beamlet stage as the consumer."""
    me = beamlet.self()
    async with erl_peer(epmd_port) as peer:
        await peer.eval(RAW_PRODUCER_SRC, Tester=me, Max=12)
        to = (RAW_PRODUCER, peer.name)
        consumer = await Forwarder.start(
            Consumer(me, subscribe_to=[(to, {"min_demand": 2, "max_demand": 5})])
        )
        sub = await got((GEN_PRODUCER, ANY, (SUBSCRIBE, ANY, ANY)))
        (cpid, tag), (_, current, opts) = sub[1], sub[2]
        assert cpid == consumer and type(tag) is Ref
        assert current == NIL  # G3.5: the atom nil, never undefined or []
        assert opts == [(MIN, 2), (MAX, 5)]  # exactly what was passed, in order (G2.3)
        _, (producer_pid, _) = await assert_receive(("consumer_subscribed", ANY))
        assert producer_pid == to  # G1.4: a remote name, not a pid
        asks = []
        for _ in range(4):
            m = await got((GEN_PRODUCER, (consumer, tag), (ASK, ANY)))
            asks.append(m[2][1])
        assert asks == [5, 3, 5, 3]  # G4.2's rule, across the wire
        for batch in ([0, 1, 2], [3, 4], [5, 6, 7], [8, 9, 10], [11]):
            _, events = await assert_receive(("consumed", ANY))
            assert events == batch
        await refute_receive((GOT, ANY), timeout=0.1)  # no more demand: nothing is asked
        # M5 from Erlang: a permanent consumer stops with the reason (G10.1)
        mref = beamlet.monitor(consumer)
        beamlet.send(to, (Atom("cancel_consumer"), consumer, tag, NORMAL))
        await assert_receive(("consumer_cancelled", (to, tag), ("cancel", NORMAL)))
        await assert_receive(beamlet.Down(mref, ANY, ANY, NORMAL))


@pytest.mark.parametrize("share", [False, True])  # G3.8: sharing stops at the node
async def test_erlang_consumer_subscribes_to_a_beamlet_producer(
    epmd_port: int, node: Any, share: bool
) -> None:
    """G3.1 part 1 of the reference trace, with the beamlet stage as the producer."""
    me = beamlet.self()
    producer = await Counter.start_link(Producer(me, share_events=share))
    async with erl_peer(epmd_port) as peer:
        beamlet.register("py_producer", producer)
        await peer.eval(
            RAW_CONSUMER_SRC, Tester=me, Producer=(Atom("py_producer"), beamlet.node_name())
        )
        _, (cpid, tag) = await assert_receive(("producer_subscribed", ANY), timeout=5)
        assert type(cpid) is Pid and cpid.node == peer.name
        # events come from the producer's handle_call; the Erlang side must see lists
        await GenStage.call(producer, ("queue", [0, 1, 2, 3, 4, 5, 6]))
        m1 = await got((GEN_CONSUMER, ANY, ANY))
        assert m1 == (GEN_CONSUMER, (producer, tag), [0, 1, 2, 3, 4])
        await GenStage.call(producer, ("queue", [7, 8, 9]))
        rest: list[int] = []  # [5, 6] (buffered) and [7] may come as one M4 or two
        while len(rest) < 3:
            rest += list((await got((GEN_CONSUMER, (producer, tag), ANY)))[2])
        assert rest == [5, 6, 7]  # the consumer re-asked 3 after [0, 1, 2] (G4.1)
        # M3 from Erlang -> M5 echo, handle_cancel on the producer side (G3.3)
        beamlet.send((RAW_CONSUMER, peer.name), (CANCEL, NORMAL))
        await assert_receive(("producer_cancelled", (cpid, tag), ("cancel", NORMAL)), timeout=5)
        m5 = await got((GEN_CONSUMER, ANY, (CANCEL, ANY)))
        assert m5 == (GEN_CONSUMER, (producer, tag), (CANCEL, NORMAL))
        assert beamlet.is_alive(producer)  # producers never exit because of a consumer (G10.2)


async def test_producer_consumer_gating_holds_across_nodes(epmd_port: int, node: Any) -> None:
    """Erlang producer -> beamlet producer_consumer -> Erlang-less beamlet consumer with
    no demand: the producer_consumer asks upstream once and then stops (G4.5)."""
    me = beamlet.self()
    async with erl_peer(epmd_port) as peer:
        await peer.eval(RAW_PRODUCER_SRC, Tester=me, Max=1000)
        to = (RAW_PRODUCER, peer.name)
        pc = await Doubler.start(
            ProducerConsumer(me, subscribe_to=[(to, {"max_demand": 4, "min_demand": 0})])
        )
        await got((GEN_PRODUCER, ANY, (SUBSCRIBE, NIL, ANY)))
        await got((GEN_PRODUCER, (pc, ANY), (ASK, 4)))
        await assert_receive(("producer_consumer_subscribed", "producer", ANY))
        await refute_receive((GOT, ANY), timeout=0.2)  # no downstream demand: no re-ask
        consumer = await Forwarder.start(Consumer(me))
        await GenStage.sync_subscribe(consumer, to=pc, max_demand=4, min_demand=0)
        await assert_receive(("producer_consumed", [0, 1, 2, 3]), timeout=5)
        await assert_receive(("consumed", [0, 0, 1, 1]), timeout=5)
        await got((GEN_PRODUCER, (pc, ANY), (ASK, 4)))


async def test_erlang_calls_sync_subscribe_on_a_beamlet_consumer(epmd_port: int, node: Any) -> None:
    """G3.6: `GenStage.sync_subscribe` from Elixir is a gen_server call with
    {'$subscribe', nil, To, Opts}; a beamlet consumer answers {ok, Tag}."""
    me = beamlet.self()
    consumer = await Forwarder.start_link(Consumer(me))
    beamlet.register("py_consumer", consumer)
    async with erl_peer(epmd_port) as peer:
        await peer.eval(RAW_PRODUCER_SRC, Tester=me, Max=3)
        reply = await peer.eval(
            "gen_server:call({py_consumer, Node}, {'$subscribe', nil, {raw_producer, node()}, "
            "[{max_demand, 10}, {cancel, temporary}]}).",
            Node=beamlet.node_name(),
        )
        assert reply[0] == Atom("ok") and type(reply[1]) is Ref
        await assert_receive(("consumed", [0, 1, 2]), timeout=5)
        bad = await peer.eval(
            "gen_server:call({py_consumer, Node}, {'$subscribe', nil, {raw_producer, node()}, "
            "[{max_demand, 0}]}).",
            Node=beamlet.node_name(),
        )
        assert bad == (
            Atom("error"),
            (Atom("bad_opts"), b"expected :max_demand to be equal to or greater than 1, got: 0"),
        )


async def test_malformed_messages_from_erlang_do_not_crash_a_beamlet_producer(
    epmd_port: int, node: Any
) -> None:
    """G3.7: a Current of `undefined` crashed Elixir's producer (ergo#103); beamlet
    refuses that subscription with M5 and keeps running."""
    producer = await Counter.start_link(Producer(0))
    beamlet.register("py_producer", producer)
    async with erl_peer(epmd_port) as peer:
        src = r"""
        P = {py_producer, Node},
        T = make_ref(),
        P ! {'$gen_producer', {self(), T}, {subscribe, undefined, []}},
        R1 = receive {'$gen_consumer', {_, T}, {cancel, _} = C1} -> C1 after 5000 -> timeout end,
        P ! {'$gen_producer', {self(), T}, {ask, -5}},
        P ! {'$gen_producer', {self(), T}, {ask, 5}},
        R2 = receive {'$gen_consumer', {_, T}, {cancel, _} = C2} -> C2 after 5000 -> timeout end,
        T2 = make_ref(),
        P ! {'$gen_producer', {self(), T2}, {subscribe, nil, [{max_demand, 3}]}},
        P ! {'$gen_producer', {self(), T2}, {ask, 3}},
        R3 = receive {'$gen_consumer', {_, T2}, Es} -> Es after 5000 -> timeout end,
        {R1, R2, R3}.
        """
        r1, r2, r3 = await peer.eval(src, Node=beamlet.node_name())
        assert r1[0] == CANCEL and r1[1][0] == Atom("bad_opts")
        assert r2 == (CANCEL, Atom("unknown_subscription"))
        assert list(r3) == [0, 1, 2]
        assert beamlet.is_alive(producer)


async def test_producer_killed_across_nodes_stops_a_permanent_consumer(
    epmd_port: int, node: Any
) -> None:
    """DOWN across the wire (G10.1): the raw producer is killed; the consumer exits with
    the same reason."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    async with erl_peer(epmd_port) as peer:
        pid = await peer.eval(RAW_PRODUCER_SRC, Tester=me, Max=3)
        consumer = await Forwarder.start_link(Consumer(me, subscribe_to=[(pid, {"max_demand": 5})]))
        await assert_receive(("consumed", [0, 1, 2]), timeout=5)
        await peer.eval("exit(P, kill).", P=pid)
        await assert_receive(("consumer_cancelled", ANY, ("down", beamlet.KILLED)), timeout=5)
        await assert_receive(Exit(consumer, beamlet.KILLED), timeout=5)


# One raw consumer per partition (G7.4), each reporting the events it gets with the
# partition Erlang's own phash2 gives them.
PARTITION_CONSUMERS_SRC = r"""
Sub = fun(P) -> spawn(fun() ->
    Tag = erlang:monitor(process, Producer),
    Producer ! {'$gen_producer', {self(), Tag}, {subscribe, nil, [{partition, P}]}},
    Producer ! {'$gen_producer', {self(), Tag}, {ask, 1000}},
    Loop = fun Loop() ->
        receive
            {'$gen_consumer', {_, Tag}, Es} when is_list(Es) ->
                Tester ! {partition_got, P, Es, [erlang:phash2(E, 4) || E <- Es]},
                Loop()
        end
    end,
    Loop()
end) end,
[Sub(P) || P <- [0, 1, 2, 3]].
"""


async def test_partition_dispatcher_picks_the_partition_elixir_would(
    epmd_port: int, node: Any
) -> None:
    """G7.4: the default hash is `phash2(event, partitions)`, as in GenStage, so each
    event reaches the consumer whose partition Erlang's `erlang:phash2/2` names."""
    me = beamlet.self()
    producer = await Counter.start_link(
        Producer(me, dispatcher=(PartitionDispatcher, {"partitions": 4}))
    )
    beamlet.register("py_producer", producer)
    events: list[Any] = [*range(-20, 20), 2**70, -(2**64), 1.5, "héllo", "", b"\x00\xff"]
    events += [Atom("ok"), Atom("café"), (1, "a"), [1, 2, [3]], {"k": [Atom("v")]}, None, True]
    async with erl_peer(epmd_port) as peer:
        await peer.eval(
            PARTITION_CONSUMERS_SRC, Tester=me, Producer=(Atom("py_producer"), beamlet.node_name())
        )
        for _ in range(4):
            await assert_receive(("producer_subscribed", ANY), timeout=5)
        await GenStage.call(producer, ("queue", events))
        seen = 0
        parts = set()
        while seen < len(events):
            _, part, got_events, hashes = await assert_receive(
                (Atom("partition_got"), ANY, ANY, ANY), timeout=5
            )
            assert hashes == [part] * len(got_events)  # Erlang agrees with the choice
            assert [phash2(e, 4) for e in got_events if type(e) is int] == [
                part for e in got_events if type(e) is int
            ]
            seen += len(got_events)
            parts.add(part)
        assert seen == len(events) and parts == {0, 1, 2, 3}
