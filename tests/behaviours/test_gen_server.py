"""GenServer: ports of lib/stdlib/test/gen_server_SUITE.erl and the gen_server parts of
proc_lib_SUITE.erl (docs/semantics.md §12.4), plus one test per row of §7.1 (I1-I11),
§7.4 (C1-C7), §7.7 and §7.8. Tests are named after the upstream case they port."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from gen_helpers import DummyVia, reports, wait_down

import beamlet
from beamlet import (
    ANY,
    CALLING_SELF,
    KILL,
    KILLED,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    TIMEOUT,
    Atom,
    Crash,
    Down,
    Exit,
    InvalidTimeout,
    Pid,
)
from beamlet._core.terms import ImproperList
from beamlet.behaviours import gen, gen_server
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.gen_server import (
    ALREADY_STARTED,
    BAD_RETURN_VALUE,
    CALLBACK_FAILED,
    HIBERNATE,
    NO_REPLY,
    CallExit,
    Continue,
    From,
    GenServer,
    Ignore,
    InitError,
    NoReply,
    Ok,
    Reply,
    RequestFailed,
    RequestId,
    RequestIds,
    Status,
    Stop,
    UndefinedCallbackError,
)
from beamlet.behaviours.names import Via
from beamlet.testing import assert_receive, refute_receive

STOPPED = Atom("stopped")
PROCESS = Atom("process")


class A:
    """Atoms usable as value patterns in `match` (dotted names)."""

    stopped = STOPPED
    stopped_info = Atom("stopped_info")


CRASHED = Atom("crashed")


# --- the callback module of gen_server_SUITE ------------------------------------------


class Suite(GenServer[Any]):
    """gen_server_SUITE's own callback module, translated."""

    async def init(self, arg: Any) -> Any:
        match arg:
            case []:
                return []
            case "ignore":
                return Ignore()
            case ("error", reason):
                return InitError(reason)
            case "stop":
                return Stop(STOPPED)
            case ("stop", reason):
                return Stop(reason)
            case ("timeout", t, pid):
                return Ok(("notify", pid), t)
            case ("continue_timeout", t, pid):
                return Ok(("notify", pid), Continue(("timeout", t)))
            case ("timeout_zero", pid):
                beamlet.send(beamlet.self(), ("after_event_timeout_zero", pid))
                return Ok(("notify", pid), 0)
            case "hibernate":
                return Ok([], HIBERNATE)
            case ("sleep", seconds):
                await beamlet.sleep(seconds)
                return []
            case ("continue", pid):
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return Ok([], Continue(("message", pid)))
            case ("state", state):
                return Ok(state)
            case ("return", value):
                return value
            case ("raise", exc):
                raise exc
            case ("exit", reason):
                beamlet.exit(reason)
        raise AssertionError(f"unexpected init arg {arg!r}")

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        match request:
            case "started_p":
                return Reply("ok", state)
            case "ping":
                return Reply("pong", state)
            case ("timeout", t, pid):
                return Reply("ok", ("notify", pid), t)
            case ("delayed_answer", t):
                return NoReply(("reply_to", from_, state), t)
            case ("call_within", t):
                return Reply("ok", "call_within", t)
            case "next_call":
                if state == "call_within":
                    return Reply("ok", [])
                return Reply(False, state)
            case "badreturn":
                return "badreturn"
            case "hibernate":
                return Reply(True, [], HIBERNATE)
            case "stop":
                return Stop(STOPPED, state, "ok")
            case "crash":
                beamlet.exit(CRASHED)
            case "raise":
                raise ValueError("boom")
            case "exit_shutdown":
                beamlet.exit(SHUTDOWN)
            case "stop_shutdown":
                return Stop(SHUTDOWN, state)
            case "shutdown_reason":
                beamlet.exit((SHUTDOWN, Atom("reason")))
            case "stop_shutdown_reason":
                return Stop((SHUTDOWN, Atom("stop_reason")), state)
            case "stop_normal_noreply":
                return Stop(NORMAL, state)
            case ("continue_reply", pid):
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return Reply("ok", state, Continue(("message", pid)))
            case ("continue_noreply", pid):
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return NoReply(state, Continue(("message", pid, from_)))
            case "get":
                return Reply(state, state)
        raise AssertionError(f"unexpected call {request!r}")

    async def handle_cast(self, request: Any, state: Any) -> Any:
        match request:
            case (pid, "handle_cast"):
                beamlet.send(pid, (beamlet.self(), "handled_cast"))
                return NoReply(state)
            case (pid, "delayed_cast", t):
                return NoReply(("delayed_cast", pid), t)
            case (pid, "stop"):
                return Stop((pid, STOPPED), state)
            case ("continue_noreply", pid):
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return NoReply(state, Continue(("message", pid)))
            case ("timeout", t, pid):
                return NoReply(("notify", pid), t)
            case "hibernate_now":
                return NoReply([], HIBERNATE)
        raise AssertionError(f"unexpected cast {request!r}")

    async def handle_info(self, msg: Any, state: Any) -> Any:
        match msg, state:
            case (beamlet.TIMEOUT, ("notify", pid)):
                beamlet.send(pid, (beamlet.self(), "event_timeout"))
                return NoReply(state)
            case (("after_event_timeout_zero", pid), _):
                beamlet.send(pid, (beamlet.self(), "after_event_timeout_zero"))
                return NoReply(state)
            case (beamlet.TIMEOUT, ("reply_to", from_, inner)):
                GenServer.reply(from_, "delayed")
                return NoReply(inner)
            case (beamlet.TIMEOUT, "call_within"):
                return NoReply([])
            case (beamlet.TIMEOUT, ("delayed_cast", pid)):
                beamlet.send(pid, (beamlet.self(), "delayed"))
                return NoReply([])
            case (beamlet.TIMEOUT, ("delayed_info", pid)):
                beamlet.send(pid, (beamlet.self(), "delayed_info"))
                return NoReply([])
            case ((pid, "handle_info"), _):
                beamlet.send(pid, (beamlet.self(), "handled_info"))
                return NoReply([])
            case ((pid, "delayed_info", t), _):
                return NoReply(("delayed_info", pid), t)
            case ((pid, "stop"), _):
                return Stop((pid, Atom("stopped_info")), state)
            case (("after_continue", pid), _):
                beamlet.send(pid, (beamlet.self(), "after_continue"))
                beamlet.send(pid, (beamlet.self(), "ack"))
                return NoReply(state)
            case (("continue_noreply", pid), _):
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return NoReply(state, Continue(("message", pid)))
            case (("continue_continue", pid), _):
                return NoReply(state, Continue(("continue", pid)))
            case ("continue_stop", _):
                return NoReply(state, Continue("stop"))
            case ("hibernate_now", _):
                return NoReply([], HIBERNATE)
            case ("call_undef_fun", _):
                undefined_function()  # type: ignore[name-defined]  # noqa: F821
        return NoReply(state)

    async def handle_continue(self, arg: Any, state: Any) -> Any:
        match arg:
            case ("timeout", t):
                return NoReply(state, t)
            case ("continue", pid):
                beamlet.send(pid, (beamlet.self(), "before_continue"))
                beamlet.send(beamlet.self(), ("after_continue", pid))
                return NoReply(state, Continue(("message", pid)))
            case "stop":
                return Stop(NORMAL, state)
            case ("message", pid):
                beamlet.send(pid, (beamlet.self(), "continue"))
                return NoReply(state)
            case ("message", pid, from_):
                beamlet.send(pid, (beamlet.self(), "continue"))
                GenServer.reply(from_, "ok")
                return NoReply(state)
        raise AssertionError(f"unexpected continue {arg!r}")

    async def terminate(self, reason: Any, state: Any) -> None:
        match reason, state:
            case ((pid, A.stopped), _):
                beamlet.send(pid, (beamlet.self(), "stopped"))
            case ((pid, A.stopped_info), _):
                beamlet.send(pid, (beamlet.self(), "stopped_info"))
            case (_, "crash_terminate"):
                beamlet.exit((Atom("crash"), Atom("terminate")))
            case (_, ("tell", pid)):
                beamlet.send(pid, ("terminate", reason))

    def format_status(self, status: Status) -> Status:
        state = status.get("state")
        if callable(state):
            return state(status)  # type: ignore[no-any-return]
        return {**status, "state": ("formatted", state)}


