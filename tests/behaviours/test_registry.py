"""Registry (docs/semantics.md §11.2): ports of lib/elixir/test/elixir/registry/
unique_test.exs, duplicate_test.exs and registry_test.exs (test names snake_cased),
each run with 1 and 8 partitions as upstream does."""

from __future__ import annotations

from typing import Any

import pytest

import beamlet
from beamlet import KILL, Down, Exit, Pid, ets
from beamlet.behaviours.agent import Agent
from beamlet.behaviours.child_spec import StartError
from beamlet.behaviours.gen_server import CallExit, GenServer, NoReply, Reply
from beamlet.behaviours.registry import (
    AlreadyRegistered,
    Registered,
    Registry,
    RegistryError,
    UnknownRegistry,
    Unregistered,
    _sync,
    _table,
)
from beamlet.behaviours.supervisor import AlreadyStarted, Supervisor
from beamlet.testing import assert_receive, refute_receive

PARTITIONS = [1, 8]


async def start_registry(keys: str, partitions: int, **kw: Any) -> str:
    name = f"registry_{keys}_{partitions}"
    await Registry.start_link(keys=keys, name=name, partitions=partitions, **kw)  # type: ignore[arg-type]
    return name


async def register_task(registry: str, key: Any, value: Any) -> tuple[Pid, Pid]:
    """A process that registers `key` and then waits (Elixir's register_task)."""
    parent = beamlet.self()

    async def task() -> None:
        owner = Registry.register(registry, key, value)
        beamlet.send(parent, ("registered", beamlet.self(), owner))
        await beamlet.receive("never")

    pid = beamlet.spawn(task)
    _, _, owner = await assert_receive(("registered", pid, Pid))
    return owner, pid


async def kill_and_assert_down(pid: Pid) -> None:
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, KILL)
    await assert_receive(lambda m: type(m) is Down and m.ref == ref)


def links() -> tuple[Pid, ...]:
    info = beamlet.process_info(beamlet.self())
    assert info is not None
    return info.links


def typed_sorted(keys: list[Any]) -> list[Any]:
    return sorted(keys, key=lambda k: (type(k).__name__, k))


