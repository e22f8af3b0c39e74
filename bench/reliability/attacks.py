"""Attacks on a beamlet node in a subprocess (issue 10 §2-§7), with figures.

    python -m bench.reliability attacks            # quick sizes
    python -m bench.reliability attacks --full     # the sizes of issue 10
    python -m bench.reliability.attacks [--full | --scale X] [NAME ...]   # on its own

The node under attack (`victim@127.0.0.1`, its built-in EPMD on a free port, a
GenServer `quiet` without `handle_info`) runs in a child process, so a crash is
observed, not suffered. A watcher peer holds a connection with the cookie and pings the
node (net_kernel's `is_auth`, what `net_adm:ping` sends) every 0.1 s while each attack
runs: a decode that stalls the node shows as the slowest ping, and a node that stops
answering for the tick interval (15 s) would lose its connections. Per attack: the
outcome (checked against what issue 10 asks for), whether the node is alive, the pings
answered and the slowest, the node's log lines, and its RSS before and after.

The raw peers are tests/distribution/raw_peer.py's `RawPeer` (and its malformed frames
are test_dist_faults.py's), so the harness and the tests attack the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "distribution"))

import raw_peer
from raw_peer import RawPeer

import beamlet
from beamlet import Atom, GenServer, Node, Pid, Ref, Reply
from beamlet.distribution import etf, start_distribution
from beamlet.distribution import handshake as hs
from beamlet.distribution.epmd import EpmdClient
from bench import fuzz_etf

LOOPBACK = "127.0.0.1"
COOKIE = "beamlet_attacks"
VICTIM = f"victim@{LOOPBACK}"
LINK, REG_SEND, MONITOR_P, SEND_SENDER = 1, 6, 19, 22
GEN_CALL = Atom("$gen_call")
PING_EVERY = 0.1
TICK_INTERVAL = 15.0  # net_ticktime 60 s / 4: a node silent this long misses a tick


# --------------------------------------------------------------------------- the victim


class Quiet(GenServer[int]):
    """No `handle_info`: odd messages go to the default one, which logs them."""

    async def init(self, arg: int) -> int:
        return arg

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        info = beamlet.process_info(beamlet.self())
        assert info is not None
        return Reply((len(info.links), len(info.monitored_by)), state)


async def _start_quiet() -> Pid | None:
    return await Quiet.start(0, name="quiet")


async def _serve(epmd_port: int) -> None:
    async with Node(VICTIM) as n:
        d = await start_distribution(n, cookie=COOKIE, epmd_port=epmd_port, listen_host=LOOPBACK)
        quiet = await n.run(_start_quiet)
        print(etf.encode((d.port, quiet, d.group_leader)).hex(), flush=True)
        await asyncio.Event().wait()


@dataclass
class Victim:
    proc: subprocess.Popen[str]
    log: Path
    epmd_port: int
    port: int
    quiet: Pid
    group_leader: Pid
    log_seen: int = 0

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        try:
            return int(psutil.Process(self.proc.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def new_log_lines(self) -> list[str]:
        lines = self.log.read_text(errors="replace").splitlines()
        new, self.log_seen = lines[self.log_seen :], len(lines)
        return [line for line in new if line.strip()]


def _spawn_victim(epmd_port: int, log: Path) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.reliability.attacks", "--serve", str(epmd_port)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


@contextlib.asynccontextmanager
async def victim() -> AsyncIterator[Victim]:
    """The node under attack, in a child process; killed at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        epmd_port = free_port()
        log = Path(tmp) / "victim.log"
        proc = _spawn_victim(epmd_port, log)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            if not line:
                raise RuntimeError(f"the victim did not start:\n{log.read_text()}")
            port, quiet, gl = etf.decode(bytes.fromhex(line.strip()))
            yield Victim(proc, log, epmd_port, port, quiet, gl)
        finally:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- peers


_names = iter(range(1, 1 << 30))