def exit_with(reason: Any) -> Any:
    return lambda m: type(m) is Exit and m.reason == reason


def exit_from(pid: Pid) -> Any:
    return lambda m: type(m) is Exit and m.pid == pid


def down_for(ref: Any) -> Any:
    return lambda m: type(m) is Down and m.ref == ref


def is_from(pid: Pid) -> Any:
    return lambda m: type(m) is tuple and len(m) == 2 and m[0] == pid


async def read_replies(pid: Pid) -> list[Any]:
    """Wait for the server's `ack`, then take every message from it (upstream
    read_replies/1)."""
    await assert_receive((pid, "ack"))
    out = []
    while (m := await beamlet.receive(timeout=0, default=None)) is not None:
        out.append(m)
    return out


# --- start ------------------------------------------------------------------------------


async def test_start() -> None:
    beamlet.process_flag(trap_exit=True)
    # anonymous
    pid0 = await Suite.start([])
    assert await GenServer.call(pid0, "started_p") == "ok"
    assert await GenServer.call(pid0, "stop") == "ok"
    await wait_down(pid0)
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid0, "started_p", 1)
    assert ei.value.cause == NOPROC
    # anonymous with ignore, with an error, with stop
    assert await Suite.start("ignore") is None
    with pytest.raises(StartError) as se:
        await Suite.start(("error", Atom("foobar")))
    assert se.value.reason == Atom("foobar")
    with pytest.raises(StartError) as se:
        await Suite.start("stop")
    assert se.value.reason == STOPPED
    # anonymous linked
    pid1 = await Suite.start_link([])
    assert await GenServer.call(pid1, "started_p") == "ok"
    assert await GenServer.call(pid1, "stop") == "ok"
    await assert_receive(Exit(pid1, STOPPED))
    # local register, then linked
    for start in (Suite.start, Suite.start_link):
        pid2 = await start([], name="my_test_name")
        assert pid2 is not None
        assert await GenServer.call("my_test_name", "started_p") == "ok"
        with pytest.raises(StartError) as se:
            await Suite.start([], name="my_test_name")
        assert se.value.reason == (ALREADY_STARTED, pid2)
        assert await GenServer.call("my_test_name", "stop") == "ok"
        await wait_down(pid2)
        with pytest.raises(CallExit) as ei:
            await GenServer.call(pid2, "started_p", 0.01)
        assert ei.value.cause == NOPROC
    await assert_receive(exit_with(STOPPED))
    # via register, then linked
    for start in (Suite.start, Suite.start_link):
        via = Via(DummyVia(), "my_test_name")
        pid6 = await start([], name=via)
        assert await GenServer.call(via, "started_p") == "ok"
        with pytest.raises(StartError) as se:
            await Suite.start([], name=via)
        assert se.value.reason == (ALREADY_STARTED, pid6)
        assert await GenServer.call(via, "stop") == "ok"
        await wait_down(pid6)
    await assert_receive(exit_with(STOPPED))
    await refute_receive(ANY, timeout=0.05)


