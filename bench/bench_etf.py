"""Benchmark the ETF codec against pickle and, when `erl` is on PATH, the BEAM itself.

    python bench/bench_etf.py [-n ROUNDS]

The term is what distribution traffic looks like: a list of 1,000 small tuples holding
atoms, integers, binaries, a pid, a reference and a small map. Every codec encodes and
decodes the same term; the BEAM gets it as our own bytes, decodes it once with
`binary_to_term`, then times `term_to_binary`/`binary_to_term` with `timer:tc` (`+S 1`,
one scheduler, as the other BEAM comparisons in this project).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from beamlet._core.terms import Atom, Pid, Ref
from beamlet.dist.etf import decode, encode


def make_term() -> list[Any]:
    node = Atom("py@localhost")
    event, key, value = Atom("event"), Atom("key"), Atom("value")
    return [
        (
            event,
            i,
            b"payload-%d" % i,
            Pid(node, 100 + i, 0, 1),
            Ref(node, (i, 7, 9), 1),
            {key: i * 1000, value: 3.25},
        )
        for i in range(1000)
    ]


def best_of(fn: Callable[[], object], rounds: int, repeat: int = 5) -> float:
    """Seconds per call, best of `repeat` runs of `rounds` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


ERL_BENCH = r"""
{ok, Bin} = file:read_file(os:getenv("ETF_BENCH_IN")),
N = list_to_integer(os:getenv("ETF_BENCH_N")),
T = binary_to_term(Bin),
Loop = fun Loop(0, _) -> ok; Loop(K, F) -> F(), Loop(K - 1, F) end,
Time = fun(F) -> element(1, timer:tc(fun() -> Loop(N, F) end)) end,
Best = fun(F) -> lists:min([Time(F) || _ <- lists:seq(1, 5)]) end,
Enc = Best(fun() -> term_to_binary(T) end),
Enc2 = Best(fun() -> term_to_binary(T, [{minor_version, 2}]) end),
Dec = Best(fun() -> binary_to_term(Bin) end),
io:format("enc ~p enc2 ~p dec ~p size ~p~n", [Enc, Enc2, Dec, byte_size(term_to_binary(T))]),
halt().
"""


def beam(wire: bytes, rounds: int) -> dict[str, float] | None:
    erl = shutil.which("erl")
    if erl is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "term.bin"
        path.write_bytes(wire)
        env = dict(os.environ, ETF_BENCH_IN=str(path), ETF_BENCH_N=str(rounds))
        out = subprocess.run(
            [erl, "+S", "1", "-noshell", "-eval", ERL_BENCH],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    m = re.search(r"enc (\d+) enc2 (\d+) dec (\d+) size (\d+)", out)
    if m is None:
        raise RuntimeError(f"unexpected erl output: {out!r}")
    enc, enc2, dec, size = (int(g) for g in m.groups())
    return {
        "enc": enc / 1e6 / rounds,
        "enc2": enc2 / 1e6 / rounds,
        "dec": dec / 1e6 / rounds,
        "size": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=200)
    args = parser.parse_args()
    n = args.rounds
    term = make_term()
    wire = encode(term)
    assert encode(decode(wire)) == wire
    pickled = pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL)

    rows: list[tuple[str, int, float, float]] = [
        (
            "beamlet etf (Python)",
            len(wire),
            best_of(lambda: encode(term), n),
            best_of(lambda: decode(wire), n),
        ),
        (
            "pickle (C, same term)",
            len(pickled),
            best_of(lambda: pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL), n),
            best_of(lambda: pickle.loads(pickled), n),
        ),
    ]
    b = beam(wire, n)
    if b is not None:
        rows.append(("BEAM term_to_binary", int(b["size"]), b["enc"], b["dec"]))
        rows.append(("BEAM  .. minor_version 2", len(wire), b["enc2"], b["dec"]))

    print(f"term: list of 1000 tuples, {len(wire):,} bytes of ETF; {n} rounds, best of 5")
    print(f"{'codec':<26} {'bytes':>8} {'enc MB/s':>9} {'dec MB/s':>9} {'enc µs':>8} {'dec µs':>8}")
    for name, size, enc, dec in rows:
        print(
            f"{name:<26} {size:>8,} {size / enc / 1e6:>9.1f} {size / dec / 1e6:>9.1f} "
            f"{enc * 1e6:>8.0f} {dec * 1e6:>8.0f}"
        )
    if b is None:
        print("(erl not on PATH: no BEAM baseline)")
    else:
        print(
            f"beamlet / BEAM: encode {rows[0][2] / b['enc2']:.1f}x slower, "
            f"decode {rows[0][3] / b['dec']:.1f}x slower"
        )


if __name__ == "__main__":
    main()