async def connect(v: Victim, name: str | None = None) -> RawPeer:
    s = socket.socket()
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, (LOOPBACK, v.port))
    return RawPeer(s, name or f"atk{os.getpid()}x{next(_names)}@{LOOPBACK}")


async def peer(v: Victim) -> RawPeer:
    raw = await connect(v)
    await raw.handshake(COOKIE)
    return raw


async def call(raw: RawPeer, to: Atom | Pid, request: Any) -> Any:
    """A `$gen_call` over `raw`; the reply (skipping anything else)."""
    tag = Ref(raw.name, (next(_names), 0, 0), raw.creation)
    ctl = (
        (REG_SEND, raw.pid(3), Atom(""), to) if type(to) is Atom else (SEND_SENDER, raw.pid(3), to)
    )
    await raw.send_ctl(ctl, (GEN_CALL, (raw.pid(3), tag), request))
    while True:
        _, payload = await raw.read_ctl()
        if type(payload) is tuple and len(payload) == 2 and payload[0] == tag:
            return payload[1]


async def is_auth(raw: RawPeer) -> bool:
    return bool(await call(raw, Atom("net_kernel"), (Atom("is_auth"), raw.name)) == Atom("yes"))


async def kept(raw: RawPeer, within: float = 60.0) -> bool:
    """True if `raw`'s connection still works once the node has handled what was sent
    on it (frames are handled in order), False if the node closed it."""
    try:
        async with asyncio.timeout(within):
            return await is_auth(raw)
    except (ConnectionError, OSError):
        return False


async def closed(raw: RawPeer, within: float = 30.0) -> bool:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            while await loop.sock_recv(raw.sock, 65536):
                pass
            return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def reg_send(raw: RawPeer, to: str, payload: bytes) -> None:
    """A REG_SEND frame whose payload is `payload` (already encoded, with its 131)."""
    await raw.send_frame(b"p" + etf.encode((REG_SEND, raw.pid(1), Atom(""), Atom(to))) + payload)


# --------------------------------------------------------------------------- attacks


@dataclass
class Outcome:
    text: str
    ok: bool  # what issue 10 asks for


@dataclass
class Watcher:
    """The watcher's connection, shared by the pinger and the attacks (one request at a
    time: a RawPeer has one reader)."""

    raw: RawPeer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(self, to: Atom | Pid, request: Any) -> Any:
        async with self.lock:
            return await call(self.raw, to, request)

    async def ping(self) -> bool:
        async with self.lock:
            return await is_auth(self.raw)


Attack = Callable[[Victim, Watcher, float], Awaitable[Outcome]]


