"""Process groups, interoperable with Erlang's `pg` (docs/protocol.md §7).

A *scope* is a process registered under the scope's name (`pg` by default) on every
node that takes part. Processes join and leave named *groups* through their own node's
scope; scopes with the same name on connected nodes tell each other about their local
members, so every node ends up knowing every member ("strong eventual consistency":
two nodes may briefly disagree while updates travel). A member that exits is removed
from all its groups, everywhere; when a node goes away, all its members disappear.

The scope speaks Erlang's `pg` protocol exactly (same messages, atoms and shapes), so a
beamlet scope and an Erlang or Elixir `:pg` scope of the same name form one overlay
network:

    pid = await pg.start()                     # the default scope, registered as `pg`
    await pg.join(Atom("workers"))             # the calling process joins
    pg.get_members(Atom("workers"))            # [<0.5.0>, <erl@host.93.0>, ...]

and on the Erlang side `pg:get_members(workers)` lists the Python pid.

When to use it: to find "some/all processes doing X" across a cluster without a
central registry (workers for a job type, subscribers of a topic). It is not a
registry of unique names: a group may hold many processes, a process may join a group
several times (and must then leave as often), and there is no ordering or locking.

Discovery. A beamlet node is *hidden* by default (§4), and Erlang scopes discover only
visible nodes by themselves, so the beamlet scope does the discovering: when it starts
it sends `{discover, Scope}` to the scope of the same name on every connected node, and
it does the same each time a connection comes up (through `Distribution.on_nodeup`).
Start distribution before the scope; a scope started on a node without distribution
stays local until distribution is started *and* it is restarted.

Group names are any term that can cross the wire. They are kept in a hashable form: a
`str` is stored as its UTF-8 `bytes` (on the wire both are the same Erlang binary, so
`"jobs"` and `b"jobs"` are one group), lists (and `etf.Charlist`, which is how Erlang
sends short lists of small integers) become `etf.FrozenList`, maps
`etf.FrozenMap`, `True`/`False`/`None` the atoms `true`/`false`/`undefined`. Prefer
atoms (`Atom("jobs")`): Erlang and Elixir code names groups with atoms, and an atom
round-trips unchanged. Note that Python treats `1`, `1.0` as one key, Erlang as two.

Reads (`get_members`, `get_local_members`, `which_groups`) are plain function calls on
the scope's table, as fast as a dict lookup; like Erlang's ETS reads they reflect the
updates the scope has processed so far. Changes (`join`, `leave`, `monitor`) are calls
to the scope process, from inside a process.

An Erlang scope started (or restarted) while the connection is already up does not
discover a hidden node (Erlang sends `discover` only at start, to visible nodes, and on
`nodeup` of visible nodes), so the beamlet scope also re-sends `discover`, every
`rediscover` seconds (default 5), to connected nodes whose scope it does not know yet.
Until then the two sides do not see each other's members.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from beamlet import _core as api
from beamlet._core import (
    Atom,
    BadArgument,
    Down,
    Node,
    NodeVar,
    NotInProcess,
    Pid,
    Ref,
)
from beamlet.behaviours import gen
from beamlet.distribution import etf

__all__ = [
    "DEFAULT_SCOPE",
    "GroupEvent",
    "demonitor",
    "get_local_members",
    "get_members",
    "join",
    "leave",
    "monitor",
    "monitor_scope",
    "start",
    "which_groups",
    "which_local_groups",
]

log = logging.getLogger("beamlet.distribution.pg")

DEFAULT_SCOPE = Atom("pg")

# Protocol atoms (§7): Erlang's scope crashes on anything else, so never send binaries.
GEN_CALL, GEN_CAST = gen.GEN_CALL, gen.GEN_CAST
DISCOVER = Atom("discover")
SYNC = Atom("sync")
JOIN = Atom("join")
LEAVE = Atom("leave")
NODEUP = Atom("nodeup")
REDISCOVER = Atom("$pg_rediscover")  # our own timer message
NODEDOWN = Atom("nodedown")
OK = Atom("ok")
NOT_JOINED = Atom("not_joined")
MONITOR = Atom("monitor")
DEMONITOR = Atom("demonitor")
JOIN_LOCAL = Atom("join_local")
LEAVE_LOCAL = Atom("leave_local")
BADARG = Atom("badarg")
ERROR = Atom("error")
NOLOCAL = Atom("nolocal")

# Monitor tags the scope uses to tell its monitors apart.
_MEMBER, _PEER, _SCOPE_SUB, _GROUP_SUB = "member", "peer", "scope_sub", "group_sub"


@dataclass(frozen=True, slots=True)
class GroupEvent:
    """A membership change, sent to subscribers of `monitor_scope`/`monitor` (Erlang's
    `{Ref, join | leave, Group, Pids}`). `action` is the atom `join` or `leave`.

    Examples:
        >>> ref, members = await pg.monitor(Atom("workers"))
        >>> match await beamlet.receive(GroupEvent):
        ...     case GroupEvent(ref=r, action=pg.JOIN, pids=new) if r == ref: ...
    """

    ref: Ref
    action: Atom
    group: Any
    pids: list[Pid]


# --------------------------------------------------------------------------- group keys


def group_key(group: Any) -> Any:
    """The hashable form a group name is stored (and sent) in; see the module doc."""
    t = type(group)
    if t is Atom or t is bytes or t is int or t is Pid or t is Ref:
        return group
    if t is str:
        return group.encode()
    if group is True or group is False or group is None:
        return Atom("true" if group else "false" if group is False else "undefined")
    if t is list or t is etf.FrozenList:
        return etf.FrozenList(group_key(x) for x in group)
    if t is tuple:
        return tuple(group_key(x) for x in group)
    if t is dict or t is etf.FrozenMap:
        return etf.FrozenMap({group_key(k): group_key(v) for k, v in group.items()})
    if t is bytearray:
        return bytes(group)
    if t is etf.Charlist:  # Erlang sends short lists of small ints as strings
        return etf.FrozenList(group.codes())
    if t is etf.ImproperList:
        return etf.ImproperList(tuple(group_key(x) for x in group.items), group_key(group.tail))
    try:
        hash(group)
    except TypeError:
        raise BadArgument(f"a pg group name must be a term, not {group!r}") from None
    return group


def _pids(pid_or_pids: Any) -> list[Pid]:
    if type(pid_or_pids) is Pid:
        return [pid_or_pids]
    if isinstance(pid_or_pids, list | tuple):
        out = list(pid_or_pids)
        for p in out:
            if type(p) is not Pid:
                raise BadArgument(f"not a pid: {p!r}")
        return out
    raise BadArgument(f"expected a pid or a list of pids, not {pid_or_pids!r}")


def _subtract(items: list[Pid], remove: Iterable[Pid]) -> list[Pid]:
    """Erlang's `Items -- Remove`: drop the first occurrence of each removed element."""
    out = list(items)
    for r in remove:
        try:
            out.remove(r)
        except ValueError:
            pass
    return out


