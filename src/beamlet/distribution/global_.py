"""Erlang's `global`: cluster-wide names and locks, with beamlet as a full participant.

A visible beamlet node runs `global_name_server` and speaks `global`'s protocol (version
8, as OTP 25 to 28): when two nodes connect, their lockers lock both partitions, the name
tables are exchanged and conflicts resolved, and every node learns of the other side's
nodes and dials them (the full mesh of `connect_all`). So `global:sync()` on an Erlang
node returns, a name registered on any node is seen on every node, and `global:trans/2`
locks include the Python node. Python-only clusters use the same code.

The protocol, in short (docs/protocol.md §4, and `lib/kernel/src/global.erl` in the
erlang/otp repository):

* on a visible `nodeup` each server casts `{init_connect, {8, MyTag}, Node, {locker, _,
  Known, Locker}}` to the other, answered by a raw `{init_connect_ack, Node, HisTag,
  MyTag}`;
* each node's locker takes the lock `{global, lists:sort([LockerA, LockerB])}` on its own
  partition (the "boss", the greatest node name, first) and reports `{lock_set, Locker,
  true | false, Known, HisTag}` to the other *server*, which forwards it to its locker;
* with both locks held the servers cast `{exchange, Node, Names, [], Tag}`, a resolver
  settles name conflicts (the smaller node resolves, by `global:resolve_it/4` on the node
  of the name's current pid), and `{resolved, Node, Ops, Known, unused, [], Tag}` comes
  back;
* before releasing its lock the locker casts `{new_nodes, Node, Ops, [], NewNodes,
  ExtraInfo}` to its partition, whose nodes connect to the newcomers and cast `{in_sync,
  Node, true}`;
* registrations take the lock `{global, Registrar}` on every known node and then
  `gen_server:multi_call` `{register, Name, Pid, Method}`; a lost connection is multicast
  as `lost_connection` (OTP 25's prevention of overlapping partitions).

Examples:
    >>> from beamlet.distribution import global_
    >>> async def main() -> None:
    ...     assert await global_.register_name("db", beamlet.self())
    ...     assert global_.whereis_name("db") == beamlet.self()
    ...     print(global_.registered_names())
    >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
    [Atom('db')]
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from beamlet import _core as api
from beamlet._core import KILL, Atom, BadArgument, Down, Exit, ImproperList, Node, NodeVar, Pid, Ref
from beamlet.behaviours.names import Global, install_global
from beamlet.distribution import etf
from beamlet.distribution.api import NodeDown
from beamlet.distribution.distribution import Distribution
from beamlet.distribution.pg import group_key

__all__ = [
    "ABORTED",
    "GLOBAL_NAME_SERVER",
    "Global",
    "del_lock",
    "disconnect",
    "name_key",
    "notify_all_name",
    "random_exit_name",
    "random_notify_name",
    "re_register_name",
    "register_name",
    "registered_names",
    "send",
    "set_lock",
    "start",
    "sync",
    "trans",
    "unregister_name",
    "whereis_name",
]

log = logging.getLogger("beamlet.global")
T = TypeVar("T")

VSN = 8
GLOBAL_NAME_SERVER = Atom("global_name_server")
ABORTED = Atom("aborted")
NO_ANSWER = Atom("no_answer")  # what a peer's server that did not answer in time "replied"
# How long the locker waits for a peer's answer (a set_lock call, its locker's lock_set)
# before it lets go of the lock on its own partition and backs off from that peer. OTP
# waits forever, so one peer that never answers (a stuck locker, a foreign
# implementation) holds `global`'s lock, and with it every registration, indefinitely.
ANSWER_TIMEOUT = 5.0
SILENT_BACKOFF_MAX = 60.0
_GLOBAL = Atom("global")  # the resource id of global's own lock
_GEN_CALL, _GEN_CAST, _ALIAS = Atom("$gen_call"), Atom("$gen_cast"), Atom("alias")
_YES, _NO, _OK, _TRUE, _NONE = Atom("yes"), Atom("no"), Atom("ok"), Atom("true"), Atom("none")
_INIT_CONNECT, _INIT_CONNECT_ACK = Atom("init_connect"), Atom("init_connect_ack")
_CANCEL_CONNECT, _LOCKER = Atom("cancel_connect"), Atom("locker")
_LOCK_SET, _LOCK_IS_SET = Atom("lock_set"), Atom("lock_is_set")
_EXCHANGE, _EXCHANGE_OPS, _RESOLVED = Atom("exchange"), Atom("exchange_ops"), Atom("resolved")
_NEW_NODES, _IN_SYNC = Atom("new_nodes"), Atom("in_sync")
_INSERT, _DELETE = Atom("insert"), Atom("delete")
_REGISTER, _UNREGISTER, _REGISTER_EXT = Atom("register"), Atom("unregister"), Atom("register_ext")
_SET_LOCK, _DEL_LOCK = Atom("set_lock"), Atom("del_lock")
_GET_KNOWN, _GET_SYNCED, _SYNC = Atom("get_known"), Atom("get_synced"), Atom("sync")
_GET_PROTOCOL_VERSION, _GET_NAMES_EXT = Atom("get_protocol_version"), Atom("get_names_ext")
_LOST_CONNECTION, _REMOVE_CONNECTION = Atom("lost_connection"), Atom("remove_connection")
_PREPARE_SHUTDOWN, _WHEREIS = Atom("prepare_shutdown"), Atom("whereis")
_DISCONNECT = Atom("disconnect")
_VSN, _LOCK = Atom("vsn"), Atom("lock")
_NO_LONGER_A_PID = Atom("no_longer_a_pid")
_NAME_CONFLICT = Atom("global_name_conflict")
_RANDOM_EXIT, _RANDOM_NOTIFY = Atom("random_exit_name"), Atom("random_notify_name")
_NOTIFY_ALL = Atom("notify_all_name")
# a Python resolve function: ($beamlet_resolve, Node, Index), kept by the node that
# registered the name, which is where it runs (Erlang runs a fun on the pid's node)
_BEAMLET_RESOLVE = Atom("$beamlet_resolve")
_MIN_SMALL = -(1 << 59)
# the words of Erlang's own warning, so one grep finds both kinds of node in a log
_POP_WARNING = "'global' at node '%s' %s node '%s' in order to prevent overlapping partitions"

Resolve = Callable[[Any, Pid, Pid], "Pid | Atom"]


# --- resolve methods (Erlang's names, usable as `resolve=`) -------------------------------


def _minmax(p1: Pid, p2: Pid) -> tuple[Pid, Pid]:
    return (p1, p2) if str(p1.node) < str(p2.node) else (p2, p1)


def random_exit_name(name: Any, pid1: Pid, pid2: Pid) -> Pid:
    """Keep the pid on the node whose name sorts first, kill the other (the default).
    Two pids of one node: the second stays, as in Erlang.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def idle() -> None:
        ...     await beamlet.receive()
        >>> p1, p2 = beamlet.spawn(idle), beamlet.spawn(idle)
        >>> global_.random_exit_name(Atom("db"), p1, p2) == p2
        True
        >>> await beamlet.sleep(0.01)   # the exit signal is on its way
        >>> beamlet.is_alive(p1), beamlet.is_alive(p2)
        (False, True)
    """
    keep, other = _minmax(pid1, pid2)
    log.info("global: name conflict, terminating %r", (name, other))
    api.exit(other, KILL)
    return keep


def random_notify_name(name: Any, pid1: Pid, pid2: Pid) -> Pid:
    """Keep the same pid as `random_exit_name`; the other gets `(global_name_conflict, name)`.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def idle() -> None:
        ...     await beamlet.receive()
        >>> other = beamlet.spawn(idle)
        >>> global_.random_notify_name(Atom("db"), beamlet.self(), other) == other
        True
        >>> await beamlet.receive()
        (Atom('global_name_conflict'), Atom('db'))
    """
    keep, other = _minmax(pid1, pid2)
    api.send(other, (_NAME_CONFLICT, name))
    return keep


def notify_all_name(name: Any, pid1: Pid, pid2: Pid) -> Atom:
    """Unregister the name; each pid gets `(global_name_conflict, name, other_pid)`.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def idle() -> None:
        ...     await beamlet.receive()
        >>> other = beamlet.spawn(idle)
        >>> global_.notify_all_name(Atom("db"), beamlet.self(), other)
        Atom('none')
        >>> (await beamlet.receive()) == (Atom("global_name_conflict"), Atom("db"), other)
        True
    """
    api.send(pid1, (_NAME_CONFLICT, name, pid2))
    api.send(pid2, (_NAME_CONFLICT, name, pid1))
    return _NONE


_BUILTIN: dict[Atom, Resolve] = {
    _RANDOM_EXIT: random_exit_name,
    _RANDOM_NOTIFY: random_notify_name,
    _NOTIFY_ALL: notify_all_name,
}


def _fun_module(fun: etf.Fun) -> Atom | None:
    """The module of an Erlang local fun (NEW_FUN_EXT: module atom at offset 30)."""
    data = fun.data
    if len(data) < 32 or data[0] != 112:
        return None
    tag = data[30]
    if tag in (115, 119):  # SMALL_ATOM(_UTF8): length in one byte
        return Atom(data[32 : 32 + data[31]].decode("utf-8", "replace"))
    if tag in (100, 118) and len(data) >= 33:
        n = int.from_bytes(data[31:33], "big")
        return Atom(data[33 : 33 + n].decode("utf-8", "replace"))
    return None


# --- name keys ------------------------------------------------------------------------------


def name_key(name: Any) -> Any:
    """The one form a global name is stored, looked up and sent in, on every node: a `str`
    is an atom (as in `Global` and for local names); inside any other term, a `str` is
    the binary the default codec sends and lists are hashable (`etf.FrozenList`), the
    form in which the name comes back from Erlang. So `"x"`, `Atom("x")` and Erlang's `x`
    are one name, and `("cache", "a")` is Erlang's `{<<"cache">>, <<"a">>}`.

    Examples:
        >>> from beamlet.distribution import global_
        >>> global_.name_key("x"), global_.name_key(("cache", "a", [1, 2]))
        (Atom('x'), (b'cache', b'a', FrozenList([1, 2])))
        >>> global_.name_key(b"x") == global_.name_key("x")   # a binary is not an atom
        False
    """
    if type(name) is str:
        return Atom(name)
    try:
        return group_key(name)
    except BadArgument:
        raise BadArgument(f"a global name must be an Erlang term, not {name!r}") from None


def _new_name(name: Any) -> Any:
    """`name_key` of a name about to be registered, which every node must be able to
    decode: a clear error here rather than a registration some nodes never get."""
    key = name_key(name)
    try:
        etf.encode(key)
    except etf.EncodeError as e:
        raise BadArgument(f"a global name must be an Erlang term: {e}") from None
    return key


# --- per-node state ------------------------------------------------------------------------


@dataclass(eq=False)
class _Name:
    pid: Pid
    method: Any
    ref: Ref


@dataclass(eq=False)
class _Lock:
    requester: Any
    holders: dict[Pid, Ref] = field(default_factory=dict)


@dataclass(eq=False)
class _Session:
    """What the server knows of one connect session with a node (global's process
    dictionary entries `sync_tag_my`, `sync_tag_his`, `wait_lock`, `save_ops`...)."""

    my_tag: int | None = None
    his_tag: Any = None
    prot_vsn: int = VSN
    wait_lock: Any = None  # ("exchange", names) | "lock_is_set"
    save_ops: Any = None  # ("resolved", his_known, his_resolved) | list of ops
    pre_connect: Any = None
    lock_id: Any = None


@dataclass(eq=False)
class _State:
    """One node's `global`: the replicated name and lock tables and the connect state.
    The server, its locker and registrar are processes of that node and share it."""

    node: Node
    dist: Distribution
    names: dict[Any, _Name] = field(default_factory=dict)
    pid_names: dict[Pid, Any] = field(default_factory=dict)
    ref_names: dict[Ref, Any] = field(default_factory=dict)
    locks: dict[Any, _Lock] = field(default_factory=dict)
    ref_locks: dict[Ref, list[Any]] = field(default_factory=dict)
    known: dict[Atom, int] = field(default_factory=dict)
    pending: dict[Atom, int] = field(default_factory=dict)
    removing: set[Atom] = field(default_factory=set)
    synced: set[Atom] = field(default_factory=set)
    sessions: dict[Atom, _Session] = field(default_factory=dict)
    resolvers: dict[Atom, tuple[int, Pid]] = field(default_factory=dict)
    syncers: list[Pid] = field(default_factory=list)
    lost: dict[tuple[Atom, Atom], tuple[int, int]] = field(default_factory=dict)
    resolve_fns: dict[int, Resolve] = field(default_factory=dict)  # of names registered here
    resolve_calls: dict[int, int] = field(default_factory=dict)  # registrations in flight
    server: Pid | None = None
    locker: Pid | None = None
    registrar: Pid | None = None
    global_lock_down: bool = False
    prevent_overlapping: bool = True
    tags: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    creation_ext: int = field(default_factory=lambda: random.getrandbits(27) << 32)

    @property
    def me(self) -> Atom:
        return self.node.name

    def session(self, node: Atom) -> _Session:
        s = self.sessions.get(node)
        if s is None:
            s = self.sessions[node] = _Session()
        return s

    def where(self, name: Any) -> Pid | None:
        entry = self.names.get(name_key(name))
        if entry is None:
            return None
        pid = entry.pid
        if pid.node == self.me and not self.node.is_alive(pid):
            return None
        return pid

    def global_lock_set(self) -> bool:
        return _GLOBAL in self.locks

    def known_nodes(self) -> list[Atom]:
        return sorted(self.known)

    def known_list(self) -> list[tuple[Atom, int]]:
        return [(n, v) for n, v in self.known.items()]


_STATES: NodeVar[_State | None] = NodeVar("beamlet.global", lambda: None)


def _state() -> _State:
    n = api.current_node()
    s = _STATES.get(n)
    if s is None or s.server is None or not n.is_alive(s.server):
        raise BadArgument("global is not running on this node (start a visible node)")
    return s


# --- gen_server plumbing over the wire -----------------------------------------------------


def _reply(from_: Any, value: Any) -> None:
    """gen:reply/2 to a raw `{Pid, Tag}`: to the alias of an `[alias | Ref]` tag."""
    if type(from_) is not tuple or len(from_) != 2 or type(from_[0]) is not Pid:
        return
    pid, tag = from_
    dest: Any = pid
    if type(tag) is ImproperList and tag.items[:1] == (_ALIAS,) and type(tag.tail) is Ref:
        dest = tag.tail
    api.send(dest, (tag, value))


def _now() -> float:
    return api.current_node().loop.time()  # the loop's clock: virtual time in tests


def _cast(node: Atom, msg: Any) -> None:
    api.send((GLOBAL_NAME_SERVER, node), (_GEN_CAST, msg))


def _volatile_send(state: _State, node: Atom, msg: Any) -> None:
    """`erlang:send(To, Msg, [noconnect])`: only over an existing connection."""
    if node == state.me or node in state.dist.conns:
        api.send((GLOBAL_NAME_SERVER, node), msg)


async def _multi_call(
    nodes: Iterable[Atom], request: Any, timeout: float | None = None
) -> list[tuple[Atom, Any]]:
    """`gen_server:multi_call(Nodes, global_name_server, Request)` made by the caller
    itself (the lock holder must be the calling process): the replies of the nodes that
    answered; a node that is down or has no server is left out, as OTP does. A node
    still silent after `timeout` seconds replies `NO_ANSWER` (OTP waits forever)."""
    me = api.self()
    deadline = None if timeout is None else _now() + timeout
    pending: dict[Ref, Atom] = {}
    for node in dict.fromkeys(nodes):
        mref = api.monitor((GLOBAL_NAME_SERVER, node), alias="demonitor")
        tag = ImproperList((_ALIAS,), mref)
        api.send((GLOBAL_NAME_SERVER, node), (_GEN_CALL, (me, tag), request))
        pending[mref] = node
    replies: list[tuple[Atom, Any]] = []
    while pending:

        def ours(m: Any) -> bool:
            if type(m) is Down:
                return m.ref in pending
            return (
                type(m) is tuple
                and len(m) == 2
                and type(m[0]) is ImproperList
                and m[0].tail in pending
            )

        left = None if deadline is None else max(0.0, deadline - _now())
        msg = await api.receive(ours, timeout=left, default=_TIMEOUT)
        if msg is _TIMEOUT:
            for mref, node in pending.items():
                api.demonitor(mref, flush=True)  # a late reply then goes nowhere
                replies.append((node, NO_ANSWER))
            break
        if type(msg) is Down:
            pending.pop(msg.ref)
            continue
        mref = msg[0].tail
        node = pending.pop(mref)
        api.demonitor(mref, flush=True)
        replies.append((node, msg[1]))
    return replies


# --- locks (the server's side) -----------------------------------------------------------


def _can_set_lock(state: _State, lock_id: Any) -> bool:
    resource, requester = lock_id
    lock = state.locks.get(resource)
    return lock is None or lock.requester == requester


def _handle_set_lock(state: _State, lock_id: Any, pid: Pid) -> bool:
    resource, requester = lock_id
    lock = state.locks.get(resource)
    if lock is None:
        lock = state.locks[resource] = _Lock(requester)
    elif lock.requester != requester:
        return False
    if pid not in lock.holders:
        ref = api.monitor(pid)
        lock.holders[pid] = ref
        state.ref_locks.setdefault(ref, []).append(resource)
    return True


def _remove_lock(state: _State, resource: Any, pid: Pid, *, down: bool) -> None:
    lock = state.locks.get(resource)
    if lock is None:
        return
    ref = lock.holders.pop(pid, None)
    if ref is not None:
        api.demonitor(ref, flush=True)
        resources = state.ref_locks.get(ref, [])
        if resource in resources:
            resources.remove(resource)
        if not resources:
            state.ref_locks.pop(ref, None)
    if not lock.holders:
        del state.locks[resource]
        if resource == _GLOBAL:
            state.global_lock_down = down


def _handle_del_lock(state: _State, lock_id: Any, pid: Pid) -> None:
    resource, requester = lock_id
    lock = state.locks.get(resource)
    if lock is not None and lock.requester == requester:
        _remove_lock(state, resource, pid, down=False)


# --- names (the server's side) -----------------------------------------------------------


def _delete_name(state: _State, name: Any) -> None:
    name = name_key(name)
    entry = state.names.pop(name, None)
    if entry is None:
        return
    api.demonitor(entry.ref, flush=True)
    state.ref_names.pop(entry.ref, None)
    if state.pid_names.get(entry.pid) == name:
        del state.pid_names[entry.pid]
    if _is_beamlet_resolve(entry.method):
        _forget_resolver(state, entry.method)


def _lock_still_set(state: _State, from_: Pid | Atom, extra: Any) -> bool:
    lock = state.locks.get(_GLOBAL)
    if lock is None:
        return not state.global_lock_down
    if type(from_) is Pid:
        return from_ in lock.holders
    return bool(_extra_info(_LOCK, extra) == (_GLOBAL, lock.requester))


def _extra_info(tag: Atom, extra: Any) -> Any:
    if isinstance(extra, list):
        for item in extra:
            if type(item) is tuple and len(item) == 2 and item[0] == tag:
                return item[1]
    return None


def _ins_name(
    state: _State, name: Any, pid: Pid, method: Any, from_: Pid | Atom, extra: Any
) -> None:
    name = name_key(name)
    _delete_name(state, name)
    ref = api.monitor(pid)
    state.names[name] = _Name(pid, method, ref)
    state.pid_names[pid] = name
    state.ref_names[ref] = name
    if not _lock_still_set(state, from_, extra):
        # the lock's holder went down and up again: this registration is stale
        _delete_name(state, name)


def _do_ops(state: _State, ops: Any, conn_node: Atom, extra: Any) -> None:
    if not isinstance(ops, list):
        return
    for op in ops:
        if type(op) is tuple and len(op) == 2 and op[0] == _INSERT:
            item = op[1]
            if type(item) is tuple and len(item) == 3 and type(item[1]) is Pid:
                _ins_name(state, item[0], item[1], item[2], conn_node, extra)
    for op in ops:
        if type(op) is tuple and len(op) == 2 and op[0] == _DELETE:
            _delete_name(state, op[1])


def _get_names(state: _State) -> list[tuple[Any, Pid, Any]]:
    return [(name, e.pid, e.method) for name, e in state.names.items()]


# --- the server ----------------------------------------------------------------------------


class _Server:
    def __init__(self, state: _State) -> None:
        self.s = state

    # nodes

    def nodeup(self, node: Atom) -> None:
        s = self.s
        if node == s.me or node in s.known or node in s.resolvers:
            return
        sess = s.session(node)
        pre = sess.pre_connect
        my_tag = next(s.tags)
        sess.my_tag = my_tag
        locker = (_LOCKER, _NO_LONGER_A_PID, dict(s.known), s.locker)
        _cast(node, (_INIT_CONNECT, (VSN, my_tag), s.me, locker))

        async def resolver_body() -> None:  # a closure: the shared state is not copied
            await _resolver(s, node, my_tag)

        resolver = api.spawn(resolver_body)
        s.resolvers[node] = (my_tag, resolver)
        if pre is not None:
            sess.pre_connect = None
            api.send(api.self(), (_GEN_CAST, (_INIT_CONNECT, (pre[0], pre[2]), node, pre[1])))

    def nodedown(self, node: Atom, what: str = "disconnected") -> None:
        s = self.s
        sess = s.sessions.get(node)
        self.cancel_locker(node, sess.my_tag if sess else None)
        if s.locker is not None:
            api.send(s.locker, ("remove_from_known", node))
        s.sessions.pop(node, None)
        if what == "remove_connection":
            s.removing.add(node)
        elif what == "ignore_node" or node in s.removing:
            s.removing.discard(node)
        else:
            self.inform_connection_loss(node)
        s.pending.pop(node, None)
        s.known.pop(node, None)
        s.synced.discard(node)
        for pid in s.syncers:
            api.send(pid, ("nodedown", node))
        # names and locks of that node: their monitors fire `noconnection` DOWNs

    def inform_connection_loss(self, node: Atom) -> None:
        s = self.s
        if not s.prevent_overlapping:
            return
        xcre = s.creation_ext + s.node.creation - _MIN_SMALL
        msg = (_LOST_CONNECTION, s.me, xcre, next(s.tags), node)
        self.volatile_multicast(msg, node)

    def volatile_multicast(self, msg: Any, ignore: Atom) -> None:
        s = self.s
        for n in list(s.known) + list(s.pending):
            if n != ignore:
                _volatile_send(s, n, msg)

    def cancel_locker(self, node: Atom, tag: Any, then: Any = None) -> None:
        s = self.s
        if s.locker is not None:
            api.send(s.locker, ("cancel", node, tag, then))
        self.send_cancel_connect(node, tag)
        r = s.resolvers.get(node)
        if r is not None and r[0] == tag:
            api.exit(r[1], KILL)
            del s.resolvers[node]

    def send_cancel_connect(self, node: Atom, tag: Any) -> None:
        s = self.s
        sess = s.sessions.get(node)
        if node in s.pending and sess is not None and sess.my_tag == tag:
            _volatile_send(s, node, (_CANCEL_CONNECT, s.me, sess.his_tag))

    def restart_connect(self, node: Atom, tag: Any) -> None:
        s = self.s
        self.cancel_locker(node, tag)
        s.sessions.pop(node, None)
        s.pending.pop(node, None)
        if isinstance(tag, int):
            self.nodeup(node)

    # the connect protocol (casts)

    def init_connect(self, vsn: Any, node: Atom, init_msg: Any) -> None:
        s = self.s
        if type(vsn) is not tuple or len(vsn) < 2 or not isinstance(vsn[0], int):
            log.info("global: illegal protocol version %r from %s", vsn, node)
            return
        his_vsn, his_tag = vsn[0], vsn[1]
        use_vsn = min(his_vsn, VSN)
        if node in s.pending:  # another attempt while one is in progress
            _volatile_send(s, node, (_CANCEL_CONNECT, s.me, his_tag))
            self.restart_connect(node, s.session(node).my_tag)
        sess = s.session(node)
        sess.prot_vsn = use_vsn
        sess.his_tag = his_tag
        r = s.resolvers.get(node)
        if r is None:
            sess.pre_connect = (use_vsn, init_msg, his_tag)
            return
        if type(init_msg) is not tuple or len(init_msg) != 4 or type(init_msg[3]) is not Pid:
            log.info("global: malformed init_connect from %s: %r", node, init_msg)
            return
        his_locker = init_msg[3]
        if s.locker is not None:
            api.send(s.locker, ("his_the_locker", his_locker, use_vsn, his_tag, r[0]))
        _volatile_send(s, node, (_INIT_CONNECT_ACK, s.me, his_tag, r[0]))
        s.pending[node] = his_vsn

    def init_connect_ack(self, node: Atom, his_my_tag: Any, his_his_tag: Any) -> None:
        sess = self.s.sessions.get(node)
        if sess is None:
            return
        if sess.my_tag != his_my_tag or sess.his_tag != his_his_tag:
            _volatile_send(self.s, node, (_CANCEL_CONNECT, self.s.me, his_his_tag))
            self.restart_connect(node, sess.my_tag)

    def cancel_connect(self, node: Atom, tag: Any) -> None:
        s = self.s
        sess = s.sessions.get(node)
        if sess is not None and sess.my_tag == tag:
            self.cancel_locker(node, tag)
            s.sessions.pop(node, None)
            s.pending.pop(node, None)
            self.restart_connect(node, tag)

    def lock_is_set(self, node: Atom, tag: Any, lock_id: Any) -> None:
        s = self.s
        sess = s.sessions.get(node)
        if sess is None or sess.my_tag != tag:
            self.cancel_locker(node, tag)
            return
        _cast(node, (_EXCHANGE, s.me, _get_names(s), [], sess.his_tag))
        sess.lock_id = lock_id
        if type(sess.wait_lock) is tuple:
            names = sess.wait_lock[1]
            sess.wait_lock = "lock_is_set"
            self.exchange_now(node, names)
        else:
            sess.wait_lock = "lock_is_set"

    def exchange(self, node: Atom, names: Any, tag: Any) -> None:
        sess = self.s.sessions.get(node)
        if sess is None or sess.my_tag != tag:
            self.cancel_locker(node, tag)
            return
        self.exchange_now(node, names)

    def exchange_now(self, node: Atom, names: Any) -> None:
        sess = self.s.session(node)
        if sess.wait_lock == "lock_is_set":
            sess.wait_lock = None
            r = self.s.resolvers.get(node)
            if r is not None:
                api.send(r[1], ("resolve", names, node))
        else:
            sess.wait_lock = ("exchange", names)

    def exchange_ops(self, node: Atom, tag: Any, ops: Any, resolved: Any) -> None:
        s = self.s
        sess = s.sessions.get(node)
        if sess is None or sess.my_tag != tag:
            self.cancel_locker(node, tag)
            return
        known = s.known_list()
        _cast(node, (_RESOLVED, s.me, resolved, known, Atom("unused"), [], sess.his_tag))
        saved = sess.save_ops
        sess.save_ops = ops
        if type(saved) is tuple:
            self.resolved(node, saved[2], saved[1])

    def on_resolved(self, node: Atom, his_resolved: Any, his_known: Any, tag: Any) -> None:
        sess = self.s.sessions.get(node)
        if sess is None or sess.my_tag != tag:
            self.cancel_locker(node, tag)
            return
        if isinstance(sess.save_ops, list):
            self.resolved(node, his_resolved, his_known)
        else:
            sess.save_ops = ("resolved", his_known, his_resolved)

    def resolved(self, node: Atom, his_resolved: Any, his_known: Any) -> None:
        s = self.s
        sess = s.session(node)
        ops = list(sess.save_ops or []) + (his_resolved if isinstance(his_resolved, list) else [])
        new_nodes = _node_vsn_list([node, *(his_known if isinstance(his_known, list) else [])], s)
        his_known_nodes = [n for n, _ in new_nodes[1:]]
        self.sync_others(his_known_nodes)
        extra = [(_VSN, sess.prot_vsn), (_LOCK, sess.lock_id)]
        _do_ops(s, ops, s.me, extra)
        for pid in s.syncers:
            api.send(pid, ("synced", [node]))
        for other in his_known_nodes:
            o = s.sessions.get(other)
            s.pending.pop(other, None)
            self.cancel_locker(other, o.my_tag if o else None)
            s.sessions.pop(other, None)
        # the locker casts new_nodes to our partition before it releases the lock
        then: Any = ((_NEW_NODES, s.me, ops, [], new_nodes, extra), list(s.known))
        s.pending.pop(node, None)
        self.cancel_locker(node, sess.my_tag, then)
        s.sessions.pop(node, None)
        added = _add_to_known(s, new_nodes)
        if s.locker is not None:
            api.send(s.locker, ("add_to_known", added))
        s.synced.add(node)

    def new_nodes(self, node: Atom, ops: Any, nodes: Any, extra: Any) -> None:
        s = self.s
        added = _add_to_known(s, _node_vsn_list(nodes if isinstance(nodes, list) else [], s))
        self.sync_others(added)
        _do_ops(s, ops, node, extra)
        if s.locker is not None:
            api.send(s.locker, ("add_to_known", added))

    def in_sync(self, node: Atom) -> None:
        s = self.s
        for pid in s.syncers:
            api.send(pid, ("synced", [node]))
        s.synced.add(node)
        s.pending.pop(node, None)
        sess = s.sessions.get(node)
        self.cancel_locker(node, sess.my_tag if sess else None)
        s.sessions.pop(node, None)

    def sync_others(self, nodes: list[Atom]) -> None:
        for n in nodes:
            if n != self.s.me:
                api.spawn(_sync_other, n)

    # prevention of overlapping partitions

    def lost_connection(self, node_a: Atom, xcre: Any, op_id: Any, node_b: Atom) -> None:
        s = self.s
        if not s.prevent_overlapping:
            return
        if type(xcre) is not int or type(op_id) is not int:  # Erlang sends integers
            log.warning("global_name_server: malformed lost_connection from %s", node_a)
            return
        seen = s.lost.get((node_a, node_b))
        if seen is not None and seen[0] == xcre and op_id <= seen[1]:
            return
        self.volatile_multicast((_LOST_CONNECTION, node_a, xcre, op_id, node_b), node_a)
        s.lost[(node_a, node_b)] = (xcre, op_id)
        rm = node_a if node_b == s.me else node_b
        if rm in s.known or rm in s.pending:
            _volatile_send(s, rm, (_REMOVE_CONNECTION, s.me))
            log.warning(_POP_WARNING, s.me, "requested disconnect from", rm)
            self.nodedown(rm, "remove_connection")

    def remove_connection(self, node: Atom) -> None:
        s = self.s
        if node in s.known or node in s.pending:
            s.dist.disconnect(node)
            log.warning(_POP_WARNING, s.me, "disconnected", node)
            self.nodedown(node, "remove_connection")

    def disconnect_all(self, from_: Any) -> None:
        """global:disconnect/0: drop every visible connection without reporting the
        losses (so the others keep their connections); answer once all are down."""
        s = self.s
        peers = sorted(n for n, c in s.dist.conns.items() if c.flags & 1)

        async def answer_when_down() -> None:
            left = set(peers)
            while left:
                left.discard((await api.receive(NodeDown)).node)
            _reply(from_, peers)

        waiter = api.spawn(answer_when_down)
        for n in peers:
            s.dist.monitor_node(waiter, n)
        for n in peers:
            s.dist.disconnect(n)
            self.nodedown(n, "remove_connection")  # the coming nodedown is not reported

    # calls

    def call(self, from_: Any, req: Any) -> None:
        s = self.s
        caller = from_[0] if type(from_) is tuple and len(from_) == 2 else None
        if type(caller) is not Pid:
            return
        if type(req) is tuple and req:
            op, n = req[0], len(req)
            if op == _REGISTER and n == 4 and type(req[2]) is Pid:
                _ins_name(s, req[1], req[2], req[3], caller, [])
                return _reply(from_, _YES)
            if op == _REGISTER_EXT and n == 5 and type(req[2]) is Pid:
                _ins_name(s, req[1], req[2], req[3], caller, [])
                return _reply(from_, _YES)
            if op == _UNREGISTER and n == 2:
                _delete_name(s, req[1])
                return _reply(from_, _OK)
            if op in (_SET_LOCK, _DEL_LOCK) and n == 2 and _is_lock_id(req[1]):
                if op == _SET_LOCK:
                    return _reply(from_, _handle_set_lock(s, req[1], caller))
                _handle_del_lock(s, req[1], caller)
                return _reply(from_, True)
            if op == _SYNC and n == 2 and isinstance(req[1], list):
                nodes = [x for x in req[1] if type(x) is Atom and x != s.me and x not in s.synced]
                s.syncers.append(api.spawn_link(_syncer, nodes, from_))
                return None
        if req == _DISCONNECT:
            return self.disconnect_all(from_)
        if req == _GET_KNOWN:
            return _reply(from_, s.known_list())
        if req == _GET_SYNCED:
            return _reply(from_, sorted(s.synced))
        if req == _GET_PROTOCOL_VERSION:
            return _reply(from_, VSN)
        if req == _GET_NAMES_EXT:
            return _reply(from_, [])
        log.warning("global_name_server: unexpected call %r", req)
        return None

    def cast(self, req: Any) -> None:
        if type(req) is not tuple or not req:
            return
        op, n = req[0], len(req)
        if op == _INIT_CONNECT and n == 4 and type(req[2]) is Atom:
            self.init_connect(req[1], req[2], req[3])
        elif op == _LOCK_IS_SET and n == 4:
            self.lock_is_set(req[1], req[2], req[3])
        elif op == _EXCHANGE and n == 5 and type(req[1]) is Atom:
            self.exchange(req[1], req[2], req[4])
        elif op == _EXCHANGE_OPS and n == 5:
            self.exchange_ops(req[1], req[2], req[3], req[4])
        elif op == _RESOLVED and n == 7 and type(req[1]) is Atom:
            self.on_resolved(req[1], req[2], req[3], req[6])
        elif op == _NEW_NODES and n == 6 and type(req[1]) is Atom:
            self.new_nodes(req[1], req[2], req[4], req[5])
        elif op == _IN_SYNC and n == 3 and type(req[1]) is Atom:
            self.in_sync(req[1])
        elif op == _LOCK_SET and n in (4, 5) and type(req[1]) is Pid:
            sess = self.s.sessions.get(req[1].node)
            if self.s.locker is not None and (
                n == 4 or (sess is not None and sess.my_tag == req[4])
            ):
                api.send(self.s.locker, req)
        elif op in (Atom("async_del_name"), Atom("async_del_lock")):
            pass  # pre-R14 messages: the DOWN does the work
        else:
            log.warning("global_name_server: unexpected cast %r", req)

    def info(self, msg: Any) -> None:
        s = self.s
        log.debug("global_name_server %s <- %r", s.me, msg)
        if type(msg) is Down:
            self.down(msg.ref)
            return
        if type(msg) is NodeDown:
            self.nodedown(msg.node)
            return
        if type(msg) is Exit:  # a syncer ended (they are linked)
            if msg.pid in s.syncers:
                s.syncers.remove(msg.pid)
            return
        if type(msg) is not tuple or not msg:
            log.warning("global_name_server: unexpected message %r", msg)
            return
        op, n = msg[0], len(msg)
        if op == _GEN_CALL and n == 3:
            self.call(msg[1], msg[2])
        elif op == _GEN_CAST and n == 2:
            self.cast(msg[1])
        elif op == "nodeup" and n == 2:
            self.nodeup(msg[1])
        elif op == "extra_nodedown" and n == 2:
            for pid in s.syncers:
                api.send(pid, ("nodedown", msg[1]))
            self.nodedown(msg[1])
        elif op == _INIT_CONNECT_ACK and n == 4 and type(msg[1]) is Atom:
            self.init_connect_ack(msg[1], msg[2], msg[3])
        elif op == _CANCEL_CONNECT and n == 3 and type(msg[1]) is Atom:
            self.cancel_connect(msg[1], msg[2])
        elif op == _LOST_CONNECTION and n == 5 and type(msg[1]) is Atom and type(msg[4]) is Atom:
            self.lost_connection(msg[1], msg[2], msg[3], msg[4])
        elif op == _REMOVE_CONNECTION and n == 2 and type(msg[1]) is Atom:
            self.remove_connection(msg[1])
        elif op == _PREPARE_SHUTDOWN and n == 3 and type(msg[1]) is Pid:
            s.prevent_overlapping = False
            api.send(msg[1], (msg[2], _OK))
        elif op == _WHEREIS and n == 3:
            _reply(msg[2], s.where(msg[1]) or Atom("undefined"))
        else:
            log.warning("global_name_server: unexpected message %r", msg)

    def down(self, ref: Ref) -> None:
        s = self.s
        for resource in s.ref_locks.pop(ref, []):
            lock = s.locks.get(resource)
            if lock is not None:
                for pid, r in list(lock.holders.items()):
                    if r == ref:
                        _remove_lock(s, resource, pid, down=True)
        name = s.ref_names.get(ref)
        if name is not None:
            _delete_name(s, name)


def _is_lock_id(x: Any) -> bool:
    return type(x) is tuple and len(x) == 2


def _node_vsn_list(nodes: list[Any], s: _State) -> list[tuple[Atom, int]]:
    out: list[tuple[Atom, int]] = []
    for n in nodes:
        if type(n) is Atom:
            out.append((n, s.known.get(n, s.pending.get(n, VSN if n == s.me else 0))))
        elif type(n) is tuple and len(n) == 2 and type(n[0]) is Atom and isinstance(n[1], int):
            out.append((n[0], n[1] or s.known.get(n[0], 0)))
    return out


def _add_to_known(s: _State, nodes: list[tuple[Atom, int]]) -> list[Atom]:
    added = []
    for n, v in nodes:
        if n == s.me:
            continue
        if n not in s.known:
            s.known[n] = v
            added.append(n)
        elif s.known[n] < 0:
            s.known[n] = v
    return added


async def _server_main(state: _State) -> None:
    server = _Server(state)
    api.process_flag(trap_exit=True)
    while True:
        msg = await api.receive()
        try:
            server.info(msg)
        except Exception:  # one bad message must not take the name server down
            log.exception("global_name_server: failed on %r", msg)


async def _resolver(state: _State, node: Atom, tag: int) -> None:
    """Settle name conflicts with `node` (run apart so locks stay usable meanwhile)."""
    while True:
        msg = await api.receive()
        if type(msg) is tuple and len(msg) == 3 and msg[0] == "resolve" and msg[2] == node:
            break
    ops: list[Any] = []
    resolved: list[Any] = []
    names = msg[1] if isinstance(msg[1], list) else []
    for item in names:
        if type(item) is not tuple or len(item) != 3 or type(item[1]) is not Pid:
            continue
        name, pid, method = name_key(item[0]), item[1], item[2]
        mine = state.names.get(name)
        if mine is None:
            ops.append((_INSERT, (name, pid, method)))
        elif mine.pid == pid or not str(state.me) < str(node):
            continue  # the same registration, or the other node resolves
        else:
            where = mine.pid.node
            if _is_beamlet_resolve(mine.method):
                where = mine.method[1]
            winner = await _resolve_remote(where, mine.method, name, pid, mine.pid)
            if winner == pid:
                ops.append((_INSERT, (name, pid, method)))
            elif winner == mine.pid:
                resolved.append((_INSERT, (name, mine.pid, mine.method)))
            elif winner is _BADRPC:
                ops.append((_INSERT, (name, pid, method)))
            else:
                ops.append((_DELETE, name))
                resolved.append((_DELETE, name))
    _cast(state.me, (_EXCHANGE_OPS, node, tag, ops, resolved))


_BADRPC = object()
_TIMEOUT = object()


async def _resolve_remote(node: Atom, method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
    from beamlet.distribution.api import RpcError, rpc_call

    if node == api.node_name():
        return _resolve_it(method, name, pid1, pid2)
    try:
        return await rpc_call(node, "global", "resolve_it", [method, name, pid1, pid2])
    except RpcError:
        return _BADRPC


def _is_beamlet_resolve(method: Any) -> bool:
    return (
        type(method) is tuple
        and len(method) == 3
        and method[0] == _BEAMLET_RESOLVE
        and type(method[1]) is Atom
        and type(method[2]) is int
    )


def _resolve_it(method: Any, name: Any, pid1: Pid, pid2: Pid) -> Any:
    """`global:resolve_it/4` on this node: run a resolve method of a name registered for
    one of this node's pids. Erlang funs cannot run here; a fun from module `global` is
    taken for its default, `random_exit_name`."""
    fn: Resolve | None = None
    if type(method) is tuple and len(method) == 2 and method[0] == _GLOBAL:
        fn = _BUILTIN.get(method[1])
    elif _is_beamlet_resolve(method):
        st = _STATES.get()
        if st is not None and method[1] == st.me:
            fn = st.resolve_fns.get(method[2])
    elif type(method) is etf.Fun and _fun_module(method) == _GLOBAL:
        fn = random_exit_name
    if fn is None:
        log.info("global: cannot run resolve method %r for %r; unregistering it", method, name)
        return _NONE
    try:
        return fn(name, pid1, pid2)
    except Exception as e:
        return ("EXIT", repr(e))


async def _sync_other(node: Atom) -> None:
    from beamlet.distribution.api import connect

    if await connect(node):
        _cast(node, (_IN_SYNC, api.node_name(), True))
    else:
        log.warning("global at %s failed to connect to %s", api.node_name(), node)
        api.send(GLOBAL_NAME_SERVER, ("extra_nodedown", node))


async def _syncer(nodes: list[Atom], from_: Any) -> None:
    from beamlet.distribution.api import monitor_node

    waiting = set(nodes)
    for n in waiting:
        monitor_node(n)
    while waiting:
        msg = await api.receive()
        if type(msg) is NodeDown:
            waiting.discard(msg.node)
        elif type(msg) is tuple and len(msg) == 2 and msg[0] == "nodedown":
            waiting.discard(msg[1])
        elif type(msg) is tuple and len(msg) == 2 and msg[0] == "synced":
            waiting.difference_update(msg[1])
    _reply(from_, _OK)


# --- the locker ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Him:
    node: Atom
    locker: Pid
    vsn: int
    my_tag: Any
    his_tag: Any


class _Locker:
    """The one permanent locker of a node: locks our partition when another connects."""

    def __init__(self, state: _State) -> None:
        self.s = state
        self.others: list[_Him] = []
        self.known: list[Atom] = []
        self.just_synced = False
        self.silent: dict[Atom, tuple[float, float]] = {}  # node -> (retry at, back-off)

    @property
    def boss(self) -> Atom:
        return max([self.s.me, *self.known], key=str)

    async def main(self) -> None:
        while True:
            if not self.others:
                timeout: float | None = None
            elif self.just_synced:
                timeout = 0
            elif not self.known:
                timeout = 0.2
            else:
                timeout = min(1.0 + 0.1 * len(self.known), 3.0)
            self.just_synced = False
            msg = await api.receive(timeout=timeout, default=_TIMEOUT)
            if msg is _TIMEOUT:
                if not self.s.global_lock_set():
                    await self.select_node()
                continue
            try:
                await self.message(msg)
            except Exception:
                log.exception("global locker: failed on %r", msg)

    async def message(self, msg: Any) -> None:
        log.debug("global locker %s <- %r", self.s.me, msg)
        if type(msg) is not tuple or not msg:
            return
        op = msg[0]
        if op == "his_the_locker":
            _, locker, vsn, his_tag, my_tag = msg
            self.others.append(_Him(locker.node, locker, vsn, my_tag, his_tag))
        elif op == "cancel":
            _, node, tag, _then = msg
            if tag is not None:
                self.remove(node, tag)
            self.silent.pop(node, None)  # a new connection starts afresh
        elif op == "add_to_known":
            self.known = [*msg[1], *self.known]
        elif op == "remove_from_known":
            if msg[1] in self.known:
                self.known.remove(msg[1])
        elif op == _LOCK_SET and len(msg) in (4, 5) and msg[2] is True:
            await self.spontaneous(msg)

    def remove(self, node: Atom, tag: Any) -> None:
        for him in self.others:
            if him.node == node and him.my_tag == tag:
                self.others.remove(him)
                return

    def find(self, node: Atom) -> _Him | None:
        return next((h for h in self.others if h.node == node), None)

    async def spontaneous(self, msg: Any) -> None:
        """The other locker has its lock first: try ours and answer."""
        pid: Pid = msg[1]
        him = self.find(pid.node)
        if him is None or (len(msg) == 5 and msg[4] != him.my_tag):
            self.send_lock_set(False, pid, 5, 0)
            return
        lock_id = self.lock_id(pid)
        ok = await self.lock_nodes_safely(lock_id, [])
        self.send_lock_set(ok, pid, him.vsn, him.his_tag)
        if ok:
            known2 = [self.s.me, *self.known]
            _cast(self.s.me, (_LOCK_IS_SET, him.node, him.my_tag, lock_id))
            await self.wait_cancel(him.node, lock_id, him.my_tag, known2)
            self.just_synced = True
            self.remove(him.node, him.my_tag)

    async def select_node(self) -> None:
        candidates = [h for h in self.others if h.node not in self.known]
        self.others = candidates
        now = _now()
        candidates = [h for h in candidates if self.silent.get(h.node, (0.0,))[0] <= now]
        if not candidates:
            return
        him = random.choice(candidates)
        lock_id = self.lock_id(him.locker)
        silent: list[Atom] = []
        if not await self.lock_nodes_safely(lock_id, [him.node], silent):
            for node in silent:
                self.back_off(node, "its global_name_server did not answer set_lock")
            return
        known1 = [self.s.me, him.node, *self.known]
        self.send_lock_set(True, him.locker, him.vsn, him.his_tag)
        await self.lock_is_set(him, known1, lock_id)

    def back_off(self, node: Atom, why: str) -> None:
        """`node` did not answer in time: leave it for a while (doubling, up to a
        minute), so that our partition's lock is not held for it again and again."""
        backoff = min(self.silent.get(node, (0.0, ANSWER_TIMEOUT / 2))[1] * 2, SILENT_BACKOFF_MAX)
        self.silent[node] = (_now() + backoff, backoff)
        log.warning(
            "'global' at node '%s': %s within %s s; not in sync with node '%s', retrying in %s s",
            self.s.me,
            why,
            ANSWER_TIMEOUT,
            node,
            backoff,
        )

    async def lock_is_set(self, him: _Him, known1: list[Atom], lock_id: Any) -> None:
        node = him.node

        def answer(m: Any) -> bool:
            if type(m) is not tuple or not m:
                return False
            if m[0] == _LOCK_SET and len(m) in (4, 5) and type(m[1]) is Pid:
                return bool(m[1].node == node)
            return m[0] == "cancel" and len(m) == 4 and m[1] == node and m[2] == him.my_tag

        while True:
            m = await api.receive(answer, timeout=ANSWER_TIMEOUT, default=_TIMEOUT)
            if m is _TIMEOUT:
                self.back_off(node, f"the locker of node '{node}' did not answer lock_set")
                await _delete_global_lock(lock_id, known1, ANSWER_TIMEOUT)
                return
            if m[0] == "cancel":
                self.run_then(m[3])
                await _delete_global_lock(lock_id, known1, ANSWER_TIMEOUT)
                self.remove(node, him.my_tag)
                return
            if len(m) == 5 and m[4] != him.my_tag:
                continue  # an old session's answer
            if m[2] is True:
                _cast(self.s.me, (_LOCK_IS_SET, node, him.my_tag, lock_id))
                await self.wait_cancel(node, lock_id, him.my_tag, known1)
                self.just_synced = True
                self.remove(node, him.my_tag)
                return
            await _delete_global_lock(lock_id, known1, ANSWER_TIMEOUT)
            return

    async def wait_cancel(self, node: Atom, lock_id: Any, tag: Any, known: list[Atom]) -> None:
        def cancel(m: Any) -> bool:
            return (
                type(m) is tuple
                and len(m) == 4
                and m[0] == "cancel"
                and m[1] == node
                and m[2] == tag
            )

        m = await api.receive(cancel)
        self.run_then(m[3])
        await _delete_global_lock(lock_id, known, ANSWER_TIMEOUT)

    def run_then(self, then: Any) -> None:
        """What the server asked to run before the lock goes: cast new_nodes."""
        if type(then) is tuple and len(then) == 2:
            msg, nodes = then
            for n in nodes:
                _cast(n, msg)

    def lock_id(self, his_locker: Pid) -> Any:
        return (_GLOBAL, sorted([api.self(), his_locker]))

    def send_lock_set(self, ok: bool, his_locker: Pid, vsn: int, his_tag: Any) -> None:
        msg: tuple[Any, ...]
        if vsn < 8:
            msg = (_LOCK_SET, api.self(), ok, self.known)
        else:
            msg = (_LOCK_SET, api.self(), ok, self.known, his_tag)
        _cast(his_locker.node, msg)

    async def drain_known(self) -> None:
        """Apply pending add/remove_from_known messages (global's update_locker_known)."""
        while True:
            m = await api.receive(_known_update, timeout=0, default=None)
            if m is None:
                return
            if m[0] == "add_to_known":
                self.known = [*m[1], *self.known]
            elif m[1] in self.known:
                self.known.remove(m[1])

    async def lock_nodes_safely(
        self, lock_id: Any, extra: list[Atom], silent: list[Atom] | None = None
    ) -> bool:
        me, t = self.s.me, ANSWER_TIMEOUT
        first = [self.boss]
        if first != [me] and not _can_set_lock(self.s, lock_id):
            return False
        if not await _set_lock_once(lock_id, first, t, silent):
            return False
        await self.drain_known()
        second = [n for n in [me, *extra] if n not in first]
        if not await _set_lock_once(lock_id, second, t, silent):
            await _multi_call(first, (_DEL_LOCK, lock_id), t)
            return False
        rest = [n for n in self.known if n not in first]
        if not await _set_lock_once(lock_id, rest, t, silent):
            await _multi_call(first + second, (_DEL_LOCK, lock_id), t)
            return False
        return True


