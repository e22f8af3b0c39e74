"""Tiny workers for the supervision tests, written with the kernel API only.

`worker` plays the part of supervisor_SUITE's `supervisor_1` gen_server: it traps exits,
stops with `shutdown`/`(shutdown, T)` when it gets such an exit signal (from anyone) or
with the parent's reason, and obeys a few messages:

* `"stop"`  -> exits `normal`
* `"die"`   -> exits `died`
* `("exit", reason)` -> exits `reason`
* `("sleep", seconds)` -> sleeps, ignoring everything (to test shutdown timeouts)
* `("echo", from, tag, value)` -> `send(from, (tag, value))`
"""

from __future__ import annotations

from typing import Any

import beamlet
from beamlet import KILL, KILLED, NORMAL, SHUTDOWN, Atom, Down, Exit, Pid
from beamlet.behaviours.child_spec import ChildSpec, StartError
from beamlet.testing import assert_receive

DIED = Atom("died")


async def worker(parent: Pid, ack: Any = None) -> None:
    beamlet.process_flag(trap_exit=True)
    if ack is not None:
        beamlet.send(parent, (ack, beamlet.self()))
    while True:
        msg = await beamlet.receive()
        match msg:
            case "stop":
                return
            case "die":
                beamlet.exit(DIED)
            case ("exit", reason):
                beamlet.exit(reason)
            case ("sleep", seconds):
                await beamlet.sleep(seconds)
            case ("echo", sender, t, value):
                beamlet.send(sender, (t, value))
            case Exit(pid=p, reason=reason) if (
                p == parent
                or reason == SHUTDOWN
                or (type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN)
            ):
                beamlet.exit(reason)
            case _:
                pass


async def start_worker(notify: Pid | None = None, tag: Any = None) -> Pid:
    """The start function: runs in the supervisor, returns the linked child once it
    traps exits (as gen_server:start_link returns after init). With
    `notify`, sends `("started", tag, pid)` there (from the supervisor, so the message
    exists even if the child is stopped before it ever runs)."""
    ack = beamlet.make_ref()
    pid = beamlet.spawn_link(worker, beamlet.self(), ack)
    await beamlet.receive((ack, pid))  # like gen_server:start_link: after init
    if notify is not None:
        beamlet.send(notify, ("started", tag, pid))
    return pid


async def ignore_start(*_: Any) -> None:
    return None


ERROR = Atom("error")


def fail_after_first(reason: Any = ERROR) -> Any:
    """A start function that succeeds once, then fails cleanly (supervisor_1's
    `start_child(error)`)."""
    calls = [0]

    async def start() -> Pid:
        calls[0] += 1
        if calls[0] > 1:
            raise StartError(reason)
        return await start_worker()

    return start


def toggled_start(state: dict[str, bool]) -> Any:
    """Fails while `state["fail"]` is True (supervisor_deadlock's ets flag)."""

    async def start() -> Pid:
        if state["fail"]:
            raise StartError(Atom("error"))
        return await start_worker()

    return start


def spec(id: Any, start: Any = start_worker, **kw: Any) -> ChildSpec:
    kw.setdefault("shutdown", 1.0)
    return ChildSpec(id=id, start=start, **kw)


async def terminate(pid: Pid, how: Any) -> None:
    """supervisor_SUITE's terminate/4: end `pid` and wait for its DOWN with the
    expected reason (`abnormal` = the `die` message, reason `died`)."""
    ref = beamlet.monitor(pid)
    if how == "kill":
        beamlet.exit(pid, KILL)
        expected: Any = KILLED
    elif how == "normal":
        beamlet.send(pid, "stop")
        expected = NORMAL
    elif how == "abnormal":
        beamlet.send(pid, "die")
        expected = DIED
    else:
        beamlet.exit(pid, how)
        expected = how
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert down.reason == expected, down.reason


async def check_exit(*pids: Pid, timeout: float = 5.0) -> None:
    """Wait for the trapped EXIT of each pid (supervisor_SUITE's check_exit)."""
    for pid in pids:
        await assert_receive(lambda m, pid=pid: type(m) is Exit and m.pid == pid, timeout=timeout)


async def check_exit_reason(pid: Pid, reason: Any, timeout: float = 5.0) -> None:
    m = await assert_receive(lambda m: type(m) is Exit and m.pid == pid, timeout=timeout)
    assert m.reason == reason, m.reason


async def wait_down(pid: Pid) -> Any:
    ref = beamlet.monitor(pid)
    return (await assert_receive(lambda m: type(m) is Down and m.ref == ref, timeout=5)).reason
