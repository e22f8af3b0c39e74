"""Registry: a local, decentralized key-value process registry (docs/semantics.md §11.2).

A registry maps keys to the processes that registered them, each with a value. A
process registers *itself* (`Registry.register(reg, key, value)`); its entries vanish
when it exits. With `keys="unique"` a key belongs to at most one live process, which
makes the registry a name service: `Registry.via(reg, key)` is a server name usable
anywhere a name is (`GenServer.start_link(..., name=Registry.via("reg", "user:42"))`,
`GenServer.call(Registry.via("reg", "user:42"), ...)`). With `keys="duplicate"` any
number of processes may register a key — a pub/sub topic: `Registry.dispatch(reg,
"topic", fn)` calls `fn` with every `(pid, value)` registered under the key.

When to use it: to name dynamically created processes (one per user, per room) without
creating atoms or clashing names, and for local pub/sub. Start it in your supervision
tree: `Registry.child_spec(keys="unique", name="sessions")`.

Examples:

    await Supervisor.start_link([Registry.child_spec(keys="duplicate", name="pubsub")])

    Registry.register("pubsub", "news", None)          # in each subscriber

    def publish(entries):                               # in the publisher
        for pid, _ in entries:
            beamlet.send(pid, ("news", "hello"))
    await Registry.dispatch("pubsub", "news", publish)

How it works: as in Elixir, the entries live in ETS tables (`beamlet.ets`, public, owned
by the partition processes) and are read directly by the calling process — `lookup`,
`whereis_name`, `keys`, `count` send no message and never wait. `register` writes the
caller's entry and links the caller to the registry's *partition* process; partitions
trap exits and remove the entries of a process when its EXIT arrives. The registry
process itself is a `Supervisor` of its partitions (`Supervisor.which_children(reg)`
lists them) and stops if one of them fails. Values are copied in and out (as ETS
copies), so registrants never share mutable state.

Edge cases:

* Entries of a dead process are removed *asynchronously*, but `lookup`, `whereis_name`,
  `dispatch` and unique `register` ignore them at once (§11.2.1).
* Keys compare by exact term equality: `1`, `1.0` and `True` are three keys (§11.2.5).
* Unregistering the last key of a process unlinks it from the partition (§11.2.2).
* Listeners (registered process names) get `Registered(...)` / `Unregistered(...)`
  messages on `register` / `unregister`; removals caused by an exit are not announced
  (§11.2.4).
* If the registry stops, its partitions stop with it and registered processes linked
  to them receive the exit signal (they die unless they trap exits), as in Elixir.
* Every function takes the registry's name and raises `UnknownRegistry` if no registry
  of that name runs on this node.
* `via` names need a unique registry. A server started with a `via` name of a
  duplicate registry fails to start (its name registration raises `RegistryError` in
  the new process, so the starter sees a `StartError` or is ended by the link), while
  `call`/`whereis_name` on such a name raise `RegistryError` in the caller.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from beamlet import _core as api
from beamlet import ets
from beamlet._core import (
    Atom,
    BeamletError,
    Exit,
    NodeVar,
    NotRegistered,
    Pid,
    Ref,
    Shared,
    Unsendable,
)
from beamlet.behaviours import gen
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.gen_server import GenServer, NoReply, Ok, Reply
from beamlet.behaviours.names import Via
from beamlet.behaviours.supervisor import Supervisor, SupFlags

__all__ = [
    "AlreadyRegistered",
    "Registered",
    "Registry",
    "RegistryError",
    "UnknownRegistry",
    "Unregistered",
]

Keys = Literal["unique", "duplicate"]

ALREADY_REGISTERED: Final = Atom("already_registered")


class RegistryError(BeamletError, ValueError):
    """A registry was used wrongly (Elixir's ArgumentError)."""


class UnknownRegistry(RegistryError):
    """No registry of that name runs on this node."""


class AlreadyRegistered(BeamletError):
    """`register` on a unique key held by a live process (possibly the caller).
    `.pid` is the holder; `.reason` is `(already_registered, pid)`."""

    def __init__(self, pid: Pid) -> None:
        super().__init__(f"already registered by {pid!r}")
        self.pid = pid
        self.reason = (ALREADY_REGISTERED, pid)


@dataclass(frozen=True, slots=True)
class Registered:
    """Sent to listeners on `register`: Elixir's `{:register, registry, key, pid, value}`."""

    registry: Atom
    key: Any
    pid: Pid
    value: Any


@dataclass(frozen=True, slots=True)
class Unregistered:
    """Sent to listeners on `unregister`: Elixir's `{:unregister, registry, key, pid}`."""

    registry: Atom
    key: Any
    pid: Pid


# --- the table ---------------------------------------------------------------------------

_SIMPLE: Final = frozenset({int, float, complex, bool, str, bytes, type(None), Atom, Pid, Ref})


def _copy(value: Any) -> Any:
    """Values go in and out by copy, as ETS copies them (§2.2)."""
    t = type(value)
    if t in _SIMPLE or t is Shared:
        return value
    if t is tuple and all(type(x) in _SIMPLE for x in value):
        return value
    try:
        return copy.deepcopy(value)
    except Exception as e:
        raise Unsendable(
            f"cannot store a {t.__name__} in a registry: it is mutable and cannot be copied "
            f"({e}); wrap it in beamlet.Shared(...) to store it by reference"
        ) from None


def _canon(key: Any) -> Any:
    """A dict key with exact term equality (Erlang's `=:=`): `1`, `1.0` and `True`
    differ, and so do tuples containing them (§11.2.5)."""
    t = type(key)
    if t is tuple:
        return (tuple, tuple(_canon(x) for x in key))
    if t is frozenset:
        return (frozenset, frozenset(_canon(x) for x in key))
    return (t, key)


def _alive(pid: Pid) -> bool:
    try:
        return api.is_alive(pid)
    except BeamletError:  # another node's pid: trust the link
        return True


class _Partition:
    """One partition: its process and its two ETS tables (public, owned by the
    partition process, so they go when it does), as Elixir's registry keeps them:

    keys: set (unique) or duplicate_bag (duplicate) of (key, pid, value)
    pids: duplicate_bag of (pid, key), registration order, with repetitions
    """

    __slots__ = ("index", "keys", "pid", "pids", "unique")

    def __init__(self, index: int, unique: bool) -> None:
        self.index = index
        self.unique = unique
        self.pid: Pid | None = None
        self.keys: Any = None
        self.pids: Any = None

    def open(self) -> None:
        """Create the tables (in the partition process, their owner)."""
        self.keys = ets.new(
            "registry_keys", type="set" if self.unique else "duplicate_bag", access="public"
        )
        self.pids = ets.new("registry_pids", type="duplicate_bag", access="public")

    def entries(self, key: Any) -> list[tuple[Any, Pid, Any]]:
        """(key, pid, value) objects under `key` (copies, as ETS reads are)."""
        return ets.lookup(self.keys, key)

    def put(self, key: Any, pid: Pid, value: Any) -> None:
        ets.insert(self.keys, (key, pid, value))
        ets.insert(self.pids, (pid, key))

    def drop(self, key: Any, pid: Pid) -> None:
        """Remove `pid`'s entries under `key` (only its own: a unique key may have been
        taken over since)."""
        objs = ets.take(self.keys, key)
        keep = [o for o in objs if o[1] != pid]
        if keep:
            ets.insert(self.keys, keep[0] if self.unique else keep)

    def keys_of(self, pid: Pid) -> list[Any]:
        return [o[1] for o in ets.lookup(self.pids, pid)]

    def forget(self, pid: Pid, key: Any) -> int:
        """Drop `key` from `pid`'s keys; returns how many keys `pid` has left here."""
        ck = _canon(key)
        keep = [o for o in ets.take(self.pids, pid) if _canon(o[1]) != ck]
        if keep:
            ets.insert(self.pids, keep)
        return len(keep)

    def size(self) -> int:
        n: int = ets.info(self.keys, "size")
        return n

    def remove_pid(self, pid: Pid) -> None:
        """The registrant `pid` exited: drop its entries."""
        seen: set[Any] = set()
        for key in ets.take(self.pids, pid):
            ck = _canon(key[1])
            if ck not in seen:
                seen.add(ck)
                self.drop(key[1], pid)


class _Table:
    __slots__ = ("listeners", "meta", "name", "owner", "partitions", "unique")

    def __init__(
        self, name: Atom, unique: bool, n: int, listeners: tuple[Any, ...], meta: dict[Any, Any]
    ) -> None:
        self.name = name
        self.unique = unique
        self.owner: Pid | None = None
        self.partitions = [_Partition(i, unique) for i in range(n)]
        self.listeners = listeners
        self.meta = meta

    def partition_for(self, ck: Any, pid: Pid) -> _Partition:
        parts = self.partitions
        if len(parts) == 1:
            return parts[0]
        return parts[hash(ck if self.unique else pid) % len(parts)]

    def notify(self, msg: Any) -> None:
        for listener in self.listeners:
            try:
                api.send(listener, msg)
            except NotRegistered:
                pass


# Tables are node state (Elixir keeps them in ETS): they live in a NodeVar,
# keyed by (node name, registry name), so every node (and every test) starts clean; a
# table whose registry process is gone is never used.
_TABLES: NodeVar[dict[tuple[Atom, Atom], _Table]] = NodeVar("beamlet.registry", dict)


def _tables() -> dict[tuple[Atom, Atom], _Table]:
    return _TABLES.get()


def _table(registry: Any) -> _Table:
    if type(registry) is not Atom:
        if type(registry) is not str:
            raise UnknownRegistry(f"unknown registry: {registry!r} (a registry name is a str)")
        registry = Atom(registry)
    t = _tables().get((api.node_name(), registry))
    if t is None or t.owner is None or not _alive(t.owner):
        raise UnknownRegistry(f"unknown registry: {str(registry)!r}")
    return t


# --- processes -------------------------------------------------------------------------


_SYNC: Final = Atom("sync")


class _PartitionServer(GenServer[_Partition]):
    """A partition: a GenServer that traps exits and cleans up after registrants; it
    stops with its parent. A `sync` call is answered after every EXIT that arrived
    before it (Elixir's partitions are GenServers too)."""

    async def init(self, shared: Shared[_Partition]) -> Any:
        api.process_flag(trap_exit=True)  # before anyone can link to it
        part = shared.value
        part.pid = api.self()
        part.open()  # its tables are owned by this process
        return Ok(part)

    async def handle_call(self, request: Any, from_: Any, part: _Partition) -> Any:
        return Reply(gen.OK, part)

    async def handle_info(self, msg: Any, part: _Partition) -> Any:
        if type(msg) is Exit:
            part.remove_pid(msg.pid)
        return NoReply(part)


async def _sync(registry: str | Atom) -> None:
    """Wait until every partition has processed the exits queued so far (for tests,
    like Elixir's `GenServer.call(partition, :sync)`)."""
    for part in _table(registry).partitions:
        assert part.pid is not None
        await gen.call(part.pid, _SYNC, None)


async def _start_partition(shared: Shared[_Partition]) -> Pid | None:
    """Start function (runs in the registry supervisor)."""
    return await _PartitionServer.start_link(shared)


class _RegistrySup(Supervisor):
    """The registry process: a supervisor of the partitions (any failure is fatal)."""

    async def init(self, arg: Any) -> Any:
        table: _Table = arg.value
        table.owner = api.self()
        _tables()[(api.node_name(), table.name)] = table
        children = [
            ChildSpec(
                id=("partition", p.index),
                start=_start_partition,
                args=(Shared(p),),
                shutdown="infinity",
            )
            for p in table.partitions
        ]
        return children, SupFlags(strategy="one_for_all", max_restarts=0, max_seconds=1)


# --- the API -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ViaRegistry:
    """The via protocol (names.ViaRegistry) over a unique registry (§11.2.3)."""

    registry: Atom
    value: Any = None

    def _check(self) -> _Table:
        t = _table(self.registry)
        if not t.unique:
            raise RegistryError(
                f"the registry {str(self.registry)!r} has duplicate keys: it cannot be used "
                "with via"
            )
        return t

    def register_name(self, key: Any, pid: Pid) -> bool:
        self._check()
        if pid != api.self():
            raise RegistryError("a process can only register itself in a registry")
        try:
            Registry.register(self.registry, key, self.value)
        except AlreadyRegistered:
            return False
        return True

    def unregister_name(self, key: Any) -> None:
        self._check()
        Registry.unregister(self.registry, key)

    def whereis_name(self, key: Any) -> Pid | None:
        t = self._check()
        return _whereis(t, key)

    def send(self, key: Any, msg: Any) -> None:
        pid = self.whereis_name(key)
        if pid is None:
            raise NotRegistered(f"no process is registered as {key!r} in {str(self.registry)!r}")
        api.send(pid, msg)


def _whereis(t: _Table, key: Any) -> Pid | None:
    ck = _canon(key)
    entries = t.partition_for(ck, api.self()).entries(key)
    if not entries or not _alive(entries[0][1]):
        return None
    pid: Pid = entries[0][1]
    return pid


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    r = fn(*args)
    if inspect.isawaitable(r):
        r = await r
    return r


async def _dispatch_task(fn: Callable[..., Any], entries: Any, parent: Pid) -> None:
    """One partition's share of a parallel dispatch. It unlinks from the caller before
    it ends (as Elixir's does), so a caller that traps exits gets no EXIT; a crash
    still reaches the caller through the link."""
    await _run(fn, entries)
    api.unlink(parent)


class Registry:
    """Local process registry (§11.2). All functions are static and take the registry
    name; see the module documentation for the model.

    Examples:
        >>> from beamlet import Registry
        >>> await Registry.start_link(keys="unique", name="reg")
        <...>
        >>> Registry.register("reg", "worker:1", {"started": 1})
        <...>
        >>> Registry.lookup("reg", "worker:1") == [(beamlet.self(), {"started": 1})]
        True
    """

    @staticmethod
    async def start_link(
        *,
        keys: Keys,
        name: str | Atom,
        partitions: int = 1,
        listeners: Iterable[str | Atom] = (),
        meta: dict[Any, Any] | None = None,
    ) -> Pid:
        """Start a registry linked to the caller and register it as `name`.

        `keys` is "unique" or "duplicate"; `partitions` processes share the entries
        (more partitions spread the cleanup work of many registrants); `listeners` are
        process names told about registrations; `meta` initial metadata (`meta`)."""
        if keys not in ("unique", "duplicate"):
            raise RegistryError(f"expected keys to be 'unique' or 'duplicate', got {keys!r}")
        if type(name) is not str and type(name) is not Atom:
            raise RegistryError(f"expected name to be a str or Atom, got {name!r}")
        if type(partitions) is not int or partitions < 1:
            raise RegistryError(f"expected partitions to be a positive int, got {partitions!r}")
        table = _Table(
            Atom(name),
            keys == "unique",
            partitions,
            tuple(listeners),
            {k: _copy(v) for k, v in (meta or {}).items()},
        )
        pid = await _RegistrySup.start_link(Shared(table), name=name)
        assert pid is not None
        return pid

    @staticmethod
    def child_spec(**options: Any) -> ChildSpec:
        """The spec to run a registry in a supervision tree (id: its name, type
        supervisor); `options` are those of `start_link`.

        Examples:
            >>> from beamlet import Registry, Supervisor
            >>> spec = Registry.child_spec(keys="unique", name="sessions")
            >>> sup = await Supervisor.start_link([spec], strategy="one_for_one")
            >>> Registry.count("sessions")
            0
        """
        name = options.get("name")

        async def start() -> Pid:
            return await Registry.start_link(**options)

        return ChildSpec(id=name if name is not None else Registry, start=start, type="supervisor")

    # --- registering ---

    @staticmethod
    def register(registry: str | Atom, key: Any, value: Any = None) -> Pid:
        """Register the calling process under `key` with `value`; returns the pid of
        the partition that now links to the caller (Elixir's `{:ok, owner}`).

        Unique registries raise `AlreadyRegistered` if a live process (the caller
        included) holds the key; a dead holder's entry is replaced. Duplicate
        registries accept any number of registrations, even of the same key by the
        same process."""
        t = _table(registry)
        me = api.self()
        ck = _canon(key)
        part = t.partition_for(ck, me)
        value = _copy(value)
        if t.unique:
            cur = part.entries(key)
            if cur and _alive(cur[0][1]):
                raise AlreadyRegistered(cur[0][1])
        part.put(key, me, value)  # replaces a dead holder's entry, not yet cleaned up
        assert part.pid is not None
        api.link(part.pid)
        t.notify(Registered(t.name, key, me, value))
        return part.pid

    @staticmethod
    def unregister(registry: str | Atom, key: Any) -> None:
        """Remove every entry of the calling process under `key` (fine if there is
        none). When the caller has no key left in the partition it is unlinked."""
        t = _table(registry)
        me = api.self()
        ck = _canon(key)
        part = t.partition_for(ck, me)
        part.drop(key, me)
        if part.keys_of(me) and not part.forget(me, key):
            assert part.pid is not None
            api.unlink(part.pid)
        t.notify(Unregistered(t.name, key, me))

    @staticmethod
    def update_value(registry: str | Atom, key: Any, fn: Callable[[Any], Any]) -> Any:
        """Unique registries: replace the caller's own value under `key` with
        `fn(old)`; returns `(new, old)`, or None if the caller does not hold the key.
        `fn` runs in the caller. Duplicate registries raise `RegistryError`."""
        t = _table(registry)
        if not t.unique:
            raise RegistryError("update_value is not supported for duplicate registries")
        me = api.self()
        ck = _canon(key)
        part = t.partition_for(ck, me)
        entries = part.entries(key)
        if not entries or entries[0][1] != me:
            return None
        old = entries[0][2]
        new = fn(old)
        ets.insert(part.keys, (entries[0][0], me, _copy(new)))
        return (new, old)

    # --- reading ---

    @staticmethod
    def lookup(registry: str | Atom, key: Any) -> list[tuple[Pid, Any]]:
        """`[(pid, value)]` for the live processes registered under `key` (at most
        one for a unique registry), in registration order per partition."""
        t = _table(registry)
        ck = _canon(key)
        if t.unique:
            entries = t.partition_for(ck, api.self()).entries(key)
            if not entries or not _alive(entries[0][1]):
                return []
            return [(entries[0][1], entries[0][2])]
        out: list[tuple[Pid, Any]] = []
        for part in t.partitions:
            out.extend((p, v) for _, p, v in part.entries(key) if _alive(p))
        return out

    @staticmethod
    def keys(registry: str | Atom, pid: Pid) -> list[Any]:
        """The keys `pid` is registered under (with repetitions in a duplicate
        registry); `[]` if none."""
        t = _table(registry)
        out: list[Any] = []
        parts = t.partitions if t.unique else [t.partition_for(None, pid)]
        for part in parts:
            for key in part.keys_of(pid):
                entries = part.entries(key)
                if t.unique:
                    if entries and entries[0][1] == pid:
                        out.append(entries[0][0])
                elif entries:
                    out.append(key)
        return out

    @staticmethod
    def count(registry: str | Atom) -> int:
        """The number of entries (entries of processes that just died may still be
        counted until their partition has processed the exit)."""
        return sum(p.size() for p in _table(registry).partitions)

    @staticmethod
    async def dispatch(
        registry: str | Atom,
        key: Any,
        fn: Callable[[list[tuple[Pid, Any]]], Any],
        *,
        parallel: bool = False,
    ) -> None:
        """Call `fn(entries)` with the live `(pid, value)` entries under `key`, in the
        caller, once per partition that has entries; not at all if there are none.
        `fn` may be sync or async. With `parallel=True` and several partitions, the
        calls run concurrently, each in a linked task (as Elixir's `Task.async`), and
        `dispatch` returns when all are done.

        Examples:
            >>> from beamlet import Registry
            >>> await Registry.start_link(keys="duplicate", name="pubsub")
            <...>
            >>> Registry.register("pubsub", "news", None)
            <...>
            >>> def publish(entries):
            ...     for pid, _ in entries:
            ...         beamlet.send(pid, ("news", "hello"))
            >>> await Registry.dispatch("pubsub", "news", publish)
            >>> await beamlet.receive()
            ('news', 'hello')
        """
        t = _table(registry)
        if t.unique:
            groups = [Registry.lookup(registry, key)]
        else:
            groups = []
            for part in t.partitions:
                live = [(p, v) for _, p, v in part.entries(key) if _alive(p)]
                if live:
                    groups.append(live)
        groups = [g for g in groups if g]
        if parallel and len(t.partitions) > 1 and groups:
            from beamlet.behaviours.task import Task

            await Task.await_many(
                [Task.async_(_dispatch_task, fn, g, api.self()) for g in groups], None
            )
            return
        for g in groups:
            await _run(fn, g)

    # --- metadata ---

    @staticmethod
    def meta(registry: str | Atom, key: Any, default: Any = KeyError) -> Any:
        """Registry metadata (set at start with `meta=` or with `put_meta`). A missing
        key raises `KeyError` unless a `default` is given."""
        t = _table(registry)
        if key in t.meta:
            return _copy(t.meta[key])
        if default is KeyError:
            raise KeyError(key)
        return default

    @staticmethod
    def put_meta(registry: str | Atom, key: Any, value: Any) -> None:
        """Store registry metadata."""
        _table(registry).meta[key] = _copy(value)

    # --- names ---

    @staticmethod
    def via(registry: str | Atom, key: Any, value: Any = None) -> Via:
        """A server name kept in the unique registry `registry` under `key` (with
        `value` stored at registration): pass it as `name=` to a start function and
        as the server to `call`/`cast`/`stop` (§11.2.3).

        Examples:
            >>> from beamlet import GenServer, Registry, Reply
            >>> class Session(GenServer[int]):
            ...     async def init(self, user):
            ...         return user
            ...     async def handle_call(self, request, from_, user):
            ...         return Reply(("pong", user), user)
            >>> await Registry.start_link(keys="unique", name="sessions")
            <...>
            >>> name = Registry.via("sessions", ("user", 42))
            >>> pid = await Session.start_link(42, name=name)
            >>> await GenServer.call(name, "ping")
            ('pong', 42)
        """
        return Via(_ViaRegistry(Atom(registry), value), key, value)

    @staticmethod
    def whereis_name(registry: str | Atom, key: Any) -> Pid | None:
        """The live process registered under `key` in a unique registry, or None."""
        return _ViaRegistry(Atom(registry)).whereis_name(key)