def _known_update(m: Any) -> bool:
    return type(m) is tuple and len(m) == 2 and m[0] in ("add_to_known", "remove_from_known")


# --- locks (the client's side) -----------------------------------------------------------


async def _set_lock_once(
    lock_id: Any, nodes: list[Atom], timeout: float | None = None, silent: list[Atom] | None = None
) -> bool:
    """One attempt on `nodes`; the nodes that did not answer within `timeout` are added
    to `silent`."""
    if not nodes:
        return True
    if len(nodes) > 1 and api.node_name() in nodes and not _can_set_lock(_state(), lock_id):
        return False
    replies = await _multi_call(nodes, (_SET_LOCK, lock_id), timeout)
    if all(r is True for _, r in replies):
        return True
    if silent is not None:
        silent.extend(n for n, r in replies if r is NO_ANSWER)
    if len(replies) > 1:
        yes = [n for n, r in replies if r is True]
        await _multi_call(yes, (_DEL_LOCK, lock_id), timeout)
    return False


async def _random_sleep(times: int) -> None:
    tmax = 8.0 if times > 5 else (1 << times) / 8
    await api.sleep(random.uniform(0.001, tmax))


def _nodes_or_all(nodes: Iterable[str | Atom] | None) -> list[Atom]:
    if nodes is None:  # Erlang's [node() | nodes()]: this node and the visible ones
        s = _state()
        return [s.me, *(n for n, c in sorted(s.dist.conns.items()) if c.flags & 1)]
    if isinstance(nodes, str | bytes) or not isinstance(nodes, Iterable):
        raise BadArgument(f"nodes must be a list of node names, not {nodes!r}")
    listed = list(nodes)
    if not all(isinstance(n, str) for n in listed):
        raise BadArgument(f"nodes must be a list of node names, not {listed!r}")
    return [Atom(n) for n in listed]


