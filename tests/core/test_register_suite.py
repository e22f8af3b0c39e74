"""Port of erts/emulator/test/register_SUITE.erl (otp_8099) plus the register /
unregister / whereis / name-release rules of docs/semantics.md §5 that §12.3 asks for
("all cases"), and process_SUITE bad_register's `Name ! Msg` half (§2.1).

Python differences: `register`/`unregister` return None (Erlang: true); the errors are
`NameTaken` (name or pid already registered), `BadArgument` (bad name, `undefined`, bad or
dead pid) and `NotRegistered` (unknown name in unregister/send); all are badarg in
Erlang. `whereis` returns None for `undefined`. Names are str or Atom, compared as atoms.
Edge cases were checked against OTP 25 with `erl`.
"""

from __future__ import annotations

import pytest

import beamlet
from beamlet import (
    ANY,
    KILL,
    Atom,
    BadArgument,
    Down,
    Exit,
    NameTaken,
    NotRegistered,
    Pid,
)
from beamlet.testing import assert_receive, refute_receive

PROCESS = Atom("process")


async def _proc() -> None:
    while True:
        await beamlet.receive()


def _down_of(ref: beamlet.Ref) -> object:
    return lambda m: isinstance(m, Down) and m.ref == ref


async def test_otp_8099() -> None:
    """otp_8099 (§5, §5.3): register a fresh process under a name whose previous holder
    was just killed, many times over (upstream: 1,000,000 times). As upstream, if the
    name still appears taken, unregister it, kill the holder and register again."""
    name = "otp_8099_reg_proc"
    for _ in range(3000):
        p = beamlet.spawn(_proc)
        try:
            beamlet.register(name, p)
        except NameTaken:
            op = beamlet.whereis(name)
            try:
                beamlet.unregister(name)
            except NotRegistered:
                pass
            if op is not None:
                beamlet.exit(op, KILL)
            beamlet.register(name, p)
        assert beamlet.whereis(name) == p
        beamlet.exit(p, KILL)
    assert beamlet.whereis(name) is None


async def test_register_whereis_unregister() -> None:
    """§5: register → true, whereis → pid, registered() lists it, unregister → true,
    then whereis → undefined (None) and the name can be reused."""
    p = beamlet.spawn(_proc)
    assert beamlet.register("reg_a", p) is None
    assert beamlet.whereis("reg_a") == p
    assert beamlet.whereis(Atom("reg_a")) == p  # str and Atom name the same atom
    assert Atom("reg_a") in beamlet.registered()
    info = beamlet.process_info(p)
    assert info is not None and info.registered_name == Atom("reg_a")
    assert beamlet.unregister("reg_a") is None
    assert beamlet.whereis("reg_a") is None
    assert Atom("reg_a") not in beamlet.registered()
    info = beamlet.process_info(p)
    assert info is not None and info.registered_name is None
    beamlet.register("reg_a", beamlet.self())  # default pid: the caller
    assert beamlet.whereis("reg_a") == beamlet.self()
    beamlet.unregister("reg_a")


async def test_register_failures() -> None:
    """§5 failure column (verified on OTP 25): a taken name (also by the same pid), a pid
    that already has a name, `undefined`, a dead pid, a non-atom name, all badarg; a failed
    register changes nothing."""
    me = beamlet.self()
    other = beamlet.spawn(_proc)
    beamlet.register("reg_taken", me)
    with pytest.raises(NameTaken):
        beamlet.register("reg_taken", me)  # same name, same pid
    with pytest.raises(NameTaken):
        beamlet.register("reg_taken", other)  # same name, other pid
    with pytest.raises(NameTaken):
        beamlet.register("reg_second_name", me)  # the pid already has a name
    with pytest.raises(BadArgument):
        beamlet.register("undefined", other)
    with pytest.raises(BadArgument):
        beamlet.register(Atom("undefined"), other)
    for bad_name in (("bad", "name"), ["bad", "name"], 42, None, b"x"):
        with pytest.raises(BadArgument):
            beamlet.register(bad_name, other)  # type: ignore[arg-type]
    dead, ref = beamlet.spawn_monitor(_quick)
    await assert_receive(_down_of(ref))
    with pytest.raises(BadArgument):
        beamlet.register("reg_dead", dead)
    assert beamlet.whereis("reg_taken") == me
    assert beamlet.whereis("reg_second_name") is None
    assert beamlet.whereis("reg_dead") is None
    info = beamlet.process_info(other)
    assert info is not None and info.registered_name is None
    beamlet.unregister("reg_taken")


async def _quick() -> None:
    return None


async def test_unregister_failures_and_other_holders() -> None:
    """§5, §5.2: unregister of an unknown name is badarg (NotRegistered); any process may
    unregister any name."""
    with pytest.raises(NotRegistered):
        beamlet.unregister("reg_never")
    p = beamlet.spawn(_proc)
    beamlet.register("reg_of_p", p)

    async def unregisterer(test: Pid) -> None:
        beamlet.unregister("reg_of_p")
        beamlet.send(test, "done")

    beamlet.spawn(unregisterer, beamlet.self())
    await assert_receive("done")
    assert beamlet.whereis("reg_of_p") is None
    with pytest.raises(NotRegistered):
        beamlet.unregister("reg_of_p")


