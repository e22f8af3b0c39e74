"""Benchmark the ETF codec against pickle and, when `erl` is on PATH, the BEAM itself.

    python bench/bench_etf.py [-n ROUNDS]
    python bench/bench_etf.py --large [MIB]     # how long one large frame blocks the loop

The bulk term is what distribution traffic looks like: a list of 1,000 small tuples
holding atoms, integers, binaries, a pid, a reference and a small map. A second, small
term is one `gen_server:call` message, `{'$gen_call', {Pid, Ref}, {get, key}}`, for the
per-message cost. Every codec encodes and decodes the same terms; the BEAM gets them as
our own bytes, decodes them once with `binary_to_term`, then times
`term_to_binary`/`binary_to_term` with `timer:tc` (`erl +S 1`, one scheduler, as the other
BEAM comparisons in this project).
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
from beamlet.distribution.etf import AtomCache, decode, encode


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


def make_call() -> tuple[Any, ...]:
    node = Atom("py@localhost")
    return (
        Atom("$gen_call"),
        (Pid(node, 42, 0, 1), Ref(node, (1, 2, 3), 1)),
        (Atom("get"), Atom("key")),
    )


def best_of(fn: Callable[[], object], rounds: int, repeat: int = 5) -> float:
    """Seconds per call, best of `repeat` runs of `rounds` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


# A compiled module: a loop written in `-eval` would run in erl_eval, the interpreter.
ERL_MODULE = r"""
-module(etf_bench).
-export([main/0]).

main() ->
    Rounds = list_to_integer(os:getenv("ETF_BENCH_N")),
    run("ETF_BENCH_BULK", Rounds),
    run("ETF_BENCH_CALL", Rounds * 100).

run(Var, N) ->
    {ok, Bin} = file:read_file(os:getenv(Var)),
    T = binary_to_term(Bin),
    Enc = best(N, fun() -> term_to_binary(T) end),
    Enc2 = best(N, fun() -> term_to_binary(T, [{minor_version, 2}]) end),
    Dec = best(N, fun() -> binary_to_term(Bin) end),
    io:format("~s enc ~p enc2 ~p dec ~p size ~p~n",
              [Var, Enc, Enc2, Dec, byte_size(term_to_binary(T))]).

best(N, F) -> lists:min([element(1, timer:tc(fun() -> loop(N, F) end)) || _ <- lists:seq(1, 5)]).

loop(0, _) -> ok;
loop(K, F) -> F(), loop(K - 1, F).
"""

ERL_EVAL = (
    '{ok, M, B} = compile:file(os:getenv("ETF_BENCH_SRC"), [binary, report]), '
    '{module, M} = code:load_binary(M, "etf_bench.erl", B), M:main(), halt().'
)