def _check_id(lock_id: Any) -> tuple[Any, Any]:
    if type(lock_id) is not tuple or len(lock_id) != 2:
        raise BadArgument(f"a lock id is (resource_id, requester_id), not {lock_id!r}")
    return lock_id


async def set_lock(
    lock_id: tuple[Any, Any], nodes: Iterable[str | Atom] | None = None, retries: int | None = None
) -> bool:
    """Set the lock `(resource_id, requester_id)` on `nodes` (default: this node and the
    visible nodes it is connected to, Erlang's `[node() | nodes()]`), retrying with
    random back-off (`retries=None`: forever, as Erlang's `infinity`). True once set;
    False after the retries. The caller holds it until `del_lock` or its death;
    processes using the same requester id share it.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def other() -> None:  # another requester of the same resource
        ...     lock = (Atom("printer"), beamlet.self())
        ...     print("other:", await global_.set_lock(lock, retries=0))
        >>> async def main() -> None:
        ...     print("main:", await global_.set_lock((Atom("printer"), beamlet.self())))
        ...     await beamlet.Task.await_(beamlet.Task.async_(other))
        ...     await global_.del_lock((Atom("printer"), beamlet.self()))
        ...     await beamlet.Task.await_(beamlet.Task.async_(other))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        main: True
        other: False
        other: True
    """
    _check_id(lock_id)
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise BadArgument(f"retries must be an integer >= 0 or None, not {retries!r}")
    targets = _nodes_or_all(nodes)
    times = 1
    while True:
        if await _set_lock_once(lock_id, targets):
            return True
        if retries is not None:
            if retries == 0:
                return False
            retries -= 1
        await _random_sleep(times)
        times += 1