# --------------------------------------------------------------------------- the scope

# Scope tables of each node, for the fast read functions: node state (a fresh Node has
# no scopes), through the kernel's NodeVar.
_TABLES: NodeVar[dict[Atom, _Scope]] = NodeVar("beamlet.pg", dict)


class _Scope:
    """State of one scope process (pg.erl's #state{} plus its ETS table)."""

    def __init__(self, node: Node, name: Atom) -> None:
        self.node = node
        self.name = name
        self.pid: Pid | None = None
        # group -> (all members, local members): the "ETS table"
        self.groups: dict[Any, tuple[list[Pid], list[Pid]]] = {}
        # local member -> (monitor ref, groups joined, with repeats)
        self.local: dict[Pid, tuple[Ref, list[Any]]] = {}
        # peer scope pid -> (monitor ref, group -> its members)
        self.remote: dict[Pid, tuple[Ref, dict[Any, list[Pid]]]] = {}
        self.scope_monitors: dict[Ref, Pid] = {}
        self.group_monitors: dict[Ref, tuple[Pid, Any]] = {}
        self.monitored_groups: dict[Any, list[tuple[Pid, Ref]]] = {}
        self.unhook: Callable[[], None] | None = None
        self.rediscover: float | None = None  # seconds between re-discovery rounds

    # --- the table ---------------------------------------------------------------------

    def _add(self, group: Any, pids: list[Pid], local: bool) -> None:
        entry = self.groups.get(group)
        if entry is None:
            self.groups[group] = (list(pids), list(pids) if local else [])
        else:
            entry[0].extend(pids)
            if local:
                entry[1].extend(pids)
        self._notify(JOIN, group, pids)

    def _remove(self, group: Any, pids: list[Pid], local: bool) -> None:
        entry = self.groups.get(group)
        if entry is None:
            return
        members = _subtract(entry[0], pids)
        mine = _subtract(entry[1], pids) if local else entry[1]
        if members or mine:
            self.groups[group] = (members, mine)
        else:
            del self.groups[group]
        self._notify(LEAVE, group, pids)

    def _notify(self, action: Atom, group: Any, pids: list[Pid]) -> None:
        for ref, pid in self.scope_monitors.items():
            self._event(pid, ref, action, group, pids)
        for pid, ref in self.monitored_groups.get(group, ()):
            self._event(pid, ref, action, group, pids)

    def _event(self, pid: Pid, ref: Ref, action: Atom, group: Any, pids: list[Pid]) -> None:
        if pid.node == self.node.name:
            api.send(pid, GroupEvent(ref, action, group, list(pids)))
        else:
            api.send(pid, (ref, action, group, list(pids)))  # an Erlang subscriber

    def _broadcast(self, msg: Any) -> None:
        for peer in self.remote:
            api.send(peer, msg)

    def _local_groups(self) -> list[tuple[Any, list[Pid]]]:
        """All local memberships, as sent in `sync` (pg.erl's all_local_pids/1)."""
        acc: dict[Any, list[Pid]] = {}
        for pid, (_ref, groups) in self.local.items():
            for g in groups:
                acc.setdefault(g, []).append(pid)
        return list(acc.items())

    # --- requests from local callers -------------------------------------------------

    def join_local(self, group: Any, pid_or_pids: Any) -> None:
        pids = _pids(pid_or_pids)
        for pid in pids:
            entry = self.local.get(pid)
            if entry is None:
                ref = api.monitor(pid, tag=_MEMBER)
                self.local[pid] = (ref, [group])
            else:
                entry[1].append(group)
        self._add(group, pids, local=True)
        self._broadcast((JOIN, self.pid, group, pid_or_pids))

    def leave_local(self, group: Any, pid_or_pids: Any) -> bool:
        left: list[Pid] = []
        for pid in _pids(pid_or_pids):
            entry = self.local.get(pid)
            if entry is None or group not in entry[1]:
                continue
            ref, groups = entry
            groups.remove(group)
            if not groups:
                api.demonitor(ref, flush=True)
                del self.local[pid]
            left.append(pid)
        if not left:
            return False
        self._remove(group, left, local=True)
        self._broadcast((LEAVE, self.pid, left[0] if type(pid_or_pids) is Pid else left, [group]))
        return True

    def subscribe(self, caller: Pid, group: Any = None, *, whole_scope: bool) -> Any:
        if whole_scope:
            ref = api.monitor(caller, tag=_SCOPE_SUB)
            self.scope_monitors[ref] = caller
            return (ref, {g: list(e[0]) for g, e in self.groups.items()})
        ref = api.monitor(caller, tag=_GROUP_SUB)
        self.group_monitors[ref] = (caller, group)
        self.monitored_groups.setdefault(group, []).append((caller, ref))
        entry = self.groups.get(group)
        return (ref, list(entry[0]) if entry else [])

    def unsubscribe(self, ref: Any) -> bool:
        if type(ref) is not Ref:
            return False
        if self.scope_monitors.pop(ref, None) is not None:
            api.demonitor(ref, flush=True)
            return True
        sub = self.group_monitors.pop(ref, None)
        if sub is None:
            return False
        api.demonitor(ref, flush=True)
        self._drop_group_sub(sub[0], ref, sub[1])
        return True

    def _drop_group_sub(self, pid: Pid, ref: Ref, group: Any) -> None:
        subs = self.monitored_groups.get(group)
        if subs is None:
            return
        try:
            subs.remove((pid, ref))
        except ValueError:
            pass
        if not subs:
            del self.monitored_groups[group]

    # --- messages from peer scopes ------------------------------------------------------

    def discover(self, peer: Any) -> None:
        if type(peer) is not Pid:
            return
        api.send(peer, (GEN_CAST, (SYNC, self.pid, self._local_groups())))
        if peer not in self.remote:
            ref = api.monitor(peer, tag=_PEER)
            api.send(peer, (DISCOVER, self.pid))
            self.remote[peer] = (ref, {})

    def sync(self, peer: Pid, groups: Any) -> None:
        known = self.remote.get(peer)
        old: dict[Any, list[Pid]]
        if known is None:
            ref, old = api.monitor(peer, tag=_PEER), {}
        else:
            ref, old = known
        new: dict[Any, list[Pid]] = {}
        for item in groups if isinstance(groups, list) else ():
            if type(item) is not tuple or len(item) != 2:
                continue
            group, pids = group_key(item[0]), [p for p in item[1] if type(p) is Pid]
            new.setdefault(group, []).extend(pids)
        for group, pids in new.items():
            before = old.pop(group, None)
            if before is None:
                self._add(group, pids, local=False)
            elif before != pids:
                gone, came = _subtract(before, pids), _subtract(pids, before)
                if gone:
                    self._remove(group, gone, local=False)
                if came:
                    self._add(group, came, local=False)
        for group, pids in old.items():
            self._remove(group, pids, local=False)
        self.remote[peer] = (ref, new)

    def remote_join(self, peer: Any, group: Any, pid_or_pids: Any) -> None:
        known = self.remote.get(peer)
        if known is None:
            return  # not (or no longer) in the overlay: ignored, as pg.erl does
        try:
            pids = _pids(pid_or_pids)
        except BadArgument:
            return
        group = group_key(group)
        self._add(group, pids, local=False)
        known[1].setdefault(group, []).extend(pids)

    def remote_leave(self, peer: Any, pid_or_pids: Any, groups: Any) -> None:
        known = self.remote.get(peer)
        if known is None:
            return
        try:
            pids = _pids(pid_or_pids)
        except BadArgument:
            return
        theirs = known[1]
        for name in groups if isinstance(groups, list) else ():
            group = group_key(name)
            self._remove(group, pids, local=False)
            rest = _subtract(theirs.get(group, []), pids)
            if rest:
                theirs[group] = rest
            else:
                theirs.pop(group, None)

    # --- DOWN ---------------------------------------------------------------------------

    def down(self, msg: Down) -> None:
        ref, pid = msg.ref, msg.pid
        if type(pid) is not Pid:
            return  # the scope monitors pids only
        if msg.tag == _MEMBER:
            entry = self.local.get(pid)
            if entry is None or entry[0] != ref:
                return  # a late DOWN after the process left (pg.erl ignores it too)
            del self.local[pid]
            groups = entry[1]
            for g in groups:
                self._remove(g, [pid], local=True)
            self._broadcast((LEAVE, self.pid, pid, groups))
        elif msg.tag == _PEER:
            known = self.remote.get(pid)
            if known is None or known[0] != ref:
                return
            del self.remote[pid]
            for group, pids in known[1].items():
                self._remove(group, pids, local=False)
        elif msg.tag == _SCOPE_SUB:
            self.scope_monitors.pop(ref, None)
        elif msg.tag == _GROUP_SUB:
            sub = self.group_monitors.pop(ref, None)
            if sub is not None:
                self._drop_group_sub(sub[0], ref, sub[1])

    # --- the loop -----------------------------------------------------------------------

    def handle(self, msg: Any) -> None:
        t = type(msg)
        if t is Down:
            self.down(msg)
            return
        if t is not tuple or not msg:
            log.info("pg scope %s: ignoring %r", self.name, msg)
            return
        tag, n = msg[0], len(msg)
        if tag == JOIN and n == 4:
            self.remote_join(msg[1], msg[2], msg[3])
        elif tag == LEAVE and n == 4:
            self.remote_leave(msg[1], msg[2], msg[3])
        elif tag == DISCOVER and n in (2, 3):
            self.discover(msg[1])  # {discover, Peer, ProtocolVersion}: OTP 28 and later
        elif tag == GEN_CAST and n == 2:
            req = msg[1]
            if type(req) is tuple and len(req) == 3 and req[0] == SYNC and type(req[1]) is Pid:
                self.sync(req[1], req[2])
        elif tag == GEN_CALL and n == 3:
            self.call(msg[1], msg[2])
        elif tag == NODEUP and n == 2:
            if msg[1] != self.node.name:
                api.send((self.name, msg[1]), (DISCOVER, self.pid))
        elif tag == NODEDOWN:
            pass  # wait for the DOWN of that node's scope
        elif tag == REDISCOVER:
            self.discover_unknown()
        else:
            log.info("pg scope %s: ignoring %r", self.name, msg)

    def connected_nodes(self) -> list[Atom]:
        nodes: Callable[[], list[Atom]] | None = getattr(self.node.dist, "nodes", None)
        return nodes() if nodes is not None else []

    def discover_unknown(self) -> None:
        """Send `discover` to every connected node whose scope we do not know yet: an
        Erlang scope started (or restarted) after our connection came up never
        discovers a hidden node by itself. A discover to a node without the scope is
        dropped there; one that arrives twice only costs a `sync`."""
        known = {peer.node for peer in self.remote}
        for node in self.connected_nodes():
            if node not in known:
                api.send((self.name, node), (DISCOVER, self.pid))
        if self.rediscover is not None:
            api.send_after(self.rediscover, api.self(), (REDISCOVER,))

    def call(self, from_: Any, req: Any) -> None:
        if type(from_) is not tuple or len(from_) != 2 or type(from_[0]) is not Pid:
            return
        caller = from_[0]
        reply: Any = BADARG
        try:
            if type(req) is tuple and len(req) == 3 and req[0] == JOIN_LOCAL:
                bad = [p for p in _pids(req[2]) if not self._is_local(p)]
                if bad:
                    reply = (ERROR, (NOLOCAL, bad[0]))
                else:
                    self.join_local(group_key(req[1]), req[2])
                    reply = OK
            elif type(req) is tuple and len(req) == 3 and req[0] == LEAVE_LOCAL:
                bad = [p for p in _pids(req[2]) if not self._is_local(p)]
                if bad:
                    reply = (ERROR, (NOLOCAL, bad[0]))
                else:
                    reply = OK if self.leave_local(group_key(req[1]), req[2]) else NOT_JOINED
            elif req == MONITOR:
                reply = self.subscribe(caller, whole_scope=True)
            elif type(req) is tuple and len(req) == 2 and req[0] == MONITOR:
                reply = self.subscribe(caller, group_key(req[1]), whole_scope=False)
            elif type(req) is tuple and len(req) == 2 and req[0] == DEMONITOR:
                reply = OK if self.unsubscribe(req[1]) else False
        except BadArgument:
            reply = BADARG
        gen.reply(from_, reply)

    def _is_local(self, pid: Pid) -> bool:
        return pid.node == self.node.name