# --- unique_test.exs -------------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_starts_configured_number_of_partitions(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    assert len(await Supervisor.which_children(reg)) == partitions


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_has_unique_registrations(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    pid = Registry.register(reg, "hello", "value")
    assert isinstance(pid, Pid)
    assert Registry.keys(reg, beamlet.self()) == ["hello"]
    with pytest.raises(AlreadyRegistered) as e:
        Registry.register(reg, "hello", "value")
    assert e.value.pid == beamlet.self()
    assert Registry.keys(reg, beamlet.self()) == ["hello"]
    assert isinstance(Registry.register(reg, "world", "value"), Pid)
    assert sorted(Registry.keys(reg, beamlet.self())) == ["hello", "world"]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_has_unique_registrations_across_processes(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    _, task = await register_task(reg, "hello", "value")
    regpid = beamlet.whereis(reg)
    assert regpid is not None
    beamlet.link(regpid)
    with pytest.raises(AlreadyRegistered) as e:
        Registry.register(reg, "hello", "recent")
    assert e.value.pid == task and e.value.reason == (beamlet.Atom("already_registered"), task)
    assert Registry.keys(reg, beamlet.self()) == []
    assert regpid in links()


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_has_unique_registrations_even_if_partition_is_delayed(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    _, task = await register_task(reg, "hello", "value")
    with pytest.raises(AlreadyRegistered):
        Registry.register(reg, "hello", "other")
    # exit/2 with kill ends the task at once, in this very step: its partition has not
    # run yet, so the dead entry is still in the table (the "delayed partition")
    beamlet.exit(task, KILL)
    assert not beamlet.is_alive(task)
    Registry.register(reg, "hello", "other")
    assert Registry.lookup(reg, "hello") == [(beamlet.self(), "other")]
    await _sync(reg)  # the partition's late cleanup must not remove the new entry
    assert Registry.lookup(reg, "hello") == [(beamlet.self(), "other")]
    assert Registry.count(reg) == 1


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_dispatches_to_a_single_key(partitions: int) -> None:
    reg = await start_registry("unique", partitions)

    def never(_: Any) -> None:
        raise AssertionError("will never be invoked")

    await Registry.dispatch(reg, "hello", never)
    Registry.register(reg, "hello", "value")

    def fn(entries: list[tuple[Pid, Any]]) -> None:
        [(pid, value)] = entries
        beamlet.send(pid, ("dispatch", value))

    await Registry.dispatch(reg, "hello", fn)
    await assert_receive(("dispatch", "value"), timeout=0)


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_unregisters_process_by_key(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    Registry.unregister(reg, "hello")
    Registry.register(reg, "hello", "value")
    Registry.register(reg, "world", "value")
    assert sorted(Registry.keys(reg, beamlet.self())) == ["hello", "world"]
    Registry.unregister(reg, "hello")
    assert Registry.keys(reg, beamlet.self()) == ["world"]
    Registry.unregister(reg, "world")
    assert Registry.keys(reg, beamlet.self()) == []


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_unregisters_with_no_entries(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    assert Registry.unregister(reg, "hello") is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_allows_listeners(partitions: int) -> None:
    listener = f"unique_listener_{partitions}"
    beamlet.register(listener, beamlet.self())
    reg = await start_registry("unique", partitions, listeners=[listener])
    _, task = await register_task(reg, "hello", "world")
    await assert_receive(Registered(beamlet.Atom(reg), "hello", task, "world"), timeout=0)
    me = beamlet.self()
    Registry.register(reg, "world", "value")
    await assert_receive(Registered(beamlet.Atom(reg), "world", me, "value"), timeout=0)
    Registry.unregister(reg, "world")
    await assert_receive(Unregistered(beamlet.Atom(reg), "world", me), timeout=0)
    # removals caused by an exit are not announced (§11.2.4)
    await kill_and_assert_down(task)
    await _sync(reg)
    await refute_receive(Unregistered)


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_links_and_unlinks_on_register_unregister(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    pid = Registry.register(reg, "hello", "value")
    assert pid in links()
    pid = Registry.register(reg, "world", "value")
    assert pid in links()
    Registry.unregister(reg, "hello")
    assert pid in links()  # still holds "world" there
    Registry.unregister(reg, "world")
    assert pid not in links()


async def test_raises_on_unknown_registry_name() -> None:
    with pytest.raises(UnknownRegistry, match="unknown registry"):
        Registry.register("unknown", "hello", "value")
    with pytest.raises(UnknownRegistry):
        Registry.lookup("unknown", "hello")
    # a registry that has stopped is unknown too
    reg = await start_registry("unique", 1)
    await Supervisor.stop(reg)
    with pytest.raises(UnknownRegistry):
        Registry.lookup(reg, "hello")


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_via_callbacks(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    name = Registry.via(reg, "hello")
    pid = await Agent.start_link(lambda: 0, name=name)  # register_name
    await Agent.update(name, lambda n: n + 1)  # send
    assert await Agent.get(name, lambda n: n) == 1  # whereis_name
    with pytest.raises(StartError):  # unregister_name after a failed init

        def oops() -> None:
            raise RuntimeError("oops")

        await Agent.start(oops, name=Registry.via(reg, "other"))
    assert Registry.lookup(reg, "other") == []
    with pytest.raises(StartError) as e:
        await Agent.start(lambda: 0, name=name)
    assert e.value.reason == (beamlet.Atom("already_started"), pid)
    # a missing key: call exits noproc, cast is a no-op
    missing = Registry.via(reg, "missing")
    with pytest.raises(CallExit) as ce:
        await GenServer.call(missing, "ping")
    assert ce.value.cause == beamlet.NOPROC
    GenServer.cast(missing, "ping")


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_uses_value_provided_in_via(partitions: int) -> None:
    reg = await start_registry("unique", partitions)
    pid = await Agent.start_link(lambda: 0, name=Registry.via(reg, "hello", "value"))
    assert Registry.lookup(reg, "hello") == [(pid, "value")]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_updates_current_process_value(partitions: int) -> None:
    reg = await start_registry("unique", partitions)

    def boom(_: Any) -> Any:
        raise AssertionError("not called")

    assert Registry.update_value(reg, "hello", boom) is None
    await register_task(reg, "hello", "value")
    assert Registry.update_value(reg, "hello", boom) is None
    Registry.register(reg, "world", 1)
    assert Registry.lookup(reg, "world") == [(beamlet.self(), 1)]
    assert Registry.update_value(reg, "world", lambda n: n + 1) == (2, 1)
    assert Registry.lookup(reg, "world") == [(beamlet.self(), 2)]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_compares_using_strict_equality(partitions: int) -> None:
    """Elixir's "compares using ===": 1, 1.0 (and True) are different keys."""
    reg = await start_registry("unique", partitions)
    Registry.register(reg, 1.0, "value")
    Registry.register(reg, 1, "value")
    Registry.register(reg, True, "value")
    Registry.register(reg, (1,), "value")
    Registry.register(reg, (1.0,), "value")
    assert len(Registry.keys(reg, beamlet.self())) == 5
    assert typed_sorted(Registry.keys(reg, beamlet.self()))[:3] == [True, 1.0, 1]


async def test_values_are_copied() -> None:
    """§2.2: a registrant never shares mutable state with readers."""
    reg = await start_registry("unique", 1)
    data = {"n": 1}
    Registry.register(reg, "k", data)
    data["n"] = 2
    [(_, value)] = Registry.lookup(reg, "k")
    assert value == {"n": 1}
    value["n"] = 3
    assert Registry.lookup(reg, "k")[0][1] == {"n": 1}


async def test_meta_and_put_meta() -> None:
    reg = "meta_registry"
    await Registry.start_link(keys="unique", name=reg, meta={"custom_key": "custom_value"})
    assert Registry.meta(reg, "custom_key") == "custom_value"
    with pytest.raises(KeyError):
        Registry.meta(reg, "unknown_key")
    assert Registry.meta(reg, "unknown_key", None) is None
    Registry.put_meta(reg, "custom_key", "new_value")
    assert Registry.meta(reg, "custom_key") == "new_value"
    Registry.put_meta(reg, ("tuple", "key"), [1])
    assert Registry.meta(reg, ("tuple", "key")) == [1]


async def test_count() -> None:
    reg = await start_registry("unique", 8)
    assert Registry.count(reg) == 0
    for i in range(20):
        Registry.register(reg, i, None)
    assert Registry.count(reg) == 20
    Registry.unregister(reg, 3)
    assert Registry.count(reg) == 19


async def test_start_link_errors() -> None:
    with pytest.raises(RegistryError, match="keys"):
        await Registry.start_link(keys="other", name="r")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="partitions"):
        await Registry.start_link(keys="unique", name="r", partitions=0)
    with pytest.raises(RegistryError, match="name"):
        await Registry.start_link(keys="unique", name=("r",))  # type: ignore[arg-type]
    await Registry.start_link(keys="unique", name="r")
    with pytest.raises(AlreadyStarted):
        await Registry.start_link(keys="unique", name="r")


# --- duplicate_test.exs ----------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_has_duplicate_registrations(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    assert isinstance(Registry.register(reg, "hello", "value"), Pid)
    assert Registry.keys(reg, beamlet.self()) == ["hello"]
    assert isinstance(Registry.register(reg, "hello", "value"), Pid)
    assert Registry.keys(reg, beamlet.self()) == ["hello", "hello"]
    Registry.register(reg, "world", "value")
    assert sorted(Registry.keys(reg, beamlet.self())) == ["hello", "hello", "world"]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_has_duplicate_registrations_across_processes(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    _, task = await register_task(reg, "hello", "world")
    assert Registry.keys(reg, beamlet.self()) == []
    assert Registry.keys(reg, task) == ["hello"]
    Registry.register(reg, "hello", "value")
    assert Registry.keys(reg, beamlet.self()) == ["hello"]
    assert sorted(Registry.lookup(reg, "hello"), key=lambda e: e[1]) == [
        (beamlet.self(), "value"),
        (task, "world"),
    ]


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_compares_using_matches(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    Registry.register(reg, 1.0, "value")
    Registry.register(reg, 1, "value")
    assert typed_sorted(Registry.keys(reg, beamlet.self())) == [1.0, 1]


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("parallel", [False, True])
async def test_dispatches_to_multiple_keys(partitions: int, parallel: bool) -> None:
    """ "dispatches to multiple keys in serial" / "... in parallel"."""
    beamlet.process_flag(trap_exit=True)
    reg = await start_registry("duplicate", partitions)
    parent = beamlet.self()

    def never(_: Any) -> None:
        raise AssertionError("will never be invoked")

    await Registry.dispatch(reg, "hello", never, parallel=parallel)
    Registry.register(reg, "hello", "value1")
    Registry.register(reg, "hello", "value2")
    Registry.register(reg, "world", "value3")

    def fn(entries: list[tuple[Pid, Any]]) -> None:
        if parallel and partitions == 8:
            assert beamlet.self() != parent
        else:
            assert beamlet.self() == parent
        for pid, value in entries:
            beamlet.send(pid, ("dispatch", value))

    await Registry.dispatch(reg, "hello", fn, parallel=parallel)
    await assert_receive(("dispatch", "value1"), timeout=0)
    await assert_receive(("dispatch", "value2"), timeout=0)
    await refute_receive(("dispatch", "value3"), timeout=0)
    await Registry.dispatch(reg, "world", fn, parallel=parallel)
    await refute_receive(("dispatch", "value1"), timeout=0)
    await assert_receive(("dispatch", "value3"), timeout=0)
    await refute_receive(Exit, timeout=0.05)


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_unregisters_by_key(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    Registry.register(reg, "hello", "value")
    Registry.register(reg, "hello", "value")
    Registry.register(reg, "world", "value")
    assert sorted(Registry.keys(reg, beamlet.self())) == ["hello", "hello", "world"]
    Registry.unregister(reg, "hello")
    assert Registry.keys(reg, beamlet.self()) == ["world"]
    Registry.unregister(reg, "world")
    assert Registry.keys(reg, beamlet.self()) == []


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_duplicate_allows_listeners(partitions: int) -> None:
    listener = f"duplicate_listener_{partitions}"
    beamlet.register(listener, beamlet.self())
    reg = await start_registry("duplicate", partitions, listeners=[listener])
    _, task = await register_task(reg, "hello", "world")
    await assert_receive(Registered(beamlet.Atom(reg), "hello", task, "world"), timeout=0)
    me = beamlet.self()
    Registry.register(reg, "hello", "value")
    await assert_receive(Registered(beamlet.Atom(reg), "hello", me, "value"), timeout=0)
    Registry.unregister(reg, "hello")
    await assert_receive(Unregistered(beamlet.Atom(reg), "hello", me), timeout=0)


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_duplicate_links_and_unlinks_on_register_unregister(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    pid = Registry.register(reg, "hello", "value")
    assert pid in links()
    pid = Registry.register(reg, "world", "value")
    assert pid in links()
    Registry.unregister(reg, "hello")
    assert pid in links()  # duplicate registries partition by pid: same partition
    Registry.unregister(reg, "world")
    assert pid not in links()


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_raises_if_attempt_to_be_used_on_via(partitions: int) -> None:
    """The registration happens in the new server, so the error is a start failure
    (a RegistryError crash) rather than an exception raised in the caller."""
    beamlet.process_flag(trap_exit=True)
    reg = await start_registry("duplicate", partitions)
    with pytest.raises(StartError) as e:
        await Agent.start_link(lambda: 0, name=Registry.via(reg, "hello"))
    assert isinstance(e.value.reason, beamlet.Crash)
    assert isinstance(e.value.reason.exception, RegistryError)
    with pytest.raises(RegistryError, match="duplicate"):
        await GenServer.call(Registry.via(reg, "hello"), "ping")


@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_update_value_is_not_supported(partitions: int) -> None:
    reg = await start_registry("duplicate", partitions)
    with pytest.raises(RegistryError, match="update_value"):
        Registry.update_value(reg, "hello", lambda x: x)


# --- registry_test.exs -----------------------------------------------------------------


@pytest.mark.parametrize("keys", ["unique", "duplicate"])
@pytest.mark.parametrize("partitions", PARTITIONS)
async def test_clean_up_registry_on_process_crash(keys: str, partitions: int) -> None:
    reg = await start_registry(keys, partitions)
    _, task1 = await register_task(reg, "hello", "value")
    _, task2 = await register_task(reg, "world", "value")
    assert Registry.count(reg) == 2
    await kill_and_assert_down(task1)
    await kill_and_assert_down(task2)
    # dead entries are ignored at once, removed once the partitions have seen the exits
    assert Registry.lookup(reg, "hello") == [] and Registry.lookup(reg, "world") == []
    await _sync(reg)
    assert Registry.count(reg) == 0
    for part in _table(reg).partitions:  # relies on internals, as upstream does
        assert ets.tab2list(part.keys) == [] and ets.tab2list(part.pids) == []


async def test_whereis_name_treats_dead_pids_as_absent_immediately() -> None:
    reg = await start_registry("unique", 1)
    _, task = await register_task(reg, "k", None)
    assert Registry.whereis_name(reg, "k") == task
    beamlet.exit(task, KILL)  # the partition has not run yet
    assert Registry.whereis_name(reg, "k") is None


async def test_registry_stop_ends_linked_registrants() -> None:
    """As in Elixir: registrants are linked to the partitions, so a registry that
    stops takes registrants that do not trap exits with it."""
    beamlet.process_flag(trap_exit=True)  # the test process is linked to the registry
    reg = await start_registry("unique", 1)
    _, task = await register_task(reg, "k", None)
    ref = beamlet.monitor(task)
    await Supervisor.stop(reg, beamlet.SHUTDOWN)
    down = await assert_receive(lambda m: type(m) is Down and m.ref == ref)
    assert down.reason == beamlet.SHUTDOWN


class Named(GenServer[int]):
    async def init(self, arg: int) -> int:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: int) -> Any:
        if request == "get":
            return Reply(state, state)
        return NoReply(state)


async def test_registry_via_in_a_supervision_tree() -> None:
    """Registry + supervised GenServers named through it: a restarted server is found
    again under the same name."""
    sup = await Supervisor.start_link(
        [
            Registry.child_spec(keys="unique", name="names"),
            Named.child_spec(7, id="w"),
        ],
        strategy="rest_for_one",
    )
    assert sup is not None
    name = Registry.via("names", "worker")
    await Supervisor.terminate_child(sup, "w")
    await Supervisor.delete_child(sup, "w")

    async def start_named(arg: int) -> Pid | None:
        return await Named.start_link(arg, name=name)

    pid = await Supervisor.start_child(sup, Named.child_spec(7, id="w", start=start_named))
    assert await GenServer.call(name, "get") == 7
    assert pid is not None
    await kill_and_assert_down(pid)
    await Supervisor.count_children(sup)  # the supervisor has handled the EXIT
    assert await GenServer.call(name, "get") == 7
    assert Registry.whereis_name("names", "worker") not in (None, pid)