async def cut_without_cookie(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    intruder = await connect(v, name=str(watcher.raw.name))
    try:
        await intruder.send(hs.frame16(hs.send_name(watcher.raw.name, hs.OUR_FLAGS, 99)))
        status = hs.parse_status(await intruder.read_hs())
        await intruder.send(hs.frame16(hs.status("true")))
        hs.parse_challenge(await intruder.read_hs())
        await intruder.send(hs.frame16(hs.challenge_reply(1, bytes(16))))  # no cookie
        shut = await closed(intruder)
    finally:
        intruder.close()
    try:
        async with asyncio.timeout(60):
            old = await watcher.ping()
    except (ConnectionError, OSError):
        old = False
    return Outcome(
        f"{status}, true: challenged; wrong digest closed the newcomer; old connection "
        + ("kept" if old else "LOST"),
        shut and old,
    )


async def _frame_closes(v: Victim, frame: bytes) -> bool:
    raw = await peer(v)
    try:
        await raw.send_frame(frame)
        return not await kept(raw)
    finally:
        raw.close()


async def deep_control_tuple(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    shut = await _frame_closes(v, b"p\x83" + b"h\x01" * 1_000_001 + b"a\x01")
    return Outcome("logged and closed" if shut else "NOT closed", shut)


def _hostile(name: str, scale: float) -> bytes:
    return dict(fuzz_etf.hostile_inputs(scale))[name]


def _payload_attack(name: str) -> Attack:
    async def attack(v: Victim, watcher: Watcher, scale: float) -> Outcome:
        data = _hostile(name, scale)
        raw = await peer(v)
        try:
            start = time.perf_counter()
            await reg_send(raw, "nobody", data)
            up = await kept(raw)
            took = time.perf_counter() - start
        finally:
            raw.close()
        state = "connection kept" if up else "connection closed"
        return Outcome(f"{len(data):,} B handled in {took:.2f} s, {state}", took < TICK_INTERVAL)

    return attack


def _deep(n: int) -> bytes:
    return b"\x83" + b"h\x01" * n + b"a\x01"


async def deep_message_to_genserver(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    raw = await peer(v)
    try:
        await reg_send(raw, "quiet", _deep(int(100_000 * scale)))
        answered = await call(raw, Atom("quiet"), Atom("links")) == (0, 0)
    finally:
        raw.close()
    return Outcome("logged; the server answers a call" if answered else "server DIED", answered)


IO_REQUEST, IO_REPLY = Atom("io_request"), Atom("io_reply")
PUT_CHARS = (Atom("put_chars"), Atom("unicode"), b"")


async def odd_io_requests(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    raw = await peer(v)
    deep: Any = PUT_CHARS
    for _ in range(3000):
        deep = (Atom("requests"), [deep])
    odd = [
        (IO_REQUEST, raw.pid(4), Ref(raw.name, (1, 1, 1), raw.creation), deep),
        (IO_REQUEST, Atom("not_a_pid"), 1, PUT_CHARS),
        (IO_REQUEST,),
        (IO_REQUEST, raw.pid(4), raw.pid(4), (Atom("get_line"), b"", [1] * 10_000)),
    ]
    try:
        for msg in odd:
            await raw.send_ctl((SEND_SENDER, raw.pid(4), v.group_leader), msg)
        tag = Ref(raw.name, (2, 2, 2), raw.creation)
        request = (IO_REQUEST, raw.pid(4), tag, PUT_CHARS)
        await raw.send_ctl((SEND_SENDER, raw.pid(4), v.group_leader), request)
        while True:
            _, payload = await raw.read_ctl()
            if type(payload) is tuple and payload[:2] == (IO_REPLY, tag):
                break
        served = payload[2] == Atom("ok")
    finally:
        raw.close()
    return Outcome(
        f"{len(odd)} odd requests; the group leader serves the next"
        if served
        else "group leader DIED",
        served,
    )


async def malformed_control_frames(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    # Imported here: a test module, whose marks only tests/distribution's pytest knows.
    from test_dist_faults import MALFORMED

    shut = [await _frame_closes(v, frame) for frame in MALFORMED.values()]
    return Outcome(f"{sum(shut)}/{len(shut)} kinds logged and closed", all(shut))


async def forged_signals(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    third = Atom("third@127.0.0.1")
    forgeries = [
        (LINK, Pid(third, 5, 0, 1), v.quiet),
        (MONITOR_P, Pid(third, 5, 0, 1), v.quiet, Ref(third, (1, 2, 3), 1)),
        (MONITOR_P, None, v.quiet, Ref(third, (1, 2, 3), 1)),  # the peer's pid, not its ref
    ]
    rounds, per = 3, int(max(50, 20_000 * scale / 3))
    shut = 0
    for _ in range(rounds):
        for forged in forgeries:
            raw = await peer(v)
            try:
                ctl = tuple(raw.pid(1) if f is None else f for f in forged)
                frame = b"p" + etf.encode(ctl)
                try:
                    await raw.send(b"".join([struct.pack(">I", len(frame)) + frame] * per))
                    shut += await closed(raw)
                except ConnectionError:  # closed at the first one, the rest unread: RST
                    shut += 1
            finally:
                raw.close()
    entries = await watcher.call(Atom("quiet"), Atom("links"))
    text = (
        f"{rounds} reconnects x {len(forgeries)} kinds x {per:,}: {shut}/{rounds * 3} closed "
        f"at once; links, monitors left: {entries[0]}, {entries[1]}"
    )
    return Outcome(text, shut == rounds * 3 and entries == (0, 0))


async def lying_map(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    raw = await peer(v)
    try:
        await reg_send(raw, "quiet", _hostile("lying map", 1))
        up = await kept(raw)
        served = up and await call(raw, Atom("quiet"), Atom("links")) == (0, 0)
    finally:
        raw.close()
    return Outcome(
        "the message is dropped with a warning; connection kept" if served else "connection LOST",
        served,
    )


async def long_node_name(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    raw = await connect(v, name="x" * 300 + "@127.0.0.1")
    try:
        await raw.send(hs.frame16(hs.send_name(raw.name, hs.OUR_FLAGS, 1)))
        shut = await closed(raw)
    finally:
        raw.close()
    return Outcome("refused at handshake" if shut else "ACCEPTED", shut)


async def _alive2(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, name: str) -> bool:
    body = name.encode()
    req = b"x" + struct.pack(">HBBHHH", 9999, 72, 0, 6, 6, len(body)) + body + b"\x00\x00"
    writer.write(struct.pack(">H", len(req)) + req)
    try:
        reply = await reader.readexactly(2)
    except asyncio.IncompleteReadError:
        return False
    return reply[1] == 0


async def alive2_flood(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    # From another loopback address than the nodes' own, as a remote client would (where
    # only 127.0.0.1 exists, from that one: then no new node can register there either).
    held: list[asyncio.StreamWriter] = []
    accepted = 0
    source: tuple[str, int] | None = ("127.0.0.2", 0)
    try:
        for i in range(1023):
            try:
                reader, writer = await asyncio.open_connection(
                    LOOPBACK, v.epmd_port, local_addr=source
                )
            except OSError:
                if source is None:
                    raise
                source = None
                reader, writer = await asyncio.open_connection(LOOPBACK, v.epmd_port)
            held.append(writer)
            accepted += await _alive2(writer, reader, f"flood{i}")
        client = EpmdClient()
        found = await client.port_please("victim", LOOPBACK, epmd_port=v.epmd_port)
        if source is not None:
            await (await client.register("newcomer", 9998, epmd_port=v.epmd_port)).close()
    finally:
        for w in held:
            w.close()
    text = (
        f"{accepted} of 1,023 held registrations accepted; look-up "
        + ("answered" if found else "FAILED")
        + (", a new node registers" if source else " (all from 127.0.0.1)")
    )
    return Outcome(text, accepted <= 256 and found is not None)


async def held_epmd_port(v: Victim, watcher: Watcher, scale: float) -> Outcome:
    with socket.socket() as squatter, tempfile.TemporaryDirectory() as tmp:
        squatter.bind((LOOPBACK, 0))
        log = Path(tmp) / "second.log"
        proc = _spawn_victim(squatter.getsockname()[1], log)
        try:
            code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
        finally:
            proc.kill()
            proc.wait()
        text = log.read_text(errors="replace")
    ok = code != 0 and "does not accept connections" in text
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return Outcome(f"a second node exits {code}: {last[:140]}", ok)


ATTACKS: list[tuple[str, str, Attack]] = [
    ("§2", "send_name for a connected name, `true`, no cookie", cut_without_cookie),
    ("§3", "1,000,001-deep control tuple (2 MB frame)", deep_control_tuple),
    ("§4", "list nested through its tails", _payload_attack("nested list tails")),
    ("§4", "hash-flooding map keys i*(2**61-1)", _payload_attack("hash flood map")),
    ("§4", "compressed list of []s (bomb)", _payload_attack("compression bomb")),
    ("§5", "deep message to a GenServer without handle_info", deep_message_to_genserver),
    ("§5", "odd io_requests to the group leader", odd_io_requests),
    ("§5", "malformed control frames (test_dist_faults)", malformed_control_frames),
    ("§6", "LINK/MONITOR_P forged for a third node", forged_signals),
    ("§7", 'lying map #{[97] => 1, "a" => 2}', lying_map),
    ("§7", "300-character node name", long_node_name),
    ("§7", "1,023 held ALIVE2 registrations", alive2_flood),
    ("§7", "EPMD port held by a non-listening socket", held_epmd_port),
]


@dataclass
class AttackResult:
    section: str
    name: str
    outcome: Outcome
    alive: bool
    pings: int
    answered: int
    slowest_ping: float
    log_lines: int
    rss_before: int
    rss_after: int
    first_log: str = ""


@dataclass
class _Pinger:
    watcher: Watcher
    sent: int = 0
    answered: int = 0
    slowest: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            self.sent += 1
            start = time.perf_counter()
            try:
                async with asyncio.timeout(60):
                    if await self.watcher.ping():
                        self.answered += 1
            except (TimeoutError, ConnectionError, OSError):
                return
            self.slowest = max(self.slowest, time.perf_counter() - start)
            if self.stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_EVERY):
                    await self.stop.wait()


async def _run(scale: float, only: list[str] | None) -> list[AttackResult]:
    raw_peer.TIMEOUT = 60.0  # a stalled node answers late: wait for it, and time it
    results = []
    async with victim() as v:
        watcher = Watcher(await peer(v))
        try:
            for section, name, attack in ATTACKS:
                if only and not any(o in attack.__name__ + name for o in only):
                    continue
                v.new_log_lines()
                before = v.rss()
                pinger = _Pinger(watcher)
                task = asyncio.ensure_future(pinger.run())
                try:
                    outcome = await attack(v, watcher, scale)
                except Exception as e:  # the node broke the protocol: that is a finding
                    outcome = Outcome(f"FAILED: {type(e).__name__}: {e}", False)
                pinger.stop.set()
                await task
                alive = v.alive and await kept(watcher.raw)
                lines = v.new_log_lines()
                results.append(
                    AttackResult(
                        section,
                        name,
                        outcome,
                        alive,
                        pinger.sent,
                        pinger.answered,
                        pinger.slowest,
                        len(lines),
                        before,
                        v.rss(),
                        lines[0][:160] if lines else "",
                    )
                )
                if not alive:
                    break
        finally:
            watcher.raw.close()
    return results


def attacks(scale: float = 1.0, only: list[str] | None = None) -> list[AttackResult]:
    """Run every attack (or those whose name contains one of `only`) on a fresh victim."""
    return asyncio.run(_run(scale, only))


def print_attacks(results: list[AttackResult], scale: float) -> None:
    print(f"\nattacks on a node in a subprocess (sizes x{scale:g}; pings every {PING_EVERY} s)")
    head = f"{'':3} {'attack':<50} {'ok':>3} {'alive':>5} {'pings':>9} {'slowest':>8}"
    print(f"{head} {'log':>4} {'RSS MB before > after':>22}  outcome")
    for r in results:
        pings = f"{r.answered}/{r.pings}"
        rss = f"{r.rss_before / 2**20:.1f} > {r.rss_after / 2**20:.1f}"
        print(
            f"{r.section:3} {r.name:<50} {'yes' if r.outcome.ok else 'NO':>3} "
            f"{'yes' if r.alive else 'NO':>5} {pings:>9} {r.slowest_ping:>7.2f}s "
            f"{r.log_lines:>4} {rss:>22}  {r.outcome.text}"
        )
    print("the node's first log line per attack:")
    for r in results:
        if r.first_log:
            print(f"  {r.section} {r.name[:30]:<30} {r.first_log[:120]}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        try:
            asyncio.run(_serve(int(argv[1])))
        except Exception as e:  # the parent reads this line
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            return 1
        return 0
    scale = 4.0 if "--full" in argv else 1.0
    if "--scale" in argv:
        i = argv.index("--scale")
        scale = float(argv.pop(i + 1))
    only = [a for a in argv if not a.startswith("--")] or None
    results = attacks(scale, only)
    print_attacks(results, scale)
    return 0 if results and all(r.outcome.ok and r.alive for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