@pytest.mark.virtual_time
async def test_start_event_timeout() -> None:
    """Adapted: OTP 28's `{timeout, T, Msg}` event timeouts are not implemented; this
    checks the plain idle timeout of §7.3.1 from init and from a continue, fired and
    interrupted."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    for arg in (("timeout", 0.5, me), ("continue_timeout", 0.5, me)):
        for interrupt in (False, True):
            pid = await Suite.start_link(arg)
            if interrupt:
                assert await GenServer.call(pid, "ping") == "pong"
                await refute_receive((pid, "event_timeout"), timeout=1.0)
            else:
                await assert_receive((pid, "event_timeout"), timeout=1.0)
            assert await GenServer.call(pid, "stop") == "ok"
            await assert_receive(exit_from(pid))


async def test_start_event_timeout_zero() -> None:
    """Adapted (§7.3.1): a zero idle timeout fires only if the mailbox is empty, so the
    message init sent itself is handled first, then the timeout fires."""
    beamlet.process_flag(trap_exit=True)
    me = beamlet.self()
    pid = await Suite.start_link(("timeout_zero", me))
    assert await assert_receive(is_from(pid)) == (pid, "after_event_timeout_zero")
    await refute_receive(is_from(pid), timeout=0.05)  # the message cancelled the timeout
    assert await GenServer.call(pid, "stop") == "ok"
    await assert_receive(exit_from(pid))
    # nothing queued: the zero timeout fires at once
    pid = await Suite.start_link(("timeout", 0, me))
    await assert_receive((pid, "event_timeout"))
    assert await GenServer.call(pid, "stop") == "ok"


@pytest.mark.virtual_time
async def test_loop_start_fail() -> None:
    beamlet.process_flag(trap_exit=True)
    cases: list[tuple[Any, Any, Any]] = [
        (("return", Stop(Atom("failed_to_start"))), Atom("failed_to_start"), None),
        (("return", Ignore()), None, None),
        (("return", Reply(4711, None)), (BAD_RETURN_VALUE, Reply(4711, None)), None),
        (("raise", ValueError("bailout")), ValueError, None),
        (("exit", Atom("bailout")), Atom("bailout"), None),
        (("sleep", 1.0), TIMEOUT, 0.2),
    ]
    for start in (Suite.start, Suite.start_link):
        for arg, expected, timeout in cases:
            for _ in range(5):
                if expected is None:
                    assert await start(arg, name="lsf", timeout=timeout) is None
                    continue
                with pytest.raises(StartError) as se:
                    await start(arg, name="lsf", timeout=timeout)
                reason = se.value.reason
                if expected is ValueError:
                    assert isinstance(reason, Crash)
                    assert isinstance(reason.exception, ValueError)
                else:
                    assert reason == expected
                assert beamlet.whereis("lsf") is None
    await refute_receive(ANY, timeout=0.05)  # every EXIT was consumed (§7.1.3)


# --- §7.1 rows --------------------------------------------------------------------------


async def test_init_row_I1_ok() -> None:
    pid = await Suite.start_link(("state", 7))
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    assert await GenServer.call(pid, "get") == 7


async def test_init_row_I1_bare_state_and_state_that_looks_like_a_result() -> None:
    pid = await Suite.start(("return", {"a": 1}))
    assert await GenServer.call(pid, "get") == {"a": 1}
    pid = await Suite.start(("state", Ignore()))  # wrapped in Ok: a state, not an ignore
    assert await GenServer.call(pid, "get") == Ignore()


@pytest.mark.virtual_time
async def test_init_row_I2_timeout() -> None:
    pid = await Suite.start(("timeout", 2.0, beamlet.self()))
    await refute_receive(ANY, timeout=1.9)
    await assert_receive((pid, "event_timeout"), timeout=0.2)


async def test_init_row_I3_hibernate() -> None:
    pid = await Suite.start("hibernate")
    assert await GenServer.call(pid, "get") == []


async def test_init_row_I4_continue_before_any_message() -> None:
    me = beamlet.self()
    pid = await Suite.start(("continue", me))
    # init sent itself ("after_continue", me) first, yet handle_continue runs before it
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]


async def test_init_row_I5_ignore() -> None:
    beamlet.process_flag(trap_exit=True)
    assert await Suite.start_link("ignore", name="i5") is None
    assert beamlet.whereis("i5") is None
    await refute_receive(ANY, timeout=0.05)  # Exit(pid, normal) consumed


async def test_init_row_I6_stop() -> None:
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError) as se:
        await Suite.start_link(("stop", Atom("bad")))
    assert se.value.reason == Atom("bad")
    await refute_receive(ANY, timeout=0.05)


async def test_init_row_I6_stop_normal_does_not_kill_the_starter() -> None:
    with pytest.raises(StartError) as se:  # 7.1.2: {stop, normal} -> {error, normal}
        await Suite.start_link(("stop", NORMAL))
    assert se.value.reason == NORMAL


async def test_init_row_I7_init_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StartError) as se:  # non-trapping starter survives: exit is normal
        await Suite.start_link(("error", Atom("foobar")), name="i7")
    assert se.value.reason == Atom("foobar")
    assert beamlet.whereis("i7") is None
    assert reports(caplog, "GenServer init failed") == []


async def test_init_row_I8_raise() -> None:
    async def starter() -> None:
        await Suite.start_link(("raise", KeyError("k")))

    _, ref = beamlet.spawn_monitor(starter)
    down = await assert_receive(down_for(ref))
    # 7.1.2: a linked starter that does not trap exits is killed with the crash reason
    assert isinstance(down.reason, Crash) and isinstance(down.reason.exception, KeyError)
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError) as se:
        await Suite.start_link(("raise", KeyError("k")))
    assert isinstance(se.value.reason, Crash)
    assert isinstance(se.value.reason.stacktrace, tuple)


async def test_init_row_I9_exit() -> None:
    with pytest.raises(StartError) as se:
        await Suite.start(("exit", Atom("bailout")))
    assert se.value.reason == Atom("bailout")


async def test_init_row_I10_bad_return() -> None:
    with pytest.raises(StartError) as se:
        await Suite.start(("return", NoReply(1)))
    assert se.value.reason == (BAD_RETURN_VALUE, NoReply(1))
    with pytest.raises(StartError) as se:
        await Suite.start(("return", Ok(1, "not an action")))
    assert se.value.reason[0] == BAD_RETURN_VALUE


@pytest.mark.virtual_time
async def test_init_row_I11_start_timeout() -> None:
    with pytest.raises(StartError) as se:
        await Suite.start_link(("sleep", 10.0), name="i11", timeout=0.1)
    assert se.value.reason == TIMEOUT
    assert beamlet.whereis("i11") is None  # it was killed, its name released
    await refute_receive(ANY, timeout=0.05)


async def test_start_link_messages_before_init_completes_are_kept() -> None:
    """§7.1.5: the link exists and init has run; early messages are processed after."""
    beamlet.process_flag(trap_exit=True)
    pid = await Suite.start_link(("state", ("tell", beamlet.self())))
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]


# --- calls (§7.4) ----------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_call() -> None:
    beamlet.process_flag(trap_exit=True)
    await Suite.start_link([], name="my_test_name")
    assert await GenServer.call("my_test_name", "started_p") == "ok"
    assert await GenServer.call("my_test_name", ("delayed_answer", 0.001)) == "delayed"
    # two requests within a specified time
    assert await GenServer.call("my_test_name", ("call_within", 1.0)) == "ok"
    await beamlet.sleep(0.5)
    assert await GenServer.call("my_test_name", "next_call") == "ok"
    assert await GenServer.call("my_test_name", ("call_within", 1.0)) == "ok"
    await beamlet.sleep(1.5)
    assert await GenServer.call("my_test_name", "next_call") is False
    # timeout call
    assert await GenServer.call("my_test_name", ("delayed_answer", 0.001), 0.03) == "delayed"
    with pytest.raises(CallExit) as ei:
        await GenServer.call("my_test_name", ("delayed_answer", 0.03), 0.001)
    assert ei.value.cause == TIMEOUT
    # bad return value in the gen_server loop from handle_call
    with pytest.raises(CallExit) as ei:
        await GenServer.call("my_test_name", "badreturn")
    assert ei.value.cause == (BAD_RETURN_VALUE, "badreturn")
    await refute_receive(Down)


async def test_calling_self() -> None:
    for timeout in (5.0, None):
        with pytest.raises(CallExit) as ei:
            await GenServer.call(beamlet.self(), "oops", timeout)
        assert ei.value.cause == CALLING_SELF
    beamlet.register("me")
    with pytest.raises(CallExit) as ei:
        await GenServer.call("me", "oops")
    assert ei.value.cause == CALLING_SELF


async def echo_loop() -> None:
    while True:
        m = await beamlet.receive(gen.is_call)  # {'$gen_call', From, Request}
        GenServer.reply(From(*m[1]), m[2])


COMPARED = [0]


@dataclass(frozen=True, eq=False)
class Probe:
    """A queued message that counts how often a receive pattern compares it."""

    def __eq__(self, other: object) -> bool:
        COMPARED[0] += 1
        return False

    def __hash__(self) -> int:
        return 0


async def test_call_with_huge_message_queue() -> None:
    """A call looks only at messages newer than its request (§2.4, §4.5): 100,000
    unrelated messages are never examined, and the call stays as fast."""
    pid = beamlet.spawn_link(echo_loop)
    calls = 2000

    async def many() -> float:
        t0 = time.perf_counter()
        for i in range(calls):
            assert await GenServer.call(pid, ("ultimate_answer", i), None) == (
                "ultimate_answer",
                i,
            )
        return time.perf_counter() - t0

    empty = await many()
    me = beamlet.self()
    probe = Probe()
    for n in range(100_000):
        beamlet.send(me, (probe, n))  # shaped like a reply: (tag, value)
    COMPARED[0] = 0
    huge = await many()
    assert COMPARED[0] == 0, f"the queued messages were compared {COMPARED[0]} times"
    # A rescan would cost 2e8 comparisons (~1000x); 50x leaves room for a noisy machine.
    assert (huge + 0.001) / (empty + 0.001) < 50, (empty, huge)
    assert beamlet.process_info(me).message_queue_len == 100_000  # type: ignore[union-attr]


async def test_reply_by_alias_with_payload() -> None:
    """`reply/2` works with any From whose tag is `[alias | Alias]`, from any process:
    the reply goes to the alias, whatever the pid (gen:reply/2)."""
    alias = beamlet.alias()
    tag = gen.alias_tag(alias)
    value = beamlet.make_ref()

    async def replier() -> None:
        GenServer.reply(From(None, tag), value)

    beamlet.spawn_link(replier)
    assert await assert_receive((tag, ANY)) == (tag, value)


async def test_reply_with_a_plain_ref_tag_goes_to_the_pid() -> None:
    """gen:reply/2: a tag that is not `[alias | Ref]` (a plain Ref, as OTP 23 and older
    send, or any term) is answered at the caller's pid, even if the Ref is an alias of
    another process; an `[[alias | Ref] | Extra]` tag goes to the alias."""
    me = beamlet.self()
    other_alias: list[Any] = []

    async def holder() -> None:
        other_alias.append(beamlet.alias())
        beamlet.send(me, "ready")
        await beamlet.receive("stop")

    h = beamlet.spawn_link(holder)
    await assert_receive("ready")
    plain = other_alias[0]  # an active alias, but of the holder: not where gen:reply sends
    GenServer.reply(From(me, plain), "to the pid")
    assert await assert_receive((plain, ANY)) == (plain, "to the pid")
    GenServer.reply(From(me, Atom("rex")), "atom tag")
    assert await assert_receive((Atom("rex"), ANY)) == (Atom("rex"), "atom tag")
    mine = beamlet.alias()
    nested = ImproperList((gen.alias_tag(mine),), Atom("label"))
    GenServer.reply(From(None, nested), "nested")
    assert await assert_receive((nested, ANY)) == (nested, "nested")
    beamlet.send(h, "stop")
    await refute_receive(ANY, timeout=0.01)


async def test_call_row_C1_reply() -> None:
    pid = await Suite.start([])
    assert await GenServer.call(pid, "ping") == "pong"
    await refute_receive(ANY, timeout=0.05)  # no DOWN, no reply left behind


async def test_call_row_C2_dead_pid() -> None:
    pid = await Suite.start([])
    await GenServer.stop(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid, "ping")
    assert ei.value.cause == NOPROC
    assert ei.value.reason == (NOPROC, ("GenServer.call", pid, "ping", 5.0))
    await refute_receive(ANY, timeout=0.05)


async def test_call_row_C3_unregistered_name() -> None:
    with pytest.raises(CallExit) as ei:
        await GenServer.call("nobody", "ping")
    assert ei.value.reason == (NOPROC, ("GenServer.call", "nobody", "ping", 5.0))
    with pytest.raises(CallExit) as ei:
        await GenServer.call(Via(DummyVia(), "nobody"), "ping")
    assert ei.value.cause == NOPROC


async def test_call_row_C4_server_dies_before_replying() -> None:
    beamlet.process_flag(trap_exit=True)
    for request, cause in [
        ("crash", CRASHED),
        ("stop_normal_noreply", NORMAL),  # §7.3.5: even with reason normal
        ("stop_shutdown", SHUTDOWN),
    ]:
        pid = await Suite.start([])
        with pytest.raises(CallExit) as ei:
            await GenServer.call(pid, request)
        assert ei.value.cause == cause
    pid = await Suite.start([])
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid, "raise")
    assert isinstance(ei.value.cause, Crash) and isinstance(ei.value.cause.exception, ValueError)
    await refute_receive(ANY, timeout=0.05)


@pytest.mark.virtual_time
async def test_call_row_C5_timeout_late_reply_is_dropped() -> None:
    pid = await Suite.start([])
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid, ("delayed_answer", 2.0), 1.0)
    assert ei.value.reason == (TIMEOUT, ("GenServer.call", pid, ("delayed_answer", 2.0), 1.0))
    await refute_receive(ANY, timeout=5.0)  # the late reply hit a dead alias
    assert await GenServer.call(pid, "started_p") == "ok"  # the server is unaffected


async def test_call_row_C5_uncaught_timeout_ends_the_caller() -> None:
    pid = await Suite.start([])

    async def caller() -> None:
        await GenServer.call(pid, ("delayed_answer", 1.0), 0.01)

    _, ref = beamlet.spawn_monitor(caller)
    down = await assert_receive(down_for(ref))
    assert down.reason == (TIMEOUT, ("GenServer.call", pid, ("delayed_answer", 1.0), 0.01))


async def test_call_row_C6_calling_self() -> None:
    with pytest.raises(CallExit) as ei:
        await GenServer.call(beamlet.self(), "x")
    assert ei.value.reason == (CALLING_SELF, ("GenServer.call", beamlet.self(), "x", 5.0))
    await refute_receive(ANY, timeout=0.05)


async def test_call_row_C7_invalid_timeout() -> None:
    got: list[Any] = []

    async def spy() -> None:
        got.append(await beamlet.receive())

    pid = beamlet.spawn(spy)
    for bad in (-1, 0, float("nan"), float("inf"), "5", True):
        with pytest.raises(InvalidTimeout):
            await GenServer.call(pid, "x", bad)
    await refute_receive(ANY, timeout=0.05)
    assert got == []  # nothing was sent


# --- cast, info (§7.6, §7.2) ------------------------------------------------------------


@pytest.mark.virtual_time
async def test_cast() -> None:
    me = beamlet.self()
    pid = await Suite.start([], name="my_test_name")
    assert await GenServer.call("my_test_name", "started_p") == "ok"
    assert GenServer.cast("my_test_name", (me, "handle_cast")) is None
    await assert_receive((pid, "handled_cast"))
    GenServer.cast("my_test_name", (me, "delayed_cast", 0.001))
    await assert_receive((pid, "delayed"))
    GenServer.cast("my_test_name", (me, "stop"))
    await assert_receive((pid, "stopped"))
    # casts never fail
    GenServer.cast(pid, "anything")
    GenServer.cast("nobody", "anything")
    GenServer.cast(Via(DummyVia(), "nobody"), "anything")
    GenServer.cast(("nobody", "other@host"), "anything")


async def test_cast_fast() -> None:
    """Adapted: upstream checks a cast to an unreachable node returns at once. Without a
    connection the cast is dropped; it must not block or raise."""
    t0 = time.perf_counter()
    GenServer.cast(("hopp", "hopp@nohost"), "hopp")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.virtual_time
async def test_info() -> None:
    me = beamlet.self()
    pid = await Suite.start([], name="my_test_name")
    beamlet.send(pid, (me, "handle_info"))
    await assert_receive((pid, "handled_info"))
    beamlet.send(pid, (me, "delayed_info", 0.001))
    await assert_receive((pid, "delayed_info"))
    beamlet.send(pid, (me, "stop"))
    await assert_receive((pid, "stopped_info"))


async def test_abcast() -> None:
    me = beamlet.self()
    pid = await Suite.start([], name="my_test_name")
    assert GenServer.abcast("my_test_name", (me, "handle_cast")) is None
    await assert_receive((pid, "handled_cast"))
    GenServer.abcast("my_test_name", (me, "stop"), nodes=[beamlet.node_name()])
    await assert_receive((pid, "stopped"))


async def test_continue() -> None:
    me = beamlet.self()
    pid = await Suite.start_link(("continue", me))
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]
    await GenServer.call(pid, ("continue_reply", me))
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]
    await GenServer.call(pid, ("continue_noreply", me))
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]
    GenServer.cast(pid, ("continue_noreply", me))
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]
    beamlet.send(pid, ("continue_noreply", me))
    assert await read_replies(pid) == [(pid, "continue"), (pid, "after_continue")]
    beamlet.send(pid, ("continue_continue", me))
    assert await read_replies(pid) == [
        (pid, "before_continue"),
        (pid, "continue"),
        (pid, "after_continue"),
    ]
    ref = beamlet.monitor(pid)
    beamlet.send(pid, "continue_stop")
    assert await assert_receive(Down) == Down(ref, Atom("process"), pid, NORMAL)


async def test_hibernate() -> None:
    """HIBERNATE is accepted from init, calls, casts and infos; state and mailbox are
    kept (§7.3.3)."""
    beamlet.process_flag(trap_exit=True)
    pid0 = await Suite.start_link("hibernate", name="my_test_name_hibernate0")
    assert await GenServer.call("my_test_name_hibernate0", "stop") == "ok"
    await assert_receive(Exit(pid0, STOPPED))
    pid = await Suite.start_link([], name="my_test_name_hibernate")
    assert await GenServer.call(pid, "hibernate") is True
    GenServer.cast(pid, "hibernate_now")
    beamlet.send(pid, "hibernate_now")
    beamlet.send(pid, (beamlet.self(), "handle_info"))  # queued behind: still handled
    await assert_receive((pid, "handled_info"))
    assert await GenServer.call(pid, "started_p") == "ok"
    assert await GenServer.call(pid, "stop") == "ok"
    await assert_receive(Exit(pid, STOPPED))


# --- stop (§7.7) -----------------------------------------------------------------------


async def test_stop1() -> None:
    pid = await Suite.start([])
    assert await GenServer.stop(pid) is None
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(pid)
    assert ei.value.cause == NOPROC


async def test_stop2() -> None:
    pid = await Suite.start([])
    await GenServer.stop(pid, Atom("other_reason"), None)
    assert not beamlet.is_alive(pid)


async def test_stop3() -> None:
    pid = await Suite.start([])
    with pytest.raises(InvalidTimeout):
        await GenServer.stop(pid, Atom("other_reason"), "invalid_timeout")  # type: ignore[arg-type]
    assert beamlet.is_alive(pid)
    await GenServer.stop(pid)
    assert not beamlet.is_alive(pid)


async def test_stop4() -> None:
    pid = await Suite.start([], name="to_stop")
    await GenServer.stop("to_stop")
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.stop("to_stop")
    assert ei.value.cause == NOPROC


async def test_stop5() -> None:
    pid = await Suite.start([], name="to_stop")
    await GenServer.stop(("to_stop", beamlet.node_name()))
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(("to_stop", beamlet.node_name()))
    assert ei.value.cause == NOPROC


async def test_stop7() -> None:
    via = Via(DummyVia(), "to_stop")
    pid = await Suite.start([], name=via)
    await GenServer.stop(via)
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(via)
    assert ei.value.cause == NOPROC


async def test_stop_reports_another_reason_when_terminate_fails() -> None:
    """§7.7 row 3: terminate raised, so the server ended with another reason."""
    pid = await Suite.start(("state", "crash_terminate"))
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(pid)
    assert ei.value.cause == (Atom("crash"), Atom("terminate"))


@pytest.mark.virtual_time
async def test_stop_timeout() -> None:
    class Slow(GenServer[None]):
        async def init(self, arg: Any) -> None:
            return None

        async def terminate(self, reason: Any, state: None) -> None:
            await beamlet.sleep(10)

    pid = await Slow.start()
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(pid, NORMAL, 1.0)
    assert ei.value.cause == TIMEOUT
    await refute_receive(ANY, timeout=0.05)
    assert await wait_down(pid, timeout=20) == NORMAL


# --- crashes and reports (§7.10) --------------------------------------------------------


async def test_crash(caplog: pytest.LogCaptureFixture) -> None:
    beamlet.process_flag(trap_exit=True)
    # these crashes generate no crash report
    for request, reason in [
        ("shutdown_reason", (SHUTDOWN, Atom("reason"))),
        ("stop_shutdown_reason", (SHUTDOWN, Atom("stop_reason"))),
        ("exit_shutdown", SHUTDOWN),
        ("stop_shutdown", SHUTDOWN),
    ]:
        pid = await Suite.start_link(("state", "state1"))
        with pytest.raises(CallExit) as ei:
            await GenServer.call(pid, request)
        assert ei.value.cause == reason
        await assert_receive(Exit(pid, reason))
    assert reports(caplog) == []
    beamlet.process_flag(trap_exit=False)
    # this one generates exactly one report
    pid4 = await Suite.start(("state", "state4"))
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid4, "crash")
    assert ei.value.cause == CRASHED
    await wait_down(pid4)
    [rep] = reports(caplog)
    assert rep["pid"] == pid4
    assert rep["last_message"] == "crash"
    assert rep["state"] == ("formatted", "state4")
    assert rep["reason"] == CRASHED
    assert rep["client"] == beamlet.self()
    # an exception: its traceback is in the report
    pid5 = await Suite.start(("state", "s5"))
    with pytest.raises(CallExit):
        await GenServer.call(pid5, "raise")
    await wait_down(pid5)
    rep = reports(caplog)[-1]
    assert isinstance(rep["reason"], Crash)
    assert "ValueError: boom" in rep["traceback"] and "handle_call" in rep["traceback"]
    assert len(reports(caplog)) == 2


async def test_otp_5854() -> None:
    """§7.1.2-§7.1.3 and §7.8 (the case this row stands for in §12.4): a trapping
    starter gets the error and no EXIT; a trapping server whose parent exits runs
    terminate and exits with the parent's reason; a non-trapping one dies at once."""
    me = beamlet.self()
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError):
        await Suite.start_link(("stop", Atom("no")))
    await refute_receive(Exit, timeout=0.05)

    class Trapper(Suite):
        async def init(self, arg: Any) -> Any:
            beamlet.process_flag(trap_exit=True)
            return ("tell", arg)

    async def parent(trap: bool, reason: Any) -> None:
        cls = Trapper if trap else Suite
        pid = await cls.start_link(me if trap else ("state", ("tell", me)))
        beamlet.send(me, ("server", pid))
        await beamlet.receive("go")
        beamlet.exit(reason)

    for trap in (True, False):
        p = beamlet.spawn(parent, trap, Atom("parent_died"))
        _, server = await assert_receive(("server", ANY))
        beamlet.send(p, "go")
        assert await wait_down(server) == Atom("parent_died")
        if trap:
            await assert_receive(("terminate", Atom("parent_died")))
        else:
            await refute_receive(("terminate", ANY))
    # a parent exiting normal stops a trapping server (terminate runs) ...
    p = beamlet.spawn(parent, True, NORMAL)
    _, server = await assert_receive(("server", ANY))
    beamlet.send(p, "go")
    assert await wait_down(server) == NORMAL
    await assert_receive(("terminate", NORMAL))