async def test_whereis_unknown_is_undefined() -> None:
    """§5: whereis of an unregistered name returns undefined (None), no error."""
    assert beamlet.whereis("reg_nobody") is None


@pytest.mark.parametrize("how", ["normal", "crash", "killed", "exit_signal"])
async def test_name_released_on_exit(how: str) -> None:
    """§5.3 / §1.4 step 1: whatever the way a process ends, its name is released, and
    already so when its DOWN arrives: the name can be re-registered at once."""

    test = beamlet.self()

    async def holder() -> None:
        beamlet.register("reg_released", beamlet.self())
        beamlet.send(test, "registered")
        msg = await beamlet.receive()
        if msg == "crash":
            raise RuntimeError("boom")

    p, ref = beamlet.spawn_monitor(holder)
    await assert_receive("registered")
    assert beamlet.whereis("reg_released") == p
    if how == "normal":
        beamlet.send(p, "return")
    elif how == "crash":
        beamlet.send(p, "crash")
    elif how == "killed":
        beamlet.exit(p, KILL)
    else:
        beamlet.exit(p, "shot")
    await assert_receive(_down_of(ref))
    assert beamlet.whereis("reg_released") is None
    assert Atom("reg_released") not in beamlet.registered()
    beamlet.register("reg_released", beamlet.self())
    beamlet.unregister("reg_released")


async def test_name_released_before_link_exit() -> None:
    """§5.3: a trapping "supervisor" that reacts to the EXIT of a named child can restart
    and re-register the name immediately, without already_started."""
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        beamlet.register("reg_child", beamlet.self())
        beamlet.send(parent, ("up", beamlet.self()))
        await beamlet.receive()
        beamlet.exit("crashed")

    parent = beamlet.self()
    for _ in range(20):
        c = beamlet.spawn_link(child)
        await assert_receive(("up", c))
        beamlet.send(c, "die")
        assert await assert_receive(Exit) == Exit(c, "crashed")
        assert beamlet.whereis("reg_child") is None
    c = beamlet.spawn_link(child)
    await assert_receive(("up", c))
    assert beamlet.whereis("reg_child") == c


async def test_whereis_dead_pid_name_is_undefined_at_once() -> None:
    """§5.3 (verified): right after exit/2 kills a named process, whereis returns
    undefined."""
    p = beamlet.spawn(_proc)
    beamlet.register("reg_dies", p)
    beamlet.exit(p, "bye")
    assert beamlet.whereis("reg_dies") is None


async def test_send_to_name() -> None:
    """§2.1 / §5.4: sending to a name delivers to the current holder (resolved at send
    time); to an unregistered name raises badarg (NotRegistered); to {Name, LocalNode}
    with an unregistered Name is silently dropped."""
    test = beamlet.self()
    node = beamlet.node_name()

    async def echo() -> None:
        while True:
            beamlet.send(test, ("echo", beamlet.self(), await beamlet.receive()))

    a = beamlet.spawn(echo)
    b = beamlet.spawn(echo)
    beamlet.register("reg_echo", a)
    beamlet.send("reg_echo", 1)
    beamlet.send(("reg_echo", node), 2)
    beamlet.send((Atom("reg_echo"), node), 3)
    assert [await assert_receive(("echo", a, ANY)) for _ in range(3)] == [
        ("echo", a, 1),
        ("echo", a, 2),
        ("echo", a, 3),
    ]
    beamlet.unregister("reg_echo")
    beamlet.register("reg_echo", b)
    beamlet.send("reg_echo", 4)
    assert await assert_receive(("echo", ANY, ANY)) == ("echo", b, 4)
    beamlet.unregister("reg_echo")
    with pytest.raises(NotRegistered):
        beamlet.send("reg_echo", 5)
    beamlet.send(("reg_echo", node), 6)  # no error
    with pytest.raises(NotRegistered):
        beamlet.send("undefined", 7)
    await refute_receive(("echo", ANY, ANY), timeout=0.05)


async def test_one_name_per_process() -> None:
    """§5.1: one name per process, one process per name; a process whose name was
    unregistered may take another name."""
    p = beamlet.spawn(_proc)
    beamlet.register("reg_one", p)
    with pytest.raises(NameTaken):
        beamlet.register("reg_two", p)
    beamlet.unregister("reg_one")
    beamlet.register("reg_two", p)
    assert beamlet.whereis("reg_two") == p and beamlet.whereis("reg_one") is None
    ref = beamlet.monitor(p)
    beamlet.exit(p, KILL)
    await assert_receive(_down_of(ref))
    assert Atom("reg_two") not in beamlet.registered()
