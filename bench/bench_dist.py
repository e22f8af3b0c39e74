"""Distribution benchmark: beamlet vs the BEAM, over real loopback connections.

    uv run python bench/bench_dist.py [--quick] [--repeat R] [--no-codec]

Every pair runs in the same run, interleaved (round 1 of every pair, then round 2...),
each node in its own OS process, all registered with one EPMD (beamlet's built-in
server, in this process, on a free port):

  Erlang -> Erlang    two `erl +S 1` nodes (bench/dist_beam.erl, compiled with erlc):
                      the reference of the ratio columns
  Elixir -> Elixir    two `elixir --erl "+S 1"` nodes (bench/dist_ex.exs); skipped
                      without elixir
  Python -> Erlang    a beamlet client node (bench/dist_py_peer.py) and an erl server
  Erlang -> Python    an erl client and a beamlet server node
  Python -> Python    two beamlet nodes
  (uvloop rows)       the beamlet nodes on uvloop, when it is installed

Workloads, the same code on every system ("client -> server"):

  ping-pong  the client sends {self(), K} to the registered `echo` on the server and
             waits for K, N times in a row: round trips per second (and µs each).
             Target: Python -> Erlang >= 25 % of Erlang -> Erlang.
  one-way    the client sends M small messages {msg, K} to the registered `sink`, then
             {fin, self()}, and waits for {done, M}: messages per second.

Then the codec: encode/decode MB/s of beamlet's `etf` against the BEAM's
term_to_binary/binary_to_term (bench/bench_etf.py's terms and BEAM harness) and against
the PyPI package `erlang-py` (module `erlang`, run in a throw-away `uv run --with`
environment; reported as unavailable when it cannot be installed).

Every subprocess has a timeout; a pair that fails or hangs prints "error"/"timeout" and
the run goes on. A warm-up of min(N, 1000) round trips / messages precedes each timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(BENCH))

from beamlet.distribution.epmd import EpmdServer  # noqa: E402

COOKIE = "bench_dist_cookie"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Kind:
    key: str  # "erl", "ex", "py", "pyuv"
    label: str


ERL = Kind("erl", "Erlang")
EX = Kind("ex", "Elixir")
PY = Kind("py", "Python")
PYUV = Kind("pyuv", "Python/uvloop")


@dataclass(frozen=True)
class Pair:
    client: Kind
    server: Kind

    @property
    def label(self) -> str:
        return f"{self.client.label} -> {self.server.label}"


Result = dict[str, float] | str  # {"pingpong": µs per round trip, "oneway": msgs/s} or why not


# --------------------------------------------------------------------------- commands


class Env:
    """Where the tools are, and the per-run settings."""

    def __init__(self, beam_dir: str | None, epmd_port: int) -> None:
        self.beam_dir = beam_dir
        self.epmd_port = epmd_port
        self.erl = shutil.which("erl")
        self.elixir = shutil.which("elixir")
        self.counter = 0

    def name(self, role: str) -> str:
        self.counter += 1
        return f"bd{role}{os.getpid()}n{self.counter}@{HOST}"

    def environ(self) -> dict[str, str]:
        return dict(os.environ, ERL_EPMD_PORT=str(self.epmd_port))

    def available(self, kind: Kind) -> str | None:
        """None if `kind` can run here, else why not."""
        if kind in (ERL, EX) and (self.erl is None or self.beam_dir is None):
            return "no erl/erlc"
        if kind is EX and self.elixir is None:
            return "no elixir"
        if kind is PYUV:
            try:
                import uvloop  # noqa: F401
            except ImportError:
                return "no uvloop"
        return None

    def server_cmd(self, kind: Kind, name: str) -> list[str]:
        if kind is ERL:
            assert self.erl is not None and self.beam_dir is not None
            return [
                self.erl, "+S", "1", "-noshell", "-start_epmd", "false", "-name", name,
                "-setcookie", COOKIE, "-pa", self.beam_dir, "-eval", "dist_beam:serve().",
            ]  # fmt: skip
        if kind is EX:
            assert self.elixir is not None
            return [
                self.elixir, "--erl", "+S 1 -start_epmd false", "--name", name,
                "--cookie", COOKIE, str(BENCH / "dist_ex.exs"), "serve",
            ]  # fmt: skip
        loop = "uvloop" if kind is PYUV else "asyncio"
        peer = str(BENCH / "dist_py_peer.py")
        return [sys.executable, peer, "serve", name, COOKIE, str(self.epmd_port), loop]

    def client_cmd(self, kind: Kind, name: str, peer: str, n: int, m: int) -> list[str]:
        if kind is ERL:
            assert self.erl is not None and self.beam_dir is not None
            code = f"dist_beam:client('{peer}', {n}, {m}), halt()."
            return [
                self.erl, "+S", "1", "-noshell", "-start_epmd", "false", "-name", name,
                "-setcookie", COOKIE, "-pa", self.beam_dir, "-eval", code,
            ]  # fmt: skip
        if kind is EX:
            assert self.elixir is not None
            return [
                self.elixir, "--erl", "+S 1 -start_epmd false", "--name", name,
                "--cookie", COOKIE, str(BENCH / "dist_ex.exs"), "client", peer, str(n), str(m),
            ]  # fmt: skip
        loop = "uvloop" if kind is PYUV else "asyncio"
        script = str(BENCH / "dist_py_peer.py")
        return [
            sys.executable, script, "client", name, COOKIE, str(self.epmd_port), loop,
            peer, str(n), str(m),
        ]  # fmt: skip


# --------------------------------------------------------------------------- running


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        pass


async def run_pair(env: Env, pair: Pair, n: int, m: int, timeout: float) -> Result:
    for kind in (pair.client, pair.server):
        why = env.available(kind)
        if why is not None:
            return f"skipped: {why}"
    server_name = env.name("s")
    drains: list[asyncio.Future[None]] = []
    server = await asyncio.create_subprocess_exec(
        *env.server_cmd(pair.server, server_name),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env.environ(),
    )
    try:
        assert server.stdout is not None
        seen = b""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while b"READY" not in seen:
                    line = await server.stdout.readline()
                    if not line:
                        return f"error: server exited: {seen[-300:]!r}"
                    seen += line
        except TimeoutError:
            return "timeout (server start)"
        drain = asyncio.ensure_future(_drain(server.stdout))
        drains.append(drain)
        client = await asyncio.create_subprocess_exec(
            *env.client_cmd(pair.client, env.name("c"), server_name, n, m),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env.environ(),
        )
        try:
            out, _ = await asyncio.wait_for(client.communicate(), timeout)
        except TimeoutError:
            return "timeout"
        finally:
            await _kill(client)
        text = out.decode(errors="replace")
        found = dict(re.findall(r"RESULT (\w+) (\d+) \d+", text))
        if "pingpong" not in found or "oneway" not in found:
            return f"error: {text[-300:]!r}"
        return {
            "pingpong": int(found["pingpong"]) / n,  # µs per round trip
            "oneway": m / (int(found["oneway"]) / 1e6),  # msgs/s
        }
    finally:
        if server.stdin is not None:
            server.stdin.close()
        await _kill(server)
        for d in drains:
            d.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def compile_beam(tmp: str) -> tuple[str | None, str]:
    erlc = shutil.which("erlc")
    if erlc is None or shutil.which("erl") is None:
        return None, "no erl/erlc: BEAM rows skipped"
    subprocess.run(
        [erlc, "-o", tmp, str(BENCH / "dist_beam.erl")],
        check=True,
        timeout=120,
        capture_output=True,
    )
    release = subprocess.run(
        ["erl", "-noshell", "-eval",
         'io:format("~s/~s", [erlang:system_info(otp_release), erlang:system_info(version)]),'
         " halt()."],
        check=True, timeout=60, capture_output=True, text=True,
    ).stdout  # fmt: skip
    otp, erts = release.split("/")
    return tmp, f"OTP {otp} (erts {erts})"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


async def dist_bench(args: argparse.Namespace) -> None:
    n, m = (2_000, 20_000) if args.quick else (20_000, 200_000)
    repeat = args.repeat or (1 if args.quick else 3)
    pairs = [
        Pair(ERL, ERL),
        Pair(EX, EX),
        Pair(PY, ERL),
        Pair(ERL, PY),
        Pair(PY, PY),
        Pair(PYUV, ERL),
        Pair(ERL, PYUV),
        Pair(PYUV, PYUV),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        beam_dir, beam_info = compile_beam(tmp)
        epmd = EpmdServer()
        await epmd.start(HOST, free_port())
        try:
            env = Env(beam_dir, epmd.port)
            results: dict[Pair, list[Result]] = {p: [] for p in pairs}
            for r in range(repeat):
                for pair in pairs:
                    t0 = time.perf_counter()
                    res = await run_pair(env, pair, n, m, timeout=args.timeout)
                    results[pair].append(res)
                    shown = res if isinstance(res, str) else (
                        f"{1e6 / res['pingpong']:,.0f} rt/s, {res['oneway']:,.0f} msg/s"
                    )  # fmt: skip
                    print(
                        f"  round {r + 1}/{repeat} {pair.label:<32} {shown}"
                        f"  ({time.perf_counter() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            await epmd.stop()
    print()
    print(
        f"Distribution on loopback: {beam_info}; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs; ping-pong N={n:,}, one-way M={m:,}; best of {repeat}"
    )
    print_table(pairs, results)


def best(results: list[Result]) -> Result:
    ok = [r for r in results if not isinstance(r, str)]
    if not ok:
        return results[-1] if results else "not run"
    return {
        "pingpong": min(r["pingpong"] for r in ok),
        "oneway": max(r["oneway"] for r in ok),
    }


def print_table(pairs: list[Pair], results: dict[Pair, list[Result]]) -> None:
    ref = best(results[pairs[0]])
    head = (
        f"{'client -> server':<34} {'rt µs':>8} {'rt/s':>9} {'vs Erl':>7}"
        f" {'one-way msg/s':>14} {'vs Erl':>7}"
    )
    print(head)
    print("-" * len(head))
    for pair in pairs:
        b = best(results[pair])
        if isinstance(b, str):
            print(f"{pair.label:<34} {b}")
            continue
        rt = 1e6 / b["pingpong"]
        if isinstance(ref, str):
            r1 = r2 = "n/a"
        else:
            r1 = f"{rt / (1e6 / ref['pingpong']):.0%}"
            r2 = f"{b['oneway'] / ref['oneway']:.0%}"
        print(
            f"{pair.label:<34} {b['pingpong']:>8.1f} {rt:>9,.0f} {r1:>7}"
            f" {b['oneway']:>14,.0f} {r2:>7}"
        )
    py_erl = best(results.get(Pair(PY, ERL), []))
    if not isinstance(ref, str) and not isinstance(py_erl, str):
        share = ref["pingpong"] / py_erl["pingpong"]
        verdict = "met" if share >= 0.25 else "NOT met"
        print(
            f"target: Python -> Erlang ping-pong >= 25% of Erlang -> Erlang: {share:.0%}, {verdict}"
        )


# --------------------------------------------------------------------------- codec


def codec_bench(args: argparse.Namespace) -> None:
    import bench_etf

    from beamlet.distribution.etf import decode, encode

    rounds = 20 if args.quick else 200
    terms = {"bulk": bench_etf.make_term(), "call": bench_etf.make_call()}
    wires = {name: encode(t) for name, t in terms.items()}
    rows: list[tuple[str, str, int, float, float]] = []  # term, codec, bytes, enc s, dec s
    for name, term in terms.items():
        n = rounds if name == "bulk" else rounds * 100
        wire = wires[name]
        enc = bench_etf.best_of(lambda t=term: encode(t), n)
        dec = bench_etf.best_of(lambda w=wire: decode(w), n)
        rows.append((name, "beamlet etf", len(wire), enc, dec))
    notes: list[str] = []
    try:
        beam = bench_etf.beam(wires["bulk"], wires["call"], rounds)
        if beam is None:
            notes.append("BEAM codec: no erl")
    except (subprocess.SubprocessError, OSError, RuntimeError) as e:
        beam = None
        notes.append(f"BEAM codec: error {e}")
    if beam is not None:
        for name in terms:
            b = beam[name]
            rows.append((name, "BEAM term_to_binary", len(wires[name]), b["enc2"], b["dec"]))
    erlpy, why = erlang_py(wires, rounds)
    if erlpy is None:
        notes.append(f"erlang-py: not measured ({why})")
    else:
        for name, (enc, dec, size) in erlpy.items():
            rows.append((name, f"erlang-py {ERLANG_PY_VERSION}", len(wires[name]), enc, dec))
            del size
    print()
    print(
        f"Codec (ETF bytes / time; bulk: 1000 tuples, {len(wires['bulk']):,} B, {rounds} rounds;"
        f" call: one $gen_call, {len(wires['call'])} B, {rounds * 100} rounds; best of 5)"
    )
    head = (
        f"{'term':<5} {'codec':<22} {'enc MB/s':>9} {'dec MB/s':>9} {'enc µs':>10} {'dec µs':>10}"
        f" {'enc vs BEAM':>11} {'dec vs BEAM':>11}"
    )
    print(head)
    print("-" * len(head))
    ref = {r[0]: r for r in rows if r[1].startswith("BEAM")}
    for term, codec, size, enc, dec in rows:
        base = ref.get(term)
        if base is None:
            e_vs = d_vs = "n/a"
        else:
            e_vs, d_vs = f"{base[3] / enc:.1%}", f"{base[4] / dec:.1%}"
        print(
            f"{term:<5} {codec:<22} {size / enc / 1e6:>9.1f} {size / dec / 1e6:>9.1f}"
            f" {enc * 1e6:>10.2f} {dec * 1e6:>10.2f} {e_vs:>11} {d_vs:>11}"
        )
    for note in notes:
        print(note)


ERLANG_PY_VERSION = "2.0.7"


def erlang_py(wires: dict[str, bytes], rounds: int) -> tuple[dict[str, Any] | None, str]:
    """Seconds per encode/decode with erlang-py, from a throw-away `uv run --with` env."""
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv not found"
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name in ("bulk", "call"):
            path = Path(tmp) / name
            path.write_bytes(wires[name])
            files.append(str(path))
        cmd = [
            uv, "run", "--no-project", "--quiet", "--with", f"erlang-py=={ERLANG_PY_VERSION}",
            "python", str(BENCH / "dist_codec_erlangpy.py"), *files, str(rounds),
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, check=False, capture_output=True, text=True, timeout=300, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            return None, "timeout"
    if proc.returncode != 0:
        return None, f"could not run: {proc.stderr.strip()[-200:]}"
    out = {}
    for name, enc, dec, size in re.findall(r"RESULT (\w+) (\S+) (\S+) (\d+)", proc.stdout):
        out[name] = (float(enc), float(dec), int(size))
    return (out, "") if len(out) == 2 else (None, f"unexpected output {proc.stdout[-200:]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--repeat", type=int, default=0, help="rounds per pair (best is kept)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per client run")
    parser.add_argument("--no-codec", action="store_true", help="skip the codec table")
    args = parser.parse_args()
    asyncio.run(dist_bench(args))
    if not args.no_codec:
        codec_bench(args)


if __name__ == "__main__":
    main()