async def test_otp_7669() -> None:
    """If init fails (ignore or stop), the name is not registered when start returns."""
    for _ in range(100):
        assert await Suite.start("ignore", name="otp_7669") is None
        assert beamlet.whereis("otp_7669") is None
        assert await Suite.start_link("ignore", name="otp_7669") is None
        assert beamlet.whereis("otp_7669") is None
        via = Via(DummyVia(), "otp_7669")
        assert await Suite.start("ignore", name=via) is None
        assert via.registry.whereis_name("otp_7669") is None
    for _ in range(10):
        with pytest.raises(StartError):
            await Suite.start("stop", name="otp_7669")
        assert beamlet.whereis("otp_7669") is None


# --- format_status, get_state, replace_state (§7.9) -------------------------------------


async def test_call_format_status() -> None:
    me = beamlet.self()
    pid = await Suite.start_link(("state", "s"), name="call_format_status")
    st = await gen_server.get_status("call_format_status")
    assert (st.pid, st.module, st.parent, st.status) == (pid, Suite, me, "running")
    assert st.name == "call_format_status"
    assert st.state == ("formatted", "s")
    pid3 = await Suite.start_link(("state", "s"))
    st = await gen_server.get_status(pid3)
    assert st.name is None and st.state == ("formatted", "s")

    class Plain(GenServer[str]):
        async def init(self, arg: str) -> str:
            return arg

    pid4 = await Plain.start_link("raw")
    assert (await gen_server.get_status(pid4)).state == "raw"