def beam(bulk: bytes, call: bytes, rounds: int) -> dict[str, dict[str, float]] | None:
    """Seconds per encode/decode on the BEAM, per term ("bulk", "call"); None without erl."""
    erl = shutil.which("erl")
    if erl is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "etf_bench.erl"
        src.write_text(ERL_MODULE)
        env = dict(os.environ, ETF_BENCH_N=str(rounds), ETF_BENCH_SRC=str(src))
        for var, wire in (("ETF_BENCH_BULK", bulk), ("ETF_BENCH_CALL", call)):
            path = Path(tmp) / var
            path.write_bytes(wire)
            env[var] = str(path)
        out = subprocess.run(
            [erl, "+S", "1", "-noshell", "-eval", ERL_EVAL],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    result = {}
    for name, var, n in (
        ("bulk", "ETF_BENCH_BULK", rounds),
        ("call", "ETF_BENCH_CALL", rounds * 100),
    ):
        m = re.search(var + r" enc (\d+) enc2 (\d+) dec (\d+) size (\d+)", out)
        if m is None:
            raise RuntimeError(f"unexpected erl output: {out!r}")
        enc, enc2, dec, size = (int(g) for g in m.groups())
        result[name] = {"enc": enc / 1e6 / n, "enc2": enc2 / 1e6 / n, "dec": dec / 1e6 / n}
        result[name]["size"] = size
    return result


def large(mib: int) -> None:
    """Decode one `mib`-MiB term of several shapes; print the time and the 128 MiB estimate."""
    size = mib * 1024 * 1024
    bulk = encode(make_term() * max(1, size // 120_126))
    cases = {
        "1000-tuple bulk terms": bulk,
        "[]s (one object per byte)": b"\x83l" + size.to_bytes(4, "big") + b"j" * (size + 1),
        "small integers": b"\x83l" + (size // 2).to_bytes(4, "big") + b"a\x01" * (size // 2) + b"j",
        "one binary": encode(b"x" * size),
    }
    print(f"{'frame of':<28} {'MiB':>6} {'decode s':>9} {'MiB/s':>8} {'128 MiB frame s':>16}")
    for name, wire in cases.items():
        start = time.perf_counter()
        term = decode(wire)
        took = time.perf_counter() - start
        del term
        rate = len(wire) / 2**20 / took if took else float("inf")
        print(f"{name:<28} {len(wire) / 2**20:>6.1f} {took:>9.2f} {rate:>8.1f} {128 / rate:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=200)
    parser.add_argument("--large", type=int, nargs="?", const=16, default=0, metavar="MIB")
    args = parser.parse_args()
    if args.large:
        large(args.large)
        return
    n = args.rounds
    terms = {"bulk": make_term(), "call": make_call()}
    wires = {name: encode(term) for name, term in terms.items()}
    for wire in wires.values():
        assert encode(decode(wire)) == wire
    b = beam(wires["bulk"], wires["call"], n)

    print(
        f"bulk: list of 1000 tuples, {len(wires['bulk']):,} bytes of ETF, {n} rounds; "
        f"call: {{'$gen_call', {{Pid, Ref}}, {{get, key}}}}, {len(wires['call'])} bytes, "
        f"{n * 100} rounds; best of 5"
    )
    print(f"{'term':<5} {'codec':<26} {'bytes':>8} {'enc MB/s':>9} {'dec MB/s':>9} ", end="")
    print(f"{'enc µs':>8} {'dec µs':>8}")
    for name, term in terms.items():
        wire = wires[name]
        rounds = n if name == "bulk" else n * 100
        pickled = pickle.dumps(term, protocol=pickle.HIGHEST_PROTOCOL)
        cache = AtomCache()  # what a connection would keep
        rows: list[tuple[str, int, float, float]] = [
            (
                "beamlet etf (Python)",
                len(wire),
                best_of(lambda t=term: encode(t), rounds),
                best_of(lambda w=wire: decode(w), rounds),
            ),
            (
                "beamlet etf + AtomCache",
                len(wire),
                best_of(lambda t=term: encode(t), rounds),
                best_of(lambda w=wire, c=cache: decode(w, atom_cache=c), rounds),
            ),
            (
                "pickle (same term)",
                len(pickled),
                best_of(lambda t=term: pickle.dumps(t, protocol=5), rounds),
                best_of(lambda p=pickled: pickle.loads(p), rounds),
            ),
        ]
        if b is not None:
            beam_row = b[name]
            rows.append(
                ("BEAM term_to_binary", int(beam_row["size"]), beam_row["enc"], beam_row["dec"])
            )
            rows.append(("BEAM  minor_version 2", len(wire), beam_row["enc2"], beam_row["dec"]))
        for codec, size, enc, dec in rows:
            print(
                f"{name:<5} {codec:<26} {size:>8,} {size / enc / 1e6:>9.1f} "
                f"{size / dec / 1e6:>9.1f} {enc * 1e6:>8.2f} {dec * 1e6:>8.2f}"
            )
        if b is not None:
            print(
                f"{name:<5} beamlet / BEAM: encode {rows[0][2] / b[name]['enc2']:.0f}x, "
                f"decode {rows[1][3] / b[name]['dec']:.0f}x the time (with AtomCache)"
            )
    if b is None:
        print("(erl not on PATH: no BEAM baseline)")


if __name__ == "__main__":
    main()
