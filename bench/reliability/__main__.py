"""`./dev reliability [--full] [PART ...]`: the reliability harness as one command.

    python -m bench.reliability                 # quick: about 3 minutes
    python -m bench.reliability --full          # about 35 minutes
    python -m bench.reliability attacks chaos   # only these parts (quick or --full)

PARTs, in this order: soak (steady load, msgs/s and RSS), chaos (calls under random
kills), attacks (on a node in a subprocess), fuzz (ETF decoder fuzzing), differential
(against `binary_to_term` in a real `erl`; with $BEAMLET_ERL2 also against that OTP).
Each part prints its table, then a summary of the figures docs/reliability.md records,
each with the value it must have; the exit status is 1 if any figure misses it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import fuzz_etf
from bench.reliability import attacks, chaos, soak


@dataclass(frozen=True)
class Plan:
    fuzz_seconds: float
    hostile_scale: float
    differential: int
    differential_erl2: int
    attack_scale: float
    chaos_seconds: float
    soak_seconds: float


QUICK = Plan(30, 0.25, 5_000, 1_000, 1.0, 10, 30)
FULL = Plan(600, 1.0, 100_000, 20_000, 4.0, 60, 600)

Row = tuple[str, str, str, bool]  # part, figure, value, as required


def run_fuzz(plan: Plan, seed: int) -> list[Row]:
    start = time.perf_counter()
    s = fuzz_etf.fuzz(plan.fuzz_seconds, seed, plan.hostile_scale)
    fuzz_etf.print_fuzz(s, time.perf_counter() - start)
    bomb = max((p for n, _, _, p, _ in s.hostile if "compression" in n), default=0.0)
    other = max((p for n, _, _, p, _ in s.hostile if "compression" not in n), default=0.0)
    return [
        ("fuzz", "inputs tried", f"{s.inputs:,}", s.inputs > 0),
        ("fuzz", "exceptions other than DecodeError (0)", f"{len(s.failures)}", not s.failures),
        ("fuzz", "hangs > 1 s (0)", f"{len(s.hangs)}", not s.hangs),
        ("fuzz", "peak B per input byte, hostile shapes (< 200)", f"{other:.0f}", other < 200),
        ("fuzz", "  compression bomb (inflated bytes)", f"{bomb:.0f}", True),
        ("fuzz", "peak B per input byte, any input", f"{s.peak_bytes_per_byte:.0f}", True),
    ]


def run_differential(plan: Plan, seed: int) -> list[Row]:
    rows: list[Row] = []
    erl2 = os.environ.get("BEAMLET_ERL2")
    for erl, count in ((fuzz_etf.find_erl(), plan.differential), (erl2, plan.differential_erl2)):
        if erl is None:
            if count == plan.differential:  # the main erl is required
                rows.append(("differential", "erl on PATH", "missing", False))
            continue
        start = time.perf_counter()
        d = fuzz_etf.differential(count, erl, seed)
        fuzz_etf.print_differential(d, erl, time.perf_counter() - start)
        where = "erl" if erl != erl2 else "$BEAMLET_ERL2"
        rows.append(
            (
                "differential",
                f"terms through {where} (encodings)",
                f"{d.terms:,} ({d.encodings:,})",
                d.terms > 0,
            )
        )
        rows.append(("differential", "  mismatches (0)", f"{len(d.mismatches)}", not d.mismatches))
    return rows


def run_attacks(plan: Plan, seed: int) -> list[Row]:
    results = attacks.attacks(plan.attack_scale)
    attacks.print_attacks(results, plan.attack_scale)
    slowest = max((r.slowest_ping for r in results), default=0.0)
    return [
        (
            "attacks",
            "attacks run",
            f"{len(results)}/{len(attacks.ATTACKS)}",
            len(results) == len(attacks.ATTACKS),
        ),
        (
            "attacks",
            "outcome as required",
            f"{sum(r.outcome.ok for r in results)}",
            all(r.outcome.ok for r in results),
        ),
        (
            "attacks",
            "node alive after each",
            f"{sum(r.alive for r in results)}",
            all(r.alive for r in results),
        ),
        (
            "attacks",
            "pings answered",
            f"{sum(r.answered for r in results)}/{sum(r.pings for r in results)}",
            all(r.answered == r.pings for r in results),
        ),
        (
            "attacks",
            f"slowest ping (< {attacks.TICK_INTERVAL:.0f} s)",
            f"{slowest:.2f} s",
            slowest < attacks.TICK_INTERVAL,
        ),
    ]


def run_chaos(plan: Plan, seed: int) -> list[Row]:
    r = chaos.chaos(plan.chaos_seconds, seed)
    chaos.print_chaos(r)
    return [
        (
            "chaos",
            "calls (answered, failed cleanly)",
            f"{r.calls:,} ({r.answered:,}, {r.clean_failures:,})",
            r.answered > 0,
        ),
        ("chaos", "hung calls (0)", f"{r.hung}", r.hung == 0),
        ("chaos", "wrong replies (0)", f"{r.wrong}", r.wrong == 0),
        ("chaos", "tree recovered", "yes" if r.recovered else "no", r.recovered),
        (
            "chaos",
            "processes, names left (0, 0)",
            f"{r.leaked_processes}, {r.leaked_names}",
            r.leaked_processes == 0 and r.leaked_names == 0,
        ),
    ]


def run_soak(plan: Plan, seed: int) -> list[Row]:
    r = soak.soak(plan.soak_seconds, progress=plan.soak_seconds >= 300)
    soak.print_soak(r)
    return [
        ("soak", f"msgs/s over {r.seconds:.0f} s", f"{r.msgs_per_s:,.0f}", r.messages > 0),
        (
            "soak",
            f"RSS first > last window (< +{r.max_growth:.0%})",
            f"{r.first_rss / 2**20:.1f} > {r.last_rss / 2**20:.1f} MB ({r.growth:+.1%})",
            r.flat,
        ),
        ("soak", "stuck after stop (0)", f"{r.stuck}", r.stuck == 0),
        (
            "soak",
            "processes after stop (<= before)",
            f"{r.processes_after} ({r.processes_before})",
            r.processes_after <= r.processes_before,
        ),
    ]


# The soak first: its RSS figures are the soak's alone (fuzzing leaves memory allocated).
PARTS: dict[str, Callable[[Plan, int], list[Row]]] = {
    "soak": run_soak,
    "chaos": run_chaos,
    "attacks": run_attacks,
    "fuzz": run_fuzz,
    "differential": run_differential,
}


def main(argv: list[str]) -> int:
    plan = FULL if "--full" in argv else QUICK
    names = [a for a in argv if not a.startswith("--")] or list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        print(f"unknown part(s) {unknown}; parts: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    seed = int(time.time())
    print(f"reliability, {'full' if plan is FULL else 'quick'} run, seed {seed}: {plan}")
    rows: list[Row] = []
    for name in names:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        rows += PARTS[name](plan, seed)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    print("\n== summary")
    print(f"{'part':<13} {'figure (required)':<48} {'value':>28}  ok")
    for part, figure, value, ok in rows:
        print(f"{part:<13} {figure:<48} {value:>28}  {'yes' if ok else 'NO'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
