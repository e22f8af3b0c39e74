"""Message isolation (§2.2): a receiver never observes the sender's later mutation, and
vice versa. Immutable values travel by reference (no copy, identity kept); mutable ones
are copied on send, as are spawn arguments and exit reasons.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import beamlet
from beamlet import ANY, Atom, Down, Exit, Node, Shared
from beamlet.testing import assert_receive


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int
    label: str = "p"


@dataclasses.dataclass(frozen=True)
class Holder:
    items: list[int]


@dataclasses.dataclass
class MutablePoint:
    x: int
    y: int


class Box:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.meta = {"count": len(items)}


async def keeper() -> None:
    """Keeps the first message it gets, hands it back on request (twice), then can
    report what it holds after the sender mutated the original."""
    owner, msg = await beamlet.receive()
    beamlet.send(owner, ("got", Shared(msg)))  # by reference: the test inspects the copy
    while True:
        req = await beamlet.receive()
        if req == "report":
            beamlet.send(owner, ("now", Shared(msg)))


async def received_object(msg: Any) -> tuple[beamlet.Pid, Any]:
    """Send `msg` to a fresh process and return (pid, the object the receiver holds)."""
    pid = beamlet.spawn(keeper)
    beamlet.send(pid, (beamlet.self(), msg))
    _, shared = await assert_receive(("got", ANY))
    return pid, shared.value


def mutate(value: Any) -> None:
    if isinstance(value, list):
        value.append("mutated")
        if value and isinstance(value[0], list | dict | set):
            mutate(value[0])
    elif isinstance(value, dict):
        value["mutated"] = True
        for v in list(value.values()):
            if isinstance(v, list | dict | set):
                mutate(v)
    elif isinstance(value, set):
        value.add("mutated")
    elif isinstance(value, bytearray):
        value[0:1] = b"X"
        value.extend(b"!")
    elif isinstance(value, Box):
        value.items.append("mutated")
        value.meta["count"] = -1
    elif isinstance(value, MutablePoint):
        value.x = -1
    elif isinstance(value, Holder):
        value.items.append(-1)
    else:  # pragma: no cover - a test bug
        raise AssertionError(f"do not know how to mutate {value!r}")


def make_mutables() -> list[tuple[str, Any]]:
    return [
        ("list", [1, 2, 3]),
        ("dict", {"a": 1, "b": [1, 2]}),
        ("set", {1, 2, 3}),
        ("nested", [[1, [2, 3]], {"k": {"deep": [4]}}]),
        ("dict of lists", {"xs": [1], "ys": {"zs": [2]}}),
        ("bytearray", bytearray(b"abc")),
        ("custom class", Box([1, 2])),
        ("mutable dataclass", MutablePoint(1, 2)),
        ("frozen dataclass holding a list", Holder([1, 2])),
        ("tuple holding a list", (1, [2, 3])),
    ]


def snapshot(value: Any) -> Any:
    """A structural fingerprint that does not share anything with `value`."""
    if isinstance(value, Box):
        return ("Box", snapshot(value.items), snapshot(value.meta))
    if isinstance(value, MutablePoint | Holder):
        return (type(value).__name__, snapshot(dataclasses.asdict(value)))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [snapshot(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(k), snapshot(v)) for k, v in value.items()))
    if isinstance(value, set):
        return ("set", sorted(map(repr, value)))
    if isinstance(value, bytearray):
        return ("bytearray", bytes(value))
    return value


@pytest.mark.parametrize(("kind", "value"), make_mutables(), ids=[k for k, _ in make_mutables()])
async def test_receiver_never_sees_senders_later_mutation(kind: str, value: Any) -> None:
    before = snapshot(value)
    pid, got = await received_object(value)
    assert got is not value
    assert snapshot(got) == before
    # the sender mutates its original after the send ...
    if isinstance(value, tuple):
        mutate(value[1])
    else:
        mutate(value)
    assert snapshot(value) != before
    # ... and the receiver still holds what was sent
    beamlet.send(pid, "report")
    _, now = await assert_receive(("now", ANY))
    assert snapshot(now.value) == before


@pytest.mark.parametrize(("kind", "value"), make_mutables(), ids=[k for k, _ in make_mutables()])
async def test_sender_never_sees_receivers_mutation(kind: str, value: Any) -> None:
    before = snapshot(value)
    me = beamlet.self()

    async def mutator() -> None:
        msg = await beamlet.receive()
        if isinstance(msg, tuple):
            mutate(msg[1])
        else:
            mutate(msg)
        beamlet.send(me, "mutated")

    pid = beamlet.spawn(mutator)
    beamlet.send(pid, value)
    await assert_receive("mutated")
    assert snapshot(value) == before


async def test_copy_keeps_internal_sharing_and_cycles() -> None:
    inner = [1, 2]
    msg: list[Any] = [inner, inner]
    msg.append(msg)  # a cycle
    _, got = await received_object(msg)
    assert got is not msg
    assert got[0] is got[1] and got[0] is not inner
    assert got[2] is got


async def test_each_receiver_gets_its_own_copy() -> None:
    data = {"n": [1]}
    _, a = await received_object(data)
    _, b = await received_object(data)
    assert a == b == data
    assert a is not b and a["n"] is not b["n"]


IMMUTABLES: list[tuple[str, Any]] = [
    ("flat tuple", (1, "two", 3.0, None, b"five")),
    ("nested tuple", (1, ("a", (2, ("b",))), frozenset({1, 2}))),
    ("big int", 10**40),
    ("str", "a string that is not interned " * 3),
    ("bytes", b"\x00" * 100),
    ("frozenset", frozenset({"a", ("b", 1)})),
    ("frozen dataclass", Point(1, 2)),
    ("tuple of frozen dataclasses", (Point(1, 2), Point(3, 4, "q"))),
    ("atom", Atom("ok")),
    ("tuple with atoms", (Atom("reply"), Atom("ok"), 3)),
]


@pytest.mark.parametrize(("kind", "value"), IMMUTABLES, ids=[k for k, _ in IMMUTABLES])
async def test_immutable_values_are_passed_by_reference(kind: str, value: Any) -> None:
    _, got = await received_object(value)
    assert got is value


async def test_pids_and_refs_are_passed_by_reference() -> None:
    me = beamlet.self()
    ref = beamlet.make_ref()
    other = beamlet.spawn(keeper)
    for value in (me, ref, other, (me, ref), (Atom("from"), me, (ref, other))):
        _, got = await received_object(value)
        assert got is value
    # and as items of a container that is copied, they are kept, not duplicated
    _, got = await received_object([me, ref])
    assert got[0] is me and got[1] is ref


async def test_frozen_dataclass_with_mutable_field_is_copied() -> None:
    holder = Holder([1])
    _, got = await received_object(holder)
    assert got is not holder and got.items is not holder.items
    holder.items.append(2)
    assert got.items == [1]


async def test_spawn_arguments_are_isolated() -> None:
    me = beamlet.self()
    data = {"xs": [1, 2]}
    point = Point(1, 2)
    tup = (1, ("a", Atom("b")))

    async def child(d: dict[str, list[int]], p: Point, t: Any) -> None:
        beamlet.send(me, ("identity", p is point, t is tup, d is data))
        await beamlet.receive("check")
        beamlet.send(me, ("seen", d["xs"][:]))
        d["xs"].append(99)  # the child's own copy
        beamlet.send(me, "child mutated")

    pid = beamlet.spawn(child, data, point, tup)
    assert await assert_receive(("identity", ANY, ANY, ANY)) == ("identity", True, True, False)
    data["xs"].append(3)  # the parent mutates after spawn
    beamlet.send(pid, "check")
    assert await assert_receive(("seen", ANY)) == ("seen", [1, 2])
    await assert_receive("child mutated")
    assert data == {"xs": [1, 2, 3]}


async def test_exit_signal_reason_is_isolated() -> None:
    me = beamlet.self()
    reason = ["custom", {"detail": [1]}]

    async def trapper() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(me, "trapping")
        msg = await beamlet.receive(Exit)
        beamlet.send(me, ("trapped", Shared(msg.reason)))

    pid = beamlet.spawn(trapper)
    await assert_receive("trapping")
    beamlet.exit(pid, reason)
    reason[1]["detail"].append("mutated")  # type: ignore[index]
    _, got = await assert_receive(("trapped", ANY))
    assert got.value == ["custom", {"detail": [1]}]
    assert got.value is not reason


async def test_exit_reason_reaches_each_watcher_as_its_own_copy() -> None:
    """Two monitors and two trapping links on one process that exits with a mutable
    reason: every watcher gets an equal value, none shares it with another."""
    me = beamlet.self()
    reason_holder: list[Any] = []

    async def dies() -> None:
        await beamlet.receive("go")
        reason = ["bye", {"k": [1]}]
        reason_holder.append(reason)
        beamlet.exit(reason)

    async def watcher(target: beamlet.Pid, how: str) -> None:
        if how == "link":
            beamlet.process_flag(trap_exit=True)
            beamlet.link(target)
        else:
            beamlet.monitor(target)
        beamlet.send(me, ("watching", beamlet.self()))
        msg = await beamlet.receive(Exit, Down)
        beamlet.send(me, ("reason", how, Shared(msg.reason)))

    target = beamlet.spawn(dies)
    for how in ("link", "link", "monitor", "monitor"):
        beamlet.spawn(watcher, target, how)
        await assert_receive(("watching", ANY))
    ref = beamlet.monitor(target)
    beamlet.send(target, "go")
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    got = [(await assert_receive(("reason", ANY, ANY)))[2].value for _ in range(4)]
    got.append(down.reason)
    for r in got:
        assert r == ["bye", {"k": [1]}]
    ids = {id(r) for r in got} | {id(r[1]["k"]) for r in got}
    assert len(ids) == 2 * len(got), "watchers share the exit reason object"
    assert all(r is not reason_holder[0] for r in got)


async def test_exit_and_down_messages_with_immutable_reasons_keep_identity() -> None:
    reason = ("shutdown", Point(1, 2))

    async def dies() -> None:
        await beamlet.receive("go")
        beamlet.exit(reason)

    pid, ref = beamlet.spawn_monitor(dies)
    beamlet.send(pid, "go")
    down = await assert_receive(Down)
    assert down.ref == ref and down.reason is reason


async def test_message_sent_with_node_send_is_isolated(node: Node) -> None:
    data = [1, 2]
    pid = beamlet.spawn(keeper)
    node.send(pid, (beamlet.self(), data))  # the embedding API copies too
    _, shared = await assert_receive(("got", ANY))
    data.append(3)
    assert shared.value == [1, 2]


@pytest.mark.parametrize("where", [0, 500, 999])
def test_long_tuple_with_one_mutable_item_is_copied(where: int) -> None:
    """A batch of events takes the C fast path only when every item is a scalar."""
    from beamlet._core.isolation import isolate

    items: list[Any] = list(range(1000))
    items[where] = [1, 2]
    batch = tuple(items)
    copy = isolate(batch)
    assert copy == batch
    assert copy is not batch and copy[where] is not batch[where]
    scalars = tuple(range(1000))
    assert isolate(scalars) is scalars