async def test_error_format_status(caplog: pytest.LogCaptureFixture) -> None:
    beamlet.process_flag(trap_exit=True)
    state = "called format_status"
    pid = await Suite.start_link(("state", state))
    with pytest.raises(CallExit):
        await GenServer.call(pid, "crash")
    await assert_receive(Exit(pid, CRASHED))
    [rep] = reports(caplog)
    assert rep["state"] == ("formatted", state)
    assert rep["client"] == beamlet.self()


async def test_terminate_crash_format(caplog: pytest.LogCaptureFixture) -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await Suite.start_link(("state", "crash_terminate"))
    assert await GenServer.call(pid, "stop") == "ok"  # the reply is sent all the same
    await assert_receive(Exit(pid, (Atom("crash"), Atom("terminate"))))
    [rep] = reports(caplog)
    assert rep["last_message"] == "stop"
    assert rep["state"] == ("formatted", "crash_terminate")
    assert rep["reason"] == (Atom("crash"), Atom("terminate"))


async def test_crash_in_format_status(caplog: pytest.LogCaptureFixture) -> None:
    beamlet.process_flag(trap_exit=True)

    def bad(status: Status) -> Status:
        beamlet.exit((Atom("crash"), Atom("format_status")))
        raise AssertionError

    pid = await Suite.start_link(("state", bad))
    with pytest.raises(CallExit):  # exit() inside format_status is a ProcessExit...
        await gen_server.get_status(pid)
    pid = await Suite.start_link(("state", lambda s: 1 / 0))
    st = await gen_server.get_status(pid)
    assert st.state == "Suite.format_status crashed"
    assert await GenServer.call(pid, "stop") == "ok"
    await assert_receive(Exit(pid, STOPPED))
    rep = reports(caplog)[-1]
    assert rep["state"] == "Suite.format_status crashed"
    assert rep["reason"] == STOPPED


