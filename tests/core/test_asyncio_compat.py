"""Ordinary asyncio code inside beamlet processes (docs/architecture.md point 2, §1.6, §3.8).

A process is not an asyncio Task, but it must look like one to asyncio code: current
task, timeouts, task groups, primitives, streams, contextvars and a real aiohttp client
all have to work, and exit signals must interrupt a process at whatever it awaits.
The last section embeds a node in an existing asyncio program and runs it on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import beamlet
from beamlet import ANY, KILLED, NORMAL, Crash, Down, NotInProcess, Terminated
from beamlet.testing import assert_receive, refute_receive

CV: contextvars.ContextVar[str] = contextvars.ContextVar("beamlet_test_cv", default="unset")


async def wait(aw: Awaitable[Any], timeout: float = 2.0) -> Any:
    """Await `aw` but fail the test instead of hanging."""
    return await asyncio.wait_for(aw, timeout)


async def down_of(ref: beamlet.Ref, timeout: float = 2.0) -> Down:
    msg = await assert_receive(lambda m: type(m) is Down and m.ref == ref, timeout=timeout)
    assert isinstance(msg, Down)
    return msg


# --- the task-like face of a process -------------------------------------------------


async def test_current_task_is_task_like() -> None:
    task = asyncio.current_task()
    assert task is not None
    assert task.get_loop() is asyncio.get_running_loop()
    assert not task.done()
    assert task.cancelling() == 0
    assert callable(task.cancel) and callable(task.uncancel)
    assert task.get_context() is not None
    assert str(beamlet.self()) in task.get_name()

    async def other(parent: beamlet.Pid) -> None:
        beamlet.send(parent, asyncio.current_task() is not None)

    beamlet.spawn(other, beamlet.self())
    assert await assert_receive() is True
    # each process has its own task-like object
    seen: list[Any] = []

    async def report() -> None:
        seen.append(asyncio.current_task())

    _pid, ref = beamlet.spawn_monitor(report)
    await down_of(ref)
    assert seen[0] is not None and seen[0] is not task


async def test_asyncio_sleep() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await asyncio.sleep(0.02, result="r") == "r"  # sleep-ok
    assert loop.time() - t0 >= 0.015
    await asyncio.sleep(0)  # sleep-ok: a bare yield goes to the back of the run queue


async def test_asyncio_timeout_expires_and_process_stays_healthy() -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await asyncio.sleep(5)  # sleep-ok
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await beamlet.receive()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    # the expired timeout left no pending cancellation behind
    beamlet.send(beamlet.self(), "after")
    assert await beamlet.receive(timeout=1) == "after"
    await asyncio.sleep(0.01)  # sleep-ok


async def test_asyncio_timeout_not_reached() -> None:
    async with asyncio.timeout(5) as cm:
        await asyncio.sleep(0.001)  # sleep-ok
        beamlet.send(beamlet.self(), "x")
        assert await beamlet.receive() == "x"
    assert not cm.expired()


async def test_wait_for_times_out() -> None:
    cancelled = asyncio.get_running_loop().create_future()

    async def slow() -> str:
        try:
            await asyncio.sleep(5)  # sleep-ok
        except asyncio.CancelledError:
            cancelled.set_result(True)
            raise
        return "late"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow(), 0.02)
    assert await wait(cancelled) is True
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_wait_for_completes() -> None:
    async def quick() -> int:
        await asyncio.sleep(0.001)  # sleep-ok
        return 42

    assert await asyncio.wait_for(quick(), 2) == 42
    assert await asyncio.wait_for(quick(), None) == 42


async def test_wait_for_around_receive() -> None:
    # 3.12+ awaits the coroutine in the calling task, so receive runs in the process;
    # 3.11 wraps it in a new Task, which is not the process: a clear error, not a hang.
    # (receive(timeout=...) is the portable way.)
    if sys.version_info >= (3, 12):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(beamlet.receive(), 0.02)
        beamlet.send(beamlet.self(), "msg")
        assert await asyncio.wait_for(beamlet.receive(), 2) == "msg"
    else:
        with pytest.raises(NotInProcess):
            await asyncio.wait_for(beamlet.receive(), 0.02)
    beamlet.send(beamlet.self(), "after")
    assert await beamlet.receive(timeout=1) == "after"


async def test_task_group_collects_results() -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0.001 * n)  # sleep-ok
        return n * n

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(work(n)) for n in range(5)]
    assert [t.result() for t in tasks] == [0, 1, 4, 9, 16]


async def test_task_group_failure_cancels_siblings_and_process_recovers() -> None:
    sibling_cancelled = asyncio.get_running_loop().create_future()

    async def fails() -> None:
        await asyncio.sleep(0.005)  # sleep-ok
        raise ValueError("child failed")

    async def sibling() -> None:
        try:
            await asyncio.sleep(5)  # sleep-ok
        except asyncio.CancelledError:
            sibling_cancelled.set_result(True)
            raise

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fails())
            tg.create_task(sibling())
            await beamlet.receive()  # the parent is cancelled out of receive
    assert info.group_contains(ValueError)
    assert await wait(sibling_cancelled) is True
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    # nothing left over: the process still receives and times out normally
    beamlet.send(beamlet.self(), "still here")
    assert await beamlet.receive(timeout=1) == "still here"
    assert await beamlet.receive(timeout=0.01, default="nothing") == "nothing"


async def test_gather_and_create_task() -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0.001)  # sleep-ok
        return n + 1

    assert await asyncio.gather(work(1), work(2), work(3)) == [2, 3, 4]
    task = asyncio.create_task(work(10))
    assert await task == 11

    async def boom() -> None:
        raise KeyError("k")

    out = await asyncio.gather(work(0), boom(), return_exceptions=True)
    assert out[0] == 1 and isinstance(out[1], KeyError)


async def test_create_task_copies_process_context() -> None:
    CV.set("in-process")

    async def read() -> str:
        value = CV.get()
        CV.set("in-task")
        return value

    assert await asyncio.create_task(read()) == "in-process"
    assert CV.get() == "in-process"


# --- asyncio synchronisation primitives shared between processes ----------------------


async def test_lock_serialises_processes() -> None:
    lock = asyncio.Lock()
    inside: list[str] = []
    me = beamlet.self()

    async def worker(tag: str) -> None:
        async with lock:
            inside.append(f"{tag}+")
            await asyncio.sleep(0.005)  # sleep-ok
            inside.append(f"{tag}-")
        beamlet.send(me, ("done", tag))

    for tag in "abc":
        beamlet.spawn(worker, tag)
    for _ in "abc":
        await assert_receive(("done", ANY))
    # no interleaving: every enter is immediately followed by its exit
    assert len(inside) == 6
    for i in range(0, 6, 2):
        assert inside[i][0] == inside[i + 1][0]
        assert (inside[i][1], inside[i + 1][1]) == ("+", "-")
    assert not lock.locked()


async def test_event_wakes_waiting_processes() -> None:
    event = asyncio.Event()
    me = beamlet.self()

    async def waiter(n: int) -> None:
        beamlet.send(me, ("waiting", n))
        await event.wait()
        beamlet.send(me, ("woken", n))

    for n in range(3):
        beamlet.spawn(waiter, n)
    for n in range(3):
        await assert_receive(("waiting", n))
    await refute_receive(("woken", ANY), timeout=0.02)
    event.set()
    assert sorted([(await assert_receive(("woken", ANY)))[1] for _ in range(3)]) == [0, 1, 2]


async def test_condition_notify() -> None:
    cond = asyncio.Condition()
    items: list[int] = []
    me = beamlet.self()

    async def consumer() -> None:
        async with cond:
            await cond.wait_for(lambda: len(items) >= 2)
            beamlet.send(me, ("got", tuple(items)))

    beamlet.spawn(consumer)
    await asyncio.sleep(0.005)  # sleep-ok
    async with cond:
        items.append(1)
        cond.notify_all()
    await refute_receive(("got", ANY), timeout=0.02)
    async with cond:
        items.append(2)
        cond.notify_all()
    assert await assert_receive(("got", ANY)) == ("got", (1, 2))


async def test_semaphore_limits_concurrency() -> None:
    sem = asyncio.Semaphore(2)
    active = 0
    peak = 0
    me = beamlet.self()

    async def worker(n: int) -> None:
        nonlocal active, peak
        async with sem:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.005)  # sleep-ok
            active -= 1
        beamlet.send(me, ("done", n))

    for n in range(6):
        beamlet.spawn(worker, n)
    for _ in range(6):
        await assert_receive(("done", ANY))
    assert peak == 2 and active == 0


async def test_queue_between_processes() -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2)
    me = beamlet.self()

    async def producer() -> None:
        for i in range(10):
            await queue.put(i)  # blocks when full: back-pressure through asyncio
        await queue.put(None)

    async def consumer() -> None:
        got = []
        while (item := await queue.get()) is not None:
            got.append(item)
        beamlet.send(me, ("consumed", got))

    beamlet.spawn(consumer)
    beamlet.spawn(producer)
    assert await assert_receive(("consumed", ANY)) == ("consumed", list(range(10)))


# --- streams --------------------------------------------------------------------------


async def test_streams_echo_server_and_clients_in_processes() -> None:
    me = beamlet.self()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def server_proc() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        beamlet.send(me, ("port", port))
        await beamlet.receive("stop")
        server.close()
        await server.wait_closed()
        beamlet.send(me, "server closed")

    async def client(port: int, text: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(text.encode() + b"\n")
        await writer.drain()
        reply = await reader.readline()
        writer.close()
        await writer.wait_closed()
        beamlet.send(me, ("echo", text, reply))

    server = beamlet.spawn(server_proc)
    _, port = await assert_receive(("port", ANY))
    for text in ("hello", "beam"):
        beamlet.spawn(client, port, text)
    replies = {(await assert_receive(("echo", ANY, ANY)))[1:] for _ in range(2)}
    assert replies == {("hello", b"HELLO\n"), ("beam", b"BEAM\n")}
    beamlet.send(server, "stop")
    await assert_receive("server closed")


# --- contextvars ----------------------------------------------------------------------


async def test_each_process_has_its_own_context_copied_from_spawner() -> None:
    me = beamlet.self()
    CV.set("parent")

    async def child(tag: str) -> None:
        seen = CV.get()
        CV.set(tag)
        beamlet.send(me, ("started", tag, seen))
        await beamlet.receive("report")  # parent and sibling change theirs meanwhile
        await asyncio.sleep(0.001)  # sleep-ok
        beamlet.send(me, ("now", tag, CV.get()))

    a = beamlet.spawn(child, "a")
    CV.set("parent-after-first-spawn")
    b = beamlet.spawn(child, "b")
    assert await assert_receive(("started", "a", ANY)) == ("started", "a", "parent")
    assert await assert_receive(("started", "b", ANY)) == (
        "started",
        "b",
        "parent-after-first-spawn",
    )
    assert CV.get() == "parent-after-first-spawn"  # children's sets are invisible here
    beamlet.send(a, "report")
    beamlet.send(b, "report")
    assert await assert_receive(("now", "a", ANY)) == ("now", "a", "a")
    assert await assert_receive(("now", "b", ANY)) == ("now", "b", "b")


# --- run_in_thread --------------------------------------------------------------------


async def test_run_in_thread_runs_elsewhere_and_node_keeps_running() -> None:
    release = threading.Event()
    main_thread = threading.get_ident()

    def blocking(a: int, *, b: int) -> tuple[int, int]:
        assert release.wait(5)
        return threading.get_ident(), a + b

    async def echo() -> None:
        sender, msg = await beamlet.receive()
        beamlet.send(sender, msg)

    me = beamlet.self()

    async def runner() -> None:
        beamlet.send(me, ("result", await beamlet.run_in_thread(blocking, 1, b=2)))

    beamlet.spawn(runner)
    # while the thread blocks, other processes run
    e = beamlet.spawn(echo)
    beamlet.send(e, (me, "ping"))
    await assert_receive("ping")
    release.set()
    _, (tid, total) = await assert_receive(("result", ANY))
    assert total == 3 and tid != main_thread

    def fails() -> None:
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        await beamlet.run_in_thread(fails)


# --- aiohttp --------------------------------------------------------------------------


class HttpServer:
    """A local aiohttp server: `/hello` answers at once, `/slow` waits until released."""

    def __init__(self) -> None:
        self.slow_started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.release = asyncio.Event()
        self.url = ""

    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text="hi")

    async def slow(self, request: web.Request) -> web.Response:
        if not self.slow_started.done():
            self.slow_started.set_result(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.release.wait()
        return web.Response(text="finally")


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[HttpServer]:
    srv = HttpServer()
    app = web.Application()
    app.router.add_get("/hello", srv.hello)
    app.router.add_get("/slow", srv.slow)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    srv.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield srv
    finally:
        srv.release.set()
        await runner.cleanup()


async def test_aiohttp_request_with_client_timeout_succeeds() -> None:
    async with http_server() as srv:
        me = beamlet.self()

        async def client() -> None:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(srv.url + "/hello") as resp,
            ):
                beamlet.send(me, ("http", resp.status, await resp.text()))

        beamlet.spawn(client)
        assert await assert_receive(("http", ANY, ANY), timeout=5) == ("http", 200, "hi")


async def test_aiohttp_client_timeout_fires_inside_process() -> None:
    async with http_server() as srv:
        me = beamlet.self()

        async def client() -> None:
            timeout = aiohttp.ClientTimeout(total=0.1)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                try:
                    async with session.get(srv.url + "/slow") as resp:
                        beamlet.send(me, ("unexpected", await resp.text()))
                except TimeoutError as e:
                    beamlet.send(me, ("timed out", type(e).__name__))
                # the process is not left cancelled: it keeps working after the timeout
                task = asyncio.current_task()
                assert task is not None
                beamlet.send(me, ("cancelling", task.cancelling()))
                async with session.get(srv.url + "/hello") as resp:
                    beamlet.send(me, ("then", await resp.text()))

        pid, ref = beamlet.spawn_monitor(client)
        assert (await assert_receive(("timed out", ANY), timeout=5))[0] == "timed out"
        assert await assert_receive(("cancelling", ANY)) == ("cancelling", 0)
        assert await assert_receive(("then", ANY), timeout=5) == ("then", "hi")
        assert (await down_of(ref)).reason == NORMAL
        assert not beamlet.is_alive(pid)


# --- exit signals interrupt a process wherever it awaits (§3.8) ----------------------


async def _kill_while_awaiting(body: Any, *, ready: Awaitable[Any] | None = None) -> None:
    """Spawn `body(finally_future)`, wait until it is suspended, send it an exit signal
    and check: dead at once, its `finally` ran, and the DOWN carries the reason."""
    loop = asyncio.get_running_loop()
    finally_ran: asyncio.Future[str] = loop.create_future()
    me = beamlet.self()

    async def victim() -> None:
        try:
            beamlet.send(me, "suspending")
            await body()
        finally:
            finally_ran.set_result("ran")

    pid, ref = beamlet.spawn_monitor(victim)
    await assert_receive("suspending")
    if ready is not None:
        await wait(ready, 5)
    assert beamlet.is_alive(pid)
    beamlet.exit(pid, "stop")
    assert not beamlet.is_alive(pid)  # dead as soon as the signal is handled
    assert pid not in beamlet.processes()
    assert await wait(finally_ran) == "ran"
    down = await down_of(ref)
    assert down.reason == "stop"


async def test_exit_signal_interrupts_asyncio_sleep() -> None:
    await _kill_while_awaiting(lambda: asyncio.sleep(10))  # sleep-ok


async def test_exit_signal_interrupts_receive() -> None:
    await _kill_while_awaiting(lambda: beamlet.receive("never"))
    await _kill_while_awaiting(lambda: beamlet.receive(timeout=10))


async def test_exit_signal_interrupts_wait_for_and_cancels_inner() -> None:
    inner_cancelled = asyncio.get_running_loop().create_future()

    async def inner() -> None:
        try:
            await asyncio.sleep(10)  # sleep-ok
        except asyncio.CancelledError:
            inner_cancelled.set_result(True)
            raise

    await _kill_while_awaiting(lambda: asyncio.wait_for(inner(), 5))
    assert await wait(inner_cancelled) is True


async def test_exit_signal_interrupts_asyncio_timeout_block() -> None:
    async def body() -> None:
        async with asyncio.timeout(5):
            await asyncio.sleep(10)  # sleep-ok

    await _kill_while_awaiting(body)


async def test_kill_racing_an_expired_timeout_still_ends_the_process(node: beamlet.Node) -> None:
    """The exit signal lands after `asyncio.timeout` fired but before the process ran
    again: whatever exception the timeout turns it into (TimeoutError on 3.13), the
    process is dead and what it does next is refused."""
    loop = asyncio.get_running_loop()
    finally_ran: asyncio.Future[bool] = loop.create_future()
    me = beamlet.self()

    async def victim() -> None:
        pid = beamlet.self()
        try:
            try:
                async with asyncio.timeout(0):  # fires on the next loop turn ...
                    loop.call_soon(node.exit, pid, "stop")  # ... and so does the kill
                    await asyncio.sleep(10)  # sleep-ok
            except TimeoutError:
                beamlet.send(me, "survived the kill")  # refused: raises Terminated
        finally:
            finally_ran.set_result(True)

    pid, ref = beamlet.spawn_monitor(victim)
    assert (await down_of(ref)).reason == "stop"
    assert await wait(finally_ran) is True
    assert not beamlet.is_alive(pid)
    await refute_receive("survived the kill", timeout=0.02)


async def test_exit_signal_interrupts_task_group_and_cancels_children() -> None:
    child_cancelled = asyncio.get_running_loop().create_future()

    async def child() -> None:
        try:
            await asyncio.sleep(10)  # sleep-ok
        except asyncio.CancelledError:
            child_cancelled.set_result(True)
            raise

    async def body() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(child())
            await asyncio.sleep(10)  # sleep-ok

    await _kill_while_awaiting(body)
    assert await wait(child_cancelled) is True


async def test_exit_signal_interrupts_run_in_thread() -> None:
    release = threading.Event()
    try:
        await _kill_while_awaiting(lambda: beamlet.run_in_thread(release.wait, 5))
    finally:
        release.set()


async def test_exit_signal_interrupts_aiohttp_request() -> None:
    async with http_server() as srv:

        async def body() -> None:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(srv.url + "/slow") as resp,
            ):
                await resp.text()

        await _kill_while_awaiting(body, ready=srv.slow_started)


async def test_kill_is_untrappable_even_when_awaiting() -> None:
    me = beamlet.self()

    async def trapper() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(me, "trapping")
        await asyncio.sleep(10)  # sleep-ok

    pid, ref = beamlet.spawn_monitor(trapper)
    await assert_receive("trapping")
    beamlet.exit(pid, "not fatal")  # trapped: becomes a message, the sleep goes on
    assert beamlet.is_alive(pid)
    beamlet.exit(pid, beamlet.KILL)
    assert not beamlet.is_alive(pid)
    assert (await down_of(ref)).reason == KILLED


async def test_process_that_swallows_termination_has_its_side_effects_refused() -> None:
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[list[str]] = loop.create_future()
    closed: asyncio.Future[int] = loop.create_future()
    me = beamlet.self()

    async def stubborn() -> None:
        swallowed = 0
        try:
            beamlet.send(me, "ready")
            try:
                await beamlet.receive()
            except asyncio.CancelledError as e:
                assert isinstance(e, Terminated) and e.reason == "stop"
                swallowed += 1
            attempts = []
            for name, action in [
                ("send", lambda: beamlet.send(me, "zombie message")),
                ("spawn", lambda: beamlet.spawn(asyncio.sleep, 0)),
                ("register", lambda: beamlet.register("zombie")),
                ("link", lambda: beamlet.link(me)),
                ("monitor", lambda: beamlet.monitor(me)),
                ("send_after", lambda: beamlet.send_after(0, me, "zombie timer")),
            ]:
                try:
                    action()
                except Terminated:
                    attempts.append(name)
            refused.set_result(attempts)
            while True:  # keeps going: every await is interrupted again, then it is closed
                try:
                    await asyncio.sleep(0.01)  # sleep-ok
                except asyncio.CancelledError:
                    swallowed += 1
        finally:
            closed.set_result(swallowed)

    pid, ref = beamlet.spawn_monitor(stubborn)
    await assert_receive("ready")
    beamlet.exit(pid, "stop")
    assert not beamlet.is_alive(pid)
    assert await wait(refused) == ["send", "spawn", "register", "link", "monitor", "send_after"]
    assert await wait(closed) >= 2  # it was interrupted again, then its coroutine closed
    assert (await down_of(ref)).reason == "stop"
    await refute_receive(lambda m: isinstance(m, str) and m.startswith("zombie"), timeout=0.05)
    assert beamlet.whereis("zombie") is None
    assert beamlet.process_info(beamlet.self()) is not None
    assert beamlet.process_info(beamlet.self()).links == ()  # type: ignore[union-attr]


# --- CancelledError not caused by the runtime is an error (§1.6) ---------------------


def _assert_cancelled_crash(reason: Any) -> None:
    assert isinstance(reason, Crash)
    assert isinstance(reason.exception, asyncio.CancelledError)
    assert not isinstance(reason.exception, Terminated)


async def test_self_cancel_uncaught_is_a_crash() -> None:
    async def self_cancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(10)  # sleep-ok

    _pid, ref = beamlet.spawn_monitor(self_cancel)
    _assert_cancelled_crash((await down_of(ref)).reason)


async def test_self_cancel_then_receive_is_a_crash() -> None:
    async def self_cancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await beamlet.receive()  # the pending cancellation fires at this await

    _pid, ref = beamlet.spawn_monitor(self_cancel)
    _assert_cancelled_crash((await down_of(ref)).reason)


async def test_raising_cancelled_error_is_a_crash() -> None:
    async def raiser() -> None:
        raise asyncio.CancelledError("not from the runtime")

    _pid, ref = beamlet.spawn_monitor(raiser)
    _assert_cancelled_crash((await down_of(ref)).reason)


async def test_cancel_from_plain_asyncio_code_is_a_crash_and_kills_links() -> None:
    loop = asyncio.get_running_loop()
    handle: asyncio.Future[Any] = loop.create_future()
    beamlet.process_flag(trap_exit=True)

    async def victim() -> None:
        handle.set_result(asyncio.current_task())
        await beamlet.receive()

    pid = beamlet.spawn_link(victim)
    ref = beamlet.monitor(pid)
    task = await wait(handle)
    loop.call_soon(task.cancel)  # from outside any process, like a foreign library would
    down = await down_of(ref)
    _assert_cancelled_crash(down.reason)
    exit_msg = await assert_receive(beamlet.Exit)
    assert exit_msg.pid == pid and exit_msg.reason == down.reason


async def test_foreign_cancellation_can_be_caught_like_in_asyncio() -> None:
    loop = asyncio.get_running_loop()
    handle: asyncio.Future[Any] = loop.create_future()
    me = beamlet.self()

    async def resilient() -> None:
        handle.set_result(asyncio.current_task())
        try:
            await beamlet.receive()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            beamlet.send(me, "caught")
        beamlet.send(me, ("echo", await beamlet.receive()))

    pid, ref = beamlet.spawn_monitor(resilient)
    task = await wait(handle)
    task.cancel()
    await assert_receive("caught")
    assert beamlet.is_alive(pid)
    beamlet.send(pid, "again")
    assert await assert_receive(("echo", ANY)) == ("echo", "again")
    assert (await down_of(ref)).reason == NORMAL


# --- embedding: a node inside an existing asyncio program, and uvloop ----------------


async def _embedded_program() -> dict[str, Any]:
    """An asyncio program that starts a node, with plain tasks running alongside."""
    out: dict[str, Any] = {}
    ticks = 0
    stop_ticking = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop_ticking.is_set():
            ticks += 1
            await asyncio.sleep(0.001)  # sleep-ok

    results: asyncio.Queue[int] = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()
    unwound = asyncio.get_running_loop().create_future()

    async def adder() -> str:
        total = 0
        while True:
            m = await beamlet.receive()
            if m == "stop":
                return "stopped"
            total += m
            results.put_nowait(total)

    async def forever() -> None:
        try:
            started.set_result(None)
            await beamlet.receive()
        finally:
            unwound.set_result(beamlet.is_alive(beamlet.self()))

    async def double(n: int) -> int:
        async with asyncio.timeout(1):
            await asyncio.sleep(0.001)  # sleep-ok
        return 2 * n

    tick_task = asyncio.create_task(ticker())
    async with beamlet.Node() as node:
        pid = node.spawn(adder)
        for i in (1, 2, 3):
            node.send(pid, i)
        out["totals"] = [await asyncio.wait_for(results.get(), 2) for _ in range(3)]
        node.send(pid, "stop")
        out["reason"] = await node.wait(pid, timeout=2)
        out["alive_after"] = node.is_alive(pid)
        out["run"] = await node.run(double, 21)
        node.spawn(forever)
        await asyncio.wait_for(started, 2)
        out["live_before_stop"] = len(node.processes())
    # leaving the node killed the remaining process and let its finally run
    out["unwound_alive"] = await asyncio.wait_for(unwound, 2)
    out["procs_after_stop"] = len(node._procs)
    stop_ticking.set()
    await tick_task
    out["ticks"] = ticks
    out["loop"] = type(asyncio.get_running_loop()).__module__
    return out


def _check_embedded(out: dict[str, Any]) -> None:
    assert out["totals"] == [1, 3, 6]
    assert out["reason"] == NORMAL
    assert out["alive_after"] is False
    assert out["run"] == 42
    assert out["live_before_stop"] == 1
    assert out["unwound_alive"] is False
    assert out["procs_after_stop"] == 0
    assert out["ticks"] > 0


def test_node_embedded_in_asyncio_run() -> None:
    out = asyncio.run(_embedded_program())
    _check_embedded(out)
    assert out["loop"].startswith("asyncio")


async def _uvloop_main(n: int) -> tuple[str, int, str, str, bool]:
    loop_module = type(asyncio.get_running_loop()).__module__
    me = beamlet.self()
    CV.set("main")

    async def echo() -> None:
        sender, msg = await beamlet.receive()
        beamlet.send(sender, (msg, CV.get()))

    pid = beamlet.spawn(echo)
    beamlet.send(pid, (me, n))
    got, ctx = await beamlet.receive(timeout=2)
    timed_out = False
    try:
        async with asyncio.timeout(0.01):
            await beamlet.receive()
    except TimeoutError:
        timed_out = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(5), 0.01)  # sleep-ok

    async def sleeper() -> None:
        await asyncio.sleep(10)  # sleep-ok

    victim, ref = beamlet.spawn_monitor(sleeper)
    await asyncio.sleep(0)  # sleep-ok
    beamlet.exit(victim, "stop")
    down = await beamlet.receive(Down, timeout=2)
    assert down.ref == ref
    return loop_module, got, ctx, down.reason, timed_out


def test_run_on_uvloop() -> None:
    pytest.importorskip("uvloop")
    loop_module, got, ctx, reason, timed_out = beamlet.run(_uvloop_main, 7, use_uvloop=True)
    assert loop_module.startswith("uvloop")
    assert (got, ctx, reason, timed_out) == (7, "main", "stop", True)


def test_node_embedded_in_uvloop_run() -> None:
    uvloop = pytest.importorskip("uvloop")
    out = uvloop.run(_embedded_program())
    _check_embedded(out)
    assert out["loop"].startswith("uvloop")


def test_process_api_outside_a_process_in_embedding() -> None:
    async def main() -> list[str]:
        errors = []
        async with beamlet.Node() as node:
            for call in (beamlet.self, lambda: beamlet.send(beamlet.Pid("x@y", 1), 1)):
                try:
                    call()
                except NotInProcess:
                    errors.append("ok")

            async def plain_task() -> None:
                beamlet.self()

            with pytest.raises(NotInProcess):
                await asyncio.create_task(plain_task())
            errors.append("task ok")
            assert node.processes() == []
        return errors

    assert asyncio.run(main()) == ["ok", "ok", "task ok"]
