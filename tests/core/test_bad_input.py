"""Bad input at the API boundary: a clear, typed error, and nothing corrupted.

After every rejected call the caller, the other processes and the node keep working;
most tests end with `roundtrip()`, a message round trip through a fresh process.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest

import beamlet
from beamlet import (
    ANY,
    KILLED,
    NORMAL,
    BadArgument,
    BeamletError,
    Crash,
    Down,
    InvalidTimeout,
    NameTaken,
    Node,
    NoProcError,
    NotInProcess,
    NotRegistered,
    Shared,
    Unsendable,
)
from beamlet.testing import assert_receive, refute_receive


async def echo() -> None:
    while True:
        sender, msg = await beamlet.receive()
        beamlet.send(sender, msg)


async def roundtrip() -> None:
    """The caller, a new process and the node all still work."""
    pid = beamlet.spawn(echo)
    token = beamlet.make_ref()
    beamlet.send(pid, (beamlet.self(), ("rt", token)))
    assert await assert_receive(("rt", token)) == ("rt", token)
    beamlet.exit(pid, beamlet.KILL)
    assert not beamlet.is_alive(pid)


async def down_of(ref: beamlet.Ref) -> Down:
    msg = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert isinstance(msg, Down)
    return msg


BAD_TIMEOUTS = [-1, -0.001, math.nan, math.inf, -math.inf, "1", b"1", [1], True, False, 1j]


def test_error_hierarchy() -> None:
    # usage errors are ordinary exceptions, catchable both as BeamletError and by kind
    for cls, base in [
        (BadArgument, TypeError),
        (InvalidTimeout, ValueError),
        (NameTaken, ValueError),
        (NotRegistered, LookupError),
        (NotInProcess, RuntimeError),
        (Unsendable, TypeError),
        (NoProcError, LookupError),
    ]:
        assert issubclass(cls, BeamletError) and issubclass(cls, base)
        assert issubclass(cls, Exception)
    # exits are not: `except Exception` cannot swallow them
    assert not issubclass(beamlet.ProcessExit, Exception)
    assert not issubclass(beamlet.Terminated, Exception)


# --- spawn ----------------------------------------------------------------------------


def sync_function() -> int:
    return 1


async def async_generator() -> Any:
    yield 1


async def one_arg(x: int) -> None:
    return None


@pytest.mark.parametrize(
    "fn",
    [42, None, "echo", sync_function, async_generator, lambda: None, [echo]],
    ids=["int", "None", "str", "sync", "asyncgen", "lambda", "list"],
)
async def test_spawn_rejects_non_async_callables(node: Node, fn: Any) -> None:
    before = len(node._procs)
    with pytest.raises(BadArgument):
        beamlet.spawn(fn)
    with pytest.raises(BadArgument):
        beamlet.spawn_link(fn)
    with pytest.raises(BadArgument):
        beamlet.spawn_monitor(fn)
    assert len(node._procs) == before
    assert beamlet.process_info(beamlet.self()).links == ()  # type: ignore[union-attr]
    await refute_receive(timeout=0.01)
    await roundtrip()


async def test_spawn_with_wrong_arguments_raises_type_error(node: Node) -> None:
    before = len(node._procs)
    with pytest.raises(TypeError):
        beamlet.spawn(one_arg)
    with pytest.raises(TypeError):
        beamlet.spawn(one_arg, 1, 2)
    assert len(node._procs) == before
    await roundtrip()


async def test_spawn_accepts_lambda_returning_coroutine_and_partial() -> None:
    import functools

    me = beamlet.self()

    async def tell(tag: str) -> None:
        beamlet.send(me, tag)

    beamlet.spawn(lambda: tell("lambda"))
    beamlet.spawn(functools.partial(tell, "partial"))
    assert {await assert_receive(), await assert_receive()} == {"lambda", "partial"}


async def test_spawn_with_unsendable_argument(node: Node) -> None:
    before = len(node._procs)
    with pytest.raises(Unsendable, match="Shared"):
        beamlet.spawn(one_arg, [threading.Lock()])
    assert len(node._procs) == before
    me = beamlet.self()
    lock = threading.Lock()

    async def holder(shared: Shared[threading.Lock]) -> None:
        beamlet.send(me, shared.value is lock)

    beamlet.spawn(holder, Shared(lock))
    assert await assert_receive() is True
    await roundtrip()


def test_spawn_on_a_node_that_is_not_started() -> None:
    with pytest.raises(BadArgument, match="not started"):
        Node().spawn(echo)


# --- timeouts -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_TIMEOUTS, ids=repr)
async def test_invalid_timeouts(bad: Any) -> None:
    me = beamlet.self()
    beamlet.send(me, "kept")
    with pytest.raises(InvalidTimeout):
        await beamlet.receive(timeout=bad)
    with pytest.raises(InvalidTimeout):
        await beamlet.receive("never", timeout=bad)
    with pytest.raises(InvalidTimeout):
        beamlet.send_after(bad, me, "timer")
    with pytest.raises(InvalidTimeout):
        beamlet.start_timer(bad, me, "timer")
    with pytest.raises(InvalidTimeout):
        await beamlet.sleep(bad)
    # the mailbox is untouched and no timer was started
    assert await beamlet.receive(timeout=0) == "kept"
    await refute_receive(timeout=0.01)
    await roundtrip()


async def test_timer_needs_a_finite_delay_and_a_destination() -> None:
    me = beamlet.self()
    with pytest.raises(InvalidTimeout):
        beamlet.send_after(None, me, "x")  # type: ignore[arg-type]
    for dest in (42, None, [me], ("only-one",), 1.5):
        with pytest.raises(BadArgument):
            beamlet.send_after(0, dest, "x")  # type: ignore[arg-type]
    for ref in ("ref", 1, None, me):
        with pytest.raises(BadArgument):
            beamlet.cancel_timer(ref)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            beamlet.read_timer(ref)  # type: ignore[arg-type]
    await refute_receive(timeout=0.01)
    await roundtrip()


async def test_valid_edge_timeouts() -> None:
    me = beamlet.self()
    assert await beamlet.receive(timeout=0, default="none") == "none"
    assert await beamlet.receive(timeout=0.0, default="none") == "none"
    await beamlet.sleep(0)
    beamlet.send_after(0, me, "now")
    assert await assert_receive("now") == "now"


async def test_receive_since_must_be_a_ref() -> None:
    beamlet.send(beamlet.self(), "kept")
    with pytest.raises(BeamletError):
        await beamlet.receive("never", timeout=0, since="not a ref")  # type: ignore[arg-type]
    assert await beamlet.receive(timeout=0) == "kept"


async def test_raising_predicate_leaves_mailbox_intact() -> None:
    me = beamlet.self()

    def bad(m: Any) -> bool:
        raise ZeroDivisionError("in a guard")

    beamlet.send(me, "first")
    with pytest.raises(ZeroDivisionError):
        await beamlet.receive(bad)  # the message is already queued
    assert await beamlet.receive(timeout=0) == "first"

    async def later() -> None:
        beamlet.send(me, "second")

    beamlet.spawn(later)
    with pytest.raises(ZeroDivisionError):
        await beamlet.receive(bad, timeout=1)  # the message arrives while waiting
    assert await beamlet.receive(timeout=1) == "second"
    await roundtrip()


# --- registration (§5) ----------------------------------------------------------------


async def test_register_twice_and_pid_with_a_name() -> None:
    a = beamlet.spawn(echo)
    b = beamlet.spawn(echo)
    beamlet.register("svc", a)
    with pytest.raises(NameTaken):
        beamlet.register("svc", b)  # name taken by another pid
    with pytest.raises(NameTaken):
        beamlet.register("svc", a)  # taken, even by the same pid
    with pytest.raises(NameTaken):
        beamlet.register("other", a)  # a already has a name
    assert beamlet.whereis("svc") == a
    assert beamlet.whereis("other") is None
    assert beamlet.process_info(b).registered_name is None  # type: ignore[union-attr]
    beamlet.send("svc", (beamlet.self(), "via name"))
    assert await assert_receive("via name") == "via name"
    beamlet.register("other", b)  # b is still free to take a name
    assert sorted(beamlet.registered()) == [beamlet.Atom("other"), beamlet.Atom("svc")]


async def test_register_dead_pid_undefined_and_bad_names() -> None:
    async def quick() -> None:
        return None

    dead, ref = beamlet.spawn_monitor(quick)
    await down_of(ref)
    with pytest.raises(BadArgument):
        beamlet.register("ghost", dead)
    assert beamlet.whereis("ghost") is None
    live = beamlet.spawn(echo)
    for name in ("undefined", beamlet.UNDEFINED):
        with pytest.raises(BadArgument):
            beamlet.register(name, live)
    for name in (42, None, b"bytes", ("a", "b"), dead):
        with pytest.raises(BadArgument):
            beamlet.register(name, live)  # type: ignore[arg-type]
    for pid in ("svc", 42, 1.5, beamlet.make_ref()):  # (None means the caller)
        with pytest.raises(BadArgument):
            beamlet.register("svc", pid)  # type: ignore[arg-type]
    assert beamlet.registered() == []
    beamlet.register("svc", live)  # nothing half-registered blocks the name
    assert beamlet.whereis("svc") == live
    await roundtrip()


async def test_send_and_unregister_unknown_name() -> None:
    with pytest.raises(NotRegistered):
        beamlet.send("nobody", "msg")
    with pytest.raises(NotRegistered):
        beamlet.send(beamlet.Atom("nobody"), "msg")
    with pytest.raises(NotRegistered):
        beamlet.unregister("nobody")
    # {Name, Node} on the local node is silently dropped, no error (§2.1)
    beamlet.send(("nobody", beamlet.node_name()), "msg")
    for dest in (42, None, ["x"], ("a", "b", "c"), 1.5):
        with pytest.raises(BadArgument):
            beamlet.send(dest, "msg")  # type: ignore[arg-type]
    await refute_receive(timeout=0.01)
    await roundtrip()


async def test_name_of_dead_process_is_free() -> None:
    async def named() -> None:
        beamlet.register("short-lived")

    _pid, ref = beamlet.spawn_monitor(named)
    await down_of(ref)
    with pytest.raises(NotRegistered):
        beamlet.send("short-lived", "x")
    beamlet.register("short-lived")
    assert beamlet.whereis("short-lived") == beamlet.self()


# --- links and monitors ---------------------------------------------------------------


NOT_PIDS = ["<0.1.0>", 1, None, ("name", "node"), [1], 1.0]


async def test_link_unlink_exit_with_non_pid() -> None:
    for bad in NOT_PIDS:
        with pytest.raises(BadArgument):
            beamlet.link(bad)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            beamlet.unlink(bad)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            beamlet.exit(bad, "reason")
        with pytest.raises(BadArgument):
            beamlet.is_alive(bad)  # type: ignore[arg-type]
    assert beamlet.process_info(beamlet.self()).links == ()  # type: ignore[union-attr]
    await roundtrip()


async def test_link_to_dead_pid_without_trap_exit_raises_noproc() -> None:
    async def quick() -> None:
        return None

    dead, ref = beamlet.spawn_monitor(quick)
    await down_of(ref)
    with pytest.raises(NoProcError) as info:
        beamlet.link(dead)
    assert info.value.pid == dead
    assert beamlet.is_alive(beamlet.self())
    await roundtrip()


async def test_monitor_and_demonitor_with_bad_arguments(node: Node) -> None:
    aliases_before = len(node._aliases)
    for bad in [1, None, ["x"], ("a",), ("a", "b", "c"), 1.5, (1, 2)]:
        with pytest.raises(BadArgument):
            beamlet.monitor(bad)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            beamlet.monitor(bad, alias="demonitor")  # type: ignore[arg-type]
    with pytest.raises(BadArgument):
        beamlet.monitor(beamlet.self(), alias="bogus")
    for bad in ["ref", 1, None, beamlet.self()]:
        with pytest.raises(BadArgument):
            beamlet.demonitor(bad)  # type: ignore[arg-type]
        with pytest.raises(BadArgument):
            beamlet.unalias(bad)  # type: ignore[arg-type]
    with pytest.raises(BadArgument):
        beamlet.alias("bogus")
    with pytest.raises(BadArgument):
        beamlet.process_flag(trap_exit="yes")  # type: ignore[arg-type]
    assert beamlet.process_flag(trap_exit=False) is False
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.monitors == () and not info.trap_exit
    assert len(node._aliases) == aliases_before  # a rejected monitor left no alias behind
    await roundtrip()


async def test_demonitor_unknown_or_fired_ref_is_false() -> None:
    assert beamlet.demonitor(beamlet.make_ref()) is False
    assert beamlet.demonitor(beamlet.make_ref(), flush=True) is False

    async def quick() -> None:
        return None

    _pid, ref = beamlet.spawn_monitor(quick)
    await down_of(ref)
    assert beamlet.demonitor(ref) is False
    await roundtrip()


async def test_demonitor_of_a_foreign_ref_has_no_effect() -> None:
    me = beamlet.self()
    target = beamlet.spawn(echo)

    async def watcher() -> None:
        ref = beamlet.monitor(target)
        beamlet.send(me, ("ref", ref))
        down = await beamlet.receive(Down)
        beamlet.send(me, ("watcher got", down.ref == ref, down.reason))

    beamlet.spawn(watcher)
    _, foreign = await assert_receive(("ref", ANY))
    assert beamlet.demonitor(foreign) is False  # someone else's monitor (§4.3)
    assert beamlet.demonitor(foreign, flush=True) is False
    info = beamlet.process_info(target)
    assert info is not None and len(info.monitored_by) == 1
    beamlet.exit(target, beamlet.KILL)
    assert await assert_receive(("watcher got", ANY, ANY)) == ("watcher got", True, KILLED)


async def test_unalias_foreign_alias_has_no_effect() -> None:
    me = beamlet.self()

    async def owner() -> None:
        a = beamlet.alias()
        beamlet.send(me, ("alias", a))
        beamlet.send(me, ("via alias", await beamlet.receive()))

    beamlet.spawn(owner)
    _, a = await assert_receive(("alias", ANY))
    assert beamlet.unalias(a) is False
    beamlet.send(a, "still active")
    assert await assert_receive(("via alias", ANY)) == ("via alias", "still active")


# --- outside any process --------------------------------------------------------------


def test_process_functions_outside_a_process() -> None:
    pid = beamlet.Pid(beamlet.Atom("nonode@nohost"), 1)
    calls: list[Any] = [
        beamlet.self,
        beamlet.node_name,
        beamlet.make_ref,
        beamlet.registered,
        beamlet.processes,
        lambda: beamlet.spawn(echo),
        lambda: beamlet.spawn_link(echo),
        lambda: beamlet.spawn_monitor(echo),
        lambda: beamlet.send(pid, "x"),
        lambda: beamlet.send("name", "x"),
        lambda: beamlet.exit(pid, "r"),
        lambda: beamlet.link(pid),
        lambda: beamlet.unlink(pid),
        lambda: beamlet.monitor(pid),
        lambda: beamlet.demonitor(beamlet.Ref(beamlet.Atom("a@b"), (1, 2, 3))),
        lambda: beamlet.process_flag(trap_exit=True),
        lambda: beamlet.register("x"),
        lambda: beamlet.unregister("x"),
        lambda: beamlet.whereis("x"),
        lambda: beamlet.is_alive(pid),
        lambda: beamlet.process_info(pid),
        lambda: beamlet.send_after(1, pid, "x"),
        lambda: beamlet.sleep(1),
        beamlet.alias,
    ]
    for call in calls:
        with pytest.raises(NotInProcess):
            call()

    async def awaits() -> None:
        with pytest.raises(NotInProcess):
            await beamlet.receive()
        with pytest.raises(NotInProcess):
            await beamlet.receive(timeout=0)
        with pytest.raises(NotInProcess):
            await beamlet.run_in_thread(sync_function)

    asyncio.run(awaits())


def test_node_methods_from_plain_asyncio_code() -> None:
    async def main() -> None:
        async with Node() as node:
            pid = node.spawn(echo)
            with pytest.raises(NotInProcess):
                node.spawn_monitor(echo)
            with pytest.raises(NotRegistered):
                node.send("nobody", "x")
            with pytest.raises(BadArgument):
                node.exit("not a pid", "r")
            with pytest.raises(InvalidTimeout):
                await node.wait(pid, timeout=-1)
            assert node._exit_waiters == {}  # the bad call left no waiter behind
            with pytest.raises(TimeoutError):
                await node.wait(pid, timeout=0.01)
            assert node._exit_waiters == {}  # a timed-out wait is forgotten
            with pytest.raises(BadArgument):
                await node.wait("not a pid")  # type: ignore[arg-type]
            assert node.is_alive(pid)
            waiter = asyncio.ensure_future(node.wait(pid, timeout=1))
            await asyncio.sleep(0)  # sleep-ok: one loop turn, the waiter registers
            node.exit(pid, beamlet.KILL)
            assert await waiter == KILLED

    asyncio.run(main())


# --- isolation errors -----------------------------------------------------------------


async def test_unsendable_value_and_shared_escape_hatch() -> None:
    lock = threading.Lock()
    pid = beamlet.spawn(echo)
    me = beamlet.self()
    for msg in ([lock], {"k": lock}, (1, [lock]), [[lock]], {1: {2: [lock]}}):
        with pytest.raises(Unsendable, match="Shared"):
            beamlet.send(pid, (me, msg))
    with pytest.raises(Unsendable):
        beamlet.send(me, [threading.Lock()])
    with pytest.raises(Unsendable):
        beamlet.exit(pid, [lock])
    assert beamlet.is_alive(pid)
    await refute_receive(timeout=0.01)
    # Shared passes by reference, also inside a container that is otherwise copied
    beamlet.send(pid, (me, Shared(lock)))
    got = await assert_receive(Shared)
    assert got.value is lock
    data = [1, 2]
    beamlet.send(pid, (me, {"lock": Shared(lock), "data": data}))
    got = await assert_receive(dict)
    assert got["lock"].value is lock
    assert got["data"] == data and got["data"] is not data
    await roundtrip()


# --- crashes stay contained -----------------------------------------------------------


class BrokenRepr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str failed")

    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


async def test_crashing_processes_never_take_down_the_node(node: Node) -> None:
    bystander = beamlet.spawn(echo)
    me = beamlet.self()

    async def crash(kind: str) -> None:
        await asyncio.sleep(0)  # sleep-ok: one loop turn (a yield, not a wait)
        if kind == "error":
            raise ValueError("boom")
        if kind == "broken":
            raise BrokenRepr()
        if kind == "exit":
            beamlet.exit(("custom", [1, 2]))
        if kind == "unsendable exit":
            beamlet.exit(threading.Lock())
        if kind == "recursion":

            def f(n: int) -> int:
                return f(n + 1) + 1

            f(0)
        if kind == "base":
            raise GeneratorExit()

    kinds = ["error", "broken", "exit", "unsendable exit", "recursion", "base"]
    refs = {beamlet.spawn_monitor(crash, kind)[1]: kind for kind in kinds}
    reasons = {}
    for _ in kinds:
        down = await assert_receive(Down)
        reasons[refs[down.ref]] = down.reason
    assert isinstance(reasons["error"], Crash)
    assert isinstance(reasons["error"].exception, ValueError)
    assert isinstance(reasons["broken"], Crash)
    assert reasons["exit"] == ("custom", [1, 2])
    assert isinstance(reasons["unsendable exit"], type(threading.Lock()))
    assert isinstance(reasons["recursion"], Crash)
    assert isinstance(reasons["recursion"].exception, RecursionError)
    assert isinstance(reasons["base"], Crash)
    # the bystander and the test process are untouched
    beamlet.send(bystander, (me, "still here"))
    assert await assert_receive("still here") == "still here"
    assert set(beamlet.processes()) == {me, bystander}
    assert len(node._procs) == 2
    await roundtrip()


async def test_crash_spreads_only_along_links() -> None:
    me = beamlet.self()

    async def linked_pair() -> None:
        beamlet.spawn_link(crasher)
        await beamlet.receive()

    async def crasher() -> None:
        await asyncio.sleep(0)  # sleep-ok: one loop turn (a yield, not a wait)
        raise RuntimeError("linked crash")

    unrelated = beamlet.spawn(echo)
    _pair, ref = beamlet.spawn_monitor(linked_pair)
    down = await down_of(ref)
    assert isinstance(down.reason, Crash)
    assert isinstance(down.reason.exception, RuntimeError)
    assert beamlet.is_alive(unrelated)
    beamlet.send(unrelated, (me, "ok"))
    await assert_receive("ok")


async def test_normal_exit_reason_stays_quiet(caplog: pytest.LogCaptureFixture) -> None:
    async def quiet() -> None:
        return None

    _pid, ref = beamlet.spawn_monitor(quiet)
    assert (await down_of(ref)).reason == NORMAL
    assert not [r for r in caplog.records if r.name == "beamlet" and r.levelname == "ERROR"]
