"""`Cluster`: a process that forms and keeps a cluster (libcluster's topology).

It asks its strategies for node names every `interval` seconds, connects to those not
connected yet (in parallel), and when a connection to one of them is lost it tries
again soon: after `reconnect` seconds, then doubling the wait up to `interval` while
some listed node still does not answer. Put it in the
application's supervision tree; subscribe with `monitor_nodes` to hear of nodes
joining and leaving.

Examples:
    >>> from beamlet import Supervisor, peer
    >>> from beamlet.cluster import Cluster, LocalEpmd
    >>> async def main() -> None:
    ...     p = await peer.start(name="formation_b", hidden=False, connect=False)
    ...     spec = Cluster.child_spec([LocalEpmd(prefix="formation_b")], name="cluster")
    ...     await Supervisor.start_link([spec], strategy="one_for_one")
    ...     print(await Cluster.poll("cluster"))     # connect now, not at the next tick
    ...     await peer.stop(p)
    >>> beamlet.run(main, name="formation@127.0.0.1", cookie="secret")
    [Atom('formation_b@127.0.0.1')]
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterable
from typing import Any

import beamlet
from beamlet import Atom, From, GenServer, NoReply, Pid, Reply
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.cluster.node_events import NodeDown, NodeUp, monitor_nodes
from beamlet.cluster.strategy import LocalEpmd, Strategy, _check
from beamlet.distribution.api import connect, nodes

__all__ = ["Cluster"]

log = logging.getLogger("beamlet")
_POLL = Atom("$cluster_poll")
_POLLED = Atom("$cluster_polled")


async def _discover(strategies: list[Strategy]) -> list[Atom]:
    me = beamlet.node_name()
    found: dict[Atom, None] = {}
    for s in strategies:
        try:
            for n in await s.discover():
                if n != me:
                    found[n] = None
        except Exception:
            log.exception("beamlet.cluster: strategy %r failed", s)
    return list(found)


async def _connect_one(owner: Pid, tag: Any, node: Atom) -> None:
    beamlet.send(owner, (tag, node, await connect(node)))


async def _poll(owner: Pid, strategies: list[Strategy]) -> None:
    """Discover, connect to the new ones in parallel, report `(polled, Found, Ok)`."""
    found = await _discover(strategies)
    connected = set(nodes())
    tag = beamlet.make_ref()
    todo = [n for n in found if n not in connected]
    for n in todo:
        beamlet.spawn(_connect_one, beamlet.self(), tag, n)
    ok = [n for n in found if n in connected]
    for _ in todo:
        _, node, up = await beamlet.receive(lambda m: type(m) is tuple and m[0] == tag)
        if up:
            ok.append(node)
    beamlet.send(owner, (_POLLED, found, ok))


class Cluster(GenServer[dict[str, Any]]):
    """The cluster-forming server; start it with `Cluster.start_link(strategies)` (or
    put `Cluster.child_spec(strategies)` in a supervision tree).

    Examples:
        >>> from beamlet import peer
        >>> from beamlet.cluster import Cluster, LocalEpmd
        >>> async def main() -> None:
        ...     p = await peer.start(name="cluster_class_b", hidden=False, connect=False)
        ...     await Cluster.start_link([LocalEpmd(prefix="cluster_class_b")], name="cluster")
        ...     print(await Cluster.poll("cluster"))     # connect now, not at the next tick
        ...     print(await Cluster.members("cluster"))
        ...     await peer.stop(p)
        >>> beamlet.run(main, name="cluster_class@127.0.0.1", cookie="secret")
        [Atom('cluster_class_b@127.0.0.1')]
        [Atom('cluster_class_b@127.0.0.1')]
    """

    async def init(self, arg: dict[str, Any]) -> dict[str, Any]:
        monitor_nodes()
        beamlet.send(beamlet.self(), _POLL)
        return {
            **arg,
            "wanted": set(),
            "members": [],
            "polling": False,
            "waiting": [],
            "timer": None,
            "backoff": arg["reconnect"] / 2,
        }

    @classmethod
    async def start_link(  # type: ignore[override]
        cls,
        strategies: Iterable[Strategy] = (),
        *,
        interval: float = 5.0,
        reconnect: float = 0.5,
        name: str | Atom | None = None,
    ) -> Pid:
        """Start forming a cluster with `strategies` (default: `LocalEpmd()`), linked
        to the caller; polls every `interval` seconds, and `reconnect` seconds after a
        wanted node is lost."""
        pid = await super().start_link(cls._arg(strategies, interval, reconnect), name=name)
        assert pid is not None
        return pid

    @classmethod
    def child_spec(  # type: ignore[override]
        cls,
        strategies: Iterable[Strategy] = (),
        *,
        interval: float = 5.0,
        reconnect: float = 0.5,
        name: Any = None,
        **overrides: Any,
    ) -> ChildSpec:
        """A Supervisor child running `Cluster.start_link(strategies, ...)`; bad
        strategies or times raise here, not in the supervisor.

        Examples:
            >>> from beamlet.cluster import Cluster, Static
            >>> spec = Cluster.child_spec([Static(["a@127.0.0.1"])], name="cluster")
            >>> spec.id is Cluster, spec.restart
            (True, 'permanent')
            >>> Cluster.child_spec([Static(["a@127.0.0.1"])], interval=0)
            Traceback (most recent call last):
            beamlet.InvalidTimeout: interval must be seconds > 0, not 0
        """
        chosen = cls._arg(strategies, interval, reconnect)["strategies"]
        start = functools.partial(cls.start_link, interval=interval, reconnect=reconnect, name=name)
        spec = super().child_spec(chosen).with_overrides(start=start)
        return spec.with_overrides(**overrides) if overrides else spec

    @staticmethod
    def _arg(strategies: Iterable[Strategy], interval: float, reconnect: float) -> dict[str, Any]:
        chosen = _check(strategies) or [LocalEpmd()]
        for what, v in (("interval", interval), ("reconnect", reconnect)):
            if not (isinstance(v, int | float) and v > 0):
                raise beamlet.InvalidTimeout(f"{what} must be seconds > 0, not {v!r}")
        return {"strategies": chosen, "interval": float(interval), "reconnect": float(reconnect)}

    @staticmethod
    async def poll(server: Any, timeout: float = 10.0) -> list[Atom]:
        """Run a discovery round now and return the nodes found and connected."""
        members: list[Atom] = await GenServer.call(server, "poll", timeout)
        return members

    @staticmethod
    async def members(server: Any) -> list[Atom]:
        """The nodes found by the last round and connected then."""
        members: list[Atom] = await GenServer.call(server, "members")
        return members

    async def handle_call(self, request: Any, from_: From, state: dict[str, Any]) -> Any:
        if request == "members":
            return Reply(sorted(state["members"]), state)
        if request == "poll":
            state["waiting"].append(from_)
            self._start_poll(state)
            return NoReply(state)
        return Reply(None, state)

    def _start_poll(self, state: dict[str, Any]) -> None:
        if not state["polling"]:
            state["polling"] = True
            beamlet.spawn_link(_poll, beamlet.self(), state["strategies"])

    def _schedule(self, state: dict[str, Any], after: float) -> None:
        if state["timer"] is not None:
            beamlet.cancel_timer(state["timer"])
        state["timer"] = beamlet.send_after(after, beamlet.self(), _POLL)

    async def handle_info(self, msg: Any, state: dict[str, Any]) -> Any:
        match msg:
            case Atom("$cluster_poll"):
                state["timer"] = None
                self._start_poll(state)
            case (Atom("$cluster_polled"), found, ok):
                state["polling"] = False
                state["wanted"] = set(found)
                state["members"] = ok
                for waiter in state["waiting"]:
                    GenServer.reply(waiter, sorted(ok))
                state["waiting"].clear()
                if len(ok) < len(found):  # some not up yet: again soon, backing off
                    state["backoff"] = min(state["interval"], state["backoff"] * 2)
                    self._schedule(state, state["backoff"])
                else:
                    state["backoff"] = state["reconnect"] / 2
                    self._schedule(state, state["interval"])
            case NodeDown(node=node) if node in state["wanted"]:
                log.info("beamlet.cluster: lost %s; reconnecting", node)
                state["members"] = [n for n in state["members"] if n != node]
                state["backoff"] = state["reconnect"] / 2
                self._schedule(state, state["reconnect"])
            case NodeUp(node=node) if node in state["wanted"]:
                if node not in state["members"]:
                    state["members"] = [*state["members"], node]
            case NodeUp() | NodeDown():
                pass
            case _:
                r = super().handle_info(msg, state)
                return await r if inspect.isawaitable(r) else r
        return NoReply(state)
