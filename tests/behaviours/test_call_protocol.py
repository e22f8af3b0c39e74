"""GenServer.call over the fused call primitive (src/beamlet/_core/request.py), edge case
by edge case (docs/semantics.md §4.4 aliases, §4.5 gen:call, §7.4 call, §7.5 reply).

A call from a process to a server of its own node monitors the server, makes the call's
Ref an alias and waits, in one step; these tests pin down what a caller, a server and
third parties observe around that step: late replies, servers and callers dying
mid-call, cancellation, the caller's mailbox during a call, raw servers answering in
every style, `process_info`, calls made by `spawn`, isolation, argument errors, trapped
exits, dead processes, many callers at once, and calls across two nodes of one OS
process. The rows of §7.4 already ported in test_gen_server.py (C1-C7) are not repeated.

Conventions (§12.8): deaths are observed through monitors, "no message" over a bounded
wait, and nothing sleeps to wait for an event; tests that need time to pass run on
virtual time, where a long timeout that does not elapse proves the call did not wait.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import dist_nodes as dist  # the distribution tests' helpers
import pytest

import beamlet
from beamlet import (
    ANY,
    CALLING_SELF,
    HIBERNATE,
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    TIMEOUT,
    Atom,
    CallExit,
    Crash,
    Down,
    Exit,
    From,
    GenServer,
    InvalidTimeout,
    NoReply,
    Pid,
    ProcessExit,
    Reply,
    Terminated,
    Unsendable,
)
from beamlet.behaviours.gen_server import GEN_CALL, NODEDOWN
from beamlet.testing import assert_receive, refute_receive

HOLDING = "holding"


# --- servers and helpers ---------------------------------------------------------------


class Holder(GenServer[Any]):
    """A server whose answers the test controls.

    Calls: `"ping"` -> `"pong"`; `("echo", x)` -> x; `("hold", notify)` -> no answer,
    `notify` gets `(HOLDING, from_)`; `("put", v)` -> `"ok"`, state v; `"get"` -> the
    state; `"get_hibernate"` -> the state, with an action (the non-inlined reply path);
    `"get_then_mutate"` -> the state through `GenServer.reply`, then mutates it;
    `("whoami", notify)` -> the caller's pid, also sent to `notify`;
    `("reply_then", how)` -> `GenServer.reply`, then dies (`how`); `("call", s, req)` ->
    the answer of a call to `s`; `"unsendable_reply"` -> a lock (cannot be sent).
    Casts: `("reply", from_, v)`; `("send_and_reply", from_, msg, v)`; `("mutate", x)`.
    Info: `("die", reason)` exits with reason; anything else is ignored."""

    async def init(self, arg: Any) -> Any:
        return arg

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        match request:
            case "ping":
                return Reply("pong", state)
            case ("echo", x):
                return Reply(x, state)
            case ("hold", notify):
                beamlet.send(notify, (HOLDING, from_))
                return NoReply(state)
            case ("put", value):
                return Reply("ok", value)
            case "get":
                return Reply(state, state)
            case "get_hibernate":
                return Reply(state, state, HIBERNATE)
            case "get_then_mutate":
                GenServer.reply(from_, state)
                state.append("mutated")
                return NoReply(state)
            case ("whoami", notify):
                beamlet.send(notify, ("called_by", from_.pid))
                return Reply(from_.pid, state)
            case ("reply_then", how):
                GenServer.reply(from_, "replied")
                if how == "raise":
                    raise ValueError("after the reply")
                raise ProcessExit(Atom("after_the_reply"))
            case ("call", server, req):
                return Reply(await GenServer.call(server, req), state)
            case "unsendable_reply":
                return Reply(threading.Lock(), state)
        raise AssertionError(f"unexpected call {request!r}")

    async def handle_cast(self, request: Any, state: Any) -> Any:
        match request:
            case ("reply", from_, value):
                GenServer.reply(from_, value)
            case ("send_and_reply", from_, msg, value):
                beamlet.send(from_.pid, msg)
                GenServer.reply(from_, value)
            case ("mutate", item):
                state.append(item)
        return NoReply(state)

    async def handle_info(self, msg: Any, state: Any) -> Any:
        match msg:
            case ("die", reason):
                raise ProcessExit(reason)
            case ("crash", text):
                raise ValueError(text)
        return NoReply(state)


def down_for(ref: Any) -> Any:
    return lambda m: type(m) is Down and m.ref == ref


def info(pid: Pid) -> beamlet.ProcessInfo:
    i = beamlet.process_info(pid)
    assert i is not None, f"{pid!r} is not alive"
    return i


async def drain() -> list[Any]:
    """Every message in the caller's mailbox now, oldest first (a poll, §2.4 step 2)."""
    out = []
    while (m := await beamlet.receive(timeout=0, default=None)) is not None:
        out.append(m)
    return out


async def wait_down(pid: Pid) -> Any:
    ref = beamlet.monitor(pid)
    return (await assert_receive(down_for(ref), timeout=5.0)).reason


async def call_and_report(report_to: Pid, server: Any, request: Any, timeout: Any = 5.0) -> None:
    """A caller process: `("ok", self, value)` or `("exit", self, cause)` to `report_to`."""
    try:
        value = await GenServer.call(server, request, timeout)
    except CallExit as e:
        beamlet.send(report_to, ("exit", beamlet.self(), e.cause))
    else:
        beamlet.send(report_to, ("ok", beamlet.self(), value))


def now() -> float:
    return asyncio.get_running_loop().time()


# The ways a server may answer a call with From = (pid, tag) (§4.5, §7.5):


def answer_to_pid(pid: Pid, tag: Any, value: Any) -> None:
    beamlet.send(pid, (tag, value))  # old style: {Tag, Reply} to the caller's pid


def answer_to_alias(pid: Pid, tag: Any, value: Any) -> None:
    beamlet.send(tag, (tag, value))  # to the tag, an alias (what gen:reply does)


def answer_with_reply(pid: Pid, tag: Any, value: Any) -> None:
    GenServer.reply(From(pid, tag), value)


def answer_from_a_third_process(pid: Pid, tag: Any, value: Any) -> None:
    async def third() -> None:
        GenServer.reply(From(pid, tag), value)

    beamlet.spawn(third)


# --- 1. late replies (§4.5 step 5, §7.4 C5) ---------------------------------------------


class Slow(GenServer[Any]):
    """`("wait_for_go", v)` blocks inside handle_call until `"go"`, then replies v."""

    async def init(self, arg: Any) -> Any:
        return None

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        _, value = request
        await beamlet.receive("go")
        return Reply(value, state)

    async def handle_cast(self, request: Any, state: Any) -> Any:
        _, from_, value = request
        GenServer.reply(from_, value)
        return NoReply(state)


