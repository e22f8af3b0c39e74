"""Test helpers for code that uses beamlet (and beamlet's own tests).

The pytest plugin (`beamlet.testing.plugin`, installed with beamlet, opt-in) runs an
`async def` test marked `@pytest.mark.beamlet` as a beamlet process on a fresh `Node`, so
the test body can `spawn`, `send` and `receive` directly; `beamlet_mode = "auto"` in the
pytest configuration makes every async test a beamlet test. Mark a test
`@pytest.mark.virtual_time` to run it on a loop whose clock jumps over idle waits.

Examples:
    A test, called here the way the plugin calls it (as a process of a fresh node):

    >>> import pytest
    >>> from beamlet.testing import assert_receive
    >>> async def echo():
    ...     sender, msg = await beamlet.receive()
    ...     beamlet.send(sender, msg)
    >>> @pytest.mark.beamlet
    ... async def test_echo():
    ...     pid = beamlet.spawn(echo)
    ...     beamlet.send(pid, (beamlet.self(), "hi"))
    ...     await assert_receive("hi")
    >>> await test_echo()
"""

from __future__ import annotations

from typing import Any

from beamlet._core import ANY, receive
from beamlet.testing.clock import VirtualClock, virtual_time_loop
from beamlet.testing.supervised import start_supervised, stop_supervised, supervised_scope

__all__ = [
    "VirtualClock",
    "assert_receive",
    "refute_receive",
    "start_supervised",
    "stop_supervised",
    "supervised_scope",
    "virtual_time_loop",
]

_NOTHING: Any = object()


async def assert_receive(*patterns: Any, timeout: float = 1.0) -> Any:
    """Wait up to `timeout` s for a message matching `patterns`; fail the test if none
    arrives. Returns the message.

    Examples:
        >>> from beamlet.testing import assert_receive
        >>> beamlet.send(beamlet.self(), ("reply", 42))
        >>> await assert_receive(("reply", beamlet.ANY))
        ('reply', 42)
        >>> await assert_receive("never", timeout=0.01)
        Traceback (most recent call last):
        AssertionError: no message matching ('never',) within 0.01 s
    """
    msg = await receive(*(patterns or (ANY,)), timeout=timeout, default=_NOTHING)
    if msg is _NOTHING:
        raise AssertionError(f"no message matching {patterns!r} within {timeout} s")
    return msg


async def refute_receive(*patterns: Any, timeout: float = 0.1) -> None:
    """Fail the test if a message matching `patterns` arrives within `timeout` s
    (docs/semantics.md §12.8: "no message" is checked over a bounded wait).

    Examples:
        >>> from beamlet.testing import refute_receive
        >>> await refute_receive(beamlet.Down, timeout=0.01)
        >>> beamlet.send(beamlet.self(), "late")
        >>> await refute_receive(str, timeout=0.01)
        Traceback (most recent call last):
        AssertionError: unexpected message 'late'
    """
    msg = await receive(*(patterns or (ANY,)), timeout=timeout, default=_NOTHING)
    if msg is not _NOTHING:
        raise AssertionError(f"unexpected message {msg!r}")