async def del_lock(lock_id: tuple[Any, Any], nodes: Iterable[str | Atom] | None = None) -> None:
    """Release the caller's hold on `lock_id` on `nodes` (default: this node and the
    visible nodes it is connected to).

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     lock = (Atom("printer"), beamlet.self())
        ...     print(await global_.set_lock(lock), await global_.del_lock(lock))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        True None
    """
    _check_id(lock_id)
    await _multi_call(_nodes_or_all(nodes), (_DEL_LOCK, lock_id))


async def _delete_global_lock(
    lock_id: Any, nodes: list[Atom], timeout: float | None = None
) -> None:
    """Release the boss last (fewer half-locked partitions if we die meanwhile)."""
    boss = max(nodes, key=str)
    await _multi_call([n for n in nodes if n != boss], (_DEL_LOCK, lock_id), timeout)
    await _multi_call([boss], (_DEL_LOCK, lock_id), timeout)


async def trans(
    lock_id: tuple[Any, Any],
    fn: Callable[[], Awaitable[T] | T],
    nodes: Iterable[str | Atom] | None = None,
    retries: int | None = None,
) -> T | Atom:
    """Run `fn` holding `lock_id` (Erlang's `global:trans/4`): its result, or `ABORTED`
    if the lock could not be set within `retries`.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     print(await global_.trans((Atom("account"), beamlet.self()), lambda: 42))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        42
    """
    if not callable(fn):
        raise BadArgument(f"trans needs a function to run, not {fn!r}")
    if not await set_lock(lock_id, nodes, retries):
        return ABORTED
    targets = _nodes_or_all(nodes)
    try:
        result = fn()
        if isinstance(result, Awaitable):
            result = await result
        return result
    finally:
        await del_lock(lock_id, targets)