async def test_throw_in_format_status(caplog: pytest.LogCaptureFixture) -> None:
    """Python has no throw; a different exception type stands in for it."""
    beamlet.process_flag(trap_exit=True)

    def bad(status: Status) -> Status:
        raise LookupError("thrown")

    pid = await Suite.start_link(("state", bad))
    assert (await gen_server.get_status(pid)).state == "Suite.format_status crashed"
    assert await GenServer.call(pid, "stop") == "ok"
    await assert_receive(Exit(pid, STOPPED))
    assert reports(caplog)[-1]["state"] == "Suite.format_status crashed"


async def test_format_all_status(caplog: pytest.LogCaptureFixture) -> None:
    """format_status can rewrite state, message and reason of reports."""
    beamlet.process_flag(trap_exit=True)

    def wrap(status: Status) -> Status:
        return {k: (k, v) for k, v in status.items()}  # type: ignore[return-value]

    pid = await Suite.start_link(("state", wrap))
    assert await GenServer.call(pid, "started_p") == "ok"
    assert (await gen_server.get_status(pid)).state == ("state", wrap)
    assert await GenServer.call(pid, "stop") == "ok"
    await assert_receive(Exit(pid, STOPPED))
    rep = reports(caplog)[-1]
    assert rep["last_message"] == ("message", "stop")
    assert rep["state"] == ("state", wrap)
    assert rep["reason"] == ("reason", STOPPED)


async def test_get_state() -> None:
    state = beamlet.self()
    await Suite.start_link(("state", state), name="get_state")
    assert await gen_server.get_state("get_state") == state
    assert await gen_server.get_state("get_state", 5) == state
    pid = await Suite.start_link(("state", state))
    assert await gen_server.get_state(pid) == state


async def test_replace_state() -> None:
    state = beamlet.self()
    await Suite.start_link(("state", state), name="replace_state")
    assert await gen_server.get_state("replace_state") == state
    assert await gen_server.replace_state("replace_state", lambda _: "replaced") == "replaced"
    assert await gen_server.get_state("replace_state") == "replaced"
    pid = await Suite.start_link(("state", "replaced"))
    assert await gen_server.replace_state(pid, lambda s: s + " again", 5) == "replaced again"

    def fail(s: Any) -> Any:
        raise RuntimeError("fail")

    with pytest.raises(CallExit) as ei:  # no change if the replace function crashes
        await gen_server.replace_state(pid, fail)
    assert ei.value.cause[0] == CALLBACK_FAILED
    assert isinstance(ei.value.cause[1], Crash)
    assert await gen_server.get_state(pid) == "replaced again"


# --- undefined callbacks (§7.9) ---------------------------------------------------------


class OcServer(GenServer[Any]):
    """oc_server: only init (and optionally continue)."""

    async def init(self, arg: Any) -> Any:
        if arg == "continue":
            return Ok([], Continue("x"))
        return []


async def test_undef_handle_call() -> None:
    server = await OcServer.start()
    with pytest.raises(CallExit) as ei:
        await GenServer.call(server, "call_msg")
    assert isinstance(ei.value.cause, Crash)
    assert isinstance(ei.value.cause.exception, UndefinedCallbackError)
    assert "handle_call" in str(ei.value.cause.exception)


async def test_undef_handle_cast() -> None:
    server = await OcServer.start()
    ref = beamlet.monitor(server)
    GenServer.cast(server, "cast_msg")
    down = await assert_receive(down_for(ref))
    assert isinstance(down.reason.exception, UndefinedCallbackError)
    assert "handle_cast" in str(down.reason.exception)


async def test_undef_handle_continue() -> None:
    beamlet.process_flag(trap_exit=True)
    server = await OcServer.start_link("continue")
    reason = (await assert_receive(exit_from(server))).reason
    assert isinstance(reason.exception, UndefinedCallbackError)
    assert "handle_continue" in str(reason.exception)


async def test_undef_handle_info(caplog: pytest.LogCaptureFixture) -> None:
    server = await OcServer.start()
    beamlet.send(server, "hej")
    assert await gen_server.get_state(server) == []  # processed, still alive
    assert beamlet.is_alive(server)
    [rec] = [r for r in caplog.records if "hej" in r.getMessage()]
    assert rec.levelname == "WARNING"
    assert rec.beamlet_report["message"] == "hej"  # type: ignore[attr-defined]


async def test_undef_init() -> None:
    class NoInit(GenServer[Any]):
        pass

    with pytest.raises(StartError) as se:
        await NoInit.start()
    assert isinstance(se.value.reason.exception, UndefinedCallbackError)
    beamlet.process_flag(trap_exit=True)
    with pytest.raises(StartError) as se:
        await NoInit.start_link()
    assert isinstance(se.value.reason.exception, UndefinedCallbackError)
    await refute_receive(ANY, timeout=0.05)


async def test_undef_terminate1() -> None:
    server = await OcServer.start()
    ref = beamlet.monitor(server)
    await GenServer.stop(server)
    await assert_receive(Down(ref, PROCESS, server, NORMAL))


async def test_undef_terminate2() -> None:
    server = await OcServer.start()
    ref = beamlet.monitor(server)
    await GenServer.stop(server, ("error", "test"), None)
    await assert_receive(Down(ref, PROCESS, server, ("error", "test")))


async def test_undef_in_terminate() -> None:
    """A terminate that calls something undefined is not mistaken for 'no terminate'."""

    class BadTerminate(GenServer[Any]):
        async def init(self, arg: Any) -> Any:
            return arg

        async def terminate(self, reason: Any, state: Any) -> None:
            state.terminate()  # no such method

    server = await BadTerminate.start(object.__new__(object))
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(server)
    assert isinstance(ei.value.cause, Crash)
    assert isinstance(ei.value.cause.exception, AttributeError)


async def test_undef_in_handle_info() -> None:
    server = await Suite.start([])
    ref = beamlet.monitor(server)
    beamlet.send(server, "call_undef_fun")
    down = await assert_receive(down_for(ref))
    assert isinstance(down.reason.exception, NameError)


# --- §7.3 returns and §7.8 terminate ----------------------------------------------------


class Probe78(GenServer[Any]):
    """Tells the test when terminate runs."""

    async def init(self, arg: Any) -> Any:
        pid, trap = arg
        if trap:
            beamlet.process_flag(trap_exit=True)
        return pid

    async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
        match request:
            case ("stop", reason):
                return Stop(reason, state, "bye")
            case ("stop_noreply", reason):
                return Stop(reason, state)
            case "raise":
                raise KeyError("k")
            case "bad":
                return 42
            case "reply_from_cast_result":
                return NoReply(state)
        return Reply(request, state)

    async def handle_cast(self, request: Any, state: Any) -> Any:
        if request == "stop_with_reply":
            return Stop(NORMAL, state, "not allowed from a cast")
        return Reply("not allowed", state)

    async def handle_info(self, msg: Any, state: Any) -> Any:
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        beamlet.send(state, ("terminate", reason))