async def _scope_main(scope: _Scope) -> None:
    """The scope process."""
    table = _TABLES.get(scope.node)
    try:
        for node in scope.connected_nodes():
            api.send((scope.name, node), (DISCOVER, scope.pid))
        if scope.rediscover is not None:
            api.send_after(scope.rediscover, api.self(), (REDISCOVER,))
        while True:
            scope.handle(await api.receive())
    finally:
        if table.get(scope.name) is scope:
            del table[scope.name]
        if scope.unhook is not None:
            scope.unhook()


# --------------------------------------------------------------------------- the API


def _node(node: Node | None) -> Node:
    if node is not None:
        return node
    try:
        return api.current_node()
    except NotInProcess:
        raise NotInProcess("pg: call this from a beamlet process, or pass node=") from None


def _table(scope: Any, node: Node | None) -> _Scope | None:
    return _TABLES.get(_node(node)).get(_scope_name(scope))


def _scope_name(scope: Any) -> Atom:
    if type(scope) is Atom:
        return scope
    if type(scope) is str:
        return Atom(scope)
    raise BadArgument(f"a pg scope name is an atom (str or Atom), not {scope!r}")


def start(
    scope: str | Atom = DEFAULT_SCOPE,
    *,
    node: Node | None = None,
    link: bool = False,
    rediscover: float | None = 5.0,
) -> Pid:
    """Start scope `scope` (default `pg`) on this node and register it under that name.

    Like Erlang's `pg:start/1` (`link=True`: `pg:start_link/1`, from inside a process).
    It discovers the scopes of the same name on every node connected now and on every
    node that connects later, and every `rediscover` seconds it asks again the connected
    nodes whose scope it does not know yet (None: never) - an Erlang scope started or
    restarted after the connection came up never discovers a hidden node itself.
    Raises `NameTaken` if the name is in use.

    Examples:
        >>> await beamlet.distribution.distribution.start_distribution(node, cookie="c")
        >>> pg.start(node=node)
    """
    name = _scope_name(scope)
    n = _node(node)
    if rediscover is not None and not (isinstance(rediscover, int | float) and rediscover > 0):
        raise BadArgument(f"rediscover must be a number of seconds > 0 or None: {rediscover!r}")
    state = _Scope(n, name)
    state.rediscover = float(rediscover) if rediscover is not None and n.dist else None

    async def scope_process() -> None:  # a closure: spawn arguments would be copied
        await _scope_main(state)

    pid = n.spawn(scope_process, link=link)
    try:
        n.register(name, pid)
    except Exception:
        n.exit(pid, Atom("kill"))
        raise
    state.pid = pid
    _TABLES.get(n)[name] = state
    hooks: list[Callable[[Atom], None]] | None = getattr(n.dist, "on_nodeup", None)
    if hooks is not None:

        def on_nodeup(peer: Atom) -> None:
            n.send(pid, (NODEUP, peer))

        hooks.append(on_nodeup)

        def unhook() -> None:
            if on_nodeup in hooks:
                hooks.remove(on_nodeup)

        state.unhook = unhook
    return pid