# --- names (the client's side) -----------------------------------------------------------


def _method(state: _State, resolve: Resolve | None) -> Any:
    if resolve is None or resolve is random_exit_name:
        return (_GLOBAL, _RANDOM_EXIT)
    for atom, fn in _BUILTIN.items():
        if resolve is fn:
            return (_GLOBAL, atom)
    if not callable(resolve):
        raise BadArgument(
            f"resolve must be a function (name, pid1, pid2) -> pid | none: {resolve!r}"
        )
    index = next((i for i, fn in state.resolve_fns.items() if fn is resolve), None)
    if index is None:
        index = next(state.tags)
        state.resolve_fns[index] = resolve
    state.resolve_calls[index] = state.resolve_calls.get(index, 0) + 1
    return (_BEAMLET_RESOLVE, state.me, index)


def _method_done(state: _State, method: Any) -> None:
    """A registration that used `method` is over (registered or not)."""
    if _is_beamlet_resolve(method):
        index = method[2]
        left = state.resolve_calls.get(index, 1) - 1
        if left > 0:
            state.resolve_calls[index] = left
        else:
            state.resolve_calls.pop(index, None)
            _forget_resolver(state, method)


def _forget_resolver(state: _State, method: Any) -> None:
    """Drop a Python resolve function once no name and no registration in flight uses
    it (each registration with a new function object would otherwise keep it for ever)."""
    if method[1] != state.me or method[2] in state.resolve_calls:
        return
    if not any(e.method == method for e in state.names.values()):
        state.resolve_fns.pop(method[2], None)


