"""Ways to find the nodes of a cluster (libcluster's strategies).

A strategy is any object with `async def discover(self) -> list[Atom]`: the node
names that should be connected now. `Cluster` polls its strategies and connects to
what they return. Four come with beamlet:

* `Static(nodes)` — a fixed list (libcluster's `Epmd` strategy).
* `EpmdScan(hosts)` — every node registered with the EPMD of each host (a port-mapper
  NAMES request), optionally only names with a given prefix.
* `LocalEpmd()` — `EpmdScan` of this node's own host: the default for one machine
  (no gossip, no multicast: EPMD already knows every node of the machine).
* `Dns(query, ...)` — names from DNS, as a Kubernetes headless service publishes them:
  A/AAAA records give `basename@IP`; SRV records give `basename@target`. A records
  use the system resolver; SRV records, or a chosen `nameserver`, need dnspython
  (`pip install beamlet[dns]`).

Examples:
    >>> from beamlet.cluster import Static
    >>> await Static(["a@127.0.0.1", "b@127.0.0.1"]).discover()
    [Atom('a@127.0.0.1'), Atom('b@127.0.0.1')]
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import beamlet
from beamlet import Atom
from beamlet.distribution.api import get_distribution
from beamlet.distribution.epmd import EpmdClient

__all__ = ["Dns", "EpmdScan", "LocalEpmd", "Static", "Strategy"]

log = logging.getLogger("beamlet")


@runtime_checkable
class Strategy(Protocol):
    """Finds node names to connect to: any object with `async def discover(self)`
    returning them.

    Examples:
        >>> import os
        >>> from beamlet import Atom
        >>> from beamlet.cluster import Strategy
        >>> class FromEnv:
        ...     async def discover(self) -> list[Atom]:
        ...         return [Atom(n) for n in os.environ.get("PEERS", "").split()]
        >>> isinstance(FromEnv(), Strategy)
        True
        >>> os.environ["PEERS"] = "a@10.0.0.1 b@10.0.0.2"
        >>> await FromEnv().discover()
        [Atom('a@10.0.0.1'), Atom('b@10.0.0.2')]
        >>> del os.environ["PEERS"]
    """

    async def discover(self) -> list[Atom]: ...


def _atoms(names: Iterable[str | Atom]) -> list[Atom]:
    out: list[Atom] = []
    for n in names:
        if not isinstance(n, str) or "@" not in n:
            raise beamlet.BadArgument(f"a node name is 'name@host', not {n!r}")
        out.append(Atom(n))
    return out


class Static:
    """A fixed list of node names.

    Examples:
        >>> from beamlet.cluster import Static
        >>> await Static(["a@10.0.0.1", "b@10.0.0.2"]).discover()
        [Atom('a@10.0.0.1'), Atom('b@10.0.0.2')]
        >>> Static(["nohost"])
        Traceback (most recent call last):
        beamlet.BadArgument: a node name is 'name@host', not 'nohost'
    """

    def __init__(self, nodes: Iterable[str | Atom]) -> None:
        self.nodes = _atoms(nodes)

    def __repr__(self) -> str:
        return f"Static({self.nodes!r})"

    async def discover(self) -> list[Atom]:
        return list(self.nodes)


class EpmdScan:
    """Every node registered with the EPMD on each of `hosts` (`name@host`), or only
    those whose name part starts with `prefix`. `epmd_port` defaults to this node's.
    A host whose EPMD does not answer contributes nothing (and is logged at debug).

    Examples:
        >>> from beamlet.cluster import EpmdScan
        >>> async def main() -> None:         # this node is registered with that EPMD
        ...     print(await EpmdScan(["127.0.0.1"], prefix="cluster_scan").discover())
        >>> beamlet.run(main, name="cluster_scan@127.0.0.1", cookie="secret")
        [Atom('cluster_scan@127.0.0.1')]
    """

    def __init__(
        self,
        hosts: Iterable[str],
        *,
        prefix: str = "",
        epmd_port: int | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.hosts = list(hosts)
        if not all(isinstance(h, str) and h for h in self.hosts):
            raise beamlet.BadArgument(f"hosts must be host names or addresses: {self.hosts!r}")
        self.prefix = prefix
        self.epmd_port = epmd_port
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EpmdScan({self.hosts!r}, prefix={self.prefix!r})"

    async def discover(self) -> list[Atom]:
        port = self.epmd_port if self.epmd_port is not None else get_distribution().epmd_port
        client = EpmdClient(timeout=self.timeout)
        found: list[Atom] = []
        for host in self.hosts:
            try:
                names = await client.names(host, epmd_port=port)
            except Exception as e:
                log.debug("beamlet.cluster: no EPMD answer from %s: %s", host, e)
                continue
            found += [Atom(f"{n}@{host}") for n, _ in names if n.startswith(self.prefix)]
        return found


class LocalEpmd(EpmdScan):
    """The nodes registered with this machine's EPMD (same host part as this node):
    the default strategy for a cluster on one machine.

    Examples:
        >>> from beamlet.cluster import LocalEpmd
        >>> async def main() -> None:
        ...     print(await LocalEpmd(prefix="cluster_local").discover())
        >>> beamlet.run(main, name="cluster_local@127.0.0.1", cookie="secret")
        [Atom('cluster_local@127.0.0.1')]
    """

    def __init__(self, *, prefix: str = "", epmd_port: int | None = None) -> None:
        super().__init__(["<self>"], prefix=prefix, epmd_port=epmd_port)

    def __repr__(self) -> str:
        return f"LocalEpmd(prefix={self.prefix!r})"

    async def discover(self) -> list[Atom]:
        self.hosts = [str(beamlet.node_name()).partition("@")[2]]
        return await super().discover()


class Dns:
    """Node names from DNS records of `query` (libcluster's Kubernetes DNS strategies).

    * `kind="A"` (default; also AAAA): each address `ip` gives `node_name.format(
      basename=..., host=ip)`, default `"{basename}@{host}"` — pods started with
      `--name app@$(POD_IP)` behind a headless service.
    * `kind="SRV"`: each target gives `"{basename}@{host}"` with `host` the target name
      (no trailing dot); `{label}` is its first label and `{port}` the SRV port — a
      StatefulSet's `app-0.app.ns.svc.cluster.local`.

    `nameserver=(address, port)` asks that server directly (needs dnspython, as SRV
    does); otherwise A records come from the system resolver. A failed lookup gives no
    nodes (logged at debug).

    Examples:
        >>> from beamlet.cluster import Dns
        >>> await Dns("localhost", basename="app").discover()    # its A records
        [Atom('app@127.0.0.1')]
        >>> Dns("_dist._tcp.app.ns.svc.cluster.local", kind="SRV", basename="app")
        Dns('_dist._tcp.app.ns.svc.cluster.local', kind='SRV', basename='app')
    """

    def __init__(
        self,
        query: str,
        *,
        basename: str = "beamlet",
        kind: str = "A",
        node_name: str = "{basename}@{host}",
        nameserver: tuple[str, int] | None = None,
        timeout: float = 2.0,
    ) -> None:
        if kind not in ("A", "AAAA", "SRV"):
            raise beamlet.BadArgument(f"kind must be 'A', 'AAAA' or 'SRV', not {kind!r}")
        self.query = query
        self.basename = basename
        self.kind = kind
        self.node_name = node_name
        self.nameserver = nameserver
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Dns({self.query!r}, kind={self.kind!r}, basename={self.basename!r})"

    def _name(self, host: str, port: int = 0) -> Atom:
        host = host.rstrip(".")
        return Atom(
            self.node_name.format(
                basename=self.basename, host=host, label=host.split(".")[0], port=port
            )
        )

    async def discover(self) -> list[Atom]:
        try:
            if self.kind == "SRV" or self.nameserver is not None:
                records = await self._dnspython()
            else:
                records = await self._system()
        except Exception as e:
            log.debug("beamlet.cluster: DNS lookup of %s %s failed: %s", self.kind, self.query, e)
            return []
        return sorted({self._name(h, p) for h, p in records})

    async def _system(self) -> list[tuple[str, int]]:
        family = socket.AF_INET if self.kind == "A" else socket.AF_INET6
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            infos = await loop.getaddrinfo(self.query, None, family=family, type=socket.SOCK_STREAM)
        return [(str(info[4][0]), 0) for info in infos]

    async def _dnspython(self) -> list[tuple[str, int]]:
        try:  # dnspython takes ~0.1 s to import: not on the node's loop
            await asyncio.get_running_loop().run_in_executor(
                None, importlib.import_module, "dns.asyncresolver"
            )
            import dns.asyncresolver
        except ImportError:
            raise beamlet.BeamletError(
                "the DNS strategy needs dnspython for SRV records or a chosen name server: "
                "pip install 'beamlet[dns]'"
            ) from None
        resolver = dns.asyncresolver.Resolver(configure=self.nameserver is None)
        if self.nameserver is not None:
            resolver.nameservers = [self.nameserver[0]]
            resolver.port = self.nameserver[1]
        answer = await resolver.resolve(self.query, self.kind, lifetime=self.timeout)
        out: list[tuple[str, int]] = []
        for rr in answer:
            r: Any = rr
            if self.kind == "SRV":
                out.append((r.target.to_text(), int(r.port)))
            else:
                out.append((r.to_text(), 0))
        return out


def _check(strategies: Iterable[Any]) -> list[Strategy]:
    out = list(strategies)
    for s in out:
        discover: Callable[..., Any] | None = getattr(s, "discover", None)
        if not callable(discover):
            raise beamlet.BadArgument(f"a strategy has an async discover() method: {s!r}")
    return out
