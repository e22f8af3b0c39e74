"""Quick end-to-end checks of the kernel: spawn, send, receive, monitor, link, timers."""

import asyncio

import pytest

import beamlet
from beamlet import ANY, KILLED, NOPROC, NORMAL, Crash, Down, Exit
from beamlet.testing import assert_receive, refute_receive


async def echo() -> None:
    while True:
        sender, msg = await beamlet.receive()
        beamlet.send(sender, msg)


async def test_echo_round_trip() -> None:
    pid = beamlet.spawn(echo)
    beamlet.send(pid, (beamlet.self(), "hi"))
    assert await assert_receive() == "hi"


async def test_crash_gives_down_with_crash_reason() -> None:
    async def boom() -> None:
        raise ValueError("boom")

    pid, ref = beamlet.spawn_monitor(boom)
    down = await assert_receive(Down)
    assert down.ref == ref and down.pid == pid
    assert isinstance(down.reason, Crash) and isinstance(down.reason.exception, ValueError)


async def test_monitor_dead_pid_gives_noproc() -> None:
    async def quick() -> None:
        return None

    pid, _ref = beamlet.spawn_monitor(quick)
    assert (await assert_receive(Down)).reason == NORMAL
    ref2 = beamlet.monitor(pid)
    down = await assert_receive(Down)
    assert down.ref == ref2 and down.reason == NOPROC


async def test_kill_trapped_link_sees_killed() -> None:
    beamlet.process_flag(trap_exit=True)
    pid = beamlet.spawn_link(echo)
    beamlet.exit(pid, beamlet.KILL)
    assert await assert_receive(Exit) == Exit(pid, KILLED)


async def test_selective_receive_keeps_order() -> None:
    me = beamlet.self()
    for m in [1, "a", 2, "b", 3]:
        beamlet.send(me, m)
    assert await beamlet.receive(str) == "a"
    assert [await beamlet.receive() for _ in range(4)] == [1, 2, "b", 3]


@pytest.mark.virtual_time
async def test_send_after_and_receive_timeout_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ref = beamlet.send_after(3600, beamlet.self(), "late")
    assert beamlet.read_timer(ref) == pytest.approx(3600, abs=0.01)
    assert await beamlet.receive(timeout=10, default="nothing") == "nothing"
    assert await assert_receive("late", timeout=4000) == "late"
    assert loop.time() - t0 == pytest.approx(3600)


async def test_asyncio_timeout_inside_process() -> None:
    assert asyncio.current_task() is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)  # sleep-ok: the sleep is what is tested, or a yield
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await beamlet.receive()
    await refute_receive(ANY, timeout=0.01)