class Releaser(GenServer[Any]):
    """`("release", slow)` -> no reply now; tells `slow` to answer its held call, then
    has `slow` answer this one (same sender: in that order, §0.3)."""

    async def init(self, arg: Any) -> Any:
        return None

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        _, slow = request
        beamlet.send(slow, "go")
        GenServer.cast(slow, ("reply", from_, "second"))
        return NoReply(state)


@pytest.mark.virtual_time
async def test_late_reply_arriving_during_the_next_call_is_dropped() -> None:
    """§4.5 step 5, §7.4 C5: a reply to a call that timed out is dropped even when it
    arrives while the caller waits on its next call, to another server; it is not taken
    for that call's reply and never reaches the mailbox. Here the late reply leaves
    through the server loop's inlined reply path."""
    slow = await Slow.start()
    releaser = await Releaser.start()
    with pytest.raises(CallExit) as ei:
        await GenServer.call(slow, ("wait_for_go", "late"), 1.0)
    assert ei.value.cause == TIMEOUT
    # slow is still inside the first handle_call; the releaser makes it answer (late)
    # while we wait on the releaser, then has slow answer us with "second".
    assert await GenServer.call(releaser, ("release", slow), 10.0) == "second"
    await refute_receive(ANY, timeout=5.0)
    assert beamlet.is_alive(slow) and beamlet.is_alive(releaser)
    assert info(beamlet.self()).monitors == ()


@pytest.mark.virtual_time
async def test_late_deferred_reply_to_the_same_server_during_the_next_call_is_dropped() -> None:
    """§4.5 step 5, §7.5: `GenServer.reply` with the From of a call that timed out,
    made while the same caller waits on a new call to the same server, does not answer
    the new call, does not fail, and leaves nothing in the caller's mailbox."""
    me = beamlet.self()
    server = await Holder.start(None)
    with pytest.raises(CallExit) as ei:
        await GenServer.call(server, ("hold", me), 1.0)
    assert ei.value.cause == TIMEOUT
    _, old = await assert_receive((HOLDING, ANY))
    beamlet.send(me, "marker")
    assert await assert_receive(ANY) == "marker"  # nothing else was in our mailbox

    class Both(GenServer[Any]):
        async def init(self, arg: Any) -> Any:
            return None

        async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
            GenServer.reply(old, "late")  # the stale From first ...
            return Reply("fresh", state)  # ... then this call's own answer

    both = await Both.start()
    assert await GenServer.call(both, "x", 10.0) == "fresh"
    GenServer.cast(server, ("reply", old, "later still"))  # via the original server too
    assert await GenServer.call(server, "ping") == "pong"  # and it keeps serving
    await refute_receive(ANY, timeout=5.0)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(answer_to_alias, id="send_to_alias"),
        pytest.param(answer_to_pid, id="send_to_pid"),
        pytest.param(answer_with_reply, id="GenServer.reply"),
    ],
)
async def test_reply_racing_the_timeout_is_returned(answer: Any) -> None:
    """§4.5 step 4: when the call's timeout has fired but the caller has not run yet, a
    reply that arrives meanwhile "raced in": the call returns it (gen:call polls once
    more for it after dropping the alias), and the mailbox is left clean. The server
    here is a plain process that keeps itself runnable with bare yields until the
    caller's timer has fired (the caller shows as `runnable`), then answers."""
    me = beamlet.self()

    async def server() -> None:
        _, (pid, tag), _ = await beamlet.receive((GEN_CALL, (ANY, ANY), ANY))
        while info(pid).status == "waiting":
            await asyncio.sleep(0)  # sleep-ok: stay in the run queue, ahead of the caller
        status = info(pid).status
        answer(pid, tag, "raced")
        beamlet.send(me, ("answered_while", status))

    pid = beamlet.spawn(server)
    try:
        got = await GenServer.call(pid, "x", 0.05)
    except CallExit as e:
        got = ("exit", e.cause)
    rest = await drain()
    assert ("answered_while", "runnable") in rest, "the race was not set up"
    assert (got, rest) == ("raced", [("answered_while", "runnable")])


# --- 2. the server dies mid-call (§4.5 step 3, §7.4 C4) --------------------------------


def _exit_signal(reason: Any) -> Any:
    return lambda server: beamlet.exit(server, reason)


def _exits_itself(reason: Any) -> Any:
    return lambda server: beamlet.send(server, ("die", reason))


def _crashes(server: Pid) -> None:
    beamlet.send(server, ("crash", "mid-call"))


DEATHS = [
    pytest.param(_exit_signal(KILL), lambda: KILLED, id="killed"),
    pytest.param(_exit_signal(Atom("custom")), lambda: Atom("custom"), id="exit_signal_R"),
    pytest.param(
        _exits_itself((Atom("custom"), [1, 2])), lambda: (Atom("custom"), [1, 2]), id="exit_R"
    ),
    pytest.param(
        _exit_signal(NOCONNECTION), lambda: (NODEDOWN, beamlet.node_name()), id="noconn_signal"
    ),
    pytest.param(
        _exits_itself(NOCONNECTION), lambda: (NODEDOWN, beamlet.node_name()), id="noconn_exit"
    ),
    pytest.param(_crashes, None, id="crash"),
]


@pytest.mark.virtual_time
@pytest.mark.parametrize("timeout", [3600.0, 3600, None])
@pytest.mark.parametrize(("kill", "expected"), DEATHS)
async def test_server_death_mid_call_fails_the_call_at_once(
    kill: Any, expected: Any, timeout: Any
) -> None:
    """§4.5 step 3, §7.4 C4: a server that dies while a call waits on it fails the call
    at once with its exit reason (`killed` for kill; `noconnection` becomes `{nodedown,
    Node}`), not after the timeout: no virtual time passes, with a one-hour timeout or
    none. The caller is left with no monitor and no message."""
    me = beamlet.self()
    server = await Holder.start(None)

    async def killer() -> None:
        await beamlet.receive((HOLDING, ANY))
        kill(server)

    k = beamlet.spawn(killer)
    t0 = now()
    with pytest.raises(CallExit) as ei:
        await GenServer.call(server, ("hold", k), timeout)
    assert now() - t0 < 1.0, "the call waited for its timeout"
    cause = ei.value.cause
    if expected is None:
        assert type(cause) is Crash and isinstance(cause.exception, ValueError)
    else:
        assert cause == expected()
    assert ei.value.reason == (cause, ("GenServer.call", server, ("hold", k), timeout))
    assert not beamlet.is_alive(server)
    assert info(me).monitors == ()
    await refute_receive(ANY, timeout=0.1)