async def _get_known(state: _State) -> list[Atom]:
    """The known nodes, asked of the server (global's get_known): the answer comes after
    any nodedown already in its mailbox, so a node just lost is not locked (a lock
    request would dial it again)."""
    replies = await _multi_call([state.me], _GET_KNOWN)
    known = replies[0][1] if replies else []
    return sorted(n for n, _vsn in known)


async def _registrar(state: _State, request: Callable[[list[Atom]], Awaitable[T]]) -> T:
    """global's trans_all_known: take `{global, Caller}` on the boss, then on every
    known node (again if a node became known meanwhile), run `request(nodes)`."""
    lock_id = (_GLOBAL, api.self())
    times = 0
    while True:
        known = await _get_known(state)
        nodes = [state.me, *known]
        boss = max(nodes, key=str)
        if await _set_lock_once(lock_id, [boss]):
            if await _set_lock_once(lock_id, nodes) and set(await _get_known(state)) <= set(known):
                break
            await del_lock(lock_id, [boss])
        await _random_sleep(times)
        times += 1
    try:
        return await request(nodes)
    finally:
        await _delete_global_lock(lock_id, nodes)


def _check_pid(pid: Any) -> Pid:
    if type(pid) is not Pid:
        raise BadArgument(f"not a pid: {pid!r}")
    return pid


