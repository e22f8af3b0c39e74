"""Bounded runs of the reliability harness (bench/reliability; the long runs are
`python -m bench.reliability`-style commands, figures in docs/reliability.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reliability import chaos, soak


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
