"""The kernel API for embedding and for the layers above: `Node`'s pid-based methods,
`NodeVar`, `attach_distribution` (issue 9 §2, §5)."""

from __future__ import annotations

from typing import Any

import pytest

import beamlet
from beamlet import ANY, NOPROC, Down, Exit, Node
from beamlet._core import NodeVar, RemoteHook


async def _idle() -> None:
    await beamlet.receive(("stop", ANY))


async def test_node_methods_take_pids_as_documented(node: Node) -> None:
    """`Node.link(a, b)`, `monitor`, `demonitor`, `alias`, `unalias`, `unlink` and
    `set_trap_exit` act for the process named by their first pid (they took an internal
    process object before)."""
    a = node.spawn(_idle)
    b = node.spawn(_idle)
    me = beamlet.self()
    node.link(a, b)
    info = node.process_info(a)
    assert info is not None and b in info.links
    node.unlink(a, b)
    info = node.process_info(a)
    assert info is not None and b not in info.links
    assert node.set_trap_exit(me, True) is False
    node.link(me, a)
    node.exit(a, "bye")
    assert await beamlet.receive(Exit, timeout=5) == Exit(a, "bye")
    ref = node.monitor(me, b)
    assert node.demonitor(me, ref) is True
    ref = node.monitor(me, b)
    node.exit(b, "gone")
    down = await beamlet.receive(Down, timeout=5)
    assert (down.ref, down.reason) == (ref, "gone")
    alias = node.alias(me)
    node.send(alias, "via alias")
    assert await beamlet.receive("via alias", timeout=5) == "via alias"
    assert node.unalias(me, alias) is True
    assert node.monitor(me, a) is not None  # a is dead: DOWN noproc at once
    assert (await beamlet.receive(Down, timeout=5)).reason == NOPROC


async def test_node_methods_refuse_a_pid_that_is_not_a_live_local_process(node: Node) -> None:
    dead = node.spawn(_idle)
    node.exit(dead, beamlet.KILL)
    await node.wait(dead, 5)
    for call in (
        lambda: node.link(dead, beamlet.self()),
        lambda: node.monitor(dead, beamlet.self()),
        lambda: node.alias(dead),
        lambda: node.set_trap_exit(dead, True),
        lambda: node.link("not a pid", beamlet.self()),  # type: ignore[arg-type]
    ):
        with pytest.raises(beamlet.BadArgument):
            call()


COUNTER: NodeVar[dict[str, int]] = NodeVar("tests.counter", dict)


async def test_node_var_is_per_node_and_starts_empty(node: Node) -> None:
    """A NodeVar's value belongs to one node: a fresh node starts with the factory's
    value, two nodes in one OS process never share it."""
    assert not COUNTER.is_set()
    COUNTER.get()["hits"] = 1
    assert COUNTER.get() == {"hits": 1} and COUNTER.get(node) is COUNTER.get()
    async with Node() as other:
        assert COUNTER.get(other) == {}

        async def read() -> dict[str, int]:
            return COUNTER.get()

        assert await other.run(read) == {}
        COUNTER.set({"x": 2}, other)
        assert COUNTER.get(other) == {"x": 2}
    assert COUNTER.get() == {"hits": 1}


def test_node_var_outside_a_process_needs_a_node() -> None:
    with pytest.raises(beamlet.NotInProcess):
        COUNTER.get()


async def test_registry_tables_start_empty_on_a_fresh_node() -> None:
    """Registry keeps its tables in a NodeVar: a new node knows no registry."""
    await beamlet.Registry.start_link(keys="unique", name="reg_fresh")
    beamlet.Registry.register("reg_fresh", "k", None)
    assert beamlet.Registry.lookup("reg_fresh", "k") == [(beamlet.self(), None)]
    async with Node() as other:

        async def lookup() -> Any:
            try:
                return beamlet.Registry.lookup("reg_fresh", "k")
            except Exception as e:
                return type(e).__name__

        assert await other.run(lookup) == "UnknownRegistry"


class _Hook:
    """A RemoteHook that records what the kernel sends through it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, sender: Any, dest: Any, msg: Any) -> None:
        self.sent.append((sender, dest, msg))

    def link(self, local: Any, remote: Any) -> None: ...
    def unlink(self, local: Any, remote: Any) -> None: ...
    def exit(self, sender: Any, target: Any, reason: Any) -> None: ...
    def link_exit(self, sender: Any, target: Any, reason: Any) -> None: ...
    def monitor(self, watcher: Any, target: Any, ref: Any) -> None: ...
    def demonitor(self, watcher: Any, target: Any, ref: Any) -> None: ...
    def down(self, target: Any, watcher: Any, ref: Any, reason: Any) -> None: ...


async def test_attach_distribution_is_the_one_entry_point() -> None:
    """The hook gets every remote send; creation is in the system pid and every new pid;
    attaching twice, or after the first spawn, is refused; detach unplugs it."""
    hook = _Hook()
    checked: RemoteHook = hook
    async with Node("a@host") as n:
        n.attach_distribution(checked, 7)
        assert n.dist is hook and n.system_pid.creation == 7
        with pytest.raises(beamlet.BadArgument):
            n.attach_distribution(_Hook(), 8)
        remote = beamlet.Pid(beamlet.Atom("b@host"), 1)
        n.send(remote, "hi")
        assert hook.sent == [(n.system_pid, remote, "hi")]
        pid = n.spawn(_idle)
        assert pid.creation == 7
        n.detach_distribution(hook)
        assert n.dist is None
        with pytest.raises(beamlet.BadArgument):
            n.attach_distribution(hook, 9)  # processes exist already


async def test_an_ended_process_is_freed_without_the_cycle_collector() -> None:
    # issue 10's soak: a pid cached its Proc and the Proc its pid, so every ended process
    # waited for a full collection (RSS grew 16 % in 10 minutes). Now reference counting
    # frees it once its pids go; Node.wait still answers an ended pid's reason.
    import gc

    from beamlet._core.process import Proc

    async def quick() -> None:
        pass

    def procs() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is Proc)

    gc.collect()
    before = procs()
    gc.disable()
    try:
        for _ in range(200):
            pid, ref = beamlet.spawn_monitor(quick)
            await beamlet.receive(lambda m, ref=ref: type(m) is Down and m.ref == ref, timeout=5)
        del pid, ref
        assert procs() - before < 10
    finally:
        gc.enable()
    async with Node() as node:
        done = node.spawn(quick)
        await node.wait(done)
        assert await node.wait(done) == beamlet.NORMAL  # ended already: its reason