async def _call(scope: Any, request: Any) -> Any:
    """gen_server:call to the local scope (waits as long as it takes). Raises `CallExit`
    (cause `noproc` if the scope is not running, else the reason it died with)."""
    return await gen.call(_scope_name(scope), request, None)


def _local_pids(pid_or_pids: Any, caller: str) -> Any:
    me = api.node_name()
    for p in _pids(pid_or_pids):
        if p.node != me:
            raise BadArgument(f"pg.{caller}: {p!r} is not a process of this node (nolocal)")
    return list(pid_or_pids) if isinstance(pid_or_pids, tuple) else pid_or_pids


async def join(
    group: Any, pids: Pid | list[Pid] | None = None, *, scope: str | Atom = DEFAULT_SCOPE
) -> None:
    """Add `pids` (a pid or a list; default: the caller) to `group`, as `pg:join/3`.

    Only processes of this node can join. A process may join a group several times; it
    is then listed that many times and must leave as often. Members that exit are
    removed from all their groups. Raises `CallExit` if the scope is not running.

    Examples:
        >>> await pg.join(Atom("workers"))
    """
    target = _local_pids(api.self() if pids is None else pids, "join")
    reply = await _call(scope, (JOIN_LOCAL, group_key(group), target))
    if reply != OK:
        raise BadArgument(f"pg.join({group!r}, {target!r}) was refused: {reply!r}")


