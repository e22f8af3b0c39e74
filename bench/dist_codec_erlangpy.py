"""Codec timings of the PyPI package `erlang-py` (module `erlang`), for bench_dist.py.

Run in a throw-away environment, never in the project's venv:

    uv run --no-project --with erlang-py==2.0.7 python bench/dist_codec_erlangpy.py \\
        BULK_FILE CALL_FILE ROUNDS

Each file holds one term in the external term format. Prints, per term,
`RESULT <name> <encode s> <decode s> <encoded bytes>` (best of 5).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import erlang  # type: ignore[import-not-found]


def best_of(fn: Callable[[], object], rounds: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
    bulk_file, call_file, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for name, path, n in (("bulk", bulk_file, rounds), ("call", call_file, rounds * 100)):
        with open(path, "rb") as f:
            wire = f.read()
        term = erlang.binary_to_term(wire)
        out = erlang.term_to_binary(term)
        enc = best_of(lambda t=term: erlang.term_to_binary(t), n)
        dec = best_of(lambda w=wire: erlang.binary_to_term(w), n)
        print(f"RESULT {name} {enc!r} {dec!r} {len(out)}", flush=True)


if __name__ == "__main__":
    main()