async def test_each_caller_gets_its_own_copy_of_a_mutable_exit_reason() -> None:
    """§2.2 (exit reasons obey isolation), §4.5 step 3: two callers pending on a server
    that exits with a mutable reason each get a copy of their own."""
    me = beamlet.self()
    server = await Holder.start(None)
    causes: list[Any] = []  # shared by reference on purpose: to compare identities

    async def caller() -> None:
        try:
            await GenServer.call(server, ("hold", me))
        except CallExit as e:
            causes.append(e.cause)
        beamlet.send(me, "reported")

    callers = [beamlet.spawn(caller) for _ in range(2)]
    for _ in callers:
        await assert_receive((HOLDING, ANY))
    beamlet.send(server, ("die", [Atom("mutable"), [1]]))
    await assert_receive("reported")
    await assert_receive("reported")
    assert causes == [[Atom("mutable"), [1]]] * 2
    assert causes[0] is not causes[1] and causes[0][1] is not causes[1][1]


async def test_reply_sent_just_before_the_server_dies_wins() -> None:
    """§4.2 (a DOWN follows every message its target sent), §4.5 step 3: a server that
    replies and then dies in the same callback has answered the call; the caller gets
    the reply, not the exit reason, whichever way the server dies."""
    for how in ("raise", "exit"):
        server = await Holder.start(None)
        assert await GenServer.call(server, ("reply_then", how)) == "replied"
        assert await wait_down(server) != NORMAL
    await refute_receive(ANY, timeout=0.1)


async def test_nested_call_failure_propagates_through_the_middle_server() -> None:
    """§7.4 C4 twice: A calls B, whose handle_call calls C; C is killed. B's call fails
    with `killed`, which (uncaught) ends B with `{killed, MFA}`, and A's call fails with
    that reason. A call queued for B while B waited on C fails the same way (it was
    queued, not handed over)."""
    me = beamlet.self()
    c = await Holder.start(None)
    b = await Holder.start(None)
    first = beamlet.spawn(call_and_report, me, b, ("call", c, ("hold", me)))
    await assert_receive((HOLDING, ANY))

    async def second_caller() -> None:
        beamlet.send(me, "calling")  # we run again only once it waits in its call
        await call_and_report(me, b, "ping")

    second = beamlet.spawn(second_caller)
    await assert_receive("calling")
    assert info(b).message_queue_len == 1  # queued: b itself waits in a call
    assert info(second).status == "waiting"
    beamlet.exit(c, KILL)
    inner = (KILLED, ("GenServer.call", c, ("hold", me), 5.0))
    assert await assert_receive(("exit", first, ANY)) == ("exit", first, inner)
    assert await assert_receive(("exit", second, ANY)) == ("exit", second, inner)


@pytest.mark.virtual_time
async def test_mutual_calls_deadlock_until_the_timeout_then_recover() -> None:
    """§7.4 C5, §2.4: A calls B, whose handle_call calls A back. A waits in its call,
    so B's request is queued in A's mailbox (not handed over, not taken as a reply):
    both wait until A's call times out. A then finds B's request in its mailbox and
    answers it; B's call returns, and B's reply to A's old call is dropped."""
    me = beamlet.self()
    b = await Holder.start(None)
    t0 = now()
    with pytest.raises(CallExit) as ei:
        await GenServer.call(b, ("call", me, "question"), 1.0)
    assert ei.value.cause == TIMEOUT
    assert 1.0 <= now() - t0 < 2.0
    _, (pid, tag), req = await assert_receive((GEN_CALL, (ANY, ANY), ANY), timeout=0)
    assert (pid, req) == (b, "question")
    GenServer.reply(From(pid, tag), "answer")
    assert await GenServer.call(b, "ping") == "pong"  # b answered our old call first
    await refute_receive(ANY, timeout=5.0)


# --- 3. the caller dies mid-call (§7.4, last paragraph) --------------------------------


@pytest.mark.parametrize("reason", [KILL, Atom("boom")])
async def test_caller_killed_while_waiting_leaves_the_server_clean(reason: Any) -> None:
    """§7.4 ("if the caller dies during a call, the server still runs the request; its
    reply is dropped"), §4.1: a caller killed while it waits stops monitoring the
    server (gone from the server's `monitored_by`); the server keeps serving; a later
    reply to the dead caller, from the server or from anyone, is harmless."""
    me = beamlet.self()
    server = await Holder.start(None)
    caller = beamlet.spawn(call_and_report, me, server, ("hold", me))
    _, from_ = await assert_receive((HOLDING, ANY))
    assert from_.pid == caller
    assert caller in info(server).monitored_by
    ref = beamlet.monitor(caller)
    beamlet.exit(caller, reason)
    down = await assert_receive(down_for(ref))
    assert down.reason == (KILLED if reason == KILL else reason)
    assert caller not in info(server).monitored_by
    assert info(server).monitored_by == ()
    GenServer.cast(server, ("reply", from_, "late"))  # the server replies to the dead
    GenServer.reply(from_, "later")  # and so does a third process: no error
    assert await GenServer.call(server, "ping") == "pong"
    assert info(server).monitored_by == ()
    await refute_receive(ANY, timeout=0.1)


# --- 4. cancellation by asyncio ----------------------------------------------------------


@pytest.mark.virtual_time
@pytest.mark.parametrize("call_timeout", [None, 5.0])
async def test_call_cancelled_by_asyncio_timeout(call_timeout: Any) -> None:
    """A call is an await point like any other: `asyncio.timeout` around it cancels it
    with TimeoutError after its delay. Afterwards the caller has no monitor, the server
    does not list it, the late reply is dropped (§4.5 step 5), the call's own timeout
    never fires into a later receive, and later calls work."""
    me = beamlet.self()
    server = await Holder.start(None)
    t0 = now()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await GenServer.call(server, ("hold", me), call_timeout)
    assert 1.0 <= now() - t0 < 2.0
    _, from_ = await assert_receive((HOLDING, ANY))
    assert info(me).monitors == ()
    assert info(server).monitored_by == ()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    GenServer.cast(server, ("reply", from_, "late"))
    assert await GenServer.call(server, "ping") == "pong"  # after the late reply (§0.3)
    # The call's own 5 s timer, had it survived, would fire into this receive at t0 + 5.
    beamlet.send_after(8.0, me, "tick")
    assert await beamlet.receive() == "tick"
    assert now() - t0 >= 9.0
    await refute_receive(ANY, timeout=10.0)