async def test_terminate_rows_7_8() -> None:
    me = beamlet.self()
    beamlet.process_flag(trap_exit=True)
    # {stop, R, ...} -> terminate(R); the reply comes after terminate (§7.3.4)
    pid = await Probe78.start((me, False))
    assert await GenServer.call(pid, ("stop", Atom("r"))) == "bye"
    await assert_receive(("terminate", Atom("r")))
    # crash and bad return -> terminate(crash reason)
    pid = await Probe78.start((me, False))
    with pytest.raises(CallExit):
        await GenServer.call(pid, "raise")
    reason = (await assert_receive(("terminate", ANY)))[1]
    assert isinstance(reason, Crash) and isinstance(reason.exception, KeyError)
    pid = await Probe78.start((me, False))
    with pytest.raises(CallExit) as ei:
        await GenServer.call(pid, "bad")
    assert ei.value.cause == (BAD_RETURN_VALUE, 42)
    await assert_receive(("terminate", (BAD_RETURN_VALUE, 42)))
    # Stop with a reply and Reply are bad returns from handle_cast
    for req in ("stop_with_reply", "reply"):
        pid = await Probe78.start((me, False))
        GenServer.cast(pid, req)
        reason = (await assert_receive(("terminate", ANY)))[1]
        assert reason[0] == BAD_RETURN_VALUE
    # stop/3 -> terminate(reason)
    pid = await Probe78.start((me, False))
    await GenServer.stop(pid, SHUTDOWN)
    await assert_receive(("terminate", SHUTDOWN))
    # an exit signal while not trapping: no terminate
    pid = await Probe78.start((me, False))
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, Atom("bye"))
    assert (await assert_receive(down_for(ref))).reason == Atom("bye")
    # EXIT from a non-parent while trapping: handle_info, no terminate
    pid = await Probe78.start((me, True))
    beamlet.exit(pid, Atom("bye"))
    assert await GenServer.call(pid, "alive?") == "alive?"
    # kill: no terminate
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, KILL)
    assert (await assert_receive(down_for(ref))).reason == KILLED
    # EXIT from the parent while trapping: terminate, exit with the parent's reason
    pid = await Probe78.start_link((me, True))
    beamlet.exit(pid, Atom("from_parent"))  # an exit signal from the parent (us)
    await assert_receive(("terminate", Atom("from_parent")))
    await assert_receive(Exit(pid, Atom("from_parent")))
    await refute_receive(("terminate", ANY))


async def test_deferred_reply_from_another_process() -> None:
    """§7.5: NoReply, then anyone replies once; later replies are dropped."""

    class Deferred(GenServer[Any]):
        async def init(self, arg: Any) -> Any:
            return None

        async def handle_call(self, request: Any, from_: From, state: Any) -> Any:
            async def helper() -> None:
                beamlet.register("helper")
                GenServer.reply(from_, "first")
                await beamlet.receive("again")
                GenServer.reply(from_, "second")

            beamlet.spawn(helper)
            return NoReply(state)

    pid = await Deferred.start()
    assert await GenServer.call(pid, "x") == "first"
    helper = beamlet.whereis("helper")
    assert helper is not None
    ref = beamlet.monitor(helper)
    beamlet.send(helper, "again")
    await assert_receive(down_for(ref))
    await refute_receive(ANY, timeout=0.05)  # the second reply hit a dead alias


async def test_sync_callbacks_are_accepted() -> None:
    class SyncServer(GenServer[int]):
        def init(self, arg: int) -> int:  # type: ignore[override]
            return arg

        def handle_call(self, request: Any, from_: From, state: int) -> Any:  # type: ignore[override]
            return Reply(state + request, state)

    pid = await SyncServer.start(40)
    assert await GenServer.call(pid, 2) == 42


async def test_whereis() -> None:
    pid = await Suite.start([], name="ws")
    assert GenServer.whereis("ws") == pid
    assert GenServer.whereis(pid) == pid
    assert GenServer.whereis("nobody") is None
    assert GenServer.whereis(("ws", "other@host")) == (Atom("ws"), Atom("other@host"))


async def test_invalid_names_are_rejected_before_spawning() -> None:
    before = len(beamlet.processes())
    for bad in (("invalid", "tuple"), 42, ""):
        with pytest.raises(beamlet.BadArgument):
            await Suite.start([], name=bad)  # type: ignore[arg-type]
    assert len(beamlet.processes()) == before


# --- proc_lib_SUITE (§12.4) -------------------------------------------------------------


async def test_proc_lib_crash(caplog: pytest.LogCaptureFixture) -> None:
    """No crash report for shutdown / (shutdown, _); one for anything else."""
    beamlet.process_flag(trap_exit=True)
    for reason in (SHUTDOWN, (SHUTDOWN, Atom("x")), NORMAL):
        pid = await Suite.start_link([])
        await GenServer.stop(pid, reason)
        await assert_receive(Exit(pid, reason))
    assert reports(caplog) == []
    pid = await Suite.start_link([])
    await GenServer.stop(pid, Atom("bad"))
    await assert_receive(Exit(pid, Atom("bad")))
    assert len(reports(caplog)) == 1


async def test_sync_start_nolink() -> None:
    pid = await Suite.start([])
    assert pid not in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, KILL)
    assert (await assert_receive(down_for(ref))).reason == KILLED  # we are unaffected


async def test_sync_start_link() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = await Suite.start_link([])
    assert pid in beamlet.process_info(beamlet.self()).links  # type: ignore[union-attr]
    beamlet.exit(pid, KILL)
    await assert_receive(Exit(pid, KILLED))


async def test_init_dont_hang() -> None:
    """start does not hang if init crashes before acknowledging; start and start_link
    give the same result."""
    beamlet.process_flag(trap_exit=True)
    results = []
    for start in (Suite.start_link, Suite.start):
        with pytest.raises(StartError) as se:
            await start(("raise", ValueError("bad_init")))
        results.append(type(se.value.reason.exception))
    assert results == [ValueError, ValueError]


async def test_proc_lib_stop() -> None:
    pid = await Suite.start([])
    await GenServer.stop(pid)
    assert not beamlet.is_alive(pid)
    with pytest.raises(CallExit) as ei:
        await GenServer.stop(pid)
    assert ei.value.cause == NOPROC
    pid = await Suite.start([])
    await GenServer.stop(pid, Atom("r"), 1.0)
    assert not beamlet.is_alive(pid)


# --- send_request / receive_response ----------------------------------------------------


async def request(server: Any, req: Any) -> tuple[str, Any]:
    """Upstream's Async helper: send a request and wait for its response."""
    try:
        rid = GenServer.send_request(server, req)
        return ("reply", await GenServer.receive_response(rid, None))
    except RequestFailed as e:
        return ("error", (e.reason, e.server))


