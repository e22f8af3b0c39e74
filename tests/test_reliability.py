"""Bounded runs of the reliability harness (bench/reliability; the long runs are
`./dev reliability [--full]`, figures in docs/reliability.md). Under 60 s in all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reliability import __main__ as runner
from bench.reliability import attacks, chaos, soak

ROOT = Path(__file__).resolve().parents[1]


def test_chaos_calls_under_random_kills() -> None:
    r = chaos.chaos(2.0, seed=3)
    assert r.answered > 0 and r.clean_failures > 0  # the kills reached the clients
    assert r.hung == 0 and r.wrong == 0, r.first_wrong
    assert r.recovered
    assert r.leaked_processes == 0 and r.leaked_names == 0


def test_soak_briefly() -> None:
    r = soak.soak(3.0)
    assert r.messages > 10_000
    assert r.stuck == 0
    assert r.processes_after <= r.processes_before


def test_attacks_on_a_node_in_a_subprocess() -> None:
    # A process of its own: the harness reuses test_dist_faults' frames, whose marks
    # this directory's pytest does not know.
    run = subprocess.run(
        [sys.executable, "-m", "bench.reliability.attacks", "--scale", "0.25"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("§")]
    assert len(rows) == len(attacks.ATTACKS), run.stdout
    assert all(" yes   yes " in row for row in rows), run.stdout


def test_the_command_refuses_an_unknown_part() -> None:
    assert runner.main(["attack"]) == 2