async def register_name(name: Any, pid: Pid, resolve: Resolve | None = None) -> bool:
    """Register `pid` as `name` on every node of the cluster (Erlang's
    `global:register_name/3`): True (`yes`), or False (`no`) if the name is taken or
    `pid` already has a global name. `resolve(name, pid1, pid2)` settles a conflict when
    two partitions meet (default `random_exit_name`).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def idle() -> None:
        ...     await beamlet.receive()
        >>> async def main() -> None:
        ...     print(await global_.register_name(("cache", 7), beamlet.self()))
        ...     print(await global_.register_name(("cache", 7), beamlet.spawn(idle)))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        True
        False
    """
    state = _state()
    _check_pid(pid)
    name = _new_name(name)
    method = _method(state, resolve)

    async def request(nodes: list[Atom]) -> bool:
        if state.where(name) is not None or pid in state.pid_names:
            return False
        await _multi_call(nodes, (_REGISTER, name, pid, method))
        return True

    try:
        return await _registrar(state, request)
    finally:
        _method_done(state, method)


async def re_register_name(name: Any, pid: Pid, resolve: Resolve | None = None) -> None:
    """Register `pid` as `name` whether or not the name is taken (the name moves).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def idle() -> None:
        ...     await beamlet.receive()
        >>> async def main() -> None:
        ...     first, second = beamlet.spawn(idle), beamlet.spawn(idle)
        ...     await global_.register_name("db", first)
        ...     await global_.re_register_name("db", second)
        ...     print(global_.whereis_name("db") == second)
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        True
    """
    state = _state()
    _check_pid(pid)
    name = _new_name(name)
    method = _method(state, resolve)

    async def request(nodes: list[Atom]) -> None:
        await _multi_call(nodes, (_REGISTER, name, pid, method))

    try:
        await _registrar(state, request)
    finally:
        _method_done(state, method)