@pytest.mark.virtual_time
async def test_answered_call_leaves_no_timer_behind() -> None:
    """§2.4 step 4, §7.4 C1: a call with a timeout, answered after its timer was armed,
    leaves no timer: the caller's next receive (without timeout) is not woken at the
    moment the call would have timed out, and it gets its message when it comes."""
    me = beamlet.self()
    server = await Holder.start(None)

    async def helper() -> None:
        _, from_ = await beamlet.receive((HOLDING, ANY))
        await beamlet.receive("release")
        GenServer.reply(from_, "answer")

    h = beamlet.spawn(helper)
    t0 = now()
    beamlet.send_after(2.0, h, "release")
    assert await GenServer.call(server, ("hold", h), 5.0) == "answer"
    assert 2.0 <= now() - t0 < 3.0
    beamlet.send_after(8.0, me, "tick")
    assert await beamlet.receive() == "tick"
    assert now() - t0 >= 10.0
    assert await GenServer.call(server, "ping", 1.0) == "pong"
    await refute_receive(ANY, timeout=10.0)


# --- 5. the caller's mailbox during a call (§2.4, §4.5) --------------------------------


async def test_messages_arriving_during_a_call_stay_queued_in_order() -> None:
    """§2.4 step 1, §4.5 step 3: messages that reach a caller while it waits, including
    ones shaped like replies with another tag, are neither consumed nor reordered, and
    do not wake it: they are all there, in order, when the call returns. A message the
    server sent before its reply is already there too (§0.3: same sender)."""
    me = beamlet.self()
    server = await Holder.start(None)
    decoy_ref = beamlet.make_ref()
    sent = [
        "m1",
        (decoy_ref, "reply-shaped, other tag"),
        ("m", 3),
        (Atom("$gen_call"), (me, decoy_ref), "looks like a call"),
        Down(decoy_ref, Atom("process"), me, NORMAL, None),
        "m6",
    ]

    async def sender() -> None:
        _, from_ = await beamlet.receive((HOLDING, ANY))
        for m in sent:
            beamlet.send(me, m)
        i = info(me)  # still waiting, nothing taken from its mailbox
        beamlet.send(me, ("seen", i.status, i.message_queue_len))
        GenServer.cast(server, ("send_and_reply", from_, "from the server", "answer"))

    assert await GenServer.call(server, ("hold", beamlet.spawn(sender))) == "answer"
    got = await drain()
    assert "from the server" in got
    from_sender = [m for m in got if m != "from the server"]
    assert from_sender == [*sent, ("seen", "waiting", len(sent))]


class _Ambiguous:
    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array is ambiguous")


class ArrayLike:
    """A value whose `==` returns an array-like result that refuses `bool()`, as numpy
    arrays and pandas frames do."""

    def __eq__(self, other: object) -> Any:
        return _Ambiguous()

    __hash__ = object.__hash__


@pytest.mark.parametrize("to_alias", [False, True], ids=["to_pid", "to_alias"])
async def test_sending_an_array_like_pair_to_a_waiting_caller_does_not_fail(
    to_alias: bool,
) -> None:
    """§2.1 (send to a live pid or an active alias never fails), §2.4: a pair whose first
    element compares like a numpy array is an ordinary message for a process waiting in
    a call: the send succeeds, the message is queued, and the call returns its reply."""
    server = await Holder.start(None)

    async def sender() -> None:
        _, from_ = await beamlet.receive((HOLDING, ANY))
        try:
            beamlet.send(from_.tag if to_alias else from_.pid, (ArrayLike(), "payload"))
            outcome = "sent"
        except Exception as e:
            outcome = repr(e)
        GenServer.reply(from_, outcome)

    assert await GenServer.call(server, ("hold", beamlet.spawn(sender))) == "sent"
    got = await drain()
    assert len(got) == 1 and type(got[0][0]) is ArrayLike


async def relay(to: Pid) -> None:
    """Forward one message to `to`."""
    beamlet.send(to, await beamlet.receive())


# --- 6. raw servers: every way of answering (§4.4, §4.5, §7.5) ---------------------------


ANSWERS = [
    pytest.param(answer_to_pid, id="send_to_pid"),
    pytest.param(answer_to_alias, id="send_to_alias"),
    pytest.param(answer_from_a_third_process, id="reply_from_third_process"),
]


async def raw_server(answer: Any, report_to: Pid) -> None:
    """A plain process serving `$gen_call` with beamlet.receive: answers each request
    with `("answer", req)` through `answer`, then tells `report_to` the From it used."""
    while True:
        _, (pid, tag), req = await beamlet.receive((GEN_CALL, (ANY, ANY), ANY))
        answer(pid, tag, ("answer", req))
        beamlet.send(report_to, ("answered", (pid, tag)))


@pytest.mark.parametrize("answer", ANSWERS)
async def test_raw_server_answers(answer: Any) -> None:
    """§4.5, §7.5: a server that is a plain process receiving `{'$gen_call', {Pid,
    Tag}, Req}` may answer `{Tag, Reply}` to the caller's pid, to the Tag (an alias), or
    through `GenServer.reply(From)` from any process; each is the call's reply, and
    nothing else is left in the caller's mailbox. Calls repeat with fresh tags."""
    me = beamlet.self()
    server = beamlet.spawn(raw_server, answer, me)
    tags = set()
    for i in range(3):
        assert await GenServer.call(server, ("req", i)) == ("answer", ("req", i))
        _, (pid, tag) = await assert_receive(("answered", ANY))
        assert pid == me
        tags.add(tag)
    assert len(tags) == 3
    assert await drain() == []
    await refute_receive(ANY, timeout=0.05)


async def test_message_to_the_alias_that_is_not_a_reply_lands_in_the_mailbox() -> None:
    """§4.4: while a call waits, its Tag is an active alias: anything sent to it is
    delivered to the caller. Only `{Tag, Reply}` answers the call; other messages (a
    bare term, a pair with another first element, a triple starting with the Tag) are
    queued in order. After the call the alias is inactive: sends to it are dropped."""
    me = beamlet.self()
    other = beamlet.make_ref()

    async def server() -> None:
        _, (_pid, tag), _req = await beamlet.receive((GEN_CALL, (ANY, ANY), ANY))
        beamlet.send(tag, "not a reply")
        beamlet.send(tag, (other, "other tag"))
        beamlet.send(tag, (tag, "a", "triple"))
        beamlet.send(tag, (tag, "the reply"))
        beamlet.send(tag, (tag, "a second reply"))  # the call is over: dropped
        await beamlet.receive("again")
        beamlet.send(tag, "after the call")  # dropped: inactive alias
        beamlet.send(tag, (tag, "late reply"))  # dropped
        beamlet.send(me, "sent")

    pid = beamlet.spawn(server)
    assert await GenServer.call(pid, "x") == "the reply"
    beamlet.send(pid, "again")
    await assert_receive("sent")  # whatever it sent us before this has arrived
    got = await drain()
    assert len(got) == 3
    assert got[:2] == ["not a reply", (other, "other tag")]
    assert type(got[2][0]) is beamlet.Ref and got[2][1:] == ("a", "triple")