@pytest.mark.virtual_time
async def test_send_request() -> None:
    beamlet.process_flag(trap_exit=True)
    name = "my_test_name"
    pid = await Suite.start_link([], name=name)
    assert await request(name, "started_p") == ("reply", "ok")
    assert await request(pid, ("delayed_answer", 0.001)) == ("reply", "delayed")
    # two requests within a specified time
    p1 = GenServer.send_request(name, ("call_within", 1.0))
    p2 = GenServer.send_request(name, "next_call")
    assert await GenServer.wait_response(p1, None) == "ok"
    assert await GenServer.wait_response(p2, None) == "ok"
    p3 = GenServer.send_request(name, ("call_within", 1.0))
    assert GenServer.check_response(("foo", "bar"), p3) is NO_REPLY
    # the reply is Erlang's {[alias | Ref], Value}
    tag = ImproperList((Atom("alias"),), p3.ref)
    msg = await assert_receive(lambda m: type(m) is tuple and m[0] == tag)
    assert GenServer.check_response(msg, p3) == "ok"
    await beamlet.sleep(1.5)
    assert await request(name, "next_call") == ("reply", False)
    # timeout: wait_response does not abandon the request
    p5 = GenServer.send_request(name, ("delayed_answer", 0.05))
    with pytest.raises(TimeoutError):
        await GenServer.wait_response(p5, 0)
    assert await GenServer.wait_response(p5, None) == "delayed"
    # bad return value in the gen_server loop from handle_call
    kind, (reason, server) = await request(name, "badreturn")
    assert (kind, reason, server) == ("error", (BAD_RETURN_VALUE, "badreturn"), name)
    await assert_receive(exit_from(pid))
    # other error cases
    assert await request(pid, "started_p") == ("error", (NOPROC, pid))
    assert await request(name, "started_p") == ("error", (NOPROC, name))
    remote = ("my_test_name", "foo@node")
    assert await request(remote, "started_p") == ("error", (beamlet.NOCONNECTION, remote))
    with pytest.raises(beamlet.BadArgument):
        GenServer.send_request(Via(DummyVia(), "non_existing"), "started_p")
    via = Via(DummyVia(), "remote")
    await Suite.start([], name=via)
    assert await request(via, "started_p") == ("reply", "ok")
    assert await request(via, "stop_shutdown") == ("error", (SHUTDOWN, via))
    await refute_receive(ANY, timeout=0.05)


@pytest.mark.virtual_time
async def test_receive_response_abandons_on_timeout() -> None:
    pid = await Suite.start([])
    rid = GenServer.send_request(pid, ("delayed_answer", 0.5))
    with pytest.raises(TimeoutError):
        await GenServer.receive_response(rid, 0.1)
    await refute_receive(ANY, timeout=1.0)  # the late reply hit a dead alias


async def start_three() -> list[Pid]:
    pids = []
    for i in (1, 2, 3):
        pid = await Suite.start_link([], name=f"my_test_name{i}")
        assert pid is not None
        pids.append(pid)
    return pids


def _now() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.virtual_time
async def test_send_request_receive_reqid_collection() -> None:
    for receive in (GenServer.receive_response, GenServer.wait_response):
        pid1, pid2, pid3 = await start_three()
        r0 = GenServer.send_request(pid1, "started_p")
        c1 = RequestIds().add(GenServer.send_request(pid1, ("delayed_answer", 0.4)), "req1")
        assert len(c1) == 1
        c2 = c1.add(GenServer.send_request(pid2, ("delayed_answer", 0.001)), "req2")
        c3 = c2.add(GenServer.send_request(pid3, ("delayed_answer", 0.2)), "req3")
        assert len(c3) == 3
        result, label, c4 = await receive(c3, None, True)
        assert (result, label, len(c4)) == (("reply", "delayed"), "req2", 2)
        result, label, c5 = await receive(c4, 5.678, True)
        assert (result, label, len(c5)) == (("reply", "delayed"), "req3", 1)
        result, label, c6 = await receive(c5, 5, True)
        assert (result, label, len(c6)) == (("reply", "delayed"), "req1", 0)
        assert await receive(c6, 5, True) is None  # no_request
        assert await receive(r0, None) == "ok"
        for pid in (pid1, pid2, pid3):
            beamlet.unlink(pid)
            beamlet.exit(pid, KILL)


@pytest.mark.virtual_time
async def test_send_request_receive_reqid_collection_timeout() -> None:
    """receive_response abandons the requests on timeout; wait_response does not."""
    for receive, abandons in (
        (GenServer.receive_response, True),
        (GenServer.wait_response, False),
    ):
        pid1, pid2, pid3 = await start_three()
        r0 = GenServer.send_request(pid1, "started_p")
        req1 = GenServer.send_request(pid1, ("delayed_answer", 1.0))
        c2 = RequestIds().add(req1, "req1")
        c2 = c2.add(GenServer.send_request(pid2, ("delayed_answer", 0.001)), "req2")
        req3 = GenServer.send_request(pid3, ("delayed_answer", 0.5))
        c3 = c2.add(req3, "req3")
        deadline = _now() + 0.1
        result, label, c4 = await receive(c3, deadline - _now(), True)
        assert (result, label, len(c4)) == (("reply", "delayed"), "req2", 2)
        with pytest.raises(TimeoutError):
            await receive(c4, max(0.0, deadline - _now()), True)
        assert sorted(lbl for _, lbl in c4.to_list()) == ["req1", "req3"]
        if abandons:
            with pytest.raises(TimeoutError):
                await receive(c4, 1.0, True)
        else:
            assert await receive(c4, 1.5, False) == (("reply", "delayed"), "req3", c4)
            assert await receive(c4, 1.5, False) == (("reply", "delayed"), "req1", c4)
        assert await GenServer.receive_response(r0, None) == "ok"
        for pid in (pid1, pid2, pid3):
            beamlet.unlink(pid)
            beamlet.exit(pid, KILL)


@pytest.mark.virtual_time
async def test_send_request_wait_reqid_collection() -> None:
    """The error case of the collection tests, with wait_response and receive_response."""
    for receive in (GenServer.wait_response, GenServer.receive_response):
        pid1, pid2, pid3 = await start_three()
        r0 = GenServer.send_request(pid1, "started_p")
        req1 = GenServer.send_request(pid1, ("delayed_answer", 0.4))
        c1 = RequestIds().add(req1, "req1")
        with pytest.raises(beamlet.BadArgument):
            c1.add(req1, "req2")
        beamlet.unlink(pid2)
        c2 = c1.add(GenServer.send_request(pid2, "stop_shutdown"), "req2")
        c3 = c2.add(GenServer.send_request(pid3, ("delayed_answer", 0.2)), "req3")
        result, label, c4 = await receive(c3, 2, True)
        assert (result, label, len(c4)) == (("error", (SHUTDOWN, pid2)), "req2", 2)
        assert await receive(c4, None, False) == (("reply", "delayed"), "req3", c4)
        assert await receive(c4, None, False) == (("reply", "delayed"), "req1", c4)
        assert await receive(r0, None) == "ok"
        for pid in (pid1, pid3):
            beamlet.unlink(pid)
            beamlet.exit(pid, KILL)


@pytest.mark.virtual_time
async def test_send_request_check_reqid_collection() -> None:
    pid1, pid2, pid3 = await start_three()
    r0 = GenServer.send_request(pid1, "started_p")
    await beamlet.sleep(0.1)
    c1 = RequestIds().add(GenServer.send_request(pid1, ("delayed_answer", 0.4)), "req1")
    c2 = c1.add(GenServer.send_request(pid2, ("delayed_answer", 0.001)), "req2")
    c3 = c2.add(GenServer.send_request(pid3, ("delayed_answer", 0.2)), "req3")
    msg0 = await beamlet.receive()
    assert GenServer.check_response(msg0, c3, True) is NO_REPLY
    result, label, c4 = GenServer.check_response(await beamlet.receive(), c3, True)
    assert (result, label, len(c4)) == (("reply", "delayed"), "req2", 2)
    result, label, c5 = GenServer.check_response(await beamlet.receive(), c4, True)
    assert (result, label, len(c5)) == (("reply", "delayed"), "req3", 1)
    result, label, c6 = GenServer.check_response(await beamlet.receive(), c5, True)
    assert (result, label, len(c6)) == (("reply", "delayed"), "req1", 0)
    assert GenServer.check_response(msg0, c6, True) is None
    assert GenServer.check_response(msg0, r0) == "ok"
    # the error case
    beamlet.unlink(pid2)
    c7 = RequestIds().add(GenServer.send_request(pid2, "stop_shutdown"), "req2")
    down = await beamlet.receive(Down)
    result, label, _ = GenServer.check_response(down, c7)
    assert (result, label) == (("error", (SHUTDOWN, pid2)), "req2")
    with pytest.raises(RequestFailed):
        GenServer.check_response(down, RequestId(down.ref, pid2))