async def leave(
    group: Any, pids: Pid | list[Pid] | None = None, *, scope: str | Atom = DEFAULT_SCOPE
) -> bool:
    """Remove `pids` (default: the caller) from `group` once, as `pg:leave/3`; False if
    none of them was a member (Erlang's `not_joined`)."""
    target = _local_pids(api.self() if pids is None else pids, "leave")
    reply = await _call(scope, (LEAVE_LOCAL, group_key(group), target))
    if reply not in (OK, NOT_JOINED):
        raise BadArgument(f"pg.leave({group!r}, {target!r}) was refused: {reply!r}")
    return bool(reply == OK)


def get_members(
    group: Any, *, scope: str | Atom = DEFAULT_SCOPE, node: Node | None = None
) -> list[Pid]:
    """All known members of `group` on every node of the scope, in no particular order
    (`[]` for an unknown group or a scope that is not running)."""
    s = _table(scope, node)
    entry = s.groups.get(group_key(group)) if s is not None else None
    return list(entry[0]) if entry else []


def get_local_members(
    group: Any, *, scope: str | Atom = DEFAULT_SCOPE, node: Node | None = None
) -> list[Pid]:
    """The members of `group` that run on this node."""
    s = _table(scope, node)
    entry = s.groups.get(group_key(group)) if s is not None else None
    return list(entry[1]) if entry else []


