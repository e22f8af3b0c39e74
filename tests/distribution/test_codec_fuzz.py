"""Bounded runs of the codec's fuzz and differential harnesses (bench/fuzz_etf.py).

The long runs are a command: `python -m bench.fuzz_etf --seconds 600 --differential
100000` (figures in docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import fuzz_etf


def test_fuzz_decoder_briefly() -> None:
    stats = fuzz_etf.fuzz(seconds=4.0, seed=1234, hostile_scale=0.1)
    assert stats.inputs > 1000
    assert stats.failures == [], stats.failures[:3]  # only DecodeError may escape
    assert stats.hangs == []
    assert stats.decoded > 100 and stats.decode_errors > 100  # both paths exercised
    for name, _, seconds, peak, outcome in stats.hostile:
        assert outcome in ("ok", "error"), name
        assert seconds < 1.0, name
        if "compression" not in name:  # inflated bytes are bounded by max_uncompressed
            assert peak < 200, name


def erl_or_fail(env: str | None = None) -> str:
    erl = os.environ.get(env) if env else shutil.which("erl")
    if not erl:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{env or 'erl'} is required when CI=true")
        pytest.skip("no erl")
    return erl


@pytest.mark.interop
def test_differential_against_binary_to_term() -> None:
    stats = fuzz_etf.differential(1500, erl_or_fail(), seed=99)
    assert stats.erlmaps > 100  # maps only an ErlMap can hold were covered
    assert stats.mismatches == [], stats.mismatches[:3]


@pytest.mark.interop
def test_differential_against_otp_28() -> None:
    stats = fuzz_etf.differential(500, erl_or_fail("BEAMLET_ERL2"), seed=100)
    assert stats.mismatches == [], stats.mismatches[:3]