@pytest.mark.virtual_time
async def test_old_style_reply_to_the_pid_after_the_call_is_an_ordinary_message() -> None:
    """§4.4, §4.5 step 5: only messages sent to the dead alias are dropped. A stray
    `{Tag, Reply}` sent to the caller's *pid* after the call (here: after it timed out,
    and while it waits on its next call) is a plain message, as on the BEAM: it does not
    answer the next call, and it lands in the mailbox."""
    me = beamlet.self()

    async def server() -> None:
        _, (pid, tag1), _ = await beamlet.receive((GEN_CALL, (ANY, ANY), ANY))
        _, (_, tag2), _ = await beamlet.receive((GEN_CALL, (ANY, ANY), ANY))
        beamlet.send(pid, (tag1, "stale"))  # while the caller waits on the 2nd call
        beamlet.send(pid, (tag2, "fresh"))

    pid = beamlet.spawn(server)
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid, "first", 0.01)
    assert ei.value.cause == TIMEOUT
    assert await GenServer.call(pid, "second") == "fresh"
    got = await drain()
    assert len(got) == 1 and got[0][1] == "stale"
    assert info(me).monitors == ()


# --- 7. process_info during a call -------------------------------------------------------


async def test_process_info_during_and_after_a_call() -> None:
    """§4.1, §4.5 step 1: during a call the caller is `waiting`, monitors the server
    (`monitors`) and the server lists it in `monitored_by`; the reply removes both."""
    me = beamlet.self()
    server = await Holder.start(None)

    async def caller() -> None:
        value = await GenServer.call(server, ("hold", me))
        beamlet.send(me, ("got", value))
        await beamlet.receive("finish")

    pid = beamlet.spawn(caller)
    _, from_ = await assert_receive((HOLDING, ANY))
    during = info(pid)
    assert during.status == "waiting"
    assert during.monitors == (server,)
    assert during.message_queue_len == 0
    assert info(server).monitored_by == (pid,)
    assert info(me).monitored_by == ()  # a call monitors its server, nobody else
    GenServer.reply(from_, "value")
    assert await assert_receive(("got", ANY)) == ("got", "value")
    after = info(pid)
    assert after.monitors == ()
    assert info(server).monitored_by == ()
    beamlet.send(pid, "finish")
    assert await wait_down(pid) == NORMAL


# --- 8. calls made by spawn --------------------------------------------------------------


async def test_spawned_call_is_made_by_the_child() -> None:
    """`spawn(GenServer.call, server, req)`: the awaitable is made in the parent and
    awaited in the child, which is the caller (From's pid), by pid and by name; the
    child ends normally. Calling the parent from the child is not `calling_self`."""
    me = beamlet.self()
    server = await Holder.start(None, name="call_protocol_holder")
    for ref in (server, "call_protocol_holder"):
        child, mref = beamlet.spawn_monitor(GenServer.call, ref, ("whoami", me))
        assert await assert_receive(("called_by", ANY)) == ("called_by", child)
        assert (await assert_receive(down_for(mref))).reason == NORMAL
        assert info(server).monitored_by == ()
    child = beamlet.spawn(GenServer.call, server, ("whoami", me))
    assert await assert_receive(("called_by", ANY)) == ("called_by", child)
    # The child calls us, its parent: we receive the request and answer it.
    child, mref = beamlet.spawn_monitor(GenServer.call, me, "to the parent")
    _, (pid, tag), req = await assert_receive((GEN_CALL, (ANY, ANY), ANY))
    assert (pid, req) == (child, "to the parent")
    GenServer.reply(From(pid, tag), "answered")
    assert (await assert_receive(down_for(mref))).reason == NORMAL


@pytest.mark.virtual_time
async def test_spawned_call_failures_end_the_child_with_the_call_reason() -> None:
    """§7.4 C2, C3, C5 in a spawned call: the child exits `{Cause, MFA}`."""
    me = beamlet.self()
    dead, ref = beamlet.spawn_monitor(relay, me)
    beamlet.send(dead, "x")
    await assert_receive("x")
    assert (await assert_receive(down_for(ref))).reason == NORMAL
    server = await Holder.start(None)
    cases = [
        ((dead, "ping"), (NOPROC, ("GenServer.call", dead, "ping", 5.0))),
        (("nobody_here", "ping"), (NOPROC, ("GenServer.call", "nobody_here", "ping", 5.0))),
        ((server, ("hold", me), 0.5), (TIMEOUT, ("GenServer.call", server, ("hold", me), 0.5))),
        ((server, ("hold", me), 1), (TIMEOUT, ("GenServer.call", server, ("hold", me), 1))),
    ]
    for args, reason in cases:
        _, mref = beamlet.spawn_monitor(GenServer.call, *args)
        assert (await assert_receive(down_for(mref), timeout=5.0)).reason == reason
    assert info(server).monitored_by == ()


# --- 9. isolation (§2.2) -----------------------------------------------------------------


async def test_request_and_reply_are_copied() -> None:
    """§2.2: the server owns a copy of a mutable request and the caller a copy of a
    mutable reply, on every reply path (inlined, with an action, `GenServer.reply`
    during the callback and from a later callback); mutating one side afterwards never
    shows on the other."""
    me = beamlet.self()
    server = await Holder.start(None)
    request = [1, 2]
    assert await GenServer.call(server, ("put", request)) == "ok"
    request.append("caller")
    assert await GenServer.call(server, "get") == [1, 2]

    for how in ("get", "get_hibernate"):  # the inlined reply, and the one with an action
        reply = await GenServer.call(server, how)
        assert reply == [1, 2]
        reply.append("caller")
        assert await GenServer.call(server, "get") == [1, 2]
    # GenServer.reply during the callback, then the server mutates its state.
    reply = await GenServer.call(server, "get_then_mutate")
    assert reply == [1, 2]
    assert await GenServer.call(server, "get") == [1, 2, "mutated"]
    GenServer.cast(server, ("mutate", "later"))
    assert await GenServer.call(server, "get") == [1, 2, "mutated", "later"]
    assert reply == [1, 2]

    # A deferred reply, mutated by the server after it was sent.
    pending = beamlet.spawn(call_and_report, me, server, ("hold", me))
    _, from_ = await assert_receive((HOLDING, ANY))
    value = {"k": [1]}
    GenServer.reply(from_, value)
    value["k"].append(2)
    assert await assert_receive(("ok", pending, ANY)) == ("ok", pending, {"k": [1]})