def which_groups(*, scope: str | Atom = DEFAULT_SCOPE, node: Node | None = None) -> list[Any]:
    """Every group with at least one member anywhere."""
    s = _table(scope, node)
    return list(s.groups) if s is not None else []


def which_local_groups(*, scope: str | Atom = DEFAULT_SCOPE, node: Node | None = None) -> list[Any]:
    """Every group with at least one member on this node."""
    s = _table(scope, node)
    return [g for g, e in s.groups.items() if e[1]] if s is not None else []


async def monitor_scope(scope: str | Atom = DEFAULT_SCOPE) -> tuple[Ref, dict[Any, list[Pid]]]:
    """Subscribe the caller to every change in `scope` (`pg:monitor_scope/1`, OTP 25.1).

    Returns a reference and the current `{group: members}`; from then on each change
    arrives as `GroupEvent(ref, JOIN | LEAVE, group, pids)`. Stop with `demonitor`."""
    ref, groups = await _call(scope, MONITOR)
    return ref, dict(groups)


async def monitor(group: Any, *, scope: str | Atom = DEFAULT_SCOPE) -> tuple[Ref, list[Pid]]:
    """Subscribe the caller to changes of one group (`pg:monitor/2`); returns a reference
    and the current members. Events arrive as `GroupEvent`."""
    ref, members = await _call(scope, (MONITOR, group_key(group)))
    return ref, list(members)


async def demonitor(ref: Ref, *, scope: str | Atom = DEFAULT_SCOPE) -> bool:
    """End a subscription and drop its events still in the caller's mailbox; False if
    `ref` was not an active subscription of this scope."""
    found = await _call(scope, (DEMONITOR, ref)) == OK
    if found:
        while (
            await api.receive(
                lambda m: type(m) is GroupEvent and m.ref == ref, timeout=0, default=None
            )
            is not None
        ):
            pass
    return bool(found)
