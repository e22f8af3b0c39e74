"""The pytest plugin is opt-in: an unrelated project's async tests are left alone."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

UNRELATED = """
import asyncio

async def test_unrelated():
    await asyncio.sleep(0)  # sleep-ok: only needs to be a coroutine
"""

MARKED = """
import pytest
import beamlet

@pytest.mark.beamlet
async def test_marked():
    assert beamlet.self() is not None

@pytest.mark.virtual_time
async def test_virtual():
    await beamlet.sleep(3600)
"""


def test_unmarked_async_test_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UNRELATED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    # pytest's own verdict on an async test that no plugin takes
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_marked_tests_run_as_processes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MARKED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_auto_mode_takes_every_async_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbeamlet_mode = auto\n")
    beamlet_yield = "__import__('beamlet').sleep(0)"  # sleep-ok: text of an inner test
    pytester.makepyfile(UNRELATED.replace("asyncio.sleep(0)", beamlet_yield))  # sleep-ok
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_bad_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbeamlet_mode = sometimes\n")
    pytester.makepyfile("def test_x(): pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*beamlet_mode must be one of*"])