async def test_unsendable_request_fails_in_the_caller_and_sends_nothing() -> None:
    """§2.2: a request that cannot be copied raises `Unsendable` in the caller before
    anything is sent: no monitor is left on either side, the server never sees it."""
    me = beamlet.self()
    server = await Holder.start([])
    with pytest.raises(Unsendable):
        await GenServer.call(server, ("put", threading.Lock()))
    assert info(me).monitors == ()
    assert info(server).monitored_by == ()
    assert await GenServer.call(server, "get") == []


def _by_pid(server: Pid) -> Any:
    return server  # the fused call (request.py)


def _by_name_and_node(server: Pid) -> Any:
    beamlet.register("call_protocol_unsendable", server)
    return ("call_protocol_unsendable", beamlet.node_name())  # the general gen:call


CALL_PATHS = [
    pytest.param(_by_pid, id="fused"),
    pytest.param(_by_name_and_node, id="general"),
]


@pytest.mark.virtual_time
@pytest.mark.parametrize("path", CALL_PATHS)
async def test_unsendable_reply_from_handle_call_does_not_crash_the_server(
    path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """§7.5 (reply never fails), §2.2: a `Reply` whose value cannot be copied is not
    delivered: the call times out, the server keeps serving, and a warning says why
    nothing arrived. The same on the fused path (a pid of this node) as on the general
    one (`(name, node)`)."""
    server = await Holder.start(None)
    ref = path(server)
    with pytest.raises(CallExit) as ei:
        await GenServer.call(ref, "unsendable_reply", 1.0)
    assert ei.value.cause == TIMEOUT
    assert beamlet.is_alive(server)
    assert await GenServer.call(ref, "ping") == "pong"
    assert any("could not be sent" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", CALL_PATHS)
async def test_genserver_reply_with_an_unsendable_value_does_not_raise(path: Any) -> None:
    """§7.5: `GenServer.reply(From, V)` never fails, even when V cannot be copied (it is
    then not delivered); the caller can still be answered with a proper value."""
    me = beamlet.self()
    server = await Holder.start(None)
    caller = beamlet.spawn(call_and_report, me, path(server), ("hold", me))
    _, from_ = await assert_receive((HOLDING, ANY))
    raised = None
    try:
        GenServer.reply(from_, threading.Lock())
    except Exception as e:
        raised = e
    GenServer.reply(from_, "sendable")
    assert await assert_receive(("ok", caller, ANY)) == ("ok", caller, "sendable")
    assert raised is None


# --- 10. argument errors (§7.4 C2, C3, C6, C7) -------------------------------------------


@pytest.mark.virtual_time
async def test_int_timeouts_are_accepted() -> None:
    """§0.2: timeouts are int or float seconds; an int works for a reply and for a
    timeout (which then fires after that many seconds)."""
    me = beamlet.self()
    server = await Holder.start(None)
    assert await GenServer.call(server, "ping", 5) == "pong"
    assert await GenServer.call(server, "ping", 1) == "pong"
    t0 = now()
    with pytest.raises(CallExit) as ei:
        await GenServer.call(server, ("hold", me), 2)
    assert ei.value.cause == TIMEOUT
    assert 2.0 <= now() - t0 < 3.0
    assert ei.value.reason == (TIMEOUT, ("GenServer.call", server, ("hold", me), 2))


async def test_more_invalid_timeouts_are_rejected_before_sending() -> None:
    """§7.4 C7 beyond the values test_gen_server.py checks: False (a bool, not 0),
    -0.0, a negative int and a non-number raise InvalidTimeout, and nothing is sent;
    for a dead server and an unknown name too (the timeout is checked first)."""
    me = beamlet.self()
    server = await Holder.start([])
    dead = await Holder.start(None)
    await GenServer.stop(dead)
    for bad in (False, -0.0, -5, "1", [1]):
        for target in (server, "not_registered_anywhere", dead):
            with pytest.raises(InvalidTimeout):
                await GenServer.call(target, ("put", "changed"), bad)
    assert await GenServer.call(server, "get") == []  # no request reached it
    assert info(me).monitors == ()
    await refute_receive(ANY, timeout=0.05)


async def test_calling_self_by_name_and_node_and_noproc_for_a_replaced_pid() -> None:
    """§7.4 C2, C3, C6 through the references not covered elsewhere: `(name, node())`
    for ourselves is `calling_self`; a dead pid whose name is re-registered is still
    `noproc`; and none of these leaves a monitor or a message."""
    me = beamlet.self()
    beamlet.register("call_protocol_me")
    for target in (
        (Atom("call_protocol_me"), beamlet.node_name()),
        ("call_protocol_me", str(beamlet.node_name())),
    ):
        with pytest.raises(CallExit) as ei:
            await GenServer.call(target, "x", None)
        assert ei.value.cause == CALLING_SELF
    old = await Holder.start(None, name="call_protocol_srv")
    await GenServer.stop(old)
    new = await Holder.start(None, name="call_protocol_srv")
    with pytest.raises(CallExit) as ei:
        await GenServer.call(old, "ping")
    assert ei.value.cause == NOPROC
    assert await GenServer.call("call_protocol_srv", "ping") == "pong"
    assert new != old
    assert info(me).monitors == ()
    await refute_receive(ANY, timeout=0.05)


async def test_call_awaited_outside_a_process_is_refused() -> None:
    """A call must be awaited by a beamlet process: an asyncio task that a process
    starts (it inherits the process's context) gets NotInProcess, and the server is
    not called."""
    server = await Holder.start([])

    async def in_a_task() -> Any:
        return await GenServer.call(server, ("put", "changed"))

    task = asyncio.ensure_future(in_a_task())
    with pytest.raises(beamlet.NotInProcess):
        await task
    assert await GenServer.call(server, "get") == []


# --- 11. exit signals during a call (§3.3, §3.4) -----------------------------------------


async def test_trapping_caller_gets_exit_messages_queued_during_a_call() -> None:
    """§3.4, §4.5 step 3: a caller that traps exits and whose linked process dies
    during a call gets the `Exit` message queued (it does not end the call), and the
    call still returns the server's reply."""
    me = beamlet.self()
    beamlet.process_flag(trap_exit=True)
    server = await Holder.start(None)
    doomed = beamlet.spawn_link(relay, me)

    async def helper() -> None:
        _, from_ = await beamlet.receive((HOLDING, ANY))
        ref = beamlet.monitor(doomed)
        beamlet.exit(doomed, Atom("boom"))
        await beamlet.receive(down_for(ref))
        i = info(me)
        beamlet.send(me, ("seen", i.status, i.message_queue_len))
        GenServer.reply(from_, "answer")

    h = beamlet.spawn(helper)
    assert await GenServer.call(server, ("hold", h)) == "answer"
    got = await drain()
    assert Exit(doomed, Atom("boom")) in got
    assert ("seen", "waiting", 1) in got


async def test_trapping_caller_of_a_linked_server_gets_the_reason_and_the_exit() -> None:
    """§7.4 C4 with a link: a trapping caller linked to a server killed mid-call fails
    with `killed` and finds the `Exit` message in its mailbox."""
    me = beamlet.self()
    beamlet.process_flag(trap_exit=True)
    server = await Holder.start_link(None)

    async def killer() -> None:
        await beamlet.receive((HOLDING, ANY))
        beamlet.exit(server, KILL)

    with pytest.raises(CallExit) as ei:
        await GenServer.call(server, ("hold", beamlet.spawn(killer)))
    assert ei.value.cause == KILLED
    assert await drain() == [Exit(server, KILLED)]
    assert info(me).monitors == ()


async def test_normal_exit_signal_does_not_disturb_a_non_trapping_caller() -> None:
    """§3.3: an exit signal `normal` to a process that does not trap exits is ignored,
    also while it waits in a call; the call returns its reply."""
    server = await Holder.start(None)
    me = beamlet.self()

    async def helper() -> None:
        _, from_ = await beamlet.receive((HOLDING, ANY))
        beamlet.exit(me, NORMAL)
        GenServer.reply(from_, "still here")

    assert await GenServer.call(server, ("hold", beamlet.spawn(helper))) == "still here"
    await refute_receive(ANY, timeout=0.05)


# --- 12. a dead process calls (§3.8) -----------------------------------------------------


async def test_dead_process_that_caught_terminated_cannot_call() -> None:
    """§3.8: a process killed while it waited, that catches `Terminated` and then calls
    a server, gets `Terminated` from the call (by pid, by name, with an int timeout),
    and the server never receives the request."""
    me = beamlet.self()
    server = await Holder.start([], name="call_protocol_target")
    seen: list[Any] = []
    done = asyncio.Event()

    async def stubborn() -> None:
        beamlet.send(me, "parked")
        try:
            await beamlet.receive("never")
        except Terminated:
            pass
        for target, timeout in ((server, 5.0), ("call_protocol_target", 5.0), (server, 5)):
            try:
                await GenServer.call(target, ("put", "from the dead"), timeout)
            except BaseException as e:
                seen.append(type(e))
        done.set()

    pid = beamlet.spawn(stubborn)
    await assert_receive("parked")
    beamlet.exit(pid, KILL)
    async with asyncio.timeout(5.0):
        await done.wait()
    assert seen == [Terminated, Terminated, Terminated]
    assert await GenServer.call(server, "get") == []
    assert info(server).monitored_by == ()


# --- 13. many callers ---------------------------------------------------------------------


class Batcher(GenServer[list[Any]]):
    """Holds calls, and answers all pending ones, newest first, whenever its mailbox is
    empty: replies leave in a different order than requests arrived."""

    async def init(self, arg: Any) -> list[Any]:
        return []

    async def handle_call(self, request: Any, from_: From, pending: list[Any]) -> Any:
        pending.append((from_, request))
        if info(beamlet.self()).message_queue_len:
            return NoReply(pending)
        for frm, req in reversed(pending):
            GenServer.reply(frm, (frm.pid, req))
        return NoReply([])


async def test_many_concurrent_callers_get_their_own_replies() -> None:
    """§4.5: 200 processes x 50 calls to one server that answers out of order; every
    caller gets exactly its own replies, and no monitor is left behind."""
    me = beamlet.self()
    server = await Batcher.start()
    n_callers, n_calls = 200, 50

    async def caller() -> None:
        mine = beamlet.self()
        wrong = []
        for i in range(n_calls):
            v = await GenServer.call(server, (mine, i))
            if v != (mine, (mine, i)):
                wrong.append(v)
        beamlet.send(me, ("done", mine, wrong, info(mine).message_queue_len))

    pids = {beamlet.spawn(caller) for _ in range(n_callers)}
    finished = set()
    for _ in range(n_callers):
        _, pid, wrong, queued = await assert_receive(("done", ANY, ANY, ANY), timeout=30.0)
        assert wrong == [] and queued == 0
        finished.add(pid)
    assert finished == pids
    assert info(server).monitored_by == ()


class HalfHolder(GenServer[int]):
    """Answers even requests at once, holds odd ones; tells `notify` after `total`."""

    async def init(self, arg: Any) -> int:
        self.notify, self.total = arg
        return 0

    async def handle_call(self, request: Any, from_: From, seen: int) -> Any:
        seen += 1
        if seen == self.total:
            beamlet.send(self.notify, "all_in")
        if request % 2 == 0:
            return Reply(request, seen)
        return NoReply(seen)


async def test_server_killed_with_calls_pending_fails_exactly_those() -> None:
    """§4.5 step 3, §7.4 C4: with 100 callers, of which the server answered half and
    holds the rest, killing the server fails exactly the held calls, each with
    `killed`, and the answered ones keep their replies."""
    me = beamlet.self()
    n = 100
    server = await HalfHolder.start((me, n))

    async def caller(i: int) -> None:
        try:
            v = await GenServer.call(server, i, None)
        except CallExit as e:
            beamlet.send(me, ("exit", i, e.cause, info(beamlet.self()).monitors))
        else:
            beamlet.send(me, ("ok", i, v, info(beamlet.self()).monitors))

    for i in range(n):
        beamlet.spawn(caller, i)
    await assert_receive("all_in", timeout=10.0)
    beamlet.exit(server, KILL)
    results = {}
    for _ in range(n):
        kind, i, v, monitors = await assert_receive((ANY, ANY, ANY, ANY), timeout=10.0)
        assert monitors == ()
        results[i] = (kind, v)
    assert results == {i: ("ok", i) if i % 2 == 0 else ("exit", KILLED) for i in range(n)}


# --- 14. two nodes in one OS process (§4.5 over distribution) ----------------------------


OK = Atom("ok")
ECHO = Atom("echo")
HOLD = Atom("hold")
FORWARDED = Atom("forwarded")
REPLY = Atom("reply")


class WireHolder(GenServer[Any]):
    """Holder for requests that cross the wire (atoms, not str): `(HOLD, notify)` is
    held and `notify` gets `(HOLD, From)`; anything else is echoed back."""

    async def init(self, arg: Any) -> Any:
        return None

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        if type(request) is tuple and request[0] == HOLD:
            beamlet.send(request[1], (HOLD, from_))
            return NoReply(state)
        return Reply(request, state)


async def _start_wire_holder() -> Pid | None:
    return await WireHolder.start()


async def _kill_on_hold(server: Pid) -> None:
    await beamlet.receive((HOLD, ANY))
    beamlet.exit(server, KILL)


async def test_call_to_a_pid_of_another_node_goes_through_distribution() -> None:
    """§4.5 across nodes: a process of node A calls a GenServer of node B by pid, as the
    wire gives it (request and reply cross the connection: a str stays a str between
    beamlet nodes, and A is now connected to B) and as `spawn` on B returned it; both
    work, and the server dying mid-call fails the call with its reason, leaving no
    monitor."""
    port = dist.free_port()
    async with dist.beamlet_node(port) as a, dist.beamlet_node(port) as b:
        srv = await dist.on(b, _start_wire_holder)
        assert type(srv) is Pid and srv.node == b.name

        async def client() -> list[Any]:
            me = beamlet.self()
            out: list[Any] = [list(a.d.nodes())]
            out.append(await GenServer.call(dist.wire(srv), (ECHO, "text"), 5.0))
            out.append(list(a.d.nodes()))
            out.append(await GenServer.call(srv, (ECHO, OK), 5.0))
            victim = dist.wire(await dist.on(b, _start_wire_holder))
            killer = dist.wire(b.spawn(_kill_on_hold, victim))
            try:
                await GenServer.call(victim, (HOLD, killer), 5.0)
            except CallExit as e:
                out.append(e.cause)
            out.append(info(me).monitors)
            return out

        got = await dist.on(a, client)
        assert got == [[], (ECHO, "text"), [b.name], (ECHO, OK), KILLED, ()]


async def _replier(style: str) -> None:
    """On node B: answers the From it is sent, as `style` says."""
    _, (pid, tag), value = await beamlet.receive((REPLY, (ANY, ANY), ANY))
    if style == "reply":
        GenServer.reply(From(pid, tag), value)
    else:
        beamlet.send(pid, (tag, value))


class Forwarder(GenServer[Any]):
    """Hands the From of each call to the process registered as `replier` on a node."""

    async def init(self, arg: Any) -> Any:
        return arg

    async def handle_call(self, request: Any, from_: From, node: Any) -> Any:
        beamlet.send((Atom("replier"), node), (REPLY, from_, FORWARDED))
        return NoReply(node)


@pytest.mark.parametrize("style", ["reply", "send_to_pid"])
async def test_from_forwarded_to_another_node_and_answered_there(style: str) -> None:
    """§7.5: From is opaque and may be passed to a process of another node, which
    answers with `GenServer.reply(From, V)` (to the alias, as gen:reply does) or
    old-style to the caller's pid; the reply crosses the connection and reaches the
    caller waiting on node A."""
    port = dist.free_port()
    async with dist.beamlet_node(port) as a, dist.beamlet_node(port) as b:
        b.register("replier", b.spawn(_replier, style))

        async def client() -> Any:
            server = await Forwarder.start(b.name)
            try:
                return await GenServer.call(server, "answer me", 3.0)
            except CallExit as e:
                return ("failed", e.cause)

        assert await dist.on(a, client) == FORWARDED


# --- calls served inline (scheduler._step_inline) ---------------------------------------


class _Echo(GenServer[None]):
    async def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        return Reply(request, state)


async def test_a_caller_in_a_tight_call_loop_lets_other_processes_run() -> None:
    """Calls to an idle server are served inside the caller's step, but only a batch's
    budget of them: a process that only calls still yields, so a runnable neighbour runs
    within a bounded number of calls (no starvation of processes, timers or I/O)."""
    from beamlet._core.scheduler import BUDGET

    server = await _Echo.start_link(None)
    assert server is not None
    me = beamlet.self()
    beamlet.spawn(lambda: _tick(me))  # runnable now; it runs when we yield
    info = beamlet.process_info
    for i in range(4 * BUDGET):
        assert await GenServer.call(server, i) == i
        q = info(me)
        assert q is not None
        if q.message_queue_len:
            break
    else:
        pytest.fail(f"a runnable process did not run during {4 * BUDGET} calls")
    assert i < 2 * BUDGET + 2
    await assert_receive("tick")


async def _tick(to: Pid) -> None:
    beamlet.send(to, "tick")


class _Relay(GenServer[Any]):
    """Forwards each call to the next server in the chain (None: answers itself)."""

    async def init(self, nxt: Any) -> Any:
        return nxt

    async def handle_call(self, request: Any, from_: Any, nxt: Any) -> Reply[Any]:
        if nxt is None:
            return Reply((request, beamlet.self()), nxt)
        return Reply(await GenServer.call(nxt, request), nxt)


async def test_a_chain_of_calls_deeper_than_the_inline_bound_works() -> None:
    """A calls B calls C ... (12 servers): deeper than MAX_INLINE_DEPTH, so the inner
    calls take the run queue; every answer comes back to the first caller."""
    from beamlet._core.request import MAX_INLINE_DEPTH

    nxt: Any = None
    chain = []
    for _ in range(3 * MAX_INLINE_DEPTH):
        nxt = await _Relay.start_link(nxt)
        chain.append(nxt)
    last = chain[0]
    for i in range(50):
        assert await GenServer.call(nxt, i) == (i, last)


class _Killer(GenServer[None]):
    async def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Any:
        if request == "kill caller":
            beamlet.exit(from_.pid, KILL)
            return Reply("never seen", state)
        raise RuntimeError("boom")


async def test_server_that_kills_its_caller_while_serving_it_inline() -> None:
    """The server runs inside the caller's step; killing the caller there ends the
    caller (it gets no reply) and leaves the server serving."""
    server = await _Killer.start(None)
    assert server is not None

    async def caller() -> None:
        await GenServer.call(server, "kill caller")
        beamlet.send(me, "returned")  # never reached

    me = beamlet.self()
    _pid, ref = beamlet.spawn_monitor(caller)
    down = await assert_receive(Down)
    assert (down.ref, down.reason) == (ref, KILLED)
    await refute_receive("returned", timeout=0.05)
    info = beamlet.process_info(server)
    assert info is not None and info.monitored_by == ()


async def test_server_that_crashes_while_serving_inline_fails_the_call_with_the_crash() -> None:
    server = await _Killer.start(None)
    assert server is not None
    with pytest.raises(CallExit) as e:
        await GenServer.call(server, "crash")
    assert type(e.value.cause) is Crash
    assert isinstance(e.value.cause.exception, RuntimeError)
    assert beamlet.process_info(server) is None