async def unregister_name(name: Any) -> None:
    """Remove `name` on every node (nothing if it is not registered).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     await global_.register_name("db", beamlet.self())
        ...     await global_.unregister_name("db")
        ...     print(global_.whereis_name("db"))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        None
    """
    state = _state()
    name = name_key(name)
    if state.where(name) is None:
        return

    async def request(nodes: list[Atom]) -> None:
        await _multi_call(nodes, (_UNREGISTER, name))

    await _registrar(state, request)


async def disconnect() -> list[Atom]:
    """Leave the cluster (Erlang's `global:disconnect/0`, OTP 25.1): drop the connections
    to every visible node without the `lost_connection` reports that would make the
    others drop each other too; the nodes disconnected, once all are down.

    Examples:
        >>> from beamlet import Node
        >>> from beamlet.distribution import connect, global_, nodes, start_distribution
        >>> async def main() -> None:
        ...     async with Node("global_other@127.0.0.1") as other:
        ...         d = await start_distribution(other, cookie="secret", hidden=False)
        ...         await connect("global_other@127.0.0.1")
        ...         print(await global_.disconnect(), nodes())
        ...         await d.stop()
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        [Atom('global_other@127.0.0.1')] []
    """
    state = _state()
    replies = await _multi_call([state.me], _DISCONNECT)
    return list(replies[0][1]) if replies else []


def whereis_name(name: Any) -> Pid | None:
    """The pid registered as `name` in the cluster, or None: a local read, as in Erlang.

    Examples:
        >>> from beamlet import Atom
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     await global_.register_name("db", beamlet.self())
        ...     print(global_.whereis_name(Atom("db")) == beamlet.self(), global_.whereis_name("x"))
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        True None
    """
    return _state().where(name)


def registered_names() -> list[Any]:
    """Every global name this node knows (in `name_key` form).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     await global_.register_name(("cache", "a"), beamlet.self())
        ...     print(global_.registered_names())
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        [(b'cache', b'a')]
    """
    return list(_state().names)


def send(name: Any, msg: Any) -> Pid:
    """Send `msg` to the process registered as `name`; returns its pid. Raises
    `BadArgument` if the name is not registered (Erlang exits `{badarg, {Name, Msg}}`).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     await global_.register_name("db", beamlet.self())
        ...     global_.send("db", "hello")
        ...     print(await beamlet.receive())
        ...     try:
        ...         global_.send("nobody", "hello")
        ...     except beamlet.BadArgument as e:
        ...         print(e)
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        hello
        no process is globally registered as 'nobody'
    """
    pid = whereis_name(name)
    if pid is None:
        raise BadArgument(f"no process is globally registered as {name!r}")
    api.send(pid, msg)
    return pid


async def sync(timeout: float | None = None) -> None:
    """Wait until `global` is in sync with every visible connected node (Erlang's
    `global:sync/0`).

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     print(await global_.sync(timeout=5))   # alone: at once
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        None
    """
    from beamlet.behaviours.gen_server import GenServer

    state = _state()
    assert state.server is not None
    # Erlang syncs with nodes(): a node connected a moment ago counts before the two
    # name servers have started their session (it is in neither `known` nor `pending`).
    visible = [n for n, c in state.dist.conns.items() if c.flags & 1]  # PUBLISHED
    nodes = list(dict.fromkeys([*state.known_nodes(), *state.pending, *visible]))
    await GenServer.call(state.server, (_SYNC, nodes), timeout)


class _Registry:
    """What serves `Global` names on this node (`behaviours.names`' hook): a start awaits
    the cluster-wide registration in the new process; `whereis` is a local read."""

    def register_name(self, key: Any, pid: Pid) -> Awaitable[bool]:
        return register_name(key, pid)

    def unregister_name(self, key: Any) -> Awaitable[None]:
        me = api.self()

        async def if_still_held() -> None:  # the name may have moved meanwhile
            if _state().where(key) == me:
                await unregister_name(key)

        return if_still_held()

    def whereis_name(self, key: Any) -> Pid | None:
        st = _STATES.get()
        return st.where(key) if st is not None and st.server is not None else None

    def send(self, key: Any, msg: Any) -> None:
        send(key, msg)


# --- start ---------------------------------------------------------------------------------


def start(node: Node) -> Pid:
    """Start `global_name_server` (with its locker) on `node`, a started distributed
    node; its visible peers are then synchronised as they connect. Called by
    `start_distribution` for a visible node.

    Examples:
        >>> from beamlet.distribution import global_
        >>> async def main() -> None:
        ...     print(beamlet.whereis(global_.GLOBAL_NAME_SERVER) is not None)
        >>> beamlet.run(main, name="global_demo@127.0.0.1", cookie="secret", hidden=False)
        True
        >>> global_.start(beamlet.Node("plain"))   # not distributed
        Traceback (most recent call last):
        ...
        beamlet...BadArgument: global needs a distributed node
    """
    dist = node.dist
    if not isinstance(dist, Distribution):
        raise BadArgument("global needs a distributed node")
    state = _State(node, dist)
    _STATES.set(state, node)
    install_global(_Registry(), node)

    async def server() -> None:
        await _server_main(state)

    async def locker() -> None:
        await _Locker(state).main()

    state.server = node.spawn(server)
    node.register(GLOBAL_NAME_SERVER, state.server)
    state.locker = node.spawn(locker)
    dist.register_function("global", "resolve_it", _resolve_it)

    def on_nodeup(peer: Atom) -> None:
        conn = dist.conns.get(peer)
        if conn is not None and conn.flags & 1 and state.server is not None:  # PUBLISHED
            # one nodedown subscription per connection, whatever the server makes of
            # the nodeup: a node global already knows (through new_nodes) is connected
            # to without a new session, and its loss must still be seen and reported
            dist.monitor_node(state.server, peer)
            node.send(state.server, ("nodeup", peer))

    dist.on_nodeup.append(on_nodeup)
    for peer in list(dist.conns):
        on_nodeup(peer)
    return state.server
